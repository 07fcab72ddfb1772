/*
 * sample.c -- the sampling heap profiler: which code holds the live bytes.
 *
 * Owns: each thread's distance to its next sample, the table of allocation
 * sites (a native backtrace plus, if a runtime registered a stack hook, its
 * stack as text) with their estimated live and total bytes, and one record
 * per live sampled block (its site and its weight).
 *
 * Sampling.  Allocated bytes are a line; sample points fall on it as a
 * Poisson process of mean gap R (EBB_SAMPLE_RATE, 512 KiB): each thread
 * draws exponentially distributed gaps from its own xorshift generator, and
 * an allocation that contains a point is sampled.  A block of s bytes is so
 * sampled with probability p(s) = 1 - exp(-s/R), independently of every
 * other block, and a sampled one stands for
 *
 *     s / p(s) bytes and 1 / p(s) blocks,
 *
 * so a site's sum of weights over its sampled blocks is an unbiased estimate
 * of its bytes (and blocks): E = sum over blocks of p(s) * s / p(s).  For
 * small blocks the weight is about R, for blocks far above R it is s (they
 * are nearly always sampled).  Weights are fixed when a block is sampled
 * and subtracted exactly when it is freed, so a site whose blocks are all
 * freed goes back to 0, whatever the rate did in between.  The relative
 * error of an estimate is about 1/sqrt(samples).
 *
 * Cost.  malloc's fast path subtracts the request from the thread cache's
 * `sample.left` once its pop is sure, and leaves for the slow path when the
 * counter turns negative: a subtract from memory and a branch (the first
 * version loaded, subtracted, tested and stored: 5 instructions, +1.8% of
 * churn's instructions; this one +0.1 to +0.9%, within the purger's noise).
 * Sampling off is a gap of PTRDIFF_MAX (redrawn when it runs out, every
 * 2 GiB on 32-bit).  A rate change bumps an epoch that each thread checks
 * on its slow paths, which come at least every half a cache of
 * allocations.
 *
 * The unwind.  A sample's slow path unwinds the stack with ebb's own
 * unwinder (os/linux_unwind.c, x86-64 with glibc 2.35 or later): the
 * call-frame rules of a return address (CFA = rsp or rbp + n, the return
 * address at CFA - 8, rbp unchanged or saved at CFA - 8k) are read once
 * from its object's .eh_frame and kept in a cache of one atomic word per
 * address, so a warm unwind costs about 65 instructions a frame (libgcc:
 * 2,000), reads only
 * the thread's own stack (checked against its bounds) and takes no lock:
 * objects are found with _dl_find_object, which takes none of the
 * loader's, and only rules of objects that are never unloaded are cached,
 * so no dlclose can leave a stale one.  Where it refuses (a rule it does
 * not model, a signal frame, a stack it cannot bound, 32-bit x86), glibc's
 * backtrace() does the unwind (libgcc's DWARF unwinder, 1,700 to 2,000
 * instructions a frame, loaded in the constructor, since the purger's
 * starter uses it too).  ebb's own frames are unwound like any other (they
 * hit the cache) and dropped by address: every function that can be on the
 * stack between the program's call and the unwind lives in the `ebb_entry`
 * section.  Measured (callgrind, bench larson and churn at --cg-scale
 * 0.05, instructions inside ebb__sample_begin per sample, first parses
 * included): 1,231 (larson) and 1,389 (churn), against 18,000 and 19,838
 * with backtrace() for every sample; the sampler's share of the run fell
 * from 4.3% to 0.3% (larson) and from 1.6% to 0.1% (churn).  Before that,
 * libunwind 1.6 (Debian's libunwind8), whose unw_backtrace keeps a
 * per-thread cache of frame rules, was tried: 1,250 to 1,420 instructions
 * an unwind once a thread's cache is warm, but about 100,000 and a 256 KiB
 * mapping for each thread's first, and not fit to run inside every
 * process's malloc: it keeps a pipe on the lowest free descriptors and
 * writes addresses to it to check them, and linked in, its exported
 * backtrace and _Unwind_* would replace glibc's and libgcc's for the whole
 * program.
 *
 * Threads.  No lock is shared on the path of a sample, and a thread does
 * one sample at a time (in_sampler).  Sites are claimed from an atomic
 * counter and written before a compare-and-swap puts them in the index,
 * so a reader sees them whole; two threads that add the same new site at
 * once both claim one, the loser finds the winner's in the slot it lost
 * and uses it (its own stays unused: `nsites` counts the listed ones).
 * Site counters are atomic adds.  Free records are a stack whose head
 * carries a version, popped and pushed by compare-and-swap.  Fork safety
 * and ebb_check's view of the tables at rest come from two gates (see
 * "gates" below): each sampling thread counts itself in and out of the
 * unwind and of its change to the tables; fork's prepare handler closes
 * the unwind gate first (no thread inside an unwinder, whose loader locks
 * the child would inherit held), and fork and ebb_check close the tables'
 * last, holding every lock, and wait for the threads inside to leave.
 * The stack hook and its argument are read as a pair by a sequence count.
 * Measured (bench larson at scale 5, 2 threads handing their blocks to
 * fresh threads, 5 interleaved runs, medians): voluntary context switches
 * with sampling on against off went from 205 against 64 (the old global
 * unwind and site locks) to 48 against 50; futex calls under strace -f
 * from 1,332 against 1,418 to 327 against 233 (strace's own slowing makes
 * these vary by 2x from run to run).  At one sample per 4 KiB, to stress
 * the path: 20,000 to 87,000 switches and 25,000 to 38,000 futex calls a
 * run before, 11,000 to 14,000 and about 4,400 now, nearly all of those
 * at the large-block lock (large.c), which serves every sampled block:
 * at the default rate it does not show.
 *
 * Recognising a sampled block at free time.  A sampled block is served by
 * the large-block allocator (large.c), whatever its size, and its entry
 * there carries the number of its record (`tag`).  The free fast path never
 * handles a large block, so it costs nothing; ebb__large_free finds the
 * tag under the lock it takes anyway.  usable_size, owns and manages answer
 * as for any large block (a sampled 16-byte block has 4 KiB usable).  The
 * price is a page per live sampled block: about live/R of them, 0.8% of a
 * heap of small blocks at 512 KiB; the large-block cache keeps freed ones
 * for the next samples, so a steady state rarely maps.  realloc of a
 * sampled block is a free and a new allocation when it moves, or when a
 * large block is resized (mremap, absorbing a cached neighbour): the old
 * weight goes, the new size is ticked like any allocation.  A realloc that
 * keeps the block as it is changes nothing.
 *
 * Reentrancy.  A thread's first unwind asks for its stack's bounds
 * (pthread_getattr_np allocates), backtrace() may load libgcc_s, and the
 * stack hook may allocate: while a thread is in the sampler its own
 * allocations are never sampled (a per-thread flag), and no ebb lock is
 * held.  Samples are taken only once ebb's constructor ran, never from
 * allocations the dynamic loader makes before the program starts.
 *
 * Memory.  The site table (EBB_SAMPLE_SITES sites, about 850 bytes each,
 * plus an index of twice as many 64-bit slots) is mapped at the first
 * sample; pages get resident as sites are used.  Records are mapped a chunk
 * at a time.  A full table, or a record that cannot be mapped, drops the
 * sample (counted): the block is still served, unsampled.
 */
