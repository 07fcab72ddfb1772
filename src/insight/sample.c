/*
 * sample.c -- the sampling heap profiler: which code holds the live bytes.
 *
 * Owns: each thread's distance to its next sample, the table of allocation
 * sites (a native backtrace plus, if a runtime registered a stack hook, its
 * stack as text) with their estimated live and total bytes, and one record
 * per live sampled block (its site and its weight).
 *
 * Sampling.  Allocated bytes are a line; sample points fall on it as a
 * Poisson process of mean gap R (EBB_SAMPLE_RATE, 512 KiB): each thread
 * draws exponentially distributed gaps from its own xorshift generator, and
 * an allocation that contains a point is sampled.  A block of s bytes is so
 * sampled with probability p(s) = 1 - exp(-s/R), independently of every
 * other block, and a sampled one stands for
 *
 *     s / p(s) bytes and 1 / p(s) blocks,
 *
 * so a site's sum of weights over its sampled blocks is an unbiased estimate
 * of its bytes (and blocks): E = sum over blocks of p(s) * s / p(s).  For
 * small blocks the weight is about R, for blocks far above R it is s (they
 * are nearly always sampled).  Weights are fixed when a block is sampled
 * and subtracted exactly when it is freed, so a site whose blocks are all
 * freed goes back to 0, whatever the rate did in between.  The relative
 * error of an estimate is about 1/sqrt(samples).
 *
 * Cost.  malloc's fast path subtracts the request from the thread cache's
 * `sample.left` once its pop is sure, and leaves for the slow path when the
 * counter turns negative: a subtract from memory and a branch (the first
 * version loaded, subtracted, tested and stored: 5 instructions, +1.8% of
 * churn's instructions; this one +0.1 to +0.9%, within the purger's noise).
 * Sampling off is a gap of PTRDIFF_MAX (redrawn when it runs out, every
 * 2 GiB on 32-bit).  A rate change bumps an epoch that each thread checks
 * on its slow paths, which come at least every half a cache of
 * allocations.  The slow path of a sample unwinds the stack (glibc's
 * backtrace(), libgcc's DWARF unwinder: frame pointers are not there in
 * most distribution code), calls the stack hook and takes the
 * site lock; ebb's own frames are dropped by address (every function that
 * can be on the stack between the program's call and the unwind lives in
 * the `ebb_entry` section).  The unwind is the price: about 17,000
 * instructions for a 5-frame stack (callgrind, bench larson: 129 samples,
 * 2.2M instructions, 4% of the run), against 90,000 once for loading
 * libgcc_s (done in the constructor, so the first sample does not pay it).
 * At --cg-scale 0.1 a sample costs 15,500 (prodcons) to 20,100 (realloc)
 * instructions, nearly all unwinding: about 1,700 a frame, and half the
 * frames unwound are ebb's own (backtrace, ebb__os_backtrace, capture,
 * ebb__sample_begin, sampled_alloc).  libunwind 1.6 (Debian's
 * libunwind8), whose unw_backtrace keeps a per-thread cache of frame
 * rules, was tried: 1,250 to 1,420 instructions an unwind once a thread's
 * cache is warm (churn +0.3% against sampling off instead of +1.7%), but
 * a thread's first unwind costs about 100,000 and a 256 KiB mapping
 * (larson, whose threads come and go: 9,700 an unwind, +3.1%), and it is
 * not fit to run inside every process's malloc: it keeps a pipe open
 * (the lowest free descriptors, 3 and 4 in a fresh process) and checks
 * addresses by writing them to it, so a program that closes what it
 * inherited and opens files there has a byte read from its fd 3 and one
 * written to its fd 4 (shown with a test program); linked in, its
 * exported backtrace and _Unwind_* would stand in for glibc's and
 * libgcc's in the program's own lookups.  So glibc's backtrace stays.
 *
 * Recognising a sampled block at free time.  A sampled block is served by
 * the large-block allocator (large.c), whatever its size, and its entry
 * there carries the number of its record (`tag`).  The free fast path never
 * handles a large block, so it costs nothing; ebb__large_free finds the
 * tag under the lock it takes anyway.  usable_size, owns and manages answer
 * as for any large block (a sampled 16-byte block has 4 KiB usable).  The
 * price is a page per live sampled block: about live/R of them, 0.8% of a
 * heap of small blocks at 512 KiB; the large-block cache keeps freed ones
 * for the next samples, so a steady state rarely maps.  realloc of a
 * sampled block is a free and a new allocation when it moves, or when a
 * large block is resized (mremap, absorbing a cached neighbour): the old
 * weight goes, the new size is ticked like any allocation.  A realloc that
 * keeps the block as it is changes nothing.
 *
 * Reentrancy.  The first backtrace() loads libgcc_s, which allocates, and
 * the stack hook may allocate: while a thread is in the sampler its own
 * allocations are never sampled (a per-thread flag), and no ebb lock is
 * held.  Samples are taken only once ebb's constructor ran, never from
 * allocations the dynamic loader makes before the program starts.
 *
 * Memory.  The site table (EBB_SAMPLE_SITES sites, about 850 bytes each,
 * plus an index of twice as many 32-bit slots) is mapped at the first
 * sample; pages get resident as sites are used.  Records are mapped a chunk
 * at a time.  A full table, or a record that cannot be mapped, drops the
 * sample (counted): the block is still served, unsampled.
 */
