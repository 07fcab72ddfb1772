/*
 * ebb.h -- the public interface of the ebb memory manager.
 *
 * ebb is usable three ways: as the process's malloc (LD_PRELOAD=libebb.so or
 * linking -lebb, which also exports malloc, free, ...), as CPython's allocator,
 * and through the ebb_* functions below, which behave exactly like their C
 * library namesakes (glibc semantics) and never call into another allocator.
 *
 * Every function here is thread-safe.  Failures return NULL with errno set to
 * ENOMEM (or EINVAL for a bad alignment); no function aborts on out-of-memory.
 * Pointers ebb did not make are recognised without touching them: ebb_free()
 * or ebb_realloc() of such a pointer is named on stderr and, by default,
 * aborts as glibc does (see EBB_ON_ERROR: under warn or ignore the call is
 * dropped and nothing is touched).
 */
#ifndef EBB_H
#define EBB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EBB_VERSION_MAJOR 0
#define EBB_VERSION_MINOR 1
#define EBB_VERSION_PATCH 0
#define EBB_VERSION_STRING "0.1.0"

/* A program that builds ebb into itself as a private copy (the Python
 * module does) defines EBB_API as hidden, so the copy exports nothing. */
#if defined(EBB_API)
#define EBB_MALLOC_LIKE __attribute__((malloc, warn_unused_result))
#elif defined(__GNUC__)
#define EBB_API __attribute__((visibility("default")))
#define EBB_MALLOC_LIKE __attribute__((malloc, warn_unused_result))
#else
#define EBB_API
#define EBB_MALLOC_LIKE
#endif

/* The C library's allocation functions, with glibc's semantics. */
EBB_API EBB_MALLOC_LIKE void *ebb_malloc(size_t size);
EBB_API EBB_MALLOC_LIKE void *ebb_calloc(size_t count, size_t size);
EBB_API void *ebb_realloc(void *ptr, size_t size);
EBB_API void *ebb_reallocarray(void *ptr, size_t count, size_t size);
EBB_API void ebb_free(void *ptr);
EBB_API void ebb_free_sized(void *ptr, size_t size);
EBB_API void ebb_free_aligned_sized(void *ptr, size_t alignment, size_t size);
EBB_API EBB_MALLOC_LIKE void *ebb_aligned_alloc(size_t alignment, size_t size);
EBB_API int ebb_posix_memalign(void **out, size_t alignment, size_t size);
EBB_API EBB_MALLOC_LIKE void *ebb_memalign(size_t alignment, size_t size);
EBB_API EBB_MALLOC_LIKE void *ebb_valloc(size_t size);
EBB_API EBB_MALLOC_LIKE void *ebb_pvalloc(size_t size);
EBB_API size_t ebb_usable_size(const void *ptr);

/* 1 if ptr is the start of a block ebb handed out and has not taken back,
 * else 0 (NULL, foreign and interior pointers give 0).  Never dereferences
 * ptr.  A block just freed may still answer 1 while it sits in a thread's
 * cache. */
EBB_API int ebb_owns(const void *ptr);

/* 1 if ptr points into memory ebb manages (an arena of small blocks or a
 * large block's mapping), else 0; one table load for small blocks, never
 * dereferences ptr.  Cheaper than ebb_owns and meant for a wrapper that
 * must route a free to the allocator that made the block (CPython's
 * domains after ebb replaced their allocator at run time). */
EBB_API int ebb_manages(const void *ptr);

/* ebb_free(ptr) if ptr is memory ebb manages, returning 1; else 0, and ptr
 * is left alone (no diagnosis: it is the caller's to pass on).  NULL gives 1.
 * The same answer as ebb_manages followed by ebb_free, with one lookup
 * instead of two: for a wrapper's free, where every call pays it. */
EBB_API int ebb_free_if_managed(void *ptr);

/* Walk every internal structure and verify its invariants.  Returns 0 when
 * all hold; otherwise prints a one-line diagnosis per fault on stderr and
 * returns the number of faults.  Takes every lock, so other threads may go
 * on allocating meanwhile.  Of the thread caches it checks every cache's
 * shape but only the calling thread's contents: another thread's cache
 * changes without a lock while it runs, so only that thread reads it. */
