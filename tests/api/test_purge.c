/* Giving memory back, seen from outside: RSS (VmRSS, as users see it) after
 * frees, with survivors, from idle and exited threads, by ebb_collect from
 * another thread, after fork, under concurrent frees, and under every value
 * of the purge options.
 *
 * Each scenario runs in a fresh child process started with its options in
 * the environment (they are read once, at start-up), checks itself and
 * prints one line per fault.  The bounds are generous for a noisy machine
 * yet tight enough that an allocator releasing only whole empty arenas
 * (pymalloc) or only the top of its heap (glibc) fails them: survivors
 * are spread so that every pool keeps a few, and the bounds are about a
 * third of the build. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ebb.h"
#include "api.h"
#include "child.h"

/* ----------------------------------------------------------------- child */

static _Atomic int faults;
#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            printf("FAULT %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
            printf(__VA_ARGS__);                                               \
            printf("\n");                                                      \
            faults++;                                                          \
        }                                                                      \
    } while (0)

/* Resident bytes, read with plain system calls so that measuring allocates
 * nothing: an idle process must stay idle while it watches itself. */
static size_t rss(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    unsigned long size, resident;
    if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
        return 0;
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* How long a scenario waits for what the purger must do (RSS falling, a
 * cached block expiring) before it fails: the purger does it within a
 * delay or two (a second by default), and a loaded machine or a sanitizer
 * build may take several times that; the wait ends as soon as it happens,
 * so only a purger that never does it waits this long. */
#define WAIT_MS 30000

/* Wait without allocating until RSS is at most `bound`; the ms it took, or
 * -1 if it did not happen within `limit` ms. */
static long wait_rss_below(size_t bound, long limit)
{
    for (long t = 0; t <= limit; t += 10) {
        if (rss() <= bound)
            return t;
        sleep_ms(10);
    }
    return -1;
}

/* 128 MiB, or EBB_TEST_MB (the EBB_DEBUG=2 build, which walks the whole
 * heap on every slow path, runs these with a smaller heap). */
static size_t build_bytes = (size_t)128 << 20;
#define BUILD_BYTES build_bytes
#define MAX_OBJECTS (BUILD_BYTES / 32)

/* The objects of a build, in a large block (its own mapping). */
typedef struct {
    void **v;
    size_t n;
} build_t;

static unsigned next_rand(unsigned *x)
{
    *x = *x * 1103515245u + 12345u;
    return *x >> 16;
}

/* About `bytes` of small objects, 16..512 bytes, each stamped. */
static build_t build(size_t bytes, unsigned seed)
{
    build_t b = { ebb_malloc(MAX_OBJECTS * sizeof(void *)), 0 };
    size_t total = 0;
    while (total < bytes && b.n < MAX_OBJECTS) {
        size_t size = 16 + (next_rand(&seed) % 32) * 16;
        unsigned char *p = ebb_malloc(size);
        if (p == NULL)
            break;
        memset(p, (int)(b.n & 0xff), size);
        b.v[b.n++] = p;
        total += size;
    }
    return b;
}

static int intact(const build_t *b, size_t i)
{
    const unsigned char *p = b->v[i];
    size_t size = ebb_usable_size(p);
    for (size_t k = 0; k < size && k < 16; k++)
        if (p[k] != (unsigned char)(i & 0xff))
            return 0;
    return 1;
}

/* Free all but one object in `keep` (keep 0: free all); the survivors'
 * floor: one page each, as they are far apart. */
static size_t free_all_but(build_t *b, size_t keep)
{
    size_t survivors = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (keep && i % keep == 0) {
            survivors++;
            continue;
        }
        CHECK(intact(b, i), "object %zu corrupted before its free", i);
        ebb_free(b->v[i]);
        b->v[i] = NULL;
    }
    return survivors * 4096;
}

static void check_survivors(const build_t *b, size_t keep)
{
    for (size_t i = 0; i < b->n; i += keep)
        CHECK(b->v[i] && intact(b, i), "survivor %zu corrupted", i);
}

