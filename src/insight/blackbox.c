/*
 * blackbox.c -- the last known state, on disk, for when the kernel kills us.
 *
 * Owns: the black box file (EBB_BLACKBOX=PATH, "%p" in it becomes the pid),
 * how often it is brought up to date, and its layout (blackbox.h, shared
 * with the `ebb` tool, which reads it after a child died).
 *
 * The OOM killer's SIGKILL cannot be caught, so whatever explains the death
 * must already be written when it comes.  The file is mapped shared: a store
 * into it is in the page cache at once, and the page cache outlives the
 * process.  No system call is needed to update it, and none to flush it.
 *
 * What is written: the brief report of report.c (counters on a first line
 * for programs, then the text report without the address-space scan), and,
 * when the process names report files (EBB_REPORT_FILE, EBB_REPORT_FOLDED),
 * the brief JSON and the folded stacks, from which `ebb run` writes those
 * files if the process dies without writing them (blackbox.h has the
 * layout and the sizes).  Only then: the JSON names up to 80 native frames,
 * a dladdr each, which a process that asked for no report should not pay
 * at every refresh.
 * When: from the allocation slow paths that hold no lock (a refill, a large
 * block, a failure) and after each purge pass: at most once every
 * EBB_BLACKBOX_INTERVAL_MS, unless committed grew by a sixteenth since the
 * last refresh, and always right after a failed allocation.  A process
 * that grows towards its death takes slow paths all the time, so the box
 * trails the truth by at most the interval or a sixteenth of its size.
 *
 * Which file.  The path comes from the environment and may be in a
 * directory others write to, so the box is created new (mode 0600) or, if
 * a file is there already, taken only if it is one a box of this user left
 * (a regular file it owns, with one name, starting with the box's magic):
 * never through a symbolic link, and never a file ebb did not make
 * (os/linux_report.c).  Its room on disk is reserved when it is opened, so
 * a full file system is a message then, not SIGBUS later.
 *
 * Torn writes.  The box holds two slots; a refresh writes the one not
 * current, then publishes it by storing its index and a sequence number in
 * the header (release order).  A kill at any instant leaves the current
 * slot whole.  One refresh at a time (a trylock: a thread that finds
 * another refreshing skips its turn).
 *
 * A box per process (a path with "%p") is removed when its process exits
 * normally; one left behind belongs to a process that was killed.
 *
 * One writer.  A box is locked (flock) while its process has it mapped, so a
 * fixed path (no "%p") shared by several processes, or by a program and
 * the programs it execs, is kept by the first: the others go on without a
 * box, and say so in one line.
 *
 * Fork.  The child must not write its parent's box: it drops the mapping
 * and, if the path has "%p", opens its own on its next refresh from one of
 * its own threads (never ebb's: see refresh); without
 * "%p" the child has no box.  exec keeps the pid and drops the mapping
 * (releasing the lock), so the new image's box is the same file, taken
 * again and continued.  No descriptor stays open (os/linux_report.c).
 *
 * The path is made absolute when the options are read (base/options.c), so
 * a later chdir does not scatter boxes.
 */
#include "internal.h"

#include <string.h>

#include "insight/blackbox.h"

static struct {
    ebb__lock_t lock;            /* one refresh at a time (trylock) */
    _Atomic int state;           /* BOX_* */
    _Atomic uint32_t last_ms;    /* when the last refresh started */
    _Atomic size_t last_committed; /* committed then */
    ebb__blackbox_t *box;        /* the mapping, NULL until opened */
    int fd;                      /* -1: the mapping alone holds the file and its lock */
} Box = { .lock = EBB_LOCK_INIT, .fd = -1 };

enum { BOX_OFF = 0, BOX_WANTED, BOX_OPEN, BOX_FAILED };

_Atomic int ebb__blackbox_active;

