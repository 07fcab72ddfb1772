/*
 * test_sample.c -- the sampling heap profiler through the public API: the
 * function that allocates most is the top site by live bytes, freeing its
 * blocks takes the site back to exactly 0, the estimates are within a
 * statistical bound of the truth, every allocation path is sampled (calloc,
 * realloc, the aligned ones, large blocks), sampled blocks behave like any
 * other (usable size, ebb_owns, ebb_manages, realloc both ways), threads,
 * sampling off, a stack hook that allocates, fork, and a full site table.
 *
 * Each allocating function lives in its own section, so a site's first
 * frame can be checked against the function's address range without any
 * symbol table.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ebb.h"
#include "api.h"

#define RATE 4096

/* A function in section NAME_text, with its bounds. */
#define IN_SECTION(name) __attribute__((noinline, section(#name "_text")))
#define BOUNDS(name) extern const char __start_##name##_text[], __stop_##name##_text[]
BOUNDS(hog);
BOUNDS(nibble);
BOUNDS(worker);
BOUNDS(various);
#define IN(name, pc) ((const char *)(pc) > __start_##name##_text && \
                      (const char *)(pc) <= __stop_##name##_text)

static ebb_site_t sites[64];

/* The site whose first frame is in [lo, hi), or NULL. */
static const ebb_site_t *site_in(const char *lo, const char *hi, size_t *rank)
{
    size_t n = ebb_sample_sites(sites, ARRAY_LEN(sites));
    for (size_t i = 0; i < n && i < ARRAY_LEN(sites); i++)
        if (sites[i].depth > 0 && (const char *)sites[i].pcs[0] > lo &&
            (const char *)sites[i].pcs[0] <= hi) {
            if (rank)
                *rank = i;
            return &sites[i];
        }
    return NULL;
}
#define SITE_OF(name, rank) site_in(__start_##name##_text, __stop_##name##_text, rank)

static uint64_t live_samples(void)
{
    ebb_sample_stats_t st;
    ebb_sample_stats(&st);
    return st.live;
}

static int setup(void **state)
{
    (void)state;
    ebb_set_sample_rate(RATE);
    ebb_set_stack_hook(NULL, NULL);
    return 0;
}

/* Within k standard deviations of the truth, for an estimate made of
 * about `samples` samples (relative error about 1/sqrt(samples)). */
static int near(double estimate, double truth, double samples, double k)
{
    double rel = (estimate - truth) / truth; /* |rel| <= k / sqrt(samples), no libm */
    return rel * rel * (samples > 1 ? samples : 1) <= k * k;
}

/* ------------------------------------------------------------ the hog */

#define HOG_N 20000
#define HOG_SIZE 256
#define NIBBLE_N 2000
#define NIBBLE_SIZE 64
static void *hogged[HOG_N], *nibbled[NIBBLE_N];

IN_SECTION(hog) static void hog(void)
{
    for (size_t i = 0; i < HOG_N; i++) {
        hogged[i] = ebb_malloc(HOG_SIZE);
        memset(hogged[i], 1, HOG_SIZE);
    }
}

IN_SECTION(nibble) static void nibble(void)
{
    for (size_t i = 0; i < NIBBLE_N; i++)
        nibbled[i] = ebb_malloc(NIBBLE_SIZE);
}

static void test_hog_is_the_top_site(void **state)
{
    (void)state;
    uint64_t before = live_samples();
    nibble();
    hog();
    size_t rank = 99;
    const ebb_site_t *s = SITE_OF(hog, &rank);
    EXPECT(s != NULL, "no site in hog() among %zu", ebb_sample_sites(NULL, 0));
    EXPECT(rank == 0, "hog() is site %zu, not the top one", rank);
    double truth = (double)HOG_N * HOG_SIZE;
    EXPECT(near((double)s->live_bytes, truth, (double)s->samples, 6),
           "hog live estimate %llu for %.0f bytes (%llu samples)",
           (unsigned long long)s->live_bytes, truth, (unsigned long long)s->samples);
    EXPECT(near((double)s->live_count, HOG_N, (double)s->samples, 6),
           "hog count estimate %llu for %d blocks", (unsigned long long)s->live_count, HOG_N);
    EXPECT(s->total_bytes >= s->live_bytes, "total below live");
    EXPECT(live_samples() - before >= s->samples, "live samples counted");

    for (size_t i = 0; i < HOG_N; i++)
        ebb_free(hogged[i]);
    s = SITE_OF(hog, NULL);
    EXPECT(s != NULL, "hog's site stays after its blocks are freed");
    EXPECT(s->live_bytes == 0 && s->live_count == 0 && s->samples == 0,
           "hog's live estimate after free: %llu bytes, %llu blocks",
           (unsigned long long)s->live_bytes, (unsigned long long)s->live_count);
    EXPECT(s->total_bytes > 0, "what hog allocated stays in its total");
    for (size_t i = 0; i < NIBBLE_N; i++)
        ebb_free(nibbled[i]);
    s = SITE_OF(nibble, NULL);
    EXPECT(s == NULL || s->samples == 0, "nibble's samples after free");
}

