/* Out of memory anywhere, including ebb's own metadata (arena headers,
 * thread caches, the large-block table), gives NULL with ENOMEM and leaves
 * every structure consistent and nothing leaked. */
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLOTS 3000
static void *held[SLOTS];

/* A mix that needs every kind of mapping: new arenas (many pools), large
 * blocks (table growth past its static start), realloc growth (mremap). */
static int workload(void)
{
    int failures = 0;
    for (int i = 0; i < SLOTS; i++) {
        size_t n = i % 10 == 0 ? (size_t)140000 + (size_t)i * 64 : (size_t)(16 + (i * 37) % 30000);
        errno = 0;
        held[i] = i % 7 == 0 ? ebb_calloc(1, n) : ebb_malloc(n);
        if (held[i] == NULL) {
            assert_int_equal(errno, ENOMEM);
            failures++;
        }
        if (i % 50 == 0 && held[i]) {
            void *q = ebb_realloc(held[i], 4u << 20);
            if (q)
                held[i] = q;
            else
                assert_int_equal(errno, ENOMEM); /* old block still held */
        }
    }
    return failures;
}

static void release_all(void)
{
    for (int i = 0; i < SLOTS; i++) {
        ebb_free(held[i]);
        held[i] = NULL;
    }
}

static void *thread_workload(void *arg)
{
    (void)arg;
    void *p = ebb_malloc(64); /* needs a thread cache: may fail to get one */
    if (p == NULL)
        assert_int_equal(errno, ENOMEM);
    ebb_free(p);
    return NULL;
}

static void test_injected_failures_at_every_point(void **state)
{
    (void)state;
    ebb_collect(1);
    ebb_stats_t base;
    ebb_stats(&base);
    for (long k = 0; k < 60; k += 3) {
        atomic_store(&ebb__os_fail_after, k);
        int failures = workload();
        pthread_t t; /* glibc itself may fail to make the thread (its TLS) */
        if (pthread_create(&t, NULL, thread_workload, NULL) == 0)
            pthread_join(t, NULL);
        atomic_store(&ebb__os_fail_after, -1);
        assert_true(failures > 0 || k > 0);
        assert_int_equal(ebb_check(), 0);
        release_all();
        assert_int_equal(ebb_check(), 0);
        /* after failures, memory works again */
        assert_int_equal(workload(), 0);
        release_all();
    }
    ebb_collect(1);
    ebb_stats_t end;
    ebb_stats(&end);
    /* nothing leaked: what remains mapped is at most what was there before
     * plus the arenas kept for the retired thread caches' pools */
    assert_true(end.large_blocks == base.large_blocks);
    assert_true(end.mapped <= base.mapped + ((size_t)8 << 20));
}

static void test_address_space_limit(void **state)
{
    (void)state;
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit r = { (rlim_t)512 << 20, (rlim_t)512 << 20 };
        setrlimit(RLIMIT_AS, &r);
        static void *p[100000];
        int n = 0, got_null = 0;
        for (; n < 100000; n++) {
            errno = 0;
            p[n] = ebb_malloc(n % 3 ? 4000 : 300000);
            if (p[n] == NULL) {
                got_null = errno == ENOMEM;
                break;
            }
        }
        if (!got_null)
            _exit(1);
        if (ebb_check() != 0)
            _exit(4);
        for (int i = 0; i < n; i++)
            ebb_free(p[i]);
        if (ebb_check() != 0)
            _exit(2);
        ebb_collect(1);
        void *again = ebb_malloc(100 << 20);
        _exit(again ? 0 : 3);
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_injected_failures_at_every_point, unit_teardown_check),
        cmocka_unit_test_teardown(test_address_space_limit, unit_teardown_check),
    };
    return cmocka_run_group_tests_name("oom", tests, NULL, NULL);
}
