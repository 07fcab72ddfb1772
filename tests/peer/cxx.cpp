// Peer suite program: C++17 allocation patterns (run by tests/peer/cxx.sh).
//
// Exercises operator new/delete in all their forms (plain, array, sized,
// aligned, nothrow), standard containers and smart pointers, exceptions
// (whose objects libstdc++ allocates with malloc), std::bad_alloc on
// impossible requests, and threads that free what other threads
// allocated. It checks its own results, prints one line per section and
// a final checksum that depends only on the computed values (never on
// addresses or thread interleaving), and exits non-zero on any failure.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

int g_failures = 0;

void check(bool ok, const char *what, long detail = 0) {
    if (!ok) {
        ++g_failures;
        std::fprintf(stderr, "CHECK FAILED: %s (%ld)\n", what, detail);
    }
}

// Deterministic PRNG (xorshift64*).
struct Rng {
    std::uint64_t s;
    explicit Rng(std::uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
    std::uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 2685821657736338717ull;
    }
    std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
};

// Order-dependent checksum.
struct Sum {
    std::uint64_t h = 1469598103934665603ull;
    void add(std::uint64_t v) {
        h ^= v;
        h *= 1099511628211ull;
        h ^= h >> 29;
    }
};

std::uint64_t mix(std::uint64_t v) {
    v ^= v >> 33;
    v *= 0xff51afd7ed558ccdull;
    v ^= v >> 33;
    v *= 0xc4ceb9fe1a85ec53ull;
    v ^= v >> 33;
    return v;
}

bool aligned_to(const void *p, std::size_t a) {
    return reinterpret_cast<std::uintptr_t>(p) % a == 0;
}

void report(const char *section, const Sum &s, bool ok) {
    std::printf("%-12s %s %016llx\n", section, ok ? "ok" : "FAILING",
                static_cast<unsigned long long>(s.h));
}

// ---------------------------------------------------------------- new/delete
std::atomic<long> g_live{0};

struct Tracked {
    std::uint64_t v;
    char pad[24];
    Tracked() : v(0) {
        ++g_live;
        std::memset(pad, 0x5a, sizeof pad);
    }
    explicit Tracked(std::uint64_t x) : v(x) {
        ++g_live;
        std::memset(pad, static_cast<int>(x & 0xff), sizeof pad);
    }
    ~Tracked() {
        --g_live;
        v = 0xdeadull;
    }
    bool intact() const {
        for (char c : pad)
            if (c != pad[0]) return false;
        return true;
    }
};

std::uint64_t test_new_delete() {
    Sum sum;
    Rng rng(1);
    // Many live byte buffers of mixed sizes, freed in random order.
    struct Buf {
        unsigned char *p;
        std::size_t n;
        unsigned char tag;
    };
    std::vector<Buf> live;
    for (int round = 0; round < 60000; ++round) {
        if (live.empty() || rng.below(100) < 55) {
            std::size_t n;
            switch (rng.below(10)) {
            case 0: n = 0; break;
            case 1: n = 1 + rng.below(8); break;
            case 2: n = 4096 + rng.below(70000); break;
            case 3: n = rng.below(4) == 0 ? (1u << 20) + rng.below(1u << 20) : 256 + rng.below(1024); break;
            default: n = 1 + rng.below(256); break;
            }
            auto tag = static_cast<unsigned char>(rng.next());
            auto *p = new unsigned char[n];
            if (n) {
                std::memset(p, tag, n);
            }
            live.push_back({p, n, tag});
        } else {
            std::size_t i = rng.below(live.size());
            Buf b = live[i];
            live[i] = live.back();
            live.pop_back();
            bool ok = b.n == 0 || (b.p[0] == b.tag && b.p[b.n / 2] == b.tag && b.p[b.n - 1] == b.tag);
            check(ok, "byte buffer content", static_cast<long>(b.n));
            sum.add(b.n * 131 + b.tag);
            delete[] b.p;
        }
    }
    for (auto &b : live) {
        sum.add(b.n);
        delete[] b.p;
    }

    // Single objects and arrays with constructors/destructors.
    std::vector<Tracked *> objs;
    for (std::uint64_t i = 0; i < 20000; ++i) objs.push_back(new Tracked(i));
    check(g_live == 20000, "live objects after new", g_live);
    for (std::size_t i = 0; i < objs.size(); i += 2) {
        check(objs[i]->v == i && objs[i]->intact(), "tracked object", static_cast<long>(i));
        delete objs[i];
    }
    for (std::size_t i = 1; i < objs.size(); i += 2) delete objs[i];
    check(g_live == 0, "live objects after delete", g_live);

    for (int k = 0; k < 300; ++k) {
        std::size_t n = 1 + static_cast<std::size_t>(k) * 37 % 1000;
        Tracked *arr = new Tracked[n];
        check(g_live == static_cast<long>(n), "array construction", static_cast<long>(n));
        for (std::size_t i = 0; i < n; ++i) arr[i].v = i * k;
        std::uint64_t t = 0;
        for (std::size_t i = 0; i < n; ++i) t += arr[i].v;
        sum.add(t);
        delete[] arr;
        check(g_live == 0, "array destruction", g_live);
    }
    return sum.h;
}

