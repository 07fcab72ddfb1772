/*
 * report_walk.c -- what a report says, once, for both of its formats.
 *
 * Owns: the order and the content of the report (the limit, the last
 * failure, the memory and the categories it is held in, the resident set
 * taken apart, the size classes,
 * the sampled sites with their frames and stack lines, the address space),
 * each value with its unit, and the names both formats give it.
 *
 * Why one walk.  The text and the JSON say the same things; written as two
 * parallel sets of writers, each change to what a report says was made
 * twice, in the same order, with nothing to hold the two together.  Here
 * every value is taken from the snapshot once, and goes to a back end
 * (report_text.c or report_json.c, a few functions each) under two names:
 * the JSON's key and the text's words.  The words are the phrase as it
 * reads, spaces and line ends included, with the value where "%s" stands:
 * the text is prose and the JSON is data, and where the two put a value in
 * different places, or one leaves it out, the walk names it for one format
 * only (NULL for the other), so that each difference is in sight here
 * rather than spread over two writers.  Two of them are whole lists: the
 * size classes (the text lists the few holding the most, the JSON every
 * one in size order) and a site's stack lines (the text puts them above
 * the native frames, the JSON after).
 *
 * The walker keeps what the formats need to know of the nesting (for the
 * JSON's commas) and which containers the current format leaves out, and
 * symbolises a native frame (a dladdr call) only when the format shows it:
 * the text shows a few frames a site, the JSON all of them.
 */
#include "report.h"

#include <string.h>

typedef struct {
    const ebb__report_back_t *back;
    ebb__report_out_t *out;
    unsigned hidden;  /* open containers the format leaves out, nested */
    unsigned depth;   /* open containers the format writes */
    uint32_t list;    /* bit d: the container at depth d is a list */
    uint32_t used;    /* bit d: something is written in it already */
} walker_t;

static const char *walk_name(const walker_t *w, const char *key, const char *words)
{
    return w->hidden ? NULL : w->back->name(key, words);
}

/* The place of the next thing written in the innermost open container,
 * which holds something from then on. */
static ebb__report_at_t walk_place(walker_t *w)
{
    ebb__report_at_t at = { .depth = w->depth, .in_list = 0, .first = 1 };
    if (w->depth > 0) {
        uint32_t bit = 1u << (w->depth - 1);
        at.in_list = (w->list & bit) != 0;
        at.first = (w->used & bit) == 0;
        w->used |= bit;
    }
    return at;
}

static void walk_open(walker_t *w, const char *key, const char *words, int list)
{
    const char *name = walk_name(w, key, words);
    if (name == NULL) {
        w->hidden++;
        return;
    }
    ebb__assert(w->depth < 32);
    ebb__report_at_t at = walk_place(w);
    w->back->open(w->out, &at, name, list);
    uint32_t bit = 1u << w->depth;
    w->list = list ? w->list | bit : w->list & ~bit;
    w->used &= ~bit;
    w->depth++;
}

static void walk_close(walker_t *w)
{
    if (w->hidden > 0) {
        w->hidden--;
        return;
    }
    w->depth--;
    w->back->close(w->out, w->depth, (w->list >> w->depth) & 1u);
}

static void walk_item(walker_t *w, const char *key, const char *words, ebb__report_value_t v)
{
    const char *name = walk_name(w, key, words);
    if (name == NULL)
        return;
    ebb__report_at_t at = walk_place(w);
    w->back->item(w->out, &at, name, &v);
}

static void walk_num(walker_t *w, const char *key, const char *words, ebb__report_unit_t unit,
                     size_t n)
{
    walk_item(w, key, words, (ebb__report_value_t){ .unit = unit, .n = n });
}

static void walk_strn(walker_t *w, const char *key, const char *words, const char *s, size_t len)
{
    walk_item(w, key, words,
              (ebb__report_value_t){ .unit = EBB__REPORT_TEXT, .str = s, .len = len });
}

static void walk_str(walker_t *w, const char *key, const char *words, const char *s)
{
    walk_strn(w, key, words, s, strlen(s));
}

static void walk_null(walker_t *w, const char *key, const char *words)
{
    walk_item(w, key, words, (ebb__report_value_t){ .unit = EBB__REPORT_NULL });
}

/* Words of the text's own: a heading, a joint between values, a note. */
static void walk_say(walker_t *w, const char *words)
{
    walk_null(w, NULL, words);
}

static void walk_frame(walker_t *w, const char *words, const void *pc)
{
    if (walk_name(w, "frame", words) == NULL)
        return;
    char sym[256];
    size_t n = ebb__os_symbolise(pc, sym, sizeof sym);
    walk_strn(w, "frame", words, sym, n);
}