#include "internal.h"

#include <string.h>


#define COUNT_ONE 65536.0 /* count weights are fixed point, 16 fraction bits */
#define INDEX_SLOTS (2 * EBB_SAMPLE_SITES)

_Static_assert(EBB_SITE_DEPTH >= 4 && EBB_SITE_TEXT >= 64, "sites keep a useful stack");

typedef struct {
    uint64_t hash;
    uint64_t live_bytes, live_count;   /* weights of live sampled blocks */
    uint64_t total_bytes, total_count; /* weights of every sampled block */
    uint64_t live_samples;
    uint32_t depth, text_len;
    void *pcs[EBB_SITE_DEPTH];
    char text[EBB_SITE_TEXT];
} site_t;

typedef struct {
    uint32_t site;  /* index + 1 of its site, 0 while the record is free */
    uint32_t next;  /* free records: number of the next free one, 0 none */
    uint64_t bytes; /* weight of the block: bytes it stands for */
    uint64_t count; /* blocks it stands for, fixed point */
} record_t;

static struct {
    ebb__lock_t lock;        /* everything below but rate and epoch */
    _Atomic size_t rate;     /* mean bytes between samples, 0 off */
    _Atomic unsigned epoch;  /* bumped by every rate change */
    site_t *sites[EBB_SAMPLE_SITES / EBB_SAMPLE_CHUNK_SITES]; /* mapped as needed */
    uint32_t *index;         /* by hash: site index + 1, 0 empty; mapped at the first sample */
    size_t nsites;
    size_t table_bytes;      /* mapped for the index and the sites */
    record_t *chunk[EBB_SAMPLE_CHUNKS];
    unsigned nchunks;
    uint32_t free_records;   /* number of the first free record, 0 none */
    uint64_t taken, live, dropped;
    ebb_stack_hook_fn hook;
    void *hook_arg;
    _Atomic uint64_t seeds;  /* distinct seeds for threads */
} sampler = { .lock = EBB_LOCK_INIT, .rate = EBB_SAMPLE_RATE_DEFAULT, .epoch = 1 };

/* The thread is inside the sampler: its allocations are not sampled. */
static __thread int in_sampler __attribute__((tls_model("initial-exec")));
/* The options' rate is put in force once, before the first allocation
 * (front/init.c) or before a call here changes the rate, whichever comes
 * first: a rate the program sets is never overwritten by EBB_SAMPLE_RATE. */
