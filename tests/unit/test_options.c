/* Every EBB_* option and value: parsed (white box), and observed in a child
 * process started with it (options are read once, at start-up). */
#include "unit.h"
#include "child.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static ebb__options_t parsed(const char *name, const char *value)
{
    ebb__options_t o;
    setenv(name, value, 1);
    ebb__options_read(&o);
    unsetenv(name);
    return o;
}

static void test_parse_each_option(void **state)
{
    (void)state;
    assert_int_equal(parsed("EBB_HEAPS", "3").heaps, 3);
    assert_int_equal(parsed("EBB_HEAPS", "0").heaps, 0);   /* invalid: default */
    assert_int_equal(parsed("EBB_HEAPS", "999").heaps, 0); /* above the maximum */
    assert_int_equal(parsed("EBB_TCACHE", "0").tcache, 0);
    assert_int_equal(parsed("EBB_TCACHE", "off").tcache, 0);
    assert_int_equal(parsed("EBB_TCACHE", "1").tcache, 1);
    assert_int_equal(parsed("EBB_TCACHE", "maybe").tcache, 1);
    assert_int_equal(parsed("EBB_LARGE_CACHE", "0").large_cache, 0);
    assert_int_equal(parsed("EBB_LARGE_CACHE", "16M").large_cache, 16u << 20);
    assert_int_equal(parsed("EBB_LARGE_CACHE", "512k").large_cache, 512u << 10);
    assert_int_equal(parsed("EBB_LARGE_CACHE", "1GiB").large_cache, 1u << 30);
    assert_int_equal(parsed("EBB_LARGE_CACHE", "lots").large_cache, EBB_LARGE_CACHE_BYTES);
    assert_int_equal(parsed("EBB_ON_ERROR", "abort").on_error, EBB_ON_ERROR_ABORT);
    assert_int_equal(parsed("EBB_ON_ERROR", "ignore").on_error, EBB_ON_ERROR_IGNORE);
    assert_int_equal(parsed("EBB_ON_ERROR", "warn").on_error, EBB_ON_ERROR_WARN);
    assert_int_equal(parsed("EBB_ON_ERROR", "explode").on_error, EBB_ON_ERROR_WARN);
    assert_int_equal(parsed("EBB_VERBOSE", "1").verbose, 1);
    assert_int_equal(parsed("EBB_VERBOSE", "0").verbose, 0);
    assert_int_equal(parsed("EBB_PURGE_DELAY_MS", "0").purge_delay, 0);
    assert_int_equal(parsed("EBB_PURGE_DELAY_MS", "-1").purge_delay, -1);
    assert_int_equal(parsed("EBB_PURGE_DELAY_MS", "250").purge_delay, 250);
    assert_int_equal(parsed("EBB_PURGE_DELAY_MS", "-2").purge_delay, EBB_PURGE_DELAY_MS);
    assert_int_equal(parsed("EBB_PURGE_DELAY_MS", "soon").purge_delay, EBB_PURGE_DELAY_MS);
    assert_int_equal(parsed("EBB_PURGE_DELAY_MS", "99999999999").purge_delay, EBB_PURGE_DELAY_MS);
    assert_int_equal(parsed("EBB_PURGE_MODE", "free").purge_lazy, 1);
    assert_int_equal(parsed("EBB_PURGE_MODE", "dontneed").purge_lazy, 0);
    assert_int_equal(parsed("EBB_PURGE_MODE", "later").purge_lazy, 0);
    assert_int_equal(parsed("EBB_LIMIT", "512M").limit, (size_t)512 << 20);
    assert_int_equal(parsed("EBB_LIMIT", "1G").limit, (size_t)1 << 30);
    assert_int_equal(parsed("EBB_LIMIT", "lots").limit, 0);
    assert_int_equal(parsed("EBB_LIMIT", "lots").limit_percent, 0);
    assert_int_equal(parsed("EBB_LIMIT", "1G").limit_percent, 0);
    assert_int_equal(parsed("EBB_LIMIT", "auto").limit_percent, 100);
    assert_int_equal(parsed("EBB_LIMIT", "auto").limit, 0);
    assert_int_equal(parsed("EBB_LIMIT", "50%").limit_percent, 50);
    assert_int_equal(parsed("EBB_LIMIT", "100%").limit_percent, 100);
    assert_int_equal(parsed("EBB_LIMIT", "50").limit, 50);          /* bytes, not percent */
    assert_int_equal(parsed("EBB_LIMIT", "50").limit_percent, 0);
    assert_int_equal(parsed("EBB_LIMIT", "0%").limit_percent, 0);    /* invalid: none */
    assert_int_equal(parsed("EBB_LIMIT", "101%").limit_percent, 0);
    assert_int_equal(parsed("EBB_LIMIT", "5%%").limit_percent, 0);
    assert_int_equal(parsed("EBB_LIMIT", "%").limit_percent, 0);
    assert_int_equal(parsed("EBB_LIMIT", "autox").limit_percent, 0);
    assert_int_equal(parsed("EBB_LIMIT_SOFT", "80%").limit_soft, 80);
    assert_int_equal(parsed("EBB_LIMIT_SOFT", "80").limit_soft, 80);
    assert_int_equal(parsed("EBB_LIMIT_SOFT", "100%").limit_soft, 100);
    assert_int_equal(parsed("EBB_LIMIT_SOFT", "0%").limit_soft, EBB_LIMIT_SOFT_PERCENT);
    assert_int_equal(parsed("EBB_LIMIT_SOFT", "120%").limit_soft, EBB_LIMIT_SOFT_PERCENT);
    assert_int_equal(parsed("EBB_LIMIT_SOFT", "high").limit_soft, EBB_LIMIT_SOFT_PERCENT);
    assert_int_equal(parsed("EBB_LIMIT_PSI", "0").limit_psi, 0);
    assert_int_equal(parsed("EBB_LIMIT_PSI", "1").limit_psi, 1);
    assert_int_equal(parsed("EBB_LIMIT_PSI", "off").limit_psi, 0);
    assert_int_equal(parsed("EBB_LIMIT_PSI", "maybe").limit_psi, -1);
    assert_int_equal(parsed("EBB_NOTHING", "1").limit_psi, -1); /* unset: if the kernel can */
    /* Where automatic reports go, and the black box. */
    assert_int_equal(parsed("EBB_REPORT", "off").report_off, 1);
    assert_int_equal(parsed("EBB_REPORT", "stderr").report_off, 0);
    assert_string_equal(parsed("EBB_REPORT", "stderr").report_path, "");
    assert_string_equal(parsed("EBB_REPORT", "/tmp/r.txt").report_path, "/tmp/r.txt");
    assert_int_equal(parsed("EBB_REPORT", "/tmp/r.txt").report_json, 0);
    assert_int_equal(parsed("EBB_REPORT", "/tmp/r.json").report_json, 1);
    assert_int_equal(parsed("EBB_REPORT_FORMAT", "json").report_json, 1);
    assert_int_equal(parsed("EBB_REPORT_FORMAT", "xml").report_json, 0);
    assert_int_equal(parsed("EBB_REPORT_SIGNAL", "USR2").report_signal, SIGUSR2);
    assert_int_equal(parsed("EBB_REPORT_SIGNAL", "KILL").report_signal, 0);
    assert_string_equal(parsed("EBB_BLACKBOX", "/run/box.%p").blackbox_path, "/run/box.%p");
    assert_string_equal(parsed("EBB_BLACKBOX", "off").blackbox_path, "");
    assert_string_equal(parsed("EBB_NOTHING", "1").blackbox_path, "");
}

