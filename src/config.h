/*
 * config.h -- every tunable constant of ebb, in one marked place.
 *
 * Each constant says why it has its value.  The compile-time checks at the end
 * state the invariants between them; change a number and the build tells you
 * what else must move.
 */
#ifndef EBB_CONFIG_H
#define EBB_CONFIG_H

#include <stdint.h>

/* ---------------------------------------------------------------- tunables */

/* Arena: one size-aligned region of address space, found from any pointer
 * inside it by masking.  4 MiB keeps the ownership map small (one byte per
 * arena: 32 MiB of untouched, never-resident address space for a 47-bit user
 * space, 1 KiB on 32-bit) and gives 63 slots of 64 KiB for pools. */
#define EBB_ARENA_SHIFT 22

/* Slot: the unit in which an arena is handed to pools.  64 KiB holds 4096
 * blocks of 16 bytes, so one pool's free bitmap is at most 512 bytes, and is
 * 16 OS pages, the granularity at which a partly used pool is purged. */
#define EBB_SLOT_SHIFT 16

/* Largest span of a pool, in slots.  The 128 KiB class needs 8 slots to hold
 * 4 blocks (see sizeclass.c for the rule that picks each class's span). */
#define EBB_MAX_POOL_SPAN 8

/* Largest size served from pools; above it a block gets its own mapping.
 * Measured here (bench/threshold, 2-core VM): a fresh mapping, touched and
 * unmapped, costs 12 us at 16 KiB, 91 us at 128 KiB, 612 us at 1 MiB (page
 * faults, about 6 us each); a reused pool block of 128 KiB costs 3.4 us, 27x
 * less, so everything up to 128 KiB stays in pools.  Above it blocks are
 * rare, page-rounding wastes under 3%, at most 65530 mappings
 * (vm.max_map_count) still hold 8 GiB, and keeping them out of arenas keeps
 * small survivors from splitting the address space they need; the cache of
 * freed mappings (large.c) brings their reuse cost down 3x to 8x. */
#define EBB_LARGE_THRESHOLD ((size_t)128 << 10)

/* Number of size classes: 32 classes of 16-byte steps up to 512 bytes
 * (CPython's small objects), then 4 per doubling up to 128 KiB (8 doublings,
 * at most 25% and on average about 10% internal waste, like jemalloc). */
#define EBB_SMALL_STEP 16
#define EBB_SMALL_STEP_MAX 512
#define EBB_CLASSES 64

/* Thread cache.  Classes up to this size are cached per thread; bigger ones
 * are rare and expensive to keep (each cached block pins its pages). */
#define EBB_TCACHE_MAX_SIZE ((size_t)32 << 10)
/* Most blocks one class may hold in a thread cache, and the byte budget per
 * class that lowers it for bigger blocks: a thread that goes idle pins at
 * most about EBB_CLASSES * 32 KiB until the purger takes its blocks
 * (EBB_TCACHE_IDLE_MS), and a refill or flush moves half a cache under one
 * lock, so 64 blocks of a busy class cost one lock round trip. */
#define EBB_TCACHE_MAX_COUNT 128
#define EBB_TCACHE_MIN_COUNT 4
#define EBB_TCACHE_CLASS_BYTES ((size_t)32 << 10)
/* A stack that overflows more than this many times with no refill between
 * is in a free-only run (a teardown, or a thread that frees what others
 * made): each overflow then sends the whole stack home, and the stack
 * holds half its capacity until its next refill.  The blocks a cache holds
 * when the run ends each pin a page, and a thread that goes idle then keeps
 * them until the purger takes them (EBB_TCACHE_IDLE_MS after the next
 * poke, up to a delay later): what it keeps fell from between half and all of its
 * capacity (about 96 blocks a class) to under half (about 32), at the same
 * 64 blocks a trip home.  bench/rss scenario 3b (C, an idle builder, 0.1%
 * survive): 1.25x -> 1.13x the floor; scenario 3 (nothing survives): 14.2
 * -> 8.4 MiB.  Instructions (callgrind, bench/run.py --cg-scale 0.05,
 * purging off): churn, buildfree, prodcons, larson within 0.15%. */
#define EBB_FREE_ONLY_OVERFLOWS 2
/* A thread that leaves a poke unanswered this long has its cached blocks
 * taken by the purger, all but the top EBB_TCACHE_KEPT_BLOCKS of each stack
 * (core/thread.c, "Idle threads"): the one call that may be under way on
 * the stacks touches only that entry or the one above.  Any thread that is
 * running answers a poke at its next call, within microseconds in a program
 * that allocates; one that was only descheduled loses nothing, since its
 * answer would have sent the same blocks home.  So the wait is short next
 * to the purge delay, and long next to the time a store takes to reach
 * another core. */
#define EBB_TCACHE_IDLE_MS 10
#define EBB_TCACHE_KEPT_BLOCKS 1

/* Number of fullness buckets a heap keeps per class.  Allocation takes the
 * fullest bucket first, so nearly empty pools drain and can be released. */
#define EBB_POOL_BUCKETS 8

/* Hints a bin keeps into its purge list, one per key (ms) modulo this.  A
 * pool the purge pass meets before it is due goes back in at the time of
 * its last free, behind every pool stamped since, and in a teardown that is
 * deep in the list: bench buildfree (1 GiB freed in random order) walked
 * 24M pools over 820K inserts, 11% of the purger's samples and 3% of the
 * freeing thread's under perf.  With a hint per key, 76% of inserts land
 * next to a pool with their key, 1% walk (2.6M steps in all), and the run
 * takes 7% less CPU (4.25 -> 3.96 s, median of 9).  16 covers the keys of
 * a surplus pass's rechecks (EBB_SURPLUS_RECHECK_MS ahead) with room; 12 on
 * 32-bit, where 16 would take a bin from 128 to 192 bytes, not a power of
 * two (types.h). */