static void release(build_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        ebb_free(b->v[i]);
    ebb_free(b->v);
    b->v = NULL;
}

/* Survivors: 1 in 128 objects (of 16..512 bytes), so every pool keeps a
 * few: releasing whole empty pools or arenas gives back nothing, releasing
 * free pages gives back about 7/8 of the build. */
#define KEEP 128
#define SLACK ((size_t)12 << 20)

static void scenario_free_all(void)
{
    size_t base = rss();
    build_t b = build(BUILD_BYTES, 1);
    CHECK(rss() > base + BUILD_BYTES / 2, "the build is resident (%zu)", rss());
    free_all_but(&b, 0);
    ebb_free(b.v);
    long t = wait_rss_below(base + SLACK, WAIT_MS);
    CHECK(t >= 0, "RSS %zu MiB after %d s, base %zu MiB", rss() >> 20, WAIT_MS / 1000,
          base >> 20);
    printf("free_all: back to base + 12 MiB in %ld ms\n", t);
}

/* Surplus (core/demand.c): with a purge delay of two seconds, a build the
 * program made more than a delay ago and now frees (but for scattered
 * survivors, so only pages inside pools can go) is given back within
 * SURPLUS_WAIT_MS, well before the delay; with EBB_PURGE_SURPLUS=0 it waits
 * the delay.  Run with EBB_PURGE_DELAY_MS=SURPLUS_DELAY_MS. */
#define SURPLUS_DELAY_MS 2000
#define SURPLUS_WAIT_MS 1500

/* Build, let the build leave the demand window, free all but survivors;
 * the bound RSS must reach. */
static size_t surplus_setup(build_t *b, unsigned seed)
{
    size_t base = rss();
    *b = build(BUILD_BYTES, seed);
    sleep_ms(SURPLUS_DELAY_MS + SURPLUS_DELAY_MS / 4);
    size_t floor = free_all_but(b, KEEP);
    return base + b->n * sizeof(void *) + 2 * floor + SLACK;
}

static void scenario_surplus_survivors(void)
{
    build_t b;
    size_t bound = surplus_setup(&b, 6);
    long t = wait_rss_below(bound, SURPLUS_WAIT_MS);
    CHECK(t >= 0, "RSS %zu MiB after %d ms with a %d ms delay, bound %zu MiB", rss() >> 20,
          SURPLUS_WAIT_MS, SURPLUS_DELAY_MS, bound >> 20);
    check_survivors(&b, KEEP);
    printf("surplus_survivors: RSS %zu MiB (bound %zu) in %ld ms (delay %d ms)\n", rss() >> 20,
           bound >> 20, t, SURPLUS_DELAY_MS);
    release(&b);
}

/* The control: with EBB_PURGE_SURPLUS=0 the same free waits the delay. */
static void scenario_surplus_off_waits(void)
{
    build_t b;
    surplus_setup(&b, 6);
    size_t freed = rss();
    sleep_ms(SURPLUS_WAIT_MS);
    CHECK(rss() + BUILD_BYTES / 8 > freed, "RSS %zu MiB %d ms after the free, %zu MiB at the "
          "free: given back before the %d ms delay with the surplus rule off", rss() >> 20,
          SURPLUS_WAIT_MS, freed >> 20, SURPLUS_DELAY_MS);
    check_survivors(&b, KEEP);
    release(&b);
}

/* What the program reuses is not surplus: rounds of build and free, each
 * taking what the last freed, purge (almost) nothing while they run. */
static void scenario_reuse_is_not_surplus(void)
{
    ebb_stats_t s0, s1;
    ebb_stats(&s0);
    for (unsigned round = 0; round < 6; round++) {
        build_t b = build(BUILD_BYTES / 2, 7 + round);
        free_all_but(&b, 0);
        ebb_free(b.v);
    }
    ebb_stats(&s1);
    CHECK(s1.purged - s0.purged < BUILD_BYTES / 16,
          "%zu MiB purged during rounds that reuse all of it", (s1.purged - s0.purged) >> 20);
    printf("reuse_is_not_surplus: %zu KiB purged in 6 rounds of %zu MiB\n",
           (s1.purged - s0.purged) >> 10, (BUILD_BYTES / 2) >> 20);
}

