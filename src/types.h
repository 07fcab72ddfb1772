/*
 * types.h -- the data ebb's layers share: every structure, no functions.
 *
 * internal.h declares what each layer does (its verbs) and draws the layers;
 * this file shows what they work on.  Each field says who guards it: a
 * lock, "owner only" (one thread), or atomics.  Each structure says which
 * module owns it; the others read it (statistics, the checker) or go through
 * the owner's functions.
 */
#ifndef EBB_TYPES_H
#define EBB_TYPES_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../include/ebb.h"
#include "config.h"
#include "os/os.h"

#define EBB_HIDDEN __attribute__((visibility("hidden")))
#define EBB_LIKELY(x) __builtin_expect(!!(x), 1)
#define EBB_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define EBB_NOINLINE __attribute__((noinline))
/* A function of one file that another file's hot loop calls: inlined
 * there in the one-unit build (src/ebb.c), called where it is compiled
 * apart (the layer check). */
#define EBB_INLINE_ACROSS __attribute__((always_inline)) inline
/* Functions that may be on the stack between a program's allocation call
 * and the sampler's backtrace live in one section, so the sampler can drop
 * ebb's own frames by address, whatever the compiler inlined. */
#define EBB_ENTRY __attribute__((section("ebb_entry")))

#define EBB_NO_CLASS 255u

typedef struct ebb__arena_s ebb__arena_t;
typedef struct ebb__pool_s ebb__pool_t;
typedef struct ebb__heap_s ebb__heap_t;
typedef struct ebb__thread_s ebb__thread_t;

/* ============================================================== base */

/* Longest text an option holds (a path), NUL included: any path the
 * system takes.  A longer value is refused, never cut (base/options.c). */
#define EBB_OPTION_PATH_MAX EBB__OS_PATH_MAX

/* The values of the EBB_* options (base/options_table.h has each one's
 * default and meaning); base/options.c reads them once into ebb__opt, and
 * nothing writes them after (but unit tests). */
typedef struct {
    unsigned heaps;          /* EBB_HEAPS: 0 = one per CPU */
    int tcache;              /* EBB_TCACHE: 0 disables thread caches */
    size_t large_cache;      /* EBB_LARGE_CACHE: bytes of freed large blocks kept */
    int on_error;            /* EBB_ON_ERROR: EBB_ON_ERROR_* */
    int verbose;             /* EBB_VERBOSE */
    int debug;               /* EBB_DEBUG: the debug heap (front/debug.c) */
    long purge_delay;        /* EBB_PURGE_DELAY_MS: ms, 0 at once, -1 never */
    int purge_lazy;          /* EBB_PURGE_MODE=free: MADV_FREE, not DONTNEED */
    int purge_surplus;       /* EBB_PURGE_SURPLUS: surplus goes back sooner */
    size_t limit;            /* EBB_LIMIT: bytes, 0 none */
    unsigned limit_percent;  /* EBB_LIMIT=N% or auto (100): share of the
                              * effective limit; 0 when given in bytes */
    unsigned limit_soft;     /* EBB_LIMIT_SOFT: soft level, percent of the limit */
    int limit_psi;           /* EBB_LIMIT_PSI: 1 listen to the kernel, 0 not,
                              * -1 unset (listen if it can, quietly) */
    int report_off;          /* EBB_REPORT=off */
    int report_json;         /* EBB_REPORT_FORMAT=json, or a path ending .json */
    int report_signal;       /* EBB_REPORT_SIGNAL: signal number, 0 none */
    int report_native;       /* EBB_REPORT_NATIVE: sites' native frames in text */
    char report_path[EBB_OPTION_PATH_MAX];   /* EBB_REPORT=PATH, "" = stderr */
    char report_files[EBB_OPTION_PATH_MAX];  /* EBB_REPORT_FILE: absolute paths, ':' between */
    char report_folded[EBB_OPTION_PATH_MAX]; /* EBB_REPORT_FOLDED=PATH, "" = none */
    unsigned report_pid;     /* EBB_REPORT_PID: the one process that writes them, 0 any */
    char blackbox_path[EBB_OPTION_PATH_MAX]; /* EBB_BLACKBOX=PATH ("%p": the pid), "" = none */
    int top;                 /* EBB_TOP: publish the status page `ebb top` reads */
    size_t sample_rate;      /* EBB_SAMPLE_RATE: mean bytes between samples, 0 off */
    int python_stacks;       /* EBB_PYTHON_STACKS: front/pyframes.c's stack hook */
    int crash_note;          /* EBB_CRASH_NOTE: a line when a fault follows a refusal */
    int python;              /* EBB_PYTHON: set by `ebb run` */
    int no_children;         /* EBB_NO_CHILDREN: set by `ebb run --no-children` */
    char test_root[EBB_OPTION_PATH_MAX];     /* EBB__TEST_ROOT (debug builds): system files' root */
    int secure;              /* a privileged process (AT_SECURE): every EBB_*
                              * variable was ignored, and children lose them */
    unsigned fault_one_in;   /* EBB__FAULT_ONE_IN (debug builds): fail 1 OS request in N */
    unsigned fault_seed;     /* EBB__FAULT_SEED (debug builds): which ones */
} ebb__options_t;

