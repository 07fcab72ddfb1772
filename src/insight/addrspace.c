/*
 * addrspace.c -- a process's address space, understood from the text the
 * kernel writes about it (/proc/PID/maps, /proc/PID/smaps).
 *
 * Why: the process that dies with memory free (a 32-bit interpreter whose
 * 64 MB request fails with 1 GB free) dies of the shape of its address
 * space, not of its size, and nothing on Linux draws that shape: pmap and
 * smaps list mappings, and people draw the map by hand.  This file turns
 * the list into what such a drawing shows: what each mapping is, how much
 * memory each kind holds, where the free space is and how large its
 * largest pieces are, and a grid of the space a cell per range.
 *
 * Pure, so that the same code serves `ebb map` on any process, tests on
 * fixture files, and the library on its own process: it reads text from a
 * buffer, writes into arrays the caller sized (ebb__as_max_mappings), makes
 * no system call and allocates nothing.  Mapping names stay in the text.
 *
 * Telling as_kinds apart.  The kernel names a few mappings ([heap], [stack],
 * [vdso]); files have paths, and a path with ".so" is a shared library.
 * The rest are anonymous, and two as_kinds among them matter here:
 *   - thread stacks: glibc (and most runtimes) map a thread's stack with
 *     a no-access guard at its low end, so an anonymous as_writable mapping
 *     that starts exactly where an anonymous no-access mapping of at most
 *     1 MiB ends is a stack, guard included.  A glibc malloc heap puts its
 *     no-access reserve above its used part, not below.
 *   - ebb's arenas: ebb does not name its mappings (PR_SET_VMA_ANON_NAME
 *     needs CONFIG_ANON_VMA_NAME, which kernels often lack, and costs a
 *     system call per mapping), so they are recognised by their shape:
 *     arenas are EBB_ARENA_SIZE-aligned and sized (src/config.h) and
 *     adjacent ones merge into one mapping, so a as_writable anonymous
 *     mapping that begins or ends on that alignment and holds a whole
 *     aligned arena is ebb's.  Only in a process where ebb is the allocator
 *     (libebb*.so mapped, or the caller says so): elsewhere an aligned
 *     mapping is someone else's.  A mapping named "[anon:ebb...]" (a
 *     future ebb on a kernel that names) is ebb's too.
 *
 * Free space.  The user address space is [low, top): low is the lowest
 * address the kernel's mmap gives (the caller's: vm.mmap_min_addr, but at
 * least 0x10000, src/os/linux_maps.c says why), top is
 * 0xffffe000 for a 32-bit program on a 64-bit kernel (the kernel's
 * IA32_PAGE_OFFSET) and 0x7ffffffff000 for a 64-bit one (47 bits; 56 if a
 * mapping lies above).  Every range no mapping covers is free, including
 * the space below the first mapping and above the last, and the huge
 * trivially free middle of a 64-bit space is reported as it is.  What the
 * kernel will not hand out there is not subtracted: the stack guard gap
 * (1 MiB below a growing stack) is free here and an mmap of all of a
 * region next to [stack] gets that much less.
 */
#include "addrspace.h"

#include <string.h>

#include "../../include/ebb.h"
#include "../config.h"

#define AS_TOP32 UINT64_C(0xffffe000)
#define AS_TOP47 UINT64_C(0x7ffffffff000)
#define AS_TOP56 UINT64_C(0xfffffffffff000)
#define AS_4G (UINT64_C(1) << 32)
/* The largest no-access mapping taken for a thread stack's guard. */
#define AS_GUARD_MAX (UINT64_C(1) << 20)

/* ------------------------------------------------------------- parsing */

size_t ebb__as_max_mappings(const char *text, size_t len)
{
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    return lines;
}

/* A cursor over one line. */
typedef struct {
    const char *p, *end;
} as_cursor_t;

static int as_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Digits in base 16 (or 10); 0 if there are none or too many. */
static int as_take_number(as_cursor_t *c, unsigned base, uint64_t *out)
{
    uint64_t v = 0;
    const char *start = c->p;
    for (; c->p < c->end; c->p++) {
        int d = as_hex_value(*c->p);
        if (d < 0 || (unsigned)d >= base)
            break;
        if (v > (UINT64_MAX - (uint64_t)d) / base)
            return 0;
        v = v * base + (uint64_t)d;
    }
    *out = v;
    return c->p > start;
}

static int as_take_char(as_cursor_t *c, char want)
{
    if (c->p < c->end && *c->p == want) {
        c->p++;
        return 1;
    }
    return 0;
}

