/*
 * pylayout_check.c -- measures, against one CPython's own headers, the
 * offsets ebb's frame walker reads (src/front/pylayout.h), and compares
 * them with the walker's row for that version.
 *
 * Built by tests/python/versions.sh once per CPython found, with that
 * version's include directory (internal headers included: Py_BUILD_CORE):
 *
 *   cc -Isrc -I$PREFIX/include/python3.X tests/python/pylayout_check.c
 *
 * Run without arguments it exits 0 when the row agrees with the headers,
 * 1 naming each field that does not (or when there is no row).  With
 * --print it prints the row as it should read, which is how the table in
 * pylayout.h was written.  Only offsetof, sizeof and constants: nothing of
 * libpython is called or linked.
 */
#define PY_SSIZE_T_CLEAN
#define Py_BUILD_CORE 1
#include <Python.h>

#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_frame.h"
#else
#include <frameobject.h>
#endif
#if PY_VERSION_HEX >= 0x030D0000
#include "internal/pycore_runtime.h"
#endif

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "front/pylayout.h"

/* The mask of one bit field of PyASCIIObject's state, measured by setting
 * it in a zeroed object and reading the word back. */
#define STATE_MASK(out, field)                                                \
    do {                                                                      \
        PyASCIIObject o;                                                      \
        memset(&o, 0, sizeof o);                                              \
        o.state.field = 1;                                                    \
        memcpy(&(out), (char *)&o + offsetof(PyASCIIObject, state), sizeof(out)); \
    } while (0)

static ebb__pylayout_t measure(void)
{
    ebb__pylayout_t m;
    memset(&m, 0, sizeof m);
    m.minor = PY_MINOR_VERSION;
    m.ob_type = offsetof(PyObject, ob_type);
    m.co_filename = offsetof(PyCodeObject, co_filename);
    m.co_name = offsetof(PyCodeObject, co_name);
    m.str_length = offsetof(PyASCIIObject, length);
    m.str_state = offsetof(PyASCIIObject, state);
    m.str_size = sizeof(PyASCIIObject);
    STATE_MASK(m.str_compact, compact);
    STATE_MASK(m.str_ascii, ascii);
#if PY_VERSION_HEX < 0x030C0000
    STATE_MASK(m.str_ready, ready);
#endif
    m.tp_str = offsetof(PyTypeObject, tp_str);
    m.tp_init = offsetof(PyTypeObject, tp_init);
    m.tp_base = offsetof(PyTypeObject, tp_base);
    /* What the walker reads with which width. */
    _Static_assert(sizeof(((PyASCIIObject *)0)->length) == sizeof(Py_ssize_t), "length");
    _Static_assert(sizeof(((PyASCIIObject *)0)->state) == sizeof(uint32_t), "state");
#if PY_VERSION_HEX < 0x030B0000
    m.frames = EBB_PY_FRAME_OBJECTS;
    /* PyFrame_GetLineNumber: f_lasti counts bytes to 3.9, code units in 3.10 */
    m.lasti_unit = PY_VERSION_HEX >= 0x030A0000 ? sizeof(_Py_CODEUNIT) : 1;
    m.owner_generator = m.owner_cstack = 0xff;
    m.ts_frame = offsetof(PyThreadState, frame);
    m.cframe_frame = EBB_PY_NONE;
    m.f_back = offsetof(PyFrameObject, f_back);
    m.f_code = offsetof(PyFrameObject, f_code);
    m.f_instr = offsetof(PyFrameObject, f_lasti);
    _Static_assert(sizeof(((PyFrameObject *)0)->f_lasti) == sizeof(int), "f_lasti");
    m.f_owner = m.co_size = m.co_firsttraceable = m.co_code = EBB_PY_NONE;
#else
    m.frames = EBB_PY_FRAME_INTERP;
    m.lasti_unit = 0;
    m.owner_generator = FRAME_OWNED_BY_GENERATOR;
#if PY_VERSION_HEX >= 0x030C0000
    m.owner_cstack = FRAME_OWNED_BY_CSTACK;
#else
    m.owner_cstack = 0xff;
#endif
#if PY_VERSION_HEX >= 0x030D0000
    m.ts_frame = offsetof(PyThreadState, current_frame);
    m.cframe_frame = EBB_PY_NONE;
    m.f_code = offsetof(_PyInterpreterFrame, f_executable);
    m.f_instr = offsetof(_PyInterpreterFrame, instr_ptr);
#else
    m.ts_frame = offsetof(PyThreadState, cframe);
    m.cframe_frame = offsetof(_PyCFrame, current_frame);
    m.f_code = offsetof(_PyInterpreterFrame, f_code);
    m.f_instr = offsetof(_PyInterpreterFrame, prev_instr);
#endif
    m.f_back = offsetof(_PyInterpreterFrame, previous);
    m.f_owner = offsetof(_PyInterpreterFrame, owner);
    _Static_assert(sizeof(((_PyInterpreterFrame *)0)->owner) == 1, "owner");
    m.co_size = offsetof(PyCodeObject, ob_base.ob_size);
    m.co_firsttraceable = offsetof(PyCodeObject, _co_firsttraceable);
    _Static_assert(sizeof(((PyCodeObject *)0)->_co_firsttraceable) == sizeof(int), "first");
    m.co_code = offsetof(PyCodeObject, co_code_adaptive);
    _Static_assert(sizeof(_Py_CODEUNIT) == 2, "code unit");
#endif
#if PY_VERSION_HEX >= 0x030D0000
    m.dbg_at = offsetof(_PyRuntimeState, debug_offsets);
    m.dbg_version = offsetof(_Py_DebugOffsets, version);
    m.dbg_free_threaded = offsetof(_Py_DebugOffsets, free_threaded);
    m.dbg_ts_frame = offsetof(_Py_DebugOffsets, thread_state.current_frame);
    m.dbg_f_back = offsetof(_Py_DebugOffsets, interpreter_frame.previous);
    m.dbg_f_code = offsetof(_Py_DebugOffsets, interpreter_frame.executable);
    m.dbg_f_instr = offsetof(_Py_DebugOffsets, interpreter_frame.instr_ptr);
    m.dbg_f_owner = offsetof(_Py_DebugOffsets, interpreter_frame.owner);
    m.dbg_co_filename = offsetof(_Py_DebugOffsets, code_object.filename);
    m.dbg_co_name = offsetof(_Py_DebugOffsets, code_object.name);
    m.dbg_co_code = offsetof(_Py_DebugOffsets, code_object.co_code_adaptive);
    m.dbg_ob_type = offsetof(_Py_DebugOffsets, pyobject.ob_type);
    m.dbg_str_state = offsetof(_Py_DebugOffsets, unicode_object.state);
    m.dbg_str_length = offsetof(_Py_DebugOffsets, unicode_object.length);
    m.dbg_str_size = offsetof(_Py_DebugOffsets, unicode_object.asciiobject_size);
#else
    m.dbg_at = m.dbg_version = m.dbg_free_threaded = m.dbg_ts_frame = m.dbg_f_back =
        m.dbg_f_code = m.dbg_f_instr = m.dbg_f_owner = m.dbg_co_filename = m.dbg_co_name =
            m.dbg_co_code = m.dbg_ob_type = m.dbg_str_state = m.dbg_str_length =
                m.dbg_str_size = EBB_PY_NONE;
#endif
    return m;
}

