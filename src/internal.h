/*
 * internal.h -- what each layer of ebb does: its functions, by layer, top
 * to bottom.  types.h holds the structures they share.
 *
 * The layers.  A layer calls the layers below it, never one above; the
 * folders of src/ are the layers, and tests/layers/check_layers.py fails the
 * build when an object file of a lower layer refers to a symbol an upper
 * layer defines.
 *
 *   front    front/    the doors: malloc and friends (malloc.c, override.c),
 *                      CPython's domains (cpython.c), its Python stacks
 *                      (pyframes.c) and MemoryError (pymemerror.c), start-up and fork
 *                      (init.c), the purger thread (purger.c), the debug
 *                      heap (debug.c).  Drivers: they
 *                      call the mechanism, and on their way out act on what
 *                      it recorded (a refusal, purgeable memory, a sample to
 *                      take), holding no lock.
 *      |
 *   insight  insight/  reads every layer below, changes nothing there:
 *                      statistics (stats.c), ebb_check (check.c), reports
 *                      (report*.c), the black box (blackbox.c), the heap
 *                      profiler (sample.c), memory over time (timeline.c),
 *                      the status page `ebb top` reads (status.c), the
 *                      crash note (crash.c), the map of an address space
 *                      (addrspace*.c: pure, on text; its own header,
 *                      addrspace.h, as `ebb map` compiles it in).
 *      |
 *   policy   policy/   decides and acts through the mechanism: the purge pass
 *                      and ebb_collect (purge.c), the limit's episodes,
 *                      callbacks and auto limit (limit.c), the kernel's
 *                      pressure (pressure.c).
 *      |
 *   core     core/     the mechanism: size classes, the ownership map, arenas,
 *                      pools, heaps, large blocks, thread caches; the facts it
 *                      records for the layers above (ledger.c: bytes held and
 *                      purged; budget.c: the limit's arithmetic); its start-up
 *                      (setup.c).
 *      |
 *   base     base/     what every layer uses: options (options.c, one table),
 *                      one-line diagnoses (diag.c), what a misuse does
 *                      (misuse.c), the list of every lock and whether ebb
 *                      may start threads (process.c).
 *      |
 *   os       os/       the only code that makes system calls (os.h).
 *
 * The allocation path inside core, top to bottom:
 *
 *   thread cache (thread.c)   per-thread stacks of free blocks, no locks
 *     -> heap (heap.c)        bounded set of shared heaps, a locked bin per
 *                             size class, pools sorted by fullness
 *     -> pool (pool.c)        one size class in 1..8 slots; free blocks in an
 *                             out-of-band bitmap
 *     -> arena (arena.c)      4 MiB size-aligned region of 64 slots; slot 0
 *                             holds all metadata of the arena
 *   large blocks (large.c) sit beside the heap: own mappings, a hash table
 *   of descriptors, a small cache of freed mappings.
 *   ownership (ownership.c): one byte per arena-sized piece of the address
 *   space says whether an arena lives there.
 *
 * Lock order (the order base/process.c's list takes them in): the sampler's
 * unwind gate (fork only, first: an unwind may allocate) -> the child-only
 * sets and the peak snapshot's lock -> arena lend -> thread registry -> bin (one at a
 * time) -> arena -> large -> limit -> sampler tables (its gate, and the
 * stack hook writers' lock) -> timeline.  A gate is no lock: threads pass it without
 * waiting for one another, and closing it waits for those inside
 * (insight/sample.c).  The fast paths take none.
 */
#ifndef EBB_INTERNAL_H
#define EBB_INTERNAL_H

#include <stdarg.h>
#include <string.h>

#include "types.h"
#include "base/options_table.h"

/* ================================================================ base */

/* ---------------------------------------------------- base/options.c */

extern EBB_HIDDEN ebb__options_t ebb__opt;
/* Read the options into ebb__opt, once (later calls return at once). */
void ebb__options_start(void) EBB_HIDDEN;
/* Read them into o: defaults, then each variable set (tests use this). */
void ebb__options_read(ebb__options_t *o) EBB_HIDDEN;
/* The root below which system files (cgroup, /proc) are read: "" for the
 * real system; a debug build's unit tests may set EBB__TEST_ROOT. */
static inline const char *ebb__system_root(void)
{
    return EBB_DEBUG >= 1 ? ebb__opt.test_root : "";
}

/* ------------------------------------------------------- base/diag.c */

/* One line on stderr, without allocating: %s %p %zu %u %d %x. */
void ebb__diag(const char *fmt, ...) EBB_HIDDEN;
/* The same formatter into a buffer (reports); returns the length. */
size_t ebb__vformat(char *buf, size_t cap, const char *fmt, va_list ap) EBB_HIDDEN;
size_t ebb__format(char *buf, size_t cap, const char *fmt, ...) EBB_HIDDEN;
_Noreturn void ebb__assert_fail(const char *cond, const char *file, int line) EBB_HIDDEN;

#if EBB_DEBUG >= 1
#define ebb__assert(c) ((c) ? (void)0 : ebb__assert_fail(#c, __FILE__, __LINE__))
#else
#define ebb__assert(c) ((void)0)
#endif

/* A struct of the public API that grows (ebb_stats_ex, ebb_rss): copy the
 * `have` bytes this library fills into the caller's `want`, zeroing what a
 * newer caller has beyond them; the bytes filled. */
static inline size_t ebb__copy_sized(void *out, size_t want, const void *have, size_t have_size)
{
    size_t n = want < have_size ? want : have_size;
    memcpy(out, have, n);
    if (want > n)
        memset((char *)out + n, 0, want - n);
    return n;
}

/* ----------------------------------------------------- base/misuse.c */

extern EBB_HIDDEN ebb__misuse_t ebb__misuse;
/* A misuse of the API: counted, named on stderr, then EBB_ON_ERROR (by
 * default: reported, the call ignored). */
void ebb__report_misuse(const char *fn, const void *p, const char *fault) EBB_HIDDEN;
/* The same for a double free or a damaged block (by default: abort). */
void ebb__report_corruption(const char *fn, const void *p, const char *fault) EBB_HIDDEN;

/* ---------------------------------------------------- base/process.c */

/* ebb's constructor ran: the program is running, ebb may start threads. */
extern EBB_HIDDEN _Atomic int ebb__threads_allowed;
static inline int ebb__may_start_threads(void)
{
    return atomic_load_explicit(&ebb__threads_allowed, memory_order_acquire);
}
/* Start one of ebb's threads (ebb__os_thread_start) with the calling
 * thread marked quiet meanwhile: the C library's allocations for the new
 * thread are not sampled as the program's. */
extern EBB_HIDDEN __thread int ebb__quiet;
int ebb__start_thread(void (*fn)(void *), void *arg, const char *name) EBB_HIDDEN;
/* Add a module's locks to the list, after those already there: the order
 * of registration is the lock order (front/init.c registers them all). */
void ebb__locksets_register(const ebb__lockset_t *set) EBB_HIDDEN;
/* Take every registered lock in order (for_fork: also the fork-only
 * ones); release them in the reverse order. */
void ebb__lock_everything(int for_fork) EBB_HIDDEN;
void ebb__unlock_everything(int for_fork) EBB_HIDDEN;
/* In a fork child: every set's child handler, in the reverse order. */
void ebb__locksets_fork_child(void) EBB_HIDDEN;

/* ================================================================ core */

/* ---------------------------------------------------- core/setup.c */

extern EBB_HIDDEN _Atomic int ebb__core_ready;
void ebb__core_setup(void) EBB_HIDDEN;
/* Options read, size classes and heaps ready: what every call into the
 * mechanism needs.  One load once done. */
static inline void ebb__ensure_init(void)
{
    if (EBB_UNLIKELY(!atomic_load_explicit(&ebb__core_ready, memory_order_acquire)))
        ebb__core_setup();
}

