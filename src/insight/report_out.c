/*
 * report_out.c -- where a report's bytes go: a file descriptor, or memory.
 *
 * Owns: ebb__report_out_t's buffer and its two destinations (a file for
 * ebb_report and the automatic reports, the black box's mapped slot for its
 * brief report), and the formatted write every back end uses.
 *
 * Bytes are gathered in a 2 KiB buffer on the writer's stack and written
 * when it fills and at the end: one write(2) per buffer, no stdio, no
 * malloc.  A failed write is remembered with its errno and the rest of the
 * report is dropped, so the caller reports the first failure.  In memory,
 * the report is cut at the slot's size, always NUL-terminated, and `cut`
 * says so (a cut JSON is no JSON: the black box writes a smaller one).
 *
 * JSON that goes inside an HTML page (`html`) has every '<' written as
 * \u003c: in JSON a '<' can only be inside a string, where the escape means
 * the same, and a page's <script> element ends at the first "</script>"
 * whatever JSON says, so a Python frame's text could otherwise end it.
 */
#include "report.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

void ebb__report_out_init(ebb__report_out_t *o, int fd, char *mem, size_t cap)
{
    o->fd = mem ? -1 : fd;
    o->failed = 0;
    o->err = 0;
    o->mem = mem;
    o->mem_cap = cap;
    o->mem_len = 0;
    o->cut = 0;
    o->html = 0;
    o->at = 0;
    if (mem)
        mem[0] = '\0';
}

void ebb__report_flush(ebb__report_out_t *o)
{
    if (o->fd < 0) {
        size_t room = o->mem_cap - 1 - o->mem_len;
        size_t k = o->at < room ? o->at : room;
        o->cut |= k < o->at;
        memcpy(o->mem + o->mem_len, o->buf, k);
        o->mem_len += k;
        o->mem[o->mem_len] = '\0';
    } else if (o->at && !o->failed && ebb__os_write_all(o->fd, o->buf, o->at) != 0) {
        o->failed = 1;
        o->err = errno;
    }
    o->at = 0;
}

/* s into the buffer with each '<' as the JSON escape \u003c. */
static void put_html_safe(ebb__report_out_t *o, const char *s, size_t n)
{
    const char *lt;
    while (n > 0 && (lt = memchr(s, '<', n)) != NULL) {
        size_t k = (size_t)(lt - s);
        o->html = 0;
        ebb__report_put(o, s, k);
        ebb__report_put(o, "\\u003c", 6);
        o->html = 1;
        s += k + 1;
        n -= k + 1;
    }
    o->html = 0;
    ebb__report_put(o, s, n);
    o->html = 1;
}

void ebb__report_put(ebb__report_out_t *o, const char *s, size_t n)
{
    if (o->html && memchr(s, '<', n) != NULL) {
        put_html_safe(o, s, n);
        return;
    }
    while (n > 0) {
        if (o->at == sizeof o->buf)
            ebb__report_flush(o);
        size_t room = sizeof o->buf - o->at;
        size_t k = n < room ? n : room;
        memcpy(o->buf + o->at, s, k);
        o->at += k;
        s += k;
        n -= k;
    }
}

void ebb__report_putf(ebb__report_out_t *o, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    size_t n = ebb__vformat(line, sizeof line, fmt, ap);
    va_end(ap);
    ebb__report_put(o, line, n);
}
