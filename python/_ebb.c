/*
 * _ebb.c -- the C half of the `ebb` Python package (ebb/__init__.py is the rest): ebb as CPython's memory manager
 * from inside a running interpreter, its statistics, and its limit.
 *
 * Which ebb.  A process has one heap when it can: if the process already
 * has ebb as its malloc (`ebb run`, LD_PRELOAD=libebb.so, or a program
 * linked with -lebb), the module finds that ebb's functions in the global
 * symbol scope and uses them.  Otherwise it uses the copy of ebb built into
 * the module (hidden symbols, no malloc override): Python's allocations come
 * from ebb once install() ran, while C code calling malloc directly stays
 * on the C library's.  `ebb.heap` says which ("process" or "module").
 *
 * install().  After initialisation CPython allows only wrapping: ebb takes
 * each domain (RAW, MEM, OBJ), and a block the previous allocator made is
 * freed and resized by it.  Which allocator made a block is decided by
 * ebb_manages(), one table load that never touches the block (on free,
 * ebb_free_if_managed(): the same check and the free in one lookup).  A block
 * made before install() and resized after it stays with its allocator; new
 * blocks are ebb's.  When ebb already serves all three domains (under `ebb
 * run`, or PYTHONMALLOC=malloc with ebb as the process's malloc), install()
 * does nothing.  CPython swaps a domain's allocator as four plain stores,
 * so install() should run before other threads allocate without the GIL.
 *
 * CPython's rules, kept by the wrappers: a 0-byte request returns a unique
 * pointer; realloc(p, 0) resizes and never frees.
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
 * the limit on the same thread says so in its message, naming the limit.
 *
 * After every full collection (gc.callbacks, generation 2), ebb purges, so
 * memory the collector freed goes back to the OS at once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ebb.h"
#include "base/size.h"

/* The calling thread's interpreter (PyInterpreterState_Get is 3.9+). */
static PyInterpreterState *current_interpreter(void)
{
#if PY_VERSION_HEX >= 0x03090000
    return PyInterpreterState_Get();
#else
    return PyThreadState_Get()->interp;
#endif
}

/* ------------------------------------------------------------ which ebb */

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
    int (*last_failure)(ebb_failure_t *, int);
    const char *(*version)(void);
    int (*python_domains)(void);
    int (*check)(void);
    int (*report)(int, int);
    int (*set_stack_hook)(ebb_stack_hook_fn, void *);
    int (*set_limit_auto)(unsigned);
    int (*limit_info)(ebb_limit_info_t *);
} api_t;

static const api_t module_copy = {
    ebb_malloc, ebb_calloc,      ebb_realloc,   ebb_free,  ebb_free_if_managed, ebb_manages,
    ebb_collect, ebb_stats,      ebb_class_stats, ebb_set_limit,    ebb_get_limit,
    ebb_on_pressure, ebb_last_failure, ebb_version, ebb_python_domains, ebb_check,
    ebb_report, ebb_set_stack_hook, ebb_set_limit_auto, ebb_limit_info,
};

static api_t api;
static const char *heap_kind;

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
    api_t found;
    int complete = 1;
    FIND(malloc, "ebb_malloc");
    if (found.malloc == NULL) {
        api = module_copy;
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
    FIND(last_failure, "ebb_last_failure");
    FIND(version, "ebb_version");
    FIND(python_domains, "ebb_python_domains");
    FIND(check, "ebb_check");
    FIND(report, "ebb_report");
    FIND(set_stack_hook, "ebb_set_stack_hook");
    FIND(set_limit_auto, "ebb_set_limit_auto");
    FIND(limit_info, "ebb_limit_info");
    if (complete) {
        api = found;
        heap_kind = "process";
    } else {
        /* An older libebb.so without some of them: using it for some calls
         * and the copy for others would split the heap in two. */
        fprintf(stderr, "ebb: the process's libebb.so is older than this module; "
                        "the module uses its own copy of ebb\n");
        api = module_copy;
        heap_kind = "module";
    }
}

