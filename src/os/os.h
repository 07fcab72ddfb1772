/*
 * os.h -- the only door between ebb and the operating system.
 *
 * Everything above this layer asks for address space, gives it back, takes a
 * lock, or writes a diagnosis through these functions and nothing else, so a
 * port to another system is new files beside the Linux ones.  Each section
 * below names the file that implements it.
 *
 * Model: `map` reserves and commits address space in one step (Linux
 * overcommits, so untouched pages cost no memory); `purge` keeps the range
 * mapped but lets the OS drop its pages (they read back as zeros); `unmap`
 * gives the range back.  None of these allocate memory or call stdio.
 */
#ifndef EBB_OS_H
#define EBB_OS_H

#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>

/* ------------------------------------------------ primitives (linux.c)
 * Address space, clocks, waiting, threads, locks, a diagnostic write. */

/* Size of an OS page (4 KiB on x86-64). */
size_t ebb__os_page_size(void);
/* CPUs this process may run on (at least 1). */
unsigned ebb__os_cpu_count(void);

#if EBB_DEBUG >= 1
/* Fault injection for tests, at every request for memory (map, map_at,
 * remap growing) or a thread (thread_start, on_thread_exit): when >= 0,
 * that many more requests succeed and then every one fails, as if the
 * system were out of memory. */
extern _Atomic long ebb__os_fail_after;
/* Or fail about one request in one_in (0: none) at random, from seed: the
 * n-th request fails by a hash of (seed, n), so a single-threaded run fails
 * the same ones each time.  EBB__FAULT_ONE_IN and EBB__FAULT_SEED set it at
 * start-up (core/setup.c). */
void ebb__os_faults_random(uint64_t seed, unsigned one_in);
/* Requests failed on purpose so far. */
unsigned long ebb__os_faults_injected(void);
#endif

/* Fresh zeroed read-write memory, page aligned; NULL on failure. */
void *ebb__os_map(size_t size);
/* Like ebb__os_map but aligned to `align` (a power of two >= page size). */
void *ebb__os_map_aligned(size_t size, size_t align);
/* Fresh zeroed read-write memory at exactly `addr` (page aligned), only if
 * nothing is mapped anywhere in [addr, addr + size); NULL otherwise, never
 * memory elsewhere and never a replaced mapping. */
void *ebb__os_map_at(void *addr, size_t size);
/* Fresh memory from the bottom of the address space up (above its first
 * MiB; aligned to `align`, a power of two >= page size): where the last one
 * ended, else at the lowest free place /proc/self/maps shows; NULL if there
 * is none or it cannot be had.  Never replaces a mapping.  For what must
 * not land in the middle of the big gap large blocks are mapped into, on
 * 32-bit: the kernel's top-down mmap puts a mapping in the highest hole
 * that fits, which may be one a freed large block left there, and a
 * long-lived mapping then cuts the gap in two once the large blocks go. */
void *ebb__os_map_bottom(size_t size, size_t align);
/* Fresh memory at the lowest free place /proc/self/maps shows (above the
 * first MiB, aligned as above); NULL if there is none or it cannot be had,
 * with *refused set if the system refused the memory (out of memory: no
 * use looking elsewhere), clear if only no place was found.  Leaves
 * ebb__os_map_bottom's cursor alone: for mappings that come and go (large
 * blocks on 32-bit), after which a cursor would point into the middle of
 * the space they left. */
void *ebb__os_map_lowest(size_t size, size_t align, int *refused);
/* Memory for ebb's own long-lived metadata (thread caches, tables): on
 * 32-bit from the bottom up (ebb__os_map_bottom), else where the kernel
 * puts it. */
void *ebb__os_map_meta(size_t size);
/* The program break (the end of the brk heap), 0 if unknown: the low end of
 * the large gap the kernel's top-down mmap fills from above. */
uintptr_t ebb__os_program_break(void);
/* The end of the program's own image (its highest loaded segment, bss
 * included), 0 if unknown.  The kernel starts the break a random distance
 * above it (up to 32 MiB on 32-bit x86), and that stretch is address space
 * the brk heap never uses. */
