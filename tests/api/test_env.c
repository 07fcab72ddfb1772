/*
 * Hostile or careless values in the environment, through a real program:
 * each case starts this binary as a child with the variables set and
 * checks what it did (its status, its output, the files it left).  An
 * unusable value is refused with one line on stderr and the default used;
 * it never makes the program loop, abort, crawl or write elsewhere.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ebb.h"
#include "api.h"
#include "child.h"

static char out[64 * 1024];

/* Run child WHAT with the settings given (up to CHILD_ENV_MAX). */
static int run(const char *what, const char *a, const char *b, const char *c)
{
    const char *env[] = { a, b, c };
    return child_run_env(what, env, ARRAY_LEN(env), out, sizeof out);
}

static int has(const char *text)
{
    return strstr(out, text) != NULL;
}

/* ------------------------------------------------ EBB_REPORT_SIGNAL */

/* A signal that means something else is refused, whether named by number
 * or by name: caught, SIGILL (or SIGSEGV) would fault again for ever,
 * writing reports; SIGHUP and SIGPIPE would no longer end the program. */
static void test_report_signal_only_usr_and_realtime(void **state)
{
    (void)state;
    static const struct {
        const char *env;
        int sig;
    } refused[] = {
        { "EBB_REPORT_SIGNAL=4", SIGILL },
        { "EBB_REPORT_SIGNAL=13", SIGPIPE },
        { "EBB_REPORT_SIGNAL=HUP", SIGHUP },
        { "EBB_REPORT_SIGNAL=SIGQUIT", SIGQUIT },
    };
    for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
        char what[32];
        snprintf(what, sizeof what, "raise_%d", refused[i].sig);
        /* The child must start with the default action: a shell's
         * background job ignores SIGQUIT, nohup SIGHUP, and an ignored
         * disposition survives exec. */
        struct sigaction dfl, was;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(refused[i].sig, &dfl, &was);
        int st = run(what, refused[i].env, NULL, NULL);
        sigaction(refused[i].sig, &was, NULL);
        SOFT(child_killed(st, refused[i].sig), "%s: status %#x, not killed by its signal:\n%s",
             refused[i].env, st, out);
        SOFT(has("ebb: ignoring EBB_REPORT_SIGNAL=") &&
                 has(" (only USR1, USR2 or a real-time signal may ask for a report)\n"),
             "%s: no word of it:\n%s", refused[i].env, out);
    }
    END_SOFT();
}

/* Those that may, by name or number, still write a report. */
static void test_report_signal_usr_and_realtime_work(void **state)
{
    (void)state;
    char report_env[64];
    snprintf(report_env, sizeof report_env, "EBB_REPORT=/tmp/ebb-env-report-%d", (int)getpid());
    static const struct {
        const char *env;
        const char *what;
    } accepted[] = {
        { "EBB_REPORT_SIGNAL=12", "signal_usr2" },
        { "EBB_REPORT_SIGNAL=SIGUSR2", "signal_usr2" },
        { "EBB_REPORT_SIGNAL=RTMIN+1", "signal_rtmin1" },
        { "EBB_REPORT_SIGNAL=RTMAX-2", "signal_rtmax2" },
    };
    for (size_t i = 0; i < ARRAY_LEN(accepted); i++) {
        int st = run(accepted[i].what, accepted[i].env, report_env, NULL);
        unlink(report_env + strlen("EBB_REPORT="));
        SOFT(child_exited(st, 0) && has("report written\n") && !has("ignoring"),
             "%s: status %#x:\n%s", accepted[i].env, st, out);
    }
    END_SOFT();
}

/* ------------------------------------------------------ EBB_SAMPLE_RATE */

/* A sample per byte or two made a 20 MB Python workload take 865 MB and
 * 60 times as long: the rate has a floor of 4 KiB; 0 still turns sampling
 * off. */
