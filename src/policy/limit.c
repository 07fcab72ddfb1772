/*
 * limit.c -- a ceiling on what ebb commits, pressure callbacks, and why the
 * last allocation failed.
 *
 * Owns: the limit (ebb_set_limit), the callbacks run under pressure
 * (ebb_on_pressure), the per-thread record of the last failure
 * (ebb_last_failure), and the rule that decides when each runs.
 *
 * What counts is `committed` (core/ledger.c): ebb's estimate of its
 * resident memory, the figure that costs RSS and that a cgroup charges, so a
 * purge lowers it.  Growth is admitted (core/budget.c, the arithmetic this
 * file sets the numbers of) where committed can grow on a slow path:
 * a bin taking a new pool from its arena (charged its whole span, at most
 * 512 KiB, before any of its pages is touched) and a new or grown large
 * mapping (charged its size).  Pages re-dirtied inside pools a heap already
 * has are not admitted one by one: they are bounded by what the pools span,
 * which was admitted when they were taken.
 *
 * Two levels (the soft one at EBB_LIMIT_SOFT percent of the limit, 90 by
 * default: EBB_LIMIT_SOFT_PERCENT):
 *   soft   growth past it starts an episode: the growing thread, once it
 *          holds no lock, runs the callbacks (level EBB_PRESSURE_SOFT) and
 *          purges everything, once per episode.  The episode ends when an
 *          admission finds committed back below the soft level.
 *   hard   growth past the limit less its emergency reserve is refused.
 *          The front (front/malloc.c), holding no lock, runs the callbacks
 *          (EBB_PRESSURE_HARD), purges, and tries once more; if that is
 *          refused too the request fails: NULL with errno = ENOMEM, and
 *          ebb_last_failure() says why.  The failure opens the reserve (the
 *          top EBB_LIMIT_RESERVE bytes, at most 1/32 of the limit):
 *          what the program does about the failure (a traceback, a message,
 *          dropping a cache) gets memory up to the limit itself (passed by a
 *          few re-dirtied pool pages at most, as above).  The reserve closes
 *          once committed is back below the limit less twice the reserve.
 * Admission reads two counters and never blocks, so it may run under any
 * lock, and only records what it saw; callbacks and purges run here, from
 * the front's slow paths with no lock held, never on ebb's own threads.  A
 * thread inside a callback is never called back again (its refused requests
 * simply fail), and other threads' callbacks may run at the same time:
 * callbacks must be thread-safe.  Nothing here runs from a signal
 * handler unless the program allocates from one.
 *
 * Without a limit (the default) admission is one relaxed load and a branch.
 *
 * The kernel's word (pressure.c, EBB_LIMIT_PSI).  While a limit is set, a
 * watcher thread listens for memory pressure the counters cannot see (other
 * processes in the same cgroup, or the whole machine, stalling on memory):
 * on an event it purges everything at once and records that the soft
 * callbacks are owed (ebb__pressure_take_event); the next slow path holding
 * no lock runs them, once per event, unless an episode of ebb's own is open (they ran
 * for it).  The kernel's episode is its event: committed is usually below
 * the soft level then, so ebb's own episode rule would not end it.
 *
 * Where the limit comes from.  EBB_LIMIT=SIZE, ebb_set_limit(), or an auto
 * limit (EBB_LIMIT=auto or N%, ebb_set_limit_auto).  From the environment, a
 * limit below EBB_LIMIT_FLOOR (base/size.h: what ebb and the C library's
 * start-up need) is refused, so EBB_LIMIT=1 cannot make a program fail
 * before main; a program's own ebb_set_limit is taken as given.  The
 * effective limit is
 * the smallest bound the system puts on the process (os.h reads them), less
 * the headroom for memory ebb does not manage:
 *   cgroup v2 memory.max, v1 memory limit, of the cgroup and its ancestors:
 *          what the kernel's OOM killer enforces in a container.  Headroom:
 *          the process's RSS that is not ebb's committed memory.
 *   physical memory plus swap: past it the whole machine is out.  Headroom
 *          as for a cgroup.
 *   RLIMIT_AS, RLIMIT_DATA: these bound address space (all mappings, or the
 *          private writable ones), not resident memory, and ebb maps more
 *          than it commits (untouched and purged pages, arena slack, its
 *          32 MiB ownership map).  Past them mmap fails, which ebb already
 *          turns into a clean NULL, so they are taken for what they can
 *          still give: headroom is the address space the process has that is
 *          not ebb's mapped memory, and the limit on committed so derived is
 *          an upper bound that at least starts the pressure callbacks as the
 *          rlimit nears; the kernel may still refuse a mapping first (that
 *          failure is EBB_FAIL_NO_MEMORY, not EBB_FAIL_LIMIT).
 * The candidate that leaves ebb the least room wins; N% takes N percent of
 * that room.  On top of what is measured comes a margin (config.h) for what
 * grows later, and at least half the bound is always left to ebb.  The
 * measure is taken once, when the limit is derived (at start-up for
 * EBB_LIMIT): memory another process in the same cgroup takes, or code
 * loaded beyond the margin, is not seen later.  What was found, and its
 * source in words, is kept for ebb_limit_info().
 */