void ebb__sample_start(void)
{
    static _Atomic int started;
    static ebb__lock_t start_lock = EBB_LOCK_INIT;
    if (atomic_load_explicit(&started, memory_order_acquire))
        return;
    ebb__ensure_init();
    ebb__lock(&start_lock);
    if (!atomic_load_explicit(&started, memory_order_relaxed)) {
        atomic_store_explicit(&sampler.rate, ebb__opt.sample_rate, memory_order_relaxed);
        atomic_store_explicit(&started, 1, memory_order_release);
    }
    ebb__unlock(&start_lock);
}

static uint32_t capture(void **pcs);

void ebb__sample_prime(void)
{
    void *pcs[EBB_SITE_DEPTH];
    if (atomic_load_explicit(&sampler.rate, memory_order_relaxed) == 0)
        return;
    in_sampler = 1;
    (void)capture(pcs);
    in_sampler = 0;
}

void ebb__sample_unwinder_prime(void)
{
    int was = in_sampler; /* the stack hook may allocate inside the sampler */
    in_sampler = 1;
    ebb__os_unwinder_prime();
    in_sampler = was;
}

/* ------------------------------------------------------------ the gaps */


static uint64_t next_random(ebb__sample_counter_t *t)
{
    uint64_t x = t->rng; /* xorshift64*: plenty for spacing samples */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Natural logarithm of x in (0, 1], without libm: x = m * 2^-k with m in
 * [0.5, 1], and ln m = 2 atanh(z), z = (m - 1) / (m + 1) in [-1/3, 0]; eight
 * terms of the series leave an error below 1e-9, far below what spacing
 * samples needs. */
static double ln_unit(double x)
{
    int k = 0;
    while (x < 0.5) {
        x *= 2;
        k++;
    }
    double z = (x - 1) / (x + 1), z2 = z * z, term = z, sum = 0;
    for (int i = 1; i <= 15; i += 2) {
        sum += term / i;
        term *= z2;
    }
    return 2 * sum - k * 0.69314718055994530942;
}

/* 1 - exp(-x) for x >= 0: the probability that a block of x mean gaps holds
 * a sample point.  A series for small x (no cancellation), else exp(-x) by
 * halving: exp(-x) = exp(-x / 2^j)^(2^j) with x / 2^j below 1/2. */
static double hit_probability(double x)
{
    if (x < 0.5) {
        double term = x, sum = 0;
        for (int i = 1; i <= 14; i++) {
            sum += term;
            term *= -x / (i + 1);
        }
        return sum;
    }
    if (x > 60)
        return 1;
    int j = 0;
    while (x >= 0.5) {
        x /= 2;
        j++;
    }
    double e = 1 - hit_probability(x);
    while (j-- > 0)
        e *= e;
    return 1 - e;
}

/* Bytes to the next sample point: exponential with mean `rate`. */
static ptrdiff_t next_gap(ebb__sample_counter_t *t, size_t rate)
{
    if (rate == 0)
        return PTRDIFF_MAX;
    double u = (double)((next_random(t) >> 11) + 1) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double gap = -ln_unit(u) * (double)rate;
    return gap >= (double)PTRDIFF_MAX ? PTRDIFF_MAX : (ptrdiff_t)gap;
}

static void restart(ebb__sample_counter_t *t, unsigned epoch)
{
    if (t->rng == 0) {
        uint64_t seed = atomic_fetch_add_explicit(&sampler.seeds, 1, memory_order_relaxed);
        t->rng = ebb__mix64(ebb__os_now_ns() ^ (uintptr_t)t ^ (seed << 40)) | 1;
    }
    t->epoch = epoch;
    t->left = next_gap(t, atomic_load_explicit(&sampler.rate, memory_order_relaxed));
}

/* t->left went negative: a sample point falls inside this block.  The
 * process is memoryless, so the next gap starts where the block ends. */
static int fire(ebb__sample_counter_t *t)
{
    size_t rate = atomic_load_explicit(&sampler.rate, memory_order_relaxed);
    t->left = next_gap(t, rate);
    return rate != 0 && !in_sampler &&
           atomic_load_explicit(&ebb__threads_allowed, memory_order_relaxed);
}


int ebb__sample_tick(size_t n)
{
    ebb__sample_counter_t *t = ebb__thread_sample_counter();
    unsigned epoch = atomic_load_explicit(&sampler.epoch, memory_order_relaxed);
    if (EBB_UNLIKELY(t->epoch != epoch))
        restart(t, epoch);
    ptrdiff_t left = t->left - (ptrdiff_t)n; /* n <= PTRDIFF_MAX: no overflow */
    if (EBB_LIKELY(left >= 0)) {
        t->left = left;
        return 0;
    }
    return fire(t);
}

int ebb__sample_fired(size_t n)
{
    ebb__sample_counter_t *t = ebb__thread_sample_counter();
    unsigned epoch = atomic_load_explicit(&sampler.epoch, memory_order_relaxed);
    if (EBB_UNLIKELY(t->epoch != epoch)) {
        /* Drawn under another rate (or never: a new cache): count n
         * against a gap drawn under this one instead. */
        restart(t, epoch);
        return ebb__sample_tick(n);
    }
    return fire(t);
}

/* --------------------------------------------------------------- sites */

extern const char __start_ebb_entry[] EBB_HIDDEN;
extern const char __stop_ebb_entry[] EBB_HIDDEN;

static int in_ebb(const void *pc)
{
    return (const char *)pc > __start_ebb_entry && (const char *)pc <= __stop_ebb_entry;
}

/* The stack of the allocating call, ebb's frames dropped. */
/* Held around each unwind and by fork's prepare handler: a fork never
 * happens while one of ebb's threads is inside the unwinder, whose locks
 * (glibc's dl_iterate_phdr, on 32-bit x86) the child would find held by a
 * thread it does not have, and its first sample would wait forever (seen in
 * test_fork under -m32).  An unwind may allocate (the unwinder's first use
 * loads libgcc_s) but never samples, so it never takes this lock again. */
static ebb__lock_t unwind_lock = EBB_LOCK_INIT;

static EBB_ENTRY EBB_NOINLINE uint32_t capture(void **pcs)
{
    void *raw[EBB_SITE_DEPTH + 16];
    ebb__lock(&unwind_lock);
    int n = ebb__os_backtrace(raw, (int)(sizeof raw / sizeof raw[0]));
    ebb__unlock(&unwind_lock);
    /* Everything up to the outermost frame of ebb's: frames above it that
     * are not ebb's own belong to an unwinder's wrapper (ASan intercepts
     * backtrace()), or to a pressure callback that allocated, whose blocks
     * are charged to the allocation that ran it. */
    int skip = 0;
    for (int i = 0; i < n; i++)
        if (in_ebb(raw[i]))
            skip = i + 1;
    int depth = n - skip < EBB_SITE_DEPTH ? n - skip : EBB_SITE_DEPTH;
    memcpy(pcs, raw + skip, (size_t)depth * sizeof(void *));
    return (uint32_t)depth;
}

/* The registered hook's text, NUL-terminated; its length. */
static uint32_t hook_text(char *text)
{
    ebb__lock(&sampler.lock);
    ebb_stack_hook_fn fn = sampler.hook;
    void *arg = sampler.hook_arg;
    ebb__unlock(&sampler.lock);
    size_t len = fn ? fn(text, EBB_SITE_TEXT - 1, arg) : 0;
    if (len > EBB_SITE_TEXT - 1)
        len = EBB_SITE_TEXT - 1;
    text[len] = 0;
    return (uint32_t)len;
}

static uint64_t site_hash(void *const *pcs, uint32_t depth, const char *text, uint32_t len)
{
    uint64_t h = ebb__mix64(depth + ((uint64_t)len << 32));
    for (uint32_t i = 0; i < depth; i++)
        h = ebb__mix64(h ^ (uintptr_t)pcs[i]);
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)text[i]) * 0x100000001b3ull;
    return ebb__mix64(h);
}

