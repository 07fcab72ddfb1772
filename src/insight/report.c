/*
 * report.c -- what ebb holds and why, on demand and when memory runs out.
 *
 * Owns: ebb_report() (text for people, JSON for programs), the black box's
 * text (ebb__report_brief), the automatic reports (the first allocation
 * that fails for want of memory, and the signal EBB_REPORT_SIGNAL), where
 * they go (EBB_REPORT) and in which format (EBB_REPORT_FORMAT); the
 * snapshot a report is written from.
 *
 * A report is a snapshot taken first and written second: the counters of
 * stats.c (the held categories add up to `mapped`, so the report's do
 * too), the limit and where it came from (and the kernel pressure events
 * pressure.c heard), why the last allocation failed, every size class in
 * use, the largest hole in the address space (what a big allocation could
 * still get), and the sampled allocation sites that hold the most
 * (sample.c: estimates, and the report says so), each with its native
 * frames (symbolised with dladdr) and its runtime stack.  What
 * the report says about them is report_walk.c's, said once for both
 * formats; report_text.c and report_json.c write it, through
 * report_out.c's buffer (report.h draws the map).  It is written through a
 * stack buffer with diag.c's formatter, never through stdio or malloc: the
 * moment a report matters most is the moment allocation fails, and ebb may
 * be the process's malloc.
 *
 * Who writes the automatic ones.  The first failed allocation writes its
 * report itself, on the failing thread, holding no ebb lock (malloc.c calls
 * here from its slow path's end).  A signal handler may not take ebb's
 * locks (the thread it interrupted may hold one), so the handler only
 * raises a flag and wakes the reporter thread, started when the signal is
 * armed at the first slow path after start-up; that thread writes the
 * report.  Automatic reports are appended to EBB_REPORT (a JSON one is one
 * line, so a file of them is JSON Lines), and a lock keeps two at once
 * apart.  One that cannot be written (ENOSPC, EIO) is said once on stderr.
 * The report files (EBB_REPORT_FILE, report_files.c) are rewritten on the
 * same two occasions and at exit.
 *
 * The JSON has a versioned schema ("schema": "ebb.report/1"): keys are
 * only ever added within a version; a change of meaning makes version 2.
 * Sampled figures are estimates and say so ("estimated": true).
 */
#include "report.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

/* ------------------------------------------------------------- snapshot */

/* brief: the black box's snapshot, taken often, skips reading the
 * address-space map (a system call and a file read per refresh). */
void ebb__report_snapshot(ebb__report_snapshot_t *s, const char *reason, int brief,
                          ebb__timeline_point_t *points)
{
    s->reason = reason;
    s->pid = ebb__os_pid();
    ebb__os_format_utc(ebb__os_wall_seconds(), s->when);
    ebb_stats(&s->st);
    ebb_limit_info_t li;
    ebb_limit_info(&li);
    s->limit = li.limit;
    s->soft = li.soft;
    s->reserve = li.reserve;
    memcpy(s->limit_source, li.source, sizeof li.source);
    s->pressure_events = li.pressure_events;
    memcpy(s->pressure_source, li.pressure_source, sizeof li.pressure_source);
    ebb_last_failure(&s->failure, 0);
    s->brief = brief;
    s->native = !brief && ebb__opt.report_native;
    s->gap_at = 0;
    s->gap = brief ? 0 : ebb__os_largest_gap(&s->gap_at);
    /* A brief one (the black box's, at each new peak) takes the reading
     * of the last second: each read opens a descriptor the program can see
     * (config.h, EBB_RSS_READ_INTERVAL_MS). */
    ebb__os_usage_t use;
    if (brief)
        s->rss = (size_t)ebb__timeline_rss();
    else
        s->rss = ebb__os_usage("", &use) ? (size_t)use.resident : 0;
    uint64_t wall_ns;
    ebb__peak_committed_times(&wall_ns, &s->peak_uptime_ns);
    s->peak_when[0] = '\0';
    if (wall_ns)
        ebb__os_format_utc((long long)(wall_ns / 1000000000u), s->peak_when);
    /* Reading smaps walks every page of the process: not every 10 ms. */
    s->rss_read = !brief && ebb__rss_read(&s->rss_parts) == 0;
    s->nclasses = ebb_class_stats(s->cls, EBB_CLASSES);
    if (s->nclasses > EBB_CLASSES)
        s->nclasses = EBB_CLASSES;
    ebb_sample_stats(&s->samples);
    size_t want = brief ? EBB_REPORT_SITES_BRIEF : EBB_REPORT_SITES;
    size_t total = ebb__sample_top(s->site, want);
    s->nsites = total < want ? total : want;
    /* Sites with nothing live left are history, not what holds memory. */
    while (s->nsites > 0 && s->site[s->nsites - 1].live_bytes == 0)
        s->nsites--;
    if (!brief && s->samples.rate != 0)
        ebb__peak_refresh();
    s->have_peak = ebb__peak_get(&s->peak);
    s->have_map = !brief && ebb__heapmap_take(&s->map, 1) == 0;
    s->json_peak_sites = brief ? EBB_REPORT_SITES : 0;
    s->json_frames = brief ? EBB_REPORT_FRAMES : 0;
    /* Memory over time (timeline.c), and a last point for now, made of
     * this snapshot's figures. */
    ebb__timeline_info(&s->timeline);
    s->point = points;
    s->npoints = points ? ebb__timeline_copy(points, EBB_REPORT_TIMELINE_POINTS - 1) : 0;
    if (points) {
        ebb__timeline_point_t *now = &s->point[s->npoints++];
        now->ms = s->timeline.now_ms;
        now->live = (uint64_t)ebb__report_live_small(s) + s->st.large_used;
        now->committed = s->st.committed;
        now->rss = s->rss;
        now->limit = s->limit;
        now->purged = s->st.purged;
    }
}

