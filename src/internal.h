/*
 * internal.h -- the structures every layer of ebb shares.
 *
 * The layers, top to bottom (arrows point one way):
 *
 *   front (alloc.c, override.c)   malloc semantics, sizes, alignment, errno
 *     -> thread cache (tcache.c)  per-thread stacks of free blocks, no locks
 *     -> heap (heap.c)            bounded set of shared heaps, a locked bin
 *                                 per size class, pools sorted by fullness
 *     -> pool (pool.c)            one size class in 1..8 slots; free blocks
 *                                 in an out-of-band bitmap
 *     -> arena (arena.c)          4 MiB size-aligned region of 64 slots;
 *                                 slot 0 holds all metadata of the arena
 *     -> OS (os/linux.c)          map, unmap, purge, locks
 *   large blocks (large.c) sit beside the heap: own mappings, a hash table
 *   of descriptors, a small cache of freed mappings.
 *   ownership (ownership.c): one byte per arena-sized piece of the address
 *   space says whether an arena lives there.
 *
 * Lock order: purge -> registry -> bin (one at a time) -> arena -> large ->
 * limit (the callback table) -> sample (the profiler's sites).  The fast
 * paths take none.
 */
#ifndef EBB_INTERNAL_H
#define EBB_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../include/ebb.h"
#include "config.h"
#include "base/options_table.h"
#include "os/os.h"

#define EBB_HIDDEN __attribute__((visibility("hidden")))
#define EBB_LIKELY(x) __builtin_expect(!!(x), 1)
#define EBB_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define EBB_NOINLINE __attribute__((noinline))

#define EBB_NO_CLASS 255u

#if EBB_DEBUG >= 1
#define ebb__assert(c) ((c) ? (void)0 : ebb__assert_fail(#c, __FILE__, __LINE__))
#else
#define ebb__assert(c) ((void)0)
#endif
#if EBB_DEBUG >= 2
#define ebb__expensive_check() ebb__check_or_die()
#else
#define ebb__expensive_check() ((void)0)
#endif

typedef struct ebb__arena_s ebb__arena_t;
typedef struct ebb__pool_s ebb__pool_t;
typedef struct ebb__heap_s ebb__heap_t;
typedef struct ebb__tcache_s ebb__tcache_t;

/* ------------------------------------------------------------ size classes */

typedef struct {
    uint32_t size;      /* block size in bytes */
    uint32_t blocks;    /* blocks in one pool */
    uint64_t recip;     /* ceil(2^48 / size): offset -> index by multiply */
    uint32_t bucket_recip; /* ceil(2^32 / blocks): fullness bucket by multiply */
    uint8_t span;       /* slots per pool */
    uint8_t tcache_cap; /* thread-cache capacity, 0 = not cached */
} ebb__class_t;

extern EBB_HIDDEN ebb__class_t ebb__classes[EBB_CLASSES];
/* The two fields the free fast path needs, packed for cheap indexing. */
extern EBB_HIDDEN uint64_t ebb__class_recip[EBB_CLASSES];
extern EBB_HIDDEN uint32_t ebb__class_size[EBB_CLASSES];
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

/* ------------------------------------------------------------------ pools */

/* Where a pool sits in its bin. */
enum { EBB_BUCKET_FULL = EBB_POOL_BUCKETS, EBB_BUCKET_NONE = 0xff };

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

struct ebb__pool_s {
    ebb__pool_t *next, *prev; /* bucket list of its bin; bin lock */
    ebb__heap_t *heap;        /* owning heap; fixed while used > 0 */
    uint8_t *start;           /* first block (the pool's first slot) */
    uint32_t used;            /* blocks out of the bitmap; bin lock */
    uint32_t scan;            /* no free bit in bitmap words below this */
    uint8_t cls;              /* size class */
    uint8_t span;             /* slots */
    uint8_t bucket;           /* fullness bucket, FULL, or NONE */
    uint8_t head_slot;        /* index of the first slot */
    uint8_t listed;           /* on its bin's purge list; bin lock */
    uint16_t bits_at;         /* its bitmap: arena->bits[bits_at...] */
    uint32_t listed_at;       /* ms: joined the purge list (list order) */
    uint32_t stamp;           /* ms: last block returned or taken while listed */
    uint32_t queued_at;       /* ms: its place in the purge list (heap.c) */
    ebb__pool_t *purge_next, *purge_prev; /* bin's purge list, in due order */
};

