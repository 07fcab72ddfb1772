/*
 * report_files.c -- the report as files that hold the latest state: a page
 * to look at, the JSON, the text, and the peak's stacks folded.
 *
 * Owns: EBB_REPORT_FILE (paths, the format by each one's ending: ".html"
 * the page, ".json" the JSON, anything else the text) and
 * EBB_REPORT_FOLDED; when they are written (at a normal exit, on the first
 * allocation refused for want of memory, on EBB_REPORT_SIGNAL); the HTML
 * page (a viewer template around the JSON) and the folded stacks.
 *
 * Latest state, not a log.  EBB_REPORT appends one report per event; these
 * files are replaced each time, so each holds the last word: the state at
 * exit, or, if the process never got there, at its first failure.  A kill
 * that leaves no last word (SIGKILL, the OOM killer) is `ebb run`'s to
 * answer: the black box carries the brief JSON and the folded stacks, and
 * the tool writes the same files from it (cli/report.c).
 *
 * Replacing a file safely.  A file is written whole under a temporary name
 * beside it (created new, mode 0600, never through a link) and renamed
 * over the path, so a reader never sees half a page and a link planted at
 * the path is replaced, never followed.  What is at the path first is
 * looked at (os/linux_report.c): only nothing, or a report of ebb's (a
 * regular file of this user with one name that starts as the format does:
 * "== ebb report", {"schema":"ebb.report/1", the page's first line; a
 * folded file, empty or whose first line ends in a count) is replaced.
 * Anything else is left alone and said once.  So a rerun replaces the
 * last run's report, and no file ebb did not write is ever destroyed.
 *
 * Whose files.  One process's: `ebb run` names its program (EBB_REPORT_PID,
 * set in the child before exec, which keeps the pid), so the programs it
 * starts and the children it forks, which inherit the variables, do not
 * overwrite its report at their exit.  Without it, the process that first
 * read the options writes them, and its fork children do not.
 *
 * Nothing here allocates (a report is written when allocation fails, and
 * ebb may be the process's malloc): one snapshot on the stack, written
 * through report_out.c's buffer to each file in turn.  The page's template
 * is compiled in (scripts/embed_viewer.sh makes a header of the viewer's
 * files in src/insight/viewer/ when the Makefile or setup.py builds);
 * a build without it (a file compiled alone, the fuzzer) writes a page
 * that shows the JSON as text.
 */
#include "report.h"

#include <errno.h>
#include <string.h>

#ifdef EBB_HAVE_VIEWER
#include "ebb_viewer.h"
#else
static const char ebb__viewer_head[] =
    "<!DOCTYPE html>\n<!-- ebb report: this ebb was built without its viewer -->\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\"><title>ebb report</title></head><body>\n"
    "<p>This ebb was built without its report viewer (scripts/embed_viewer.sh); the report's "
    "JSON:</p><pre id=\"raw\"></pre>\n<script type=\"application/json\" id=\"ebb-data\">\n";
static const char ebb__viewer_tail[] =
    "</script>\n<script>document.getElementById('raw').textContent = "
    "document.getElementById('ebb-data').textContent;</script>\n</body></html>\n";
#endif

enum { FILE_TEXT, FILE_JSON, FILE_HTML, FILE_FOLDED };

static struct {
    ebb__lock_t lock;          /* one writer of the files at a time */
    long owner;                /* the pid that writes them; 0 not started */
    _Atomic unsigned said;     /* bit i: a problem with file i was said */
    _Atomic int failed;        /* the failure's files were written */
    ebb_failure_t failure;     /* that failure (under the lock): a later
                                * report on another thread, or after the
                                * thread's next success, still names it */
} files = { .lock = EBB_LOCK_INIT };

void ebb__report_files_start(void)
{
    files.owner = ebb__opt.report_pid ? (long)ebb__opt.report_pid : ebb__os_pid();
}

int ebb__report_files_wanted(void)
{
    return (ebb__opt.report_files[0] || ebb__opt.report_folded[0]) && files.owner != 0 &&
           files.owner == ebb__os_pid();
}

static int ends_with(const char *s, size_t n, const char *end)
{
    size_t k = strlen(end);
    return n >= k && memcmp(s + n - k, end, k) == 0;
}

static int kind_of(const char *path, size_t n)
{
    if (ends_with(path, n, ".html") || ends_with(path, n, ".htm"))
        return FILE_HTML;
    return ends_with(path, n, ".json") ? FILE_JSON : FILE_TEXT;
}

