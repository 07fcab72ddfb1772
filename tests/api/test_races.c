/*
 * test_races.c -- ebb's introspection while other threads allocate, and
 * fork in the middle of it all.
 *
 * Four threads churn (mostly small blocks, some large ones, aligned ones,
 * realloc, and blocks handed between threads through shared slots, so many
 * frees are cross-thread); a fifth calls everything that reads or changes
 * the whole heap, over and over: ebb_stats, ebb_class_stats and their
 * extended forms, ebb_rss, ebb_report (text and JSON), ebb_check, ebb_collect, ebb_set_limit, ebb_sample_sites
 * and ebb_sample_stats; the main thread forks five times meanwhile, and each
 * child checks the heap it inherited, allocates, and checks again.
 *
 * What must hold:
 *   - ebb_check() returns 0 every time, while the churners push and pop on
 *     their caches (a check that read another thread's cache could see a
 *     stack's new top over a stale entry and report a block that had gone
 *     home: the EBB_DEBUG=2 build aborted on that, tests/api/test_fork.c);
 *   - the statistics stay sane (cached bytes within the bytes out), reports
 *     are written, blocks keep their contents;
 *   - each child passes ebb_check() and exits 0 within its timeout;
 *   - at the end, with the churners gone, everything they made is back:
 *     small bytes out (less the caller's cache) and large blocks at their
 *     start values.
 * The TSan stage (`make check-tsan`) runs this file: any data race inside
 * ebb (reading another thread's cache was one) fails it there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "purger_watch.h"

#define CHURNERS 4
#define FORKS 5
#define WSET 256
#define SLOTS 512
#define CHILD_TIMEOUT_MS 30000
#define WATCHDOG_S 300 /* the whole test: a deadlock fails it, not the run */

/* Operations per churner; EBB_TEST_OPS overrides (the TSan stage runs
 * about 5 to 15 times slower). */
static long ops_per_churner(void)
{
    const char *e = getenv("EBB_TEST_OPS");
    long n = e && *e ? strtol(e, NULL, 10) : 0;
    return n > 0 ? n : 150000;
}

