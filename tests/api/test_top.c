/*
 * The status page `ebb top` reads (EBB_TOP=1) and the memory timeline in it,
 * from outside the process, as the tool sees them:
 *   - the page of a process that churns (its purger waking every few ms,
 *     writing the page while this test reads it as fast as it can) is
 *     never read torn; it is the process's (pid, uid, mode 0600, its word
 *     size), carries a timeline, and is gone once the process exits;
 *   - a process that grows, shrinks and grows again shows those three
 *     phases in its timeline, and the peak of committed with its time;
 *   - an idle process is not woken: once its purger has ended, its threads
 *     make no context switch in 2 s, and its page is not rewritten.
 * The churning child also reads its own page and writes JSON reports (the
 * timeline copied) while its purger writes: under ThreadSanitizer (make
 * check-tsan) that is the writer against in-process readers.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ebb.h"
#include "api.h"
#include "child.h"
#include "insight/status.h"

static long long ms_now(void)
{
    return child_now_ms();
}

static void nap_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void page_path(char *out, size_t len, long pid)
{
    snprintf(out, len, "%s/%s%u-%ld", EBB_STATUS_DIR, EBB_STATUS_PREFIX, (unsigned)geteuid(), pid);
}

/* The page of pid mapped read-only, once it exists (NULL after max_ms). */
static ebb_status_page_t *map_page(long pid, long max_ms, struct stat *st)
{
    char path[128];
    page_path(path, sizeof path, pid);
    for (long long until = ms_now() + max_ms; ms_now() < until; nap_ms(5)) {
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue;
        void *p = MAP_FAILED;
        if (fstat(fd, st) == 0 && st->st_size >= (off_t)EBB_STATUS_PAGE_SIZE)
            p = mmap(NULL, EBB_STATUS_PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (p != MAP_FAILED && memcmp(((ebb_status_page_t *)p)->h.magic, EBB_STATUS_MAGIC, 8) == 0)
            return p;
        if (p != MAP_FAILED)
            munmap(p, EBB_STATUS_PAGE_SIZE);
    }
    return NULL;
}

/* The sanitizer's settings reach the children (the TSan stage's), as a
 * NULL-ended envp with `extra` first. */
static char **child_env(const char *a, const char *b)
{
    static char tsan[512];
    static char *envp[4];
    size_t n = 0;
    envp[n++] = (char *)a;
    if (b)
        envp[n++] = (char *)b;
    const char *v = getenv("TSAN_OPTIONS");
    if (v) {
        snprintf(tsan, sizeof tsan, "TSAN_OPTIONS=%s", v);
        envp[n++] = tsan;
    }
    envp[n] = NULL;
    return envp;
}

/* ------------------------------------------------------------ children */

static atomic_int done;

/* Reads this process's own page, and writes JSON reports, while the
 * purger writes both. */
static void *self_reader(void *arg)
{
    (void)arg;
    struct stat st;
    ebb_status_page_t *page = map_page(getpid(), 5000, &st);
    static ebb_status_data_t d;
    unsigned long torn = 0, reports = 0;
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    while (!atomic_load(&done)) {
        if (page)
            ebb_status_read(page, &d, 100, &torn);
        if (reports++ % 16 == 0)
            ebb_report(devnull, EBB_REPORT_JSON);
    }
    close(devnull);
    if (page)
        munmap(page, EBB_STATUS_PAGE_SIZE);
    return (void *)(uintptr_t)(torn != 0 || page == NULL);
}

/* Allocate and free, up and down, for `ms`. */
static void churn(long ms)
{
    enum { N = 2048 };
    static void *blocks[N];
    unsigned seed = 1;
    for (long long until = ms_now() + ms; ms_now() < until;) {
        for (int round = 0; round < 64; round++) {
            seed = seed * 1103515245u + 12345u;
            unsigned i = (seed >> 8) % N;
            ebb_free(blocks[i]);
            blocks[i] = ebb_malloc(((seed >> 4) % 16 + 1) * 1024);
            if (blocks[i])
                memset(blocks[i], 1, 64);
        }
        if (seed % 64 == 0) /* now and then, all of it back: committed moves */
            for (int i = 0; i < N; i++) {
                ebb_free(blocks[i]);
                blocks[i] = NULL;
            }
    }
    for (int i = 0; i < N; i++)
        ebb_free(blocks[i]);
}

/* count blocks of `size` bytes, touched, into out. */
static void grow(void **out, size_t count, size_t size)
{
    for (size_t i = 0; i < count; i++) {
        out[i] = ebb_malloc(size);
        if (out[i])
            memset(out[i], 7, size);
    }
}

static void shrink(void **blocks, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        ebb_free(blocks[i]);
        blocks[i] = NULL;
    }
}