#if UINTPTR_MAX > 0xffffffffu
#define EBB_PURGE_HINTS 16
#else
#define EBB_PURGE_HINTS 12
#endif

/* Most shared heaps.  Threads are spread over min(cpus, this) heaps (option
 * EBB_HEAPS), so thousands of threads do not multiply the footprint. */
#define EBB_MAX_HEAPS 64

/* Arena placement (arena.c): arenas are mapped at the lowest free arena-
 * aligned addresses from this far above the program break, so they cluster
 * at the bottom of the big gap that the kernel's top-down mmap fills with
 * large blocks from above, and small survivors never split that gap.  The
 * distance leaves the brk heap room to grow for code that still uses it (ebb
 * itself never does): plenty on 64-bit, where address space is free.  On
 * 32-bit it is taken straight off the largest block a program can get (bench/
 * rss scenario 8 without address randomisation: 1793 MiB with 8 MiB, 1797
 * with none), so there is none: a 32-bit program that calls sbrk itself
 * finds an arena right above its break (the rounding up to 4 MiB is all its
 * room); with ebb as its malloc, nothing else in the process uses brk. */
#if UINTPTR_MAX > 0xffffffffu
#define EBB_ARENA_BRK_GAP ((uintptr_t)1 << 30)
#else
#define EBB_ARENA_BRK_GAP ((uintptr_t)0)
#endif
/* On 32-bit, arenas first fill the stretch between the program's image and
 * its break: the kernel starts the break a random 0 to 32 MiB above the
 * image, and that room is otherwise lost to every large block (the brk heap
 * grows upward from the break and never uses it; glibc's heap sits above
 * it).  Off on 64-bit, where address space is not what runs out. */
#if UINTPTR_MAX > 0xffffffffu
#define EBB_ARENA_BELOW_BRK 0
#else
#define EBB_ARENA_BELOW_BRK 1
#endif
/* Free candidate addresses an arena tries (each a failed mmap when taken by
 * another mapping) before the kernel chooses: enough to step over a few
 * foreign mappings, few enough that a full address space costs little. */
#define EBB_ARENA_PLACE_TRIES 8
/* On 32-bit, when those are taken (large blocks have filled the gap down to
 * the arenas), an arena goes to the lowest free place of the whole address
 * space (found in /proc/self/maps), not where the kernel's top-down mmap
 * would put it: in the highest hole, which is one a freed large block left
 * in the middle of the gap.  There it stayed, pinned by a survivor, once the
 * large blocks were gone, and cut the largest block a 32-bit program could
 * get from 2047 MiB to 1381-1744 MiB (tests/api/test_gap.c, about 1 run in
 * 60 under load, when the purger's timing changed how many arenas the run
 * needed after the gap was full).  The lowest place is at the bottom of the
 * space, below the program's image, where it splits nothing.  Off on
 * 64-bit, where address space is not what runs out. */
#if UINTPTR_MAX > 0xffffffffu
#define EBB_ARENA_FROM_BOTTOM 0
#else
#define EBB_ARENA_FROM_BOTTOM 1
#endif
/* On 32-bit, large blocks too go to the lowest free place that fits
 * (/proc/self/maps, read at each mapping; large.c), not where the kernel's
 * top-down mmap puts them: in the highest hole, so that the holes freed
 * blocks leave among the live ones push the live set down into the gap
 * above the break, the one a big request needs.  bench/rss scenario 8
 * (100 rounds, 32 buffers of 1-64 MiB live, about 480 MiB), largest block
 * in 6 runs: 1714-1794 MiB top-down, 2047 (all one object may have) every
 * time bottom-up; glibc 1804-1836.  Its cost, a read of the maps per
 * mapping, did not show in the run's time (7.1-7.8 s either way) nor in a
 * 32-bit bench/run.py largeblk (4.2-4.9 s either way).  Off on 64-bit,
 * where address space is not what runs out. */
#define EBB_LARGE_FROM_BOTTOM EBB_ARENA_FROM_BOTTOM

/* Empty arenas kept mapped against map/unmap thrash in alloc/free loops. */
#define EBB_SPARE_ARENAS 1

/* The debug heap's quarantine (EBB_DEBUG=1, front/debug.c): a freed block
 * waits behind this many newer frees, or until the blocks waiting hold more
 * than this many bytes, before it is checked and reused.  A write after free
 * is caught if it happens within that window: 1024 blocks cover the frees of
 * a typical request or loop iteration; 16 MiB keeps the cost of a few large
 * blocks bounded. */
#define EBB_DEBUG_QUARANTINE_BLOCKS 1024
#define EBB_DEBUG_QUARANTINE_BYTES ((size_t)16 << 20)

/* Large-block cache: freed mappings kept for reuse, at most this many and at
 * most EBB_LARGE_CACHE_BYTES (option EBB_LARGE_CACHE) in total. */
#define EBB_LARGE_CACHE_SLOTS 16
#if UINTPTR_MAX > 0xffffffffu
#define EBB_LARGE_CACHE_BYTES ((size_t)64 << 20)
#else
/* On 32-bit, address space is scarcer than page faults: cached mappings
 * keep holes occupied while new blocks go lower, and long-lived blocks stay
 * there.  bench/rss scenario 8 (largest block after the rounds): 1432 MiB
 * with 64 MiB, 1533 with 32, 1646 with 16, 1704 with 4, 1740 with none
 * (glibc: 1806 to 1835), so none by default; EBB_LARGE_CACHE sets one. */
#define EBB_LARGE_CACHE_BYTES ((size_t)0)
#endif

