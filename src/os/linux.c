/*
 * linux.c -- the OS primitives for Linux (glibc or musl), 64- and 32-bit.
 *
 * What every layer above needs from the system to exist at all: address
 * space (map, unmap, purge, remap), the page size and CPU count, clocks,
 * sleeping on a word, a futex lock, a thread of its own, hooks for thread
 * exit and fork, a diagnostic write and an abort.  The other files of the
 * layer are the ones that read or watch something (the environment, /proc,
 * cgroups, pressure files, report files, stacks); this one only asks.
 *
 * Why it is shaped so: most of these sit on the allocator's own paths,
 * even inside the first malloc, so each stays a thin wrapper that never
 * allocates, making the raw system call where the C library's wrapper
 * might allocate or not be set up yet (sched_getaffinity, brk, futex);
 * starting a thread and the thread-exit hook are the exceptions, and os.h
 * says so.  Each keeps errno as the caller left it, because free() must
 * preserve errno and the layers above should not have to think about it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"
#include "linux.h"

#include <errno.h>
#include <dlfcn.h>
#include <link.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

size_t ebb__os_page_size(void)
{
    static size_t cached;
    if (cached == 0) {
        long v = sysconf(_SC_PAGESIZE);
        cached = v > 0 ? (size_t)v : 4096;
    }
    return cached;
}

unsigned ebb__os_cpu_count(void)
{
    cpu_set_t set;
    CPU_ZERO(&set); /* the kernel writes only its own mask's bytes */
    /* The raw system call: glibc's wrapper is fine too, but this one is sure
     * not to allocate and also answers before the library is set up. */
    long n = syscall(SYS_sched_getaffinity, 0, sizeof set, &set);
    if (n <= 0)
        return 1;
    unsigned count = (unsigned)CPU_COUNT(&set);
    return count ? count : 1;
}

/*
 * Fault injection (debug builds): every request for memory or a thread
 * passes injected_failure() first, and fails as the system would when it
 * says so: a countdown (ebb__os_fail_after: that many more succeed, then
 * all fail), or at random (ebb__os_faults_random: about one request in N,
 * decided by a hash of the seed and the request's number, so a
 * single-threaded run fails the same requests every time).
 */
#if EBB_DEBUG >= 1
__attribute__((visibility("hidden"))) _Atomic long ebb__os_fail_after = -1;
static _Atomic uint64_t fault_seed, fault_calls;
static _Atomic unsigned fault_one_in;
static _Atomic unsigned long fault_count;

void ebb__os_faults_random(uint64_t seed, unsigned one_in)
{
    atomic_store_explicit(&fault_seed, seed, memory_order_relaxed);
    atomic_store_explicit(&fault_calls, 0, memory_order_relaxed);
    atomic_store_explicit(&fault_one_in, one_in, memory_order_relaxed);
}

unsigned long ebb__os_faults_injected(void)
{
    return atomic_load_explicit(&fault_count, memory_order_relaxed);
}

static int random_failure(void)
{
    unsigned one_in = atomic_load_explicit(&fault_one_in, memory_order_relaxed);
    if (one_in == 0)
        return 0;
    uint64_t call = atomic_fetch_add_explicit(&fault_calls, 1, memory_order_relaxed);
    uint64_t seed = atomic_load_explicit(&fault_seed, memory_order_relaxed);
    return ebb__mix64(seed * 0x9e3779b97f4a7c15ull + call) % one_in == 0;
}

static int injected_failure(void)
{
    long n = atomic_load_explicit(&ebb__os_fail_after, memory_order_relaxed);
    while (n > 0 && !atomic_compare_exchange_weak_explicit(&ebb__os_fail_after, &n, n - 1,
                                                           memory_order_relaxed, memory_order_relaxed)) {
    }
    if (n != 0 && !random_failure())
        return 0;
    atomic_fetch_add_explicit(&fault_count, 1, memory_order_relaxed);
    return 1;
}
#else
#define injected_failure() 0
#endif

void *ebb__os_map(size_t size)
{
    if (injected_failure())
        return NULL;
    int saved = errno;
    /* No MAP_NORESERVE: the kernel's overcommit check must be able to refuse
     * an impossible request here, as a clean NULL, rather than let it succeed
     * and kill the process when the pages are touched. */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    errno = saved;
    return p == MAP_FAILED ? NULL : p;
}