/* Misuse seen (base/diag.c): the statistics report them. */
typedef struct {
    _Atomic size_t errors;        /* misuse reported (double free, bad pointer, ...) */
    _Atomic size_t foreign_frees; /* frees of pointers ebb never made */
} ebb__misuse_t;

/* One module's locks, for the one list fork and ebb_check take them from
 * (base/process.c).  Every member may be NULL or 0. */
typedef struct {
    const char *name;
    ebb__lock_t *one;     /* the module's only lock: taken, released, and
                           * made usable again in a fork child, by the list */
    void (*lock)(void);   /* or: take the module's locks, in its own order */
    void (*unlock)(void); /* release them */
    void (*child)(void);  /* in a fork child, after every lock was taken in
                           * the parent (and `one` made usable): make the
                           * locks usable again, and drop what the child does
                           * not have (threads, files) */
    int fork_only;        /* held around fork only, not by ebb_check */
} ebb__lockset_t;

/* ============================================================== core */

/* ----------------------------------------------------------------- demand */

/* What one owner (a bin, the arenas, the large blocks) handed out recently,
 * in its own unit (blocks, slots, pages), for the surplus rule
 * (core/demand.c).  Guarded by the owner's lock.  32-bit counts compared by
 * wrap-safe differences: a window never takes 4G units. */
typedef struct {
    uint32_t taken; /* units taken, ever (wraps) */
    uint32_t mark;  /* taken when the current window began */
    uint32_t last;  /* taken during the window before */
    uint32_t since; /* ms: the current window began */
} ebb__demand_t;

/* What one thread took from one owner within the owner's current window
 * (core/demand.c), so that the thread's exit can take it back. */
typedef struct {
    uint32_t since; /* the owner's window start when counted */
    uint32_t n;     /* units taken since */
} ebb__took_t;

/* ------------------------------------------------------------ size classes */

typedef struct {
    uint32_t size;      /* block size in bytes */
    uint32_t blocks;    /* blocks in one pool */
    uint64_t recip;     /* ceil(2^48 / size): offset -> index by multiply */
    uint32_t bucket_recip; /* ceil(2^32 / blocks): fullness bucket by multiply */
    uint8_t span;       /* slots per pool */
    uint8_t tcache_cap; /* thread-cache capacity, 0 = not cached */
} ebb__class_t;

/* ------------------------------------------------------------------ pools */

/* Where a pool sits in its bin. */
enum { EBB_BUCKET_FULL = EBB_POOL_BUCKETS, EBB_BUCKET_NONE = 0xff };

