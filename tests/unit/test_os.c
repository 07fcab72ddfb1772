/* The OS layer: mappings, alignment, purge, remap, environment, locks. */
#include "unit.h"
#include "child.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

static void test_page_and_cpus(void **state)
{
    (void)state;
    size_t page = ebb__os_page_size();
    assert_true(page >= 4096 && (page & (page - 1)) == 0);
    assert_true(ebb__os_cpu_count() >= 1);
    assert_true(ebb__os_cpu_count() <= 4096);
}

static void test_map_is_zeroed_and_writable(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    unsigned char *p = ebb__os_map(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i += 4096)
        assert_int_equal(p[i], 0);
    memset(p, 0x5a, n);
    ebb__os_unmap(p, n);
}

static void test_map_aligned(void **state)
{
    (void)state;
    for (size_t align = 4096; align <= ((size_t)16 << 20); align <<= 1) {
        void *p = ebb__os_map_aligned(3 * 4096, align);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % align, 0);
        memset(p, 1, 3 * 4096);
        ebb__os_unmap(p, 3 * 4096);
    }
}

static void test_purge_zeroes_but_keeps_mapping(void **state)
{
    (void)state;
    size_t n = 64 * 4096;
    unsigned char *p = ebb__os_map(n);
    memset(p, 0xff, n);
    ebb__os_purge(p + 4096, 2 * 4096);
    assert_int_equal(p[0], 0xff);
    assert_int_equal(p[4096], 0);
    assert_int_equal(p[3 * 4096 - 1], 0);
    assert_int_equal(p[3 * 4096], 0xff);
    p[4096] = 7; /* still mapped and writable */
    assert_int_equal(p[4096], 7);
    ebb__os_unmap(p, n);
}

/* The ranges go back, the pages between them stay, and a kernel that
 * takes a vector (Linux 6.14 on) takes them all in one call. */
static void test_purge_ranges_in_one_call(void **state)
{
    (void)state;
    size_t n = 64 * 4096;
    unsigned char *p = ebb__os_map(n);
    memset(p, 0xff, n);
    ebb__os_purge_setup(); /* ebb's start did it; the test does not rely on that */
    ebb__os_range_t r[16];
    for (unsigned i = 0; i < 16; i++)
        r[i] = (ebb__os_range_t){ .p = p + (size_t)i * 4 * 4096, .size = (i % 3 + 1) * 4096 };
    unsigned calls = ebb__os_purge_ranges(r, 16, 0);
    for (unsigned i = 0; i < 16; i++) {
        unsigned char *q = r[i].p;
        assert_int_equal(q[0], 0);
        assert_int_equal(q[r[i].size - 1], 0);
        assert_int_equal(q[r[i].size], 0xff); /* the page after it */
        q[0] = 7; /* still mapped and writable */
    }
    ebb__os_unmap(p, n);
    if (calls == 16)
        SKIP_TEST("the kernel refuses process_madvise on the process itself (Linux before 6.14, "
                  "or a seccomp filter): one madvise a range");
    assert_int_equal(calls, 1);
}

#ifdef SYS_process_madvise
/* In this process from now on, process_madvise kills it (as a seccomp
 * allow-list that lacks it does under systemd); everything else runs. */
static int kill_on_process_madvise(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_madvise, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = (unsigned short)(sizeof f / sizeof f[0]), .filter = f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}
#endif

/* Under a seccomp filter the purge makes only madvise calls: a filter that
 * does not list process_madvise may kill the process for it.  The child
 * looked before (the test before purged in vectors), and looks again as
 * ebb does when it starts. */
static void test_no_vector_under_a_seccomp_filter(void **state)
{
    (void)state;
#ifndef SYS_process_madvise
    SKIP_TEST("no process_madvise in this C library's headers");
#else
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (kill_on_process_madvise() != 0)
            _exit(3);
        ebb__os_purge_setup(); /* as when ebb starts in a process run under the filter */
        size_t n = 8 * 4096;
        unsigned char *p = ebb__os_map(n);
        memset(p, 0xff, n);
        ebb__os_range_t r[2] = { { p, 4096 }, { p + 4 * 4096, 4096 } };
        unsigned calls = ebb__os_purge_ranges(r, 2, 0);
        _exit(calls == 2 && p[0] == 0 && p[4 * 4096] == 0 && p[4096] == 0xff ? 0 : 4);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 3)
        SKIP_TEST("cannot install a seccomp filter here");
    assert_false(WIFSIGNALED(st)); /* SIGSYS: the vector was tried */
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
#endif
}

