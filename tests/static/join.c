/*
 * join.c -- the purger-restart deadlock, in a statically linked
 * program (make check-static runs it).
 *
 * glibc keeps exited threads' stacks in a cache of 40 MiB; a join that
 * overflows it frees the oldest stacks' TLS vectors with free(), holding the
 * lock pthread_create takes.  If that free is the one that must start ebb's
 * purger again, starting it there deadlocks the thread on itself.  A
 * dynamic program has a loader whose frames tell (front/purger.c); a static
 * one has none, so ebb looks at the C library's lock word instead
 * (os/linux_stack.c).  Exit 0 when the joins came back, 2 when the stage
 * was not set, 3 on a setup failure, 4 when ebb_check failed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ebb.h"

#define PARKED 8
#define MiB ((size_t)1 << 20)

static atomic_int unpark;

static void *parked(void *arg)
{
    (void)arg;
    struct timespec ts = { 0, 1000000 };
    while (!atomic_load(&unpark))
        nanosleep(&ts, NULL);
    return NULL;
}

/* A thread named ebb-purge is alive: /proc/self/task read with getdents64,
 * no allocation (this thread must make no call into ebb meanwhile). */
static int purger_alive(void)
{
    char buf[8192], path[96], comm[32];
    int found = 0, dir = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    long n;
    while (dir >= 0 && !found && (n = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
        for (long at = 0; at < n && !found;) {
            struct { uint64_t ino; int64_t off; unsigned short len; unsigned char type; char name[]; }
                *d = (void *)(buf + at);
            at += d->len;
            if (d->name[0] == '.')
                continue;
            snprintf(path, sizeof path, "/proc/self/task/%s/comm", d->name);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            ssize_t got = fd < 0 ? -1 : read(fd, comm, sizeof comm - 1);
            if (fd >= 0)
                close(fd);
            found = got >= 9 && memcmp(comm, "ebb-purge", 9) == 0;
        }
    }
    if (dir >= 0)
        close(dir);
    return found;
}

static int wait_purger(int alive, int max_ms)
{
    struct timespec ts = { 0, 1000000 };
    for (int ms = 0; ms < max_ms; ms++) {
        if (purger_alive() == alive)
            return 1;
        nanosleep(&ts, NULL);
    }
    return 0;
}

int main(void)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 8 * MiB);
    pthread_t t[PARKED];
    for (int i = 0; i < PARKED; i++)
        if (pthread_create(&t[i], &attr, parked, NULL) != 0)
            return 3;
    pthread_attr_destroy(&attr);
    static void *b[4096];
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        b[i] = malloc(64);
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        free(b[i]);
    int staged = wait_purger(1, 5000) && wait_purger(0, 10000);
    atomic_store(&unpark, 1);
    for (int i = 0; i < PARKED; i++)
        pthread_join(t[i], NULL);
    free(malloc(64));
    return ebb_check() != 0 ? 4 : staged ? 0 : 2;
}