EBB_API int ebb_check(void);

/* Give back to the OS, now, everything free in the whole process, whatever
 * the purge delay: this thread's cache is flushed; in every heap (those of
 * idle and exited threads too) empty pools are released and the pages of
 * free blocks purged; free arena slots are purged, empty arenas unmapped
 * and cached large blocks unmapped.  force=1 also unmaps the spare empty
 * arena kept against map/unmap thrash.  Other threads' caches (at most
 * 32 KiB per size class each) are left alone.  Callable from any thread. */
EBB_API void ebb_collect(int force);

/* Counters.  Every byte of address space ebb has mapped is in exactly one of
 * the mapped_* categories, so they add up to `mapped`. */
typedef struct ebb_stats_s {
    size_t mapped;          /* all address space ebb holds from the OS */
    size_t mapped_meta;     /* arena headers, thread caches, tables */
    size_t mapped_pools;    /* slots owned by pools of small blocks */
    size_t mapped_free_slots; /* arena slots not in any pool */
    size_t mapped_large;    /* mappings of live large blocks */
    size_t mapped_large_cached; /* freed large mappings kept for reuse */
    size_t small_used;      /* bytes of small blocks handed out (incl. thread caches) */
    size_t small_cached;    /* bytes of small blocks sitting in thread caches: the calling
                             * thread's exactly, other threads' as of their last refill
                             * or flush of each size class */
    size_t large_used;      /* bytes of live large mappings */
    size_t arenas;          /* number of arenas */
    size_t pools;           /* number of pools */
    size_t large_blocks;    /* number of live large blocks */
    size_t heaps;           /* number of shared heaps */
    size_t threads;         /* live thread caches */
    size_t foreign_frees;   /* frees of pointers ebb did not make */
    size_t errors;          /* misuse detected (double free, bad pointer) */
    size_t peak_mapped;     /* high-water mark of `mapped` */
    size_t committed;       /* mapped minus pages known not resident: ebb's RSS estimate */
    size_t peak_committed;  /* high-water mark of `committed` */
    size_t purged;          /* bytes given back with madvise since start (not unmaps) */
    size_t purges;          /* madvise calls that gave them back */
} ebb_stats_t;

EBB_API void ebb_stats(ebb_stats_t *out);

/* One size class: its block size, blocks handed out (thread caches
 * included, and sampled blocks of the class, which the profiler serves
 * from a page of their own) and the pools that hold them. */
typedef struct ebb_class_stats_s {
    size_t size;            /* block size in bytes */
    size_t used;            /* blocks handed out, including thread caches and sampled ones */
    size_t pools;           /* pools of this class */
    size_t pool_bytes;      /* bytes those pools span */
} ebb_class_stats_t;

/* Fill out[0..n) with the first n size classes (smallest first); returns
 * the number of classes ebb has, so a NULL out with n = 0 asks for it. */
EBB_API size_t ebb_class_stats(ebb_class_stats_t *out, size_t n);

/* ------------------------------------------------- extended statistics
 * ebb_stats_t and ebb_class_stats_t are fixed: a program compiled against
 * this header passes their size implicitly, so a field added to them would
 * be written past the end of an older program's struct (and would change
 * the stride of its ebb_class_stats array).  What came after them goes
 * through the functions below, which take the size of the caller's struct:
 * they write at most that many bytes, zero the fields of a newer caller
 * that this library does not know, and return the bytes they filled.
 * Fields are only ever added at the end. */

/* ebb_stats_t, plus the peak's time, the small blocks' free space and the
 * large blocks' detail.  Times: wall_ns is CLOCK_REALTIME (nanoseconds since
 * the epoch, comparable with time.time_ns()), uptime_ns nanoseconds after
 * ebb started (its constructor, before main, in a program that links or
 * preloads it; the first import for the Python module's private copy). */
