/* Listening to the kernel through the public API, in fresh processes (ebb
 * reads EBB_LIMIT_PSI once): where the kernel allows a PSI trigger, a limit
 * starts the watcher on the first allocation and ebb_limit_info names the
 * file; EBB_LIMIT_PSI=0 and no limit watch nothing; the report's limit line
 * and its JSON carry the events; a fork child watches on its own file; and
 * the watcher never keeps a process alive whose main left with
 * pthread_exit.  Without PSI (or permission) the watching cases are skipped
 * with a message; the quiet ones run anyway. */
#define _GNU_SOURCE
#include <ebb.h>

#include <dirent.h>
#include <sys/syscall.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "api.h"
#include "child.h"

/* Whether this process may write a PSI trigger to the system's file (the
 * one ebb falls back to): the same test the kernel applies to ebb. */
static const char *psi_unavailable(void)
{
    static char why[128];
    int fd = open("/proc/pressure/memory", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, sizeof why, "/proc/pressure/memory: %s (no PSI here)", strerror(errno));
        return why;
    }
    static const char t[] = "some 300000 2000000";
    ssize_t w = write(fd, t, sizeof t);
    int err = errno;
    close(fd);
    if (w == (ssize_t)sizeof t)
        return NULL;
    snprintf(why, sizeof why, "the kernel refused a PSI trigger: %s", strerror(err));
    return why;
}

#define NEED_PSI()                                                                \
    do {                                                                          \
        const char *why_ = psi_unavailable();                                     \
        if (why_)                                                                 \
            SKIP_TEST("%s", why_);                                                \
    } while (0)

/* ------------------------------------------------------------- children */

/* Call fn on each entry of directory `dir`, without allocating (a fork
 * child counts threads and files before its first allocation would start
 * a watcher); returns the sum of what fn returns. */
static int each_entry(const char *dir, int (*fn)(const char *dir, const char *name))
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), n = 0;
    char buf[4096];
    long got;
    while (fd >= 0 && (got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long at = 0; at < got;) {
            struct dirent64 *e = (struct dirent64 *)(buf + at);
            if (e->d_name[0] != '.')
                n += fn(dir, e->d_name);
            at += e->d_reclen;
        }
    }
    if (fd >= 0)
        close(fd);
    return n;
}

