/*
 * install.c -- install() and installed(): ebb as the allocator of CPython's
 * three domains in an interpreter that is already running.  Kept apart from
 * the rest because it is the one place that replaces CPython's allocators,
 * and its rules are CPython's, not ebb's.
 *
 * After initialisation CPython allows only wrapping: ebb takes each domain
 * (RAW, MEM, OBJ), and a block the previous allocator made is freed and
 * resized by it.  Which allocator made a block is decided by ebb_manages(),
 * one table load that never touches the block (on free,
 * ebb_free_if_managed(): the same check and the free in one lookup).  A
 * block made before install() and resized after it stays with its
 * allocator; new blocks are ebb's.  When ebb already serves all three
 * domains (under `ebb run`, or PYTHONMALLOC=malloc with ebb as the
 * process's malloc), install() does nothing.  CPython swaps a domain's
 * allocator as four plain stores, so install() should run before other
 * threads allocate without the GIL.
 *
 * CPython's rules, kept by the wrappers: a 0-byte request returns a unique
 * pointer; realloc(p, 0) resizes and never frees.
 */
#include "ebbmod.h"

#include <dlfcn.h>

static const PyMemAllocatorDomain domains[3] = { PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM,
                                                 PYMEM_DOMAIN_OBJ };
static PyMemAllocatorEx previous[3];
static int wrapped; /* install() replaced the domains */

static void *w_malloc(void *ctx, size_t n)
{
    (void)ctx;
    return ebbmod_api.malloc(n);
}

static void *w_calloc(void *ctx, size_t count, size_t size)
{
    (void)ctx;
    return ebbmod_api.calloc(count, size);
}

static void *w_realloc(void *ctx, void *p, size_t n)
{
    if (p == NULL || ebbmod_api.manages(p))
        return ebbmod_api.realloc(p, n ? n : 1);
    const PyMemAllocatorEx *old = ctx;
    return old->realloc(old->ctx, p, n);
}

static void w_free(void *ctx, void *p)
{
    if (ebbmod_api.free_if_managed(p))
        return;
    const PyMemAllocatorEx *old = ctx;
    old->free(old->ctx, p);
}

/* Every domain already allocates with ebb: set by ebb's constructor, or
 * each domain's malloc is the process's malloc and that is ebb's. */
static int domains_are_ebb(void)
{
    if (wrapped || ebbmod_api.python_domains())
        return 1;
    /* The module's own copy is never the process's malloc. */
    if (ebbmod_api.malloc == ebb_malloc)
        return 0;
    void *process_malloc = dlsym(RTLD_DEFAULT, "malloc");
    if (process_malloc != (void *)ebbmod_api.malloc)
        return 0;
    for (int i = 0; i < 3; i++) {
        PyMemAllocatorEx a;
        PyMem_GetAllocator(domains[i], &a);
        /* CPython's malloc-based domains call the C library's malloc
         * through wrappers of its own: compare what they allocate with. */
        void *probe = a.malloc(a.ctx, 1);
        int ours = probe != NULL && ebbmod_api.manages(probe);
        a.free(a.ctx, probe);
        if (!ours)
            return 0;
    }
    return 1;
}

/* tracemalloc wraps the domains too, and when it stops it puts back the
 * allocators it found when it started: started before install(), it would
 * take ebb away again and hand ebb's blocks to pymalloc's free (seen as
 * munmap_chunk() aborts at exit with PYTHONTRACEMALLOC=1).  So a running
 * tracemalloc is stopped, ebb installed under it, and tracemalloc started
 * again with the same depth: it then finds ebb and puts ebb back.  The
 * traces it had are lost.  Returns the depth to restart with, 0 if it was
 * not tracing, -1 on error. */
static int tracemalloc_pause(void)
{
    PyObject *tm = PyImport_ImportModule("_tracemalloc");
    if (tm == NULL) {
        PyErr_Clear(); /* a build without tracemalloc */
        return 0;
    }
    int depth = 0;
    PyObject *tracing = PyObject_CallMethod(tm, "is_tracing", NULL);
    if (tracing == NULL) {
        depth = -1;
    } else if (PyObject_IsTrue(tracing)) {
        PyObject *limit = PyObject_CallMethod(tm, "get_traceback_limit", NULL);
        PyObject *stopped = limit ? PyObject_CallMethod(tm, "stop", NULL) : NULL;
        depth = stopped ? (int)PyLong_AsLong(limit) : -1;
        Py_XDECREF(stopped);
        Py_XDECREF(limit);
    }
    Py_XDECREF(tracing);
    Py_DECREF(tm);
    return depth;
}

static int tracemalloc_resume(int depth)
{
    if (depth <= 0)
        return 0;
    PyObject *tm = PyImport_ImportModule("_tracemalloc");
    PyObject *r = tm ? PyObject_CallMethod(tm, "start", "i", depth) : NULL;
    Py_XDECREF(tm);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

PyObject *ebb_install_py(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    if (domains_are_ebb())
        Py_RETURN_FALSE;
    int depth = tracemalloc_pause();
    if (depth < 0)
        return NULL;
    for (int i = 0; i < 3; i++)
        PyMem_GetAllocator(domains[i], &previous[i]);
    for (int i = 0; i < 3; i++) {
        PyMemAllocatorEx a = { &previous[i], w_malloc, w_calloc, w_realloc, w_free };
        PyMem_SetAllocator(domains[i], &a);
    }
    wrapped = 1;
    if (tracemalloc_resume(depth) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

PyObject *ebb_installed_py(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return PyBool_FromLong(domains_are_ebb());
}