typedef struct ebb_stats_ex_s {
    ebb_stats_t base;         /* what ebb_stats gives */
    /* When `base.peak_committed` was reached (0: nothing committed yet).
     * Two threads growing at once may leave the time of the smaller raise,
     * a moment apart. */
    uint64_t peak_committed_wall_ns;
    uint64_t peak_committed_uptime_ns;
    uint64_t uptime_ns;       /* now, on the same clock */
    /* Small blocks, summed over the classes (ebb_class_stats_ex has each). */
    size_t small_live;        /* bytes the program holds: base.small_used - base.small_cached */
    size_t pools_in_use;      /* pools with a block out */
    size_t pools_empty;       /* pools with none, kept until the purge returns
                               * them to their arena */
    size_t pool_free;         /* bytes of pools in use that no block out covers */
    size_t pools_committed;   /* committed bytes (pages counted resident) of pools */
    size_t pools_empty_committed; /* of them, in empty pools */
    size_t free_slots_committed;  /* committed bytes of arena slots in no pool */
    /* Large blocks (> 128 KiB): base.large_blocks and base.large_used are the
     * live ones, base.mapped_large_cached the cached ones' bytes. */
    size_t large_cached_blocks; /* freed mappings kept for reuse */
    size_t large_sampled;     /* live large mappings that serve one sampled small
                               * block each (the profiler's); their bytes are in
                               * base.large_used */
} ebb_stats_ex_t;

/* Fill *out (at most `size` bytes of it; pass sizeof *out): 0 and the
 * bytes filled, or 0 if out is NULL or size too small for `base`. */
EBB_API size_t ebb_stats_ex(ebb_stats_ex_t *out, size_t size);

/* One size class in detail.  The first four fields are ebb_class_stats_t's.
 * Blocks out of a pool are live (the program holds them) or in a thread
 * cache; `used` also counts sampled blocks of the class, which the profiler
 * serves from large mappings, so used = live + cached + sampled. */
typedef struct ebb_class_ex_s {
    size_t size;              /* block size in bytes */
    size_t used;              /* blocks handed out, caches and sampled ones included */
    size_t pools;             /* pools of this class, empty ones included */
    size_t pool_bytes;        /* bytes those pools span */
    size_t live;              /* blocks the program holds, in pools */
    size_t live_bytes;        /* live * size */
    size_t cached;            /* blocks in thread caches (other threads' as they
                               * last published them: ebb_stats says how) */
    size_t sampled;           /* blocks served by the profiler from large mappings */
    size_t pools_empty;       /* pools with no block out */
    size_t free_bytes;        /* bytes of pools in use that no block out covers */
    size_t committed;         /* committed bytes of the class's pools */
    size_t empty_committed;   /* of them, in empty pools */
} ebb_class_ex_t;

/* Fill out[0..n) with the first n classes, each entry `size` bytes apart
 * (pass sizeof *out) and at most that many bytes of it written; returns the
 * number of classes (NULL out or n = 0 asks only that). */
EBB_API size_t ebb_class_stats_ex(ebb_class_ex_t *out, size_t n, size_t size);

/* The process's resident memory (RSS) taken apart: ebb's part, measured
 * page by page (mincore) over every mapping ebb holds, and the rest, by
 * mapping from /proc/self/smaps.  Every resident byte of ebb's is in
 * exactly one of ebb's categories, every other in one of the others', and
 * rss = ebb + other + unaccounted, where `unaccounted` is what the process
 * changed between the reads (0 in a quiet one).  On demand only: it takes
 * every lock of ebb's for the walk (as ebb_check does), then reads smaps
 * (about a millisecond per hundred mappings) without any; allocates
 * nothing (its list of ebb's mappings is a mapping of its own, counted in
 * `metadata` while it lives). */