#include "internal.h"

#include <string.h>


#define COUNT_ONE 65536.0 /* count weights are fixed point, 16 fraction bits */
#define INDEX_SLOTS (2 * EBB_SAMPLE_SITES)

_Static_assert(EBB_SITE_DEPTH >= 4 && EBB_SITE_TEXT >= 64, "sites keep a useful stack");
_Static_assert(EBB_SITE_DEPTH + 16 <= EBB__UNWIND_MEMO_FRAMES,
               "a capture's whole unwind fits the thread's memo");

/* A site's state: being written by the thread that claimed it, in the
 * index (what readers see), or not used (its claimer lost a race to put an
 * equal site in the index first; it stays empty for good). */
enum { SITE_FILLING = 0, SITE_LISTED = 1, SITE_UNUSED = 2 };

typedef struct {
    uint64_t hash;
    /* Updated by every sampling thread with atomic adds: a report may read
     * one field a sample newer than another, never a torn one. */
    _Atomic uint64_t live_bytes, live_count;   /* weights of live sampled blocks */
    _Atomic uint64_t total_bytes, total_count; /* weights of every sampled block */
    _Atomic uint64_t live_samples;
    _Atomic int state;       /* SITE_*: written before the index points here */
    uint32_t depth, text_len;
    void *pcs[EBB_SITE_DEPTH];
    char text[EBB_SITE_TEXT];
} site_t;

typedef struct {
    _Atomic uint32_t site;  /* index + 1 of its site, 0 while the record is free */
    _Atomic uint32_t next;  /* free records: number of the next free one, 0 none */
    uint64_t bytes; /* weight of the block: bytes it stands for */
    uint64_t count; /* blocks it stands for, fixed point */
} record_t;

/* The tables are shared by every sampling thread without a lock: sites and
 * record chunks are claimed by atomic counters and mapped on first use (a
 * mapping that loses the race to publish is given back), the index is
 * open addressed with slots claimed by compare-and-swap, and free records
 * are a stack whose head carries a version against ABA. */
static struct {
    ebb__lock_t lock;        /* the stack hook's writers */
    _Atomic size_t rate;     /* mean bytes between samples, 0 off */
    _Atomic unsigned epoch;  /* bumped by every rate change */
    _Atomic(site_t *) sites[EBB_SAMPLE_SITES / EBB_SAMPLE_CHUNK_SITES]; /* mapped as needed */
    /* by hash: the hash's top 32 bits << 32 | site index + 1; 0 empty;
     * mapped at the first sample */
    _Atomic(_Atomic uint64_t *) index;
    _Atomic size_t claimed;  /* site numbers handed out (may pass the end) */
    _Atomic size_t nsites;   /* sites in the index */
    _Atomic size_t table_bytes; /* mapped for the index, the sites and records */
    _Atomic(record_t *) chunk[EBB_SAMPLE_CHUNKS];
    _Atomic unsigned nchunks;   /* chunk numbers handed out (may pass the end) */
    _Atomic uint64_t free_records; /* version << 32 | first free record's number, 0 none */
    _Atomic uint64_t taken, live, dropped;
    _Atomic unsigned hook_seq;  /* odd while the hook below is being changed */
    _Atomic(ebb_stack_hook_fn) hook;
    _Atomic(void *) hook_arg;
    _Atomic uint64_t seeds;  /* distinct seeds for threads */
} sampler = { .lock = EBB_LOCK_INIT, .rate = EBB_SAMPLE_RATE_DEFAULT, .epoch = 1 };

/* The thread is inside the sampler: its allocations are not sampled. */
static __thread int in_sampler __attribute__((tls_model("initial-exec")));
/* The options' rate is put in force once, before the first allocation
 * (front/init.c) or before a call here changes the rate, whichever comes
 * first: a rate the program sets is never overwritten by EBB_SAMPLE_RATE. */
void ebb__sample_start(void)
{
    static _Atomic int started;
    static ebb__lock_t start_lock = EBB_LOCK_INIT;
    if (atomic_load_explicit(&started, memory_order_acquire))
        return;
    ebb__ensure_init();
    ebb__lock(&start_lock);
    if (!atomic_load_explicit(&started, memory_order_relaxed)) {
        atomic_store_explicit(&sampler.rate, ebb__opt.sample_rate, memory_order_relaxed);
        atomic_store_explicit(&started, 1, memory_order_release);
    }
    ebb__unlock(&start_lock);
}

static uint32_t capture(void **pcs, ebb__unwind_memo_t *memo, uint32_t *site);

void ebb__sample_prime(void)
{
    void *pcs[EBB_SITE_DEPTH];
    if (atomic_load_explicit(&sampler.rate, memory_order_relaxed) == 0)
        return;
    in_sampler = 1;
    ebb__os_unwind_prime(); /* looks the loader up: may allocate */
    (void)capture(pcs, NULL, NULL);
    in_sampler = 0;
}

void ebb__sample_unwinder_prime(void)
{
    int was = in_sampler; /* the stack hook may allocate inside the sampler */
    in_sampler = 1;
    ebb__os_unwinder_prime();
    in_sampler = was;
}

