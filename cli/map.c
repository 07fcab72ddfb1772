/*
 * map.c -- `ebb map`: the address space of any process, drawn.
 *
 *   ebb map [--json] [-o FILE] PID
 *   ebb map [--json] [-o FILE] [--interval MS | --after SECONDS] -- program [args...]
 *
 * Any process, on ebb or not, 64- or 32-bit: its /proc/PID/smaps (or maps,
 * where smaps cannot be had) is read whole (src/os/linux_maps.c), analysed
 * (src/insight/addrspace.c: kinds, figures, free regions, grid) and written
 * as text or JSON (addrspace_out.c).  Those files are the library's and are
 * compiled into this tool as they are: the analysis is pure, so the tool
 * and the library (a report of its own process) share it.
 *
 * When a program is run.  A map is a moment, and the moment that matters
 * for the process that dies with memory free is the one where its address
 * space is tightest, which comes and goes (a big buffer mapped, then freed)
 * and may be just before it exits.  So by default the tool samples the
 * program's /proc/PID/maps every --interval ms (100; cheap: no page walk)
 * and, each time the largest free region is smaller than at any sample
 * before (or as small, with more mapped), reads smaps (the page walk that
 * gives RSS) and keeps that map; when the program exits it prints the map
 * kept.  In a 64-bit process the largest free region hardly moves (it is
 * the tens of TiB below the program), so there the tie-break decides: the
 * moment with the most mapped.  An exec starts a new address space, so the
 * first map after one replaces what was kept (`python3` may be a wrapper
 * script that execs the interpreter).  A peak shorter than the interval
 * may be missed; the samples cost the program little (reads of /proc by
 * another process: no ptrace, no stop; smaps walks the page tables, so it
 * is read only when a sample is the best so far).  --after SECONDS maps it once at that moment instead,
 * prints the map at once, and lets it run on.  The tool ignores ^C and ^\
 * (they reach the program from the terminal), so interrupting a server
 * prints the tightest map it had; its exit status is the program's, as
 * with `ebb run`.
 */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../src/insight/addrspace.h"
#include "../src/os/os.h"

/* Rows of the grid at most: one screen with the tables after it. */
#define MAP_ROWS 40
#define MAP_INTERVAL_MS 100

typedef struct {
    int json;
    long interval_ms;
    double after; /* seconds; < 0: sample until exit */
    FILE *to;     /* stdout, or the file of --output */
} map_options_t;

/* One reading of a process's map, with what it was read from. */
typedef struct {
    ebb__os_text_t text;
    int smaps;
    const char *file;
    char exe[4096];  /* its program (the link), "" if unknown */
    char comm[64];   /* its name, "" if unknown */
} snapshot_t;

/* A snapshot understood: mappings, analysis, grid (mallocs the tool's). */
typedef struct {
    ebb__as_mapping_t *maps;
    ebb__as_t as;
    ebb__as_row_t rows[MAP_ROWS];
    size_t nrows;
    uint64_t cell;
} analysis_t;

static void map_usage(FILE *to)
{
    fputs("usage: ebb map [--json] [-o FILE] PID\n"
          "       ebb map [--json] [-o FILE] [--interval MS | --after SECONDS] [--] program [args...]\n"
          "\n"
          "Draw the address space of a process (any process, on ebb or not, 64- or\n"
          "32-bit) from /proc/PID/smaps: a grid of the used span (a 32-bit space whole;\n"
          "a 64-bit one with its empty stretches folded), a character per kind of\n"
          "mapping (ebb arenas, heap, stacks, the program, shared libraries, other\n"
          "files, other anonymous, the kernel's); the largest free regions; RSS, PSS,\n"
          "dirty and swap per kind; and the named mappings.\n"
          "\n"
          "With a program: run it, read its map every --interval ms (default 100) and\n"
          "print, when it exits, the map of the moment its largest free region was\n"
          "smallest (the tightest address space seen); or, with --after SECONDS, its map\n"
          "at that moment, at once.  The exit status is the program's.\n"
          "\n"
          "options:\n"
          "  --json            the same as one JSON object (schema ebb.map/1)\n"
          "  -o, --output FILE write the map to FILE, not standard output (which the\n"
          "                    program it runs shares)\n"
          "  --interval MS     sample every MS ms (at least 1)\n"
          "  --after SECONDS   map the program once, SECONDS after it starts\n"
          "  -h, --help        print this help\n"
          "\n"
          "Reading another user's process needs root (or that user): the kernel lets only\n"
          "those who may trace a process read its smaps.  ebb's arenas are told by their\n"
          "4 MiB alignment, in processes that have libebb.so mapped.\n",
          to);
}