/* Many blocks of mixed sizes from one site: the estimate of bytes and of
 * blocks against the truth. */
#define MIX_N 60000
static void *mixed[MIX_N];

IN_SECTION(various) static void *various(size_t n, int how)
{
    void *p = NULL;
    switch (how) {
    case 0: p = ebb_malloc(n); break;
    case 1: p = ebb_calloc(1, n); break;
    case 2: p = ebb_aligned_alloc(64, n); break;
    case 3: p = ebb_memalign(4096, n); break;
    case 4: if (ebb_posix_memalign(&p, 256, n)) p = NULL; break;
    case 5: p = ebb_realloc(NULL, n); break;
    case 6: p = ebb_valloc(n); break;
    }
    return p; /* not a tail call: the return address stays in here */
}

static void test_estimate_within_bound(void **state)
{
    (void)state;
    uint64_t seed = 12345;
    double truth = 0;
    for (size_t i = 0; i < MIX_N; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t n = 16 + (size_t)((seed >> 33) % 1008);
        truth += (double)n;
        mixed[i] = various(n, 0);
        assert_non_null(mixed[i]);
    }
    const ebb_site_t *s = SITE_OF(various, NULL);
    EXPECT(s != NULL, "no site in various()");
    EXPECT(near((double)s->live_bytes, truth, (double)s->samples, 6),
           "estimate %llu for %.0f bytes (%llu samples)", (unsigned long long)s->live_bytes,
           truth, (unsigned long long)s->samples);
    EXPECT(near((double)s->live_count, MIX_N, (double)s->samples, 6),
           "estimate %llu for %d blocks", (unsigned long long)s->live_count, MIX_N);
    for (size_t i = 0; i < MIX_N; i++)
        ebb_free(mixed[i]);
    s = SITE_OF(various, NULL);
    EXPECT(s && s->live_bytes == 0 && s->samples == 0, "live after free");
}

/* Every allocation path is sampled: 64 KiB and above are sampled nearly
 * surely at this rate (p = 1 - exp(-16)); each comes back aligned, usable,
 * owned, and freed out of its site. */
static void test_every_path_is_sampled(void **state)
{
    (void)state;
    static const size_t align[] = { 16, 16, 64, 4096, 256, 16, 4096 };
    for (int how = 0; how < 7; how++) {
        for (int big = 0; big < 2; big++) {
            size_t n = big ? 300 * KiB : 64 * KiB;
            uint64_t before = live_samples();
            char *p = various(n, how);
            assert_non_null(p);
            EXPECT((uintptr_t)p % align[how] == 0, "path %d: %p misaligned", how, (void *)p);
            EXPECT(live_samples() == before + 1, "path %d, %zu bytes: not sampled", how, n);
            EXPECT(ebb_usable_size(p) >= n && ebb_owns(p) && ebb_manages(p), "path %d", how);
            if (how == 1)
                for (size_t i = 0; i < n; i += 512)
                    EXPECT(p[i] == 0, "calloc not zero at %zu", i);
            memset(p, 7, n);
            const ebb_site_t *s = SITE_OF(various, NULL);
            EXPECT(s && s->samples == 1 && s->live_bytes >= n, "path %d: its site", how);
            ebb_free(p);
            EXPECT(live_samples() == before, "path %d: freed sample stays", how);
        }
    }
}

/* A sampled small block is a large one underneath: it must act like any
 * small block, and realloc must carry or drop its sample correctly. */
