/*
 * test_foreign.c -- pointers ebb did not make.
 *
 * ebb_free(), ebb_realloc() and ebb_usable_size() on a pointer that is not the
 * start of a live ebb block (stack, globals, string literals, the test's own
 * mmap()s, wild addresses, interior pointers of large blocks) must neither
 * crash nor corrupt anything:
 *   - ebb_free ignores it, prints a one-line diagnosis on stderr
 *     (under EBB_ON_ERROR=warn, which this test sets; by default it aborts,
 *     as glibc does: test_misuse.c) and counts it in stats.foreign_frees;
 *   - ebb_usable_size returns 0, ebb_owns returns 0;
 *   - ebb_realloc returns NULL with errno EINVAL and leaves the memory alone;
 *   - afterwards ebb_check() == 0 and the allocator still works.
 * ebb promises to recognise such pointers without touching them, so several
 * probes point into PROT_NONE memory: any read of (or near) them crashes.
 *
 * Build: cc -std=c11 -Iinclude tests/api/test_foreign.c build/libebb.a -lcmocka -lpthread
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ebb.h"
#include "api.h"
#include "child.h"



static _Alignas(64) unsigned char global_array[8192];
static _Alignas(16) const char const_array[64] = "a constant array in .rodata";

static size_t foreign_frees(void)
{
    ebb_stats_t s;
    memset(&s, 0, sizeof s);
    ebb_stats(&s);
    return s.foreign_frees;
}

static void fill(void *p, size_t n, unsigned char seed)
{
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        c[i] = (unsigned char)(seed + i * 13 + (i >> 8));
}

static size_t verify(const void *p, size_t n, unsigned char seed)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != (unsigned char)(seed + i * 13 + (i >> 8)))
            return i;
    return SIZE_MAX;
}

/*
 * Run every foreign-pointer operation on p (the callers check afterwards that
 * the memory behind p is unchanged).  Returns the number of ebb_free calls
 * made, each of which must count as a foreign free.
 */
static size_t probe_foreign(void *p, const char *what)
{
    EXPECT(ebb_owns(p) == 0, "ebb_owns(%s %p) != 0", what, p);
    EXPECT(ebb_usable_size(p) == 0, "ebb_usable_size(%s %p) = %zu", what, p,
           ebb_usable_size(p));

    errno = 0;
    void *q = ebb_realloc(p, 100);
    EXPECT(q == NULL, "ebb_realloc(%s %p, 100) = %p", what, p, q);
    EXPECT(errno == EINVAL, "ebb_realloc(%s %p, 100): errno %d, expected EINVAL", what, p,
           errno);
    errno = 0;
    q = ebb_realloc(p, 1 << 20);
    EXPECT(q == NULL && errno == EINVAL, "ebb_realloc(%s %p, 1 MiB) = %p, errno %d", what, p,
           q, errno);
    errno = 0;
    q = ebb_reallocarray(p, 10, 10);
    EXPECT(q == NULL && errno == EINVAL, "ebb_reallocarray(%s %p) = %p, errno %d", what, p, q,
           errno);

    /* Whether realloc / usable_size count as foreign frees is not specified;
     * two ebb_free calls must add exactly two. */
    size_t before = foreign_frees();
    errno = 4321;
    ebb_free(p);
    EXPECT(errno == 4321, "ebb_free(%s %p) changed errno to %d", what, p, errno);
    ebb_free(p); /* twice: still ignored */
    EXPECT(foreign_frees() == before + 2, "2 x ebb_free(%s %p): foreign_frees %zu -> %zu", what,
           p, before, foreign_frees());
    return 2;
}

/* The allocator still works: a few blocks of every kind. */
static void allocator_works(void)
{
    void *v[40];
    for (int i = 0; i < 40; i++) {
        size_t n = (size_t)(i % 4 == 3 ? 200000 + i : i * 50);
        v[i] = i % 5 == 4 ? ebb_aligned_alloc(4096, n) : ebb_malloc(n);
        assert_non_null(v[i]);
        assert_int_equal(ebb_owns(v[i]), 1);
        fill(v[i], n, (unsigned char)i);
    }
    for (int i = 0; i < 40; i++) {
        size_t n = (size_t)(i % 4 == 3 ? 200000 + i : i * 50);
        assert_true(verify(v[i], n, (unsigned char)i) == SIZE_MAX);
        ebb_free(v[i]);
    }
}

/* ------------------------------------------------------------------------ */