/* ----------------------------------------------------------------- arenas */

#define EBB_ARENA_MAGIC 0x65626261u /* "ebba" */

struct ebb__arena_s {
    uint32_t magic;
    uint32_t nfree;            /* free slots; arena lock */
    uint64_t free_mask;        /* bit i: slot i belongs to no pool; arena lock */
    ebb__arena_t *next, *prev; /* list of arenas with the same nfree */
    uint64_t purging;          /* free slots lent to a purge pass; arena lock */
    uint32_t freed_stamp;      /* ms: a pool last went back to the arena */
    /* Bit p of dirty[s]: page p of slot s may be resident (touched since it
     * was mapped or last purged).  Owned with the slot: by the bin lock of
     * the pool covering it, else by the arena lock.  dirty[0] is the
     * header's: the fields before `bits`, and every page of `bits` a pool's
     * words ever reached (the header is never purged). */
    uint16_t dirty[EBB_SLOTS];
    /* The fast free path reads only this: the class of the pool covering
     * each slot, EBB_NO_CLASS for the header and free slots. */
    uint8_t slot_class[EBB_SLOTS];
    uint8_t slot_head[EBB_SLOTS];   /* first slot of the covering pool */
    /* Which words of `bits` belong to a pool: bit w of bits_used[c] is word
     * c * 64 + w (pool.c; arena lock). */
    uint64_t bits_used[EBB_SLOTS];
    ebb__pool_t pool[EBB_SLOTS];    /* descriptor, valid at a pool's first slot */
    /* Free-block bitmaps, out of band so purging a pool's pages loses
     * nothing: bit set = block free.  Each pool owns as many words as its
     * class needs, packed low (pool.c says why). */
    uint64_t bits[EBB_SLOTS * EBB_BITMAP_WORDS];
};

_Static_assert(sizeof(ebb__arena_t) <= EBB_SLOT_SIZE, "arena header fits slot 0");

/* ---------------------------------------------------------- ownership map */

#if UINTPTR_MAX > 0xffffffffu
#define EBB_ADDRESS_BITS 47 /* x86-64 user space without 5-level hints */
#else
#define EBB_ADDRESS_BITS 32
#endif
#define EBB_MAP_ENTRIES ((uintptr_t)1 << (EBB_ADDRESS_BITS - EBB_ARENA_SHIFT))

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

/* ------------------------------------------------------------------ heaps */

typedef struct {
    ebb__lock_t lock;
    uint32_t nonempty;                          /* bit b: bucket b has pools */
    ebb__pool_t *bucket[EBB_POOL_BUCKETS + 1];  /* + the full list */
    size_t used;                                /* blocks out of pools */
    size_t pools;
    /* Pools that received frees since they were last purged, in order of
     * due time (heap.c says when they are purged). */
    ebb__pool_t *purge_head, *purge_tail;
} ebb__bin_t;

struct ebb__heap_s {
    ebb__bin_t bin[EBB_CLASSES];
    unsigned index;
};

/* --------------------------------------------------------- thread caches */

typedef struct {
    void **top;  /* next free entry; cached blocks are [low, top) */
    void **low;
    void **high; /* end of this class's entries */
    int busy;    /* refilled or overflowed since the thread last answered a poke */
} ebb__tbin_t;

enum { EBB_TC_ACTIVE = 1, EBB_TC_EXITING, EBB_TC_FREE };

/* A thread's sampling state (sample.c). */
typedef struct {
    ptrdiff_t left;  /* bytes to allocate before the next sample; malloc's fast
                        path subtracts each request and leaves on a negative */
    unsigned epoch;  /* the rate's epoch `left` was drawn in */
    uint64_t rng;    /* xorshift state for the gaps */
} ebb__sample_tls_t;

