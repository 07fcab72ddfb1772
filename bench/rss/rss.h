/*
 * rss.h -- shared code for the RSS scenario programs in bench/rss/.
 *
 * Each scenario program builds up memory with plain malloc/realloc/free,
 * releases some or all of it, and reports the process's resident set size
 * (RSS) at fixed points, next to two references it computes itself:
 *
 *   base   RSS measured just before the first phase, after the program's
 *          own bookkeeping (kept in mmap'd memory, outside the allocator
 *          under test, and touched in advance) has been set up;
 *   ideal  base + the bytes of the objects the program still holds;
 *   floor  base + 4 KiB x the number of distinct 4 KiB pages that hold at
 *          least one byte of a live object and were not already resident
 *          when base was measured (the allocator may place objects in memory
 *          it held then, e.g. freed by start-up code; such pages are in base
 *          already): the least RSS any allocator that does not move objects
 *          can reach.
 *
 * Output, one record a line on stdout (every size in KiB, times in ms):
 *
 *   INFO key=value ...                  parameters of the run
 *   BASE rss_kib=N snapshot_kib=M      (M: resident anonymous memory)
 *   PHASE name t_ms=T at_ms=A rss_kib=R floor_kib=F ideal_kib=I base_kib=B
 *          RSS of phase point `name`, T ms after the phase ended (the first
 *          sample taken at or after T; A is when it was really taken)
 *   SERIES name t:rss t:rss ...         every sample taken after that phase
 *   RESULT key=value ...                scenario-specific results
 *   DONE                                the program checked all its data
 *
 * A corrupted object makes the program print the reason on stderr and exit
 * with status 3; a usage error exits with status 2.
 *
 * The units, DIE, the generator and the /proc reader are bench/common/
 * bench.h's; the scenarios draw with rng_make_splitmix, rng_below32 and
 * rng_range32 (top 32 bits: cheap with -m32).  The code must build with gcc
 * and clang, -std=c11 -Wall -Wextra -Werror, for x86-64 and for -m32.
 */
#ifndef EBB_BENCH_RSS_H
#define EBB_BENCH_RSS_H

#include "../common/bench.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <time.h>

/*
 * Object sizes shaped like CPython's small objects, 16..512 bytes: mostly
 * 16-64 (ints, floats, short strings, small tuples), a tail to 160 (lists,
 * longer strings, small dicts' parts) and a thinner one to 512.
 */
static inline size_t obj_size(rng_t *r)
{
    uint32_t p = rng_below32(r, 1000);
    if (p < 700)
        return rng_range32(r, 16, 64);
    if (p < 930)
        return rng_range32(r, 65, 160);
    return rng_range32(r, 161, 512);
}

/* ---- objects: header, fill pattern, check ------------------------------- */

/*
 * Every small object starts with this header (16 bytes on x86-64, 12 with
 * -m32); the rest is filled with the low byte of the tag, and the last byte
 * holds the tag's second byte.  obj_check verifies all of it that is cheap
 * to verify (size, the fill at both ends and in the middle) before a free.
 */
struct obj {
    struct obj *next; /* the program's own lists */
    uint32_t size;    /* bytes requested from malloc */
    uint32_t tag;
};

#define OBJ_MAX (64u * 1024u)

/* Bytes the program holds (objects and big buffers it counts), and the most
 * it held since the last peak stretch began (rss_peak_begin). */
static uint64_t rss_live, rss_live_max;

static inline void live_add(size_t n)
{
    rss_live += n;
    if (rss_live > rss_live_max)
        rss_live_max = rss_live;
}

static inline void live_sub(size_t n)
{
    rss_live -= n;
}

static inline void obj_stamp(struct obj *o, size_t n, uint32_t tag)
{
    unsigned char *p = (unsigned char *)o;
    memset(p, (int)(tag & 0xff), n);
    o->next = NULL;
    o->size = (uint32_t)n;
    o->tag = tag;
    if (n > sizeof *o)
        p[n - 1] = (unsigned char)(tag >> 8);
}

static inline struct obj *obj_new(size_t n, uint32_t tag)
{
    if (n < 16)
        n = 16;
    struct obj *o = xmalloc(n);
    obj_stamp(o, n, tag);
    live_add(n);
    return o;
}

