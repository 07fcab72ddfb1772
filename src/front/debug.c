/*
 * debug.c -- the debug heap (EBB_DEBUG=1): overruns, writes after free and
 * double frees caught at run time, with no rebuild; and valgrind's memcheck
 * told about every block, so it reports a program's leaks and overruns while
 * ebb is its allocator.
 *
 * Owns: the layout of a debug block, the quarantine, and ebb__debug_on.
 *
 * A request of n bytes gets an ordinary block of at least n + 16 bytes (its
 * usable size U, the class's or the large block's):
 *
 *     [ n bytes: the program's | guard: 0xFB up to U - 8 | record ]
 *
 * The record (the last 8 bytes) holds n, mixed with a per-process key and
 * whether the block is out or in the quarantine, so an overrun that reaches
 * it, or a free of a block in the quarantine, is told from a live block.  A
 * new block's bytes are 0xCD (calloc's are zero), a freed one's 0xDD: code
 * that reads uninitialised or freed memory sees a pattern, not plausible
 * data.  free checks the guard and the record, fills the block and puts it
 * in the quarantine, a FIFO of at most EBB_DEBUG_QUARANTINE_BLOCKS blocks and
 * EBB_DEBUG_QUARANTINE_BYTES bytes; a block leaves it, checked to be 0xDD
 * still (a write after free otherwise), only when newer frees push it out,
 * and only then is it freed for reuse.  malloc_usable_size says n, so a
 * program that trusts it never writes into the guard.
 *
 * The fast paths are untouched: the debug heap turns the thread caches off
 * (core/thread.c), so every call reaches the front's slow paths, which ask
 * ebb__debug_on first.  Speed is not the point here; a debug block costs
 * about 16 bytes more and each call a fill and a check of its bytes.
 *
 * Valgrind: client requests (valgrind/memcheck.h, a few instructions that do
 * nothing outside valgrind) register each block as malloc-like (its n bytes
 * undefined or zeroed, the guard no-access) and unregister it at free, so
 * memcheck reports leaks ("definitely lost"), overruns ("invalid write") and
 * uses after free of ebb's blocks as it does of glibc's.
 */
#include "internal.h"

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define EBB_HAVE_VALGRIND 1
#endif
#endif
#ifndef EBB_HAVE_VALGRIND
#define VALGRIND_MALLOCLIKE_BLOCK(addr, size, redzone, zeroed) ((void)0)
#define VALGRIND_FREELIKE_BLOCK(addr, redzone) ((void)0)
#define VALGRIND_MAKE_MEM_NOACCESS(addr, len) ((void)0)
#define VALGRIND_MAKE_MEM_UNDEFINED(addr, len) ((void)0)
#define VALGRIND_MAKE_MEM_DEFINED(addr, len) ((void)0)
#endif

#define NEW_BYTE 0xCD
#define FREED_BYTE 0xDD
#define GUARD_BYTE 0xFB
#define RECORD_BYTES 8
#define FREED_FLAG ((uint64_t)1 << 63)

EBB_HIDDEN int ebb__debug_on;

static struct {
    ebb__lock_t lock;
    void *block[EBB_DEBUG_QUARANTINE_BLOCKS]; /* oldest at head */
    size_t usable[EBB_DEBUG_QUARANTINE_BLOCKS];
    unsigned head, count;
    size_t bytes;
    uint64_t key;
} debug = { .lock = EBB_LOCK_INIT };

void ebb__debug_start(void)
{
    if (!ebb__opt.debug)
        return;
    debug.key = ebb__os_random64() & ~FREED_FLAG;
    ebb__debug_on = 1;
}

size_t ebb__debug_request(size_t n)
{
    return n > (size_t)PTRDIFF_MAX - 2 * RECORD_BYTES ? (size_t)PTRDIFF_MAX + 1
                                                      : n + 2 * RECORD_BYTES;
}

static uint64_t record_read(const char *p, size_t usable)
{
    uint64_t r;
    memcpy(&r, p + usable - RECORD_BYTES, sizeof r);
    return r ^ debug.key;
}

static void record_write(char *p, size_t usable, uint64_t value)
{
    value ^= debug.key;
    memcpy(p + usable - RECORD_BYTES, &value, sizeof value);
}

/* The first byte of [from, to) of p that is not `byte`, or `to`. */
static size_t first_not(const char *p, size_t from, size_t to, int byte)
{
    for (size_t i = from; i < to; i++)
        if ((unsigned char)p[i] != byte)
            return i;
    return to;
}

