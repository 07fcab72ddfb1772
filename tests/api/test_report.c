/*
 * ebb_report and the automatic reports: what a report says (text and JSON),
 * that its held categories add up to what is mapped, bad arguments, and the
 * reports ebb writes by itself: once, on the first allocation refused for
 * want of memory, and on EBB_REPORT_SIGNAL, where EBB_REPORT says.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ebb.h"
#include "api.h"
#include "child.h"

static char report_buf[4 << 20]; /* a page: the viewer and the JSON with its heap maps */

/* The report ebb writes to a fresh temporary file, as a string. */
static const char *report_of(int format)
{
    char path[] = "/tmp/ebb-report-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(ebb_report(fd, format), 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    ssize_t n = read(fd, report_buf, sizeof report_buf - 1);
    close(fd);
    assert_true(n > 0);
    report_buf[n] = '\0';
    return report_buf;
}

/* The number after "key": in a JSON text (keys here are unique). */
static size_t json_number(const char *json, const char *key)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr(json, pattern);
    EXPECT(at != NULL, "no %s in %.200s", pattern, json);
    return (size_t)strtoull(at + strlen(pattern), NULL, 10);
}

static void test_text_report(void **state)
{
    (void)state;
    void *p[200];
    for (int i = 0; i < 200; i++)
        p[i] = ebb_malloc(4000); /* the 4096-byte class */
    void *big = ebb_malloc(3 * MiB);
    const char *r = report_of(EBB_REPORT_TEXT);
    EXPECT(strncmp(r, "== ebb report: pid ", 19) == 0, "%.80s", r);
    const char *lines[] = {
        "reason      asked for (ebb_report)\n", "limit       none\n", "\nmemory      committed ",
        ", live ", "\nheld        ", " mapped = live ", " + free in pools ", " + metadata ",
        " + thread caches ", "\ngiven back  ", "size classes by pool bytes", "  4096 B: ",
        "address space: largest free range ", "== end of ebb report",
        "\nresident    RSS ", "\n            ebb's: live small ",
        "\n            not ebb's: files ", " changed between the reads\n",
    };
    for (size_t i = 0; i < ARRAY_LEN(lines); i++)
        EXPECT(strstr(r, lines[i]) != NULL, "no \"%s\" in:\n%s", lines[i], r);
    EXPECT(strstr(r, "failed ") == NULL, "no failure yet:\n%s", r);

    for (int i = 0; i < 200; i++)
        ebb_free(p[i]);
    ebb_free(big);
}

