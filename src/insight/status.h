/*
 * status.h -- the status page's layout and its seqlock, shared by the
 * library (insight/status.c writes the page) and the `ebb` tool (cli/top.c
 * reads it).  Version 1.
 *
 * The page is a file of EBB_STATUS_PAGE_SIZE bytes, /dev/shm/ebb-UID-PID,
 * mode 0600, mapped shared by its process:
 *
 *   ebb_status_header_t   written once, before the magic (which goes last)
 *   ebb_status_data_t     rewritten on each update, under `seq`
 *
 * Every field has a fixed width and sits at a multiple of its size, and the
 * sizes are checked below, so a 64-bit `ebb top` reads a 32-bit process's
 * page (i386 aligns 8-byte fields to 4 inside structures; none depends on
 * it).
 *
 * The seqlock.  One writer at a time (the library's lock): it makes `seq`
 * odd, writes the data, then makes it even again (release order).  A reader
 * copies the data between two reads of `seq` and keeps the copy only if
 * both saw the same even value: an update that overlapped the copy changed
 * `seq`, and the copy is taken again.  The data carries a checksum of
 * itself, checked after the copy: a torn copy that the seqlock let through
 * (it never should) shows as a bad checksum, which the tests count.  Both
 * sides move the data as 32-bit relaxed atomics, so the overlap of a copy
 * and an update is no data race in C11's terms (ThreadSanitizer agrees);
 * on x86 they are plain moves.
 */
#ifndef EBB_STATUS_H
#define EBB_STATUS_H

#include <stddef.h>
#include <stdint.h>

#define EBB_STATUS_MAGIC "EBBTOP1\n"
#define EBB_STATUS_VERSION 1u
#define EBB_STATUS_DIR "/dev/shm"
#define EBB_STATUS_PREFIX "ebb-" /* then the uid, '-', the pid */
#define EBB_STATUS_POINTS 512    /* the timeline's ring, whole */
#define EBB_STATUS_SITES_MAX 10
#define EBB_STATUS_SITE_TEXT 248 /* up to three lines, NUL-terminated */
#define EBB_STATUS_CMDLINE 256

/* One point of the memory timeline: bytes, and ms since ebb started. */
typedef struct {
    uint64_t ms, live, committed, rss, limit, purged;
} ebb_status_point_t;

typedef struct {
    uint64_t live_bytes;   /* estimated from samples */
    uint64_t live_blocks;
    char text[EBB_STATUS_SITE_TEXT]; /* where: lines of the runtime's stack, then native frames */
} ebb_status_site_t;

typedef struct {
    char magic[8];            /* EBB_STATUS_MAGIC: stored last, once the rest is there */
    uint32_t version;         /* EBB_STATUS_VERSION */
    uint32_t page_size;       /* sizeof(ebb_status_page_t) */
    int64_t pid;
    uint32_t uid;             /* effective user id */
    uint32_t word_bits;       /* 32 or 64: the process's */
    int64_t started_wall_ms;  /* wall clock when ebb started, ms since the epoch */
    char cmdline[EBB_STATUS_CMDLINE]; /* arguments joined by spaces, cut to fit */
    uint32_t seq;             /* odd while an update is written; 0: none yet */
    uint32_t reserved;
} ebb_status_header_t;

typedef struct {
    uint64_t updated_wall_ms; /* this update, ms since the epoch */
    uint64_t uptime_ms;       /* ms since ebb started, at this update */
    uint64_t updates;         /* updates written, this one included */
    uint64_t live;            /* bytes the program holds */
    uint64_t committed;       /* ebb's estimate of its resident memory */
    uint64_t rss;             /* the process's resident set, 0 if unknown */
    uint64_t mapped;          /* address space ebb holds */
    uint64_t peak_committed;
    uint64_t peak_committed_ms; /* when, ms since ebb started */
    uint64_t limit, soft;     /* 0: no limit */
    uint64_t purged, purges;  /* bytes given back since start, in calls */
    uint64_t purger_wakes;    /* the purger thread's wake-ups since start */
    uint64_t sample_rate;     /* mean bytes between samples, 0 off */
    uint64_t samples;         /* allocations sampled since start */
    uint64_t stride;          /* samples each timeline point stands for */
    uint32_t npoints, nsites;
    ebb_status_site_t site[EBB_STATUS_SITES_MAX];  /* most live bytes first */
    ebb_status_point_t point[EBB_STATUS_POINTS];   /* oldest first */
    uint32_t checksum;        /* ebb_status_checksum of everything above */
    uint32_t reserved;
} ebb_status_data_t;