/* A pool's descriptor, the part every pool in use needs: it lives on the
 * first page of its arena's header, with the arena's fields, so that an
 * arena whose pools are all sparse and unlisted keeps one header page
 * (arena.c, "Header pages").  What only a listed pool uses is in
 * ebb__pool_cold_t, on the page after.  The start and the owning
 * heap are derived (ebb__pool_start, ebb__pool_heap), not stored: 48 bytes
 * on 64-bit, so the fields and 64 descriptors fit one 4 KiB page. */
struct ebb__pool_s {
    ebb__pool_t *next, *prev; /* bucket list of its bin; bin lock */
    uint32_t used;            /* blocks out; bin lock */
    /* Its bitmap: arena->bits[bits_at...], or EBB_BITS_SPARSE: the pool has
     * no words, and its `used` blocks out are the indices in held[] (pool.c,
     * "Sparse pools"). */
    uint16_t bits_at;
    uint8_t cls;              /* size class */
    uint8_t span;             /* slots */
    uint8_t bucket;           /* fullness bucket, FULL, or NONE */
    uint8_t head_slot;        /* index of the first slot */
    uint8_t listed;           /* on its bin's purge list; bin lock */
    /* The owning heap's index in ebb__heaps, EBB_NO_HEAP while the slots
     * are free; fixed while used > 0 (atomic: a free reads it unlocked). */
    uint8_t heap;
    uint8_t scan;             /* no free bit in bitmap words below this */
    uint16_t held[EBB_SPARSE_BLOCKS]; /* a sparse pool's blocks out, any order */
};

#define EBB_NO_HEAP 0xffu

/* The rest of a pool's descriptor: its place in the purge list, valid
 * while it is `listed`.  An unlisted pool leaves it to whatever the page
 * holds: the page may have been purged (arena.c, "Header pages"). */
typedef struct {
    ebb__pool_t *purge_next, *purge_prev; /* bin's purge list, in due order */
    uint32_t listed_at;       /* ms: joined the purge list (list order) */
    uint32_t stamp;           /* ms: last block returned or taken while listed */
    uint32_t queued_at;       /* ms: its place in the purge list (heap.c) */
} ebb__pool_cold_t;

#define EBB_BITS_SPARSE 0xffffu

/* ----------------------------------------------------------------- arenas */

#define EBB_ARENA_MAGIC 0x65626261u /* "ebba" */

struct ebb__arena_s {
    uint32_t magic;
    uint32_t nfree;            /* free slots; arena lock */
    uint64_t free_mask;        /* bit i: slot i belongs to no pool; arena lock */
    ebb__arena_t *next, *prev; /* list of arenas with the same nfree */
    uint64_t purging;          /* free slots lent to a purge pass; arena lock */
    uint32_t freed_stamp;      /* ms: a pool last went back to the arena */
    uint32_t bits_freed_at;    /* ms: a pool last gave bitmap words back */
    uint32_t bits_freed;       /* words were given back since the header's
                                * pages were last looked at (arena.c) */
    /* Pools of the arena on a purge list (they write their cold part), and
     * the state of the header's cold page: arena.c, "Header pages". */
    _Atomic uint32_t cold_users;
    /* Bit p of dirty[s]: page p of slot s may be resident (touched since it
     * was mapped or last purged).  Owned with the slot: by the bin lock of
     * the pool covering it, else by the arena lock.  dirty[0] is the
     * header's: its first page, the cold part's while it is in use, and
     * every page of `bits` a pool's words reached since it was last purged
     * (arena.c, "Header pages"). */
    uint16_t dirty[EBB_SLOTS];
    /* The fast free path reads only this: the class of the pool covering
     * each slot, EBB_NO_CLASS for the header and free slots. */
    uint8_t slot_class[EBB_SLOTS];
    uint8_t slot_head[EBB_SLOTS];   /* first slot of the covering pool */
    /* Bytes from the covering pool's start to each slot's, so the free fast
     * path gets a block's offset in its pool as (address & slot mask) plus
     * this, one load and an add (slot_head would take four more). */
    uint32_t slot_back[EBB_SLOTS];
    ebb__pool_t pool[EBB_SLOTS];    /* descriptor, valid at a pool's first slot */
    /* Everything from here on is the cold part: it may be purged while no
     * pool of the arena is listed or has a bitmap. */
    ebb__pool_cold_t cold[EBB_SLOTS]; /* valid at a pool's first slot */
    /* Which words of `bits` belong to a pool: bit w of bits_used[c] is word
     * c * 64 + w (pool.c; arena lock). */
    uint64_t bits_used[EBB_SLOTS];
    /* Free-block bitmaps, out of band so purging a pool's pages loses
     * nothing: bit set = block free.  Each pool owns as many words as its
     * class needs, packed low (pool.c says why). */
    _Alignas(8) uint64_t bits[EBB_SLOTS * EBB_BITMAP_WORDS]; /* 8: no word on two pages */
};

