/*
 * process.c -- the process around ebb: whether ebb may start threads yet,
 * and every lock ebb has, in one list.
 *
 * Owns: ebb__threads_allowed, whether the main thread has left, and the
 * list of lock sets.
 *
 * Threads.  ebb's own threads (the purger, the pressure watcher, the
 * reporter) start on slow paths, never before ebb's constructor ran: the
 * first allocations come from the dynamic loader and other constructors,
 * before the program could start a thread of its own.  The constructor
 * (front/init.c) sets the flag; the modules that start threads read it.
 * They start them through ebb__start_thread, which marks the calling
 * thread (ebb__quiet) while the C library makes the new thread: what it
 * allocates for it (its TLS vector, a few hundred bytes) is ebb's doing,
 * on a program's thread, in the middle of the program's malloc, and the
 * sampler must not charge it to the program's line (seen: a test's
 * allocation site kept ~4 KiB "live" after it had freed every block, the
 * purger thread's vector, started from its malloc).
 *
 * Locks.  fork() must find no lock of ebb's held by another thread, or the
 * child, which has only the forking thread, could never take it again; and
 * ebb_check() must see every structure at rest.  Both take every lock, in
 * one order.  Each module that has locks describes them as a lock set
 * (lock all, unlock all, what a fork child redoes); front/init.c registers
 * the sets at start-up in the lock order, and this list is the only place
 * that order is written down as code.  A set may also carry only a child
 * handler (a module with a thread or open files that a child must drop).
 * Registration happens once, single-threaded, inside start-up.
 */
#include "internal.h"

EBB_HIDDEN _Atomic int ebb__threads_allowed;
EBB_HIDDEN __thread int ebb__quiet __attribute__((tls_model("initial-exec")));

/* The main thread and its pthread_exit (internal.h says why ebb's own
 * threads care): 0 not known, 1 watched, 2 gone. */
EBB_HIDDEN _Atomic int ebb__main_thread_watch;

static void main_thread_gone(void)
{
    atomic_store_explicit(&ebb__main_thread_watch, 2, memory_order_relaxed);
}

void ebb__watch_main_thread(void)
{
    atomic_store_explicit(&ebb__main_thread_watch,
                          ebb__os_watch_main_exit(main_thread_gone) == 0 ? 1 : 0,
                          memory_order_relaxed);
}

int ebb__start_thread(void (*fn)(void *), void *arg, const char *name)
{
    ebb__quiet++;
    int rc = ebb__os_thread_start(fn, arg, name);
    ebb__quiet--;
    return rc;
}

/* Modules with locks or fork duties: a dozen; room for a few more. */
#define MAX_LOCKSETS 24

static const ebb__lockset_t *sets[MAX_LOCKSETS];
static unsigned nsets;

void ebb__locksets_register(const ebb__lockset_t *set)
{
    for (unsigned i = 0; i < nsets; i++)
        if (sets[i] == set)
            return;
    ebb__assert(nsets < MAX_LOCKSETS);
    if (nsets < MAX_LOCKSETS)
        sets[nsets++] = set;
}

void ebb__lock_everything(int for_fork)
{
    for (unsigned i = 0; i < nsets; i++) {
        const ebb__lockset_t *s = sets[i];
        if (s->fork_only && !for_fork)
            continue;
        if (s->one)
            ebb__lock(s->one);
        if (s->lock)
            s->lock();
    }
}

void ebb__unlock_everything(int for_fork)
{
    for (unsigned i = nsets; i-- > 0;) {
        const ebb__lockset_t *s = sets[i];
        if (s->fork_only && !for_fork)
            continue;
        if (s->unlock)
            s->unlock();
        if (s->one)
            ebb__unlock(s->one);
    }
}

void ebb__locksets_fork_child(void)
{
    for (unsigned i = nsets; i-- > 0;) {
        if (sets[i]->one)
            ebb__lock_reset(sets[i]->one);
        if (sets[i]->child)
            sets[i]->child();
    }
}