static void as_skip_spaces(as_cursor_t *c)
{
    while (c->p < c->end && *c->p == ' ')
        c->p++;
}

/* A line that opens a mapping: "start-end perms offset dev inode [name]". */
static int as_looks_like_header(const char *p, const char *end)
{
    const char *q = p;
    while (q < end && as_hex_value(*q) >= 0)
        q++;
    return q > p && q < end && *q == '-';
}

static int as_parse_header(as_cursor_t c, ebb__as_mapping_t *m)
{
    uint64_t offset, major, minor, inode;
    memset(m, 0, sizeof *m);
    if (!as_take_number(&c, 16, &m->start) || !as_take_char(&c, '-') ||
        !as_take_number(&c, 16, &m->end) || !as_take_char(&c, ' ') || c.end - c.p < 4)
        return 0;
    memcpy(m->perms, c.p, 4);
    c.p += 4;
    if (!as_take_char(&c, ' ') || !as_take_number(&c, 16, &offset) ||
        !as_take_char(&c, ' ') || !as_take_number(&c, 16, &major) ||
        !as_take_char(&c, ':') || !as_take_number(&c, 16, &minor) ||
        !as_take_char(&c, ' ') || !as_take_number(&c, 10, &inode))
        return 0;
    if (c.p < c.end && *c.p != ' ')
        return 0;
    as_skip_spaces(&c);
    m->name = c.p;
    m->name_len = (uint32_t)(c.end - c.p);
    m->no_access = m->perms[0] == '-' && m->perms[1] == '-' && m->perms[2] == '-';
    return m->start < m->end;
}

/* An smaps line "Key:   N kB"; the figures kept go into m.  Lines of
 * other shapes (VmFlags, THPeligible) are accepted and ignored if their
 * key is a word. */
static int as_parse_field(as_cursor_t c, ebb__as_mapping_t *m)
{
    static const struct {
        const char *key;
        size_t field; /* offset in the mapping */
        int dirty;    /* one of the two dirty counts, added up */
    } kept[] = {
        { "Rss", offsetof(ebb__as_mapping_t, rss), 0 },
        { "Pss", offsetof(ebb__as_mapping_t, pss), 0 },
        { "Shared_Dirty", offsetof(ebb__as_mapping_t, dirty), 1 },
        { "Private_Dirty", offsetof(ebb__as_mapping_t, dirty), 1 },
        { "Swap", offsetof(ebb__as_mapping_t, swap), 0 },
    };
    const char *key = c.p;
    while (c.p < c.end && (*c.p == '_' || (*c.p >= 'A' && *c.p <= 'Z') ||
                           (*c.p >= 'a' && *c.p <= 'z') || (*c.p >= '0' && *c.p <= '9')))
        c.p++;
    size_t key_len = (size_t)(c.p - key);
    if (key_len == 0 || !as_take_char(&c, ':'))
        return 0;
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        if (strlen(kept[i].key) != key_len || memcmp(kept[i].key, key, key_len) != 0)
            continue;
        uint64_t kb;
        as_skip_spaces(&c);
        if (!as_take_number(&c, 10, &kb) || kb > (UINT64_MAX >> 10))
            return 0;
        uint64_t *f = (uint64_t *)(void *)((char *)m + kept[i].field);
        *f = kept[i].dirty ? *f + (kb << 10) : kb << 10;
        return 1;
    }
    return 1;
}

long ebb__as_parse(const char *text, size_t len, ebb__as_mapping_t *maps, size_t cap,
                   size_t *bad_line)
{
    size_t n = 0, line = 0;
    const char *p = text, *end = text + len;
    *bad_line = 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        as_cursor_t c = { p, eol };
        line++;
        p = eol + 1;
        if (c.p == c.end)
            continue;
        int ok;
        if (as_looks_like_header(c.p, c.end)) {
            ok = n < cap && as_parse_header(c, &maps[n]) &&
                 (n == 0 || maps[n].start >= maps[n - 1].end);
            n += ok;
        } else {
            ok = n > 0 && as_parse_field(c, &maps[n - 1]);
        }
        if (!ok) {
            *bad_line = line;
            return -1;
        }
    }
    return (long)n;
}

/* -------------------------------------------------------------- kinds */

static int as_name_is(const ebb__as_mapping_t *m, const char *s)
{
    size_t n = strlen(s);
    return m->name_len == n && memcmp(m->name, s, n) == 0;
}

