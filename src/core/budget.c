/*
 * budget.c -- the memory limit's arithmetic: may committed grow by n bytes?
 *
 * Owns: the limit in force, its soft level and emergency reserve (set by
 * policy/limit.c, which decides where they come from), the answer to "may
 * committed grow by n", and the facts that answer leaves behind: a refusal
 * (per thread), growth past the soft level, an episode's end.
 *
 * The mechanism asks before it commits: a bin taking a new pool (its whole
 * span) and a new or grown large mapping.  Asking never blocks and takes no
 * lock, so it may happen under any lock; with no limit (the default) it is
 * one relaxed load and a branch.  What it sees it only records; limit.c reads
 * the records from the front's slow paths, holding no lock, and runs the
 * pressure callbacks, purges, or fails the request.
 *
 * The levels (limit.c has the whole story):
 *   soft      growth past it owes the soft callbacks once per episode; an
 *             episode ends when an admission finds committed back below it;
 *   limit     growth past the limit less its reserve is refused; once a
 *             refusal opened the reserve, growth up to the limit itself is
 *             admitted, until committed is back below limit - 2 * reserve.
 */
#include "internal.h"

EBB_HIDDEN ebb__budget_t ebb__budget;

/* Set by a refusal (maybe under a lock); read by limit.c on the front's way
 * out of the failed request. */
static __thread size_t refused_bytes __attribute__((tls_model("initial-exec")));

int ebb__budget_admits(size_t bytes)
{
    size_t limit = atomic_load_explicit(&ebb__budget.limit, memory_order_relaxed);
    if (EBB_LIKELY(limit == 0))
        return 1;
    size_t committed = ebb__committed_now();
    size_t after = committed + bytes < committed ? SIZE_MAX : committed + bytes;
    size_t reserve = atomic_load_explicit(&ebb__budget.reserve, memory_order_relaxed);
    int open = atomic_load_explicit(&ebb__budget.reserve_open, memory_order_relaxed);
    if (after > (open ? limit : limit - reserve)) {
        refused_bytes = bytes;
        return 0;
    }
    if (open && after <= limit - 2 * reserve)
        atomic_store_explicit(&ebb__budget.reserve_open, 0, memory_order_relaxed);
    if (after > atomic_load_explicit(&ebb__budget.soft, memory_order_relaxed)) {
        if (!atomic_load_explicit(&ebb__budget.episode, memory_order_relaxed))
            atomic_store_explicit(&ebb__budget.soft_due, 1, memory_order_relaxed);
    } else if (atomic_load_explicit(&ebb__budget.episode, memory_order_relaxed)) {
        atomic_store_explicit(&ebb__budget.episode, 0, memory_order_relaxed);
        atomic_store_explicit(&ebb__budget.reported, 0, memory_order_relaxed);
    }
    return 1;
}

size_t ebb__budget_take_refused(void)
{
    size_t bytes = refused_bytes;
    refused_bytes = 0;
    return bytes;
}

void ebb__budget_install(size_t limit, size_t soft, size_t reserve)
{
    atomic_store_explicit(&ebb__budget.reserve, reserve, memory_order_relaxed);
    atomic_store_explicit(&ebb__budget.reserve_open, 0, memory_order_relaxed);
    atomic_store_explicit(&ebb__budget.soft, soft, memory_order_relaxed);
    atomic_store_explicit(&ebb__budget.limit, limit, memory_order_relaxed);
    atomic_store_explicit(&ebb__budget.episode, 0, memory_order_relaxed);
    atomic_store_explicit(&ebb__budget.soft_due, 0, memory_order_relaxed);
}