/* -------------------------------------------------------------- sections */

static void walk_limit(walker_t *w, const ebb__report_snapshot_t *s)
{
    if (s->limit == 0) {
        walk_null(w, "limit", "limit       none\n");
        return;
    }
    walk_open(w, "limit", "limit       ", 0);
    walk_num(w, "bytes", "%s", EBB__REPORT_BYTES, s->limit);
    walk_str(w, NULL, " (%s)", s->limit_source);
    walk_num(w, "soft_bytes", "; soft level %s", EBB__REPORT_BYTES, s->soft);
    walk_num(w, "reserve_bytes", "; emergency reserve %s", EBB__REPORT_BYTES, s->reserve);
    walk_str(w, "source", NULL, s->limit_source);
    /* What the kernel said, in the text when ebb listens or heard something. */
    const char *heard = s->pressure_source[0] ? s->pressure_source : NULL;
    int said = heard || s->pressure_events;
    walk_num(w, "pressure_events", said ? "; kernel pressure events %s" : NULL, EBB__REPORT_COUNT,
             s->pressure_events);
    if (heard)
        walk_str(w, "pressure_source", " (%s)", heard);
    else
        walk_null(w, "pressure_source", NULL);
    walk_say(w, "\n");
    walk_close(w);
}

/* The JSON's name for why an allocation failed. */
static const char *failure_kind(int reason)
{
    switch (reason) {
    case EBB_FAIL_LIMIT:
        return "limit";
    case EBB_FAIL_NO_MEMORY:
        return "no_memory";
    default:
        return "";
    }
}

static void walk_failure(walker_t *w, const ebb__report_snapshot_t *s)
{
    const ebb_failure_t *f = &s->failure;
    if (f->reason == EBB_FAIL_NONE) {
        walk_null(w, "failure", NULL);
        return;
    }
    walk_open(w, "failure", "failed      ", 0);
    walk_str(w, "kind", NULL, failure_kind(f->reason));
    walk_num(w, "request", "%s", EBB__REPORT_BYTES, f->request);
    if (f->reason == EBB_FAIL_LIMIT)
        walk_num(w, NULL, " refused at the limit of %s", EBB__REPORT_BYTES, f->limit);
    else
        walk_say(w, " refused by the system (no memory or address space)");
    walk_num(w, "committed", " with %s committed\n", EBB__REPORT_BYTES, f->committed);
    walk_num(w, "limit", NULL, EBB__REPORT_BYTES, f->limit);
    walk_close(w);
}

/* Blocks handed out of pools, as bytes, against the pools' span: the gap is
 * free space inside pools (fragmentation, the part purging cannot return
 * while a neighbour lives). */
static size_t pool_free_bytes(const ebb__report_snapshot_t *s)
{
    return s->st.mapped_pools > s->st.small_used ? s->st.mapped_pools - s->st.small_used : 0;
}

static void walk_memory(walker_t *w, const ebb__report_snapshot_t *s)
{
    const ebb_stats_t *st = &s->st;
    size_t small = ebb__report_live_small(s);
    walk_open(w, "memory", "", 0);
    walk_num(w, "committed", "memory      committed %s", EBB__REPORT_BYTES, st->committed);
    walk_num(w, "peak_committed", " (peak %s", EBB__REPORT_BYTES, st->peak_committed);
    if (s->peak_when[0])
        walk_str(w, "peak_committed_time", " at %s", s->peak_when);
    else
        walk_null(w, "peak_committed_time", NULL);
    walk_num(w, "peak_committed_uptime_ms", NULL, EBB__REPORT_COUNT,
             (size_t)(s->peak_uptime_ns / 1000000u));
    walk_say(w, ")");
    walk_num(w, "live", ", live %s", EBB__REPORT_BYTES, small + st->large_used);
    if (s->rss)
        walk_num(w, NULL, ", the process's RSS %s", EBB__REPORT_BYTES, s->rss);
    walk_say(w, "\n");
    walk_num(w, "mapped", NULL, EBB__REPORT_BYTES, st->mapped);
    walk_num(w, "peak_mapped", NULL, EBB__REPORT_BYTES, st->peak_mapped);
    walk_num(w, "live_small", NULL, EBB__REPORT_BYTES, small);
    walk_num(w, "live_large", NULL, EBB__REPORT_BYTES, st->large_used);
    walk_num(w, "large_blocks", NULL, EBB__REPORT_COUNT, st->large_blocks);
    walk_num(w, "purged", NULL, EBB__REPORT_BYTES, st->purged);
    walk_num(w, "purges", NULL, EBB__REPORT_COUNT, st->purges);
    walk_num(w, "process_rss", NULL, EBB__REPORT_BYTES, s->rss);
    walk_close(w);

    /* What ebb holds beyond the live bytes: the categories of `mapped`
     * add up to it, and what of it is not resident is said last. */
    walk_num(w, NULL, "held        %s mapped = ", EBB__REPORT_BYTES, st->mapped);
    walk_num(w, NULL, "live %s", EBB__REPORT_BYTES, small + st->mapped_large);
    walk_open(w, "held", "", 0);
    walk_num(w, "small_in_use", NULL, EBB__REPORT_BYTES, small);
    walk_num(w, "large", NULL, EBB__REPORT_BYTES, st->mapped_large);
    walk_num(w, "free_in_pools", " + free in pools %s", EBB__REPORT_BYTES, pool_free_bytes(s));
    walk_num(w, "thread_caches", " + thread caches %s\n           ", EBB__REPORT_BYTES,
             st->small_cached);
    walk_num(w, "large_cached", " + large cached %s", EBB__REPORT_BYTES,
             st->mapped_large_cached);
    walk_num(w, "free_arena_slots", " + free arena slots %s", EBB__REPORT_BYTES,
             st->mapped_free_slots);
    walk_num(w, "metadata", " + metadata %s", EBB__REPORT_BYTES, st->mapped_meta);
    walk_close(w);
    size_t away = st->mapped > st->committed ? st->mapped - st->committed : 0;
    walk_num(w, NULL, "; %s of it not resident (given back or never touched)\n",
             EBB__REPORT_BYTES, away);
    walk_num(w, NULL, "given back  %s", EBB__REPORT_BYTES, st->purged);
    walk_num(w, NULL, " in %s calls since start\n", EBB__REPORT_COUNT, st->purges);
}