void ebb__report_snapshot_drop(ebb__report_snapshot_t *s)
{
    if (s->have_map)
        ebb__heapmap_drop(&s->map);
}

/* ---------------------------------------------------------- public API */

static int write_report(int fd, int format, const char *reason)
{
    /* ~12 KiB of snapshot, 6 KiB of timeline and 2 KiB of buffer: the
     * stack, never the heap. */
    ebb__report_snapshot_t s;
    ebb__timeline_point_t points[EBB_REPORT_TIMELINE_POINTS];
    ebb__report_out_t o;
    ebb__report_out_init(&o, fd, NULL, 0);
    ebb__report_snapshot(&s, reason, 0, points);
    if (format == EBB_REPORT_HTML)
        ebb__report_html(&o, &s);
    else
        ebb__report_walk(&o, format == EBB_REPORT_JSON ? &ebb__report_as_json
                                                       : &ebb__report_as_text, &s);
    ebb__report_snapshot_drop(&s);
    ebb__report_flush(&o);
    if (o.failed) {
        errno = o.err;
        return -1;
    }
    return 0;
}

/* The black box's record (blackbox.c), from one snapshot: the text, a first
 * line of key=value counters for `ebb run` to read, then the text report
 * without the address space; and, when json is not NULL, the brief JSON and
 * the folded stacks that `ebb run` makes the report files from after a
 * kill.  Each is NUL-terminated in its buffer.  A JSON that does not fit
 * its room is written again with fewer native frames a site (a cut one
 * would not parse): the room is sized for the usual case, not for sites
 * whose every frame is a 255-byte C++ name (blackbox.h has the figures). */
void ebb__report_brief(char *text, size_t text_cap, char *json, size_t json_cap, char *folded,
                       size_t folded_cap, const char *reason)
{
    ebb__report_snapshot_t s;
    ebb__report_out_t o;
    ebb__report_out_init(&o, -1, text, text_cap);
    ebb__report_snapshot(&s, reason, 1, NULL);
    size_t live = ebb__report_live_small(&s) + s.st.large_used;
    ebb__report_putf(&o, "committed=%zu peak_committed=%zu live=%zu mapped=%zu limit=%zu "
                         "purged=%zu rss=%zu failure=%d request=%zu\n",
                     s.st.committed, s.st.peak_committed, live, s.st.mapped, s.limit, s.st.purged,
                     s.rss, s.failure.reason, s.failure.request);
    ebb__report_walk(&o, &ebb__report_as_text, &s);
    ebb__report_flush(&o);
    if (json == NULL)
        return;
    for (int frames = s.json_frames;; frames /= 4) {
        s.json_frames = frames > 0 ? frames : -1;
        ebb__report_out_init(&o, -1, json, json_cap);
        ebb__report_walk(&o, &ebb__report_as_json, &s);
        ebb__report_flush(&o);
        if (!o.cut)
            break;
        if (frames <= 0) {
            json[0] = '\0'; /* not even without frames: none rather than a cut one */
            break;
        }
    }
    ebb__report_out_init(&o, -1, folded, folded_cap);
    ebb__report_folded(&o, &s);
    ebb__report_flush(&o);
    if (o.cut) { /* keep the whole lines that fit */
        char *nl = strrchr(folded, '\n');
        *(nl ? nl + 1 : folded) = '\0';
    }
}

EBB_API int ebb_report(int fd, int format)
{
    if (fd < 0 || (format != EBB_REPORT_TEXT && format != EBB_REPORT_JSON &&
                   format != EBB_REPORT_HTML)) {
        errno = EINVAL;
        return -1;
    }
    ebb__ensure_init();
    return write_report(fd, format, "asked for (ebb_report)");
}

/* ---------------------------------------------------- automatic reports */

static struct {
    ebb__lock_t lock;          /* one automatic report at a time */
    _Atomic int failure_done;  /* the first failure's report was written */
    _Atomic int asked;         /* the signal came: a report is owed */
    _Atomic int armed;         /* 0 not yet, 1 arming or armed */
    _Atomic int write_failed;  /* a report could not be written, and it was said */
} auto_reports = { .lock = EBB_LOCK_INIT };

