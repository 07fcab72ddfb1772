/*
 * _ebb.c -- the C half of the `ebb` Python package (ebb/__init__.py is the
 * rest): the module ebb._ebb itself.  It owns what happens once per process
 * on the first import (choosing which ebb the module talks to, registering
 * the gc hook, setting up the limit's machinery)
 * and the module's face: its one method table, with every function's name
 * and docstring.  The functions themselves live in the files ebbmod.h lists,
 * one concern each.
 *
 * Which ebb.  A process has one heap when it can: if the process already
 * has ebb as its malloc (`ebb run`, LD_PRELOAD=libebb.so, or a program
 * linked with -lebb), the module finds that ebb's functions in the global
 * symbol scope and uses them.  Otherwise it uses the copy of ebb built into
 * the module (hidden symbols, no malloc override): Python's allocations come
 * from ebb once install() ran, while C code calling malloc directly stays
 * on the C library's.  `ebb.heap` says which ("process" or "module").
 *
 * After every full collection (gc.callbacks, generation 2), ebb purges, so
 * memory the collector freed goes back to the OS at once.
 *
 * What the module does not do: the Python stacks of heap-profile samples
 * and the MemoryError that names the limit are the library's own
 * (src/front/pyframes.c, pymemerror.c), set up by the constructor of
 * whichever ebb serves the process (libebb.so, or the copy built into this
 * module when the process has none), so they work without `import ebb`.
 */
#include "ebbmod.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ which ebb */

ebbmod_api_t ebbmod_api;
static const char *heap_kind;

/* Designated: the table grows with every new call, and order must not matter. */
static const ebbmod_api_t module_copy = {
    .malloc = ebb_malloc,
    .calloc = ebb_calloc,
    .realloc = ebb_realloc,
    .free = ebb_free,
    .free_if_managed = ebb_free_if_managed,
    .manages = ebb_manages,
    .collect = ebb_collect,
    .stats = ebb_stats,
    .class_stats = ebb_class_stats,
    .set_limit = ebb_set_limit,
    .get_limit = ebb_get_limit,
    .on_pressure = ebb_on_pressure,
    .version = ebb_version,
    .python_domains = ebb_python_domains,
    .check = ebb_check,
    .report = ebb_report,
    .set_limit_auto = ebb_set_limit_auto,
    .limit_info = ebb_limit_info,
    .stats_ex = ebb_stats_ex,
    .class_stats_ex = ebb_class_stats_ex,
    .rss = ebb_rss,
    .heap_map = ebb_heap_map,
};

#define FIND(field, name)                                                     \
    do {                                                                      \
        *(void **)&found.field = dlsym(RTLD_DEFAULT, name);                   \
        if (found.field == NULL)                                              \
            complete = 0;                                                     \
    } while (0)

/* The process's ebb if it has one with every function needed, else the
 * module's copy. */
static void choose_ebb(void)
{
    ebbmod_api_t found;
    int complete = 1;
    FIND(malloc, "ebb_malloc");
    if (found.malloc == NULL) {
        ebbmod_api = module_copy;
        heap_kind = "module";
        return;
    }
    FIND(calloc, "ebb_calloc");
    FIND(realloc, "ebb_realloc");
    FIND(free, "ebb_free");
    FIND(free_if_managed, "ebb_free_if_managed");
    FIND(manages, "ebb_manages");
    FIND(collect, "ebb_collect");
    FIND(stats, "ebb_stats");
    FIND(class_stats, "ebb_class_stats");
    FIND(set_limit, "ebb_set_limit");
    FIND(get_limit, "ebb_get_limit");
    FIND(on_pressure, "ebb_on_pressure");
    FIND(version, "ebb_version");
    FIND(python_domains, "ebb_python_domains");
    FIND(check, "ebb_check");
    FIND(report, "ebb_report");
    FIND(set_limit_auto, "ebb_set_limit_auto");
    FIND(limit_info, "ebb_limit_info");
    FIND(stats_ex, "ebb_stats_ex");
    FIND(class_stats_ex, "ebb_class_stats_ex");
    FIND(rss, "ebb_rss");
    FIND(heap_map, "ebb_heap_map");
    if (complete) {
        ebbmod_api = found;
        heap_kind = "process";
    } else {
        /* An older libebb.so without some of them: using it for some calls
         * and the copy for others would split the heap in two. */
        fprintf(stderr, "ebb: the process's libebb.so is older than this module; "
                        "the module uses its own copy of ebb\n");
        ebbmod_api = module_copy;
        heap_kind = "module";
    }
}

/* ----------------------------------------------------------- gc hook */

