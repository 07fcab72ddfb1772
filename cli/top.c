/*
 * top.c -- `ebb top [PID]`: the ebb processes of this user, live.
 *
 * Every process running on ebb with EBB_TOP=1 (all of `ebb run`'s) keeps a
 * status page, /dev/shm/ebb-UID-PID (src/insight/status.c writes it,
 * src/insight/status.h is its layout and its seqlock).  This command reads
 * them: all of this user's as a table (live, committed, RSS, peak, limit,
 * purged, a sparkline of committed, the command), or one PID in detail
 * (the same figures, a chart of memory over time, the top allocation
 * sites).  It refreshes every second and quits on `q` (or ^C); `--once`
 * prints one frame and exits, as it also does when its output is no
 * terminal.
 *
 * The terminal: plain ANSI escapes, no curses.  The view is drawn on the
 * alternate screen with the cursor hidden, the keyboard read raw (no echo,
 * no line editing, ^C still a signal); whatever ends the command (q, ^C,
 * SIGTERM, SIGHUP, an error) puts the terminal back as it was: cursor
 * shown, main screen, modes restored.
 *
 * Pages come and go.  The directory is read again at every refresh: a new
 * process shows up, one that exited is gone (its page removed at its
 * exit).  A page no process holds is stale -- its process was killed, or
 * left through _exit, or exec'd a program without ebb -- and is removed if
 * it is this user's: its writer holds a lock on it (flock) for as long as
 * it maps it, so a page whose lock can be taken has no writer.  A page
 * still being made (no magic yet) is left alone unless it is older than a
 * few seconds.  `ebb run` does the same sweep when its program ends.
 */
#define _GNU_SOURCE
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../src/insight/status.h"

/* A page without its magic older than this is a failed start, not one
 * being made (a page is made in microseconds). */
#define STALE_UNFINISHED_S 10
/* Processes shown at most (the rest are counted). */
#define MAX_PROCS 256
#define CHART_ROWS 8

typedef struct {
    long pid;
    ebb_status_header_t h;
    ebb_status_data_t d;
} proc_t;

/* ------------------------------------------------------------- reading */

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The pid of a page name of this user ("ebb-UID-PID"), or 0. */
static long page_pid(const char *name, unsigned uid)
{
    char prefix[48];
    int n = snprintf(prefix, sizeof prefix, EBB_STATUS_PREFIX "%u-", uid);
    if (strncmp(name, prefix, (size_t)n) != 0)
        return 0;
    char *end;
    errno = 0;
    long pid = strtol(name + n, &end, 10);
    return errno == 0 && *end == '\0' && pid > 0 && name[n] != '+' ? pid : 0;
}

/* A page of this user that no process holds: removed if it is finished (or
 * too old to be one being made), after checking the name still names the
 * file examined.  The caller holds fd's lock. */
static void remove_stale(const char *path, const struct stat *st, int finished)
{
    struct stat now;
    int old = time(NULL) - st->st_mtime > STALE_UNFINISHED_S;
    if ((finished || old) && lstat(path, &now) == 0 && now.st_ino == st->st_ino &&
        now.st_dev == st->st_dev)
        unlink(path);
}

enum { PAGE_LIVE, PAGE_STALE, PAGE_SKIPPED };