/* A holder sees that another thread sleeps on the lock, and no longer
 * once it is let in. */
static ebb__lock_t waited_lock = EBB_LOCK_INIT;

static void *take_waited(void *arg)
{
    (void)arg;
    ebb__lock(&waited_lock);
    ebb__unlock(&waited_lock);
    return NULL;
}

static void test_lock_tells_a_holder_of_waiters(void **state)
{
    (void)state;
    ebb__lock(&waited_lock);
    assert_false(ebb__lock_waited(&waited_lock));
    pthread_t t;
    pthread_create(&t, NULL, take_waited, NULL);
    int seen = 0;
    for (int ms = 0; ms < 10000 && !seen; ms++) { /* the waiter spins, then sleeps */
        seen = ebb__lock_waited(&waited_lock);
        if (!seen)
            usleep(1000);
    }
    assert_true(seen);
    ebb__unlock(&waited_lock);
    pthread_join(t, NULL);
    assert_false(ebb__lock_waited(&waited_lock));
}

static void test_remap_preserves_contents(void **state)
{
    (void)state;
    size_t old = 8 * 4096, big = 4096 * 4096;
    unsigned char *p = ebb__os_map(old);
    for (size_t i = 0; i < old; i++)
        p[i] = (unsigned char)i;
    int no_memory;
    unsigned char *q = ebb__os_remap(p, old, big, 1, &no_memory);
    assert_non_null(q);
    for (size_t i = 0; i < old; i++)
        assert_int_equal(q[i], (unsigned char)i);
    unsigned char *r = ebb__os_remap(q, big, 4096, 0, &no_memory);
    assert_ptr_equal(r, q); /* shrinking never moves */
    assert_int_equal(r[100], 100);
    ebb__os_unmap(r, 4096);
}

/* A move takes the source's pages to the destination without copying; a
 * refused one (here: a source the kernel rejects, not page-aligned) leaves
 * the source as it was and the destination mapped again, fresh, so a block
 * that was to be filled keeps no hole whatever the kernel did first. */
static void test_move_and_refused_move(void **state)
{
    (void)state;
    size_t page = ebb__os_page_size(), n = 3 * page;
    unsigned char *src = ebb__os_map(n), *dst = ebb__os_map(n);
    assert_non_null(src);
    assert_non_null(dst);
    memset(src, 0xab, n);
    memset(dst, 0x11, n);
    assert_int_equal(ebb__os_move(src, n, dst), 1);
    assert_int_equal(dst[0], 0xab);
    assert_int_equal(dst[n - 1], 0xab);

    src = ebb__os_map(n + page);
    assert_non_null(src);
    memset(src, 0xcd, n + page);
    memset(dst, 0x22, n);
    assert_int_equal(ebb__os_move(src + 16, n, dst), 0);
    assert_int_equal(src[0], 0xcd); /* the source is untouched */
    assert_int_equal(src[n], 0xcd);
    for (size_t i = 0; i < n; i += 512)
        assert_int_equal(dst[i], 0); /* fresh again, and mapped */
    memset(dst, 0x33, n);
    ebb__os_unmap(src, n + page);
    ebb__os_unmap(dst, n);
}

static void test_getenv_without_allocating(void **state)
{
    (void)state;
    char buf[16];
    setenv("EBB_UNIT_PROBE", "hello-world-long-value", 1);
    assert_int_equal(ebb__os_getenv("EBB_UNIT_PROBE", buf, sizeof buf), -1); /* cut, and said */
    assert_string_equal(buf, "hello-world-lon");
    setenv("EBB_UNIT_PROBE", "hello", 1);
    assert_int_equal(ebb__os_getenv("EBB_UNIT_PROBE", buf, sizeof buf), 1);
    assert_string_equal(buf, "hello");
    assert_false(ebb__os_getenv("EBB_UNIT_PROB", buf, sizeof buf));
    assert_false(ebb__os_getenv("EBB_UNIT_NOT_SET", buf, sizeof buf));
}

