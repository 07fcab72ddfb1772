/*
 * options.c -- the EBB_* options: read once, at start-up, from one table.
 *
 * Owns: ebb__opt, the values every layer reads (never the environment
 * itself), and the parsers that turn a variable's text into a value.
 *
 * The table is base/options_table.h: a row per variable with its default,
 * parser, range and meaning.  Reading walks it: every field gets its default
 * first, then each variable that is set is parsed in table order; a value
 * that does not parse keeps the default and is reported in one line on
 * stderr ("ebb: ignoring EBB_HEAPS=many (not a valid value)").  Setting every
 * default before parsing anything lets one variable refine another's field
 * (EBB_REPORT=x.json sets the JSON format, an explicit EBB_REPORT_FORMAT
 * wins) whatever the defaults are.
 *
 * A privileged process (AT_SECURE: setuid, setgid, file capabilities)
 * reads no variable at all: its caller, who chose the environment, must not
 * steer it (ignore_the_environment says how).
 *
 * This runs inside the first allocation, which may come from the dynamic
 * loader before the C library is set up: nothing here allocates or uses
 * stdio, and the environment is read through the OS layer, which falls back
 * to /proc/self/environ while `environ` is not there yet.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

#include "base/size.h"

EBB_HIDDEN ebb__options_t ebb__opt;

/* The parsers.  Each kind fixes the type of its field (checked below). */
enum {
    EBB_OPT_FLAG,    /* int: 1/on/yes/true or 0/off/no/false */
    EBB_OPT_COUNT,   /* unsigned: a size within [min, max] */
    EBB_OPT_SIZE,    /* size_t: 512K, 64M, 1GiB, 12345; 0, or at least min */
    EBB_OPT_DELAY,   /* long: -1, or a size up to EBB_PURGE_DELAY_MAX_MS (= max) */
    EBB_OPT_CHOICE,  /* int: the position of the value among the syntax's names */
    EBB_OPT_PERCENT, /* unsigned: 1 to 100, with or without "%" */
    EBB_OPT_SIGNAL,  /* int: USR1, USR2 or a real-time signal, by name or number */
    EBB_OPT_LIMIT,   /* size_t limit, with limit_percent: SIZE (0, or at least
                      * EBB_LIMIT_FLOOR), N% or auto */
    EBB_OPT_REPORT,  /* report_path, with report_off and report_json */
    EBB_OPT_PATH,    /* char[]: a path; "off" or "0" for none */
    EBB_OPT_PATHS    /* char[]: paths separated by ':', each made absolute */
};

/* The field size each kind stores into. */
#define EBB_OPT_BYTES_FLAG sizeof(int)
#define EBB_OPT_BYTES_COUNT sizeof(unsigned)
#define EBB_OPT_BYTES_SIZE sizeof(size_t)
#define EBB_OPT_BYTES_DELAY sizeof(long)
#define EBB_OPT_BYTES_CHOICE sizeof(int)
#define EBB_OPT_BYTES_PERCENT sizeof(unsigned)
#define EBB_OPT_BYTES_SIGNAL sizeof(int)
#define EBB_OPT_BYTES_LIMIT sizeof(size_t)
#define EBB_OPT_BYTES_REPORT EBB_OPTION_PATH_MAX
#define EBB_OPT_BYTES_PATH EBB_OPTION_PATH_MAX
#define EBB_OPT_BYTES_PATHS EBB_OPTION_PATH_MAX

typedef struct {
    const char *name;   /* "EBB_HEAPS" */
    unsigned char kind; /* EBB_OPT_* */
    size_t offset;      /* of its field in ebb__options_t */
    long long dflt, min, max;
    const char *syntax; /* for CHOICE: the names, '|'-separated */
} option_t;

/* Rows meant for the unit tests exist only in debug builds. */
#define EBB_AUDIENCE_USER(...) __VA_ARGS__
#define EBB_AUDIENCE_LAUNCH(...) __VA_ARGS__
#if EBB_DEBUG >= 1
#define EBB_AUDIENCE_TEST(...) __VA_ARGS__
#else
#define EBB_AUDIENCE_TEST(...)
#endif

#define EBB_OPTION_ROW(name, field, kind, dflt, min, max, syntax, dtext, doc, audience)           \
    EBB_AUDIENCE_##audience(                                                                       \
        { "EBB_" #name, EBB_OPT_##kind, offsetof(ebb__options_t, field), (long long)(dflt),        \
          (long long)(min), (long long)(max), syntax },)

static const option_t table[] = { EBB_OPTIONS(EBB_OPTION_ROW) };

