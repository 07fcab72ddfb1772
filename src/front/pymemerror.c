/*
 * pymemerror.c -- a MemoryError raised because ebb's limit refused memory
 * says so: "ebb memory limit of 64.0 MiB reached (63.2 MiB committed,
 * 200.0 MiB requested)", in every CPython process ebb is the allocator
 * of, whether or not the program imported ebb.
 *
 * Owns: two slots of CPython's MemoryError type, wrapped once per process
 * from ebb's constructor (front/cpython.c decides when), and the message.
 *
 * Why here, and why this way.  When an allocation fails, CPython raises
 * MemoryError() without arguments, on the failing thread, some time after
 * the allocator returned NULL: the allocator cannot give the exception a
 * message, and must not call into the interpreter from inside malloc (it
 * may be in the middle of changing an object, maybe without the GIL).  So
 * the message goes in later, on the interpreter's own path, where calling
 * it is safe: when the exception is made, or when it is turned into text.
 * Up to 3.11 CPython makes it by calling the type, whose tp_init sets the
 * arguments (the wrapper adds the message after it); from 3.12 on it takes
 * a ready-made instance from a free list without calling the type, and the
 * message goes in when the exception is first turned into text (tp_str:
 * str(), print, a traceback), if by then this thread has had no other
 * failure.  Whether a failure was the limit's is this thread's last ebb
 * failure (ebb_last_failure, per thread: the thread that failed is the one
 * that raises), which is forgotten once it named an exception.  A
 * MemoryError the program raises itself, with its own message, keeps it.
 *
 * The slots are written in the type object itself, a static object of the
 * interpreter (its layout: pylayout.h's tp_str, tp_init and tp_base, the
 * same in 3.8 to 3.13).  Under `ebb run` or LD_PRELOAD this happens before
 * the interpreter starts: MemoryError's tp_str is still NULL then (it is
 * inherited from BaseException when the type is made ready), so the wrapper
 * calls the slot the base chain has, and PyType_Ready keeps a slot already
 * set; in the
 * copy of ebb inside the Python extension, at the import, with the GIL
 * held.  The wrappers call the interpreter's public C API only (through
 * the symbols found at start-up), holding the GIL as any tp_str does.
 */
#include "internal.h"
#include "front/pylayout.h"

typedef struct py_object py_object_t; /* PyObject, opaque here */
typedef int (*init_fn)(py_object_t *, py_object_t *, py_object_t *);
typedef py_object_t *(*str_fn)(py_object_t *);

static struct {
    init_fn init;                       /* MemoryError's own tp_init */
    str_fn str;                         /* and tp_str */
    py_object_t *(*get_attr)(py_object_t *, const char *);
    int (*set_attr)(py_object_t *, const char *, py_object_t *);
    ptrdiff_t (*tuple_size)(py_object_t *);
    py_object_t *(*tuple_pack)(ptrdiff_t, ...);
    py_object_t *(*from_string)(const char *);
    void (*clear)(void);
    void (*decref)(py_object_t *);
} api;

/* "12.3 MiB": bytes in MiB, one decimal rounded half to even, as Python's
 * "%.1f" % (bytes / 2**20) prints it. */
static size_t format_mib(char *buf, size_t cap, size_t bytes)
{
    uint64_t scaled = (uint64_t)bytes * 10;
    uint64_t tenths = scaled >> 20, rest = scaled & ((1u << 20) - 1);
    if (rest > (1u << 19) || (rest == (1u << 19) && (tenths & 1)))
        tenths++;
    return ebb__format(buf, cap, "%zu.%u MiB", (size_t)(tenths / 10), (unsigned)(tenths % 10));
}

/* e's args are the empty tuple: nobody gave it a message. */
static int has_no_args(py_object_t *e)
{
    py_object_t *args = api.get_attr(e, "args");
    if (args == NULL) {
        api.clear();
        return 0;
    }
    ptrdiff_t n = api.tuple_size(args);
    if (n < 0)
        api.clear(); /* not a tuple */
    api.decref(args);
    return n == 0;
}

/* Give e the limit's message if this thread's last failure was a refusal
 * at the limit (and forget that failure). */
static void name_the_limit(py_object_t *e)
{
    ebb_failure_t f;
    if (ebb_last_failure(&f, 0) != EBB_FAIL_LIMIT || !has_no_args(e))
        return;
    ebb_last_failure(NULL, 1);
    char limit[32], committed[32], request[32], msg[160];
    format_mib(limit, sizeof limit, f.limit);
    format_mib(committed, sizeof committed, f.committed);
    format_mib(request, sizeof request, f.request);
    ebb__format(msg, sizeof msg, "ebb memory limit of %s reached (%s committed, %s requested)",
                limit, committed, request);
    py_object_t *text = api.from_string(msg);
    py_object_t *args = text ? api.tuple_pack(1, text) : NULL;
    if (args == NULL || api.set_attr(e, "args", args) < 0)
        api.clear(); /* still a MemoryError, only without the message */
    if (args)
        api.decref(args);
    if (text)
        api.decref(text);
}

static int init_naming_the_limit(py_object_t *e, py_object_t *args, py_object_t *kw)
{
    if (api.init(e, args, kw) < 0)
        return -1;
    name_the_limit(e);
    return 0;
}

static py_object_t *str_naming_the_limit(py_object_t *e)
{
    name_the_limit(e);
    return api.str(e);
}

/* The slot at `at` of a type: its own, or (before the interpreter started,
 * when PyType_Ready has not copied it down yet) the first base's that sets
 * it, which is what PyType_Ready will inherit (MemoryError sets tp_init,
 * but takes tp_str from BaseException). */
static void (*inherited_slot(const ebb__pylayout_t *l, const char *type, size_t at))(void)
{
    for (int depth = 0; type != NULL && depth < 8; depth++) {
        void (*slot)(void);
        memcpy(&slot, type + at, sizeof slot);
        if (slot != NULL)
            return slot;
        memcpy(&type, type + l->tp_base, sizeof type);
    }
    return NULL;
}

void ebb__pymemerror_start(const ebb__pylayout_t *l)
{
    static int done;
    py_object_t **type_at = (py_object_t **)ebb__os_symbol("PyExc_MemoryError");
    if (done || type_at == NULL || *type_at == NULL)
        return;
    *(void **)&api.get_attr = ebb__os_symbol("PyObject_GetAttrString");
    *(void **)&api.set_attr = ebb__os_symbol("PyObject_SetAttrString");
    *(void **)&api.tuple_size = ebb__os_symbol("PyTuple_Size");
    *(void **)&api.tuple_pack = ebb__os_symbol("PyTuple_Pack");
    *(void **)&api.from_string = ebb__os_symbol("PyUnicode_FromString");
    *(void **)&api.clear = ebb__os_symbol("PyErr_Clear");
    *(void **)&api.decref = ebb__os_symbol("Py_DecRef");
    if (!api.get_attr || !api.set_attr || !api.tuple_size || !api.tuple_pack ||
        !api.from_string || !api.clear || !api.decref)
        return;
    char *type = (char *)*type_at;
    api.init = (init_fn)inherited_slot(l, type, l->tp_init);
    api.str = (str_fn)inherited_slot(l, type, l->tp_str);
    if (api.init == NULL || api.str == NULL)
        return; /* not the type these offsets describe */
    init_fn init = init_naming_the_limit;
    str_fn str = str_naming_the_limit;
    memcpy(type + l->tp_init, &init, sizeof init);
    memcpy(type + l->tp_str, &str, sizeof str);
    done = 1;
}