/* ------------------------------------------------------------ reading */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Say why pid's map cannot be read; the exit status. */
static int read_failed(long pid, const char *file, int err)
{
    if (err == ENOENT || err == ESRCH)
        cli_error("map: no process %ld", pid);
    else if (err == EACCES || err == EPERM)
        cli_error("map: not allowed to read the map of process %ld (/proc/%ld/%s: %s): the "
                  "kernel lets only those who may trace it (its user, or root) read it",
                  pid, pid, file, strerror(err));
    else
        cli_error("map: cannot read /proc/%ld/%s: %s", pid, file, strerror(err));
    return 1;
}

/* Read pid's smaps (want_smaps) or maps into s: 0, or -1 with errno. */
static int take(long pid, int want_smaps, snapshot_t *s)
{
    s->smaps = want_smaps;
    s->file = want_smaps ? "smaps" : "maps";
    s->exe[0] = s->comm[0] = '\0';
    if (ebb__os_proc_link(pid, "exe", s->exe, sizeof s->exe) < 0)
        s->exe[0] = '\0';
    ebb__os_text_t t;
    if (ebb__os_proc_read(pid, "comm", &t) == 0) {
        snprintf(s->comm, sizeof s->comm, "%.*s", (int)strcspn(t.text, "\n"), t.text);
        ebb__os_text_free(&t);
    }
    if (ebb__os_proc_read(pid, s->file, &s->text) == 0)
        return 0;
    int err = errno;
    if (want_smaps && err != EACCES && err != EPERM && ebb__os_proc_alive(pid)) {
        /* a kernel without smaps (no CONFIG_PROC_PAGE_MONITOR) */
        s->smaps = 0;
        s->file = "maps";
        if (ebb__os_proc_read(pid, "maps", &s->text) == 0)
            return 0;
        err = errno;
    }
    errno = err;
    return -1;
}

static void analysis_free(analysis_t *a)
{
    free(a->maps);
    a->maps = NULL;
}

/* Parse and analyse s; 0, or -1 after saying what is wrong. */
static int analyse(long pid, const snapshot_t *s, analysis_t *a)
{
    size_t cap = ebb__as_max_mappings(s->text.text, s->text.len), bad;
    a->maps = calloc(cap, sizeof *a->maps);
    if (a->maps == NULL) {
        cli_error("map: out of memory for %zu mappings", cap);
        return -1;
    }
    long n = ebb__as_parse(s->text.text, s->text.len, a->maps, cap, &bad);
    if (n < 0) {
        cli_error("map: line %zu of /proc/%ld/%s is not what the kernel writes", bad, pid,
                  s->file);
        analysis_free(a);
        return -1;
    }
    ebb__as_input_t in = { .low = ebb__os_mmap_min_addr(), .exe = s->exe[0] ? s->exe : NULL };
    ebb__as_analyse(&a->as, a->maps, (size_t)n, s->smaps, &in);
    a->nrows = ebb__as_grid(&a->as, a->rows, MAP_ROWS, &a->cell);
    return 0;
}

static void put_stdout(void *ctx, const char *s, size_t n)
{
    fwrite(s, 1, n, ctx);
}

static void print_map(const map_options_t *o, long pid, const snapshot_t *s,
                      const analysis_t *a, const char *when)
{
    ebb__as_about_t about = { pid, s->comm[0] ? s->comm : NULL, when };
    ebb__as_out_t out = { put_stdout, o->to };
    if (o->json)
        ebb__as_write_json(&a->as, a->rows, a->nrows, a->cell, &about, &out);
    else
        ebb__as_write_text(&a->as, a->rows, a->nrows, a->cell, &about, &out);
    fflush(o->to);
}

