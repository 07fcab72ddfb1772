/* The address-space analysis behind `ebb map` (src/insight/addrspace.c,
 * addrspace_out.c) on fixture maps and smaps files (tests/fixtures/map/,
 * whose README says where each comes from): the parser, the kinds, the
 * figures, the largest free regions (against what an mmap probe in the
 * real processes found), the grid, the text and JSON, and malformed input.
 * Run from the repository's root, as make does. */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "insight/addrspace.h"

#define FIXTURES "tests/fixtures/map/"
#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
/* The lowest address the kernel's mmap gave where the real fixtures were
 * taken (their probes' results depend on it). */
#define LOW UINT64_C(0x10000)

/* A fixture loaded and analysed. */
typedef struct {
    char *text;
    size_t len;
    ebb__as_mapping_t *maps;
    long n;
    ebb__as_t as;
} fixture_t;

static char *load(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, FIXTURES "%s", name);
    FILE *f = fopen(path, "rb");
    EXPECT(f != NULL, "cannot open %s (run from the repository's root)", path);
    static char buf[1 << 20];
    *len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    char *text = malloc(*len + 1);
    assert_non_null(text);
    memcpy(text, buf, *len);
    text[*len] = '\0';
    return text;
}

static void analyse(fixture_t *fx, const char *name, const ebb__as_input_t *in)
{
    size_t bad;
    fx->text = load(name, &fx->len);
    size_t cap = ebb__as_max_mappings(fx->text, fx->len);
    fx->maps = calloc(cap, sizeof *fx->maps);
    assert_non_null(fx->maps);
    fx->n = ebb__as_parse(fx->text, fx->len, fx->maps, cap, &bad);
    EXPECT(fx->n > 0, "%s: parse failed at line %zu", name, bad);
    ebb__as_analyse(&fx->as, fx->maps, (size_t)fx->n, strstr(name, ".smaps") != NULL, in);
}

static void release(fixture_t *fx)
{
    free(fx->maps);
    free(fx->text);
}

static uint64_t size_of(const ebb__as_range_t *r)
{
    return r->end - r->start;
}

static void expect_region(const ebb__as_t *as, unsigned i, uint64_t start, uint64_t end)
{
    EXPECT(i < as->nlargest, "only %u regions kept", as->nlargest);
    EXPECT(as->largest[i].start == start && as->largest[i].end == end,
           "free region %u: %#llx-%#llx, expected %#llx-%#llx", i + 1,
           (unsigned long long)as->largest[i].start, (unsigned long long)as->largest[i].end,
           (unsigned long long)start, (unsigned long long)end);
}

static void expect_kind(const ebb__as_t *as, unsigned kind, uint64_t mappings)
{
    EXPECT(as->kind[kind].mappings == mappings, "%s: %llu mappings, expected %llu",
           ebb__as_kind_words(kind), (unsigned long long)as->kind[kind].mappings,
           (unsigned long long)mappings);
}

/* ------------------------------------------------------ hand-written */

static const ebb__as_input_t hand32_in = { .low = LOW, .exe = "/usr/bin/app", .ebb = -1 };

static void test_32bit_free_at_the_top_and_bottom(void **state)
{
    (void)state;
    fixture_t fx;
    analyse(&fx, "hand32-top-bottom.maps", &hand32_in);
    ebb__as_t *as = &fx.as;
    assert_int_equal(fx.n, 11);
    assert_int_equal(as->bits, 32);
    assert_int_equal(as->smaps, 0);
    EXPECT(as->low == LOW && as->top == UINT64_C(0xffffe000), "user space %#llx-%#llx",
           (unsigned long long)as->low, (unsigned long long)as->top);
    expect_region(as, 0, 0x44000000, 0xb7000000);
    expect_region(as, 1, 0xbf021000, 0xffffe000); /* the top */
    expect_region(as, 2, 0x20801000, 0x40000000);
    expect_region(as, 3, 0x00010000, 0x08048000); /* the bottom */
    /* 8 KiB larger than the sixth, 0xb7102000-0xbf000000 */
    expect_region(as, 4, 0x08100000, 0x10000000);
    assert_int_equal(as->nlargest, 5);
    assert_int_equal(as->free_regions, 6);
    uint64_t mapped = 0;
    for (long i = 0; i < fx.n; i++)
        mapped += fx.maps[i].end - fx.maps[i].start;
    EXPECT(as->free_bytes + mapped == as->top - as->low, "free %llu + mapped %llu != space",
           (unsigned long long)as->free_bytes, (unsigned long long)mapped);
    expect_kind(as, EBB__AS_PROGRAM, 2);
    expect_kind(as, EBB__AS_HEAP, 1);
    expect_kind(as, EBB__AS_STACK, 3); /* a guard, its thread stack, [stack] */
    expect_kind(as, EBB__AS_ANON, 3);  /* a block, a glibc-style heap and its reserve */
    expect_kind(as, EBB__AS_LIBRARY, 2);
    expect_kind(as, EBB__AS_EBB, 0);
    assert_int_equal(fx.maps[4].kind, EBB__AS_STACK);
    assert_true(fx.maps[4].no_access);
    assert_int_equal(fx.maps[7].kind, EBB__AS_ANON); /* a reserve above is no guard */
    release(&fx);
}