typedef struct {
    ebb_status_header_t h;
    ebb_status_data_t d;
} ebb_status_page_t;

_Static_assert(sizeof(ebb_status_point_t) == 48 && sizeof(ebb_status_site_t) == 264,
               "fixed-width records");
_Static_assert(sizeof(ebb_status_header_t) == 304 && offsetof(ebb_status_header_t, seq) == 296,
               "the header is the same for 32- and 64-bit processes");
_Static_assert(offsetof(ebb_status_data_t, site) == 144 &&
               offsetof(ebb_status_data_t, point) == 144 + 264 * EBB_STATUS_SITES_MAX &&
               offsetof(ebb_status_data_t, checksum) == 144 + 264 * EBB_STATUS_SITES_MAX +
                                                            48 * EBB_STATUS_POINTS &&
               sizeof(ebb_status_data_t) % 8 == 0,
               "the data is the same for 32- and 64-bit processes");
#define EBB_STATUS_PAGE_SIZE sizeof(ebb_status_page_t)

#define EBB_STATUS_WORDS (offsetof(ebb_status_data_t, checksum) / 4)

/* FNV-1a over the data's 32-bit words, up to the checksum. */
static inline uint32_t ebb_status_checksum(const ebb_status_data_t *d)
{
    const uint32_t *w = (const uint32_t *)(const void *)d;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < EBB_STATUS_WORDS; i++)
        h = (h ^ w[i]) * 16777619u;
    return h;
}

/* The writer (its caller holds the one writer's lock): d, checksummed, into
 * the page. */
static inline void ebb_status_write(ebb_status_page_t *page, ebb_status_data_t *d)
{
    d->checksum = ebb_status_checksum(d);
    d->reserved = 0;
    uint32_t seq = __atomic_load_n(&page->h.seq, __ATOMIC_RELAXED);
    __atomic_store_n(&page->h.seq, seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE); /* odd before any word changes */
    const uint32_t *from = (const uint32_t *)(const void *)d;
    uint32_t *to = (uint32_t *)(void *)&page->d;
    for (size_t i = 0; i < sizeof *d / 4; i++)
        __atomic_store_n(&to[i], from[i], __ATOMIC_RELAXED);
    __atomic_store_n(&page->h.seq, seq + 2, __ATOMIC_RELEASE);
}

/* The data, copied whole whatever `seq` says: for the tests, to show what
 * a reader without the seqlock would see. */
static inline void ebb_status_copy_raw(const ebb_status_page_t *page, ebb_status_data_t *out)
{
    const uint32_t *from = (const uint32_t *)(const void *)&page->d;
    uint32_t *to = (uint32_t *)(void *)out;
    for (size_t i = 0; i < sizeof *out / 4; i++)
        to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
}

/* What a read found. */
enum {
    EBB_STATUS_READ_OK = 1,      /* out holds one whole update */
    EBB_STATUS_READ_EMPTY = 0,   /* nothing written yet */
    EBB_STATUS_READ_BUSY = -1,   /* every try overlapped an update */
    EBB_STATUS_READ_DAMAGED = -2 /* a quiet page whose checksum is wrong */
};

/* One consistent copy of the page's data into out, in at most `tries`
 * tries; *torn (when not NULL) counts copies the seqlock passed whose
 * checksum was wrong (there should be none). */
static inline int ebb_status_read(const ebb_status_page_t *page, ebb_status_data_t *out,
                                  int tries, unsigned long *torn)
{
    int damaged = 0;
    for (int t = 0; t < tries; t++) {
        uint32_t before = __atomic_load_n(&page->h.seq, __ATOMIC_ACQUIRE);
        if (before == 0)
            return EBB_STATUS_READ_EMPTY;
        if (before & 1u)
            continue;
        ebb_status_copy_raw(page, out);
        __atomic_thread_fence(__ATOMIC_ACQUIRE); /* the copy before the second look */
        if (__atomic_load_n(&page->h.seq, __ATOMIC_RELAXED) != before)
            continue;
        if (out->checksum == ebb_status_checksum(out))
            return EBB_STATUS_READ_OK;
        damaged = 1;
        if (torn)
            ++*torn;
    }
    return damaged ? EBB_STATUS_READ_DAMAGED : EBB_STATUS_READ_BUSY;
}

#endif