struct ebb__tcache_s {
    ebb__tbin_t bin[EBB_CLASSES];
    ebb__sample_tls_t sample; /* owner only */
    ebb__heap_t *heap;
    ebb__tcache_t *next, *prev; /* registry list; registry lock */
    /* The owner's ebb__tc, which the purger may point at the `poked`
     * placeholder (registry lock held, state ACTIVE). */
    _Atomic(ebb__tcache_t *) *tls_slot;
    size_t map_size;
    int state;
    void *entries[];
};

/* The calling thread's cache.  Written by its owner, and by the purger to
 * poke it (tcache.c); read with relaxed loads, a plain move on x86-64. */
extern EBB_HIDDEN __thread _Atomic(ebb__tcache_t *) ebb__tc __attribute__((tls_model("initial-exec")));
static inline ebb__tcache_t *ebb__tc_get(void)
{
    return atomic_load_explicit(&ebb__tc, memory_order_relaxed);
}
/* Placeholders with no capacity, so the fast paths need no NULL test:
 * `unset` before a thread's first allocation, `bypass` after its cache was
 * torn down at exit or could not be made, `poked` when the purger asked the
 * thread to give its cached blocks back. */
extern EBB_HIDDEN ebb__tcache_t ebb__tcache_unset, ebb__tcache_bypass, ebb__tcache_poked;

/* ------------------------------------------------------------- options */

/* Longest text an option holds (a path), NUL included. */
#define EBB_OPTION_PATH_MAX 256

/* The values of the EBB_* options (base/options_table.h has each one's
 * default and meaning); read once at start-up into ebb__opt. */
typedef struct {
    unsigned heaps;          /* EBB_HEAPS: 0 = one per CPU */
    int tcache;              /* EBB_TCACHE: 0 disables thread caches */
    size_t large_cache;      /* EBB_LARGE_CACHE: bytes of freed large blocks kept */
    int on_error;            /* EBB_ON_ERROR: EBB_ON_ERROR_* */
    int verbose;             /* EBB_VERBOSE */
    long purge_delay;        /* EBB_PURGE_DELAY_MS: ms, 0 at once, -1 never */
    int purge_lazy;          /* EBB_PURGE_MODE=free: MADV_FREE, not DONTNEED */
    size_t limit;            /* EBB_LIMIT: bytes, 0 none */
    unsigned limit_percent;  /* EBB_LIMIT=N% or auto (100): share of the
                              * effective limit; 0 when given in bytes */
    unsigned limit_soft;     /* EBB_LIMIT_SOFT: soft level, percent of the limit */
    int limit_psi;           /* EBB_LIMIT_PSI: 1 listen to the kernel, 0 not,
                              * -1 unset (listen if it can, quietly) */
    int report_off;          /* EBB_REPORT=off */
    int report_json;         /* EBB_REPORT_FORMAT=json, or a path ending .json */
    int report_signal;       /* EBB_REPORT_SIGNAL: signal number, 0 none */
    char report_path[EBB_OPTION_PATH_MAX];   /* EBB_REPORT=PATH, "" = stderr */
    char blackbox_path[EBB_OPTION_PATH_MAX]; /* EBB_BLACKBOX=PATH ("%p": the pid), "" = none */
    size_t sample_rate;      /* EBB_SAMPLE_RATE: mean bytes between samples, 0 off */
    int python_stacks;       /* EBB_PYTHON_STACKS: the Python module's stack hook */
    int python;              /* EBB_PYTHON: set by `ebb run` */
    int no_children;         /* EBB_NO_CHILDREN: set by `ebb run --no-children` */
    char test_root[EBB_OPTION_PATH_MAX];     /* EBB__TEST_ROOT (debug builds): system files' root */
} ebb__options_t;

enum { EBB_ON_ERROR_WARN = 0, EBB_ON_ERROR_ABORT = 1, EBB_ON_ERROR_IGNORE = 2 };

/* ---------------------------------------------------------- global state */

