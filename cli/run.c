/*
 * run.c -- `ebb run`: start a program with ebb as its memory manager.
 *
 * The program gets libebb.so preloaded (so its malloc, and every library's
 * and C extension's, is ebb's: one heap for the whole process) and
 * EBB_PYTHON=1, which makes ebb, if the program is a CPython interpreter,
 * the allocator of all three of CPython's domains before the interpreter
 * starts (src/front/cpython.c).  Children inherit both unless --no-children, in
 * which case ebb removes them from the environment as it starts.
 *
 * The tool waits for the program and exits as it did: with its exit status,
 * or, if a signal killed it, says so in words and exits with 128 + the
 * signal's number, as a shell reports it.  Terminal signals (^C, ^\) reach
 * the program from the terminal directly, so the tool ignores them while it
 * waits; SIGTERM, SIGHUP and SIGUSR1/2 sent to the tool are passed on.
 *
 * The black box.  The program (and each process it starts) keeps its last
 * state in a file of a directory the tool makes for the run
 * (EBB_BLACKBOX=DIR/box.%p, src/insight/blackbox.c).  If the program dies of
 * SIGKILL, which is what the kernel's out-of-memory killer sends and which
 * no process can catch, the tool prints what the box says ebb held at that
 * moment.  The directory goes when the tool ends, also when what it says
 * on stderr cannot be written (SIGPIPE is ignored in the tool, not in the
 * program).  --no-blackbox: none.
 *
 * Report files.  --report FILE (repeatable) and --folded FILE name files the
 * library rewrites with the latest report (EBB_REPORT_FILE,
 * EBB_REPORT_FOLDED; src/insight/report_files.c), in the program only
 * (EBB_REPORT_PID, set in the child before exec).  A program that dies
 * without writing them, by a signal or _exit, leaves its black box, and the
 * tool writes them from it (cli/report.c).  With --no-blackbox there is
 * nothing to write them from after a kill.
 *
 * The status page.  The program (and each process it starts) publishes
 * what it holds for `ebb top` (EBB_TOP=1, src/insight/status.c): a page in
 * memory (/dev/shm), mode 0600, that each process removes when it exits.
 * When the program ends, the tool removes the pages no process holds any
 * more (of processes that were killed or left through _exit).  --no-top:
 * none.
 *
 * The crash note.  The program gets EBB_CRASH_NOTE=1 (unless the user set
 * it): if it dies of SIGSEGV or SIGBUS right after ebb refused it memory,
 * ebb says so in one line on stderr, before the tool's "killed by signal"
 * (src/insight/crash.c).
 *
 * --limit and --purge-delay are checked by the rules the library reads
 * EBB_LIMIT and EBB_PURGE_DELAY_MS with (src/base/size.h), so a value every
 * child would refuse is refused here, once.
 */
#define _GNU_SOURCE
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void run_usage(FILE *to)
{
    fputs("usage: ebb run [options] [--] program [args...]\n"
          "\n"
          "Run program with ebb as its memory manager: libebb.so is preloaded, so\n"
          "the program's malloc is ebb's, and a Python program's objects are\n"
          "allocated by ebb too (all three CPython allocator domains).\n"
          "\n"
          "options:\n"
          "  --no-children      programs it starts run without ebb\n"
          "  --no-python        leave CPython's own object allocator (pymalloc) in place\n"
          "  --purge-delay MS   give free memory back after MS ms unused (EBB_PURGE_DELAY_MS;\n"
          "                     0 at once, -1 never)\n"
          "  --limit SIZE       refuse to commit more than SIZE (e.g. 512M, 2G): allocations\n"
          "                     past it fail cleanly (EBB_LIMIT); N% or auto: that share\n"
          "                     of the effective limit (cgroup, rlimit, memory + swap,\n"
          "                     less what ebb does not manage)\n"
          "  --stats            print ebb's statistics when the program exits (EBB_VERBOSE)\n"
          "  --native           text reports show every site's native frames, not only its\n"
          "                     innermost frames on one line (EBB_REPORT_NATIVE)\n"
          "  --no-blackbox      keep no black box (the last state, printed if the program\n"
          "                     is killed by SIGKILL, e.g. by the out-of-memory killer)\n"
          "  --report FILE      write the report to FILE at exit, on the first allocation\n"
          "                     refused for want of memory, or (from the black box) after\n"
          "                     a kill: FILE.html a page with plots and a flame graph,\n"
          "                     FILE.json the JSON, any other name the text; repeatable\n"
          "                     (EBB_REPORT_FILE)\n"
          "  --folded FILE      the peak's stacks, folded (flamegraph.pl, speedscope), with\n"
          "                     the report files (EBB_REPORT_FOLDED)\n"
          "  --no-top           publish no status page for `ebb top` (EBB_TOP)\n"
          "  -h, --help         print this help\n"
          "\n"
          "The exit status is the program's; if a signal killed it, ebb says which and\n"
          "exits with 128 + its number.  libebb.so is found through EBB_LIB, beside this\n"
          "executable, or in ../lib.\n"
          "\n"
          "environment: libebb.so reads these at start-up, in the program and its\n"
          "children (`ebb options --markdown`: as a table):\n",
          to);
    cli_print_options(to);
}

