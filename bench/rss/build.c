/*
 * build -- scenarios 1, 2 and 3 of bench/rss: build a big heap of small
 * objects, free it (all of it, or all but a scattered fraction), then
 * compute lightly and watch RSS.
 *
 *   build [-s scale] [-p survive] [-t] [-w window_ms] [-k tick_ms]
 *
 * The build allocates objects of obj_size() sizes (16..512 bytes) until
 * scale x 1 GiB has been requested, in groups of 1-48 objects held by a
 * malloc'd container (a CPython list, say).  Each group is pushed onto one
 * of 4096 chains picked at random, so the teardown, which walks the chains
 * one after the other, frees groups in an order that is scattered across the
 * heap (as when a big dict of lists is dropped).  With -p, each object
 * survives with that probability instead: survivors are kept in a
 * bookkeeping array and belong to no group, so they sit at random places
 * among the dead.
 *
 * With -t (scenario 3) a second thread does the building and the freeing,
 * then blocks on a condition variable (it stays alive, idle) while the main
 * thread computes lightly and samples RSS.
 *
 * Phases: "built" (RSS at the peak, one sample), "freed" (samples for
 * window_ms after the teardown).  See rss.h for the output format.
 */
#include "rss.h"

#include <pthread.h>

#define CHAINS 4096u
#define GROUP_MAX 48u

struct group {
    struct group *next;
    uint32_t n;   /* objects held */
    uint32_t cap; /* objects it was allocated for */
    struct obj *item[];
};

static struct group *chain[CHAINS];

static struct {
    struct obj **v; /* bookkeeping array, touched before base */
    size_t n, cap;
    uint64_t bytes;
} surv;

static uint64_t target, built_bytes, built_objects;
static double build_ms, free_ms;

static size_t group_bytes(uint32_t n)
{
    return sizeof(struct group) + n * sizeof(struct obj *);
}

static void build(void)
{
    rng_t r = rng_make_splitmix(1);
    double p = rss_opt.survive;
    double t0 = now_ms();
    while (built_bytes < target) {
        uint32_t want = rng_range32(&r, 1, GROUP_MAX);
        struct group *g = xmalloc(group_bytes(want));
        built_bytes += group_bytes(want);
        g->n = 0;
        g->cap = want;
        for (uint32_t i = 0; i < want; i++) {
            size_t n = obj_size(&r);
            struct obj *o = obj_new(n, (uint32_t)rng_next(&r));
            built_bytes += n;
            built_objects++;
            if (p > 0 && surv.n < surv.cap && rng_unit(&r) < p) {
                surv.v[surv.n++] = o;
                surv.bytes += n;
            } else {
                g->item[g->n++] = o;
            }
        }
        uint32_t c = rng_below32(&r, CHAINS);
        g->next = chain[c];
        chain[c] = g;
    }
    build_ms = now_ms() - t0;
}

static void teardown(void)
{
    double t0 = now_ms();
    for (unsigned c = 0; c < CHAINS; c++) {
        struct group *g = chain[c];
        while (g) {
            struct group *next = g->next;
            if (g->n > g->cap || g->cap > GROUP_MAX)
                DIE("build teardown: group %p corrupted", (void *)g);
            for (uint32_t i = 0; i < g->n; i++)
                obj_free(g->item[i], "build teardown");
            free(g);
            g = next;
        }
        chain[c] = NULL;
    }
    free_ms = now_ms() - t0;
}

static uint64_t floor_pages(int with_chains)
{
    struct pageset ps;
    pageset_open(&ps);
    for (size_t i = 0; i < surv.n; i++)
        pageset_add(&ps, surv.v[i], surv.v[i]->size);
    for (unsigned c = 0; with_chains && c < CHAINS; c++)
        for (struct group *g = chain[c]; g; g = g->next) {
            pageset_add(&ps, g, group_bytes(g->cap));
            for (uint32_t i = 0; i < g->n; i++)
                pageset_add(&ps, g->item[i], g->item[i]->size);
        }
    return pageset_close(&ps);
}

/* The two measurements, wherever the building happens. */
static void report_built(void)
{
    static const int zero[] = { 0 };
    rss_instant();
    rss_report("built", zero, 1, floor_pages(1), built_bytes);
}

static void report_freed(void)
{
    int pts[16];
    int n = free_points(pts);
    observe(rss_opt.window_ms);
    rss_report("freed", pts, n, floor_pages(0), surv.bytes);
}

/* ---- scenario 3: a builder thread that goes idle ------------------------- */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int step; /* 0 wait, 1 build, 2 built, 3 free, 4 freed, 5 exit */

static void wait_step(int s)
{
    pthread_mutex_lock(&lock);
    while (step < s)
        pthread_cond_wait(&cv, &lock);
    pthread_mutex_unlock(&lock);
}

static void set_step(int s)
{
    pthread_mutex_lock(&lock);
    step = s;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&lock);
}

static void *builder(void *arg)
{
    (void)arg;
    wait_step(1);
    build();
    set_step(2);
    wait_step(3);
    teardown();
    set_step(4);
    wait_step(5); /* idle: blocked, not exited, while main samples */
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = opts_parse(argc, argv,
        "scenarios 1-3: build scale GiB of small objects, free all but a fraction -p\n"
        "(default 0), compute lightly; -t builds in a thread that then stays idle");
    rss_init(&o);
    target = (uint64_t)(o.scale * (double)GIB);
    /* room for every survivor even if all objects were 16 bytes */
    if (o.survive < 0)
        rss_opt.survive = o.survive = 0;
    surv.cap = (size_t)((double)(target / 16) * o.survive * 1.2) + 64;
    if (o.survive == 0)
        surv.cap = 0;
    surv.v = book_alloc(surv.cap * sizeof *surv.v);

    pthread_t th;
    if (o.idle_thread && pthread_create(&th, NULL, builder, NULL) != 0)
        DIE("pthread_create failed");
    rss_set_base();

    if (o.idle_thread) {
        set_step(1);
        wait_step(2);
        report_built();
        set_step(3);
        wait_step(4);
        report_freed();
    } else {
        build();
        report_built();
        teardown();
        report_freed();
    }
    printf("INFO target_kib=%" PRIu64 " objects=%" PRIu64 " bytes=%" PRIu64
           " survivors=%zu survivor_bytes=%" PRIu64 " idle_thread=%d build_ms=%.0f free_ms=%.0f\n",
           target / 1024, built_objects, built_bytes, surv.n, surv.bytes, o.idle_thread,
           build_ms, free_ms);

    for (size_t i = 0; i < surv.n; i++)
        obj_free(surv.v[i], "survivor");
    if (o.idle_thread) {
        set_step(5);
        pthread_join(th, NULL);
    }
    rss_done();
    return 0;
}
