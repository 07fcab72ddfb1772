/*
 * ebbmod.h -- what the files of the ebb._ebb extension share, and nothing
 * else: the table of ebb functions the module calls (the process's ebb or
 * the module's own copy, chosen once in _ebb.c), each file's methods, and
 * the few entry points one file calls in another.  Private to python/; the
 * symbols are hidden (-fvisibility=hidden), so the ebbmod_ prefix only keeps
 * them apart from ebb's own names inside the one shared object.
 *
 *   _ebb.c        the module: init, which ebb, the method table and the
 *                 docstrings, the gc hook
 *   install.c     install()/installed(): ebb under CPython's three domains
 *   stats.c       stats(), collect(), check(), _report()
 *   limit.c       the limit and on_pressure()
 *   test_hooks.c  _manages(), _raw_stress(): built only for the tests
 */
#ifndef EBBMOD_H
#define EBBMOD_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "ebb.h"

/* Every ebb function the module calls, all from one ebb: calling the
 * process's for some and the copy's for others would split the heap. */
typedef struct {
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void (*free)(void *);
    int (*free_if_managed)(void *);
    int (*manages)(const void *);
    void (*collect)(int);
    void (*stats)(ebb_stats_t *);
    size_t (*class_stats)(ebb_class_stats_t *, size_t);
    int (*set_limit)(size_t);
    size_t (*get_limit)(void);
    int (*on_pressure)(ebb_pressure_fn, void *);
    const char *(*version)(void);
    int (*python_domains)(void);
    int (*check)(void);
    int (*report)(int, int);
    int (*set_limit_auto)(unsigned);
    int (*limit_info)(ebb_limit_info_t *);
    size_t (*stats_ex)(ebb_stats_ex_t *, size_t);
    size_t (*class_stats_ex)(ebb_class_ex_t *, size_t, size_t);
    int (*rss)(ebb_rss_t *, size_t);
    int (*heap_map)(int);
} ebbmod_api_t;

/* Filled before the module object exists (PyInit__ebb), never changed. */
extern ebbmod_api_t ebbmod_api;

/* The calling thread's interpreter (PyInterpreterState_Get is 3.9+). */
static inline PyInterpreterState *ebbmod_interpreter(void)
{
#if PY_VERSION_HEX >= 0x03090000
    return PyInterpreterState_Get();
#else
    return PyThreadState_Get()->interp;
#endif
}

/* The module's functions: ebb_X_py is the module's X (the suffix keeps
 * them apart from ebb's own API).  _ebb.c names them, with their
 * docstrings, in the module's one method table; each is defined in the file
 * that owns its concern. */

/* install.c */
PyObject *ebb_install_py(PyObject *self, PyObject *unused);
PyObject *ebb_installed_py(PyObject *self, PyObject *unused);

/* stats.c */
PyObject *ebb_stats_py(PyObject *self, PyObject *args, PyObject *kw);
PyObject *ebb_collect_py(PyObject *self, PyObject *args, PyObject *kw);
PyObject *ebb_check_py(PyObject *self, PyObject *unused);
PyObject *ebb_report_py(PyObject *self, PyObject *json);
PyObject *ebb_heap_map_py(PyObject *self, PyObject *unused);
PyObject *ebb_report_to_py(PyObject *self, PyObject *args);

/* limit.c */
PyObject *ebb_set_limit_py(PyObject *self, PyObject *nbytes);
PyObject *ebb_limit_info_py(PyObject *self, PyObject *unused);
PyObject *ebb_get_limit_py(PyObject *self, PyObject *unused);
PyObject *ebb_on_pressure_py(PyObject *self, PyObject *callback);

/* test_hooks.c, compiled only with EBB_PY_TEST_HOOKS (setup.py) */
PyObject *ebb_manages_py(PyObject *self, PyObject *obj);
PyObject *ebb_raw_stress_py(PyObject *self, PyObject *args);

/* limit.c: the pressure callback, once per process from the main
 * interpreter.  0, or -1 with an exception set. */
int ebbmod_limit_setup(void);

#endif
