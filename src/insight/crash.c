/*
 * crash.c -- the disguised death: a fault that follows a refused allocation.
 *
 * Owns: the record of the last allocation ebb refused (the call, its size,
 * why, when, on which thread, and where: its site as text), and the one
 * line said when SIGSEGV or SIGBUS comes after it (EBB_CRASH_NOTE, which
 * `ebb run` sets).
 *
 * Why.  Out of memory has four faces, and the worst is a segmentation
 * fault: C code that never checked what malloc returned writes through the
 * NULL, and all anyone sees is "killed by signal 11".  ebb knows that an
 * allocation failed a moment before, so it says so:
 *
 *   ebb: SIGSEGV at 0x0, 1.2 ms after malloc(10000000000000000) was refused
 *   (no memory) at main+0x2d (/tmp/prog) <- __libc_start_call_main+0x7a
 *   (/lib/x86_64-linux-gnu/libc.so.6): probably an unchecked NULL
 *
 * (one line), on stderr and in the black box, and the process then dies of
 * the same signal as before (os/linux_fault.c hands it on).  Nothing is
 * said when no allocation was refused, and each refusal is told once.  A
 * fault far from NULL after a refusal is still told, as maybe unrelated.
 *
 * Two halves, split by what each may do.
 *   At the refusal (ebb__crash_refused, from the front's way out of a failed
 *   request, holding no lock): everything that needs the loader or the
 *   runtime.  The stack is unwound and the stack hook asked, as for a sample
 *   (sample.c: never from inside the sampler), and the frames are named
 *   (dladdr) into text now, because a signal handler may not ask the loader.
 *   Refusals are rare (a program that probes for the biggest block it can
 *   get pays an unwind per probe), and with EBB_CRASH_NOTE off this is one
 *   load and a branch.
 *   In the handler (note): only reads and writes.  No allocation, no lock,
 *   no stdio: ebb's formatter into a buffer on the (alternate) stack, one
 *   write(2), one copy into the black box's mapping.
 *
 * The record.  Two slots and a published index, as the black box keeps its
 * state: a refusal writes the slot not current and then publishes it, so a
 * fault on another thread reads a whole one.  Each slot also carries a
 * generation (odd while written, a seqlock), so a reader that raced two
 * refusals in a row tries again rather than print a torn site.  One writer
 * at a time (a trylock: two threads refused at the same instant, one
 * record kept; the lock is in no lock order, as nothing is taken under it
 * and nothing waits for it, and a fork child makes it usable again); a
 * refusal while recording (the unwinder's own first allocation) is not
 * recorded.  A fork child keeps its parent's record: the NULL it may write
 * through was its parent's too.
 */
#include "internal.h"

#include <string.h>

typedef struct {
    _Atomic uint32_t gen;   /* 2 * refusal number; odd while being written */
    const char *fn;         /* the call ("malloc", "calloc", ...): a static string */
    size_t bytes;           /* what it asked for */
    int reason;             /* EBB_FAIL_* */
    long tid;               /* the thread it was refused to */
    uint64_t at_ns;         /* when (monotonic) */
    char site[EBB_CRASH_SITE_TEXT]; /* " at ... <- ...", or "" */
} refusal_t;

static struct {
    ebb__lock_t lock;          /* one writer at a time (trylock) */
    _Atomic int current;       /* the slot last published, -1: no refusal yet */
    _Atomic uint32_t count;    /* refusals recorded */
    _Atomic uint32_t told;     /* the generation the note last told */
    refusal_t slot[2];
} Crash = { .lock = EBB_LOCK_INIT, .current = -1 };

/* The thread is recording a refusal: one of its own is not recorded. */
static __thread int crash_recording __attribute__((tls_model("initial-exec")));

/* ---------------------------------------------------------- the record */

static size_t crash_put(char *buf, size_t at, size_t cap, const char *s)
{
    return at + ebb__format(buf + at, cap - at, "%s", s);
}

/* The first `frames` lines of the hook's text ("file:line function\n",
 * innermost first), joined with " <- ". */