/* The cache's budget grows past EBB_LARGE_CACHE to half the bytes of the
 * live large blocks, up to this: a program that cycles many big blocks
 * reuses their pages instead of faulting fresh ones in, while one with few
 * keeps the floor.  Cached mappings still go back after the purge delay.
 * bench/run.py (medians of 5, interleaved): bigblocks (5-25 MiB blocks, 20
 * live) 2.67 s with the fixed 64 MiB, 2.24 s with this rule (glibc 1.42),
 * page faults 1.17M -> 0.90M, peak RSS 452 -> 484 MiB (glibc 488).  A fixed
 * 256 MiB did better still (1.97 s; largeblk 0.48 -> 0.10 s) but holds that
 * much for any program with a few big blocks. */
#define EBB_LARGE_CACHE_GROWN_MAX ((size_t)512 << 20)

/* A large block mapped fresh takes cached mappings that fit in it, moved in
 * by the OS (core/large.c, cache_fill): at most this many, each at least
 * EBB_LARGE_PIECE_MIN.  Each piece stays a kernel mapping of its own inside
 * the block (anonymous mappings with different histories do not merge), so
 * the count bounds what one block adds to the process's mappings.  A move is
 * one system call; below 16 pages it would not save its cost in faults
 * (about 2 us a page here).  Against mapping fresh and unmapping what waits
 * beyond the budget, bench/run.py (one run each, scale 1): largeblk 0.34 ->
 * 0.22 s, 228K -> 114K faults; bigblocks 2.15 -> 1.10 s, 936K -> 282K
 * faults (with grow_by_move); realloc 0.91 -> 0.77 s, 60K -> 8K faults;
 * bench/rss scenario 5 in C, worst peak over ideal 1.04-1.11 -> 1.04. */
#define EBB_LARGE_PIECES 4
#define EBB_LARGE_PIECE_MIN ((size_t)64 << 10)

/* Most address space a growing large block gets beyond its request (25% of
 * its old size up to this), so that step-by-step growth remaps rarely.
 * Untouched, it costs no memory; the cap bounds it on 32-bit. */
#if UINTPTR_MAX > 0xffffffffu
#define EBB_LARGE_REALLOC_HEADROOM ((size_t)16 << 20)
#else
/* 32-bit: scenario 8's grown buffers held 38 MiB of headroom (1/3 of 480
 * MiB of buffers grown, ending up to 25% past their size); a 1 MiB cap gave
 * 1764 MiB as the largest block instead of 1740. */
#define EBB_LARGE_REALLOC_HEADROOM ((size_t)1 << 20)
#endif

/* Purging.  Free memory goes back to the OS (its pages are purged, or
 * whole arenas and large mappings unmapped) once it has stayed unused for
 * the purge delay (option EBB_PURGE_DELAY_MS; 0 = at once, -1 = never).
 * Long enough that memory a program keeps reusing is never purged and
 * faulted back (a page fault costs 2 to 6 us here), short enough that RSS
 * follows the program's live size within a fraction of a second.  Measured
 * (purge.c): from 50 ms up, the speed benchmarks take no more page faults
 * than with purging off; 10 ms adds up to 26%; 100 ms doubles the margin. */
#define EBB_PURGE_DELAY_MS 100
/* A pool that keeps receiving frees is purged once they pause for the
 * delay (a teardown in progress is purged once, at its end, not at every
 * delay), but at the latest this many delays after its first free, so a
 * pool that frees trickle into forever is still purged. */
#define EBB_PURGE_MAX_DELAYS 10
/* A partly used pool is purged before its longest wait only if at least
 * this fraction (1/N) of its pages can go: one or two free pages are not
 * worth a system call and a later page fault each (heap.c has the count). */
#define EBB_PURGE_WORTH_FRACTION 4
/* The page inside a pool is the unit of purging. */
#define EBB_PAGE_SHIFT 12
/* The purger gathers what falls due within this window into one pass, so a
 * steady trickle of frees costs a few wake-ups a second, not one each. */
#define EBB_PURGE_SLACK_MS 20
/* Longest sleep of the purger while something waits: it notices within
 * this time that the program's threads are all gone and ends, so it never
 * holds up the end of a process for longer. */
#define EBB_PURGE_MAX_SLEEP_MS 100
/* Surplus.  Free memory beyond what the program took over the last delay
 * (its recent demand, core/demand.c) is surplus: the program is unlikely to
 * reuse it soon, so it is given back once it has been quiet this long
 * instead of the whole delay.  A mass free is then given back while it
 * runs, a few ms behind it (issue 15 asks for 1.3x the floor within 20 ms
 * of its end).  A random-order teardown frees into every pool until its
 * end, so no pool is quiet for long: measured on bench/rss `build -p
 * 0.001` (scale 1, medians of 5), RSS as the free loop ended was 440 MiB
 * with 1 ms and 542 with 10 ms, 100 ms later 77 against 128 (spreads
 * 30-50%).  That a pool is not purged at every free is the worth rule's
 * job (EBB_PURGE_WORTH_FRACTION, EBB_SURPLUS_RECHECK_MS). */
#define EBB_SURPLUS_QUIET_MS 1
/* A partly used pool in surplus whose free pages are not yet worth a purge
 * (EBB_PURGE_WORTH_FRACTION) is looked at again this much later: a
 * teardown in random order frees most pages in its last few percent of
 * frees, and a pool that waited a whole delay then would be purged only
 * after the teardown ended. */
#define EBB_SURPLUS_RECHECK_MS 10
/* The purger's gathering window for surplus (EBB_PURGE_SLACK_MS for the
 * rest): short, or it would add to the time-to-floor above. */
#define EBB_SURPLUS_SLACK_MS 2
/* While surplus goes back, and for EBB_SURPLUS_POKE_WINDOW_MS after a pass
 * last found any, threads are asked for their cached blocks this often
 * instead of once a delay (policy/purge.c): after a teardown the freeing
 * thread's cache holds a block from each of hundreds of pools, and those
 * pools' pages and their arenas' headers waited for the next delay's poke.
 * bench/rss scenario 1 in C (scale 1): 8.4 MiB (3.5x the floor) from 20 to
 * 85 ms after the free loop ended, then 3.0.  The window is a few pokes: a
 * running thread answers the first, an idle one's blocks are taken
 * EBB_TCACHE_IDLE_MS after it, and the purger wakes for no more pokes once
 * it ends (an idle process is not woken, however long the delay). */
