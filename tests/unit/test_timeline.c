/* The memory timeline's record (insight/timeline.c) and the status page's
 * seqlock (insight/status.h), white box.
 *
 * The record: a run that grows, shrinks and grows again keeps that shape
 * through many halvings; a single spike survives every merge, at its own
 * time; the record stays bounded, ordered and covers the run from its
 * first sample to its last; a copy into less room merges the same way.
 *
 * The seqlock: one thread writes the page as fast as it can (each update
 * a different, checksummed content) while another reads it through a
 * second mapping of the same file, as `ebb top` does.  Every copy the
 * seqlock accepts must have a good checksum; the same reader without the
 * seqlock (raw copies) must see torn ones, which shows the two really
 * overlapped, so the first check could fail. */
#include "unit.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "insight/status.h"

#define MiB ((uint64_t)1 << 20)

static ebb__timeline_point_t point_at(uint64_t ms, uint64_t committed)
{
    ebb__timeline_point_t p = { .ms = ms, .live = committed / 2, .committed = committed,
                                .rss = committed + 10 * MiB, .limit = 0, .purged = ms * 4096 };
    return p;
}

static ebb__timeline_ring_t ring; /* 24 KiB: not on cmocka's stack */
static ebb__timeline_point_t out[EBB_TIMELINE_POINTS + 1];

/* committed of a run: up to 600 MiB, down to 50, up to 900 (per mille of
 * the run's length). */
static uint64_t shape(size_t i, size_t n)
{
    size_t k = i * 1000 / n;
    if (k < 300)
        return 50 * MiB + (uint64_t)k * 550 * MiB / 300;
    if (k < 500)
        return 600 * MiB - (uint64_t)(k - 300) * 550 * MiB / 200;
    if (k < 800)
        return 50 * MiB;
    return 50 * MiB + (uint64_t)(k - 800) * 850 * MiB / 199;
}

static void test_grow_shrink_grow_keeps_its_shape(void **state)
{
    (void)state;
    memset(&ring, 0, sizeof ring);
    const size_t n = 20000; /* 2^5 times the record: five halvings */
    for (size_t i = 0; i < n; i++) {
        ebb__timeline_point_t p = point_at(i * 10, shape(i, n));
        ebb__timeline_ring_add(&ring, &p);
    }
    EXPECT(ring.samples == n, "%llu samples", (unsigned long long)ring.samples);
    EXPECT(ring.nkept <= EBB_TIMELINE_POINTS && ring.nkept >= EBB_TIMELINE_POINTS / 2,
           "%zu points kept", ring.nkept);
    EXPECT(ring.stride >= 32 && (ring.stride & (ring.stride - 1)) == 0, "stride %llu",
           (unsigned long long)ring.stride);
    size_t k = ebb__timeline_ring_copy(&ring, out, EBB_TIMELINE_POINTS + 1);
    EXPECT(k == ring.nkept + (ring.npending != 0), "%zu copied", k);
    /* Ordered, from the first sample's time to the last's. */
    EXPECT(out[0].ms <= 10 * ring.stride, "first point at %llu ms",
           (unsigned long long)out[0].ms);
    EXPECT(out[k - 1].ms >= (n - ring.stride) * 10, "last point at %llu ms",
           (unsigned long long)out[k - 1].ms);
    for (size_t i = 1; i < k; i++)
        SOFT(out[i].ms > out[i - 1].ms, "point %zu at %llu ms, after %llu", i,
             (unsigned long long)out[i].ms, (unsigned long long)out[i - 1].ms);
    END_SOFT();
    /* The shape: a first peak near 600 MiB, a valley near 50 MiB, then a
     * climb past the first peak, in that order. */
    size_t peak1 = 0, valley = 0, peak2 = 0;
    for (size_t i = 0; i < k; i++)
        if (out[i].committed > out[peak1].committed && out[i].ms < n * 10 / 2)
            peak1 = i;
    valley = peak1;
    for (size_t i = peak1; i < k && out[i].ms < n * 10 * 8 / 10; i++)
        if (out[i].committed < out[valley].committed)
            valley = i;
    for (size_t i = valley; i < k; i++)
        if (out[i].committed > out[peak2].committed)
            peak2 = i;
    EXPECT(out[peak1].committed >= 595 * MiB, "first peak %llu MiB",
           (unsigned long long)(out[peak1].committed / MiB));
    EXPECT(out[valley].committed <= 55 * MiB && valley > peak1, "valley %llu MiB at %zu",
           (unsigned long long)(out[valley].committed / MiB), valley);
    EXPECT(out[peak2].committed >= 895 * MiB && peak2 > valley, "second peak %llu MiB at %zu",
           (unsigned long long)(out[peak2].committed / MiB), peak2);
    /* Merging keeps the larger of each figure: purged only grows. */
    for (size_t i = 1; i < k; i++)
        SOFT(out[i].purged >= out[i - 1].purged, "purged fell at point %zu", i);
    END_SOFT();
}