static int as_name_starts(const ebb__as_mapping_t *m, const char *s)
{
    size_t n = strlen(s);
    return m->name_len >= n && memcmp(m->name, s, n) == 0;
}

/* The name without the " (deleted)" the kernel adds to a removed file. */
static size_t as_path_len(const ebb__as_mapping_t *m)
{
    static const char deleted[] = " (deleted)";
    size_t n = m->name_len, d = sizeof deleted - 1;
    if (n > d && memcmp(m->name + n - d, deleted, d) == 0)
        return n - d;
    return n;
}

static const char *as_base_name(const ebb__as_mapping_t *m, size_t *len)
{
    size_t n = as_path_len(m), at = n;
    while (at > 0 && m->name[at - 1] != '/')
        at--;
    *len = n - at;
    return m->name + at;
}

/* "libc.so.6", "ld-linux.so.2", "_ssl.cpython-311-x86_64-linux-gnu.so". */
static int as_is_shared_object(const ebb__as_mapping_t *m)
{
    size_t n;
    const char *b = as_base_name(m, &n);
    for (size_t i = 0; i + 3 <= n; i++)
        if (memcmp(b + i, ".so", 3) == 0 && (i + 3 == n || b[i + 3] == '.'))
            return 1;
    return 0;
}

static int as_is_file(const ebb__as_mapping_t *m)
{
    return m->name_len > 0 && m->name[0] != '[';
}

static int as_is_anonymous(const ebb__as_mapping_t *m)
{
    return m->name_len == 0 || (as_name_starts(m, "[anon:") && !as_name_starts(m, "[anon:ebb"));
}

static int as_is_kernel_name(const ebb__as_mapping_t *m)
{
    static const char *const names[] = { "[vdso]",        "[vvar]",    "[vsyscall]",
                                         "[vvar_vclock]", "[uprobes]", "[sigpage]" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (as_name_is(m, names[i]))
            return 1;
    return 0;
}

static int as_is_ebb_library(const ebb__as_mapping_t *m)
{
    size_t n;
    const char *b = as_base_name(m, &n);
    return n >= 6 && memcmp(b, "libebb", 6) == 0 && as_is_shared_object(m);
}

static unsigned as_kind_by_name(const ebb__as_mapping_t *m, const ebb__as_input_t *in,
                                uint64_t top)
{
    if (m->start >= top || as_is_kernel_name(m))
        return EBB__AS_KERNEL;
    if (as_name_is(m, "[heap]"))
        return EBB__AS_HEAP;
    if (as_name_is(m, "[stack]"))
        return EBB__AS_STACK;
    if (as_name_starts(m, "[anon:ebb"))
        return EBB__AS_EBB;
    if (as_is_file(m)) {
        size_t n = as_path_len(m);
        if (in->exe && strlen(in->exe) == n && memcmp(in->exe, m->name, n) == 0)
            return EBB__AS_PROGRAM;
        return as_is_shared_object(m) ? EBB__AS_LIBRARY : EBB__AS_FILE;
    }
    return as_is_anonymous(m) ? EBB__AS_ANON : EBB__AS_FILE;
}

static int as_writable(const ebb__as_mapping_t *m)
{
    return m->perms[0] == 'r' && m->perms[1] == 'w';
}

/* A no-access guard of at most AS_GUARD_MAX and, right above it, the
 * as_writable stack: both STACK. */
static void as_find_thread_stacks(ebb__as_mapping_t *maps, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        ebb__as_mapping_t *g = &maps[i], *s = &maps[i + 1];
        if (g->kind == EBB__AS_ANON && g->no_access && g->end - g->start <= AS_GUARD_MAX &&
            s->kind == EBB__AS_ANON && as_writable(s) && s->start == g->end) {
            g->kind = s->kind = EBB__AS_STACK;
            i++;
        }
    }
}

static void as_find_arenas(ebb__as_mapping_t *maps, size_t n)
{
    const uint64_t size = (uint64_t)1 << EBB_ARENA_SHIFT;
    for (size_t i = 0; i < n; i++) {
        ebb__as_mapping_t *m = &maps[i];
        uint64_t first = (m->start + size - 1) & ~(size - 1);
        int aligned_edge = (m->start & (size - 1)) == 0 || (m->end & (size - 1)) == 0;
        if (m->kind == EBB__AS_ANON && as_writable(m) && aligned_edge && first >= m->start &&
            first + size <= m->end)
            m->kind = EBB__AS_EBB;
    }
}

/* ------------------------------------------------------------ analysis */

static int as_guess_bits(const ebb__as_mapping_t *maps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (maps[i].end > AS_4G)
            return 64;
    return 32;
}