typedef struct ebb_rss_s {
    uint64_t rss;             /* resident bytes, /proc/self/smaps_rollup's Rss */
    uint64_t ebb;             /* ebb's resident bytes: the sum of the next eight */
    uint64_t live_small;      /* small blocks the program holds */
    uint64_t live_large;      /* large blocks the program holds */
    uint64_t thread_caches;   /* freed small blocks in thread caches */
    uint64_t pool_free;       /* free space in pools that hold blocks */
    uint64_t pools_empty;     /* pools with no block out, not purged yet */
    uint64_t free_slots;      /* arena slots in no pool, not purged yet */
    uint64_t large_cached;    /* freed large blocks kept for reuse */
    uint64_t metadata;        /* arena headers, thread caches' arrays, tables,
                               * ebb's static tables (the ownership map, the
                               * heaps), this reading's list */
    /* ebb's estimate against the kernel: ebb = committed - committed_not_resident
     * + resident_not_committed. */
    uint64_t committed;       /* ebb's committed (ebb_stats), read during the walk */
    uint64_t committed_not_resident; /* counted committed, not in memory: parts of
                               * large blocks never written, pages swapped out */
    uint64_t resident_not_committed; /* in memory, not counted: pages purged with
                               * MADV_FREE the kernel has not taken yet, pages
                               * only read (the zero page), static tables */
    /* Everything else (/proc/self/smaps, less ebb's pages in each mapping):
     * the sum of the next five. */
    uint64_t other;
    uint64_t files;           /* file mappings: the program's and libraries' code
                               * and data, mapped files, shared memory */
    uint64_t stacks;          /* the main stack and thread stacks */
    uint64_t brk_heap;        /* [heap]: the program break (the C library's heap
                               * or another sbrk user's, if any) */
    uint64_t anonymous;       /* other anonymous memory: other allocators', the
                               * program's own mappings, libraries' bss */
    uint64_t kernel;          /* [vdso], [vvar] and the like */
    int64_t unaccounted;      /* rss - ebb - other */
} ebb_rss_t;

/* Fill *out (at most `size` bytes; pass sizeof *out).  0, or -1 with errno
 * ENOENT if /proc could not be read (ebb's part is then filled, the rest
 * 0), EINVAL for a NULL out. */
EBB_API int ebb_rss(ebb_rss_t *out, size_t size);

/* ---------------------------------------------------------------- limit
 * A ceiling on `committed`, ebb's estimate of its resident memory.  Growth
 * past the soft level (90% of it unless EBB_LIMIT_SOFT says otherwise)
 * starts a pressure episode: the registered callbacks run
 * (level EBB_PRESSURE_SOFT) once per episode, and everything free is
 * purged.  Growth past the limit is refused: the callbacks run again
 * (EBB_PRESSURE_HARD), everything is purged, the request is tried once
 * more, and then fails with NULL and errno = ENOMEM.  Callbacks run on the
 * allocating thread with no ebb lock held, never recursively on one
 * thread, possibly at the same time on several: they may allocate and
 * free, and should release what they can (a runtime schedules a garbage
 * collection, a cache drops entries). */
enum { EBB_PRESSURE_SOFT = 1, EBB_PRESSURE_HARD = 2 };
typedef void (*ebb_pressure_fn)(void *arg, int level, size_t request, size_t committed,
                                size_t limit);

/* Set the limit in bytes (0: none, the default).  A limit below what is
 * committed now refuses all growth until enough is freed.  Returns 0. */
EBB_API int ebb_set_limit(size_t bytes);
EBB_API size_t ebb_get_limit(void);
/* Register a callback (at most 8); 0, or -1 with errno ENOSPC or EINVAL. */
EBB_API int ebb_on_pressure(ebb_pressure_fn fn, void *arg);
/* Unregister the pair registered with ebb_on_pressure; 0, or -1 if unknown. */
EBB_API int ebb_on_pressure_remove(ebb_pressure_fn fn, void *arg);

/* Where the limit comes from, and what EBB_LIMIT=auto found.  The effective
 * limit is the smallest bound the system puts on the process: the cgroup v2
 * memory.max or cgroup v1 memory limit of its cgroup and every ancestor,
 * RLIMIT_AS, RLIMIT_DATA, or physical memory plus swap.  An auto limit is
 * that bound minus `headroom`, the memory ebb does not manage (measured: the
 * process's resident memory, or for an rlimit its address space, that is
 * not ebb's, plus a margin for what is loaded later), times percent / 100. */