/* ------------------------------------------------------------- install */

static PyMemAllocatorEx previous[3];
static int wrapped; /* install() replaced the domains */

static void *w_malloc(void *ctx, size_t n)
{
    (void)ctx;
    return api.malloc(n);
}

static void *w_calloc(void *ctx, size_t count, size_t size)
{
    (void)ctx;
    return api.calloc(count, size);
}

static void *w_realloc(void *ctx, void *p, size_t n)
{
    if (p == NULL || api.manages(p))
        return api.realloc(p, n ? n : 1);
    const PyMemAllocatorEx *old = ctx;
    return old->realloc(old->ctx, p, n);
}

static void w_free(void *ctx, void *p)
{
    if (api.free_if_managed(p))
        return;
    const PyMemAllocatorEx *old = ctx;
    old->free(old->ctx, p);
}

/* Every domain already allocates with ebb: set by ebb's constructor, or
 * each domain's malloc is the process's malloc and that is ebb's. */
static int domains_are_ebb(void)
{
    if (wrapped || api.python_domains())
        return 1;
    if (api.malloc == module_copy.malloc)
        return 0;
    void *process_malloc = dlsym(RTLD_DEFAULT, "malloc");
    if (process_malloc != (void *)api.malloc)
        return 0;
    static const PyMemAllocatorDomain d[3] = { PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM,
                                               PYMEM_DOMAIN_OBJ };
    for (int i = 0; i < 3; i++) {
        PyMemAllocatorEx a;
        PyMem_GetAllocator(d[i], &a);
        /* CPython's malloc-based domains call the C library's malloc
         * through wrappers of its own: compare what they allocate with. */
        void *probe = a.malloc(a.ctx, 1);
        int ours = probe != NULL && api.manages(probe);
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

/* ------------------------------------------------------ Python stacks
 *
 * Each heap-profile sample can carry the Python stack of the thread that
 * allocated, so that ebb's report names the Python line holding the memory.
 * The hook runs inside the allocator, at any allocation, so it only reads:
 * no Python call that could allocate, create a frame object, raise an
 * audit event or run code (a first version read f_back and f_code through
 * attribute access; under CPython's own tests that corrupted objects freed
 * from a trashcan in threads, and audit hooks ran inside malloc).  As
 * tracemalloc does, it walks the interpreter's frames directly: from 3.11
 * the internal _PyInterpreterFrame chain (this module is compiled against
 * the running interpreter's headers, internal ones included), skipping
 * frames still being set up; before 3.11 the frame objects' f_back chain.
 * The line comes from PyCode_Addr2Line (or PyFrame_GetLineNumber), which
 * only decodes the line table; names are copied from ASCII string data,
 * anything else shown as '?'.  It runs only while the interpreter is
 * initialised and the allocating thread holds the GIL (its current thread
 * state is its own: PyGILState_Check alone answers 1 for every thread
 * once a subinterpreter exists, before 3.12).  Registered on import and by
 * install(); EBB_PYTHON_STACKS=0 leaves it off. */

#if PY_VERSION_HEX < 0x030D0000
#define EBB_PY_FRAMES 1   /* 3.8 to 3.12: frames this module knows how to read */
#endif

#ifdef EBB_PY_FRAMES
#define STACK_FRAMES 6    /* innermost frames kept */
#define FILE_CHARS 48     /* a longer file name keeps its end */

static size_t put_chars(char *buf, size_t size, size_t at, const char *s, size_t n)
{
    for (size_t i = 0; i < n && s[i] && at + 1 < size; i++)
        buf[at++] = s[i];
    return at;
}

/* An ASCII str's characters, without allocating; '?' for anything else. */
static size_t put_name(char *buf, size_t size, size_t at, PyObject *u, size_t most)
{
    if (u == NULL || !PyUnicode_Check(u)
#if PY_VERSION_HEX < 0x030C0000
        || !PyUnicode_IS_READY(u)
#endif
        || !PyUnicode_IS_ASCII(u))
        return put_chars(buf, size, at, "?", 1);
    const char *s = (const char *)PyUnicode_DATA(u);
    size_t n = (size_t)PyUnicode_GET_LENGTH(u);
    if (n > most) {
        at = put_chars(buf, size, at, "...", 3);
        s += n - most;
        n = most;
    }
    return put_chars(buf, size, at, s, n);
}

static size_t put_line(char *buf, size_t size, size_t at, PyCodeObject *code, int line)
{
    char digits[16];
    int k = snprintf(digits, sizeof digits, ":%d ", line);
    at = put_name(buf, size, at, code->co_filename, FILE_CHARS);
    at = put_chars(buf, size, at, digits, k > 0 ? (size_t)k : 0);
    at = put_name(buf, size, at, code->co_name, 64);
    return put_chars(buf, size, at, "\n", 1);
}

#if PY_VERSION_HEX >= 0x030B0000 /* 3.11, 3.12: the internal frame chain */
#define Py_BUILD_CORE 1
#include "internal/pycore_frame.h"
#undef Py_BUILD_CORE

static size_t walk_frames(PyThreadState *ts, char *buf, size_t size)
{
    size_t at = 0;
    int depth = 0;
    for (_PyInterpreterFrame *f = ts->cframe ? ts->cframe->current_frame : NULL;
         f != NULL && depth < STACK_FRAMES; f = f->previous) {
        if (_PyFrame_IsIncomplete(f))
            continue;
        PyCodeObject *code = f->f_code;
        int line = PyCode_Addr2Line(code, _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT));
        at = put_line(buf, size, at, code, line);
        depth++;
    }
    return at;
}
#else /* 3.8 to 3.10: frame objects */
#include <frameobject.h>

static size_t walk_frames(PyThreadState *ts, char *buf, size_t size)
{
    size_t at = 0;
    int depth = 0;
    for (PyFrameObject *f = ts->frame; f != NULL && depth < STACK_FRAMES; f = f->f_back, depth++)
        at = put_line(buf, size, at, f->f_code, PyFrame_GetLineNumber(f));
    return at;
}
#endif

static size_t python_stack(char *buf, size_t size, void *arg)
{
    (void)arg;
    if (!Py_IsInitialized())
        return 0;
    PyThreadState *ts = _PyThreadState_UncheckedGet();
    if (ts == NULL || ts != PyGILState_GetThisThreadState() || !PyGILState_Check())
        return 0;
    size_t at = walk_frames(ts, buf, size);
    buf[at < size ? at : size - 1] = '\0';
    return at;
}
#endif

/* Samples carry the Python stack (EBB_PYTHON_STACKS=0: not; 3.13 and later:
 * not yet, their frame internals differ again). */
static void python_stacks(void)
{
#ifdef EBB_PY_FRAMES
    const char *v = getenv("EBB_PYTHON_STACKS");
    if (v == NULL || strcmp(v, "0") != 0)
        api.set_stack_hook(python_stack, NULL);
#endif
}

static PyObject *ebb_install(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    if (domains_are_ebb())
        Py_RETURN_FALSE;
    int depth = tracemalloc_pause();
    if (depth < 0)
        return NULL;
    static const PyMemAllocatorDomain d[3] = { PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM,
                                               PYMEM_DOMAIN_OBJ };
    for (int i = 0; i < 3; i++)
        PyMem_GetAllocator(d[i], &previous[i]);
    for (int i = 0; i < 3; i++) {
        PyMemAllocatorEx a = { &previous[i], w_malloc, w_calloc, w_realloc, w_free };
        PyMem_SetAllocator(d[i], &a);
    }
    wrapped = 1;
    if (tracemalloc_resume(depth) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

static PyObject *ebb_installed(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return PyBool_FromLong(domains_are_ebb());
}

/* ------------------------------------------------------------ statistics */

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
    size_t n = api.class_stats(NULL, 0);
    ebb_class_stats_t *c = PyMem_RawCalloc(n, sizeof *c);
    if (c == NULL)
        return PyErr_NoMemory();
    api.class_stats(c, n);
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

static PyObject *ebb_stats_py(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    ebb_stats_t s;
    api.stats(&s);
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
        { "limit", api.get_limit() },
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

static PyObject *ebb_collect_py(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *names[] = { "force", NULL };
    int force = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:collect", names, &force))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    api.collect(force);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *ebb_check_py(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return PyLong_FromLong(api.check());
}

/* -------------------------------------------------------------- report */

/* ebb writes its report to a file descriptor without allocating; here it
 * goes to an unnamed temporary file, read back as a str. */
static PyObject *ebb_report_py(PyObject *self, PyObject *arg)
{
    (void)self;
    int json = PyObject_IsTrue(arg);
    if (json < 0)
        return NULL;
    FILE *f = tmpfile();
    if (f == NULL)
        return PyErr_SetFromErrno(PyExc_OSError);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = api.report(fileno(f), json ? EBB_REPORT_JSON : EBB_REPORT_TEXT);
    Py_END_ALLOW_THREADS
    long size = rc == 0 && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        fclose(f);
        return NULL;
    }
    PyObject *text = PyBytes_FromStringAndSize(NULL, size);
    if (text && fread(PyBytes_AS_STRING(text), 1, (size_t)size, f) != (size_t)size) {
        Py_CLEAR(text);
        PyErr_SetString(PyExc_OSError, "report: short read of the report");
    }
    fclose(f);
    if (text == NULL)
        return NULL;
    PyObject *str = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(text), size, "replace");
    Py_DECREF(text);
    return str;
}

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
        api.set_limit(bytes);
        Py_RETURN_NONE;
    }
    if (api.set_limit_auto(percent) != 0) {
        PyErr_SetString(PyExc_OSError, "set_limit: the system states no memory bound to take "
                                       "a share of");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *ebb_set_limit_py(PyObject *self, PyObject *arg)
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
    api.set_limit(bytes);
    Py_RETURN_NONE;
}

static const char *limit_from_name(int from)
{
    static const char *const names[] = { "none", "env", "api", "cgroup2", "cgroup1",
                                         "rlimit_as", "rlimit_data", "memory" };
    return from >= 0 && from < (int)(sizeof names / sizeof names[0]) ? names[from] : "?";
}

static PyObject *ebb_limit_info_py(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    ebb_limit_info_t li;
    api.limit_info(&li);
    return Py_BuildValue("{s:n,s:n,s:n,s:I,s:I,s:s,s:n,s:n,s:s}", "limit", (Py_ssize_t)li.limit,
                         "soft", (Py_ssize_t)li.soft, "reserve", (Py_ssize_t)li.reserve,
                         "soft_percent", li.soft_percent, "percent", li.percent, "from",
                         limit_from_name(li.from), "effective", (Py_ssize_t)li.effective,
                         "headroom", (Py_ssize_t)li.headroom, "source", li.source);
}

static PyObject *ebb_get_limit_py(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return PyLong_FromSize_t(api.get_limit());
}

static PyObject *pressure_callbacks; /* list, main interpreter */
static atomic_int pressure_pending;
static atomic_int pressure_level;
static PyObject *gc_module;

static PyObject *ebb_on_pressure_py(PyObject *self, PyObject *callback)
{
    (void)self;
    if (!PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "on_pressure: the callback must be callable");
        return NULL;
    }
    if (current_interpreter() != PyInterpreterState_Main()) {
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
    api.stats(&s);
    PyObject *list = PySequence_List(pressure_callbacks); /* callbacks may register more */
    for (Py_ssize_t i = 0; list && i < PyList_GET_SIZE(list); i++) {
        PyObject *cb = PyList_GET_ITEM(list, i);
        r = PyObject_CallFunction(cb, "snn", level, (Py_ssize_t)s.committed,
                                  (Py_ssize_t)api.get_limit());
        if (r == NULL)
            PyErr_WriteUnraisable(cb);
        Py_XDECREF(r);
    }
    Py_XDECREF(list);
    Py_BEGIN_ALLOW_THREADS
    api.collect(0);
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

/* MemoryError after a refusal at the limit names the limit.  CPython raises
 * MemoryError() without arguments wherever an allocation fails, on the
 * failing thread, so the thread's last ebb failure tells whether it was
 * ours.  Up to 3.11 the exception is made by calling the type, and the
 * message goes in at initialisation (which would otherwise reset the
 * arguments to the empty tuple).  From 3.12 on CPython takes a ready-made
 * instance from its free list without calling the type; there the message
 * goes in when the exception is first turned into text (str, print, a
 * traceback), if by then this thread has had no other failure. */
static initproc memory_error_init;
static reprfunc memory_error_str;

static void format_mib(char *buf, size_t len, size_t bytes)
{
    snprintf(buf, len, "%.1f MiB", (double)bytes / (1024.0 * 1024.0));
}

static int has_no_args(PyObject *e)
{
    PyObject *args = PyObject_GetAttrString(e, "args");
    int empty = args != NULL && PyTuple_Check(args) && PyTuple_GET_SIZE(args) == 0;
    Py_XDECREF(args);
    if (args == NULL)
        PyErr_Clear();
    return empty;
}

/* Give e the limit's message if this thread's last failure was a refusal
 * at the limit (and forget that failure). */
static void name_the_limit(PyObject *e)
{
    ebb_failure_t f;
    if (api.last_failure(&f, 0) != EBB_FAIL_LIMIT || !has_no_args(e))
        return;
    api.last_failure(NULL, 1);
    char limit[32], committed[32], request[32], msg[200];
    format_mib(limit, sizeof limit, f.limit);
    format_mib(committed, sizeof committed, f.committed);
    format_mib(request, sizeof request, f.request);
    snprintf(msg, sizeof msg, "ebb memory limit of %s reached (%s committed, %s requested)", limit,
             committed, request);
    PyObject *new_args = Py_BuildValue("(s)", msg);
    if (new_args == NULL || PyObject_SetAttrString(e, "args", new_args) < 0)
        PyErr_Clear(); /* still a MemoryError, only without the message */
    Py_XDECREF(new_args);
}

static int memory_error_init_with_limit(PyObject *e, PyObject *args, PyObject *kw)
{
    if (memory_error_init(e, args, kw) < 0)
        return -1;
    name_the_limit(e);
    return 0;
}

static PyObject *memory_error_str_with_limit(PyObject *e)
{
    name_the_limit(e);
    return memory_error_str(e);
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
        api.collect(0);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------ test helpers */

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

static PyObject *ebb_raw_stress(PyObject *self, PyObject *args)
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

static PyObject *ebb_manages_py(PyObject *self, PyObject *arg)
{
    (void)self;
    /* The block holding an object's memory: its address. */
    return PyBool_FromLong(api.manages((void *)arg));
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
PyDoc_STRVAR(stats_doc, "stats() -> dict\n\n"
"ebb's counters, in bytes unless named otherwise: live (held by the program),\n"
"committed (ebb's estimate of its resident memory), resident (the process's\n"
"RSS, from the kernel), peak_committed, purged (given back), the mapped_*\n"
"categories that add up to mapped, limit (0: none), and classes: one dict\n"
"per size class (size, used blocks, used_bytes, pools, pool_bytes).");
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
"ebb's report as text, or as JSON text if json is true (ebb.report parses it).");
PyDoc_STRVAR(manages_doc, "_manages(obj) -> bool\n\n"
"True if the memory of obj was allocated by ebb (for tests).");
PyDoc_STRVAR(raw_stress_doc, "_raw_stress(threads, rounds) -> int\n\n"
"Allocate through the RAW domain from C threads without the GIL; returns the\n"
"number of failed or corrupted allocations (for tests).");

static PyMethodDef methods[] = {
    { "install", ebb_install, METH_NOARGS, install_doc },
    { "installed", ebb_installed, METH_NOARGS, installed_doc },
    { "stats", ebb_stats_py, METH_NOARGS, stats_doc },
    { "collect", (PyCFunction)(void (*)(void))ebb_collect_py, METH_VARARGS | METH_KEYWORDS,
      collect_doc },
    { "set_limit", ebb_set_limit_py, METH_O, set_limit_doc },
    { "limit_info", ebb_limit_info_py, METH_NOARGS, limit_info_doc },
    { "get_limit", ebb_get_limit_py, METH_NOARGS, get_limit_doc },
    { "on_pressure", ebb_on_pressure_py, METH_O, on_pressure_doc },
    { "check", ebb_check_py, METH_NOARGS, check_doc },
    { "_report", ebb_report_py, METH_O, report_doc },
    { "_manages", ebb_manages_py, METH_O, manages_doc },
    { "_raw_stress", ebb_raw_stress, METH_VARARGS, raw_stress_doc },
    { NULL, NULL, 0, NULL },
};

static PyMethodDef after_gc_def = { "_after_gc", after_gc, METH_VARARGS,
                                    "Purge after a full garbage collection (gc.callbacks)." };

PyDoc_STRVAR(module_doc, "ebb: a memory manager that gives memory back.\n\n"
"install() makes ebb CPython's allocator in a running interpreter; under\n"
"`ebb run` it already is.  stats(), collect(), set_limit(), get_limit() and\n"
"on_pressure() work either way.");

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "ebb._ebb", module_doc, -1, methods, NULL, NULL, NULL, NULL,
};

/* Once per process, from the main interpreter's first import. */
static int setup_process(PyObject *m)
{
    choose_ebb();
    python_stacks();
    gc_module = PyImport_ImportModule("gc");
    if (gc_module == NULL)
        return -1;
    PyObject *callbacks = PyObject_GetAttrString(gc_module, "callbacks");
    PyObject *hook = PyCFunction_New(&after_gc_def, NULL);
    int rc = callbacks && hook ? PyList_Append(callbacks, hook) : -1;
    Py_XDECREF(callbacks);
    Py_XDECREF(hook);
    if (rc)
        return -1;
    pressure_callbacks = PyList_New(0);
    if (pressure_callbacks == NULL)
        return -1;
    if (api.on_pressure(on_ebb_pressure, NULL) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "ebb: no room for another pressure callback");
        return -1;
    }
    PyTypeObject *me = (PyTypeObject *)PyExc_MemoryError;
    memory_error_init = me->tp_init;
    me->tp_init = memory_error_init_with_limit;
    memory_error_str = me->tp_str;
    me->tp_str = memory_error_str_with_limit;
    (void)m;
    return 0;
}

/* 3.8's PyMODINIT_FUNC does not export it by itself (-fvisibility=hidden). */
__attribute__((visibility("default"))) PyMODINIT_FUNC PyInit__ebb(void)
{
    static int process_ready;
    if (!process_ready && current_interpreter() == PyInterpreterState_Main()) {
        if (setup_process(NULL) < 0)
            return NULL;
        process_ready = 1;
    } else if (!process_ready) {
        choose_ebb(); /* first imported in a subinterpreter: no hooks */
    }
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddStringConstant(m, "__version__", api.version()) ||
        PyModule_AddStringConstant(m, "heap", heap_kind)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