typedef struct {
    _Atomic int ready;
    ebb__lock_t init_lock;

    /* arenas; arena lock */
    ebb__lock_t arena_lock;
    ebb__arena_t *by_nfree[EBB_SLOTS];    /* lists by free slots (0..63) */
    uint64_t by_nfree_mask;               /* bit n: list n non-empty */
    size_t arenas;
    size_t spare_arenas;
    size_t pools;
    size_t pool_slots;

    /* heaps */
    ebb__heap_t heaps[EBB_MAX_HEAPS];
    unsigned nheaps;

    /* thread caches; registry lock */
    ebb__lock_t registry_lock;
    ebb__tcache_t *threads;
    ebb__tcache_t *free_tcaches;
    unsigned next_heap;
    size_t nthreads;
    size_t tcache_bytes; /* mapped for thread caches */
    size_t tcache_entries;

    /* purging (purge.c) */
    ebb__lock_t purge_lock;        /* one pass lends arena slots at a time */
    _Atomic int purger;            /* EBB_PURGER_* */
    _Atomic unsigned purge_work;   /* bumped whenever purgeable memory appears */
    _Atomic uint32_t inline_due;   /* ms: next inline pass, without a purger */
    _Atomic uint32_t poked_at;     /* ms: threads last asked to flush their caches */
    _Atomic int threads_allowed;   /* the program is running: ebb's constructor ran */
    /* Pages of arena slots 1..63 not marked dirty: mapped but known not to
     * be resident (never touched, or purged).  committed = mapped - these. */
    _Atomic size_t clean_pages;
    _Atomic size_t purged;         /* bytes purged since start */
    _Atomic size_t purges;         /* purge calls made to the OS */
    _Atomic size_t peak_committed;

    /* the memory limit in bytes, 0 none (limit.c); the slow paths read it
     * to know whether to poll for pressure */
    _Atomic size_t limit;

    /* counters outside any lock */
    _Atomic size_t mapped;
    _Atomic size_t peak_mapped;
    _Atomic size_t foreign_frees;
    _Atomic size_t errors;
} ebb__state_t;

extern EBB_HIDDEN ebb__state_t ebb__g;

/* ---------------------------------------------------------- cross-layer API */

/* base/options.c */
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

/* init.c */
void ebb__init_slow(void) EBB_HIDDEN;
static inline void ebb__ensure_init(void)
{
    if (EBB_UNLIKELY(!atomic_load_explicit(&ebb__g.ready, memory_order_acquire)))
        ebb__init_slow();
}
void ebb__lock_everything(void) EBB_HIDDEN;
void ebb__unlock_everything(void) EBB_HIDDEN;

/* purge.c */
/* The purger thread: none (not started, or ended when idle), running a
 * pass or waiting for the next to fall due, or unavailable (the thread
 * could not start: passes run inline on slow paths instead). */
enum { EBB_PURGER_NONE = 0, EBB_PURGER_RUNNING, EBB_PURGER_INLINE };
void ebb__purge_kick(void) EBB_HIDDEN;
void ebb__purge_fork_child(void) EBB_HIDDEN;
void ebb__purge_range(void *p, size_t bytes) EBB_HIDDEN;
/* Purgeable memory appeared (called under any lock): make sure a pass will
 * come.  Returns 1 if the caller must call ebb__purge_kick() once it holds
 * no lock (no purger thread is running). */
static inline int ebb__purge_announce(void)
{
    atomic_fetch_add_explicit(&ebb__g.purge_work, 1, memory_order_seq_cst);
    return atomic_load_explicit(&ebb__g.purger, memory_order_seq_cst) != EBB_PURGER_RUNNING;
}
/* A stamp is at least `delay` ms old (wrap-safe). */
static inline int ebb__due(uint32_t now, uint32_t stamp, long delay)
{
    return (uint32_t)(now - stamp) >= (uint32_t)delay;
}
/* ms until a stamp is `wait` ms old; 0 if it is (wrap-safe). */
static inline uint32_t ebb__ms_until(uint32_t now, uint32_t stamp, uint32_t wait)
{
    uint32_t age = now - stamp;
    return age >= wait ? 0 : wait - age;
}

/* limit.c */
/* 1 if committed may grow by `bytes`; 0 records a refusal for this thread
 * (the caller fails its request).  Never blocks: callable under any lock. */
int ebb__limit_admits(size_t bytes) EBB_HIDDEN;
/* After a failed request, no lock held: if it was refused at the limit,
 * run the pressure callbacks and purge, and return 1 (try once more). */