static inline void obj_check(const struct obj *o, const char *who)
{
    const unsigned char *p = (const unsigned char *)o;
    size_t n = o->size, h = sizeof *o;
    unsigned char fill = (unsigned char)(o->tag & 0xff);
    int bad = n < 16 || n > OBJ_MAX;
    if (!bad && n > h) {
        bad = p[n - 1] != (unsigned char)(o->tag >> 8);
        if (n > h + 1)
            bad |= p[h] != fill || p[h + (n - 1 - h) / 2] != fill;
    }
    if (bad)
        DIE("%s: object %p corrupted (size field %zu)", who, (const void *)o, n);
}

static inline void obj_free(struct obj *o, const char *who)
{
    obj_check(o, who);
    live_sub(o->size);
    free(o);
}

/* ---- big buffers (a byte pattern on every page) ------------------------- */

struct big {
    unsigned char *p;
    size_t n;
    uint32_t tag;
};

static inline unsigned char big_byte(uint32_t tag, size_t i)
{
    return (unsigned char)(tag + (uint32_t)(i / PAGE) * 7u);
}

/* Fill [from, to) with the page-dependent pattern (touches every page). */
static inline void big_fill(struct big *b, size_t from, size_t to)
{
    size_t i = from;
    while (i < to) {
        size_t end = (i / PAGE + 1) * PAGE;
        if (end > to)
            end = to;
        memset(b->p + i, big_byte(b->tag, i), end - i);
        i = end;
    }
}

static inline void big_check(const struct big *b, const char *who)
{
    for (size_t i = 0; i < b->n; i += PAGE) {
        size_t j = i + (b->tag % PAGE);
        if (j >= b->n)
            j = b->n - 1;
        if (b->p[i] != big_byte(b->tag, i) || b->p[j] != big_byte(b->tag, j))
            DIE("%s: buffer %p of %zu bytes corrupted at %zu", who, (void *)b->p, b->n, i);
    }
    if (b->p[b->n - 1] != big_byte(b->tag, b->n - 1))
        DIE("%s: buffer %p of %zu bytes corrupted at its end", who, (void *)b->p, b->n);
}

/* ---- /proc readings (no heap allocation) --------------------------------- */

static int rss_statm_fd = -1;

