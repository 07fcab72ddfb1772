/*
 * linux_fault.c -- a last word before a fault kills the process.
 *
 * insight/crash.c wants to say one line when a program dies of SIGSEGV or
 * SIGBUS right after ebb refused it memory (the NULL it did not check).
 * This file owns the signal side of that: the handler, the stack it runs
 * on, and handing the signal on afterwards, so that the process ends
 * exactly as it would have without ebb.
 *
 * The handler runs where nothing can be trusted: the faulting thread may
 * hold any lock (the C library's, the loader's, ebb's), its stack may be
 * what overflowed.  So it runs on an alternate stack (sigaltstack), and the
 * note it calls only reads memory and writes: no allocation, no lock.  The
 * alternate stack is the calling thread's (the constructor's: the main
 * thread); other threads run the handler on their own stacks, which is
 * fine unless the fault is their stack overflowing (then the kernel, unable
 * to deliver, kills the process with the same signal: nothing said, nothing
 * lost).  The stack is mapped here, with a guard page below it, outside
 * ebb's heap and its statistics (like a thread's stack, it is not a block),
 * and costs no memory until a signal touches it.  A program that set an
 * alternate stack of its own keeps it.
 *
 * Handing on.  Whatever disposition SIGSEGV and SIGBUS had when ebb's
 * handler was installed is kept, and after the note:
 *   - a handler of the program's is called as the kernel would have called
 *     it (with siginfo and context if it asked for them, its mask added,
 *     SA_RESETHAND honoured): the program's own crash handling (Python's
 *     faulthandler, when it was there first) runs as before;
 *   - the default action is put back, and a fault the kernel raised is
 *     left to happen again as the handler returns (the faulting instruction
 *     runs again), so the process dies of the same signal, with the same
 *     core dump and the kernel's own siginfo in it; a signal someone sent
 *     (kill, raise: si_code <= 0) is sent again instead, and is delivered
 *     as the handler returns.
 * A handler the program installs after ebb's replaces it (sigaction is
 * last-writer-wins): ebb then says nothing unless that handler hands the
 * signal on to the one before it, as Python's faulthandler does (it
 * restores the previous handler and raises again).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static const int fault_signals[2] = { SIGSEGV, SIGBUS };
static struct sigaction fault_before[2]; /* the dispositions ebb's handler replaced */
static ebb__os_fault_fn fault_note;
static _Atomic int fault_watching;

static int fault_slot(int sig)
{
    return sig == SIGBUS;
}

/* The default action back, for a fault to kill the process as it would
 * have without ebb. */
static void fault_default(int sig)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
}

/* Call the handler the program had, as the kernel would have. */
static void fault_call_before(const struct sigaction *old, int sig, siginfo_t *si, void *context)
{
    if (old->sa_flags & SA_RESETHAND)
        fault_default(sig);
    sigset_t during = old->sa_mask, saved;
    pthread_sigmask(SIG_BLOCK, &during, &saved);
    if (old->sa_flags & SA_NODEFER) {
        sigset_t self;
        sigemptyset(&self);
        sigaddset(&self, sig);
        pthread_sigmask(SIG_UNBLOCK, &self, NULL);
    }
    if (old->sa_flags & SA_SIGINFO)
        old->sa_sigaction(sig, si, context);
    else
        old->sa_handler(sig);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

static void fault_handler(int sig, siginfo_t *si, void *context)
{
    int saved = errno;
    /* si_code <= 0: sent by a process (kill, raise, tgkill), which has no
     * faulting address; above 0 the kernel raised it for an access. */
    int sent = si == NULL || si->si_code <= 0;
    fault_note(sig, sent ? NULL : si->si_addr, sent);
    const struct sigaction *old = &fault_before[fault_slot(sig)];
    if (old->sa_flags & SA_SIGINFO ? old->sa_sigaction != NULL
                                   : old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        fault_call_before(old, sig, si, context);
    } else if (sent && old->sa_handler == SIG_IGN) {
        sigaction(sig, old, NULL); /* the program ignored sent ones */
    } else {
        /* A fault cannot be ignored (the kernel forces the default): the
         * default action, from the faulting instruction once more, or from
         * the signal sent again, pending until this handler returns. */
        fault_default(sig);
        if (sent)
            raise(sig);
    }
    errno = saved;
}

/* An alternate signal stack for the calling thread, unless it has one. */
static void fault_alternate_stack(size_t want)
{
    stack_t cur;
    if (sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_DISABLE))
        return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = want > (size_t)SIGSTKSZ ? want : (size_t)SIGSTKSZ;
    size = (size + page - 1) & ~(page - 1);
    char *m = mmap(NULL, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return;
    mprotect(m, page, PROT_NONE); /* an overflowing handler faults, not scribbles */
    stack_t alt = { .ss_sp = m + page, .ss_size = size, .ss_flags = 0 };
    if (sigaltstack(&alt, NULL) != 0)
        munmap(m, size + page);
}

int ebb__os_fault_watch(ebb__os_fault_fn fn, size_t stack_size)
{
    int saved = errno, was = 0;
    if (!atomic_compare_exchange_strong(&fault_watching, &was, 1))
        return 0;
    fault_note = fn;
    fault_alternate_stack(stack_size);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fault_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    int rc = 0;
    for (int i = 0; i < 2; i++)
        if (sigaction(fault_signals[i], &sa, &fault_before[fault_slot(fault_signals[i])]) != 0)
            rc = -1;
    errno = saved;
    return rc;
}

const char *ebb__os_fault_name(int sig)
{
    return sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : "a signal";
}

long ebb__os_thread_id(void)
{
    return (long)syscall(SYS_gettid);
}