/* ---------------------------------------------------------- ebb map PID */

static int map_pid(const map_options_t *o, long pid)
{
    snapshot_t s;
    if (take(pid, 1, &s) != 0)
        return read_failed(pid, "smaps", errno);
    int alive = ebb__os_proc_alive(pid);
    if (!alive) {
        cli_error(s.text.len ? "map: process %ld exited while its map was being read"
                             : "map: process %ld has exited (nothing is left to map)",
                  pid);
        ebb__os_text_free(&s.text);
        return 1;
    }
    analysis_t a;
    int rc = analyse(pid, &s, &a);
    if (rc == 0) {
        print_map(o, pid, &s, &a, NULL);
        analysis_free(&a);
    }
    ebb__os_text_free(&s.text);
    return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------- ebb map -- program */

/* Start argv with its exec's outcome known: the pid, or -1 after saying
 * why it could not start (the error travels back through a pipe that
 * exec closes). */
static long start_program(char **argv)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        cli_error("map: pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        cli_error("map: fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        signal(SIGINT, SIG_DFL);
        signal(SIGQUIT, SIG_DFL);
        execvp(argv[0], argv);
        int err = errno;
        ssize_t w = write(fds[1], &err, sizeof err);
        (void)w;
        _exit(127);
    }
    close(fds[1]);
    int err = 0;
    ssize_t got;
    while ((got = read(fds[0], &err, sizeof err)) < 0 && errno == EINTR)
        ;
    close(fds[0]);
    if (got == (ssize_t)sizeof err) {
        cli_error("map: cannot run %s: %s", argv[0], strerror(err));
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

/* The best map so far: tightest address space, then most mapped, of the
 * program image the process runs now (an exec starts a new address space,
 * laid out afresh: maps from before it do not compare, so the first map of
 * a new image replaces them; a wrapper script or launcher that execs the
 * real program is common). */
typedef struct {
    snapshot_t snap;
    int have;
    uint64_t largest, mapped;
    uint64_t image; /* where the program's image starts (0 unknown) */
    double at;
} best_t;

/* Where the program's own file is mapped lowest: with its path, what tells
 * one exec's address space from the next. */
static uint64_t image_base(const ebb__as_t *as)
{
    for (size_t i = 0; i < as->n; i++)
        if (as->maps[i].kind == EBB__AS_PROGRAM)
            return as->maps[i].start;
    return 0;
}

static uint64_t largest_free(const ebb__as_t *as)
{
    return as->nlargest ? as->largest[0].end - as->largest[0].start : 0;
}

/* Read pid's maps; if tighter than best, read smaps and keep it. */
static void sample(long pid, double t0, best_t *best)
{
    snapshot_t quick;
    if (take(pid, 0, &quick) != 0)
        return;
    analysis_t a;
    int ok = quick.text.len > 0 && analyse(pid, &quick, &a) == 0;
    ebb__os_text_free(&quick.text);
    if (!ok)
        return;
    uint64_t largest = largest_free(&a.as), mapped = a.as.user.size, image = image_base(&a.as);
    analysis_free(&a);
    int same_image = best->have && image == best->image && !strcmp(quick.exe, best->snap.exe);
    if (same_image &&
        (largest > best->largest || (largest == best->largest && mapped <= best->mapped)))
        return;
    snapshot_t full;
    if (take(pid, 1, &full) != 0)
        return;
    if (full.text.len == 0 || !ebb__os_proc_alive(pid)) {
        ebb__os_text_free(&full.text); /* exited while read: perhaps torn */
        return;
    }
    if (best->have)
        ebb__os_text_free(&best->snap.text);
    *best = (best_t){ full, 1, largest, mapped, image, now_seconds() - t0 };
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The program's exit status as the tool's, said in words if a signal. */
static int program_status(const char *prog, int status)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        cli_error("%s was killed by signal %d (%s)", prog, sig, strsignal(sig));
        return 128 + sig;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* 1 once the program has exited (its status in *status). */
static int exited(long pid, int *status)
{
    pid_t r;
    while ((r = waitpid((pid_t)pid, status, WNOHANG)) < 0 && errno == EINTR)
        ;
    return r == (pid_t)pid || r < 0;
}

static void print_best(const map_options_t *o, long pid, const best_t *best, const char *how)
{
    analysis_t a;
    if (analyse(pid, &best->snap, &a) != 0)
        return;
    char when[160];
    snprintf(when, sizeof when, "%.2f s after it started%s", best->at, how);
    print_map(o, pid, &best->snap, &a, when);
    analysis_free(&a);
}

static int map_program(const map_options_t *o, char **argv)
{
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    long pid = start_program(argv);
    if (pid < 0)
        return 127;
    double t0 = now_seconds();
    best_t best = { .have = 0 };
    int status = 0, done = 0;
    char how[96];
    if (o->after >= 0) {
        while (!(done = exited(pid, &status)) && now_seconds() - t0 < o->after)
            sleep_ms(10);
        if (!done)
            sample(pid, t0, &best);
        snprintf(how, sizeof how, " (--after %g)", o->after);
        if (best.have)
            print_best(o, pid, &best, how);
    } else {
        while (!(done = exited(pid, &status))) {
            sample(pid, t0, &best);
            sleep_ms(o->interval_ms);
        }
        snprintf(how, sizeof how,
                 ", when its largest free region was smallest (sampled every %ld ms)",
                 o->interval_ms);
        if (best.have)
            print_best(o, pid, &best, how);
    }
    if (!best.have)
        cli_error("map: %s exited before it could be mapped", argv[0]);
    if (!done)
        while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR)
            ;
    if (best.have)
        ebb__os_text_free(&best.snap.text);
    int rc = program_status(argv[0], status);
    return rc == 0 && !best.have ? 1 : rc;
}

/* ------------------------------------------------------------ options */

static int parse_pid(const char *s, long *pid)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v <= 0)
        return 0;
    *pid = v;
    return 1;
}