#define EBB_SURPLUS_POKE_MS 5
#define EBB_SURPLUS_POKE_WINDOW_MS 20
/* Free arena slots or cached large blocks below the demand plus this much
 * are never surplus: a few pools' worth that waits the whole delay is not
 * worth a wake-up (a bin's margin is one of its pools). */
#define EBB_SURPLUS_MARGIN ((size_t)1 << 20)
/* No growth while freed memory waits (issue 15): before ebb maps a large
 * block its cache could not serve, the cache gives back what it holds
 * beyond this budget, oldest first, as much as the new block, so freed
 * memory waiting for the clock does not add to a peak.  The budget is the
 * larger of this and 1/EBB_WAITING_BUDGET_SHARE of committed.  bench/rss
 * scenario 5 in C (peak of RSS over each 8 rounds against base + the most
 * held at once, 6 windows, 2 runs): cache kept whole 1.023-1.109; budget
 * 8 MiB 1.023-1.109; 2 MiB 1.021-1.043 (one window of 12 at 1.088); no
 * cache at all 1.021-1.036; purge delay 0 1.018-1.030.  bench/run.py
 * largeblk: peak RSS 127 -> 88 MiB, time within its noise. */
#define EBB_WAITING_BUDGET ((size_t)2 << 20)
#define EBB_WAITING_BUDGET_SHARE 50
/* Pools a purge pass handles per hold of a bin lock; their page ranges go
 * back together after the hold, with the lock let go (EBB_PURGE_RANGES).
 * The hold also ends after any pool once a thread sleeps waiting for the
 * lock, so allocating threads wait for at most one pool's walk.
 * bench/rss scenario 2 in C, vector calls a run (strace, with the calls
 * still made under the lock and holds that ran to the end): 10,435 at 8
 * pools a hold, most of them of 2 to 8 ranges; 3,138 at 32. */
#define EBB_PURGE_BATCH 32
/* Page ranges a purge gathers before one system call gives them all back
 * (ebb__purge_batch_t; os/linux.c says why a call per range costs the
 * program).  20,000 ranges of 8 KiB with a writer on the other CPU:
 * 204-237 ms one call each, 16-21 ms 64 a call, 16-18 ms 1024 a call.
 * 64 gets nearly all of it for 1 KiB of the purging thread's stack. */
#define EBB_PURGE_RANGES 64
/* Blocks out at most in a sparse pool: one whose free bitmap gave its words
 * back, keeping the indices of its blocks out in its descriptor instead
 * (pool.c, "Sparse pools").  A teardown that leaves 0.1% of the blocks
 * scattered leaves a few in each pool (bench/rss scenario 2 in C: 12,644
 * survivors in about 7,400 pools, 1.7 a pool; 4 on average in a pool of
 * 4096 16-byte blocks), and their bitmaps kept about 2 header pages resident
 * in each of 290 arenas: 4 MiB over a floor of 49.  9 indices fill the
 * hot part of the descriptor to 48 bytes, so that the 64 descriptors and
 * the header's fields fit its first page (types.h; with 10, the scan hint
 * had to go to the cold part, and bench/run.py buildfree ran 0.4% more
 * instructions for it). */
#define EBB_SPARSE_BLOCKS 9

/* Memory limit (limit.c).  Growth past this percentage of the limit starts
 * a pressure episode (callbacks, then a purge of everything), early enough
 * that a garbage collector the callbacks ask for has room to run before the
 * hard limit refuses anything: 10% of a limit is more than a CPython
 * collection allocates.  The default of option EBB_LIMIT_SOFT. */
#define EBB_LIMIT_SOFT_PERCENT 90
/* EBB_LIMIT=auto takes off the effective limit (the smallest of the cgroup
 * limits, the rlimits, memory plus swap) what ebb does not manage: measured,
 * the process's resident memory that is not ebb's when the limit is derived,
 * and on top of it this margin for what comes after.  The limit is derived
 * at ebb's first allocation, before a runtime has touched most of its code:
 * a C program is at 1.7 MiB of RSS then, but CPython 3.11 under `ebb run`
 * holds 8.3 MiB that is not ebb's once the interpreter is up and 14 MiB
 * after importing json, decimal, ssl, sqlite3, asyncio, email, http.client,
 * xml, unittest and multiprocessing (RSS minus committed, measured here);
 * 16 threads added nothing measurable.  So 16 MiB fixed, for code and
 * libraries touched later. */
#define EBB_LIMIT_AUTO_MARGIN ((size_t)16 << 20)
/* And a share of the bound (1/2^N) for what grows with ebb's own memory but
 * is not counted in committed: the page tables (8 bytes per 4 KiB page,
 * 1/512) and the kernel memory a cgroup charges to the process (slab, socket
 * buffers); 1/64 is 8 times the page tables. */
#define EBB_LIMIT_AUTO_MARGIN_SHIFT 6
/* However much is measured, an auto limit keeps at least 1/N of the bound
 * for ebb: in a container smaller than the margin, a limit that leaves room
 * for the pressure callbacks beats none at all. */
#define EBB_LIMIT_AUTO_MIN_SHARE 2
/* The emergency reserve (limit.c): the top of the limit held back until a
 * request is refused, for what handles the refusal.  4 MiB is eight of the
 * largest pools a new small request can need (512 KiB each, charged whole),
 * and well above what CPython needs to raise and print a MemoryError with
 * its traceback.  A small limit gives at most 1/32 of itself, so requests
 * are refused above 96.9% of it, well past the default soft level (90%),
 * and the soft callbacks get their turn first. */