uintptr_t ebb__os_image_end(void);
void ebb__os_unmap(void *p, size_t size);
/* Drop the pages' contents; they stay mapped and read back as zeros. */
void ebb__os_purge(void *p, size_t size);
/* Let the OS take the pages when it needs memory (MADV_FREE): cheaper than a
 * purge, but RSS drops only under memory pressure, and a page written before
 * then keeps its new contents; untouched, it reads as zeros or as before. */
void ebb__os_purge_lazy(void *p, size_t size);
/* A page-aligned range of address space (the layout of POSIX's struct iovec,
 * so that Linux takes an array of them as it is). */
typedef struct {
    void *p;
    size_t size;
} ebb__os_range_t;
/* ebb__os_purge (or, with `lazy`, ebb__os_purge_lazy) of n ranges, with as
 * few system calls as the OS allows.  Returns the system calls made. */
unsigned ebb__os_purge_ranges(const ebb__os_range_t *r, unsigned n, int lazy);
/* Once, when ebb starts, on the program's thread: find out whether
 * ebb__os_purge_ranges may use a call that fewer systems know (until then,
 * and where it may not, one call a range).  Opens and reads a file. */
void ebb__os_purge_setup(void);
/* Bytes of [p, p + size) the kernel holds in memory now (mincore; what
 * /proc counts as RSS, but that mincore also counts a never-written page
 * that was read, which maps the shared zero page).  If `pages` is not NULL
 * it gets one byte per page from p's page on, 1 resident, 0 not.  Pages not
 * mapped count as not resident.  Allocates nothing. */
size_t ebb__os_resident(const void *p, size_t size, unsigned char *pages);
/* Resize a mapping, moving it if `may_move`; NULL if the OS cannot, with
 * *no_memory set if it lacked the memory or address space (not if the range
 * spans two kernel mappings, which mremap cannot resize). */
void *ebb__os_remap(void *p, size_t old_size, size_t new_size, int may_move, int *no_memory);
/* Move the pages of [from, from + size) to `to`, replacing the fresh
 * mapping there: the page tables move, the pages stay resident, nothing is
 * copied, and `from` is left unmapped; 1.  If the OS refuses (a range that
 * spans two kernel mappings, on kernels before 6.17), nothing moved and
 * `to` is fresh again: 0; -1 if `to` could not be mapped again either
 * (the caller's mapping now has a hole there). */
int ebb__os_move(void *from, size_t size, void *to);

/* Write bytes to the diagnostic stream (stderr) without allocating. */
void ebb__os_write_diag(const char *s, size_t n);
/* Abort the process now (after a fatal diagnosis). */
_Noreturn void ebb__os_abort(void);
/* Address of a symbol already loaded in the process, or NULL. */
void *ebb__os_symbol(const char *name);

/* Monotonic clock in nanoseconds. */
uint64_t ebb__os_now_ns(void);
/* Wall clock (CLOCK_REALTIME) in nanoseconds since the epoch. */
uint64_t ebb__os_wall_ns(void);
/* 64 unpredictable bits from the kernel (a weaker mix of clock, pid and
 * address if it has none to give); for secrets such as the freed-block key. */
uint64_t ebb__os_random64(void);
/* Scrambles x so that nearby inputs give unrelated outputs (splitmix64's
 * finaliser): for hashing and seeding, in this layer and the ones above. */
static inline uint64_t ebb__mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
/* Coarse monotonic clock in milliseconds, wrapping every 49 days (compare
 * with unsigned differences); cheap enough for slow paths. */
uint32_t ebb__os_now_ms(void);

/* Sleep while *word == expected, at most timeout_ms (-1: no limit); may
 * return early. */
void ebb__os_wait(_Atomic int *word, int expected, long timeout_ms);
/* Wake every thread sleeping in ebb__os_wait on word; async-signal-safe. */
void ebb__os_wake_all(_Atomic int *word);
/* Start a detached thread running fn(arg) with every signal blocked; 0 on
 * success.  May allocate (through ebb): call it holding no ebb lock. */
int ebb__os_thread_start(void (*fn)(void *), void *arg, const char *name);
/* p is on the stack of one of ebb's threads that ebb mapped itself (32-bit:
 * from the bottom up, see linux.c); always 0 on 64-bit. */