/* The process's resident set taken apart (insight/rss.c): ebb's part by
 * category, the rest by kind of mapping; they add up to `rss` but for what
 * changed between the reads.  Not in the black box's brief report. */
static void walk_rss(walker_t *w, const ebb__report_snapshot_t *s)
{
    const ebb_rss_t *r = &s->rss_parts;
    if (!s->rss_read) {
        walk_null(w, "rss", NULL);
        return;
    }
    walk_open(w, "rss", "", 0);
    walk_num(w, "rss", "resident    RSS %s", EBB__REPORT_BYTES, r->rss);
    walk_num(w, "ebb", " = ebb's %s", EBB__REPORT_BYTES, r->ebb);
    walk_num(w, "other", " + not ebb's %s", EBB__REPORT_BYTES, r->other);
    walk_num(w, "unaccounted", " + %s changed between the reads\n", EBB__REPORT_SIGNED,
             (size_t)r->unaccounted);
    walk_num(w, "live_small", "            ebb's: live small %s", EBB__REPORT_BYTES,
             r->live_small);
    walk_num(w, "live_large", ", large %s", EBB__REPORT_BYTES, r->live_large);
    walk_num(w, "thread_caches", ", thread caches %s", EBB__REPORT_BYTES, r->thread_caches);
    walk_num(w, "pool_free", ", free in pools %s", EBB__REPORT_BYTES, r->pool_free);
    walk_num(w, "pools_empty", ", empty pools %s", EBB__REPORT_BYTES, r->pools_empty);
    walk_num(w, "free_slots", ", free slots %s", EBB__REPORT_BYTES, r->free_slots);
    walk_num(w, "large_cached", ", large cached %s", EBB__REPORT_BYTES, r->large_cached);
    walk_num(w, "metadata", ", metadata %s", EBB__REPORT_BYTES, r->metadata);
    walk_num(w, "committed", NULL, EBB__REPORT_BYTES, r->committed);
    walk_num(w, "committed_not_resident", "; committed, not resident %s", EBB__REPORT_BYTES,
             r->committed_not_resident);
    walk_num(w, "resident_not_committed", ", the other way %s\n", EBB__REPORT_BYTES,
             r->resident_not_committed);
    walk_num(w, "files", "            not ebb's: files %s", EBB__REPORT_BYTES, r->files);
    walk_num(w, "stacks", ", stacks %s", EBB__REPORT_BYTES, r->stacks);
    walk_num(w, "brk_heap", ", brk heap %s", EBB__REPORT_BYTES, r->brk_heap);
    walk_num(w, "anonymous", ", anonymous %s", EBB__REPORT_BYTES, r->anonymous);
    walk_num(w, "kernel", ", kernel %s\n", EBB__REPORT_BYTES, r->kernel);
    walk_close(w);
}