#include "internal.h"

#include "base/size.h"

#include <errno.h>
#include <string.h>

typedef struct {
    ebb_pressure_fn fn;
    void *arg;
} callback_t;

/* One lock guards the callback table and the description of the limit in
 * force; no other lock is ever taken while it is held. */
static ebb__lock_t limit_lock = EBB_LOCK_INIT;

/* What ebb_on_pressure registered. */
static struct {
    callback_t cb[EBB_PRESSURE_CALLBACKS];
    unsigned n;
} callbacks;

/* The limit in force as ebb_limit_info describes it, the soft level's
 * percentage, and whether the options' limit was put in force yet. */
static struct {
    ebb_limit_info_t info;
    unsigned soft_percent;
    _Atomic int started;
} in_force = { .info = { .soft_percent = EBB_LIMIT_SOFT_PERCENT, .source = "none" },
               .soft_percent = EBB_LIMIT_SOFT_PERCENT };

/* Per thread: whether this thread is inside a callback, and why its last
 * request failed. */
static __thread int in_callback __attribute__((tls_model("initial-exec")));
static __thread ebb_failure_t last_failure __attribute__((tls_model("initial-exec")));

/* percent% of n, rounded down, without overflow. */
static uint64_t percent_of(uint64_t n, unsigned percent)
{
    return n / 100 * percent + n % 100 * percent / 100;
}

/* No callback on ebb's own threads (the pressure watcher allocates in
 * ebb_collect) nor on a thread already inside one. */
static int callbacks_allowed(void)
{
    return !in_callback && !ebb__thread_is_internal();
}

static void run_callbacks(int level, size_t request)
{
    callback_t cb[EBB_PRESSURE_CALLBACKS];
    ebb__lock(&limit_lock);
    unsigned n = callbacks.n;
    for (unsigned i = 0; i < n; i++)
        cb[i] = callbacks.cb[i];
    ebb__unlock(&limit_lock);
    size_t limit = atomic_load_explicit(&ebb__budget.limit, memory_order_relaxed);
    in_callback = 1;
    for (unsigned i = 0; i < n; i++)
        cb[i].fn(cb[i].arg, level, request, ebb__committed_now(), limit);
    in_callback = 0;
}

/* The kernel's event is owed: its callbacks, unless an episode of ebb's own
 * is open (they ran for it, and committed is still above the soft level). */
static int kernel_poll(void)
{
    if (!ebb__pressure_take_event() ||
        atomic_load_explicit(&ebb__budget.episode, memory_order_relaxed))
        return 0;
    run_callbacks(EBB_PRESSURE_SOFT, 0);
    ebb_collect(0);
    return 1;
}

/* The soft level was crossed by some thread's growth: the first thread to
 * come by with no lock held runs the episode's callbacks and purges. */