static void test_json_report_adds_up(void **state)
{
    (void)state;
    void *p[300];
    for (int i = 0; i < 300; i++)
        p[i] = ebb_malloc((size_t)(16 + i * 8));
    void *big = ebb_malloc(2 * MiB);
    const char *j = report_of(EBB_REPORT_JSON);
    EXPECT(strncmp(j, "{\"schema\":\"ebb.report/1\",", 25) == 0, "%.80s", j);
    EXPECT(strstr(j, "\"limit\":null") && strstr(j, "\"failure\":null"), "%.300s", j);
    /* Every mapped byte is in exactly one of the held categories. */
    const char *held[] = { "metadata", "small_in_use", "thread_caches", "free_in_pools",
                           "free_arena_slots", "large", "large_cached" };
    size_t sum = 0;
    for (size_t i = 0; i < ARRAY_LEN(held); i++)
        sum += json_number(strstr(j, "\"held\":"), held[i]);
    size_t mapped = json_number(j, "mapped");
    EXPECT(sum == mapped, "held categories sum to %zu, mapped %zu", sum, mapped);
    EXPECT(json_number(j, "live_large") >= 2 * MiB, "%.400s", j);
    /* The resident set taken apart: ebb's parts sum to ebb's, the rest's to
     * other, and with what changed between the reads to rss. */
    const char *rss = strstr(j, "\"rss\":{");
    EXPECT(rss != NULL, "no rss section in %.400s", j);
    const char *mine[] = { "live_small", "live_large", "thread_caches", "pool_free",
                           "pools_empty", "free_slots", "large_cached", "metadata" };
    const char *rest[] = { "files", "stacks", "brk_heap", "anonymous", "kernel" };
    size_t ebb = 0, other = 0;
    for (size_t i = 0; i < ARRAY_LEN(mine); i++)
        ebb += json_number(rss, mine[i]);
    for (size_t i = 0; i < ARRAY_LEN(rest); i++)
        other += json_number(rss, rest[i]);
    EXPECT(ebb == json_number(rss, "ebb") && other == json_number(rss, "other"),
           "rss parts: %.600s", rss);
    const char *u = strstr(rss, "\"unaccounted\":");
    long long unaccounted = u ? strtoll(u + 14, NULL, 10) : 1LL << 40;
    EXPECT((long long)json_number(rss + 7, "rss") == (long long)(ebb + other) + unaccounted,
           "rss != ebb + other + unaccounted: %.600s", rss);
    EXPECT(strstr(j, "\"peak_committed_time\":\"20") != NULL, "%.400s", j);
    /* Structurally sound: balanced, no empty members, one line. */
    int depth = 0, in_str = 0;
    for (const char *c = j; *c; c++) {
        if (in_str) {
            if (*c == '\\')
                c++;
            else if (*c == '"')
                in_str = 0;
            continue;
        }
        if (*c == '"')
            in_str = 1;
        else if (*c == '{' || *c == '[')
            depth++;
        else if (*c == '}' || *c == ']')
            depth--;
        assert_true(depth >= 0);
    }
    assert_int_equal(depth, 0);
    EXPECT(!strstr(j, ",}") && !strstr(j, ",]") && !strstr(j, "{,") && !strstr(j, "[,"), "%s", j);
    EXPECT(strchr(j, '\n') == j + strlen(j) - 1, "one line");
    for (int i = 0; i < 300; i++)
        ebb_free(p[i]);
    ebb_free(big);
}

/* Most of the bytes a test allocates come from here. */
__attribute__((noinline)) void *report_test_hog(size_t n)
{
    void *p = ebb_malloc(n);
    if (p)
        memset(p, 3, n);
    return p;
}

static void test_top_site_is_the_hog(void **state)
{
    (void)state;
    size_t rate = ebb_sample_rate();
    ebb_set_sample_rate(16 * KiB);
    enum { N = 20000 };
    static void *hogged[N];
    for (int i = 0; i < N; i++)
        hogged[i] = report_test_hog(1000); /* 20 MB */
    void *other[100];
    for (int i = 0; i < 100; i++)
        other[i] = ebb_malloc(1000);
    const char *r = report_of(EBB_REPORT_TEXT);
    const char *top = strstr(r, "\n  1. ~");
    EXPECT(top != NULL, "no sites in:\n%s", r);
    const char *second = strstr(top, "\n  2. ~");
    const char *at = strstr(top, "in report_test_hog+0x");
    EXPECT(at != NULL && (second == NULL || at < second), "the top site is not the hog:\n%s", top);
    EXPECT(strstr(r, "estimated from samples (1 per 16.0 KiB allocated;") != NULL, "%s", r);
    const char *j = report_of(EBB_REPORT_JSON);
    const char *sites = strstr(j, "\"sites\":{\"estimated\":true,\"rate\":16384,");
    EXPECT(sites != NULL, "%.2000s", strstr(j, "\"sites\"") ? strstr(j, "\"sites\"") : j);
    EXPECT(strstr(sites, "\"frames\":[\"report_test_hog+0x") != NULL, "%.600s", sites);
    /* The estimate is near the truth: 20000 blocks of 1000 bytes. */
    size_t live = json_number(sites, "live_bytes");
    EXPECT(live > 16 * MiB && live < 24 * MiB, "hog's estimated live bytes %zu", live);
    for (int i = 0; i < N; i++)
        ebb_free(hogged[i]);
    for (int i = 0; i < 100; i++)
        ebb_free(other[i]);
    r = report_of(EBB_REPORT_TEXT);
    /* Gone from what is live now; still what was live at the peak. */
    const char *peak = strstr(r, "\nat the peak committed ");
    EXPECT(peak != NULL, "no peak section:\n%s", r);
    const char *hog = strstr(r, "report_test_hog");
    EXPECT(hog != NULL && peak != NULL && hog > peak,
           "freed, yet the hog is listed as live, or not at the peak:\n%s", r);
    ebb_set_sample_rate(rate);
}

