/*
 * stats.c -- the functions that look at ebb or tidy it: stats(), collect(),
 * check() and _report() (ebb.report in ebb/__init__.py parses its JSON).
 * None of them changes how Python allocates; they read ebb's counters, ask
 * it to give memory back, or verify it, through whichever ebb the module
 * chose (_ebb.c), so under `ebb run` they describe the whole process.
 *
 * stats() adds one number ebb does not keep, the process's resident set
 * size as the kernel counts it, so that a user can set ebb's estimate
 * (committed) beside the truth; and, asked for with stats(rss=True), that
 * resident set taken apart (ebb_rss: ebb's part by category, the rest by
 * kind of mapping).  Only when asked: the kernel takes tens of milliseconds
 * to write /proc/self/smaps for a heap of a few hundred MiB (it walks every
 * page), and stats() is polled by programs that want `committed`.  A purge and the writing of a report run
 * without the GIL: other threads need not wait on ebb's work.
 */
#include "ebbmod.h"

#include <stdio.h>
#include <unistd.h>

/* The process's resident set size, as the kernel counts it. */
static size_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

/* A table of named numbers, for the dicts below. */
typedef struct {
    const char *key;
    unsigned long long v; /* wide enough for a time in ns on 32-bit too */
} field_t;

static int put_fields(PyObject *d, const field_t *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        PyObject *o = PyLong_FromUnsignedLongLong(f[i].v);
        int rc = o ? PyDict_SetItemString(d, f[i].key, o) : -1;
        Py_XDECREF(o);
        if (rc)
            return -1;
    }
    return 0;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static PyObject *class_dict(const ebb_class_ex_t *c)
{
    const field_t f[] = {
        { "size", c->size },
        { "used", c->used },
        { "used_bytes", c->used * c->size },
        { "pools", c->pools },
        { "pool_bytes", c->pool_bytes },
        { "live", c->live },
        { "live_bytes", c->live_bytes },
        { "cached", c->cached },
        { "cached_bytes", c->cached * c->size },
        { "sampled", c->sampled },
        { "pools_empty", c->pools_empty },
        { "free_bytes", c->free_bytes },
        { "committed", c->committed },
        { "empty_committed", c->empty_committed },
    };
    PyObject *d = PyDict_New();
    if (d && put_fields(d, f, COUNT(f)))
        Py_CLEAR(d);
    return d;
}

static PyObject *class_list(void)
{
    size_t n = ebbmod_api.class_stats_ex(NULL, 0, 0);
    ebb_class_ex_t *c = PyMem_RawCalloc(n, sizeof *c);
    if (c == NULL)
        return PyErr_NoMemory();
    ebbmod_api.class_stats_ex(c, n, sizeof *c);
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *d = class_dict(&c[i]);
        if (d == NULL || PyList_Append(list, d)) {
            Py_XDECREF(d);
            Py_CLEAR(list);
            break;
        }
        Py_DECREF(d);
    }
    PyMem_RawFree(c);
    return list;
}

static PyObject *large_dict(const ebb_stats_ex_t *x)
{
    const ebb_stats_t *s = &x->base;
    const field_t f[] = {
        { "blocks", s->large_blocks },
        { "bytes", s->large_used },
        { "cached_blocks", x->large_cached_blocks },
        { "cached_bytes", s->mapped_large_cached },
        { "mapped", s->mapped_large + s->mapped_large_cached },
        { "sampled", x->large_sampled },
    };
    PyObject *d = PyDict_New();
    if (d && put_fields(d, f, COUNT(f)))
        Py_CLEAR(d);
    return d;
}

/* The process's RSS taken apart (ebb_rss): reads /proc, without the GIL. */
static PyObject *rss_dict(void)
{
    ebb_rss_t r;
    Py_BEGIN_ALLOW_THREADS
    ebbmod_api.rss(&r, sizeof r);
    Py_END_ALLOW_THREADS
    const field_t f[] = {
        { "rss", r.rss },
        { "ebb", r.ebb },
        { "live_small", r.live_small },
        { "live_large", r.live_large },
        { "thread_caches", r.thread_caches },
        { "pool_free", r.pool_free },
        { "pools_empty", r.pools_empty },
        { "free_slots", r.free_slots },
        { "large_cached", r.large_cached },
        { "metadata", r.metadata },
        { "committed", r.committed },
        { "committed_not_resident", r.committed_not_resident },
        { "resident_not_committed", r.resident_not_committed },
        { "other", r.other },
        { "files", r.files },
        { "stacks", r.stacks },
        { "brk_heap", r.brk_heap },
        { "anonymous", r.anonymous },
        { "kernel", r.kernel },
    };
    PyObject *d = PyDict_New(), *u = NULL;
    if (d == NULL || put_fields(d, f, COUNT(f)) ||
        (u = PyLong_FromLongLong((long long)r.unaccounted)) == NULL ||
        PyDict_SetItemString(d, "unaccounted", u))
        Py_CLEAR(d);
    Py_XDECREF(u);
    return d;
}