/* ------------------------------------------------------------ the gaps */


static uint64_t next_random(ebb__sample_counter_t *t)
{
    uint64_t x = t->rng; /* xorshift64*: plenty for spacing samples */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Natural logarithm of x in (0, 1], without libm and without a loop:
 * x = m * 2^k read off its bits, m moved into [sqrt(1/2), sqrt(2)], and
 * ln m = 2 atanh(z), z = (m - 1) / (m + 1) in [-0.172, 0.172], by six terms
 * of the series: relative error below 1e-10 (checked against libm over
 * (2^-53, 1]), far below what spacing samples needs.  About 25 instructions;
 * the halving loop and eight terms it replaced cost 127 a sample. */
static double ln_unit(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int k = (int)(bits >> 52 & 0x7ff) - 1023; /* x is normal: at least 2^-53 */
    bits = (bits & ~((uint64_t)0x7ff << 52)) | (uint64_t)1023 << 52;
    double m;
    memcpy(&m, &bits, sizeof m);
    if (m > 1.4142135623730951) {
        m *= 0.5;
        k++;
    }
    double z = (m - 1) / (m + 1), z2 = z * z;
    double series =
        2 + z2 * (2.0 / 3 + z2 * (2.0 / 5 + z2 * (2.0 / 7 + z2 * (2.0 / 9 + z2 * (2.0 / 11)))));
    return z * series + k * 0.69314718055994530942;
}

/* 1/i, for the series below. */
static const double reciprocal[12] = {
    0, 1, 1.0 / 2, 1.0 / 3, 1.0 / 4, 1.0 / 5, 1.0 / 6, 1.0 / 7, 1.0 / 8, 1.0 / 9, 1.0 / 10, 1.0 / 11,
};

/* (exp(y) - 1) / y to its terms-th power of y: the sum of y^i / (i + 1)!
 * for i < terms, by Horner's rule.  So exp(y) = 1 + y * this, and
 * 1 - exp(-x) = x * this at y = -x, without cancellation. */
static double exp_series_tail(double y, int terms)
{
    double e = 1;
    for (int i = terms; i >= 2; i--)
        e = 1 + y * reciprocal[i] * e;
    return e;
}

/* exp(-x) for 0 <= x <= 60: 2^-k exp(-y) with y in [0, ln 2), exp(-y) by
 * ten terms of its series (error below 5e-10), 2^-k made from its bits. */
static double exp_neg(double x)
{
    double t = x * 1.4426950408889634074;
    int k = (int)t;
    double y = -(t - k) * 0.69314718055994530942;
    uint64_t bits = (uint64_t)(1023 - k) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return (1 + y * exp_series_tail(y, 10)) * scale;
}

/* 1 - exp(-x) for x >= 0: the probability that a block of x mean gaps holds
 * a sample point.  Its series for small x (no cancellation), else through
 * exp_neg; relative error below 1e-9 everywhere (checked against libm's
 * expm1 over [1e-12, 61]).  The halving loop it replaced cost 181
 * instructions a sampled large block. */
static double hit_probability(double x)
{
    if (x < 0.5)
        return x * exp_series_tail(-x, 11);
    if (x > 60)
        return 1;
    return 1 - exp_neg(x);
}

/* Bytes to the next sample point: exponential with mean `rate`. */
static ptrdiff_t next_gap(ebb__sample_counter_t *t, size_t rate)
{
    if (rate == 0)
        return PTRDIFF_MAX;
    double u = (double)((next_random(t) >> 11) + 1) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double gap = -ln_unit(u) * (double)rate;
    return gap >= (double)PTRDIFF_MAX ? PTRDIFF_MAX : (ptrdiff_t)gap;
}

static void restart(ebb__sample_counter_t *t, unsigned epoch)
{
    if (t->rng == 0) {
        uint64_t seed = atomic_fetch_add_explicit(&sampler.seeds, 1, memory_order_relaxed);
        t->rng = ebb__mix64(ebb__os_now_ns() ^ (uintptr_t)t ^ (seed << 40)) | 1;
    }
    t->epoch = epoch;
    t->left = next_gap(t, atomic_load_explicit(&sampler.rate, memory_order_relaxed));
}

/* t->left went negative: a sample point falls inside this block.  The
 * process is memoryless, so the next gap starts where the block ends. */
static int fire(ebb__sample_counter_t *t)
{
    size_t rate = atomic_load_explicit(&sampler.rate, memory_order_relaxed);
    t->left = next_gap(t, rate);
    return rate != 0 && !in_sampler && !ebb__quiet &&
           atomic_load_explicit(&ebb__threads_allowed, memory_order_relaxed);
}


int ebb__sample_tick(size_t n)
{
    ebb__sample_counter_t *t = ebb__thread_sample_counter();
    if (EBB_UNLIKELY(t == NULL))
        return 0; /* ebb starting a thread of its own */
    unsigned epoch = atomic_load_explicit(&sampler.epoch, memory_order_relaxed);
    if (EBB_UNLIKELY(t->epoch != epoch))
        restart(t, epoch);
    ptrdiff_t left = t->left - (ptrdiff_t)n; /* n <= PTRDIFF_MAX: no overflow */
    if (EBB_LIKELY(left >= 0)) {
        t->left = left;
        return 0;
    }
    return fire(t);
}

int ebb__sample_fired(size_t n)
{
    ebb__sample_counter_t *t = ebb__thread_sample_counter();
    if (EBB_UNLIKELY(t == NULL))
        return 0;
    unsigned epoch = atomic_load_explicit(&sampler.epoch, memory_order_relaxed);
    if (EBB_UNLIKELY(t->epoch != epoch)) {
        /* Drawn under another rate (or never: a new cache): count n
         * against a gap drawn under this one instead. */
        restart(t, epoch);
        return ebb__sample_tick(n);
    }
    return fire(t);
}

/* --------------------------------------------------------------- gates */

/* A gate: threads pass through a section without waiting for one another,
 * each counting itself in and out; a fork or ebb_check closes it, waits for
 * the threads inside to leave, and opens it again, and a thread that comes
 * while it is closed waits outside.  It stands where a lock shared by every
 * sampling thread stood, and costs two atomic adds on a line the threads
 * share (one sample per 512 KiB allocated: they rarely meet there).  A
 * thread that closes a gate it is inside itself (a fork from a signal
 * handler that came during an unwind) does not wait for itself. */
typedef struct {
    _Atomic int inside; /* threads in the section */
    _Atomic int closed; /* closers at work: > 0 keeps newcomers out */
} gate_t;

static void gate_enter(gate_t *g, int *mine)
{
    for (;;) {
        atomic_fetch_add_explicit(&g->inside, 1, memory_order_seq_cst);
        int c = atomic_load_explicit(&g->closed, memory_order_seq_cst);
        if (c == 0 || *mine > 0) {
            (*mine)++;
            return;
        }
        atomic_fetch_sub_explicit(&g->inside, 1, memory_order_seq_cst);
        ebb__os_wake_all(&g->inside); /* the closer may wait for this one */
        ebb__os_wait(&g->closed, c, -1);
    }
}

static void gate_leave(gate_t *g, int *mine)
{
    (*mine)--;
    atomic_fetch_sub_explicit(&g->inside, 1, memory_order_seq_cst);
    if (EBB_UNLIKELY(atomic_load_explicit(&g->closed, memory_order_seq_cst) != 0))
        ebb__os_wake_all(&g->inside);
}

static void gate_close(gate_t *g, int mine)
{
    atomic_fetch_add_explicit(&g->closed, 1, memory_order_seq_cst);
    int v;
    while ((v = atomic_load_explicit(&g->inside, memory_order_seq_cst)) > mine)
        ebb__os_wait(&g->inside, v, -1);
}

static void gate_open(gate_t *g)
{
    atomic_fetch_sub_explicit(&g->closed, 1, memory_order_seq_cst);
    ebb__os_wake_all(&g->closed);
}

/* In a fork child: only the calling thread is left, inside or not. */
static void gate_reset(gate_t *g, int mine)
{
    atomic_store_explicit(&g->inside, mine, memory_order_relaxed);
    atomic_store_explicit(&g->closed, 0, memory_order_relaxed);
}

/* Around each unwind, closed by fork's prepare handler (first, before any
 * lock of ebb's): no fork while a thread is inside an unwinder, whose locks
 * (glibc's dl_iterate_phdr, which backtrace() takes on 32-bit x86 and when
 * ebb's own unwinder refuses a stack) the child would find held by a thread
 * it does not have (seen in test_fork under -m32).  An unwind may allocate
 * (the first use of libgcc loads it; a thread's first unwind asks for its
 * stack's bounds) but never samples, so it never comes back here. */
static gate_t unwind_gate;
static __thread int in_unwind __attribute__((tls_model("initial-exec")));
/* Around each change to the tables, closed by fork and ebb_check last,
 * holding every lock: the child, and the check, see the tables at rest.
 * Nothing inside it takes a lock or allocates. */
static gate_t table_gate;
static __thread int in_table __attribute__((tls_model("initial-exec")));

/* --------------------------------------------------------------- sites */

extern const char __start_ebb_entry[] EBB_HIDDEN;
extern const char __stop_ebb_entry[] EBB_HIDDEN;

static int in_ebb(const void *pc)
{
    return (const char *)pc > __start_ebb_entry && (const char *)pc <= __stop_ebb_entry;
}

/* The stack of the allocating call, ebb's frames dropped: ebb's own
 * unwinder (os/linux_unwind.c: rules cached per return address), or glibc's
 * backtrace() where that one refuses. */
static EBB_ENTRY EBB_NOINLINE uint32_t capture(void **pcs, ebb__unwind_memo_t *memo,
                                                uint32_t *site)
{
    void *raw[EBB_SITE_DEPTH + 16];
    int max = (int)(sizeof raw / sizeof raw[0]);
    gate_enter(&unwind_gate, &in_unwind);
    int n = ebb__os_unwind_memo(raw, max, memo);
    if (n < 0) {
        n = ebb__os_backtrace(raw, max);
        if (memo)
            memo->note = 0; /* a stack the memo does not hold */
    }
    gate_leave(&unwind_gate, &in_unwind);
    /* The memo's stack, whose site the sampler noted: no frames needed. */
    if (site && memo && memo->note) {
        *site = memo->note;
        return 0;
    }
    /* Everything up to the outermost frame of ebb's: frames above it that
     * are not ebb's own belong to an unwinder's wrapper (ASan intercepts
     * backtrace()), or to a pressure callback that allocated, whose blocks
     * are charged to the allocation that ran it. */
    int skip = 0;
    for (int i = 0; i < n; i++)
        if (in_ebb(raw[i]))
            skip = i + 1;
    int depth = n - skip < EBB_SITE_DEPTH ? n - skip : EBB_SITE_DEPTH;
    memcpy(pcs, raw + skip, (size_t)depth * sizeof(void *));
    return (uint32_t)depth;
}

/* The registered hook's text, NUL-terminated; its length.  The hook and
 * its argument are read as a pair without a lock: again if a change was
 * under way (hook_seq odd, or moved meanwhile). */
static uint32_t hook_text(char *text)
{
    ebb_stack_hook_fn fn;
    void *arg;
    unsigned seq;
    do {
        while ((seq = atomic_load_explicit(&sampler.hook_seq, memory_order_acquire)) & 1)
            ;
        fn = atomic_load_explicit(&sampler.hook, memory_order_acquire);
        arg = atomic_load_explicit(&sampler.hook_arg, memory_order_acquire);
    } while (atomic_load_explicit(&sampler.hook_seq, memory_order_acquire) != seq);
    size_t len = fn ? fn(text, EBB_SITE_TEXT - 1, arg) : 0;
    if (len > EBB_SITE_TEXT - 1)
        len = EBB_SITE_TEXT - 1;
    text[len] = 0;
    return (uint32_t)len;
}

static uint64_t site_hash(void *const *pcs, uint32_t depth, const char *text, uint32_t len)
{
    uint64_t h = ebb__mix64(depth + ((uint64_t)len << 32));
    for (uint32_t i = 0; i < depth; i++)
        h = ebb__mix64(h ^ (uintptr_t)pcs[i]);
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)text[i]) * 0x100000001b3ull;
    return ebb__mix64(h);
}