static void test_sample_rate_floor(void **state)
{
    (void)state;
    static const struct {
        const char *env;
        const char *rate;
        int refused;
    } cases[] = {
        { "EBB_SAMPLE_RATE=1", "rate=524288\n", 1 },
        { "EBB_SAMPLE_RATE=4095", "rate=524288\n", 1 },
        { "EBB_SAMPLE_RATE=4K", "rate=4096\n", 0 },
        { "EBB_SAMPLE_RATE=0", "rate=0\n", 0 },
        { "EBB_SAMPLE_RATE=1M", "rate=1048576\n", 0 },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        int st = run("sample_rate", cases[i].env, NULL, NULL);
        SOFT(child_exited(st, 0) && has(cases[i].rate), "%s: status %#x, expected %s:\n%s",
             cases[i].env, st, cases[i].rate, out);
        SOFT(has("ebb: ignoring EBB_SAMPLE_RATE=") == cases[i].refused &&
                 has("(below 4 KiB, the least it may be; 0 for off)\n") == cases[i].refused,
             "%s: the message:\n%s", cases[i].env, out);
    }
    END_SOFT();
}

/* ----------------------------------------------------------- EBB_LIMIT */

/* A limit below what ebb and the C library's start-up need made programs
 * fail before main (EBB_LIMIT=1: /bin/true aborted in glibc): refused, with
 * a line saying the least; no limit is set. */
static void test_limit_floor(void **state)
{
    (void)state;
    static const struct {
        const char *env;
        const char *limit;
        int refused;
    } cases[] = {
        { "EBB_LIMIT=1", "limit=0 ", 1 },
        { "EBB_LIMIT=1M", "limit=0 ", 1 },
        { "EBB_LIMIT=4095K", "limit=0 ", 1 },
        { "EBB_LIMIT=4M", "limit=4194304 ", 0 },
        { "EBB_LIMIT=0", "limit=0 ", 0 },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        int st = run("limit", cases[i].env, NULL, NULL);
        SOFT(child_exited(st, 0) && has(cases[i].limit) && has("allocated\n"),
             "%s: status %#x, expected %s:\n%s", cases[i].env, st, cases[i].limit, out);
        SOFT(has("ebb: ignoring EBB_LIMIT=") == cases[i].refused &&
                 has(" (below 4 MiB, the least ebb can work in; 0 for none)\n") == cases[i].refused,
             "%s: the message:\n%s", cases[i].env, out);
    }
    END_SOFT();
}

/* ------------------------------------------------------ long paths */

static char top[64];

/* top/ddd.../ddd.../... (components of 200 bytes) made, `depth` deep, into
 * path: a directory path of about 201 * depth bytes. */
static void deep_dir(char *path, size_t cap, int depth)
{
    snprintf(top, sizeof top, "/tmp/ebb-env-paths-%d", (int)getpid());
    mkdir(top, 0700);
    snprintf(path, cap, "%s", top);
    for (int i = 0; i < depth; i++) {
        size_t at = strlen(path);
        path[at++] = '/';
        memset(path + at, 'a' + i % 26, 200);
        path[at + 200] = '\0';
        assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
    }
}

/* Everything below top, deepest first, and top. */
static void remove_top(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    assert_int_equal(system(cmd), 0);
}

/* Files in dir (none expected), as text. */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += e->d_name[0] != '.' && e->d_type != DT_DIR;
    if (d)
        closedir(d);
    return n;
}

/* A path of 3000 bytes is used whole (it was cut at 255, so the report
 * went to another file); one longer than PATH_MAX is refused with a line,
 * and nothing is written where a cut would have pointed. */