static int count(const char *hay, const char *needle);

/* Distinct stacks: a site per depth. */
__attribute__((noinline)) static void *alloc_at_depth(int depth, size_t n)
{
    void *p = depth > 0 ? alloc_at_depth(depth - 1, n) : ebb_malloc(n);
    __asm__ volatile("" ::: "memory"); /* no tail call: each depth its own frame */
    return p;
}

/* One screen: at most about 60 lines, whatever the heap holds: here
 * thirty sites, every size class, a peak. */
static void test_text_report_fits_a_screen(void **state)
{
    (void)state;
    size_t rate = ebb_sample_rate();
    ebb_set_sample_rate(4 * KiB);
    enum { DEPTHS = 30, EACH = 200 };
    static void *v[DEPTHS * EACH];
    for (int d = 0; d < DEPTHS; d++)
        for (int i = 0; i < EACH; i++)
            v[d * EACH + i] = alloc_at_depth(d, (size_t)(16 + (d * EACH + i) * 97 % 60000));
    const char *r = report_of(EBB_REPORT_TEXT);
    int lines = count(r, "\n");
    EXPECT(lines <= 60, "%d lines:\n%s", lines, r);
    EXPECT(count(r, "\n  1") >= 2 && strstr(r, "\n  10. ~") != NULL, "ten sites:\n%s", r);
    for (int i = 0; i < DEPTHS * EACH; i++)
        ebb_free(v[i]);
    ebb_set_sample_rate(rate);
}

/* EBB_REPORT_HTML: the viewer around the JSON, whose every '<' is escaped
 * so nothing in it can end its script element early. */
static void test_html_report(void **state)
{
    (void)state;
    const char *r = report_of(EBB_REPORT_HTML);
    EXPECT(strncmp(r, "<!DOCTYPE html>", 15) == 0, "%.200s", r);
    const char *data = strstr(r, "<script type=\"application/json\" id=\"ebb-data\">\n");
    EXPECT(data != NULL, "no data element in the page");
    if (data) {
        data = strchr(data, '\n') + 1;
        const char *end = strstr(data, "</script>");
        EXPECT(end != NULL && strncmp(data, "{\"schema\":\"ebb.report/1\"", 24) == 0,
               "%.200s", data);
        EXPECT(end != NULL && memchr(data, '<', (size_t)(end - data)) == NULL,
               "a '<' inside the page's JSON");
    }
    EXPECT(strstr(r, "</html>") != NULL, "the page does not end");
}

static void test_bad_arguments(void **state)
{
    (void)state;
    errno = 0;
    assert_int_equal(ebb_report(-1, EBB_REPORT_TEXT), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(ebb_report(1, 7), -1);
    assert_int_equal(errno, EINVAL);
    int ro = open("/dev/null", O_RDONLY);
    assert_true(ro >= 0);
    errno = 0;
    assert_int_equal(ebb_report(ro, EBB_REPORT_TEXT), -1);
    assert_int_equal(errno, EBADF);
    close(ro);
}

/* ------------------------------------------------ automatic, in a child */

static char report_path[64];

static void read_file(const char *path, char *out, size_t len)
{
    out[0] = '\0';
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    read_all(fd, out, len);
    close(fd);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *at = hay; (at = strstr(at, needle)) != NULL; at += strlen(needle))
        n++;
    return n;
}