static PyObject *after_gc(PyObject *self, PyObject *args)
{
    (void)self;
    const char *phase;
    PyObject *info;
    if (!PyArg_ParseTuple(args, "sO:_after_gc", &phase, &info))
        return NULL;
    if (strcmp(phase, "stop") != 0 || !PyDict_Check(info))
        Py_RETURN_NONE;
    PyObject *gen = PyDict_GetItemString(info, "generation");
    if (gen && PyLong_Check(gen) && PyLong_AsLong(gen) == 2) {
        Py_BEGIN_ALLOW_THREADS
        ebbmod_api.collect(0);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

static PyMethodDef after_gc_def = { "_after_gc", after_gc, METH_VARARGS,
                                    "Purge after a full garbage collection (gc.callbacks)." };

static int purge_after_full_collections(void)
{
    PyObject *gc = PyImport_ImportModule("gc");
    if (gc == NULL)
        return -1;
    PyObject *callbacks = PyObject_GetAttrString(gc, "callbacks");
    PyObject *hook = PyCFunction_New(&after_gc_def, NULL);
    int rc = callbacks && hook ? PyList_Append(callbacks, hook) : -1;
    Py_XDECREF(callbacks);
    Py_XDECREF(hook);
    Py_DECREF(gc);
    return rc ? -1 : 0;
}

/* ------------------------------------------------------------ module */

PyDoc_STRVAR(install_doc, "install() -> bool\n\n"
"Make ebb the allocator of CPython's three domains (RAW, MEM, OBJ) from now\n"
"on.  Blocks the previous allocators made are freed and resized by them.\n"
"Returns True if it installed ebb, False if ebb already was the allocator\n"
"(under `ebb run`, or after an earlier install()).  Call it early, before\n"
"threads that allocate without the GIL start.  A running tracemalloc is\n"
"restarted on top of ebb (its traces so far are lost).");
PyDoc_STRVAR(installed_doc, "installed() -> bool\n\n"
"True if ebb allocates for all three of CPython's domains.");
PyDoc_STRVAR(stats_doc, "stats(rss=False) -> dict\n\n"
"ebb's counters, in bytes unless named otherwise: live (held by the program),\n"
"committed (ebb's estimate of its resident memory), resident (the process's\n"
"RSS, from the kernel), peak_committed and when it was reached\n"
"(peak_committed_time_ns: time.time_ns()'s clock; peak_committed_uptime_ns:\n"
"since ebb started; uptime_ns: now), purged (given back), the mapped_*\n"
"categories that add up to mapped, limit (0: none), the pools' state\n"
"(small_live, pools_in_use, pools_empty, pool_free, pools_committed,\n"
"pools_empty_committed, free_slots_committed); classes: one dict per size\n"
"class (size, used, used_bytes, pools, pool_bytes, live, live_bytes, cached,\n"
"cached_bytes, sampled, pools_empty, free_bytes, committed,\n"
"empty_committed); large: blocks, bytes, cached_blocks, cached_bytes,\n"
"mapped, sampled.  rss=True adds rss: the process's RSS taken apart (ebb's\n"
"live, thread_caches, pool_free, ... and the rest: files, stacks, brk_heap,\n"
"anonymous, kernel; they add up to rss but for unaccounted), which reads\n"
"/proc/self/smaps: tens of milliseconds for a heap of hundreds of MiB.");
PyDoc_STRVAR(collect_doc, "collect(force=False) -> None\n\n"
"Give back to the OS everything free in the whole process now.  force=True\n"
"also unmaps the spare empty arena kept against map/unmap thrash.");
PyDoc_STRVAR(limit_info_doc, "limit_info() -> dict\n\n"
"The limit in force and where it comes from: limit, soft and reserve (bytes),\n"
"soft_percent, percent (of the effective limit, for 'auto' and 'N%'), from\n"
"('none', 'env', 'api', 'cgroup2', 'cgroup1', 'rlimit_as', 'rlimit_data',\n"
"'memory'), effective and headroom (bytes, for an auto limit) and source (in\n"
"words, e.g. the cgroup file).");
PyDoc_STRVAR(set_limit_doc, "set_limit(nbytes) -> None\n\n"
"Limit what ebb commits to nbytes (None or 0: no limit; or a size such as\n"
"'512M'), or to 'auto' or 'N%'\n"
"of the effective limit (the smallest of the cgroup's limit, the rlimits and\n"
"memory plus swap, less what ebb does not manage).  Past the soft level (90%)\n"
"a garbage collection and the on_pressure callbacks run at the next safe point\n"
"and free memory is purged; past the limit, allocations fail: MemoryError.");
PyDoc_STRVAR(get_limit_doc, "get_limit() -> int\n\nThe limit in bytes, 0 if none.");
PyDoc_STRVAR(on_pressure_doc, "on_pressure(callback) -> callback\n\n"
"Call callback(level, committed, limit) under memory pressure, after a garbage\n"
"collection, in the main thread at a safe point; level is 'soft' (past 90% of\n"
"the limit) or 'hard' (an allocation was refused).  Returns the callback, so\n"
"it can be used as a decorator.  Main interpreter only.");
PyDoc_STRVAR(check_doc, "check() -> int\n\n"
"Walk every structure of ebb and verify it; 0 when consistent, else the\n"
"number of faults (each described on stderr).");
PyDoc_STRVAR(report_doc, "_report(json) -> str\n\n"
"_report(format): ebb's report as text (0), JSON text (1: ebb.report parses it) or an\n"
"HTML page (2).");
PyDoc_STRVAR(report_to_doc, "_report_to(fd, format): the report (0 text, 1 JSON, 2 HTML) written\n"
"to the file descriptor fd by ebb, without making a Python object of it.");
PyDoc_STRVAR(heap_map_doc, "heap_map() -> str\n\n"
"ebb's heap as text: a row per 4 MiB arena, a character per 64 KiB slot (its\n"
"header, a pool and how full it is, or a free slot), with a legend.");
#ifdef EBB_PY_TEST_HOOKS
PyDoc_STRVAR(manages_doc, "_manages(obj) -> bool\n\n"
"True if the memory of obj was allocated by ebb (for tests).");
PyDoc_STRVAR(raw_stress_doc, "_raw_stress(threads, rounds) -> int\n\n"
"Allocate through the RAW domain from C threads without the GIL; returns the\n"
"number of failed or corrupted allocations (for tests).");
#endif

/* Every function of the module in one place, so that what Python sees can
 * be read here beside ebb/__init__.pyi; the code is in the files ebbmod.h
 * names. */
static PyMethodDef methods[] = {
    { "install", ebb_install_py, METH_NOARGS, install_doc },
    { "installed", ebb_installed_py, METH_NOARGS, installed_doc },
    { "stats", (PyCFunction)(void (*)(void))ebb_stats_py, METH_VARARGS | METH_KEYWORDS,
      stats_doc },
    { "collect", (PyCFunction)(void (*)(void))ebb_collect_py, METH_VARARGS | METH_KEYWORDS,
      collect_doc },
    { "set_limit", ebb_set_limit_py, METH_O, set_limit_doc },
    { "limit_info", ebb_limit_info_py, METH_NOARGS, limit_info_doc },
    { "get_limit", ebb_get_limit_py, METH_NOARGS, get_limit_doc },
    { "on_pressure", ebb_on_pressure_py, METH_O, on_pressure_doc },
    { "check", ebb_check_py, METH_NOARGS, check_doc },
    { "_report", ebb_report_py, METH_O, report_doc },
    { "heap_map", ebb_heap_map_py, METH_NOARGS, heap_map_doc },
    { "_report_to", ebb_report_to_py, METH_VARARGS, report_to_doc },
#ifdef EBB_PY_TEST_HOOKS /* setup.py: only when the tests build the module */
    { "_manages", ebb_manages_py, METH_O, manages_doc },
    { "_raw_stress", ebb_raw_stress_py, METH_VARARGS, raw_stress_doc },
#endif
    { NULL, NULL, 0, NULL },
};

PyDoc_STRVAR(module_doc, "ebb: a memory manager that gives memory back.\n\n"
"install() makes ebb CPython's allocator in a running interpreter; under\n"
"`ebb run` it already is.  stats(), collect(), set_limit(), get_limit() and\n"
"on_pressure() work either way.");

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "ebb._ebb", module_doc, -1, methods, NULL, NULL, NULL, NULL,
};

/* Once per process, from the main interpreter's first import. */
static int setup_process(void)
{
    choose_ebb();
    if (purge_after_full_collections() < 0)
        return -1;
    return ebbmod_limit_setup();
}

/* 3.8's PyMODINIT_FUNC does not export it by itself (-fvisibility=hidden). */
__attribute__((visibility("default"))) PyMODINIT_FUNC PyInit__ebb(void)
{
    static int process_ready;
    if (!process_ready && ebbmod_interpreter() == PyInterpreterState_Main()) {
        if (setup_process() < 0)
            return NULL;
        process_ready = 1;
    } else if (!process_ready) {
        choose_ebb(); /* first imported in a subinterpreter: no hooks */
    }
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddStringConstant(m, "__version__", ebbmod_api.version()) ||
        PyModule_AddStringConstant(m, "heap", heap_kind)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
