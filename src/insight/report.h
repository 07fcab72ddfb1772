/*
 * report.h -- the pieces of the report that its files share.
 *
 * A report is written in three steps, by five files.  report.c takes a
 * snapshot (below); report_out.c owns where the bytes go (an fd, or memory
 * for the black box).  report_walk.c walks the snapshot once and says what the
 * report contains: containers (the report itself, its sections, lists and
 * their entries) and items, each with a value and its unit.  A back end
 * writes what the walk says in one format: report_text.c the text for
 * people, report_json.c the JSON for programs.
 *
 * Every item and container has two names, one for each format: a key (the
 * JSON's) and words (the text's: a phrase, with the value where "%s"
 * stands).  A format leaves out whatever it has no name for, and all that
 * is inside a container it leaves out; that is how the walk says where the
 * formats differ (the text mentions a value in another place than the JSON
 * holds it, or shortens a list).
 *
 * Nothing here allocates: the report matters most when allocation fails,
 * and ebb may be the process's malloc.
 */
#ifndef EBB_REPORT_H
#define EBB_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* ---------------------------------------------------------------- output */

/* Output goes to a file descriptor, or (fd < 0) into memory: the black
 * box keeps its copy of the report in a mapped file. */
typedef struct {
    int fd;
    int failed;  /* a write failed: errno says why */
    int err;
    char *mem;   /* fd < 0: the report goes here, cut at mem_cap - 1 */
    size_t mem_cap, mem_len;
    int cut;     /* in memory: something did not fit */
    int html;    /* JSON inside an HTML page: every '<' written as \u003c (so
                  * no "</script>" in a string ends the page's data early) */
    size_t at;
    char buf[2048];
} ebb__report_out_t;

void ebb__report_put(ebb__report_out_t *o, const char *s, size_t n) EBB_HIDDEN;
/* Write out what the buffer holds (report_out.c). */
void ebb__report_flush(ebb__report_out_t *o) EBB_HIDDEN;
/* Formatted with diag.c's formatter, at most 511 bytes at a time. */
void ebb__report_putf(ebb__report_out_t *o, const char *fmt, ...) EBB_HIDDEN;

/* -------------------------------------------------------------- snapshot */

typedef struct {
    const char *reason;       /* why this report was written */
    long pid;
    char when[24];
    ebb_stats_t st;
    size_t limit, soft, reserve;
    char limit_source[sizeof ((ebb_limit_info_t *)0)->source];
    size_t pressure_events;   /* the kernel's pressure events (pressure.c) */
    char pressure_source[sizeof ((ebb_limit_info_t *)0)->pressure_source];
    ebb_failure_t failure;    /* the calling thread's last failure */
    uintptr_t gap_at;
    size_t gap;
    size_t rss;               /* the process's resident set, 0 if unknown */
    uint64_t peak_uptime_ns;  /* when st.peak_committed was reached: ns after start */
    char peak_when[24];       /* ...and in UTC; "" if never */
    int rss_read;             /* rss_parts holds a reading (never in the brief) */
    ebb_rss_t rss_parts;      /* the resident set taken apart (ebb_rss) */
    int brief;                /* the black box's: no address-space scan */
    int native;               /* the text shows sites' native frames (EBB_REPORT_NATIVE) */
    size_t nclasses;
    ebb_class_stats_t cls[EBB_CLASSES];
    ebb_sample_stats_t samples;
    size_t nsites;            /* entries of site[] filled */
    ebb__site_t site[EBB_REPORT_SITES];
    int have_map;             /* map holds a heap map (full reports only) */
    ebb__heapmap_t map;       /* mapped: dropped once the report is written */
    int have_peak;            /* a peak snapshot was taken (peak.c) */
    ebb__peak_t peak;         /* its sites are read as the walk writes them */
    /* What the JSON keeps of the sites: the black box's must fit its slot
     * (blackbox.h), and each native frame it names costs a dladdr. */
    size_t json_peak_sites;   /* peak sites listed; every one if 0 */
    int json_frames;          /* native frames per site; every one if 0 */
    ebb__timeline_info_t timeline;
    /* Memory over time, the last point "now": the writer's room (6 KiB),
     * apart, since the black box's snapshot, taken on any thread's slow
     * path, has none (NULL). */
    ebb__timeline_point_t *point;
    size_t npoints;
} ebb__report_snapshot_t;