/* The diagnosis: exactly one line on stderr for one foreign free. */
static void test_diagnosis_is_one_line(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fds[1], 2) == 2);
    char local[32];
    size_t before = foreign_frees();
    ebb_free(local + 16);
    size_t after = foreign_frees();
    fflush(stderr);
    assert_true(dup2(saved, 2) == 2);
    close(saved);
    close(fds[1]);
    char buf[4096];
    size_t got = read_all(fds[0], buf, sizeof buf);
    close(fds[0]);
    size_t lines = 0;
    for (size_t i = 0; i < got; i++)
        lines += buf[i] == '\n';
    EXPECT(lines == 1 && got > 1 && buf[got - 1] == '\n',
           "foreign free printed %zu lines (%zu bytes): \"%s\"", lines, got, buf);
    EXPECT(after == before + 1, "foreign_frees %zu -> %zu", before, after);
}

static void test_stack_pointers(void **state)
{
    (void)state;
    _Alignas(64) unsigned char buf[512];
    fill(buf, sizeof buf, 1);
    size_t before = foreign_frees(), n = 0;
    n += probe_foreign(buf, "stack");
    n += probe_foreign(buf + 16, "stack+16");
    n += probe_foreign(buf + 64, "stack+64");
    n += probe_foreign(buf + 3, "stack+3");
    EXPECT(verify(buf, sizeof buf, 1) == SIZE_MAX, "stack buffer modified at %zu",
           verify(buf, sizeof buf, 1));
    EXPECT(foreign_frees() >= before + n, "foreign_frees %zu -> %zu, expected at least +%zu",
           before, foreign_frees(), n);
    allocator_works();
}

static void test_static_pointers(void **state)
{
    (void)state;
    fill(global_array, sizeof global_array, 2);
    size_t before = foreign_frees(), n = 0;
    n += probe_foreign(global_array, "global");
    n += probe_foreign(global_array + 16, "global+16");
    n += probe_foreign(global_array + 4096, "global+4096");
    n += probe_foreign((void *)const_array, "const array");
    n += probe_foreign((void *)"a string literal", "string literal");
    n += probe_foreign((void *)(uintptr_t)&foreign_frees, "function");
    n += probe_foreign((void *)&errno, "errno (TLS)");
    EXPECT(verify(global_array, sizeof global_array, 2) == SIZE_MAX, "global modified");
    assert_string_equal(const_array, "a constant array in .rodata");
    EXPECT(foreign_frees() >= before + n, "foreign_frees %zu -> %zu, expected at least +%zu",
           before, foreign_frees(), n);
    allocator_works();
}

/* Read-write mapping made by the test: contents must survive. */
static void test_own_mmap(void **state)
{
    (void)state;
    size_t len = 256 * KiB;
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    fill(m, len, 3);
    size_t before = foreign_frees(), n = 0;
    static const size_t offs[] = {0, 16, 64, 4096, 65536, 131072 + 16, 256 * KiB - 16};
    for (size_t k = 0; k < ARRAY_LEN(offs); k++)
        n += probe_foreign(m + offs[k], "own mmap");
    size_t bad = verify(m, len, 3);
    EXPECT(bad == SIZE_MAX, "own mapping modified at offset %zu", bad);
    EXPECT(foreign_frees() >= before + n, "foreign_frees %zu -> %zu, expected at least +%zu",
           before, foreign_frees(), n);
    munmap(m, len);
    allocator_works();
}

/*
 * PROT_NONE mapping aligned to 64 MiB: an allocator that finds its metadata by
 * masking the pointer (to any power of two up to 64 MiB) and reads it there,
 * or reads a header just before the pointer, crashes here.
 */
static void test_prot_none_mapping(void **state)
{
    (void)state;
    size_t align = 64 * MiB, len = 2 * align;
    unsigned char *raw = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                              -1, 0);
    assert_true(raw != MAP_FAILED);
    unsigned char *base = (unsigned char *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
    size_t before = foreign_frees(), n = 0;
    static const size_t offs[] = {0, 16, 64, 4096, 4096 + 16, 65536, 1 << 20, (1 << 21) + 48,
                                  (1 << 22) + 4096, 32 * MiB + 16, 64 * MiB - 16};
    for (size_t k = 0; k < ARRAY_LEN(offs); k++)
        n += probe_foreign(base + offs[k], "PROT_NONE mapping");
    EXPECT(foreign_frees() >= before + n, "foreign_frees %zu -> %zu, expected at least +%zu",
           before, foreign_frees(), n);
    munmap(raw, len);
    allocator_works();
}