static size_t crash_put_runtime(char *buf, size_t at, size_t cap, const char *text, int frames)
{
    for (int i = 0; i < frames && *text; i++) {
        if (i > 0)
            at = crash_put(buf, at, cap, " <- ");
        const char *end = strchr(text, '\n');
        size_t n = end ? (size_t)(end - text) : strlen(text);
        while (n > 0 && at + 1 < cap) {
            buf[at++] = *text++;
            n--;
        }
        buf[at] = '\0';
        text = end ? end + 1 : text + strlen(text);
    }
    return at;
}

static size_t crash_put_native(char *buf, size_t at, size_t cap, void *const *pcs, uint32_t n)
{
    for (uint32_t i = 0; i < n && i < EBB_CRASH_FRAMES && at + 1 < cap; i++) {
        if (i > 0)
            at = crash_put(buf, at, cap, " <- ");
        at += ebb__os_symbolise(pcs[i], buf + at, cap - at);
    }
    return at;
}

/* " at PYTHON LINES, in NATIVE FRAMES", " at NATIVE FRAMES", or "". */
static void crash_site(char *buf, size_t cap)
{
    void *pcs[EBB_SITE_DEPTH];
    char text[EBB_SITE_TEXT];
    uint32_t text_len;
    uint32_t depth = ebb__sample_site_now(pcs, text, &text_len);
    size_t at = 0;
    buf[0] = '\0';
    if (text_len > 0) {
        at = crash_put(buf, at, cap, " at ");
        at = crash_put_runtime(buf, at, cap, text, EBB_CRASH_FRAMES);
    }
    if (depth > 0) {
        at = crash_put(buf, at, cap, text_len > 0 ? ", in " : " at ");
        at = crash_put_native(buf, at, cap, pcs, depth);
    }
}

EBB_ENTRY EBB_NOINLINE void ebb__crash_refused(const char *fn, size_t n)
{
    if (EBB_LIKELY(!ebb__opt.crash_note) || crash_recording)
        return;
    crash_recording = 1;
    uint64_t at_ns = ebb__os_now_ns();
    ebb_failure_t why;
    int reason = ebb_last_failure(&why, 0);
    char site[EBB_CRASH_SITE_TEXT];
    crash_site(site, sizeof site);
    if (ebb__trylock(&Crash.lock)) {
        int cur = atomic_load_explicit(&Crash.current, memory_order_relaxed);
        refusal_t *r = &Crash.slot[cur == 0];
        uint32_t number = atomic_fetch_add_explicit(&Crash.count, 1, memory_order_relaxed) + 1;
        atomic_store_explicit(&r->gen, 2 * number - 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_release);
        r->fn = fn;
        r->bytes = n;
        r->reason = reason;
        r->tid = ebb__os_thread_id();
        r->at_ns = at_ns;
        memcpy(r->site, site, strlen(site) + 1);
        atomic_store_explicit(&r->gen, 2 * number, memory_order_release);
        atomic_store_explicit(&Crash.current, cur == 0, memory_order_release);
        ebb__unlock(&Crash.lock);
    }
    crash_recording = 0;
}

/* ------------------------------------------------------------ the note */

/* "35 us", "1.2 ms", "3.4 s". */
static size_t crash_put_elapsed(char *buf, size_t at, size_t cap, uint64_t ns)
{
    if (ns < 1000000)
        return at + ebb__format(buf + at, cap - at, "%u us", (unsigned)(ns / 1000));
    if (ns < 1000000000)
        return at + ebb__format(buf + at, cap - at, "%u.%u ms", (unsigned)(ns / 1000000),
                                (unsigned)(ns / 100000 % 10));
    uint64_t tenths = ns / 100000000;
    return at + ebb__format(buf + at, cap - at, "%u.%u s", (unsigned)(tenths / 10),
                            (unsigned)(tenths % 10));
}

