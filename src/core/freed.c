/*
 * freed.c -- knowing a freed small block when it is freed again.
 *
 * Owns: the freed-block key (ebb__freed_key), a secret word drawn from the
 * kernel once per process, and the answer to "is this block free already,
 * and where is it?" (ebb__freed_where).
 *
 * A thread cache is a stack of pointers: pushing a block never looks at the
 * block, so before this file a second free of a cached block was pushed
 * again, and the next two mallocs returned it twice.  The pool's bitmap sees
 * a double free only when the block comes home, which may be thousands of
 * frees later, after the block was handed out again.
 *
 * The scheme (glibc's tcache has the same idea): free writes the key into
 * the block's second word (ebb__block_mark_freed); every allocation clears
 * that word (ebb__block_mark_live).  A free that finds the key there is
 * very likely a double free, and the slow path confirms it by looking for
 * the block where a freed block can be: the freeing thread's cache, its pool
 * (the bitmap says free), or another thread's cache (a cross-thread double
 * free).  Found: the misuse is reported and the call does nothing more.  Not
 * found (the block is out and holds the key anyway: the program's copy of
 * bytes it never wrote, often realloc's, carried a stale mark, or the
 * program wrote that value): an ordinary free.  A freed block whose page
 * was purged reads zero: freed again, it is caught only when it goes home
 * (the pool's bitmap, pool.c).
 *
 * Invariants: a block that is out (owned by the program) holds the key only
 * if the program's own stores or copies put it there; a block in a cache
 * holds it (cached blocks' pages are never purged).  The second word, not
 * the first: the first is where a future free list through the blocks would
 * go, and where a use-after-free most often writes.
 *
 * Cost (callgrind, bench/run.py at scale 0.02): a load, a compare and a store
 * on free's fast path, a store on malloc's; measured in the note.
 */
#include "internal.h"

/* Never 0 (a zeroed block must not look freed), so odd; replaced at
 * start-up by a value the program cannot guess. */
EBB_HIDDEN uintptr_t ebb__freed_key = (uintptr_t)0x9e3779b97f4a7c15ull | 1;

void ebb__freed_key_init(void)
{
    ebb__freed_key = (uintptr_t)ebb__os_random64() | 1;
}

static int stack_holds(const ebb__tbin_t *b, const void *p)
{
    void **top = __atomic_load_n(&((ebb__tbin_t *)b)->top, __ATOMIC_ACQUIRE);
    for (void **e = ebb__tbin_low(b); e < top; e++)
        if (__atomic_load_n(e, __ATOMIC_RELAXED) == p)
            return 1;
    return 0;
}

/* Another thread's cache holds p: a cross-thread double free.  Those stacks
 * move while we look (their owners take no lock), so a block freed again
 * meanwhile may be missed.  But a correct program's p is never found: it
 * left the cache it was last in (a pop, a flush: stores that happened
 * before p reached this thread), and any top read since covers only entries
 * written after that (internal.h: ebb__tbin_set_top).  A live block holds
 * the mark more often than 1 in 2^64: realloc copies a block's unwritten
 * bytes, and stale marks are among them (test_races saw a few in a run). */
static ebb__thread_t *other_cache_holding(const ebb__thread_t *self, unsigned cls, const void *p)
{
    ebb__thread_t *found = NULL;
    ebb__lock(&ebb__threads.lock);
    for (ebb__thread_t *tc = ebb__threads.active; tc && !found; tc = tc->next)
        if (tc != self && stack_holds(&tc->bin[cls], p))
            found = tc;
    ebb__unlock(&ebb__threads.lock);
    return found;
}

ebb__freed_t ebb__freed_where(const ebb__thread_t *self, unsigned cls, const void *p)
{
    if (self && stack_holds(&self->bin[cls], p))
        return EBB_FREED_IN_THIS_CACHE;
    if (ebb__heap_block_is_free(p))
        return EBB_FREED_IN_POOL;
    if (other_cache_holding(self, cls, p))
        return EBB_FREED_IN_OTHER_CACHE;
    return EBB_NOT_FREED;
}

const char *ebb__freed_place(ebb__freed_t where)
{
    switch (where) {
    case EBB_FREED_IN_THIS_CACHE:
        return "it is in this thread's cache, freed by this thread";
    case EBB_FREED_IN_POOL:
        return "it is back in its pool";
    case EBB_FREED_IN_OTHER_CACHE:
        return "it is in another thread's cache, freed by that thread";
    default:
        return "";
    }
}