static void test_sampled_small_blocks_behave(void **state)
{
    (void)state;
    uint64_t before = live_samples();
    ebb_set_sample_rate(1); /* every block is sampled */
    char *p = various(3000, 0);
    assert_non_null(p);
    EXPECT(live_samples() == before + 1, "a 3000-byte block at rate 1 is sampled");
    /* It answers as the pool block it stands in for would (class 3072). */
    EXPECT(ebb_usable_size(p) == 3072 && ebb_owns(p) && ebb_manages(p), "sampled small block");
    memcpy(p, "sampled block contents", 23);
    ebb_set_sample_rate(0);
    char *q = ebb_realloc(p, 3050); /* fits its usable size: stays, still sampled */
    EXPECT(q == p && live_samples() == before + 1, "in-place realloc keeps the sample");
    /* A quarter smaller than its page: moves into a pool, unsampled. */
    q = ebb_realloc(q, 40);
    EXPECT(live_samples() == before, "realloc out of the sample: %llu live",
           (unsigned long long)live_samples());
    EXPECT(memcmp(q, "sampled ", 8) == 0, "contents kept");
    EXPECT(ebb_usable_size(q) == 48, "in a pool now");
    ebb_free(q);

    /* A large sampled block resized by mremap: its old sample goes, the new
     * size is sampled afresh. */
    ebb_set_sample_rate(RATE);
    p = various(200 * KiB, 0);
    EXPECT(live_samples() == before + 1, "large block sampled");
    memset(p, 3, 200 * KiB);
    q = ebb_realloc(p, 4 * MiB);
    assert_non_null(q);
    EXPECT(q[200 * KiB - 1] == 3, "contents kept");
    EXPECT(live_samples() == before + 1, "resized block: one sample, %llu",
           (unsigned long long)(live_samples() - before));
    ebb_set_sample_rate(0);
    q = ebb_realloc(q, 1 * MiB); /* shrinks by mremap: unsampled now */
    EXPECT(live_samples() == before, "shrunk with sampling off: no sample");
    ebb_free(q);
    ebb_set_sample_rate(RATE);
}

static void test_sampling_off(void **state)
{
    (void)state;
    ebb_set_sample_rate(0);
    EXPECT(ebb_sample_rate() == 0, "rate reads back");
    ebb_sample_stats_t a, b;
    ebb_sample_stats(&a);
    for (int i = 0; i < 20000; i++)
        ebb_free(ebb_malloc(1000));
    void *big = ebb_malloc(10 * MiB);
    ebb_free(big);
    ebb_sample_stats(&b);
    EXPECT(a.samples == b.samples, "%llu samples taken with sampling off",
           (unsigned long long)(b.samples - a.samples));
    ebb_set_sample_rate(RATE);
    EXPECT(ebb_sample_rate() == RATE, "rate reads back");
}

/* While ebb starts a thread of its own (the purger), what the C library
 * allocates for it is ebb's: never sampled, and sampled again after. */
struct ebb__thread_s; /* core/thread.c's, seen from outside */
struct ebb__thread_s *ebb__thread_cache_pause(void);
void ebb__thread_cache_resume(struct ebb__thread_s *tc);

static void test_not_sampled_while_starting_own_thread(void **state)
{
    (void)state;
    ebb_sample_stats_t a, b, c;
    static void *blocks[2000];
    ebb_sample_stats(&a);
    struct ebb__thread_s *paused = ebb__thread_cache_pause();
    for (int i = 0; i < 2000; i++) /* 2 MB: about 500 samples' worth at RATE */
        blocks[i] = ebb_malloc(1000);
    ebb__thread_cache_resume(paused);
    ebb_sample_stats(&b);
    for (int i = 0; i < 2000; i++)
        ebb_free(blocks[i]);
    for (int i = 0; i < 2000; i++)
        blocks[i] = ebb_malloc(1000);
    ebb_sample_stats(&c);
    for (int i = 0; i < 2000; i++)
        ebb_free(blocks[i]);
    EXPECT(b.samples == a.samples, "%llu samples taken while paused",
           (unsigned long long)(b.samples - a.samples));
    EXPECT(c.samples > b.samples, "no sample after the pause ended");
}