/* Site i, NULL if its chunk was never mapped. */
static site_t *site_at(size_t i)
{
    site_t *c = atomic_load_explicit(&sampler.sites[i / EBB_SAMPLE_CHUNK_SITES],
                                     memory_order_acquire);
    return c ? &c[i % EBB_SAMPLE_CHUNK_SITES] : NULL;
}

/* Site i, known to be mapped (it is in the index, or it is being written). */
static site_t *site_known(size_t i)
{
    site_t *c = atomic_load_explicit(&sampler.sites[i / EBB_SAMPLE_CHUNK_SITES],
                                     memory_order_acquire);
    return &c[i % EBB_SAMPLE_CHUNK_SITES];
}

/* Site numbers readers may look at: those handed out, at most the table. */
static size_t sites_claimed(void)
{
    size_t n = atomic_load_explicit(&sampler.claimed, memory_order_acquire);
    return n < EBB_SAMPLE_SITES ? n : EBB_SAMPLE_SITES;
}

/* Site i if it is in the index, else NULL. */
static site_t *site_listed(size_t i)
{
    site_t *s = site_at(i);
    return s && atomic_load_explicit(&s->state, memory_order_acquire) == SITE_LISTED ? s : NULL;
}

/* Mapped memory for the profiler's tables, counted as ebb's metadata; NULL
 * if the OS refuses (the sample is dropped). */