enum {
    EBB_LIMIT_FROM_NONE = 0,     /* no limit */
    EBB_LIMIT_FROM_ENV = 1,      /* EBB_LIMIT=SIZE (or ebb run --limit SIZE) */
    EBB_LIMIT_FROM_API = 2,      /* ebb_set_limit() */
    EBB_LIMIT_FROM_CGROUP2 = 3,  /* auto: a cgroup v2 memory.max */
    EBB_LIMIT_FROM_CGROUP1 = 4,  /* auto: a cgroup v1 memory limit */
    EBB_LIMIT_FROM_RLIMIT_AS = 5,
    EBB_LIMIT_FROM_RLIMIT_DATA = 6,
    EBB_LIMIT_FROM_MEMORY = 7    /* auto: physical memory plus swap */
};
typedef struct ebb_limit_info_s {
    size_t limit;           /* bytes ebb may commit; 0: no limit */
    size_t soft;            /* growth past this starts a pressure episode */
    size_t reserve;         /* the emergency reserve: requests are refused at
                             * limit - reserve, and after a refusal the reserve
                             * serves what handles it, up to the limit */
    unsigned soft_percent;  /* soft as a percentage of limit (EBB_LIMIT_SOFT) */
    unsigned percent;       /* auto: the share of the effective limit taken
                             * (EBB_LIMIT=N%; 100 for auto); else 0 */
    int from;               /* EBB_LIMIT_FROM_* */
    size_t effective;       /* auto: the bound found, before the headroom */
    size_t headroom;        /* auto: taken off it for memory ebb does not manage */
    /* In words, for people: "EBB_LIMIT", "ebb_set_limit", "none", "RLIMIT_AS",
     * "RLIMIT_DATA", "physical memory + swap", or the file that set the
     * limit: "cgroup v2 /sys/fs/cgroup/app/memory.max", "cgroup v1
     * /sys/fs/cgroup/memory/app/memory.limit_in_bytes" (or ".../memory.stat
     * hierarchical_memory_limit", when the binding one is above what the
     * process can see). */
    char source[512];
    /* Listening to the kernel (EBB_LIMIT_PSI, while a limit is set): the
     * file watched for memory pressure, "" if none ("/proc/pressure/memory",
     * or a cgroup v2 ".../memory.pressure", whose memory.events is watched
     * too), and the pressure events the kernel delivered so far.  Each gives
     * free memory back at once and runs the callbacks (EBB_PRESSURE_SOFT)
     * at the next allocation, unless an episode of ebb's own is open. */
    size_t pressure_events;
    char pressure_source[256];
} ebb_limit_info_t;
/* The limit in force and where it comes from.  Returns 0. */
EBB_API int ebb_limit_info(ebb_limit_info_t *out);
/* The auto limit as it would be derived now (EBB_LIMIT=auto), without
 * setting it: reads /proc and the cgroup files, so call it off hot paths.
 * 0, or -1 with errno ENOENT if the system states no bound. */
EBB_API int ebb_limit_auto(ebb_limit_info_t *out);
/* Derive it now and set percent% of it (1 to 100) as the limit; 0, or -1
 * with errno EINVAL (percent) or ENOENT (no bound; the limit is unchanged). */
EBB_API int ebb_set_limit_auto(unsigned percent);
/* Set the soft level to percent% of the limit (1 to 100; 100: no soft
 * level, the callbacks run only on refusal).  0, or -1 with errno EINVAL. */
EBB_API int ebb_set_limit_soft(unsigned percent);

/* Why this thread's last failed allocation failed. */
enum { EBB_FAIL_NONE = 0, EBB_FAIL_LIMIT = 1, EBB_FAIL_NO_MEMORY = 2 };
typedef struct ebb_failure_s {
    int reason;             /* EBB_FAIL_*: the limit, or the OS / size */
    size_t request;         /* bytes asked for */
    size_t committed;       /* ebb's committed bytes when it failed */
    size_t limit;           /* the limit then, 0 if none */
} ebb_failure_t;
/* Copy the calling thread's last failure to *out (if not NULL), forget it
 * if `clear`, and return its reason (EBB_FAIL_NONE if none is recorded). */
