/* Shared by tests that run a scenario in a fresh copy of themselves: ebb
 * reads its options once, at start-up, so each setting needs a process. */
#ifndef EBB_TEST_CHILD_H
#define EBB_TEST_CHILD_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run this binary as `self child WHAT` with exactly the environment envp
 * (NULL-ended), both output streams captured into out (NUL-terminated,
 * truncated to outlen - 1).  Returns the child's wait status, or -1 if it
 * could not be started. */
static inline int child_run(const char *what, char *const envp[], char *out, size_t outlen)
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
        char *argv[] = { "self", "child", (char *)what, NULL };
        execve("/proc/self/exe", argv, envp);
        _exit(126);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t n;
    while (got + 1 < outlen && (n = read(fds[0], out + got, outlen - got - 1)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(fds[0]);
    int status = -1;
    waitpid(pid, &status, 0);
    return status;
}

#endif
