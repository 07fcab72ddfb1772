/*
 * test_peak.c -- who held the memory at the peak (insight/peak.c), asked
 * after it was freed: ebb_peak_sites() and the report's "peak" section.
 *
 * The program builds a big structure in one function, frees it, and builds
 * a smaller one in another: the sites live now are the second function's,
 * the peak's are the first's, with about the bytes it held.  A lower
 * second high does not move the peak.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"

enum { BIG_BLOCKS = 64 * 1024, BIG_SIZE = 1000, SMALL_BLOCKS = 16 * 1024, SMALL_SIZE = 200 };

static void *big[BIG_BLOCKS], *small[SMALL_BLOCKS];

__attribute__((noinline)) static void build_big(void)
{
    for (int i = 0; i < BIG_BLOCKS; i++) {
        big[i] = ebb_malloc(BIG_SIZE);
        assert_non_null(big[i]);
        memset(big[i], 1, BIG_SIZE);
    }
}

__attribute__((noinline)) static void build_small(void)
{
    for (int i = 0; i < SMALL_BLOCKS; i++) {
        small[i] = ebb_malloc(SMALL_SIZE);
        assert_non_null(small[i]);
        memset(small[i], 2, SMALL_SIZE);
    }
}

static void free_all(void **v, int n)
{
    for (int i = 0; i < n; i++) {
        ebb_free(v[i]);
        v[i] = NULL;
    }
}

/* The allocating call of the site with the most live bytes now. */
static void *top_site_now(void)
{
    static ebb_site_t s;
    assert_true(ebb_sample_sites(&s, 1) >= 1);
    assert_true(s.depth >= 1);
    return s.pcs[0];
}

static ebb_site_t peak_site[64];

/* First, while no snapshot exists: a huge request, sampled (a block that
 * big always is) and refused, never stands at the peak. */
static void test_refused_request_never_at_the_peak(void **state)
{
    (void)state;
    void *volatile keep = ebb_malloc(1000);
    /* More than the address space can hold: 64 TiB, or 3.5 GiB on 32-bit. */
#if SIZE_MAX > 0xffffffffu
    size_t huge = (size_t)1 << 46;
#else
    size_t huge = (size_t)7 << 29;
#endif
    void *p = ebb_malloc(huge);
    assert_null(p);
    ebb_peak_t info;
    size_t n = ebb_peak_sites(&info, peak_site, 64);
    for (size_t i = 0; i < n; i++)
        EXPECT(peak_site[i].live_bytes < huge / 2, "a refused request at the peak: ~%llu bytes",
               (unsigned long long)peak_site[i].live_bytes);
    EXPECT(info.sampled_live < huge / 2, "the peak's sampled live %llu",
           (unsigned long long)info.sampled_live);
    ebb_free(keep);
}

static void test_peak_names_what_was_freed(void **state)
{
    (void)state;
    assert_int_equal(ebb_set_sample_rate(64 * KiB), 0);
    time_t before = time(NULL);
    build_big();
    void *big_pc = top_site_now();
    ebb_stats_t at_big;
    ebb_stats(&at_big);
    free_all(big, BIG_BLOCKS);
    build_small();
    void *small_pc = top_site_now();
    assert_ptr_not_equal(big_pc, small_pc);

    ebb_peak_t info;
    size_t n = ebb_peak_sites(&info, peak_site, 64);
    assert_true(n >= 1);
    assert_true(info.snapshots >= 1);
    /* Within a sixteenth (and a sample gap) of the committed at its top. */
    EXPECT(info.committed >= at_big.committed - at_big.committed / 8,
           "peak committed %llu, committed at the big build %zu",
           (unsigned long long)info.committed, at_big.committed);
    EXPECT(info.time >= (int64_t)before - 1 && info.time <= (int64_t)time(NULL) + 1,
           "peak time %lld outside [%lld, now]", (long long)info.time, (long long)before);
    EXPECT(peak_site[0].pcs[0] == big_pc, "the peak's top site is %p, the big build's %p",
           peak_site[0].pcs[0], big_pc);
    /* 64 Ki blocks of 1000 bytes (usable 1024): about 64 MiB; an estimate. */
    size_t held = (size_t)peak_site[0].live_bytes;
    EXPECT(held > 40 * MiB && held < 100 * MiB, "the peak's top site held ~%zu bytes", held);
    for (size_t i = 0; i < n; i++)
        EXPECT(peak_site[i].pcs[0] != small_pc, "the small build (after the peak) is at the "
                                                "peak, site %zu", i);
    for (size_t i = 1; i < n; i++)
        EXPECT(peak_site[i].live_bytes <= peak_site[i - 1].live_bytes, "not in order at %zu", i);

    /* A lower high later takes no snapshot. */
    unsigned snapshots = info.snapshots;
    free_all(small, SMALL_BLOCKS);
    build_small();
    ebb_peak_t again;
    ebb_peak_sites(&again, NULL, 0);
    EXPECT(again.snapshots == snapshots && again.committed == info.committed,
           "a lower high moved the peak: %u -> %u snapshots", snapshots, again.snapshots);
    free_all(small, SMALL_BLOCKS);
}

/* The report says it too: the text's "at the peak", the JSON's "peak". */
static void test_report_has_the_peak(void **state)
{
    (void)state;
    char path[] = "/tmp/ebb-test-peak.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(ebb_report(fd, EBB_REPORT_TEXT), 0);
    assert_int_equal(ebb_report(fd, EBB_REPORT_JSON), 0);
    static char text[1 << 20];
    ssize_t got = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    assert_true(got > 0);
    text[got] = 0;
    EXPECT(strstr(text, "at the peak committed ") != NULL, "no peak in the text:\n%s", text);
    EXPECT(strstr(text, "\"peak\":{\"committed\":") != NULL, "no peak in the JSON:\n%s", text);
    EXPECT(strstr(text, "\"sampled_live\":") != NULL, "no sampled_live in the JSON");
    /* The heap then and now: the peak's map has the big build's arenas. */
    const char *now = strstr(text, "\"heap_map\":{"), *then = strstr(text, "\"heap_map_peak\":{");
    EXPECT(now != NULL && then != NULL, "no heap maps in the JSON");
    if (now && then) {
        size_t arenas_now = 0, arenas_then = 0;
        for (const char *p = now; p < then && (p = strstr(p, "\"base\":")) && p < then; p++)
            arenas_now++;
        for (const char *p = then; (p = strstr(p, "\"base\":")) != NULL; p++)
            arenas_then++;
        EXPECT(arenas_then >= arenas_now + 8, "arenas at the peak %zu, now %zu", arenas_then,
               arenas_now);
    }
}

API_TEST_MAIN("peak", T(test_refused_request_never_at_the_peak), T(test_peak_names_what_was_freed), T(test_report_has_the_peak))