EBB_API int ebb_last_failure(ebb_failure_t *out, int clear);

/* --------------------------------------------------------------- report
 * What ebb holds and why: the limit and its source, why the calling
 * thread's last allocation failed, committed, live and purged bytes, the
 * categories of everything mapped (they add up), each size class in use,
 * and the largest free range of the address space.  EBB_REPORT_TEXT is for
 * people; EBB_REPORT_JSON is one object with "schema": "ebb.report/1";
 * EBB_REPORT_HTML a self-contained page (the viewer around the JSON).
 * Written to fd without allocating (safe when memory has run out); returns
 * 0, or -1 with errno (EINVAL for a bad fd or format, else the write's).
 * ebb also writes one by itself: on the first allocation that fails for
 * want of memory, and on the signal EBB_REPORT_SIGNAL, to EBB_REPORT
 * (default stderr) in EBB_REPORT_FORMAT. */
enum { EBB_REPORT_TEXT = 0, EBB_REPORT_JSON = 1, EBB_REPORT_HTML = 2 };
EBB_API int ebb_report(int fd, int format);
/* ------------------------------------------------------------- sampling
 * A sampling heap profiler: about one allocation per `rate` bytes allocated
 * (EBB_SAMPLE_RATE, 512 KiB by default; 0 turns it off) is sampled, with the
 * native backtrace of the allocating call and, if a runtime registered one,
 * its own stack as text.  Sampled allocations are grouped by site (the
 * backtrace and the text) into estimates of the bytes and blocks each site
 * has live now and has allocated in all: each sampled block of s bytes
 * stands for s / (1 - exp(-s / rate)) bytes, which makes the estimates
 * unbiased; their relative error is about 1 / sqrt(samples). */
#define EBB_SITE_DEPTH 32   /* native frames kept per site */
#define EBB_SITE_TEXT 512   /* bytes of stack-hook text kept per site, NUL included */

typedef struct ebb_site_s {
    uint64_t live_bytes;    /* estimated bytes allocated here and not yet freed */
    uint64_t live_count;    /* estimated blocks allocated here and not yet freed */
    uint64_t total_bytes;   /* estimated bytes allocated here since sampling began */
    uint64_t total_count;   /* estimated blocks allocated here since sampling began */
    uint64_t samples;       /* sampled blocks of this site still live */
    int depth;              /* entries used in pcs */
    void *pcs[EBB_SITE_DEPTH]; /* return addresses, the allocating call first */
    char stack[EBB_SITE_TEXT]; /* the stack hook's text, NUL-terminated; "" if none */
} ebb_site_t;

/* Mean bytes between samples (0: sampling off). */
EBB_API size_t ebb_sample_rate(void);
/* Change it (0 turns sampling off; sites already recorded stay).  The
 * calling thread uses it at once, others from their next allocation that
 * misses their cache (within a few dozen).  Returns 0. */
EBB_API int ebb_set_sample_rate(size_t bytes);
/* Copy the n sites with the most estimated live bytes, most first, to
 * out[0..n); returns the number of sites recorded (may exceed n; NULL out
 * with n = 0 asks for it).  Never allocates. */
EBB_API size_t ebb_sample_sites(ebb_site_t *out, size_t n);

/* The peak: the highest committed memory the sampler saw, and the sites
 * that held the most live bytes at that moment (with their live estimates
 * then, not now), even if all of it was freed since.  A snapshot is taken
 * when committed passes the last one's by a sixteenth (at least 1 MiB), so
 * it is at most that far below the true peak. */
typedef struct ebb_peak_s {
    uint64_t committed;     /* committed memory at the snapshot, bytes */
    uint64_t sampled_live;  /* estimated live bytes of every site then */
    int64_t time;           /* when, seconds since the epoch */
    unsigned snapshots;     /* snapshots taken; 0: none yet (no sample) */
} ebb_peak_t;
/* Fill *info (when not NULL) and copy up to n of the peak's sites, most
 * live bytes first, to out; returns the number of sites the snapshot has
 * (at most 64).  Never allocates. */