static site_t *site_at(size_t i)
{
    return &sampler.sites[i / EBB_SAMPLE_CHUNK_SITES][i % EBB_SAMPLE_CHUNK_SITES];
}

/* Sample lock held: mapped memory for the profiler's tables, counted as
 * ebb's metadata; NULL if the OS refuses (the sample is dropped). */
static void *table_map(size_t bytes)
{
    void *m = ebb__os_map_meta(bytes);
    if (m) {
        ebb__mapped_add(bytes);
        sampler.table_bytes += bytes;
    }
    return m;
}

/* Sample lock held: room for the index and one more site; 0 if none. */
static int sites_ready(void)
{
    if (sampler.index == NULL && (sampler.index = table_map(INDEX_SLOTS * sizeof(uint32_t))) == NULL)
        return 0;
    size_t c = sampler.nsites / EBB_SAMPLE_CHUNK_SITES;
    if (sampler.nsites == EBB_SAMPLE_SITES || sampler.sites[c])
        return 1;
    return (sampler.sites[c] = table_map(EBB_SAMPLE_CHUNK_SITES * sizeof(site_t))) != NULL;
}

/* Sample lock held: the number (index + 1) of the site for this stack,
 * made if new; 0 if the table is full. */
static uint32_t site_find_or_add(void *const *pcs, uint32_t depth, const char *text, uint32_t len)
{
    if (!sites_ready())
        return 0;
    uint64_t h = site_hash(pcs, depth, text, len);
    size_t i = (size_t)h & (INDEX_SLOTS - 1);
    for (; sampler.index[i]; i = (i + 1) & (INDEX_SLOTS - 1)) {
        site_t *s = site_at(sampler.index[i] - 1);
        if (s->hash == h && s->depth == depth && s->text_len == len &&
            !memcmp(s->pcs, pcs, depth * sizeof(void *)) && !memcmp(s->text, text, len))
            return sampler.index[i];
    }
    if (sampler.nsites == EBB_SAMPLE_SITES)
        return 0;
    site_t *s = site_at(sampler.nsites++);
    sampler.index[i] = (uint32_t)sampler.nsites;
    s->hash = h;
    s->depth = depth;
    s->text_len = len;
    memcpy(s->pcs, pcs, depth * sizeof(void *));
    memcpy(s->text, text, len);
    s->text[len] = 0;
    return sampler.index[i];
}