int cmd_map(int argc, char **argv)
{
    map_options_t o = { 0, MAP_INTERVAL_MS, -1, stdout };
    const char *output = NULL;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        char *end;
        if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            map_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            o.json = 1;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && i + 1 < argc) {
            output = argv[++i];
        } else if (!strcmp(a, "--interval") && i + 1 < argc) {
            o.interval_ms = strtol(argv[++i], &end, 10);
            if (*end || o.interval_ms < 1 || o.interval_ms > 3600000) {
                cli_error("map: --interval %s: expected milliseconds, 1 or more", argv[i]);
                return EBB_CLI_USAGE_ERROR;
            }
        } else if (!strcmp(a, "--after") && i + 1 < argc) {
            o.after = strtod(argv[++i], &end);
            if (*end || end == argv[i] || !(o.after >= 0 && o.after < 1e7)) {
                cli_error("map: --after %s: expected seconds, 0 or more", argv[i]);
                return EBB_CLI_USAGE_ERROR;
            }
        } else if (a[0] == '-') {
            cli_error("map: unknown option '%s' (ebb map --help)", a);
            return EBB_CLI_USAGE_ERROR;
        } else {
            break;
        }
    }
    if (i >= argc) {
        map_usage(stderr);
        return EBB_CLI_USAGE_ERROR;
    }
    long pid;
    int dashes = i > 1 && !strcmp(argv[i - 1], "--");
    int by_pid = !dashes && i == argc - 1 && parse_pid(argv[i], &pid);
    if (by_pid && o.after >= 0) {
        cli_error("map: --after is for a program it runs, not a PID");
        return EBB_CLI_USAGE_ERROR;
    }
    if (output && (o.to = fopen(output, "w")) == NULL) {
        cli_error("map: --output %s: %s", output, strerror(errno));
        return 1;
    }
    int rc = by_pid ? map_pid(&o, pid) : map_program(&o, argv + i);
    if (output && fclose(o.to) != 0) {
        cli_error("map: --output %s: %s", output, strerror(errno));
        rc = rc ? rc : 1;
    }
    return rc;
}