void ebb__limit_poll_slow(void)
{
    (void)ebb__budget_take_refused(); /* a refill refused part-way still got blocks */
    ebb__pressure_arm();
    int due = 1;
    if (!callbacks_allowed() || kernel_poll() ||
        !atomic_compare_exchange_strong_explicit(&ebb__budget.soft_due, &due, 0,
                                                 memory_order_relaxed, memory_order_relaxed))
        return;
    int was = 0;
    if (!atomic_compare_exchange_strong_explicit(&ebb__budget.episode, &was, 1,
                                                 memory_order_relaxed, memory_order_relaxed))
        return; /* another thread opened this episode */
    run_callbacks(EBB_PRESSURE_SOFT, 0);
    ebb_collect(0);
}

int ebb__limit_relieve(void)
{
    size_t bytes = ebb__budget_take_refused();
    if (bytes == 0 || !callbacks_allowed())
        return 0;
    atomic_store_explicit(&ebb__budget.episode, 1, memory_order_relaxed);
    atomic_store_explicit(&ebb__budget.soft_due, 0, memory_order_relaxed);
    (void)ebb__pressure_take_event(); /* this episode's callbacks answer it too */
    run_callbacks(EBB_PRESSURE_HARD, bytes);
    ebb_collect(0);
    return 1;
}

void ebb__limit_record_failure(size_t request)
{
    size_t limit = atomic_load_explicit(&ebb__budget.limit, memory_order_relaxed);
    size_t committed = ebb__committed_now();
    int at_limit = ebb__budget_take_refused() != 0;
    last_failure.reason = at_limit ? EBB_FAIL_LIMIT : EBB_FAIL_NO_MEMORY;
    last_failure.request = request;
    last_failure.committed = committed;
    last_failure.limit = limit;
    if (at_limit)
        atomic_store_explicit(&ebb__budget.reserve_open, 1, memory_order_relaxed);
    /* One line per episode: a program that probes for the biggest block it
     * can get should not fill its stderr. */
    if (at_limit && !atomic_exchange_explicit(&ebb__budget.reported, 1, memory_order_relaxed))
        ebb__diag("ebb: allocation of %zu bytes refused: limit %zu bytes, committed %zu\n",
                  request, limit, committed);
}

/* ------------------------------------------------------- the auto limit */

static void copy_source(ebb_limit_info_t *info, const char *s)
{
    size_t n = strlen(s);
    if (n >= sizeof info->source)
        n = sizeof info->source - 1;
    memcpy(info->source, s, n);
    info->source[n] = '\0';
}

