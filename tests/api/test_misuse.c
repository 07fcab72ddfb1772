/*
 * test_misuse.c -- double frees and frees of freed blocks, through free and
 * realloc as a program makes them: caught at the call, named in one line
 * (fault, pointer, size class, where the block is), aborting by default as
 * glibc does, and under EBB_ON_ERROR=warn|ignore or ebb_on_error() the bad
 * call is ignored: no block is ever handed out twice.
 *
 * The calls are ebb_malloc, ebb_free and ebb_realloc, which are malloc, free
 * and realloc in the normal build (one function, two names) and still ebb's
 * in the sanitizer builds, where malloc is the sanitizer's.
 *
 * Invalid pointers (one ebb never made, one into the middle of a block) to
 * free or realloc abort by default too, as glibc's "free(): invalid
 * pointer" does; malloc_usable_size of one answers 0 and goes on.
 *
 * Each scenario runs in a child (an abort must not end the test runner);
 * the child prints what it saw, and the test reads it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "child.h"

/* The compiler must not see a second free of one pointer (it warns, and
 * could drop the call): a block to be freed twice is kept here when it is
 * made, and its second free takes it back from here. */
static void *volatile kept;
static void *keep(void *p)
{
    kept = p;
    return p;
}
static void *again(void)
{
    return kept;
}

/* After a double free: the next two blocks of that size are two blocks. */
static void two_more(size_t n)
{
    void *a = ebb_malloc(n), *b = ebb_malloc(n);
    printf("next two %s\n", a == b ? "SAME" : "distinct");
    ebb_free(a);
    ebb_free(b);
}

static void report_errors(void)
{
    ebb_stats_t s;
    ebb_stats(&s);
    printf("errors=%zu\n", s.errors);
}

/* A block of n bytes out of many kept live, one of which shares its 64 KiB
 * slot, so its pool stays while it is freed and freed again. */
enum { HELD = 2000 };
static void *held[HELD];

static void *block_with_live_neighbours(size_t n)
{
    for (int i = 0; i < HELD; i++)
        held[i] = ebb_malloc(n);
    for (int i = 0; i < HELD; i++)
        for (int j = 0; j < HELD; j++)
            if (j != i && (uintptr_t)held[i] >> 16 == (uintptr_t)held[j] >> 16) {
                void *p = held[i];
                held[i] = NULL;
                return p;
            }
    return NULL;
}

static void free_held(void)
{
    for (int i = 0; i < HELD; i++)
        ebb_free(held[i]);
}

/* A thread that frees a block, then waits, alive, until told to go: the
 * block sits in its cache meanwhile. */
typedef struct {
    void *block;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int freed, go;
} holder_t;