/* ------------------------------------------------- core/sizeclass.c */

extern EBB_HIDDEN ebb__class_t ebb__classes[EBB_CLASSES];
/* The two fields the free fast path needs, packed for cheap indexing. */
extern EBB_HIDDEN uint64_t ebb__class_recip[EBB_CLASSES];
extern EBB_HIDDEN uint32_t ebb__class_size[EBB_CLASSES];
/* ceil(2^64 / size): the free fast path's test for a block start; indexed
 * by any class byte, 0 (never a start) for those that are no class. */
extern EBB_HIDDEN uint64_t ebb__class_divisor_test[256];
extern EBB_HIDDEN uint8_t ebb__class_lut[(1024 / EBB_SMALL_STEP) + 1];

void ebb__sizeclass_init(void) EBB_HIDDEN;
unsigned ebb__class_of_big(size_t n) EBB_HIDDEN;

/* Class of a request of n <= EBB_LARGE_THRESHOLD bytes. */
static inline unsigned ebb__class_of(size_t n)
{
    if (EBB_LIKELY(n <= 1024))
        return ebb__class_lut[(n + EBB_SMALL_STEP - 1) / EBB_SMALL_STEP];
    return ebb__class_of_big(n);
}

/* Index of the block at byte offset off of a class-cls pool; 1 if off is
 * exactly a block start.  One multiply by the reciprocal, one to check. */
static inline int ebb__offset_to_index(uintptr_t off, unsigned cls, uint32_t *idx)
{
    uint32_t i = (uint32_t)(((uint64_t)off * ebb__class_recip[cls]) >> 48);
    *idx = i;
    return (uintptr_t)i * ebb__class_size[cls] == off;
}

/* 1 if off is a multiple of class cls's block size: off * ceil(2^64 /
 * size), wrapped to 64 bits, is below ceil(2^64 / size) exactly when size
 * divides off, for every off below 2^32 (Lemire, Kaser and Kurz, "Faster
 * remainder by direct computation", 2019).  One multiply and a compare, no
 * index: cheaper than ebb__offset_to_index when only the answer is wanted. */
static inline int ebb__offset_is_block_start(uintptr_t off, unsigned cls)
{
    uint64_t m = ebb__class_divisor_test[cls];
    return (uint64_t)off * m < m;
}

/* The fullness bucket of a pool of class cls with `used` blocks out:
 * floor(used * BUCKETS / blocks), by multiply (exact: used * BUCKETS < 2^15
 * and blocks <= 2^12), or FULL. */
static inline unsigned ebb__bucket_for(uint32_t used, unsigned cls)
{
    const ebb__class_t *c = &ebb__classes[cls];
    if (used == c->blocks)
        return EBB_BUCKET_FULL;
    return (unsigned)(((uint64_t)used * EBB_POOL_BUCKETS * c->bucket_recip) >> 32);
}

/* ------------------------------------------------- core/ownership.c */

extern EBB_HIDDEN uint8_t ebb__owner_map[EBB_MAP_ENTRIES];

/* The arena containing address a, or NULL if no arena of ours is there.
 * Reads one byte of the map; never touches the address itself. */
static inline ebb__arena_t *ebb__arena_of(uintptr_t a)
{
    uintptr_t i = a >> EBB_ARENA_SHIFT;
    if (EBB_UNLIKELY(i >= EBB_MAP_ENTRIES) || ebb__owner_map[i] == 0)
        return NULL;
    return (ebb__arena_t *)(a & ~(EBB_ARENA_SIZE - 1));
}
/* The fast paths' variant: the header of a's arena if the map says there is
 * one, else 0; the caller tests only the map byte, not the address. */
static inline int ebb__is_arena_address(uintptr_t a)
{
    uintptr_t i = a >> EBB_ARENA_SHIFT;
    return EBB_LIKELY(i < EBB_MAP_ENTRIES) && ebb__owner_map[i] != 0;
}

static inline unsigned ebb__slot_of(uintptr_t a)
{
    return (unsigned)((a >> EBB_SLOT_SHIFT) & (EBB_SLOTS - 1));
}

void ebb__owner_set(ebb__arena_t *a, int ours) EBB_HIDDEN;

/* ---------------------------------------------------- core/ledger.c */

extern EBB_HIDDEN ebb__ledger_t ebb__ledger;
/* The mechanism starts: the clock peak times are measured from. */
void ebb__ledger_start(void) EBB_HIDDEN;
size_t ebb__committed_now(void) EBB_HIDDEN;
void ebb__mapped_add(size_t n) EBB_HIDDEN;
void ebb__mapped_sub(size_t n) EBB_HIDDEN;
void ebb__pages_dirtied(size_t pages) EBB_HIDDEN;
void ebb__pages_cleaned(size_t pages) EBB_HIDDEN;
/* Watch committed from `mark` on: once it moves a step (a sixteenth, at
 * least 1 MiB) away, the purger's work counter is bumped and the moving
 * thread owes a kick (the timeline's points, ledger.c says why). */
void ebb__ledger_watch(size_t mark) EBB_HIDDEN;
/* 1 for the one caller that is to kick the purger for a move (the move is
 * then marked kicked); 0 if none is owed or it was kicked already. */
int ebb__ledger_watch_kick(void) EBB_HIDDEN;
/* Give pages back to the OS (EBB_PURGE_MODE says how) and count them: with
 * the batch calls below, the only calls that purge. */
void ebb__purge_range(void *p, size_t bytes) EBB_HIDDEN;
/* The same, for many ranges: add each one (a full batch is given back
 * first; a NULL batch purges the range at once), then flush while something still keeps the pages from being
 * handed out (a bin lock, borrowed blocks, a lent slot): a page reused
 * before the flush would lose what was written to it.  A batch starts with
 * n = 0. */
void ebb__purge_batch_add(ebb__purge_batch_t *b, void *p, size_t bytes) EBB_HIDDEN;
void ebb__purge_batch_flush(ebb__purge_batch_t *b) EBB_HIDDEN;

/* The one answer to "purge memory that just came back now, after the purge
 * delay, or never" (EBB_PURGE_DELAY_MS: 0, N, -1).  Every layer asks this
 * rather than reading the option. */
static inline ebb__purge_when_t ebb__purge_when(void)
{
    long delay = ebb__opt.purge_delay;
    return delay == 0 ? EBB_PURGE_NOW : delay < 0 ? EBB_PURGE_NEVER : EBB_PURGE_LATER;
}
/* The delay, in ms, when the answer is LATER. */
static inline uint32_t ebb__purge_delay_ms(void)
{
    return (uint32_t)ebb__opt.purge_delay;
}

/* This thread announced purgeable memory since it last kicked the purger. */
extern EBB_HIDDEN __thread int ebb__purge_owed __attribute__((tls_model("initial-exec")));
/* Purgeable memory appeared (under any lock): counted for the purger, and
 * this thread owes a kick (front/purger.c), which the front gives on its way
 * out, holding no lock. */
static inline void ebb__purge_announce(void)
{
    atomic_fetch_add_explicit(&ebb__ledger.purge_work, 1, memory_order_seq_cst);
    ebb__purge_owed = 1;
}
/* How old a stamp is at `now`, in ms (wrap-safe).  A stamp from after `now`
 * is 0 ms old: a pass reads the clock once, then a thread that frees while
 * the pass runs stamps a later time.  Read as unsigned, that stamp would be
 * 49 days old and purged at once, memory the program just freed and may
 * reuse (seen: 4 MiB of a loop's arena slots under EBB_DEBUG=2, whose slow
 * passes leave room for it).  So ages run to 2^31 ms (24 days); anything
 * free that long was purged long before. */