static uint64_t minus(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

static uint64_t plus(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

/* One bound: the room it leaves ebb is the bound less what the process uses
 * of it that is not ebb's (`foreign`) and the margin, but at least
 * 1/EBB_LIMIT_AUTO_MIN_SHARE of it.  Kept in *out if it leaves the least
 * room so far (of equal ones, the first). */
static void consider(ebb_limit_info_t *out, uint64_t *least, uint64_t bound, uint64_t foreign,
                     int from, const char *source)
{
    if (bound == UINT64_MAX || bound == 0)
        return;
    if (bound > SIZE_MAX)
        bound = SIZE_MAX; /* 32-bit: no more can be mapped, let alone committed */
    uint64_t headroom = plus(plus(foreign, EBB_LIMIT_AUTO_MARGIN),
                             bound >> EBB_LIMIT_AUTO_MARGIN_SHIFT);
    uint64_t keep = bound / EBB_LIMIT_AUTO_MIN_SHARE;
    uint64_t room = headroom < bound - keep ? bound - headroom : keep;
    if (room >= *least)
        return;
    *least = room;
    out->from = from;
    out->effective = (size_t)bound;
    out->headroom = (size_t)(bound - room);
    copy_source(out, source);
}

int ebb__limit_derive(const char *root, const ebb__limit_inputs_t *in, unsigned percent,
                      ebb_limit_info_t *out)
{
    ebb__os_usage_t use = { 0, 0, 0 };
    ebb__os_bound_t b;
    uint64_t least = UINT64_MAX;
    *out = (ebb_limit_info_t){ .from = EBB_LIMIT_FROM_NONE };
    copy_source(out, "none");
    /* Without statm nothing is measured: the margin stands alone. */
    ebb__os_usage(root, &use);
    uint64_t resident = minus(use.resident, in->committed);
    if (ebb__os_cgroup_limit(root, &b))
        consider(out, &least, b.bytes, resident,
                 b.cgroup == 2 ? EBB_LIMIT_FROM_CGROUP2 : EBB_LIMIT_FROM_CGROUP1, b.source);
    consider(out, &least, in->rlimit_as, minus(use.size, in->mapped), EBB_LIMIT_FROM_RLIMIT_AS,
             "RLIMIT_AS");
    consider(out, &least, in->rlimit_data, minus(use.data, in->mapped),
             EBB_LIMIT_FROM_RLIMIT_DATA, "RLIMIT_DATA");
    if (ebb__os_physical_memory(root, &b))
        consider(out, &least, b.bytes, resident, EBB_LIMIT_FROM_MEMORY, b.source);
    if (least == UINT64_MAX)
        return -1;
    uint64_t limit = percent_of(least, percent);
    out->limit = limit ? (size_t)limit : 1; /* 0 would mean none; room <= SIZE_MAX */
    out->percent = percent;
    return 0;
}

/* ------------------------------------------------------------- public API */

/* The emergency reserve of a limit: EBB_LIMIT_RESERVE, but at most
 * 1/EBB_LIMIT_RESERVE_SHARE of the limit. */
static size_t reserve_of(size_t limit)
{
    size_t share = limit / EBB_LIMIT_RESERVE_SHARE;
    return share < EBB_LIMIT_RESERVE ? share : EBB_LIMIT_RESERVE;
}

/* Put `info` in force (its limit, its reserve, and a soft level at the
 * current percentage) and start afresh: no episode open, reserve closed. */
static void limit_install(const ebb_limit_info_t *info)
{
    ebb__lock(&limit_lock);
    in_force.info = *info;
    in_force.info.soft_percent = in_force.soft_percent;
    in_force.info.soft = (size_t)percent_of(info->limit, in_force.soft_percent);
    in_force.info.reserve = reserve_of(info->limit);
    ebb__budget_install(info->limit, in_force.info.soft, in_force.info.reserve);
    (void)ebb__pressure_take_event(); /* pressure heard before this limit is not its own */
    ebb__unlock(&limit_lock);
}

static void limit_given(ebb_limit_info_t *info, size_t bytes, int from, const char *source)
{
    *info = (ebb_limit_info_t){ .limit = bytes, .from = bytes ? from : EBB_LIMIT_FROM_NONE };
    copy_source(info, bytes ? source : "none");
}

static int derive_now(unsigned percent, ebb_limit_info_t *out)
{
    ebb__limit_inputs_t in = {
        .committed = ebb__committed_now(),
        .mapped = atomic_load_explicit(&ebb__ledger.mapped, memory_order_relaxed),
    };
    ebb__os_rlimits(&in.rlimit_as, &in.rlimit_data);
    return ebb__limit_derive(ebb__system_root(), &in, percent, out);
}

static void start_from_options(void)
{
    ebb_limit_info_t info;
    ebb__lock(&limit_lock);
    in_force.soft_percent = ebb__opt.limit_soft;
    ebb__unlock(&limit_lock);
    if (ebb__opt.limit_percent == 0) {
        limit_given(&info, ebb__opt.limit, EBB_LIMIT_FROM_ENV, "EBB_LIMIT");
    } else if (derive_now(ebb__opt.limit_percent, &info) != 0) {
        ebb__diag("ebb: EBB_LIMIT: no memory bound found (cgroup, rlimit, physical memory): "
                  "no limit set\n");
    } else if (info.limit < EBB_LIMIT_FLOOR) {
        /* A share of a tiny bound: refused as a size below the floor is
         * (base/options.c), when it is known. */
        ebb__diag("ebb: ignoring EBB_LIMIT=%u%%: it comes to %zu bytes, below %zu MiB, the least "
                  "ebb can work in; no limit set\n",
                  ebb__opt.limit_percent, info.limit, EBB_LIMIT_FLOOR >> 20);
        limit_given(&info, 0, EBB_LIMIT_FROM_ENV, "EBB_LIMIT");
    }
    limit_install(&info);
}

/* The options' limit is put in force once, before the first allocation
 * (front/init.c) or before any call here changes it, whichever comes first:
 * a limit the program sets is never overwritten by EBB_LIMIT. */
void ebb__limit_start(void)
{
    static ebb__lock_t start_lock = EBB_LOCK_INIT;
    if (atomic_load_explicit(&in_force.started, memory_order_acquire))
        return;
    ebb__ensure_init();
    ebb__lock(&start_lock);
    if (!atomic_load_explicit(&in_force.started, memory_order_relaxed)) {
        start_from_options();
        atomic_store_explicit(&in_force.started, 1, memory_order_release);
    }
    ebb__unlock(&start_lock);
}

EBB_API int ebb_set_limit(size_t bytes)
{
    ebb__limit_start();
    ebb_limit_info_t info;
    limit_given(&info, bytes, EBB_LIMIT_FROM_API, "ebb_set_limit");
    limit_install(&info);
    return 0;
}

EBB_API int ebb_limit_auto(ebb_limit_info_t *out)
{
    ebb__limit_start();
    int rc = derive_now(100, out);
    ebb__lock(&limit_lock);
    out->soft_percent = in_force.soft_percent;
    ebb__unlock(&limit_lock);
    out->soft = (size_t)percent_of(out->limit, out->soft_percent);
    if (rc == 0)
        return 0;
    errno = ENOENT;
    return -1;
}

EBB_API int ebb_set_limit_auto(unsigned percent)
{
    ebb__limit_start();
    ebb_limit_info_t info;
    if (percent == 0 || percent > 100) {
        errno = EINVAL;
        return -1;
    }
    if (derive_now(percent, &info) != 0) {
        errno = ENOENT;
        return -1;
    }
    limit_install(&info);
    return 0;
}

EBB_API int ebb_set_limit_soft(unsigned percent)
{
    if (percent == 0 || percent > 100) {
        errno = EINVAL;
        return -1;
    }
    ebb__limit_start();
    ebb__lock(&limit_lock);
    in_force.soft_percent = percent;
    in_force.info.soft_percent = percent;
    in_force.info.soft = (size_t)percent_of(in_force.info.limit, percent);
    atomic_store_explicit(&ebb__budget.soft, in_force.info.soft, memory_order_relaxed);
    ebb__unlock(&limit_lock);
    return 0;
}

EBB_API int ebb_limit_info(ebb_limit_info_t *out)
{
    ebb__limit_start();
    ebb__lock(&limit_lock);
    *out = in_force.info;
    ebb__unlock(&limit_lock);
    ebb__pressure_info(out); /* after: no lock is taken while limit_lock is held */
    return 0;
}

EBB_API size_t ebb_get_limit(void)
{
    return atomic_load_explicit(&ebb__budget.limit, memory_order_relaxed);
}

EBB_API int ebb_on_pressure(ebb_pressure_fn fn, void *arg)
{
    if (fn == NULL) {
        errno = EINVAL;
        return -1;
    }
    int rc = 0;
    ebb__lock(&limit_lock);
    if (callbacks.n == EBB_PRESSURE_CALLBACKS) {
        errno = ENOSPC;
        rc = -1;
    } else {
        callbacks.cb[callbacks.n++] = (callback_t){ fn, arg };
    }
    ebb__unlock(&limit_lock);
    return rc;
}

EBB_API int ebb_on_pressure_remove(ebb_pressure_fn fn, void *arg)
{
    int rc = -1;
    ebb__lock(&limit_lock);
    for (unsigned i = 0; i < callbacks.n; i++) {
        if (callbacks.cb[i].fn == fn && callbacks.cb[i].arg == arg) {
            callbacks.cb[i] = callbacks.cb[--callbacks.n];
            rc = 0;
            break;
        }
    }
    ebb__unlock(&limit_lock);
    return rc;
}

EBB_API int ebb_last_failure(ebb_failure_t *out, int clear)
{
    int reason = last_failure.reason;
    if (out)
        *out = last_failure;
    if (clear)
        last_failure = (ebb_failure_t){ 0 };
    return reason;
}

/* Fork and ebb_check take every lock; this one comes last: no other lock
 * is ever taken while it is held.  The child keeps the limit and the
 * callbacks. */
EBB_HIDDEN const ebb__lockset_t ebb__limit_locks = { .name = "limit", .one = &limit_lock };