/* The call as the program wrote it, as far as the record knows it. */
static size_t crash_put_call(char *buf, size_t at, size_t cap, const refusal_t *r)
{
    if (strcmp(r->fn, "malloc") == 0)
        return at + ebb__format(buf + at, cap - at, "malloc(%zu)", r->bytes);
    if (strcmp(r->fn, "realloc") == 0)
        return at + ebb__format(buf + at, cap - at, "realloc(p, %zu)", r->bytes);
    return at + ebb__format(buf + at, cap - at, "%s of %zu bytes", r->fn, r->bytes);
}

static const char *crash_reason(const refusal_t *r)
{
    if (r->reason == EBB_FAIL_LIMIT)
        return "ebb's limit";
    return r->bytes > (size_t)PTRDIFF_MAX ? "larger than any block" : "no memory";
}

/* The whole line for record r into buf; its length. */
static size_t crash_compose(char *buf, size_t cap, int sig, const void *addr, int sent,
                      const refusal_t *r, uint64_t now_ns, long tid)
{
    size_t at = ebb__format(buf, cap, "ebb: %s", ebb__os_fault_name(sig));
    if (sent)
        at = crash_put(buf, at, cap, " (sent with kill or raise, so no address)");
    else
        at += ebb__format(buf + at, cap - at, " at %p,", addr);
    at = crash_put(buf, at, cap, " ");
    at = crash_put_elapsed(buf, at, cap, now_ns > r->at_ns ? now_ns - r->at_ns : 0);
    at = crash_put(buf, at, cap, " after ");
    at = crash_put_call(buf, at, cap, r);
    if (r->tid != tid)
        at += ebb__format(buf + at, cap - at, " on thread %d", (int)r->tid);
    at += ebb__format(buf + at, cap - at, " was refused (%s)%s: ", crash_reason(r), r->site);
    uintptr_t near = r->bytes > EBB_CRASH_NULL_SPAN ? r->bytes : EBB_CRASH_NULL_SPAN;
    if (sent)
        at = crash_put(buf, at, cap, "perhaps an unchecked NULL");
    else if ((uintptr_t)addr < near)
        at = crash_put(buf, at, cap, "probably an unchecked NULL");
    else
        at = crash_put(buf, at, cap, "not near NULL, so perhaps unrelated");
    if (at + 1 >= cap)
        at = cap - 2; /* cut to fit, still one line */
    buf[at++] = '\n';
    buf[at] = '\0';
    return at;
}

/* The fault handler's note (os/linux_fault.c calls it first): the line, if
 * a refusal was recorded and not told yet.  Only reads and writes. */
static void crash_note(int sig, const void *addr, int sent)
{
    char line[EBB_CRASH_SITE_TEXT + 320];
    uint64_t now_ns = ebb__os_now_ns();
    long tid = ebb__os_thread_id();
    for (int tries = 0; tries < 4; tries++) {
        int cur = atomic_load_explicit(&Crash.current, memory_order_acquire);
        if (cur < 0)
            return; /* nothing was refused: nothing to say */
        const refusal_t *r = &Crash.slot[cur];
        uint32_t gen = atomic_load_explicit(&r->gen, memory_order_acquire);
        if (gen & 1)
            continue; /* lapped by two refusals: read the newer one */
        if (gen == atomic_load_explicit(&Crash.told, memory_order_relaxed))
            return; /* told already (the program's handler came back here) */
        size_t n = crash_compose(line, sizeof line, sig, addr, sent, r, now_ns, tid);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&r->gen, memory_order_relaxed) != gen)
            continue;
        atomic_store_explicit(&Crash.told, gen, memory_order_relaxed);
        ebb__os_write_diag(line, n);
        ebb__blackbox_note(line, n);
        return;
    }
}

/* A fork child may find the writer lock held by a thread it does not have
 * (only a trylock ever takes it, so nothing waits on it, but the child's
 * refusals would never be recorded). */
static void crash_fork_child(void)
{
    ebb__lock_reset(&Crash.lock);
}

EBB_HIDDEN const ebb__lockset_t ebb__crash_locks = { .name = "crash note",
                                                     .child = crash_fork_child };

void ebb__crash_start(void)
{
    if (ebb__opt.crash_note)
        (void)ebb__os_fault_watch(crash_note, EBB_CRASH_STACK);
}