/* Read one page into p (PAGE_LIVE), or remove it if stale. */
static int read_page(const char *path, unsigned uid, proc_t *p)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return PAGE_SKIPPED;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != uid) {
        close(fd);
        return PAGE_SKIPPED;
    }
    char magic[8] = { 0 };
    int finished = st.st_size >= (off_t)sizeof(ebb_status_header_t) &&
                   pread(fd, magic, sizeof magic, 0) == (ssize_t)sizeof magic &&
                   memcmp(magic, EBB_STATUS_MAGIC, sizeof magic) == 0;
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        /* Nobody holds it: no process writes this page any more. */
        remove_stale(path, &st, finished);
        close(fd);
        return PAGE_STALE;
    }
    if (!finished || st.st_size < (off_t)EBB_STATUS_PAGE_SIZE) {
        close(fd);
        return PAGE_SKIPPED; /* being made, or of another version */
    }
    const ebb_status_page_t *page = mmap(NULL, EBB_STATUS_PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (page == MAP_FAILED)
        return PAGE_SKIPPED;
    int ok = page->h.version == EBB_STATUS_VERSION && page->h.page_size == EBB_STATUS_PAGE_SIZE;
    if (ok) {
        memcpy(&p->h, &page->h, sizeof p->h);
        p->h.cmdline[sizeof p->h.cmdline - 1] = '\0';
        p->pid = (long)p->h.pid;
        ok = ebb_status_read(page, &p->d, 1000, NULL) == EBB_STATUS_READ_OK;
    }
    munmap((void *)page, EBB_STATUS_PAGE_SIZE);
    if (ok) {
        if (p->d.npoints > EBB_STATUS_POINTS)
            p->d.npoints = EBB_STATUS_POINTS;
        if (p->d.nsites > EBB_STATUS_SITES_MAX)
            p->d.nsites = EBB_STATUS_SITES_MAX;
        for (unsigned i = 0; i < p->d.nsites; i++)
            p->d.site[i].text[EBB_STATUS_SITE_TEXT - 1] = '\0';
    }
    return ok ? PAGE_LIVE : PAGE_SKIPPED;
}

/* Every live page of this user (only `only` if not 0) into procs; stale
 * ones removed.  Returns how many were read; *more counts those past max. */
static size_t scan(proc_t *procs, size_t max, long only, size_t *more)
{
    unsigned uid = (unsigned)geteuid();
    size_t n = 0;
    *more = 0;
    DIR *dir = opendir(EBB_STATUS_DIR);
    struct dirent *e;
    while (dir && (e = readdir(dir)) != NULL) {
        long pid = page_pid(e->d_name, uid);
        if (pid == 0)
            continue;
        char path[sizeof EBB_STATUS_DIR + 300];
        snprintf(path, sizeof path, "%s/%s", EBB_STATUS_DIR, e->d_name);
        if (n == max || (only && pid != only)) {
            /* Not shown; stale ones still go. */
            proc_t *spare = malloc(sizeof *spare);
            if (spare && read_page(path, uid, spare) == PAGE_LIVE && n == max)
                ++*more;
            free(spare);
            continue;
        }
        if (read_page(path, uid, &procs[n]) == PAGE_LIVE)
            n++;
    }
    if (dir)
        closedir(dir);
    return n;
}

void top_sweep_stale(void)
{
    size_t more;
    proc_t *none = malloc(sizeof *none);
    if (none)
        (void)scan(none, 0, -1, &more);
    free(none);
}

/* ------------------------------------------------------------- drawing */

/* The frame is built in memory, then written at once (no flicker). */
typedef struct {
    char *buf;
    size_t len, cap;
    int cols, rows;
    int lines;    /* lines written */
    int tty;      /* escapes: clear each line's end */
} frame_t;

static void put(frame_t *f, const char *s, size_t n)
{
    if (f->len + n + 1 > f->cap) {
        size_t cap = (f->cap ? f->cap * 2 : 65536) + n;
        char *b = realloc(f->buf, cap);
        if (b == NULL)
            return;
        f->buf = b;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, s, n);
    f->len += n;
    f->buf[f->len] = '\0';
}