#define EBB_LIMIT_RESERVE ((size_t)4 << 20)
#define EBB_LIMIT_RESERVE_SHARE 32
/* Listening to the kernel (pressure.c, EBB_LIMIT_PSI).  The PSI trigger:
 * "some" stall (at least one task of the cgroup, or of the system, waiting
 * for memory: direct reclaim, refaults of evicted pages, swap-in) of
 * EBB_PSI_STALL_US within EBB_PSI_WINDOW_US.  The window is 2 s because an
 * unprivileged process (Linux 6.5 and later) may only use windows that are
 * a multiple of 2 s, and one value for root and everyone keeps the
 * behaviour the same; the kernel's own averages are refreshed every 2 s.
 * 15% of the window stalled is past the brief reclaim a busy machine shows
 * now and then (a few percent) and well before thrashing, where tasks wait
 * most of the time; it is the point where giving back free memory, which
 * costs page faults only if it is used again, is cheap relief for the
 * others.  (The kernel allows windows of 10 s at most.) */
#define EBB_PSI_STALL_US 300000
#define EBB_PSI_WINDOW_US 2000000
/* After acting on an event the watcher waits this long before it listens
 * again, so that a burst is one event: memory.events can change a hundred
 * times a second while a cgroup is held at memory.high, and a PSI trigger
 * fires at most once per window anyway.  One window. */
#define EBB_PRESSURE_QUIET_MS 2000
/* The watcher wakes at least this often to see whether it is the process's
 * last thread (main left with pthread_exit and the others ended): it then
 * ends, and the process with it, at most this late.  Each wake-up is a
 * poll timeout and a read of /proc/self/stat, about 10 us a second, paid
 * only while a limit is set and the kernel offers PSI. */
#define EBB_PRESSURE_ALIVE_MS 1000
/* Pressure callbacks the process may register (a runtime, its extensions). */
#define EBB_PRESSURE_CALLBACKS 8

/* Size classes a text report lists, the biggest first (report.c); the rest
 * are summed in one line, so the report stays about one screen long.  The
 * JSON report lists every class in use. */
#define EBB_REPORT_CLASSES 8

/* The black box (blackbox.c) is refreshed at most this often.  A refresh
 * takes every bin lock once for the statistics and names the top sites'
 * frames (measured here, two heaps: 10.6 us without sites, 16.6 us with
 * three), so at this interval a program that allocates all the time pays
 * about 0.2%; and a process killed while growing fast leaves a state at
 * most this old (or a sixteenth of its size smaller). */
#define EBB_BLACKBOX_INTERVAL_MS 10
/* The memory timeline (insight/timeline.c): points of (time, live,
 * committed, RSS, limit, purged) for a plot of the whole run.  Points are
 * taken by the purger thread when it wakes anyway, at most one per
 * EBB_TIMELINE_INTERVAL_MS (100 ms: a run of a few seconds still gets tens
 * of points, and a point costs ~25 us -- ebb_stats and a read of
 * /proc/self/statm -- so at most 0.03% of a core), and whenever committed
 * has moved by 1/2^EBB_TIMELINE_STEP_SHIFT (a sixteenth, as the black box's
 * rule) and at least EBB_TIMELINE_STEP_MIN since the last point: a climb
 * from 1 MiB to 1 GiB is ~115 points, each a purger start or wake at
 * most, so the shape of a fast climb is kept without any clock.  The ring
 * keeps EBB_TIMELINE_POINTS; when full, neighbours are merged pairwise
 * (the larger of each figure, so peaks survive) and each point from then
 * on stands for twice as many samples: the whole run at an even
 * resolution, in 24 KiB. */
#define EBB_TIMELINE_POINTS 512
#define EBB_TIMELINE_INTERVAL_MS 100
#define EBB_TIMELINE_STEP_SHIFT 4
#define EBB_TIMELINE_STEP_MIN ((size_t)1 << 20)
/* The timeline's points, the status page and the black box's brief (taken
 * at every new peak, on the program's own threads) read RSS at most this
 * often and reuse the reading in between: each read opens a descriptor for
 * a moment, which the program's other threads can see (insight/timeline.c
 * says why that matters).  Under `ebb run`, CPython's
 * test_multiprocessing_fork opened /proc/self/statm 7,900 times at c7740b1
 * and 11,600 with surplus's frequent purger wakes, and its
 * test_large_fd_transfer, which dup2s onto the numbers it finds free,
 * failed 1 run in 6 beside a second run (and once in the peer suite); with
 * this, 191 times and 0 failures in 6. */
#define EBB_RSS_READ_INTERVAL_MS 1000
/* The status page (insight/status.c) that `ebb top` reads: refreshed by the
 * purger at most this often (besides with every timeline point), four
 * times per `ebb top` refresh; a refresh is ~100 us (statistics, the top
 * sites named with dladdr), so 0.04% of a core. */
#define EBB_STATUS_INTERVAL_MS 250
/* Sites the page names (as the text report), and the bytes of text each
 * gets: three lines of a Python stack or native frames. */
#define EBB_STATUS_SITES 10
/* Points of the timeline a JSON report carries (merged as the ring merges
 * them): enough for a plot, small enough for the report's stack snapshot
 * (48 bytes a point, 6 KiB). */
#define EBB_REPORT_TIMELINE_POINTS 128

/* The crash note (crash.c, EBB_CRASH_NOTE).  Its SIGSEGV and SIGBUS
 * handler runs on an alternate stack of this many bytes: the note itself
 * needs about 2 KiB (its line is built on the stack), but a handler of the
 * program's that it hands the signal on to runs there too and may unwind
 * or print (glibc's backtrace_symbols_fd, Python's faulthandler); glibc's
 * own SIGSTKSZ is 8 KiB and grows with the CPU's register state.  Pages
 * are touched only by a signal, so the size costs address space alone. */
#define EBB_CRASH_STACK ((size_t)64 << 10)
/* The refused allocation's site, as text named at refusal time (the handler
 * may not ask the loader for names): a few Python lines and native frames
 * of up to a hundred bytes or so each (a path and a symbol). */