static inline uint32_t ebb__age_ms(uint32_t now, uint32_t stamp)
{
    int32_t age = (int32_t)(now - stamp);
    return age < 0 ? 0 : (uint32_t)age;
}
/* A stamp is at least `delay` ms old. */
static inline int ebb__due(uint32_t now, uint32_t stamp, long delay)
{
    return ebb__age_ms(now, stamp) >= (uint32_t)delay;
}
/* The sooner of two waits in ms (UINT32_MAX: none). */
static inline uint32_t ebb__sooner_ms(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}
/* ms until a stamp is `wait` ms old; 0 if it is. */
static inline uint32_t ebb__ms_until(uint32_t now, uint32_t stamp, uint32_t wait)
{
    uint32_t age = ebb__age_ms(now, stamp);
    return age >= wait ? 0 : wait - age;
}

/* ---------------------------------------------------- core/budget.c */

extern EBB_HIDDEN ebb__budget_t ebb__budget;
/* 1 if committed may grow by `bytes`; 0 records a refusal for this thread
 * (the caller fails its request).  Never blocks: callable under any lock. */
int ebb__budget_admits(size_t bytes) EBB_HIDDEN;
/* The bytes this thread was last refused (0 none), forgotten. */
size_t ebb__budget_take_refused(void) EBB_HIDDEN;
/* A new limit (0 none) with its soft level and reserve: no episode open,
 * the reserve closed. */
void ebb__budget_install(size_t limit, size_t soft, size_t reserve) EBB_HIDDEN;

/* ---------------------------------------------------- core/demand.c */

/* Units d's owner took over about the last `window` ms (a sliding window
 * of two buckets; the owner's lock held). */
uint32_t ebb__demand_recent(ebb__demand_t *d, uint32_t now, uint32_t window) EBB_HIDDEN;
/* n units were taken from d's owner, by a thread that keeps its share in t
 * (NULL: nobody's).  Owner's lock held. */
void ebb__demand_count(ebb__demand_t *d, ebb__took_t *t, uint32_t n) EBB_HIDDEN;
/* The thread that kept t is gone: what it took leaves the demand.  Owner's
 * lock held. */
void ebb__demand_forget(ebb__demand_t *d, ebb__took_t *t) EBB_HIDDEN;
/* How long free memory must stay quiet before a pass with `delay` purges
 * it, for an owner holding free_bytes that took demand_bytes over the last
 * delay: the delay, or EBB_SURPLUS_QUIET_MS for surplus, more than `margin`
 * beyond the demand (and *surplus set). */
long ebb__surplus_delay(long delay, size_t free_bytes, size_t demand_bytes, size_t margin,
                        int *surplus) EBB_HIDDEN;

/* ----------------------------------------------------- core/arena.c */

extern EBB_HIDDEN ebb__arena_set_t ebb__arenas;
extern EBB_HIDDEN const ebb__lockset_t ebb__arena_locks, ebb__arena_lend_locks;
ebb__pool_t *ebb__arena_take_pool(unsigned span, unsigned cls) EBB_HIDDEN;
void ebb__arena_release_pool(ebb__pool_t *p) EBB_HIDDEN;
void ebb__arena_collect(int force) EBB_HIDDEN;
/* Purge free slots idle for `delay` ms (all if delay is 0; surplus slots
 * once quiet for less, core/demand.c, and then *surplus is set); returns the
 * ms until the next one falls due, or UINT32_MAX if none waits. */
uint32_t ebb__arena_purge(uint32_t now, long delay, int *surplus) EBB_HIDDEN;
/* The arena counters into s; the caller holds the arena lock. */
void ebb__arena_stats_locked(ebb_stats_t *s) EBB_HIDDEN;
/* Arena lock held: pages of free slots counted resident. */
size_t ebb__arena_free_committed_locked(void) EBB_HIDDEN;
static inline ebb__arena_t *ebb__arena_of_pool(const ebb__pool_t *p)
{
    return (ebb__arena_t *)((uintptr_t)p & ~(EBB_ARENA_SIZE - 1));
}
/* Pool p's first block: the start of its first slot. */
static inline uint8_t *ebb__pool_start(const ebb__pool_t *p)
{
    return (uint8_t *)ebb__arena_of_pool(p) + ((uintptr_t)p->head_slot << EBB_SLOT_SHIFT);
}
/* The cold part of p's descriptor (types.h): valid while p is listed. */
static inline ebb__pool_cold_t *ebb__pool_cold(const ebb__pool_t *p)
{
    return &ebb__arena_of_pool(p)->cold[p->head_slot];
}
/* Takes the arena lock: a's cold part, purged or being purged, is counted
 * resident again (arena.c, "Header pages"). */
void ebb__arena_cold_restore(ebb__arena_t *a) EBB_HIDDEN;
/* Arena lock held: bytes [at, at + len) of a's header are about to be
 * written, so their pages become resident (committed counts them). */
void ebb__arena_header_touch(ebb__arena_t *a, const void *at, size_t len) EBB_HIDDEN;
#define EBB_COLD_GONE 0x80000000u    /* the cold page was purged */
#define EBB_COLD_BUSY 0x40000000u    /* ...is being purged (arena lock held) */
#define EBB_COLD_RECHECK 0x20000000u /* the last listed pool left */
#define EBB_COLD_USERS 0x1fffffffu   /* listed pools */
/* The header pages that hold part of the cold descriptors or bits_used:
 * every page but the first, up to the bitmaps' start. */
#define EBB_COLD_PAGES \
    ((uint16_t)(((1u << (((offsetof(ebb__arena_t, bits) - 1) >> EBB_PAGE_SHIFT) + 1)) - 1) & ~1u))
/* Bin lock held: pool p joins its bin's purge list, whose links are in the
 * cold part; the arena is told first, since it may have purged that page,
 * and then keeps it. */
static inline void ebb__arena_cold_enter(const ebb__pool_t *p)
{
    ebb__arena_t *a = ebb__arena_of_pool(p);
    uint32_t was = atomic_fetch_add_explicit(&a->cold_users, 1, memory_order_acq_rel);
    if (EBB_UNLIKELY(was & (EBB_COLD_GONE | EBB_COLD_BUSY)))
        ebb__arena_cold_restore(a);
}
/* Bin lock held: p left its purge list, its last write to the cold part done. */
static inline void ebb__arena_cold_leave(const ebb__pool_t *p)
{
    ebb__arena_t *a = ebb__arena_of_pool(p);
    uint32_t was = atomic_fetch_sub_explicit(&a->cold_users, 1, memory_order_acq_rel);
    ebb__assert(was & EBB_COLD_USERS);
    if ((was & EBB_COLD_USERS) == 1)
        atomic_fetch_or_explicit(&a->cold_users, EBB_COLD_RECHECK, memory_order_relaxed);
}
static inline uint64_t *ebb__pool_bitmap(ebb__pool_t *p)
{
    return &ebb__arena_of_pool(p)->bits[p->bits_at];
}
static inline unsigned ebb__bitmap_words(unsigned cls)
{
    return (ebb__classes[cls].blocks + 63) / 64;
}
/* n bits (1 to 64) from bit `at` up, within one 64-bit word. */
static inline uint64_t ebb__bit_run(unsigned n, unsigned at)
{
    return (n == 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1)) << at;
}

/* ------------------------------------------------------ core/pool.c */

void ebb__pool_format(ebb__pool_t *p, ebb__heap_t *h, unsigned cls) EBB_HIDDEN;
/* Arena lock held: find p's bitmap words in its arena header, give them back. */
void ebb__pool_bits_reserve(ebb__pool_t *p, unsigned cls) EBB_HIDDEN;
void ebb__pool_bits_release(ebb__pool_t *p) EBB_HIDDEN;
/* Bin lock held, takes the arena lock: p, with 1 to EBB_SPARSE_BLOCKS
 * blocks out, keeps their indices and gives its bitmap words back (pool.c,
 * "Sparse pools"); 1 if it did. */
