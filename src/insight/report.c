/*
 * report.c -- what ebb holds and why, on demand and when memory runs out.
 *
 * Owns: ebb_report() (text for people, JSON for programs), the automatic
 * reports (the first allocation that fails for want of memory, and the
 * signal EBB_REPORT_SIGNAL), where they go (EBB_REPORT) and in which format
 * (EBB_REPORT_FORMAT).
 *
 * A report is a snapshot taken first and written second: the counters of
 * stats.c (the held categories add up to `mapped`, so the report's do
 * too), the limit and where it came from (and the kernel pressure events
 * pressure.c heard), why the last allocation failed,
 * every size class in use, the largest hole in the address space (what a
 * big allocation could still get), and the sampled allocation sites that
 * hold the most (sample.c: estimates, and the report says so), each with
 * its native frames (symbolised with dladdr) and its runtime stack.  It
 * is written through a stack buffer with diag.c's formatter, never through
 * stdio or malloc: the moment a report matters most is the moment
 * allocation fails, and ebb may be the process's malloc.
 *
 * Who writes the automatic ones.  The first failed allocation writes its
 * report itself, on the failing thread, holding no ebb lock (alloc.c calls
 * here from its slow path's end).  A signal handler may not take ebb's
 * locks (the thread it interrupted may hold one), so the handler only
 * raises a flag and wakes the reporter thread, started when the signal is
 * armed at the first slow path after start-up; that thread writes the
 * report.  Automatic reports are appended to EBB_REPORT (a JSON one is one
 * line, so a file of them is JSON Lines), and a lock keeps two at once
 * apart.
 *
 * The JSON has a versioned schema ("schema": "ebb.report/1"): keys are
 * only ever added within a version; a change of meaning makes version 2.
 * Sampled figures are estimates and say so ("estimated": true).
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

/* -------------------------------------------------------------- writing */

/* Output goes to a file descriptor, or (fd < 0) into memory: the black
 * box keeps its copy of the report in a mapped file. */
typedef struct {
    int fd;
    int failed;  /* a write failed: errno says why */
    int err;
    char *mem;   /* fd < 0: the report goes here, cut at mem_cap - 1 */
    size_t mem_cap, mem_len;
    size_t at;
    char buf[2048];
} out_t;

static void out_flush(out_t *o)
{
    if (o->fd < 0) {
        size_t room = o->mem_cap - 1 - o->mem_len;
        size_t k = o->at < room ? o->at : room;
        memcpy(o->mem + o->mem_len, o->buf, k);
        o->mem_len += k;
        o->mem[o->mem_len] = '\0';
    } else if (o->at && !o->failed && ebb__os_write_all(o->fd, o->buf, o->at) != 0) {
        o->failed = 1;
        o->err = errno;
    }
    o->at = 0;
}

static void out_raw(out_t *o, const char *s, size_t n)
{
    while (n > 0) {
        if (o->at == sizeof o->buf)
            out_flush(o);
        size_t room = sizeof o->buf - o->at;
        size_t k = n < room ? n : room;
        memcpy(o->buf + o->at, s, k);
        o->at += k;
        s += k;
        n -= k;
    }
}

static void outf(out_t *o, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    size_t n = ebb__vformat(line, sizeof line, fmt, ap);
    va_end(ap);
    out_raw(o, line, n);
}

/* n bytes for a reader: "512 B", "12.5 KiB", "1023.9 MiB", "2.0 GiB". */
static void out_size(out_t *o, size_t n)
{
    static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    unsigned u = 0;
    uint64_t whole = n, tenths = 0;
    while (whole >= 1024 && u + 1 < sizeof unit / sizeof unit[0]) {
        uint64_t scaled = (uint64_t)n * 10 >> (10 * (u + 1)); /* n < 2^60 here */
        whole = scaled / 10;
        tenths = scaled % 10;
        u++;
    }
    if (u == 0)
        outf(o, "%zu B", (size_t)n);
    else
        outf(o, "%zu.%u %s", (size_t)whole, (unsigned)tenths, unit[u]);
}