/* Run child WHAT with EBB_REPORT=report_path and the extra settings. */
static int run_child(const char *what, const char *extra1, const char *extra2, char *out,
                     size_t outlen)
{
    static char report_env[96];
    snprintf(report_path, sizeof report_path, "/tmp/ebb-report-test-%d", (int)getpid());
    snprintf(report_env, sizeof report_env, "EBB_REPORT=%s", report_path);
    unlink(report_path);
    const char *env[] = { report_env, extra1, extra2 };
    return child_run_env(what, env, ARRAY_LEN(env), out, outlen);
}

/* Child WHAT must exit 0; what it wrote to EBB_REPORT goes to rep. */
static void run_child_for_report(const char *what, const char *extra1, const char *extra2,
                                 char *out, size_t outlen, char *rep, size_t replen)
{
    int st = run_child(what, extra1, extra2, out, outlen);
    EXPECT(child_exited(st, 0), "status %d: %s", st, out);
    if (rep != NULL) {
        read_file(report_path, rep, replen);
        unlink(report_path);
    }
}

static void test_first_failure_report_once(void **state)
{
    (void)state;
    char out[4096], rep[64 * 1024];
    run_child_for_report("fail_twice", "EBB_LIMIT=32M", NULL, out, sizeof out, rep, sizeof rep);
    EXPECT(count(rep, "== ebb report: pid") == 1, "one report:\n%s", rep);
    EXPECT(strstr(rep, "reason      first allocation refused at the limit\n") != NULL, "%s", rep);
    EXPECT(strstr(rep, "limit       32.0 MiB (EBB_LIMIT)") != NULL, "%s", rep);
    EXPECT(strstr(rep, "failed      64.0 MiB refused at the limit of 32.0 MiB") != NULL, "%s", rep);
    EXPECT(strstr(out, "== ebb report") == NULL, "nothing on stderr but the one line: %s", out);
}

static void test_failure_report_json(void **state)
{
    (void)state;
    char out[4096], rep[64 * 1024];
    run_child_for_report("fail_twice", "EBB_LIMIT=32M", "EBB_REPORT_FORMAT=json", out, sizeof out,
                         rep, sizeof rep);
    EXPECT(strncmp(rep, "{\"schema\":\"ebb.report/1\"", 24) == 0, "%.200s", rep);
    EXPECT(strstr(rep, "\"failure\":{\"kind\":\"limit\",\"request\":67108864,") != NULL, "%s", rep);
    EXPECT(strstr(rep, "\"source\":\"EBB_LIMIT\"") != NULL, "%s", rep);
}

static void test_no_report_for_impossible_size_or_when_off(void **state)
{
    (void)state;
    char out[4096], rep[4096];
    int st = run_child("impossible", NULL, NULL, out, sizeof out);
    EXPECT(child_exited(st, 0), "status %d: %s", st, out);
    read_file(report_path, rep, sizeof rep);
    EXPECT(rep[0] == '\0', "no report for a request no object can have:\n%s", rep);
    static char off[] = "EBB_REPORT=off";
    char *envp[] = { off, "EBB_LIMIT=32M", NULL };
    st = child_run("fail_twice", envp, out, sizeof out);
    EXPECT(child_exited(st, 0), "status %d: %s", st, out);
    EXPECT(strstr(out, "== ebb report") == NULL, "EBB_REPORT=off: %s", out);
    unlink(report_path);
}

static void test_report_on_signal(void **state)
{
    (void)state;
    char out[4096], rep[64 * 1024];
    run_child_for_report("signal", "EBB_REPORT_SIGNAL=USR2", NULL, out, sizeof out, rep,
                         sizeof rep);
    EXPECT(count(rep, "== ebb report: pid") == 1, "%s", rep);
    EXPECT(strstr(rep, "reason      signal EBB_REPORT_SIGNAL\n") != NULL, "%s", rep);
    EXPECT(strstr(rep, "== end of ebb report\n") != NULL, "%s", rep);
}