int ebb__os_own_stack_holds(const void *p);

/* A small mutex that never allocates: a futex on Linux.  Zero is unlocked,
 * so a zeroed or statically initialised lock is ready to use. */
typedef struct { _Atomic int state; } ebb__lock_t;
#define EBB_LOCK_INIT { 0 }
void ebb__os_lock_wait(ebb__lock_t *l);
void ebb__os_lock_wake(ebb__lock_t *l);

static inline void ebb__lock(ebb__lock_t *l)
{
    int unlocked = 0;
    if (__builtin_expect(atomic_compare_exchange_strong_explicit(
            &l->state, &unlocked, 1, memory_order_acquire, memory_order_relaxed), 1))
        return;
    ebb__os_lock_wait(l);
}
static inline int ebb__trylock(ebb__lock_t *l)
{
    int unlocked = 0;
    return atomic_compare_exchange_strong_explicit(
        &l->state, &unlocked, 1, memory_order_acquire, memory_order_relaxed);
}
static inline void ebb__unlock(ebb__lock_t *l)
{
    if (__builtin_expect(atomic_exchange_explicit(&l->state, 0, memory_order_release) == 2, 0))
        ebb__os_lock_wake(l);
}
/* Another thread has gone to sleep waiting for l, which the caller holds:
 * a long holder that can stop early should. */
static inline int ebb__lock_waited(ebb__lock_t *l)
{
    return atomic_load_explicit(&l->state, memory_order_relaxed) == 2;
}
/* Make a lock usable again in a forked child, whatever its state was. */
static inline void ebb__lock_reset(ebb__lock_t *l)
{
    atomic_store_explicit(&l->state, 0, memory_order_relaxed);
}

/* Run fn(arg) when the calling thread exits, after the thread's other
 * destructors may still allocate.  May allocate itself (through ebb, which
 * must be ready to be re-entered).  0 on success. */
int ebb__os_on_thread_exit(void (*fn)(void *), void *arg);
/* Call fn when the main thread leaves through pthread_exit (the process
 * then lives on as long as its other threads do).  Only from the main
 * thread; 0 if armed, -1 if not (another thread, or no key to be had):
 * then the caller cannot know. */
int ebb__os_watch_main_exit(void (*fn)(void));
/* Register the fork handlers once. */
void ebb__os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));

/* ------------------------------------------- environment (linux_env.c)
 * Read before the C library is ready, edited for the children. */

/* The longest path the system takes, NUL included (PATH_MAX; checked in
 * linux_env.c, where the system's headers say it). */
#define EBB__OS_PATH_MAX 4096

/* Copy the value of environment variable `name` into buf (NUL-terminated):
 * 1 if found, -1 if found but longer than len - 1 bytes (buf holds its
 * first len - 1), 0 if not set.  Never allocates, safe before the C library
 * is initialised. */
int ebb__os_getenv(const char *name, char *buf, size_t len);

/* Remove variable `name` from the environment children inherit, in place
 * (never allocates). */
void ebb__os_env_remove(const char *name);
/* The same for every variable whose name starts with `prefix`. */
void ebb__os_env_remove_prefix(const char *prefix);
/* The working directory's absolute path into buf; 0 if unknown or longer
 * than len - 1. */
int ebb__os_getcwd(char *buf, size_t len);

/* 1 if the process runs with privileges its caller does not have: a
 * setuid or setgid program, or one with file capabilities (the kernel's
 * AT_SECURE; or real and effective ids that differ).  Its environment is the
 * caller's to choose, so it must not steer ebb. */
int ebb__os_secure(void);
/* Remove from LD_PRELOAD, in place, every entry whose file name is `lib`. */
void ebb__os_env_unpreload(const char *lib);

/* ------------------------------------------------ /proc (linux_proc.c)
 * What the process is doing now, read from /proc.  None of these allocate. */

/* What the process uses now, in bytes (/proc/self/statm). */
typedef struct {
    uint64_t size;      /* address space mapped (what RLIMIT_AS counts) */
    uint64_t resident;  /* RSS (what a cgroup and physical memory hold) */
    uint64_t data;      /* private writable mappings and stack (RLIMIT_DATA) */
} ebb__os_usage_t;
/* 1 if read. */
int ebb__os_usage(const char *root, ebb__os_usage_t *out);
/* The command line (/proc/self/cmdline, arguments joined by spaces) into
 * buf, NUL-terminated and cut to len - 1 bytes; its length. */