/* ------------------------------------------------------------- records */

static record_t *record_at(uint32_t tag)
{
    uint32_t i = tag - 1;
    return &sampler.chunk[i / EBB_SAMPLE_CHUNK_RECORDS][i % EBB_SAMPLE_CHUNK_RECORDS];
}

/* Sample lock held: a free record's number, mapping a chunk if need be;
 * 0 if none can be had. */
static uint32_t record_take(void)
{
    if (sampler.free_records == 0) {
        if (sampler.nchunks == EBB_SAMPLE_CHUNKS)
            return 0;
        record_t *c = table_map(EBB_SAMPLE_CHUNK_RECORDS * sizeof(record_t));
        if (c == NULL)
            return 0;
        uint32_t base = sampler.nchunks * EBB_SAMPLE_CHUNK_RECORDS;
        sampler.chunk[sampler.nchunks++] = c;
        for (uint32_t i = EBB_SAMPLE_CHUNK_RECORDS; i-- > 0;) {
            c[i].next = sampler.free_records;
            sampler.free_records = base + i + 1;
        }
    }
    uint32_t tag = sampler.free_records;
    sampler.free_records = record_at(tag)->next;
    return tag;
}

/* The weights of a sampled block of s bytes: s / p(s) and 1 / p(s). */
static void weigh(size_t s, size_t rate, uint64_t *bytes, uint64_t *count)
{
    double p = hit_probability((double)s / (double)rate);
    *bytes = (uint64_t)((double)s / p + 0.5);
    *count = (uint64_t)(COUNT_ONE / p + 0.5);
}

