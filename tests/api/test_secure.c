/*
 * A setuid-root program linked with ebb, started by an unprivileged user
 * (the kernel sets AT_SECURE): the caller chose its environment, so every
 * EBB_* variable is ignored.  EBB_BLACKBOX naming a root-owned file leaves
 * it untouched, EBB_REPORT naming a root-only directory creates nothing
 * there, EBB_LIMIT injects no failure, EBB_ON_ERROR=abort no abort; and the
 * variables are gone from the environment the program's children get.
 *
 * The program is this test binary (linked with libebb.a): a root-owned,
 * setuid copy of it, in a directory where setuid works, run as `nobody`
 * through setpriv.  A control run of the same copy as plain root, with the
 * same variables aimed at scratch files, shows each check would catch an
 * ebb that obeyed them.
 *
 * It needs root (only root can make a setuid-root program); run by another
 * user it is skipped, and says so.  As root, a machine where setuid cannot
 * work (every candidate directory mounted nosuid, no_new_privs, a user
 * namespace) fails the test with the reason: it never passes by not running.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ebb.h"
#include "api.h"
#include "child.h"

#define VICTIM "root's own file: not a black box\n"

static const char *const setprivs[] = { "/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv" };

/* ------------------------------------------------------- the program */

/* What the program sees and does, printed for the test to check: its ids,
 * what an 8 MiB limit would refuse, whether the variables reached its
 * environment; then malloc_usable_size of a pointer ebb never made, a
 * misuse that is only reported by default and that EBB_ON_ERROR=abort
 * would make fatal. */
static int child_main(const char *what)
{
    if (strcmp(what, "secure") != 0)
        return 2;
    printf("ruid=%d euid=%d at_secure=%lu\n", (int)getuid(), (int)geteuid(),
           getauxval(AT_SECURE));
    int refused = 0;
    for (int i = 0; i < 48; i++) {
        char *p = ebb_malloc(1 << 20);
        if (p == NULL)
            refused++;
        else
            memset(p, 1, 1 << 20); /* kept: 48 MiB live, past the 8 MiB limit */
    }
    printf("refused=%d\n", refused);
    const char *limit = getenv("EBB_LIMIT");
    printf("children get EBB_LIMIT=%s\n", limit ? limit : "(unset)");
    fflush(stdout);
    static char not_ours[64];
    size_t usable = ebb_usable_size(not_ours + 16);
    printf("survived the foreign pointer (usable %zu)\n", usable);
    return 0;
}

/* ---------------------------------------------------------- the test */

static char dir[PATH_MAX], prog[PATH_MAX + 16];

static int copy_file(const char *from, const char *to, mode_t mode)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
    char buf[65536];
    ssize_t n = 0;
    while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n)
            n = -1;
    int ok = in >= 0 && out >= 0 && n == 0 && fchown(out, 0, 0) == 0 && fchmod(out, mode) == 0;
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return ok;
}

/* Every directory from path up to / can be entered by anyone. */
static int reachable_by_all(const char *path)
{
    char walk[PATH_MAX];
    snprintf(walk, sizeof walk, "%s", path);
    for (;;) {
        struct stat st;
        if (stat(walk, &st) != 0 || (st.st_mode & S_IXOTH) == 0)
            return 0;
        if (strcmp(walk, "/") == 0)
            return 1;
        char up[PATH_MAX];
        memcpy(up, walk, sizeof up);
        snprintf(walk, sizeof walk, "%s", dirname(up));
    }
}

/* A fresh directory where a setuid program runs as set-user-ID and which
 * `nobody` can reach: beside this binary, else in a temporary directory.
 * Fails the test, naming each candidate's problem, if there is none. */