/* A thread's first allocation makes its cache, and registering the cache's
 * exit hook makes glibc allocate a record: ebb's, not the program's, so
 * never sampled.  At a rate of one byte every allocation is sampled: the
 * thread's one block is the only sample.  (Sampled, the record stood at the
 * thread's site and was freed at its exit: one sample taken more than the
 * site held once in 30 runs of test_unwind's test_threads_share_a_site.) */
static pthread_barrier_t start_line;
static void *volatile first_block;

static void *first_allocation(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&start_line);
    first_block = ebb_malloc(2000);
    return NULL;
}

static void test_thread_start_is_not_sampled(void **state)
{
    (void)state;
    pthread_t t;
    ebb_sample_stats_t a, b;
    pthread_barrier_init(&start_line, NULL, 2);
    assert_int_equal(pthread_create(&t, NULL, first_allocation, NULL), 0);
    ebb_set_sample_rate(1);
    ebb_sample_stats(&a);
    pthread_barrier_wait(&start_line);
    pthread_join(t, NULL);
    ebb_sample_stats(&b);
    ebb_set_sample_rate(RATE);
    pthread_barrier_destroy(&start_line);
    ebb_free(first_block);
    EXPECT(b.samples - a.samples == 1, "%llu samples for the thread's one allocation",
           (unsigned long long)(b.samples - a.samples));
}

/* ------------------------------------------------------------ threads */

#define THREADS 4
#define PER_THREAD 8000
IN_SECTION(worker) static void worker_alloc(void **out)
{
    for (size_t i = 0; i < PER_THREAD; i++)
        out[i] = ebb_malloc(HOG_SIZE);
}

static void *thread_main(void *arg)
{
    worker_alloc(arg);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    static void *blocks[THREADS][PER_THREAD];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, blocks[i]), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    /* The threads are gone; their samples stay, all under one site. */
    size_t rank = 99;
    const ebb_site_t *s = SITE_OF(worker, &rank);
    EXPECT(s != NULL && rank == 0, "worker_alloc is the top site (rank %zu)", rank);
    double truth = (double)THREADS * PER_THREAD * HOG_SIZE;
    EXPECT(near((double)s->live_bytes, truth, (double)s->samples, 6),
           "threads' estimate %llu for %.0f", (unsigned long long)s->live_bytes, truth);
    /* Freed by another thread (this one). */
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < PER_THREAD; j++)
            ebb_free(blocks[i][j]);
    s = SITE_OF(worker, NULL);
    EXPECT(s && s->live_bytes == 0, "live after the frees");
}

/* --------------------------------------------------------- stack hook */

static int hook_calls;
static size_t fake_stack(char *buf, size_t size, void *arg)
{
    hook_calls++;
    /* A runtime's hook may allocate; those blocks are not sampled. */
    char *scratch = ebb_malloc(300 * KiB);
    assert_non_null(scratch);
    int n = snprintf(scratch, 300 * KiB, "%s:%d %s\n", (const char *)arg, 12 + (hook_calls & 1),
                     "hog");
    size_t len = (size_t)n < size ? (size_t)n : size;
    memcpy(buf, scratch, len);
    ebb_free(scratch);
    return len;
}

static void test_stack_hook(void **state)
{
    (void)state;
    ebb_sample_stats_t a, b;
    ebb_sample_stats(&a);
    hook_calls = 0;
    ebb_set_stack_hook(fake_stack, "fake.py");
    hog();
    ebb_set_stack_hook(NULL, NULL);
    ebb_sample_stats(&b);
    EXPECT(hook_calls > 0 && (uint64_t)hook_calls == b.samples - a.samples,
           "hook called %d times for %llu samples", hook_calls,
           (unsigned long long)(b.samples - a.samples));
    /* Two texts (line 12 and 13): two sites with hog's frames. */
    size_t n = ebb_sample_sites(sites, ARRAY_LEN(sites));
    int with12 = 0, with13 = 0;
    for (size_t i = 0; i < n && i < ARRAY_LEN(sites); i++) {
        if (!IN(hog, sites[i].pcs[0]) || sites[i].samples == 0)
            continue;
        with12 += !strcmp(sites[i].stack, "fake.py:12 hog\n");
        with13 += !strcmp(sites[i].stack, "fake.py:13 hog\n");
    }
    EXPECT(with12 == 1 && with13 == 1, "hook texts as sites: %d, %d", with12, with13);
    for (size_t i = 0; i < HOG_N; i++)
        ebb_free(hogged[i]);
}

