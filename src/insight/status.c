/*
 * status.c -- the status page: what this process holds, published for
 * `ebb top`.
 *
 * Owns: the page (a small file in /dev/shm, status.h has its layout, shared
 * with the tool), when it exists, and what goes in it: the counters (live,
 * committed, RSS, the peak of committed and its time, the limit, what the
 * purger gave back and how often it woke), the top allocation sites as a
 * few lines of text each, and the whole memory timeline (timeline.c).
 *
 * When it exists.  With EBB_TOP=1, which `ebb run` sets (`--no-top`:
 * not), and never in a privileged process (AT_SECURE: the options are not
 * read there at all, base/options.c, and this file checks again).  Only
 * the copy of ebb that is the process's publishes: the Python package's
 * private copy, loaded under `ebb run` beside libebb.so and unused, does
 * not (the constructor tells, front/init.c).  The page
 * is made at start-up, by ebb's constructor, so a process shows up in
 * `ebb top` from its start; a fork child makes its own on its first
 * allocation slow path (a child that only calls exec never makes one), on
 * its own thread: never on ebb's (see ebb__status_tick).  It is memory
 * (/dev/shm is a tmpfs), 27 KiB, never written to a disk, and removed when
 * the process exits.  A process killed by SIGKILL, or one that leaves
 * through _exit, leaves its page behind: a stale page, which no process
 * holds locked (the writer keeps a lock on it while it maps it, released by
 * the kernel however the process ends).  `ebb top` and `ebb run` remove the
 * stale pages of their user; a new process with the same pid takes its
 * place.  No /dev/shm: no page, and no word about it.
 *
 * Who writes, when.  The purger thread, after each pass (front/purger.c),
 * at most every EBB_STATUS_INTERVAL_MS, and at once when it took a timeline
 * point (committed moved a sixteenth); and the constructor, once, for the
 * first state.  One writer at a time (a trylock: a refresh that finds
 * another in progress is skipped).  A process whose purger is not running
 * is idle as far as ebb can tell (nothing freed, committed unmoved): its
 * page is refreshed on the purger's next wake, and says when it was last
 * written, so a reader can tell an idle process from a stuck one.  Nothing
 * wakes a process to refresh its page.
 *
 * Torn reads.  The page is read by another process while the purger writes
 * it, so the data goes under a seqlock (status.h): a reader's copy is
 * either one whole update or retried.
 *
 * A refresh builds the data in static memory (27 KiB the purger's 128 KiB
 * stack need not hold), under the page's lock, then copies it in.  It takes
 * the statistics (every bin lock once), the sampler's lock for the top
 * sites, the loader's to name their frames, the timeline's lock: each alone,
 * never while holding another ebb lock but the page's, which nothing else
 * waits for.  Measured about 100 us; four times a second at most.
 */
#include "internal.h"

#include <string.h>

#include "insight/status.h"

_Static_assert(EBB_STATUS_SITES <= EBB_STATUS_SITES_MAX && EBB_TIMELINE_POINTS <= EBB_STATUS_POINTS,
               "the page holds the sites named and the whole timeline");
_Static_assert(sizeof(ebb_status_point_t) == sizeof(ebb__timeline_point_t),
               "a timeline point is a page's point");

/* OFF: not asked for.  ASKED: EBB_TOP=1, until the constructor says this
 * copy of ebb is the process's (ebb__status_enable).  WANTED: to be made
 * at the next refresh. */
enum { PAGE_OFF = 0, PAGE_ASKED, PAGE_WANTED, PAGE_OPEN, PAGE_FAILED, PAGE_CLOSED };

static struct {
    ebb__lock_t lock;          /* one writer at a time; guards what follows */
    _Atomic int state;         /* PAGE_* */
    _Atomic uint32_t last_ms;  /* the last refresh started */
    ebb_status_page_t *page;   /* the mapping, NULL until made */
    uint64_t updates;
    char path[sizeof EBB_STATUS_DIR + sizeof EBB_STATUS_PREFIX + 32];
} Page = { .lock = EBB_LOCK_INIT };

/* The data being built, and what it is built from (the page's lock). */
static ebb_status_data_t scratch;
static ebb__site_t top_sites[EBB_STATUS_SITES];
static ebb__timeline_point_t points[EBB_STATUS_POINTS];

void ebb__status_start(void)
{
    if (ebb__opt.top && !ebb__opt.secure)
        atomic_store_explicit(&Page.state, PAGE_ASKED, memory_order_relaxed);
}

void ebb__status_enable(void)
{
    int asked = PAGE_ASKED;
    atomic_compare_exchange_strong_explicit(&Page.state, &asked, PAGE_WANTED, memory_order_relaxed,
                                            memory_order_relaxed);
}