void *ebb__os_map_aligned(size_t size, size_t align)
{
    size_t page = ebb__os_page_size();
    if (align <= page)
        return ebb__os_map(size);
    if (size + align < size)
        return NULL;
    /* Map size+align, then give back the unaligned head and the tail. */
    size_t over = size + align - page;
    uint8_t *raw = ebb__os_map(over);
    if (raw == NULL)
        return NULL;
    uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = start - (uintptr_t)raw;
    size_t tail = over - head - size;
    if (head)
        ebb__os_unmap(raw, head);
    if (tail)
        ebb__os_unmap((void *)(start + size), tail);
    return (void *)start;
}

/* Since Linux 4.17; an older kernel ignores the flag and treats the address
 * as a hint, which ebb__os_map_at handles by checking where it landed. */
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/* ebb__os_map_at; *refused is set when the system refused the memory (out
 * of memory, or a failure injected as one), not when the place was taken. */
static void *map_at(void *addr, size_t size, int *refused)
{
    *refused = 0;
    if (injected_failure()) {
        *refused = 1;
        return NULL;
    }
    int saved = errno;
    /* Never MAP_FIXED: it would silently replace whatever lives there. */
    void *p = mmap(addr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED)
        *refused = errno == ENOMEM;
    if (p != MAP_FAILED && p != addr) {
        munmap(p, size); /* an old kernel put it elsewhere */
        p = MAP_FAILED;
    }
    errno = saved;
    return p == MAP_FAILED ? NULL : p;
}

void *ebb__os_map_at(void *addr, size_t size)
{
    int refused;
    return map_at(addr, size, &refused);
}

/* Bottom-up placement starts above the lowest addresses a kernel may keep
 * from mmap (vm.mmap_min_addr, 64 KiB by default, more on some systems). */
#define BOTTOM_FROM ((uintptr_t)1 << 20)

/* Where the last bottom-up mapping ended: the next is tried there first,
 * one mmap, and the maps are read only when that place is taken. */
static _Atomic uintptr_t bottom_cursor;

static uintptr_t round_up(uintptr_t a, size_t align)
{
    uintptr_t up = (a + align - 1) & ~(uintptr_t)(align - 1);
    return up < a ? 0 : up;
}

static void *map_at_cursor(size_t size, size_t align)
{
    uintptr_t at = round_up(atomic_load_explicit(&bottom_cursor, memory_order_relaxed), align);
    return at >= BOTTOM_FROM ? ebb__os_map_at((void *)at, size) : NULL;
}

void *ebb__os_map_lowest(size_t size, size_t align, int *refused)
{
    /* Another thread may take the place between the look and the map: look
     * again, a few times; but a refusal is the system's answer anywhere. */
    void *p = NULL;
    *refused = 0;
    for (int tries = 0; p == NULL && !*refused && tries < 3; tries++) {
        uintptr_t at = ebb__linux_lowest_free(size, align, BOTTOM_FROM);
        if (at == 0)
            return NULL;
        p = map_at((void *)at, size, refused);
    }
    return p;
}

void *ebb__os_map_bottom(size_t size, size_t align)
{
    int refused;
    void *p = map_at_cursor(size, align);
    if (p == NULL)
        p = ebb__os_map_lowest(size, align, &refused);
    if (p != NULL)
        atomic_store_explicit(&bottom_cursor, (uintptr_t)p + size, memory_order_relaxed);
    return p;
}

void *ebb__os_map_meta(size_t size)
{
#if UINTPTR_MAX <= 0xffffffffu
    void *p = ebb__os_map_bottom(size, ebb__os_page_size());
    if (p != NULL)
        return p;
#endif
    return ebb__os_map(size);
}

uintptr_t ebb__os_program_break(void)
{
    int saved = errno;
    /* The raw call: brk(0) changes nothing and answers the current break,
     * without the C library's sbrk state (which may not be set up yet). */
    long brk = syscall(SYS_brk, 0);
    errno = saved;
    /* Through unsigned long: a 32-bit break above 2 GiB is a negative long. */
    return brk == -1 ? 0 : (uintptr_t)(unsigned long)brk;
}