/* Every field has the type its parser writes. */
#define EBB_OPTION_CHECK(name, field, kind, dflt, min, max, syntax, dtext, doc, audience)         \
    _Static_assert(sizeof(((ebb__options_t *)0)->field) == EBB_OPT_BYTES_##kind,                   \
                   "EBB_" #name ": the field's type is not what its parser writes");
EBB_OPTIONS(EBB_OPTION_CHECK)

/* Why a value is refused, when no more is to be said. */
static const char invalid[] = "not a valid value";
static const char not_a_report_signal[] = "only USR1, USR2 or a real-time signal may ask for a report";

/* "ebb: ignoring NAME=VALUE (why)", the value cut to fit one line. */
static void bad_option(const char *name, const char *value, const char *why)
{
    char shown[80];
    size_t len = strlen(value);
    if (len < sizeof shown) {
        memcpy(shown, value, len + 1);
    } else {
        memcpy(shown, value, sizeof shown - 4);
        memcpy(shown + sizeof shown - 4, "...", 4);
    }
    ebb__diag("ebb: ignoring %s=%s (%s)\n", name, shown, why);
}

/* ------------------------------------------------------------- parsers */

static int parse_flag(const char *v, long long *out)
{
    if (!strcmp(v, "1") || !strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true"))
        *out = 1;
    else if (!strcmp(v, "0") || !strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false"))
        *out = 0;
    else
        return 0;
    return 1;
}

/* v is one of the '|'-separated names of `names`; *out its position. */
static int parse_choice(const char *names, const char *v, long long *out)
{
    size_t len = strlen(v);
    long long i = 0;
    for (const char *s = names;; i++) {
        const char *bar = strchr(s, '|');
        size_t n = bar ? (size_t)(bar - s) : strlen(s);
        if (n == len && !strncmp(s, v, n)) {
            *out = i;
            return 1;
        }
        if (bar == NULL)
            return 0;
        s = bar + 1;
    }
}

/* A number-valued kind's value into *out: EBB_VALUE_* (base/size.h). */
static int parse_number(const option_t *row, const char *v, long long *out)
{
    size_t n;
    unsigned pct;
    long ms;
    int rc;
    switch (row->kind) {
    case EBB_OPT_FLAG:
        return parse_flag(v, out) ? EBB_VALUE_OK : EBB_VALUE_INVALID;
    case EBB_OPT_CHOICE:
        return parse_choice(row->syntax, v, out) ? EBB_VALUE_OK : EBB_VALUE_INVALID;
    case EBB_OPT_PERCENT:
        if (!ebb__parse_percent(v, &pct))
            return EBB_VALUE_INVALID;
        *out = pct;
        return EBB_VALUE_OK;
    case EBB_OPT_SIGNAL:
        *out = ebb__os_report_signal(v);
        return *out != 0 ? EBB_VALUE_OK : EBB_VALUE_INVALID;
    case EBB_OPT_DELAY:
        if ((rc = ebb__check_delay(v, &ms)) == EBB_VALUE_OK)
            *out = ms;
        return rc;
    case EBB_OPT_SIZE:
        if ((rc = ebb__check_size(v, (size_t)row->min, &n)) == EBB_VALUE_OK)
            *out = (long long)n;
        return rc;
    case EBB_OPT_COUNT:
        if (!ebb__parse_size(v, &n))
            return EBB_VALUE_INVALID;
        if ((long long)n < row->min || (long long)n > row->max)
            return (long long)n < row->min ? EBB_VALUE_LOW : EBB_VALUE_HIGH;
        *out = (long long)n;
        return EBB_VALUE_OK;
    default:
        return EBB_VALUE_INVALID;
    }
}

/* n bytes as a person reads them: "4 KiB", "4 MiB", "1000 bytes". */
static void size_words(char *buf, size_t cap, size_t n)
{
    if (n >= ((size_t)1 << 20) && n % ((size_t)1 << 20) == 0)
        ebb__format(buf, cap, "%zu MiB", n >> 20);
    else if (n >= 1024 && n % 1024 == 0)
        ebb__format(buf, cap, "%zu KiB", n >> 10);
    else
        ebb__format(buf, cap, "%zu bytes", n);
}

/* Why row's value was refused (code: EBB_VALUE_*), in words, into buf. */
static const char *explain(const option_t *row, int code, char *buf, size_t cap)
{
    char least[32];
    if (row->kind == EBB_OPT_SIGNAL)
        return not_a_report_signal;
    if (code == EBB_VALUE_LOW && row->kind == EBB_OPT_LIMIT) {
        size_words(least, sizeof least, EBB_LIMIT_FLOOR);
        ebb__format(buf, cap, "below %s, the least ebb can work in; 0 for none", least);
    } else if (code == EBB_VALUE_LOW && row->kind == EBB_OPT_SIZE) {
        size_words(least, sizeof least, (size_t)row->min);
        ebb__format(buf, cap, "below %s, the least it may be; 0 for off", least);
    } else if (code == EBB_VALUE_HIGH && row->kind == EBB_OPT_DELAY) {
        ebb__format(buf, cap, "more than %d ms, a day; -1 for never", (int)row->max);
    } else if (code == EBB_VALUE_LOW || code == EBB_VALUE_HIGH) {
        ebb__format(buf, cap, "not from %d to %d", (int)row->min, (int)row->max);
    } else {
        return invalid;
    }
    return buf;
}

static void store_number(ebb__options_t *o, const option_t *row, long long v)
{
    void *field = (char *)o + row->offset;
    switch (row->kind) {
    case EBB_OPT_COUNT:
    case EBB_OPT_PERCENT:
        *(unsigned *)field = (unsigned)v;
        break;
    case EBB_OPT_SIZE:
    case EBB_OPT_LIMIT:
        *(size_t *)field = (size_t)v;
        break;
    case EBB_OPT_DELAY:
        *(long *)field = (long)v;
        break;
    default:
        *(int *)field = (int)v;
        break;
    }
}

/* A path into dst (cap bytes), made absolute now if it is relative: the
 * working directory it is relative to is the one the program started in,
 * not wherever it has moved by the time the file is opened (a black box
 * left in another directory looks like the trace of a killed process).
 * NULL, or why the path is refused (dst is then ""). */
static const char *store_path(char *dst, size_t cap, const char *v)
{
    size_t len = strlen(v), at = 0;
    const char *why = "longer than PATH_MAX";
    if (v[0] != '/') {
        why = "longer than PATH_MAX once made absolute";
        if (!ebb__os_getcwd(dst, cap)) {
            dst[0] = '\0';
            return "a relative path, and the working directory is unknown";
        }
        at = strlen(dst);
        if (at > 0 && dst[at - 1] != '/' && at + 1 < cap)
            dst[at++] = '/';
    }
    if (at + len >= cap) {
        dst[0] = '\0';
        return why;
    }
    memcpy(dst + at, v, len + 1);
    return NULL;
}

/* EBB_REPORT=PATH|stderr|off: where automatic reports go; a path ending in
 * ".json" also asks for JSON (EBB_REPORT_FORMAT, read next, may say
 * otherwise). */
static const char *parse_report(ebb__options_t *o, const char *v)
{
    size_t len = strlen(v);
    o->report_json = len > 5 && !strcmp(v + len - 5, ".json");
    if (!strcmp(v, "off") || !strcmp(v, "0"))
        o->report_off = 1;
    else if (len > 0 && strcmp(v, "stderr"))
        return store_path(o->report_path, sizeof o->report_path, v);
    return NULL;
}

/* PATH[:PATH...] into dst (cap bytes): each path made absolute (as
 * store_path does), joined by ':' again; empty pieces are dropped.  NULL,
 * or why the list is refused (dst is then ""): it is taken whole or not at
 * all, since a list cut short would quietly write fewer files. */
static const char *store_paths(char *dst, size_t cap, const char *v)
{
    size_t at = 0;
    dst[0] = '\0';
    while (*v) {
        const char *colon = strchr(v, ':');
        size_t len = colon ? (size_t)(colon - v) : strlen(v);
        if (len > 0) {
            char one[EBB_OPTION_PATH_MAX];
            const char *why = "longer than PATH_MAX";
            if (len < sizeof one) {
                memcpy(one, v, len);
                one[len] = '\0';
                why = at + 1 < cap ? store_path(dst + at + (at > 0), cap - at - (at > 0), one)
                                   : "longer than PATH_MAX once made absolute";
            }
            if (why != NULL) {
                dst[0] = '\0';
                return why;
            }
            if (at > 0)
                dst[at] = ':';
            at += (at > 0) + strlen(dst + at + (at > 0));
        }
        v += len + (colon != NULL);
    }
    return NULL;
}

/* Parse variable `row` (set to v) into o: NULL, or why v is refused (in
 * words, perhaps in buf). */
static const char *parse_row(ebb__options_t *o, const option_t *row, const char *v, char *buf,
                             size_t cap)
{
    long long n = 0;
    int rc;
    switch (row->kind) {
    case EBB_OPT_LIMIT:
        rc = ebb__check_limit(v, &o->limit, &o->limit_percent);
        return rc == EBB_VALUE_OK ? NULL : explain(row, rc, buf, cap);
    case EBB_OPT_REPORT:
        return parse_report(o, v);
    case EBB_OPT_PATH:
        if (v[0] == '\0' || !strcmp(v, "off") || !strcmp(v, "0"))
            return NULL;
        return store_path((char *)o + row->offset, EBB_OPT_BYTES_PATH, v);
    case EBB_OPT_PATHS:
        if (!strcmp(v, "off") || !strcmp(v, "0"))
            return NULL;
        return store_paths((char *)o + row->offset, EBB_OPT_BYTES_PATHS, v);
    default:
        if ((rc = parse_number(row, v, &n)) != EBB_VALUE_OK)
            return explain(row, rc, buf, cap);
        store_number(o, row, n);
        return NULL;
    }
}

static void set_default(ebb__options_t *o, const option_t *row)
{
    switch (row->kind) {
    case EBB_OPT_LIMIT:
        o->limit = 0;
        o->limit_percent = 0;
        break;
    case EBB_OPT_REPORT:
        o->report_off = 0;
        o->report_json = 0;
        o->report_path[0] = '\0';
        break;
    case EBB_OPT_PATH:
    case EBB_OPT_PATHS:
        ((char *)o + row->offset)[0] = '\0';
        break;
    default:
        store_number(o, row, row->dflt);
        break;
    }
}

/* ------------------------------------------------------------- reading */

/* A privileged process (setuid, setgid, file capabilities) is started by
 * someone with fewer rights, who chooses its environment: obeyed there,
 * EBB_BLACKBOX and EBB_REPORT would write files with the program's rights
 * wherever the caller names, and EBB_LIMIT or EBB_ON_ERROR=abort would make
 * it fail where its author never expected to.  So, as the C library does
 * with its own variables, ebb reads none of them there: defaults only, and
 * a line to say why, if any was set. */
static int ignore_the_environment(void)
{
    if (!ebb__os_secure())
        return 0;
    char v[8];
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (ebb__os_getenv(table[i].name, v, sizeof v)) {
            ebb__diag("ebb: ignoring the EBB_* variables: this program runs with privileges "
                      "its caller does not have (setuid, setgid or capabilities)\n");
            break;
        }
    }
    return 1;
}

void ebb__options_read(ebb__options_t *o)
{
    const size_t rows = sizeof table / sizeof table[0];
    for (size_t i = 0; i < rows; i++)
        set_default(o, &table[i]);
    o->secure = ignore_the_environment();
    for (size_t i = 0; i < rows && !o->secure; i++) {
        char v[EBB_OPTION_PATH_MAX], words[96];
        const char *why = NULL;
        int found = ebb__os_getenv(table[i].name, v, sizeof v);
        if (found < 0)
            why = "longer than PATH_MAX"; /* never cut: a cut path names another file */
        else if (found > 0)
            why = parse_row(o, &table[i], v, words, sizeof words);
        if (why != NULL)
            bad_option(table[i].name, v, why);
    }
}

static ebb__lock_t read_lock = EBB_LOCK_INIT;
static _Atomic int have_read;

void ebb__options_start(void)
{
    if (atomic_load_explicit(&have_read, memory_order_acquire))
        return;
    ebb__lock(&read_lock);
    if (!atomic_load_explicit(&have_read, memory_order_relaxed)) {
        ebb__options_read(&ebb__opt);
        atomic_store_explicit(&have_read, 1, memory_order_release);
    }
    ebb__unlock(&read_lock);
}

EBB_API int ebb_get_option(const char *name, long long *value)
{
    ebb__options_start();
    for (size_t i = 0; name != NULL && i < sizeof table / sizeof table[0]; i++) {
        const option_t *row = &table[i];
        if (strcmp(row->name, name) != 0)
            continue;
        const void *field = (const char *)&ebb__opt + row->offset;
        switch (row->kind) {
        case EBB_OPT_PATH:
        case EBB_OPT_PATHS:
        case EBB_OPT_REPORT:
            break; /* text, not a number */
        case EBB_OPT_COUNT:
        case EBB_OPT_PERCENT:
            *value = *(const unsigned *)field;
            return 0;
        case EBB_OPT_SIZE:
        case EBB_OPT_LIMIT:
            *value = (long long)*(const size_t *)field;
            return 0;
        case EBB_OPT_DELAY:
            *value = *(const long *)field;
            return 0;
        default:
            *value = *(const int *)field;
            return 0;
        }
    }
    errno = ENOENT;
    return -1;
}