int ebb__pool_sparsen(ebb__pool_t *p) EBB_HIDDEN;
/* A new arena's header fields (all but the bitmaps) count as resident. */
/* Bin lock held: up to `want` free blocks of p, lowest address first, stored
 * downwards from `end` (end[-1] is the lowest); how many. */
unsigned ebb__pool_take(ebb__pool_t *p, void **end, unsigned want) EBB_HIDDEN;
int ebb__pool_block_index(const ebb__pool_t *p, uintptr_t a, uint32_t *idx) EBB_HIDDEN;
int ebb__pool_is_free(ebb__pool_t *p, uint32_t idx) EBB_HIDDEN;
/* Bin lock held: the blocks at the start of `blocks` that lie in p go
 * back to it (misuse reported and skipped); entries consumed, at least 1. */
unsigned ebb__pool_put_run(ebb__pool_t *p, void *const *blocks, unsigned n) EBB_HIDDEN;
/* ebb__pool_put_run for a sparse pool: each block's index leaves the list. */
unsigned ebb__pool_put_sparse(ebb__pool_t *p, void *const *blocks, unsigned n) EBB_HIDDEN;
ebb__pool_t *ebb__pool_of(ebb__arena_t *a, uintptr_t addr) EBB_HIDDEN;
/* Purge the dirty pages of p that hold no block that is out, if there are
 * at least min_pages of them; returns how many were purged.  With a batch,
 * the ranges go into it, and the bin lock must stay held until it is
 * flushed (NULL: purged at once). */
size_t ebb__pool_purge(ebb__pool_t *p, size_t min_pages, ebb__purge_batch_t *batch) EBB_HIDDEN;
/* Bin lock held.  Mark the blocks over [from, from + bytes) of p, all free,
 * as out, so that no refill hands them out while their pages are purged
 * with the lock let go; returns how many (added to p->used).  unborrow
 * puts them back (a block freed meanwhile was a double free, reported and
 * left free) and returns how many it took back off p->used. */
size_t ebb__pool_borrow(ebb__pool_t *p, const void *from, size_t bytes) EBB_HIDDEN;
size_t ebb__pool_unborrow(ebb__pool_t *p, const void *from, size_t bytes) EBB_HIDDEN;

/* ------------------------------------------------------ core/heap.c */

extern EBB_HIDDEN ebb__heap_set_t ebb__heaps;
/* The heap that owns pool p, NULL while its slots are free.  Acquire: a
 * free that reads it without the bin lock sees the pool as formatted. */
static inline ebb__heap_t *ebb__pool_heap(const ebb__pool_t *p)
{
    unsigned i = __atomic_load_n(&p->heap, __ATOMIC_ACQUIRE);
    return i == EBB_NO_HEAP ? NULL : &ebb__heaps.heap[i];
}
static inline void ebb__pool_set_heap(ebb__pool_t *p, const ebb__heap_t *h)
{
    __atomic_store_n(&p->heap, h ? (uint8_t)(h - ebb__heaps.heap) : (uint8_t)EBB_NO_HEAP,
                     __ATOMIC_RELEASE);
}
extern EBB_HIDDEN const ebb__lockset_t ebb__heap_locks;
void ebb__heaps_init(unsigned n) EBB_HIDDEN;
/* Up to `want` blocks of class cls from heap h, stored downwards from `end`,
 * lowest address at end[-1]: a thread cache's stack pops from its top, so
 * it hands them out lowest address first without reordering them. */
unsigned ebb__heap_alloc(ebb__heap_t *h, unsigned cls, void **end, unsigned want,
                         ebb__took_t *took) EBB_HIDDEN;
/* An exiting thread's takes from h leave its bins' demand (core/demand.c). */
void ebb__heap_forget(ebb__heap_t *h, ebb__took_t took[EBB_CLASSES]) EBB_HIDDEN;
void ebb__heap_free(void *const *blocks, unsigned n) EBB_HIDDEN;
/* 1 if p is a block its pool holds as free (takes the pool's bin lock). */
int ebb__heap_block_is_free(const void *p) EBB_HIDDEN;
/* The same for blocks known idle for a delay already (a thread cache's
 * answer to a poke): their pools are due for purging at once. */
void ebb__heap_free_idle(void *const *blocks, unsigned n) EBB_HIDDEN;
ebb__heap_t *ebb__heap_pick(void) EBB_HIDDEN;
/* Purge the pools of bins listed for `delay` ms (every pool if delay is
 * 0; in bins holding surplus, once quiet for less, core/demand.c, and then
 * *surplus is set); returns ms until the next is due, or UINT32_MAX. */
uint32_t ebb__heap_purge(uint32_t now, long delay, int *surplus) EBB_HIDDEN;
/* A purge pass's loan of bin b's blocks (heap.c, purge_bin_due).  With the
 * arenas' lend lock and b's lock held: the blocks over batch's ranges are
 * marked out, *lent gets a copy of the ranges for the frees to check, and b
 * is the lending bin (owner[i]: the pool of range i).  unlend, with both
 * locks held again once the pages are purged, puts the blocks back and
 * releases the pools left empty. */
void ebb__heap_lend(ebb__bin_t *b, const ebb__purge_batch_t *batch, ebb__purge_batch_t *lent,
                    ebb__pool_t **owner) EBB_HIDDEN;
void ebb__heap_unlend(ebb__bin_t *b, const ebb__purge_batch_t *lent,
                      ebb__pool_t *const *owner) EBB_HIDDEN;
/* Blocks out and pools per class, summed over the heaps, into used[] and
 * pools[]; their bytes into s->small_used.  Takes each bin lock in turn. */
void ebb__heap_stats(ebb_stats_t *s, size_t used[EBB_CLASSES],
                     size_t pools[EBB_CLASSES]) EBB_HIDDEN;
/* Every pool of every class, summed into out[] (zeroed first): blocks out,
 * pools empty and in use, committed pages.  Takes each bin lock in turn. */
void ebb__heap_class_walk(ebb__class_walk_t out[EBB_CLASSES]) EBB_HIDDEN;

/* ---------------------------------------------------- core/thread.c */

extern EBB_HIDDEN ebb__thread_registry_t ebb__threads;
extern EBB_HIDDEN const ebb__lockset_t ebb__thread_locks;

/* The calling thread's state.  Written by its owner, and by the purger to
 * poke it (thread.c); read with relaxed loads, a plain move on x86-64. */
extern EBB_HIDDEN __thread _Atomic(ebb__thread_t *) ebb__self
    __attribute__((tls_model("initial-exec")));
static inline ebb__thread_t *ebb__self_get(void)
{
    return atomic_load_explicit(&ebb__self, memory_order_relaxed);
}
/* A thread cache's stacks are written by their owner only, and read by
 * another thread in one place: a free of a block that holds the freed mark
 * looks for it in other threads' caches (freed.c).  So that this read is
 * defined and exact, the owner writes every entry with a relaxed atomic
 * store, raises a top with a release store once the entries under it are
 * written (set_top), and lowers one with a relaxed store (drop_top); the
 * reader loads a top with acquire.  Then a block taken out of a cache (a
 * pop, a flush) and handed to another thread is never seen there again
 * (test_races: test_frees_of_blocks_holding_the_mark_during_churn, under
 * TSan).  On x86-64 each is the plain move it replaces: only the order the
 * compiler may choose is fixed, and the fast paths' instructions are the
 * same (callgrind). */