size_t ebb__os_cmdline(char *buf, size_t len);
/* Live threads in this process (0 if unknown).  Never allocates. */
unsigned ebb__os_thread_count(void);
/* The largest range of user address space no mapping covers (from
 * /proc/self/maps); 0 if it cannot be read. */
size_t ebb__os_largest_gap(uintptr_t *start);

/* What a mapping of /proc/self/smaps holds, by its name and neighbours. */
enum {
    EBB__OS_VMA_ANON = 0,     /* anonymous memory (no name, or "[anon:...]") */
    EBB__OS_VMA_FILE,         /* a file: code and data of the program and its
                               * libraries, mapped files, shared memory */
    EBB__OS_VMA_HEAP,         /* [heap]: the program break */
    EBB__OS_VMA_STACK,        /* [stack]: the main thread's stack */
    EBB__OS_VMA_THREAD_STACK, /* anonymous, writable, right above an inaccessible
                               * anonymous mapping: a thread stack over its guard
                               * (how glibc lays them out) */
    EBB__OS_VMA_OTHER,        /* the kernel's: [vdso], [vvar], [vsyscall], ... */
    EBB__OS_VMA_KINDS
};
typedef struct {
    uintptr_t start, end;
    uint64_t rss;             /* resident bytes (its Rss line) */
    int kind;                 /* EBB__OS_VMA_* */
} ebb__os_vma_t;
/* Call fn on each mapping of root/proc/self/smaps, in address order, as the
 * file streams through a buffer on the stack (it may be megabytes); 1 if the
 * file was read. */
int ebb__os_vmas(const char *root, void (*fn)(const ebb__os_vma_t *, void *), void *ctx);
/* The process's resident bytes (the Rss of root/proc/self/smaps_rollup, the
 * sum over its mappings as the kernel counts them); 1 if read. */
int ebb__os_rss(const char *root, uint64_t *rss);

/* ---------------------------------------- address spaces (linux_maps.c)
 * A process's /proc files read whole, for the map of its address space
 * (src/insight/addrspace.c).  The text lives in memory mapped for it, not
 * in malloc's; this file compiles on its own into the `ebb map` tool. */

typedef struct {
    char *text;  /* len bytes and a NUL */
    size_t len, cap;
} ebb__os_text_t;
/* Read /proc/PID/NAME (pid 0: this process) whole into t: 0, or -1 with
 * errno (ENOENT: no such process; EACCES: not allowed to read it).  An
 * empty text is a process that has exited (or is exiting). */
int ebb__os_proc_read(long pid, const char *name, ebb__os_text_t *t);
void ebb__os_text_free(ebb__os_text_t *t);
/* 1 if process pid exists and has not exited (is no zombie). */
int ebb__os_proc_alive(long pid);
/* The target of the link /proc/PID/NAME (exe, cwd) into buf: its length,
 * or -1 with errno. */
long ebb__os_proc_link(long pid, const char *name, char *buf, size_t len);
/* The lowest address mmap gives: vm.mmap_min_addr, but at least 65536 (the
 * kernel's own floor where a security module is built in; linux_maps.c). */
#define EBB__OS_MMAP_MIN_ADDR_DEFAULT 65536
uint64_t ebb__os_mmap_min_addr(void);

/* -------------------------------------- memory bounds (linux_limits.c)
 * What the system lets this process use, for EBB_LIMIT=auto (limit.c).
 * Paths are read below `root`: "" for the real system, a fixture tree in
 * tests.  None of these allocate (they run inside the first malloc). */

/* Longest `source` text (NUL included); longer ones are cut. */
#define EBB__OS_SOURCE_LEN 512

/* One bound on the process's memory and the file it was read from. */
typedef struct {
    uint64_t bytes;                   /* the bound; UINT64_MAX: none found */
    int cgroup;                       /* 1 or 2: cgroup version; 0 otherwise */
    char source[EBB__OS_SOURCE_LEN];  /* e.g. "cgroup v2 /sys/fs/cgroup/a/memory.max" */
} ebb__os_bound_t;