uintptr_t ebb__os_image_end(void)
{
    /* The program headers the kernel mapped, found through the auxiliary
     * vector: no system call, no allocation, ready before the C library. */
    const ElfW(Phdr) *ph = (const ElfW(Phdr) *)getauxval(AT_PHDR);
    unsigned long n = getauxval(AT_PHNUM);
    if (ph == NULL || n == 0)
        return 0;
    uintptr_t bias = 0, end = 0;
    int have_bias = 0;
    for (unsigned long i = 0; i < n; i++)
        if (ph[i].p_type == PT_PHDR) {
            bias = (uintptr_t)ph - (uintptr_t)ph[i].p_vaddr; /* where a PIE was loaded */
            have_bias = 1;
        }
    if (!have_bias)
        return 0; /* no PT_PHDR: the load address cannot be told apart */
    for (unsigned long i = 0; i < n; i++)
        if (ph[i].p_type == PT_LOAD && bias + ph[i].p_vaddr + ph[i].p_memsz > end)
            end = bias + (uintptr_t)(ph[i].p_vaddr + ph[i].p_memsz);
    return end;
}

void ebb__os_unmap(void *p, size_t size)
{
    int saved = errno;
    munmap(p, size);
    errno = saved;
}

void ebb__os_purge(void *p, size_t size)
{
    int saved = errno;
    madvise(p, size, MADV_DONTNEED);
    errno = saved;
}

void ebb__os_purge_lazy(void *p, size_t size)
{
#ifdef MADV_FREE
    int saved = errno;
    int rc = madvise(p, size, MADV_FREE);
    errno = saved;
    if (rc == 0)
        return;
#endif
    ebb__os_purge(p, size); /* kernel before 4.5: no MADV_FREE */
}

/* Purging many ranges.  Each madvise call that drops pages ends with a TLB
 * shootdown: an interrupt to every other CPU running the process, which
 * stops whatever the program does there.  A teardown of 1 GiB with
 * survivors scattered through it purges some 30,000 ranges, most of one to
 * eight pages (bench/rss scenario 2), and the interrupts cost the program
 * far more than the calls themselves (perf: 22% of bench buildfree's
 * samples with purging on).  process_madvise on the process itself (Linux
 * 6.13 for any advice, 6.14 for PIDFD_SELF, so no descriptor to keep or
 * to reopen after fork) takes up to IOV_MAX ranges a call, and from Linux
 * 6.17 flushes the TLB once for the whole vector.  Measured on this
 * machine's 6.18 kernel, 20,000 ranges of 8 KiB while another thread
 * wrote memory on the other CPU: 204-237 ms one madvise each, 16-21 ms in
 * vectors of 64.  A kernel (or a seccomp filter, or valgrind) that refuses
 * it gets madvise from then on. */
#define PIDFD_SELF_PROCESS_ (-10001) /* linux/pidfd.h's PIDFD_SELF_THREAD_GROUP */

_Static_assert(sizeof(ebb__os_range_t) == sizeof(struct iovec) &&
                   offsetof(ebb__os_range_t, p) == offsetof(struct iovec, iov_base) &&
                   offsetof(ebb__os_range_t, size) == offsetof(struct iovec, iov_len),
               "a range is an iovec");

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* The kernel refused a vector call: madvise from then on. */
static _Atomic int vector_refused;

/* A seccomp filter may kill the process on a call it does not list, rather
 * than fail it (systemd's SystemCallFilter= does by default), and
 * process_madvise is young enough to be missing from lists: no vector in a
 * process that runs under one.  /proc/self/status says, read once when ebb
 * starts, on the program's thread: ebb's own threads open no file while the
 * program runs (tests/python/test_descriptors.py says why).  A filter the
 * program installs itself later is not seen. */
static _Atomic int vector_allowed; /* 1: no filter (nor valgrind) when ebb started */

void ebb__os_purge_setup(void)
{
    /* valgrind 3.19 does not know the call and warns at each one. */
    int allowed = !RUNNING_ON_VALGRIND && !ebb__linux_seccomp_filtered();
    atomic_store_explicit(&vector_allowed, allowed, memory_order_relaxed);
}