/* Prepend lib to LD_PRELOAD, unless it is there already. */
static int preload(const char *lib)
{
    const char *old = getenv("LD_PRELOAD");
    if (old == NULL || *old == '\0')
        return setenv("LD_PRELOAD", lib, 1);
    if (strstr(old, lib) != NULL)
        return 0;
    size_t n = strlen(lib) + strlen(old) + 2;
    char *v = malloc(n);
    if (v == NULL)
        return -1;
    snprintf(v, n, "%s:%s", lib, old);
    int rc = setenv("LD_PRELOAD", v, 1);
    free(v);
    return rc;
}

static pid_t child;
static const int forwarded[] = { SIGTERM, SIGHUP, SIGUSR1, SIGUSR2 };
#define N_FORWARDED (sizeof forwarded / sizeof forwarded[0])

static void pass_on(int sig)
{
    if (child > 0)
        kill(child, sig);
}

static void set_forwarded(void (*handler)(int))
{
    struct sigaction sa = { .sa_handler = handler };
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaction(forwarded[i], &sa, NULL);
}

/* A signal sent to the tool while it starts the program must not be lost
 * (nor kill the tool, whose handlers come only after the fork, so that the
 * program keeps the dispositions the tool was given, an ignored SIGHUP
 * under nohup say): the forwarded signals are blocked from before the fork
 * until the parent's handlers are in place, so one that arrives meanwhile
 * waits and is then passed on.  The child unblocks them before it execs. */
static void block_forwarded(sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaddset(&set, forwarded[i]);
    sigprocmask(SIG_BLOCK, &set, old);
}

static void signals_while_waiting(const sigset_t *old)
{
    struct sigaction ignore = { .sa_handler = SIG_IGN };
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGINT, &ignore, NULL);
    sigaction(SIGQUIT, &ignore, NULL);
    set_forwarded(pass_on);
    sigprocmask(SIG_SETMASK, old, NULL);
}

/* The tool's own SIGPIPE disposition, which the program gets back. */
static struct sigaction tool_pipe;

/* The tool writes to stderr after the program ends (how it died, its
 * black box): if that is a pipe nobody reads any more, SIGPIPE would kill
 * the tool before it removes its run directory.  So the tool ignores it
 * (a failed write is then only a failed write) from the moment it makes
 * the directory; the program gets the disposition the tool was given. */
static void ignore_sigpipe(void)
{
    struct sigaction ignore = { .sa_handler = SIG_IGN };
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, &tool_pipe);
}

/* ------------------------------------------------------------ black box */

static char run_dir[PATH_MAX];

/* A private directory for the run's black boxes; 0 if none can be made
 * (the run goes on without). */
static int make_run_dir(void)
{
    const char *base = getenv("XDG_RUNTIME_DIR");
    if (base == NULL || *base == '\0' || access(base, W_OK) != 0)
        base = getenv("TMPDIR");
    if (base == NULL || *base == '\0' || access(base, W_OK) != 0)
        base = "/tmp";
    if ((size_t)snprintf(run_dir, sizeof run_dir, "%s/ebb-run.XXXXXX", base) >= sizeof run_dir ||
        mkdtemp(run_dir) == NULL) {
        run_dir[0] = '\0';
        return 0;
    }
    char box[PATH_MAX + 16];
    snprintf(box, sizeof box, "%s/box.%%p", run_dir);
    return setenv("EBB_BLACKBOX", box, 1) == 0;
}

