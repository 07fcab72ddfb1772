/*
 * test_unwind.c -- the sampler's unwinder (src/os/linux_unwind.c) and its
 * fork safety: the return addresses it gives match glibc's backtrace() for
 * the program's frames on call chains of several depths, through the C
 * library (qsort's callback), through a dlopened library, and after that
 * library was closed and another with the same code but a different frame
 * size opened (at the same address, if the system gives it: a stale cached
 * rule would then show); it refuses none of these stacks.  Four threads
 * sampling at one sample per 4 KiB while the main thread forks again and
 * again: no fork deadlocks (an alarm fails the test) and every child can
 * sample.  Threads that sample one site at once: one site, all counted.
 *
 * On 32-bit x86 ebb keeps backtrace() (the unwinder returns -1): the
 * matching tests are skipped there, the fork and thread tests run.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"
#include "os/os.h" /* the memo's type */

/* The OS layer's unwinder and its refusal count (hidden in libebb.so; the
 * tests link libebb.a). */
int ebb__os_unwind(void **pcs, int max);
void ebb__os_unwind_prime(void);
unsigned long ebb__os_unwind_refusals(void);

#define MAXF 64
#define RATE 4096

static int have_unwinder(void)
{
    void *pcs[4];
    ebb__os_unwind_prime();
    return ebb__os_unwind(pcs, 4) >= 0;
}

/* Unwind with both from this frame; everything but each one's first
 * return address (both in this function, after two different calls) must
 * be the same.  A note of the first difference on failure. */
static int compared, differed;
static char why[512];
static __attribute__((noinline)) void compare_here(const char *what)
{
    void *a[MAXF], *b[MAXF];
    int n = ebb__os_unwind(a, MAXF);
    int m = backtrace(b, MAXF);
    compared++;
    /* A sanitizer's runtime intercepts backtrace() and adds its own frame
     * in front: line the two up on ebb's second frame (this function's
     * caller), which must come first or second. */
    int shift = m > 2 && n > 1 && b[1] != a[1] && b[2] == a[1] ? 1 : 0;
    int at = 1;
    while (at < n && at + shift < m && a[at] == b[at + shift])
        at++;
    if ((n + shift != m || n < 2 || at < n) && !differed++)
        snprintf(why, sizeof why, "%s: ebb %d frames, backtrace %d; frame %d: %p vs %p", what, n,
                 m - shift, at, at < n ? a[at] : NULL, at + shift < m ? b[at + shift] : NULL);
}

/* Call chains: recursion to a depth, mutual recursion, a frame too big for
 * the cache's 15-bit offset (looked up afresh each time). */
static __attribute__((noinline)) int down(int depth)
{
    if (depth == 0) {
        compare_here("recursion");
        return 0;
    }
    return down(depth - 1) + 1;
}
static int ping(int d);
static __attribute__((noinline)) int pong(int d)
{
    return d <= 0 ? (compare_here("mutual"), 0) : ping(d - 1) + 2;
}
static __attribute__((noinline)) int ping(int d)
{
    return d <= 0 ? (compare_here("mutual"), 0) : pong(d - 1) + 1;
}
static __attribute__((noinline)) int big_frame(int d)
{
    volatile char big[40000];
    big[d] = 1;
    compare_here("big frame");
    return big[d];
}

static int by_qsort(const void *x, const void *y)
{
    static int once;
    if (!once++)
        compare_here("qsort");
    return *(const int *)x - *(const int *)y;
}

static void skip_without_unwinder(void)
{
    if (!have_unwinder())
        SKIP_TEST("ebb's own unwinder is x86-64 only (glibc 2.35 or later); backtrace() here");
}

static void test_matches_backtrace(void **state)
{
    (void)state;
    skip_without_unwinder();
    unsigned long refused = ebb__os_unwind_refusals();
    compared = differed = 0;
    for (int round = 0; round < 3; round++) { /* the first parses, the rest hit the cache */
        for (int d = 0; d < 40; d += 7)
            down(d);
        ping(5);
        ping(6);
        big_frame(round);
    }
    int v[16];
    for (int i = 0; i < 16; i++)
        v[i] = (i * 7) % 16;
    qsort(v, 16, sizeof v[0], by_qsort);
    EXPECT(differed == 0, "%d of %d stacks differ; first: %s", differed, compared, why);
    EXPECT(compared > 20, "%d compared", compared);
    EXPECT(ebb__os_unwind_refusals() == refused, "%lu stacks refused",
           ebb__os_unwind_refusals() - refused);
}

/* ------------------------------------------------------------ the memo */

/* A thread's memo of its last unwind answers the next one from the same
 * place without redoing it, when every stack word it read is unchanged.
 * Its answer must be the plain unwind's, wherever the two could part: the
 * same stack pointer and return address but another caller further up
 * (twins of one frame size), and a caller whose frame is found through rbp
 * (a variable-length array), of two sizes in turn. */