static void *table_map(size_t bytes)
{
    void *m = ebb__os_map_meta(bytes);
    if (m) {
        ebb__mapped_add(bytes);
        atomic_fetch_add_explicit(&sampler.table_bytes, bytes, memory_order_relaxed);
    }
    return m;
}

static void table_unmap(void *m, size_t bytes)
{
    ebb__os_unmap(m, bytes);
    ebb__mapped_sub(bytes);
    atomic_fetch_sub_explicit(&sampler.table_bytes, bytes, memory_order_relaxed);
}

/* The pointer in *slot, mapping `bytes` for it if it is NULL; two threads
 * may both map: the first to publish wins, the other gives its mapping
 * back.  NULL if the OS refuses. */
static void *table_chunk(void *_Atomic *slot, size_t bytes)
{
    void *m = atomic_load_explicit(slot, memory_order_acquire);
    if (m)
        return m;
    if ((m = table_map(bytes)) == NULL)
        return NULL;
    void *old = NULL;
    if (atomic_compare_exchange_strong_explicit(slot, &old, m, memory_order_acq_rel,
                                                memory_order_acquire))
        return m;
    table_unmap(m, bytes);
    return old;
}

static int same_site(const site_t *s, uint64_t h, void *const *pcs, uint32_t depth,
                     const char *text, uint32_t len)
{
    return s->hash == h && s->depth == depth && s->text_len == len &&
           !memcmp(s->pcs, pcs, depth * sizeof(void *)) && !memcmp(s->text, text, len);
}

/* A new site for this stack, not in the index yet; its number, 0 if the
 * table is full or cannot be mapped. */
static uint32_t site_claim(uint64_t h, void *const *pcs, uint32_t depth, const char *text,
                           uint32_t len)
{
    size_t i = atomic_fetch_add_explicit(&sampler.claimed, 1, memory_order_relaxed);
    if (i >= EBB_SAMPLE_SITES)
        return 0;
    site_t *c = table_chunk((void *_Atomic *)&sampler.sites[i / EBB_SAMPLE_CHUNK_SITES],
                            EBB_SAMPLE_CHUNK_SITES * sizeof(site_t));
    if (c == NULL)
        return 0;
    site_t *s = &c[i % EBB_SAMPLE_CHUNK_SITES];
    s->hash = h;
    s->depth = depth;
    s->text_len = len;
    memcpy(s->pcs, pcs, depth * sizeof(void *));
    memcpy(s->text, text, len);
    s->text[len] = 0;
    return (uint32_t)i + 1;
}

/* The number (index + 1) of the site for this stack, made if new; 0 if
 * the table is full.  Lock-free: a slot of the index is claimed by
 * compare-and-swap once the new site is written, so whoever finds it sees
 * it whole; a thread that loses a slot reads the winner's site, and if it
 * is the same stack uses it (its own stays unused). */
static uint32_t site_find_or_add(void *const *pcs, uint32_t depth, const char *text, uint32_t len)
{
    _Atomic uint64_t *index = table_chunk((void *_Atomic *)&sampler.index,
                                          INDEX_SLOTS * sizeof(uint64_t));
    if (index == NULL)
        return 0;
    uint64_t h = site_hash(pcs, depth, text, len), key = h >> 32;
    uint32_t mine = 0;
    size_t i = (size_t)h & (INDEX_SLOTS - 1);
    for (size_t probes = 0; probes < INDEX_SLOTS; probes++, i = (i + 1) & (INDEX_SLOTS - 1)) {
        uint64_t v = atomic_load_explicit(&index[i], memory_order_acquire);
        if (v == 0) {
            if (mine == 0 && (mine = site_claim(h, pcs, depth, text, len)) == 0)
                return 0;
            if (atomic_compare_exchange_strong_explicit(&index[i], &v, key << 32 | mine,
                                                        memory_order_acq_rel,
                                                        memory_order_acquire)) {
                atomic_store_explicit(&site_known(mine - 1)->state, SITE_LISTED,
                                      memory_order_release);
                atomic_fetch_add_explicit(&sampler.nsites, 1, memory_order_relaxed);
                return mine;
            }
            /* v: the site that won this slot */
        }
        if (v >> 32 == key && same_site(site_known((uint32_t)v - 1), h, pcs, depth, text, len)) {
            if (mine)
                atomic_store_explicit(&site_known(mine - 1)->state, SITE_UNUSED,
                                      memory_order_relaxed);
            return (uint32_t)v;
        }
    }
    return 0; /* not reached: the index has twice as many slots as sites */
}

/* ------------------------------------------------------------- records */

static record_t *record_at(uint32_t tag)
{
    uint32_t i = tag - 1;
    record_t *c = atomic_load_explicit(&sampler.chunk[i / EBB_SAMPLE_CHUNK_RECORDS],
                                       memory_order_acquire);
    return &c[i % EBB_SAMPLE_CHUNK_RECORDS];
}

