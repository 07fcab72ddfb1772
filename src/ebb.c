/*
 * ebb.c -- the whole library as one translation unit.
 *
 * Every concern is its own file, in a folder per layer (internal.h draws
 * them); this one includes them bottom layer first, so the compiler can
 * inline across layers (the fast paths span front, thread cache and arena)
 * without link-time optimisation, and so override.c can alias the ebb_*
 * functions.  Build this file, nothing else.  Each file also compiles on
 * its own (tests/layers/check_layers.py does so to check the layering).
 */
#include "os/linux.c"
#include "os/linux_env.c"
#include "os/linux_proc.c"
#include "os/linux_maps.c"
#include "os/linux_limits.c"
#include "os/linux_pressure.c"
#include "os/linux_report.c"
#include "os/linux_stack.c"
#include "os/linux_fault.c"
#include "os/linux_unwind.c"

#include "base/diag.c"
#include "base/options.c"
#include "base/misuse.c"
#include "base/process.c"

#include "core/sizeclass.c"
#include "core/ownership.c"
#include "core/ledger.c"
#include "core/budget.c"
#include "core/demand.c"
#include "core/arena.c"
#include "core/pool.c"
#include "core/heap.c"
#include "core/thread.c"
#include "core/freed.c"
#include "core/large.c"
#include "core/setup.c"

#include "policy/purge.c"
#include "policy/limit.c"
#include "policy/pressure.c"

#include "insight/sample.c"
#include "insight/peak.c"
#include "insight/heapmap.c"
#include "insight/stats.c"
#include "insight/check.c"
#include "insight/rss.c"
#include "insight/report_out.c"
#include "insight/report.c"
#include "insight/report_walk.c"
#include "insight/report_text.c"
#include "insight/report_json.c"
#include "insight/report_addrmap.c"
#include "insight/report_files.c"
#include "insight/blackbox.c"
#include "insight/addrspace.c"
#include "insight/addrspace_out.c"
#include "insight/timeline.c"
#include "insight/status.c"
#include "insight/crash.c"

#include "front/cpython.c"
#include "front/pyframes.c"
#include "front/pymemerror.c"
#include "front/purger.c"
#include "front/debug.c"
#include "front/init.c"
#include "front/malloc.c"
#include "front/override.c"
