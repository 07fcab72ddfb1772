/*
 * report_text.c -- the report's back end for people.
 *
 * Owns: how a value reads (sizes in binary units with one decimal, counts,
 * per cents, addresses) and putting it into its phrase.
 *
 * The text goes by an item's words, the phrase as it reads with the value
 * where "%s" stands (report_walk.c says why the phrases live there), so
 * this back end has no layout of its own to keep: no state, no nesting, a
 * container's words are written as they are.  What it adds is the reader's
 * view of a number: "1.5 MiB" where the JSON says 1572864.
 */
#include "report.h"

#include <string.h>

static const char *text_name(const char *key, const char *words)
{
    (void)key;
    return words;
}

static void text_open(ebb__report_out_t *o, const ebb__report_at_t *at, const char *words, int list)
{
    (void)at;
    (void)list;
    ebb__report_put(o, words, strlen(words));
}

static void text_close(ebb__report_out_t *o, unsigned depth, int list)
{
    (void)o;
    (void)depth;
    (void)list;
}

/* n bytes for a reader: "512 B", "12.5 KiB", "1023.9 MiB", "2.0 GiB". */
static size_t text_size(char *buf, size_t cap, size_t n)
{
    static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    unsigned u = 0;
    uint64_t whole = n, tenths = 0;
    while (whole >= 1024 && u + 1 < sizeof unit / sizeof unit[0]) {
        uint64_t scaled = (uint64_t)n * 10 >> (10 * (u + 1)); /* n < 2^60 here */
        whole = scaled / 10;
        tenths = scaled % 10;
        u++;
    }
    if (u == 0)
        return ebb__format(buf, cap, "%zu B", n);
    return ebb__format(buf, cap, "%zu.%u %s", (size_t)whole, (unsigned)tenths, unit[u]);
}

static void text_item(ebb__report_out_t *o, const ebb__report_at_t *at, const char *words,
                      const ebb__report_value_t *v)
{
    (void)at;
    char num[48];
    const char *value = num;
    size_t len = 0;
    switch (v->unit) {
    case EBB__REPORT_NULL:
        break;
    case EBB__REPORT_BYTES:
        len = text_size(num, sizeof num, v->n);
        break;
    case EBB__REPORT_COUNT:
        len = ebb__format(num, sizeof num, "%zu", v->n);
        break;
    case EBB__REPORT_SIGNED:
        num[0] = '-';
        len = (ptrdiff_t)v->n < 0 ? 1 + text_size(num + 1, sizeof num - 1, -v->n)
                                  : text_size(num, sizeof num, v->n);
        break;
    case EBB__REPORT_PERCENT:
        len = ebb__format(num, sizeof num, "%zu%%", v->n);
        break;
    case EBB__REPORT_FLAG:
        value = v->n ? "yes" : "no";
        len = strlen(value);
        break;
    case EBB__REPORT_ADDRESS:
        len = ebb__format(num, sizeof num, "%p", (void *)(uintptr_t)v->n);
        break;
    case EBB__REPORT_TEXT:
        value = v->str;
        len = v->len;
        break;
    case EBB__REPORT_RAW: /* JSON: the text has its own words for it */
        break;
    }
    /* Words without a "%s" are all there is to say (a value-less item). */
    const char *slot = strstr(words, "%s");
    if (slot == NULL) {
        ebb__report_put(o, words, strlen(words));
        return;
    }
    ebb__report_put(o, words, (size_t)(slot - words));
    ebb__report_put(o, value, len);
    ebb__report_put(o, slot + 2, strlen(slot + 2));
}

const ebb__report_back_t ebb__report_as_text = {
    .name = text_name,
    .open = text_open,
    .item = text_item,
    .close = text_close,
};
