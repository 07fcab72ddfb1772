/* Whether ebb's purger thread is alive, asked without allocating (no
 * stdio, no opendir), and the scenario that needs to ask: a join that frees
 * thread stacks' TLS vectors inside glibc's stack cache just as the purger
 * must start again (tests/api/test_races.c through the ebb_* API,
 * tests/static/join.c in a static program through malloc). */
#ifndef EBB_PURGER_WATCH_H
#define EBB_PURGER_WATCH_H
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ebb.h"

/* A thread named ebb-purge is alive: /proc/self/task read with getdents64. */
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

/* Wait (no allocation) until the purger is `alive` or not: 0 after max_ms. */
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

/*
 * glibc keeps exited threads' stacks in a cache of 40 MiB; a join that
 * overflows it frees the oldest stacks' TLS vectors with free(), holding the
 * lock pthread_create takes.  That free may be the thread's first call after
 * the purger poked it: its cache goes home, memory becomes purgeable, and
 * the purger, which had ended, must start again -- but not from there
 * (front/purger.c).  Parked threads with 8 MiB stacks, memory for the purger
 * to give back while this thread stays out of ebb (so it stays poked), the
 * purger's end, then the joins.  0 when the joins came back, 2 when the
 * stage was not set (the purger never came or never went), 3 when a thread
 * could not be made, 4 when ebb_check failed.
 */
#define PURGER_WATCH_PARKED 8

static atomic_int purger_watch_unpark;

static void *purger_watch_parked(void *arg)
{
    (void)arg;
    struct timespec ts = { 0, 1000000 };
    while (!atomic_load(&purger_watch_unpark))
        nanosleep(&ts, NULL);
    return NULL;
}

static inline int joins_as_the_purger_restarts(void *(*alloc)(size_t), void (*release)(void *))
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)8 << 20);
    pthread_t t[PURGER_WATCH_PARKED];
    for (int i = 0; i < PURGER_WATCH_PARKED; i++)
        if (pthread_create(&t[i], &attr, purger_watch_parked, NULL) != 0)
            return 3;
    pthread_attr_destroy(&attr);
    static void *b[4096];
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        b[i] = alloc(64);
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        release(b[i]);
    /* The purger starts, pokes this thread, gives the pages back and ends;
     * meanwhile this thread makes no call into ebb. */
    int staged = wait_purger(1, 5000) && wait_purger(0, 10000);
    atomic_store(&purger_watch_unpark, 1);
    for (int i = 0; i < PURGER_WATCH_PARKED; i++)
        pthread_join(t[i], NULL);
    release(alloc(64));
    return ebb_check() != 0 ? 4 : staged ? 0 : 2;
}
#endif