/* Push the chain first..last (linked by next) on the free stack. */
static void records_push(uint32_t first, record_t *last)
{
    uint64_t head = atomic_load_explicit(&sampler.free_records, memory_order_relaxed), want;
    do {
        atomic_store_explicit(&last->next, (uint32_t)head, memory_order_relaxed);
        want = ((head >> 32) + 1) << 32 | first;
    } while (!atomic_compare_exchange_weak_explicit(&sampler.free_records, &head, want,
                                                    memory_order_release, memory_order_relaxed));
}

/* A new chunk of records: the first is returned, the rest pushed free.
 * 0 if none can be had. */
static uint32_t records_grow(void)
{
    unsigned c = atomic_fetch_add_explicit(&sampler.nchunks, 1, memory_order_relaxed);
    if (c >= EBB_SAMPLE_CHUNKS)
        return 0;
    record_t *m = table_map(EBB_SAMPLE_CHUNK_RECORDS * sizeof(record_t));
    if (m == NULL)
        return 0;
    uint32_t base = c * EBB_SAMPLE_CHUNK_RECORDS;
    for (uint32_t i = 1; i + 1 < EBB_SAMPLE_CHUNK_RECORDS; i++)
        atomic_store_explicit(&m[i].next, base + i + 2, memory_order_relaxed);
    atomic_store_explicit(&sampler.chunk[c], m, memory_order_release);
    records_push(base + 2, &m[EBB_SAMPLE_CHUNK_RECORDS - 1]);
    return base + 1;
}

/* A free record's number, mapping a chunk if need be; 0 if none can be
 * had.  The head's version changes with every push and pop, so a pop that
 * read a `next` which has since been taken and pushed back fails its CAS. */
static uint32_t record_take(void)
{
    uint64_t head = atomic_load_explicit(&sampler.free_records, memory_order_acquire);
    for (;;) {
        uint32_t tag = (uint32_t)head;
        if (tag == 0)
            return records_grow();
        uint32_t next = atomic_load_explicit(&record_at(tag)->next, memory_order_relaxed);
        uint64_t want = ((head >> 32) + 1) << 32 | next;
        if (atomic_compare_exchange_weak_explicit(&sampler.free_records, &head, want,
                                                  memory_order_acquire, memory_order_acquire))
            return tag;
    }
}

/* The weights of a sampled block of s bytes: s / p(s) and 1 / p(s). */
static void weigh(size_t s, size_t rate, uint64_t *bytes, uint64_t *count)
{
    double p = hit_probability((double)s / (double)rate);
    *bytes = (uint64_t)((double)s / p + 0.5);
    *count = (uint64_t)(COUNT_ONE / p + 0.5);
}

static uint32_t record_sample(site_t *s, uint32_t site, size_t n, size_t rate)
{
    uint32_t tag = record_take();
    if (tag == 0)
        return 0;
    record_t *r = record_at(tag);
    weigh(n, rate, &r->bytes, &r->count);
    atomic_store_explicit(&r->site, site, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->live_bytes, r->bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->live_count, r->count, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->total_bytes, r->bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->total_count, r->count, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->live_samples, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sampler.live, 1, memory_order_relaxed);
    return tag;
}

EBB_ENTRY EBB_NOINLINE uint32_t ebb__sample_begin(size_t n)
{
    void *pcs[EBB_SITE_DEPTH];
    char text[EBB_SITE_TEXT];
    ebb__unwind_memo_t *memo = ebb__thread_unwind_memo();
    /* The same stack as this thread's last sample, and no text: the same
     * site (sites are never removed), without copying the frames, hashing
     * them or looking them up. */
    uint32_t site = 0;
    in_sampler = 1;
    uint32_t len = hook_text(text);
    uint32_t depth = capture(pcs, memo, len == 0 ? &site : NULL);
    in_sampler = 0;
    size_t rate = atomic_load_explicit(&sampler.rate, memory_order_relaxed);
    if (rate == 0)
        return 0; /* turned off meanwhile */
    uint32_t tag = 0;
    gate_enter(&table_gate, &in_table);
    if (site == 0) {
        site = site_find_or_add(pcs, depth, text, len);
        if (memo && len == 0)
            memo->note = site;
    }
    if (site)
        tag = record_sample(site_known(site - 1), site, n, rate);
    atomic_fetch_add_explicit(&sampler.taken, 1, memory_order_relaxed);
    if (tag == 0)
        atomic_fetch_add_explicit(&sampler.dropped, 1, memory_order_relaxed);
    gate_leave(&table_gate, &in_table);
    return tag;
}

/* The site of an allocation ebb refused (insight/crash.c): what a sample
 * would record there.  Nothing from inside the sampler (its unwinder's first
 * load or the hook allocated, and unwinding again would take the unwind lock
 * twice) nor before ebb's constructor loaded the unwinder. */
EBB_ENTRY EBB_NOINLINE uint32_t ebb__sample_site_now(void **pcs, char *text, uint32_t *text_len)
{
    *text_len = 0;
    text[0] = 0;
    if (in_sampler || !atomic_load_explicit(&ebb__threads_allowed, memory_order_acquire))
        return 0;
    in_sampler = 1;
    uint32_t depth = capture(pcs, ebb__thread_unwind_memo(), NULL);
    *text_len = hook_text(text);
    in_sampler = 0;
    return depth;
}

void ebb__sample_forget(uint32_t tag)
{
    gate_enter(&table_gate, &in_table);
    record_t *r = record_at(tag);
    site_t *s = site_known(atomic_load_explicit(&r->site, memory_order_relaxed) - 1);
    atomic_fetch_sub_explicit(&s->live_bytes, r->bytes, memory_order_relaxed);
    atomic_fetch_sub_explicit(&s->live_count, r->count, memory_order_relaxed);
    atomic_fetch_sub_explicit(&s->live_samples, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&sampler.live, 1, memory_order_relaxed);
    atomic_store_explicit(&r->site, 0, memory_order_relaxed);
    records_push(tag, r);
    gate_leave(&table_gate, &in_table);
}

/* ----------------------------------------------------------- reading */

static uint64_t count_of(uint64_t fixed)
{
    return (fixed + (uint64_t)COUNT_ONE / 2) >> 16;
}

/* Site a goes before site b in a report: more live bytes, then more bytes
 * allocated in all, then older. */