static inline void ebb__tbin_put(void **slot, void *block)
{
    __atomic_store_n(slot, block, __ATOMIC_RELAXED);
}
static inline void ebb__tbin_set_top(ebb__tbin_t *b, void **top)
{
    __atomic_store_n(&b->top, top, __ATOMIC_RELEASE);
}
static inline void ebb__tbin_drop_top(ebb__tbin_t *b, void **top)
{
    __atomic_store_n(&b->top, top, __ATOMIC_RELAXED);
}
/* A stack's start moves while its owner runs only when the purger takes
 * the blocks of an idle thread (thread.c, "Idle threads"): read and written
 * with relaxed atomics, the plain moves they replace on x86-64. */
static inline void **ebb__tbin_low(const ebb__tbin_t *b)
{
    return __atomic_load_n(&((ebb__tbin_t *)b)->low, __ATOMIC_RELAXED);
}
static inline void ebb__tbin_set_low(ebb__tbin_t *b, void **low)
{
    __atomic_store_n(&b->low, low, __ATOMIC_RELAXED);
}

/* Placeholders with no capacity, so the fast paths need no NULL test:
 * `unset` before a thread's first allocation, `bypass` after its cache was
 * torn down at exit or could not be made, `poked` when the purger asked the
 * thread to give its cached blocks back. */
extern EBB_HIDDEN ebb__thread_t ebb__thread_unset, ebb__thread_bypass, ebb__thread_poked;
/* How many times the purger took the blocks of an idle thread's cache. */
extern EBB_HIDDEN unsigned long ebb__tcache_takes;

/* This thread's state if it has a cache (a poke answered first: its cached
 * blocks gone home); NULL if it has none yet, or goes straight to a heap. */
ebb__thread_t *ebb__thread_get_slow(void) EBB_HIDDEN;
/* This thread allocates past its cache until resumed with what pause gave. */
ebb__thread_t *ebb__thread_cache_pause(void) EBB_HIDDEN;
void ebb__thread_cache_resume(ebb__thread_t *tc) EBB_HIDDEN;
/* Make the calling thread's cache (it has none yet); on_exit(state) is to
 * run when the thread exits.  NULL if it cannot be made: the thread then
 * goes straight to a heap for good. */
ebb__thread_t *ebb__thread_create(void (*on_exit)(void *)) EBB_HIDDEN;
/* The thread is exiting: its cached blocks go home, its state is kept for
 * the next thread. */
void ebb__thread_exit(void *state) EBB_HIDDEN;
/* The sampler's countdown of the calling thread; NULL while the thread
 * starts one of ebb's own (between cache_pause and resume): not sampled. */
ebb__sample_counter_t *ebb__thread_sample_counter(void) EBB_HIDDEN;
/* The calling thread's unwind memo (os.h), NULL if it has no cache. */
ebb__unwind_memo_t *ebb__thread_unwind_memo(void) EBB_HIDDEN;
/* Ask every thread to give back its cached blocks; how many were asked.
 * *take_in: ms until a thread that has not answered may have its blocks
 * taken (ebb__thread_take_idle), UINT32_MAX if none holds any. */
unsigned ebb__thread_poke_all(uint32_t now, uint32_t *take_in) EBB_HIDDEN;
/* Take the cached blocks of every thread that has not answered a poke for
 * EBB_TCACHE_IDLE_MS; they go home as its answer would have sent them
 * (idle if the stack neither refilled nor overflowed since the poke
 * before).  Returns ms until the next thread may be due, UINT32_MAX if
 * none. */
uint32_t ebb__thread_take_idle(uint32_t now) EBB_HIDDEN;
/* The calling thread is one of ebb's own (purger, watcher, reporter). */
void ebb__thread_mark_internal(void) EBB_HIDDEN;
int ebb__thread_is_internal(void) EBB_HIDDEN;
/* ebb's own threads may be the last ones only once the main thread has
 * left through pthread_exit; they check by reading /proc
 * (ebb__os_thread_count), a file they must not open while the program may
 * be counting its descriptors (timeline.c says why).  So they look only
 * once the main thread is known gone, or when that cannot be known (ebb
 * started on another thread): base/process.c watches for it. */
extern EBB_HIDDEN _Atomic int ebb__main_thread_watch; /* 0 unknown, 1 watched, 2 gone */
/* On the main thread (ebb's constructor; a fork child's handler): watch
 * for its pthread_exit (base/process.c). */
void ebb__watch_main_thread(void) EBB_HIDDEN;
static inline int ebb__maybe_last_thread(void)
{
    return atomic_load_explicit(&ebb__main_thread_watch, memory_order_relaxed) != 1 &&
           ebb__os_thread_count() == 1;
}
/* Bytes cached in every thread's cache (the calling thread's exactly, the
 * others' as their owners last published them), the thread count and what
 * the caches map, into s.  Takes the registry lock. */
void ebb__thread_stats(ebb_stats_t *s) EBB_HIDDEN;
/* Registry lock held: blocks in stack cls of tc, exact if tc is the calling
 * thread's own cache, else as of its owner's last slow path for cls. */
size_t ebb__tcache_depth(const ebb__thread_t *tc, unsigned cls) EBB_HIDDEN;
/* Blocks in every thread's cache, by class, added to cached[] (as
 * ebb__thread_stats counts them).  Takes the registry lock. */
void ebb__thread_cached_classes(size_t cached[EBB_CLASSES]) EBB_HIDDEN;
/* Registry lock held: fn on every thread cache's mapping (EBB_RANGE_META). */
void ebb__thread_each_map_locked(ebb__range_fn fn, void *ctx) EBB_HIDDEN;
/* The calling thread's own cache, NULL if it has none: the only one whose
 * stacks it may read (thread.c says why). */
const ebb__thread_t *ebb__thread_own(void) EBB_HIDDEN;
void *ebb__tcache_refill_pop(ebb__thread_t *t, unsigned cls) EBB_HIDDEN;
void ebb__tcache_flush_push(ebb__thread_t *t, unsigned cls, void *blk) EBB_HIDDEN;
void ebb__tcache_flush_all(ebb__thread_t *t) EBB_HIDDEN;

/* ----------------------------------------------------- core/freed.c */

/* The word free writes into a freed small block and allocation clears
 * (freed.c says why); set once at start-up, before any block is freed. */
extern EBB_HIDDEN uintptr_t ebb__freed_key;
void ebb__freed_key_init(void) EBB_HIDDEN;

static inline uintptr_t ebb__block_mark(const void *p)
{
    uintptr_t w;
    memcpy(&w, (const char *)p + sizeof w, sizeof w);
    return w;
}
static inline int ebb__block_marked_freed(const void *p)
{
    return ebb__block_mark(p) == ebb__freed_key;
}
static inline void ebb__block_mark_freed(void *p)
{
    memcpy((char *)p + sizeof ebb__freed_key, &ebb__freed_key, sizeof ebb__freed_key);
}
static inline void ebb__block_mark_live(void *p)
{
    uintptr_t zero = 0;
    memcpy((char *)p + sizeof zero, &zero, sizeof zero);
}

typedef enum {
    EBB_NOT_FREED,            /* out, as far as ebb can tell: free it */
    EBB_FREED_IN_THIS_CACHE,  /* freed by the calling thread, still cached */
    EBB_FREED_IN_POOL,        /* freed and gone home */
    EBB_FREED_IN_OTHER_CACHE  /* freed by another thread, in its cache */
} ebb__freed_t;
/* Where the block p of class cls is, if it is free already (its mark said
 * it may be); self: the calling thread's state, or NULL. */
ebb__freed_t ebb__freed_where(const ebb__thread_t *self, unsigned cls, const void *p) EBB_HIDDEN;
/* Where, in words, for a diagnosis. */
const char *ebb__freed_place(ebb__freed_t where) EBB_HIDDEN;

/* ----------------------------------------------------- core/large.c */

