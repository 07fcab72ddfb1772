/*
 * addrspace_out.c -- an analysed address space (addrspace.c) written out:
 * as text for a terminal, or as one JSON object for programs (the HTML
 * report draws its picture from it).
 *
 * The text puts the picture first and the tables after it: the grid with
 * its legend, then the largest free regions (what a big allocation can
 * still get), the figures per kind, and the mappings that have a name (a
 * file, a stack, an arena), merged where one object spans several.  The
 * JSON carries the same and every mapping.
 *
 * Pure like addrspace.c: no stdio, no allocation; numbers are formatted
 * here, and every byte goes through the caller's as_put(), so the tool can
 * write to a FILE and the library to a descriptor.
 */
#include "addrspace.h"

#include <string.h>

static void as_put(ebb__as_out_t *o, const char *s)
{
    o->put(o->ctx, s, strlen(s));
}

static void as_put_n(ebb__as_out_t *o, const char *s, size_t n)
{
    o->put(o->ctx, s, n);
}

static void as_put_spaces(ebb__as_out_t *o, size_t n)
{
    static const char spaces[] = "                                ";
    while (n > 0) {
        size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        as_put_n(o, spaces, k);
        n -= k;
    }
}

/* v in decimal into buf (at least 21 bytes); returns the length. */
static size_t as_fmt_u64(char *buf, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

/* "0x" and v in hex, at least `digits` digits, into buf (at least 19). */
static size_t as_fmt_hex(char *buf, uint64_t v, unsigned digits)
{
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (n < digits && n < sizeof tmp)
        tmp[n++] = '0';
    buf[0] = '0';
    buf[1] = 'x';
    for (size_t i = 0; i < n; i++)
        buf[2 + i] = tmp[n - 1 - i];
    buf[2 + n] = '\0';
    return 2 + n;
}

/* Bytes for a reader: "512 B", "12.5 KiB", "2.0 GiB" (into 24 bytes). */
static size_t as_fmt_size(char *buf, uint64_t v)
{
    static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    unsigned u = 0;
    while (u + 1 < sizeof unit / sizeof unit[0] && (v >> (10 * (u + 1))) != 0)
        u++;
    size_t n = as_fmt_u64(buf, v >> (10 * u));
    if (u > 0) {
        /* tenths, rounded down: (v mod 1024^u) * 10 / 1024^u, from the
         * top 10 bits of the rest (no overflow for any u) */
        uint64_t rest = v & ((UINT64_C(1) << (10 * u)) - 1);
        buf[n++] = '.';
        buf[n++] = (char)('0' + (unsigned)((rest >> (10 * u - 10)) * 10 >> 10));
    }
    buf[n++] = ' ';
    strcpy(buf + n, unit[u]);
    return n + strlen(unit[u]);
}

static void as_put_u64(ebb__as_out_t *o, uint64_t v)
{
    char b[24];
    as_put_n(o, b, as_fmt_u64(b, v));
}

static unsigned as_addr_digits(const ebb__as_t *as)
{
    return as->bits == 32 ? 8 : 12;
}

static void as_put_addr(ebb__as_out_t *o, const ebb__as_t *as, uint64_t a)
{
    char b[24];
    as_put_n(o, b, as_fmt_hex(b, a, as_addr_digits(as)));
}

static void as_put_size(ebb__as_out_t *o, uint64_t v)
{
    char b[32];
    as_put_n(o, b, as_fmt_size(b, v));
}

/* A size right-aligned in `width` columns. */
static void as_put_size_col(ebb__as_out_t *o, uint64_t v, size_t width)
{
    char b[32];
    size_t n = as_fmt_size(b, v);
    as_put_spaces(o, n < width ? width - n : 1);
    as_put_n(o, b, n);
}

static void as_put_range(ebb__as_out_t *o, const ebb__as_t *as, uint64_t start, uint64_t end)
{
    as_put_addr(o, as, start);
    as_put(o, "-");
    as_put_addr(o, as, end);
}

/* ------------------------------------------------------------ objects */

/* One labelled thing: maps[first..last] (a library's segments, a stack
 * and its guard, adjacent arenas). */
typedef struct {
    size_t first, last;
    ebb__as_sum_t sum;
} as_object_t;

static int as_same_object(const ebb__as_mapping_t *a, const ebb__as_mapping_t *b)
{
    if (a->kind != b->kind)
        return 0;
    switch (a->kind) {
    case EBB__AS_STACK:
        /* a thread stack's guard and its stack, nothing more */
        return a->no_access && !b->no_access && a->end == b->start && a->name_len == 0;
    case EBB__AS_EBB:
        return a->end == b->start;
    default:
        return a->name_len > 0 && a->name_len == b->name_len &&
               memcmp(a->name, b->name, a->name_len) == 0;
    }
}

/* The object starting at maps[i] (not anonymous); returns the index after
 * it. */
static size_t as_next_object(const ebb__as_t *as, size_t i, as_object_t *obj)
{
    memset(obj, 0, sizeof *obj);
    obj->first = i;
    size_t j = i;
    for (;;) {
        const ebb__as_mapping_t *m = &as->maps[j];
        obj->sum.mappings++;
        obj->sum.size += m->end - m->start;
        obj->sum.rss += m->rss;
        obj->sum.pss += m->pss;
        obj->sum.dirty += m->dirty;
        obj->sum.swap += m->swap;
        if (j + 1 >= as->n || !as_same_object(m, &as->maps[j + 1]))
            break;
        j++;
    }
    obj->last = j;
    return j + 1;
}

static void as_put_object_name(ebb__as_out_t *o, const ebb__as_t *as, const as_object_t *obj)
{
    const ebb__as_mapping_t *m = &as->maps[obj->last];
    if (m->name_len > 0)
        as_put_n(o, m->name, m->name_len);
    else if (m->kind == EBB__AS_STACK)
        as_put(o, obj->first < obj->last ? "thread stack (guard page below)" : "thread stack");
    else if (m->kind == EBB__AS_EBB)
        as_put(o, "ebb arenas");
    else
        as_put(o, "anonymous");
}

/* --------------------------------------------------------------- text */

static void as_text_header(const ebb__as_t *as, const ebb__as_about_t *about, ebb__as_out_t *o)
{
    as_put(o, "ebb map: pid ");
    as_put_u64(o, (uint64_t)about->pid);
    if (about->command) {
        as_put(o, " (");
        as_put(o, about->command);
        as_put(o, ")");
    }
    as_put(o, as->bits == 32 ? ", a 32-bit process" : ", a 64-bit process");
    if (as->ebb)
        as_put(o, " on ebb");
    if (about->when) {
        as_put(o, ", ");
        as_put(o, about->when);
    }
    as_put(o, "\nuser space ");
    as_put_range(o, as, as->low, as->top);
    as_put(o, ": ");
    as_put_size(o, as->user.size);
    as_put(o, " mapped in ");
    as_put_u64(o, as->user.mappings);
    as_put(o, " mappings, ");
    as_put_size(o, as->free_bytes);
    as_put(o, " free");
    if (as->smaps) {
        as_put(o, "\nRSS ");
        as_put_size(o, as->user.rss);
        as_put(o, ", PSS ");
        as_put_size(o, as->user.pss);
        as_put(o, ", dirty ");
        as_put_size(o, as->user.dirty);
        as_put(o, ", swap ");
        as_put_size(o, as->user.swap);
    }
    as_put(o, "\n\n");
}

static void as_text_grid(const ebb__as_t *as, const ebb__as_row_t *rows, size_t nrows,
                         uint64_t cell, ebb__as_out_t *o)
{
    as_put(o, "address space: a cell is ");
    as_put_size(o, cell);
    as_put(o, ", a row ");
    as_put_size(o, cell * EBB__AS_COLUMNS);
    as_put(o, as->bits == 32 ? " (the whole 4 GiB)\n" : " (folded where nothing is mapped)\n");
    for (size_t i = 0; i < nrows; i++) {
        if (rows[i].gap) {
            as_put_spaces(o, as_addr_digits(as) + 3);
            as_put(o, "~~ ");
            as_put_size(o, rows[i].end - rows[i].start);
            as_put(o, " free, ");
            as_put_range(o, as, rows[i].start, rows[i].end);
            as_put(o, " ~~\n");
            continue;
        }
        as_put_addr(o, as, rows[i].start);
        as_put(o, " ");
        as_put(o, rows[i].cells);
        as_put(o, "\n");
    }
    for (unsigned k = 0; k < EBB__AS_KINDS; k++) {
        char c[2] = { ebb__as_kind_char(k), 0 };
        as_put(o, k % 4 == 0 ? "  " : "   ");
        as_put(o, c);
        as_put(o, " ");
        as_put(o, ebb__as_kind_words(k));
        if (k % 4 == 3)
            as_put(o, "\n");
    }
    as_put(o, "  . free   lower case: no access (guard pages, reservations)\n\n");
}

static void as_text_free(const ebb__as_t *as, ebb__as_out_t *o)
{
    as_put(o, "largest free regions (");
    as_put_size(o, as->free_bytes);
    as_put(o, " free in ");
    as_put_u64(o, as->free_regions);
    as_put(o, as->free_regions == 1 ? " region):\n" : " regions):\n");
    for (unsigned i = 0; i < as->nlargest; i++) {
        char n[4] = { ' ', (char)('1' + i), '.', 0 };
        as_put(o, n);
        as_put(o, " ");
        as_put_range(o, as, as->largest[i].start, as->largest[i].end);
        as_put_size_col(o, as->largest[i].end - as->largest[i].start, 12);
        as_put(o, "\n");
    }
    as_put(o, "\n");
}

static void as_put_sum_cols(ebb__as_out_t *o, const ebb__as_t *as, const ebb__as_sum_t *s)
{
    char b[24];
    size_t n = as_fmt_u64(b, s->mappings);
    as_put_spaces(o, n < 6 ? 6 - n : 1);
    as_put_n(o, b, n);
    as_put_size_col(o, s->size, 12);
    if (as->smaps) {
        as_put_size_col(o, s->rss, 12);
        as_put_size_col(o, s->pss, 12);
        as_put_size_col(o, s->dirty, 12);
        as_put_size_col(o, s->swap, 12);
    }
    as_put(o, "\n");
}

static void as_text_groups(const ebb__as_t *as, ebb__as_out_t *o)
{
    as_put(o, "by kind:                        maps        size");
    as_put(o, as->smaps ? "         RSS         PSS       dirty        swap\n"
                     : "   (maps only: no RSS figures)\n");
    for (unsigned k = 0; k < EBB__AS_KINDS; k++) {
        const ebb__as_sum_t *s = &as->kind[k];
        if (s->mappings == 0)
            continue;
        const char *w = ebb__as_kind_words(k);
        char c[2] = { ebb__as_kind_char(k), 0 };
        as_put(o, "  ");
        as_put(o, c);
        as_put(o, " ");
        as_put(o, w);
        as_put_spaces(o, strlen(w) < 26 ? 26 - strlen(w) : 1);
        as_put_sum_cols(o, as, s);
    }
    as_put(o, "  all (user space)");
    as_put_spaces(o, 12);
    as_put_sum_cols(o, as, &as->user);
    as_put(o, "\n");
}

static void as_text_objects(const ebb__as_t *as, ebb__as_out_t *o)
{
    as_put(o, "named mappings (other anonymous ones are counted above):\n");
    for (size_t i = 0; i < as->n;) {
        if (as->maps[i].kind == EBB__AS_ANON) {
            i++;
            continue;
        }
        as_object_t obj;
        i = as_next_object(as, i, &obj);
        char c[2] = { ebb__as_kind_char(as->maps[obj.first].kind), 0 };
        as_put(o, "  ");
        as_put(o, c);
        as_put(o, " ");
        as_put_range(o, as, as->maps[obj.first].start, as->maps[obj.last].end);
        as_put_size_col(o, obj.sum.size, 11);
        if (as->smaps) {
            as_put(o, "  RSS");
            as_put_size_col(o, obj.sum.rss, 11);
        }
        as_put(o, "  ");
        as_put_object_name(o, as, &obj);
        as_put(o, "\n");
    }
}

void ebb__as_write_text(const ebb__as_t *as, const ebb__as_row_t *rows, size_t nrows,
                        uint64_t cell, const ebb__as_about_t *about, ebb__as_out_t *o)
{
    as_text_header(as, about, o);
    as_text_grid(as, rows, nrows, cell, o);
    as_text_free(as, o);
    as_text_groups(as, o);
    as_text_objects(as, o);
}

/* --------------------------------------------------------------- JSON */

static void as_json_string(ebb__as_out_t *o, const char *s, size_t n)
{
    as_put(o, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = { '\\', (char)c };
            as_put_n(o, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[7] = { '\\', 'u', '0', '0', "0123456789abcdef"[c >> 4],
                            "0123456789abcdef"[c & 15], 0 };
            as_put(o, esc);
        } else {
            as_put_n(o, s + i, 1);
        }
    }
    as_put(o, "\"");
}

static void as_json_key(ebb__as_out_t *o, const char *key)
{
    as_put(o, "\"");
    as_put(o, key);
    as_put(o, "\":");
}

static void as_json_addr(ebb__as_out_t *o, const char *key, uint64_t a)
{
    char b[24];
    as_json_key(o, key);
    as_put(o, "\"");
    as_put_n(o, b, as_fmt_hex(b, a, 0));
    as_put(o, "\"");
}

static void as_json_num(ebb__as_out_t *o, const char *key, uint64_t v)
{
    as_json_key(o, key);
    as_put_u64(o, v);
}

/* The figures of s; the smaps ones null when only maps was read. */
static void as_json_sum(ebb__as_out_t *o, const ebb__as_t *as, const ebb__as_sum_t *s)
{
    as_json_num(o, "mappings", s->mappings);
    as_put(o, ",");
    as_json_num(o, "size", s->size);
    static const char *const keys[] = { "rss", "pss", "dirty", "swap" };
    const uint64_t v[] = { s->rss, s->pss, s->dirty, s->swap };
    for (unsigned i = 0; i < 4; i++) {
        as_put(o, ",");
        as_json_key(o, keys[i]);
        if (as->smaps)
            as_put_u64(o, v[i]);
        else
            as_put(o, "null");
    }
}

static void as_json_groups(const ebb__as_t *as, ebb__as_out_t *o)
{
    as_put(o, ",\"groups\":[");
    for (unsigned k = 0; k < EBB__AS_KINDS; k++) {
        char c[2] = { ebb__as_kind_char(k), 0 };
        as_put(o, k ? ",{" : "{");
        as_json_key(o, "kind");
        as_json_string(o, ebb__as_kind_key(k), strlen(ebb__as_kind_key(k)));
        as_put(o, ",");
        as_json_key(o, "char");
        as_json_string(o, c, 1);
        as_put(o, ",");
        as_json_key(o, "name");
        as_json_string(o, ebb__as_kind_words(k), strlen(ebb__as_kind_words(k)));
        as_put(o, ",");
        as_json_sum(o, as, &as->kind[k]);
        as_put(o, "}");
    }
    as_put(o, "]");
}

static void as_json_free(const ebb__as_t *as, ebb__as_out_t *o)
{
    as_put(o, ",\"free\":{");
    as_json_num(o, "bytes", as->free_bytes);
    as_put(o, ",");
    as_json_num(o, "regions", as->free_regions);
    as_put(o, ",\"largest\":[");
    for (unsigned i = 0; i < as->nlargest; i++) {
        as_put(o, i ? ",{" : "{");
        as_json_addr(o, "start", as->largest[i].start);
        as_put(o, ",");
        as_json_addr(o, "end", as->largest[i].end);
        as_put(o, ",");
        as_json_num(o, "size", as->largest[i].end - as->largest[i].start);
        as_put(o, "}");
    }
    as_put(o, "]}");
}

static void as_json_grid(const ebb__as_row_t *rows, size_t nrows, uint64_t cell, ebb__as_out_t *o)
{
    as_put(o, ",\"grid\":{");
    as_json_num(o, "cell", cell);
    as_put(o, ",");
    as_json_num(o, "columns", EBB__AS_COLUMNS);
    as_put(o, ",\"legend\":{");
    for (unsigned k = 0; k < EBB__AS_KINDS; k++) {
        char c[2] = { ebb__as_kind_char(k), 0 };
        as_json_key(o, c);
        as_json_string(o, ebb__as_kind_key(k), strlen(ebb__as_kind_key(k)));
        as_put(o, ",");
    }
    as_put(o, "\".\":\"free\"},\"rows\":[");
    for (size_t i = 0; i < nrows; i++) {
        as_put(o, i ? ",{" : "{");
        as_json_addr(o, "start", rows[i].start);
        as_put(o, ",");
        if (rows[i].gap) {
            as_json_addr(o, "end", rows[i].end);
            as_put(o, ",");
            as_json_num(o, "free", rows[i].end - rows[i].start);
        } else {
            as_json_key(o, "cells");
            as_json_string(o, rows[i].cells, EBB__AS_COLUMNS);
        }
        as_put(o, "}");
    }
    as_put(o, "]}");
}

static void as_json_mappings(const ebb__as_t *as, ebb__as_out_t *o)
{
    as_put(o, ",\"mappings\":[");
    for (size_t i = 0; i < as->n; i++) {
        const ebb__as_mapping_t *m = &as->maps[i];
        ebb__as_sum_t one = { 1, m->end - m->start, m->rss, m->pss, m->dirty, m->swap };
        as_put(o, i ? ",{" : "{");
        as_json_addr(o, "start", m->start);
        as_put(o, ",");
        as_json_addr(o, "end", m->end);
        as_put(o, ",");
        as_json_key(o, "perms");
        as_json_string(o, m->perms, 4);
        as_put(o, ",");
        as_json_key(o, "kind");
        as_json_string(o, ebb__as_kind_key(m->kind), strlen(ebb__as_kind_key(m->kind)));
        as_put(o, ",");
        as_json_key(o, "name");
        as_json_string(o, m->name, m->name_len);
        as_put(o, ",");
        as_json_sum(o, as, &one);
        as_put(o, "}");
    }
    as_put(o, "]");
}

void ebb__as_write_json(const ebb__as_t *as, const ebb__as_row_t *rows, size_t nrows,
                        uint64_t cell, const ebb__as_about_t *about, ebb__as_out_t *o)
{
    as_put(o, "{\"schema\":\"ebb.map/1\",");
    as_json_num(o, "pid", (uint64_t)about->pid);
    as_put(o, ",");
    as_json_key(o, "command");
    if (about->command)
        as_json_string(o, about->command, strlen(about->command));
    else
        as_put(o, "null");
    as_put(o, ",");
    as_json_key(o, "when");
    if (about->when)
        as_json_string(o, about->when, strlen(about->when));
    else
        as_put(o, "null");
    as_put(o, ",");
    as_json_num(o, "bits", (uint64_t)as->bits);
    as_put(o, as->ebb ? ",\"ebb\":true" : ",\"ebb\":false");
    as_put(o, as->smaps ? ",\"smaps\":true" : ",\"smaps\":false");
    as_put(o, ",\"user_space\":{");
    as_json_addr(o, "start", as->low);
    as_put(o, ",");
    as_json_addr(o, "end", as->top);
    as_put(o, "},\"totals\":{");
    as_json_sum(o, as, &as->user);
    as_put(o, "}");
    as_json_free(as, o);
    as_json_groups(as, o);
    as_json_grid(rows, nrows, cell, o);
    as_json_mappings(as, o);
    as_put(o, "}\n");
}