static int before(uint32_t a, uint32_t b)
{
    const site_t *x = site_known(a), *y = site_known(b);
    uint64_t xl = atomic_load_explicit(&x->live_bytes, memory_order_relaxed);
    uint64_t yl = atomic_load_explicit(&y->live_bytes, memory_order_relaxed);
    if (xl != yl)
        return xl > yl;
    uint64_t xt = atomic_load_explicit(&x->total_bytes, memory_order_relaxed);
    uint64_t yt = atomic_load_explicit(&y->total_bytes, memory_order_relaxed);
    if (xt != yt)
        return xt > yt;
    return a < b;
}

/* A heap of site indices kept in out[].depth while the top ones are chosen
 * (no memory of our own to sort in): the root is the one that goes last. */
static void sift_down(ebb__site_t *out, size_t k, size_t i)
{
    for (;;) {
        size_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < k && before((uint32_t)out[worst].depth, (uint32_t)out[l].depth))
            worst = l;
        if (r < k && before((uint32_t)out[worst].depth, (uint32_t)out[r].depth))
            worst = r;
        if (worst == i)
            return;
        int t = out[i].depth;
        out[i].depth = out[worst].depth;
        out[worst].depth = t;
        i = worst;
    }
}

static void sift_up(ebb__site_t *out, size_t i)
{
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!before((uint32_t)out[up].depth, (uint32_t)out[i].depth))
            return;
        int t = out[i].depth;
        out[i].depth = out[up].depth;
        out[up].depth = t;
        i = up;
    }
}

static void fill(ebb__site_t *o, const site_t *s)
{
    o->live_bytes = atomic_load_explicit(&s->live_bytes, memory_order_relaxed);
    o->live_count = count_of(atomic_load_explicit(&s->live_count, memory_order_relaxed));
    o->total_bytes = atomic_load_explicit(&s->total_bytes, memory_order_relaxed);
    o->total_count = count_of(atomic_load_explicit(&s->total_count, memory_order_relaxed));
    o->samples = atomic_load_explicit(&s->live_samples, memory_order_relaxed);
    o->depth = (int)s->depth;
    memset(o->pcs, 0, sizeof o->pcs);
    memcpy(o->pcs, s->pcs, s->depth * sizeof(void *));
    memcpy(o->stack, s->text, s->text_len + 1);
}

/* The table gate is closed while the top sites are chosen: the counts do
 * not move under the sort (a sample waits for the few microseconds). */
size_t ebb__sample_top(ebb__site_t *out, size_t n)
{
    gate_close(&table_gate, in_table);
    size_t total = atomic_load_explicit(&sampler.nsites, memory_order_relaxed), k = 0;
    size_t claimed = sites_claimed();
    for (size_t i = 0; out && i < claimed; i++) {
        if (!site_listed(i))
            continue;
        if (k < n) {
            out[k].depth = (int)i;
            sift_up(out, k++);
        } else if (k > 0 && before((uint32_t)i, (uint32_t)out[0].depth)) {
            out[0].depth = (int)i;
            sift_down(out, k, 0);
        }
    }
    /* Heap sort: the last to go moves to the end, one at a time. */
    for (size_t m = k; m > 1; m--) {
        int t = out[0].depth;
        out[0].depth = out[m - 1].depth;
        out[m - 1].depth = t;
        sift_down(out, m - 1, 0);
    }
    for (size_t i = 0; i < k; i++)
        fill(&out[i], site_known((size_t)out[i].depth));
    gate_open(&table_gate);
    return total;
}

/* Keep out[0..*k) the (at most n) heaviest seen, most first: an insertion,
 * and most sites are lighter than the last kept and cost one compare. */
static void keep_heaviest(ebb__site_weight_t *out, size_t n, size_t *k,
                          const ebb__site_weight_t *w)
{
    if (w->live_bytes == 0 || (*k == n && out[n - 1].live_bytes >= w->live_bytes))
        return;
    size_t j = *k < n ? (*k)++ : n - 1;
    for (; j > 0 && out[j - 1].live_bytes < w->live_bytes; j--)
        out[j] = out[j - 1];
    out[j] = *w;
}

/* As ebb__sample_top, under the closed table gate: the weights of one
 * moment. */
size_t ebb__sample_top_weights(ebb__site_weight_t *out, size_t n, uint64_t *all_live)
{
    size_t k = 0;
    uint64_t live = 0;
    gate_close(&table_gate, in_table);
    size_t claimed = sites_claimed();
    for (size_t i = 0; i < claimed; i++) {
        const site_t *s = site_listed(i);
        if (s == NULL)
            continue;
        ebb__site_weight_t w = {
            .site = (uint32_t)i + 1,
            .live_bytes = atomic_load_explicit(&s->live_bytes, memory_order_relaxed),
            .live_count = atomic_load_explicit(&s->live_count, memory_order_relaxed),
            .samples = atomic_load_explicit(&s->live_samples, memory_order_relaxed),
        };
        live += w.live_bytes;
        if (n)
            keep_heaviest(out, n, &k, &w);
    }
    /* The text's hash, for a report that sums sites reading the same (a
     * listed site's text never changes). */
    for (size_t i = 0; i < k; i++) {
        const site_t *s = site_known(out[i].site - 1);
        out[i].text_hash = s->text_len ? site_hash(NULL, 0, s->text, s->text_len) | 1 : 0;
    }
    gate_open(&table_gate);
    *all_live = live;
    return k;
}

/* A listed site's frames and text never change: no gate. */
void ebb__sample_site_at_peak(ebb__site_t *out, const ebb__site_weight_t *w)
{
    fill(out, site_known(w->site - 1));
    out->live_bytes = w->live_bytes;
    out->live_count = count_of(w->live_count);
    out->samples = w->samples;
}

EBB_API size_t ebb_sample_sites(ebb_site_t *out, size_t n)
{
    return ebb__sample_top(out, n);
}

EBB_API size_t ebb_sample_rate(void)
{
    ebb__sample_start();
    return atomic_load_explicit(&sampler.rate, memory_order_relaxed);
}

