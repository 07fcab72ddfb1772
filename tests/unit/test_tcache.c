/* Thread caches: refill and flush sizes, cross-thread frees, blocks handed
 * back when a thread exits, and caches recycled across thread churn. */
#include "unit.h"

#include <pthread.h>

static size_t cached_in(ebb__thread_t *tc, unsigned cls)
{
    return (size_t)(tc->bin[cls].top - tc->bin[cls].low);
}

static void test_refill_takes_half(void **state)
{
    (void)state;
    unsigned cls = 9; /* 160 bytes */
    void *p = ebb_malloc(160);
    ebb__thread_t *tc = ebb__self;
    assert_ptr_not_equal(tc, &ebb__thread_unset);
    ebb__tcache_flush_all(tc);
    /* The flush made memory purgeable: start the purger now, as the front
     * would on its way out, and not inside the malloc measured below:
     * starting a thread allocates (from this class's stack on 32-bit), so
     * the stacks are emptied again after it. */
    ebb__purge_owed_kick();
    ebb__tcache_flush_all(tc);
    void *q = ebb_malloc(150);
    unsigned cap = ebb__classes[cls].tcache_cap;
    assert_int_equal(cached_in(tc, cls), cap / 2 - 1);
    ebb_free(q);
    ebb_free(p);
}

static void test_flush_keeps_oldest_half(void **state)
{
    (void)state;
    unsigned cls = 2; /* 48 bytes */
    unsigned cap = ebb__classes[cls].tcache_cap;
    ebb__thread_t *tc;
    static void *b[512];
    for (unsigned i = 0; i < cap + 1; i++)
        b[i] = ebb_malloc(48);
    tc = ebb__self;
    ebb__tcache_flush_all(tc);
    for (unsigned i = 0; i < cap; i++)
        ebb_free(b[i]);
    assert_int_equal(cached_in(tc, cls), cap);
    ebb_free(b[cap]); /* overflows: the newer half goes home, no entry moves */
    assert_int_equal(cached_in(tc, cls), cap / 2 + 1);
    assert_ptr_equal(tc->bin[cls].top[-1], b[cap]);
    assert_ptr_equal(tc->bin[cls].top[-2], b[cap / 2 - 1]);
    assert_ptr_equal(tc->bin[cls].low[0], b[0]);
    for (unsigned i = cap / 2; i < cap; i++)
        assert_true(ebb__heap_block_is_free(b[i])); /* home, in its pool */
}

/* A run of frees with no allocation (a teardown): after a few overflows
 * each one sends the whole stack home and the stack stays at half its
 * capacity, so a thread that goes idle when the run ends pins fewer pages;
 * the next refill gives the stack all its capacity back. */
static void test_free_only_run_keeps_the_stack_short(void **state)
{
    (void)state;
    unsigned cls = 2; /* 48 bytes */
    unsigned cap = ebb__classes[cls].tcache_cap, half = (cap + 1) / 2;
    enum { M = 1000 };
    static void *b[M];
    assert_true(cap * 4 < M);
    for (unsigned i = 0; i < M; i++)
        b[i] = ebb_malloc(48);
    ebb__thread_t *tc = ebb__self;
    ebb__tcache_flush_all(tc);
    size_t most = 0;
    for (unsigned i = 0; i < M; i++) {
        ebb_free(b[i]);
        if (i >= (EBB_FREE_ONLY_OVERFLOWS + 1) * cap && cached_in(tc, cls) > most)
            most = cached_in(tc, cls); /* once the run is known */
    }
    assert_int_equal(tc->bin[cls].high - tc->bin[cls].low, half);
    assert_true(most <= half);
    for (unsigned i = 0; i + cached_in(tc, cls) < M; i++)
        assert_true(ebb__heap_block_is_free(b[i])); /* all but the last few went home */
    ebb__tcache_flush_all(tc);
    void *p = ebb_malloc(48); /* a refill ends the run */
    assert_int_equal(tc->bin[cls].high - tc->bin[cls].low, cap);
    assert_int_equal(cached_in(tc, cls), cap / 2 - 1);
    ebb_free(p);
}