static void *hold_freed(void *arg)
{
    holder_t *h = arg;
    ebb_free(h->block);
    pthread_mutex_lock(&h->lock);
    h->freed = 1;
    pthread_cond_broadcast(&h->cond);
    while (!h->go)
        pthread_cond_wait(&h->cond, &h->lock);
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

static void cross_thread_double_free(int thread_stays)
{
    holder_t h = { .block = keep(ebb_malloc(48)), .lock = PTHREAD_MUTEX_INITIALIZER,
                   .cond = PTHREAD_COND_INITIALIZER };
    pthread_t t;
    pthread_create(&t, NULL, hold_freed, &h);
    pthread_mutex_lock(&h.lock);
    while (!h.freed)
        pthread_cond_wait(&h.cond, &h.lock);
    if (!thread_stays) {
        h.go = 1;
        pthread_cond_broadcast(&h.cond);
    }
    pthread_mutex_unlock(&h.lock);
    if (!thread_stays)
        pthread_join(t, NULL); /* its cache went home as it exited */
    ebb_free(again());
    if (thread_stays) {
        pthread_mutex_lock(&h.lock);
        h.go = 1;
        pthread_cond_broadcast(&h.cond);
        pthread_mutex_unlock(&h.lock);
        pthread_join(t, NULL);
    }
    two_more(48);
}

static int child_main(const char *what)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(what, "same_thread")) { /* the program */
        void *p = keep(ebb_malloc(64));
        ebb_free(p);
        ebb_free(again());
        two_more(64);
    } else if (!strcmp(what, "gone_home")) {
        /* The block leaves the cache before it is freed again: handed out
         * and freed among thousands, then home with the rest of the cache
         * (a full stack keeps its oldest blocks; the purger's poke or a
         * collect sends them home). */
        void *p = keep(block_with_live_neighbours(64));
        ebb_free(p);
        enum { N = 20000 };
        static void *many[N];
        for (int i = 0; i < N; i++)
            many[i] = ebb_malloc(64);
        for (int i = 0; i < N; i++)
            ebb_free(many[i]);
        ebb_collect(0);
        ebb_free(again());
        two_more(64);
        free_held();
    } else if (!strcmp(what, "pool_gone")) {
        /* No cache and purging at once: the free empties the pool, which
         * goes back to its arena with the block. */
        void *p = keep(ebb_malloc(3000));
        ebb_free(p);
        ebb_free(again());
        two_more(3000);
    } else if (!strcmp(what, "other_cache")) {
        cross_thread_double_free(1);
    } else if (!strcmp(what, "other_thread_exited")) {
        cross_thread_double_free(0);
    } else if (!strcmp(what, "realloc_freed")) {
        void *p = keep(ebb_malloc(100));
        memset(p, 'x', 100);
        ebb_free(p);
        errno = 0;
        void *q = ebb_realloc(again(), 200);
        printf("realloc gave %s, errno %s\n", q ? "a block" : "NULL",
               errno == EINVAL ? "EINVAL" : "other");
        two_more(100);
    } else if (!strcmp(what, "large")) {
        void *p = keep(ebb_malloc(1 << 20));
        ebb_free(p);
        ebb_free(again());
        printf("survived\n");
    } else if (!strcmp(what, "api")) {
        int was = ebb_on_error(EBB_ON_ERROR_WARN);
        printf("was=%d\n", was);
        errno = 0;
        int bad = ebb_on_error(42);
        printf("bad=%d %s\n", bad, errno == EINVAL ? "EINVAL" : "?");
        void *p = keep(ebb_malloc(32));
        ebb_free(p);
        ebb_free(again());
        two_more(32);
        ebb_on_error(EBB_ON_ERROR_DEFAULT);
        ebb_free(again());
        printf("not reached\n");
    } else if (!strncmp(what, "invalid_", 8)) {
        static char not_ours[64];
        char *block = ebb_malloc(64);
        printf("usable of a foreign pointer: %zu\n", ebb_usable_size(not_ours + 16));
        if (!strcmp(what, "invalid_free"))
            ebb_free(not_ours + 16);
        else if (!strcmp(what, "invalid_interior"))
            ebb_free(block + 16);
        else if (!strcmp(what, "invalid_realloc")) {
            errno = 0;
            void *q = ebb_realloc(not_ours + 16, 100);
            printf("realloc gave %s, errno %s\n", q ? "a block" : "NULL",
                   errno == EINVAL ? "EINVAL" : "other");
        } else
            return 2;
        memset(block, 'y', 64); /* still the program's */
        ebb_free(block);
        printf("went on\n");
    } else if (!strcmp(what, "ignore")) {
        void *p = keep(ebb_malloc(64));
        ebb_free(p);
        ebb_free(again());
        two_more(64);
        report_errors();
    } else {
        return 2;
    }
    return 0;
}

static char out[16384];

/* Run a scenario with EBB_ON_ERROR=mode (NULL: unset). */
/* Sampling off in every child: a sampled block is served as a large one,
 * and its double free is diagnosed as such (seen once in the 32-bit run of
 * test_double_free_after_its_pool_went_back, a 3000-byte block sampled by
 * chance), not by the pool or cache path each scenario is about. */
static int scenario(const char *what, const char *mode)
{
    char setting[64];
    const char *env[] = { "EBB_SAMPLE_RATE=0", NULL };
    if (mode) {
        snprintf(setting, sizeof setting, "EBB_ON_ERROR=%s", mode);
        env[1] = setting;
    }
    return child_run_env(what, env, 2, out, sizeof out); /* a NULL is skipped */
}

#define expect_in(text) expect_output_has(out, text)

static void test_double_free_aborts_by_default_naming_the_block(void **state)
{
    (void)state;
    int st = scenario("same_thread", NULL);
    EXPECT(child_killed(st, SIGABRT), "status %d; output:\n%s", st, out);
    expect_in("ebb: free(0x");
    expect_in("double free of a 64-byte block (size class 3); it is in this thread's cache");
    expect_in("; aborting");
    EXPECT(strstr(out, "next two") == NULL, "went on after the double free:\n%s", out);
}

static void test_double_free_warned_never_hands_a_block_out_twice(void **state)
{
    (void)state;
    int st = scenario("same_thread", "warn");
    EXPECT(child_exited(st, 0), "status %d; output:\n%s", st, out);
    expect_in("double free of a 64-byte block");
    expect_in("next two distinct");
}

static void test_double_free_after_the_block_went_home(void **state)
{
    (void)state;
    int st = scenario("gone_home", "warn");
    EXPECT(child_exited(st, 0), "status %d; output:\n%s", st, out);
    expect_in("double free of a 64-byte block (size class 3); it is back in its pool");
    expect_in("next two distinct");
    EXPECT(child_killed(scenario("gone_home", NULL), SIGABRT), "output:\n%s", out);
}