static void scenario_survivors(void)
{
    size_t base = rss();
    build_t b = build(BUILD_BYTES, 2);
    size_t built = rss();
    size_t floor = free_all_but(&b, KEEP);
    size_t bound = base + b.n * sizeof(void *) + 2 * floor + SLACK;
    long t = wait_rss_below(bound, WAIT_MS);
    CHECK(t >= 0, "RSS %zu MiB after %d s; built %zu MiB, bound %zu MiB", rss() >> 20,
          WAIT_MS / 1000, built >> 20, bound >> 20);
    check_survivors(&b, KEEP);
    printf("survivors: RSS %zu MiB (bound %zu) in %ld ms\n", rss() >> 20, bound >> 20, t);
    release(&b);
}

/* The thread that built and freed blocks on a pipe, the others sleep: the
 * whole process is idle and never calls the allocator, yet RSS falls. */
/* Cached blocks: the teardown frees in a scattered order, so the blocks
 * left in this thread's cache when it ends (up to 128 of each class) sit in
 * as many pools and pin a page each, about 10 MiB for this build.  The
 * thread then only computes lightly, on its cache's fast paths; the purger
 * must get those blocks back (it pokes the thread) and purge their pages. */
static void scenario_cache_pins(void)
{
    size_t base = rss();
    build_t b = build(BUILD_BYTES, 7);
    for (size_t i = 0, j = 0; i < b.n; i++, j = (j + 7919) % b.n) {
        ebb_free(b.v[j]); /* 7919 is prime and does not divide n: a permutation */
        b.v[j] = NULL;
    }
    CHECK(b.n % 7919 != 0, "the stride must not divide %zu", b.n);
    ebb_free(b.v);
    unsigned seed = 3;
    long t = -1;
    for (long ms = 0; ms <= WAIT_MS; ms += 5) {
        if (rss() <= base + ((size_t)4 << 20)) {
            t = ms;
            break;
        }
        void *light[16];
        for (int k = 0; k < 16; k++)
            light[k] = ebb_malloc(16 + (next_rand(&seed) % 32) * 16);
        for (int k = 0; k < 16; k++)
            ebb_free(light[k]);
        sleep_ms(5);
    }
    CHECK(t >= 0, "RSS %zu MiB after %d s of light work, base %zu MiB", rss() >> 20,
          WAIT_MS / 1000, base >> 20);
    printf("cache_pins: back to base + 4 MiB in %ld ms\n", t);
}

static int to_main[2], to_builder[2];

static void *build_then_block(void *arg)
{
    build_t *b = arg;
    *b = build(BUILD_BYTES, 3);
    free_all_but(b, KEEP);
    char c;
    write(to_main[1], "b", 1); /* built and freed */
    while (read(to_builder[0], &c, 1) != 1 || c != 'q') {
    }
    return NULL;
}

static void scenario_idle_thread(void)
{
    size_t base = rss();
    build_t b;
    pthread_t t;
    CHECK(pipe(to_main) == 0 && pipe(to_builder) == 0, "pipe");
    /* The builder says 'b' when done, then waits for a 'q'. */
    pthread_create(&t, NULL, build_then_block, &b);
    char c = 0;
    while (c != 'b')
        read(to_main[0], &c, 1);
    size_t bound = base + b.n * sizeof(void *) + 2 * (b.n / KEEP + 1) * 4096 + SLACK;
    long ms = wait_rss_below(bound, WAIT_MS);
    CHECK(ms >= 0, "idle: RSS %zu MiB after %d s, bound %zu MiB", rss() >> 20, WAIT_MS / 1000,
          bound >> 20);
    printf("idle_thread: RSS %zu MiB (bound %zu) in %ld ms\n", rss() >> 20, bound >> 20, ms);
    write(to_builder[1], "q", 1);
    pthread_join(t, NULL);
    check_survivors(&b, KEEP);
    release(&b);
}