/* The bytes of r[0..n) that one process_madvise call advised, or -1. */
static long purge_vector(const ebb__os_range_t *r, unsigned n, int advice)
{
#ifdef SYS_process_madvise
    if (n < 2 || atomic_load_explicit(&vector_refused, memory_order_relaxed) ||
        !atomic_load_explicit(&vector_allowed, memory_order_relaxed))
        return -1; /* refused, or a filter, valgrind, or ebb__os_purge_setup not run yet */
    long got = syscall(SYS_process_madvise, PIDFD_SELF_PROCESS_, (const struct iovec *)r,
                       (size_t)n, advice, 0u);
    if (got < 0)
        atomic_store_explicit(&vector_refused, 1, memory_order_relaxed);
    return got;
#else
    (void)r, (void)n, (void)advice;
    return -1;
#endif
}

unsigned ebb__os_purge_ranges(const ebb__os_range_t *r, unsigned n, int lazy)
{
    int saved = errno;
    unsigned calls = 0;
    size_t skip = 0; /* bytes from r[0] on that the vector call advised */
#ifdef MADV_FREE
    long got = purge_vector(r, n, lazy ? MADV_FREE : MADV_DONTNEED);
#else
    long got = lazy ? -1 : purge_vector(r, n, MADV_DONTNEED);
#endif
    if (got >= 0) {
        calls++;
        skip = (size_t)got;
    }
    for (unsigned i = 0; i < n; i++) {
        if (skip >= r[i].size) {
            skip -= r[i].size;
            continue;
        }
        /* Not advised (the kernel stops at a range it refuses): one call
         * for the rest of it, which fails the same way madvise would. */
        uint8_t *from = (uint8_t *)r[i].p + skip;
        size_t left = r[i].size - skip;
        skip = 0;
        if (lazy)
            ebb__os_purge_lazy(from, left);
        else
            ebb__os_purge(from, left);
        calls++;
    }
    errno = saved;
    return calls;
}

/* mincore fills a byte per page: a vector on the stack covers 16 MiB a call,
 * so a walk over gigabytes makes a few hundred calls and maps nothing. */
#define RESIDENT_VEC 4096

size_t ebb__os_resident(const void *p, size_t size, unsigned char *pages)
{
    int saved = errno;
    size_t page = ebb__os_page_size(), resident = 0;
    uintptr_t start = (uintptr_t)p & ~(uintptr_t)(page - 1);
    size_t n = (size + ((uintptr_t)p - start) + page - 1) / page;
    unsigned char vec[RESIDENT_VEC];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < RESIDENT_VEC ? n - done : RESIDENT_VEC;
        unsigned char *v = pages ? pages + done : vec;
        /* ENOMEM: part of the range is not mapped (unmapped since it was
         * listed); those pages are resident nowhere. */
        if (mincore((void *)(start + done * page), k * page, v) != 0)
            memset(v, 0, k);
        for (size_t i = 0; i < k; i++) {
            v[i] &= 1;
            resident += v[i];
        }
        done += k;
    }
    errno = saved;
    return resident * page;
}

void *ebb__os_remap(void *p, size_t old_size, size_t new_size, int may_move, int *no_memory)
{
    *no_memory = 0;
    if (new_size > old_size && injected_failure()) {
        *no_memory = 1;
        return NULL;
    }
    int saved = errno;
    void *q = mremap(p, old_size, new_size, may_move ? MREMAP_MAYMOVE : 0);
    if (q == MAP_FAILED)
        *no_memory = errno == ENOMEM;
    errno = saved;
    return q == MAP_FAILED ? NULL : q;
}

int ebb__os_move(void *from, size_t size, void *to)
{
    if (injected_failure())
        return 0;
    int saved = errno;
    void *q = mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    if (q != MAP_FAILED) {
        errno = saved;
        return 1;
    }
    /* A refused move may have unmapped the destination first (kernels
     * before 6.17 check the source only after): map it again, fresh. */
    q = mmap(to, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    errno = saved;
    return q == MAP_FAILED ? -1 : 0;
}

void ebb__os_write_diag(const char *s, size_t n)
{
    int saved = errno;
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            break;
        }
        s += w;
        n -= (size_t)w;
    }
    errno = saved;
}

_Noreturn void ebb__os_abort(void)
{
    /* Avoid abort()'s stdio flushing: the heap may be what is broken. */
    raise(SIGABRT);
    _exit(127);
}

void *ebb__os_symbol(const char *name)
{
    return dlsym(RTLD_DEFAULT, name);
}