static void walk_class(walker_t *w, const ebb_class_stats_t *c)
{
    size_t bytes = c->used * c->size;
    unsigned fill = c->pool_bytes ? (unsigned)((uint64_t)bytes * 100 / c->pool_bytes) : 0;
    walk_open(w, "class", "", 0);
    walk_num(w, "size", "  %s B: ", EBB__REPORT_COUNT, c->size);
    walk_num(w, "blocks", "%s, ", EBB__REPORT_COUNT, c->used);
    walk_num(w, "bytes", "%s, ", EBB__REPORT_BYTES, bytes);
    walk_num(w, "pools", "%s (", EBB__REPORT_COUNT, c->pools);
    walk_num(w, "pool_bytes", "%s), ", EBB__REPORT_BYTES, c->pool_bytes);
    walk_num(w, NULL, "%s\n", EBB__REPORT_PERCENT, fill);
    walk_close(w);
}

/* Most pool bytes first, ties in size order (a stable insertion sort: at
 * most EBB_CLASSES). */
static void sort_by_pool_bytes(const ebb__report_snapshot_t *s, unsigned char *order, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        unsigned char c = order[i];
        size_t j = i;
        for (; j > 0 && s->cls[order[j - 1]].pool_bytes < s->cls[c].pool_bytes; j--)
            order[j] = order[j - 1];
        order[j] = c;
    }
}

static void walk_classes(walker_t *w, const ebb__report_snapshot_t *s)
{
    unsigned char order[EBB_CLASSES];
    size_t n = 0;
    for (size_t i = 0; i < s->nclasses; i++)
        if (s->cls[i].pools != 0 || s->cls[i].used != 0)
            order[n++] = (unsigned char)i;

    /* The JSON lists every class in use, smallest first. */
    walk_open(w, "classes", NULL, 1);
    for (size_t i = 0; i < n; i++)
        walk_class(w, &s->cls[order[i]]);
    walk_close(w);

    /* The text, the classes holding the most pool bytes first: at the
     * moment memory ran out, the few that hold it matter, not the sixty
     * that do not. */
    sort_by_pool_bytes(s, order, n);
    size_t shown = n < EBB_REPORT_CLASSES ? n : EBB_REPORT_CLASSES;
    walk_open(w, NULL, "size classes by pool bytes "
                       "(block size: blocks out, their bytes, pools, fill):\n", 1);
    for (size_t i = 0; i < shown; i++)
        walk_class(w, &s->cls[order[i]]);
    if (n == 0)
        walk_say(w, "  none\n");
    if (n > shown) {
        size_t rest = 0;
        for (size_t i = shown; i < n; i++)
            rest += s->cls[order[i]].pool_bytes;
        walk_num(w, NULL, "  and %s more classes in ", EBB__REPORT_COUNT, n - shown);
        walk_num(w, NULL, "%s of pools\n", EBB__REPORT_BYTES, rest);
    }
    walk_close(w);
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

/* The runtime's stack, a line an entry, innermost first. */
static void walk_stack(walker_t *w, const char *key, const char *words, const char *text)
{
    const char *line, *at = "       at %s\n";
    size_t n;
    walk_open(w, key, words, 1);
    for (; (line = next_line(&text, &n)) != NULL; at = "          %s\n")
        walk_strn(w, "line", at, line, n);
    walk_close(w);
}

/* Native frames the text shows per site with EBB_REPORT_NATIVE=1: the
 * allocating call and its callers, fewer when the runtime's stack says
 * the rest. */
static int frames_shown(const ebb__site_t *site, int brief)
{
    int most = site->stack[0] ? EBB_REPORT_FRAMES / 2 : EBB_REPORT_FRAMES;
    if (brief)
        most = most > 4 ? 4 : most;
    return site->depth < most ? site->depth : most;
}

/* Append s[0..n) to line at *at, keeping room for the NUL. */
static void line_put(char *line, size_t cap, size_t *at, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *at + 1 < cap; i++)
        line[(*at)++] = s[i];
    line[*at] = '\0';
}

/* A runtime stack entry "path/file.py:12 function" as "file.py:12 function". */
static void put_stack_entry(char *line, size_t cap, size_t *at, const char *e, size_t n)
{
    size_t colon = n, file = 0;
    for (size_t i = 0; i < n; i++)
        if (e[i] == ':' && colon == n && i > 0)
            colon = i;
    for (size_t i = 0; i < colon; i++)
        if (e[i] == '/')
            file = i + 1;
    line_put(line, cap, at, e + file, n - file);
}

/* A symbolised frame, "name+0x1f (/path/object)" or "(/path/object+0x1f)",
 * as "name+0x1f" or "object+0x1f". */