/* The smallest cgroup memory limit over the process's cgroup and every
 * ancestor that can be seen: v2 memory.max, v1 memory.limit_in_bytes and
 * hierarchical_memory_limit.  1 if one was found. */
int ebb__os_cgroup_limit(const char *root, ebb__os_bound_t *out);
/* Physical memory plus swap; 1 if known. */
int ebb__os_physical_memory(const char *root, ebb__os_bound_t *out);
/* The soft RLIMIT_AS and RLIMIT_DATA, UINT64_MAX when unlimited. */
void ebb__os_rlimits(uint64_t *as, uint64_t *data);

/* ---------------------------------- memory pressure (linux_pressure.c)
 * What the kernel says about memory pressure, for pressure.c's watcher:
 * a PSI trigger and cgroup v2 memory.events.  None of these allocate. */

typedef struct {
    int psi;          /* a PSI file with its trigger written, or -1 */
    int events;       /* cgroup v2 memory.events, or -1 */
    uint64_t seen;    /* its "high" + "max" counts when last read */
    /* Which files the descriptors were (device, inode): a program that
     * closes every descriptor and opens others may be handed the same
     * numbers, and ebb must never poll, read or close the program's. */
    uint64_t psi_id[2], events_id[2];
    char source[EBB__OS_SOURCE_LEN];  /* the file watched, "" if none */
} ebb__os_pressure_t;

/* Open the memory pressure file of the process's cgroup v2 (or of the
 * ancestor whose memory.max binds) and write `trigger` ("some STALL_US
 * WINDOW_US") to it, else the same for the system's /proc/pressure/memory;
 * and that cgroup's memory.events.  Below `root` ("" the real system).  0
 * if anything is watched; -1 with errno (ENOENT: no PSI; EPERM, EINVAL:
 * the kernel refused the trigger). */
int ebb__os_pressure_open(const char *root, const char *trigger, ebb__os_pressure_t *out);
/* Watch psi (a descriptor with a trigger written, or a stand-in in tests;
 * -1: none): records which file it is, so a descriptor the program later
 * closes and reuses is left alone. */
void ebb__os_pressure_adopt(ebb__os_pressure_t *p, int psi);
/* Write a PSI trigger to an open pressure file: 0, or -1 with errno. */
int ebb__os_psi_arm(int fd, const char *trigger);
/* Watch fd as memory.events (read now for its counts); 0, or -1 if it
 * cannot be read (fd is then not taken). */
int ebb__os_pressure_events_open(ebb__os_pressure_t *p, int fd);
/* What ebb__os_pressure_wait saw: a bit set of these, 0 if nothing. */
enum {
    EBB__OS_PRESSURE_PSI = 1,     /* the PSI trigger fired */
    EBB__OS_PRESSURE_EVENTS = 2,  /* memory.events' high or max grew */
    EBB__OS_PRESSURE_GONE = 4     /* a watched file failed (its cgroup was removed) */
};
/* Reread memory.events (the wait does on its signal): EBB__OS_PRESSURE_EVENTS
 * if high + max grew since last read, GONE if it cannot be read, else 0. */
int ebb__os_pressure_events_grew(ebb__os_pressure_t *p);
/* Wait at most timeout_ms (-1: no limit) for pressure; may return 0 early. */
int ebb__os_pressure_wait(ebb__os_pressure_t *p, long timeout_ms);
void ebb__os_pressure_close(ebb__os_pressure_t *p);

/* -------------------------------------------- reports (linux_report.c)
 * What report.c needs to write a report and to be asked for one.  None of
 * these allocates. */

/* Open path for appending (created 0600 if missing), never through a
 * symbolic link (ELOOP); a file descriptor, or -1 with errno set. */
int ebb__os_open_append(const char *path);
/* Write all n bytes of buf to fd (retrying short writes and EINTR); 0, or
 * -1 with errno set. */