// ---------------------------------------------------------------- alignment
struct alignas(64) Line {
    std::uint64_t w[8];
};
struct alignas(4096) Page {
    unsigned char bytes[4096];
};
struct alignas(128) Small128 {
    char c;
};

std::uint64_t test_aligned() {
    Sum sum;
    std::vector<Line *> lines;
    for (int i = 0; i < 5000; ++i) {
        Line *l = new Line;
        check(aligned_to(l, 64), "new alignas(64)");
        l->w[0] = static_cast<std::uint64_t>(i);
        lines.push_back(l);
    }
    for (Line *l : lines) {
        sum.add(l->w[0]);
        delete l;
    }

    for (int i = 1; i <= 40; ++i) {
        Line *la = new Line[static_cast<std::size_t>(i)];
        check(aligned_to(la, 64), "new alignas(64)[]");
        la[i - 1].w[7] = static_cast<std::uint64_t>(i);
        sum.add(la[i - 1].w[7]);
        delete[] la;

        Page *p = new Page;
        check(aligned_to(p, 4096), "new alignas(4096)");
        std::memset(p->bytes, i, sizeof p->bytes);
        sum.add(p->bytes[4095]);
        delete p;

        Page *pa = new Page[static_cast<std::size_t>(i % 5 + 1)];
        check(aligned_to(pa, 4096), "new alignas(4096)[]");
        pa[i % 5].bytes[0] = static_cast<unsigned char>(i);
        sum.add(pa[i % 5].bytes[0]);
        delete[] pa;

        Small128 *s = new Small128[static_cast<std::size_t>(i)];
        check(aligned_to(s, 128), "new alignas(128)[]");
        delete[] s;
    }

    // Explicit aligned operator new/delete, sized and unsized, throwing and nothrow.
    for (std::size_t align = 8; align <= 65536; align *= 2) {
        for (std::size_t size : {std::size_t(1), align / 2 + 1, align, 3 * align + 5, std::size_t(100000)}) {
            void *p = ::operator new(size, std::align_val_t(align));
            check(aligned_to(p, align), "operator new(size, align)", static_cast<long>(align));
            std::memset(p, 0xab, size);
            ::operator delete(p, size, std::align_val_t(align));

            void *q = ::operator new[](size, std::align_val_t(align), std::nothrow);
            check(q != nullptr && aligned_to(q, align), "operator new[](nothrow, align)",
                  static_cast<long>(align));
            ::operator delete[](q, std::align_val_t(align));
            sum.add(size * 3 + align);
        }
    }

    // Containers and smart pointers of over-aligned types.
    std::vector<Line> vl;
    for (int i = 0; i < 3000; ++i) {
        vl.push_back(Line{{static_cast<std::uint64_t>(i)}});
        check(aligned_to(vl.data(), 64), "vector<alignas(64)> data");
    }
    sum.add(vl.back().w[0]);
    auto sp = std::make_shared<Page>();
    check(aligned_to(sp.get(), 4096), "make_shared<alignas(4096)>");
    auto up = std::make_unique<Page[]>(3);
    check(aligned_to(up.get(), 4096), "make_unique<alignas(4096)[]>");
    std::vector<std::shared_ptr<Line>> shl;
    for (int i = 0; i < 1000; ++i) {
        shl.push_back(std::make_shared<Line>());
        check(aligned_to(shl.back().get(), 64), "make_shared<alignas(64)>");
    }
    sum.add(shl.size());
    return sum.h;
}