#define EBB_CRASH_SITE_TEXT 1024
/* Frames of each stack (the runtime's, native) the note names: the
 * innermost few say where; the line stays one line. */
#define EBB_CRASH_FRAMES 3
/* A fault below this address, or below the refused size, is "near NULL":
 * an offset into the block the program thought it had.  The kernel maps
 * nothing below vm.mmap_min_addr, 64 KiB by default, so an access there
 * is a NULL (or a small integer) used as a pointer. */
#define EBB_CRASH_NULL_SPAN ((uintptr_t)64 << 10)
/* Sampling heap profiler (sample.c).  On average one sample per this many
 * bytes allocated (option EBB_SAMPLE_RATE; 0 off), the figure and
 * close to tcmalloc's heap profiler (512 KiB).  Each sample costs a native
 * backtrace and a page from the large-block allocator for as long as the
 * block lives, so the rate bounds both: about 1 sample per 512 KiB live,
 * 0.8% of a heap of small blocks (sample.c has the measured time). */
#define EBB_SAMPLE_RATE_DEFAULT ((size_t)512 << 10)
/* Allocation sites told apart.  A site is a backtrace plus the stack hook's
 * text; a program's allocation sites with anything live number in the
 * hundreds, a big interpreter's in the low thousands.  Sites (824 bytes
 * each) are mapped 64 at a time (52 KiB) as they are first seen, so what
 * the profiler costs follows what it holds (ebb's committed bytes count
 * it, and a limit sees it).  Past this, samples are dropped and counted. */
#define EBB_SAMPLE_SITES 4096
#define EBB_SAMPLE_CHUNK_SITES 64
/* One record per live sampled block (its site and weight, 24 bytes),
 * mapped a chunk at a time: 1024 records (24 KiB) a chunk, up to 1024
 * chunks, which covers a live heap of about 512 GiB at the default rate. */
#define EBB_SAMPLE_CHUNK_RECORDS 1024
#define EBB_SAMPLE_CHUNKS 1024
/* The unwinder's cache of frame rules (os/linux_unwind.c): one 64-bit word
 * per return address, direct mapped by its low 12 bits (the rest of the
 * address is the word's tag, so this count is fixed at 2^12).  32 KiB of
 * zeroed memory, resident only where used.  Not tuned: a collision costs
 * a re-parse, and no workload here was seen to need more. */
#define EBB_UNWIND_CACHE_SLOTS 4096

/* The Python stack a sample carries (front/pyframes.c): the innermost
 * frames kept, the characters kept of a file name (its end, after "...")
 * and of a function's name: as the extension's hook had them, so reports
 * read the same.  Frames go into the site's text (EBB_SITE_TEXT, 512
 * bytes) whole, while they fit: six of typical length do (about 40 bytes
 * each), six of the longest names would not.  The walk visits at most
 * EBB_PY_WALK_STEPS frames, kept or skipped (frames being set up, C-stack
 * entry frames): bounded even if a chain it read were circular. */
#define EBB_PY_STACK_FRAMES 6
#define EBB_PY_FILE_CHARS 48
#define EBB_PY_NAME_CHARS 64
#define EBB_PY_WALK_STEPS 64

/* Allocation sites a report lists (report.c), and the black box's brief
 * one; native frames shown per site (half as many when the runtime's own
 * stack is there too).  A site is ~820 bytes of the report's stack. */
#define EBB_REPORT_SITES 10
#define EBB_REPORT_SITES_BRIEF 3
#define EBB_REPORT_FRAMES 8
/* A site in the text report is one line: its innermost frames (Python's
 * when it has them), this many, in a line of at most this many bytes;
 * with EBB_REPORT_NATIVE=1 it gets EBB_REPORT_FRAMES lines instead.  Ten
 * sites, the peak's five and eight classes keep the report within about
 * 45 lines, one screen. */
#define EBB_REPORT_LINE_FRAMES 3
#define EBB_REPORT_LINE_BYTES 256
#define EBB_REPORT_PEAK_SITES 5
/* Rows of the address-space grid in a full JSON report (as `ebb map`):
 * 40 rows of 64 cells draw a 32-bit space whole at 2 MiB a cell. */
#define EBB_REPORT_MAP_ROWS 40

/* The peak snapshot (peak.c): the sites it keeps (numbers and weights, 32
 * bytes each), enough for a report's list and a flame graph's widest
 * branches; and the least growth of committed memory past the last
 * snapshot that takes a new one (else a sixteenth of it): a small program
 * still gets a snapshot near its peak, and a big one takes a few dozen. */
#define EBB_PEAK_SITES 64
#define EBB_PEAK_MARGIN_MIN ((size_t)1 << 20)

/* Alignment every block gets without asking (max_align_t on x86-64). */
#define EBB_MIN_ALIGN 16

/* Debug level: 0 none, 1 cheap internal asserts, 2 expensive walks. */
#ifndef EBB_DEBUG
#define EBB_DEBUG 0
#endif

/* -------------------------------------------------------------- derived */

#define EBB_ARENA_SIZE ((uintptr_t)1 << EBB_ARENA_SHIFT)
#define EBB_SLOT_SIZE ((uintptr_t)1 << EBB_SLOT_SHIFT)
#define EBB_SLOTS (1u << (EBB_ARENA_SHIFT - EBB_SLOT_SHIFT))
#define EBB_POOL_MAX_BLOCKS (EBB_SLOT_SIZE / EBB_SMALL_STEP)
#define EBB_BITMAP_WORDS (EBB_POOL_MAX_BLOCKS / 64)
#define EBB_PAGE ((uintptr_t)1 << EBB_PAGE_SHIFT)
#define EBB_SLOT_PAGES (1u << (EBB_SLOT_SHIFT - EBB_PAGE_SHIFT))

