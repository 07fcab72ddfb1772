/*
 * cpython.c -- ebb as CPython's allocator, installed before the interpreter
 * starts, and what a process started by `ebb run` does with its environment.
 *
 * CPython allocates through three domains: RAW (PyMem_RawMalloc, callable
 * without the GIL), MEM (PyMem_Malloc) and OBJ (PyObject_Malloc, pymalloc by
 * default).  Before the interpreter initialises, each domain's allocator may
 * be replaced outright (PyMem_SetAllocator); after that only wrapped, which
 * is the Python module's business (python/ebb/_ebb.c).  `ebb run` preloads
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
 * EBB_NO_CHILDREN=1 (`ebb run --no-children`): the constructor removes
 * libebb.so from LD_PRELOAD and the two variables from the environment, in
 * place, before the program reads it, so children start without ebb.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

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
    char v[8];
    if (ebb__os_getenv("EBB_PYTHON", v, sizeof v) && v[0] == '1') {
        install_python_domains();
        if (python_domains_installed &&
            !(ebb__os_getenv("EBB_PYTHON_STACKS", v, sizeof v) && v[0] == '0'))
            ebb_python_stacks(1);
    }
    if (ebb__os_getenv("EBB_NO_CHILDREN", v, sizeof v) && v[0] == '1') {
        ebb__os_env_unpreload("libebb.so");
        ebb__os_env_remove("EBB_PYTHON");
        ebb__os_env_remove("EBB_NO_CHILDREN");
    }
}

EBB_API int ebb_python_domains(void)
{
    return python_domains_installed;
}

/* ------------------------------------------- Python stacks for samples
 *
 * Each heap-profile sample (sample.c) can carry the Python stack of the
 * thread that allocated, so that a report names the Python line that holds
 * the memory, not only the interpreter's C frames.  The hook runs inside
 * the allocator, on the allocating thread, with no ebb lock held, and its
 * own allocations are never sampled.  It touches the interpreter only when
 * that is safe:
 *   - the thread must hold the GIL: its current thread state is the one
 *     the GIL-state API has for it, and PyGILState_Check agrees (alone it
 *     answers 1 for every thread once a subinterpreter exists, before 3.12);
 *   - only while the interpreter is initialised and not finalising (during
 *     start-up a sample can land inside the interning of a string, and
 *     anything that touches the interpreter's tables then corrupts them);
 *   - nothing is interned or stored: attribute names are read as C
 *     strings (a temporary string each), the line number as a C int;
 *   - not while another allocator wraps the object domain over ebb's (the
 *     one there when the hook was set): tracemalloc calls malloc while it
 *     holds the lock that every new object takes again, so under
 *     tracemalloc samples carry no Python stack;
 *   - the current exception is set aside and put back, so the allocation
 *     that was sampled sees the interpreter as it left it;
 *   - the garbage collector is paused (PyGC_Disable, 3.10+): from 3.11 on,
 *     reading f_back may create frame objects, and a collection started by
 *     that allocation would run finalizers inside whatever C code called
 *     malloc (a list being resized, say).  Before 3.11 frames are objects
 *     already and nothing here allocates a tracked object.
 * Everything is reached by attribute (f_back, f_code, co_filename, co_name)
 * and PyFrame_GetLineNumber, through functions found with dlsym, so
 * libebb.so
 * needs no Python headers and works with 3.8 to 3.13.  Cost: a few dozen
 * attribute reads per sample, once per 512 KiB allocated by default. */

typedef struct {
    int (*gil_check)(void);
    void *(*current)(void);             /* the thread state running now */
    void *(*this_thread)(void);         /* this thread's (GIL-state API) */
    int (*finalizing)(void);
    void *(*frame)(void);               /* borrowed */
    const char *(*as_utf8)(void *);
    void (*decref)(void *);
    void (*err_fetch)(void **, void **, void **);
    void (*err_restore)(void *, void *, void *);
    void (*err_clear)(void);
    int (*gc_disable)(void);            /* 3.10+: previous state */
    int (*gc_enable)(void);
    int (*line_number)(void *);         /* PyFrame_GetLineNumber */
    void *(*getattr)(void *, const char *); /* new reference */
    int (*initialized)(void);
    void (*get_allocator)(int, ebb__py_allocator_t *);
    void *none;
    /* The object domain's malloc when the hook was registered: if another
     * allocator wraps it since (tracemalloc, the debug hooks), the hook
     * stands aside, because tracemalloc calls malloc holding a lock that
     * creating an object takes again. */
    void *(*obj_malloc)(void *, size_t);
} py_api_t;

static py_api_t Py;

static void *sym(const char *a, const char *b)
{
    void *p = ebb__os_symbol(a);
    return p || b == NULL ? p : ebb__os_symbol(b);
}

#define PY_FIND(field, a, b) (*(void **)&Py.field = sym(a, b))

