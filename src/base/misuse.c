/*
 * misuse.c -- what ebb does when a program misuses it.
 *
 * Owns: ebb__misuse (how many misuses were seen, and how many frees of
 * pointers ebb never made) and EBB_ON_ERROR's effect.
 *
 * A misuse (a foreign pointer, a double free, an interior pointer) is
 * counted, named in one line that gives the function, the pointer and the
 * fault ("ebb: free(0x...): double free (block is already free)"), then
 * handled as EBB_ON_ERROR says: warn (the default: go on, the bad call
 * ignored), abort, or ignore (counted only).  Whoever detects it calls here
 * at once, under whatever lock it holds: nothing here takes a lock or
 * allocates.
 */
#include "internal.h"

EBB_HIDDEN ebb__misuse_t ebb__misuse;

void ebb__report_misuse(const char *fn, const void *p, const char *fault)
{
    atomic_fetch_add_explicit(&ebb__misuse.errors, 1, memory_order_relaxed);
    if (ebb__opt.on_error == EBB_ON_ERROR_IGNORE)
        return;
    ebb__diag("ebb: %s(%p): %s\n", fn, p, fault);
    if (ebb__opt.on_error == EBB_ON_ERROR_ABORT)
        ebb__os_abort();
}