static int child(const char *what)
{
    if (strcmp(what, "churn") == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, self_reader, NULL) != 0)
            return 3;
        churn(2500);
        atomic_store(&done, 1);
        void *bad;
        pthread_join(t, &bad);
        return bad ? 4 : 0;
    }
    if (strcmp(what, "phases") == 0) {
        /* 64 MiB, back to nothing, then 96 MiB, of 32 KiB blocks (small
         * blocks: pools, purged page by page once free). */
        enum { SIZE = 32 << 10, FIRST = 2048, SECOND = 3072 };
        static void *blocks[SECOND];
        nap_ms(300);
        grow(blocks, FIRST, SIZE);
        nap_ms(400);
        shrink(blocks, FIRST);
        nap_ms(1200);
        grow(blocks, SECOND, SIZE);
        nap_ms(400);
        struct stat st;
        ebb_status_page_t *page = map_page(getpid(), 2000, &st);
        static ebb_status_data_t d;
        if (page == NULL || ebb_status_read(page, &d, 1000, NULL) != EBB_STATUS_READ_OK)
            return 3;
        printf("peak %llu at %llu ms; %u points, stride %llu\n",
               (unsigned long long)d.peak_committed, (unsigned long long)d.peak_committed_ms,
               d.npoints, (unsigned long long)d.stride);
        for (unsigned i = 0; i < d.npoints; i++)
            printf("point %llu %llu %llu\n", (unsigned long long)d.point[i].ms,
                   (unsigned long long)d.point[i].committed, (unsigned long long)d.point[i].live);
        shrink(blocks, SECOND);
        return 0;
    }
    if (strcmp(what, "idle") == 0) {
        static void *blocks[1024];
        grow(blocks, 1024, 32 << 10);
        shrink(blocks, 1024);
        nap_ms(8000); /* idle: the test watches */
        return 0;
    }
    return 2;
}

static pid_t start_child(const char *what, char *const envp[])
{
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        char *argv[] = { "self", "child", (char *)what, NULL };
        execve("/proc/self/exe", argv, envp);
        _exit(126);
    }
    return pid;
}

static int wait_child(pid_t pid, long max_ms)
{
    int status = -1;
    for (long long until = ms_now() + max_ms; ms_now() < until; nap_ms(10))
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return CHILD_TIMED_OUT;
}

/* --------------------------------------------------------------- tests */