/* Before the C library sets `environ`, the kernel's copy is read: values
 * of any length (a PATH_MAX path), whole or said to be cut. */
#define LONG_VALUE 4500
static int child_proc_environ(void)
{
    extern char **environ;
    static char buf[LONG_VALUE + 100];
    char **saved = environ;
    environ = NULL;
    int whole = ebb__os_getenv("EBB_UNIT_LONG", buf, sizeof buf);
    size_t len = strlen(buf);
    int cut = ebb__os_getenv("EBB_UNIT_LONG", buf, 100);
    size_t cut_len = strlen(buf);
    int prefix = ebb__os_getenv("EBB_UNIT_LON", buf, sizeof buf);
    int after = ebb__os_getenv("EBB_UNIT_AFTER", buf, sizeof buf);
    environ = saved;
    printf("whole=%d len=%zu cut=%d cut_len=%zu prefix=%d after=%d:%s\n", whole, len, cut,
           cut_len, prefix, after, buf);
    return 0;
}

static void test_getenv_before_environ(void **state)
{
    (void)state;
    static char long_env[LONG_VALUE + 32];
    int n = snprintf(long_env, sizeof long_env, "EBB_UNIT_LONG=");
    memset(long_env + n, 'x', LONG_VALUE);
    char *envp[] = { "EBB_UNIT_LO=1", long_env, "EBB_UNIT_AFTER=yes", NULL };
    char out[512];
    int st = child_run("proc_environ", envp, out, sizeof out);
    assert_int_equal(st, 0);
    assert_string_equal(out, "whole=1 len=4500 cut=-1 cut_len=99 prefix=0 after=1:yes\n");
}

static ebb__lock_t counter_lock = EBB_LOCK_INIT;
static long counter;

static void *bump(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200000; i++) {
        ebb__lock(&counter_lock);
        counter++;
        ebb__unlock(&counter_lock);
    }
    return NULL;
}

static void test_lock_excludes(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, bump, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(counter, 800000);
    assert_true(ebb__trylock(&counter_lock));
    assert_false(ebb__trylock(&counter_lock));
    ebb__unlock(&counter_lock);
}

static void test_clock_advances(void **state)
{
    (void)state;
    uint64_t a = ebb__os_now_ns(), b = ebb__os_now_ns();
    assert_true(b >= a);
}

static void test_utc_dates(void **state)
{
    (void)state;
    static const struct { long long t; const char *s; } cases[] = {
        { 0, "1970-01-01T00:00:00Z" },          { 86399, "1970-01-01T23:59:59Z" },
        { 951782400, "2000-02-29T00:00:00Z" },  { 978307199, "2000-12-31T23:59:59Z" },
        { 1709251199, "2024-02-29T23:59:59Z" }, { 4107542399LL, "2100-02-28T23:59:59Z" },
        { 4107542400LL, "2100-03-01T00:00:00Z" }, { -1, "1969-12-31T23:59:59Z" },
    };
    char buf[24];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ebb__os_format_utc(cases[i].t, buf);
        assert_string_equal(buf, cases[i].s);
    }
    ebb__os_format_utc(ebb__os_wall_seconds(), buf);
    assert_true(strncmp(buf, "20", 2) == 0 && strlen(buf) == 20);
}

static void test_largest_gap(void **state)
{
    (void)state;
    uintptr_t at = 0;
    size_t gap = ebb__os_largest_gap(&at);
    assert_true(gap >= ((size_t)1 << 30)); /* any 64-bit or 32-bit process has 1 GiB free */
    assert_int_equal(at % ebb__os_page_size(), 0);
    /* A reservation in the middle of the largest hole shrinks it. */
    void *want = (void *)(at + gap / 2);
    void *p = ebb__os_map_at(want, 1 << 20);
    if (p == want) {
        uintptr_t at2;
        size_t gap2 = ebb__os_largest_gap(&at2);
        assert_true(gap2 < gap && gap2 >= gap / 2 - (1 << 20));
    }
    if (p)
        ebb__os_unmap(p, 1 << 20);
}

/* The signals a report may be asked with: USR1, USR2 and the real-time
 * ones, by name or number; every other is refused. */
