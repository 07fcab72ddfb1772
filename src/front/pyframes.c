/*
 * pyframes.c -- the Python stack of a sampled allocation, read by the
 * library itself, so that every CPython process ebb allocates for (under
 * `ebb run`, with LD_PRELOAD, or after `import ebb; ebb.install()`) has its
 * heap-profile sites named by Python lines, without the program doing
 * anything.
 *
 * Owns: finding the interpreter in the process (which CPython, and whether
 * ebb knows its layout), and the stack hook it registers with the sampler
 * (insight/sample.c), which writes the allocating thread's innermost
 * frames as "file:line function\n" lines.  The report code reads that text
 * and nothing else.
 *
 * Finding the interpreter, once, from ebb's constructor (front/cpython.c
 * decides when): its symbols through the dynamic loader (libebb.so is
 * built without Python headers and links no libpython): the version from
 * Py_Version (3.11+) or Py_GetVersion, a layout row for it (pylayout.h:
 * struct offsets measured against each version's own headers, and checked
 * against them by the tests), and the few tiny exported helpers the walk
 * calls.  A build whose object header differs (Py_TRACE_REFS) has no row
 * that fits, so it gets none.  From 3.13 the interpreter publishes its own
 * offsets (_PyRuntime.debug_offsets, cookie "xdebugpy"); ebb compares them
 * with its row and reads nothing where they differ (a debug or
 * free-threaded build).
 *
 * The walk.  It runs inside malloc, at any allocation the sampler picks,
 * possibly in the middle of the interpreter changing an object, so it only
 * reads: no Python call that could allocate, create a frame object, run
 * code or raise an audit event (an early version of the extension's hook
 * used attribute access and corrupted objects a trashcan was freeing).
 * The only calls are to the interpreter's small read-only exports: the
 * current thread state, the GIL's thread state for this thread (a
 * thread-specific read) and PyCode_Addr2Line, which decodes a line table.
 * It reads frames only when the allocating thread holds the GIL with its
 * own thread state: the interpreter is initialised, and the current thread
 * state (3.8-3.11: the one holding the GIL, process-wide; 3.12+: this
 * thread's, NULL once it released the GIL) is the one the GIL state API
 * keeps for this thread.  Then nothing else changes the frames while they
 * are read.  A C thread, a thread that released the GIL, or a
 * subinterpreter's thread gets no Python stack.
 *
 * The frames: 3.8-3.10 chain frame objects (f_back; the line from f_lasti),
 * 3.11+ chain _PyInterpreterFrame (previous; the line from the instruction
 * pointer's distance into the code).  From 3.11 a frame may be linked while
 * it is still being set up (its instruction pointer before the code's first
 * traceable instruction: copying cells and free variables allocates), and
 * from 3.12 the interpreter links entry frames that live on the C stack
 * (owner FRAME_OWNED_BY_CSTACK, a trampoline's code, in 3.13 maybe no code
 * at all): both are skipped, as CPython's own traceback code does.  Every
 * pointer read is checked before it is followed: not NULL, aligned, inside
 * user space, and every object is of the type it must be (a code object's
 * type is PyCode_Type, a name's PyUnicode_Type); the walk visits at most
 * EBB_PY_WALK_STEPS frames.  Names are copied from compact ASCII strings
 * only, anything else shown as '?'.
 *
 * The text is what the extension's hook wrote (python/frames.c until it
 * went), so reports read the same: at most EBB_PY_STACK_FRAMES frames,
 * innermost first, a file name longer than EBB_PY_FILE_CHARS keeps its end
 * after "...", a function name (co_name) at most EBB_PY_NAME_CHARS; a
 * frame that does not fit the site's text is left out whole.
 *
 * Cost: a sample pays three calls to read the thread state, then per frame
 * a few loads, the text (about 320 instructions) and PyCode_Addr2Line,
 * which walks the code's line table up to the instruction (3.11+: about
 * 1,700 instructions a frame in bench/python/graph.py; longer functions
 * cost more).  Measured with callgrind on graph.py --scale 0.1, three
 * frames a sample: 1,450 instructions a sample on 3.8, 6,200 on 3.11, 5,400
 * on 3.13, next to 40,000 to 56,000 for the native backtrace the sampler
 * takes anyway.  Samples are rare (one per EBB_SAMPLE_RATE bytes).
 *
 * Layout rows are x86-64's; elsewhere the table is empty and no hook is
 * registered.
 */