extern EBB_HIDDEN const ebb__lockset_t ebb__large_locks;
/* tag: the block's sample record (insight/sample.c), 0 for an unsampled
 * block; usable: what ebb_usable_size answers if not the whole mapping. */
void *ebb__large_alloc(size_t size, size_t align, int zero, uint32_t tag,
                       uint32_t usable) EBB_HIDDEN;
/* 0 if p is not ours; else freed, and *tag is its sample record (0 none),
 * which the caller settles. */
int ebb__large_free(void *p, uint32_t *tag) EBB_HIDDEN;
int ebb__large_set_tag(void *p, uint32_t tag) EBB_HIDDEN;
size_t ebb__large_usable(const void *p) EBB_HIDDEN; /* 0 if p is not ours */
/* 1 if p is not a live large block but was one (freed recently, or in a
 * cached mapping): a free of it is a double free. */
int ebb__large_was_freed(const void *p) EBB_HIDDEN;
/* *resized: the block's mapping changed (in place or moved); then *tag is
 * the sample record it had (0 none), which the caller settles. */
void *ebb__large_realloc(void *p, size_t size, int *not_ours, int *resized,
                         uint32_t *tag) EBB_HIDDEN;
uint32_t ebb__large_purge(uint32_t now, long delay, int *surplus) EBB_HIDDEN;
/* The large-block counters into s; the caller holds the large-block lock. */
void ebb__large_stats_locked(ebb_stats_t *s) EBB_HIDDEN;
/* Lock held: cached mappings, and live blocks serving sampled small ones. */
void ebb__large_detail_locked(size_t *cached_blocks, size_t *sampled) EBB_HIDDEN;
/* Lock held: fn on every live block, cached mapping and the grown table. */
void ebb__large_each_locked(ebb__range_fn fn, void *ctx) EBB_HIDDEN;
/* Lock held: the table's invariants; faults found (each on stderr). */
int ebb__large_check(void) EBB_HIDDEN;
/* Add the live sampled blocks that stand in for small blocks to used[],
 * by class. */
void ebb__large_sampled_classes(size_t used[EBB_CLASSES]) EBB_HIDDEN;

/* ============================================================== policy */

/* ---------------------------------------------------- policy/purge.c */

/* Give back everything due at `now` under `delay` (0: everything), and
 * surplus sooner (core/demand.c; then *surplus is set); returns ms until
 * the next item falls due, or UINT32_MAX if nothing waits. */
uint32_t ebb__purge_pass(uint32_t now, long delay, int *surplus) EBB_HIDDEN;
/* ms: threads were last asked to give their cached blocks back. */
extern EBB_HIDDEN _Atomic uint32_t ebb__purge_poked_at;
/* ms: a pass last found surplus waiting (if seen); for
 * EBB_SURPLUS_POKE_WINDOW_MS after, threads are asked every
 * EBB_SURPLUS_POKE_MS. */
extern EBB_HIDDEN _Atomic uint32_t ebb__purge_surplus_at;
extern EBB_HIDDEN _Atomic int ebb__purge_surplus_seen;

/* ---------------------------------------------------- policy/limit.c */

extern EBB_HIDDEN const ebb__lockset_t ebb__limit_locks;
/* Put the options' limit in force, once (before the first allocation). */
void ebb__limit_start(void) EBB_HIDDEN;
/* After a failed request, no lock held: if it was refused at the limit,
 * run the pressure callbacks and purge, and return 1 (try once more). */
int ebb__limit_relieve(void) EBB_HIDDEN;
/* A request finally failed: remember why, for ebb_last_failure. */
void ebb__limit_record_failure(size_t request) EBB_HIDDEN;
void ebb__limit_poll_slow(void) EBB_HIDDEN;
/* After a slow path got memory, no lock held: run an episode's callbacks
 * if growth crossed the soft level.  One load without a limit. */
static inline void ebb__limit_poll(void)
{
    if (EBB_UNLIKELY(atomic_load_explicit(&ebb__budget.limit, memory_order_relaxed) != 0))
        ebb__limit_poll_slow();
}
/* The auto limit (percent% of it) for the system below root ("" the real
 * one); 0, or -1 if no bound is found (*out then says none). */
int ebb__limit_derive(const char *root, const ebb__limit_inputs_t *in, unsigned percent,
                      ebb_limit_info_t *out) EBB_HIDDEN;

/* ------------------------------------------------- policy/pressure.c */

extern EBB_HIDDEN _Atomic int ebb__pressure_state; /* EBB_PRESSURE_* */
extern EBB_HIDDEN const ebb__lockset_t ebb__pressure_locks;
/* The PSI trigger written: "some EBB_PSI_STALL_US EBB_PSI_WINDOW_US". */
extern EBB_HIDDEN const char ebb__pressure_trigger[];
void ebb__pressure_arm_slow(void) EBB_HIDDEN;
/* From a slow path holding no lock, while a limit is set: start the watcher
 * unless it runs or cannot.  One load once it does. */
static inline void ebb__pressure_arm(void)
{
    if (EBB_UNLIKELY(atomic_load_explicit(&ebb__pressure_state, memory_order_relaxed) ==
                     EBB_PRESSURE_IDLE))
        ebb__pressure_arm_slow();
}
/* Watch p (taken: closed when the watcher ends) on a new thread; 0, or -1
 * if one runs or none can start.  The arm above, and tests with fixtures. */
int ebb__pressure_watch(const ebb__os_pressure_t *p) EBB_HIDDEN;
/* What the watcher does on each event (tests call it directly): count it,
 * purge everything, and owe the soft callbacks. */
void ebb__pressure_event(void) EBB_HIDDEN;
/* 1 if an event is owed its callbacks (and no longer is). */
int ebb__pressure_take_event(void) EBB_HIDDEN;
/* The pressure fields of ebb_limit_info. */
void ebb__pressure_info(ebb_limit_info_t *out) EBB_HIDDEN;

/* ============================================================= insight */

/* ---------------------------------------------------- insight/check.c */

/* Every lock held: walk every structure; faults found (each on stderr). */
int ebb__check_locked(void) EBB_HIDDEN;

/* ---------------------------------------------------- insight/stats.c */

/* When peak_committed was reached: on the wall clock (ns since the epoch)
 * and in ns since ebb started (both 0 if nothing was ever committed);
 * returns ns since ebb started, now. */
uint64_t ebb__peak_committed_times(uint64_t *wall_ns, uint64_t *uptime_ns) EBB_HIDDEN;

/* ------------------------------------------------------ insight/rss.c */

/* ebb_rss's reading into *out (the whole struct): takes every lock on the
 * list for its walk of ebb's mappings, then reads /proc with none; 0, or
 * -1 if /proc could not be read. */
int ebb__rss_read(ebb_rss_t *out) EBB_HIDDEN;

/* --------------------------------------------------- insight/report.c */

extern EBB_HIDDEN const ebb__lockset_t ebb__report_locks;
void ebb__report_failure(void) EBB_HIDDEN;
void ebb__report_arm_slow(void) EBB_HIDDEN;
/* The reporter thread is started, once, from a slow path after start-up. */
static inline void ebb__report_arm(void)
{
    if (EBB_UNLIKELY(ebb__opt.report_signal != 0) && ebb__may_start_threads())
        ebb__report_arm_slow();
}
/* The black box's record: its text, and (json not NULL) the brief JSON and
 * the folded stacks, each NUL-terminated in its room. */
void ebb__report_brief(char *text, size_t text_cap, char *json, size_t json_cap, char *folded,
                       size_t folded_cap, const char *reason) EBB_HIDDEN;

/* --------------------------------------------- insight/report_files.c */

/* EBB_REPORT_FILE and EBB_REPORT_FOLDED: files replaced with the latest
 * report (report_files.c says when, and how safely). */