/* A file of this format that ebb wrote, by its first bytes. */
static int looks_ours(int kind, const char *head, size_t n)
{
    static const char text[] = "== ebb report: ", json[] = "{\"schema\":\"ebb.report/1\"",
                      html[] = "<!DOCTYPE html>\n<!-- ebb report";
    const char *sig = kind == FILE_TEXT ? text : kind == FILE_JSON ? json : html;
    if (kind != FILE_FOLDED)
        return n >= strlen(sig) && memcmp(head, sig, strlen(sig)) == 0;
    /* Folded stacks: empty, or a first line "frames... <count>". */
    const char *nl = memchr(head, '\n', n);
    if (n == 0)
        return 1;
    if (nl == NULL || nl == head || nl[-1] < '0' || nl[-1] > '9')
        return 0;
    const char *d = nl - 1;
    while (d > head && d[-1] >= '0' && d[-1] <= '9')
        d--;
    return d > head && d[-1] == ' ';
}

static void say_once(unsigned i, const char *path, const char *why)
{
    unsigned bit = 1u << (i < 31 ? i : 31);
    if (!(atomic_fetch_or_explicit(&files.said, bit, memory_order_relaxed) & bit))
        ebb__diag("ebb: cannot write the report file %s (%s)\n", path, why);
}

/* ------------------------------------------------------------- folded */

/* One frame of a folded line: ';' separates frames and a line ends at the
 * newline, so neither may be inside one. */
static void folded_frame(ebb__report_out_t *o, const char *s, size_t n, int first)
{
    if (!first)
        ebb__report_put(o, ";", 1);
    for (size_t i = 0; i < n; i++) {
        char c = s[i] == ';' ? ',' : s[i] == '\n' || s[i] == '\r' ? ' ' : s[i];
        ebb__report_put(o, &c, 1);
    }
}

/* frames: the native frames a site may name, when it has no runtime stack
 * (the black box's are few: each costs a dladdr at every refresh). */
static void folded_site(ebb__report_out_t *o, const ebb__site_t *site, int frames)
{
    const char *line[EBB_SITE_TEXT / 4];
    size_t len[EBB_SITE_TEXT / 4], n = 0;
    for (const char *at = site->stack; *at && n < sizeof line / sizeof line[0];) {
        const char *nl = strchr(at, '\n');
        size_t k = nl ? (size_t)(nl - at) : strlen(at);
        if (k > 0) {
            line[n] = at;
            len[n++] = k;
        }
        at += k + (nl != NULL);
    }
    int depth = frames < site->depth ? frames : site->depth;
    if (site->live_bytes == 0 || (n == 0 && depth <= 0))
        return;
    /* The runtime's stack when there is one (a Python line reads better
     * than the interpreter's C frames), else the native frames; outermost
     * first, as flamegraph.pl and speedscope read them. */
    if (n > 0) {
        for (size_t i = n; i-- > 0;)
            folded_frame(o, line[i], len[i], i == n - 1);
    } else {
        for (int f = depth; f-- > 0;) {
            char sym[256];
            size_t k = ebb__os_symbolise(site->pcs[f], sym, sizeof sym);
            folded_frame(o, sym, k, f == depth - 1);
        }
    }
    ebb__report_putf(o, " %zu\n", (size_t)site->live_bytes);
}

void ebb__report_folded(ebb__report_out_t *o, const ebb__report_snapshot_t *s)
{
    int frames = s->json_frames == 0 ? EBB_SITE_DEPTH : s->json_frames;
    if (!s->have_peak) { /* no peak yet: what holds memory now */
        for (size_t i = 0; i < s->nsites; i++)
            folded_site(o, &s->site[i], frames);
        return;
    }
    size_t n = s->peak.nsites;
    if (s->json_peak_sites != 0 && s->json_peak_sites < n)
        n = s->json_peak_sites;
    for (size_t i = 0; i < n; i++) {
        ebb__site_t site;
        ebb__sample_site_at_peak(&site, &s->peak.site[i]);
        folded_site(o, &site, frames);
    }
}

void ebb__report_html(ebb__report_out_t *o, const ebb__report_snapshot_t *s)
{
    ebb__report_put(o, ebb__viewer_head, sizeof ebb__viewer_head - 1);
    o->html = 1;
    ebb__report_walk(o, &ebb__report_as_json, s);
    o->html = 0;
    ebb__report_put(o, ebb__viewer_tail, sizeof ebb__viewer_tail - 1);
}