// ---------------------------------------------------------------- containers
std::uint64_t test_containers() {
    Sum sum;
    Rng rng(2);
    std::vector<std::string> strs;
    for (int i = 0; i < 50000; ++i) {
        std::string s(rng.below(200), static_cast<char>('a' + i % 26));
        s += std::to_string(i);
        strs.push_back(std::move(s));
    }
    std::sort(strs.begin(), strs.end());
    for (std::size_t i = 0; i < strs.size(); i += 97) sum.add(strs[i].size() * 7 + static_cast<unsigned char>(strs[i][0]));

    std::map<int, std::string> m;
    for (int i = 0; i < 40000; ++i) m[static_cast<int>(rng.below(100000))] = std::string(rng.below(64), 'x');
    for (auto it = m.begin(); it != m.end();) {
        it = (it->first % 3 == 0) ? m.erase(it) : std::next(it);
    }
    for (auto &kv : m) sum.add(static_cast<std::uint64_t>(kv.first) ^ kv.second.size());

    std::unordered_map<std::string, std::vector<int>> um;
    for (int i = 0; i < 30000; ++i) {
        auto &v = um["key" + std::to_string(rng.below(5000))];
        v.push_back(i);
    }
    std::uint64_t t = 0;
    for (auto &kv : um) t += mix(kv.first.size() * 1000003 + kv.second.size() + static_cast<std::uint64_t>(kv.second.back()));
    sum.add(t);  // order-independent over the hash table
    um.clear();
    um.rehash(0);

    std::deque<std::vector<std::uint32_t>> dq;
    for (int i = 0; i < 20000; ++i) {
        dq.emplace_back(rng.below(50), static_cast<std::uint32_t>(i));
        if (i % 3 == 0) dq.pop_front();
    }
    sum.add(dq.size());
    std::list<std::string> lst;
    for (int i = 0; i < 20000; ++i) lst.emplace_back(std::to_string(i * 7));
    lst.remove_if([](const std::string &s) { return s.back() == '7'; });
    sum.add(lst.size());

    // shared_ptr / weak_ptr graph.
    struct Node {
        std::vector<std::shared_ptr<Node>> kids;
        std::weak_ptr<Node> parent;
        std::string label;
        ~Node() { --g_live; }
        Node() { ++g_live; }
    };
    {
        auto root = std::make_shared<Node>();
        std::vector<std::shared_ptr<Node>> all{root};
        for (int i = 1; i < 20000; ++i) {
            auto n = std::make_shared<Node>();
            n->label = "node" + std::to_string(i);
            auto &parent = all[rng.below(all.size())];
            n->parent = parent;
            parent->kids.push_back(n);
            all.push_back(n);
        }
        std::uint64_t depth_sum = 0;
        for (auto &n : all) {
            std::uint64_t d = 0;
            for (auto p = n->parent.lock(); p; p = p->parent.lock()) ++d;
            depth_sum += d;
        }
        sum.add(depth_sum);
        check(g_live == 20000, "shared_ptr node count", g_live);
    }
    check(g_live == 0, "shared_ptr graph freed", g_live);
    return sum.h;
}

// ---------------------------------------------------------------- exceptions
struct PeerError : std::runtime_error {
    std::vector<int> payload;
    PeerError(const std::string &m, int n) : std::runtime_error(m), payload(static_cast<std::size_t>(n), n) {}
};

int thrower(int depth, int i) {
    std::string local(static_cast<std::size_t>(depth * 10), 'e');
    if (depth == 0) throw PeerError("peer error " + std::to_string(i), i % 100);
    return thrower(depth - 1, i) + static_cast<int>(local.size());
}