/* Sample lock held. */
static uint32_t record_sample(site_t *s, uint32_t site, size_t n, size_t rate)
{
    uint32_t tag = record_take();
    if (tag == 0)
        return 0;
    record_t *r = record_at(tag);
    weigh(n, rate, &r->bytes, &r->count);
    r->site = site;
    s->live_bytes += r->bytes;
    s->live_count += r->count;
    s->total_bytes += r->bytes;
    s->total_count += r->count;
    s->live_samples++;
    sampler.live++;
    return tag;
}

EBB_ENTRY EBB_NOINLINE uint32_t ebb__sample_begin(size_t n)
{
    void *pcs[EBB_SITE_DEPTH];
    char text[EBB_SITE_TEXT];
    in_sampler = 1;
    uint32_t depth = capture(pcs);
    uint32_t len = hook_text(text);
    in_sampler = 0;
    size_t rate = atomic_load_explicit(&sampler.rate, memory_order_relaxed);
    if (rate == 0)
        return 0; /* turned off meanwhile */
    uint32_t tag = 0;
    ebb__lock(&sampler.lock);
    uint32_t site = site_find_or_add(pcs, depth, text, len);
    if (site)
        tag = record_sample(site_at(site - 1), site, n, rate);
    sampler.taken++;
    if (tag == 0)
        sampler.dropped++;
    ebb__unlock(&sampler.lock);
    return tag;
}

/* The site of an allocation ebb refused (insight/crash.c): what a sample
 * would record there.  Nothing from inside the sampler (its unwinder's first
 * load or the hook allocated, and unwinding again would take the unwind lock
 * twice) nor before ebb's constructor loaded the unwinder. */
EBB_ENTRY EBB_NOINLINE uint32_t ebb__sample_site_now(void **pcs, char *text, uint32_t *text_len)
{
    *text_len = 0;
    text[0] = 0;
    if (in_sampler || !atomic_load_explicit(&ebb__threads_allowed, memory_order_acquire))
        return 0;
    in_sampler = 1;
    uint32_t depth = capture(pcs);
    *text_len = hook_text(text);
    in_sampler = 0;
    return depth;
}

void ebb__sample_forget(uint32_t tag)
{
    ebb__lock(&sampler.lock);
    record_t *r = record_at(tag);
    site_t *s = site_at(r->site - 1);
    s->live_bytes -= r->bytes;
    s->live_count -= r->count;
    s->live_samples--;
    sampler.live--;
    r->site = 0;
    r->next = sampler.free_records;
    sampler.free_records = tag;
    ebb__unlock(&sampler.lock);
}

/* ----------------------------------------------------------- reading */

static uint64_t count_of(uint64_t fixed)
{
    return (fixed + (uint64_t)COUNT_ONE / 2) >> 16;
}

/* Site a goes before site b in a report: more live bytes, then more bytes
 * allocated in all, then older. */
static int before(uint32_t a, uint32_t b)
{
    const site_t *x = site_at(a), *y = site_at(b);
    if (x->live_bytes != y->live_bytes)
        return x->live_bytes > y->live_bytes;
    if (x->total_bytes != y->total_bytes)
        return x->total_bytes > y->total_bytes;
    return a < b;
}

/* A heap of site indices kept in out[].depth while the top ones are chosen
 * (no memory of our own to sort in): the root is the one that goes last. */