static void page_open(void)
{
    if (!ebb__os_page_dir_exists(EBB_STATUS_DIR)) {
        atomic_store_explicit(&Page.state, PAGE_FAILED, memory_order_relaxed);
        return;
    }
    ebb__format(Page.path, sizeof Page.path, "%s/%s%u-%d", EBB_STATUS_DIR, EBB_STATUS_PREFIX,
                ebb__os_uid(), (int)ebb__os_pid());
    const char *why = NULL;
    ebb_status_page_t *p = ebb__os_page_publish(Page.path, EBB_STATUS_PAGE_SIZE, &why);
    if (p == NULL) {
        ebb__diag("ebb: cannot publish the status page %s for `ebb top` (%s); going on without "
                  "it\n", Page.path, why);
        atomic_store_explicit(&Page.state, PAGE_FAILED, memory_order_relaxed);
        return;
    }
    ebb__timeline_info_t ti;
    ebb__timeline_info(&ti);
    p->h.version = EBB_STATUS_VERSION;
    p->h.page_size = (uint32_t)EBB_STATUS_PAGE_SIZE;
    p->h.pid = ebb__os_pid();
    p->h.uid = ebb__os_uid();
    p->h.word_bits = (uint32_t)(sizeof(void *) * 8);
    p->h.started_wall_ms = (int64_t)ti.started_wall_ms;
    ebb__os_cmdline(p->h.cmdline, sizeof p->h.cmdline);
    /* The magic last: a reader takes a page without it for one being made. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(p->h.magic, EBB_STATUS_MAGIC, sizeof p->h.magic);
    Page.page = p;
    Page.updates = 0;
    atomic_store_explicit(&Page.state, PAGE_OPEN, memory_order_relaxed);
}

/* Append line (len bytes) to out as a line of its own, if it fits whole
 * or cut; 0 once out is full. */
static int add_line(char *out, size_t cap, size_t *at, const char *line, size_t len)
{
    if (*at + 2 >= cap)
        return 0;
    if (*at > 0)
        out[(*at)++] = '\n';
    size_t room = cap - 1 - *at;
    if (len > room)
        len = room;
    memcpy(out + *at, line, len);
    *at += len;
    out[*at] = '\0';
    return 1;
}

/* The object's directory dropped, to fit a line: "symbol+0x1a
 * (/usr/lib/x/libfoo.so.1)" -> "symbol+0x1a (libfoo.so.1)", and
 * "(/usr/bin/prog+0x4f2)" -> "(prog+0x4f2)". */
static size_t short_object(char *sym, size_t n)
{
    char *open = strrchr(sym, '(');
    char *slash = open ? strrchr(open, '/') : NULL;
    if (slash == NULL)
        return n;
    size_t tail = n - (size_t)(slash + 1 - sym);
    memmove(open + 1, slash + 1, tail + 1);
    return (size_t)(open + 1 - sym) + tail;
}

/* Where a site is, in at most three lines: the runtime's stack lines
 * (innermost first), then native frames (the allocating call first). */
static void site_text(char *out, size_t cap, const ebb__site_t *site)
{
    size_t at = 0, lines = 0;
    out[0] = '\0';
    const char *text = site->stack;
    while (*text && lines < 3) {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t)(nl - text) : strlen(text);
        if (n > 0 && add_line(out, cap, &at, text, n))
            lines++;
        text += n + (nl != NULL);
    }
    for (int f = 0; f < site->depth && lines < 3; f++) {
        char sym[160];
        size_t n = ebb__os_symbolise(site->pcs[f], sym, sizeof sym);
        n = short_object(sym, n);
        if (add_line(out, cap, &at, sym, n))
            lines++;
    }
}

/* Page lock held: the data as of now, into scratch. */
static void build(uint64_t purger_wakes)
{
    ebb_status_data_t *d = &scratch;
    memset(d, 0, sizeof *d);
    ebb_stats_t s;
    ebb_stats(&s);
    ebb__timeline_info_t ti;
    ebb__timeline_info(&ti);
    ebb_limit_info_t li;
    ebb_limit_info(&li);
    ebb_sample_stats_t ss;
    ebb_sample_stats(&ss);
    d->updated_wall_ms = (uint64_t)ebb__os_wall_ms();
    d->uptime_ms = ti.now_ms;
    d->updates = ++Page.updates;
    d->live = (uint64_t)(s.small_used - s.small_cached) + s.large_used;
    d->committed = s.committed;
    d->rss = ebb__timeline_rss(); /* read at most once a second (config.h says why) */
    d->mapped = s.mapped;
    d->peak_committed = ti.peak_committed;
    d->peak_committed_ms = ti.peak_committed_ms;
    d->limit = li.limit;
    d->soft = li.soft;
    d->purged = s.purged;
    d->purges = s.purges;
    d->purger_wakes = purger_wakes;
    d->sample_rate = ss.rate;
    d->samples = ss.samples;
    size_t total = ebb__sample_top(top_sites, EBB_STATUS_SITES);
    size_t n = total < EBB_STATUS_SITES ? total : EBB_STATUS_SITES;
    while (n > 0 && top_sites[n - 1].live_bytes == 0)
        n--; /* nothing live left there: history, not what holds memory */
    for (size_t i = 0; i < n; i++) {
        d->site[i].live_bytes = top_sites[i].live_bytes;
        d->site[i].live_blocks = top_sites[i].live_count;
        site_text(d->site[i].text, sizeof d->site[i].text, &top_sites[i]);
    }
    d->nsites = (uint32_t)n;
    size_t np = ebb__timeline_copy(points, EBB_STATUS_POINTS);
    for (size_t i = 0; i < np; i++) {
        ebb_status_point_t *o = &d->point[i];
        o->ms = points[i].ms;
        o->live = points[i].live;
        o->committed = points[i].committed;
        o->rss = points[i].rss;
        o->limit = points[i].limit;
        o->purged = points[i].purged;
    }
    d->npoints = (uint32_t)np;
    d->stride = ti.stride;
}