std::uint64_t test_exceptions() {
    Sum sum;
    for (int i = 0; i < 20000; ++i) {
        try {
            thrower(i % 8, i);
        } catch (const PeerError &e) {
            sum.add(std::strlen(e.what()) + e.payload.size());
        }
    }
    // Nested exceptions.
    for (int i = 0; i < 2000; ++i) {
        try {
            try {
                throw std::out_of_range(std::string(static_cast<std::size_t>(i % 300), 'o'));
            } catch (...) {
                std::throw_with_nested(std::runtime_error("outer " + std::to_string(i)));
            }
        } catch (const std::runtime_error &e) {
            try {
                std::rethrow_if_nested(e);
            } catch (const std::out_of_range &inner) {
                sum.add(std::strlen(inner.what()));
            }
        }
    }
    // exception_ptr made in one thread, rethrown in another.
    std::vector<std::exception_ptr> eps;
    std::thread producer([&] {
        for (int i = 0; i < 500; ++i) {
            try {
                throw PeerError(std::string(static_cast<std::size_t>(i), 'x'), i);
            } catch (...) {
                eps.push_back(std::current_exception());
            }
        }
    });
    producer.join();
    std::uint64_t total = 0;
    std::thread consumer([&] {
        for (auto &ep : eps) {
            try {
                std::rethrow_exception(ep);
            } catch (const PeerError &e) {
                total += std::strlen(e.what()) + e.payload.size();
            }
        }
        eps.clear();
    });
    consumer.join();
    sum.add(total);

    return sum.h;
}

std::uint64_t test_bad_alloc() {
    Sum sum;
    // Impossible requests must throw std::bad_alloc (or, for nothrow,
    // return null), never abort or hand out memory.
    int bad = 0;
    const std::size_t huge = std::size_t(1) << 62;
    try {
        volatile std::size_t n = huge;
        char *p = new char[n];
        p[0] = 1;
        delete[] p;
    } catch (const std::bad_alloc &) {
        ++bad;
    }
    try {
        void *p = ::operator new(huge, std::align_val_t(4096));
        ::operator delete(p, std::align_val_t(4096));
    } catch (const std::bad_alloc &) {
        ++bad;
    }
    char *np = new (std::nothrow) char[huge];
    if (np == nullptr) ++bad;
    delete[] np;
    try {
        std::vector<Line> v;
        v.reserve(v.max_size());
    } catch (const std::bad_alloc &) {
        ++bad;
    } catch (const std::length_error &) {
        ++bad;
    }
    check(bad == 4, "bad_alloc on impossible requests", bad);
    sum.add(static_cast<std::uint64_t>(bad));
    return sum.h;
}

// ---------------------------------------------------------------- threads
struct Item {
    std::uint64_t id;
    std::string text;
    std::vector<std::uint64_t> data;
    std::unique_ptr<Line> line;
    std::uint64_t hash() const {
        std::uint64_t h = mix(id);
        for (auto d : data) h = mix(h ^ d);
        return mix(h ^ text.size() ^ (line ? line->w[3] : 7));
    }
};

std::uint64_t sum_vec(const std::vector<int> &v) {
    std::uint64_t s = 0;
    for (int x : v) s += static_cast<std::uint64_t>(x);
    return s + v.size();
}

Item *make_item(std::uint64_t id) {
    auto *it = new Item;
    it->id = id;
    it->text.assign(id % 300, static_cast<char>('A' + id % 26));
    it->data.resize(id % 50);
    for (std::size_t k = 0; k < it->data.size(); ++k) it->data[k] = id * 31 + k;
    if (id % 4 == 0) {
        it->line = std::make_unique<Line>();
        it->line->w[3] = id;
    }
    return it;
}