static inline long rss_kib(void)
{
    char buf[256];
    ssize_t n = pread(rss_statm_fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        DIE("cannot read /proc/self/statm: %s", strerror(errno));
    buf[n] = '\0';
    char *sp = strchr(buf, ' ');
    if (!sp)
        DIE("odd /proc/self/statm: %s", buf);
    return strtol(sp + 1, NULL, 10) * (long)(sysconf(_SC_PAGESIZE) / 1024);
}

static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static inline void sleep_until_ms(double t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(t / 1e3);
    ts.tv_nsec = (long)((t - (double)ts.tv_sec * 1e3) * 1e6);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* ---- bookkeeping memory: mmap'd, outside the allocator, touched now ----- */

static inline void *book_alloc(size_t bytes)
{
    if (bytes == 0)
        bytes = 1;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        DIE("mmap of %zu bytes for bookkeeping failed: %s", bytes, strerror(errno));
    memset(p, 0, bytes); /* resident from now on, so inside base */
    return p;
}

/* ---- the floor: distinct 4 KiB pages holding live bytes ------------------ */

/*
 * A bitmap with one bit per 4 KiB page of the whole address space (2^47
 * bytes on x86-64: a 4 GiB mapping, of which only the few pages covering
 * the heap are ever touched; 128 KiB with -m32).  Adding an object sets the
 * bits of the pages it spans and counts the bits that were clear (and are
 * not in the set of pages resident at base), so the count is exact however
 * objects share pages, and costs O(pages spanned).  The bitmap is unmapped
 * afterwards; take RSS readings before opening one.
 */
struct pageset {
    unsigned char *bits;
    size_t len;
    uint64_t pages;
};

static struct pageset rss_basemap; /* pages resident when base was measured */

static inline void pageset_open(struct pageset *ps)
{
    uint64_t space = sizeof(void *) == 8 ? (1ull << 47) : (1ull << 32);
    ps->len = (size_t)(space / PAGE / 8);
    ps->pages = 0;
    void *p = mmap(NULL, ps->len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        DIE("mmap of the page bitmap (%zu bytes) failed: %s", ps->len, strerror(errno));
    ps->bits = p;
}

static inline void pageset_add(struct pageset *ps, const void *p, size_t n)
{
    if (n == 0)
        return;
    uint64_t a = (uint64_t)(uintptr_t)p;
    uint64_t first = a / PAGE, last = (a + n - 1) / PAGE;
    if (last / 8 >= ps->len)
        DIE("address %p beyond the page bitmap", p);
    const unsigned char *in_base = rss_basemap.bits;
    for (uint64_t pg = first; pg <= last; pg++) {
        unsigned char m = (unsigned char)(1u << (pg & 7));
        unsigned char *b = &ps->bits[pg >> 3];
        if (!(*b & m)) {
            *b |= m;
            if (!in_base || !(in_base[pg >> 3] & m))
                ps->pages++;
        }
    }
}

/* Pages counted; unmaps the bitmap. */
static inline uint64_t pageset_close(struct pageset *ps)
{
    munmap(ps->bits, ps->len);
    ps->bits = NULL;
    return ps->pages;
}

/*
 * Record in rss_basemap every page of anonymous memory resident now, from
 * /proc/self/maps and mincore() (file mappings, inaccessible mappings and
 * the bitmap itself are skipped: no object can be on them).  No heap
 * allocation.
 */
static char rss_maps_buf[1 << 20];

/* /proc/self/maps into rss_maps_buf (static: no allocation); 0 if
 * unreadable. */
static inline int read_maps(void)
{
    return read_small_file("/proc/self/maps", rss_maps_buf, sizeof rss_maps_buf) >= 0;
}

static inline uint64_t base_snapshot(void)
{
    static unsigned char vec[16384];
    pageset_open(&rss_basemap);
    if (!read_maps())
        DIE("cannot open /proc/self/maps: %s", strerror(errno));
    uint64_t resident = 0;
    uintptr_t self = (uintptr_t)rss_basemap.bits;
    for (char *line = rss_maps_buf; *line;) {
        /* "lo-hi perms offset dev inode path": anonymous memory has inode 0 */
        char *end, *f = line;
        uint64_t lo = strtoull(f, &end, 16), hi = strtoull(end + 1, &end, 16);
        int accessible = end[1] == 'r' || end[2] == 'w';
        for (int field = 0; field < 4 && f; field++)
            f = strchr(f + 1, ' ');
        int anon = f && strtoull(f, NULL, 10) == 0;
        if (accessible && anon && lo != self && hi > lo) {
            for (uint64_t a = lo; a < hi; a += sizeof vec * (uint64_t)PAGE) {
                uint64_t l = hi - a < sizeof vec * (uint64_t)PAGE ? hi - a : sizeof vec * (uint64_t)PAGE;
                if (mincore((void *)(uintptr_t)a, (size_t)l, vec) != 0)
                    break; /* e.g. [vsyscall] */
                for (uint64_t i = 0; i < l / PAGE; i++)
                    if (vec[i] & 1) {
                        uint64_t pg = a / PAGE + i;
                        rss_basemap.bits[pg >> 3] |= (unsigned char)(1u << (pg & 7));
                        resident++;
                    }
            }
        }
        line = strchr(line, '\n');
        if (!line)
            break;
        line++;
    }
    return resident;
}

/* ---- command line -------------------------------------------------------- */

struct opts {
    double scale;     /* -s: multiplies the default sizes (1 = ~1 GiB builds) */
    double survive;   /* -p: fraction of objects that survive (-1: the program's default) */
    int window_ms;    /* -w: how long RSS is sampled after a free phase */
    int tick_ms;      /* -k: sampling period (light work between samples) */
    int settle_ms;    /* -S: sampling window at scenario 5/6 phase points */
    long count;       /* -r: rounds / epochs (-1: the program's default) */
    int every;        /* -e: phase point every N rounds / epochs (0: default) */
    int threads;      /* -n: thread pairs (prodcons), buffers kept (mixed); 0: default */
    int idle_thread;  /* -t: build in a thread that then stays idle */
    int probe;        /* -P: report the largest allocatable block at the end */
    int cycles;       /* -c: the server's size mix drifts up, back, up... this many times */
};

static inline void opts_usage(const char *prog, const char *what)
{
    fprintf(stderr,
            "usage: %s [-s scale] [-p survive_fraction] [-w window_ms] [-k tick_ms]\n"
            "          [-S settle_ms] [-r rounds] [-e every] [-n pairs] [-c cycles] [-t] [-P]\n"
            "%s\n", prog, what);
    exit(2);
}

static inline double opt_num(const char *prog, const char *what, const char *s, double lo, double hi)
{
    double v = 0;
    if (!parse_number(s, lo, hi, &v))
        opts_usage(prog, what);
    return v;
}

static inline struct opts opts_parse(int argc, char **argv, const char *what)
{
    struct opts o = { 1.0, -1.0, 2000, 10, 200, -1, 0, 0, 0, 0, 1 };
    int c;
    while ((c = getopt(argc, argv, "s:p:w:k:S:r:e:n:c:tPh")) != -1) {
        switch (c) {
        case 's': o.scale = opt_num(argv[0], what, optarg, 1e-4, 100); break;
        case 'p': o.survive = opt_num(argv[0], what, optarg, 0, 1); break;
        case 'w': o.window_ms = (int)opt_num(argv[0], what, optarg, 0, 600000); break;
        case 'k': o.tick_ms = (int)opt_num(argv[0], what, optarg, 1, 10000); break;
        case 'S': o.settle_ms = (int)opt_num(argv[0], what, optarg, 0, 600000); break;
        case 'r': o.count = (long)opt_num(argv[0], what, optarg, 0, 1e9); break;
        case 'e': o.every = (int)opt_num(argv[0], what, optarg, 1, 1e9); break;
        case 'n': o.threads = (int)opt_num(argv[0], what, optarg, 0, 1000); break;
        case 'c': o.cycles = (int)opt_num(argv[0], what, optarg, 1, 1000); break;
        case 't': o.idle_thread = 1; break;
        case 'P': o.probe = 1; break;
        default: opts_usage(argv[0], what);
        }
    }
    if (optind != argc)
        opts_usage(argv[0], what);
    return o;
}

/* ---- malloc_trim at phase points (configuration glibc-trim) -------------- */

typedef int (*trim_fn)(size_t);
static trim_fn rss_trim_fn;

/* If RSS_MALLOC_TRIM is set (and not "0"), call malloc_trim(0), found with
 * dlsym so the programs also run where it does not exist. */
static inline void rss_trim(void)
{
    if (rss_trim_fn)
        rss_trim_fn(0);
}

/* ---- start-up, samples and reports --------------------------------------- */

static char rss_stdout_buf[1 << 16];
static long rss_base = -1;
static struct opts rss_opt;
static rng_t rss_light_rng;

#define MAX_SAMPLES 65536
static struct sample {
    double t;
    long rss;
} rss_samples[MAX_SAMPLES];
static int rss_nsamples;

/* Call first: stdout gets a static buffer (stdio must not malloc from the
 * heap being measured), /proc/self/statm is opened once, malloc_trim is
 * looked up, and the allocator is initialised by a first malloc so that its
 * start-up footprint is part of base. */
static inline void rss_init(const struct opts *o)
{
    setvbuf(stdout, rss_stdout_buf, _IOFBF, sizeof rss_stdout_buf);
    rss_opt = *o;
    rss_statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (rss_statm_fd < 0)
        DIE("cannot open /proc/self/statm: %s", strerror(errno));
    const char *e = getenv("RSS_MALLOC_TRIM");
    if (e && *e && strcmp(e, "0") != 0) {
        void *f = dlsym(RTLD_DEFAULT, "malloc_trim");
        if (!f)
            fprintf(stderr, "RSS_MALLOC_TRIM set but there is no malloc_trim\n");
        else
            memcpy(&rss_trim_fn, &f, sizeof f);
    }
    rss_light_rng = rng_make_splitmix(0x11947);
    for (int i = 0; i < 64; i++)
        free(obj_new(obj_size(&rss_light_rng), 1));
}

/* Measure base RSS; call once the bookkeeping is set up. */
static inline long rss_set_base(void)
{
    uint64_t resident = base_snapshot();
    rss_base = rss_kib();
    printf("BASE rss_kib=%ld snapshot_kib=%" PRIu64 "\n", rss_base, resident * (PAGE / 1024));
    fflush(stdout);
    return rss_base;
}

/* "Computing lightly": a handful of short-lived objects. */
static inline void light_work(void)
{
    struct obj *a[32];
    for (int i = 0; i < 32; i++)
        a[i] = obj_new(obj_size(&rss_light_rng), (uint32_t)i * 2654435761u);
    for (int i = 31; i >= 0; i--)
        obj_free(a[i], "light work");
}

/*
 * Sample RSS for window_ms after a phase ended: one sample at once (after
 * malloc_trim, when asked for), then one every tick with a little light
 * work in between.  The samples stay in rss_samples for rss_report.
 */
static inline void observe(int window_ms)
{
    double t0 = now_ms();
    rss_trim();
    rss_nsamples = 0;
    for (long k = 1;; k++) {
        double t = now_ms() - t0;
        if (rss_nsamples < MAX_SAMPLES) {
            rss_samples[rss_nsamples].t = t;
            rss_samples[rss_nsamples].rss = rss_kib();
            rss_nsamples++;
        }
        if (t >= window_ms)
            break;
        light_work();
        double el = now_ms() - t0;
        if ((double)k * rss_opt.tick_ms <= el) /* fell behind: skip ticks */
            k = (long)(el / rss_opt.tick_ms) + 1;
        double next = (double)k * rss_opt.tick_ms;
        sleep_until_ms(t0 + (next < window_ms ? next : window_ms));
    }
}

/* One PHASE line per point (the first sample at or after it), and the
 * SERIES line.  floor_pages and live_bytes describe the live data. */
static inline void rss_report(const char *phase, const int *points, int npoints,
                              uint64_t floor_pages, uint64_t live_bytes)
{
    long floor_kib = rss_base + (long)(floor_pages * (PAGE / 1024));
    long ideal_kib = rss_base + (long)((live_bytes + 1023) / 1024);
    for (int i = 0; i < npoints; i++) {
        int j = 0;
        while (j < rss_nsamples - 1 && rss_samples[j].t < points[i])
            j++;
        printf("PHASE %s t_ms=%d at_ms=%.0f rss_kib=%ld floor_kib=%ld ideal_kib=%ld base_kib=%ld\n",
               phase, points[i], rss_samples[j].t, rss_samples[j].rss, floor_kib, ideal_kib, rss_base);
    }
    printf("SERIES %s", phase);
    for (int j = 0; j < rss_nsamples; j++)
        printf(" %.0f:%ld", rss_samples[j].t, rss_samples[j].rss);
    printf("\n");
    fflush(stdout);
}

/* A phase point of scenarios 5 and 6, named prefix + k: RSS at once and
 * after settle_ms (sampled by the caller's observe(settle_ms) before it
 * computed the floor). */
static inline void rss_report_settled(const char *prefix, long k, uint64_t floor_pages,
                                      uint64_t live_bytes)
{
    int pts[2] = { 0, rss_opt.settle_ms };
    char name[32];
    snprintf(name, sizeof name, "%s%ld", prefix, k);
    rss_report(name, pts, rss_opt.settle_ms > 0 ? 2 : 1, floor_pages, live_bytes);
}

/* The standard points after a free phase: 0, 50, ... 2000 ms, cut to the
 * window (which is always the last point). */
static inline int free_points(int *pts)
{
    static const int std[] = { 0, 50, 100, 200, 500, 1000, 2000 };
    int n = 0;
    for (size_t i = 0; i < sizeof std / sizeof std[0]; i++)
        if (std[i] <= rss_opt.window_ms)
            pts[n++] = std[i];
    if (pts[n - 1] != rss_opt.window_ms)
        pts[n++] = rss_opt.window_ms;
    return n;
}

/* A single-sample phase point (no waiting): e.g. the peak after a build. */
static inline void rss_instant(void)
{
    rss_nsamples = 1;
    rss_samples[0].t = 0;
    rss_samples[0].rss = rss_kib();
}

/* The peak of RSS over a stretch of the run against its ideal, base + the
 * most the program held during it: "PEAK name peak_kib=N ideal_kib=M".  The
 * kernel's high-water mark (VmHWM) catches a peak between two samples.  A
 * stretch runs from the end of one phase point (after its settle) to the
 * next point: rss_peak_begin starts it, rss_peak_end reports it. */
static inline void rss_peak_end(const char *prefix, long k)
{
    printf("PEAK %s%ld peak_kib=%ld ideal_kib=%" PRIu64 "\n", prefix, k, status_kib("VmHWM"),
           (uint64_t)rss_base + (rss_live_max + 1023) / 1024);
}

/* Resets VmHWM (writing 5 to /proc/self/clear_refs, Linux 4.0) and the live
 * maximum.  Called after a phase point's settle, not at its start: what the
 * last stretch freed just before the point is still resident then under any
 * allocator that gives back on a clock, and counting it against the next
 * stretch would charge that stretch with the last one's memory (scenario 5
 * in Python: round 16's batch and buffers made the peak of rounds 17-24,
 * 1.20x its ideal, where each round of the stretch is within 1.03x).
 * Giving back soon after a free is measured by the windows of scenarios 1,
 * 2, 3 and 7.  0 if the reset is refused. */
static inline int rss_peak_begin(void)
{
    rss_live_max = rss_live;
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    int ok = fd >= 0 && write(fd, "5", 1) == 1;
    if (fd >= 0)
        close(fd);
    return ok;
}

static inline void rss_done(void)
{
    printf("RESULT hwm_kib=%ld\n", status_kib("VmHWM"));
    printf("DONE\n");
    fflush(stdout);
}

#endif
