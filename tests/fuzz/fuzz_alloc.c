/*
 * fuzz_alloc.c -- libFuzzer harness for the ebb_* API.
 *
 * The input is a program: a sequence of operations over a table of 256
 * slots.  Every live block carries a pattern over its whole usable size,
 * checked before it is freed or reallocated; every result is checked against
 * the API's rules (alignment, usable size and size classes, zeroed calloc,
 * preserved realloc prefix, in-place realloc rule, NULL + ENOMEM / EINVAL on
 * failures with the old block intact).  ebb_check() runs every CHECK_EVERY
 * operations and at the end, after everything is freed.  Any violation prints
 * one line and aborts, which libFuzzer reports as a crash.
 *
 * Build (see tests/fuzz/run.sh, which also runs it):
 *   clang -g -O1 -fsanitize=fuzzer,undefined -Iinclude tests/fuzz/fuzz_alloc.c \
 *         <ebb built with -DEBB_NO_OVERRIDE>
 * Without libFuzzer (any compiler), -DFUZZ_STANDALONE gives a main() that
 * runs the files named on the command line, or random programs:
 *   fuzz_alloc [FILE...]          replay inputs
 *   fuzz_alloc --random N [SEED]  run N random programs
 *   fuzz_alloc --write-seeds DIR  write the seed corpus
 *
 * Encoding: each operation starts with an opcode byte; operands follow
 * (slot byte, size descriptor of 1-4 bytes, alignment byte, ...).  A
 * truncated operand reads as zero, so every input is a valid program.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebb.h"
#include "classes.h" /* the documented size-class rule, shared with the API tests */

/* The documented usable size of a large block is its size rounded up to a
 * page.  ebb currently hands out a cached mapping a few pages bigger and
 * reports that; test_malloc checks the rule, and this switch makes the fuzzer
 * insist on it too (-DFUZZ_STRICT_LARGE=1). */
#ifndef FUZZ_STRICT_LARGE
#define FUZZ_STRICT_LARGE 0
#endif

/* The harness's own loops over block contents need no coverage feedback;
 * instrumented (coverage, UBSan), they took most of the fuzzing time.  noinline:
 * inlined into an instrumented caller they would be instrumented again. */
#if defined(__clang__) && __clang_major__ >= 13
#define NO_COVERAGE __attribute__((no_sanitize("coverage", "undefined"), noinline))
#else
#define NO_COVERAGE
#endif

#define NSLOTS 256
#define MAX_OPS 4096
#define CHECK_EVERY 64
#define LIVE_BUDGET ((size_t)192 << 20) /* cap on live usable bytes */
#define PAGE ((size_t)4096)

/* ------------------------------------------------------------------------ */

static size_t op_index;
static const char *op_name = "start";

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_alloc: op #%zu (%s): ", op_index, op_name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

/* FUZZ_TRACE=1 in the environment prints every operation (to replay a crash). */
static int tracing = -1;