static void make_dir(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    const char *candidates[] = { dirname(self), "/var/tmp", "/tmp", "/dev/shm" };
    char why[2048] = "";
    size_t at = 0;
    for (size_t i = 0; i < ARRAY_LEN(candidates); i++) {
        const char *c = candidates[i];
        struct statvfs vfs;
        const char *problem = NULL;
        if (statvfs(c, &vfs) != 0)
            problem = "cannot be read";
        else if (vfs.f_flag & ST_NOSUID)
            problem = "is mounted nosuid";
        else if (!reachable_by_all(c))
            problem = "cannot be reached by nobody";
        if (problem == NULL) {
            snprintf(dir, sizeof dir, "%s/ebb-secure.XXXXXX", c);
            if (mkdtemp(dir) != NULL && chmod(dir, 0755) == 0)
                return;
            problem = "refused a new directory";
        }
        at += (size_t)snprintf(why + at, sizeof why - at, " %s %s;", c, problem);
    }
    fail_msg("setuid cannot work on this machine, so AT_SECURE cannot be tested:%s", why);
}

static void remove_dir(void)
{
    static const char *const made[] = { "prog", "box", "report", "private/report", "private" };
    char path[PATH_MAX + 32];
    for (size_t i = 0; i < ARRAY_LEN(made); i++) {
        snprintf(path, sizeof path, "%s/%s", dir, made[i]);
        if (unlink(path) != 0 && errno == EISDIR)
            rmdir(path);
    }
    EXPECT(rmdir(dir) == 0, "%s is left behind: %s", dir, strerror(errno));
}

/* Run argv[0] with argv and exactly envp, both output streams into out;
 * the wait status. */
static int spawn(char *const argv[], char *const envp[], char *out, size_t len)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        execve(argv[0], argv, envp);
        printf("cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(126);
    }
    close(fds[1]);
    read_all(fds[0], out, len);
    close(fds[0]);
    int status = -1;
    waitpid(pid, &status, 0);
    return status;
}

static size_t file_text(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return (size_t)-1;
    size_t n = read_all(fd, buf, len);
    close(fd);
    return n;
}

static void test_setuid_program_ignores_ebb_variables(void **state)
{
    (void)state;
    if (geteuid() != 0)
        SKIP_TEST("not root, so no setuid-root program can be made: AT_SECURE is not tested");
    const char *setpriv = NULL;
    for (size_t i = 0; i < ARRAY_LEN(setprivs) && setpriv == NULL; i++)
        if (access(setprivs[i], X_OK) == 0)
            setpriv = setprivs[i];
    EXPECT(setpriv != NULL, "no setpriv (util-linux): cannot run a program as nobody");
    struct passwd *nobody = getpwnam("nobody");
    EXPECT(nobody != NULL, "no user nobody");
    char uid[32], gid[32];
    snprintf(uid, sizeof uid, "--reuid=%d", (int)nobody->pw_uid);
    snprintf(gid, sizeof gid, "--regid=%d", (int)nobody->pw_gid);

    make_dir();
    snprintf(prog, sizeof prog, "%s/prog", dir);
    EXPECT(copy_file("/proc/self/exe", prog, 04755), "cannot make %s setuid root", prog);
    /* The targets: a root-owned file anyone may read, and a root-only
     * directory. */
    char box[PATH_MAX + 32], private[PATH_MAX + 32], report[PATH_MAX + 32];
    snprintf(box, sizeof box, "%s/box", dir);
    snprintf(private, sizeof private, "%s/private", dir);
    snprintf(report, sizeof report, "%s/private/report", dir);
    int fd = open(box, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, VICTIM, strlen(VICTIM)), (ssize_t)strlen(VICTIM));
    close(fd);
    assert_int_equal(mkdir(private, 0700), 0);

    char env_box[PATH_MAX + 64], env_report[PATH_MAX + 64];
    snprintf(env_box, sizeof env_box, "EBB_BLACKBOX=%s", box);
    snprintf(env_report, sizeof env_report, "EBB_REPORT=%s", report);
    char *envp[] = { env_box, env_report, "EBB_LIMIT=8M", "EBB_ON_ERROR=abort",
                     "EBB_REPORT_SIGNAL=USR1", NULL };
    char *argv[] = { (char *)setpriv, uid, gid, "--clear-groups", "--", prog, "child", "secure",
                     NULL };
    char out[8192], text[256];
    int st = spawn(argv, envp, out, sizeof out);
    struct stat bs;
    int box_ok = stat(box, &bs) == 0 && bs.st_uid == 0 && bs.st_size == (off_t)strlen(VICTIM) &&
                 file_text(box, text, sizeof text) == strlen(VICTIM) && !strcmp(text, VICTIM);
    int report_made = access(report, F_OK) == 0;
    remove_dir();

    EXPECT(strstr(out, "euid=0 ") != NULL && strstr(out, "ruid=0 ") == NULL,
           "the setuid copy did not run as set-user-ID root (no_new_privs? a user namespace?), "
           "so AT_SECURE cannot be tested here:\n%s", out);
    EXPECT(strstr(out, "at_secure=1\n") != NULL, "the kernel did not set AT_SECURE:\n%s", out);
    SOFT(child_exited(st, 0), "status %#x (EBB_ON_ERROR=abort obeyed?):\n%s", st, out);
    SOFT(strstr(out, "refused=0\n") != NULL, "EBB_LIMIT was obeyed:\n%s", out);
    SOFT(box_ok, "the root-owned file EBB_BLACKBOX named was changed:\n%s", out);
    SOFT(!report_made, "EBB_REPORT made a file in a root-only directory:\n%s", out);
    SOFT(strstr(out, "children get EBB_LIMIT=(unset)\n") != NULL, "%s", out);
    SOFT(strstr(out, "ebb: ignoring the EBB_* variables: ") != NULL, "no word of it:\n%s", out);
    END_SOFT();
}

