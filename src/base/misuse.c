/*
 * misuse.c -- what ebb does when a program misuses it.
 *
 * Owns: ebb__misuse (how many misuses were seen, and how many frees of
 * pointers ebb never made) and what a misuse does: EBB_ON_ERROR, read at
 * start-up, and ebb_on_error, which changes it while the program runs.
 *
 * A misuse is counted, named in one line that gives the function, the
 * pointer and the fault ("ebb: free(0x...): double free of a 64-byte
 * block, ..."), then handled as the setting says.  Two kinds, because they
 * differ in what going on risks:
 *   - corruption (a double free, a free or realloc of a freed block or of a
 *     pointer no block of ebb's starts at, a block whose guard was
 *     overwritten): going on would hand one block to two owners, or the
 *     program's idea of what it owns is wrong and what it frees next may be
 *     live, so by default ebb aborts, as glibc does ("free(): invalid
 *     pointer");
 *   - a question about a bad pointer (malloc_usable_size of one ebb never
 *     made): nothing is freed or moved, so by default ebb reports it, the
 *     answer is 0 and the program goes on.
 * A block of the allocator CPython had before `ebb.install()` never reaches
 * here: the installed wrappers hand it to that allocator (python/install.c).
 * EBB_ON_ERROR=warn|abort|ignore makes both kinds do the same.  Whoever
 * detects a misuse calls here at once, under whatever lock it holds:
 * nothing here takes a lock or allocates.
 */
#include "internal.h"

#include <errno.h>

EBB_HIDDEN ebb__misuse_t ebb__misuse;

/* ebb_on_error's setting; -1 until a call: EBB_ON_ERROR rules. */
static _Atomic int on_error_set = -1;

static int on_error_now(void)
{
    int set = atomic_load_explicit(&on_error_set, memory_order_relaxed);
    return set >= 0 ? set : ebb__opt.on_error;
}

EBB_API int ebb_on_error(int action)
{
    if (action < EBB_ON_ERROR_WARN || action > EBB_ON_ERROR_DEFAULT) {
        errno = EINVAL;
        return -1;
    }
    int was = atomic_exchange_explicit(&on_error_set, action, memory_order_relaxed);
    return was >= 0 ? was : ebb__opt.on_error;
}

static void misuse(const char *fn, const void *p, const char *fault, int fatal_by_default)
{
    atomic_fetch_add_explicit(&ebb__misuse.errors, 1, memory_order_relaxed);
    int action = on_error_now();
    if (action == EBB_ON_ERROR_DEFAULT)
        action = fatal_by_default ? EBB_ON_ERROR_ABORT : EBB_ON_ERROR_WARN;
    if (action == EBB_ON_ERROR_IGNORE)
        return;
    ebb__diag("ebb: %s(%p): %s%s\n", fn, p, fault,
              action == EBB_ON_ERROR_ABORT ? "; aborting" : "");
    if (action == EBB_ON_ERROR_ABORT)
        ebb__os_abort();
}

void ebb__report_misuse(const char *fn, const void *p, const char *fault)
{
    misuse(fn, p, fault, 0);
}

void ebb__report_corruption(const char *fn, const void *p, const char *fault)
{
    misuse(fn, p, fault, 1);
}