int ebb__limit_relieve(void) EBB_HIDDEN;
/* A request finally failed: remember why, for ebb_last_failure. */
void ebb__limit_record_failure(size_t request) EBB_HIDDEN;
void ebb__limit_poll_slow(void) EBB_HIDDEN;
/* Set the limit the options ask for (init.c, at start-up). */
void ebb__limit_start(const ebb__options_t *o) EBB_HIDDEN;
/* What an auto limit is derived from besides the files below `root`: ebb's
 * own counters and the rlimits (UINT64_MAX: none).  Arguments, so that
 * tests can fix them. */
typedef struct {
    size_t committed, mapped;
    uint64_t rlimit_as, rlimit_data;
} ebb__limit_inputs_t;
/* The auto limit (percent% of it) for the system below root ("" the real
 * one); 0, or -1 if no bound is found (*out then says none). */
int ebb__limit_derive(const char *root, const ebb__limit_inputs_t *in, unsigned percent,
                      ebb_limit_info_t *out) EBB_HIDDEN;
/* After a slow path got memory, no lock held: run an episode's callbacks
 * if growth crossed the soft level.  One load without a limit. */
static inline void ebb__limit_poll(void)
{
    if (EBB_UNLIKELY(atomic_load_explicit(&ebb__g.limit, memory_order_relaxed) != 0))
        ebb__limit_poll_slow();
}
void ebb__limit_lock_all(void) EBB_HIDDEN;
void ebb__limit_unlock_all(int child) EBB_HIDDEN;
/* The kernel reported memory pressure (pressure.c): unless an episode is
 * open, the next slow path holding no lock runs the soft callbacks and
 * purges.  Never blocks; callable from any thread. */
void ebb__limit_external_pressure(void) EBB_HIDDEN;
/* Callbacks never run on the calling thread (ebb's own threads). */
void ebb__limit_no_callbacks_here(void) EBB_HIDDEN;

/* pressure.c: the watcher of the kernel's memory pressure */
enum { EBB_PRESSURE_IDLE = 0, EBB_PRESSURE_WATCHING, EBB_PRESSURE_OFF };
extern EBB_HIDDEN _Atomic int ebb__pressure_state; /* EBB_PRESSURE_* */
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
/* What the watcher does on each event (tests call it directly). */
void ebb__pressure_event(void) EBB_HIDDEN;
/* The pressure fields of ebb_limit_info. */
void ebb__pressure_info(ebb_limit_info_t *out) EBB_HIDDEN;
void ebb__pressure_fork_child(void) EBB_HIDDEN;

/* stats.c: mapped bytes, with the high-water mark */
size_t ebb__committed_now(void) EBB_HIDDEN;
void ebb__mapped_add(size_t n) EBB_HIDDEN;
void ebb__mapped_sub(size_t n) EBB_HIDDEN;
void ebb__pages_dirtied(size_t pages) EBB_HIDDEN;
void ebb__pages_cleaned(size_t pages) EBB_HIDDEN;
void ebb__arena_stats_locked(ebb_stats_t *s) EBB_HIDDEN;

/* arena.c */
ebb__pool_t *ebb__arena_take_pool(unsigned span, unsigned cls) EBB_HIDDEN;
/* Returns 1 if the caller must ebb__purge_kick() once it holds no lock. */
int ebb__arena_release_pool(ebb__pool_t *p) EBB_HIDDEN;
void ebb__arena_collect(int force) EBB_HIDDEN;
/* Purge free slots idle for `delay` ms (all if delay is 0); returns the ms
 * until the next one falls due, or UINT32_MAX if none waits. */
uint32_t ebb__arena_purge(uint32_t now, long delay) EBB_HIDDEN;
static inline ebb__arena_t *ebb__arena_of_pool(const ebb__pool_t *p)
{
    return (ebb__arena_t *)((uintptr_t)p & ~(EBB_ARENA_SIZE - 1));
}
static inline uint64_t *ebb__pool_bitmap(ebb__pool_t *p)
{
    return &ebb__arena_of_pool(p)->bits[p->bits_at];
}
static inline unsigned ebb__bitmap_words(unsigned cls)
{
    return (ebb__classes[cls].blocks + 63) / 64;
}