static void trace(const char *fmt, ...)
{
    if (tracing < 0) {
        const char *t = getenv("FUZZ_TRACE");
        tracing = t && *t && *t != '0';
    }
    if (!tracing)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "#%zu %s: ", op_index, op_name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

#define REQUIRE(cond, ...)                                                    \
    do {                                                                      \
        if (!(cond))                                                          \
            die(__VA_ARGS__);                                                 \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Input reader: bytes past the end read as zero.                           */

struct reader {
    const uint8_t *d;
    size_t n, i;
};

static unsigned u8(struct reader *r) { return r->i < r->n ? r->d[r->i++] : 0; }
static unsigned u16(struct reader *r) { unsigned a = u8(r); return a | u8(r) << 8; }
static int more(const struct reader *r) { return r->i < r->n; }

/* Sizes that must fail (kept below 64 TiB-ish values that overcommit could
 * grant; above PTRDIFF_MAX the answer is always NULL + ENOMEM). */
static size_t huge_size(unsigned v)
{
    switch (v % 6) {
    case 0: return SIZE_MAX - (v >> 3);
    case 1: return (size_t)PTRDIFF_MAX + 1 + (v >> 3);
    case 2: return SIZE_MAX / 2 + 1;
    case 3: return SIZE_MAX - PAGE + 1;
    case 4: return (size_t)1 << 63;
    default: return SIZE_MAX - ((size_t)v << 12);
    }
}

/* A size descriptor: selector byte, then value bytes. *must_fail is set for
 * sizes no allocator can satisfy. */
static size_t read_size(struct reader *r, int *must_fail)
{
    unsigned sel = u8(r);
    *must_fail = 0;
    switch (sel % 8) {
    case 0: return u8(r);                                  /* 0..255 */
    case 1: return u16(r) % 4096;                          /* small */
    case 2: {                                              /* up to ~128 KiB */
        size_t hi = u16(r);
        return hi * 2 + u8(r);
    }
    case 3: {                                              /* class edge +-1 */
        size_t c = class_table[u8(r) % class_count];
        return c + (sel >> 3) % 3 - 1;
    }
    case 4:                                                /* large, to ~400 KiB */
        if ((sel >> 3) & 3)
            return u16(r) % 4096;                          /* (3 in 4 small) */
        return SMALL_MAX + (size_t)u16(r) * 4;
    case 5: {                                              /* rarely up to 4 MiB */
        size_t mib = u8(r);
        size_t low = u16(r);
        if ((sel >> 3) & 7)
            return low % 1024;
        return ((mib % 4) << 20) + low;
    }
    case 6: *must_fail = 1; return huge_size(u16(r));
    default: return (sel >> 3) & 15;                       /* tiny, incl. 0 */
    }
}

/* An alignment: mostly a power of two up to 4 MiB; sometimes not. */
static size_t read_align(struct reader *r)
{
    unsigned b = u8(r);
    if (b < 0xE0)
        return (size_t)1 << (b % 23);
    return (size_t)(b - 0xDF) * 24 + 12; /* 12 * odd: never a power of two */
}

static int is_pow2(size_t a) { return a && !(a & (a - 1)); }

/* ------------------------------------------------------------------------ */
/* Slots and patterns.                                                       */

enum kind { K_PLAIN, K_ALIGNED, K_PAGE };

struct slot {
    unsigned char *p;
    size_t req;     /* requested size */
    size_t usable;  /* ebb_usable_size when made */
    size_t align;
    uint8_t seed;
    uint8_t kind;
};

static struct slot slots[NSLOTS];
static size_t live_usable;

/* The pattern is defined per 64-bit word (blocks are 16-aligned), so that
 * filling and checking megabytes stays fast; byte i is byte i % 8 of word
 * i / 8 (little-endian x86-64). */
static uint64_t wpat(uint8_t seed, size_t w)
{
    return (0x0101010101010101ull * seed) ^ (w * 0x9E3779B97F4A7C15ull) ^ (w >> 5);
}

static unsigned char pat(uint8_t seed, size_t i)
{
    return (unsigned char)(wpat(seed, i / 8) >> (8 * (i % 8)));
}

NO_COVERAGE static void fill_block(unsigned char *p, uint8_t seed, size_t n)
{
    size_t w = 0;
    for (; (w + 1) * 8 <= n; w++) {
        uint64_t v = wpat(seed, w);
        memcpy(p + 8 * w, &v, 8);
    }
    for (size_t i = 8 * w; i < n; i++)
        p[i] = pat(seed, i);
}

NO_COVERAGE static size_t first_bad(const unsigned char *p, uint8_t seed, size_t n)
{
    size_t w = 0;
    for (; (w + 1) * 8 <= n; w++) {
        uint64_t v;
        memcpy(&v, p + 8 * w, 8);
        if (v != wpat(seed, w))
            break;
    }
    for (size_t i = 8 * w; i < n; i++)
        if (p[i] != pat(seed, i))
            return i;
    return SIZE_MAX;
}

NO_COVERAGE static size_t first_nonzero(const unsigned char *p, size_t n)
{
    size_t w = 0;
    for (; (w + 1) * 8 <= n; w++) {
        uint64_t v;
        memcpy(&v, p + 8 * w, 8);
        if (v)
            break;
    }
    for (size_t i = 8 * w; i < n; i++)
        if (p[i])
            return i;
    return SIZE_MAX;
}

static void verify_slot(const struct slot *s, int k)
{
    size_t u = ebb_usable_size(s->p);
    REQUIRE(u == s->usable, "slot %d (%p, %zu bytes): usable size changed %zu -> %zu", k,
            (void *)s->p, s->req, s->usable, u);
    REQUIRE(ebb_owns(s->p) == 1, "slot %d (%p): live block not owned", k, (void *)s->p);
    size_t bad = first_bad(s->p, s->seed, s->usable);
    REQUIRE(bad == SIZE_MAX, "slot %d (%p, %zu bytes, usable %zu): byte %zu is %#x, not %#x",
            k, (void *)s->p, s->req, s->usable, bad, s->p[bad], pat(s->seed, bad));
}

/* The slot other than `except` that holds p, or -1. */
NO_COVERAGE static int live_slot_of(const unsigned char *p, int except)
{
    for (int j = 0; j < NSLOTS; j++)
        if (j != except && slots[j].p == p)
            return j;
    return -1;
}

/* Checks common to every new block; then it gets its pattern.  A fresh
 * plain block (check_class) must have exactly its size class's usable size. */
static void adopt(int k, unsigned char *p, size_t req, size_t align, int kind, uint8_t seed,
                  int check_class)
{
    trace("slot %d <- %p (%zu bytes, align %zu, usable %zu)", k, (void *)p, req, align,
          p ? ebb_usable_size(p) : 0);
    REQUIRE(p != NULL, "NULL for %zu bytes (align %zu)", req, align);
    REQUIRE(((uintptr_t)p & 15) == 0, "%p for %zu bytes not 16-aligned", (void *)p, req);
    REQUIRE(align <= 1 || ((uintptr_t)p & (align - 1)) == 0, "%p not %zu-aligned", (void *)p,
            align);
    REQUIRE(ebb_owns(p) == 1, "new block %p not owned", (void *)p);
    size_t u = ebb_usable_size(p);
    REQUIRE(u >= req, "%p: usable %zu < requested %zu", (void *)p, u, req);
    if (check_class && (FUZZ_STRICT_LARGE || class_usable(req) <= SMALL_MAX))
        REQUIRE(u == class_usable(req), "%p: usable %zu for %zu bytes, class says %zu",
                (void *)p, u, req, class_usable(req));
    if (check_class && class_usable(req) > SMALL_MAX)
        REQUIRE(u % PAGE == 0, "%p: usable %zu for %zu bytes: not whole pages", (void *)p, u,
                req);
    int dup = live_slot_of(p, k);
    REQUIRE(dup < 0, "new block %p is already live in slot %d", (void *)p, dup);
    struct slot *s = &slots[k];
    s->p = p;
    s->req = req;
    s->usable = u;
    s->align = align;
    s->seed = seed;
    s->kind = (uint8_t)kind;
    fill_block(p, seed, u);
    live_usable += u;
}

static void release(int k, unsigned how)
{
    struct slot *s = &slots[k];
    if (!s->p)
        return;
    verify_slot(s, k);
    trace("slot %d: free %p (%zu bytes, usable %zu) way %u", k, (void *)s->p, s->req, s->usable,
          how % 3);
    errno = 777;
    switch (how % 3) {
    case 0: ebb_free(s->p); break;
    case 1: ebb_free_sized(s->p, s->req); break;
    default: ebb_free_aligned_sized(s->p, s->align ? s->align : 16, s->req); break;
    }
    REQUIRE(errno == 777, "free changed errno to %d", errno);
    live_usable -= s->usable;
    memset(s, 0, sizeof *s);
}

/* Keep the live total bounded: shrink requests that would exceed it. */
static size_t budget(size_t n, int must_fail)
{
    if (must_fail)
        return n;
    if (live_usable + n + (4u << 20) > LIVE_BUDGET)
        return n & 0xfff;
    return n;
}

static void expect_fail(void *p, int err, const char *what, size_t a, size_t n)
{
    int e = errno;
    if (p)
        ebb_free(p);
    REQUIRE(p == NULL, "%s(%#zx, %#zx) = %p, expected failure", what, a, n, p);
    REQUIRE(e == err, "%s(%#zx, %#zx): errno %d, expected %d", what, a, n, e, err);
}

/* ------------------------------------------------------------------------ */

static void op_realloc(int k, size_t n, int must_fail, uint8_t seed, int array, size_t count)
{
    struct slot *s = &slots[k];
    if (s->p)
        verify_slot(s, k);
    struct slot old = *s;
    size_t total = n;
    int overflow = 0;
    if (array) {
        /* what fails is the product: 0 x huge is a valid 0 */
        overflow = __builtin_mul_overflow(count, n, &total);
        must_fail = !overflow && total > PTRDIFF_MAX;
    }
    errno = 0;
    unsigned char *q = array ? ebb_reallocarray(s->p, count, n) : ebb_realloc(s->p, n);
    int e = errno;
    trace("slot %d: %p (%zu bytes, usable %zu, kind %d) -> %#zx x %#zx = %p", k, (void *)old.p,
          old.req, old.usable, old.kind, array ? count : 1, n, (void *)q);
    if (overflow || must_fail) {
        if (q && q != old.p)
            ebb_free(q);
        REQUIRE(q == NULL && e == ENOMEM, "realloc%s(%p, %#zx x %#zx) = %p errno %d",
                array ? "array" : "", (void *)old.p, count, n, (void *)q, e);
        if (old.p)
            verify_slot(s, k); /* untouched, still valid */
        return;
    }
    if (total == 0 && old.p) {
        /* glibc: realloc(p, 0) frees p and returns NULL */
        REQUIRE(q == NULL, "realloc(%p, 0) = %p, expected NULL", (void *)old.p, (void *)q);
        live_usable -= old.usable;
        memset(s, 0, sizeof *s);
        return;
    }
    REQUIRE(q != NULL, "realloc(%p, %zu) failed, errno %d", (void *)old.p, total, e);
    if (old.p) {
        size_t keep = old.req < total ? old.req : total;
        size_t bad = first_bad(q, old.seed, keep);
        REQUIRE(bad == SIZE_MAX, "realloc(%p, %zu -> %zu) = %p: byte %zu not preserved",
                (void *)old.p, old.req, total, (void *)q, bad);
        if (old.kind == K_PLAIN && old.usable <= SMALL_MAX && total <= SMALL_MAX) {
            size_t c = class_usable(total);
            int stays = c <= old.usable && 4 * c > 3 * old.usable;
            REQUIRE((q == old.p) == stays, "realloc(%p usable %zu, %zu): %s, rule says %s",
                    (void *)old.p, old.usable, total, q == old.p ? "stayed" : "moved",
                    stays ? "stay" : "move");
        }
        if (old.kind == K_PLAIN && old.usable > SMALL_MAX && total >= old.req &&
            total <= old.usable)
            REQUIRE(q == old.p, "realloc(large %p usable %zu, %zu -> %zu) moved",
                    (void *)old.p, old.usable, old.req, total);
        live_usable -= old.usable;
        memset(s, 0, sizeof *s);
        if (q == old.p) {
            /* resized in place: still the same kind of block */
            adopt(k, q, total, old.align, old.kind, seed, 0);
            return;
        }
    }
    /* a new block, as from malloc */
    adopt(k, q, total, 0, K_PLAIN, seed, 1);
}

static void run_op(struct reader *r)
{
    unsigned opc = u8(r);
    int k = (int)u8(r);
    uint8_t seed = (uint8_t)(opc ^ (op_index * 7));
    int must_fail = 0;
    size_t n, a;
    void *p;

    switch (opc % 14) {
    case 0:
    case 1: /* malloc */
        op_name = "malloc";
        n = read_size(r, &must_fail);
        n = budget(n, must_fail);
        release(k, opc >> 4);
        errno = 0;
        p = ebb_malloc(n);
        if (must_fail)
            expect_fail(p, ENOMEM, "malloc", 0, n);
        else
            adopt(k, p, n, 0, K_PLAIN, seed, 1);
        break;
    case 2: { /* calloc */
        op_name = "calloc";
        size_t count = u8(r) % 17;
        if (opc & 0x80)
            count = (size_t)1 << (u8(r) % 64);
        n = read_size(r, &must_fail);
        size_t total;
        int over = __builtin_mul_overflow(count, n, &total);
        must_fail = !over && total > PTRDIFF_MAX; /* 0 x huge is a valid 0 */
        if (!over && !must_fail && budget(total, 0) != total)
            break; /* too big to keep */
        release(k, opc >> 4);
        errno = 0;
        p = ebb_calloc(count, n);
        if (over || must_fail) {
            expect_fail(p, ENOMEM, "calloc", count, n);
            break;
        }
        REQUIRE(p != NULL, "calloc(%zu, %zu) failed", count, n);
        size_t nz = first_nonzero(p, total);
        REQUIRE(nz == SIZE_MAX, "calloc(%zu, %zu) = %p: byte %zu not zero", count, n, p, nz);
        adopt(k, p, total, 0, K_PLAIN, seed, 1);
        break;
    }
    case 3:
    case 4: /* realloc */
        op_name = "realloc";
        n = read_size(r, &must_fail);
        n = budget(n, must_fail);
        op_realloc(k, n, must_fail, seed, 0, 1);
        break;
    case 5: { /* reallocarray */
        op_name = "reallocarray";
        size_t count = (opc & 0x80) ? (size_t)1 << (u8(r) % 64) : u8(r) % 9;
        n = read_size(r, &must_fail);
        size_t total;
        if (!__builtin_mul_overflow(count, n, &total) && !must_fail && total <= PTRDIFF_MAX &&
            budget(total, 0) != total)
            break;
        op_realloc(k, n, must_fail, seed, 1, count);
        break;
    }
    case 6: /* aligned_alloc */
        op_name = "aligned_alloc";
        a = read_align(r);
        n = read_size(r, &must_fail);
        n = budget(n, must_fail);
        release(k, opc >> 4);
        errno = 0;
        p = ebb_aligned_alloc(a, n);
        if (!is_pow2(a))
            expect_fail(p, EINVAL, "aligned_alloc", a, n);
        else if (must_fail)
            expect_fail(p, ENOMEM, "aligned_alloc", a, n);
        else
            adopt(k, p, n, a, K_ALIGNED, seed, 0);
        break;
    case 7: { /* posix_memalign */
        op_name = "posix_memalign";
        a = read_align(r);
        n = read_size(r, &must_fail);
        n = budget(n, must_fail);
        release(k, opc >> 4);
        void *out = (void *)(uintptr_t)0xdead0;
        int rc = ebb_posix_memalign(&out, a, n);
        if (!is_pow2(a) || a % sizeof(void *)) {
            REQUIRE(rc == EINVAL, "posix_memalign(%zu, %zu) = %d, expected EINVAL", a, n, rc);
            REQUIRE(out == (void *)(uintptr_t)0xdead0, "posix_memalign EINVAL touched *out");
        } else if (must_fail) {
            if (rc == 0)
                ebb_free(out);
            REQUIRE(rc == ENOMEM, "posix_memalign(%zu, %#zx) = %d, expected ENOMEM", a, n, rc);
        } else {
            REQUIRE(rc == 0, "posix_memalign(%zu, %zu) = %d", a, n, rc);
            adopt(k, out, n, a, K_ALIGNED, seed, 0);
        }
        break;
    }
    case 8: { /* memalign: non-powers of two round up */
        op_name = "memalign";
        a = read_align(r);
        n = read_size(r, &must_fail);
        n = budget(n, must_fail);
        release(k, opc >> 4);
        size_t a2 = 1;
        while (a2 < a)
            a2 <<= 1;
        errno = 0;
        p = ebb_memalign(a, n);
        if (must_fail)
            expect_fail(p, ENOMEM, "memalign", a, n);
        else
            adopt(k, p, n, a2, K_ALIGNED, seed, 0);
        break;
    }
    case 9: /* valloc / pvalloc */
        op_name = (opc & 0x10) ? "pvalloc" : "valloc";
        n = read_size(r, &must_fail);
        n = budget(n, must_fail);
        release(k, opc >> 5);
        errno = 0;
        p = (opc & 0x10) ? ebb_pvalloc(n) : ebb_valloc(n);
        if (must_fail) {
            expect_fail(p, ENOMEM, op_name, 0, n);
        } else {
            size_t want = (opc & 0x10) ? (n ? (n + PAGE - 1) & ~(PAGE - 1) : PAGE) : n;
            adopt(k, p, want, PAGE, K_PAGE, seed, 0);
            slots[k].req = n;
        }
        break;
    case 10:
    case 11: /* free */
        op_name = "free";
        release(k, opc >> 4);
        break;
    case 12: /* usable_size / owns, interior pointers */
        op_name = "usable_size";
        if (slots[k].p) {
            verify_slot(&slots[k], k);
            if (slots[k].usable > 16)
                REQUIRE(ebb_owns(slots[k].p + 16) == 0, "ebb_owns(%p + 16) != 0",
                        (void *)slots[k].p);
        }
        REQUIRE(ebb_usable_size(NULL) == 0, "usable_size(NULL) != 0");
        REQUIRE(ebb_owns(NULL) == 0, "owns(NULL) != 0");
        break;
    default: /* 13: check / collect */
        op_name = (opc & 0x10) ? "ebb_collect" : "ebb_check";
        if (opc & 0x10)
            ebb_collect((opc >> 5) & 1);
        REQUIRE(ebb_check() == 0, "ebb_check() failed");
        break;
    }
}

static size_t large_blocks_now(void)
{
    ebb_stats_t st;
    ebb_stats(&st);
    return st.large_blocks;
}

static void run_program(const uint8_t *data, size_t size)
{
    class_table_init();
    struct reader r = {data, size, 0};
    size_t large0 = large_blocks_now();
    for (op_index = 0; op_index < MAX_OPS && more(&r); op_index++) {
        run_op(&r);
        if (op_index % CHECK_EVERY == CHECK_EVERY - 1) {
            op_name = "periodic ebb_check";
            REQUIRE(ebb_check() == 0, "ebb_check() failed");
        }
    }
    op_name = "final free";
    for (int k = 0; k < NSLOTS; k++)
        release(k, (unsigned)k);
    REQUIRE(live_usable == 0, "bookkeeping: %zu live bytes left", live_usable);
    op_name = "final ebb_check";
    REQUIRE(ebb_check() == 0, "ebb_check() failed");
    size_t large1 = large_blocks_now();
    REQUIRE(large1 == large0, "large_blocks %zu at the start, %zu after freeing everything",
            large0, large1);
    ebb_stats_t st;
    ebb_stats(&st);
    REQUIRE(st.errors == 0, "ebb counted %zu errors in a correct program", st.errors);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_program(data, size);
    return 0;
}

/* ------------------------------------------------------------------------ */
#ifdef FUZZ_STANDALONE

static uint64_t rng = 88172645463325252ull;
static unsigned rnd8(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 24) & 0xff;
}

/* Seeds: each a short program exercising one area. */
struct seed {
    const char *name;
    size_t len;
    uint8_t bytes[64];
};

static const struct seed seeds[] = {
    /* malloc tiny, small, class edge, large; free them */
    {"malloc_free", 26, {0, 1, 7, 0, 2, 1, 0x10, 0x02, 8, 3, 3, 40, 0x30, 4, 4, 0x00, 0x10,
                         10, 1, 10, 2, 10, 3, 10, 4, 13}},
    /* calloc, realloc grow / shrink / to zero */
    {"calloc_realloc", 30, {2, 5, 3, 1, 0x40, 0x01, 3, 5, 1, 0x00, 0x08, 3, 5, 0, 20, 4, 5,
                            4, 0x00, 0x04, 3, 5, 7, 3, 5, 7 << 3, 12, 5, 10, 5}},
    /* aligned_alloc / posix_memalign / memalign over alignments */
    {"aligned", 30, {6, 1, 4, 1, 0x00, 0x01, 7, 2, 12, 0, 100, 8, 3, 22, 4, 0x00, 0x00,
                     6, 4, 0xE5, 0, 9, 7, 5, 3, 1, 0x10, 0x00, 9, 6}},
    /* huge sizes, overflowing calloc / reallocarray */
    {"failures", 24, {0, 9, 6, 0xff, 0xff, 2, 10, 0x82, 40, 1, 0x10, 0x00, 3, 11, 6, 0, 0,
                      0x85, 11, 50, 6, 1, 1, 13}},
    /* valloc / pvalloc, usable size, collect */
    {"pages", 20, {9, 20, 1, 0x10, 0x00, 0x19, 21, 7, 12, 20, 12, 21, 0x1d, 0, 0x3d, 0, 10,
                   20, 10, 21}},
};

static int write_seeds(const char *dir)
{
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, seeds[i].name);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(seeds[i].bytes, 1, seeds[i].len, f) != seeds[i].len) {
            perror(path);
            return 1;
        }
        fclose(f);
    }
    /* and two longer random programs */
    for (int j = 0; j < 2; j++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/random%d", dir, j);
        FILE *f = fopen(path, "wb");
        if (!f)
            return 1;
        for (int i = 0; i < 600; i++)
            fputc((int)rnd8(), f);
        fclose(f);
    }
    return 0;
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    run_program(buf, n);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--write-seeds") == 0)
        return write_seeds(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "--random") == 0) {
        long iters = strtol(argv[2], NULL, 10);
        if (argc >= 4)
            rng = strtoull(argv[3], NULL, 10) | 1;
        static uint8_t buf[8192];
        for (long it = 0; it < iters; it++) {
            size_t n = 64 + rnd8() * 24u;
            for (size_t i = 0; i < n; i++)
                buf[i] = (uint8_t)rnd8();
            run_program(buf, n);
        }
        printf("fuzz_alloc: %ld random programs OK\n", iters);
        return 0;
    }
    for (int i = 1; i < argc; i++)
        if (run_file(argv[i]))
            return 1;
    printf("fuzz_alloc: %d inputs OK\n", argc - 1);
    return 0;
}
#endif