int ebb__os_unwind_memo(void **pcs, int max, ebb__unwind_memo_t *memo);
unsigned long ebb__os_unwind_memo_hits(void);

static ebb__unwind_memo_t memo;
static int memo_calls, memo_differed;

static __attribute__((noinline)) void memo_leaf(void)
{
    void *a[MAXF], *b[MAXF];
    int n = ebb__os_unwind_memo(a, MAXF - 16, &memo);
    int m = ebb__os_unwind(b, MAXF - 16);
    memo_calls++;
    /* a[0] and b[0] are the two calls' own return addresses here */
    if (n != m || n < 3 || memcmp(a + 1, b + 1, (size_t)(n - 1) * sizeof a[0]) != 0) {
        if (!memo_differed++)
            snprintf(why, sizeof why, "call %d: memo %d frames, plain %d", memo_calls, n, m);
    }
}

static __attribute__((noinline)) int twin_a(int k)
{
    memo_leaf();
    __asm__ volatile("" ::: "memory");
    return k + 1;
}
static __attribute__((noinline)) int twin_b(int k)
{
    memo_leaf();
    __asm__ volatile("" ::: "memory");
    return k + 2;
}
/* A variable-length array makes the compiler keep a frame pointer: this
 * frame's CFA is found from rbp, whose value the memo then keys on. */
static __attribute__((noinline)) int with_frame_pointer(int k)
{
    volatile char vla[8 + (k & 1) * 64];
    vla[0] = (char)k;
    memo_leaf();
    return vla[0];
}
/* On a thread of its own: the test's own stack passes through libcmocka,
 * a library that could be unloaded, and the memo keeps only stacks whose
 * every frame is in an object that never is (the program, the C library,
 * the loader, ebb). */
static volatile int twice = 2; /* not unrolled into two call sites */

static void *memo_rounds(void *arg)
{
    int sink = 0;
    (void)arg;
    for (int round = 0; round < 20; round++) {
        for (int again = 0; again < twice; again++) /* one call site: the second hits */
            sink += twin_a(round);
        sink += twin_b(round); /* same sp and ra, another caller */
        for (int again = 0; again < twice; again++)
            sink += with_frame_pointer(round); /* two frame sizes, round by round */
    }
    return sink != 0 ? arg : NULL;
}

static void test_memo_answers_as_the_unwind_does(void **state)
{
    (void)state;
    skip_without_unwinder();
    memset(&memo, 0, sizeof memo);
    memo_calls = memo_differed = 0;
    unsigned long hits = ebb__os_unwind_memo_hits();
    pthread_t t;
    EXPECT(pthread_create(&t, NULL, memo_rounds, NULL) == 0, "thread started");
    pthread_join(t, NULL);
    memo_leaf(); /* under cmocka's frames: answered, never kept */
    memo_leaf();
    EXPECT(memo_calls == 102, "%d calls", memo_calls);
    EXPECT(memo_differed == 0, "%d of %d memo answers differ; first: %s", memo_differed,
           memo_calls, why);
    unsigned long got = ebb__os_unwind_memo_hits() - hits;
    /* at least the second twin_a and the repeated frame-pointer call of
     * each round */
    EXPECT(got >= 40, "%lu of %d unwinds answered by the memo", got, memo_calls);
}

/* ---------------------------------------------- through a dlopened library */

typedef void (*through_fn)(void (*)(int), int);

static void from_library(int arg)
{
    (void)arg;
    compare_here("library");
}

/* The library beside this program's executable; NULL if it is not there. */
static void *open_beside(const char *name, char *path, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return NULL;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    snprintf(path, len, "%s/%s", self, name);
    return dlopen(path, RTLD_NOW | RTLD_LOCAL);
}

static void test_through_dlopened_library(void **state)
{
    (void)state;
    skip_without_unwinder();
    unsigned long refused = ebb__os_unwind_refusals();
    const char *names[] = { "libcallback_a.so", "libcallback_b.so", "libcallback_a.so" };
    void *where[3] = { 0 };
    compared = differed = 0;
    for (int i = 0; i < 3; i++) {
        char path[PATH_MAX + 32];
        void *h = open_beside(names[i], path, sizeof path);
        if (h == NULL)
            SKIP_TEST("%s not built beside the test (the Makefile builds it): %s", names[i],
                      dlerror());
        through_fn f = (through_fn)(uintptr_t)dlsym(h, "callback_through");
        assert_non_null(f);
        where[i] = (void *)(uintptr_t)f;
        for (int k = 0; k < 3; k++)
            f(from_library, k);
        assert_int_equal(dlclose(h), 0);
    }
    EXPECT(differed == 0, "%d of %d stacks differ; first: %s", differed, compared, why);
    EXPECT(compared == 9, "%d compared", compared);
    EXPECT(ebb__os_unwind_refusals() == refused, "%lu stacks refused",
           ebb__os_unwind_refusals() - refused);
    if (where[0] != where[1])
        print_message("note: the two libraries loaded at %p and %p\n", where[0], where[1]);
}

