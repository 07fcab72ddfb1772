/* Shared by tests that run a scenario in a fresh copy of themselves: ebb
 * reads its options once, at start-up, so each setting needs a process.
 * The copy is started as `self child WHAT` (child_run); its main() finds
 * WHAT with child_what(), or is CHILD_TEST_MAIN, which does both sides.
 * Every child is waited for with a deadline (the _within variants name
 * theirs; the others have a hang guard), so that a test waits for an event
 * (the child's end) rather than measuring how long it took. */
#ifndef EBB_TEST_CHILD_H
#define EBB_TEST_CHILD_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
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

static inline long long child_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* What child_spawn_within returns for a child still running at its
 * deadline (then killed and reaped): no wait status is negative. */
#define CHILD_TIMED_OUT (-2)

/* Run this binary with argv and exactly the environment envp (both
 * NULL-ended), both output streams captured into out (as read_all).  In the
 * new process, before_exec (when not NULL) runs first, its output already
 * captured: a test that must place the process somewhere (a cgroup) does it
 * there, so that ebb starts up inside.  Returns the child's wait status
 * once it ended, -1 if it could not be started, or CHILD_TIMED_OUT if it
 * had not ended within timeout_ms (it is killed; its output so far is in
 * out).  The wait is for the process's end, not for its output's: a
 * process whose last thread left with pthread_exit ends only when every
 * thread has. */
static inline int child_spawn_within(char *const argv[], char *const envp[],
                                     void (*before_exec)(void *), void *arg, char *out,
                                     size_t outlen, long timeout_ms)
{
    int fds[2];
    if (outlen == 0 || pipe(fds) != 0)
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
    long long deadline = child_now_ms() + timeout_ms;
    size_t got = 0;
    int reading = 1, status = -1;
    for (;;) {
        long long left = deadline - child_now_ms();
        if (reading) {
            struct pollfd p = { .fd = fds[0], .events = POLLIN };
            if (left <= 0)
                break;
            if (poll(&p, 1, left > 1000 ? 1000 : (int)left) <= 0)
                continue;
            char spill[4096]; /* what does not fit in out is read and dropped */
            char *to = got + 1 < outlen ? out + got : spill;
            size_t room = got + 1 < outlen ? outlen - got - 1 : sizeof spill;
            ssize_t n = read(fds[0], to, room);
            if (n > 0 && to != spill)
                got += (size_t)n;
            reading = n > 0 || (n < 0 && errno == EINTR);
            continue;
        }
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        if (left <= 0)
            break;
        struct timespec ts = { 0, 5 * 1000000L };
        nanosleep(&ts, NULL);
    }
    out[got] = '\0';
    close(fds[0]);
    if (status != -1)
        return status;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return CHILD_TIMED_OUT;
}

/* A hang guard for every child the tests start: far longer than any of
 * them takes, even in the slowest build (EBB_DEBUG=2, sanitizers), so
 * that a hang fails the test instead of stalling the run. */
#define CHILD_HANG_MS (300 * 1000L)

static inline int child_spawn(char *const argv[], char *const envp[],
                              void (*before_exec)(void *), void *arg, char *out, size_t outlen)
{
    return child_spawn_within(argv, envp, before_exec, arg, out, outlen, CHILD_HANG_MS);
}

/* child_spawn(_within) of `self child WHAT`. */
static inline int child_run_within(const char *what, char *const envp[], char *out, size_t outlen,
                                   long timeout_ms)
{
    char *argv[] = { "self", "child", (char *)what, NULL };
    return child_spawn_within(argv, envp, NULL, NULL, out, outlen, timeout_ms);
}

static inline int child_run(const char *what, char *const envp[], char *out, size_t outlen)
{
    return child_run_within(what, envp, out, outlen, CHILD_HANG_MS);
}

/* child_run(_within) with the n settings of env, where a NULL is a setting
 * left out (a test's optional ones), not the end of the list. */
#define CHILD_ENV_MAX 8
static inline int child_run_env_within(const char *what, const char *const env[], size_t n,
                                       char *out, size_t outlen, long timeout_ms)
{
    char *envp[CHILD_ENV_MAX + 1];
    size_t k = 0;
    for (size_t i = 0; i < n && k < CHILD_ENV_MAX; i++)
        if (env[i] != NULL)
            envp[k++] = (char *)env[i];
    envp[k] = NULL;
    return child_run_within(what, envp, out, outlen, timeout_ms);
}

static inline int child_run_env(const char *what, const char *const env[], size_t n, char *out,
                                size_t outlen)
{
    return child_run_env_within(what, env, n, out, outlen, CHILD_HANG_MS);
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

/* The check the misuse tests make of a child's captured output. */
static inline void expect_output_has(const char *out, const char *text)
{
    EXPECT(strstr(out, text) != NULL, "no \"%s\" in the child's output:\n%s", text, out);
}

#endif
