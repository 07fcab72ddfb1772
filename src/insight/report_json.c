/*
 * report_json.c -- the report's back end for programs (schema ebb.report/1,
 * schema/ebb.report-1.json).
 *
 * Owns: the JSON's punctuation and its values: members by key, entries of
 * lists without one, strings escaped, numbers in bytes, addresses as
 * strings, absent things as null.  One report is one line, so a file of
 * automatic reports is JSON Lines.
 *
 * The JSON goes by an item's key and never sees the text's words; the
 * walker tells it where each thing stands (first in its container or not,
 * in a list or an object), which is all a comma and a key need, so this
 * back end keeps no state of its own either.  Keys are only ever added
 * within a schema version: a change of meaning makes version 2.
 */
#include "report.h"

#include <string.h>

static const char *json_name(const char *key, const char *words)
{
    (void)words;
    return key;
}

/* The first n bytes of s (up to a NUL) as a JSON string. */
static void json_string(ebb__report_out_t *o, const char *s, size_t n)
{
    ebb__report_put(o, "\"", 1);
    for (const char *end = s + n; s < end && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = { '\\', (char)c };
            ebb__report_put(o, esc, 2);
        } else if (c < 0x20) {
            ebb__report_putf(o, "\\u00%s%x", c < 0x10 ? "0" : "", (unsigned)c);
        } else {
            ebb__report_put(o, s, 1);
        }
    }
    ebb__report_put(o, "\"", 1);
}

/* A comma after the one before, and a member's key. */
static void json_lead(ebb__report_out_t *o, const ebb__report_at_t *at, const char *key)
{
    if (!at->first)
        ebb__report_put(o, ",", 1);
    if (at->depth > 0 && !at->in_list) {
        json_string(o, key, strlen(key));
        ebb__report_put(o, ":", 1);
    }
}

static void json_open(ebb__report_out_t *o, const ebb__report_at_t *at, const char *key, int list)
{
    json_lead(o, at, key);
    ebb__report_put(o, list ? "[" : "{", 1);
}

static void json_close(ebb__report_out_t *o, unsigned depth, int list)
{
    ebb__report_put(o, list ? "]" : "}", 1);
    if (depth == 0)
        ebb__report_put(o, "\n", 1);
}

static void json_item(ebb__report_out_t *o, const ebb__report_at_t *at, const char *key,
                      const ebb__report_value_t *v)
{
    json_lead(o, at, key);
    switch (v->unit) {
    case EBB__REPORT_NULL:
        ebb__report_put(o, "null", 4);
        break;
    case EBB__REPORT_BYTES:
    case EBB__REPORT_COUNT:
    case EBB__REPORT_PERCENT:
        ebb__report_putf(o, "%zu", v->n);
        break;
    case EBB__REPORT_SIGNED:
        ebb__report_putf(o, (ptrdiff_t)v->n < 0 ? "-%zu" : "%zu",
                         (ptrdiff_t)v->n < 0 ? -v->n : v->n);
        break;
    case EBB__REPORT_FLAG:
        ebb__report_putf(o, "%s", v->n ? "true" : "false");
        break;
    case EBB__REPORT_ADDRESS:
        ebb__report_putf(o, "\"%p\"", (void *)(uintptr_t)v->n);
        break;
    case EBB__REPORT_TEXT:
        json_string(o, v->str, v->len);
        break;
    case EBB__REPORT_RAW:
        v->raw(o, v->arg);
        break;
    }
}

const ebb__report_back_t ebb__report_as_json = {
    .name = json_name,
    .open = json_open,
    .item = json_item,
    .close = json_close,
};