/* A symbolic link planted at EBB_REPORT is not followed: its target keeps
 * what it held, and the report goes to stderr with a word why.  A report
 * file ebb creates is the user's alone (it holds code addresses). */
static void test_report_file_opened_safely(void **state)
{
    (void)state;
    char out[64 * 1024], victim[96], env[128];
    snprintf(victim, sizeof victim, "/tmp/ebb-report-victim-%d", (int)getpid());
    snprintf(report_path, sizeof report_path, "/tmp/ebb-report-test-%d", (int)getpid());
    unlink(report_path);
    FILE *f = fopen(victim, "w");
    assert_non_null(f);
    fputs("someone else's file\n", f);
    fclose(f);
    assert_int_equal(symlink(victim, report_path), 0);
    snprintf(env, sizeof env, "EBB_REPORT=%s", report_path);
    char *envp[] = { env, "EBB_LIMIT=32M", NULL };
    int st = child_run("fail_twice", envp, out, sizeof out);
    char held[256];
    read_file(victim, held, sizeof held);
    unlink(report_path);
    unlink(victim);
    SOFT(child_exited(st, 0), "status %d: %s", st, out);
    SOFT(strcmp(held, "someone else's file\n") == 0, "the link's target was written:\n%s", held);
    SOFT(strstr(out, "ebb: cannot write the report to ") != NULL &&
             strstr(out, "== ebb report: pid") != NULL,
         "the report, on stderr, with a word why:\n%.2000s", out);

    char rep[64 * 1024];
    run_child_for_report("fail_twice", "EBB_LIMIT=32M", NULL, out, sizeof out, NULL, 0);
    struct stat st_rep;
    int made = stat(report_path, &st_rep) == 0;
    read_file(report_path, rep, sizeof rep);
    unlink(report_path);
    SOFT(made && (st_rep.st_mode & 0777) == 0600, "mode %o", made ? st_rep.st_mode & 0777 : 0);
    SOFT(count(rep, "== ebb report: pid") == 1, "%s", rep);
    END_SOFT();
}

/* Children: each exits 0 when what it saw is right. */
static int child_main(const char *what)
{
    if (!strcmp(what, "fail_twice")) {
        /* Two refusals: the report is written for the first only. */
        void *a = ebb_malloc(64 * MiB), *b = ebb_malloc(64 * MiB);
        void *c = ebb_malloc(100); /* and the process goes on */
        int ok = a == NULL && b == NULL && c != NULL;
        ebb_free(c);
        return ok ? 0 : 1;
    }
    if (!strcmp(what, "impossible")) { /* no object, and (64-bit) no machine, has room */
        int ok = ebb_malloc((size_t)PTRDIFF_MAX + 1) == NULL;
        if (sizeof(size_t) > 4)
            ok = ok && ebb_malloc((size_t)PTRDIFF_MAX / 2) == NULL;
        return ok ? 0 : 1;
    }
    if (!strcmp(what, "signal")) {
        void *p = ebb_malloc(100); /* a slow path arms the signal */
        raise(SIGUSR2);
        /* The reporter thread writes it; wait up to 10 s for the end. */
        char rep[64 * 1024];
        for (int i = 0; i < 1000; i++) {
            read_file(getenv("EBB_REPORT"), rep, sizeof rep);
            if (strstr(rep, "== end of ebb report\n"))
                break;
            struct timespec ts = { 0, 10 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
        ebb_free(p);
        return 0;
    }
    return 2;
}

CHILD_TEST_MAIN("report", child_main,
                T(test_text_report), T(test_json_report_adds_up), T(test_top_site_is_the_hog),
                T(test_text_report_fits_a_screen), T(test_html_report), T(test_bad_arguments), T(test_first_failure_report_once),
                T(test_failure_report_json), T(test_no_report_for_impossible_size_or_when_off),
                T(test_report_on_signal), T(test_report_file_opened_safely))