#include "internal.h"
#include "front/pylayout.h"

/* The interpreter as found at start-up; all NULL if the process is not a
 * CPython ebb knows.  Written once, from the constructor, before any
 * sample can read it. */
static struct {
    const ebb__pylayout_t *l;
    int (*initialized)(void);
    uintptr_t (*thread_state)(void);     /* the current thread state, unchecked */
    uintptr_t (*gil_thread_state)(void); /* PyGILState_GetThisThreadState */
    int (*addr2line)(uintptr_t code, int addr);
    uintptr_t code_type, str_type;
} py;

/* ------------------------------------------------------------- reading */

/* Could p be an object or frame of the interpreter's: set, aligned, in the
 * lower half of the address space (user space on x86-64: 47 bits, unless a
 * program asks mmap for more, which CPython does not)? */
#if UINTPTR_MAX > 0xffffffffu
#define USER_END ((uintptr_t)1 << 47)
#else
#define USER_END UINTPTR_MAX /* no rows on 32-bit: never used */
#endif
static int plausible(uintptr_t p)
{
    return p >= 4096 && (p & (sizeof(void *) - 1)) == 0 && p < USER_END;
}

static uintptr_t load_ptr(uintptr_t at)
{
    uintptr_t v;
    memcpy(&v, (const void *)at, sizeof v);
    return v;
}

static int load_int(uintptr_t at)
{
    int v;
    memcpy(&v, (const void *)at, sizeof v);
    return v;
}

/* p is an object of type `type` (exactly: code objects and names are never
 * of a subclass). */
static int is_a(uintptr_t p, uintptr_t type)
{
    return plausible(p) && load_ptr(p + py.l->ob_type) == type;
}

/* ---------------------------------------------------------------- text */

typedef struct {
    char *buf;
    size_t cap, at; /* at < cap: room for a NUL is kept */
} text_t;

static void put_chars(text_t *t, const char *s, size_t n)
{
    size_t room = t->cap - 1 - t->at;
    n = n < room ? n : room;
    memcpy(t->buf + t->at, s, n);
    t->at += n;
}

static void put_uint(text_t *t, unsigned v)
{
    char digits[12];
    size_t n = 0;
    do
        digits[sizeof digits - ++n] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    put_chars(t, digits + sizeof digits - n, n);
}

/* A str's characters if it is a compact ASCII one, else '?'; longer than
 * `most`: "..." and its last `most`. */
static void put_name(text_t *t, uintptr_t u, size_t most)
{
    const ebb__pylayout_t *l = py.l;
    uint32_t state;
    if (!is_a(u, py.str_type)) {
        put_chars(t, "?", 1);
        return;
    }
    memcpy(&state, (const void *)(u + l->str_state), sizeof state);
    uint32_t want = l->str_compact | l->str_ascii | l->str_ready;
    intptr_t n = (intptr_t)load_ptr(u + l->str_length);
    if ((state & want) != want || n < 0) {
        put_chars(t, "?", 1);
        return;
    }
    const char *s = (const char *)(u + l->str_size);
    if ((size_t)n > most) {
        put_chars(t, "...", 3);
        s += (size_t)n - most;
        n = (intptr_t)most;
    }
    put_chars(t, s, (size_t)n);
}

/* One frame's line, whole or not at all; 0 if it did not fit. */
static int put_frame(text_t *t, uintptr_t code, int line)
{
    size_t was = t->at;
    put_name(t, load_ptr(code + py.l->co_filename), EBB_PY_FILE_CHARS);
    put_chars(t, ":", 1);
    if (line >= 0)
        put_uint(t, (unsigned)line);
    else
        put_chars(t, "?", 1);
    put_chars(t, " ", 1);
    put_name(t, load_ptr(code + py.l->co_name), EBB_PY_NAME_CHARS);
    put_chars(t, "\n", 1);
    if (t->at + 1 < t->cap)
        return 1;
    t->at = was; /* the text is full: this frame goes, whole */
    return 0;
}