/* pool.c */
void ebb__pool_format(ebb__pool_t *p, ebb__heap_t *h, unsigned cls) EBB_HIDDEN;
/* Arena lock held: find p's bitmap words in its arena header, give them back. */
void ebb__pool_bits_reserve(ebb__pool_t *p, unsigned cls) EBB_HIDDEN;
void ebb__pool_bits_release(ebb__pool_t *p) EBB_HIDDEN;
/* A new arena's header fields (all but the bitmaps) count as resident. */
void ebb__pool_header_init(ebb__arena_t *a) EBB_HIDDEN;
unsigned ebb__pool_take(ebb__pool_t *p, void **out, unsigned want) EBB_HIDDEN;
int ebb__pool_block_index(const ebb__pool_t *p, uintptr_t a, uint32_t *idx) EBB_HIDDEN;
int ebb__pool_is_free(ebb__pool_t *p, uint32_t idx) EBB_HIDDEN;
void ebb__pool_put(ebb__pool_t *p, uint32_t idx) EBB_HIDDEN;
ebb__pool_t *ebb__pool_of(ebb__arena_t *a, uintptr_t addr) EBB_HIDDEN;
/* Purge the dirty pages of p that hold no block that is out, if there are
 * at least min_pages of them; returns how many were purged. */
size_t ebb__pool_purge(ebb__pool_t *p, size_t min_pages) EBB_HIDDEN;

/* heap.c */
unsigned ebb__heap_alloc(ebb__heap_t *h, unsigned cls, void **out, unsigned want) EBB_HIDDEN;
void ebb__heap_free(void *const *blocks, unsigned n) EBB_HIDDEN;
/* The same for blocks known idle for a delay already (a thread cache's
 * answer to a poke): their pools are due for purging at once. */
void ebb__heap_free_idle(void *const *blocks, unsigned n) EBB_HIDDEN;
ebb__heap_t *ebb__heap_pick(void) EBB_HIDDEN;
/* Purge the pools of bins listed for `delay` ms (every pool if delay is
 * 0); returns ms until the next is due, or UINT32_MAX. */
uint32_t ebb__heap_purge(uint32_t now, long delay) EBB_HIDDEN;

/* tcache.c */
void *ebb__tcache_refill_pop(ebb__tcache_t *tc, unsigned cls) EBB_HIDDEN;
void ebb__tcache_flush_push(ebb__tcache_t *tc, unsigned cls, void *blk) EBB_HIDDEN;
ebb__tcache_t *ebb__tcache_get_slow(void) EBB_HIDDEN;
void ebb__tcache_flush_all(ebb__tcache_t *tc) EBB_HIDDEN;
unsigned ebb__tcache_poke_all(void) EBB_HIDDEN;
void ebb__tcache_fork_child(void) EBB_HIDDEN;

/* large.c */
void *ebb__large_alloc(size_t size, size_t align, int zero) EBB_HIDDEN;
void *ebb__large_alloc_tagged(size_t size, size_t align, int zero, uint32_t tag,
                              uint32_t usable) EBB_HIDDEN;
int ebb__large_free(void *p) EBB_HIDDEN;          /* 0 if p is not ours */
int ebb__large_set_tag(void *p, uint32_t tag) EBB_HIDDEN;
size_t ebb__large_usable(const void *p) EBB_HIDDEN; /* 0 if p is not ours */
/* *resized: the block's mapping changed (in place or moved); then *tag is
 * the sample record it had (0 none), which the caller settles. */
void *ebb__large_realloc(void *p, size_t size, int *not_ours, int *resized,
                         uint32_t *tag) EBB_HIDDEN;
uint32_t ebb__large_purge(uint32_t now, long delay) EBB_HIDDEN;
void ebb__large_stats(ebb_stats_t *s) EBB_HIDDEN;
void ebb__large_stats_locked(ebb_stats_t *s) EBB_HIDDEN;
int ebb__large_check(void) EBB_HIDDEN;
void ebb__large_lock_all(void) EBB_HIDDEN;
void ebb__large_sampled_classes(size_t used[EBB_CLASSES]) EBB_HIDDEN;
void ebb__large_unlock_all(int child) EBB_HIDDEN;

