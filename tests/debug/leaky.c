/* A program with two bugs for memcheck to find while ebb is its allocator
 * (tests/python/test_valgrind.py): a block it loses, and a one-byte write
 * past the end of another.  Nothing else is wrong with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

int main(void)
{
    /* Neighbours first, so the lost block is not the first of its pool (a
     * pool's header points at its first block: memcheck would call that
     * one still reachable). */
    char *neighbour = malloc(100);
    char *lost = malloc(100);
    memset(lost, 1, 100);
    sink = lost;
    sink = NULL;
    lost = NULL;
    char *overrun = malloc(24);
    memset(overrun, 2, 24);
    overrun[24] = 3; /* one byte past the end */
    free(overrun);
    free(neighbour);
    puts("done");
    return 0;
}
