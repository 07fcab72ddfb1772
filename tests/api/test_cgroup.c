/*
 * test_cgroup.c -- EBB_LIMIT=auto in a real cgroup: the test makes a cgroup
 * of its own in the memory hierarchy (cgroup v1: memory.limit_in_bytes; v2:
 * memory.max), gives it a 64 MiB limit, moves only its own forked child
 * process into it, and there runs itself with EBB_LIMIT=auto.  That process
 * checks that the limit is the cgroup's 64 MiB less the headroom, from the
 * right source, and that allocating past it fails cleanly (NULL, ENOMEM,
 * EBB_FAIL_LIMIT) and recovers after frees; the parent checks that it
 * exited normally (the OOM killer's SIGKILL would show), then removes the
 * cgroup.  This is the evidence for the README's "45 MiB in a 64 MiB
 * cgroup, no OOM kill".
 *
 * Where the cgroup goes: under the memory cgroup this process is in, or the
 * nearest of its ancestors that can have one (v2: that has the memory
 * controller in cgroup.subtree_control, i.e. delegates it).  The limits of
 * existing cgroups, and which controllers they delegate, are never changed.
 *
 * Skipped (visibly, saying why) only where the machine has no memory
 * controller at all, or where the test is not root and may not make the
 * cgroup.  As root with a memory controller present, not being able to
 * make, limit or join the cgroup is a failure: that is the project's own
 * test machine, where this test must run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ebb.h"
#include "api.h"
#include "child.h"

#define CGROUP_LIMIT (64 * MiB)

#define PATH_LEN 1024

/* This process's cgroups from /proc/self/cgroup: path[0] in the v1 memory
 * hierarchy, path[1] in the v2 one ("" where it has none). */
static void own_cgroups(char path[2][PATH_LEN])
{
    char line[4096];
    FILE *f = fopen("/proc/self/cgroup", "r");
    path[0][0] = path[1][0] = '\0';
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL || strlen(c2 + 1) >= PATH_LEN)
            continue;
        *c2 = '\0';
        char ctl[4200];
        snprintf(ctl, sizeof ctl, ",%s,", c1 + 1);
        if (!strcmp(line, "0") && c1[1] == '\0')
            strcpy(path[1], c2 + 1);
        else if (strstr(ctl, ",memory,"))
            strcpy(path[0], c2 + 1);
    }
    if (f)
        fclose(f);
}

/* The memory hierarchies' mount points (mnt, "" where none is mounted: v1,
 * a cgroup mount with the memory controller; v2, the cgroup2 mount), and
 * this process's directory in each (dir, "" where the mount does not show
 * its cgroup), from /proc/self/mountinfo. */
static void cgroup_dirs(char path[2][PATH_LEN], char mnt[2][PATH_LEN], char dir[2][PATH_LEN])
{
    char line[4096];
    FILE *f = fopen("/proc/self/mountinfo", "r");
    mnt[0][0] = mnt[1][0] = dir[0][0] = dir[1][0] = '\0';
    while (f && fgets(line, sizeof line, f)) {
        char root[PATH_LEN], point[PATH_LEN], rest[2048], fstype[64], super[1000], opts[1100];
        if (sscanf(line, "%*s %*s %*s %1023s %1023s %2047[^\n]", root, point, rest) != 3)
            continue;
        char *sep = strstr(rest, " - ");
        if (sep == NULL || sscanf(sep + 3, "%63s %*s %999s", fstype, super) != 2)
            continue;
        snprintf(opts, sizeof opts, ",%s,", super);
        int v = -1;
        if (!strcmp(fstype, "cgroup2"))
            v = 1;
        else if (!strcmp(fstype, "cgroup") && strstr(opts, ",memory,"))
            v = 0;
        if (v < 0 || mnt[v][0])
            continue;
        strcpy(mnt[v], point);
        size_t n = strlen(root);
        const char *below = NULL;
        if (!path[v][0])
            continue;
        if (!strcmp(root, "/"))
            below = path[v];
        else if (!strncmp(path[v], root, n) && (path[v][n] == '/' || !path[v][n]))
            below = path[v] + n;
        if (below && snprintf(dir[v], PATH_LEN, "%s%s", point, strcmp(below, "/") ? below : "") >=
                         PATH_LEN)
            dir[v][0] = '\0';
    }
    if (f)
        fclose(f);
}

/* Whether dir/name has the word `word` (a list of controllers). */
static int lists(const char *dir, const char *name, const char *word)
{
    char path[PATH_LEN + 32], text[512] = "", *save = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    int yes = 0;
    if (f && fgets(text, sizeof text, f))
        for (char *w = strtok_r(text, " \n", &save); w && !yes; w = strtok_r(NULL, " \n", &save))
            yes = !strcmp(w, word);
    if (f)
        fclose(f);
    return yes;
}

