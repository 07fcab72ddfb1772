/*
 * limit.c -- ebb's limit as Python sees it: set_limit(), get_limit() and
 * limit_info(), and what runs as the limit comes near (on_pressure()).
 * One file because they only make sense together: a limit is useful to a
 * Python program when the interpreter gets a chance to free memory before
 * it is reached.
 *
 * Pressure.  The module registers a pressure callback with ebb.  It runs on
 * whichever thread allocates, possibly inside the interpreter in the middle
 * of changing an object, where running Python code is not safe; so it only
 * schedules a pending call (Py_AddPendingCall, allowed from any thread
 * without the GIL).  The main thread runs it at its next safe point: a full
 * garbage collection, then the callbacks given to ebb.on_pressure, then a
 * purge.  A request refused at the hard limit fails at once (MemoryError);
 * the soft level, 90% of the limit, is there so that the collection usually
 * runs before anything is refused.  A MemoryError that follows a refusal at
 * the limit names the limit in its message: the library does that itself
 * (src/front/pymemerror.c), also for programs that never import ebb.
 */
#include "ebbmod.h"

#include <stdatomic.h>

#include "base/size.h"

/* --------------------------------------------------------------- limit */

/* A size ("512M", "2G"), "auto" or "N%": as EBB_LIMIT takes them. */
static PyObject *set_limit_text(PyObject *arg)
{
    const char *s = PyUnicode_AsUTF8(arg);
    if (s == NULL)
        return NULL;
    size_t bytes;
    unsigned percent;
    if (!ebb__parse_limit(s, &bytes, &percent)) {
        PyErr_Format(PyExc_ValueError, "set_limit: expected bytes, a size such as '512M', "
                                       "'auto' or 'N%%' (1 to 100), not %R", arg);
        return NULL;
    }
    if (percent == 0) {
        ebbmod_api.set_limit(bytes);
        Py_RETURN_NONE;
    }
    if (ebbmod_api.set_limit_auto(percent) != 0) {
        PyErr_SetString(PyExc_OSError, "set_limit: the system states no memory bound to take "
                                       "a share of");
        return NULL;
    }
    Py_RETURN_NONE;
}

PyObject *ebb_set_limit_py(PyObject *self, PyObject *arg)
{
    (void)self;
    size_t bytes = 0;
    if (PyUnicode_Check(arg))
        return set_limit_text(arg);
    if (arg != Py_None) {
        bytes = PyLong_AsSize_t(arg);
        if (bytes == (size_t)-1 && PyErr_Occurred()) {
            if (PyErr_ExceptionMatches(PyExc_OverflowError))
                PyErr_SetString(PyExc_ValueError, "set_limit: nbytes must be >= 0");
            return NULL;
        }
    }
    ebbmod_api.set_limit(bytes);
    Py_RETURN_NONE;
}

static const char *limit_from_name(int from)
{
    static const char *const names[] = { "none", "env", "api", "cgroup2", "cgroup1",
                                         "rlimit_as", "rlimit_data", "memory" };
    return from >= 0 && from < (int)(sizeof names / sizeof names[0]) ? names[from] : "?";
}

PyObject *ebb_limit_info_py(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    ebb_limit_info_t li;
    ebbmod_api.limit_info(&li);
    return Py_BuildValue("{s:n,s:n,s:n,s:I,s:I,s:s,s:n,s:n,s:s}", "limit", (Py_ssize_t)li.limit,
                         "soft", (Py_ssize_t)li.soft, "reserve", (Py_ssize_t)li.reserve,
                         "soft_percent", li.soft_percent, "percent", li.percent, "from",
                         limit_from_name(li.from), "effective", (Py_ssize_t)li.effective,
                         "headroom", (Py_ssize_t)li.headroom, "source", li.source);
}

PyObject *ebb_get_limit_py(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return PyLong_FromSize_t(ebbmod_api.get_limit());
}

/* ---------------------------------------------------------- pressure */

static PyObject *pressure_callbacks; /* list, main interpreter */
static atomic_int pressure_pending;
static atomic_int pressure_level;
static PyObject *gc_module;

PyObject *ebb_on_pressure_py(PyObject *self, PyObject *callback)
{
    (void)self;
    if (!PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "on_pressure: the callback must be callable");
        return NULL;
    }
    if (ebbmod_interpreter() != PyInterpreterState_Main()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "on_pressure: callbacks run in the main interpreter; register them there");
        return NULL;
    }
    if (PyList_Append(pressure_callbacks, callback))
        return NULL;
    Py_INCREF(callback);
    return callback; /* usable as a decorator */
}

/* The pending call: the main thread at a safe point, holding the GIL. */
static int run_pressure(void *unused)
{
    (void)unused;
    atomic_store(&pressure_pending, 0);
    /* The highest level reported since this run was scheduled, and no
     * more: the next run starts from nothing. */
    const char *level = atomic_exchange(&pressure_level, 0) == EBB_PRESSURE_HARD ? "hard" : "soft";
    PyObject *r = PyObject_CallMethod(gc_module, "collect", NULL);
    if (r == NULL)
        PyErr_WriteUnraisable(gc_module);
    Py_XDECREF(r);
    ebb_stats_t s;
    ebbmod_api.stats(&s);
    PyObject *list = PySequence_List(pressure_callbacks); /* callbacks may register more */
    for (Py_ssize_t i = 0; list && i < PyList_GET_SIZE(list); i++) {
        PyObject *cb = PyList_GET_ITEM(list, i);
        r = PyObject_CallFunction(cb, "snn", level, (Py_ssize_t)s.committed,
                                  (Py_ssize_t)ebbmod_api.get_limit());
        if (r == NULL)
            PyErr_WriteUnraisable(cb);
        Py_XDECREF(r);
    }
    Py_XDECREF(list);
    Py_BEGIN_ALLOW_THREADS
    ebbmod_api.collect(0);
    Py_END_ALLOW_THREADS
    return 0;
}

/* ebb's pressure callback: any thread, maybe inside the interpreter, maybe
 * without the GIL.  Only schedules; once per pending run. */
static void on_ebb_pressure(void *arg, int level, size_t request, size_t committed, size_t limit)
{
    (void)arg, (void)request, (void)committed, (void)limit;
    int seen = atomic_load(&pressure_level);
    while (seen < level && !atomic_compare_exchange_weak(&pressure_level, &seen, level)) {
    }
    if (atomic_exchange(&pressure_pending, 1))
        return;
    if (Py_AddPendingCall(run_pressure, NULL) != 0)
        atomic_store(&pressure_pending, 0); /* the queue is full: next time */
}

/* ------------------------------------------------------------- setup */

int ebbmod_limit_setup(void)
{
    gc_module = PyImport_ImportModule("gc");
    if (gc_module == NULL)
        return -1;
    pressure_callbacks = PyList_New(0);
    if (pressure_callbacks == NULL)
        return -1;
    if (ebbmod_api.on_pressure(on_ebb_pressure, NULL) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "ebb: no room for another pressure callback");
        return -1;
    }
    return 0;
}