/* The first n bytes of s (up to a NUL) as a JSON string. */
static void out_json_strn(out_t *o, const char *s, size_t n)
{
    out_raw(o, "\"", 1);
    for (const char *end = s ? s + n : s; s && s < end && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = { '\\', (char)c };
            out_raw(o, esc, 2);
        } else if (c < 0x20) {
            outf(o, "\\u00%s%x", c < 0x10 ? "0" : "", (unsigned)c);
        } else {
            out_raw(o, (const char *)&c, 1);
        }
    }
    out_raw(o, "\"", 1);
}

static void out_json_str(out_t *o, const char *s)
{
    out_json_strn(o, s, s ? strlen(s) : 0);
}

/* The next non-empty line of a stack text (`*text` moves past it): its
 * start and length, or NULL at the end. */
static const char *next_line(const char **text, size_t *len)
{
    while (**text) {
        const char *line = *text, *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        *text += n + (nl != NULL);
        if (n > 0) {
            *len = n;
            return line;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------- snapshot */

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
    int brief;                /* the black box's: no address-space scan */
    size_t nclasses;
    ebb_class_stats_t cls[EBB_CLASSES];
    ebb_sample_stats_t samples;
    size_t nsites;            /* entries of site[] filled */
    ebb__site_t site[EBB_REPORT_SITES];
} snapshot_t;

static const char *failure_name(int reason)
{
    switch (reason) {
    case EBB_FAIL_LIMIT:
        return "limit";
    case EBB_FAIL_NO_MEMORY:
        return "no_memory";
    default:
        return NULL;
    }
}

/* brief: the black box's snapshot, taken often, skips reading the
 * address-space map (a system call and a file read per refresh). */
static void take_snapshot(snapshot_t *s, const char *reason, int brief)
{
    s->reason = reason;
    s->pid = ebb__os_pid();
    ebb__os_format_utc(ebb__os_wall_seconds(), s->when);
    ebb_stats(&s->st);
    ebb_limit_info_t li;
    ebb_limit_info(&li);
    s->limit = li.limit;
    s->soft = li.soft;
    s->reserve = li.reserve;
    memcpy(s->limit_source, li.source, sizeof li.source);
    s->pressure_events = li.pressure_events;
    memcpy(s->pressure_source, li.pressure_source, sizeof li.pressure_source);
    ebb_last_failure(&s->failure, 0);
    s->brief = brief;
    s->gap_at = 0;
    s->gap = brief ? 0 : ebb__os_largest_gap(&s->gap_at);
    ebb__os_usage_t use;
    s->rss = ebb__os_usage("", &use) ? (size_t)use.resident : 0;
    s->nclasses = ebb_class_stats(s->cls, EBB_CLASSES);
    if (s->nclasses > EBB_CLASSES)
        s->nclasses = EBB_CLASSES;
    ebb_sample_stats(&s->samples);
    size_t want = brief ? EBB_REPORT_SITES_BRIEF : EBB_REPORT_SITES;
    size_t total = ebb__sample_top(s->site, want);
    s->nsites = total < want ? total : want;
    /* Sites with nothing live left are history, not what holds memory. */
    while (s->nsites > 0 && s->site[s->nsites - 1].live_bytes == 0)
        s->nsites--;
}

/* Bytes the program holds: small blocks handed out and not back in a thread
 * cache, and live large blocks. */
static size_t live_small(const snapshot_t *s)
{
    return s->st.small_used - s->st.small_cached;
}

/* Blocks handed out of pools, as bytes, against the pools' span: the gap is
 * free space inside pools (fragmentation, the part purging cannot return
 * while a neighbour lives). */
static size_t pool_free_bytes(const snapshot_t *s)
{
    return s->st.mapped_pools > s->st.small_used ? s->st.mapped_pools - s->st.small_used : 0;
}

/* ----------------------------------------------------------------- text */

static void text_limit(out_t *o, const snapshot_t *s)
{
    outf(o, "limit       ");
    if (s->limit == 0) {
        outf(o, "none\n");
        return;
    }
    out_size(o, s->limit);
    outf(o, " (%s); soft level ", s->limit_source);
    out_size(o, s->soft);
    outf(o, "; emergency reserve ");
    out_size(o, s->reserve);
    /* What the kernel said, when ebb listens or heard something. */
    if (s->pressure_source[0])
        outf(o, "; kernel pressure events %zu (%s)", s->pressure_events, s->pressure_source);
    else if (s->pressure_events)
        outf(o, "; kernel pressure events %zu", s->pressure_events);
    outf(o, "\n");
}

static void text_failure(out_t *o, const snapshot_t *s)
{
    const ebb_failure_t *f = &s->failure;
    if (f->reason == EBB_FAIL_NONE)
        return;
    outf(o, "failed      ");
    out_size(o, f->request);
    if (f->reason == EBB_FAIL_LIMIT) {
        outf(o, " refused at the limit of ");
        out_size(o, f->limit);
        outf(o, " with ");
        out_size(o, f->committed);
        outf(o, " committed\n");
    } else {
        outf(o, " refused by the system (no memory or address space) with ");
        out_size(o, f->committed);
        outf(o, " committed\n");
    }
}

static void text_row(out_t *o, const char *name, size_t bytes, const char *note)
{
    outf(o, "  %s", name);
    for (size_t pad = strlen(name); pad < 22; pad++)
        out_raw(o, " ", 1);
    out_size(o, bytes);
    outf(o, "%s%s\n", note[0] ? "  " : "", note);
}

static void text_memory(out_t *o, const snapshot_t *s)
{
    const ebb_stats_t *st = &s->st;
    outf(o, "committed   ");
    out_size(o, st->committed);
    outf(o, " (peak ");
    out_size(o, st->peak_committed);
    outf(o, "): ebb's estimate of its resident memory");
    if (s->rss) {
        outf(o, "; the process's RSS ");
        out_size(o, s->rss);
    }
    outf(o, "\n");
    outf(o, "live        ");
    out_size(o, live_small(s) + st->large_used);
    outf(o, ": small blocks ");
    out_size(o, live_small(s));
    outf(o, ", large blocks ");
    out_size(o, st->large_used);
    outf(o, " in %zu\n", st->large_blocks);
    outf(o, "purged      ");
    out_size(o, st->purged);
    outf(o, " given back in %zu calls since start\n", st->purges);
    outf(o, "mapped      ");
    out_size(o, st->mapped);
    outf(o, " (peak ");
    out_size(o, st->peak_mapped);
    outf(o, "), in exactly one of:\n");
    text_row(o, "metadata", st->mapped_meta, "arena headers, thread caches, tables");
    text_row(o, "small blocks in use", live_small(s), "");
    text_row(o, "in thread caches", st->small_cached, "freed, kept for reuse by their thread");
    text_row(o, "free in pools", pool_free_bytes(s), "space between live small blocks");
    text_row(o, "free arena slots", st->mapped_free_slots, "");
    text_row(o, "large blocks", st->mapped_large, "");
    text_row(o, "large, cached", st->mapped_large_cached, "freed, kept for reuse");
}

/* The classes holding the most pool bytes first: at the moment memory ran
 * out, the few that hold it matter, not the sixty that do not. */
static void classes_by_pool_bytes(const snapshot_t *s, unsigned char *order, size_t *n)
{
    size_t k = 0;
    for (size_t i = 0; i < s->nclasses; i++)
        if (s->cls[i].pools != 0 || s->cls[i].used != 0)
            order[k++] = (unsigned char)i;
    for (size_t i = 1; i < k; i++) { /* insertion sort: at most 64 */
        unsigned char c = order[i];
        size_t j = i;
        for (; j > 0 && s->cls[order[j - 1]].pool_bytes < s->cls[c].pool_bytes; j--)
            order[j] = order[j - 1];
        order[j] = c;
    }
    *n = k;
}

static void text_classes(out_t *o, const snapshot_t *s)
{
    unsigned char order[EBB_CLASSES];
    size_t n;
    classes_by_pool_bytes(s, order, &n);
    outf(o, "size classes by pool bytes (block size: blocks out, their bytes, pools, fill):\n");
    size_t shown = n < EBB_REPORT_CLASSES ? n : EBB_REPORT_CLASSES;
    for (size_t i = 0; i < shown; i++) {
        const ebb_class_stats_t *c = &s->cls[order[i]];
        size_t bytes = c->used * c->size;
        unsigned fill = c->pool_bytes ? (unsigned)((uint64_t)bytes * 100 / c->pool_bytes) : 0;
        outf(o, "  %zu B: %zu, ", c->size, c->used);
        out_size(o, bytes);
        outf(o, ", %zu (", c->pools);
        out_size(o, c->pool_bytes);
        outf(o, "), %u%%\n", fill);
    }
    if (n == 0)
        outf(o, "  none\n");
    if (n > shown) {
        size_t rest = 0;
        for (size_t i = shown; i < n; i++)
            rest += s->cls[order[i]].pool_bytes;
        outf(o, "  and %zu more classes in ", n - shown);
        out_size(o, rest);
        outf(o, " of pools\n");
    }
}

static void text_address_space(out_t *o, const snapshot_t *s)
{
    if (s->brief)
        return;
    outf(o, "address space: largest free range ");
    if (s->gap == 0) {
        outf(o, "unknown (/proc/self/maps unreadable)\n");
        return;
    }
    out_size(o, s->gap);
    outf(o, " at %p\n", (void *)s->gap_at);
}

/* Native frames shown per site: the allocating call and its callers, fewer
 * when the runtime's stack says the rest. */
static int frames_shown(const ebb__site_t *site, int brief)
{
    int most = site->stack[0] ? EBB_REPORT_FRAMES / 2 : EBB_REPORT_FRAMES;
    if (brief)
        most = most > 4 ? 4 : most;
    return site->depth < most ? site->depth : most;
}

/* Each line of the site's stack text, prefixed. */
static void text_stack_lines(out_t *o, const char *text, const char *first, const char *rest)
{
    const char *prefix = first, *line;
    size_t n;
    while ((line = next_line(&text, &n)) != NULL) {
        outf(o, "%s", prefix);
        out_raw(o, line, n);
        out_raw(o, "\n", 1);
        prefix = rest;
    }
}

static void text_sites(out_t *o, const snapshot_t *s)
{
    const ebb_sample_stats_t *st = &s->samples;
    if (st->rate == 0 && st->sites == 0) {
        outf(o, "allocation sites: not sampled (EBB_SAMPLE_RATE=0)\n");
        return;
    }
    outf(o, "top allocation sites by live bytes, estimated from samples (1 per ");
    out_size(o, st->rate);
    outf(o, " allocated; %zu samples, %zu live, %zu sites", (size_t)st->samples, (size_t)st->live,
         st->sites);
    if (st->dropped)
        outf(o, ", %zu dropped: the site table was full", (size_t)st->dropped);
    outf(o, "):\n");
    if (s->nsites == 0)
        outf(o, "  none with live samples\n");
    for (size_t i = 0; i < s->nsites; i++) {
        const ebb__site_t *site = &s->site[i];
        outf(o, "  %zu. ~", i + 1);
        out_size(o, site->live_bytes);
        outf(o, " live in ~%zu blocks (~", (size_t)site->live_count);
        out_size(o, site->total_bytes);
        outf(o, " allocated in all)\n");
        text_stack_lines(o, site->stack, "       at ", "          ");
        for (int f = 0; f < frames_shown(site, s->brief); f++) {
            char sym[256];
            ebb__os_symbolise(site->pcs[f], sym, sizeof sym);
            outf(o, "       %s %s\n", f == 0 ? "in" : "<-", sym);
        }
    }
}

static void write_text(out_t *o, const snapshot_t *s)
{
    outf(o, "== ebb report: pid %d, %s, ebb %s\n", (int)s->pid, s->when, ebb_version());
    outf(o, "reason      %s\n", s->reason);
    text_limit(o, s);
    text_failure(o, s);
    text_memory(o, s);
    text_classes(o, s);
    text_sites(o, s);
    text_address_space(o, s);
    outf(o, "== end of ebb report\n");
}

/* ----------------------------------------------------------------- JSON */

static void json_key(out_t *o, const char *key, int first)
{
    if (!first)
        out_raw(o, ",", 1);
    out_json_str(o, key);
    out_raw(o, ":", 1);
}

static void json_num(out_t *o, const char *key, size_t v, int first)
{
    json_key(o, key, first);
    outf(o, "%zu", v);
}

static void json_limit(out_t *o, const snapshot_t *s)
{
    json_key(o, "limit", 0);
    if (s->limit == 0) {
        outf(o, "null");
        return;
    }
    out_raw(o, "{", 1);
    json_num(o, "bytes", s->limit, 1);
    json_num(o, "soft_bytes", s->soft, 0);
    json_num(o, "reserve_bytes", s->reserve, 0);
    json_key(o, "source", 0);
    out_json_str(o, s->limit_source);
    json_num(o, "pressure_events", s->pressure_events, 0);
    json_key(o, "pressure_source", 0);
    if (s->pressure_source[0])
        out_json_str(o, s->pressure_source);
    else
        outf(o, "null");
    out_raw(o, "}", 1);
}

static void json_failure(out_t *o, const snapshot_t *s)
{
    const ebb_failure_t *f = &s->failure;
    json_key(o, "failure", 0);
    if (f->reason == EBB_FAIL_NONE) {
        outf(o, "null");
        return;
    }
    out_raw(o, "{", 1);
    json_key(o, "kind", 1);
    out_json_str(o, failure_name(f->reason));
    json_num(o, "request", f->request, 0);
    json_num(o, "committed", f->committed, 0);
    json_num(o, "limit", f->limit, 0);
    out_raw(o, "}", 1);
}

static void json_memory(out_t *o, const snapshot_t *s)
{
    const ebb_stats_t *st = &s->st;
    json_key(o, "memory", 0);
    out_raw(o, "{", 1);
    json_num(o, "committed", st->committed, 1);
    json_num(o, "peak_committed", st->peak_committed, 0);
    json_num(o, "mapped", st->mapped, 0);
    json_num(o, "peak_mapped", st->peak_mapped, 0);
    json_num(o, "live", live_small(s) + st->large_used, 0);
    json_num(o, "live_small", live_small(s), 0);
    json_num(o, "live_large", st->large_used, 0);
    json_num(o, "large_blocks", st->large_blocks, 0);
    json_num(o, "purged", st->purged, 0);
    json_num(o, "purges", st->purges, 0);
    json_num(o, "process_rss", s->rss, 0);
    out_raw(o, "}", 1);
    /* The categories of `mapped`: they add up to it. */
    json_key(o, "held", 0);
    out_raw(o, "{", 1);
    json_num(o, "metadata", st->mapped_meta, 1);
    json_num(o, "small_in_use", live_small(s), 0);
    json_num(o, "thread_caches", st->small_cached, 0);
    json_num(o, "free_in_pools", pool_free_bytes(s), 0);
    json_num(o, "free_arena_slots", st->mapped_free_slots, 0);
    json_num(o, "large", st->mapped_large, 0);
    json_num(o, "large_cached", st->mapped_large_cached, 0);
    out_raw(o, "}", 1);
}

static void json_classes(out_t *o, const snapshot_t *s)
{
    json_key(o, "classes", 0);
    out_raw(o, "[", 1);
    int first = 1;
    for (size_t i = 0; i < s->nclasses; i++) {
        const ebb_class_stats_t *c = &s->cls[i];
        if (c->pools == 0 && c->used == 0)
            continue;
        if (!first)
            out_raw(o, ",", 1);
        first = 0;
        out_raw(o, "{", 1);
        json_num(o, "size", c->size, 1);
        json_num(o, "blocks", c->used, 0);
        json_num(o, "bytes", c->used * c->size, 0);
        json_num(o, "pools", c->pools, 0);
        json_num(o, "pool_bytes", c->pool_bytes, 0);
        out_raw(o, "}", 1);
    }
    out_raw(o, "]", 1);
}

static void json_site(out_t *o, const ebb__site_t *site)
{
    out_raw(o, "{", 1);
    json_num(o, "live_bytes", (size_t)site->live_bytes, 1);
    json_num(o, "live_blocks", (size_t)site->live_count, 0);
    json_num(o, "total_bytes", (size_t)site->total_bytes, 0);
    json_num(o, "total_blocks", (size_t)site->total_count, 0);
    json_num(o, "samples", (size_t)site->samples, 0);
    json_key(o, "frames", 0);
    out_raw(o, "[", 1);
    for (int f = 0; f < site->depth; f++) {
        char sym[256];
        ebb__os_symbolise(site->pcs[f], sym, sizeof sym);
        if (f)
            out_raw(o, ",", 1);
        out_json_str(o, sym);
    }
    out_raw(o, "]", 1);
    /* The runtime's stack, one string per line (innermost first). */
    json_key(o, "stack", 0);
    out_raw(o, "[", 1);
    const char *text = site->stack, *line;
    size_t n;
    for (int first = 1; (line = next_line(&text, &n)) != NULL; first = 0) {
        if (!first)
            out_raw(o, ",", 1);
        out_json_strn(o, line, n);
    }
    out_raw(o, "]}", 2);
}

static void json_sites(out_t *o, const snapshot_t *s)
{
    const ebb_sample_stats_t *st = &s->samples;
    json_key(o, "sites", 0);
    out_raw(o, "{", 1);
    json_key(o, "estimated", 1);
    outf(o, "true");
    json_num(o, "rate", st->rate, 0);
    json_num(o, "samples", (size_t)st->samples, 0);
    json_num(o, "live_samples", (size_t)st->live, 0);
    json_num(o, "sites", st->sites, 0);
    json_num(o, "dropped", (size_t)st->dropped, 0);
    json_key(o, "top", 0);
    out_raw(o, "[", 1);
    for (size_t i = 0; i < s->nsites; i++) {
        if (i)
            out_raw(o, ",", 1);
        json_site(o, &s->site[i]);
    }
    out_raw(o, "]}", 2);
}

static void write_json(out_t *o, const snapshot_t *s)
{
    out_raw(o, "{", 1);
    json_key(o, "schema", 1);
    out_json_str(o, "ebb.report/1");
    json_key(o, "ebb", 0);
    out_json_str(o, ebb_version());
    json_num(o, "pid", (size_t)s->pid, 0);
    json_key(o, "time", 0);
    out_json_str(o, s->when);
    json_key(o, "reason", 0);
    out_json_str(o, s->reason);
    json_limit(o, s);
    json_failure(o, s);
    json_memory(o, s);
    json_classes(o, s);
    json_sites(o, s);
    json_key(o, "address_space", 0);
    out_raw(o, "{", 1);
    json_num(o, "largest_free", s->gap, 1);
    json_key(o, "largest_free_at", 0);
    outf(o, "\"%p\"", (void *)s->gap_at);
    out_raw(o, "}", 1);
    out_raw(o, "}\n", 2);
}

/* ---------------------------------------------------------- public API */

static int write_report(int fd, int format, const char *reason)
{
    /* ~12 KiB of snapshot and 2 KiB of buffer: the stack, never the heap. */
    snapshot_t s;
    out_t o;
    o.fd = fd;
    o.failed = 0;
    o.at = 0;
    take_snapshot(&s, reason, 0);
    if (format == EBB_REPORT_JSON)
        write_json(&o, &s);
    else
        write_text(&o, &s);
    out_flush(&o);
    if (o.failed) {
        errno = o.err;
        return -1;
    }
    return 0;
}

/* The black box's text (blackbox.c): a first line of key=value counters
 * for `ebb run` to read, then the text report without the address space.
 * Returns the length written into buf (NUL-terminated). */
size_t ebb__report_brief(char *buf, size_t cap, const char *reason)
{
    snapshot_t s;
    out_t o;
    o.fd = -1;
    o.failed = 0;
    o.at = 0;
    o.mem = buf;
    o.mem_cap = cap;
    o.mem_len = 0;
    buf[0] = '\0';
    take_snapshot(&s, reason, 1);
    outf(&o, "committed=%zu peak_committed=%zu live=%zu mapped=%zu limit=%zu purged=%zu "
             "rss=%zu failure=%d request=%zu\n",
         s.st.committed, s.st.peak_committed, live_small(&s) + s.st.large_used, s.st.mapped,
         s.limit, s.st.purged, s.rss, s.failure.reason, s.failure.request);
    write_text(&o, &s);
    out_flush(&o);
    return o.mem_len;
}

EBB_API int ebb_report(int fd, int format)
{
    if (fd < 0 || (format != EBB_REPORT_TEXT && format != EBB_REPORT_JSON)) {
        errno = EINVAL;
        return -1;
    }
    ebb__ensure_init();
    return write_report(fd, format, "asked for (ebb_report)");
}

/* ---------------------------------------------------- automatic reports */

static struct {
    ebb__lock_t lock;          /* one automatic report at a time */
    _Atomic int failure_done;  /* the first failure's report was written */
    _Atomic int asked;         /* the signal came: a report is owed */
    _Atomic int armed;         /* 0 not yet, 1 arming or armed */
} Rep = { .lock = EBB_LOCK_INIT };

/* Write an automatic report where EBB_REPORT says. */
static void auto_report(const char *reason)
{
    const ebb__options_t *opt = &ebb__opt;
    if (opt->report_off)
        return;
    ebb__lock(&Rep.lock);
    int saved = errno;
    int fd = 2, opened = 0;
    if (opt->report_path[0]) {
        fd = ebb__os_open_append(opt->report_path);
        opened = fd >= 0;
        if (!opened) {
            ebb__diag("ebb: cannot write the report to %s; writing it to stderr\n",
                      opt->report_path);
            fd = 2;
        }
    }
    write_report(fd, opt->report_json ? EBB_REPORT_JSON : EBB_REPORT_TEXT, reason);
    if (opened)
        ebb__os_close(fd);
    errno = saved;
    ebb__unlock(&Rep.lock);
}

/* A request the machine could never meet (more than its memory and swap,
 * or than any object can be) is the program's error, or a test of its
 * MemoryError, not memory running out: no report for it. */
static int could_ever_fit(size_t request)
{
    if (request > (size_t)PTRDIFF_MAX)
        return 0;
    ebb__os_bound_t machine;
    return !ebb__os_physical_memory("", &machine) || request <= machine.bytes;
}

void ebb__report_failure(void)
{
    /* Once written, later failures cost one load: a program probing for
     * the biggest block it can get fails often. */
    if (atomic_load_explicit(&Rep.failure_done, memory_order_relaxed))
        return;
    ebb_failure_t f;
    int reason = ebb_last_failure(&f, 0);
    if (reason == EBB_FAIL_NONE || (reason == EBB_FAIL_NO_MEMORY && !could_ever_fit(f.request)))
        return;
    if (atomic_exchange_explicit(&Rep.failure_done, 1, memory_order_relaxed))
        return;
    auto_report(reason == EBB_FAIL_LIMIT ? "first allocation refused at the limit"
                                         : "first allocation the system refused");
}

static void on_report_signal(int sig)
{
    (void)sig;
    atomic_store_explicit(&Rep.asked, 1, memory_order_relaxed);
    ebb__os_wake_all(&Rep.asked);
}

static void reporter_main(void *arg)
{
    (void)arg;
    ebb__thread_mark_internal();
    for (;;) {
        ebb__os_wait(&Rep.asked, 0, -1);
        if (atomic_exchange_explicit(&Rep.asked, 0, memory_order_relaxed))
            auto_report("signal EBB_REPORT_SIGNAL");
    }
}

/* From the first slow path after start-up, holding no lock: start the
 * reporter thread, then catch the signal (in that order, so a signal never
 * finds nobody to write). */
void ebb__report_arm_slow(void)
{
    int sig = ebb__opt.report_signal;
    int was = 0;
    if (sig == 0 || !atomic_compare_exchange_strong_explicit(&Rep.armed, &was, 1,
                                                             memory_order_relaxed,
                                                             memory_order_relaxed))
        return;
    if (ebb__os_thread_start(reporter_main, NULL, "ebb-report") != 0) {
        ebb__diag("ebb: cannot start the report thread; EBB_REPORT_SIGNAL ignored\n");
        return;
    }
    if (ebb__os_on_signal(sig, on_report_signal) != 0)
        ebb__diag("ebb: cannot catch signal %d; EBB_REPORT_SIGNAL ignored\n", sig);
}

/* A fork child has no reporter thread: arm again on its first slow path. */
static void reports_fork_child(void)
{
    ebb__lock_reset(&Rep.lock);
    atomic_store_explicit(&Rep.armed, 0, memory_order_relaxed);
    atomic_store_explicit(&Rep.asked, 0, memory_order_relaxed);
}

EBB_HIDDEN const ebb__lockset_t ebb__report_locks = { "reports", NULL, NULL, reports_fork_child, 0 };