static void put_frame_short(char *line, size_t cap, size_t *at, const void *pc)
{
    char sym[256];
    size_t n = ebb__os_symbolise(pc, sym, sizeof sym);
    const char *start = sym, *end = sym + n;
    if (n > 0 && sym[0] == '(') {
        start = sym + 1;
        if (end > start && end[-1] == ')')
            end--;
        for (const char *c = start; c < end; c++)
            if (*c == '/')
                start = c + 1;
    } else {
        const char *paren = memchr(sym, '(', n);
        if (paren)
            end = paren > sym && paren[-1] == ' ' ? paren - 1 : paren;
    }
    line_put(line, cap, at, start, (size_t)(end - start));
}

/* The text's one line for a site: its innermost few frames, the
 * runtime's ("app.py:4 load <- app.py:7 main") when it has them, else the
 * native ones, innermost first. */
static size_t site_line(const ebb__site_t *site, char *line, size_t cap)
{
    size_t at = 0, n;
    int shown = 0;
    line[0] = '\0';
    const char *text = site->stack, *entry;
    while ((entry = next_line(&text, &n)) != NULL && shown < EBB_REPORT_LINE_FRAMES) {
        if (shown++)
            line_put(line, cap, &at, " <- ", 4);
        put_stack_entry(line, cap, &at, entry, n);
    }
    if (shown == 0)
        for (int f = 0; f < site->depth && shown < EBB_REPORT_LINE_FRAMES; f++) {
            if (shown++)
                line_put(line, cap, &at, " <- ", 4);
            else
                line_put(line, cap, &at, "in ", 3);
            put_frame_short(line, cap, &at, site->pcs[f]);
        }
    int more = site->stack[0] ? next_line(&text, &n) != NULL : site->depth > shown;
    if (more)
        line_put(line, cap, &at, " <- ...", 7);
    if (shown == 0)
        line_put(line, cap, &at, "(no stack)", 10);
    return at;
}

/* listed: the text shows the site (the JSON shows every one); native: the
 * text shows it in full, runtime stack and native frames on lines of their
 * own, rather than as one line.  json_frames: the JSON's native frames, 0
 * every one, -1 none. */
/* What the text says of a site.  Sites whose runtime stacks read the same
 * (one Python line reached through different native paths) are one line
 * there, their estimates summed, at the place of the heaviest; the JSON
 * keeps them apart, since their native frames differ. */
typedef struct {
    int listed;         /* the text shows it (else it is summed into another) */
    size_t number;      /* its number in the text's list, from 1 */
    uint64_t bytes, count;
} site_text_t;

static int never_same(const void *sites, size_t i, size_t j)
{
    (void)sites, (void)i, (void)j;
    return 0;
}

/* Report sites i and j have the same runtime stack (none is never the same). */
static int same_stack(const void *sites, size_t i, size_t j)
{
    const ebb__site_t *v = sites;
    return v[i].stack[0] && !strcmp(v[i].stack, v[j].stack);
}

/* The peak's sites i and j: the same by the hash of their runtime stack. */
static int same_text_hash(const void *sites, size_t i, size_t j)
{
    const ebb__site_weight_t *v = sites;
    return v[i].text_hash != 0 && v[i].text_hash == v[j].text_hash;
}

/* Group sites[0..n) (most live bytes first) by runtime stack: same_as(i,
 * j) says whether sites i and j read the same.  order[] gets the sites that
 * head a line, by the line's sum, most first: at most `most` of them, the
 * count returned. */
static size_t group_sites(site_text_t *t, size_t *order, size_t n, size_t most,
                          int (*same_as)(const void *sites, size_t i, size_t j),
                          const void *sites, const uint64_t *bytes, const uint64_t *count)
{
    size_t lines = 0;
    for (size_t i = 0; i < n; i++) {
        t[i] = (site_text_t){ .listed = 0, .bytes = bytes[i], .count = count[i] };
        size_t j = 0;
        while (j < i && !(t[j].listed && same_as(sites, i, j)))
            j++;
        if (j < i) {
            t[j].bytes += bytes[i];
            t[j].count += count[i];
        } else {
            t[i].listed = 1;
            order[lines++] = i;
        }
    }
    /* The lines by their sums, most first (an insertion sort of a few). */
    for (size_t a = 1; a < lines; a++) {
        size_t x = order[a], b = a;
        for (; b > 0 && t[order[b - 1]].bytes < t[x].bytes; b--)
            order[b] = order[b - 1];
        order[b] = x;
    }
    if (lines > most)
        lines = most;
    for (size_t a = 0; a < lines; a++)
        t[order[a]].number = a + 1;
    return lines;
}

/* A site, for the JSON (key "site": every site, in the sampler's order)
 * or for the text (key NULL: a listed line, in the order of its sums). */