/* ---- child side: `test_options child WHAT` prints what it observes ---- */

static void *alloc_in_thread(void *arg)
{
    (void)arg;
    ebb_free(ebb_malloc(64));
    ebb_stats_t s;
    ebb_stats(&s);
    printf("threads=%zu\n", s.threads);
    return NULL;
}

static int child(const char *what)
{
    ebb_stats_t s;
    if (!strcmp(what, "heaps")) {
        ebb_stats(&s);
        printf("heaps=%zu\n", s.heaps);
    } else if (!strcmp(what, "tcache")) {
        pthread_t t;
        pthread_create(&t, NULL, alloc_in_thread, NULL);
        pthread_join(t, NULL);
    } else if (!strcmp(what, "large_cache")) {
        ebb_free(ebb_malloc(1 << 20));
        ebb_stats(&s);
        printf("cached=%zu\n", s.mapped_large_cached);
    } else if (!strcmp(what, "foreign")) {
        static char not_ours[64];
        ebb_free(not_ours + 16);
        ebb_stats(&s);
        printf("survived foreign=%zu\n", s.foreign_frees);
    } else if (!strcmp(what, "verbose")) {
        ebb_free(ebb_malloc(10));
    }
    fflush(stdout);
    return 0;
}

/* Run this binary as a child with one variable set; capture both streams. */
static int run_child(const char *what, const char *env, char *out, size_t outlen)
{
    char *envp[] = { (char *)env, NULL };
    return child_run(what, envp, out, outlen);
}