static void test_signal_names(void **state)
{
    (void)state;
    assert_int_equal(ebb__os_report_signal("USR1"), SIGUSR1);
    assert_int_equal(ebb__os_report_signal("SIGUSR2"), SIGUSR2);
    assert_int_equal(ebb__os_report_signal("12"), 12);
    assert_int_equal(ebb__os_report_signal("RTMIN+2"), SIGRTMIN + 2);
    assert_int_equal(ebb__os_report_signal("RTMIN+12"), SIGRTMIN + 12);
    assert_int_equal(ebb__os_report_signal("SIGRTMAX-1"), SIGRTMAX - 1);
    assert_int_equal(ebb__os_report_signal("RTMIN"), SIGRTMIN);
    assert_int_equal(ebb__os_report_signal("RTMAX+1"), 0);
    assert_int_equal(ebb__os_report_signal("RTMIN+99"), 0);
    assert_int_equal(ebb__os_report_signal("KILL"), 0);
    assert_int_equal(ebb__os_report_signal("9"), 0);
    assert_int_equal(ebb__os_report_signal("11"), 0);
    assert_int_equal(ebb__os_report_signal("HUP"), 0);
    assert_int_equal(ebb__os_report_signal("32"), 0); /* glibc's own, below SIGRTMIN */
    assert_int_equal(ebb__os_report_signal("12x"), 0);
    assert_int_equal(ebb__os_report_signal(""), 0);
}

/* ebb's own threads: on 32-bit their stacks come from the bottom of the
 * address space (below the program's image), never from a hole glibc's
 * top-down placement would pick, and a stack is reused once its thread is
 * gone (eight threads in turn fit the four kept); on 64-bit glibc places
 * them. */
static _Atomic int stack_noted;
static _Atomic uintptr_t stack_at;

static void note_stack(void *arg)
{
    volatile int local = 0;
    (void)arg;
    atomic_store(&stack_at, (uintptr_t)&local);
    atomic_store(&stack_noted, 1);
}

static void test_own_thread_stacks(void **state)
{
    (void)state;
    for (int round = 0; round < 8; round++) {
        atomic_store(&stack_noted, 0);
        assert_int_equal(ebb__os_thread_start(note_stack, NULL, "ebb-test"), 0);
        for (int ms = 0; !atomic_load(&stack_noted); ms++) {
            assert_true(ms < 10000);
            struct timespec ts = { 0, 1000000L };
            nanosleep(&ts, NULL);
        }
        uintptr_t at = atomic_load(&stack_at);
#if UINTPTR_MAX <= 0xffffffffu
        EXPECT(ebb__os_own_stack_holds((void *)at), "round %d: stack at %#lx is glibc's", round,
               (unsigned long)at);
        EXPECT(at < (uintptr_t)&stack_noted, "round %d: stack at %#lx above the image (%p)",
               round, (unsigned long)at, (void *)&stack_noted);
#else
        EXPECT(!ebb__os_own_stack_holds((void *)at), "round %d: 64-bit stack not glibc's", round);
#endif
        /* Let the thread finish exiting, so the next may reuse its stack. */
        struct timespec gone = { 0, 100 * 1000000L };
        nanosleep(&gone, NULL);
    }
}

int main(int argc, char **argv)
{
    const char *what = child_what(argc, argv);
    if (what)
        return strcmp(what, "proc_environ") == 0 ? child_proc_environ() : 2;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_and_cpus),
        cmocka_unit_test(test_map_is_zeroed_and_writable),
        cmocka_unit_test(test_map_aligned),
        cmocka_unit_test(test_purge_zeroes_but_keeps_mapping),
        cmocka_unit_test(test_purge_ranges_in_one_call),
        cmocka_unit_test(test_no_vector_under_a_seccomp_filter),
        cmocka_unit_test(test_remap_preserves_contents),
        cmocka_unit_test(test_move_and_refused_move),
        cmocka_unit_test(test_getenv_without_allocating),
        cmocka_unit_test(test_getenv_before_environ),
        cmocka_unit_test(test_lock_excludes),
        cmocka_unit_test(test_lock_tells_a_holder_of_waiters),
        cmocka_unit_test(test_clock_advances),
        cmocka_unit_test(test_utc_dates),
        cmocka_unit_test(test_largest_gap),
        cmocka_unit_test(test_signal_names),
        cmocka_unit_test(test_own_thread_stacks),
    };
    return cmocka_run_group_tests_name("os", tests, NULL, NULL);
}