extern EBB_HIDDEN const ebb__lockset_t ebb__report_files_locks;
/* At start-up: which process writes them. */
void ebb__report_files_start(void) EBB_HIDDEN;
/* Files are named, and this process is the one that writes them. */
int ebb__report_files_wanted(void) EBB_HIDDEN;
/* Holding no ebb lock: write them for the first failed allocation (once),
 * for EBB_REPORT_SIGNAL, at a normal exit. */
void ebb__report_files_failure(const char *reason) EBB_HIDDEN;
void ebb__report_files_signal(void) EBB_HIDDEN;
void ebb__report_files_at_exit(void) EBB_HIDDEN;

/* ------------------------------------------------- insight/blackbox.c */

extern EBB_HIDDEN _Atomic int ebb__blackbox_active;
extern EBB_HIDDEN const ebb__lockset_t ebb__blackbox_locks;
void ebb__blackbox_start(void) EBB_HIDDEN;
void ebb__blackbox_tick_slow(void) EBB_HIDDEN;
void ebb__blackbox_failed(void) EBB_HIDDEN;
/* The crash note's line into the box's header (async-signal-safe: a copy
 * into the mapping, if the box is open). */
void ebb__blackbox_note(const char *line, size_t n) EBB_HIDDEN;
/* From slow paths holding no lock: bring the black box up to date if it is
 * kept and its interval has passed. */
static inline void ebb__blackbox_tick(void)
{
    if (EBB_UNLIKELY(atomic_load_explicit(&ebb__blackbox_active, memory_order_relaxed)))
        ebb__blackbox_tick_slow();
}

/* ------------------------------------------------ insight/timeline.c */

/* Memory over time, for plots: points of (ms since ebb started, live,
 * committed, RSS, limit, purged so far), oldest first, kept for the whole
 * run at a resolution that halves as the run doubles (timeline.c says
 * when a point is taken and how points merge). */
extern EBB_HIDDEN const ebb__lockset_t ebb__timeline_locks;
/* From start-up: the clock starts, and the ledger's watch on committed is
 * armed. */
void ebb__timeline_start(void) EBB_HIDDEN;
/* From the purger after each pass (or a slow path where no purger can
 * run), holding no lock: take a point if one is due (the interval passed,
 * or committed moved a step); 0 if none was taken, 1 for one on the
 * interval, 2 for one because committed moved. */
int ebb__timeline_tick(void) EBB_HIDDEN;
/* The points, oldest first (the newest may still be gathering samples),
 * at most max of them: when more are kept, neighbours are merged in equal
 * groups (the larger of each figure, at the time of the larger committed).
 * Returns how many were written.  Takes the timeline's lock only: callable
 * from any thread that holds no ebb lock.  The HTML report's door. */
size_t ebb__timeline_copy(ebb__timeline_point_t *out, size_t max) EBB_HIDDEN;
/* The clock, the peak of committed and when it was, and the record's
 * resolution. */
void ebb__timeline_info(ebb__timeline_info_t *out) EBB_HIDDEN;
/* RSS, read at most once per EBB_RSS_READ_INTERVAL_MS (the last reading in
 * between); 0 if it cannot be read. */
uint64_t ebb__timeline_rss(void) EBB_HIDDEN;
/* A point for now, not kept (a report's last point).  Holding no lock. */
void ebb__timeline_now(ebb__timeline_point_t *out) EBB_HIDDEN;
/* Add a point to the record (the tick's second half). */
void ebb__timeline_record(const ebb__timeline_point_t *p) EBB_HIDDEN;
/* The record's mechanics on any record (the caller serialises): add a
 * sample; copy at most max points out, merged in groups as above. */
void ebb__timeline_ring_add(ebb__timeline_ring_t *r, const ebb__timeline_point_t *p) EBB_HIDDEN;
size_t ebb__timeline_ring_copy(const ebb__timeline_ring_t *r, ebb__timeline_point_t *out,
                               size_t max) EBB_HIDDEN;

/* -------------------------------------------------- insight/status.c */

/* The status page `ebb top` reads (EBB_TOP, status.c). */
extern EBB_HIDDEN const ebb__lockset_t ebb__status_locks;
void ebb__status_start(void) EBB_HIDDEN;
/* From the constructor: this copy of ebb is the process's, so it may
 * publish the page if EBB_TOP asked for one. */
void ebb__status_enable(void) EBB_HIDDEN;
/* From the purger after each pass (and the constructor once), holding no
 * lock: refresh the page if its interval passed, or at once if now_wanted
 * (committed moved: a timeline point was just taken for it); made first
 * if it is wanted. */
void ebb__status_tick(uint64_t purger_wakes, int now_wanted) EBB_HIDDEN;
/* From allocation slow paths holding no lock, on the program's threads:
 * make the page a fork child wants (ebb's own threads open no file). */
extern EBB_HIDDEN _Atomic int ebb__status_to_make;
void ebb__status_make_slow(void) EBB_HIDDEN;
static inline void ebb__status_make(void)
{
    if (EBB_UNLIKELY(atomic_load_explicit(&ebb__status_to_make, memory_order_relaxed)))
        ebb__status_make_slow();
}

/* ---------------------------------------------------- insight/crash.c */

extern EBB_HIDDEN const ebb__lockset_t ebb__crash_locks;
/* EBB_CRASH_NOTE: handle SIGSEGV and SIGBUS (from ebb's constructor). */
void ebb__crash_start(void) EBB_HIDDEN;
/* Allocation call fn ("malloc", ...) of n bytes failed for good: kept, with
 * its site, for the note a fault would write.  From the front's way out,
 * holding no lock, after ebb__limit_record_failure.  Nothing without
 * EBB_CRASH_NOTE. */
void ebb__crash_refused(const char *fn, size_t n) EBB_HIDDEN;

/* --------------------------------------------------- insight/sample.c */

extern EBB_HIDDEN const ebb__lockset_t ebb__sample_locks, ebb__sample_unwind_locks;
/* The rate from the options, once (before the first allocation, or before
 * a call here changes it). */
void ebb__sample_start(void) EBB_HIDDEN;
/* Load the unwinder now (it allocates on first use), if sampling is on. */
void ebb__sample_prime(void) EBB_HIDDEN;
/* The same whatever the rate, its allocations kept out of sampling: the
 * purger's starter unwinds too.  From ebb's constructor only (a malloc may
 * come from inside dlopen, where opening the unwinder's library fails). */
void ebb__sample_unwinder_prime(void) EBB_HIDDEN;
/* 1 if an allocation of n bytes is to be sampled (counts n against the
 * thread's gap). */
int ebb__sample_tick(size_t n) EBB_HIDDEN;
/* The same for a request malloc's fast path counted already, making the
 * thread's counter negative. */
int ebb__sample_fired(size_t n) EBB_HIDDEN;
/* Record a sample of n bytes at the caller's site; its record's tag, 0 if
 * it could not be recorded (table full).  Holds no lock while it unwinds. */
uint32_t ebb__sample_begin(size_t n) EBB_HIDDEN;
/* The calling thread's site now, as a sample records it: native frames
 * into pcs (EBB_SITE_DEPTH), the stack hook's text into text
 * (EBB_SITE_TEXT, its length in *text_len); none inside the sampler. */
uint32_t ebb__sample_site_now(void **pcs, char *text, uint32_t *text_len) EBB_HIDDEN;
/* The sampled block with record `tag` is gone. */
void ebb__sample_forget(uint32_t tag) EBB_HIDDEN;
/* Sample lock held (stats, ebb_check): what the profiler maps, into s. */
void ebb__sample_stats_locked(ebb_stats_t *s) EBB_HIDDEN;
/* Sample lock held: fn on each of the profiler's mappings (EBB_RANGE_META). */
void ebb__sample_each_map_locked(ebb__range_fn fn, void *ctx) EBB_HIDDEN;
int ebb__sample_check(void) EBB_HIDDEN;
/* The report writer's view: the sites, most live bytes first. */
size_t ebb__sample_top(ebb__site_t *out, size_t n) EBB_HIDDEN;
/* The peak's view: the n sites with the most live bytes now, as numbers
 * and weights, most first; the number of them (<= n).  *all_live: the
 * live bytes of every site. */