/* A report that could not be written (a full disk, an I/O error, a closed
 * pipe) is said once on stderr: silence would look like "nothing went
 * wrong", and a line per report would bury the program's own output. */
static void write_failed(const char *where, int err)
{
    if (!atomic_exchange_explicit(&auto_reports.write_failed, 1, memory_order_relaxed))
        ebb__diag("ebb: cannot write the report to %s (%s); this is said once\n", where,
                  ebb__os_error_text(err));
}

/* The descriptor EBB_REPORT names without a file of its own: none (stderr),
 * /dev/stderr or /dev/stdout (symbolic links, which the report's open
 * refuses to follow); -1 for a file to open. */
static int standard_stream(const char *path)
{
    if (path[0] == '\0' || strcmp(path, "/dev/stderr") == 0)
        return 2;
    return strcmp(path, "/dev/stdout") == 0 ? 1 : -1;
}

/* Write an automatic report where EBB_REPORT says. */
static void auto_report(const char *reason)
{
    const ebb__options_t *opt = &ebb__opt;
    if (opt->report_off)
        return;
    ebb__lock(&auto_reports.lock);
    int saved = errno;
    int fd = standard_stream(opt->report_path), opened = 0;
    if (fd < 0) {
        fd = ebb__os_open_append(opt->report_path);
        opened = fd >= 0;
        if (!opened) {
            ebb__diag("ebb: cannot write the report to %s (%s); writing it to stderr\n",
                      opt->report_path,
                      errno == ELOOP ? "a symbolic link" : ebb__os_error_text(errno));
            fd = 2;
        }
    }
    if (write_report(fd, opt->report_json ? EBB_REPORT_JSON : EBB_REPORT_TEXT, reason) != 0)
        write_failed(opened ? opt->report_path : "stderr", errno);
    if (opened)
        ebb__os_close(fd);
    errno = saved;
    ebb__unlock(&auto_reports.lock);
}

/* A request the machine could never meet (more than its memory and swap,
 * or than any object can be) is the program's error, or a test of its
 * MemoryError, not memory running out: no report for it. */
static int could_ever_fit(size_t request)
{
    if (request > (size_t)PTRDIFF_MAX)
        return 0;
    ebb__os_bound_t machine;
    return !ebb__os_physical_memory("", &machine) || request <= machine.bytes;
}

void ebb__report_failure(void)
{
    /* Once written, later failures cost one load: a program probing for
     * the biggest block it can get fails often. */
    if (atomic_load_explicit(&auto_reports.failure_done, memory_order_relaxed))
        return;
    ebb_failure_t f;
    int reason = ebb_last_failure(&f, 0);
    if (reason == EBB_FAIL_NONE || (reason == EBB_FAIL_NO_MEMORY && !could_ever_fit(f.request)))
        return;
    if (atomic_exchange_explicit(&auto_reports.failure_done, 1, memory_order_relaxed))
        return;
    const char *why = reason == EBB_FAIL_LIMIT ? "first allocation refused at the limit"
                                               : "first allocation the system refused";
    auto_report(why);
    ebb__report_files_failure(why);
}

static void on_report_signal(int sig)
{
    (void)sig;
    atomic_store_explicit(&auto_reports.asked, 1, memory_order_relaxed);
    ebb__os_wake_all(&auto_reports.asked);
}

static void reporter_main(void *arg)
{
    (void)arg;
    ebb__thread_mark_internal();
    for (;;) {
        ebb__os_wait(&auto_reports.asked, 0, -1);
        if (atomic_exchange_explicit(&auto_reports.asked, 0, memory_order_relaxed)) {
            auto_report("signal EBB_REPORT_SIGNAL");
            ebb__report_files_signal();
        }
    }
}

/* From the first slow path after start-up, holding no lock: start the
 * reporter thread, then catch the signal (in that order, so a signal never
 * finds nobody to write). */
void ebb__report_arm_slow(void)
{
    int sig = ebb__opt.report_signal;
    int was = 0;
    if (sig == 0 || !atomic_compare_exchange_strong_explicit(&auto_reports.armed, &was, 1,
                                                             memory_order_relaxed,
                                                             memory_order_relaxed))
        return;
    if (ebb__start_thread(reporter_main, NULL, "ebb-report") != 0) {
        ebb__diag("ebb: cannot start the report thread; EBB_REPORT_SIGNAL ignored\n");
        return;
    }
    if (ebb__os_on_signal(sig, on_report_signal) != 0)
        ebb__diag("ebb: cannot catch signal %d; EBB_REPORT_SIGNAL ignored\n", sig);
}

/* A fork child has no reporter thread: arm again on its first slow path. */
static void reports_fork_child(void)
{
    ebb__lock_reset(&auto_reports.lock);
    atomic_store_explicit(&auto_reports.armed, 0, memory_order_relaxed);
    atomic_store_explicit(&auto_reports.asked, 0, memory_order_relaxed);
}

EBB_HIDDEN const ebb__lockset_t ebb__report_locks = { .name = "reports",
                                                      .child = reports_fork_child };