static uint64_t rng(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ull;
    uint64_t x = *s;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static _Atomic(unsigned char *) slots[SLOTS];
static atomic_long done_ops, faults, stop_inspector, inspections;

/* Failures inside threads are counted and told on stderr; the test fails
 * on the count (cmocka's checks may only run on the main thread). */
static void bad(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    atomic_fetch_add(&faults, 1);
    fprintf(stderr, "test_races: %s\n", buf);
}

/* A block's first and last byte hold a tag from its address. */
static unsigned char tag_of(const void *p)
{
    return (unsigned char)(((uintptr_t)p >> 4) * 131u + 7u);
}

static unsigned char *fresh(uint64_t *s)
{
    uint64_t r = rng(s);
    size_t n;
    unsigned pick = (unsigned)(r % 1000);
    if (pick < 800)
        n = 1 + (size_t)(r >> 10) % 512;
    else if (pick < 980)
        n = 513 + (size_t)(r >> 10) % (32 * KiB);
    else if (pick < 995)
        n = 33 * KiB + (size_t)(r >> 10) % (96 * KiB);
    else
        n = 200 * KiB + (size_t)(r >> 10) % (800 * KiB); /* large */
    unsigned char *p = (r >> 40) % 8 == 0 ? ebb_aligned_alloc((size_t)64 << ((r >> 50) % 6), n)
                                          : ebb_malloc(n);
    if (p == NULL) {
        bad("allocation of %zu bytes failed (errno %d)", n, errno);
        return NULL;
    }
    size_t u = ebb_usable_size(p);
    p[0] = p[u - 1] = tag_of(p);
    return p;
}

static int intact(const unsigned char *p)
{
    size_t u = ebb_usable_size(p);
    return u > 0 && p[0] == tag_of(p) && p[u - 1] == tag_of(p);
}

static void release(unsigned char *p, const char *where)
{
    if (p == NULL)
        return;
    if (!intact(p)) {
        bad("%s: block %p lost its contents", where, (void *)p);
        return; /* leaked rather than freed corrupted */
    }
    ebb_free(p);
}

/* The word free writes into a block's second word (core/freed.c).  A
 * program can hold it in a live block without ever reading freed memory:
 * realloc copies whatever a block's unwritten bytes held, and ebb's own
 * marks are among them (seen: a sampled block's stale word moved into a
 * small block by realloc, then freed).  The freeing thread must then look
 * for the block in other threads' caches while they push and pop, and find
 * it nowhere.  Off in the first test. */
extern uintptr_t ebb__freed_key;
static atomic_int stamp_marks;

static void stamp_mark(unsigned char *p)
{
    if (atomic_load_explicit(&stamp_marks, memory_order_relaxed) && ebb_usable_size(p) >= 32) {
        uintptr_t key = ebb__freed_key;
        memcpy(p + sizeof key, &key, sizeof key);
    }
}

/* Churners pause now and then (test_caches_taken_from_pausing_threads),
 * and count themselves out when they end. */
static atomic_int pausing, churners_done;

static void pause_ms(unsigned ms)
{
    struct timespec ts = { 0, (long)ms * 1000000L };
    nanosleep(&ts, NULL);
}

static void *churner(void *arg)
{
    uint64_t s = 0x5eed0000u + (uintptr_t)arg;
    unsigned char *ws[WSET] = { 0 };
    long ops = ops_per_churner();
    /* The budget of operations, and on until the inspector has made as
     * many rounds as there are forks: a slow inspection (a full report
     * reads /proc under TSan) must still overlap the churn, whatever the
     * machine's speed (the watchdog bounds the whole). */
    for (long op = 0; op < ops || atomic_load(&inspections) < FORKS; op++) {
        uint64_t r = rng(&s);
        unsigned j = (unsigned)(r % WSET), act = (unsigned)(r >> 16) % 8;
        if (ws[j] == NULL) {
            ws[j] = fresh(&s);
        } else if (act < 2) { /* hand it over; free what was there */
            release(atomic_exchange(&slots[(r >> 24) % SLOTS], ws[j]), "cross-thread free");
            ws[j] = NULL;
        } else if (act < 3 && atomic_load_explicit(&stamp_marks, memory_order_relaxed)) {
            stamp_mark(ws[j]); /* then freed by another thread, or this one */
            release(atomic_exchange(&slots[(r >> 24) % SLOTS], ws[j]), "cross-thread free");
            ws[j] = NULL;
        } else if (act < 3) { /* realloc keeps the head */
            unsigned char head = ws[j][0];
            size_t n = 1 + (size_t)(r >> 32) % (8 * KiB);
            unsigned char *q = ebb_realloc(ws[j], n);
            if (q == NULL) {
                bad("realloc to %zu failed", n);
                continue;
            }
            if (q[0] != head)
                bad("realloc %p -> %p lost the head", (void *)ws[j], (void *)q);
            q[0] = q[ebb_usable_size(q) - 1] = tag_of(q);
            ws[j] = q;
        } else {
            if (act == 7)
                stamp_mark(ws[j]);
            release(ws[j], "free");
            ws[j] = NULL;
        }
        if (op % 1024 == 0)
            atomic_fetch_add_explicit(&done_ops, 1024, memory_order_relaxed);
        if (op % 1024 == 1023 && atomic_load_explicit(&pausing, memory_order_relaxed))
            pause_ms((unsigned)(r >> 8) % 25); /* idle, holding its cache */
    }
    for (unsigned j = 0; j < WSET; j++)
        release(ws[j], "churner exit");
    atomic_fetch_add(&churners_done, 1);
    return NULL;
}

/* Everything that reads or changes the whole heap, in a loop. */
static void *inspector(void *arg)
{
    (void)arg;
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    ebb_class_stats_t cls[128];
    ebb_site_t sites[4];
    for (unsigned round = 0; !atomic_load(&stop_inspector); round++) {
        ebb_stats_t st;
        ebb_stats(&st);
        if (st.small_cached > st.small_used)
            bad("ebb_stats: small_cached %zu > small_used %zu", st.small_cached, st.small_used);
        size_t n = ebb_class_stats(cls, ARRAY_LEN(cls));
        if (n == 0 || n > ARRAY_LEN(cls))
            bad("ebb_class_stats gave %zu classes", n);
        ebb_stats_ex_t x;
        if (ebb_stats_ex(&x, sizeof x) != sizeof x || x.small_live > x.base.small_used)
            bad("ebb_stats_ex: small live %zu of %zu used", x.small_live, x.base.small_used);
        ebb_class_ex_t ex[128];
        if (ebb_class_stats_ex(ex, n, sizeof ex[0]) != n)
            bad("ebb_class_stats_ex disagrees on the number of classes");
        /* The walk of every mapping, with the churners at work: its parts
         * still add up (what changed meanwhile is `unaccounted`). */
        ebb_rss_t r;
        if (round % 4 == 0 && (ebb_rss(&r, sizeof r) != 0 ||
                               r.ebb != r.live_small + r.live_large + r.thread_caches +
                                            r.pool_free + r.pools_empty + r.free_slots +
                                            r.large_cached + r.metadata ||
                               (int64_t)(r.rss - r.ebb - r.other) != r.unaccounted))
            bad("ebb_rss: parts do not add up (ebb %llu, rss %llu)",
                (unsigned long long)r.ebb, (unsigned long long)r.rss);
        if (ebb_report(devnull, round % 2 ? EBB_REPORT_JSON : EBB_REPORT_TEXT) != 0)
            bad("ebb_report failed (errno %d)", errno);
        int f = ebb_check();
        if (f != 0)
            bad("ebb_check() = %d while other threads allocate", f);
        ebb_collect((int)(round % 2));
        ebb_set_limit(round % 3 ? (size_t)4 << 30 : 0); /* never binding */
        ebb_sample_sites(sites, ARRAY_LEN(sites));
        ebb_sample_stats_t ss;
        ebb_sample_stats(&ss);
        atomic_fetch_add(&inspections, 1);
    }
    ebb_set_limit(0);
    close(devnull);
    return NULL;
}

/* In a child of a fork taken mid-churn: the inherited heap is consistent,
 * serves new blocks, and is consistent again.  Exit code 0 when all held. */
static int child_body(void)
{
    if (ebb_check() != 0)
        return 2;
    uint64_t s = 77;
    unsigned char *keep[512];
    for (int i = 0; i < 512; i++)
        if ((keep[i] = fresh(&s)) == NULL)
            return 3;
    for (int i = 0; i < 512; i++) {
        if (!intact(keep[i]))
            return 4;
        ebb_free(keep[i]);
    }
    return ebb_check() == 0 ? 0 : 5;
}

static int wait_child(pid_t pid)
{
    int st = 0;
    for (int ms = 0; ms < CHILD_TIMEOUT_MS; ms++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0)
            return -1;
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -2;
}

static void on_watchdog(int sig)
{
    (void)sig;
    static const char msg[] = "test_races: no end in sight: a deadlock?\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(3);
}

static int libc_allocates_from_ebb(void)
{
    void *m = malloc(16);
    int ours = ebb_manages(m);
    free(m);
    return ours;
}

static void test_introspection_and_forks_during_churn(void **state)
{
    (void)state;
    signal(SIGALRM, on_watchdog);
    alarm(WATCHDOG_S);
    ebb_set_sample_rate(64 * KiB); /* samples, so there are sites to read */
    ebb_collect(1);
    ebb_stats_t s0;
    ebb_stats(&s0);
    size_t live0 = s0.small_used - s0.small_cached;
    atomic_store(&done_ops, 0);
    atomic_store(&faults, 0);
    atomic_store(&stop_inspector, 0);
    atomic_store(&inspections, 0);

    pthread_t t[CHURNERS], insp;
    for (uintptr_t i = 0; i < CHURNERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churner, (void *)i), 0);
    assert_int_equal(pthread_create(&insp, NULL, inspector, NULL), 0);

    long total = ops_per_churner() * CHURNERS;
    for (int k = 1; k <= FORKS; k++) {
        while (atomic_load(&done_ops) < total * k / (FORKS + 1))
            sched_yield();
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(child_body());
        int st = wait_child(pid);
        EXPECT(st >= 0, "fork %d: the child %s", k,
               st == -2 ? "did not exit within its timeout (a deadlock?)" : "was lost");
        EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork %d: child wait status %#x", k, st);
    }
    for (int i = 0; i < CHURNERS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    atomic_store(&stop_inspector, 1);
    assert_int_equal(pthread_join(insp, NULL), 0);
    for (size_t k = 0; k < SLOTS; k++)
        release(atomic_exchange(&slots[k], NULL), "drain");

    print_message("%ld operations, %ld rounds of inspection, %d forks\n",
                  (long)atomic_load(&done_ops), (long)atomic_load(&inspections), FORKS);
    EXPECT(atomic_load(&faults) == 0, "%ld failures in the threads (above)",
           (long)atomic_load(&faults));
    EXPECT(atomic_load(&inspections) >= FORKS, "only %ld rounds of inspection ran",
           (long)atomic_load(&inspections));
    EXPECT(ebb_check() == 0, "ebb_check after the churn");
    ebb_collect(1);
    ebb_stats_t s1;
    ebb_stats(&s1);
    /* Exact when the C library allocates elsewhere (the sanitizer builds).
     * Where ebb is its malloc too, glibc keeps a few hundred bytes per
     * cached thread stack (its TLS vector), and one of those may have been
     * sampled (a sampled block counts as a large one), where a churner's
     * leak would be its working set: hundreds of blocks. */
    int libc = libc_allocates_from_ebb();
    size_t live1 = s1.small_used - s1.small_cached, slack = libc ? 4 * KiB : 0;
    EXPECT(live1 <= live0 + slack && live1 + slack >= live0,
           "small bytes held by the program: %zu before, %zu after", live0, live1);
    size_t large_slack = libc ? 4 : 0;
    EXPECT(s1.large_blocks <= s0.large_blocks + large_slack &&
               s1.large_blocks + large_slack >= s0.large_blocks,
           "large blocks: %zu before, %zu after", s0.large_blocks, s1.large_blocks);
    ebb_set_sample_rate(512 * KiB);
    alarm(0);
}

/* Every fourth free is of a live block holding the freed mark, while the
 * other churners push, pop, refill and flush their caches: none of those
 * frees is taken for a double free (each would be counted as an error, and
 * by default abort), and no block is handed out twice (the churners check
 * every block's contents).  Under TSan (`make check-tsan`) the look into
 * other threads' caches must also be free of data races. */
/* Churners with no inspector, each stopping at its budget of operations
 * (seeds from seed0 on), under the watchdog. */
static void start_churners_alone(pthread_t t[CHURNERS], uintptr_t seed0)
{
    signal(SIGALRM, on_watchdog);
    alarm(WATCHDOG_S);
    atomic_store(&faults, 0);
    atomic_store(&inspections, FORKS);
    for (uintptr_t i = 0; i < CHURNERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churner, (void *)(seed0 + i)), 0);
}