int ebb__os_write_all(int fd, const void *buf, size_t n);
void ebb__os_close(int fd);
/* Remove the file at path (errno kept). */
void ebb__os_remove_file(const char *path);
/* The black box's file: path created (mode 0600), or, if a file is there,
 * taken only if it is a regular file of this process's user, with no other
 * name, that starts with the magic_len bytes of `magic`; never through a
 * symbolic link; and locked, so no other process takes it while *fd (kept
 * open, close-on-exec) stays open.  Sized to `size` bytes with their room
 * reserved on disk, and mapped shared and writable: stores reach the file
 * without a system call and survive the process.  NULL on failure, *why
 * then saying why in a few words. */
void *ebb__os_box_open(const char *path, size_t size, const char *magic, size_t magic_len,
                       int *fd, const char **why);
/* A file ebb may replace (report files): 0 if nothing is at path; 1 if a
 * regular file of this process's user with no other name is, its first
 * bytes (up to cap) then in head and their count in *len; -1 if anything
 * else is there (a symbolic link, which is not followed, a directory, a
 * device, another user's file, a hard link) or it cannot be examined, *why
 * then saying why in a few words. */
int ebb__os_file_head(const char *path, char *head, size_t cap, size_t *len, const char **why);
/* Create a new file at path (mode 0600, never through a symbolic link, not
 * inherited across exec) for writing, removing a file or link already at
 * that name first (a temporary name of ebb's own); a descriptor, or -1
 * with errno set. */
int ebb__os_create_new(const char *path);
/* Rename from to `to`, replacing what is there (a link is replaced, never
 * followed); 0, or -1 with errno set. */
int ebb__os_rename(const char *from, const char *to);

/* The status page `ebb top` reads: path created new (mode 0600, never
 * through a symbolic link, close-on-exec), or, if a stale page is there (a
 * regular file of this user that no process holds), that one removed and
 * the page created again; locked while this process maps it, so that a
 * reader tells a live page from a stale one by trying the lock (flock);
 * sized to `size` with its room reserved, and mapped shared and writable.
 * NULL on failure (nothing left at path), *why then saying why. */
void *ebb__os_page_publish(const char *path, size_t size, const char **why);
/* 1 if dir is a directory. */
int ebb__os_page_dir_exists(const char *dir);
/* The effective user id. */
unsigned ebb__os_uid(void);
/* Milliseconds since the epoch. */
long long ebb__os_wall_ms(void);
/* Words for an errno value, never translated (so never allocating). */
const char *ebb__os_error_text(int err);
/* The process id; seconds since the epoch. */
long ebb__os_pid(void);
long long ebb__os_wall_seconds(void);
/* Format a wall time as "YYYY-MM-DDTHH:MM:SSZ" into buf (at least 21 bytes). */
void ebb__os_format_utc(long long seconds, char *buf);
/* The signal a name or number stands for ("USR1", "SIGUSR2", "RTMIN+1",
 * "RTMAX-2", "12"), if it is one a report may be asked with: SIGUSR1,
 * SIGUSR2 or a real-time signal (every other one has a meaning of its
 * own); else 0. */
int ebb__os_report_signal(const char *name);
/* Call fn(sig) on signal sig (restarting interrupted system calls); 0 on
 * success.  fn must be async-signal-safe. */
int ebb__os_on_signal(int sig, void (*fn)(int));

/* ----------------------------------------------- faults (linux_fault.c)
 * One line before SIGSEGV or SIGBUS kills the process (insight/crash.c). */

/* What the handler calls first: sig, the faulting address (NULL if the
 * signal was sent, not raised by an access: then `sent` is 1).  It must only
 * read memory and write (async-signal-safe, no allocation, no lock). */
typedef void (*ebb__os_fault_fn)(int sig, const void *addr, int sent);
/* Handle SIGSEGV and SIGBUS on an alternate stack (of stack_size bytes at
 * least, given to the calling thread unless it has one): call fn, then hand the signal on to the
 * disposition it replaced (a handler of the program's, called as the kernel
 * would; else the default action, so the process dies of the same signal).
 * Once per process (later calls do nothing); 0, or -1 if a handler could
 * not be installed. */
int ebb__os_fault_watch(ebb__os_fault_fn fn, size_t stack_size);
/* "SIGSEGV" or "SIGBUS". */
const char *ebb__os_fault_name(int sig);
/* The calling thread's id (the kernel's; async-signal-safe). */
long ebb__os_thread_id(void);