static void test_32bit_grid_is_the_whole_space(void **state)
{
    (void)state;
    fixture_t fx;
    analyse(&fx, "hand32-top-bottom.maps", &hand32_in);
    ebb__as_row_t rows[40];
    uint64_t cell;
    size_t n = ebb__as_grid(&fx.as, rows, 40, &cell);
    assert_int_equal(n, 32);
    assert_int_equal(cell, 2 * MiB);
    for (size_t i = 0; i < n; i++) {
        assert_false(rows[i].gap);
        assert_int_equal(rows[i].start, (uint64_t)i * 128 * MiB);
        assert_int_equal(strlen(rows[i].cells), EBB__AS_COLUMNS);
    }
    assert_string_equal(rows[0].cells, "................................................................");
    assert_int_equal(rows[1].cells[0], 'H'); /* more heap than program in 0x08000000 */
    assert_string_equal(rows[2].cells, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_string_equal(rows[4].cells, "SSSSS...........................................................");
    assert_string_equal(rows[8].cells, "AAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa................................");
    assert_int_equal(rows[22].cells[56], 'L');
    assert_int_equal(rows[23].cells[56], 'S');
    assert_string_equal(rows[31].cells, "................................................................");
    release(&fx);
}

static void test_arenas_only_in_an_ebb_process(void **state)
{
    (void)state;
    fixture_t fx;
    ebb__as_input_t in = hand32_in;
    in.ebb = 1;
    analyse(&fx, "hand32-top-bottom.maps", &in);
    assert_int_equal(fx.maps[3].kind, EBB__AS_EBB); /* 0x10000000, 256 MiB */
    assert_int_equal(fx.maps[6].kind, EBB__AS_EBB); /* 0x40000000, 4 MiB */
    assert_int_equal(fx.maps[5].kind, EBB__AS_STACK); /* not aligned: the thread stack */
    assert_int_equal(fx.maps[7].kind, EBB__AS_ANON);  /* no access: never an arena */
    release(&fx);
}

static void test_64bit_figures_and_kinds(void **state)
{
    (void)state;
    fixture_t fx;
    ebb__as_input_t in = { .low = LOW, .exe = "/usr/bin/my app" };
    analyse(&fx, "hand64.smaps", &in);
    ebb__as_t *as = &fx.as;
    assert_int_equal(fx.n, 11);
    assert_int_equal(as->bits, 64);
    assert_true(as->smaps);
    assert_true(as->ebb); /* libebb.so is mapped */
    EXPECT(as->top == UINT64_C(0x7ffffffff000), "top %#llx", (unsigned long long)as->top);
    expect_kind(as, EBB__AS_PROGRAM, 2); /* a path with a space */
    expect_kind(as, EBB__AS_HEAP, 1);
    expect_kind(as, EBB__AS_EBB, 1);
    expect_kind(as, EBB__AS_FILE, 1);    /* /dev/shm/data (deleted) */
    expect_kind(as, EBB__AS_ANON, 1);    /* [anon:glibc.tag] */
    expect_kind(as, EBB__AS_LIBRARY, 1);
    expect_kind(as, EBB__AS_KERNEL, 3);
    expect_kind(as, EBB__AS_STACK, 1);
    assert_int_equal(as->user.mappings, 10); /* [vsyscall] is above user space */
    assert_int_equal(as->user.rss, 1192 * KiB);
    assert_int_equal(as->user.pss, 1186 * KiB);
    assert_int_equal(as->user.dirty, 1148 * KiB); /* shared + private */
    assert_int_equal(as->user.swap, 2080 * KiB);
    assert_int_equal(as->kind[EBB__AS_PROGRAM].dirty, 8 * KiB);
    assert_int_equal(as->kind[EBB__AS_HEAP].swap, 32 * KiB);
    assert_int_equal(as->free_regions, 5); /* none at the top: [stack] ends there */
    expect_region(as, 0, LOW, UINT64_C(0x555555554000));
    expect_region(as, 1, UINT64_C(0x555555579000), UINT64_C(0x7f0000000000));
    expect_region(as, 2, UINT64_C(0x7f0000a00000), UINT64_C(0x7ffff7fc1000));
    expect_region(as, 3, UINT64_C(0x7ffff7fc7000), UINT64_C(0x7ffffffde000));
    expect_region(as, 4, UINT64_C(0x7f0000802000), UINT64_C(0x7f0000900000));
    release(&fx);
}

/* The first mapping after address a, or n. */
static size_t first_after(const fixture_t *fx, uint64_t a)
{
    size_t i = 0;
    while (i < (size_t)fx->n && fx->maps[i].start < a)
        i++;
    return i;
}

static void test_64bit_grid_folds_the_gaps(void **state)
{
    (void)state;
    fixture_t fx;
    ebb__as_input_t in = { .low = LOW };
    analyse(&fx, "hand64.smaps", &in);
    ebb__as_row_t rows[40];
    uint64_t cell;
    size_t n = ebb__as_grid(&fx.as, rows, 40, &cell);
    EXPECT(n >= 3 && n <= 40, "%zu rows", n);
    EXPECT((cell & (cell - 1)) == 0 && cell >= 64 * KiB, "cell %llu", (unsigned long long)cell);
    size_t gaps = 0;
    uint64_t row_bytes = cell * EBB__AS_COLUMNS, last = 0;
    int heap_gap = 0;
    for (size_t r = 0; r < n; r++) {
        if (!rows[r].gap) {
            /* drawn rows: whole rows, in order, never overlapping */
            EXPECT(rows[r].start % row_bytes == 0 && rows[r].start >= last,
                   "row %zu at %#llx", r, (unsigned long long)rows[r].start);
            last = rows[r].start + row_bytes;
            continue;
        }
        gaps++;
        /* a gap is exactly one free region, from a mapping's end (in the
         * last row drawn) to the next one's start (in the next row) */
        size_t next = first_after(&fx, rows[r].start);
        EXPECT(next > 0 && next < (size_t)fx.n && fx.maps[next - 1].end == rows[r].start &&
                   fx.maps[next].start == rows[r].end,
               "gap row %zu is not a free region", r);
        EXPECT(r > 0 && r + 1 < n && !rows[r + 1].gap && rows[r].start <= last &&
                   rows[r].start > last - row_bytes && rows[r + 1].start <= rows[r].end &&
                   rows[r].end < rows[r + 1].start + row_bytes,
               "gap row %zu is not between the rows it separates", r);
        EXPECT(rows[r + 1].start - last > 2 * row_bytes, "gap row %zu could be drawn", r);
        heap_gap |= rows[r].start == UINT64_C(0x555555579000);
    }
    EXPECT(gaps >= 2 && heap_gap, "%zu gaps, the heap's one %s", gaps, heap_gap ? "in" : "missing");
    /* every mapping of user space is drawn */
    for (long i = 0; i < fx.n; i++) {
        const ebb__as_mapping_t *m = &fx.maps[i];
        if (m->start >= fx.as.top)
            continue;
        int drawn = 0;
        for (size_t r = 0; r < n; r++)
            if (!rows[r].gap && m->start >= rows[r].start && m->start < rows[r].start + row_bytes)
                drawn = rows[r].cells[(m->start - rows[r].start) / cell] != '.';
        EXPECT(drawn, "mapping %ld (%#llx) is not drawn", i, (unsigned long long)m->start);
    }
    release(&fx);
}

/* ----------------------------------------- real processes (tests/map/probe.c) */

/* The sum of the smaps lines "key: N kB" in text, in bytes: the figures
 * counted without the parser. */
static uint64_t sum_field(const char *text, const char *key)
{
    uint64_t total = 0;
    size_t klen = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        unsigned long long kb;
        if (!strncmp(p, key, klen) && p[klen] == ':' && sscanf(p + klen + 1, "%llu", &kb) == 1)
            total += kb << 10;
    }
    return total;
}