/* Threads allocate, hand half their blocks to a neighbour to free, and
 * exit; then the process sleeps. */
#define WORKERS 4
typedef struct {
    unsigned id;
    build_t mine;
    build_t *neighbour;
    pthread_barrier_t *bar;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    w->mine = build(BUILD_BYTES / WORKERS, 10 + w->id);
    pthread_barrier_wait(w->bar);
    /* Free the even objects of the neighbour's build, the odd of our own. */
    for (size_t i = 0; i < w->neighbour->n; i += 2) {
        ebb_free(w->neighbour->v[i]);
        w->neighbour->v[i] = NULL;
    }
    for (size_t i = 1; i < w->mine.n; i += 2) {
        ebb_free(w->mine.v[i]);
        w->mine.v[i] = NULL;
    }
    pthread_barrier_wait(w->bar);
    return NULL;
}

static void scenario_exited_threads(void)
{
    size_t base = rss();
    static worker_t w[WORKERS];
    pthread_t t[WORKERS];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, WORKERS);
    for (int i = 0; i < WORKERS; i++) {
        w[i].id = (unsigned)i;
        w[i].neighbour = &w[(i + 1) % WORKERS].mine;
        w[i].bar = &bar;
        pthread_create(&t[i], NULL, worker, &w[i]);
    }
    for (int i = 0; i < WORKERS; i++)
        pthread_join(t[i], NULL);
    size_t arrays = 0;
    for (int i = 0; i < WORKERS; i++)
        arrays += w[i].mine.n * sizeof(void *);
    long ms = wait_rss_below(base + arrays + SLACK, WAIT_MS);
    CHECK(ms >= 0, "exited: RSS %zu MiB after %d s, base %zu MiB", rss() >> 20, WAIT_MS / 1000,
          base >> 20);
    printf("exited_threads: back to base in %ld ms\n", ms);
    for (int i = 0; i < WORKERS; i++)
        ebb_free(w[i].mine.v);
}

static void *collect_thread(void *arg)
{
    (void)arg;
    ebb_collect(0);
    return NULL;
}

/* EBB_PURGE_DELAY_MS=-1: nothing goes back on its own; ebb_collect called
 * by another thread gives back this thread's heap. */
static void scenario_never_then_collect(void)
{
    size_t base = rss();
    build_t b = build(BUILD_BYTES, 4);
    size_t floor = free_all_but(&b, KEEP);
    /* A chance for a purge that must not happen: a slow machine can only
     * hide that fault here, never invent one. */
    sleep_ms(400);
    size_t kept = rss();
    CHECK(kept > base + BUILD_BYTES / 2, "delay -1 purged on its own: RSS %zu MiB", kept >> 20);
    ebb_stats_t s;
    ebb_stats(&s);
    CHECK(s.purged == 0, "delay -1 purged %zu bytes on its own", s.purged);
    pthread_t t;
    pthread_create(&t, NULL, collect_thread, NULL);
    pthread_join(t, NULL);
    size_t bound = base + b.n * sizeof(void *) + 2 * floor + SLACK;
    CHECK(rss() <= bound, "after ebb_collect from another thread: RSS %zu MiB, bound %zu MiB",
          rss() >> 20, bound >> 20);
    ebb_stats(&s);
    CHECK(s.purged > BUILD_BYTES / 2, "purged counter %zu", s.purged);
    /* committed counts the untouched tail of the large array as well */
    CHECK(s.committed <= rss() + MAX_OBJECTS * sizeof(void *) + SLACK,
          "committed %zu MiB vs RSS %zu MiB", s.committed >> 20, rss() >> 20);
    CHECK(s.committed + SLACK >= rss() - base, "committed %zu MiB below RSS %zu MiB",
          s.committed >> 20, (rss() - base) >> 20);
    printf("never_then_collect: kept %zu MiB, then %zu MiB\n", kept >> 20, rss() >> 20);
    check_survivors(&b, KEEP);
    release(&b);
}