/* The configured path with "%p" replaced by the pid; 0 if it does not fit. */
static int box_path(char *out, size_t cap)
{
    const char *pattern = ebb__opt.blackbox_path;
    size_t at = 0;
    for (const char *c = pattern; *c; c++) {
        if (c[0] == '%' && c[1] == 'p') {
            char digits[24];
            size_t n = ebb__format(digits, sizeof digits, "%d", (int)ebb__os_pid());
            for (size_t i = 0; i < n && at + 1 < cap; i++)
                out[at++] = digits[i];
            c++;
        } else if (at + 1 < cap) {
            out[at++] = *c;
        } else {
            return 0;
        }
    }
    out[at] = '\0';
    return at + 1 < cap;
}

/* The open box's file name: a box per process ("%p") is removed when the
 * process exits normally, so only the boxes of processes that were killed
 * stay behind (`ebb run` starts many a short-lived child). */
static char open_path[sizeof ebb__opt.blackbox_path + 24];

static void box_open(void)
{
    char *path = open_path;
    void *map = NULL;
    const char *why = "its path is too long";
    int named = box_path(path, sizeof open_path);
    if (named)
        map = ebb__os_box_open(path, EBB_BLACKBOX_FILE_SIZE, EBB_BLACKBOX_MAGIC,
                               sizeof EBB_BLACKBOX_MAGIC - 1, &Box.fd, &why);
    if (map == NULL) {
        ebb__diag("ebb: cannot keep the black box %s (%s); going on without it\n",
                  named ? path : ebb__opt.blackbox_path, why);
        atomic_store_explicit(&Box.state, BOX_FAILED, memory_order_relaxed);
        atomic_store_explicit(&ebb__blackbox_active, 0, memory_order_relaxed);
        return;
    }
    ebb__blackbox_t *b = map;
    memcpy(b->magic, EBB_BLACKBOX_MAGIC, sizeof b->magic);
    b->version = EBB_BLACKBOX_VERSION;
    b->slot_size = EBB_BLACKBOX_SLOT;
    b->text_size = EBB_BLACKBOX_TEXT;
    b->json_size = EBB_BLACKBOX_JSON;
    b->folded_size = EBB_BLACKBOX_FOLDED;
    b->pid = ebb__os_pid();
    b->started = ebb__os_wall_seconds();
    __atomic_store_n(&b->note_len, 0, __ATOMIC_RELAXED); /* a box taken again: no old note */
    __atomic_store_n(&Box.box, b, __ATOMIC_RELEASE); /* the crash note reads it */
    atomic_store_explicit(&Box.state, BOX_OPEN, memory_order_relaxed);
}

static void refresh(const char *why)
{
    if (!ebb__trylock(&Box.lock))
        return;
    if (atomic_load_explicit(&Box.state, memory_order_relaxed) == BOX_WANTED) {
        /* Opened on a program's thread only: a descriptor one of ebb's
         * threads opens shows in the program's table while its threads may
         * dup2 onto the numbers they found free (which then fails with
         * EBUSY: multiprocessing's test_large_fd_transfer in a fork child,
         * whose box the purger opened after its first pass). */
        if (ebb__thread_is_internal()) {
            ebb__unlock(&Box.lock);
            return;
        }
        box_open();
    }
    ebb__blackbox_t *b = Box.box;
    if (b != NULL) {
        uint32_t next = 1 - __atomic_load_n(&b->current, __ATOMIC_RELAXED);
        char *slot = (char *)b + EBB_BLACKBOX_HEADER + next * EBB_BLACKBOX_SLOT;
        char *json = slot + EBB_BLACKBOX_TEXT, *folded = json + EBB_BLACKBOX_JSON;
        if (ebb__report_files_wanted()) {
            ebb__report_brief(slot, EBB_BLACKBOX_TEXT, json, EBB_BLACKBOX_JSON, folded,
                              EBB_BLACKBOX_FOLDED, why);
        } else {
            ebb__report_brief(slot, EBB_BLACKBOX_TEXT, NULL, 0, NULL, 0, why);
            json[0] = folded[0] = '\0';
        }
        b->updated = ebb__os_wall_seconds();
        b->seq++;
        __atomic_store_n(&b->current, next, __ATOMIC_RELEASE);
    }
    ebb__unlock(&Box.lock);
}