static void test_frees_of_blocks_holding_the_mark_during_churn(void **state)
{
    (void)state;
    int was = ebb_on_error(EBB_ON_ERROR_WARN); /* a false report counts; it does not end the run */
    ebb_stats_t s0, s1;
    ebb_stats(&s0);
    atomic_store(&stamp_marks, 1);
    pthread_t t[CHURNERS];
    start_churners_alone(t, 100);
    for (int i = 0; i < CHURNERS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    atomic_store(&stamp_marks, 0);
    for (size_t k = 0; k < SLOTS; k++)
        release(atomic_exchange(&slots[k], NULL), "drain");
    ebb_stats(&s1);
    ebb_on_error(was);
    EXPECT(atomic_load(&faults) == 0, "%ld failures in the threads (above)",
           (long)atomic_load(&faults));
    EXPECT(s1.errors == s0.errors, "%zu frees of live blocks holding the mark were taken for "
                                   "double frees", s1.errors - s0.errors);
    alarm(0);
}

/* Churners that pause now and then, for up to 25 ms, while this thread
 * runs purge passes that poke every thread: a thread that leaves a poke
 * unanswered for EBB_TCACHE_IDLE_MS (10 ms) has its cached blocks taken by
 * the passing thread, and resumes on stacks its next call puts back
 * (core/thread.c, "Idle threads").  No block may be handed out twice or
 * lose its contents, and every check of the heap passes. */
extern unsigned long ebb__tcache_takes;

static void test_caches_taken_from_pausing_threads(void **state)
{
    (void)state;
    unsigned long takes0 = __atomic_load_n(&ebb__tcache_takes, __ATOMIC_RELAXED);
    atomic_store(&churners_done, 0);
    atomic_store(&pausing, 1);
    pthread_t t[CHURNERS];
    start_churners_alone(t, 200);
    int checks = 0, bad_checks = 0;
    while (atomic_load(&churners_done) < CHURNERS) {
        ebb_collect(0); /* a pass with a delay of 0: pokes, and takes what is due */
        if (++checks % 16 == 0 && ebb_check() != 0)
            bad_checks++;
        pause_ms(2);
    }
    for (int i = 0; i < CHURNERS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    atomic_store(&pausing, 0);
    for (size_t k = 0; k < SLOTS; k++)
        release(atomic_exchange(&slots[k], NULL), "drain");
    unsigned long takes = __atomic_load_n(&ebb__tcache_takes, __ATOMIC_RELAXED) - takes0;
    printf("pausing churners: %lu caches taken, %d passes\n", takes, checks);
    EXPECT(atomic_load(&faults) == 0, "%ld failures in the threads (above)",
           (long)atomic_load(&faults));
    EXPECT(bad_checks == 0, "ebb_check failed %d times", bad_checks);
    EXPECT(takes > 0, "no cache was taken from a pausing thread in %d passes", checks);
    alarm(0);
}

/* In a child of its own (a fresh purger state): purger_watch.h's scenario,
 * through the ebb_* API. */
static int joins_after_the_purger_went(void)
{
    return joins_as_the_purger_restarts(ebb_malloc, ebb_free);
}

static void test_purger_restart_from_a_join_that_frees_stacks(void **state)
{
    (void)state;
    /* A deadlocked child cannot be stopped by its own alarm: ebb starts
     * threads with every signal blocked.  The parent kills it. */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(joins_after_the_purger_went());
    int st = wait_child(pid);
    EXPECT(st != -2, "the joins never came back: a deadlock (the purger started from a free "
                     "inside glibc's stack cache?)");
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) != 2,
           "the stage was not set: the purger never started or never ended");
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child wait status %#x", st);
}

API_TEST_MAIN("races", T(test_introspection_and_forks_during_churn),
              T(test_frees_of_blocks_holding_the_mark_during_churn),
              T(test_caches_taken_from_pausing_threads),
              T(test_purger_restart_from_a_join_that_frees_stacks))