/* Set d[key] to a new reference, which it steals; -1 on failure. */
static int put_new(PyObject *d, const char *key, PyObject *v)
{
    int rc = v ? PyDict_SetItemString(d, key, v) : -1;
    Py_XDECREF(v);
    return rc;
}

PyObject *ebb_stats_py(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *names[] = { "rss", NULL };
    int rss = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:stats", names, &rss))
        return NULL;
    ebb_stats_ex_t x;
    ebbmod_api.stats_ex(&x, sizeof x);
    const ebb_stats_t s = x.base;
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    size_t live = s.small_used - s.small_cached + s.large_used;
    const field_t fields[] = {
        { "live", live },
        { "committed", s.committed },
        { "resident", resident_bytes() },
        { "peak_committed", s.peak_committed },
        { "purged", s.purged },
        { "purges", s.purges },
        { "mapped", s.mapped },
        { "peak_mapped", s.peak_mapped },
        { "mapped_meta", s.mapped_meta },
        { "mapped_pools", s.mapped_pools },
        { "mapped_free_slots", s.mapped_free_slots },
        { "mapped_large", s.mapped_large },
        { "mapped_large_cached", s.mapped_large_cached },
        { "small_used", s.small_used },
        { "small_cached", s.small_cached },
        { "large_used", s.large_used },
        { "arenas", s.arenas },
        { "pools", s.pools },
        { "large_blocks", s.large_blocks },
        { "heaps", s.heaps },
        { "threads", s.threads },
        { "foreign_frees", s.foreign_frees },
        { "errors", s.errors },
        { "limit", ebbmod_api.get_limit() },
        /* Added with ebb_stats_ex: the peak's time, the pools' state. */
        { "peak_committed_time_ns", x.peak_committed_wall_ns },
        { "peak_committed_uptime_ns", x.peak_committed_uptime_ns },
        { "uptime_ns", x.uptime_ns },
        { "small_live", x.small_live },
        { "pools_in_use", x.pools_in_use },
        { "pools_empty", x.pools_empty },
        { "pool_free", x.pool_free },
        { "pools_committed", x.pools_committed },
        { "pools_empty_committed", x.pools_empty_committed },
        { "free_slots_committed", x.free_slots_committed },
    };
    if (put_fields(d, fields, COUNT(fields)) || put_new(d, "classes", class_list()) ||
        put_new(d, "large", large_dict(&x)) || (rss && put_new(d, "rss", rss_dict()))) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

PyObject *ebb_collect_py(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *names[] = { "force", NULL };
    int force = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:collect", names, &force))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    ebbmod_api.collect(force);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyObject *ebb_check_py(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return PyLong_FromLong(ebbmod_api.check());
}

/* -------------------------------------------------------------- report */

/* ebb writes its report to a file descriptor without allocating; here it
 * goes to an unnamed temporary file, read back as a str. */
/* What write(fd, arg) wrote to a temporary file, as a str. */
static PyObject *written(int (*write)(int fd, int arg), int arg)
{
    FILE *f = tmpfile();
    if (f == NULL)
        return PyErr_SetFromErrno(PyExc_OSError);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = write(fileno(f), arg);
    Py_END_ALLOW_THREADS
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0 || (rc != 0 && size == 0)) {
        PyErr_SetFromErrno(PyExc_OSError);
        fclose(f);
        return NULL;
    }
    PyObject *text = PyBytes_FromStringAndSize(NULL, size);
    if (text && fread(PyBytes_AS_STRING(text), 1, (size_t)size, f) != (size_t)size) {
        Py_CLEAR(text);
        PyErr_SetString(PyExc_OSError, "short read of what ebb wrote");
    }
    fclose(f);
    if (text == NULL)
        return NULL;
    PyObject *str = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(text), size, "replace");
    Py_DECREF(text);
    return str;
}

PyObject *ebb_report_py(PyObject *self, PyObject *arg)
{
    (void)self;
    long format = PyLong_AsLong(arg);
    if (format == -1 && PyErr_Occurred())
        return NULL;
    if (format != EBB_REPORT_TEXT && format != EBB_REPORT_JSON && format != EBB_REPORT_HTML) {
        PyErr_SetString(PyExc_ValueError, "_report: format must be 0 (text), 1 (JSON) or 2 (HTML)");
        return NULL;
    }
    return written(ebbmod_api.report, (int)format);
}

/* _report_to(fd, format): the report written straight to fd, nothing made
 * in Python's heap (the pytest plugin, at a test's limit). */
PyObject *ebb_report_to_py(PyObject *self, PyObject *args)
{
    (void)self;
    int fd, format, rc;
    if (!PyArg_ParseTuple(args, "ii", &fd, &format))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ebbmod_api.report(fd, format);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static int heap_map_to(int fd, int unused)
{
    (void)unused;
    return ebbmod_api.heap_map(fd);
}

PyObject *ebb_heap_map_py(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return written(heap_map_to, 0);
}
