/*
 * report_addrmap.c -- the process's own address space, in its full JSON
 * report ("address_space_map"), for the HTML report's grid.
 *
 * Owns nothing: it runs `ebb map`'s analysis (addrspace.c) on this
 * process's /proc/self/maps and writes the result where the walk stands.
 *
 * maps, not smaps: the grid and the largest free regions need only the
 * mappings, and the kernel builds smaps page table by page table (80 ms for
 * a 650 MiB Python process, where maps takes well under one); the resident
 * figures are the report's "rss" section's.  The text and the mappings'
 * array are mapped for the occasion and given back, never malloc'd: a
 * report is written when allocation fails.  If anything cannot be read or
 * mapped, the key is null.
 */
#include "report.h"

#include "insight/addrspace.h"

#include <string.h>

/* The map's JSON without its line ends (whitespace to JSON): a report is
 * one line, so a file of them is JSON Lines. */
static void put_report(void *ctx, const char *s, size_t n)
{
    size_t from = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\n') {
            ebb__report_put(ctx, s + from, i - from);
            from = i + 1;
        }
    ebb__report_put(ctx, s + from, n - from);
}

void ebb__report_address_map(ebb__report_out_t *o, void *unused)
{
    (void)unused;
    ebb__os_text_t t;
    memset(&t, 0, sizeof t);
    if (ebb__os_proc_read(0, "maps", &t) != 0 || t.len == 0) {
        ebb__os_text_free(&t);
        ebb__report_put(o, "null", 4);
        return;
    }
    size_t cap = ebb__as_max_mappings(t.text, t.len), bad;
    size_t bytes = (cap * sizeof(ebb__as_mapping_t) + EBB_PAGE - 1) & ~(size_t)(EBB_PAGE - 1);
    ebb__as_mapping_t *maps = ebb__os_map_meta(bytes);
    long n = maps ? ebb__as_parse(t.text, t.len, maps, cap, &bad) : -1;
    if (n < 0) {
        ebb__report_put(o, "null", 4);
    } else {
        char exe[EBB_OPTION_PATH_MAX];
        long len = ebb__os_proc_link(0, "exe", exe, sizeof exe - 1);
        exe[len > 0 ? len : 0] = '\0';
        ebb__as_input_t in = { .low = ebb__os_mmap_min_addr(), .exe = len > 0 ? exe : NULL,
                               .ebb = 1 };
        ebb__as_t as;
        ebb__as_analyse(&as, maps, (size_t)n, 0, &in);
        ebb__as_row_t rows[EBB_REPORT_MAP_ROWS];
        uint64_t cell;
        size_t nrows = ebb__as_grid(&as, rows, EBB_REPORT_MAP_ROWS, &cell);
        ebb__as_about_t about = { ebb__os_pid(), NULL, "at the report" };
        ebb__as_out_t out = { put_report, o };
        ebb__as_write_json(&as, rows, nrows, cell, &about, &out);
    }
    if (maps)
        ebb__os_unmap(maps, bytes);
    ebb__os_text_free(&t);
}