/* Delay 0: RSS falls as the frees happen, without waiting; nothing is
 * cached for large blocks. */
static void scenario_at_once(void)
{
    size_t base = rss();
    build_t b = build(BUILD_BYTES, 5);
    size_t floor = free_all_but(&b, KEEP);
    size_t bound = base + b.n * sizeof(void *) + 2 * floor + SLACK;
    CHECK(rss() <= bound, "delay 0: RSS %zu MiB right after the frees, bound %zu MiB",
          rss() >> 20, bound >> 20);
    void *big = ebb_malloc(8 << 20);
    memset(big, 1, 8 << 20);
    ebb_free(big);
    ebb_stats_t s;
    ebb_stats(&s);
    CHECK(s.mapped_large_cached == 0, "delay 0 cached %zu bytes of large blocks",
          s.mapped_large_cached);
    check_survivors(&b, KEEP);
    release(&b);
}

/* MADV_FREE: pages are handed to the kernel (counted as purged), RSS may
 * stay until the kernel needs memory; reuse must read what it writes. */
static void scenario_lazy_mode(void)
{
    build_t b = build(BUILD_BYTES / 4, 6);
    free_all_but(&b, KEEP);
    ebb_collect(0);
    ebb_stats_t s;
    ebb_stats(&s);
    CHECK(s.purged > BUILD_BYTES / 8, "MADV_FREE mode purged only %zu bytes", s.purged);
    build_t again = build(BUILD_BYTES / 4, 7);
    for (size_t i = 0; i < again.n; i++)
        CHECK(intact(&again, i), "object %zu reads wrong after reuse", i);
    for (size_t i = 0; i < 1000; i++) {
        unsigned char *z = ebb_calloc(1, 16 + (i % 32) * 16);
        for (size_t k = 0; k < 16; k++)
            CHECK(z[k] == 0, "calloc after MADV_FREE not zero");
        ebb_free(z);
    }
    release(&again);
    check_survivors(&b, KEEP);
    release(&b);
}

/* Purged memory handed out again: a purged page reads as zeros under the
 * allocator, and writes to reused blocks stick. */
static void scenario_reuse(void)
{
    for (int round = 0; round < 3; round++) {
        build_t b = build(BUILD_BYTES / 4, 20 + (unsigned)round);
        free_all_but(&b, KEEP);
        ebb_collect(0);
        CHECK(ebb_check() == 0, "ebb_check after purge");
        build_t again = build(BUILD_BYTES / 4, 30 + (unsigned)round);
        for (size_t i = 0; i < again.n; i++)
            CHECK(intact(&again, i), "round %d: object %zu reads wrong", round, i);
        release(&again);
        check_survivors(&b, KEEP);
        release(&b);
    }
}

/* Fork after a purge: the child reuses purged memory, frees, and its own
 * purger (started on demand) gives it back. */
