/*
 * init.c -- options, start-up, and fork.
 *
 * ebb initialises on the first allocation, which may come from the dynamic
 * loader or a constructor before main: nothing here allocates, reads the
 * environment through stdio, or depends on the C library being set up.  A
 * constructor also initialises eagerly and registers the fork handlers.
 *
 * Options (all read once, at start-up):
 *   EBB_HEAPS=N          shared heaps (default: CPUs, at most 64)
 *   EBB_TCACHE=0|1       per-thread caches (default 1)
 *   EBB_LARGE_CACHE=SIZE bytes of freed large blocks kept (default 64M; K/M/G)
 *   EBB_ON_ERROR=warn|abort|ignore   what a detected misuse does
 *   EBB_VERBOSE=0|1      print the statistics at exit
 *   EBB_PURGE_DELAY_MS=N give free memory back after N ms unused (default
 *                        100; 0 = at once, -1 = never: only ebb_collect)
 *   EBB_PURGE_MODE=dontneed|free   how pages are given back: MADV_DONTNEED
 *                        (default; RSS drops at once) or MADV_FREE (cheaper;
 *                        the kernel takes the pages when it needs memory)
 *   EBB_LIMIT=SIZE|N%|auto   most bytes ebb commits (limit.c; default none):
 *                        a size, or N% of the effective limit (auto = 100%),
 *                        derived here, once, from the cgroup limits, the
 *                        rlimits and memory plus swap, less the memory ebb
 *                        does not manage (so ebb's first allocation reads a
 *                        few /proc and cgroup files, without allocating)
 *   EBB_LIMIT_SOFT=N%    the soft level: pressure callbacks past N% of the
 *                        limit (default 90; 100: only at the limit)
 *   EBB_LIMIT_PSI=0|1    while a limit is set, listen to the kernel's memory
 *                        pressure (PSI, cgroup v2 memory.events: pressure.c);
 *                        default: if the kernel offers it
 *   EBB_REPORT=PATH|stderr|off   where automatic reports go (report.c;
 *                        default stderr); EBB_REPORT_FORMAT=text|json;
 *                        EBB_REPORT_SIGNAL=USR1|USR2|N: a report on demand
 *   EBB_BLACKBOX=PATH    keep the last state in PATH ("%p": the pid), for
 *                        after a SIGKILL (blackbox.c; `ebb run` sets it)
 *   EBB_SAMPLE_RATE=SIZE mean bytes between heap-profile samples (sample.c
 *                        reads it; default 512K, 0 off)
 *   EBB_PYTHON=1, EBB_NO_CHILDREN=1   set by `ebb run` (cpython.c)
 *
 * Fork: the prepare handler takes every lock (registry, each bin, arenas,
 * large blocks), so the child inherits consistent structures; the child
 * resets the locks and gives back the blocks cached by threads it does not
 * have.
 */
#include "internal.h"

#include <string.h>

#include "base/size.h"

EBB_HIDDEN ebb__state_t ebb__g = { .init_lock = EBB_LOCK_INIT };

static void bad_option(const char *name, const char *value)
{
    ebb__diag("ebb: ignoring %s=%s (not a valid value)\n", name, value);
}

