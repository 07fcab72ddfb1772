/*
 * pylayout.h -- where CPython keeps what the frame walker (pyframes.c) and
 * the MemoryError patch (pymemerror.c) read: byte offsets into the
 * interpreter's structures, one row per minor version, 3.8 to 3.13.
 *
 * These are CPython's private (Py_BUILD_CORE) layouts; they change with
 * every minor release and ebb has no headers of the running interpreter
 * (libebb.so is built without Python).  So the numbers are not written from
 * reading the headers but measured: tests/python/pylayout_check.c, compiled
 * against each version's own headers (pyenv's 3.8.18, 3.9.18, 3.10.13,
 * 3.11.7, 3.12.1, 3.13.0, internal headers included), prints its version's
 * row with offsetof() and the bit masks of PyASCIIObject's state word
 * (`pylayout_check --print`), and the same program, run by
 * tests/python/versions.sh for every version present, compares the row
 * below with what the headers say and fails on any difference.
 *
 * Layouts within a minor release are kept stable by CPython (extensions
 * built for 3.x.0 run on 3.x.N); a build that changes PyObject's header
 * (Py_TRACE_REFS) or the free-threaded 3.13t is refused by pyframes.c.  The
 * rows are x86-64's: on other ABIs (32-bit x86 among them) the table is
 * empty and ebb reads no Python frames.
 */
#ifndef EBB_PYLAYOUT_H
#define EBB_PYLAYOUT_H

#include <stdint.h>

/* How a version's frames are chained. */
enum {
    EBB_PY_FRAME_OBJECTS = 1, /* 3.8-3.10: PyFrameObject, f_back, f_lasti */
    EBB_PY_FRAME_INTERP = 2   /* 3.11+: _PyInterpreterFrame, previous, an instruction pointer */
};

#define EBB_PY_NONE 0xffff /* a field this version does not have */

typedef struct ebb__pylayout_s {
    uint8_t minor;          /* 3.minor */
    uint8_t frames;         /* EBB_PY_FRAME_* */
    uint8_t lasti_unit;     /* FRAME_OBJECTS: bytes per unit of f_lasti (3.8, 3.9: 1; 3.10: 2) */
    uint8_t owner_generator;/* FRAME_INTERP: FRAME_OWNED_BY_GENERATOR */
    uint8_t owner_cstack;   /* FRAME_INTERP: FRAME_OWNED_BY_CSTACK (3.12+), else 0xff */
    /* PyThreadState: the innermost frame is ts->frame (3.8-3.10),
     * ts->cframe->current_frame (3.11, 3.12) or ts->current_frame (3.13) */
    uint16_t ts_frame;      /* frame, cframe or current_frame */
    uint16_t cframe_frame;  /* _PyCFrame.current_frame (3.11, 3.12) */
    /* a frame: PyFrameObject or _PyInterpreterFrame */
    uint16_t f_back;        /* f_back, previous */
    uint16_t f_code;        /* f_code, f_executable (3.13) */
    uint16_t f_instr;       /* f_lasti (int), prev_instr (3.11, 3.12), instr_ptr (3.13) */
    uint16_t f_owner;       /* owner (char), 3.11+ */
    /* PyCodeObject */
    uint16_t co_size;       /* ob_size: code units (3.11+) */
    uint16_t co_filename;
    uint16_t co_name;
    uint16_t co_firsttraceable; /* _co_firsttraceable (int), 3.11+ */
    uint16_t co_code;       /* co_code_adaptive: the first code unit, 3.11+ */
    /* str (PyASCIIObject); a compact ASCII str's characters follow it */
    uint16_t ob_type;       /* PyObject.ob_type */
    uint16_t str_length;
    uint16_t str_state;     /* the 32-bit word of bit fields */
    uint16_t str_size;      /* sizeof(PyASCIIObject) */
    uint32_t str_compact, str_ascii, str_ready; /* masks in the state word; ready: 0 from 3.12 */
    /* PyTypeObject: the slots pymemerror.c wraps, and the base they are
     * inherited from when the type does not set them */
    uint16_t tp_str, tp_init, tp_base;
    /* 3.13: where _PyRuntime.debug_offsets (_Py_DebugOffsets, at
     * dbg_at) states each of the offsets above, so that pyframes.c can check
     * the running interpreter agrees with this row; EBB_PY_NONE before 3.13 */
    uint16_t dbg_at, dbg_version, dbg_free_threaded, dbg_ts_frame, dbg_f_back, dbg_f_code,
        dbg_f_instr, dbg_f_owner, dbg_co_filename, dbg_co_name, dbg_co_code, dbg_ob_type,
        dbg_str_state, dbg_str_length, dbg_str_size;
} ebb__pylayout_t;

/* The row of CPython 3.minor, NULL if there is none.  The rows are as
 * `pylayout_check --print` prints them (see above). */