/* Addresses nothing is mapped at, including non-canonical and kernel ones. */
static void test_wild_addresses(void **state)
{
    (void)state;
    static const uintptr_t wild[] = {
        16,
        4096,
        0x10000,
        0x100000,
#if UINTPTR_MAX > 0xffffffffu
        (uintptr_t)1 << 32,
        (uintptr_t)1 << 40,
        ((uintptr_t)1 << 46) + 4096,
        0x7ffffffff000,
        0x7ffffffffff0,
        0x800000000000, /* first non-canonical address */
        0x800000001000,
        0x0000fffffffff000,
        (uintptr_t)1 << 56,
        0xffff800000000000, /* kernel half */
        0xffffffffff600000, /* vsyscall page */
#else
        0xc0000000, /* the kernel's quarter under a 32-bit kernel */
        0xffffe000, /* past a 32-bit process's space under a 64-bit kernel */
        0xfffff000,
#endif
        UINTPTR_MAX & ~(uintptr_t)15,
        UINTPTR_MAX & ~(uintptr_t)4095,
    };
    size_t before = foreign_frees(), n = 0;
    for (size_t k = 0; k < ARRAY_LEN(wild); k++) {
        char what[64];
        snprintf(what, sizeof what, "wild address %#lx", (unsigned long)wild[k]);
        n += probe_foreign((void *)wild[k], what);
    }
    EXPECT(foreign_frees() >= before + n, "foreign_frees %zu -> %zu, expected at least +%zu",
           before, foreign_frees(), n);
    allocator_works();
}

/* Interior pointers of a live large block: ignored, the block stays intact. */
static void test_large_interior(void **state)
{
    (void)state;
    static const size_t sizes[] = {131073, 200000, 2 * MiB, 9 * MiB + 5};
    for (size_t k = 0; k < ARRAY_LEN(sizes); k++) {
        size_t len = sizes[k];
        unsigned char *p = ebb_malloc(len);
        assert_non_null(p);
        size_t u = ebb_usable_size(p);
        fill(p, u, 4);
        ebb_stats_t s0;
        ebb_stats(&s0);
        size_t before = s0.foreign_frees, n = 0;
        size_t offs[] = {16, 32, 64, 4096, 4096 + 16, (len / 2) & ~(PAGE - 1), u - PAGE,
                         u - 16};
        for (size_t o = 0; o < ARRAY_LEN(offs); o++) {
            char what[64];
            snprintf(what, sizeof what, "large(%zu)+%zu", len, offs[o]);
            n += probe_foreign(p + offs[o], what);
        }
        EXPECT(foreign_frees() >= before + n, "foreign_frees %zu -> %zu, expected at least +%zu",
               before, foreign_frees(), n);
        EXPECT(ebb_owns(p) == 1, "large(%zu) no longer owned", len);
        EXPECT(ebb_usable_size(p) == u, "large(%zu): usable %zu -> %zu", len, u,
               ebb_usable_size(p));
        size_t bad = verify(p, u, 4);
        EXPECT(bad == SIZE_MAX, "large(%zu): byte %zu changed", len, bad);
        ebb_stats_t s1;
        ebb_stats(&s1);
        EXPECT(s1.large_blocks == s0.large_blocks, "large_blocks %zu -> %zu", s0.large_blocks,
               s1.large_blocks);
        /* The block is still fully usable: grow it, then free it for real. */
        p = ebb_realloc(p, u + 5 * PAGE);
        assert_non_null(p);
        assert_true(verify(p, u, 4) == SIZE_MAX);
        ebb_free(p);
        ebb_stats(&s1);
        EXPECT(s1.large_blocks == s0.large_blocks - 1, "large_blocks %zu -> %zu after free",
               s0.large_blocks, s1.large_blocks);
    }
    allocator_works();
}

/* Interior pointers of aligned large blocks. */
static void test_aligned_large_interior(void **state)
{
    (void)state;
    unsigned char *p = ebb_aligned_alloc(1 << 21, 300000);
    assert_non_null(p);
    fill(p, 300000, 5);
    size_t before = foreign_frees(), n = 0;
    n += probe_foreign(p + 16, "aligned large+16");
    n += probe_foreign(p + 8192, "aligned large+8192");
    assert_true(foreign_frees() >= before + n);
    assert_int_equal(ebb_owns(p), 1);
    assert_true(verify(p, 300000, 5) == SIZE_MAX);
    ebb_free(p);
}

/* ebb_free_sized / ebb_free_aligned_sized ignore foreign pointers too. */
static void test_sized_frees_foreign(void **state)
{
    (void)state;
    unsigned char buf[64];
    fill(buf, sizeof buf, 6);
    unsigned char *l = ebb_malloc(MiB);
    assert_non_null(l);
    fill(l, MiB, 7);
    size_t before = foreign_frees();
    ebb_free_sized(buf, sizeof buf);
    ebb_free_aligned_sized(buf, 16, sizeof buf);
    ebb_free_sized(global_array + 32, 32);
    ebb_free_sized(l + 4096, MiB - 4096);
    ebb_free_aligned_sized(l + 65536, 65536, 4096);
    EXPECT(foreign_frees() == before + 5, "foreign_frees %zu -> %zu, expected +5", before,
           foreign_frees());
    assert_true(verify(buf, sizeof buf, 6) == SIZE_MAX);
    assert_true(verify(l, MiB, 7) == SIZE_MAX);
    assert_int_equal(ebb_owns(l), 1);
    ebb_free_sized(l, MiB);
    allocator_works();
}