/* ------------------------------------------------------------- walking */

/* 3.8-3.10: frame objects.  f_lasti counts bytes (3.8, 3.9) or code units
 * (3.10), -1 before the first instruction (the line is then the first). */
static void walk_frame_objects(text_t *t, uintptr_t ts)
{
    const ebb__pylayout_t *l = py.l;
    uintptr_t f = load_ptr(ts + l->ts_frame);
    int kept = 0;
    for (int step = 0; step < EBB_PY_WALK_STEPS && kept < EBB_PY_STACK_FRAMES && plausible(f);
         step++, f = load_ptr(f + l->f_back)) {
        uintptr_t code = load_ptr(f + l->f_code);
        if (!is_a(code, py.code_type))
            return; /* not a frame as this row knows them: stop */
        int lasti = load_int(f + l->f_instr);
        int addr = lasti < 0 || lasti > (1 << 28) ? -1 : lasti * l->lasti_unit;
        if (!put_frame(t, code, py.addr2line(code, addr)))
            return;
        kept++;
    }
}

/* 3.11+: interpreter frames, with the instruction pointer in the frame
 * (prev_instr in 3.11, 3.12: the unit before the next instruction;
 * instr_ptr in 3.13: the one executing), the code units from co_code. */
static void walk_interpreter_frames(text_t *t, uintptr_t ts)
{
    const ebb__pylayout_t *l = py.l;
    uintptr_t f = load_ptr(ts + l->ts_frame);
    if (l->cframe_frame != EBB_PY_NONE) /* 3.11, 3.12: ts->cframe->current_frame */
        f = plausible(f) ? load_ptr(f + l->cframe_frame) : 0;
    int kept = 0;
    for (int step = 0; step < EBB_PY_WALK_STEPS && kept < EBB_PY_STACK_FRAMES && plausible(f);
         step++, f = load_ptr(f + l->f_back)) {
        unsigned char owner = *(const unsigned char *)(f + l->f_owner);
        if (owner == l->owner_cstack)
            continue; /* an entry frame on the C stack */
        uintptr_t code = load_ptr(f + l->f_code);
        if (!is_a(code, py.code_type))
            continue; /* 3.13: f_executable is not always code */
        uintptr_t first = code + l->co_code;
        intptr_t units = (intptr_t)load_ptr(code + l->co_size);
        intptr_t at = (intptr_t)(load_ptr(f + l->f_instr) - first); /* bytes */
        int traceable = load_int(code + l->co_firsttraceable);
        if (owner != l->owner_generator && at < (intptr_t)traceable * 2)
            continue; /* being set up */
        int addr = at < 0 || units <= 0 || at >= units * 2 ? -1 : (int)at;
        if (!put_frame(t, code, py.addr2line(code, addr)))
            return;
        kept++;
    }
}

/* The stack hook (ebb_stack_hook_fn): the allocating thread's Python
 * stack, if it holds the GIL with its own thread state; its length. */
static size_t python_stack(char *buf, size_t size, void *arg)
{
    (void)arg;
    if (size == 0 || !py.initialized())
        return 0;
    uintptr_t ts = py.thread_state();
    if (ts == 0 || ts != py.gil_thread_state() || !plausible(ts))
        return 0;
    text_t t = { buf, size, 0 };
    if (py.l->frames == EBB_PY_FRAME_OBJECTS)
        walk_frame_objects(&t, ts);
    else
        walk_interpreter_frames(&t, ts);
    buf[t.at] = '\0';
    return t.at;
}

/* ------------------------------------------------------------- finding */

