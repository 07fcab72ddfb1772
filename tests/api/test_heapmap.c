/*
 * test_heapmap.c -- ebb_heap_map(): a row per arena, a cell per slot, drawn
 * from a copy of the heap (insight/heapmap.c).
 *
 * Full pools show '#', a pool with about half its blocks out shows '4' or
 * '5', and once every block is freed and the heap collected, no full pool is
 * left: its slots show an empty pool given back or a free slot.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"

static char text[1 << 20];

/* The heap map as text, NUL-terminated. */
static const char *heap_map(void)
{
    char path[] = "/tmp/ebb-test-heapmap.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(ebb_heap_map(fd), 0);
    ssize_t got = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    assert_true(got > 0);
    text[got] = 0;
    return text;
}

static size_t count_cells(const char *map, char c)
{
    size_t n = 0;
    for (const char *row = strstr(map, " |"); row; row = strstr(row + 1, "\n0x")) {
        const char *cells = strchr(row, '|');
        if (cells == NULL)
            break;
        for (const char *p = cells + 1; *p && *p != '|'; p++)
            n += *p == c;
    }
    return n;
}

static size_t rows(const char *map)
{
    size_t n = 0;
    for (const char *p = map; (p = strstr(p, " |")) != NULL; p++)
        n++;
    return n;
}

enum { BLOCK = 512, PER_POOL = 65536 / BLOCK, POOLS = 12 };
static void *blocks[POOLS * PER_POOL];

static void test_full_half_and_given_back(void **state)
{
    (void)state;
    assert_int_equal(ebb_set_sample_rate(0), 0); /* every block from a pool */
    ebb_collect(1);
    size_t full_before = count_cells(heap_map(), '#');
    for (size_t i = 0; i < POOLS * PER_POOL; i++) {
        blocks[i] = ebb_malloc(BLOCK);
        assert_non_null(blocks[i]);
        memset(blocks[i], 7, BLOCK);
    }
    const char *map = heap_map();
    EXPECT(strstr(map, "ebb heap map: ") == map, "no heading:\n%s", map);
    EXPECT(strstr(map, "# full pool") != NULL, "no legend:\n%s", map);
    EXPECT(rows(map) >= 1, "no arena row:\n%s", map);
    /* Most of the 12 pools are full (the thread cache may hold a few
     * blocks of the last one back: they count as out). */
    size_t full = count_cells(map, '#');
    EXPECT(full >= full_before + POOLS - 1, "%zu full cells (before %zu):\n%s", full,
           full_before, map);

    /* Every other block freed: about half out, 4 or 5 tenths. */
    for (size_t i = 0; i < POOLS * PER_POOL; i += 2) {
        ebb_free(blocks[i]);
        blocks[i] = NULL;
    }
    ebb_collect(1); /* the thread cache goes home */
    map = heap_map();
    size_t half = count_cells(map, '4') + count_cells(map, '5');
    EXPECT(half >= POOLS - 1, "%zu half-full cells:\n%s", half, map);

    for (size_t i = 1; i < POOLS * PER_POOL; i += 2)
        ebb_free(blocks[i]);
    ebb_collect(1);
    map = heap_map();
    EXPECT(count_cells(map, '#') <= full_before, "full pools left after freeing:\n%s", map);
    EXPECT(count_cells(map, '4') + count_cells(map, '5') < half, "half-full pools left:\n%s",
           map);
}

API_TEST_MAIN("heapmap", T(test_full_half_and_given_back))