#define N 4000
static void *blocks[N];

static void *alloc_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < N; i++)
        blocks[i] = ebb_malloc(32 + (size_t)(i % 8) * 16);
    return NULL;
}

static void *free_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < N; i++)
        ebb_free(blocks[i]);
    return NULL;
}

static size_t small_used(void)
{
    ebb_stats_t s;
    ebb_stats(&s);
    return s.small_used - s.small_cached; /* held by the program itself */
}

static void test_cross_thread_frees_go_home_at_exit(void **state)
{
    (void)state;
    ebb_collect(0);
    size_t before = small_used();
    pthread_t t;
    pthread_create(&t, NULL, alloc_many, NULL);
    pthread_join(t, NULL);
    assert_true(small_used() >= before + N * 32);
    pthread_create(&t, NULL, free_many, NULL);
    pthread_join(t, NULL);
    /* both threads exited: everything they cached went back to the pools.
     * glibc keeps a few hundred bytes per cached thread stack (its TLS
     * vector); 128 KB or more here would mean stranded blocks. */
    assert_true(small_used() <= before + 4096);
}

static void *touch(void *arg)
{
    (void)arg;
    ebb_free(ebb_malloc(100));
    return NULL;
}

static void test_thread_churn_recycles_caches(void **state)
{
    (void)state;
    pthread_t t;
    pthread_create(&t, NULL, touch, NULL);
    pthread_join(t, NULL);
    size_t bytes = ebb__threads.bytes;
    size_t threads = ebb__threads.count;
    for (int i = 0; i < 200; i++) {
        pthread_create(&t, NULL, touch, NULL);
        pthread_join(t, NULL);
    }
    assert_int_equal(ebb__threads.bytes, bytes);
    assert_int_equal(ebb__threads.count, threads);
}

static void test_threads_spread_over_bounded_heaps(void **state)
{
    (void)state;
    assert_true(ebb__heaps.n >= 1 && ebb__heaps.n <= EBB_MAX_HEAPS);
    assert_true(ebb__heaps.n <= ebb__os_cpu_count());
}

/* A thread that frees into its cache and then blocks, leaving a poke
 * unanswered: the purger takes its cached blocks, all but the top entry
 * of each stack, once EBB_TCACHE_IDLE_MS have passed since the poke (not
 * before); the thread's next call puts its stacks back where they began,
 * and it allocates as before. */
enum { IDLE_CLS = 9, IDLE_SIZE = 160, IDLE_N = 40 };

typedef struct {
    pthread_mutex_t m;
    pthread_cond_t c;
    int phase; /* 1: freed and blocked, 2: go on, 3: allocated again */
    void *b[IDLE_N];
    ebb__thread_t *tc;
    void *again;
} idle_ctx_t;

static void idle_step(idle_ctx_t *x, int phase)
{
    pthread_mutex_lock(&x->m);
    x->phase = phase;
    pthread_cond_broadcast(&x->c);
    pthread_mutex_unlock(&x->m);
}

static void idle_wait(idle_ctx_t *x, int phase)
{
    pthread_mutex_lock(&x->m);
    while (x->phase < phase)
        pthread_cond_wait(&x->c, &x->m);
    pthread_mutex_unlock(&x->m);
}

static void *free_then_block(void *arg)
{
    idle_ctx_t *x = arg;
    for (int i = 0; i < IDLE_N; i++)
        x->b[i] = ebb_malloc(IDLE_SIZE);
    x->tc = ebb__self;
    ebb__tcache_flush_all(x->tc);
    for (int i = 0; i < IDLE_N; i++)
        ebb_free(x->b[i]); /* b[IDLE_N - 1] ends on top */
    idle_step(x, 1);
    idle_wait(x, 2);
    x->again = ebb_malloc(IDLE_SIZE); /* answers the poke */
    idle_step(x, 3);
    idle_wait(x, 4);
    ebb_free(x->again);
    return NULL;
}