static void test_child_heaps(void **state)
{
    (void)state;
    char out[4096];
    assert_int_equal(run_child("heaps", "EBB_HEAPS=3", out, sizeof out), 0);
    assert_non_null(strstr(out, "heaps=3"));
}

static void test_child_tcache_off(void **state)
{
    (void)state;
    char out[4096];
    assert_int_equal(run_child("tcache", "EBB_TCACHE=0", out, sizeof out), 0);
    assert_non_null(strstr(out, "threads=0"));
    assert_int_equal(run_child("tcache", "EBB_TCACHE=1", out, sizeof out), 0);
    assert_null(strstr(out, "threads=0"));
}

static void test_child_large_cache(void **state)
{
    (void)state;
    char out[4096];
    assert_int_equal(run_child("large_cache", "EBB_LARGE_CACHE=0", out, sizeof out), 0);
    assert_non_null(strstr(out, "cached=0\n"));
    assert_int_equal(run_child("large_cache", "EBB_LARGE_CACHE=8M", out, sizeof out), 0);
    assert_non_null(strstr(out, "cached=1048576\n"));
}

static void test_child_on_error(void **state)
{
    (void)state;
    char out[4096];
    int st = run_child("foreign", "EBB_ON_ERROR=warn", out, sizeof out);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "ebb: free(0x"));
    assert_non_null(strstr(out, "not allocated by ebb"));
    assert_non_null(strstr(out, "survived foreign=1"));
    st = run_child("foreign", "EBB_ON_ERROR=ignore", out, sizeof out);
    assert_int_equal(st, 0);
    assert_null(strstr(out, "ebb: free("));
    assert_non_null(strstr(out, "survived foreign=1"));
    st = run_child("foreign", "EBB_ON_ERROR=abort", out, sizeof out);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    assert_non_null(strstr(out, "not allocated by ebb"));
    assert_null(strstr(out, "survived"));
}

static void test_child_verbose(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(run_child("verbose", "EBB_VERBOSE=1", out, sizeof out), 0);
    assert_non_null(strstr(out, "statistics"));
    assert_non_null(strstr(out, "mapped"));
    assert_int_equal(run_child("verbose", "EBB_VERBOSE=0", out, sizeof out), 0);
    assert_null(strstr(out, "statistics"));
}

static void test_child_bad_value_is_reported(void **state)
{
    (void)state;
    char out[4096];
    assert_int_equal(run_child("heaps", "EBB_HEAPS=many", out, sizeof out), 0);
    assert_non_null(strstr(out, "ignoring EBB_HEAPS=many"));
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "child"))
        return child(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_each_option),
        cmocka_unit_test(test_child_heaps),
        cmocka_unit_test(test_child_tcache_off),
        cmocka_unit_test(test_child_large_cache),
        cmocka_unit_test(test_child_on_error),
        cmocka_unit_test(test_child_verbose),
        cmocka_unit_test(test_child_bad_value_is_reported),
    };
    return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
