/*
 * ebb.c -- the whole library as one translation unit.
 *
 * Every layer is its own file; this one includes them in layer order so the
 * compiler can inline across layers (the fast paths span front, cache and
 * arena) without link-time optimisation, and so override.c can alias the
 * ebb_* functions.  Build this file, nothing else.
 */
#include "os/linux.c"
#include "diag.c"
#include "sizeclass.c"
#include "ownership.c"
#include "arena.c"
#include "pool.c"
#include "heap.c"
#include "tcache.c"
#include "large.c"
#include "sample.c"
#include "purge.c"
#include "limit.c"
#include "pressure.c"
#include "report.c"
#include "blackbox.c"
#include "stats.c"
#include "check.c"
#include "cpython.c"
#include "init.c"
#include "alloc.c"
#include "override.c"