static void test_paths_up_to_path_max(void **state)
{
    (void)state;
    static char dir[PATH_MAX * 2], file[PATH_MAX * 2 + 16], env_report[PATH_MAX * 2 + 32],
        env_box[PATH_MAX * 2 + 32];
    deep_dir(dir, sizeof dir, 14); /* ~2830 bytes */
    snprintf(file, sizeof file, "%s/report", dir);
    snprintf(env_report, sizeof env_report, "EBB_REPORT=%s", file);
    snprintf(env_box, sizeof env_box, "EBB_BLACKBOX=%s/box", dir);
    int st = run("fail_at_limit", env_report, env_box, "EBB_LIMIT=16M");
    SOFT(child_exited(st, 0) && !has("ignoring") && !has("cannot"), "status %#x:\n%.3000s", st,
         out);
    SOFT(access(file, F_OK) == 0, "no report at the %zu-byte path", strlen(file));
    snprintf(file, sizeof file, "%s/box", dir);
    SOFT(access(file, F_OK) == 0, "no black box at the %zu-byte path", strlen(file));

    /* Past PATH_MAX: the last component starts before byte 4095 and ends
     * after it, so a cut path would name a file in `dir`. */
    deep_dir(dir, sizeof dir, 20); /* ~4040 bytes */
    size_t at = strlen(dir);
    dir[at] = '/';
    memset(dir + at + 1, 'z', 250);
    dir[at + 251] = '\0';
    snprintf(env_report, sizeof env_report, "EBB_REPORT=%s", dir);
    snprintf(env_box, sizeof env_box, "EBB_BLACKBOX=%s.box", dir);
    dir[at] = '\0';
    st = run("fail_at_limit", env_report, env_box, "EBB_LIMIT=16M");
    SOFT(child_exited(st, 0), "status %#x:\n%.3000s", st, out);
    SOFT(has("ebb: ignoring EBB_REPORT=/tmp/ebb-env-paths-") && has("... (longer than PATH_MAX)\n"),
         "%.3000s", out);
    SOFT(has("ebb: ignoring EBB_BLACKBOX=/tmp/ebb-env-paths-"), "%.3000s", out);
    SOFT(has("== ebb report: pid "), "the report goes to stderr:\n%.3000s", out);
    SOFT(entries(dir) == 0, "a file was made at a cut path in %s", dir);
    remove_top();
    END_SOFT();
}

/* ------------------------------------------------ a report not written */

/* EBB_REPORT=/dev/full: every write fails (ENOSPC).  Two automatic reports
 * (the first refusal at the limit, then the signal's) are lost, and that is
 * said on stderr, once. */
static void test_failed_report_write_is_said_once(void **state)
{
    (void)state;
    int st = run("report_to_full", "EBB_REPORT=/dev/full", "EBB_LIMIT=16M", "EBB_REPORT_SIGNAL=USR1");
    const char *line = "ebb: cannot write the report to /dev/full (No space left on device); "
                       "this is said once\n";
    int n = 0;
    for (const char *at = out; (at = strstr(at, line)) != NULL; at += strlen(line))
        n++;
    EXPECT(child_exited(st, 0) && has("both reports tried\n"), "status %#x:\n%s", st, out);
    EXPECT(n == 1, "said %d times:\n%s", n, out);
}

/* ------------------------------------------------------------ children */

/* The thread called `name`: its id, or 0. */
static long thread_named(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    long found = 0;
    while (d && found == 0 && (e = readdir(d)) != NULL) {
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f && fgets(comm, sizeof comm, f) && strncmp(comm, name, strlen(name)) == 0)
            found = atol(e->d_name);
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return found;
}

/* Thread tid's system call now (/proc: number and arguments) into line,
 * and how often it has blocked. */