std::uint64_t test_threads() {
    Sum sum;
    // Producers allocate, consumers verify and free: every free is remote.
    constexpr int kProducers = 4, kConsumers = 4, kPerProducer = 30000;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Item *> queue;
    int producers_done = 0;
    std::atomic<std::uint64_t> made{0}, freed{0};
    std::vector<std::thread> ts;
    for (int p = 0; p < kProducers; ++p) {
        ts.emplace_back([&, p] {
            std::uint64_t local = 0;
            for (int i = 0; i < kPerProducer; ++i) {
                Item *it = make_item(static_cast<std::uint64_t>(p) * kPerProducer + static_cast<std::uint64_t>(i));
                local += it->hash();
                std::lock_guard<std::mutex> lk(mu);
                queue.push_back(it);
                if (queue.size() % 64 == 0) cv.notify_one();
            }
            made += local;
            std::lock_guard<std::mutex> lk(mu);
            ++producers_done;
            cv.notify_all();
        });
    }
    for (int c = 0; c < kConsumers; ++c) {
        ts.emplace_back([&] {
            std::uint64_t local = 0;
            for (;;) {
                std::vector<Item *> batch;
                {
                    std::unique_lock<std::mutex> lk(mu);
                    cv.wait(lk, [&] { return !queue.empty() || producers_done == kProducers; });
                    if (queue.empty()) break;
                    while (!queue.empty() && batch.size() < 128) {
                        batch.push_back(queue.front());
                        queue.pop_front();
                    }
                }
                for (Item *it : batch) {
                    local += it->hash();
                    delete it;
                }
            }
            freed += local;
        });
    }
    for (auto &t : ts) t.join();
    ts.clear();
    check(made == freed, "producer/consumer hashes");
    sum.add(made);

    // Ring: each thread allocates a batch and passes it to its neighbour,
    // which frees it; repeated for several rounds.
    constexpr int kRing = 6, kRounds = 40, kBatch = 500;
    std::vector<std::vector<std::string *>> slots(kRing);
    std::vector<std::mutex> slot_mu(kRing);
    std::atomic<std::uint64_t> ring_total{0};
    std::atomic<int> arrived{0};
    for (int r = 0; r < kRing; ++r) {
        ts.emplace_back([&, r] {
            std::uint64_t local = 0;
            for (int round = 0; round < kRounds; ++round) {
                std::vector<std::string *> mine;
                for (int i = 0; i < kBatch; ++i)
                    mine.push_back(new std::string(static_cast<std::size_t>((r * 7 + round * 3 + i) % 400), 'r'));
                {
                    std::lock_guard<std::mutex> lk(slot_mu[static_cast<std::size_t>((r + 1) % kRing)]);
                    auto &dst = slots[static_cast<std::size_t>((r + 1) % kRing)];
                    dst.insert(dst.end(), mine.begin(), mine.end());
                }
                std::vector<std::string *> got;
                {
                    std::lock_guard<std::mutex> lk(slot_mu[static_cast<std::size_t>(r)]);
                    got.swap(slots[static_cast<std::size_t>(r)]);
                }
                for (auto *s : got) {
                    local += s->size();
                    delete s;
                }
            }
            ring_total += local;
            ++arrived;
        });
    }
    for (auto &t : ts) t.join();
    ts.clear();
    std::uint64_t rest = 0;
    for (auto &sl : slots)
        for (auto *s : sl) {
            rest += s->size();
            delete s;
        }
    std::uint64_t expect = 0;
    for (int r = 0; r < kRing; ++r)
        for (int round = 0; round < kRounds; ++round)
            for (int i = 0; i < kBatch; ++i) expect += static_cast<std::uint64_t>((r * 7 + round * 3 + i) % 400);
    check(ring_total + rest == expect, "ring transfer totals");
    sum.add(expect);

    // Threads that exit while their blocks live on, freed later by main.
    std::vector<std::vector<int> *> orphans(64, nullptr);
    for (int wave = 0; wave < 8; ++wave) {
        for (int i = 0; i < 8; ++i) {
            ts.emplace_back([&, wave, i] {
                thread_local std::vector<std::string> tls_strings;
                for (int k = 0; k < 100; ++k) tls_strings.emplace_back(static_cast<std::size_t>(k * 3), 't');
                orphans[static_cast<std::size_t>(wave * 8 + i)] =
                    new std::vector<int>(static_cast<std::size_t>(1000 + wave * 100 + i), wave + i);
            });
        }
        for (auto &t : ts) t.join();
        ts.clear();
    }
    std::uint64_t ot = 0;
    for (auto *v : orphans) {
        ot += sum_vec(*v);
        delete v;
    }
    sum.add(ot);

    // Many short-lived threads, each allocating and freeing.
    for (int i = 0; i < 200; ++i) {
        std::thread t([i] {
            std::vector<std::unique_ptr<Tracked>> v;
            for (int k = 0; k < 200; ++k) v.push_back(std::make_unique<Tracked>(static_cast<std::uint64_t>(i + k)));
        });
        t.join();
    }
    check(g_live == 0, "short-lived threads freed objects", g_live);
    return sum.h;
}