/* 1 if this process has every function the hook needs. */
static int find_python(void)
{
    PY_FIND(gil_check, "PyGILState_Check", NULL);
    PY_FIND(current, "PyThreadState_GetUnchecked", "_PyThreadState_UncheckedGet");
    PY_FIND(this_thread, "PyGILState_GetThisThreadState", NULL);
    PY_FIND(finalizing, "Py_IsFinalizing", "_Py_IsFinalizing");
    PY_FIND(frame, "PyEval_GetFrame", NULL);
    PY_FIND(as_utf8, "PyUnicode_AsUTF8", NULL);
    PY_FIND(decref, "Py_DecRef", NULL);
    PY_FIND(err_fetch, "PyErr_Fetch", NULL);
    PY_FIND(err_restore, "PyErr_Restore", NULL);
    PY_FIND(err_clear, "PyErr_Clear", NULL);
    PY_FIND(gc_disable, "PyGC_Disable", NULL);
    PY_FIND(gc_enable, "PyGC_Enable", NULL);
    PY_FIND(line_number, "PyFrame_GetLineNumber", NULL);
    PY_FIND(getattr, "PyObject_GetAttrString", NULL);
    PY_FIND(initialized, "Py_IsInitialized", NULL);
    PY_FIND(get_allocator, "PyMem_GetAllocator", NULL);
    Py.none = ebb__os_symbol("_Py_NoneStruct");
    return Py.gil_check && Py.current && Py.this_thread && Py.frame && Py.as_utf8 && Py.decref && Py.err_fetch && Py.err_restore &&
           Py.err_clear && Py.none && Py.line_number && Py.getattr && Py.initialized &&
           Py.get_allocator;
}

/* Nobody wraps the object domain's allocator since the hook was set. */
static int allocator_unwrapped(void)
{
    ebb__py_allocator_t now;
    Py.get_allocator(EBB_PY_DOMAIN_OBJ, &now);
    return now.malloc == Py.obj_malloc;
}

static size_t put_text(char *buf, size_t size, size_t at, const char *s, size_t most)
{
    for (size_t n = 0; s && *s && n < most && at + 1 < size; n++)
        buf[at++] = *s++;
    return at;
}

static size_t put_decimal(char *buf, size_t size, size_t at, long v)
{
    char digits[24];
    int n = 0;
    unsigned long u = v < 0 ? 0 : (unsigned long)v;
    do
        digits[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    while (n > 0 && at + 1 < size)
        buf[at++] = digits[--n];
    return at;
}

/* "file:line function\n" for one frame; a long file name keeps its end.
 * Reads existing objects only: the code object and its two strings. */
static size_t put_frame(void *frame, char *buf, size_t size, size_t at)
{
    void *code = Py.getattr(frame, "f_code");
    void *file = code ? Py.getattr(code, "co_filename") : NULL;
    void *name = code ? Py.getattr(code, "co_name") : NULL;
    const char *f = file ? Py.as_utf8(file) : NULL;
    const char *n = name ? Py.as_utf8(name) : NULL;
    long ln = Py.line_number(frame);
    if (f) {
        size_t len = strlen(f);
        if (len > EBB_PY_FILE_CHARS) {
            at = put_text(buf, size, at, "...", 3);
            f += len - EBB_PY_FILE_CHARS;
        }
        at = put_text(buf, size, at, f, EBB_PY_FILE_CHARS);
        at = put_text(buf, size, at, ":", 1);
        at = put_decimal(buf, size, at, ln);
        at = put_text(buf, size, at, " ", 1);
        at = put_text(buf, size, at, n ? n : "?", 64);
        at = put_text(buf, size, at, "\n", 1);
    }
    void *refs[3] = { code, file, name };
    for (int i = 0; i < 3; i++)
        if (refs[i])
            Py.decref(refs[i]);
    return at;
}

static size_t python_stack(char *buf, size_t size, void *arg)
{
    (void)arg;
    if (!Py.initialized() || (Py.finalizing && Py.finalizing()))
        return 0;
    void *me = Py.current();
    if (me == NULL || me != Py.this_thread() || !Py.gil_check() || !allocator_unwrapped())
        return 0;
    /* Before the first frame is read: from 3.11 on, that may create it. */
    void *type, *value, *tb;
    Py.err_fetch(&type, &value, &tb);
    int collecting = Py.gc_disable ? Py.gc_disable() : 0;
    void *frame = Py.frame(); /* borrowed */
    size_t at = 0;
    int owned = 0;
    for (int depth = 0; frame != NULL && depth < EBB_PY_STACK_FRAMES; depth++) {
        at = put_frame(frame, buf, size, at);
        void *back = Py.getattr(frame, "f_back"); /* new reference */
        if (owned)
            Py.decref(frame);
        owned = 1;
        frame = back;
        if (back == Py.none) {
            Py.decref(back);
            frame = NULL;
        }
    }
    if (owned && frame != NULL)
        Py.decref(frame);
    if (collecting && Py.gc_enable)
        Py.gc_enable();
    Py.err_clear(); /* whatever an attribute read raised is ours */
    Py.err_restore(type, value, tb);
    buf[at < size ? at : size - 1] = '\0';
    return at;
}

EBB_API int ebb_python_stacks(int on)
{
    static int found = -1;
    if (!on)
        return ebb_set_stack_hook(NULL, NULL);
    if (found < 0)
        found = find_python();
    if (!found) {
        errno = ENOENT;
        return -1;
    }
    ebb__py_allocator_t obj;
    Py.get_allocator(EBB_PY_DOMAIN_OBJ, &obj);
    Py.obj_malloc = obj.malloc;
    return ebb_set_stack_hook(python_stack, NULL);
}