/* ------------------------------------------------------ invariants */

_Static_assert(EBB_SLOTS == 64, "an arena's free-slot set is one 64-bit word");
_Static_assert(EBB_SLOT_SHIFT >= 12, "a slot must hold whole 4 KiB pages");
_Static_assert(EBB_DEBUG_QUARANTINE_BLOCKS >= 1 && EBB_DEBUG_QUARANTINE_BYTES >= EBB_LARGE_THRESHOLD,
               "the quarantine holds at least one block of every class");
_Static_assert(EBB_POOL_MAX_BLOCKS % 64 == 0, "bitmaps are whole words");
_Static_assert(EBB_LARGE_THRESHOLD * 4 <= EBB_MAX_POOL_SPAN * EBB_SLOT_SIZE,
               "the largest class must fit 4 blocks in the largest span");
_Static_assert(EBB_SMALL_STEP_MAX / EBB_SMALL_STEP == 32,
               "32 step classes, then 4 per doubling");
_Static_assert(32 + 4 * 8 == EBB_CLASSES && (EBB_SMALL_STEP_MAX << 8) ==
               EBB_LARGE_THRESHOLD, "8 doublings from 512 B to 128 KiB");
_Static_assert(EBB_TCACHE_MIN_COUNT * 2 <= EBB_TCACHE_MAX_COUNT, "cache range");
_Static_assert(EBB_FREE_ONLY_OVERFLOWS >= 1, "one overflow is not a run: a refill may follow");
_Static_assert(EBB_TCACHE_KEPT_BLOCKS >= 1 && EBB_TCACHE_KEPT_BLOCKS < EBB_TCACHE_MIN_COUNT,
               "the purger leaves the entry a call under way may pop, and takes the rest");
_Static_assert(EBB_TCACHE_IDLE_MS > 0 && EBB_TCACHE_IDLE_MS < EBB_PURGE_DELAY_MS,
               "an idle thread's blocks are taken before the next poke");
_Static_assert(EBB_TCACHE_MAX_SIZE < EBB_LARGE_THRESHOLD, "cached classes are small");
_Static_assert(EBB_PURGE_HINTS > EBB_SURPLUS_RECHECK_MS,
               "a recheck's key and the present one do not share a hint");
_Static_assert((EBB_SMALL_STEP & (EBB_SMALL_STEP - 1)) == 0 &&
               EBB_SMALL_STEP >= EBB_MIN_ALIGN, "step keeps the minimum alignment");
_Static_assert(EBB_SLOT_PAGES == 16, "a slot's dirty pages are one 16-bit mask");
_Static_assert(EBB_PURGE_DELAY_MS > 0 && EBB_PURGE_SLACK_MS < EBB_PURGE_DELAY_MS,
               "the slack only gathers work, it never dominates the delay");
_Static_assert(EBB_PURGE_BATCH >= 1, "a pass makes progress");
_Static_assert(EBB_LARGE_PIECES >= 1 && EBB_LARGE_CACHE_SLOTS < 32,
               "cache_fill moves at least one piece and marks the slots it tried in 32 bits "
               "(shifted by up to a slot count)");
_Static_assert(EBB_SPARSE_BLOCKS >= 1, "a sparse pool lists at least one block");
_Static_assert(EBB_PURGE_RANGES >= 2 && EBB_PURGE_RANGES <= 1024,
               "a batch is a vector, within Linux's IOV_MAX");
_Static_assert(EBB_WAITING_BUDGET >= EBB_SURPLUS_MARGIN && EBB_WAITING_BUDGET_SHARE >= 10,
               "what may wait is at least the surplus margin and at most a tenth of committed");
_Static_assert(EBB_SURPLUS_QUIET_MS >= 1 && EBB_SURPLUS_QUIET_MS < EBB_PURGE_DELAY_MS,
               "surplus goes back sooner than the delay, never at the free itself");
_Static_assert(EBB_SURPLUS_SLACK_MS <= EBB_PURGE_SLACK_MS, "surplus is gathered more tightly");
_Static_assert(EBB_SURPLUS_POKE_MS >= EBB_SURPLUS_SLACK_MS && EBB_SURPLUS_POKE_MS < EBB_PURGE_DELAY_MS,
               "in surplus, threads are asked sooner than a delay, not more often than the "
               "purger gathers surplus");
_Static_assert(EBB_SURPLUS_POKE_WINDOW_MS >= EBB_SURPLUS_POKE_MS + EBB_TCACHE_IDLE_MS &&
                   EBB_SURPLUS_POKE_WINDOW_MS < EBB_PURGE_DELAY_MS,
               "the window holds a poke and the wait before an idle thread's blocks are taken, "
               "and ends before the delay");
_Static_assert(EBB_SURPLUS_RECHECK_MS >= EBB_SURPLUS_QUIET_MS &&
                   EBB_SURPLUS_RECHECK_MS < EBB_PURGE_DELAY_MS,
               "a pool not worth a purge yet waits longer than the quiet time, less than the delay");
_Static_assert(EBB_PURGE_MAX_DELAYS >= 1, "the cap is at least the delay");
_Static_assert(EBB_PURGE_WORTH_FRACTION >= 1 && EBB_PURGE_WORTH_FRACTION <= EBB_SLOT_PAGES,
               "a one-slot pool can meet the rule");
_Static_assert(EBB_ARENA_BRK_GAP % EBB_ARENA_SIZE == 0 &&
               EBB_ARENA_BRK_GAP <= UINTPTR_MAX / 64,
               "the brk room is whole arenas and a small part of the address space");