static long thread_waits(long tid, char *line, size_t len)
{
    char path[64], text[2048];
    snprintf(path, sizeof path, "/proc/self/task/%ld/syscall", tid);
    FILE *f = fopen(path, "r");
    line[0] = '\0';
    if (f) {
        if (!fgets(line, (int)len, f))
            line[0] = '\0';
        fclose(f);
    }
    snprintf(path, sizeof path, "/proc/self/task/%ld/status", tid);
    f = fopen(path, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = '\0';
    const char *v = strstr(text, "voluntary_ctxt_switches:");
    return v ? atol(v + strlen("voluntary_ctxt_switches:")) : -1;
}

static void pause_ms(long ms)
{
    struct timespec ts = { ms / 1000, ms % 1000 * 1000000 };
    nanosleep(&ts, NULL);
}

/* The first refusal's report, then the signal's, both tried: the reporter
 * thread, woken by the signal, is seen back in the very wait it left
 * (same system call, same futex) after blocking once more. */
static int report_to_full(void)
{
    ebb_free(ebb_malloc(100)); /* a slow path starts the reporter */
    long tid = 0;
    char idle[256] = "", now[256];
    long blocked = -1;
    for (int i = 0; i < 1000 && (tid == 0 || blocked < 0 || strncmp(idle, "running", 7) == 0);
         i++) {
        pause_ms(10);
        tid = tid ? tid : thread_named("ebb-report");
        blocked = tid ? thread_waits(tid, idle, sizeof idle) : -1;
    }
    if (ebb_malloc(32 << 20) != NULL) /* past the limit: the first report */
        return 3;
    raise(SIGUSR1);
    for (int i = 0; i < 1000; i++) {
        pause_ms(10);
        if (thread_waits(tid, now, sizeof now) > blocked && strcmp(now, idle) == 0) {
            printf("both reports tried\n");
            return 0;
        }
    }
    printf("the reporter thread (%ld) was not seen back in its wait: %s", tid, now);
    return 4;
}



/* Raise sig and wait up to 10 s for the report in EBB_REPORT. */
static int report_on(int sig)
{
    void *p = ebb_malloc(100); /* a slow path arms the signal */
    raise(sig);
    const char *path = getenv("EBB_REPORT");
    for (int i = 0; i < 1000; i++) {
        char rep[64 * 1024];
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(rep, 1, sizeof rep - 1, f) : 0;
        if (f)
            fclose(f);
        rep[n] = '\0';
        if (strstr(rep, "== end of ebb report\n")) {
            printf("report written\n");
            break;
        }
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    ebb_free(p);
    return 0;
}

static int child_main(const char *what)
{
    int sig;
    if (sscanf(what, "raise_%d", &sig) == 1) {
        struct rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core); /* SIGILL and SIGQUIT leave none */
        ebb_free(ebb_malloc(100));        /* a slow path would arm the signal */
        raise(sig);
        printf("survived signal %d\n", sig);
        return 0;
    }
    if (!strcmp(what, "sample_rate")) {
        ebb_free(ebb_malloc(100));
        printf("rate=%zu\n", ebb_sample_rate());
        return 0;
    }
    if (!strcmp(what, "report_to_full"))
        return report_to_full();
    if (!strcmp(what, "fail_at_limit")) { /* a report, and a box kept */
        char *p = ebb_malloc(8 << 20), *q = ebb_malloc(32 << 20);
        if (p)
            memset(p, 1, 8 << 20);
        ebb_free(p);
        return q == NULL ? 0 : 1;
    }
    if (!strcmp(what, "limit")) {
        ebb_limit_info_t li;
        ebb_limit_info(&li);
        printf("limit=%zu source=%s\n", li.limit, li.source);
        void *small = ebb_malloc(100), *big = ebb_malloc(1 << 20);
        if (small && big)
            printf("allocated\n");
        ebb_free(small);
        ebb_free(big);
        return 0;
    }
    if (!strcmp(what, "signal_usr2"))
        return report_on(SIGUSR2);
    if (!strcmp(what, "signal_rtmin1"))
        return report_on(SIGRTMIN + 1);
    if (!strcmp(what, "signal_rtmax2"))
        return report_on(SIGRTMAX - 2);
    return 2;
}

/* /dev/stderr and /dev/stdout are symbolic links, which the report's open
 * never follows: ebb writes to the stream itself, without a complaint. */
static void test_report_to_a_standard_stream(void **state)
{
    (void)state;
    static const char *const paths[] = { "EBB_REPORT=/dev/stderr", "EBB_REPORT=/dev/stdout" };
    for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
        int st = run("fail_at_limit", "EBB_LIMIT=16M", paths[i], NULL);
        SOFT(child_exited(st, 0) && has("== ebb report") && !has("cannot write"),
             "%s: status %#x:\n%s", paths[i], st, out);
    }
    END_SOFT();
}

CHILD_TEST_MAIN("env", child_main, T(test_report_signal_only_usr_and_realtime),
                T(test_report_signal_usr_and_realtime_work), T(test_sample_rate_floor),
                T(test_limit_floor), T(test_paths_up_to_path_max),
                T(test_failed_report_write_is_said_once), T(test_report_to_a_standard_stream))
