/*
 * test_fork.c -- fork() in a multi-threaded process.
 *
 * Four worker threads churn allocations and hand blocks to each other through
 * a mutex-protected queue, so at any moment some thread is inside the
 * allocator, probably holding one of its locks.  Meanwhile the process forks
 * many times.  Each child is single-threaded with a copy of the heap taken at
 * an arbitrary instant; it must be able to:
 *   - verify and free every block it inherited (the queue's, made by threads
 *     that do not exist in the child, and the forking thread's own),
 *   - allocate and free a lot (all size kinds, realloc, aligned),
 *   - start a thread and exchange blocks with it,
 *   - sometimes fork again (a grandchild does the same),
 *   - pass ebb_check() == 0,
 * and exit 0.  A deadlock in the child (a lock left held across fork) is
 * caught by alarm() in the child and by a timeout in the parent; a deadlock
 * in the parent by alarm() there.
 *
 * Build: cc -std=c11 -Iinclude tests/api/test_fork.c build/libebb.a -lcmocka -lpthread
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ebb.h"
#include "api.h"

#define NWORKERS 4
#define NFORKS 50
#define QCAP 2048
#define CHILD_ALARM_S 20
#define CHILD_TIMEOUT_MS 25000
#define MAX_FAILURES 3 /* stop forking after this many failed children */
#define PARENT_ALARM_S 300


/* ------------------------------------------------------------------------ */
/* Blocks carry a pattern derived from their address and a seed.            */

struct blk {
    unsigned char *p;
    size_t n;
    uint32_t seed;
};

static unsigned char pat(uintptr_t a, uint32_t seed, size_t i)
{
    return (unsigned char)((a >> 4) ^ seed ^ (i * 29) ^ (i >> 7));
}

/* For big blocks write/check the first and last 512 bytes and one byte per
 * 4 KiB in between: enough to catch a block handed out twice. */
static void blk_fill(struct blk *b)
{
    uintptr_t a = (uintptr_t)b->p;
    for (size_t i = 0; i < b->n; i++) {
        if (i == 512 && b->n > 2048) {
            for (; i + 512 < b->n; i += 4096)
                b->p[i] = pat(a, b->seed, i);
            i = b->n - 512;
        }
        b->p[i] = pat(a, b->seed, i);
    }
}