static int has_guarded_thread_stack(const fixture_t *fx)
{
    for (long i = 0; i + 1 < fx->n; i++)
        if (fx->maps[i].kind == EBB__AS_STACK && fx->maps[i].no_access &&
            fx->maps[i + 1].kind == EBB__AS_STACK && fx->maps[i + 1].start == fx->maps[i].end)
            return 1;
    return 0;
}

static void test_real_64bit_process_on_ebb(void **state)
{
    (void)state;
    fixture_t fx;
    ebb__as_input_t in = { .low = LOW, .exe = "/work/h-map/build/map/probe64" };
    analyse(&fx, "real64-ebb.smaps", &in);
    ebb__as_t *as = &fx.as;
    assert_int_equal(fx.n, 38);
    assert_int_equal(as->bits, 64);
    assert_true(as->ebb);
    /* what the probe's mmap bisection got, to the byte */
    assert_int_equal(size_of(&as->largest[0]), UINT64_C(94549959680000));
    assert_int_equal(as->kind[EBB__AS_PROGRAM].mappings, 5);
    assert_true(as->kind[EBB__AS_EBB].mappings >= 1);
    assert_true(as->kind[EBB__AS_LIBRARY].mappings >= 4);
    assert_true(has_guarded_thread_stack(&fx));
    uint64_t rss = 0, swap = 0;
    for (unsigned k = 0; k < EBB__AS_KINDS; k++) {
        rss += as->kind[k].rss;
        swap += as->kind[k].swap;
    }
    assert_int_equal(rss, sum_field(fx.text, "Rss"));
    assert_int_equal(as->user.pss, sum_field(fx.text, "Pss"));
    assert_int_equal(as->user.dirty,
                     sum_field(fx.text, "Shared_Dirty") + sum_field(fx.text, "Private_Dirty"));
    assert_int_equal(swap, sum_field(fx.text, "Swap"));
    release(&fx);
}