static void test_churning_page_never_tears(void **state)
{
    (void)state;
    pid_t pid = start_child("churn", child_env("EBB_TOP=1", "EBB_PURGE_DELAY_MS=1"));
    EXPECT(pid > 0, "fork");
    struct stat st;
    ebb_status_page_t *page = map_page(pid, 5000, &st);
    if (page == NULL) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        if (access(EBB_STATUS_DIR, W_OK) != 0)
            SKIP_TEST("no %s here", EBB_STATUS_DIR);
        fail_msg("no status page of the child %d appeared", (int)pid);
    }
    EXPECT((st.st_mode & 07777) == 0600 && st.st_uid == geteuid() && S_ISREG(st.st_mode),
           "the page is mode %o, uid %d", (unsigned)(st.st_mode & 07777), (int)st.st_uid);
    EXPECT(page->h.pid == pid && page->h.uid == geteuid() && page->h.version == EBB_STATUS_VERSION &&
               page->h.word_bits == sizeof(void *) * 8,
           "header: pid %lld uid %u version %u bits %u", (long long)page->h.pid, page->h.uid,
           page->h.version, page->h.word_bits);
    EXPECT(strstr(page->h.cmdline, "child churn") != NULL, "command line '%s'", page->h.cmdline);
    static ebb_status_data_t d;
    unsigned long torn = 0, good = 0, busy = 0;
    uint64_t last = 0, seen = 0, points = 0;
    for (long long until = ms_now() + 2000; ms_now() < until;) {
        int r = ebb_status_read(page, &d, 1000, &torn);
        if (r == EBB_STATUS_READ_OK) {
            good++;
            seen += d.updates != last;
            last = d.updates;
            points = d.npoints;
        } else if (r == EBB_STATUS_READ_BUSY) {
            busy++;
        }
    }
    print_message("2 s of reads: %lu whole (%llu updates seen), %lu busy, %lu torn; %llu timeline "
                  "points\n", good, (unsigned long long)seen, busy, torn,
                  (unsigned long long)points);
    munmap(page, EBB_STATUS_PAGE_SIZE);
    int status = wait_child(pid, 60000);
    EXPECT(child_exited(status, 0), "the child ended with status %d (4: its own reader saw a torn "
                                    "page, or none)", status);
    EXPECT(torn == 0, "%lu torn reads", torn);
    EXPECT(good > 100 && seen >= 4, "%lu whole reads, %llu updates seen", good,
           (unsigned long long)seen);
    EXPECT(points >= 5, "only %llu timeline points in 2 s of churn", (unsigned long long)points);
    char path[128];
    page_path(path, sizeof path, pid);
    EXPECT(access(path, F_OK) != 0, "the page %s is still there after the process exited", path);
}

/* "point MS COMMITTED LIVE" lines of out. */
static size_t parse_points(const char *out, uint64_t (*pts)[2], size_t max)
{
    size_t n = 0;
    for (const char *at = strstr(out, "point "); at && n < max; at = strstr(at + 1, "point ")) {
        unsigned long long ms, committed, live;
        if (sscanf(at, "point %llu %llu %llu", &ms, &committed, &live) == 3) {
            pts[n][0] = ms;
            pts[n][1] = committed;
            n++;
        }
    }
    return n;
}

static void test_grow_shrink_grow_shows(void **state)
{
    (void)state;
    static char out[64 << 10];
    char **env = child_env("EBB_TOP=1", NULL);
    int status = child_run_within("phases", env, out, sizeof out, 120000);
    if (child_exited(status, 3) && access(EBB_STATUS_DIR, W_OK) != 0)
        SKIP_TEST("no %s here", EBB_STATUS_DIR);
    EXPECT(child_exited(status, 0), "the child ended with status %d:\n%s", status, out);
    static uint64_t pts[EBB_STATUS_POINTS][2];
    size_t n = parse_points(out, pts, EBB_STATUS_POINTS);
    const uint64_t M = 1 << 20;
    /* First peak, then a valley, then a higher peak. */
    size_t p1 = 0, v = 0, p2 = 0;
    for (size_t i = 0; i < n; i++)
        if (pts[i][1] >= 60 * M) {
            p1 = i;
            break;
        }
    for (size_t i = p1; i < n; i++)
        if (pts[i][1] <= 24 * M) {
            v = i;
            break;
        }
    for (size_t i = v; i < n; i++)
        if (pts[i][1] >= 90 * M) {
            p2 = i;
            break;
        }
    EXPECT(n >= 6 && pts[p1][1] >= 60 * M && v > p1 && p2 > v,
           "no grow (>= 60 MiB), shrink (<= 24 MiB), grow (>= 90 MiB) in the timeline "
           "(at %zu, %zu, %zu of %zu points):\n%s", p1, v, p2, n, out);
    unsigned long long peak, peak_ms;
    EXPECT(sscanf(out, "peak %llu at %llu ms", &peak, &peak_ms) == 2, "%s", out);
    EXPECT(peak >= 96 * M && peak < 140 * M, "peak committed %llu MiB", peak / M);
    EXPECT(peak_ms >= pts[v][0] && peak_ms <= pts[n - 1][0] + 50,
           "the peak's time, %llu ms, is not in the second climb (%llu..%llu ms)", peak_ms,
           (unsigned long long)pts[v][0], (unsigned long long)pts[n - 1][0]);
}

