/*
 * join.c -- the purger-restart deadlock in a statically linked program
 * (make check-static runs it; tests/include/purger_watch.h has the
 * scenario, which test_races runs in a dynamic one).  A dynamic program has
 * a loader whose frames tell that a free comes from inside glibc's
 * thread-stack cache (front/purger.c); a static one has none, so ebb reads
 * the C library's lock word instead (os/linux_stack.c).  The exit status is
 * the scenario's: 0 when the joins came back.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "ebb.h"
#include "purger_watch.h"

int main(void)
{
    return joins_as_the_purger_restarts(malloc, free);
}