static void scenario_fork_after_purge(void)
{
    build_t b = build(BUILD_BYTES / 2, 8);
    free_all_but(&b, KEEP);
    ebb_collect(0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        size_t base = rss();
        build_t c = build(BUILD_BYTES / 2, 9);
        for (size_t i = 0; i < c.n; i++)
            if (!intact(&c, i))
                _exit(3);
        check_survivors(&b, KEEP);
        free_all_but(&c, 0);
        ebb_free(c.v);
        if (wait_rss_below(base + SLACK, WAIT_MS) < 0)
            _exit(4);
        _exit(faults || ebb_check() != 0 ? 5 : 0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork child status %d", st);
    check_survivors(&b, KEEP);
    release(&b);
}

/* Threads churn with cross-thread frees while the purger runs every
 * millisecond and another thread calls ebb_collect in a loop. */
#define CHURNERS 3
#define SLOTS 20000
static void *volatile shared[SLOTS];
static _Atomic int stop;

static void *churn(void *arg)
{
    unsigned x = (unsigned)(uintptr_t)arg;
    while (!stop) {
        size_t i = next_rand(&x) % SLOTS;
        size_t size = 16 + next_rand(&x) % 2000;
        unsigned char *p = ebb_malloc(size);
        memset(p, (int)(size & 0xff), size);
        p = __atomic_exchange_n(&shared[i], p, __ATOMIC_ACQ_REL);
        if (p) {
            size_t n = ebb_usable_size(p);
            unsigned char want = p[0];
            for (size_t k = 0; k < 16 && k < n; k++)
                if (p[k] != want)
                    faults++;
            ebb_free(p);
        }
    }
    return NULL;
}

static void *collector(void *arg)
{
    (void)arg;
    while (!stop) {
        ebb_collect(0);
        sleep_ms(2);
    }
    return NULL;
}

static void scenario_race(void)
{
    pthread_t t[CHURNERS + 1];
    for (int i = 0; i < CHURNERS; i++)
        pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1));
    pthread_create(&t[CHURNERS], NULL, collector, NULL);
    /* A second and a half of racing at least, and until a purge happened
     * (the collector purges every few ms, the purger every ms). */
    ebb_stats_t s;
    long ms = 0;
    do {
        sleep_ms(10);
        ms += 10;
        ebb_stats(&s);
    } while ((ms < 1500 || s.purges == 0) && ms < WAIT_MS);
    stop = 1;
    for (int i = 0; i <= CHURNERS; i++)
        pthread_join(t[i], NULL);
    for (size_t i = 0; i < SLOTS; i++)
        ebb_free(shared[i]);
    CHECK(s.purges > 0, "no purge happened in %d s of racing", WAIT_MS / 1000);
    CHECK(ebb_check() == 0, "ebb_check after the race");
}

static void scenario_large_expiry(void)
{
    void *p = ebb_malloc(4 << 20);
    memset(p, 1, 4 << 20);
    ebb_free(p);
    ebb_stats_t s;
    ebb_stats(&s);
    CHECK(s.mapped_large_cached == (4 << 20), "freed large block cached (%zu)",
          s.mapped_large_cached);
    /* The delay is 100 ms: the purger drops it then, or soon after. */
    for (long ms = 0; s.mapped_large_cached != 0 && ms < WAIT_MS; ms += 10) {
        sleep_ms(10);
        ebb_stats(&s);
    }
    CHECK(s.mapped_large_cached == 0, "cached large block still there after %d s (%zu)",
          WAIT_MS / 1000, s.mapped_large_cached);
}

/* A large block the cache cannot serve (here: aligned beyond a page, so it
 * gets a mapping of its own) is mapped only after the cache has given back
 * what it holds beyond the waiting budget, as much as the new block: freed
 * memory waiting for the clock (60 s here) does not add to the peak.  The
 * cached blocks that stay still serve. */
static void scenario_no_growth_while_cached(void)
{
    enum { N = 4, MIB = 1 << 20 };
    void *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = ebb_malloc(16 * MIB);
        memset(v[i], i + 1, 16 * MIB);
    }
    for (int i = 0; i < N; i++)
        ebb_free(v[i]);
    ebb_stats_t s0, s1, s2;
    ebb_stats(&s0);
    CHECK(s0.mapped_large_cached == (size_t)N * 16 * MIB, "the freed blocks are cached (%zu MiB)",
          s0.mapped_large_cached / MIB);
    void *big = ebb_memalign(4 * MIB, 32 * MIB);
    CHECK(big != NULL, "the aligned block");
    memset(big, 9, 32 * MIB);
    ebb_stats(&s1);
    CHECK(s1.committed <= s0.committed + 4 * MIB,
          "committed grew %zu MiB while %zu MiB waited in the cache",
          (s1.committed - s0.committed) / MIB, s0.mapped_large_cached / MIB);
    CHECK(s1.mapped_large_cached >= 24 * MIB && s1.mapped_large_cached <= 32 * MIB,
          "the cache kept what the new block did not need (%zu MiB)", s1.mapped_large_cached / MIB);
    void *again = ebb_malloc(16 * MIB);
    ebb_stats(&s2);
    CHECK(s2.mapped_large_cached + 16 * MIB == s1.mapped_large_cached,
          "a kept block serves the next request (%zu MiB cached)", s2.mapped_large_cached / MIB);
    printf("no_growth_while_cached: committed %+ld KiB for a 32 MiB block, %zu MiB cached\n",
           ((long)s1.committed - (long)s0.committed) / 1024, s1.mapped_large_cached / MIB);
    ebb_free(again);
    ebb_free(big);
}

