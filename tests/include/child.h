/* Shared by tests that run a scenario in a fresh copy of themselves: ebb
 * reads its options once, at start-up, so each setting needs a process.
 * The copy is started as `self child WHAT` (child_run); its main() finds
 * WHAT with child_what(), or is CHILD_TEST_MAIN, which does both sides. */
#ifndef EBB_TEST_CHILD_H
#define EBB_TEST_CHILD_H

#include <stddef.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

/* Everything fd still has to give, into out (NUL-terminated, truncated to
 * len - 1 bytes): a pipe delivers a child's output in pieces. */
static inline size_t read_all(int fd, char *out, size_t len)
{
    size_t got = 0;
    ssize_t n;
    while (got + 1 < len && (n = read(fd, out + got, len - got - 1)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    return got;
}

/* Run this binary with argv and exactly the environment envp (both
 * NULL-ended), both output streams captured into out (as read_all).  In the
 * new process, before_exec (when not NULL) runs first, its output already
 * captured: a test that must place the process somewhere (a cgroup) does it
 * there, so that ebb starts up inside.  Returns the child's wait status, or
 * -1 if it could not be started. */
static inline int child_spawn(char *const argv[], char *const envp[],
                              void (*before_exec)(void *), void *arg, char *out, size_t outlen)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        if (before_exec)
            before_exec(arg);
        execve("/proc/self/exe", argv, envp);
        _exit(126);
    }
    close(fds[1]);
    read_all(fds[0], out, outlen);
    close(fds[0]);
    int status = -1;
    waitpid(pid, &status, 0);
    return status;
}

/* child_spawn of `self child WHAT`. */
static inline int child_run(const char *what, char *const envp[], char *out, size_t outlen)
{
    char *argv[] = { "self", "child", (char *)what, NULL };
    return child_spawn(argv, envp, NULL, NULL, out, outlen);
}

/* child_run with the n settings of env, where a NULL is a setting left out
 * (a test's optional ones), not the end of the list. */
#define CHILD_ENV_MAX 8
static inline int child_run_env(const char *what, const char *const env[], size_t n, char *out,
                                size_t outlen)
{
    char *envp[CHILD_ENV_MAX + 1];
    size_t k = 0;
    for (size_t i = 0; i < n && k < CHILD_ENV_MAX; i++)
        if (env[i] != NULL)
            envp[k++] = (char *)env[i];
    envp[k] = NULL;
    return child_run(what, envp, out, outlen);
}

/* WHAT, in a process child_run started; NULL in the test runner itself. */
static inline const char *child_what(int argc, char **argv)
{
    return argc == 3 && strcmp(argv[1], "child") == 0 ? argv[2] : NULL;
}

/* main() of a test that runs copies of itself: a copy runs child(WHAT),
 * the test runner its tests (T(f), ...) as the cmocka group `group`. */
#define CHILD_TEST_MAIN(group, child, ...)                                    \
    int main(int argc, char **argv)                                           \
    {                                                                         \
        const char *what = child_what(argc, argv);                            \
        return what ? child(what) : RUN_GROUP(group, __VA_ARGS__);            \
    }

/* Wait statuses, as the tests state them: it exited with code, or a
 * signal killed it. */
static inline int child_exited(int status, int code)
{
    return WIFEXITED(status) && WEXITSTATUS(status) == code;
}

static inline int child_killed(int status, int sig)
{
    return WIFSIGNALED(status) && WTERMSIG(status) == sig;
}

#endif