/* ---------------------------------------------------------------- fork */

static void test_fork(void **state)
{
    (void)state;
    hog();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int ok = 1;
        for (size_t i = 0; i < HOG_N; i++)
            ebb_free(hogged[i]);
        hog();
        const ebb_site_t *s = SITE_OF(hog, NULL);
        ok = s && s->samples > 0 && ebb_check() == 0;
        for (size_t i = 0; i < HOG_N; i++)
            ebb_free(hogged[i]);
        s = SITE_OF(hog, NULL);
        ok = ok && s && s->samples == 0;
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    for (size_t i = 0; i < HOG_N; i++)
        ebb_free(hogged[i]);
}

/* The OS layer's helper for the report: a code address in words, without
 * allocating ("0x... (object)" here: the test's functions are not in its
 * dynamic symbol table). */
size_t ebb__os_symbolise(const void *pc, char *buf, size_t len);

static void test_symbolise(void **state)
{
    (void)state;
    hog();
    const ebb_site_t *s = SITE_OF(hog, NULL);
    assert_non_null(s);
    char buf[256];
    size_t n = ebb__os_symbolise(s->pcs[0], buf, sizeof buf);
    EXPECT(n == strlen(buf) && strstr(buf, "0x") && strstr(buf, "test_sample"), "%s", buf);
    /* A return address one byte into an exported function of a library. */
    const char *pc = (const char *)(uintptr_t)_cmocka_run_group_tests + 1;
    EXPECT(ebb__os_symbolise(pc, buf, sizeof buf) > 0 &&
           strstr(buf, "_cmocka_run_group_tests+0x1 (") && strstr(buf, "libcmocka"), "%s", buf);
    EXPECT(ebb__os_symbolise(s->pcs[0], buf, 8) == 7 && strlen(buf) == 7, "truncated: %s", buf);
    for (size_t i = 0; i < HOG_N; i++)
        ebb_free(hogged[i]);
}

/* ------------------------------------------------- a full site table */

static unsigned long unique;
static size_t unique_stack(char *buf, size_t size, void *arg)
{
    (void)arg;
    return (size_t)snprintf(buf, size, "site %lu", unique++);
}

/* Last: it fills the table for good.  Samples past it are dropped and
 * counted; allocation goes on. */
static void test_full_table(void **state)
{
    (void)state;
    ebb_set_stack_hook(unique_stack, NULL);
    ebb_sample_stats_t st;
    ebb_set_sample_rate(1);
    size_t i = 0;
    for (ebb_sample_stats(&st); st.dropped < 10; ebb_sample_stats(&st), i++) {
        void *p = ebb_malloc(16);
        assert_non_null(p);
        ebb_free(p);
        assert_true(i < 100000);
    }
    ebb_set_stack_hook(NULL, NULL);
    EXPECT(st.sites == ebb_sample_sites(NULL, 0) && st.sites > 1000, "%zu sites", st.sites);
    void *p = ebb_malloc(100);
    assert_non_null(p);
    ebb_free(p);
    ebb_set_sample_rate(RATE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hog_is_the_top_site, setup, teardown_check),
        cmocka_unit_test_setup_teardown(test_estimate_within_bound, setup, teardown_check),
        cmocka_unit_test_setup_teardown(test_every_path_is_sampled, setup, teardown_check),
        cmocka_unit_test_setup_teardown(test_sampled_small_blocks_behave, setup, teardown_check),
        cmocka_unit_test_setup_teardown(test_sampling_off, setup, teardown_check),
        cmocka_unit_test_setup_teardown(test_not_sampled_while_starting_own_thread, setup,
                                        teardown_check),
        cmocka_unit_test_setup_teardown(test_thread_start_is_not_sampled, setup, teardown_check),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown_check),
        cmocka_unit_test_setup_teardown(test_stack_hook, setup, teardown_check),
        cmocka_unit_test_setup_teardown(test_fork, setup, teardown_check),
        cmocka_unit_test_setup_teardown(test_symbolise, setup, teardown_check),
        cmocka_unit_test_setup_teardown(test_full_table, setup, teardown_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
