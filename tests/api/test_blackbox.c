/*
 * The black box (EBB_BLACKBOX): a process killed by SIGKILL leaves its last
 * state on disk; the box follows growth; fork children never write their
 * parent's box.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ebb.h"
#include "api.h"
#include "child.h"
#include "insight/blackbox.h"

static char file[EBB_BLACKBOX_FILE_SIZE];

/* The box at path: header into *h, current slot's text returned; NULL if
 * the file is missing or not a box. */
static const char *read_box(const char *path, ebb__blackbox_t *h)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, file, sizeof file);
    close(fd);
    if (n != (ssize_t)sizeof file)
        return NULL;
    memcpy(h, file, sizeof *h);
    if (memcmp(h->magic, EBB_BLACKBOX_MAGIC, 8) != 0 || h->current > 1)
        return NULL;
    file[EBB_BLACKBOX_HEADER + (h->current + 1) * EBB_BLACKBOX_SLOT - 1] = '\0';
    return file + EBB_BLACKBOX_HEADER + h->current * EBB_BLACKBOX_SLOT;
}

static size_t counter(const char *text, const char *key)
{
    char pattern[48];
    snprintf(pattern, sizeof pattern, "%s=", key);
    const char *at = strstr(text, pattern);
    return at ? (size_t)strtoull(at + strlen(pattern), NULL, 10) : 0;
}

static char pattern_env[96], box_dir[64];

static int run(const char *what, const char *pattern, char *out, size_t len)
{
    snprintf(box_dir, sizeof box_dir, "/tmp/ebb-box-test-%d", (int)getpid());
    snprintf(pattern_env, sizeof pattern_env, "EBB_BLACKBOX=%s.%s", box_dir, pattern);
    char *envp[] = { pattern_env, NULL };
    return child_run(what, envp, out, len);
}

static void test_sigkill_leaves_the_last_state(void **state)
{
    (void)state;
    char out[256], path[128];
    int st = run("grow_and_die", "%p", out, sizeof out);
    EXPECT(child_killed(st, SIGKILL), "status %d: %s", st, out);
    long pid = atol(out);
    snprintf(path, sizeof path, "%s.%ld", box_dir, pid);
    ebb__blackbox_t h;
    const char *text = read_box(path, &h);
    unlink(path);
    EXPECT(text != NULL, "no box at %s (child said %s)", path, out);
    assert_int_equal(h.version, EBB_BLACKBOX_VERSION);
    assert_int_equal(h.pid, pid);
    EXPECT(h.seq >= 2, "refreshed while growing: %llu", (unsigned long long)h.seq);
    size_t committed = counter(text, "committed"), live = counter(text, "live");
    /* 40 MiB were live when it died; the box trails growth by a sixteenth. */
    EXPECT(live >= 36 * MiB && committed >= live, "live %zu committed %zu\n%s", live, committed,
           text);
    EXPECT(strstr(text, "\n== ebb report: pid ") != NULL, "%s", text);
}

static void test_normal_exit_removes_its_box(void **state)
{
    (void)state;
    char out[256], path[128];
    int st = run("grow_and_exit", "%p", out, sizeof out);
    EXPECT(child_exited(st, 0), "status %d: %s", st, out);
    snprintf(path, sizeof path, "%s.%ld", box_dir, atol(out));
    EXPECT(access(path, F_OK) != 0, "%s is still there after a normal exit", path);
    /* A box at a fixed path is the user's: it stays. */
    st = run("grow_and_exit", "fixed", out, sizeof out);
    EXPECT(child_exited(st, 0), "status %d: %s", st, out);
    snprintf(path, sizeof path, "%s.fixed", box_dir);
    ebb__blackbox_t h;
    EXPECT(read_box(path, &h) != NULL, "the fixed box %s is gone", path);
    unlink(path);
}