static void remove_run_dir(void)
{
    if (run_dir[0] == '\0')
        return;
    DIR *d = opendir(run_dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "box.", 4) == 0) {
            char path[PATH_MAX + 256];
            snprintf(path, sizeof path, "%s/%s", run_dir, e->d_name);
            unlink(path);
        }
    }
    if (d)
        closedir(d);
    rmdir(run_dir);
    run_dir[0] = '\0';
}

static void summarize_box(const char *prog)
{
    if (run_dir[0] == '\0')
        return;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/box.%ld", run_dir, (long)child);
    box_summary(path, prog);
}

/* --report and --folded: the files, and the value of EBB_REPORT_FILE. */
static char *report_files[64];
static size_t nreport_files;
static const char *folded_file;

static int add_report_file(const char *path)
{
    if (strchr(path, ':') != NULL || *path == '\0') {
        cli_error("run: --report %s: a report file's name may not %s", path,
                  *path ? "contain ':' (EBB_REPORT_FILE separates names with it)" : "be empty");
        return 0;
    }
    if (nreport_files == sizeof report_files / sizeof report_files[0]) {
        cli_error("run: at most %zu --report files", nreport_files);
        return 0;
    }
    report_files[nreport_files++] = (char *)path;
    return 1;
}

static int set_report_env(void)
{
    size_t n = 1;
    for (size_t i = 0; i < nreport_files; i++)
        n += strlen(report_files[i]) + 1;
    char *v = calloc(n, 1);
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < nreport_files; i++) {
        if (i)
            strcat(v, ":");
        strcat(v, report_files[i]);
    }
    int rc = nreport_files ? setenv("EBB_REPORT_FILE", v, 1) : unsetenv("EBB_REPORT_FILE");
    free(v);
    if (rc == 0)
        rc = folded_file ? setenv("EBB_REPORT_FOLDED", folded_file, 1)
                         : unsetenv("EBB_REPORT_FOLDED");
    return rc;
}

/* The program ended without writing its report files (a signal killed it,
 * or it left by _exit: its box is still there, which a normal exit
 * removes): the tool writes them from the black box. */
static void reports_after_death(int status)
{
    if ((nreport_files == 0 && folded_file == NULL) || run_dir[0] == '\0')
        return;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/box.%ld", run_dir, (long)child);
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    if (!sig && access(path, F_OK) != 0)
        return; /* a normal exit: the library wrote them */
    cli_reports_from_box(path, report_files, nreport_files, folded_file, sig,
                         WIFEXITED(status) ? WEXITSTATUS(status) : 0);
}

/* The program's fate as the tool's exit status, in words if a signal. */
static int report_status(const char *prog, int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *abbrev = sigabbrev_np(sig);
        cli_error("%s was killed by signal %d (%s%s: %s)%s", prog, sig, abbrev ? "SIG" : "",
                  abbrev ? abbrev : "?", strsignal(sig), WCOREDUMP(status) ? ", core dumped" : "");
        if (sig == SIGKILL) {
            fprintf(stderr, "ebb: SIGKILL is what the kernel's out-of-memory killer sends\n");
            summarize_box(prog);
        }
        return 128 + sig;
    }
    return 1;
}