static void test_halving_keeps_a_spike(void **state)
{
    (void)state;
    memset(&ring, 0, sizeof ring);
    const size_t n = 3 * EBB_TIMELINE_POINTS * 8 + 5, spike = 1777;
    for (size_t i = 0; i < n; i++) {
        ebb__timeline_point_t p = point_at(i, i == spike ? 4096 * MiB : 64 * MiB + (i % 7) * MiB);
        ebb__timeline_ring_add(&ring, &p);
    }
    size_t k = ebb__timeline_ring_copy(&ring, out, EBB_TIMELINE_POINTS);
    size_t at = 0;
    for (size_t i = 0; i < k; i++)
        if (out[i].committed > out[at].committed)
            at = i;
    EXPECT(out[at].committed == 4096 * MiB, "the spike became %llu MiB",
           (unsigned long long)(out[at].committed / MiB));
    EXPECT(out[at].ms == spike, "the spike's point is at %llu ms, not %zu",
           (unsigned long long)out[at].ms, spike);
    EXPECT(out[at].rss == 4106 * MiB && out[at].live == 2048 * MiB,
           "the spike's other figures: rss %llu, live %llu MiB",
           (unsigned long long)(out[at].rss / MiB), (unsigned long long)(out[at].live / MiB));
    /* Less room: merged further, the spike still there. */
    ebb__timeline_point_t few[10];
    size_t m = ebb__timeline_ring_copy(&ring, few, 10);
    EXPECT(m >= 5 && m <= 10, "%zu points in room for 10", m);
    uint64_t top = 0;
    for (size_t i = 0; i < m; i++)
        top = few[i].committed > top ? few[i].committed : top;
    EXPECT(top == 4096 * MiB, "the spike became %llu MiB in 10 points",
           (unsigned long long)(top / MiB));
    /* Each of them stands for a tenth of the run or so. */
    EXPECT(few[0].ms < n / 5 && few[m - 1].ms > n * 4 / 5,
           "10 points span %llu..%llu ms of a run of %zu", (unsigned long long)few[0].ms,
           (unsigned long long)few[m - 1].ms, n);
}

/* The first samples are kept one for one. */
static void test_short_run_is_exact(void **state)
{
    (void)state;
    memset(&ring, 0, sizeof ring);
    for (size_t i = 0; i < 100; i++) {
        ebb__timeline_point_t p = point_at(i, i * MiB);
        ebb__timeline_ring_add(&ring, &p);
    }
    size_t k = ebb__timeline_ring_copy(&ring, out, EBB_TIMELINE_POINTS);
    EXPECT(k == 100 && ring.stride == 1, "%zu points, stride %llu", k,
           (unsigned long long)ring.stride);
    for (size_t i = 0; i < k; i++)
        SOFT(out[i].ms == i && out[i].committed == i * MiB, "point %zu changed", i);
    END_SOFT();
}

/* --------------------------------------------------------- the seqlock */

static ebb_status_page_t *writer_map, *reader_map;
static atomic_int stop;
static atomic_ulong writes;

static void *writer(void *arg)
{
    (void)arg;
    static ebb_status_data_t d;
    for (uint64_t n = 1; !atomic_load_explicit(&stop, memory_order_relaxed); n++) {
        /* Every word different from the last update's. */
        uint32_t *w = (uint32_t *)(void *)&d;
        for (size_t i = 0; i < EBB_STATUS_WORDS; i++)
            w[i] = (uint32_t)(n * 2654435761u + i);
        d.updates = n;
        ebb_status_write(writer_map, &d);
        atomic_fetch_add_explicit(&writes, 1, memory_order_relaxed);
    }
    return NULL;
}

