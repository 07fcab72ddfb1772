/* What a block costs if it gets its own mapping (mmap, touch every page,
 * munmap) against ebb's path for the same size: pools up to the threshold,
 * large blocks with the cache of freed mappings above it.  A working set of
 * 64 blocks with random replacement; every page of every block touched.
 * This chose EBB_LARGE_THRESHOLD (src/config.h).  Build and run:
 *   cc -O2 -Iinclude bench/threshold/threshold.c build/libebb.a -o /tmp/threshold && /tmp/threshold */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "ebb.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void touch(char *p, size_t n)
{
    for (size_t i = 0; i < n; i += 4096)
        p[i] = 1;
}

int main(void)
{
    enum { LIVE = 64 };
    printf("%8s %14s %14s %8s\n", "size", "own map us/op", "ebb us/op", "ratio");
    for (size_t n = 16 << 10; n <= (1 << 20); n *= 2) {
        int iters = (int)((256u << 20) / n);
        double t0 = now();
        for (int i = 0; i < iters; i++) {
            char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            touch(p, n);
            munmap(p, n);
        }
        double own = (now() - t0) / iters * 1e6;
        static char *live[LIVE];
        size_t m = n;
        for (int i = 0; i < LIVE; i++)
            live[i] = ebb_malloc(m);
        t0 = now();
        for (int i = 0; i < iters; i++) {
            int k = (int)((unsigned)i * 2654435761u % LIVE);
            ebb_free(live[k]);
            live[k] = ebb_malloc(m);
            touch(live[k], m);
        }
        double pool = (now() - t0) / iters * 1e6;
        for (int i = 0; i < LIVE; i++)
            ebb_free(live[i]);
        printf("%7zuK %14.2f %14.2f %8.1f\n", n >> 10, own, pool, own / pool);
    }
    return 0;
}
