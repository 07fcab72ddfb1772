/*
 * init.c -- options, start-up, and fork.
 *
 * ebb initialises on the first allocation, which may come from the dynamic
 * loader or a constructor before main: nothing here allocates, reads the
 * environment through stdio, or depends on the C library being set up.  A
 * constructor also initialises eagerly and registers the fork handlers.
 *
 * Options: base/options.c reads every EBB_* variable once, here, from the
 * table in base/options_table.h (`ebb options` lists them).
 *
 * Fork: the prepare handler takes every lock (registry, each bin, arenas,
 * large blocks), so the child inherits consistent structures; the child
 * resets the locks and gives back the blocks cached by threads it does not
 * have.
 */
#include "internal.h"


EBB_HIDDEN ebb__state_t ebb__g = { .init_lock = EBB_LOCK_INIT };

void ebb__init_slow(void)
{
    ebb__lock(&ebb__g.init_lock);
    if (!atomic_load_explicit(&ebb__g.ready, memory_order_relaxed)) {
        ebb__sizeclass_init();
        ebb__options_start();
        unsigned cpus = ebb__os_cpu_count();
        unsigned heaps = ebb__opt.heaps ? ebb__opt.heaps : cpus;
        ebb__g.nheaps = heaps > EBB_MAX_HEAPS ? EBB_MAX_HEAPS : heaps;
        for (unsigned i = 0; i < EBB_MAX_HEAPS; i++)
            ebb__g.heaps[i].index = i;
        ebb__limit_start(&ebb__opt);
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
    if (ebb__opt.verbose)
        ebb_stats_print();
}

__attribute__((constructor)) static void ebb__constructor(void)
{
    ebb__ensure_init();
    ebb__os_atfork(fork_prepare, fork_parent, fork_child);
    ebb__sample_prime();
    atomic_store_explicit(&ebb__g.threads_allowed, 1, memory_order_release);
    ebb__launched_setup();
    if (ebb__opt.verbose) {
        extern int atexit(void (*)(void));
        atexit(at_exit_report);
    }
}