static void walk_site(walker_t *w, const char *key, const ebb__site_t *site, const site_text_t *t,
                      int brief, int native, int json_frames)
{
    walk_open(w, key, key ? NULL : "", 0);
    walk_num(w, NULL, "  %s. ", EBB__REPORT_COUNT, t->number);
    walk_num(w, "live_bytes", NULL, EBB__REPORT_BYTES, (size_t)site->live_bytes);
    walk_num(w, NULL, "~%s", EBB__REPORT_BYTES, (size_t)t->bytes);
    walk_num(w, "live_blocks", NULL, EBB__REPORT_COUNT, (size_t)site->live_count);
    walk_num(w, NULL, " in ~%s blocks", EBB__REPORT_COUNT, (size_t)t->count);
    walk_num(w, "total_bytes", native ? " (~%s allocated in all)\n" : NULL, EBB__REPORT_BYTES,
             (size_t)site->total_bytes);
    walk_num(w, "total_blocks", NULL, EBB__REPORT_COUNT, (size_t)site->total_count);
    walk_num(w, "samples", NULL, EBB__REPORT_COUNT, (size_t)site->samples);
    if (!native && walk_name(w, NULL, "x") != NULL) {
        char line[EBB_REPORT_LINE_BYTES];
        size_t n = site_line(site, line, sizeof line);
        walk_strn(w, NULL, "  %s\n", line, n);
    }
    /* The runtime's stack reads best above the native frames; the JSON
     * has always had it after them. */
    walk_stack(w, NULL, native ? "" : NULL, site->stack);
    walk_open(w, "frames", "", 1);
    int shown = native ? frames_shown(site, brief) : 0;
    /* The JSON's frames, all unless the snapshot says fewer (-1: none). */
    int depth = site->depth;
    if (json_frames != 0 && json_frames < depth)
        depth = json_frames > shown ? json_frames : shown;
    for (int f = 0; f < depth; f++) {
        if (f >= json_frames && json_frames != 0 && walk_name(w, "frame", NULL) != NULL)
            break; /* this format is the JSON, and it has all it keeps */
        const char *words = f == 0 ? "       in %s\n" : "       <- %s\n";
        walk_frame(w, f < shown ? words : NULL, site->pcs[f]);
    }
    walk_close(w);
    walk_stack(w, "stack", NULL, site->stack);
    walk_close(w);
}

static void walk_sites(walker_t *w, const ebb__report_snapshot_t *s)
{
    const ebb_sample_stats_t *st = &s->samples;
    /* Off and never on: the text says so in a line, the JSON keeps its
     * (zero) counters, the keys a program reads. */
    int off = st->rate == 0 && st->sites == 0;
    if (off)
        walk_say(w, "allocation sites: not sampled (EBB_SAMPLE_RATE=0)\n");
    walk_open(w, "sites", off ? NULL : "top allocation sites by live bytes, estimated from samples",
              0);
    walk_num(w, "estimated", NULL, EBB__REPORT_FLAG, 1);
    walk_num(w, "rate", " (1 per %s allocated", EBB__REPORT_BYTES, st->rate);
    walk_num(w, "samples", "; %s samples", EBB__REPORT_COUNT, (size_t)st->samples);
    walk_num(w, "live_samples", ", %s live", EBB__REPORT_COUNT, (size_t)st->live);
    walk_num(w, "sites", ", %s sites", EBB__REPORT_COUNT, st->sites);
    walk_num(w, "dropped", st->dropped ? ", %s dropped: the site table was full" : NULL,
             EBB__REPORT_COUNT, (size_t)st->dropped);
    walk_say(w, s->native || s->brief ? "):\n" : "; every frame: EBB_REPORT_NATIVE=1 or JSON):\n");
    if (s->nsites == 0)
        walk_say(w, "  none with live samples\n");
    walk_open(w, "top", "", 1);
    site_text_t t[EBB_REPORT_SITES];
    uint64_t bytes[EBB_REPORT_SITES], count[EBB_REPORT_SITES];
    for (size_t i = 0; i < s->nsites; i++) {
        bytes[i] = s->site[i].live_bytes;
        count[i] = s->site[i].live_count;
    }
    size_t order[EBB_REPORT_SITES];
    size_t lines = group_sites(t, order, s->nsites, EBB_REPORT_SITES,
                               s->native ? never_same : same_stack, s->site, bytes, count);
    for (size_t i = 0; i < s->nsites; i++)
        walk_site(w, "site", &s->site[i], &t[i], s->brief, s->native, s->json_frames);
    for (size_t l = 0; l < lines; l++)
        walk_site(w, NULL, &s->site[order[l]], &t[order[l]], s->brief, s->native, s->json_frames);
    walk_close(w);
    walk_close(w);
}