void *ebb__debug_dress(void *block, size_t usable, size_t n, int zero)
{
    char *p = block;
    VALGRIND_MAKE_MEM_UNDEFINED(p, usable);
    memset(p, zero ? 0 : NEW_BYTE, n);
    memset(p + n, GUARD_BYTE, usable - RECORD_BYTES - n);
    record_write(p, usable, n);
    VALGRIND_MALLOCLIKE_BLOCK(p, n, 0, zero);
    VALGRIND_MAKE_MEM_NOACCESS(p + n, usable - n);
    return p;
}

/* The requested size of debug block p (its usable size `usable`), checked:
 * a damaged record or guard, or a block already freed, is reported (fn
 * names the call) and (size_t)-1 returned. */
size_t ebb__debug_size(const char *fn, const void *block, size_t usable)
{
    const char *p = block;
    VALGRIND_MAKE_MEM_DEFINED(p + usable - RECORD_BYTES, RECORD_BYTES);
    uint64_t r = record_read(p, usable);
    char fault[160];
    if (r & FREED_FLAG && (r & ~FREED_FLAG) <= usable - 2 * RECORD_BYTES) {
        if (fn[0] == 'f')
            ebb__format(fault, sizeof fault, "double free of a %zu-byte block (freed, it waits "
                        "in the debug quarantine)", (size_t)(r & ~FREED_FLAG));
        else
            ebb__format(fault, sizeof fault, "%s of a freed %zu-byte block (it waits in the "
                        "debug quarantine)", fn, (size_t)(r & ~FREED_FLAG));
        ebb__report_corruption(fn, p, fault);
        return (size_t)-1;
    }
    if (r > usable - 2 * RECORD_BYTES) {
        ebb__report_corruption(fn, p, "overrun: the debug record after the block was "
                                      "overwritten (or the block is not a debug block)");
        return (size_t)-1;
    }
    size_t n = (size_t)r;
    VALGRIND_MAKE_MEM_DEFINED(p + n, usable - RECORD_BYTES - n);
    size_t bad = first_not(p, n, usable - RECORD_BYTES, GUARD_BYTE);
    VALGRIND_MAKE_MEM_NOACCESS(p + n, usable - n);
    if (bad != usable - RECORD_BYTES) {
        ebb__format(fault, sizeof fault,
                    "overrun: byte %zu past the end of a %zu-byte block was overwritten",
                    bad - n, n);
        ebb__report_corruption(fn, p, fault);
        return (size_t)-1;
    }
    return n;
}

/* A block leaves the quarantine: still all FREED_BYTE, or it was written
 * after it was freed. */
static void leave_checked(char *p, size_t usable)
{
    VALGRIND_MAKE_MEM_DEFINED(p, usable);
    size_t n = (size_t)(record_read(p, usable) & ~FREED_FLAG);
    size_t bad = first_not(p, 0, n, FREED_BYTE);
    if (bad != n) {
        char fault[160];
        ebb__format(fault, sizeof fault,
                    "use after free: byte %zu of a freed %zu-byte block was written while it "
                    "waited in the debug quarantine", bad, n);
        ebb__report_corruption("free", p, fault);
    }
}

void *ebb__debug_release(const char *fn, void *block, size_t usable, size_t *out_usable)
{
    char *p = block;
    size_t n = ebb__debug_size(fn, p, usable);
    if (n == (size_t)-1)
        return NULL; /* reported; the block is left alone */
    VALGRIND_MAKE_MEM_DEFINED(p, usable);
    memset(p, FREED_BYTE, n);
    record_write(p, usable, n | FREED_FLAG);
    VALGRIND_FREELIKE_BLOCK(p, 0);
    VALGRIND_MAKE_MEM_NOACCESS(p, usable);
    void *out = NULL;
    ebb__lock(&debug.lock);
    if (debug.count == EBB_DEBUG_QUARANTINE_BLOCKS || debug.bytes > EBB_DEBUG_QUARANTINE_BYTES) {
        out = debug.block[debug.head];
        *out_usable = debug.usable[debug.head];
        debug.head = (debug.head + 1) % EBB_DEBUG_QUARANTINE_BLOCKS;
        debug.count--;
        debug.bytes -= *out_usable;
    }
    unsigned at = (debug.head + debug.count) % EBB_DEBUG_QUARANTINE_BLOCKS;
    debug.block[at] = p;
    debug.usable[at] = usable;
    debug.count++;
    debug.bytes += usable;
    ebb__unlock(&debug.lock);
    if (out)
        leave_checked(out, *out_usable);
    return out;
}

/* No other lock is taken under the quarantine's. */
EBB_HIDDEN const ebb__lockset_t ebb__debug_locks = { .name = "debug quarantine",
                                                      .one = &debug.lock };
