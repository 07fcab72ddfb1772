/*
 * linux_stack.c -- the calling thread's stack, and names for its addresses.
 *
 * The heap profiler (sample.c) records where a sampled block was
 * allocated as the return addresses on the stack, and a report prints them
 * as symbols (os.h, "stacks").
 *
 * It also tells the purger's starter whether the calling thread is inside
 * the dynamic loader: glibc frees a cached thread stack's TLS vector from
 * the loader (_dl_deallocate_tls) while holding the lock that
 * pthread_create takes, so a free there must not start a thread
 * (front/purger.c).
 *
 * Why it is shaped so: the C library's unwinder follows the DWARF tables,
 * so it works without frame pointers, but it is loaded (through malloc) on
 * first use and takes the loader's lock, so os.h tells the caller when it
 * may be called; where there is none (musl) no stack is captured rather
 * than a wrong one.  Naming an address asks the loader (dladdr) and formats
 * the answer by hand, into the caller's buffer, without allocating.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <string.h>
#include <sys/auxv.h>
#ifdef __GLIBC__
#include <execinfo.h>
#endif

/* The unwinder has run once (it is loaded: a backtrace no longer opens a
 * library or allocates). */
static _Atomic int unwinder_ready;

/* glibc's backtrace() (libgcc's DWARF unwinder, loaded on first use) gives
 * the return address in this function first: dropped, so pcs[0] is in our
 * caller (the sampler, which drops the rest of ebb's frames by address). */
__attribute__((noinline)) int ebb__os_backtrace(void **pcs, int max)
{
#ifdef __GLIBC__
    void *raw[128];
    int saved = errno;
    int n = backtrace(raw, max + 1 < 128 ? max + 1 : 128);
    errno = saved;
    atomic_store_explicit(&unwinder_ready, 1, memory_order_release);
    if (n <= 1)
        return 0;
    memcpy(pcs, raw + 1, (size_t)(n - 1) * sizeof(void *));
    return n - 1;
#else
    (void)pcs;
    (void)max;
    return 0;
#endif
}

void ebb__os_unwinder_prime(void)
{
    void *pcs[2];
    if (!atomic_load_explicit(&unwinder_ready, memory_order_acquire))
        (void)ebb__os_backtrace(pcs, 2);
}

/* The dynamic loader's code, [lo, hi), from the program headers the
 * auxiliary vector points at: no system call, no allocation.  Both 0 in a
 * static program, which has no loader. */
static _Atomic uintptr_t loader_lo, loader_hi;
static _Atomic int loader_known;

static void find_loader(void)
{
    uintptr_t base = (uintptr_t)getauxval(AT_BASE), lo = UINTPTR_MAX, hi = 0;
    if (base != 0) {
        const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)base;
        const ElfW(Phdr) *ph = (const ElfW(Phdr) *)(base + eh->e_phoff);
        for (unsigned i = 0; i < eh->e_phnum; i++)
            if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X)) {
                uintptr_t a = base + ph[i].p_vaddr;
                lo = a < lo ? a : lo;
                hi = a + ph[i].p_memsz > hi ? a + ph[i].p_memsz : hi;
            }
    }
    atomic_store_explicit(&loader_lo, hi ? lo : 0, memory_order_relaxed);
    atomic_store_explicit(&loader_hi, hi, memory_order_relaxed);
    atomic_store_explicit(&loader_known, 1, memory_order_release);
}

/* How many frames up the loader is looked for: ebb's own frames between
 * the caller and the C library's free are three or four. */
#define LOADER_FRAMES 12

/*
 * A static program has no loader to find among the callers: the C
 * library's thread code is linked into the program itself.  There glibc's
 * own lock word answers instead: `_dl_stack_cache_lock`, the lock over its
 * cache of thread stacks that pthread_create takes, is a plain variable of
 * libc.a (in a dynamic program it lives inside the loader, unexported, and
 * this weak reference stays NULL).  Held means pthread_create would wait
 * for it: by this very thread (a join or a thread's exit freeing TLS
 * vectors, the deadlock reproduced by tests/static/join.c), or briefly
 * by another; either way the start waits for a later call.
 */
#if defined(__GLIBC__)
extern int _dl_stack_cache_lock __attribute__((weak));
#endif

static int static_stack_cache_busy(void)
{
#if defined(__GLIBC__)
    int *lock = &_dl_stack_cache_lock;
    return lock != NULL && __atomic_load_n(lock, __ATOMIC_ACQUIRE) != 0;
#else
    return 0;
#endif
}

int ebb__os_inside_loader(void)
{
#ifdef __GLIBC__
    if (!atomic_load_explicit(&unwinder_ready, memory_order_acquire))
        return -1;
    if (!atomic_load_explicit(&loader_known, memory_order_acquire))
        find_loader();
    uintptr_t lo = atomic_load_explicit(&loader_lo, memory_order_relaxed);
    uintptr_t hi = atomic_load_explicit(&loader_hi, memory_order_relaxed);
    if (hi == 0)
        return static_stack_cache_busy();
    void *pcs[LOADER_FRAMES];
    /* ebb's own unwinder where it can answer without allocating (about
     * 1,000 instructions; glibc's backtrace() costs 19,000, once per start
     * of the purger, which the timeline restarts often). */
    int n = ebb__os_unwind_no_alloc(pcs, LOADER_FRAMES);
    if (n < 0)
        n = ebb__os_backtrace(pcs, LOADER_FRAMES);
    for (int i = 0; i < n; i++) {
        uintptr_t pc = (uintptr_t)pcs[i] - 1; /* a return address may end its function */
        if (pc >= lo && pc < hi)
            return 1;
    }
    return 0;
#else
    return 0;
#endif
}

static size_t sym_put_str(char *buf, size_t len, size_t at, const char *s)
{
    while (*s && at + 1 < len)
        buf[at++] = *s++;
    return at;
}

static size_t sym_put_hex(char *buf, size_t len, size_t at, uintptr_t v)
{
    char digits[2 + 2 * sizeof v + 1];
    int i = (int)sizeof digits - 1;
    digits[i] = 0;
    do {
        digits[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    digits[--i] = 'x';
    digits[--i] = '0';
    return sym_put_str(buf, len, at, digits + i);
}

size_t ebb__os_symbolise(const void *pc, char *buf, size_t len)
{
    if (len == 0)
        return 0;
    Dl_info info;
    size_t at = 0;
    int saved = errno;
    /* A return address may be one past its function's last byte. */
    int found = dladdr((const char *)pc - 1, &info) != 0;
    errno = saved;
    if (found && info.dli_sname && info.dli_saddr) {
        at = sym_put_str(buf, len, at, info.dli_sname);
        at = sym_put_str(buf, len, at, "+");
        at = sym_put_hex(buf, len, at, (uintptr_t)pc - (uintptr_t)info.dli_saddr);
    } else if (!found) {
        at = sym_put_hex(buf, len, at, (uintptr_t)pc);
    }
    if (found && info.dli_fname && info.dli_fname[0]) {
        /* Without a dynamic symbol (a function of the executable, which
         * exports none unless linked -rdynamic) the offset in the object is
         * what addr2line -e OBJECT takes. */
        int named = info.dli_sname && info.dli_saddr;
        at = sym_put_str(buf, len, at, named ? " (" : "(");
        at = sym_put_str(buf, len, at, info.dli_fname);
        if (!named) {
            at = sym_put_str(buf, len, at, "+");
            at = sym_put_hex(buf, len, at, (uintptr_t)pc - (uintptr_t)info.dli_fbase);
        }
        at = sym_put_str(buf, len, at, ")");
    }
    buf[at] = 0;
    return at;
}
