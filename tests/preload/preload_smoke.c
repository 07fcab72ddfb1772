/*
 * preload_smoke.c -- the C library's allocation functions, served by ebb
 * through LD_PRELOAD.
 *
 * A plain program (not linked with ebb) that first makes sure it really runs
 * on ebb -- ebb_check and ebb_owns are found with dlsym(RTLD_DEFAULT) and
 * malloc'd memory is ebb's -- and then checks malloc, free, calloc, realloc,
 * reallocarray, posix_memalign, aligned_alloc, memalign, valloc, pvalloc and
 * malloc_usable_size with glibc's semantics, memory the C library allocates
 * for us (strdup, asprintf, stdio, getline), blocks freed by another thread,
 * and a block allocated before main.  Ends with ebb_check() == 0.
 *
 * Exit status: 0 ok, 1 a check failed, 2 not running on ebb.
 * Build: cc -std=c11 -D_GNU_SOURCE tests/preload/preload_smoke.c -ldl
 * Run:   LD_PRELOAD=build/libebb.so ./preload_smoke   (or tests/preload/run.sh)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int (*ebb_check_fn)(void);
static int (*ebb_owns_fn)(const void *);
static int failures;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "preload_smoke:%d: FAILED %s: ", __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
            failures++;                                                       \
        }                                                                     \
    } while (0)

/* Sizes no allocator can give; volatile so the compiler does not judge the
 * calls at build time. */
static volatile size_t huge = SIZE_MAX - 4096;
static volatile size_t half = SIZE_MAX / 2 + 1;
static volatile size_t two = 2;
static volatile size_t bad_align = 48; /* not a power of two */

/* Calls that must fail go through volatile pointers: gcc would otherwise
 * flag the use of a block after a realloc it cannot know failed, and clang
 * assumes the allocation functions never write errno and folds the errno
 * checks away. */
static void *(*volatile malloc_v)(size_t) = malloc;
static void *(*volatile calloc_v)(size_t, size_t) = calloc;
static void *(*volatile aligned_alloc_v)(size_t, size_t) = aligned_alloc;
static void *(*volatile realloc_v)(void *, size_t) = realloc;
static void (*volatile free_v)(void *) = free;
static void *(*volatile reallocarray_v)(void *, size_t, size_t) = reallocarray;

static void *before_main;

__attribute__((constructor)) static void early(void)
{
    before_main = malloc(1234);
    if (before_main)
        memset(before_main, 0x42, 1234);
}

static int owns(const void *p) { return ebb_owns_fn(p); }

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}

static int intact(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}

static void block_ok(void *p, size_t n, size_t align, const char *what)
{
    CHECK(p != NULL, "%s(%zu) returned NULL", what, n);
    if (!p)
        return;
    CHECK(((uintptr_t)p & (align - 1)) == 0, "%s(%zu) = %p not %zu-aligned", what, n, p, align);
    CHECK(owns(p), "%s(%zu) = %p is not ebb's", what, n, p);
    size_t u = malloc_usable_size(p);
    CHECK(u >= n, "%s(%zu): malloc_usable_size %zu", what, n, u);
    memset(p, 0x5c, u);
}

static void check_malloc_free(void)
{
    void *a = malloc(0), *b = malloc(0);
    CHECK(a && b && a != b, "malloc(0) twice: %p %p", a, b);
    block_ok(a, 0, 16, "malloc");
    free(a);
    free(b);
    static const size_t sizes[] = {1, 16, 17, 100, 512, 513, 4096, 65536, 131072, 131073,
                                   1 << 20, 5 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = malloc(sizes[i]);
        block_ok(p, sizes[i], 16, "malloc");
        free(p);
    }
    free(NULL);
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) != 0");
    errno = 0;
    void *p = malloc_v(huge);
    CHECK(p == NULL && errno == ENOMEM, "malloc(huge) = %p, errno %d", p, errno);
    free(p);
    p = malloc(300000);
    errno = 1234;
    free_v(p);
    CHECK(errno == 1234, "free changed errno to %d", errno);
}