EBB_API int ebb_set_sample_rate(size_t bytes)
{
    ebb__sample_start();
    atomic_store_explicit(&sampler.rate, bytes, memory_order_relaxed);
    unsigned epoch = atomic_fetch_add_explicit(&sampler.epoch, 1, memory_order_relaxed) + 1;
    /* The calling thread at once; the others at their next slow path. */
    ebb__sample_counter_t *t = ebb__thread_sample_counter();
    if (t != NULL)
        restart(t, epoch);
    ebb__sample_prime();
    return 0;
}

EBB_API void ebb_sample_stats(ebb_sample_stats_t *out)
{
    if (out == NULL)
        return;
    ebb__sample_start();
    out->rate = atomic_load_explicit(&sampler.rate, memory_order_relaxed);
    out->sites = atomic_load_explicit(&sampler.nsites, memory_order_relaxed);
    out->samples = atomic_load_explicit(&sampler.taken, memory_order_relaxed);
    out->live = atomic_load_explicit(&sampler.live, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&sampler.dropped, memory_order_relaxed);
}

EBB_API int ebb_set_stack_hook(ebb_stack_hook_fn fn, void *arg)
{
    ebb__lock(&sampler.lock);
    atomic_fetch_add_explicit(&sampler.hook_seq, 1, memory_order_relaxed); /* odd */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&sampler.hook, fn, memory_order_relaxed);
    atomic_store_explicit(&sampler.hook_arg, fn ? arg : NULL, memory_order_relaxed);
    atomic_fetch_add_explicit(&sampler.hook_seq, 1, memory_order_release); /* even */
    ebb__unlock(&sampler.lock);
    return 0;
}

/* ----------------------------------------------- stats, check, fork */

/* Every lock held (by the caller: ebb_check), the table gate closed. */
void ebb__sample_stats_locked(ebb_stats_t *s)
{
    s->mapped_meta += atomic_load_explicit(&sampler.table_bytes, memory_order_relaxed);
}

static unsigned chunks_claimed(void)
{
    unsigned n = atomic_load_explicit(&sampler.nchunks, memory_order_relaxed);
    return n < EBB_SAMPLE_CHUNKS ? n : EBB_SAMPLE_CHUNKS;
}

/* Every table the profiler mapped, for the RSS reading (the caller holds
 * every lock: the table gate is closed). */
void ebb__sample_each_map_locked(ebb__range_fn fn, void *ctx)
{
    _Atomic uint64_t *index = atomic_load_explicit(&sampler.index, memory_order_acquire);
    if (index)
        fn(ctx, (const void *)index, INDEX_SLOTS * sizeof(uint64_t), EBB_RANGE_META);
    for (size_t c = 0; c < EBB_SAMPLE_SITES / EBB_SAMPLE_CHUNK_SITES; c++) {
        site_t *chunk = atomic_load_explicit(&sampler.sites[c], memory_order_acquire);
        if (chunk)
            fn(ctx, chunk, EBB_SAMPLE_CHUNK_SITES * sizeof(site_t), EBB_RANGE_META);
    }
    for (unsigned c = 0; c < chunks_claimed(); c++) {
        record_t *chunk = atomic_load_explicit(&sampler.chunk[c], memory_order_acquire);
        if (chunk)
            fn(ctx, chunk, EBB_SAMPLE_CHUNK_RECORDS * sizeof(record_t), EBB_RANGE_META);
    }
}

/* The table gate closed: live samples as counted, as the sites add them
 * up, and as records in use; and every record either in use or on the free
 * stack, exactly once. */
int ebb__sample_check(void)
{
    uint64_t live = 0, weights = 0, records = 0, free_count = 0;
    uint64_t counted = atomic_load_explicit(&sampler.live, memory_order_relaxed);
    int faults = 0;
    for (size_t i = 0; i < sites_claimed(); i++) {
        const site_t *s = site_listed(i);
        if (s)
            live += atomic_load_explicit(&s->live_samples, memory_order_relaxed);
    }
    for (unsigned c = 0; c < chunks_claimed(); c++) {
        record_t *chunk = atomic_load_explicit(&sampler.chunk[c], memory_order_relaxed);
        if (chunk == NULL)
            continue;
        records += EBB_SAMPLE_CHUNK_RECORDS;
        for (uint32_t i = 0; i < EBB_SAMPLE_CHUNK_RECORDS; i++)
            if (atomic_load_explicit(&chunk[i].site, memory_order_relaxed))
                weights++;
    }
    uint32_t tag = (uint32_t)atomic_load_explicit(&sampler.free_records, memory_order_relaxed);
    for (; tag != 0 && free_count <= records; free_count++) {
        record_t *r = record_at(tag);
        if (atomic_load_explicit(&r->site, memory_order_relaxed))
            break; /* in use and free: counted as a fault below */
        tag = atomic_load_explicit(&r->next, memory_order_relaxed);
    }
    if (live != counted || weights != counted || weights + free_count != records) {
        ebb__diag("ebb_check: %llu live samples counted, %llu in sites, %llu records in use, "
                  "%llu free of %llu\n",
                  (unsigned long long)counted, (unsigned long long)live,
                  (unsigned long long)weights, (unsigned long long)free_count,
                  (unsigned long long)records);
        faults++;
    }
    return faults;
}

static void unwind_gate_close(void)
{
    gate_close(&unwind_gate, in_unwind);
}
static void unwind_gate_open(void)
{
    gate_open(&unwind_gate);
}
static void unwind_gate_child(void)
{
    gate_reset(&unwind_gate, in_unwind);
}
static void table_gate_close(void)
{
    gate_close(&table_gate, in_table);
}
static void table_gate_open(void)
{
    gate_open(&table_gate);
}
static void table_gate_child(void)
{
    gate_reset(&table_gate, in_table);
}

/* The unwind gate is closed around fork only: ebb_check closes the
 * tables'.  The sites' lock is the stack hook writers'. */
EBB_HIDDEN const ebb__lockset_t ebb__sample_unwind_locks = {
    .name = "sampler unwind", .lock = unwind_gate_close, .unlock = unwind_gate_open,
    .child = unwind_gate_child, .fork_only = 1 };
EBB_HIDDEN const ebb__lockset_t ebb__sample_locks = {
    .name = "sampler sites", .one = &sampler.lock, .lock = table_gate_close,
    .unlock = table_gate_open, .child = table_gate_child };