static void test_real_32bit_process(void **state)
{
    (void)state;
    fixture_t fx;
    ebb__as_input_t in = { .low = LOW };
    analyse(&fx, "real32.smaps", &in);
    assert_int_equal(fx.as.bits, 32);
    assert_false(fx.as.ebb);
    assert_int_equal(size_of(&fx.as.largest[0]), UINT64_C(2692894720));
    assert_true(has_guarded_thread_stack(&fx));
    assert_int_equal(fx.as.kind[EBB__AS_EBB].mappings, 0);
    release(&fx);
}

static void test_real_fragmented_32bit_space(void **state)
{
    (void)state;
    fixture_t fx;
    ebb__as_input_t in = { .low = LOW };
    analyse(&fx, "real32-ebb-fragmented.smaps", &in);
    ebb__as_t *as = &fx.as;
    assert_int_equal(as->bits, 32);
    assert_true(as->ebb);
    assert_true(as->kind[EBB__AS_EBB].mappings >= 1);
    /* 1.9 GiB mapped, 2.0 GiB free, and no piece of it larger than this */
    assert_int_equal(size_of(&as->largest[0]), UINT64_C(105615360));
    for (unsigned i = 1; i < EBB__AS_TOP_FREE; i++)
        assert_int_equal(size_of(&as->largest[i]), 64 * MiB);
    assert_true(as->free_regions >= 30);
    assert_true(as->free_bytes > 1900 * MiB);
    release(&fx);
}

/* ------------------------------------------------------------ output */

typedef struct {
    char buf[1 << 16];
    size_t len;
} sink_t;

static void sink_put(void *ctx, const char *s, size_t n)
{
    sink_t *k = ctx;
    assert_true(k->len + n < sizeof k->buf);
    memcpy(k->buf + k->len, s, n);
    k->len += n;
    k->buf[k->len] = '\0';
}

static void write_fixture(const char *name, const ebb__as_input_t *in, int json, sink_t *k)
{
    fixture_t fx;
    analyse(&fx, name, in);
    ebb__as_row_t rows[40];
    uint64_t cell;
    size_t n = ebb__as_grid(&fx.as, rows, 40, &cell);
    ebb__as_about_t about = { 42, "app", NULL };
    ebb__as_out_t out = { sink_put, k };
    k->len = 0;
    if (json)
        ebb__as_write_json(&fx.as, rows, n, cell, &about, &out);
    else
        ebb__as_write_text(&fx.as, rows, n, cell, &about, &out);
    release(&fx);
}

static void expect_has(const sink_t *k, const char *what)
{
    EXPECT(strstr(k->buf, what) != NULL, "no \"%s\" in:\n%s", what, k->buf);
}

