/*
 * cpython.c -- ebb as CPython's allocator, installed before the interpreter
 * starts, and what a process started by `ebb run` does with its environment.
 *
 * CPython allocates through three domains: RAW (PyMem_RawMalloc, callable
 * without the GIL), MEM (PyMem_Malloc) and OBJ (PyObject_Malloc, pymalloc by
 * default).  Before the interpreter initialises, each domain's allocator may
 * be replaced outright (PyMem_SetAllocator); after that only wrapped, which
 * is the Python module's business (python/install.c).  `ebb run` preloads
 * libebb.so and sets EBB_PYTHON=1: if the process turns out to be a Python
 * interpreter that has not started yet, ebb's constructor gives all three
 * domains to ebb, so every Python object and every C extension's malloc
 * come from one heap.  That is what PYTHONMALLOC=malloc does as well, but
 * without the variable, which the program's children would inherit and
 * which would send a child Python started without ebb to the C library's
 * malloc instead of pymalloc.  Pythons 3.8 to 3.13 keep a domain set before
 * their pre-initialisation unless PYTHONMALLOC asks for another; with
 * PYTHONMALLOC set, ebb leaves the domains to it.
 *
 * The structure and domain numbers are CPython's stable C API
 * (PyMemAllocatorEx, PYMEM_DOMAIN_RAW/MEM/OBJ = 0/1/2); they are declared
 * here so that libebb.so needs no Python headers and no libpython.
 *
 * CPython's rules, kept by the wrappers: PyMem_Malloc(0) returns a unique
 * non-NULL pointer (ebb_malloc(0) does); PyMem_Realloc(p, 0) resizes and
 * never frees (ebb_realloc(p, 0) frees, as glibc does: asked for 1 byte).
 *
 * Whatever allocates for it, a CPython process ebb serves gets two more
 * things from the constructor (ebb__python_attach): its samples carry
 * their Python stacks (pyframes.c) and a MemoryError at the limit says so
 * (pymemerror.c).  Only the process's ebb does this: the copy of ebb
 * inside the Python extension stays out when the process has an ebb of
 * its own (the extension then uses that one).
 *
 * EBB_NO_CHILDREN=1 (`ebb run --no-children`): the constructor removes
 * libebb.so from LD_PRELOAD and the two variables from the environment, in
 * place, before the program reads it, so children start without ebb.  A
 * privileged program (setuid, setgid: AT_SECURE) loses every EBB_* variable
 * the same way, which it ignored itself (base/options.c).
 */
#include "internal.h"

typedef struct {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free)(void *ctx, void *ptr);
} ebb__py_allocator_t;

enum { EBB_PY_DOMAIN_RAW = 0, EBB_PY_DOMAIN_MEM = 1, EBB_PY_DOMAIN_OBJ = 2 };

EBB_ENTRY static void *py_malloc(void *ctx, size_t n)
{
    (void)ctx;
    return ebb_malloc(n);
}

EBB_ENTRY static void *py_calloc(void *ctx, size_t count, size_t size)
{
    (void)ctx;
    return ebb_calloc(count, size);
}

EBB_ENTRY static void *py_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return ebb_realloc(p, n ? n : 1);
}

static void py_free(void *ctx, void *p)
{
    (void)ctx;
    ebb_free(p);
}

static int python_domains_installed;

static void install_python_domains(void)
{
    char v[8];
    if (ebb__os_getenv("PYTHONMALLOC", v, sizeof v))
        return; /* the user asked CPython for an allocator: theirs wins */
    int (*is_initialized)(void) = (int (*)(void))ebb__os_symbol("Py_IsInitialized");
    void (*set_allocator)(int, ebb__py_allocator_t *) =
        (void (*)(int, ebb__py_allocator_t *))ebb__os_symbol("PyMem_SetAllocator");
    if (is_initialized == NULL || set_allocator == NULL || is_initialized())
        return; /* not a Python process, or one already running */
    ebb__py_allocator_t a = { NULL, py_malloc, py_calloc, py_realloc, py_free };
    set_allocator(EBB_PY_DOMAIN_RAW, &a);
    set_allocator(EBB_PY_DOMAIN_MEM, &a);
    set_allocator(EBB_PY_DOMAIN_OBJ, &a);
    python_domains_installed = 1;
}

/* From ebb's constructor: the environment `ebb run` prepared. */
void ebb__launched_setup(void)
{
    /* A privileged program ignored them (base/options.c); a child it
     * starts after giving up the difference of ids would not, so they go,
     * as the dynamic loader removes LD_PRELOAD and the C library its own. */
    if (ebb__opt.secure)
        ebb__os_env_remove_prefix("EBB_");
    if (ebb__opt.python)
        install_python_domains();
    if (ebb__opt.no_children) {
        ebb__os_env_unpreload("libebb.so");
        ebb__os_env_remove("EBB_PYTHON");
        ebb__os_env_remove("EBB_NO_CHILDREN");
    }
}

/* From the constructor, after the above: if the process is a CPython ebb
 * knows the layout of, its Python stacks and its MemoryError. */
void ebb__python_attach(void)
{
    /* Another ebb is the process's (this is the extension's copy and the
     * process has libebb.so): that one attaches, its heap is Python's. */
    void *process_ebb = ebb__os_symbol("ebb_malloc");
    if (process_ebb != NULL && process_ebb != (void *)ebb_malloc)
        return;
    const ebb__pylayout_t *l = ebb__python_find();
    if (l == NULL)
        return;
    if (ebb__opt.python_stacks)
        ebb__pyframes_start();
    ebb__pymemerror_start(l);
}

EBB_API int ebb_python_domains(void)
{
    return python_domains_installed;
}