/* Many foreign frees in a row do not disturb blocks allocated in between. */
static void test_interleaved(void **state)
{
    (void)state;
    enum { N = 2000 };
    void **v = ebb_calloc(N, sizeof *v);
    assert_non_null(v);
    unsigned char stackbuf[256];
    size_t before = foreign_frees(), n = 0;
    for (int i = 0; i < N; i++) {
        size_t sz = (size_t)(i * 7 % 1500);
        v[i] = ebb_malloc(sz);
        assert_non_null(v[i]);
        fill(v[i], sz, (unsigned char)i);
        if (i % 10 == 0) {
            ebb_free(stackbuf + (i % 16) * 16);
            ebb_free(global_array + (i % 256) * 16);
            n += 2;
        }
    }
    EXPECT(foreign_frees() >= before + n, "foreign_frees %zu -> %zu, expected at least +%zu",
           before, foreign_frees(), n);
    for (int i = 0; i < N; i++) {
        size_t sz = (size_t)(i * 7 % 1500);
        EXPECT(verify(v[i], sz, (unsigned char)i) == SIZE_MAX, "block %d changed", i);
        ebb_free(v[i]);
    }
    ebb_free(v);
}

/*
 * Aspirational: ebb_free of an interior pointer of a *small* block (p + 16 of
 * a 64-byte block, p + 8 of a 1000-byte block).  Run in a child so that a
 * crash or corruption fails this test only.  The child checks that the block
 * stays live and intact, that no later allocation overlaps it, and that
 * ebb_check() == 0.
 */
static int small_interior_child(size_t size, size_t off)
{
    unsigned char *p = ebb_malloc(size);
    if (!p)
        return 10;
    size_t u = ebb_usable_size(p);
    fill(p, u, 8);
    if (ebb_owns(p + off) != 0)
        return 11;
    if (ebb_usable_size(p + off) != 0)
        return 12;
    errno = 0;
    if (ebb_realloc(p + off, 10) != NULL || errno != EINVAL)
        return 13;
    ebb_free(p + off);
    if (ebb_owns(p) != 1 || ebb_usable_size(p) != u)
        return 14;
    enum { N = 2000 };
    static void *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = ebb_malloc(size);
        if (!v[i])
            return 15;
        uintptr_t a = (uintptr_t)v[i], lo = (uintptr_t)p, hi = lo + u;
        if (a == lo)
            return 19; /* the interior free released the whole block */
        if (a < hi && a + ebb_usable_size(v[i]) > lo)
            return 16; /* a new block overlaps the live one */
        memset(v[i], 0xEE, ebb_usable_size(v[i]));
    }
    if (verify(p, u, 8) != SIZE_MAX)
        return 17;
    for (int i = 0; i < N; i++)
        ebb_free(v[i]);
    ebb_free(p);
    if (ebb_check() != 0)
        return 18;
    return 0;
}

static void test_small_interior_free_aspirational(void **state)
{
    (void)state;
    static const size_t cases[][2] = {{64, 16}, {64, 32}, {1000, 8}, {1024, 512}, {48, 1}};
    int failures = 0;
    for (size_t k = 0; k < ARRAY_LEN(cases); k++) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            alarm(30);
            _exit(small_interior_child(cases[k][0], cases[k][1]));
        }
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            print_error("free(small(%zu) + %zu): child %s %d (10-19: see "
                        "small_interior_child)\n",
                        cases[k][0], cases[k][1],
                        WIFEXITED(st) ? "exited with" : "killed by signal",
                        WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            failures++;
        }
    }
    EXPECT(failures == 0, "%d of %zu cases failed", failures, ARRAY_LEN(cases));
}

/* ------------------------------------------------------------------------ */


int main(int argc, char **argv)
{
    (void)argc;
    /* The behaviour under test is EBB_ON_ERROR=warn: make sure it is set
     * before the library reads its options (re-exec if needed). */
    const char *mode = getenv("EBB_ON_ERROR");
    if (!mode || strcmp(mode, "warn") != 0) {
        setenv("EBB_ON_ERROR", "warn", 1);
        execv("/proc/self/exe", argv);
        perror("execv /proc/self/exe");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        T(test_diagnosis_is_one_line),
        T(test_stack_pointers),
        T(test_static_pointers),
        T(test_own_mmap),
        T(test_prot_none_mapping),
        T(test_wild_addresses),
        T(test_large_interior),
        T(test_aligned_large_interior),
        T(test_sized_frees_foreign),
        T(test_interleaved),
        T(test_small_interior_free_aspirational),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