_Static_assert(sizeof(ebb__arena_t) <= EBB_SLOT_SIZE, "arena header fits slot 0");
_Static_assert(EBB_BITMAP_WORDS <= UINT8_MAX, "a scan hint is a byte");
_Static_assert(EBB_POOL_MAX_BLOCKS <= EBB_BITS_SPARSE && EBB_SLOTS * EBB_BITMAP_WORDS < EBB_BITS_SPARSE,
               "held[] holds any block index; no bitmap starts at EBB_BITS_SPARSE");
/* An arena whose pools are all sparse and unlisted keeps its fields and
 * descriptors resident, and nothing else: one page (pool.c, "Sparse
 * pools"; arena.c, "Header pages"). */
_Static_assert(offsetof(ebb__arena_t, cold) <= 4096, "fields and descriptors fit the header's first page");
_Static_assert(sizeof(void *) != 8 || sizeof(ebb__pool_t) == 48, "a descriptor is 48 bytes on 64-bit");

/* Every arena (core/arena.c), guarded by `lock` unless said otherwise. */
typedef struct {
    ebb__lock_t lock;
    /* One purge pass at a time lends free slots out of the arenas (fork
     * waits for it to give them back); taken before `lock`. */
    ebb__lock_t lend_lock;
    ebb__arena_t *by_nfree[EBB_SLOTS]; /* lists by free slots (0..63) */
    uint64_t by_nfree_mask;            /* bit n: list n non-empty */
    size_t count;                      /* arenas mapped */
    size_t spare;                      /* of them entirely free */
    size_t pools;                      /* pools carved out of them */
    size_t pool_slots;                 /* slots those pools span */
    ebb__demand_t demand;              /* slots taken for pools */
} ebb__arena_set_t;

/* ---------------------------------------------------------- ownership map */

#if UINTPTR_MAX > 0xffffffffu
#define EBB_ADDRESS_BITS 47 /* x86-64 user space without 5-level hints */
#else
#define EBB_ADDRESS_BITS 32
#endif
#define EBB_MAP_ENTRIES ((uintptr_t)1 << (EBB_ADDRESS_BITS - EBB_ARENA_SHIFT))

/* Page ranges to purge, gathered under their owner's lock and given back
 * together (core/ledger.c): while the lock is let go for the system calls,
 * something must keep the pages from being handed out (heap.c borrows
 * their blocks; arena.c lends the slots out). */
typedef struct {
    unsigned n;
    ebb__os_range_t range[EBB_PURGE_RANGES];
} ebb__purge_batch_t;

/* ------------------------------------------------------------------ heaps */

/* A bin starts a cache line and its size is a power of two (256 bytes on
 * 64-bit, 128 on 32-bit), so &heap->bin[cls] is a shift on the free and
 * refill paths, not a multiply by 240, and two bins' locks never share a
 * line between threads. */
