/*
 * ebb.c -- the whole library as one translation unit.
 *
 * Every layer is its own file; this one includes them in layer order so the
 * compiler can inline across layers (the fast paths span front, cache and
 * arena) without link-time optimisation, and so override.c can alias the
 * ebb_* functions.  Build this file, nothing else.
 */
#include "os/linux.c"
#include "base/diag.c"
#include "core/sizeclass.c"
#include "core/ownership.c"
#include "core/arena.c"
#include "core/pool.c"
#include "core/heap.c"
#include "core/tcache.c"
#include "core/large.c"
#include "insight/sample.c"
#include "policy/purge.c"
#include "policy/limit.c"
#include "policy/pressure.c"
#include "insight/report.c"
#include "insight/report_walk.c"
#include "insight/report_text.c"
#include "insight/report_json.c"
#include "insight/blackbox.c"
#include "insight/stats.c"
#include "insight/check.c"
#include "front/cpython.c"
#include "front/init.c"
#include "front/malloc.c"
#include "front/override.c"