void ebb__status_tick(uint64_t purger_wakes, int now_wanted)
{
    int state = atomic_load_explicit(&Page.state, memory_order_relaxed);
    if (EBB_LIKELY(state != PAGE_WANTED && state != PAGE_OPEN))
        return;
    /* Made on a program's thread only (ebb__status_make_slow): making it
     * opens two files, and a descriptor one of ebb's threads opens shows
     * in the program's table while its threads may dup2 onto the numbers
     * they found free, which then fails with EBUSY (multiprocessing's
     * test_large_fd_transfer, in a fork child whose purger made its page). */
    if (state == PAGE_WANTED && ebb__thread_is_internal())
        return;
    uint32_t now = ebb__os_now_ms();
    uint32_t last = atomic_load_explicit(&Page.last_ms, memory_order_relaxed);
    if (state == PAGE_OPEN && !now_wanted && !ebb__due(now, last, EBB_STATUS_INTERVAL_MS))
        return;
    if (!ebb__trylock(&Page.lock))
        return; /* another refresh is being written */
    atomic_store_explicit(&Page.last_ms, now, memory_order_relaxed);
    if (atomic_load_explicit(&Page.state, memory_order_relaxed) == PAGE_WANTED)
        page_open();
    if (atomic_load_explicit(&Page.state, memory_order_relaxed) == PAGE_OPEN) {
        build(purger_wakes);
        ebb_status_write(Page.page, &scratch);
    }
    ebb__unlock(&Page.lock);
}

/* A program's thread, on an allocation slow path holding no lock, makes a
 * page that is wanted (at start-up the constructor does; in a fork child,
 * the child's first slow path). */
EBB_HIDDEN _Atomic int ebb__status_to_make;

void ebb__status_make_slow(void)
{
    atomic_store_explicit(&ebb__status_to_make, 0, memory_order_relaxed);
    ebb__status_tick(0, 1);
}

/* A normal exit: the page goes.  A refresh in progress (the purger's) ends
 * first; a lock that stays taken (exit from a signal handler that
 * interrupted the constructor's refresh) is not waited for long. */
__attribute__((destructor)) static void page_remove_at_exit(void)
{
    if (atomic_load_explicit(&Page.state, memory_order_relaxed) == PAGE_OFF)
        return;
    int locked = 0;
    for (int i = 0; i < 1000 && !(locked = ebb__trylock(&Page.lock)); i++) /* a 1 ms nap */
        ebb__os_wait(&Page.state, atomic_load_explicit(&Page.state, memory_order_relaxed), 1);
    if (Page.page != NULL)
        ebb__os_remove_file(Page.path);
    atomic_store_explicit(&Page.state, PAGE_CLOSED, memory_order_relaxed);
    if (locked)
        ebb__unlock(&Page.lock);
}

/* A fork child drops its parent's page and makes its own at its first
 * refresh. */
static void page_fork_child(void)
{
    ebb__lock_reset(&Page.lock);
    if (Page.page != NULL) {
        ebb__os_unmap(Page.page, EBB_STATUS_PAGE_SIZE);
        Page.page = NULL;
    }
    int state = atomic_load_explicit(&Page.state, memory_order_relaxed);
    if (state == PAGE_OPEN || state == PAGE_WANTED) {
        atomic_store_explicit(&Page.state, PAGE_WANTED, memory_order_relaxed);
        atomic_store_explicit(&ebb__status_to_make, 1, memory_order_relaxed);
    }
    atomic_store_explicit(&Page.last_ms, 0, memory_order_relaxed);
}

EBB_HIDDEN const ebb__lockset_t ebb__status_locks = { .name = "status page",
                                                      .child = page_fork_child };