static inline const ebb__pylayout_t *ebb__pylayout_for(unsigned minor)
{
    static const ebb__pylayout_t rows[] = {
#if defined(__x86_64__)
        /* 3.8.18: measured by tests/python/pylayout_check.c --print */
        { .minor = 8, .frames = 1, .lasti_unit = 1, .owner_generator = 0xff, .owner_cstack = 0xff,
          .ts_frame = 0x18, .cframe_frame = EBB_PY_NONE, .f_back = 0x18, .f_code = 0x20,
          .f_instr = 0x68, .f_owner = EBB_PY_NONE, .co_size = EBB_PY_NONE, .co_filename = 0x68,
          .co_name = 0x70, .co_firsttraceable = EBB_PY_NONE, .co_code = EBB_PY_NONE, .ob_type = 8,
          .str_length = 0x10, .str_state = 0x20, .str_size = 0x30, .str_compact = 0x20,
          .str_ascii = 0x40, .str_ready = 0x80, .tp_str = 0x88, .tp_init = 0x128,
          .tp_base = 0x100, .dbg_at = EBB_PY_NONE, .dbg_version = EBB_PY_NONE,
          .dbg_free_threaded = EBB_PY_NONE, .dbg_ts_frame = EBB_PY_NONE,
          .dbg_f_back = EBB_PY_NONE, .dbg_f_code = EBB_PY_NONE, .dbg_f_instr = EBB_PY_NONE,
          .dbg_f_owner = EBB_PY_NONE, .dbg_co_filename = EBB_PY_NONE, .dbg_co_name = EBB_PY_NONE,
          .dbg_co_code = EBB_PY_NONE, .dbg_ob_type = EBB_PY_NONE, .dbg_str_state = EBB_PY_NONE,
          .dbg_str_length = EBB_PY_NONE, .dbg_str_size = EBB_PY_NONE, },
        /* 3.9.18: measured by tests/python/pylayout_check.c --print */
        { .minor = 9, .frames = 1, .lasti_unit = 1, .owner_generator = 0xff, .owner_cstack = 0xff,
          .ts_frame = 0x18, .cframe_frame = EBB_PY_NONE, .f_back = 0x18, .f_code = 0x20,
          .f_instr = 0x68, .f_owner = EBB_PY_NONE, .co_size = EBB_PY_NONE, .co_filename = 0x68,
          .co_name = 0x70, .co_firsttraceable = EBB_PY_NONE, .co_code = EBB_PY_NONE, .ob_type = 8,
          .str_length = 0x10, .str_state = 0x20, .str_size = 0x30, .str_compact = 0x20,
          .str_ascii = 0x40, .str_ready = 0x80, .tp_str = 0x88, .tp_init = 0x128,
          .tp_base = 0x100, .dbg_at = EBB_PY_NONE, .dbg_version = EBB_PY_NONE,
          .dbg_free_threaded = EBB_PY_NONE, .dbg_ts_frame = EBB_PY_NONE,
          .dbg_f_back = EBB_PY_NONE, .dbg_f_code = EBB_PY_NONE, .dbg_f_instr = EBB_PY_NONE,
          .dbg_f_owner = EBB_PY_NONE, .dbg_co_filename = EBB_PY_NONE, .dbg_co_name = EBB_PY_NONE,
          .dbg_co_code = EBB_PY_NONE, .dbg_ob_type = EBB_PY_NONE, .dbg_str_state = EBB_PY_NONE,
          .dbg_str_length = EBB_PY_NONE, .dbg_str_size = EBB_PY_NONE, },
        /* 3.10.13: measured by tests/python/pylayout_check.c --print */
        { .minor = 10, .frames = 1, .lasti_unit = 2, .owner_generator = 0xff,
          .owner_cstack = 0xff, .ts_frame = 0x18, .cframe_frame = EBB_PY_NONE, .f_back = 0x18,
          .f_code = 0x20, .f_instr = 0x60, .f_owner = EBB_PY_NONE, .co_size = EBB_PY_NONE,
          .co_filename = 0x68, .co_name = 0x70, .co_firsttraceable = EBB_PY_NONE,
          .co_code = EBB_PY_NONE, .ob_type = 8, .str_length = 0x10, .str_state = 0x20,
          .str_size = 0x30, .str_compact = 0x20, .str_ascii = 0x40, .str_ready = 0x80,
          .tp_str = 0x88, .tp_init = 0x128, .tp_base = 0x100, .dbg_at = EBB_PY_NONE,
          .dbg_version = EBB_PY_NONE, .dbg_free_threaded = EBB_PY_NONE,
          .dbg_ts_frame = EBB_PY_NONE, .dbg_f_back = EBB_PY_NONE, .dbg_f_code = EBB_PY_NONE,
          .dbg_f_instr = EBB_PY_NONE, .dbg_f_owner = EBB_PY_NONE, .dbg_co_filename = EBB_PY_NONE,
          .dbg_co_name = EBB_PY_NONE, .dbg_co_code = EBB_PY_NONE, .dbg_ob_type = EBB_PY_NONE,
          .dbg_str_state = EBB_PY_NONE, .dbg_str_length = EBB_PY_NONE,
          .dbg_str_size = EBB_PY_NONE, },
        /* 3.11.7: measured by tests/python/pylayout_check.c --print */
        { .minor = 11, .frames = 2, .lasti_unit = 0, .owner_generator = 1, .owner_cstack = 0xff,
          .ts_frame = 0x38, .cframe_frame = 8, .f_back = 0x30, .f_code = 0x20, .f_instr = 0x38,
          .f_owner = 0x45, .co_size = 0x10, .co_filename = 0x70, .co_name = 0x78,
          .co_firsttraceable = 0xa8, .co_code = 0xb8, .ob_type = 8, .str_length = 0x10,
          .str_state = 0x20, .str_size = 0x30, .str_compact = 0x20, .str_ascii = 0x40,
          .str_ready = 0x80, .tp_str = 0x88, .tp_init = 0x128, .tp_base = 0x100,
          .dbg_at = EBB_PY_NONE, .dbg_version = EBB_PY_NONE, .dbg_free_threaded = EBB_PY_NONE,
          .dbg_ts_frame = EBB_PY_NONE, .dbg_f_back = EBB_PY_NONE, .dbg_f_code = EBB_PY_NONE,
          .dbg_f_instr = EBB_PY_NONE, .dbg_f_owner = EBB_PY_NONE, .dbg_co_filename = EBB_PY_NONE,
          .dbg_co_name = EBB_PY_NONE, .dbg_co_code = EBB_PY_NONE, .dbg_ob_type = EBB_PY_NONE,
          .dbg_str_state = EBB_PY_NONE, .dbg_str_length = EBB_PY_NONE,
          .dbg_str_size = EBB_PY_NONE, },
        /* 3.12.1: measured by tests/python/pylayout_check.c --print */
        { .minor = 12, .frames = 2, .lasti_unit = 0, .owner_generator = 1, .owner_cstack = 3,
          .ts_frame = 0x38, .cframe_frame = 0, .f_back = 8, .f_code = 0, .f_instr = 0x38,
          .f_owner = 0x46, .co_size = 0x10, .co_filename = 0x70, .co_name = 0x78,
          .co_firsttraceable = 0xb0, .co_code = 0xc0, .ob_type = 8, .str_length = 0x10,
          .str_state = 0x20, .str_size = 0x28, .str_compact = 0x20, .str_ascii = 0x40,
          .str_ready = 0, .tp_str = 0x88, .tp_init = 0x128, .tp_base = 0x100,
          .dbg_at = EBB_PY_NONE, .dbg_version = EBB_PY_NONE, .dbg_free_threaded = EBB_PY_NONE,
          .dbg_ts_frame = EBB_PY_NONE, .dbg_f_back = EBB_PY_NONE, .dbg_f_code = EBB_PY_NONE,
          .dbg_f_instr = EBB_PY_NONE, .dbg_f_owner = EBB_PY_NONE, .dbg_co_filename = EBB_PY_NONE,
          .dbg_co_name = EBB_PY_NONE, .dbg_co_code = EBB_PY_NONE, .dbg_ob_type = EBB_PY_NONE,
          .dbg_str_state = EBB_PY_NONE, .dbg_str_length = EBB_PY_NONE,
          .dbg_str_size = EBB_PY_NONE, },
        /* 3.13.0: measured by tests/python/pylayout_check.c --print */
        { .minor = 13, .frames = 2, .lasti_unit = 0, .owner_generator = 1, .owner_cstack = 3,
          .ts_frame = 0x48, .cframe_frame = EBB_PY_NONE, .f_back = 8, .f_code = 0,
          .f_instr = 0x38, .f_owner = 0x46, .co_size = 0x10, .co_filename = 0x70, .co_name = 0x78,
          .co_firsttraceable = 0xb8, .co_code = 0xc8, .ob_type = 8, .str_length = 0x10,
          .str_state = 0x20, .str_size = 0x28, .str_compact = 0x20, .str_ascii = 0x40,
          .str_ready = 0, .tp_str = 0x88, .tp_init = 0x128, .tp_base = 0x100, .dbg_at = 0,
          .dbg_version = 8, .dbg_free_threaded = 0x10, .dbg_ts_frame = 0xb8, .dbg_f_back = 0xe8,
          .dbg_f_code = 0xf0, .dbg_f_instr = 0xf8, .dbg_f_owner = 0x108, .dbg_co_filename = 0x118,
          .dbg_co_name = 0x120, .dbg_co_code = 0x158, .dbg_ob_type = 0x168,
          .dbg_str_state = 0x220, .dbg_str_length = 0x228, .dbg_str_size = 0x230, },
#endif
        { .minor = 0 }, /* the end */
    };
    for (const ebb__pylayout_t *r = rows; r->minor != 0; r++)
        if (r->minor == minor)
            return r;
    return NULL;
}

#endif /* EBB_PYLAYOUT_H */