// ---------------------------------------------------------------- C API
std::uint64_t test_c_api() {
    Sum sum;
    // realloc growth keeps contents.
    unsigned char *p = nullptr;
    std::size_t n = 0;
    for (std::size_t step = 1; step <= 2000; ++step) {
        std::size_t m = step * step % 300000 + step;
        auto *q = static_cast<unsigned char *>(std::realloc(p, m));
        check(q != nullptr, "realloc");
        std::size_t kept = std::min(n, m);
        for (std::size_t i = 0; i < kept; ++i) {
            if (q[i] != static_cast<unsigned char>(i)) {
                check(false, "realloc kept data", static_cast<long>(i));
                break;
            }
        }
        for (std::size_t i = 0; i < m; ++i) q[i] = static_cast<unsigned char>(i);
        check(malloc_usable_size(q) >= m, "malloc_usable_size >= request", static_cast<long>(m));
        p = q;
        n = m;
    }
    std::free(p);
    sum.add(n);

    for (std::size_t k = 0; k < 300; ++k) {
        std::size_t cnt = 1 + k * 13, sz = 1 + k % 40;
        auto *c = static_cast<unsigned char *>(std::calloc(cnt, sz));
        check(c != nullptr, "calloc");
        bool zero = true;
        for (std::size_t i = 0; i < cnt * sz; ++i) zero = zero && c[i] == 0;
        check(zero, "calloc zeroed", static_cast<long>(k));
        std::memset(c, 0xff, cnt * sz);
        std::free(c);
    }
    {
        volatile std::size_t big = std::size_t(1) << 40;
        void *c = std::calloc(big, big);
        check(c == nullptr, "calloc overflow");
        std::free(c);
    }

    for (std::size_t align = sizeof(void *); align <= 1 << 16; align *= 2) {
        void *a = nullptr;
        check(posix_memalign(&a, align, align * 3 + 1) == 0 && aligned_to(a, align), "posix_memalign", static_cast<long>(align));
        std::free(a);
        void *b = std::aligned_alloc(align, align * 4);
        check(b != nullptr && aligned_to(b, align), "aligned_alloc", static_cast<long>(align));
        std::free(b);
        void *c = memalign(align, 100);
        check(c != nullptr && aligned_to(c, align), "memalign", static_cast<long>(align));
        std::free(c);
        sum.add(align);
    }
    void *bad = nullptr;
    check(posix_memalign(&bad, 24, 64) != 0, "posix_memalign rejects non-power-of-two");
    std::free(nullptr);
    return sum.h;
}

}  // namespace

int main(int argc, char **argv) {
    struct Section {
        const char *name;
        std::uint64_t (*fn)();
    };
    const Section sections[] = {
        {"new-delete", test_new_delete}, {"aligned", test_aligned}, {"containers", test_containers},
        {"exceptions", test_exceptions}, {"bad-alloc", test_bad_alloc}, {"threads", test_threads},
        {"c-api", test_c_api},
    };
    // Arguments: section names to run (default: all), or --list.
    if (argc == 2 && std::strcmp(argv[1], "--list") == 0) {
        for (const auto &s : sections) std::printf("%s\n", s.name);
        return 0;
    }
    for (int i = 1; i < argc; ++i) {
        bool known = false;
        for (const auto &s : sections) known = known || std::strcmp(argv[i], s.name) == 0;
        if (!known) {
            std::fprintf(stderr, "unknown section '%s' (try --list)\n", argv[i]);
            return 2;
        }
    }
    Sum total;
    for (const auto &s : sections) {
        bool wanted = argc == 1;
        for (int i = 1; i < argc; ++i) wanted = wanted || std::strcmp(argv[i], s.name) == 0;
        if (!wanted) continue;
        const int failures_before = g_failures;
        Sum one;
        one.add(s.fn());
        report(s.name, one, g_failures == failures_before);
        std::fflush(stdout);
        total.add(one.h);
    }
    std::printf("checksum %016llx\n", static_cast<unsigned long long>(total.h));
    if (g_failures) {
        std::printf("FAILED: %d checks\n", g_failures);
        return 1;
    }
    std::printf("all checks passed\n");
    return 0;
}