/* The end of the user address space: a 64-bit process with a mapping of
 * its own above 47 bits has the 56-bit space. */
static uint64_t as_user_top(const ebb__as_mapping_t *maps, size_t n, int bits)
{
    if (bits == 32)
        return AS_TOP32;
    for (size_t i = 0; i < n; i++)
        if (maps[i].end > AS_TOP47 && maps[i].start < AS_TOP56 && !as_is_kernel_name(&maps[i]))
            return AS_TOP56;
    return AS_TOP47;
}

static int as_guess_ebb(const ebb__as_mapping_t *maps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (as_is_ebb_library(&maps[i]) || as_name_starts(&maps[i], "[anon:ebb"))
            return 1;
    return 0;
}

static void as_add_to(ebb__as_sum_t *s, const ebb__as_mapping_t *m)
{
    s->mappings++;
    s->size += m->end - m->start;
    s->rss += m->rss;
    s->pss += m->pss;
    s->dirty += m->dirty;
    s->swap += m->swap;
}

/* A free region [start, end): counted, and kept if among the largest
 * (largest first; of equal ones the lowest). */
static void as_free_region(ebb__as_t *as, uint64_t start, uint64_t end)
{
    if (end <= start)
        return;
    uint64_t size = end - start;
    as->free_bytes += size;
    as->free_regions++;
    unsigned at = as->nlargest;
    while (at > 0 && as->largest[at - 1].end - as->largest[at - 1].start < size)
        at--;
    if (at >= EBB__AS_TOP_FREE)
        return;
    unsigned last = as->nlargest < EBB__AS_TOP_FREE ? as->nlargest : EBB__AS_TOP_FREE - 1;
    memmove(&as->largest[at + 1], &as->largest[at], (last - at) * sizeof as->largest[0]);
    as->largest[at] = (ebb__as_range_t){ start, end };
    if (as->nlargest < EBB__AS_TOP_FREE)
        as->nlargest++;
}

static void as_find_free(ebb__as_t *as)
{
    uint64_t cursor = as->low;
    for (size_t i = 0; i < as->n && as->maps[i].start < as->top; i++) {
        const ebb__as_mapping_t *m = &as->maps[i];
        if (m->start > cursor)
            as_free_region(as, cursor, m->start);
        if (m->end > cursor)
            cursor = m->end;
    }
    as_free_region(as, cursor, as->top);
}

void ebb__as_analyse(ebb__as_t *as, ebb__as_mapping_t *maps, size_t n, int smaps,
                     const ebb__as_input_t *in)
{
    memset(as, 0, sizeof *as);
    as->maps = maps;
    as->n = n;
    as->smaps = smaps;
    as->bits = in->bits ? in->bits : as_guess_bits(maps, n);
    as->top = as_user_top(maps, n, as->bits);
    as->low = in->low;
    as->ebb = in->ebb ? in->ebb > 0 : as_guess_ebb(maps, n);
    for (size_t i = 0; i < n; i++)
        maps[i].kind = (uint8_t)as_kind_by_name(&maps[i], in, as->top);
    as_find_thread_stacks(maps, n);
    if (as->ebb)
        as_find_arenas(maps, n);
    for (size_t i = 0; i < n; i++) {
        as_add_to(&as->kind[maps[i].kind], &maps[i]);
        if (maps[i].start < as->top)
            as_add_to(&as->user, &maps[i]);
    }
    as_find_free(as);
}

static const struct {
    char c;
    const char *key, *words;
} as_kinds[EBB__AS_KINDS] = {
    [EBB__AS_EBB] = { 'E', "ebb", "ebb arenas" },
    [EBB__AS_HEAP] = { 'H', "heap", "heap ([heap])" },
    [EBB__AS_STACK] = { 'S', "stack", "stacks" },
    [EBB__AS_PROGRAM] = { 'P', "program", "the program" },
    [EBB__AS_LIBRARY] = { 'L', "library", "shared libraries" },
    [EBB__AS_FILE] = { 'F', "file", "other files" },
    [EBB__AS_ANON] = { 'A', "anonymous", "other anonymous" },
    [EBB__AS_KERNEL] = { 'K', "kernel", "kernel ([vdso], [vvar])" },
};

char ebb__as_kind_char(unsigned kind)
{
    return kind < EBB__AS_KINDS ? as_kinds[kind].c : '?';
}

const char *ebb__as_kind_key(unsigned kind)
{
    return kind < EBB__AS_KINDS ? as_kinds[kind].key : "?";
}