int cmd_run(int argc, char **argv)
{
    enum { OPT_NO_CHILDREN = 256, OPT_NO_PYTHON, OPT_PURGE_DELAY, OPT_LIMIT, OPT_STATS,
           OPT_NO_BLACKBOX, OPT_NATIVE, OPT_REPORT, OPT_FOLDED, OPT_NO_TOP };
    static const struct option opts[] = {
        { "no-children", no_argument, NULL, OPT_NO_CHILDREN },
        { "no-python", no_argument, NULL, OPT_NO_PYTHON },
        { "purge-delay", required_argument, NULL, OPT_PURGE_DELAY },
        { "limit", required_argument, NULL, OPT_LIMIT },
        { "stats", no_argument, NULL, OPT_STATS },
        { "no-blackbox", no_argument, NULL, OPT_NO_BLACKBOX },
        { "native", no_argument, NULL, OPT_NATIVE },
        { "report", required_argument, NULL, OPT_REPORT },
        { "folded", required_argument, NULL, OPT_FOLDED },
        { "no-top", no_argument, NULL, OPT_NO_TOP },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int no_children = 0, python = 1, blackbox = 1, top = 1, c;
    const char *purge_delay = NULL, *limit = NULL;
    optind = 1;
    opterr = 0;
    /* ':' first (after '+'): a missing value is ':', not an unknown '?'. */
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_NO_CHILDREN: no_children = 1; break;
        case OPT_NO_PYTHON: python = 0; break;
        case OPT_PURGE_DELAY:
            if (!cli_check_purge_delay(optarg))
                return EBB_CLI_USAGE_ERROR;
            purge_delay = optarg;
            break;
        case OPT_LIMIT:
            if (!cli_check_limit(optarg))
                return EBB_CLI_USAGE_ERROR;
            limit = optarg;
            break;
        case OPT_STATS: setenv("EBB_VERBOSE", "1", 1); break;
        case OPT_NO_BLACKBOX: blackbox = 0; break;
        case OPT_NATIVE: setenv("EBB_REPORT_NATIVE", "1", 1); break;
        case OPT_REPORT:
            if (!add_report_file(optarg))
                return EBB_CLI_USAGE_ERROR;
            break;
        case OPT_FOLDED:
            if (*optarg == '\0') {
                cli_error("run: --folded needs a file name");
                return EBB_CLI_USAGE_ERROR;
            }
            folded_file = optarg;
            break;
        case OPT_NO_TOP: top = 0; break;
        case 'h': run_usage(stdout); return 0;
        case ':':
            cli_error("run: option '%s' needs a value (ebb run --help)", argv[optind - 1]);
            return EBB_CLI_USAGE_ERROR;
        default:
            cli_error("run: unknown option '%s' (ebb run --help lists them)", argv[optind - 1]);
            return EBB_CLI_USAGE_ERROR;
        }
    }
    if (optind >= argc) {
        cli_error("run: no program given (usage: ebb run [options] [--] program [args...])");
        return EBB_CLI_USAGE_ERROR;
    }
    char lib[PATH_MAX];
    if (!cli_find_library(lib, sizeof lib)) {
        cli_error("cannot find libebb.so (beside this executable, in ../lib, or through EBB_LIB)");
        return EBB_CLI_USAGE_ERROR;
    }
    if (preload(lib) != 0) {
        cli_error("cannot set LD_PRELOAD: %s", strerror(errno));
        return 1;
    }
    /* A fault right after a refused allocation is named (the user's own
     * EBB_CRASH_NOTE=0 wins). */
    setenv("EBB_CRASH_NOTE", "1", 0);
    if (python)
        setenv("EBB_PYTHON", "1", 1);
    else
        unsetenv("EBB_PYTHON");
    if (no_children)
        setenv("EBB_NO_CHILDREN", "1", 1);
    if (purge_delay)
        setenv("EBB_PURGE_DELAY_MS", purge_delay, 1);
    if (limit)
        setenv("EBB_LIMIT", limit, 1);
    if ((nreport_files || folded_file) && set_report_env() != 0) {
        cli_error("cannot set EBB_REPORT_FILE: %s", strerror(errno));
        return 1;
    }
    unsetenv("EBB_REPORT_PID");
    if (top)
        setenv("EBB_TOP", "1", 1);
    else
        unsetenv("EBB_TOP");

    ignore_sigpipe();
    if (!blackbox)
        unsetenv("EBB_BLACKBOX");
    else if (!make_run_dir())
        cli_error("cannot make a directory for the black box (%s); running without",
                  strerror(errno));

    char **prog = argv + optind;
    fflush(NULL);
    sigset_t old_mask;
    block_forwarded(&old_mask);
    child = fork();
    if (child < 0) {
        cli_error("cannot start %s: %s", prog[0], strerror(errno));
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        remove_run_dir();
        return 1;
    }
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        sigaction(SIGPIPE, &tool_pipe, NULL);
        /* The report files are this process's (exec keeps the pid): the
         * programs it starts inherit the variables, not the files. */
        if (nreport_files || folded_file) {
            char pid[24];
            snprintf(pid, sizeof pid, "%ld", (long)getpid());
            setenv("EBB_REPORT_PID", pid, 1);
        }
        execvp(prog[0], prog);
        int err = errno;
        cli_error("cannot run '%s': %s", prog[0], strerror(err));
        _exit(err == ENOENT ? 127 : 126); /* the shell's codes */
    }
    signals_while_waiting(&old_mask);
    int status;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) {
            cli_error("waiting for %s: %s", prog[0], strerror(errno));
            remove_run_dir();
            return 1;
        }
    }
    int rc = report_status(prog[0], status);
    reports_after_death(status);
    remove_run_dir();
    if (top)
        top_sweep_stale();
    return rc;
}