static int is_watcher(const char *dir, const char *name)
{
    char path[300], comm[32] = "";
    snprintf(path, sizeof path, "%s/%s/comm", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t k = fd >= 0 ? read(fd, comm, sizeof comm - 1) : -1;
    if (fd >= 0)
        close(fd);
    return k > 0 && strncmp(comm, "ebb-pressure", 12) == 0;
}

static int is_pressure_fd(const char *dir, const char *name)
{
    char path[300], target[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ssize_t k = readlink(path, target, sizeof target - 1);
    if (k <= 0)
        return 0;
    target[k] = '\0';
    return strstr(target, "pressure/memory") || strstr(target, "memory.pressure");
}

/* The watcher thread runs; descriptors open on a pressure file. */
static int has_watcher(void)
{
    return each_entry("/proc/self/task", is_watcher);
}

static int pressure_fds(void)
{
    return each_entry("/proc/self/fd", is_pressure_fd);
}

/* Allocation slow paths (large blocks), then what ebb says. */
static void grow_and_tell(void)
{
    for (int i = 0; i < 8; i++) {
        void *p = ebb_malloc((size_t)(i + 1) << 20);
        ebb_free(p);
    }
    ebb_limit_info_t li;
    ebb_limit_info(&li);
    printf("source=[%s] events=%zu thread=%d fds=%d\n", li.pressure_source, li.pressure_events,
           has_watcher(), pressure_fds());
}

static void child_fork(void)
{
    grow_and_tell();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* The parent's descriptor is closed in the child (its trigger is
         * the parent's), and the child's first slow path opens its own. */
        printf("child before: thread=%d fds=%d\n", has_watcher(), pressure_fds());
        grow_and_tell();
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child status=%d\n", st);
}

static void child_report(void)
{
    grow_and_tell();
    fflush(stdout);
    ebb_report(1, EBB_REPORT_TEXT);
    ebb_report(1, EBB_REPORT_JSON);
    printf("\n");
}

static void *short_worker(void *arg)
{
    (void)arg;
    void *p = ebb_malloc(3 << 20);
    ebb_free(p);
    return NULL;
}

static void child_pthread_exit(void)
{
    grow_and_tell();
    pthread_t t;
    pthread_create(&t, NULL, short_worker, NULL);
    fflush(stdout);
    pthread_exit(NULL);
}

static int child(const char *what)
{
    alarm(60); /* after the parent's deadlines: a hang is theirs to report */
    if (!strcmp(what, "info"))
        grow_and_tell();
    else if (!strcmp(what, "fork"))
        child_fork();
    else if (!strcmp(what, "report"))
        child_report();
    else if (!strcmp(what, "pthread_exit"))
        child_pthread_exit();
    else
        return 2;
    fflush(stdout);
    return 0;
}

/* ---------------------------------------------------------------- parent */

static char out[65536];

static void run(const char *what, const char *e1, const char *e2)
{
    /* LeakSanitizer counts what glibc keeps for a main thread that leaves
     * with pthread_exit (32 bytes) as a leak: not ours, so not checked. */
    const char *env[] = { "ASAN_OPTIONS=detect_leaks=0", e1, e2 };
    int st = child_run_env(what, env, ARRAY_LEN(env), out, sizeof out);
    print_message("%s [%s %s]: %s", what, e1 ? e1 : "", e2 ? e2 : "", out);
    EXPECT(child_exited(st, 0), "child %s: status %d\n%s", what, st, out);
}

static void test_limit_watches(void **s)
{
    (void)s;
    NEED_PSI();
    run("info", "EBB_LIMIT=512M", NULL);
    /* Here: the system's file, or the cgroup v2 memory.pressure. */
    EXPECT(strstr(out, "source=[/proc/pressure/memory] events=0 thread=1 fds=1") ||
               (strstr(out, "/memory.pressure] events=0 thread=1 fds=1")),
           "%s", out);
}

static void test_asked_for_watches(void **s)
{
    (void)s;
    NEED_PSI();
    run("info", "EBB_LIMIT=512M", "EBB_LIMIT_PSI=1");
    EXPECT(strstr(out, "source=[/") && strstr(out, "] events=0 thread=1 fds=1") &&
               !strstr(out, "ebb: "),
           "%s", out);
}

static void test_off_watches_nothing(void **s)
{
    (void)s;
    run("info", "EBB_LIMIT=512M", "EBB_LIMIT_PSI=0");
    EXPECT(strstr(out, "source=[] events=0 thread=0 fds=0"), "%s", out);
}

static void test_no_limit_watches_nothing(void **s)
{
    (void)s;
    run("info", "EBB_LIMIT_PSI=1", NULL);
    EXPECT(strstr(out, "source=[] events=0 thread=0 fds=0") && !strstr(out, "ebb: "), "%s", out);
}

static void test_bad_value(void **s)
{
    (void)s;
    run("info", "EBB_LIMIT=512M", "EBB_LIMIT_PSI=maybe");
    EXPECT(strstr(out, "ignoring EBB_LIMIT_PSI=maybe"), "%s", out);
}

static void test_report_shows_it(void **s)
{
    (void)s;
    NEED_PSI();
    run("report", "EBB_LIMIT=512M", NULL);
    EXPECT(strstr(out, "; kernel pressure events 0 (/"), "%s", out);
    EXPECT(strstr(out, "\"pressure_events\":0,\"pressure_source\":\"/"), "%s", out);
    run("report", "EBB_LIMIT=512M", "EBB_LIMIT_PSI=0");
    EXPECT(!strstr(out, "kernel pressure"), "%s", out);
    EXPECT(strstr(out, "\"pressure_events\":0,\"pressure_source\":null"), "%s", out);
}

static void test_fork_child_watches_again(void **s)
{
    (void)s;
    NEED_PSI();
    run("fork", "EBB_LIMIT=512M", NULL);
    EXPECT(strstr(out, "thread=1 fds=1\nchild before: thread=0 fds=0\n"), "%s", out);
    const char *second = strstr(out, "child before");
    EXPECT(second && strstr(second, "events=0 thread=1 fds=1") && strstr(out, "child status=0"),
           "%s", out);
}

/* main leaves with pthread_exit while the watcher runs: the process ends
 * soon (the watcher looks for being alone every EBB_PRESSURE_ALIVE_MS),
 * while a watcher that kept it alive would keep it as long as its limit,
 * for ever; the test waits for the end, for at most 30 s. */
static void test_never_keeps_a_process_alive(void **s)
{
    (void)s;
    NEED_PSI();
    const char *env[] = { "ASAN_OPTIONS=detect_leaks=0", "EBB_LIMIT=512M" };
    int st = child_run_env_within("pthread_exit", env, ARRAY_LEN(env), out, sizeof out,
                                  30 * 1000L);
    print_message("pthread_exit [EBB_LIMIT=512M]: %s", out);
    EXPECT(st != CHILD_TIMED_OUT,
           "the process still ran 30 s after its threads were gone (killed):\n%s", out);
    EXPECT(child_exited(st, 0), "child pthread_exit: status %d\n%s", st, out);
    EXPECT(strstr(out, "thread=1"), "%s", out);
}

CHILD_TEST_MAIN("pressure", child,
                T(test_limit_watches), T(test_asked_for_watches),
                T(test_off_watches_nothing), T(test_no_limit_watches_nothing), T(test_bad_value),
                T(test_report_shows_it), T(test_fork_child_watches_again),
                T(test_never_keeps_a_process_alive))