static int blk_ok(const struct blk *b)
{
    uintptr_t a = (uintptr_t)b->p;
    for (size_t i = 0; i < b->n; i++) {
        if (i == 512 && b->n > 2048) {
            for (; i + 512 < b->n; i += 4096)
                if (b->p[i] != pat(a, b->seed, i))
                    return 0;
            i = b->n - 512;
        }
        if (b->p[i] != pat(a, b->seed, i))
            return 0;
    }
    return 1;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static size_t rand_size(uint64_t *s)
{
    uint64_t r = rng_next(s);
    switch (r % 16) {
    case 0: /* 1 in 64: large */
        if ((r >> 4) % 4 == 0)
            return (size_t)(r >> 16) % (600 * KiB);
        return (size_t)(r >> 16) % (128 * KiB);
    case 1:
    case 2:
        return (size_t)(r >> 16) % (32 * KiB);
    default:
        return (size_t)(r >> 16) % 600;
    }
}

/* Allocate with one of the entry points; NULL only on real failure. */
static void *rand_alloc(uint64_t *s, size_t n)
{
    uint64_t r = rng_next(s);
    switch (r % 8) {
    case 0:
        return ebb_calloc(1, n);
    case 1:
        return ebb_aligned_alloc((size_t)1 << (4 + (r >> 8) % 10), n);
    case 2: {
        void *p = NULL;
        return ebb_posix_memalign(&p, 64, n) == 0 ? p : NULL;
    }
    default:
        return ebb_malloc(n);
    }
}

/* ------------------------------------------------------------------------ */
/* Shared state: the hand-off queue and the workers.                        */

static pthread_mutex_t qmu = PTHREAD_MUTEX_INITIALIZER;
static struct blk queue[QCAP];
static size_t qhead, qlen; /* guarded by qmu */

static atomic_int stop_workers;
static atomic_long worker_errors;
static atomic_long worker_ops;

static void report(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        (void)!write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Push b; if the queue is full, the oldest entry is returned to be freed. */
static struct blk queue_push(struct blk b)
{
    struct blk out = {0};
    pthread_mutex_lock(&qmu);
    if (qlen == QCAP) {
        out = queue[qhead];
        qhead = (qhead + 1) % QCAP;
        qlen--;
    }
    queue[(qhead + qlen) % QCAP] = b;
    qlen++;
    pthread_mutex_unlock(&qmu);
    return out;
}

static struct blk queue_pop(void)
{
    struct blk out = {0};
    pthread_mutex_lock(&qmu);
    if (qlen) {
        out = queue[qhead];
        qhead = (qhead + 1) % QCAP;
        qlen--;
    }
    pthread_mutex_unlock(&qmu);
    return out;
}

static void check_and_free(struct blk b, atomic_long *errs, const char *who)
{
    if (!b.p)
        return;
    if (!blk_ok(&b)) {
        report("%s: block %p (%zu bytes) corrupted\n", who, (void *)b.p, b.n);
        atomic_fetch_add(errs, 1);
    }
    ebb_free(b.p);
}

#define WSET 64

static void *worker(void *arg)
{
    uint64_t s = 0x9E3779B97F4A7C15ull * ((uintptr_t)arg + 1);
    struct blk mine[WSET];
    memset(mine, 0, sizeof mine);
    while (!atomic_load_explicit(&stop_workers, memory_order_relaxed)) {
        uint64_t r = rng_next(&s);
        size_t slot = (size_t)(r >> 32) % WSET;
        switch (r % 4) {
        case 0: { /* hand a new block to whoever pops it */
            struct blk b = {0};
            b.n = rand_size(&s);
            b.p = rand_alloc(&s, b.n);
            if (!b.p) {
                report("worker: allocation of %zu failed\n", b.n);
                atomic_fetch_add(&worker_errors, 1);
                break;
            }
            b.seed = (uint32_t)r;
            blk_fill(&b);
            check_and_free(queue_push(b), &worker_errors, "worker(push)");
            break;
        }
        case 1: /* free a block another thread made */
            check_and_free(queue_pop(), &worker_errors, "worker(pop)");
            break;
        case 2: { /* private working set, with realloc */
            struct blk *b = &mine[slot];
            if (b->p && !blk_ok(b)) {
                report("worker: private block %p corrupted\n", (void *)b->p);
                atomic_fetch_add(&worker_errors, 1);
            }
            size_t n = rand_size(&s) + 1;
            unsigned char *q = ebb_realloc(b->p, n);
            if (!q) {
                report("worker: realloc to %zu failed\n", n);
                atomic_fetch_add(&worker_errors, 1);
                break;
            }
            b->p = q;
            b->n = n;
            b->seed = (uint32_t)(r >> 8);
            blk_fill(b);
            break;
        }
        default:
            check_and_free(mine[slot], &worker_errors, "worker(private)");
            mine[slot].p = NULL;
            break;
        }
        atomic_fetch_add_explicit(&worker_ops, 1, memory_order_relaxed);
    }
    for (int i = 0; i < WSET; i++)
        check_and_free(mine[i], &worker_errors, "worker(exit)");
    return NULL;
}

static pthread_t workers[NWORKERS];

static void start_workers(void)
{
    atomic_store(&stop_workers, 0);
    atomic_store(&worker_errors, 0);
    atomic_store(&worker_ops, 0);
    for (uintptr_t i = 0; i < NWORKERS; i++)
        assert_int_equal(pthread_create(&workers[i], NULL, worker, (void *)i), 0);
    /* let them get going */
    while (atomic_load(&worker_ops) < 20000)
        sched_yield();
}

static void stop_and_drain(void)
{
    atomic_store(&stop_workers, 1);
    for (int i = 0; i < NWORKERS; i++)
        assert_int_equal(pthread_join(workers[i], NULL), 0);
    for (;;) {
        struct blk b = queue_pop();
        if (!b.p)
            break;
        check_and_free(b, &worker_errors, "drain");
    }
    EXPECT(atomic_load(&worker_errors) == 0, "%ld errors in worker threads",
           (long)atomic_load(&worker_errors));
}

/* ------------------------------------------------------------------------ */
/* The child.                                                                */

static atomic_long child_errors; /* only meaningful inside a child */

struct xfer {
    struct blk b[256];
    int n;
};

/* A thread in the child: frees the blocks it was given, returns new ones. */
static void *child_thread(void *arg)
{
    struct xfer *x = arg;
    uint64_t s = 12345;
    for (int i = 0; i < x->n; i++)
        check_and_free(x->b[i], &child_errors, "child thread");
    for (int i = 0; i < 256; i++) {
        x->b[i].n = rand_size(&s);
        x->b[i].p = rand_alloc(&s, x->b[i].n);
        if (!x->b[i].p) {
            atomic_fetch_add(&child_errors, 1);
            x->n = i;
            return NULL;
        }
        x->b[i].seed = (uint32_t)i;
        blk_fill(&x->b[i]);
    }
    x->n = 256;
    return NULL;
}

static int run_child(uint64_t seed, struct blk *inherited, size_t ninherited, int depth);

static int wait_child(pid_t pid, int timeout_ms, char *why, size_t whylen)
{
    int st = 0;
    for (int waited = 0;; waited++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0) {
            snprintf(why, whylen, "waitpid: %s", strerror(errno));
            return -1;
        }
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            snprintf(why, whylen, "no exit after %d ms (deadlock?), killed", timeout_ms);
            return -1;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFEXITED(st))
        snprintf(why, whylen, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(why, whylen, "killed by signal %d (%s)%s", WTERMSIG(st),
                 strsignal(WTERMSIG(st)), WTERMSIG(st) == SIGALRM ? " -- deadlock?" : "");
    else
        snprintf(why, whylen, "wait status %#x", st);
    return -1;
}

/* ebb's error counter, read by the forking thread just before fork(): misuse
 * ebb "detects" inside fork() itself (in its atfork handlers) counts too. */
static size_t errors_before_fork;
static size_t child_errors0; /* the child's copy of it */

static void note_errors_before_fork(void)
{
    ebb_stats_t st;
    ebb_stats(&st);
    errors_before_fork = st.errors;
}

/* After each phase of the child: ebb must not have detected misuse (the
 * program makes none), and, if `full`, ebb_check() must pass. */
static int phase_ok(const char *phase, int full)
{
    ebb_stats_t st;
    ebb_stats(&st);
    if (st.errors != child_errors0) {
        report("child: ebb's error counter went %zu -> %zu during '%s'\n", child_errors0,
               st.errors, phase);
        return 0;
    }
    if (full) {
        int faults = ebb_check();
        if (faults) {
            report("child: ebb_check() = %d after '%s'\n", faults, phase);
            return 0;
        }
    }
    return 1;
}

/*
 * Exit codes: 0 ok, 2 corrupted inherited or own blocks, 3 allocation
 * failure, 4 thread failure, 5 ebb_check() != 0, 6 grandchild failed,
 * 7 ebb reported misuse (its error counter rose); the child names the phase.
 */
static int run_child(uint64_t seed, struct blk *inherited, size_t ninherited, int depth)
{
    signal(SIGALRM, SIG_DFL); /* the parent's handler is inherited */
    alarm(CHILD_ALARM_S);
    uint64_t s = seed | 1;
    child_errors0 = errors_before_fork;

    /* 0. Single-threaded now: the copied heap must be consistent as it is,
     * and fork() itself must not have found misuse in a correct program. */
    if (!phase_ok("fork() (in ebb's atfork handlers)", 0))
        return 7;
    if (!phase_ok("right after fork", 1))
        return 5;

    /* 1. Free what we inherited from the queue (made by threads not here). */
    for (size_t i = 0; i < qlen; i++)
        check_and_free(queue[(qhead + i) % QCAP], &child_errors, "child(queue)");
    qlen = 0;
    /* 2. And what the forking thread holds. */
    for (size_t i = 0; i < ninherited; i++) {
        check_and_free(inherited[i], &child_errors, "child(inherited)");
        inherited[i].p = NULL;
    }
    if (atomic_load(&child_errors))
        return 2;
    if (!phase_ok("freeing inherited blocks", 0))
        return 7;

    /* 3. Churn. */
    enum { LIVE = 512 };
    static struct blk live[LIVE];
    memset(live, 0, sizeof live);
    for (int i = 0; i < 5000; i++) {
        uint64_t r = rng_next(&s);
        struct blk *b = &live[(r >> 20) % LIVE];
        if (b->p) {
            if (!blk_ok(b))
                return 2;
            if (r % 3 == 0) {
                size_t n = rand_size(&s) + 1;
                size_t keep = n < b->n ? n : b->n;
                unsigned char *q = ebb_realloc(b->p, n);
                if (!q)
                    return 3;
                /* the prefix moved with the block: re-derive its pattern */
                for (size_t k = 0; k < keep && k < 64; k++)
                    if (q[k] != pat((uintptr_t)b->p, b->seed, k))
                        return 2;
                b->p = q;
                b->n = n;
                blk_fill(b);
                continue;
            }
            ebb_free(b->p);
            b->p = NULL;
        }
        b->n = rand_size(&s);
        b->p = rand_alloc(&s, b->n);
        if (!b->p)
            return 3;
        b->seed = (uint32_t)r;
        blk_fill(b);
    }
    if (!phase_ok("churn", 0))
        return 7;

    /* 4. Exchange blocks with a new thread. */
    static struct xfer x;
    x.n = 0;
    for (int i = 0; i < 256; i++) {
        x.b[i].n = rand_size(&s);
        x.b[i].p = ebb_malloc(x.b[i].n);
        if (!x.b[i].p)
            return 3;
        x.b[i].seed = (uint32_t)i * 7;
        blk_fill(&x.b[i]);
        x.n++;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, &x) != 0 || pthread_join(t, NULL) != 0)
        return 4;
    if (atomic_load(&child_errors) || x.n != 256)
        return 4;
    for (int i = 0; i < x.n; i++)
        check_and_free(x.b[i], &child_errors, "child(from thread)");
    if (atomic_load(&child_errors))
        return 2;
    if (!phase_ok("exchange with a thread", 0))
        return 7;

    /* 5. Sometimes fork again, with live blocks and a fresh thread's leftovers. */
    if (depth == 0 && seed % 5 == 0) {
        fflush(NULL);
        note_errors_before_fork();
        pid_t pid = fork();
        if (pid < 0)
            return 6;
        if (pid == 0)
            _exit(run_child(seed * 31 + 7, live, LIVE, 1));
        char why[160];
        if (wait_child(pid, CHILD_TIMEOUT_MS / 2, why, sizeof why) != 0) {
            report("grandchild: %s\n", why);
            return 6;
        }
    }

    /* 6. Free everything; the heap must be consistent. */
    for (int i = 0; i < LIVE; i++) {
        if (live[i].p && !blk_ok(&live[i]))
            return 2;
        ebb_free(live[i].p);
        live[i].p = NULL;
    }
    if (!phase_ok("freeing everything", 0))
        return 7;
    if (!phase_ok("end", 1))
        return 5;
    ebb_collect(1);
    if (!phase_ok("ebb_collect(1)", 1))
        return 5;
    return 0;
}

/* Fork with the queue locked, so the child sees a consistent queue; the
 * allocator's own locks are whatever the workers hold at that instant.
 * The child's stderr goes to a memory file (*errfd) so that what ebb prints
 * in the child is told apart from what it prints in the parent. */
static pid_t fork_child(uint64_t seed, struct blk *mine, size_t nmine, int *errfd)
{
    *errfd = memfd_create("child-stderr", MFD_CLOEXEC);
    if (*errfd < 0)
        return -1;
    pthread_mutex_lock(&qmu);
    note_errors_before_fork();
    pid_t pid = fork();
    if (pid == 0) {
        /* single-threaded now; the queue is ours, qmu stays as it is */
        dup2(*errfd, 2);
        _exit(run_child(seed, mine, nmine, 0));
    }
    pthread_mutex_unlock(&qmu);
    return pid;
}

/* Wait for a child made by fork_child.  0 if it exited 0 and printed
 * nothing (ebb prints only on faults); otherwise `why` says what happened
 * and quotes the start of its stderr. */
static int collect_child(pid_t pid, int errfd, char *why, size_t whylen)
{
    int rc = wait_child(pid, CHILD_TIMEOUT_MS, why, whylen);
    char out[600];
    ssize_t got = pread(errfd, out, sizeof out - 1, 0);
    close(errfd);
    if (got > 0) {
        out[got] = 0;
        if (rc == 0)
            snprintf(why, whylen, "exited 0");
        size_t used = strlen(why);
        snprintf(why + used, whylen - used, "; its stderr: %s", out);
        return -1;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */

static void on_parent_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test_fork: parent timed out (deadlock in the parent?)\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(3);
}

static size_t parent_errors0;

/* Errors ebb detected in this process since the test's setup. */
static size_t parent_errors(void)
{
    ebb_stats_t st;
    ebb_stats(&st);
    return st.errors - parent_errors0;
}

static int setup_alarm(void **state)
{
    (void)state;
    signal(SIGALRM, on_parent_alarm);
    alarm(PARENT_ALARM_S);
    ebb_stats_t st;
    ebb_stats(&st);
    parent_errors0 = st.errors;
    return 0;
}

static int teardown_fork(void **state)
{
    (void)state;
    alarm(0);
    /* The program makes no misuse: ebb must not have detected any in the
     * parent either (e.g. a double free caused by forking). */
    ebb_stats_t st;
    ebb_stats(&st);
    if (st.errors != parent_errors0)
        print_error("parent: ebb's error counter went %zu -> %zu\n", parent_errors0,
                    st.errors);
    assert_int_equal(st.errors, parent_errors0);
    int faults = ebb_check();
    if (faults != 0)
        print_error("ebb_check() = %d after the test\n", faults);
    assert_int_equal(faults, 0);
    return 0;
}

/* Fork from the main thread NFORKS times while four workers churn. */
static void test_fork_from_main(void **state)
{
    (void)state;
    start_workers();
    struct blk mine[32];
    uint64_t s = 99;
    int failures = 0;
    for (int k = 0; k < NFORKS; k++) {
        for (int i = 0; i < 32; i++) {
            mine[i].n = rand_size(&s);
            mine[i].p = rand_alloc(&s, mine[i].n);
            assert_non_null(mine[i].p);
            mine[i].seed = (uint32_t)(k * 100 + i);
            blk_fill(&mine[i]);
        }
        /* let the workers run into the middle of something */
        struct timespec ts = {0, (long)(rng_next(&s) % 3000000)};
        nanosleep(&ts, NULL);
        fflush(NULL);
        int errfd;
        pid_t pid = fork_child((uint64_t)k + 1, mine, 32, &errfd);
        assert_true(pid > 0);
        char why[900];
        if (collect_child(pid, errfd, why, sizeof why) != 0) {
            print_error("fork #%d (from main, %ld worker ops so far): child %s\n", k,
                        (long)atomic_load(&worker_ops), why);
            failures++;
        }
        for (int i = 0; i < 32; i++)
            check_and_free(mine[i], &worker_errors, "parent");
        if (failures >= MAX_FAILURES)
            break;
    }
    stop_and_drain();
    size_t perr = parent_errors();
    if (perr)
        print_error("parent: ebb detected %zu errors (double frees?) in a correct program\n",
                    perr);
    EXPECT(failures == 0, "%d children failed (forking stops after %d)", failures, MAX_FAILURES);
    EXPECT(perr == 0, "parent: ebb detected %zu errors", perr);
}

/* Fork from two extra threads concurrently while the workers churn. */
static atomic_int forker_failures;

static void *forker(void *arg)
{
    uint64_t s = 1000 + (uintptr_t)arg;
    for (int k = 0; k < NFORKS / 5; k++) {
        struct blk mine[8];
        for (int i = 0; i < 8; i++) {
            mine[i].n = rand_size(&s);
            mine[i].p = rand_alloc(&s, mine[i].n);
            if (!mine[i].p) {
                atomic_fetch_add(&forker_failures, 1);
                return NULL;
            }
            mine[i].seed = (uint32_t)i;
            blk_fill(&mine[i]);
        }
        int errfd;
        pid_t pid = fork_child(s + (uint64_t)k, mine, 8, &errfd);
        char why[900];
        if (pid < 0) {
            atomic_fetch_add(&forker_failures, 1);
        } else if (collect_child(pid, errfd, why, sizeof why) != 0) {
            report("fork #%d from thread %lu: child %s\n", k, (unsigned long)(uintptr_t)arg,
                   why);
            atomic_fetch_add(&forker_failures, 1);
        }
        for (int i = 0; i < 8; i++)
            check_and_free(mine[i], &worker_errors, "forker");
        if (atomic_load(&forker_failures) >= MAX_FAILURES)
            break;
    }
    return NULL;
}

static void test_fork_from_threads(void **state)
{
    (void)state;
    atomic_store(&forker_failures, 0);
    start_workers();
    pthread_t f[2];
    for (uintptr_t i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&f[i], NULL, forker, (void *)i), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(f[i], NULL), 0);
    stop_and_drain();
    size_t perr = parent_errors();
    EXPECT(perr == 0, "parent: ebb detected %zu errors (double frees?) in a correct program",
           perr);
    EXPECT(atomic_load(&forker_failures) == 0, "%d children forked from threads failed",
           atomic_load(&forker_failures));
}

/* After all that forking the parent's heap still works normally. */
static void test_parent_heap_after(void **state)
{
    (void)state;
    uint64_t s = 7;
    struct blk b[1000];
    for (int i = 0; i < 1000; i++) {
        b[i].n = rand_size(&s);
        b[i].p = rand_alloc(&s, b[i].n);
        assert_non_null(b[i].p);
        b[i].seed = (uint32_t)i;
        blk_fill(&b[i]);
    }
    for (int i = 0; i < 1000; i++) {
        EXPECT(blk_ok(&b[i]), "block %d corrupted", i);
        ebb_free(b[i].p);
    }
}

#undef T /* api.h's plain teardown; the fork tests add the alarm and error checks */
#define T(f) cmocka_unit_test_setup_teardown(f, setup_alarm, teardown_fork)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_fork_from_main),
        T(test_fork_from_threads),
        T(test_parent_heap_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