size_t ebb__sample_top_weights(ebb__site_weight_t *out, size_t n, uint64_t *all_live) EBB_HIDDEN;
/* Site w->site as it was at the peak: its frames and stack, w's weights. */
void ebb__sample_site_at_peak(ebb__site_t *out, const ebb__site_weight_t *w) EBB_HIDDEN;

/* -------------------------------------------------- insight/heapmap.c */

/* A copy of every arena's slots, in address order; -1 if it cannot be
 * mapped, or (wait 0) a purge pass has slots out.  Takes the lend, bin
 * and arena locks for the copy. */
int ebb__heapmap_take(ebb__heapmap_t *m, int wait) EBB_HIDDEN;
void ebb__heapmap_drop(ebb__heapmap_t *m) EBB_HIDDEN;
uintptr_t ebb__heapmap_base(const ebb__heapmap_t *m, size_t arena) EBB_HIDDEN;
/* 1 and *out if slot s of the arena starts a pool. */
int ebb__heapmap_pool(const ebb__heapmap_t *m, size_t arena, unsigned s,
                      ebb__heapmap_pool_t *out) EBB_HIDDEN;
/* The text's character for slot s (heapmap.c has the legend). */
char ebb__heapmap_cell(const ebb__heapmap_t *m, size_t arena, unsigned s) EBB_HIDDEN;

/* ----------------------------------------------------- insight/peak.c */

extern EBB_HIDDEN const ebb__lockset_t ebb__peak_locks;
/* After a sample: a new snapshot if committed passed the last one's by
 * the margin. */
void ebb__peak_consider(void) EBB_HIDDEN;
/* A new snapshot if committed is at or above the last one's (reports). */
void ebb__peak_refresh(void) EBB_HIDDEN;
/* A copy of the snapshot; 0 if none was taken yet. */
int ebb__peak_get(ebb__peak_t *out) EBB_HIDDEN;
/* use(the heap map of the last snapshot that took one, committed then,
 * arg) under the peak's lock, if there is one. */
void ebb__peak_with_map(void (*use)(const ebb__heapmap_t *m, size_t committed, void *arg),
                        void *arg) EBB_HIDDEN;

/* =============================================================== front */

/* ----------------------------------------------------- front/init.c */

extern EBB_HIDDEN _Atomic int ebb__started;
void ebb__start_slow(void) EBB_HIDDEN;
/* Everything a malloc needs started: the mechanism, the options' limit, the
 * sampler's rate, the black box.  One load once done. */
static inline void ebb__start(void)
{
    if (EBB_UNLIKELY(!atomic_load_explicit(&ebb__started, memory_order_acquire)))
        ebb__start_slow();
}

/* ---------------------------------------------------- front/purger.c */

extern EBB_HIDDEN const ebb__lockset_t ebb__purger_locks;
/* The purger thread: none (not started, or ended when idle), running a
 * pass or waiting for the next to fall due, or unavailable (the thread
 * could not start: passes run inline on slow paths instead). */
enum { EBB_PURGER_NONE = 0, EBB_PURGER_RUNNING, EBB_PURGER_INLINE };
extern EBB_HIDDEN _Atomic int ebb__purger_state;
/* A free could not start the purger (it was inside the loader, purger.c
 * says why): the next slow path that can, does. */
extern EBB_HIDDEN _Atomic int ebb__purger_start_owed;
/* Start the purger thread if none runs (or run a pass inline where no
 * thread can start).  Holding no lock. */
void ebb__purger_kick(void) EBB_HIDDEN;
/* The same from free, which glibc may call holding the lock pthread_create
 * takes: the start waits for a caller outside the loader. */
void ebb__purger_kick_from_free(void) EBB_HIDDEN;
/* Take a timeline point and refresh the status page now, as the purger
 * does after a pass (ebb's constructor, for the first state). */
void ebb__purger_observe(void) EBB_HIDDEN;
static inline int ebb__purge_kick_due(void)
{
    return ebb__purge_owed | atomic_load_explicit(&ebb__purger_start_owed, memory_order_relaxed);
}
/* On the way out of a slow path, holding no lock: the kick this thread owes
 * if the mechanism announced purgeable memory on it, or a start another
 * thread's free could not make. */
static inline void ebb__purge_owed_kick(void)
{
    if (EBB_UNLIKELY(ebb__purge_kick_due()))
        ebb__purger_kick();
}
static inline void ebb__purge_owed_kick_on_free(void)
{
    if (EBB_UNLIKELY(ebb__purge_kick_due()))
        ebb__purger_kick_from_free();
}

/* ----------------------------------------------------- front/debug.c */

/* EBB_DEBUG=1: the front's slow paths serve every call through these. */
extern EBB_HIDDEN int ebb__debug_on;
extern EBB_HIDDEN const ebb__lockset_t ebb__debug_locks;
void ebb__debug_start(void) EBB_HIDDEN;
/* The ordinary block size a debug block of n bytes needs. */
size_t ebb__debug_request(size_t n) EBB_HIDDEN;
/* Lay out a debug block of n bytes in `block` (usable bytes); returns it. */
void *ebb__debug_dress(void *block, size_t usable, size_t n, int zero) EBB_HIDDEN;
/* The program's size of debug block p, checked; (size_t)-1 if it is
 * damaged or freed (reported, fn naming the call). */
size_t ebb__debug_size(const char *fn, const void *p, size_t usable) EBB_HIDDEN;
/* free of debug block p: checked, filled and quarantined; returns the block
 * the quarantine lets go of (its usable size in *out_usable), to be freed
 * for good, or NULL. */
void *ebb__debug_release(const char *fn, void *block, size_t usable,
                         size_t *out_usable) EBB_HIDDEN;

/* ---------------------------------------------------- front/malloc.c */

/* fn: the call to name if the request is refused (crash.c). */
void *ebb__malloc_slow(size_t n, const char *fn) EBB_HIDDEN;
void ebb__free_slow(void *p) EBB_HIDDEN;

/* --------------------------------------------------- front/cpython.c */

/* From the constructor: what `ebb run` asked for. */
void ebb__launched_setup(void) EBB_HIDDEN;
/* From the constructor: Python stacks and the MemoryError, in a CPython. */
void ebb__python_attach(void) EBB_HIDDEN;

/* -------------------------------------------------- front/pyframes.c */

/* One row of front/pylayout.h: where a CPython version keeps things. */
typedef struct ebb__pylayout_s ebb__pylayout_t;
/* The process's CPython, found once: its layout row, NULL if the process
 * is not a CPython, or not one whose layout ebb knows. */
const ebb__pylayout_t *ebb__python_find(void) EBB_HIDDEN;
/* Register the Python-stack hook with the sampler (if found). */
void ebb__pyframes_start(void) EBB_HIDDEN;

/* ------------------------------------------------ front/pymemerror.c */

/* Make MemoryError name the limit (once). */
void ebb__pymemerror_start(const ebb__pylayout_t *l) EBB_HIDDEN;

#if EBB_DEBUG >= 2
/* ebb_check on every slow path; aborts on a fault. */
void ebb__check_or_die(void) EBB_HIDDEN;
#define ebb__expensive_check() ebb__check_or_die()
#else
#define ebb__expensive_check() ((void)0)
#endif

#endif /* EBB_INTERNAL_H */