/* ---------------------------------------------- stacks (linux_stack.c)
 * For sample.c's heap profiler and the reports that print its sites. */

/* The return addresses on the calling thread's stack, innermost first
 * (pcs[0] is in the function that called ebb__os_backtrace), at most max;
 * the number written, 0 if the system cannot unwind.  Unwinds by the DWARF
 * tables, so it works without frame pointers.  May take the loader's lock
 * and, on its first call, load the unwinder, which allocates: call it with
 * no ebb lock held and with the calling thread's allocations kept out of
 * sampling. */
int ebb__os_backtrace(void **pcs, int max);
/* Load the unwinder now, if no backtrace ran yet (it allocates and may
 * take the loader's lock: the same rules as ebb__os_backtrace). */
void ebb__os_unwinder_prime(void);
/* A thread's last unwind, kept so that the next one from the same place is
 * confirmed (every stack word it read still holds what it held) instead of
 * redone: a sampled program allocates from a few call paths, over and
 * over.  Owner thread only; sp 0 is empty.  Opaque to callers. */
#define EBB__UNWIND_MEMO_FRAMES 48
typedef struct {
    uintptr_t sp, rbp, ra; /* where that unwind started */
    int max, n;            /* frames asked for and found */
    int rbp_used;          /* rbp as it started located a frame: part of the key */
    uint32_t note;         /* the caller's, about this stack; 0 whenever it changes */
    int reads;             /* stack words it read */
    void *pcs[EBB__UNWIND_MEMO_FRAMES];
    uintptr_t at[2 * EBB__UNWIND_MEMO_FRAMES];   /* each word's address */
    uintptr_t seen[2 * EBB__UNWIND_MEMO_FRAMES]; /* and what it held */
} ebb__unwind_memo_t;
/* The same from the call-frame tables, without libgcc (linux_unwind.c):
 * the rules of frames are cached per return address, nothing is locked and
 * nothing allocated, except once per thread (learning its stack's bounds
 * may allocate, and so must be called as ebb__os_backtrace is).  -1 if it
 * cannot unwind this stack (a rule it does not model, a stack it cannot
 * bound, or 32-bit and other systems): the caller falls back to
 * ebb__os_backtrace.  Works only once ebb__os_unwind_prime ran. */
int ebb__os_unwind(void **pcs, int max);
/* The same, through the calling thread's memo (max at most
 * EBB__UNWIND_MEMO_FRAMES to be kept; NULL: none).  The answer is always
 * the one ebb__os_unwind gives, memo or not. */
int ebb__os_unwind_memo(void **pcs, int max, ebb__unwind_memo_t *memo);
/* The same, but -1 rather than learn the stack's bounds of a thread other
 * than the main one (which allocates): for a caller that must not. */
int ebb__os_unwind_no_alloc(void **pcs, int max);
/* Unwinds answered from a memo so far (for tests and the essay). */
unsigned long ebb__os_unwind_memo_hits(void);
/* Find what the unwinder needs from the loader (it may take the loader's
 * lock and allocate): from ebb's constructor. */
void ebb__os_unwind_prime(void);
/* Stacks ebb__os_unwind refused so far (for tests and the essay). */
unsigned long ebb__os_unwind_refusals(void);
/* 1 if the dynamic loader's code is among the calling thread's innermost
 * frames (in a static program, which has no loader: if the C library's
 * thread-stack lock is held), 0 if not, -1 if that cannot be told without loading the
 * unwinder (not primed yet).  Once primed it allocates nothing and takes
 * no lock glibc holds around a free (unwinding looks objects up with
 * _dl_find_object, lock-free, or under the loader's list lock on older
 * glibc), so a free inside glibc's thread-stack cache may ask. */
int ebb__os_inside_loader(void);
/* Describe code address pc as "symbol+0xoff (object)" (or "0x... (object)"
 * without a symbol) in buf, NUL-terminated; returns the length.  Never
 * allocates; takes the loader's lock, so not for a signal handler. */
size_t ebb__os_symbolise(const void *pc, char *buf, size_t len);

#endif /* EBB_OS_H */