typedef struct {
    _Alignas(64) ebb__lock_t lock;
    uint32_t nonempty;                          /* bit b: bucket b has pools */
    ebb__pool_t *bucket[EBB_POOL_BUCKETS + 1];  /* + the full list */
    size_t used;                                /* blocks out of pools */
    size_t pools;
    /* Pools that received frees since they were last purged, in order of
     * due time (heap.c says when they are purged). */
    ebb__pool_t *purge_head, *purge_tail;
    ebb__demand_t demand; /* blocks taken: what the surplus rule keeps */
    /* Slot k: NULL or a pool of the purge list whose key is k modulo
     * EBB_PURGE_HINTS, where a pool requeued with that key goes. */
    ebb__pool_t *purge_hint[EBB_PURGE_HINTS];
} ebb__bin_t;
_Static_assert((sizeof(ebb__bin_t) & (sizeof(ebb__bin_t) - 1)) == 0, "a bin's size is a power of two");

struct ebb__heap_s {
    ebb__bin_t bin[EBB_CLASSES];
};

/* The shared heaps (core/heap.c): `n` of them in use, fixed at start-up.
 * The others are never written, so their pages are never resident (16 KiB
 * a heap: writing a field of all 64 at start-up cost every process 256 KiB). */
typedef struct {
    ebb__heap_t heap[EBB_MAX_HEAPS];
    unsigned n;
    unsigned next; /* the heap the next new thread gets; registry lock */
    /* The one bin whose blocks a purge pass has borrowed while it purges
     * their pages with the bin's lock let go (one pass at a time: it holds
     * the arenas' lend lock), and the ranges; set and cleared under that
     * bin's lock, so a free holding it reads a settled value. */
    _Atomic(ebb__bin_t *) lent_bin;
    const ebb__purge_batch_t *lent;
} ebb__heap_set_t;

/* --------------------------------------------------------------- threads */

typedef struct {
    void **top;  /* next free entry; cached blocks are [low, top) */
    void **low;  /* the stack's start, raised when the purger takes blocks from
                    an idle thread (core/thread.c); relaxed atomic accesses */
    void **high; /* end of the entries in use: the class's capacity, half of it
                    in a free-only run (core/thread.c); owner writes, relaxed */
    int busy;    /* refilled or overflowed since the thread last answered a poke */
    unsigned streak; /* overflows since the last refill (core/thread.c) */
} ebb__tbin_t;

enum { EBB_TC_ACTIVE = 1, EBB_TC_EXITING, EBB_TC_FREE };

/* A thread's countdown to its next heap-profile sample (insight/sample.c). */
typedef struct {
    ptrdiff_t left;  /* bytes to allocate before the next sample; malloc's fast
                        path subtracts each request and leaves on a negative */
    unsigned epoch;  /* the rate's epoch `left` was drawn in */
    uint64_t rng;    /* xorshift state for the gaps */
} ebb__sample_counter_t;

/* What ebb keeps per thread (core/thread.c): the thread cache (a stack of
 * free blocks per size class) and the sampler's countdown, side by side
 * because malloc's fast path touches both through one pointer. */
struct ebb__thread_s {
    ebb__tbin_t bin[EBB_CLASSES];  /* the thread cache; owner only, but for `low` */
    ebb__sample_counter_t sample;  /* owner only */
    /* Blocks in each stack as of the owner's last slow path for the class
     * (refill, flush, poke, exit): what other threads may read (statistics,
     * ebb_check), since the fast paths change bin[] without a lock.
     * Written by the owner with relaxed stores, beside, not inside, bin[],
     * so the fast paths' stride and offsets stay what they were. */
    _Atomic uint8_t published[EBB_CLASSES];
    ebb__heap_t *heap;
    ebb__thread_t *next, *prev;    /* registry list; registry lock */
    /* The owner's ebb__self, which the purger may point at the `poked`
     * placeholder (registry lock held, state ACTIVE). */
    _Atomic(ebb__thread_t *) *tls_slot;
    /* Held by the owner across every slow path that changes its stacks, and
     * by the purger while it takes the blocks of an idle thread's stacks
     * (core/thread.c, "Idle threads"). */
    ebb__lock_t stacks_lock;
    uint32_t poked_at;             /* ms: the poke it has not answered; registry lock */
    int taken_from;                /* a stack's `low` was raised; stacks_lock */
    size_t map_size;
    int state;                     /* EBB_TC_* */
    ebb__unwind_memo_t unwind_memo; /* the sampler's last unwind; owner only */
    /* Blocks this thread took from its heap's bins, for its exit to take
     * back from their demand (core/demand.c); written under the bin's lock. */
    ebb__took_t took[EBB_CLASSES];
    void *entries[];
};

