/*
 * diag.c -- one-line diagnoses, written without allocating.
 *
 * Owns: the formatter, the diagnostic line, the failed assertion, and
 * ebb_version (what ebb says about itself).
 *
 * A report from inside the allocator cannot use stdio (it allocates, and may
 * be what called us), so this file formats into a stack buffer: %s %p %zu %u
 * %d %x only (insight/report*.c write the reports with the same formatter).
 * A diagnosis longer than the buffer (a long path in it) is cut, and still
 * ends its line.
 */
#include "internal.h"

#include <stdarg.h>
#include <string.h>

static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at + 1 < cap)
        buf[at++] = *s++;
    return at;
}

static size_t put_num(char *buf, size_t at, size_t cap, unsigned long long v, unsigned base,
                      int negative)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (negative && at + 1 < cap)
        buf[at++] = '-';
    while (n > 0 && at + 1 < cap)
        buf[at++] = tmp[--n];
    return at;
}

size_t ebb__vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
    size_t at = 0;
    for (const char *f = fmt; *f && at + 1 < cap; f++) {
        if (*f != '%') {
            buf[at++] = *f;
            continue;
        }
        f++;
        if (*f == 'z')
            f++;
        switch (*f) {
        case 's':
            at = put_str(buf, at, cap, va_arg(ap, const char *));
            break;
        case 'p':
            at = put_str(buf, at, cap, "0x");
            at = put_num(buf, at, cap, (uintptr_t)va_arg(ap, void *), 16, 0);
            break;
        case 'u':
            at = put_num(buf, at, cap, f[-1] == 'z' ? va_arg(ap, size_t) : va_arg(ap, unsigned), 10, 0);
            break;
        case 'x':
            at = put_num(buf, at, cap, va_arg(ap, unsigned), 16, 0);
            break;
        case 'd': {
            int v = va_arg(ap, int);
            at = put_num(buf, at, cap, v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v, 10, v < 0);
            break;
        }
        case '%':
            buf[at++] = '%';
            break;
        default:
            if (*f == '\0')
                f--;
            break;
        }
    }
    buf[at] = '\0';
    return at;
}

size_t ebb__format(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = ebb__vformat(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

void ebb__diag(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    size_t n = ebb__vformat(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* A line cut to fit (a long path in it) still ends as a line. */
    size_t flen = strlen(fmt);
    if (n == sizeof buf - 1 && flen > 0 && fmt[flen - 1] == '\n')
        memcpy(buf + n - 4, "...\n", 4);
    ebb__os_write_diag(buf, n);
}

_Noreturn void ebb__assert_fail(const char *cond, const char *file, int line)
{
    ebb__diag("ebb: internal assertion failed: %s (%s:%d)\n", cond, file, line);
    ebb__os_abort();
}

EBB_API const char *ebb_version(void)
{
    return EBB_VERSION_STRING;
}
