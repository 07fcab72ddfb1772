/*
 * test_hooks.c -- module functions that exist only for the tests: _manages()
 * (did ebb allocate this object's memory?) and _raw_stress() (the RAW domain
 * from C threads without the GIL, which Python code cannot do).  They
 * answer questions no user needs to ask and _raw_stress starts threads on
 * request, so the module a user installs leaves them out: setup.py compiles
 * this file and defines EBB_PY_TEST_HOOKS (which puts them in _ebb.c's
 * method table) only when EBB_BUILD_TEST_HOOKS=1, as `make python` sets for
 * the tests; a plain `pip install .` builds without them.  The tests reach
 * them as ebb._ebb._manages and ebb._ebb._raw_stress.
 */
#include "ebbmod.h"

#include <pthread.h>
#include <string.h>

typedef struct {
    int rounds;
    int failures;
} raw_job_t;

/* Allocate and free through the RAW domain without holding the GIL, as
 * CPython's own threads may. */
static void *raw_worker(void *arg)
{
    raw_job_t *job = arg;
    void *keep[64] = { 0 };
    for (int r = 0; r < job->rounds; r++) {
        int i = r % 64;
        PyMem_RawFree(keep[i]);
        size_t n = (size_t)(r * 7919 % 3000) + 1;
        keep[i] = PyMem_RawMalloc(n);
        if (keep[i] == NULL) {
            job->failures++;
            continue;
        }
        memset(keep[i], r & 0xff, n);
        void *g = PyMem_RawRealloc(keep[i], n * 2);
        if (g == NULL || ((unsigned char *)g)[n - 1] != (unsigned char)(r & 0xff))
            job->failures++;
        else
            keep[i] = g;
    }
    for (int i = 0; i < 64; i++)
        PyMem_RawFree(keep[i]);
    return NULL;
}

PyObject *ebb_raw_stress_py(PyObject *self, PyObject *args)
{
    (void)self;
    int threads, rounds;
    if (!PyArg_ParseTuple(args, "ii:_raw_stress", &threads, &rounds))
        return NULL;
    if (threads < 1 || threads > 64 || rounds < 0) {
        PyErr_SetString(PyExc_ValueError, "_raw_stress: 1 to 64 threads, rounds >= 0");
        return NULL;
    }
    pthread_t tid[64];
    raw_job_t job[64];
    int started = 0, failures = 0;
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i < threads; i++) {
        job[i] = (raw_job_t){ rounds, 0 };
        if (pthread_create(&tid[i], NULL, raw_worker, &job[i]) == 0)
            started++;
        else
            break;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
        failures += job[i].failures;
    }
    Py_END_ALLOW_THREADS
    if (started < threads) {
        PyErr_SetString(PyExc_RuntimeError, "_raw_stress: could not start the threads");
        return NULL;
    }
    return PyLong_FromLong(failures);
}

PyObject *ebb_manages_py(PyObject *self, PyObject *arg)
{
    (void)self;
    /* The block holding an object's memory: its address. */
    return PyBool_FromLong(ebbmod_api.manages((void *)arg));
}
