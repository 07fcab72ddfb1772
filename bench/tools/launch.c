/*
 * launch -- run one benchmark process and measure it.
 *
 *   launch RESULT_FILE PRELOAD PROGRAM [ARGS...]
 *
 * Forks and execs PROGRAM with LD_PRELOAD set to PRELOAD (removed from the
 * environment when PRELOAD is empty), waits for it with wait4 and writes one
 * line to RESULT_FILE:
 *
 *   wall_s=... user_s=... sys_s=... maxrss_kib=... minflt=... status=...
 *
 * status is the exit code, or -N when killed by signal N; launch exits with
 * the same code (128+N for a signal).
 *
 * Why a separate launcher: Linux carries a process's peak RSS across exec,
 * and a child forked (or vforked) from the Python harness starts with the
 * interpreter's footprint, so ru_maxrss of a small workload would read as
 * Python's size.  This launcher is tiny, and the workload is forked from it.
 */
#define _GNU_SOURCE 1

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double tv(struct timeval t)
{
    return (double)t.tv_sec + (double)t.tv_usec * 1e-6;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s RESULT_FILE PRELOAD PROGRAM [ARGS...]\n",
                argv[0]);
        return 127;
    }
    const char *result = argv[1], *preload = argv[2];

    double t0 = now();
    pid_t pid = fork();
    if (pid < 0) {
        perror("launch: fork");
        return 127;
    }
    if (pid == 0) {
        if (preload[0])
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        execv(argv[3], argv + 3);
        fprintf(stderr, "launch: cannot run %s: %s\n", argv[3],
                strerror(errno));
        _exit(127);
    }

    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("launch: wait4");
            return 127;
        }
    }
    double wall = now() - t0;
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);

    FILE *f = fopen(result, "w");
    if (!f) {
        perror("launch: result file");
        return 127;
    }
    /* Minor faults: each is a page touched for the first time or again
     * after a purge, 2 to 6 us here; unlike times, they are not noisy. */
    fprintf(f, "wall_s=%.6f user_s=%.6f sys_s=%.6f maxrss_kib=%ld minflt=%ld status=%d\n",
            wall, tv(ru.ru_utime), tv(ru.ru_stime), ru.ru_maxrss, ru.ru_minflt, code);
    if (fclose(f) != 0) {
        perror("launch: result file");
        return 127;
    }
    return code >= 0 ? code : 128 - code;
}