/* What was live at the highest committed memory seen (peak.c): the sites
 * as they were then, even if all of it was freed since. */
static void walk_peak(walker_t *w, const ebb__report_snapshot_t *s)
{
    const ebb__peak_t *p = &s->peak;
    if (!s->have_peak) {
        walk_null(w, "peak", NULL);
        return;
    }
    char when[24];
    ebb__os_format_utc(p->wall_seconds, when);
    size_t most = s->brief ? EBB_REPORT_SITES_BRIEF : EBB_REPORT_PEAK_SITES;
    size_t shown = p->nsites < most ? p->nsites : most;
    site_text_t t[EBB_PEAK_SITES];
    uint64_t bytes[EBB_PEAK_SITES], count[EBB_PEAK_SITES];
    for (size_t i = 0; i < p->nsites; i++) {
        bytes[i] = p->site[i].live_bytes;
        count[i] = p->site[i].live_count >> 16; /* fixed point, as the sampler keeps it */
    }
    size_t order[EBB_PEAK_SITES];
    size_t lines = group_sites(t, order, p->nsites, most, s->native ? never_same : same_text_hash,
                               p->site, bytes, count);
    walk_open(w, "peak", "at the peak ", 0);
    walk_num(w, "committed", "committed %s", EBB__REPORT_BYTES, p->committed);
    walk_str(w, "time", " at %s", when);
    walk_num(w, "sampled_live", "; the sites below are what held ~%s live then",
             EBB__REPORT_BYTES, (size_t)p->sampled_live);
    walk_num(w, "snapshots", NULL, EBB__REPORT_COUNT, p->snapshots);
    walk_say(w, ":\n");
    if (p->nsites == 0)
        walk_say(w, "  none with live samples\n");
    walk_open(w, "top", "", 1);
    /* The text lists a report's worth; the JSON keeps every one (or the
     * snapshot's json_peak_sites: the black box's room is counted). */
    size_t listed = p->nsites;
    if (s->json_peak_sites != 0 && s->json_peak_sites < listed)
        listed = s->json_peak_sites > shown ? s->json_peak_sites : shown;
    for (size_t i = 0; i < listed; i++) {
        ebb__site_t site;
        ebb__sample_site_at_peak(&site, &p->site[i]);
        walk_site(w, "site", &site, &t[i], s->brief, s->native, s->json_frames);
    }
    for (size_t l = 0; l < lines; l++) {
        ebb__site_t site;
        ebb__sample_site_at_peak(&site, &p->site[order[l]]);
        walk_site(w, NULL, &site, &t[order[l]], s->brief, s->native, s->json_frames);
    }
    walk_close(w);
    walk_close(w);
}

/* Memory over time: a line of the text, every point in the JSON. */
static void walk_timeline(walker_t *w, const ebb__report_snapshot_t *s)
{
    const ebb__timeline_info_t *t = &s->timeline;
    walk_open(w, "timeline", s->brief ? NULL : "timeline    ", 0);
    walk_num(w, "samples", "%s points taken", EBB__REPORT_COUNT, (size_t)t->samples);
    walk_num(w, "now_ms", " over %s ms", EBB__REPORT_COUNT, (size_t)t->now_ms);
    walk_num(w, "peak_committed", "; committed peaked at %s", EBB__REPORT_BYTES,
             (size_t)t->peak_committed);
    walk_num(w, "peak_committed_ms", " at %s ms\n", EBB__REPORT_COUNT,
             (size_t)t->peak_committed_ms);
    walk_num(w, "started_ms", NULL, EBB__REPORT_COUNT, (size_t)t->started_wall_ms);
    walk_num(w, "stride", NULL, EBB__REPORT_COUNT, (size_t)t->stride);
    walk_open(w, "points", NULL, 1);
    for (size_t i = 0; i < s->npoints; i++) {
        const ebb__timeline_point_t *p = &s->point[i];
        walk_open(w, "point", NULL, 0);
        walk_num(w, "ms", NULL, EBB__REPORT_COUNT, (size_t)p->ms);
        walk_num(w, "live", NULL, EBB__REPORT_BYTES, (size_t)p->live);
        walk_num(w, "committed", NULL, EBB__REPORT_BYTES, (size_t)p->committed);
        walk_num(w, "rss", NULL, EBB__REPORT_BYTES, (size_t)p->rss);
        walk_num(w, "limit", NULL, EBB__REPORT_BYTES, (size_t)p->limit);
        walk_num(w, "purged", NULL, EBB__REPORT_BYTES, (size_t)p->purged);
        walk_close(w);
    }
    walk_close(w);
    walk_close(w);
}