static void test_seqlock_never_tears(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/ebb-test-seqlock-%d", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        SKIP_TEST("cannot make %s: no /dev/shm here", path);
    unlink(path);
    EXPECT(ftruncate(fd, (off_t)EBB_STATUS_PAGE_SIZE) == 0, "ftruncate");
    writer_map = mmap(NULL, EBB_STATUS_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    reader_map = mmap(NULL, EBB_STATUS_PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    EXPECT(writer_map != MAP_FAILED && reader_map != MAP_FAILED, "mmap");
    static ebb_status_data_t copy;
    EXPECT(ebb_status_read(reader_map, &copy, 10, NULL) == EBB_STATUS_READ_EMPTY,
           "a page never written reads as empty");
    atomic_store(&stop, 0);
    pthread_t t;
    EXPECT(pthread_create(&t, NULL, writer, NULL) == 0, "writer thread");
    unsigned long torn = 0, good = 0, raw_torn = 0, raw = 0;
    uint64_t last = 0, distinct = 0;
    long long until = 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    until = now.tv_sec * 1000LL + now.tv_nsec / 1000000 + 1500;
    /* At least 1.5 s, and until the raw reader has seen a torn copy (at
     * most 10 s): the overlap is shown, not assumed. */
    for (;;) {
        int r = ebb_status_read(reader_map, &copy, 1000, &torn);
        if (r == EBB_STATUS_READ_OK) {
            good++;
            if (copy.updates != last)
                distinct++;
            last = copy.updates;
        }
        ebb_status_copy_raw(reader_map, &copy);
        raw++;
        raw_torn += copy.checksum != ebb_status_checksum(&copy);
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long ms = now.tv_sec * 1000LL + now.tv_nsec / 1000000;
        if ((ms > until && raw_torn > 0) || ms > until + 8500)
            break;
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    print_message("%lu updates written; seqlock reads: %lu whole (%llu distinct), %lu torn; "
                  "raw reads: %lu, %lu torn\n", atomic_load(&writes), good,
                  (unsigned long long)distinct, torn, raw, raw_torn);
    EXPECT(torn == 0, "%lu copies the seqlock accepted were torn", torn);
    EXPECT(good > 10 && distinct > 10, "%lu whole reads, of %llu updates", good,
           (unsigned long long)distinct);
    EXPECT(raw_torn > 0, "the raw reader never saw a torn copy in %lu reads: the test did not "
                         "make reads and writes overlap", raw);
    munmap(writer_map, EBB_STATUS_PAGE_SIZE);
    munmap(reader_map, EBB_STATUS_PAGE_SIZE);
}

/* The peak's time comes from the coarse clock, "now" from the precise one:
 * a peak raised in the last tick may read a few ms after now.  It is now,
 * not the start of the run (it read 0 before, and tests/api/test_top.c saw
 * a peak at 0 ms once in about 15 runs). */
static void test_a_peak_in_the_last_tick_is_now(void **state)
{
    (void)state;
    ebb__ensure_init();
    ebb__timeline_start();
    uint32_t saved = atomic_load(&ebb__ledger.peak_committed_ms);
    usleep(30000); /* the run is older than the skew */
    atomic_store(&ebb__ledger.peak_committed_ms, ebb__os_now_ms() + 3);
    ebb__timeline_info_t ti;
    ebb__timeline_info(&ti);
    atomic_store(&ebb__ledger.peak_committed_ms, saved);
    assert_true(ti.now_ms >= 30);
    assert_int_equal(ti.peak_committed_ms, ti.now_ms);
}

int main(void)
{
    return RUN_GROUP("timeline", cmocka_unit_test(test_grow_shrink_grow_keeps_its_shape),
                     cmocka_unit_test(test_halving_keeps_a_spike),
                     cmocka_unit_test(test_short_run_is_exact),
                     cmocka_unit_test(test_seqlock_never_tears),
                     cmocka_unit_test(test_a_peak_in_the_last_tick_is_now));
}