/* Every thread's state (core/thread.c), guarded by `lock`. */
typedef struct {
    ebb__lock_t lock;
    ebb__thread_t *active;  /* threads with a cache */
    ebb__thread_t *free;    /* caches of exited threads, for new ones */
    size_t count;           /* on the active list */
    size_t bytes;           /* mapped for caches */
} ebb__thread_registry_t;

/* ---------------------------------------------------------- the ledger */

/* What ebb holds (core/ledger.c); relaxed atomics, written on slow paths. */
typedef struct {
    _Atomic size_t mapped, peak_mapped;
    /* Pages of arena slots 1..63 not marked dirty: mapped but known not to
     * be resident (never touched, or purged).  committed = mapped - these. */
    _Atomic size_t clean_pages;
    _Atomic size_t peak_committed;
    /* Monotonic ns when peak_committed last rose (0: never), and when the
     * mechanism started: statistics give the peak's time from them. */
    _Atomic uint64_t peak_committed_ns;
    uint64_t start_ns;              /* written once, before any allocation */
    _Atomic size_t purged;          /* bytes purged since start */
    _Atomic size_t purges;          /* purge calls made to the OS */
    _Atomic unsigned purge_work;    /* bumped whenever the purger has work: purgeable
                                     * memory appeared, or a timeline point is owed */
    _Atomic uint32_t peak_committed_ms; /* ms (ebb__os_now_ms): peak_committed last rose */
    /* The watch on committed (ebb__ledger_watch): committed when the
     * watcher (the timeline) last looked, and EBB_WATCH_*. */
    _Atomic size_t watch_mark;
    _Atomic int watch;
} ebb__ledger_t;

/* The watch on committed: idle; armed at a mark; moved by a step from it
 * (a point is owed: the purger is to be kicked); kicked (the purger is
 * started or woken, once per move). */
enum { EBB_WATCH_OFF = 0, EBB_WATCH_ARMED, EBB_WATCH_MOVED, EBB_WATCH_KICKED };

/* One size class as a walk of its pools finds it (core/heap.c), for the
 * statistics' detail. */
typedef struct {
    size_t used;              /* blocks out of pools (thread caches included) */
    size_t pools, pools_empty;
    size_t in_use_bytes;      /* bytes spanned by pools with a block out */
    size_t committed_pages;   /* pages of the class's pools counted resident */
    size_t empty_committed_pages; /* of them, in empty pools */
} ebb__class_walk_t;

/* Each of ebb's own mappings, for a walk over them (the RSS reading): what
 * a module passes to the visitor it is given. */
enum {
    EBB_RANGE_LARGE,          /* a live large block */
    EBB_RANGE_LARGE_CACHED,   /* a freed large mapping kept for reuse */
    EBB_RANGE_META            /* ebb's metadata: tables, thread caches */
};
typedef void (*ebb__range_fn)(void *ctx, const void *start, size_t size, int kind);

/* Whether memory that comes back is purged at once, after the purge delay,
 * or never (but by ebb_collect): ebb__purge_when(). */
typedef enum { EBB_PURGE_NOW, EBB_PURGE_LATER, EBB_PURGE_NEVER } ebb__purge_when_t;

/* The limit as the mechanism sees it (core/budget.c), set by policy/limit.c. */
typedef struct {
    _Atomic size_t limit;       /* bytes, 0 none: the slow paths' one load */
    _Atomic size_t soft;        /* growth past it opens an episode */
    /* The emergency reserve: the top `reserve` bytes below the limit are
     * held back until a request is refused, so that handling the failure
     * (a traceback, an error message, the report's caller) still gets
     * memory; it closes again once committed is back below
     * limit - 2 * reserve. */
    _Atomic size_t reserve;
    _Atomic int reserve_open;
    _Atomic int episode;        /* soft callbacks ran, committed still above soft */
    _Atomic int soft_due;       /* growth crossed the soft level: callbacks owed */
    _Atomic int reported;       /* a failure at the limit was reported this episode */
} ebb__budget_t;