/* The same program and variables, run by root without setuid (no
 * AT_SECURE), aimed at scratch files: ebb obeys each, so the checks above
 * are able to fail. */
static void test_control_without_setuid_obeys_them(void **state)
{
    (void)state;
    if (geteuid() != 0)
        SKIP_TEST("not root, so the setuid test this one controls does not run either");
    make_dir();
    snprintf(prog, sizeof prog, "%s/prog", dir);
    EXPECT(copy_file("/proc/self/exe", prog, 0755), "cannot copy the program to %s", prog);
    char box[PATH_MAX + 32], report[PATH_MAX + 32];
    snprintf(box, sizeof box, "%s/box", dir);
    snprintf(report, sizeof report, "%s/report", dir);
    char env_box[PATH_MAX + 64], env_report[PATH_MAX + 64];
    snprintf(env_box, sizeof env_box, "EBB_BLACKBOX=%s", box);
    snprintf(env_report, sizeof env_report, "EBB_REPORT=%s", report);
    char *envp[] = { env_box, env_report, "EBB_LIMIT=8M", "EBB_ON_ERROR=abort", NULL };
    char *argv[] = { prog, "child", "secure", NULL };
    char out[8192];
    int st = spawn(argv, envp, out, sizeof out);
    int box_made = access(box, F_OK) == 0, report_made = access(report, F_OK) == 0;
    remove_dir();
    SOFT(strstr(out, "at_secure=0\n") != NULL, "%s", out);
    SOFT(child_killed(st, SIGABRT), "EBB_ON_ERROR=abort: status %#x:\n%s", st, out);
    SOFT(strstr(out, "refused=0\n") == NULL, "EBB_LIMIT refused nothing:\n%s", out);
    SOFT(box_made && report_made, "box %d, report %d:\n%s", box_made, report_made, out);
    SOFT(strstr(out, "children get EBB_LIMIT=8M\n") != NULL, "%s", out);
    SOFT(strstr(out, "ebb: ignoring the EBB_* variables") == NULL, "%s", out);
    END_SOFT();
}

int main(int argc, char **argv)
{
    const char *what = child_what(argc, argv);
    if (what)
        return child_main(what);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_setuid_program_ignores_ebb_variables),
        cmocka_unit_test(test_control_without_setuid_obeys_them),
    };
    return cmocka_run_group_tests_name("secure", tests, NULL, NULL);
}