/* Context switches of every thread of pid, and how many threads; the
 * name of any thread called `name` found sets *named. */
static long long switches(pid_t pid, int *threads, const char *name, int *named)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    struct dirent *e;
    long long total = 0;
    *threads = 0;
    *named = 0;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[400], buf[4096];
        snprintf(path, sizeof path, "%s/%s/status", dir, e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        ++*threads;
        char *v = strstr(buf, "voluntary_ctxt_switches:");
        char *nv = strstr(buf, "nonvoluntary_ctxt_switches:");
        if (v)
            total += atoll(v + strlen("voluntary_ctxt_switches:"));
        if (nv)
            total += atoll(nv + strlen("nonvoluntary_ctxt_switches:"));
        if (strncmp(buf, "Name:\t", 6) == 0 && strncmp(buf + 6, name, strlen(name)) == 0)
            *named = 1;
    }
    if (d)
        closedir(d);
    return total;
}

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

static void test_idle_process_is_not_woken(void **state)
{
    (void)state;
#ifdef UNDER_TSAN
    SKIP_TEST("ThreadSanitizer's runtime has a thread of its own that wakes every process it "
              "runs in; the release and clang builds run this test");
#endif
    pid_t pid = start_child("idle", child_env("EBB_TOP=1", NULL));
    EXPECT(pid > 0, "fork");
    struct stat st;
    ebb_status_page_t *page = map_page(pid, 5000, &st);
    /* The purger gives back what was freed, then ends. */
    int threads, purger = 1;
    long long until = ms_now() + 5000;
    while (ms_now() < until) {
        nap_ms(50);
        switches(pid, &threads, "ebb-purge", &purger);
        if (!purger && ms_now() > until - 4000)
            break;
    }
    static ebb_status_data_t before, after;
    int read_before = page && ebb_status_read(page, &before, 1000, NULL) == EBB_STATUS_READ_OK;
    long long s0 = switches(pid, &threads, "ebb-purge", &purger);
    int threads0 = threads;
    nap_ms(2000);
    int purger_after;
    long long s1 = switches(pid, &threads, "ebb-purge", &purger_after);
    int read_after = page && ebb_status_read(page, &after, 1000, NULL) == EBB_STATUS_READ_OK;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    if (page)
        munmap(page, EBB_STATUS_PAGE_SIZE);
    char path[128];
    page_path(path, sizeof path, pid);
    unlink(path); /* killed: its page stays, as `ebb top` would find it */
    print_message("idle for 2 s: %lld context switches over %d threads (%d before)\n", s1 - s0,
                  threads, threads0);
    EXPECT(!purger, "the purger did not end within 5 s of the last free");
    EXPECT(threads0 == 1 && threads == 1 && !purger_after,
           "threads of the idle process: %d, then %d", threads0, threads);
    EXPECT(s1 - s0 <= 1, "the idle process was woken: %lld context switches in 2 s", s1 - s0);
    EXPECT(page != NULL && read_before && read_after, "its status page cannot be read");
    EXPECT(before.updates == after.updates,
           "its page was rewritten while it was idle (update %llu, then %llu)",
           (unsigned long long)before.updates, (unsigned long long)after.updates);
}

CHILD_TEST_MAIN("top", child, T(test_churning_page_never_tears), T(test_grow_shrink_grow_shows),
                T(test_idle_process_is_not_woken))