uint64_t ebb__os_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t ebb__os_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t ebb__os_random64(void)
{
    int saved = errno;
    uint64_t r = 0;
    long got;
    do
        got = syscall(SYS_getrandom, &r, sizeof r, 0x0001 /* GRND_NONBLOCK */);
    while (got < 0 && errno == EINTR);
    errno = saved;
    if (got == (long)sizeof r)
        return r;
    /* No entropy yet (early boot) or no getrandom: still different per
     * process and per run. */
    r = ebb__os_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&r;
    r ^= r >> 33;
    r *= 0xff51afd7ed558ccdull;
    return r ^ (r >> 33);
}

uint32_t ebb__os_now_ms(void)
{
    struct timespec ts;
    /* The coarse clock is read from the vDSO without a system call and is
     * precise to a scheduler tick (4 ms here), enough for purge delays. */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

void ebb__os_wait(_Atomic int *word, int expected, long timeout_ms)
{
    int saved = errno;
    struct timespec ts, *tsp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, tsp, NULL, 0);
    errno = saved;
}

void ebb__os_wake_all(_Atomic int *word)
{
    int saved = errno;
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
    errno = saved;
}

/*
 * ebb's own thread stacks on 32-bit.  glibc maps a thread's stack top-down,
 * into the highest hole that fits; after large blocks came and went, that
 * hole can be in the middle of the one gap a 32-bit program needs whole
 * (tests/api/test_gap.c shows how such a hole forms), and a 128 KiB stack
 * there cuts it in two as surely as an arena would.  So on 32-bit ebb maps
 * its threads' stacks from the bottom up, as it does its arenas, keeps a few,
 * and gives one to the next thread once its last thread is gone: the kernel
 * answers tgkill(tid, 0) with ESRCH only after the thread's final
 * instruction, so nothing runs on the stack any more.  A thread id the
 * kernel reused makes a free stack look busy (a new one is mapped), never
 * the other way.  Where no stack can be had, glibc places it as before.
 */
#define OWN_STACK_SIZE ((size_t)128 << 10)

typedef struct {
    uint8_t *base;   /* a guard page, then the stack; NULL until first mapped */
    _Atomic int tid; /* 0 never used, -1 being started, else its thread's id */
} own_stack_t;

#if UINTPTR_MAX <= 0xffffffffu
#define OWN_STACKS 4 /* ebb runs at most three threads at once */
static own_stack_t own_stacks[OWN_STACKS];

static int thread_is_gone(int tid)
{
    int saved = errno;
    int gone = syscall(SYS_tgkill, ebb__os_pid(), tid, 0) != 0 && errno == ESRCH;
    errno = saved;
    return gone;
}

/* A stack slot claimed for a new thread (tid -1), its stack mapped; NULL if
 * none (glibc's placement then). */
static own_stack_t *own_stack_claim(void)
{
    for (unsigned i = 0; i < OWN_STACKS; i++) {
        own_stack_t *s = &own_stacks[i];
        int tid = atomic_load_explicit(&s->tid, memory_order_acquire);
        if (tid == -1 || (tid > 0 && !thread_is_gone(tid)))
            continue;
        if (!atomic_compare_exchange_strong_explicit(&s->tid, &tid, -1, memory_order_acq_rel,
                                                     memory_order_relaxed))
            continue;
        if (s->base == NULL) {
            size_t page = ebb__os_page_size();
            uint8_t *base = ebb__os_map_bottom(page + OWN_STACK_SIZE, page);
            if (base == NULL || mprotect(base, page, PROT_NONE) != 0) {
                if (base != NULL)
                    ebb__os_unmap(base, page + OWN_STACK_SIZE);
                atomic_store_explicit(&s->tid, 0, memory_order_release);
                return NULL;
            }
            s->base = base;
        }
        return s;
    }
    return NULL;
}

int ebb__os_own_stack_holds(const void *p)
{
    size_t page = ebb__os_page_size();
    for (unsigned i = 0; i < OWN_STACKS; i++) {
        const uint8_t *base = own_stacks[i].base;
        if (base && (const uint8_t *)p >= base + page && (const uint8_t *)p < base + page + OWN_STACK_SIZE)
            return 1;
    }
    return 0;
}
#else /* 64-bit: top-down placement cuts no gap that matters there */
static own_stack_t *own_stack_claim(void)
{
    return NULL;
}

int ebb__os_own_stack_holds(const void *p)
{
    (void)p;
    return 0;
}
#endif