_Static_assert(EBB_ARENA_BELOW_BRK == 0 || EBB_ARENA_BELOW_BRK == 1, "below the break: on or off");
_Static_assert(EBB_ARENA_PLACE_TRIES >= 1, "placement tries at least one address");
_Static_assert(EBB_ARENA_FROM_BOTTOM == 0 || EBB_ARENA_FROM_BOTTOM == 1, "from the bottom: on or off");
_Static_assert(EBB_LARGE_FROM_BOTTOM == 0 || EBB_LARGE_FROM_BOTTOM == 1, "from the bottom: on or off");
_Static_assert(EBB_LIMIT_SOFT_PERCENT > 0 && EBB_LIMIT_SOFT_PERCENT < 100,
               "the soft level lies below the limit");
_Static_assert(EBB_LIMIT_AUTO_MARGIN_SHIFT >= 2 && EBB_LIMIT_AUTO_MARGIN_SHIFT <= 16,
               "the proportional margin is a small part of the bound, and not nothing");
_Static_assert(EBB_LIMIT_AUTO_MIN_SHARE >= 2,
               "an auto limit keeps room for what ebb does not manage");
_Static_assert(EBB_PRESSURE_CALLBACKS >= 2, "room for a runtime and one more");
_Static_assert(EBB_PSI_STALL_US > 0 && EBB_PSI_STALL_US < EBB_PSI_WINDOW_US &&
               EBB_PSI_WINDOW_US % 2000000 == 0 && EBB_PSI_WINDOW_US <= 10000000,
               "a PSI trigger the kernel takes from any user: a stall shorter than its window, "
               "a window of 2 s steps, at most 10 s");
_Static_assert(EBB_PRESSURE_QUIET_MS >= EBB_PSI_WINDOW_US / 1000 && EBB_PRESSURE_ALIVE_MS >= 100 &&
               EBB_PRESSURE_ALIVE_MS <= 2000,
               "one action per PSI window; the watcher notices soon that it is alone, "
               "without waking often");
_Static_assert(EBB_LIMIT_RESERVE >= 2 * EBB_MAX_POOL_SPAN * EBB_SLOT_SIZE &&
               100 / EBB_LIMIT_RESERVE_SHARE < 100 - EBB_LIMIT_SOFT_PERCENT,
               "the reserve holds a few of the largest pools, and refusals start above the soft level");
_Static_assert(EBB_BLACKBOX_INTERVAL_MS >= 1 && EBB_BLACKBOX_INTERVAL_MS < EBB_PURGE_DELAY_MS,
               "the box is refreshed often, at least once per purge delay");
_Static_assert(EBB_CRASH_STACK >= (16 << 10) && EBB_CRASH_SITE_TEXT >= 256 && EBB_CRASH_FRAMES >= 1,
               "the note's handler has room to run and its site room for a frame or two");
_Static_assert(EBB_REPORT_SITES_BRIEF >= 1 && EBB_REPORT_SITES_BRIEF <= EBB_REPORT_SITES &&
               EBB_REPORT_FRAMES >= 2 && EBB_REPORT_FRAMES <= EBB_SITE_DEPTH,
               "reports list a few sites, with some of their frames");
_Static_assert(EBB_REPORT_LINE_FRAMES >= 1 && EBB_REPORT_LINE_BYTES >= 64 &&
               EBB_REPORT_PEAK_SITES >= 1 && EBB_REPORT_PEAK_SITES <= EBB_REPORT_SITES,
               "a site's line shows a frame at least; the peak lists at most a report's sites");
_Static_assert(EBB_REPORT_CLASSES >= 1 && EBB_REPORT_CLASSES <= EBB_CLASSES,
               "a report lists some classes, at most all");
_Static_assert(EBB_CLASSES <= 255, "a class fits a byte, 255 means no class");

_Static_assert(EBB_TIMELINE_POINTS >= 16 && EBB_TIMELINE_POINTS % 2 == 0 &&
               EBB_REPORT_TIMELINE_POINTS >= 2 && EBB_REPORT_TIMELINE_POINTS <= EBB_TIMELINE_POINTS,
               "the ring halves into whole pairs; a report carries some of it");
_Static_assert(EBB_TIMELINE_STEP_SHIFT >= 2 && EBB_TIMELINE_STEP_SHIFT <= 8 &&
               EBB_TIMELINE_STEP_MIN >= 4096,
               "a point per noticeable move of committed, not per page");
_Static_assert(EBB_RSS_READ_INTERVAL_MS >= EBB_TIMELINE_INTERVAL_MS,
               "RSS is read less often than points are taken");
_Static_assert(EBB_TIMELINE_INTERVAL_MS >= 10 && EBB_STATUS_INTERVAL_MS >= EBB_TIMELINE_INTERVAL_MS &&
               EBB_STATUS_INTERVAL_MS <= 1000,
               "points and page refreshes are rare next to the purger's work; the page is "
               "fresher than `ebb top`'s one-second refresh");
_Static_assert(EBB_STATUS_SITES >= 1 && EBB_STATUS_SITES <= EBB_REPORT_SITES,
               "the page names a few sites, no more than a report");

_Static_assert(EBB_SAMPLE_SITES >= 64 && (EBB_SAMPLE_SITES & (EBB_SAMPLE_SITES - 1)) == 0,
               "the site index is a power of two, twice the sites");
_Static_assert(EBB_SAMPLE_SITES % EBB_SAMPLE_CHUNK_SITES == 0, "sites come in whole chunks");
_Static_assert((uint64_t)EBB_SAMPLE_CHUNK_RECORDS * EBB_SAMPLE_CHUNKS < UINT32_MAX,
               "a sample record's number fits a large-block entry's 32-bit tag");
_Static_assert(EBB_PY_WALK_STEPS >= EBB_PY_STACK_FRAMES, "the walk can reach the frames kept");
_Static_assert(EBB_PEAK_SITES >= EBB_REPORT_SITES && EBB_PEAK_SITES <= EBB_SAMPLE_SITES,
               "the peak keeps at least what a report lists");
_Static_assert(EBB_SAMPLE_RATE_DEFAULT >= 4096, "a sample is rare next to a page of cost");

#endif /* EBB_CONFIG_H */