static void test_fork_child_keeps_its_own_box(void **state)
{
    (void)state;
    char out[256], path[128];
    int st = run("fork", "%p", out, sizeof out);
    EXPECT(child_killed(st, SIGKILL), "status %d: %s", st, out);
    long parent = 0, kid = 0;
    assert_int_equal(sscanf(out, "%ld %ld", &parent, &kid), 2);
    ebb__blackbox_t h;
    snprintf(path, sizeof path, "%s.%ld", box_dir, parent);
    const char *text = read_box(path, &h);
    EXPECT(text && h.pid == parent, "parent's box %s", path);
    size_t parent_live = counter(text, "live");
    unlink(path);
    snprintf(path, sizeof path, "%s.%ld", box_dir, kid);
    text = read_box(path, &h);
    EXPECT(text && h.pid == kid, "child's box %s", path);
    EXPECT(counter(text, "live") >= 20 * MiB && parent_live < 20 * MiB,
           "the child's 20 MiB are in its box only: child %zu, parent %zu",
           counter(text, "live"), parent_live);
    unlink(path);
    /* Without %p in the path the child keeps no box: the parent's is left
     * as the parent wrote it. */
    st = run("fork", "fixed", out, sizeof out);
    EXPECT(child_killed(st, SIGKILL), "status %d: %s", st, out);
    assert_int_equal(sscanf(out, "%ld %ld", &parent, &kid), 2);
    snprintf(path, sizeof path, "%s.fixed", box_dir);
    text = read_box(path, &h);
    EXPECT(text && h.pid == parent && counter(text, "live") < 20 * MiB, "%s",
           text ? text : "no box");
    unlink(path);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int holds(const char *path, const char *text)
{
    char got[256] = "";
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(got, 1, sizeof got - 1, f);
    fclose(f);
    got[n] = '\0';
    return strcmp(got, text) == 0;
}

/* The box's path is the environment's, perhaps in /tmp: a symbolic link
 * planted there is not followed, a file ebb did not make is not truncated
 * (the program goes on without a box, and says why); a box ebb made is the
 * user's alone, and a box this user left at a fixed path is taken again. */
static void test_box_file_opened_safely(void **state)
{
    (void)state;
    static const char precious[] = "someone else's file\n";
    char out[4096], path[128], victim[128];
    run("grow_and_exit", "fixed", out, sizeof out); /* sets box_dir */
    snprintf(path, sizeof path, "%s.fixed", box_dir);
    unlink(path);
    snprintf(victim, sizeof victim, "%s.victim", box_dir);
    write_file(victim, precious);
    assert_int_equal(symlink(victim, path), 0);
    int st = run("grow_and_exit", "fixed", out, sizeof out);
    SOFT(child_exited(st, 0), "status %d: %s", st, out);
    SOFT(holds(victim, precious), "the symbolic link's target was written");
    SOFT(strstr(out, "(a symbolic link); going on without it\n") != NULL, "%s", out);
    unlink(path);
    unlink(victim);

    write_file(path, precious); /* a file that is not a box */
    st = run("grow_and_exit", "fixed", out, sizeof out);
    SOFT(child_exited(st, 0), "status %d: %s", st, out);
    SOFT(holds(path, precious), "a file ebb did not make was truncated");
    SOFT(strstr(out, "(a file that is not an ebb black box); going on") != NULL, "%s", out);
    unlink(path);

    st = run("grow_and_exit", "fixed", out, sizeof out); /* a new box */
    struct stat sb = { 0 };
    SOFT(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600, "a new box's mode %o",
         (unsigned)sb.st_mode & 0777);
    st = run("grow_and_exit", "fixed", out, sizeof out); /* taken again */
    ebb__blackbox_t h = { .pid = 0 };
    SOFT(child_exited(st, 0) && strstr(out, "cannot keep") == NULL, "%s", out);
    SOFT(read_box(path, &h) != NULL && h.pid == atol(out), "the box left is taken again: pid %ld",
         (long)h.pid);
    unlink(path);
    END_SOFT();
}

/* A fixed path (no %p) is one box for one process: a program the first
 * execs (a new image in a child, same environment) finds it held, goes on
 * without a box and says so, and the first's box stays the first's. */
static void test_fixed_box_has_one_writer(void **state)
{
    (void)state;
    char out[4096], path[128];
    int st = run("exec_child", "fixed", out, sizeof out);
    snprintf(path, sizeof path, "%s.fixed", box_dir);
    ebb__blackbox_t h = { .pid = 0 };
    const char *text = read_box(path, &h);
    long parent = 0, kid = 0;
    const char *ids = strstr(out, "ids ");
    if (ids)
        sscanf(ids, "ids %ld %ld", &parent, &kid);
    SOFT(child_exited(st, 0) && parent > 0 && kid > 0, "status %d: %s", st, out);
    SOFT(text != NULL && h.pid == parent, "the box is the first process's: pid %ld, parent %ld",
         (long)h.pid, parent);
    SOFT(text != NULL && counter(text, "live") < 8 * MiB, "the exec'd child's 8 MiB:\n%s",
         text ? text : "");
    SOFT(strstr(out, "(another process keeps its box there); going on without it\n") != NULL,
         "%s", out);
    unlink(path);
    END_SOFT();
}

static void enter(void *dir)
{
    if (chdir(dir) != 0)
        _exit(125);
}

/* The entries of dir, space-separated, into out. */
static void list_dir(const char *dir, char *out, size_t len)
{
    out[0] = '\0';
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            snprintf(out + strlen(out), len - strlen(out), "%s ", e->d_name);
    if (d)
        closedir(d);
}

static void empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[PATH_MAX];
    while (d && (e = readdir(d)) != NULL) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.')
            unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* EBB_BLACKBOX=box.%p, relative, in a program that then changes
 * directory: its box is removed at its normal exit all the same (not left
 * behind as if it had been killed), and a child it forks later keeps its
 * box where the program started. */
static void test_relative_path_is_made_absolute(void **state)
{
    (void)state;
    char start[] = "/tmp/ebb-box-start-XXXXXX", later[] = "/tmp/ebb-box-later-XXXXXX";
    assert_non_null(mkdtemp(start));
    assert_non_null(mkdtemp(later));
    char later_env[64], out[4096], in_start[256], in_later[256], kid_box[64];
    snprintf(later_env, sizeof later_env, "TEST_LATER_DIR=%s", later);
    char *argv[] = { "self", "child", "chdir_and_fork", NULL };
    char *envp[] = { "EBB_BLACKBOX=box.%p", later_env, NULL };
    int st = child_spawn(argv, envp, enter, start, out, sizeof out);
    list_dir(start, in_start, sizeof in_start);
    list_dir(later, in_later, sizeof in_later);
    empty_dir(start);
    empty_dir(later);
    const char *ids = strstr(out, "ids ");
    long parent = 0, kid = 0;
    if (ids)
        sscanf(ids, "ids %ld %ld", &parent, &kid);
    snprintf(kid_box, sizeof kid_box, "box.%ld ", kid);
    EXPECT(child_exited(st, 0) && kid > 0, "status %d: %s", st, out);
    EXPECT(!strcmp(in_start, kid_box) && in_later[0] == '\0',
           "the starting directory holds \"%s\" (expected only the killed child's %s), the "
           "later one \"%s\"", in_start, kid_box, in_later);
}

/* A box on a full file system: its room is reserved when it is opened, so
 * the program hears of it then and goes on without a box; a store into a
 * hole of a mapped file the file system cannot fill is SIGBUS.  Needs root
 * (a small tmpfs of its own); skipped otherwise, saying so. */
static void test_full_file_system_is_a_message(void **state)
{
    (void)state;
    char dir[] = "/tmp/ebb-box-full-XXXXXX";
    assert_non_null(mkdtemp(dir));
    if (geteuid() != 0 || mount("ebb-test", dir, "tmpfs", 0, "size=64k") != 0) {
        const char *why = geteuid() != 0 ? "not root" : strerror(errno);
        rmdir(dir);
        SKIP_TEST("cannot mount a small tmpfs (%s)", why);
    }
    char filler[64], env[64], out[4096];
    snprintf(filler, sizeof filler, "%s/filler", dir);
    int fd = open(filler, O_WRONLY | O_CREAT, 0600);
    static const char page[4096];
    while (fd >= 0 && write(fd, page, sizeof page) > 0)
        ;
    if (fd >= 0)
        close(fd);
    snprintf(env, sizeof env, "EBB_BLACKBOX=%s/box", dir);
    char *envp[] = { env, NULL };
    int st = child_run("grow_and_exit", envp, out, sizeof out);
    umount2(dir, MNT_DETACH);
    rmdir(dir);
    EXPECT(child_exited(st, 0), "status %#x (SIGBUS is 7):\n%s", st, out);
    EXPECT(strstr(out, "(No space left on device); going on without it\n") != NULL, "%s", out);
}

static void grow(size_t bytes)
{
    for (size_t done = 0; done < bytes; done += 64 * KiB) {
        char *p = ebb_malloc(64 * KiB - 64);
        if (p == NULL)
            exit(3);
        memset(p, 1, 64 * KiB - 64);
    }
}

static int child_main(const char *what)
{
    if (!strcmp(what, "grow_and_die")) {
        printf("%ld\n", (long)getpid());
        fflush(stdout);
        grow(40 * MiB);
        raise(SIGKILL);
        return 1;
    }
    if (!strcmp(what, "grow_and_exit")) {
        printf("%ld\n", (long)getpid());
        fflush(stdout);
        grow(8 * MiB);
        return 0;
    }
    if (!strcmp(what, "exec_child")) {
        grow(2 * MiB);
        fflush(stdout);
        pid_t kid = fork();
        if (kid == 0) {
            char *argv[] = { "self", "child", "grow_and_exit", NULL };
            execve("/proc/self/exe", argv, environ);
            _exit(126);
        }
        int st;
        waitpid(kid, &st, 0);
        printf("ids %ld %ld\n", (long)getpid(), (long)kid);
        fflush(stdout);
        return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
    }
    if (!strcmp(what, "chdir_and_fork")) {
        grow(2 * MiB);
        if (chdir(getenv("TEST_LATER_DIR")) != 0)
            return 3;
        grow(2 * MiB);
        pid_t kid = fork();
        if (kid == 0) {
            grow(2 * MiB);
            raise(SIGKILL);
        }
        int st;
        waitpid(kid, &st, 0);
        printf("ids %ld %ld\n", (long)getpid(), (long)kid);
        return WIFSIGNALED(st) ? 0 : 1;
    }
    if (!strcmp(what, "fork")) {
        grow(2 * MiB);
        pid_t kid = fork();
        if (kid == 0) {
            grow(20 * MiB);
            _exit(0);
        }
        int st;
        waitpid(kid, &st, 0);
        printf("%ld %ld\n", (long)getpid(), (long)kid);
        fflush(stdout);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return 1;
        raise(SIGKILL); /* the child's _exit and this death both leave their boxes */
        return 1;
    }
    return 2;
}

CHILD_TEST_MAIN("blackbox", child_main,
                T(test_sigkill_leaves_the_last_state), T(test_normal_exit_removes_its_box),
                T(test_fork_child_keeps_its_own_box), T(test_box_file_opened_safely),
                T(test_fixed_box_has_one_writer), T(test_relative_path_is_made_absolute),
                T(test_full_file_system_is_a_message))