/* ------------------------------------------------------ fork while sampling */

#define SAMPLERS 4
#define FORKS 150
#define CHILD_ALARM_S 20
#define PARENT_ALARM_S 240

static _Atomic int stop;

static __attribute__((noinline)) void *sampler_thread(void *arg)
{
    (void)arg;
    void *keep[64] = { 0 };
    unsigned i = 0;
    while (!atomic_load(&stop)) {
        /* 64 to 8 KiB: at 4 KiB a sample every few calls. */
        size_t n = 64 + (i * 2654435761u) % 8192;
        void *p = ebb_malloc(n);
        if (p)
            memset(p, 1, 16);
        ebb_free(keep[i % 64]);
        keep[i % 64] = p;
        i++;
    }
    for (int k = 0; k < 64; k++)
        ebb_free(keep[k]);
    return NULL;
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test_unwind: timed out (a fork or a sample deadlocked)\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(3);
}

static __attribute__((noinline)) int child_samples(void)
{
    ebb_sample_stats_t a, b;
    ebb_sample_stats(&a);
    void *p[64];
    for (int i = 0; i < 64; i++)
        p[i] = ebb_malloc(4096);
    ebb_sample_stats(&b);
    for (int i = 0; i < 64; i++)
        ebb_free(p[i]);
    return b.samples > a.samples && b.dropped == a.dropped && ebb_check() == 0;
}

static void test_fork_while_sampling(void **state)
{
    (void)state;
    ebb_set_sample_rate(RATE);
    signal(SIGALRM, on_alarm);
    alarm(PARENT_ALARM_S);
    atomic_store(&stop, 0);
    pthread_t t[SAMPLERS];
    for (int i = 0; i < SAMPLERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, sampler_thread, NULL), 0);
    int bad = 0, first_status = 0;
    for (int f = 0; f < FORKS; f++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            alarm(CHILD_ALARM_S);
            _exit(child_samples() ? 0 : 1);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) && !bad++)
            first_status = status;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < SAMPLERS; i++)
        pthread_join(t[i], NULL);
    alarm(0);
    EXPECT(bad == 0, "%d of %d children failed (first: status %#x: 3 is a deadlock)", bad, FORKS,
           first_status);
}

/* ------------------------------------------------ threads on one site */

#define SAME_THREADS 4
#define SAME_BLOCKS 2000
static void *same_blocks[SAME_THREADS][SAME_BLOCKS];
static pthread_barrier_t barrier;

static __attribute__((noinline, section("same_text"))) void same_site_alloc(void **out)
{
    for (int i = 0; i < SAME_BLOCKS; i++)
        out[i] = ebb_malloc(2048);
}
extern const char __start_same_text[], __stop_same_text[];

static void *same_thread(void *arg)
{
    pthread_barrier_wait(&barrier);
    same_site_alloc(arg);
    return NULL;
}

static void test_threads_share_a_site(void **state)
{
    (void)state;
    ebb_set_sample_rate(RATE);
    ebb_sample_stats_t a, b;
    pthread_t t[SAME_THREADS];
    /* The threads are made first, then counted from: pthread_create's own
     * allocations (the new threads' TLS vectors, made by this thread) are
     * sampled at their own site, and would be counted in `taken`. */
    pthread_barrier_init(&barrier, NULL, SAME_THREADS + 1);
    for (int i = 0; i < SAME_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, same_thread, same_blocks[i]), 0);
    ebb_sample_stats(&a);
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < SAME_THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&barrier);
    ebb_sample_stats(&b);
    static ebb_site_t sites[256];
    size_t n = ebb_sample_sites(sites, ARRAY_LEN(sites));
    int found = 0;
    uint64_t samples = 0;
    for (size_t i = 0; i < n && i < ARRAY_LEN(sites); i++)
        if (sites[i].depth > 0 && (const char *)sites[i].pcs[0] > __start_same_text &&
            (const char *)sites[i].pcs[0] <= __stop_same_text) {
            found++;
            samples += sites[i].samples;
        }
    uint64_t taken = b.samples - a.samples;
    /* Every sample of these threads is at the one call in same_site_alloc. */
    EXPECT(found == 1, "%d sites for one call site", found);
    EXPECT(samples == taken && taken > 100, "%llu samples in the site, %llu taken",
           (unsigned long long)samples, (unsigned long long)taken);
    EXPECT(ebb_check() == 0, "check after the threads");
    for (int i = 0; i < SAME_THREADS; i++)
        for (int j = 0; j < SAME_BLOCKS; j++)
            ebb_free(same_blocks[i][j]);
}

API_TEST_MAIN("unwind", T(test_matches_backtrace), T(test_memo_answers_as_the_unwind_does),
              T(test_through_dlopened_library),
              T(test_fork_while_sampling), T(test_threads_share_a_site))