static void sift_down(ebb__site_t *out, size_t k, size_t i)
{
    for (;;) {
        size_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < k && before((uint32_t)out[worst].depth, (uint32_t)out[l].depth))
            worst = l;
        if (r < k && before((uint32_t)out[worst].depth, (uint32_t)out[r].depth))
            worst = r;
        if (worst == i)
            return;
        int t = out[i].depth;
        out[i].depth = out[worst].depth;
        out[worst].depth = t;
        i = worst;
    }
}

static void sift_up(ebb__site_t *out, size_t i)
{
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!before((uint32_t)out[up].depth, (uint32_t)out[i].depth))
            return;
        int t = out[i].depth;
        out[i].depth = out[up].depth;
        out[up].depth = t;
        i = up;
    }
}

static void fill(ebb__site_t *o, const site_t *s)
{
    o->live_bytes = s->live_bytes;
    o->live_count = count_of(s->live_count);
    o->total_bytes = s->total_bytes;
    o->total_count = count_of(s->total_count);
    o->samples = s->live_samples;
    o->depth = (int)s->depth;
    memset(o->pcs, 0, sizeof o->pcs);
    memcpy(o->pcs, s->pcs, s->depth * sizeof(void *));
    memcpy(o->stack, s->text, s->text_len + 1);
}

size_t ebb__sample_top(ebb__site_t *out, size_t n)
{
    ebb__lock(&sampler.lock);
    size_t total = sampler.nsites, k = 0;
    for (size_t i = 0; out && i < total; i++) {
        if (k < n) {
            out[k].depth = (int)i;
            sift_up(out, k++);
        } else if (k > 0 && before((uint32_t)i, (uint32_t)out[0].depth)) {
            out[0].depth = (int)i;
            sift_down(out, k, 0);
        }
    }
    /* Heap sort: the last to go moves to the end, one at a time. */
    for (size_t m = k; m > 1; m--) {
        int t = out[0].depth;
        out[0].depth = out[m - 1].depth;
        out[m - 1].depth = t;
        sift_down(out, m - 1, 0);
    }
    for (size_t i = 0; i < k; i++)
        fill(&out[i], site_at((size_t)out[i].depth));
    ebb__unlock(&sampler.lock);
    return total;
}

/* Keep out[0..*k) the (at most n) heaviest seen, most first: an insertion,
 * and most sites are lighter than the last kept and cost one compare. */
static void keep_heaviest(ebb__site_weight_t *out, size_t n, size_t *k, const site_t *s,
                          uint32_t number)
{
    if (s->live_bytes == 0 || (*k == n && out[n - 1].live_bytes >= s->live_bytes))
        return;
    size_t j = *k < n ? (*k)++ : n - 1;
    for (; j > 0 && out[j - 1].live_bytes < s->live_bytes; j--)
        out[j] = out[j - 1];
    out[j] = (ebb__site_weight_t){ .site = number, .live_bytes = s->live_bytes,
                                   .live_count = s->live_count, .samples = s->live_samples };
}

size_t ebb__sample_top_weights(ebb__site_weight_t *out, size_t n, uint64_t *all_live)
{
    size_t k = 0;
    uint64_t live = 0;
    ebb__lock(&sampler.lock);
    for (size_t i = 0; i < sampler.nsites; i++) {
        const site_t *s = site_at(i);
        live += s->live_bytes;
        if (n)
            keep_heaviest(out, n, &k, s, (uint32_t)i + 1);
    }
    /* The text's hash, for a report that sums sites reading the same. */
    for (size_t i = 0; i < k; i++) {
        const site_t *s = site_at(out[i].site - 1);
        out[i].text_hash = s->text_len ? site_hash(NULL, 0, s->text, s->text_len) | 1 : 0;
    }
    ebb__unlock(&sampler.lock);
    *all_live = live;
    return k;
}

void ebb__sample_site_at_peak(ebb__site_t *out, const ebb__site_weight_t *w)
{
    ebb__lock(&sampler.lock);
    fill(out, site_at(w->site - 1));
    ebb__unlock(&sampler.lock);
    out->live_bytes = w->live_bytes;
    out->live_count = count_of(w->live_count);
    out->samples = w->samples;
}