/* Where the test may make its cgroup (PATH_LEN bytes): this process's
 * memory cgroup, or its nearest ancestor that can have a child with a
 * memory limit (v2: one that delegates the controller in
 * cgroup.subtree_control; the root of a v1 hierarchy always can).  Returns
 * the cgroup version (1 or 2), 0 if no memory controller is mounted (a
 * reason in `why`), or -1 with a memory controller but no such place (v2
 * delegating it nowhere above this process).  Read independently of ebb's
 * own parser (src/os/linux_limits.c), which this test checks. */
static int memory_cgroup(char *out, char *why, size_t whylen)
{
    char path[2][PATH_LEN], mnt[2][PATH_LEN], dir[2][PATH_LEN];
    own_cgroups(path);
    cgroup_dirs(path, mnt, dir);
    if (mnt[0][0]) {
        strcpy(out, dir[0][0] ? dir[0] : mnt[0]);
        return 1;
    }
    if (!mnt[1][0] || !lists(mnt[1], "cgroup.controllers", "memory")) {
        snprintf(why, whylen, "no memory controller here (no cgroup v1 memory hierarchy%s)",
                 mnt[1][0] ? ", and no memory in cgroup v2's cgroup.controllers" : " nor cgroup v2");
        return 0;
    }
    strcpy(out, dir[1][0] ? dir[1] : mnt[1]);
    size_t floor = strlen(mnt[1]);
    for (;;) {
        if (lists(out, "cgroup.subtree_control", "memory"))
            return 2;
        char *slash = strrchr(out, '/');
        if (strlen(out) <= floor || slash == NULL || (size_t)(slash - out) < floor)
            break;
        *slash = '\0';
    }
    snprintf(why, whylen, "cgroup v2 %s has the memory controller, but neither this process's "
             "cgroup %s nor any cgroup above it delegates it (cgroup.subtree_control); this "
             "test does not change that", mnt[1], dir[1][0] ? dir[1] : "(not shown)");
    return -1;
}

static int write_file(const char *dir, const char *name, const char *value)
{
    char path[1300];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, value, strlen(value));
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(value) ? 0 : -1;
}

/* The number after `key` in dir/name (a "key value" line, or the whole
 * file when key is ""); -1 if absent. */