/* 3.minor of the process's CPython, 0 if it has none (or a Python 2). */
static unsigned python_minor(void)
{
    const unsigned long *hex = (const unsigned long *)ebb__os_symbol("Py_Version");
    if (hex != NULL)
        return (*hex >> 24) == 3 ? (unsigned)((*hex >> 16) & 0xff) : 0;
    /* Before 3.11: "3.8.18 (default, ...", written into a static buffer. */
    const char *(*version)(void) = (const char *(*)(void))ebb__os_symbol("Py_GetVersion");
    const char *v = version ? version() : NULL;
    if (v == NULL || v[0] != '3' || v[1] != '.')
        return 0;
    unsigned minor = 0;
    for (v += 2; *v >= '0' && *v <= '9' && minor < 1000; v++)
        minor = minor * 10 + (unsigned)(*v - '0');
    return minor;
}

/* 3.13+: the interpreter's own statement of its offsets agrees with row l
 * (a debug or free-threaded build would not).  Before 3.13: nothing to
 * compare, 1. */
static int debug_offsets_agree(const ebb__pylayout_t *l, unsigned long version)
{
    if (l->dbg_at == EBB_PY_NONE)
        return 1;
    const char *runtime = (const char *)ebb__os_symbol("_PyRuntime");
    if (runtime == NULL)
        return 0;
    const char *d = runtime + l->dbg_at;
    uint64_t v;
    if (memcmp(d, "xdebugpy", 8) != 0)
        return 0;
#define DEBUG_OFFSET(pos) (memcpy(&v, d + (pos), sizeof v), v)
    if ((DEBUG_OFFSET(l->dbg_version) >> 16) != (version >> 16) ||
        DEBUG_OFFSET(l->dbg_free_threaded) != 0)
        return 0;
    const uint16_t pairs[][2] = {
        { l->dbg_ts_frame, l->ts_frame },       { l->dbg_f_back, l->f_back },
        { l->dbg_f_code, l->f_code },           { l->dbg_f_instr, l->f_instr },
        { l->dbg_f_owner, l->f_owner },         { l->dbg_co_filename, l->co_filename },
        { l->dbg_co_name, l->co_name },         { l->dbg_co_code, l->co_code },
        { l->dbg_ob_type, l->ob_type },         { l->dbg_str_state, l->str_state },
        { l->dbg_str_length, l->str_length },   { l->dbg_str_size, l->str_size },
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (DEBUG_OFFSET(pairs[i][0]) != pairs[i][1])
            return 0;
#undef DEBUG_OFFSET
    return 1;
}

const ebb__pylayout_t *ebb__python_find(void)
{
    static int searched;
    if (searched)
        return py.l;
    searched = 1;
    if (ebb__os_symbol("_PyRuntime") == NULL)
        return NULL; /* not a CPython (3.7 and later have it) */
    /* Py_TRACE_REFS puts two pointers in front of every object. */
    if (ebb__os_symbol("_Py_PrintReferences") != NULL)
        return NULL;
    unsigned minor = python_minor();
    const ebb__pylayout_t *l = ebb__pylayout_for(minor);
    if (l == NULL)
        return NULL;
    const unsigned long *hex = (const unsigned long *)ebb__os_symbol("Py_Version");
    if (!debug_offsets_agree(l, hex ? *hex : 0x03000000ul | (unsigned long)minor << 16))
        return NULL;
    py.initialized = (int (*)(void))ebb__os_symbol("Py_IsInitialized");
    py.thread_state = (uintptr_t(*)(void))ebb__os_symbol(
        minor >= 13 ? "PyThreadState_GetUnchecked" : "_PyThreadState_UncheckedGet");
    py.gil_thread_state = (uintptr_t(*)(void))ebb__os_symbol("PyGILState_GetThisThreadState");
    py.addr2line = (int (*)(uintptr_t, int))ebb__os_symbol("PyCode_Addr2Line");
    py.code_type = (uintptr_t)ebb__os_symbol("PyCode_Type");
    py.str_type = (uintptr_t)ebb__os_symbol("PyUnicode_Type");
    if (py.initialized && py.thread_state && py.gil_thread_state && py.addr2line &&
        py.code_type && py.str_type)
        py.l = l;
    return py.l;
}

void ebb__pyframes_start(void)
{
    if (ebb__python_find() != NULL)
        ebb_set_stack_hook(python_stack, NULL);
}
