/*
 * test_debugheap.c -- EBB_DEBUG=1, set at run time: new blocks read 0xCD
 * (calloc's zero), malloc_usable_size is the size asked for, an overrun is
 * caught when the block is freed, a write after free when the block leaves
 * the quarantine, a second free while it waits there; realloc moves and
 * keeps the contents.  Each in a child process, small and large blocks.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "child.h"

static void *volatile kept;

/* Frees enough other blocks to push every earlier free out of the
 * quarantine (it holds at most 1024). */
static void flush_quarantine(void)
{
    for (int i = 0; i < 3000; i++)
        ebb_free(ebb_malloc(16));
}

static int child_main(const char *what)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    size_t n = strstr(what, "large") ? 300 * KiB : 40;
    if (!strcmp(what, "fill")) {
        unsigned char *p = ebb_malloc(40), *z = ebb_calloc(1, 40), *l = ebb_malloc(300 * KiB);
        unsigned char *lz = ebb_calloc(1, 300 * KiB);
        printf("new %02x %02x usable %zu calloc %02x large %02x %02x zero %02x\n", p[0], p[39],
               ebb_usable_size(p), z[17], l[0], l[300 * KiB - 1], lz[1000]);
        ebb_free(p);
        ebb_free(z);
        ebb_free(l);
        ebb_free(lz);
    } else if (!strcmp(what, "realloc")) {
        char *p = ebb_malloc(10);
        strcpy(p, "kept text");
        char *q = ebb_realloc(p, 200 * KiB);
        printf("%s moved %d usable %zu\n", q, q != p, ebb_usable_size(q));
        ebb_free(q);
    } else if (!strncmp(what, "overrun", 7)) {
        char *p = ebb_malloc(n);
        p[n] = 'x'; /* one byte past the end: in the guard */
        ebb_free(p);
        printf("survived\n");
    } else if (!strncmp(what, "after_free", 10)) {
        char *p = kept = ebb_malloc(n);
        ebb_free(p);
        ((char *)kept)[5] = 'z';
        flush_quarantine();
        printf("survived\n");
    } else if (!strcmp(what, "double")) {
        char *p = kept = ebb_malloc(24);
        ebb_free(p);
        ebb_free(kept);
        printf("survived\n");
    } else if (!strcmp(what, "aligned")) {
        char *p = ebb_aligned_alloc(256, 100);
        printf("aligned %d usable %zu\n", ((uintptr_t)p & 255) == 0, ebb_usable_size(p));
        p[100] = 1;
        ebb_free(p);
        printf("survived\n");
    } else {
        return 2;
    }
    return 0;
}

static char out[16384];

static int scenario(const char *what, const char *on_error)
{
    const char *env[] = { "EBB_DEBUG=1", on_error };
    return child_run_env(what, env, 2, out, sizeof out);
}

#define expect_in(text) expect_output_has(out, text)

static void test_fill_patterns_and_usable_size(void **state)
{
    (void)state;
    int st = scenario("fill", NULL);
    EXPECT(child_exited(st, 0), "status %d:\n%s", st, out);
    expect_in("new cd cd usable 40 calloc 00 large cd cd zero 00\n");
}

static void test_realloc_moves_and_keeps_contents(void **state)
{
    (void)state;
    int st = scenario("realloc", NULL);
    EXPECT(child_exited(st, 0), "status %d:\n%s", st, out);
    expect_in("kept text moved 1 usable 204800\n");
}

static void test_overrun_caught_at_free(void **state)
{
    (void)state;
    static const char *const cases[] = { "overrun", "overrun_large" };
    for (size_t i = 0; i < 2; i++) {
        int st = scenario(cases[i], NULL);
        EXPECT(child_killed(st, SIGABRT), "%s: status %d:\n%s", cases[i], st, out);
        expect_in("overrun: byte 0 past the end of a ");
        st = scenario(cases[i], "EBB_ON_ERROR=warn");
        EXPECT(child_exited(st, 0), "%s: status %d:\n%s", cases[i], st, out);
        expect_in("overrun");
        expect_in("survived");
    }
    int st = scenario("aligned", NULL);
    EXPECT(child_killed(st, SIGABRT), "status %d:\n%s", st, out);
    expect_in("aligned 1 usable 100\n");
    expect_in("overrun: byte 0 past the end of a 100-byte block");
}

static void test_write_after_free_caught_leaving_the_quarantine(void **state)
{
    (void)state;
    static const char *const cases[] = { "after_free", "after_free_large" };
    for (size_t i = 0; i < 2; i++) {
        int st = scenario(cases[i], NULL);
        EXPECT(child_killed(st, SIGABRT), "%s: status %d:\n%s", cases[i], st, out);
        expect_in("use after free: byte 5 of a freed ");
        EXPECT(strstr(out, "survived") == NULL, "%s went on:\n%s", cases[i], out);
    }
}

static void test_double_free_in_the_quarantine(void **state)
{
    (void)state;
    int st = scenario("double", NULL);
    EXPECT(child_killed(st, SIGABRT), "status %d:\n%s", st, out);
    expect_in("double free of a 24-byte block (freed, it waits in the debug quarantine)");
    st = scenario("double", "EBB_ON_ERROR=warn");
    EXPECT(child_exited(st, 0), "status %d:\n%s", st, out);
    expect_in("survived");
}

CHILD_TEST_MAIN("debugheap", child_main, T(test_fill_patterns_and_usable_size),
                T(test_realloc_moves_and_keeps_contents), T(test_overrun_caught_at_free),
                T(test_write_after_free_caught_leaving_the_quarantine),
                T(test_double_free_in_the_quarantine))