static void walk_address_space(walker_t *w, const ebb__report_snapshot_t *s)
{
    /* The whole map (the HTML report draws it): full reports' JSON only. */
    if (!s->brief)
        walk_item(w, "address_space_map", NULL,
                  (ebb__report_value_t){ .unit = EBB__REPORT_RAW, .raw = ebb__report_address_map });
    int known = s->gap != 0;
    walk_open(w, "address_space", s->brief ? NULL : "address space: largest free range ", 0);
    if (!known)
        walk_say(w, "unknown (/proc/self/maps unreadable)\n");
    walk_num(w, "largest_free", known ? "%s" : NULL, EBB__REPORT_BYTES, s->gap);
    walk_num(w, "largest_free_at", known ? " at %s\n" : NULL, EBB__REPORT_ADDRESS, s->gap_at);
    walk_close(w);
}

static const char *const pool_state[] = {
    [EBB__POOL_FULL] = "full",
    [EBB__POOL_PARTIAL] = "partial",
    [EBB__POOL_EMPTY] = "empty",
    [EBB__POOL_PURGED] = "purged",
};

/* Every arena and its pools, for the HTML report's picture (heapmap.c);
 * the JSON's only: the text's is ebb_heap_map(). */
static void walk_map(walker_t *w, const char *key, const ebb__heapmap_t *m, size_t committed)
{
    walk_open(w, key, NULL, 0);
    walk_num(w, "slot_bytes", NULL, EBB__REPORT_BYTES, EBB_SLOT_SIZE);
    walk_num(w, "arena_bytes", NULL, EBB__REPORT_BYTES, EBB_ARENA_SIZE);
    walk_num(w, "committed", NULL, EBB__REPORT_BYTES, committed);
    walk_open(w, "arenas", NULL, 1);
    for (size_t a = 0; a < m->narenas; a++) {
        walk_open(w, "arena", NULL, 0);
        walk_num(w, "base", NULL, EBB__REPORT_ADDRESS, ebb__heapmap_base(m, a));
        walk_open(w, "pools", NULL, 1);
        ebb__heapmap_pool_t p;
        for (unsigned slot = 1; slot < EBB_SLOTS; slot++) {
            if (!ebb__heapmap_pool(m, a, slot, &p))
                continue;
            walk_open(w, "pool", NULL, 0);
            walk_num(w, "slot", NULL, EBB__REPORT_COUNT, p.slot);
            walk_num(w, "span", NULL, EBB__REPORT_COUNT, p.span);
            walk_num(w, "class", NULL, EBB__REPORT_COUNT, p.cls);
            walk_num(w, "block_size", NULL, EBB__REPORT_BYTES, p.block_size);
            walk_num(w, "blocks", NULL, EBB__REPORT_COUNT, p.blocks);
            walk_num(w, "used", NULL, EBB__REPORT_COUNT, p.used);
            walk_num(w, "resident_pages", NULL, EBB__REPORT_COUNT, p.resident_pages);
            walk_str(w, "state", NULL, pool_state[p.state]);
            walk_close(w);
        }
        walk_close(w);
        walk_close(w);
    }
    walk_close(w);
    walk_close(w);
}

static void walk_peak_map(const ebb__heapmap_t *m, size_t committed, void *w)
{
    walk_map(w, "heap_map_peak", m, committed);
}

static void walk_heap_maps(walker_t *w, const ebb__report_snapshot_t *s)
{
    if (s->have_map)
        walk_map(w, "heap_map", &s->map, s->st.committed);
    else
        walk_null(w, "heap_map", NULL);
    if (!s->brief)
        ebb__peak_with_map(walk_peak_map, w);
}

void ebb__report_walk(ebb__report_out_t *o, const ebb__report_back_t *back,
                      const ebb__report_snapshot_t *s)
{
    walker_t w = { .back = back, .out = o };
    walk_open(&w, "report", "== ebb report: ", 0);
    walk_str(&w, "schema", NULL, "ebb.report/1");
    walk_str(&w, "ebb", NULL, ebb_version());
    walk_num(&w, "pid", "pid %s, ", EBB__REPORT_COUNT, (size_t)s->pid);
    walk_str(&w, "time", "%s, ", s->when);
    walk_str(&w, NULL, "ebb %s\n", ebb_version());
    walk_str(&w, "reason", "reason      %s\n", s->reason);
    walk_failure(&w, s);
    walk_limit(&w, s);
    walk_memory(&w, s);
    walk_rss(&w, s);
    walk_sites(&w, s);
    walk_peak(&w, s);
    walk_timeline(&w, s);
    walk_classes(&w, s);
    walk_address_space(&w, s);
    walk_heap_maps(&w, s);
    walk_say(&w, "== end of ebb report\n");
    walk_close(&w);
}