static void check_calloc(void)
{
    for (size_t n = 1; n < (4u << 20); n = n * 5 + 3) {
        unsigned char *d = malloc(n);
        CHECK(d != NULL, "malloc(%zu)", n);
        if (d)
            memset(d, 0xAB, n);
        free(d);
        unsigned char *z = calloc(1, n);
        CHECK(z != NULL, "calloc(1, %zu) NULL", n);
        if (!z)
            continue;
        CHECK(owns(z), "calloc(1, %zu) not ebb's", n);
        size_t bad = SIZE_MAX;
        for (size_t i = 0; i < n; i++)
            if (z[i]) {
                bad = i;
                break;
            }
        CHECK(bad == SIZE_MAX, "calloc(1, %zu): byte %zu not zero", n, bad);
        free(z);
    }
    errno = 0;
    void *p = calloc_v(half, two);
    CHECK(p == NULL && errno == ENOMEM, "calloc overflow = %p, errno %d", p, errno);
    free(p);
}

static void check_realloc(void)
{
    unsigned char *p = realloc(NULL, 10);
    block_ok(p, 10, 16, "realloc(NULL)");
    fill(p, 10, 1);
    size_t cur = 10;
    static const size_t path[] = {20, 500, 5000, 200000, 3 << 20, 100, 1};
    for (size_t i = 0; i < sizeof path / sizeof path[0]; i++) {
        unsigned char *q = realloc(p, path[i]);
        CHECK(q != NULL, "realloc(%zu -> %zu) NULL", cur, path[i]);
        if (!q)
            return;
        size_t keep = cur < path[i] ? cur : path[i];
        CHECK(intact(q, keep, 1), "realloc(%zu -> %zu) lost contents", cur, path[i]);
        CHECK(owns(q), "realloc result %p not ebb's", (void *)q);
        fill(q, path[i], 1);
        p = q;
        cur = path[i];
    }
    /* growing within the usable size keeps the block */
    uintptr_t before = (uintptr_t)p;
    size_t u = malloc_usable_size(p);
    p = realloc(p, u);
    CHECK((uintptr_t)p == before, "realloc within usable size moved the block");
    /* failure leaves the block alone */
    fill(p, u, 9);
    errno = 0;
    void *q = realloc_v(p, huge);
    CHECK(q == NULL && errno == ENOMEM, "realloc(p, huge) = %p, errno %d", q, errno);
    CHECK(intact(p, u, 9), "failed realloc changed the block");
    /* realloc(p, 0) frees p and returns NULL (glibc) */
    q = realloc_v(p, 0);
    CHECK(q == NULL, "realloc(p, 0) = %p, expected NULL", q);
    free(q);

    p = reallocarray(NULL, 10, 10);
    block_ok(p, 100, 16, "reallocarray");
    fill(p, 100, 2);
    errno = 0;
    q = reallocarray_v(p, half, two);
    CHECK(q == NULL && errno == ENOMEM, "reallocarray overflow = %p, errno %d", q, errno);
    CHECK(intact(p, 100, 2), "failed reallocarray changed the block");
    q = reallocarray_v(p, 100, 100);
    CHECK(q && intact(q, 100, 2), "reallocarray(p, 100, 100) lost contents");
    free(q);
}

static void check_aligned(void)
{
    for (size_t a = 1; a <= (4u << 20); a *= 2) {
        void *p = aligned_alloc(a, a + 1);
        block_ok(p, a + 1, a, "aligned_alloc");
        free(p);
        p = memalign(a, 100);
        block_ok(p, 100, a, "memalign");
        free(p);
        if (a >= sizeof(void *)) {
            p = NULL;
            int rc = posix_memalign(&p, a, 3 * a);
            CHECK(rc == 0, "posix_memalign(%zu) = %d", a, rc);
            block_ok(p, 3 * a, a, "posix_memalign");
            free(p);
        }
    }
    void *sentinel = (void *)(uintptr_t)0x7777770;
    void *out = sentinel;
    int rc = posix_memalign(&out, 24, 100);
    CHECK(rc == EINVAL && out == sentinel, "posix_memalign(24) = %d, out %p", rc, out);
    errno = 0;
    void *p = aligned_alloc_v(bad_align, 100);
    CHECK(p == NULL && errno == EINVAL, "aligned_alloc(48) = %p, errno %d", p, errno);
    free(p);
    p = memalign(bad_align, 100); /* rounds up to 64 */
    block_ok(p, 100, 64, "memalign(48)");
    free(p);
    long page = sysconf(_SC_PAGESIZE);
    p = valloc(100);
    block_ok(p, 100, (size_t)page, "valloc");
    free(p);
    p = pvalloc(100);
    block_ok(p, (size_t)page, (size_t)page, "pvalloc");
    free(p);
    p = pvalloc(0);
    block_ok(p, (size_t)page, (size_t)page, "pvalloc(0)");
    free(p);
}