EBB_API size_t ebb_peak_sites(ebb_peak_t *info, ebb_site_t *out, size_t n);

/* Write ebb's heap as text to fd: a row per arena (4 MiB), a character per
 * 64 KiB slot: its header, a pool and how full it is (# full, 1-9 tenths,
 * o empty, _ empty and given back) or a free slot (',' resident, ' ' not),
 * with a legend.  0, or -1 if the copy it is drawn from could not be
 * mapped (a line says so).  Never allocates with malloc. */
EBB_API int ebb_heap_map(int fd);

typedef struct ebb_sample_stats_s {
    size_t rate;            /* mean bytes between samples, 0 off */
    size_t sites;           /* sites recorded */
    uint64_t samples;       /* allocations sampled since start */
    uint64_t live;          /* sampled blocks still live */
    uint64_t dropped;       /* samples not recorded: the site table was full */
} ebb_sample_stats_t;
EBB_API void ebb_sample_stats(ebb_sample_stats_t *out);

/* A runtime's stack for a sample: write a short text (e.g. one
 * "file.py:12 function" line per frame, innermost first) of at most `size`
 * bytes to buf and return its length.  Called on the allocating thread for
 * each sample, holding no ebb lock; allocations it makes are not sampled. */
typedef size_t (*ebb_stack_hook_fn)(char *buf, size_t size, void *arg);
/* Register the hook (NULL removes it).  A hook being replaced may still be
 * running on another thread when this returns.  Returns 0. */
EBB_API int ebb_set_stack_hook(ebb_stack_hook_fn fn, void *arg);

/* Print the statistics, one size class per line, to stderr. */
EBB_API void ebb_stats_print(void);

EBB_API const char *ebb_version(void);

/* What a detected misuse does (EBB_ON_ERROR; ebb_on_error changes it while
 * the program runs).  Every misuse is counted and, but under IGNORE, named
 * in one line on stderr: the function, the pointer and the fault.
 *   EBB_ON_ERROR_DEFAULT  a double free, a free or realloc of a freed block
 *                         or of a pointer no block of ebb's starts at, or a
 *                         corrupted block aborts (as glibc does);
 *                         malloc_usable_size of such a pointer is reported
 *                         and answers 0
 *   EBB_ON_ERROR_WARN     every misuse is reported and the bad call ignored
 *   EBB_ON_ERROR_ABORT    every misuse aborts
 *   EBB_ON_ERROR_IGNORE   every misuse is only counted; the bad call ignored
 * An ignored double free never frees the block a second time: it is never
 * handed out twice. */
enum {
    EBB_ON_ERROR_WARN = 0,
    EBB_ON_ERROR_ABORT = 1,
    EBB_ON_ERROR_IGNORE = 2,
    EBB_ON_ERROR_DEFAULT = 3
};

/* Set what a detected misuse does from now on, process-wide: one of the
 * EBB_ON_ERROR_* values.  Returns the setting it replaces, or -1 with errno
 * EINVAL (nothing changed) for any other value. */
EBB_API int ebb_on_error(int action);

/* The value in force of a numeric EBB_* option ("EBB_SAMPLE_RATE",
 * "EBB_PURGE_DELAY_MS", ...: `ebb options` lists them), as read at start-up
 * (what ebb_set_* changed later is not reflected): 0 and *value set, or -1
 * with errno ENOENT for an unknown name or an option whose value is text
 * (EBB_REPORT, EBB_BLACKBOX).  Flags are 0 or 1, choices their position in
 * the list of values (EBB_ON_ERROR: warn 0, abort 1, ignore 2; unset, the
 * default, 3). */
EBB_API int ebb_get_option(const char *name, long long *value);

/* 1 if ebb's constructor made ebb the allocator of all three CPython
 * domains before the interpreter started (`ebb run`, which sets
 * EBB_PYTHON=1), else 0. */
EBB_API int ebb_python_domains(void);

#ifdef __cplusplus
}
#endif
#endif /* EBB_H */