/* main leaves with pthread_exit while purgeable memory waits: the process
 * must end when its last thread does, not when the purger is done. */
static void *short_worker(void *arg)
{
    (void)arg;
    build_t b = build(BUILD_BYTES / 8, 40);
    free_all_but(&b, KEEP);
    return NULL;
}

static void scenario_main_pthread_exit(void)
{
    build_t b = build(BUILD_BYTES / 8, 41);
    free_all_but(&b, KEEP);
    pthread_t t;
    pthread_create(&t, NULL, short_worker, NULL);
    fflush(stdout);
    pthread_exit(NULL);
}

static const struct {
    const char *name;
    void (*run)(void);
} scenarios[] = {
    { "main_pthread_exit", scenario_main_pthread_exit },
    { "free_all", scenario_free_all },
    { "surplus_survivors", scenario_surplus_survivors },
    { "surplus_off_waits", scenario_surplus_off_waits },
    { "reuse_is_not_surplus", scenario_reuse_is_not_surplus },
    { "survivors", scenario_survivors },
    { "cache_pins", scenario_cache_pins },
    { "idle_thread", scenario_idle_thread },
    { "exited_threads", scenario_exited_threads },
    { "never_then_collect", scenario_never_then_collect },
    { "at_once", scenario_at_once },
    { "lazy_mode", scenario_lazy_mode },
    { "reuse", scenario_reuse },
    { "fork_after_purge", scenario_fork_after_purge },
    { "race", scenario_race },
    { "large_expiry", scenario_large_expiry },
    { "no_growth_while_cached", scenario_no_growth_while_cached },
};

static int child(const char *name)
{
    alarm(150); /* a hang is a failure, not a stuck test run (waits end at WAIT_MS) */
    const char *mb = getenv("EBB_TEST_MB");
    if (mb && atoi(mb) > 0)
        build_bytes = (size_t)atoi(mb) << 20;
    for (size_t i = 0; i < ARRAY_LEN(scenarios); i++) {
        if (!strcmp(scenarios[i].name, name)) {
            scenarios[i].run();
            CHECK(ebb_check() == 0, "ebb_check at the end");
            fflush(stdout);
            return faults ? 1 : 0;
        }
    }
    printf("no scenario %s\n", name);
    return 2;
}

/* ---------------------------------------------------------------- parent */

static char out[16384];

/* Run scenario `name` in a child with the given settings (VAR=VALUE, or
 * NULL for none), waiting for its end at most timeout_ms: its wait status,
 * or CHILD_TIMED_OUT; its output is in `out`. */
static int run_within(const char *name, const char *env1, const char *env2, long timeout_ms)
{
    static char scale[64];
    const char *mb = getenv("EBB_TEST_MB");
    snprintf(scale, sizeof scale, "EBB_TEST_MB=%s", mb ? mb : "");
    const char *env[] = { scale, env1, env2 };
    int st = child_run_env_within(name, env, ARRAY_LEN(env), out, sizeof out, timeout_ms);
    print_message("%s [%s %s]: %s", name, env1 ? env1 : "", env2 ? env2 : "", out);
    return st;
}

/* The same, failing the test with its output unless it passed. */
static void run(const char *name, const char *env1, const char *env2)
{
    int st = run_within(name, env1, env2, CHILD_HANG_MS);
    EXPECT(child_exited(st, 0), "scenario %s failed (status %d):\n%s", name, st, out);
}