/* Memory the C library allocates on our behalf is ebb's too. */
static void check_libc_users(void)
{
    char *s = strdup("hello, ebb");
    CHECK(s && owns(s), "strdup result %p not ebb's", (void *)s);
    free(s);
    char *t = NULL;
    int n = asprintf(&t, "%d-%s", 42, "x");
    CHECK(n == 4 && t && owns(t), "asprintf result %p not ebb's", (void *)t);
    free(t);
    FILE *f = tmpfile();
    CHECK(f != NULL, "tmpfile failed");
    if (f) {
        fputs("line one\nline two\n", f);
        rewind(f);
        char *line = NULL;
        size_t cap = 0;
        ssize_t got = getline(&line, &cap, f);
        CHECK(got == 9 && line && owns(line), "getline buffer %p not ebb's", (void *)line);
        free(line);
        fclose(f);
    }
}

static void *thread_alloc(void *arg)
{
    (void)arg;
    void **v = malloc(1000 * sizeof *v);
    if (!v)
        return NULL;
    for (int i = 0; i < 1000; i++)
        v[i] = malloc((size_t)(i % 300) + 1);
    return v;
}

static void check_threads(void)
{
    for (int round = 0; round < 4; round++) {
        pthread_t t;
        void *res = NULL;
        CHECK(pthread_create(&t, NULL, thread_alloc, NULL) == 0, "pthread_create");
        pthread_join(t, &res);
        void **v = res;
        CHECK(v != NULL, "thread allocation failed");
        if (!v)
            continue;
        for (int i = 0; i < 1000; i++) {
            CHECK(v[i] && owns(v[i]), "block %d from the thread not ebb's", i);
            free(v[i]); /* freed by another thread than its maker, which is gone */
        }
        free(v);
    }
}

int main(void)
{
    void *sym = dlsym(RTLD_DEFAULT, "ebb_check");
    memcpy(&ebb_check_fn, &sym, sizeof sym);
    sym = dlsym(RTLD_DEFAULT, "ebb_owns");
    memcpy(&ebb_owns_fn, &sym, sizeof sym);
    if (!ebb_check_fn || !ebb_owns_fn) {
        fprintf(stderr, "preload_smoke: ebb is not loaded (ebb_check %s, ebb_owns %s); "
                        "run with LD_PRELOAD=.../libebb.so\n",
                ebb_check_fn ? "found" : "missing", ebb_owns_fn ? "found" : "missing");
        return 2;
    }
    void *probe = malloc(64);
    int mine = owns(probe);
    free(probe);
    if (!mine) {
        fprintf(stderr, "preload_smoke: ebb is loaded but malloc is not ebb's\n");
        return 2;
    }

    CHECK(before_main && owns(before_main), "block from a constructor %p not ebb's",
          before_main);
    if (before_main) {
        unsigned char *b = before_main;
        CHECK(b[0] == 0x42 && b[1233] == 0x42, "block from a constructor changed");
        free(before_main);
    }
    check_malloc_free();
    check_calloc();
    check_realloc();
    check_aligned();
    check_libc_users();
    check_threads();

    int faults = ebb_check_fn();
    CHECK(faults == 0, "ebb_check() = %d", faults);
    if (failures) {
        fprintf(stderr, "preload_smoke: %d checks failed\n", failures);
        return 1;
    }
    printf("preload_smoke: OK (running on ebb)\n");
    return 0;
}
