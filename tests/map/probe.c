/*
 * probe.c -- a process for `ebb map` to map, which knows its own answer.
 *
 * It lays out an address space (a thread, whose stack has a guard page
 * below it; a mapped file, to be found by name; with --fragment, the whole
 * space filled with 64 MiB blocks and every other one unmapped), then finds
 * the largest mapping the kernel will give it by bisection (mmap of
 * PROT_NONE, MAP_NORESERVE, unmapped at once: no memory is used) and
 * prints
 *     largest <bytes>
 *     ready
 * Then it waits: until its standard input closes, or with --exit-after MS
 * for MS ms, and exits with status 3 (for `ebb map -- probe`, whose status
 * the tool passes on).  --no-probe skips the bisection (under `ebb map --
 * probe`, whose samples could catch the probe's own transient mapping).
 *
 * Built 64-bit and 32-bit (gcc -m32) by tests/map/test_map_live.py.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define BLOCK ((size_t)64 << 20)

static int stop_pipe[2];

static void *idle_thread(void *arg)
{
    char c;
    (void)arg;
    while (read(stop_pipe[0], &c, 1) < 0)
        ;
    return NULL;
}

static int can_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return 0;
    munmap(p, bytes);
    return 1;
}

/* The largest mapping the kernel gives now, in whole pages. */
static size_t largest_mapping(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t lo = 0, hi = sizeof(void *) == 4 ? SIZE_MAX / page : ((size_t)1 << 48) / page;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (can_map(mid * page))
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo * page;
}

/* Fill the space with blocks, then free every other one. */
static void fragment(void)
{
    static void *blocks[4096];
    size_t n = 0;
    while (n < sizeof blocks / sizeof blocks[0]) {
        void *p = mmap(NULL, BLOCK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            break;
        blocks[n++] = p;
    }
    for (size_t i = 0; i < n; i += 2)
        munmap(blocks[i], BLOCK);
}

int main(int argc, char **argv)
{
    int do_probe = 1, frag = 0;
    long exit_after = -1;
    const char *marker = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--fragment"))
            frag = 1;
        else if (!strcmp(argv[i], "--no-probe"))
            do_probe = 0;
        else if (!strcmp(argv[i], "--exit-after") && i + 1 < argc)
            exit_after = atol(argv[++i]);
        else if (!strcmp(argv[i], "--marker") && i + 1 < argc)
            marker = argv[++i];
        else {
            fprintf(stderr, "probe: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    pthread_t t;
    if (pipe(stop_pipe) != 0 || pthread_create(&t, NULL, idle_thread, NULL) != 0) {
        perror("probe: thread");
        return 1;
    }
    if (marker) {
        int fd = open(marker, O_RDONLY);
        if (fd < 0 || mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED) {
            perror("probe: marker");
            return 1;
        }
    }
    if (frag)
        fragment();
    if (do_probe)
        printf("largest %zu\n", largest_mapping());
    printf("ready\n");
    fflush(stdout);
    if (exit_after >= 0) {
        struct timespec ts = { exit_after / 1000, (exit_after % 1000) * 1000000L };
        nanosleep(&ts, NULL);
        return 3;
    }
    char buf[64];
    while (read(0, buf, sizeof buf) > 0)
        ;
    return 0;
}