/* A snapshot of now (report.c): brief, the black box's (no address-space
 * scan, fewer sites); points, room for EBB_REPORT_TIMELINE_POINTS points
 * of the timeline, or NULL for none. */
void ebb__report_snapshot(ebb__report_snapshot_t *s, const char *reason, int brief,
                          ebb__timeline_point_t *points) EBB_HIDDEN;
/* What a snapshot holds beyond itself (the heap map's buffer), let go. */
void ebb__report_snapshot_drop(ebb__report_snapshot_t *s) EBB_HIDDEN;
/* An output into memory, or to a file descriptor (mem NULL). */
void ebb__report_out_init(ebb__report_out_t *o, int fd, char *mem, size_t cap) EBB_HIDDEN;

/* Bytes the program holds in small blocks: handed out and not back in a
 * thread cache. */
static inline size_t ebb__report_live_small(const ebb__report_snapshot_t *s)
{
    return s->st.small_used - s->st.small_cached;
}

/* ------------------------------------------------------------- back ends */

/* What a value is, so that each format writes it its own way. */
typedef enum {
    EBB__REPORT_NULL,     /* none: the JSON's null; the text has only the words */
    EBB__REPORT_BYTES,    /* n bytes: "12.5 KiB" for people, the number for programs */
    EBB__REPORT_COUNT,    /* n of something */
    EBB__REPORT_SIGNED,   /* n bytes, n read as signed (two's complement) */
    EBB__REPORT_PERCENT,  /* n per cent */
    EBB__REPORT_FLAG,     /* n != 0: true */
    EBB__REPORT_ADDRESS,  /* the address n */
    EBB__REPORT_TEXT,     /* the len bytes at str */
    EBB__REPORT_RAW       /* JSON written by raw(out, arg) itself (the JSON's only) */
} ebb__report_unit_t;

typedef struct {
    ebb__report_unit_t unit;
    size_t n;
    const char *str;
    size_t len;
    void (*raw)(ebb__report_out_t *o, void *arg);
    void *arg;
} ebb__report_value_t;

_Static_assert(sizeof(size_t) >= sizeof(uintptr_t), "an address fits a value's n");

/* Where a container or an item stands, for a format that punctuates. */
typedef struct {
    unsigned depth;  /* containers around it; 0: the report itself */
    int in_list;     /* an entry of a list rather than a named member */
    int first;       /* the first this format writes in its container */
} ebb__report_at_t;

typedef struct {
    /* The name this format goes by (the key, or the words); NULL leaves
     * the item out, or the container and all inside it. */
    const char *(*name)(const char *key, const char *words);
    void (*open)(ebb__report_out_t *o, const ebb__report_at_t *at, const char *name, int list);
    void (*item)(ebb__report_out_t *o, const ebb__report_at_t *at, const char *name,
                 const ebb__report_value_t *v);
    /* depth: the closing container's own, as it was opened */
    void (*close)(ebb__report_out_t *o, unsigned depth, int list);
} ebb__report_back_t;

extern EBB_HIDDEN const ebb__report_back_t ebb__report_as_text;
extern EBB_HIDDEN const ebb__report_back_t ebb__report_as_json;

/* This process's address space as `ebb map --json` writes it, or null
 * (report_addrmap.c): a raw value for the JSON. */
void ebb__report_address_map(ebb__report_out_t *o, void *unused) EBB_HIDDEN;

/* The page: the viewer around the JSON report (report_files.c). */
void ebb__report_html(ebb__report_out_t *o, const ebb__report_snapshot_t *s) EBB_HIDDEN;

/* The one walk: the whole report, from the snapshot, to one back end. */
void ebb__report_walk(ebb__report_out_t *o, const ebb__report_back_t *back,
                      const ebb__report_snapshot_t *s) EBB_HIDDEN;

/* ----------------------------------------------------------- report files */

/* The peak's stacks, folded (report_files.c): a line per site, frames
 * outermost first joined by ';', then its live bytes. */
void ebb__report_folded(ebb__report_out_t *o, const ebb__report_snapshot_t *s) EBB_HIDDEN;

#endif