typedef struct {
    void (*fn)(void *);
    void *arg;
    own_stack_t *stack; /* the thread's own stack, or NULL */
} thread_start_t;

static void *thread_trampoline(void *raw)
{
    thread_start_t start = *(thread_start_t *)raw;
    munmap(raw, sizeof start > 4096 ? sizeof start : 4096);
    if (start.stack)
        atomic_store_explicit(&start.stack->tid, (int)ebb__os_thread_id(), memory_order_release);
    start.fn(start.arg);
    return NULL;
}

int ebb__os_thread_start(void (*fn)(void *), void *arg, const char *name)
{
    if (injected_failure())
        return -1;
    int saved = errno;
    /* The start record comes from the OS, not from malloc: the caller may be
     * the allocator itself. */
    thread_start_t *start = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (start == MAP_FAILED) {
        errno = saved;
        return -1;
    }
    start->fn = fn;
    start->arg = arg;
    start->stack = own_stack_claim();
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (start->stack &&
        pthread_attr_setstack(&attr, start->stack->base + ebb__os_page_size(), OWN_STACK_SIZE) != 0) {
        atomic_store_explicit(&start->stack->tid, 0, memory_order_release);
        start->stack = NULL;
    }
    if (start->stack == NULL)
        pthread_attr_setstacksize(&attr, OWN_STACK_SIZE);
    /* Every signal blocked in the new thread, so none meant for the program
     * is ever delivered to it. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    own_stack_t *stack = start->stack;
    int rc = pthread_create(&t, &attr, thread_trampoline, start);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        if (stack)
            atomic_store_explicit(&stack->tid, 0, memory_order_release);
        munmap(start, 4096);
        errno = saved;
        return -1;
    }
    pthread_setname_np(t, name);
    errno = saved;
    return 0;
}

/* Drepper's three-state futex mutex: 0 free, 1 held, 2 held with waiters. */
void ebb__os_lock_wait(ebb__lock_t *l)
{
    int saved = errno;
    for (int spin = 0; spin < 100; spin++) {
        int expect = 0;
        if (atomic_load_explicit(&l->state, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->state, &expect, 1,
                memory_order_acquire, memory_order_relaxed)) {
            errno = saved;
            return;
        }
        __asm__ __volatile__("" ::: "memory");
    }
    while (atomic_exchange_explicit(&l->state, 2, memory_order_acquire) != 0)
        syscall(SYS_futex, &l->state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
    errno = saved;
}

void ebb__os_lock_wake(ebb__lock_t *l)
{
    int saved = errno;
    syscall(SYS_futex, &l->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
}

/* glibc's hook for C++ thread_local destructors: it runs at thread exit
 * before the thread's TLS goes away, and needs no pthread key (whose setter
 * may allocate from inside malloc).  It allocates its record through malloc,
 * which the caller is prepared for. */
extern int __cxa_thread_atexit_impl(void (*fn)(void *), void *arg, void *dso)
    __attribute__((weak));
extern void *__dso_handle __attribute__((weak));

int ebb__os_on_thread_exit(void (*fn)(void *), void *arg)
{
    if (__cxa_thread_atexit_impl == NULL || injected_failure())
        return -1;
    int saved = errno;
    int rc = __cxa_thread_atexit_impl(fn, arg, &__dso_handle);
    errno = saved;
    return rc;
}

/* The main thread's pthread_exit: glibc runs no C++ thread_local
 * destructors for it (the hook above), but it does run pthread keys'. */
static void (*main_exit_fn)(void);
static pthread_key_t main_exit_key;
static int main_exit_armed;

static void main_exit_destructor(void *value)
{
    (void)value;
    if (main_exit_fn)
        main_exit_fn();
}

int ebb__os_watch_main_exit(void (*fn)(void))
{
    int saved = errno;
    int ok = 0;
    if (ebb__os_thread_id() == ebb__os_pid()) {
        if (!main_exit_armed && pthread_key_create(&main_exit_key, main_exit_destructor) == 0)
            main_exit_armed = 1;
        main_exit_fn = fn;
        ok = main_exit_armed && pthread_setspecific(main_exit_key, (void *)1) == 0;
    }
    errno = saved;
    return ok ? 0 : -1;
}

void ebb__os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    pthread_atfork(prepare, parent, child);
}