/* Every field, for printing and comparing. */
#define FIELDS(X)                                                             \
    X(minor) X(frames) X(lasti_unit) X(owner_generator) X(owner_cstack)       \
    X(ts_frame) X(cframe_frame) X(f_back) X(f_code) X(f_instr) X(f_owner)     \
    X(co_size) X(co_filename) X(co_name) X(co_firsttraceable) X(co_code)      \
    X(ob_type) X(str_length) X(str_state) X(str_size) X(str_compact)          \
    X(str_ascii) X(str_ready) X(tp_str) X(tp_init) X(tp_base) X(dbg_at)       \
    X(dbg_version) X(dbg_free_threaded) X(dbg_ts_frame) X(dbg_f_back)         \
    X(dbg_f_code) X(dbg_f_instr) X(dbg_f_owner) X(dbg_co_filename)            \
    X(dbg_co_name) X(dbg_co_code) X(dbg_ob_type) X(dbg_str_state)             \
    X(dbg_str_length) X(dbg_str_size)

static void print_row(const ebb__pylayout_t *m)
{
    int col = printf("        {");
#define PRINT(f)                                                              \
    {                                                                         \
        char item[48];                                                        \
        int n = snprintf(item, sizeof item,                                   \
                         m->f < 16 ? " .%s = %lu," : " .%s = %#lx,", #f,      \
                         (unsigned long)m->f);                                \
        if (m->f == EBB_PY_NONE && sizeof m->f == 2)                          \
            n = snprintf(item, sizeof item, " .%s = EBB_PY_NONE,", #f);       \
        if (col + n > 98)                                                     \
            col = printf("\n         ") - 1;                                      \
        col += printf("%s", item);                                            \
    }
    FIELDS(PRINT)
    printf(" },\n");
}

int main(int argc, char **argv)
{
    ebb__pylayout_t m = measure();
    if (argc == 2 && strcmp(argv[1], "--print") == 0) {
        printf("        /* %s: measured by tests/python/pylayout_check.c --print */\n", PY_VERSION);
        print_row(&m);
        return 0;
    }
    const ebb__pylayout_t *row = ebb__pylayout_for(m.minor);
    if (row == NULL) {
        printf("pylayout: no row for CPython %s in src/front/pylayout.h; it should read:\n",
               PY_VERSION);
        print_row(&m);
        return 1;
    }
    int bad = 0;
#define COMPARE(f)                                                            \
    if (row->f != m.f) {                                                      \
        printf("pylayout: CPython %s: %s is %#lx in the table, %#lx in the headers\n", \
               PY_VERSION, #f, (unsigned long)row->f, (unsigned long)m.f);    \
        bad++;                                                                \
    }
    FIELDS(COMPARE)
    if (bad == 0)
        printf("pylayout: CPython %s: the walker's row agrees with the headers\n", PY_VERSION);
    return bad != 0;
}