static long long read_value(const char *dir, const char *name, const char *key)
{
    char path[1300], line[256];
    long long v = -1;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return -1;
    FILE *f = fopen(path, "r");
    size_t n = strlen(key);
    while (f && v < 0 && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n))
            v = strtoll(line + n, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static char child_dir[1200]; /* the cgroup this test made, "" if none */

static int remove_child_cgroup(void **state)
{
    (void)state;
    /* The cgroup can be removed once its last process is reaped; a moment
     * may pass before the kernel agrees. */
    for (int i = 0; child_dir[0] && i < 100; i++) {
        if (rmdir(child_dir) == 0 || errno == ENOENT) {
            child_dir[0] = '\0';
            break;
        }
        usleep(20000);
    }
    if (child_dir[0])
        print_error("could not remove the test's cgroup %s: %s\n", child_dir, strerror(errno));
    return child_dir[0] ? -1 : 0;
}

/* ---- inside the cgroup: `test_cgroup child <cgroup dir> <version>` ---- */

static int fail_child(const char *what, const ebb_limit_info_t *i)
{
    printf("FAIL %s: limit %zu = %zu - %zu, from %d, source \"%s\"\n", what, i->limit,
           i->effective, i->headroom, i->from, i->source);
    return 1;
}

static int child(const char *dir, int version)
{
    ebb_limit_info_t i;
    ebb_limit_info(&i);
    char want[1400];
    if (snprintf(want, sizeof want, "cgroup v%d %s/%s", version, dir,
                 version == 2 ? "memory.max" : "memory.limit_in_bytes") >= (int)sizeof want ||
        i.from != (version == 2 ? EBB_LIMIT_FROM_CGROUP2 : EBB_LIMIT_FROM_CGROUP1) ||
        strcmp(i.source, want) != 0)
        return fail_child("source", &i);
    if (i.effective != CGROUP_LIMIT || i.percent != 100 || i.limit != i.effective - i.headroom)
        return fail_child("bound", &i);
    /* The margin (16 MiB + 1/64) and this small program's RSS. */
    if (i.headroom < 17 * MiB || i.headroom > 32 * MiB)
        return fail_child("headroom", &i);
    printf("limit %zu MiB = %zu MiB - %zu MiB headroom, source %s\n", i.limit / MiB,
           i.effective / MiB, i.headroom / MiB, i.source);

    /* Allocate past the limit, writing every page (each one costs RSS in
     * the cgroup): the allocator must refuse before the kernel kills. */
    static void *blocks[1024];
    size_t n = 0, total = 0;
    errno = 0;
    for (size_t size = MiB; size >= 4 * KiB; size /= 4) {
        void *p;
        while (n < 1024 && (p = ebb_malloc(size)) != NULL) {
            memset(p, 0x5a, size);
            blocks[n++] = p;
            total += size;
        }
        if (n == 1024 || errno != ENOMEM) {
            printf("FAIL after %zu bytes in %zu blocks: errno %d\n", total, n, errno);
            return 1;
        }
        errno = 0;
    }
    ebb_failure_t f;
    if (ebb_last_failure(&f, 1) != EBB_FAIL_LIMIT || f.limit != i.limit) {
        printf("FAIL: last failure %d (limit %zu)\n", f.reason, f.limit);
        return 1;
    }
    /* Near the limit, not far past it: pages of pools a heap already holds
     * are not admitted one by one (limit.c), so blocks carved from pages the
     * soft level's purge gave back may pass it by a few pages. */
    if (total < i.limit - 8 * MiB || total > i.limit + MiB) {
        printf("FAIL: %zu bytes allocated under a limit of %zu\n", total, i.limit);
        return 1;
    }
    printf("allocated %zu MiB, then NULL with ENOMEM at the limit\n", total / MiB);
    for (size_t k = 0; k < n; k++)
        ebb_free(blocks[k]);
    ebb_collect(1);
    void *again = ebb_malloc(i.limit / 2);
    if (again == NULL) {
        printf("FAIL: no %zu MiB after freeing everything\n", i.limit / 2 / MiB);
        return 1;
    }
    memset(again, 1, i.limit / 2);
    ebb_free(again);
    printf("ok\n");
    return 0;
}

/* ---- the test ---- */

/* In the test's child, before it becomes the program under test: only
 * this process joins the cgroup, so that ebb starts, and reads its limit,
 * inside it.  Exit 125 tells the test it could not. */
static void join_cgroup(void *arg)
{
    (void)arg;
    char me[32];
    snprintf(me, sizeof me, "%ld", (long)getpid());
    if (write_file(child_dir, "cgroup.procs", me) != 0) {
        dprintf(1, "cannot join %s: %s\n", child_dir, strerror(errno));
        _exit(125);
    }
}

/* What keeps the test from its cgroup: as root with a memory controller
 * present (the project's test machine) a failure, otherwise a skip; either
 * way it says why. */
#define CANNOT(...)                                                           \
    do {                                                                      \
        if (geteuid() == 0) {                                                 \
            print_error("as root, with a memory controller present: ");      \
            print_error(__VA_ARGS__);                                         \
            print_error("\n");                                                \
            fail();                                                           \
        }                                                                     \
        SKIP_TEST("not root: " __VA_ARGS__);                                  \
    } while (0)

static void test_auto_limit_in_a_child_cgroup(void **state)
{
    (void)state;
    char dir[PATH_LEN], why[2 * PATH_LEN + 300];
    int version = memory_cgroup(dir, why, sizeof why);
    if (version == 0)
        SKIP_TEST("%s", why);
    if (version < 0)
        CANNOT("%s", why);
    if (snprintf(child_dir, sizeof child_dir, "%s/ebb-test-%ld", dir, (long)getpid()) >=
            (int)sizeof child_dir ||
        mkdir(child_dir, 0755) != 0) {
        int err = errno;
        child_dir[0] = '\0';
        CANNOT("cannot create a cgroup in %s: %s", dir, strerror(err));
    }
    const char *file = version == 2 ? "memory.max" : "memory.limit_in_bytes";
    char value[32];
    snprintf(value, sizeof value, "%zu", (size_t)CGROUP_LIMIT);
    if (write_file(child_dir, file, value) != 0)
        CANNOT("cannot set %s/%s: %s", child_dir, file, strerror(errno));

    char v[2] = { (char)('0' + version), '\0' };
    char *argv[] = { "self", "child", child_dir, v, NULL };
    char *envp[] = { "EBB_LIMIT=auto", NULL };
    char out[8192];
    int status = child_spawn(argv, envp, join_cgroup, NULL, out, sizeof out);
    assert_int_not_equal(status, -1); /* the pipe and the fork */
    print_message("%s", out);
    if (child_exited(status, 125))
        CANNOT("cannot move a process into %s", child_dir);
    /* What the kernel saw: the cgroup's peak, and no OOM kill in it. */
    long long peak = read_value(child_dir,
                                version == 2 ? "memory.peak" : "memory.max_usage_in_bytes", "");
    long long kills = read_value(child_dir, version == 2 ? "memory.events" : "memory.oom_control",
                                 "oom_kill ");
    print_message("cgroup peak %lld KiB of %zu KiB, OOM kills %lld\n", peak / 1024,
                  (size_t)CGROUP_LIMIT / 1024, kills);
    EXPECT(kills <= 0, "%lld OOM kills in the test's cgroup", kills);
    EXPECT(!WIFSIGNALED(status), "the child was killed by signal %d%s", WTERMSIG(status),
           WTERMSIG(status) == 9 ? " (the OOM killer?)" : "");
    EXPECT(child_exited(status, 0) && strstr(out, "ok\n"),
           "the child failed (status %d)", status);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "child"))
        return child(argv[2], atoi(argv[3]));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_auto_limit_in_a_child_cgroup, remove_child_cgroup),
    };
    return cmocka_run_group_tests_name("cgroup", tests, NULL, NULL);
}