/* diag.c */
void ebb__report_misuse(const char *fn, const void *p, const char *fault) EBB_HIDDEN;
void ebb__diag(const char *fmt, ...) EBB_HIDDEN;
_Noreturn void ebb__assert_fail(const char *cond, const char *file, int line) EBB_HIDDEN;
void ebb__check_or_die(void) EBB_HIDDEN;

/* diag.c's formatter (%s %p %zu %u %d %x), for report.c; returns the length. */
size_t ebb__vformat(char *buf, size_t cap, const char *fmt, va_list ap) EBB_HIDDEN;
size_t ebb__format(char *buf, size_t cap, const char *fmt, ...) EBB_HIDDEN;

/* report.c */
void ebb__report_failure(void) EBB_HIDDEN;
void ebb__report_arm_slow(void) EBB_HIDDEN;
void ebb__report_fork_child(void) EBB_HIDDEN;
/* The reporter thread is started, once, from a slow path after start-up. */
static inline void ebb__report_arm(void)
{
    if (EBB_UNLIKELY(ebb__opt.report_signal != 0) &&
        atomic_load_explicit(&ebb__g.threads_allowed, memory_order_acquire))
        ebb__report_arm_slow();
}

size_t ebb__report_brief(char *buf, size_t cap, const char *reason) EBB_HIDDEN;

/* blackbox.c */
extern EBB_HIDDEN _Atomic int ebb__blackbox_active;
void ebb__blackbox_setup(void) EBB_HIDDEN;
void ebb__blackbox_tick_slow(void) EBB_HIDDEN;
void ebb__blackbox_failed(void) EBB_HIDDEN;
void ebb__blackbox_fork_child(void) EBB_HIDDEN;
/* From slow paths holding no lock: bring the black box up to date if it is
 * kept and its interval has passed. */
static inline void ebb__blackbox_tick(void)
{
    if (EBB_UNLIKELY(atomic_load_explicit(&ebb__blackbox_active, memory_order_relaxed)))
        ebb__blackbox_tick_slow();
}

/* cpython.c: from the constructor, what `ebb run` asked for */
void ebb__launched_setup(void) EBB_HIDDEN;

/* sample.c */
/* Functions that may be on the stack between a program's allocation call
 * and the sampler's backtrace live in one section, so the sampler can drop
 * ebb's own frames by address, whatever the compiler inlined. */
#define EBB_ENTRY __attribute__((section("ebb_entry")))
void ebb__sample_init(void) EBB_HIDDEN;
/* Load the unwinder now (it allocates on first use), if sampling is on. */
void ebb__sample_prime(void) EBB_HIDDEN;
/* 1 if an allocation of n bytes is to be sampled (counts n against the
 * thread's gap). */
int ebb__sample_tick(size_t n) EBB_HIDDEN;
/* The same for a request malloc's fast path counted already, making the
 * thread's counter negative. */
int ebb__sample_fired(size_t n) EBB_HIDDEN;
/* Record a sample of n bytes at the caller's site; its record's tag, 0 if
 * it could not be recorded (table full).  Holds no lock while it unwinds. */
uint32_t ebb__sample_begin(size_t n) EBB_HIDDEN;
/* The sampled block with record `tag` is gone. */
void ebb__sample_forget(uint32_t tag) EBB_HIDDEN;
void ebb__sample_lock_all(void) EBB_HIDDEN;
/* Fork only (not ebb_check): no unwind in flight across a fork. */
void ebb__sample_fork_prepare(void) EBB_HIDDEN;
void ebb__sample_fork_done(int child) EBB_HIDDEN;
void ebb__sample_unlock_all(int child) EBB_HIDDEN;
void ebb__sample_stats_locked(ebb_stats_t *s) EBB_HIDDEN;
int ebb__sample_check(void) EBB_HIDDEN;
/* The report writer's view: the sites, most live bytes first. */
typedef ebb_site_t ebb__site_t;
size_t ebb__sample_top(ebb__site_t *out, size_t n) EBB_HIDDEN;

/* alloc.c, slow paths */
void *ebb__malloc_slow(size_t n) EBB_HIDDEN;
void ebb__free_slow(void *p) EBB_HIDDEN;

#endif /* EBB_INTERNAL_H */