/* Growth since the last refresh that is worth one at once: a sixteenth of
 * what was committed then (at least 1 MiB), so a fast climb towards the
 * OOM killer is recorded step by step, not only once per interval. */
static int grew_a_lot(size_t committed)
{
    size_t then = atomic_load_explicit(&Box.last_committed, memory_order_relaxed);
    size_t step = then / 16 > ((size_t)1 << 20) ? then / 16 : ((size_t)1 << 20);
    return committed > then && committed - then >= step;
}

void ebb__blackbox_tick_slow(void)
{
    uint32_t now = ebb__os_now_ms();
    uint32_t last = atomic_load_explicit(&Box.last_ms, memory_order_relaxed);
    size_t committed = ebb__committed_now();
    if (now - last < EBB_BLACKBOX_INTERVAL_MS && !grew_a_lot(committed) &&
        atomic_load_explicit(&Box.state, memory_order_relaxed) == BOX_OPEN)
        return;
    if (!atomic_compare_exchange_strong_explicit(&Box.last_ms, &last, now, memory_order_relaxed,
                                                 memory_order_relaxed))
        return; /* another thread took this turn */
    atomic_store_explicit(&Box.last_committed, committed, memory_order_relaxed);
    refresh("the black box's last refresh");
}

void ebb__blackbox_failed(void)
{
    if (atomic_load_explicit(&ebb__blackbox_active, memory_order_relaxed))
        refresh("an allocation failed");
}

/* From a signal handler (insight/crash.c): a copy into the mapping, no
 * lock; the line stays in the file after the death, where `ebb blackbox`
 * prints it.  A box not open yet (no refresh ran, so no allocation failed)
 * gets nothing. */
void ebb__blackbox_note(const char *line, size_t n)
{
    ebb__blackbox_t *b = __atomic_load_n(&Box.box, __ATOMIC_ACQUIRE);
    if (b == NULL)
        return;
    if (n > sizeof b->note)
        n = sizeof b->note;
    memcpy(b->note, line, n);
    __atomic_store_n(&b->note_len, (uint32_t)n, __ATOMIC_RELEASE);
}

void ebb__blackbox_start(void)
{
    if (ebb__opt.blackbox_path[0] == '\0')
        return;
    atomic_store_explicit(&Box.state, BOX_WANTED, memory_order_relaxed);
    atomic_store_explicit(&ebb__blackbox_active, 1, memory_order_relaxed);
}

/* A normal exit: a per-process box goes (the state it keeps is for a death
 * that leaves no exit). */
__attribute__((destructor)) static void box_remove_at_exit(void)
{
    if (Box.box == NULL || strstr(ebb__opt.blackbox_path, "%p") == NULL)
        return;
    atomic_store_explicit(&ebb__blackbox_active, 0, memory_order_relaxed);
    ebb__os_remove_file(open_path);
}

static void box_fork_child(void)
{
    ebb__lock_reset(&Box.lock);
    ebb__blackbox_t *parents = Box.box;
    if (parents != NULL) {
        __atomic_store_n(&Box.box, NULL, __ATOMIC_RELAXED); /* before it goes: the crash note */
        ebb__os_unmap(parents, EBB_BLACKBOX_FILE_SIZE);
    }
    if (Box.fd >= 0) {
        ebb__os_close(Box.fd); /* the parent's lock stays the parent's */
        Box.fd = -1;
    }
    int own = strstr(ebb__opt.blackbox_path, "%p") != NULL;
    int state = atomic_load_explicit(&Box.state, memory_order_relaxed);
    if (state == BOX_OPEN || state == BOX_WANTED) {
        atomic_store_explicit(&Box.state, own ? BOX_WANTED : BOX_OFF, memory_order_relaxed);
        atomic_store_explicit(&ebb__blackbox_active, own, memory_order_relaxed);
    }
    atomic_store_explicit(&Box.last_ms, 0, memory_order_relaxed);
    atomic_store_explicit(&Box.last_committed, 0, memory_order_relaxed);
}

EBB_HIDDEN const ebb__lockset_t ebb__blackbox_locks = { .name = "black box",
                                                        .child = box_fork_child };