/* --------------------------------------------------------------- files */

static void write_content(ebb__report_out_t *o, int kind, const ebb__report_snapshot_t *s)
{
    switch (kind) {
    case FILE_TEXT:
        ebb__report_walk(o, &ebb__report_as_text, s);
        break;
    case FILE_JSON:
        ebb__report_walk(o, &ebb__report_as_json, s);
        break;
    case FILE_HTML:
        ebb__report_html(o, s);
        break;
    default:
        ebb__report_folded(o, s);
        break;
    }
}

/* Write file i (path, its first n bytes) whole beside it, then rename it
 * over the path, if what is there may be replaced. */
static void write_file(unsigned i, const char *path, int kind, const ebb__report_snapshot_t *s)
{
    char head[64], tmp[EBB_OPTION_PATH_MAX + 32];
    size_t n;
    const char *why;
    int there = ebb__os_file_head(path, head, sizeof head, &n, &why);
    if (there < 0) {
        say_once(i, path, why);
        return;
    }
    if (there > 0 && !looks_ours(kind, head, n)) {
        say_once(i, path, "a file ebb did not write: it is left alone");
        return;
    }
    size_t len = strlen(path);
    if (len + 24 >= sizeof tmp) {
        say_once(i, path, "its path is too long for a temporary name beside it");
        return;
    }
    memcpy(tmp, path, len);
    ebb__format(tmp + len, sizeof tmp - len, ".ebb-%d.tmp", (int)ebb__os_pid());
    ebb__report_out_t o;
    ebb__report_out_init(&o, ebb__os_create_new(tmp), NULL, 0);
    if (o.fd < 0) {
        say_once(i, path, ebb__os_error_text(errno));
        return;
    }
    write_content(&o, kind, s);
    ebb__report_flush(&o);
    ebb__os_close(o.fd);
    if (o.failed || ebb__os_rename(tmp, path) != 0) {
        say_once(i, path, ebb__os_error_text(o.failed ? o.err : errno));
        ebb__os_remove_file(tmp);
    }
}

static void write_all(const char *reason)
{
    ebb__lock(&files.lock);
    int saved = errno;
    ebb__report_snapshot_t s;
    static ebb__timeline_point_t points[EBB_REPORT_TIMELINE_POINTS]; /* files.lock */
    ebb__report_snapshot(&s, reason, 0, points);
    if (atomic_load_explicit(&files.failed, memory_order_relaxed)) {
        if (files.failure.reason == EBB_FAIL_NONE)
            files.failure = s.failure; /* the failure's own report */
        else if (s.failure.reason == EBB_FAIL_NONE)
            s.failure = files.failure;
    }
    unsigned i = 0;
    char path[EBB_OPTION_PATH_MAX];
    for (const char *at = ebb__opt.report_files; *at; i++) {
        const char *colon = strchr(at, ':');
        size_t n = colon ? (size_t)(colon - at) : strlen(at);
        memcpy(path, at, n);
        path[n] = '\0';
        write_file(i, path, kind_of(path, n), &s);
        at += n + (colon != NULL);
    }
    if (ebb__opt.report_folded[0])
        write_file(i, ebb__opt.report_folded, FILE_FOLDED, &s);
    ebb__report_snapshot_drop(&s);
    errno = saved;
    ebb__unlock(&files.lock);
}

void ebb__report_files_failure(const char *reason)
{
    if (ebb__report_files_wanted() &&
        !atomic_exchange_explicit(&files.failed, 1, memory_order_relaxed))
        write_all(reason);
}

void ebb__report_files_signal(void)
{
    if (ebb__report_files_wanted())
        write_all("signal EBB_REPORT_SIGNAL");
}

void ebb__report_files_at_exit(void)
{
    if (!ebb__report_files_wanted())
        return;
    /* The failure's report is replaced by this one: its reason stays. */
    int failed = atomic_load_explicit(&files.failed, memory_order_relaxed);
    write_all(failed ? "the program exited, after an allocation was refused for want of memory"
                     : "the program exited");
}

static void files_fork_child(void)
{
    ebb__lock_reset(&files.lock);
}

EBB_HIDDEN const ebb__lockset_t ebb__report_files_locks = { .name = "report files",
                                                            .child = files_fork_child };