static void test_text_output(void **state)
{
    (void)state;
    static sink_t k;
    write_fixture("hand32-top-bottom.maps", &hand32_in, 0, &k);
    expect_has(&k, "ebb map: pid 42 (app), a 32-bit process\n");
    expect_has(&k, "0x08000000 H...");
    expect_has(&k, " 1. 0x44000000-0xb7000000     1.7 GiB\n");
    expect_has(&k, " 2. 0xbf021000-0xffffe000     1.0 GiB\n");
    expect_has(&k, "(maps only: no RSS figures)");
    expect_has(&k, "  S 0x20000000-0x20801000    8.0 MiB  thread stack (guard page below)\n");
    write_fixture("hand64.smaps", &(ebb__as_input_t){ .low = LOW }, 0, &k);
    expect_has(&k, "RSS 1.1 MiB, PSS 1.1 MiB, dirty 1.1 MiB, swap 2.0 MiB\n");
    expect_has(&k, " free, 0x555555579000-0x7f0000000000 ~~\n");
}

static void test_json_output(void **state)
{
    (void)state;
    static sink_t k;
    write_fixture("hand64.smaps", &(ebb__as_input_t){ .low = LOW }, 1, &k);
    assert_int_equal(strncmp(k.buf, "{\"schema\":\"ebb.map/1\",\"pid\":42,", 31), 0);
    expect_has(&k, "\"totals\":{\"mappings\":10,");
    expect_has(&k, "\"rss\":1220608,\"pss\":1214464,\"dirty\":1175552,\"swap\":2129920}");
    expect_has(&k, "{\"start\":\"0x10000\",\"end\":\"0x555555554000\",\"size\":93824992165888}");
    expect_has(&k, "\"name\":\"/dev/shm/data (deleted)\"");
    expect_has(&k, "\"kind\":\"ebb\",\"char\":\"E\"");
    int depth = 0;
    for (const char *p = k.buf; *p; p++) {
        depth += (*p == '{' || *p == '[') - (*p == '}' || *p == ']');
        assert_true(depth >= 0);
    }
    assert_int_equal(depth, 0);
    write_fixture("hand32-top-bottom.maps", &hand32_in, 1, &k);
    expect_has(&k, "\"smaps\":false");
    expect_has(&k, "\"rss\":null");
}

/* ---------------------------------------------------------- bad input */

static void expect_refused(const char *text, size_t cap, size_t line)
{
    ebb__as_mapping_t maps[4];
    size_t bad;
    long n = ebb__as_parse(text, strlen(text), maps, cap, &bad);
    EXPECT(n == -1 && bad == line, "\"%s\": %ld, line %zu (expected line %zu)", text, n, bad,
           line);
}

static void test_malformed_input(void **state)
{
    (void)state;
    expect_refused("hello world\n", 4, 1);
    expect_refused("Rss: 4 kB\n", 4, 1); /* a figure before any mapping */
    expect_refused("1000-2000 r-x 0 08:01 1 /x\n", 4, 1);
    expect_refused("2000-1000 r-xp 0 08:01 1 /x\n", 4, 1);  /* ends before it starts */
    expect_refused("1000-3000 r-xp 0 08:01 1 /x\n2000-4000 r-xp 0 08:01 1 /x\n", 4, 2);
    expect_refused("1000-2000 r-xp 0 08:01 1 /x\nRss: lots\n", 4, 2);
    expect_refused("1000-2000 r-xp 0 08:01 1 /x\n3000-4000 r-xp 0 08:01 1 /y\n", 1, 2);
    expect_refused("1000-2000 r-xp 0 08:01 1x /x\n", 4, 1);
}

static void test_nothing_mapped(void **state)
{
    (void)state;
    ebb__as_mapping_t maps[1];
    size_t bad;
    assert_int_equal(ebb__as_parse("", 0, maps, 1, &bad), 0);
    ebb__as_t as;
    ebb__as_analyse(&as, maps, 0, 0, &(ebb__as_input_t){ .low = LOW });
    assert_int_equal(as.free_regions, 1);
    expect_region(&as, 0, LOW, UINT64_C(0xffffe000));
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
    RUN_GROUP("addrspace", T(test_32bit_free_at_the_top_and_bottom),
              T(test_32bit_grid_is_the_whole_space), T(test_arenas_only_in_an_ebb_process),
              T(test_64bit_figures_and_kinds), T(test_64bit_grid_folds_the_gaps),
              T(test_real_64bit_process_on_ebb), T(test_real_32bit_process),
              T(test_real_fragmented_32bit_space), T(test_text_output), T(test_json_output),
              T(test_malformed_input), T(test_nothing_mapped));
}
