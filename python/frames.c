/*
 * frames.c -- the Python stack of the thread that allocates, as text, for
 * ebb's heap-profile samples, so that ebb's report names the Python line
 * holding the memory.  The rest of the module knows it only as the hook
 * ebbmod_stack_hook() returns, handed to ebb_set_stack_hook() by _ebb.c
 * (once, on the first import; EBB_PYTHON_STACKS=0 leaves it off).
 *
 * This is the one file of the extension that defines Py_BUILD_CORE and
 * includes CPython's internal headers: from 3.11 the frames are reachable
 * only through them, and they change with every release.  Kept here, a new
 * CPython can break or need only this file, and every other file is held
 * to the public C API.
 *
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
 * once a subinterpreter exists, before 3.12).  3.13 and later: not yet,
 * their frame internals differ again.
 */
#include "ebbmod.h"

#include <stdio.h>

#if PY_VERSION_HEX < 0x030D0000
#define EBB_PY_FRAMES 1   /* 3.8 to 3.12: frames this file knows how to read */
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

ebb_stack_hook_fn ebbmod_stack_hook(void)
{
#ifdef EBB_PY_FRAMES
    return python_stack;
#else
    return NULL;
#endif
}