static void test_double_free_after_its_pool_went_back(void **state)
{
    (void)state;
    const char *env[] = { "EBB_SAMPLE_RATE=0", "EBB_TCACHE=0", "EBB_PURGE_DELAY_MS=0",
                          "EBB_ON_ERROR=warn" };
    int st = child_run_env("pool_gone", env, 4, out, sizeof out);
    EXPECT(child_exited(st, 0), "status %d; output:\n%s", st, out);
    expect_in("double free or invalid pointer: no pool holds this address");
    expect_in("next two distinct");
    st = child_run_env("pool_gone", env, 3, out, sizeof out);
    EXPECT(child_killed(st, SIGABRT), "status %d; output:\n%s", st, out);
}

static void test_cross_thread_double_free(void **state)
{
    (void)state;
    int st = scenario("other_cache", "warn");
    EXPECT(child_exited(st, 0), "status %d; output:\n%s", st, out);
    expect_in("double free of a 48-byte block (size class 2); it is in another thread's cache");
    expect_in("next two distinct");
    st = scenario("other_thread_exited", "warn");
    EXPECT(child_exited(st, 0), "status %d; output:\n%s", st, out);
    expect_in("double free of a 48-byte block (size class 2); it is back in its pool");
    expect_in("next two distinct");
    EXPECT(child_killed(scenario("other_cache", NULL), SIGABRT), "output:\n%s", out);
}

static void test_realloc_of_a_freed_block(void **state)
{
    (void)state;
    int st = scenario("realloc_freed", "warn");
    EXPECT(child_exited(st, 0), "status %d; output:\n%s", st, out);
    expect_in("ebb: realloc(0x");
    expect_in("realloc of a freed 112-byte block");
    expect_in("realloc gave NULL, errno EINVAL");
    expect_in("next two distinct");
    EXPECT(child_killed(scenario("realloc_freed", NULL), SIGABRT), "output:\n%s", out);
}

static void test_large_double_free_is_named_so(void **state)
{
    (void)state;
    int st = scenario("large", "warn");
    EXPECT(child_exited(st, 0), "status %d; output:\n%s", st, out);
    expect_in("double free of a large block");
    EXPECT(strstr(out, "not allocated by ebb") == NULL, "called foreign:\n%s", out);
    EXPECT(child_killed(scenario("large", NULL), SIGABRT), "output:\n%s", out);
}

static void test_on_error_api(void **state)
{
    (void)state;
    int st = scenario("api", NULL);
    EXPECT(child_killed(st, SIGABRT), "status %d; output:\n%s", st, out);
    expect_in("was=3\n");
    expect_in("bad=-1 EINVAL\n");
    expect_in("next two distinct");
    EXPECT(strstr(out, "not reached") == NULL, "the default did not abort:\n%s", out);
}

/* As glibc ("free(): invalid pointer"): a free or realloc of a pointer
 * no block of ebb's starts at aborts by default, naming it; under warn the
 * call is dropped and the program goes on; malloc_usable_size answers 0. */
static void test_invalid_pointer_aborts_by_default(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        { "invalid_free", "ebb: free(0x" },
        { "invalid_interior", "ebb: free(0x" },
        { "invalid_realloc", "ebb: realloc(0x" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = scenario(cases[i][0], NULL);
        EXPECT(child_killed(st, SIGABRT), "%s: status %d; output:\n%s", cases[i][0], st, out);
        expect_in(cases[i][1]);
        expect_in("invalid pointer");
        expect_in("; aborting");
        expect_in("usable of a foreign pointer: 0\n");
        EXPECT(strstr(out, "went on") == NULL, "%s went on:\n%s", cases[i][0], out);
        st = scenario(cases[i][0], "warn");
        EXPECT(child_exited(st, 0), "%s, warn: status %d; output:\n%s", cases[i][0], st, out);
        expect_in("invalid pointer");
        expect_in("went on\n");
    }
    expect_in("realloc gave NULL, errno EINVAL");
}

static void test_ignore_counts_silently(void **state)
{
    (void)state;
    int st = scenario("ignore", "ignore");
    EXPECT(child_exited(st, 0), "status %d; output:\n%s", st, out);
    EXPECT(strstr(out, "ebb:") == NULL, "not silent:\n%s", out);
    expect_in("next two distinct");
    expect_in("errors=1\n");
}

CHILD_TEST_MAIN("misuse", child_main, T(test_double_free_aborts_by_default_naming_the_block),
                T(test_double_free_warned_never_hands_a_block_out_twice),
                T(test_double_free_after_the_block_went_home),
                T(test_double_free_after_its_pool_went_back), T(test_cross_thread_double_free),
                T(test_realloc_of_a_freed_block), T(test_large_double_free_is_named_so),
                T(test_on_error_api), T(test_invalid_pointer_aborts_by_default),
                T(test_ignore_counts_silently))