static void putf(frame_t *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(frame_t *f, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(f, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* End a line: on a terminal, clear what the last frame left to its right. */
static void endline(frame_t *f)
{
    if (f->tty && f->lines + 1 >= f->rows)
        return; /* the screen is full: the rest is cut */
    put(f, f->tty ? "\033[K\n" : "\n", f->tty ? 4 : 1);
    f->lines++;
}

/* s, cut to `width` columns (never inside a character). */
static void put_cut(frame_t *f, const char *s, int width)
{
    size_t i = 0;
    int c = 0;
    while (s[i] && s[i] != '\n') {
        size_t len = 1;
        while (((unsigned char)s[i + len] & 0xc0) == 0x80)
            len++;
        if (c + 1 > width)
            break;
        put(f, s + i, len);
        i += len;
        c++;
    }
}

/* A size for people, at most 7 columns: 1023B, 12.5K, 512.0M, 1.25G. */
static const char *human(uint64_t bytes, char *buf, size_t len)
{
    static const char units[] = "BKMGTP";
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%lluB", (unsigned long long)bytes);
    else
        snprintf(buf, len, v < 10 ? "%.2f%c" : "%.1f%c", v, units[u]);
    return buf;
}

/* A duration for people: 0.3s, 42s, 3m05s, 2h14m, 3d02h. */
static const char *duration(uint64_t ms, char *buf, size_t len)
{
    uint64_t s = ms / 1000;
    if (ms < 10000)
        snprintf(buf, len, "%.1fs", (double)ms / 1000);
    else if (s < 60)
        snprintf(buf, len, "%llus", (unsigned long long)s);
    else if (s < 3600)
        snprintf(buf, len, "%llum%02llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    else if (s < 86400)
        snprintf(buf, len, "%lluh%02llum", (unsigned long long)(s / 3600),
                 (unsigned long long)(s / 60 % 60));
    else
        snprintf(buf, len, "%llud%02lluh", (unsigned long long)(s / 86400),
                 (unsigned long long)(s / 3600 % 24));
    return buf;
}

static uint64_t updated_ago(const proc_t *p)
{
    long long now = wall_ms();
    return now > (long long)p->d.updated_wall_ms ? (uint64_t)(now - (long long)p->d.updated_wall_ms)
                                                 : 0;
}

static const char *const eighths[] = { " ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█" };

/* Committed over the run, in `width` columns: each column the largest
 * committed of the points in its stretch of time (the last value carried
 * over a stretch with none).  Returns the largest. */
static uint64_t resample(const proc_t *p, uint64_t *col, int width)
{
    uint64_t span = p->d.uptime_ms ? p->d.uptime_ms : 1, top = 0, carry = 0;
    unsigned k = 0;
    for (int c = 0; c < width; c++) {
        uint64_t until = span * (uint64_t)(c + 1) / (uint64_t)width, m = 0;
        int any = 0;
        for (; k < p->d.npoints && p->d.point[k].ms <= until; k++) {
            m = p->d.point[k].committed > m ? p->d.point[k].committed : m;
            any = 1;
        }
        if (any)
            carry = p->d.point[k - 1].committed;
        col[c] = any ? m : carry;
        top = col[c] > top ? col[c] : top;
    }
    return top;
}

/* One row of eighth blocks, scaled to top. */
static void sparkline(frame_t *f, const proc_t *p, int width)
{
    uint64_t col[256];
    if (width > 256)
        width = 256;
    uint64_t top = resample(p, col, width);
    for (int c = 0; c < width; c++) {
        int level = top ? (int)((col[c] * 8 + top - 1) / top) : 0;
        const char *s = eighths[level > 8 ? 8 : level];
        put(f, s, strlen(s));
    }
}

/* CHART_ROWS rows of blocks, with the scale on the left. */
static void chart(frame_t *f, const proc_t *p, int width)
{
    uint64_t col[512];
    if (width > 512)
        width = 512;
    if (width < 8)
        return;
    uint64_t top = resample(p, col, width);
    if (p->d.peak_committed > top)
        top = p->d.peak_committed;
    if (top == 0)
        top = 1;
    char a[24], b[24];
    for (int r = CHART_ROWS - 1; r >= 0; r--) {
        if (r == CHART_ROWS - 1)
            putf(f, "%8s ┤", human(top, a, sizeof a));
        else if (r == 0)
            putf(f, "%8s ┤", "0");
        else
            putf(f, "%8s │", "");
        for (int c = 0; c < width; c++) {
            /* eighths of this row the column fills */
            long long level = (long long)((col[c] * CHART_ROWS * 8 + top / 2) / top) - r * 8;
            const char *s = eighths[level <= 0 ? 0 : level >= 8 ? 8 : level];
            put(f, s, strlen(s));
        }
        endline(f);
    }
    putf(f, "%8s └", "");
    for (int c = 0; c < width; c++)
        put(f, "─", strlen("─"));
    endline(f);
    putf(f, "%10s0%*s%s", "", width - 1, "", duration(p->d.uptime_ms, b, sizeof b));
    endline(f);
}

/* The command line, its program without its directory in the table
 * (short), whole in the detail. */
static void put_command(frame_t *f, const proc_t *p, int width, int short_program)
{
    const char *cmd = p->h.cmdline[0] ? p->h.cmdline : "?";
    if (short_program) {
        const char *space = strchr(cmd, ' ');
        const char *end = space ? space : cmd + strlen(cmd);
        for (const char *c = cmd; c < end; c++)
            if (*c == '/')
                cmd = c + 1;
    }
    put_cut(f, cmd, width);
}

static int by_committed(const void *a, const void *b)
{
    const proc_t *x = a, *y = b;
    return x->d.committed < y->d.committed ? 1 : x->d.committed > y->d.committed ? -1 : 0;
}

static void header(frame_t *f, const char *what)
{
    char when[16];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(when, sizeof when, "%H:%M:%S", &tm);
    putf(f, "ebb top - %s - %s%s", what, when, f->tty ? "   (q: quit)" : "");
    endline(f);
}

static void draw_table(frame_t *f, proc_t *procs, size_t n, size_t more)
{
    char what[64];
    snprintf(what, sizeof what, "%zu process%s of uid %u", n + more, n + more == 1 ? "" : "es",
             (unsigned)geteuid());
    header(f, what);
    endline(f);
    if (n == 0) {
        putf(f, "no ebb process of this user publishes a status page (`ebb run` does; elsewhere "
                "EBB_TOP=1)");
        endline(f);
        return;
    }
    qsort(procs, n, sizeof *procs, by_committed);
    int spark = f->cols >= 120 ? 16 : f->cols >= 100 ? 10 : 0;
    putf(f, "%7s %8s %9s %8s %8s %8s %8s %7s  ", "PID", "LIVE", "COMMITTED", "RSS", "PEAK",
         "LIMIT", "PURGED", "UPDATED");
    if (spark)
        putf(f, "%-*s  ", spark, "MEMORY");
    put(f, "COMMAND", 7);
    endline(f);
    int used = 7 + 9 + 10 + 9 + 9 + 9 + 9 + 8 + 2 + (spark ? spark + 2 : 0);
    for (size_t i = 0; i < n; i++) {
        const proc_t *p = &procs[i];
        char l[16], c[16], r[16], pk[16], lim[16], pu[16], up[24];
        putf(f, "%7ld %8s %9s %8s %8s %8s %8s %7s  ", p->pid, human(p->d.live, l, sizeof l),
             human(p->d.committed, c, sizeof c), p->d.rss ? human(p->d.rss, r, sizeof r) : "?",
             human(p->d.peak_committed, pk, sizeof pk),
             p->d.limit ? human(p->d.limit, lim, sizeof lim) : "none",
             human(p->d.purged, pu, sizeof pu), duration(updated_ago(p), up, sizeof up));
        if (spark) {
            sparkline(f, p, spark);
            put(f, "  ", 2);
        }
        put_command(f, p, f->cols - used > 10 ? f->cols - used : 10, 1);
        endline(f);
    }
    if (more) {
        putf(f, "... and %zu more", more);
        endline(f);
    }
}

static void draw_detail(frame_t *f, const proc_t *p)
{
    char a[24], b[24], c[24], d[24];
    char what[48];
    snprintf(what, sizeof what, "pid %ld", p->pid);
    header(f, what);
    put(f, "command    ", 11);
    put_command(f, p, f->cols - 12, 0);
    endline(f);
    putf(f, "running    %s (ebb's clock), %d-bit; page updated %s ago (%llu updates)",
         duration(p->d.uptime_ms, a, sizeof a), (int)p->h.word_bits,
         duration(updated_ago(p), b, sizeof b), (unsigned long long)p->d.updates);
    endline(f);
    endline(f);
    putf(f, "live       %-9s committed %-9s RSS %-9s mapped %s", human(p->d.live, a, sizeof a),
         human(p->d.committed, b, sizeof b), p->d.rss ? human(p->d.rss, c, sizeof c) : "?",
         human(p->d.mapped, d, sizeof d));
    endline(f);
    putf(f, "peak       %s committed, at %s", human(p->d.peak_committed, a, sizeof a),
         duration(p->d.peak_committed_ms, b, sizeof b));
    endline(f);
    if (p->d.limit)
        putf(f, "limit      %s (soft level %s)", human(p->d.limit, a, sizeof a),
             human(p->d.soft, b, sizeof b));
    else
        putf(f, "limit      none");
    endline(f);
    putf(f, "purged     %s in %llu calls; the purger woke %llu times",
         human(p->d.purged, a, sizeof a), (unsigned long long)p->d.purges,
         (unsigned long long)p->d.purger_wakes);
    endline(f);
    endline(f);
    putf(f, "committed over time (%u points, %llu sample%s each):", p->d.npoints,
         (unsigned long long)p->d.stride, p->d.stride == 1 ? "" : "s");
    endline(f);
    chart(f, p, f->cols - 12 > 0 ? f->cols - 12 : 8);
    endline(f);
    if (p->d.sample_rate == 0 && p->d.nsites == 0) {
        putf(f, "allocation sites: not sampled (EBB_SAMPLE_RATE=0)");
        endline(f);
        return;
    }
    putf(f, "top allocation sites by live bytes (estimated from %llu samples, 1 per %s):",
         (unsigned long long)p->d.samples, human(p->d.sample_rate, a, sizeof a));
    endline(f);
    if (p->d.nsites == 0) {
        putf(f, "  none with live samples yet");
        endline(f);
    }
    for (unsigned i = 0; i < p->d.nsites; i++) {
        const ebb_status_site_t *s = &p->d.site[i];
        int n = 0;
        putf(f, "%3u. ~%-8s in ~%-9llu ", i + 1, human(s->live_bytes, a, sizeof a),
             (unsigned long long)s->live_blocks);
        for (const char *line = s->text; line && *line; n++) {
            if (n > 0) {
                endline(f);
                putf(f, "%29s", "");
            }
            put_cut(f, line, f->cols - 30 > 10 ? f->cols - 30 : 10);
            line = strchr(line, '\n');
            line = line ? line + 1 : NULL;
        }
        endline(f);
    }
}

/* One frame: the table, or the detail of `only`.  1 if `only` was found. */
static int draw(frame_t *f, long only)
{
    static proc_t procs[MAX_PROCS];
    size_t more, n = scan(procs, only ? 1 : MAX_PROCS, only, &more);
    f->len = 0;
    f->lines = 0;
    if (f->tty)
        put(f, "\033[H", 3);
    if (only && n == 0) {
        header(f, "");
        endline(f);
        putf(f, "no ebb process %ld of this user publishes a status page (gone, or not "
                "started with `ebb run` or EBB_TOP=1)", only);
        endline(f);
    } else if (only) {
        draw_detail(f, &procs[0]);
    } else {
        draw_table(f, procs, n, more);
    }
    if (f->tty)
        put(f, "\033[J", 3);
    return !only || n > 0;
}

/* ------------------------------------------------------------ terminal */

static struct termios saved_tio;
static int raw_on;
static volatile sig_atomic_t quit_asked, resized;

static void restore_terminal(void)
{
    if (!raw_on)
        return;
    raw_on = 0;
    static const char leave[] = "\033[?25h\033[?1049l";
    ssize_t w = write(STDOUT_FILENO, leave, sizeof leave - 1);
    (void)w;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
}

static void on_quit(int sig)
{
    (void)sig;
    quit_asked = 1;
}

static void on_resize(int sig)
{
    (void)sig;
    resized = 1;
}

static int enter_terminal(void)
{
    if (tcgetattr(STDIN_FILENO, &saved_tio) != 0)
        return -1;
    struct termios raw = saved_tio;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) != 0)
        return -1;
    raw_on = 1;
    atexit(restore_terminal);
    static const char enter[] = "\033[?1049h\033[?25l\033[H\033[2J";
    ssize_t w = write(STDOUT_FILENO, enter, sizeof enter - 1);
    (void)w;
    struct sigaction sa = { .sa_handler = on_quit };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_resize;
    sigaction(SIGWINCH, &sa, NULL);
    return 0;
}

static void terminal_size(frame_t *f)
{
    struct winsize ws;
    f->cols = 100;
    f->rows = 40;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
        f->cols = ws.ws_col;
        f->rows = ws.ws_row;
    } else {
        const char *c = getenv("COLUMNS");
        if (c && atoi(c) > 20)
            f->cols = atoi(c);
    }
    if (!f->tty)
        f->rows = 1 << 20; /* not a screen: nothing is cut */
}

static void write_frame(const frame_t *f)
{
    size_t at = 0;
    while (at < f->len) {
        ssize_t w = write(STDOUT_FILENO, f->buf + at, f->len - at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        at += (size_t)w;
    }
}

static void top_usage(FILE *to)
{
    fputs("usage: ebb top [--once] [PID]\n"
          "\n"
          "The ebb processes of this user, refreshed every second: live, committed, RSS,\n"
          "peak, limit and purged bytes, and memory over time; with PID, that process in\n"
          "detail, with its top allocation sites.  q (or ^C) quits.\n"
          "\n"
          "A process shows here if it runs under `ebb run`, or with EBB_TOP=1: it\n"
          "publishes a status page in /dev/shm (mode 0600, removed at its exit).\n"
          "Pages left by processes that were killed are removed.\n"
          "\n"
          "options:\n"
          "  --once        print one frame and exit (also without a terminal)\n"
          "  -h, --help    print this help\n",
          to);
}

int cmd_top(int argc, char **argv)
{
    static const struct option opts[] = {
        { "once", no_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int once = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': once = 1; break;
        case 'h': top_usage(stdout); return 0;
        default:
            cli_error("top: unknown option '%s' (ebb top --help)", argv[optind - 1]);
            return EBB_CLI_USAGE_ERROR;
        }
    }
    long only = 0;
    if (optind < argc) {
        char *end;
        only = strtol(argv[optind], &end, 10);
        if (*end != '\0' || only <= 0 || optind + 1 < argc) {
            cli_error("top: expected a process id, not '%s'", argv[optind]);
            return EBB_CLI_USAGE_ERROR;
        }
    }
    frame_t f = { 0 };
    f.tty = !once && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    if (f.tty && enter_terminal() != 0)
        f.tty = 0;
    if (!f.tty) {
        terminal_size(&f);
        int found = draw(&f, only);
        write_frame(&f);
        free(f.buf);
        return found ? 0 : 1;
    }
    while (!quit_asked) {
        terminal_size(&f);
        resized = 0;
        draw(&f, only);
        write_frame(&f);
        /* Until the next second, a key, or a signal (resize, quit). */
        long long next = wall_ms() + 1000;
        while (!quit_asked && !resized) {
            long long left = next - wall_ms();
            if (left <= 0)
                break;
            struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
            int r = poll(&pfd, 1, (int)left);
            if (r > 0) {
                char key[16];
                ssize_t n = read(STDIN_FILENO, key, sizeof key);
                if (n <= 0) {
                    quit_asked = 1; /* the terminal went away */
                    break;
                }
                for (ssize_t i = 0; i < n; i++)
                    if (key[i] == 'q' || key[i] == 'Q')
                        quit_asked = 1;
            } else if (r < 0 && errno != EINTR) {
                quit_asked = 1;
            }
        }
    }
    restore_terminal();
    free(f.buf);
    return 0;
}