/* ============================================================ policy */

/* What an auto limit is derived from besides the files below `root`: ebb's
 * own counters and the rlimits (UINT64_MAX: none).  Arguments, so that
 * tests can fix them. */
typedef struct {
    size_t committed, mapped;
    uint64_t rlimit_as, rlimit_data;
} ebb__limit_inputs_t;

/* The pressure watcher's state (policy/pressure.c). */
enum { EBB_PRESSURE_IDLE = 0, EBB_PRESSURE_WATCHING, EBB_PRESSURE_OFF };

/* =========================================================== insight */

/* The report writer's view of an allocation site. */
typedef ebb_site_t ebb__site_t;

/* A site by its number in the sampler's table, with weights of a moment. */
typedef struct {
    uint32_t site;           /* index + 1 in the sampler's table */
    uint64_t live_bytes, live_count, samples;
    uint64_t text_hash;      /* of its runtime stack's text; 0 if it has none */
} ebb__site_weight_t;

/* The heap map (insight/heapmap.c): a copy of every arena's slots. */
typedef struct {
    void *arena;             /* the copy, mapped; opaque to readers */
    size_t narenas, bytes;
} ebb__heapmap_t;
enum { EBB__POOL_FULL, EBB__POOL_PARTIAL, EBB__POOL_EMPTY, EBB__POOL_PURGED };
/* One pool of the copy. */
typedef struct {
    unsigned slot, span, cls, state, resident_pages;
    uint32_t block_size, blocks, used;
} ebb__heapmap_pool_t;

/* The peak snapshot (insight/peak.c). */
typedef struct {
    size_t committed;        /* committed memory at the snapshot */
    uint64_t sampled_live;   /* estimated live bytes of every site then */
    int64_t wall_seconds;    /* when */
    unsigned snapshots;      /* taken so far (0: none yet) */
    size_t nsites;
    ebb__site_weight_t site[EBB_PEAK_SITES];
} ebb__peak_t;

/* One point of the memory timeline (insight/timeline.c).  Fixed-width
 * fields: the status page carries the same figures to a reader that may be
 * built for the other word size. */
typedef struct {
    uint64_t ms;         /* since ebb started (monotonic) */
    uint64_t live;       /* bytes the program holds (small in use + large) */
    uint64_t committed;  /* ebb's estimate of its resident memory */
    uint64_t rss;        /* the process's resident set; 0 if unknown */
    uint64_t limit;      /* the limit then; 0 none */
    uint64_t purged;     /* bytes given back to the OS since start */
} ebb__timeline_point_t;

/* The record of points (insight/timeline.c says how it stays bounded):
 * `kept` oldest first, each standing for `stride` samples, and the point
 * being made of the samples since.  Its user serialises the calls. */
typedef struct {
    ebb__timeline_point_t kept[EBB_TIMELINE_POINTS];
    size_t nkept;
    uint64_t stride;                /* samples per kept point; 0 is taken for 1 */
    ebb__timeline_point_t pending;  /* the samples since the last kept point, merged */
    uint64_t npending;
    uint64_t samples;               /* taken since start */
} ebb__timeline_ring_t;

/* What the timeline knows besides its points. */
typedef struct {
    uint64_t now_ms;             /* ms since ebb started, now */
    uint64_t started_wall_ms;    /* wall clock at ebb's start, ms since the epoch */
    uint64_t peak_committed;     /* the highest committed so far */
    uint64_t peak_committed_ms;  /* when (ms since ebb started) */
    uint64_t kept;               /* points in the ring */
    uint64_t stride;             /* samples each kept point stands for (1, 2, 4...) */
    uint64_t samples;            /* samples taken since start */
} ebb__timeline_info_t;

#endif /* EBB_TYPES_H */