EBB_API size_t ebb_sample_sites(ebb_site_t *out, size_t n)
{
    return ebb__sample_top(out, n);
}

EBB_API size_t ebb_sample_rate(void)
{
    ebb__sample_start();
    return atomic_load_explicit(&sampler.rate, memory_order_relaxed);
}

EBB_API int ebb_set_sample_rate(size_t bytes)
{
    ebb__sample_start();
    atomic_store_explicit(&sampler.rate, bytes, memory_order_relaxed);
    unsigned epoch = atomic_fetch_add_explicit(&sampler.epoch, 1, memory_order_relaxed) + 1;
    /* The calling thread at once; the others at their next slow path. */
    restart(ebb__thread_sample_counter(), epoch);
    ebb__sample_prime();
    return 0;
}

EBB_API void ebb_sample_stats(ebb_sample_stats_t *out)
{
    if (out == NULL)
        return;
    ebb__sample_start();
    ebb__lock(&sampler.lock);
    out->rate = atomic_load_explicit(&sampler.rate, memory_order_relaxed);
    out->sites = sampler.nsites;
    out->samples = sampler.taken;
    out->live = sampler.live;
    out->dropped = sampler.dropped;
    ebb__unlock(&sampler.lock);
}

EBB_API int ebb_set_stack_hook(ebb_stack_hook_fn fn, void *arg)
{
    ebb__lock(&sampler.lock);
    sampler.hook = fn;
    sampler.hook_arg = fn ? arg : NULL;
    ebb__unlock(&sampler.lock);
    return 0;
}

/* ----------------------------------------------- stats, check, fork */

/* Sample lock held (by the caller: ebb_check). */
void ebb__sample_stats_locked(ebb_stats_t *s)
{
    s->mapped_meta += sampler.table_bytes;
}

void ebb__sample_each_map_locked(ebb__range_fn fn, void *ctx)
{
    if (sampler.index)
        fn(ctx, sampler.index, INDEX_SLOTS * sizeof(uint32_t), EBB_RANGE_META);
    for (size_t c = 0; c < EBB_SAMPLE_SITES / EBB_SAMPLE_CHUNK_SITES && sampler.sites[c]; c++)
        fn(ctx, sampler.sites[c], EBB_SAMPLE_CHUNK_SITES * sizeof(site_t), EBB_RANGE_META);
    for (unsigned c = 0; c < sampler.nchunks; c++)
        fn(ctx, sampler.chunk[c], EBB_SAMPLE_CHUNK_RECORDS * sizeof(record_t), EBB_RANGE_META);
}

int ebb__sample_check(void)
{
    uint64_t live = 0, weights = 0;
    int faults = 0;
    for (size_t i = 0; i < sampler.nsites; i++)
        live += site_at(i)->live_samples;
    for (uint32_t c = 0; c < sampler.nchunks; c++)
        for (uint32_t i = 0; i < EBB_SAMPLE_CHUNK_RECORDS; i++)
            if (sampler.chunk[c][i].site)
                weights++;
    if (live != sampler.live || weights != sampler.live) {
        ebb__diag("ebb_check: %llu live samples counted, %llu in sites, %llu records in use\n",
                  (unsigned long long)sampler.live, (unsigned long long)live,
                  (unsigned long long)weights);
        faults++;
    }
    return faults;
}

/* The unwind lock is held around fork only: ebb_check takes the sites'. */
EBB_HIDDEN const ebb__lockset_t ebb__sample_unwind_locks = { .name = "sampler unwind",
                                                              .one = &unwind_lock,
                                                              .fork_only = 1 };
EBB_HIDDEN const ebb__lockset_t ebb__sample_locks = { .name = "sampler sites",
                                                       .one = &sampler.lock };
