/*
 * setup.c -- the mechanism's start-up: options, size classes, heaps.
 *
 * Owns: ebb__core_ready and the order in which the mechanism is made ready.
 *
 * The first call into ebb may come from the dynamic loader, or from a
 * constructor before main, before the C library is set up: nothing here
 * allocates or uses stdio.  Whichever call comes first (an allocation, or a
 * function of the API such as ebb_set_limit or ebb_stats) makes the
 * mechanism ready, once, under a lock; everything after that costs one
 * load.  What the layers above start (the options' limit, the sampler's
 * rate, the black box) the front starts after this (front/init.c), or each
 * module before it is first used.
 */
#include "internal.h"

EBB_HIDDEN _Atomic int ebb__core_ready;

void ebb__core_setup(void)
{
    static ebb__lock_t setup_lock = EBB_LOCK_INIT;
    ebb__lock(&setup_lock);
    if (!atomic_load_explicit(&ebb__core_ready, memory_order_relaxed)) {
        ebb__ledger_start();
        ebb__sizeclass_init();
        ebb__freed_key_init();
        ebb__options_start();
#if EBB_DEBUG >= 1
        if (ebb__opt.fault_one_in)
            ebb__os_faults_random(ebb__opt.fault_seed, ebb__opt.fault_one_in);
#endif
        unsigned heaps = ebb__opt.heaps ? ebb__opt.heaps : ebb__os_cpu_count();
        ebb__heaps_init(heaps);
        atomic_store_explicit(&ebb__core_ready, 1, memory_order_release);
    }
    ebb__unlock(&setup_lock);
}
