/*
 * stats.c -- the functions that look at ebb or tidy it: stats(), collect(),
 * check() and _report() (ebb.report in ebb/__init__.py parses its JSON).
 * None of them changes how Python allocates; they read ebb's counters, ask
 * it to give memory back, or verify it, through whichever ebb the module
 * chose (_ebb.c), so under `ebb run` they describe the whole process.
 *
 * stats() adds one number ebb does not keep, the process's resident set
 * size as the kernel counts it, so that a user can set ebb's estimate
 * (committed) beside the truth.  A purge and the writing of a report run
 * without the GIL: other threads need not wait on ebb's work.
 */
#include "ebbmod.h"

#include <stdio.h>
#include <unistd.h>

static int put_size(PyObject *d, const char *key, size_t v)
{
    PyObject *o = PyLong_FromSize_t(v);
    if (o == NULL)
        return -1;
    int rc = PyDict_SetItemString(d, key, o);
    Py_DECREF(o);
    return rc;
}

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

static PyObject *class_list(void)
{
    size_t n = ebbmod_api.class_stats(NULL, 0);
    ebb_class_stats_t *c = PyMem_RawCalloc(n, sizeof *c);
    if (c == NULL)
        return PyErr_NoMemory();
    ebbmod_api.class_stats(c, n);
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *d = PyDict_New();
        if (d == NULL || put_size(d, "size", c[i].size) || put_size(d, "used", c[i].used) ||
            put_size(d, "used_bytes", c[i].used * c[i].size) ||
            put_size(d, "pools", c[i].pools) || put_size(d, "pool_bytes", c[i].pool_bytes) ||
            PyList_Append(list, d)) {
            Py_XDECREF(d);
            Py_CLEAR(list);
            break;
        }
        Py_DECREF(d);
    }
    PyMem_RawFree(c);
    return list;
}

PyObject *ebb_stats_py(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    ebb_stats_t s;
    ebbmod_api.stats(&s);
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    size_t live = s.small_used - s.small_cached + s.large_used;
    const struct {
        const char *key;
        size_t v;
    } fields[] = {
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
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (put_size(d, fields[i].key, fields[i].v)) {
            Py_DECREF(d);
            return NULL;
        }
    }
    PyObject *classes = class_list();
    if (classes == NULL || PyDict_SetItemString(d, "classes", classes)) {
        Py_XDECREF(classes);
        Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(classes);
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
    int json = PyObject_IsTrue(arg);
    if (json < 0)
        return NULL;
    return written(ebbmod_api.report, json ? EBB_REPORT_JSON : EBB_REPORT_TEXT);
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