static void test_idle_thread_blocks_are_taken(void **state)
{
    (void)state;
    static idle_ctx_t x = { .m = PTHREAD_MUTEX_INITIALIZER, .c = PTHREAD_COND_INITIALIZER };
    assert_true(IDLE_N <= ebb__classes[IDLE_CLS].tcache_cap);
    assert_int_equal(ebb__classes[IDLE_CLS].size, IDLE_SIZE);
    pthread_t t;
    pthread_create(&t, NULL, free_then_block, &x);
    idle_wait(&x, 1);
    ebb__thread_t *tc = x.tc;
    assert_int_equal(cached_in(tc, IDLE_CLS), IDLE_N);

    uint32_t now = ebb__os_now_ms(), take_in;
    assert_true(ebb__thread_poke_all(now, &take_in) >= 2);
    assert_true(take_in <= EBB_TCACHE_IDLE_MS);
    assert_ptr_equal(atomic_load(tc->tls_slot), &ebb__thread_poked);
    uint32_t wait = ebb__thread_take_idle(now + EBB_TCACHE_IDLE_MS - 1);
    assert_true(wait >= 1 && wait <= EBB_TCACHE_IDLE_MS);
    assert_int_equal(cached_in(tc, IDLE_CLS), IDLE_N); /* too early */

    ebb__thread_take_idle(now + EBB_TCACHE_IDLE_MS);
    assert_int_equal(cached_in(tc, IDLE_CLS), EBB_TCACHE_KEPT_BLOCKS);
    assert_int_equal(ebb__tcache_depth(tc, IDLE_CLS), EBB_TCACHE_KEPT_BLOCKS);
    assert_ptr_equal(tc->bin[IDLE_CLS].top[-1], x.b[IDLE_N - 1]);
    for (int i = 0; i < IDLE_N; i++) /* home, but for the top entry */
        assert_int_equal(ebb__heap_block_is_free(x.b[i]), i < IDLE_N - EBB_TCACHE_KEPT_BLOCKS);
    /* Taken once: a second look finds nothing more to take. */
    assert_int_equal(ebb__thread_take_idle(now + 2 * EBB_TCACHE_IDLE_MS), UINT32_MAX);

    idle_step(&x, 2);
    idle_wait(&x, 3);
    assert_ptr_not_equal(x.again, NULL);
    assert_false(ebb__heap_block_is_free(x.again));
    void **e = tc->entries;
    for (unsigned c = 0; c < EBB_CLASSES; c++) { /* every stack where it began */
        assert_ptr_equal(tc->bin[c].low, e);
        e += ebb__classes[c].tcache_cap;
    }
    assert_int_equal(tc->taken_from, 0);
    /* The kept entry went home with the answer, and the refill after it
     * had the whole stack again. */
    assert_int_equal(cached_in(tc, IDLE_CLS), ebb__classes[IDLE_CLS].tcache_cap / 2 - 1);
    idle_step(&x, 4);
    pthread_join(t, NULL);
}

static int quiet_setup(void **state)
{
    (void)state;
    unit_quiet_purger();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_refill_takes_half, unit_teardown_check),
        cmocka_unit_test_teardown(test_flush_keeps_oldest_half, unit_teardown_check),
        cmocka_unit_test_teardown(test_free_only_run_keeps_the_stack_short, unit_teardown_check),
        cmocka_unit_test_teardown(test_cross_thread_frees_go_home_at_exit, unit_teardown_check),
        cmocka_unit_test_teardown(test_thread_churn_recycles_caches, unit_teardown_check),
        cmocka_unit_test_teardown(test_threads_spread_over_bounded_heaps, unit_teardown_check),
        cmocka_unit_test_teardown(test_idle_thread_blocks_are_taken, unit_teardown_check),
    };
    return cmocka_run_group_tests_name("tcache", tests, quiet_setup, NULL);
}