static void test_free_all_default_delay(void **s) { (void)s; run("free_all", NULL, NULL); }
static void test_free_all_short_delay(void **s) { (void)s; run("free_all", "EBB_PURGE_DELAY_MS=10", NULL); }
static void test_survivors(void **s) { (void)s; run("survivors", NULL, NULL); }
static void test_surplus_survivors(void **s) { (void)s; run("surplus_survivors", "EBB_PURGE_DELAY_MS=2000", NULL); }
static void test_surplus_off_waits(void **s) { (void)s; run("surplus_off_waits", "EBB_PURGE_DELAY_MS=2000", "EBB_PURGE_SURPLUS=0"); }
static void test_reuse_is_not_surplus(void **s) { (void)s; run("reuse_is_not_surplus", "EBB_PURGE_DELAY_MS=60000", NULL); }
static void test_cache_pins(void **s) { (void)s; run("cache_pins", NULL, NULL); }
static void test_survivors_at_once(void **s) { (void)s; run("at_once", "EBB_PURGE_DELAY_MS=0", NULL); }
static void test_idle_thread(void **s) { (void)s; run("idle_thread", NULL, NULL); }
static void test_exited_threads(void **s) { (void)s; run("exited_threads", NULL, NULL); }
static void test_never_then_collect(void **s) { (void)s; run("never_then_collect", "EBB_PURGE_DELAY_MS=-1", NULL); }
static void test_dontneed_mode(void **s) { (void)s; run("survivors", "EBB_PURGE_MODE=dontneed", NULL); }
static void test_lazy_mode(void **s) { (void)s; run("lazy_mode", "EBB_PURGE_MODE=free", NULL); }
static void test_reuse(void **s) { (void)s; run("reuse", NULL, NULL); }
static void test_reuse_lazy(void **s) { (void)s; run("reuse", "EBB_PURGE_MODE=free", NULL); }
static void test_fork_after_purge(void **s) { (void)s; run("fork_after_purge", NULL, NULL); }
static void test_race(void **s) { (void)s; run("race", "EBB_PURGE_DELAY_MS=1", NULL); }
static void test_race_at_once(void **s) { (void)s; run("race", "EBB_PURGE_DELAY_MS=0", NULL); }
/* main leaves with pthread_exit while purges wait for a ten-minute delay:
 * the process ends soon (the purger looks for being alone at least every
 * EBB_PURGE_MAX_SLEEP_MS), while a purger that kept it alive would keep it
 * for the whole delay; the test waits for the end, for at most 30 s. */
static void test_purger_never_keeps_a_process_alive(void **s)
{
    (void)s;
    /* LeakSanitizer counts what glibc keeps for a main thread that leaves
     * with pthread_exit (32 bytes) as a leak: not ours, so not checked. */
    int st = run_within("main_pthread_exit", "EBB_PURGE_DELAY_MS=600000",
                        "ASAN_OPTIONS=detect_leaks=0", 30 * 1000L);
    EXPECT(st != CHILD_TIMED_OUT,
           "the process still ran 30 s after its threads were gone (killed):\n%s", out);
    EXPECT(child_exited(st, 0), "scenario main_pthread_exit failed (status %d):\n%s", st, out);
}

static void test_large_expiry(void **s) { (void)s; run("large_expiry", "EBB_PURGE_DELAY_MS=100", "EBB_LARGE_CACHE=64M"); }
static void test_no_growth_while_cached(void **s) { (void)s; run("no_growth_while_cached", "EBB_PURGE_DELAY_MS=60000", "EBB_LARGE_CACHE=256M"); }

CHILD_TEST_MAIN("purge", child,
                T(test_free_all_default_delay), T(test_free_all_short_delay), T(test_survivors),
                T(test_cache_pins), T(test_survivors_at_once), T(test_idle_thread),
                T(test_exited_threads), T(test_never_then_collect), T(test_dontneed_mode),
                T(test_lazy_mode), T(test_reuse), T(test_reuse_lazy), T(test_fork_after_purge),
                T(test_race), T(test_race_at_once), T(test_large_expiry),
                T(test_purger_never_keeps_a_process_alive), T(test_surplus_survivors),
                T(test_surplus_off_waits), T(test_reuse_is_not_surplus),
                T(test_no_growth_while_cached))