const char *ebb__as_kind_words(unsigned kind)
{
    return kind < EBB__AS_KINDS ? as_kinds[kind].words : "?";
}

/* ---------------------------------------------------------------- grid */

#define GRID_MIN_CELL (UINT64_C(64) << 10)
#define GRID_MAX_CELL (UINT64_C(1) << 50)
/* Empty rows between two mappings drawn rather than folded into a gap. */
#define GRID_EMPTY_ROWS_DRAWN 2

typedef struct {
    ebb__as_row_t *rows;
    size_t cap, n;
} as_rows_t;

static void as_add_rows(as_rows_t *r, uint64_t from, uint64_t to, uint64_t row_bytes)
{
    for (uint64_t a = from; a < to; a += row_bytes) {
        if (r->n < r->cap)
            r->rows[r->n] = (ebb__as_row_t){ .start = a };
        r->n++;
    }
}

static void as_add_gap(as_rows_t *r, uint64_t start, uint64_t end)
{
    if (r->n < r->cap)
        r->rows[r->n] = (ebb__as_row_t){ .start = start, .end = end, .gap = 1 };
    r->n++;
}

/* The rows the grid needs at `cell` bytes a cell (written to r->rows up to
 * r->cap); returns how many. */
static size_t as_plan(const ebb__as_t *as, uint64_t cell, as_rows_t *r)
{
    uint64_t row_bytes = cell * EBB__AS_COLUMNS;
    r->n = 0;
    if (as->bits == 32) {
        as_add_rows(r, 0, AS_4G, row_bytes);
        return r->n;
    }
    uint64_t drawn_to = 0, mapped_to = 0;
    for (size_t i = 0; i < as->n && as->maps[i].start < as->top; i++) {
        const ebb__as_mapping_t *m = &as->maps[i];
        uint64_t first = m->start / row_bytes * row_bytes;
        uint64_t last = (m->end + row_bytes - 1) / row_bytes * row_bytes;
        if (i > 0 && first > drawn_to + GRID_EMPTY_ROWS_DRAWN * row_bytes) {
            as_add_gap(r, mapped_to, m->start);
            drawn_to = first;
        } else if (i == 0) {
            drawn_to = first;
        }
        if (last > drawn_to) {
            as_add_rows(r, drawn_to, last, row_bytes);
            drawn_to = last;
        }
        if (m->end > mapped_to)
            mapped_to = m->end;
    }
    return r->n;
}

/* The character of the cell [a, a + cell); *from: the first mapping that
 * may reach it (cells come in increasing order). */
static char as_cell_char(const ebb__as_t *as, uint64_t a, uint64_t cell, size_t *from)
{
    uint64_t bytes[EBB__AS_KINDS][2] = { { 0 } };
    while (*from < as->n && as->maps[*from].end <= a)
        (*from)++;
    for (size_t j = *from; j < as->n && as->maps[j].start < a + cell; j++) {
        const ebb__as_mapping_t *m = &as->maps[j];
        uint64_t lo = m->start > a ? m->start : a;
        uint64_t hi = m->end < a + cell ? m->end : a + cell;
        bytes[m->kind][m->no_access] += hi - lo;
    }
    unsigned best = 0, best_na = 0;
    uint64_t most = 0;
    for (unsigned k = 0; k < EBB__AS_KINDS; k++)
        for (unsigned na = 0; na < 2; na++)
            if (bytes[k][na] > most) {
                most = bytes[k][na];
                best = k;
                best_na = na;
            }
    if (most == 0)
        return '.';
    char c = as_kinds[best].c;
    return best_na ? (char)(c - 'A' + 'a') : c;
}

size_t ebb__as_grid(const ebb__as_t *as, ebb__as_row_t *rows, size_t max_rows, uint64_t *cell)
{
    as_rows_t r = { NULL, 0, 0 };
    uint64_t c = GRID_MIN_CELL;
    while (c < GRID_MAX_CELL && as_plan(as, c, &r) > max_rows)
        c <<= 1;
    r = (as_rows_t){ rows, max_rows, 0 };
    size_t n = as_plan(as, c, &r);
    if (n > max_rows)
        n = max_rows;
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].gap)
            continue;
        for (unsigned col = 0; col < EBB__AS_COLUMNS; col++)
            rows[i].cells[col] = as_cell_char(as, rows[i].start + col * c, c, &from);
        rows[i].cells[EBB__AS_COLUMNS] = '\0';
    }
    *cell = c;
    return n;
}