static int read_flag(const char *name, int dflt)
{
    char v[64];
    if (!ebb__os_getenv(name, v, sizeof v))
        return dflt;
    if (!strcmp(v, "1") || !strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true"))
        return 1;
    if (!strcmp(v, "0") || !strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false"))
        return 0;
    bad_option(name, v);
    return dflt;
}

/* EBB_REPORT=PATH|stderr|off, EBB_REPORT_FORMAT=text|json,
 * EBB_REPORT_SIGNAL=NAME|N (report.c), EBB_BLACKBOX=PATH (blackbox.c). */
static void read_report_options(ebb__options_t *o)
{
    char v[sizeof o->report_path];
    o->report_off = 0;
    o->report_path[0] = '\0';
    o->report_json = 0;
    if (ebb__os_getenv("EBB_REPORT", v, sizeof v)) {
        size_t len = strlen(v);
        if (!strcmp(v, "off") || !strcmp(v, "0"))
            o->report_off = 1;
        else if (len > 0 && strcmp(v, "stderr") && len < sizeof o->report_path)
            memcpy(o->report_path, v, len + 1);
        o->report_json = len > 5 && !strcmp(v + len - 5, ".json");
    }
    if (ebb__os_getenv("EBB_REPORT_FORMAT", v, sizeof v)) {
        if (!strcmp(v, "json"))
            o->report_json = 1;
        else if (!strcmp(v, "text"))
            o->report_json = 0;
        else
            bad_option("EBB_REPORT_FORMAT", v);
    }
    o->blackbox_path[0] = '\0';
    if (ebb__os_getenv("EBB_BLACKBOX", v, sizeof v) && strcmp(v, "off") && strcmp(v, "0"))
        memcpy(o->blackbox_path, v, strlen(v) + 1);
    o->report_signal = 0;
    if (ebb__os_getenv("EBB_REPORT_SIGNAL", v, sizeof v)) {
        o->report_signal = ebb__os_signal_number(v);
        if (o->report_signal == 0)
            bad_option("EBB_REPORT_SIGNAL", v);
    }
}

void ebb__options_read(ebb__options_t *o)
{
    read_report_options(o);
    char v[64];
    size_t n;
    o->heaps = 0;
    if (ebb__os_getenv("EBB_HEAPS", v, sizeof v)) {
        if (ebb__parse_size(v, &n) && n >= 1 && n <= EBB_MAX_HEAPS)
            o->heaps = (unsigned)n;
        else
            bad_option("EBB_HEAPS", v);
    }
    o->tcache = read_flag("EBB_TCACHE", 1);
    o->large_cache = EBB_LARGE_CACHE_BYTES;
    if (ebb__os_getenv("EBB_LARGE_CACHE", v, sizeof v)) {
        if (ebb__parse_size(v, &n))
            o->large_cache = n;
        else
            bad_option("EBB_LARGE_CACHE", v);
    }
    o->on_error = EBB_ON_ERROR_WARN;
    if (ebb__os_getenv("EBB_ON_ERROR", v, sizeof v)) {
        if (!strcmp(v, "warn"))
            o->on_error = EBB_ON_ERROR_WARN;
        else if (!strcmp(v, "abort"))
            o->on_error = EBB_ON_ERROR_ABORT;
        else if (!strcmp(v, "ignore"))
            o->on_error = EBB_ON_ERROR_IGNORE;
        else
            bad_option("EBB_ON_ERROR", v);
    }
    o->verbose = read_flag("EBB_VERBOSE", 0);
    o->purge_delay = EBB_PURGE_DELAY_MS;
    if (ebb__os_getenv("EBB_PURGE_DELAY_MS", v, sizeof v)) {
        if (!strcmp(v, "-1"))
            o->purge_delay = -1;
        else if (ebb__parse_size(v, &n) && n <= 24u * 3600 * 1000) /* a day at most */
            o->purge_delay = (long)n;
        else
            bad_option("EBB_PURGE_DELAY_MS", v);
    }
    o->limit = 0;
    o->limit_percent = 0;
    if (ebb__os_getenv("EBB_LIMIT", v, sizeof v) &&
        !ebb__parse_limit(v, &o->limit, &o->limit_percent))
        bad_option("EBB_LIMIT", v);
    o->limit_soft = EBB_LIMIT_SOFT_PERCENT;
    if (ebb__os_getenv("EBB_LIMIT_SOFT", v, sizeof v) && !ebb__parse_percent(v, &o->limit_soft))
        bad_option("EBB_LIMIT_SOFT", v);
    /* -1 unset: listen if the kernel offers PSI, and say nothing if not. */
    o->limit_psi = read_flag("EBB_LIMIT_PSI", -1);
    o->purge_lazy = 0;
    if (ebb__os_getenv("EBB_PURGE_MODE", v, sizeof v)) {
        if (!strcmp(v, "free"))
            o->purge_lazy = 1;
        else if (strcmp(v, "dontneed"))
            bad_option("EBB_PURGE_MODE", v);
    }
}

void ebb__init_slow(void)
{
    ebb__lock(&ebb__g.init_lock);
    if (!atomic_load_explicit(&ebb__g.ready, memory_order_relaxed)) {
        ebb__sizeclass_init();
        ebb__options_read(&ebb__g.opt);
        unsigned cpus = ebb__os_cpu_count();
        unsigned heaps = ebb__g.opt.heaps ? ebb__g.opt.heaps : cpus;
        ebb__g.nheaps = heaps > EBB_MAX_HEAPS ? EBB_MAX_HEAPS : heaps;
        for (unsigned i = 0; i < EBB_MAX_HEAPS; i++)
            ebb__g.heaps[i].index = i;
        ebb__limit_start(&ebb__g.opt);
        ebb__blackbox_setup();
        ebb__sample_init();
        atomic_store_explicit(&ebb__g.ready, 1, memory_order_release);
    }
    ebb__unlock(&ebb__g.init_lock);
}

/* ----------------------------------------------------------------- fork */

/* Every lock, in the documented order (fork, ebb_check). */
void ebb__lock_everything(void)
{
    ebb__lock(&ebb__g.purge_lock);
    ebb__lock(&ebb__g.registry_lock);
    for (unsigned h = 0; h < ebb__g.nheaps; h++)
        for (unsigned c = 0; c < EBB_CLASSES; c++)
            ebb__lock(&ebb__g.heaps[h].bin[c].lock);
    ebb__lock(&ebb__g.arena_lock);
    ebb__large_lock_all();
    ebb__limit_lock_all();
    ebb__sample_lock_all();
}

void ebb__unlock_everything(void)
{
    ebb__sample_unlock_all(0);
    ebb__limit_unlock_all(0);
    ebb__large_unlock_all(0);
    ebb__unlock(&ebb__g.arena_lock);
    for (unsigned h = ebb__g.nheaps; h-- > 0;)
        for (unsigned c = EBB_CLASSES; c-- > 0;)
            ebb__unlock(&ebb__g.heaps[h].bin[c].lock);
    ebb__unlock(&ebb__g.registry_lock);
    ebb__unlock(&ebb__g.purge_lock);
}

/* Fork takes every lock, and first waits for unwinds in flight (sample.c). */
static void fork_prepare(void)
{
    ebb__sample_fork_prepare();
    ebb__lock_everything();
}

static void fork_parent(void)
{
    ebb__unlock_everything();
    ebb__sample_fork_done(0);
}

static void fork_child(void)
{
    ebb__sample_fork_done(1);
    ebb__sample_unlock_all(1);
    ebb__limit_unlock_all(1);
    ebb__large_unlock_all(1);
    ebb__lock_reset(&ebb__g.arena_lock);
    for (unsigned h = 0; h < ebb__g.nheaps; h++)
        for (unsigned c = 0; c < EBB_CLASSES; c++)
            ebb__lock_reset(&ebb__g.heaps[h].bin[c].lock);
    ebb__lock_reset(&ebb__g.registry_lock);
    ebb__lock(&ebb__g.registry_lock);
    ebb__tcache_fork_child();
    ebb__unlock(&ebb__g.registry_lock);
    ebb__purge_fork_child();
    ebb__report_fork_child();
    ebb__pressure_fork_child();
    ebb__blackbox_fork_child();
}

static void at_exit_report(void)
{
    if (ebb__g.opt.verbose)
        ebb_stats_print();
}

__attribute__((constructor)) static void ebb__constructor(void)
{
    ebb__ensure_init();
    ebb__os_atfork(fork_prepare, fork_parent, fork_child);
    ebb__sample_prime();
    atomic_store_explicit(&ebb__g.threads_allowed, 1, memory_order_release);
    ebb__launched_setup();
    if (ebb__g.opt.verbose) {
        extern int atexit(void (*)(void));
        atexit(at_exit_report);
    }
}
