/*
 * malloc.c -- the front: malloc semantics on top of caches, heaps and large
 * blocks.
 *
 * Owns: request sizes and their limits (nothing above PTRDIFF_MAX), errno,
 * alignment, calloc's zeroing and overflow check, realloc's in-place rules,
 * and recognising pointers that are not ours.
 *
 * Fast paths: ebb_malloc of up to 32 KiB pops the thread cache's stack for
 * the size class (class lookup by table up to 1 KiB); ebb_free finds the
 * arena by masking after one ownership-map load, the class from one byte of
 * the arena header, and pushes on the thread cache.  Everything else, first
 * use, empty or full stacks, big or aligned requests, large blocks, foreign
 * pointers, goes through noinline slow paths.
 *
 * realloc keeps a block in place when the new size fits its usable size and
 * does not shrink it by at least a quarter (glibc-like); large blocks grow
 * and shrink with mremap.  realloc(p, 0) frees p and returns NULL, as glibc.
 *
 * Sampling (sample.c): malloc's fast path also counts the request against
 * the thread's distance to its next sample; every other allocation path
 * counts it on its slow path.  A sampled allocation is served by the large-
 * block allocator, tagged with its sample record, so free needs no test.
 * Every function that can be on the stack when a sample unwinds, or when a
 * refused request's site is taken for the crash note (insight/crash.c), is
 * marked EBB_ENTRY.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

static size_t page_size(void)
{
    return ebb__os_page_size();
}

static void *enomem(void)
{
    errno = ENOMEM;
    return NULL;
}

/* --------------------------------------------------------------- threads */

/* The thread is exiting: its cached blocks go home, and the purge they may
 * have made due is kicked off, as on any way out of ebb. */
static void thread_exit(void *self)
{
    ebb__thread_exit(self);
    ebb__purge_owed_kick();
}

/* The calling thread's state, its cache made on first use; NULL: the
 * thread goes straight to a heap. */
static ebb__thread_t *front_thread(void)
{
    ebb__thread_t *self = ebb__thread_get_slow();
    if (self == NULL && ebb__self_get() == &ebb__thread_unset)
        self = ebb__thread_create(thread_exit);
    return self;
}

/* The sampler counts every allocation against the thread's countdown,
 * which lives beside the thread's cache: made first if it is not there. */
static int sample_tick(size_t n)
{
    (void)front_thread();
    return ebb__sample_tick(n);
}

/* ------------------------------------------------------------ allocation */

static void *debug_alloc(size_t n, size_t align, int zero, const char *fn);

static void *small_alloc_once(unsigned cls)
{
    ebb__thread_t *self = front_thread();
    if (self && ebb__classes[cls].tcache_cap) {
        ebb__tbin_t *b = &self->bin[cls];
        void **top = b->top;
        if (top != ebb__tbin_low(b)) {
            ebb__tbin_drop_top(b, top - 1);
            return top[-1];
        }
        return ebb__tcache_refill_pop(self, cls);
    }
    void *p;
    ebb__heap_t *h = self ? self->heap : &ebb__heaps.heap[0];
    return ebb__heap_alloc(h, cls, &p + 1, 1, NULL) ? p : NULL;
}

/* Every slow-path allocation ends here, holding no lock: a failure is
 * recorded for ebb_last_failure (limit.c) and for the crash note (crash.c,
 * which names fn, the call the program made), a success polls for
 * pressure; either way the purger is kicked if the mechanism made memory
 * purgeable. */
static EBB_ENTRY void *settle(void *p, size_t n, const char *fn)
{
    if (EBB_UNLIKELY(p == NULL)) {
        ebb__limit_record_failure(n);
        ebb__crash_refused(fn, n);
        ebb__report_failure();
        ebb__blackbox_failed();
        ebb__purge_owed_kick();
        return enomem();
    }
    ebb__limit_poll();
    ebb__blackbox_tick();
    ebb__status_make();
    ebb__purge_owed_kick();
    return p;
}

/* A request refused at the limit is tried once more, after the pressure
 * callbacks ran and everything free was purged. */
static EBB_ENTRY void *small_alloc_slow(unsigned cls, size_t n, const char *fn)
{
    void *p = small_alloc_once(cls);
    if (EBB_UNLIKELY(p == NULL) && ebb__limit_relieve())
        p = small_alloc_once(cls);
    if (p)
        ebb__block_mark_live(p);
    return settle(p, n, fn);
}

static void *large_alloc_tagged(size_t n, size_t align, int zero, uint32_t tag, uint32_t usable)
{
    void *p = ebb__large_alloc(n, align, zero, tag, usable);
    if (EBB_UNLIKELY(p == NULL) && ebb__limit_relieve())
        p = ebb__large_alloc(n, align, zero, tag, usable);
    return p;
}

static EBB_ENTRY void *large_alloc(size_t n, size_t align, int zero, const char *fn)
{
    return settle(large_alloc_tagged(n, align, zero, 0, 0), n, fn);
}

/* A sampled allocation: recorded at its site, then served by the large-
 * block allocator with the record's tag (unsampled if the table is full).
 * cls: the class a pool would have served it from (EBB_NO_CLASS for a
 * large request); the block is at least that big and says it is that big,
 * so usable sizes and realloc's choices stay what they are unsampled. */
static EBB_ENTRY EBB_NOINLINE void *sampled_alloc(size_t n, size_t align, int zero, unsigned cls,
                                                  const char *fn)
{
    uint32_t usable = cls < EBB_CLASSES ? ebb__classes[cls].size : 0;
    uint32_t tag = ebb__sample_begin(n);
    void *p = large_alloc_tagged(usable > n ? usable : n, align, zero, tag, usable);
    if (p == NULL && tag)
        ebb__sample_forget(tag);
    else if (tag)
        ebb__peak_consider(); /* once the block is there: a refused one never counts */
    return settle(p, n, fn);
}

/* fn: the call the program made ("malloc", or "calloc" and "realloc",
 * which come here for their blocks), named if the request is refused. */
EBB_ENTRY EBB_NOINLINE void *ebb__malloc_slow(size_t n, const char *fn)
{
    ebb__start();
    if (EBB_UNLIKELY(ebb__debug_on))
        return debug_alloc(n, 0, 0, fn);
    ebb__expensive_check();
    ebb__report_arm();
    if (n > (size_t)PTRDIFF_MAX)
        return settle(NULL, n, fn);
    unsigned cls = n <= EBB_LARGE_THRESHOLD ? ebb__class_of(n) : EBB_NO_CLASS;
    if (EBB_UNLIKELY(sample_tick(n)))
        return sampled_alloc(n, 0, 0, cls, fn);
    if (cls != EBB_NO_CLASS)
        return small_alloc_slow(cls, n, fn);
    return large_alloc(n, 0, 0, fn);
}

/* The fast path's sample counter ran out: this request was counted
 * already. */
static EBB_ENTRY EBB_NOINLINE void *malloc_counted(size_t n, const char *fn)
{
    if (EBB_UNLIKELY(ebb__sample_fired(n)))
        return sampled_alloc(n, 0, 0, ebb__class_of(n), fn);
    return small_alloc_slow(ebb__class_of(n), n, fn);
}

/* The sample counter is charged only once the pop is sure to succeed, so
 * the placeholder caches (empty stacks) are never written: a subtract from
 * memory and a branch on its sign.  fn is passed on the slow paths only. */
static inline EBB_ENTRY void *malloc_as(size_t n, const char *fn)
{
    if (EBB_LIKELY(n <= EBB_TCACHE_MAX_SIZE)) {
        ebb__thread_t *self = ebb__self_get();
        ebb__tbin_t *b = &self->bin[ebb__class_of(n)];
        void **top = b->top;
        if (EBB_LIKELY(top != ebb__tbin_low(b))) {
            if (EBB_UNLIKELY((self->sample.left -= (ptrdiff_t)n) < 0))
                return malloc_counted(n, fn);
            ebb__tbin_drop_top(b, top - 1);
            void *p = top[-1];
            ebb__block_mark_live(p);
            return p;
        }
    }
    return ebb__malloc_slow(n, fn);
}

EBB_API EBB_ENTRY void *ebb_malloc(size_t n)
{
    return malloc_as(n, "malloc");
}

/* Smallest class whose size is a multiple of align (<= one slot) and holds n:
 * its blocks start on slot boundaries, so every block is aligned. */
static int aligned_class(size_t n, size_t align, unsigned *out)
{
    if (align > EBB_SLOT_SIZE || n > EBB_LARGE_THRESHOLD)
        return 0;
    for (unsigned c = ebb__class_of(n < align ? align : n); c < EBB_CLASSES; c++) {
        if (ebb__classes[c].size % align == 0) {
            *out = c;
            return 1;
        }
    }
    return 0;
}

static EBB_ENTRY void *alloc_aligned(size_t align, size_t n, const char *fn)
{
    if (align <= EBB_MIN_ALIGN)
        return malloc_as(n, fn);
    ebb__start();
    if (n > (size_t)PTRDIFF_MAX)
        return settle(NULL, n, fn);
    if (EBB_UNLIKELY(ebb__debug_on))
        return debug_alloc(n, align, 0, fn);
    unsigned cls;
    int small = aligned_class(n, align, &cls);
    if (EBB_UNLIKELY(sample_tick(n)))
        return sampled_alloc(n, align < page_size() ? page_size() : align, 0,
                             small ? cls : EBB_NO_CLASS, fn);
    if (small)
        return small_alloc_slow(cls, n, fn);
    return large_alloc(n, align < page_size() ? page_size() : align, 0, fn);
}

EBB_API EBB_ENTRY void *ebb_calloc(size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n))
        return enomem();
    if (n > EBB_LARGE_THRESHOLD) {
        ebb__start();
        if (n > (size_t)PTRDIFF_MAX)
            return settle(NULL, n, "calloc"); /* refused as malloc refuses it */
        if (EBB_UNLIKELY(ebb__debug_on))
            return debug_alloc(n, 0, 1, "calloc");
        if (EBB_UNLIKELY(sample_tick(n)))
            return sampled_alloc(n, 0, 1, EBB_NO_CLASS, "calloc");
        return large_alloc(n, 0, 1, "calloc");
    }
    void *p = malloc_as(n, "calloc");
    if (p)
        memset(p, 0, n);
    return p;
}

EBB_API EBB_ENTRY void *ebb_aligned_alloc(size_t align, size_t n)
{
    if (align == 0 || (align & (align - 1))) {
        errno = EINVAL;
        return NULL;
    }
    return alloc_aligned(align, n, "aligned_alloc");
}

EBB_API EBB_ENTRY void *ebb_memalign(size_t align, size_t n)
{
    if (align > (size_t)PTRDIFF_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (align & (align - 1)) { /* glibc rounds up to a power of two */
        size_t a = 1;
        while (a < align)
            a <<= 1;
        align = a;
    }
    return alloc_aligned(align, n, "memalign");
}

EBB_API EBB_ENTRY int ebb_posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1)) || align % sizeof(void *))
        return EINVAL;
    int saved = errno;
    void *p = alloc_aligned(align, n, "posix_memalign");
    errno = saved;
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

EBB_API EBB_ENTRY void *ebb_valloc(size_t n)
{
    return alloc_aligned(page_size(), n, "valloc");
}

EBB_API EBB_ENTRY void *ebb_pvalloc(size_t n)
{
    size_t page = page_size();
    if (n > SIZE_MAX - page)
        return enomem();
    n = n ? (n + page - 1) & ~(page - 1) : page;
    return alloc_aligned(page, n, "pvalloc");
}

/* ------------------------------------------------------------------ free */

/* free or realloc of a pointer ebb never made: glibc aborts ("free():
 * invalid pointer"), and so does ebb by default: the program's idea of
 * what it owns is wrong, and whatever it frees next may be live.  Nothing
 * of ebb's is touched, so under warn or ignore the call is dropped. */
static void foreign(const char *fn, const void *p)
{
    atomic_fetch_add_explicit(&ebb__misuse.foreign_frees, 1, memory_order_relaxed);
    ebb__report_corruption(fn, p, "invalid pointer: not allocated by ebb");
}

/* A large block of ours is freed (0 if p is not one); its sample, if it
 * was sampled, is forgotten once the large-block lock is dropped. */
static int large_free(void *p)
{
    uint32_t tag = 0;
    int ours = ebb__large_free(p, &tag);
    if (tag)
        ebb__sample_forget(tag);
    return ours;
}

/* a is the start of a block of class cls in the pool covering slot s: the
 * offset from the pool's start is a whole number of blocks.  One multiply;
 * it keeps an interior pointer from ever entering a thread cache. */
static inline int is_block_start(const ebb__arena_t *ar, unsigned s, unsigned cls, uintptr_t a)
{
    uintptr_t back = __atomic_load_n(&ar->slot_back[s], __ATOMIC_RELAXED);
    return ebb__offset_is_block_start((a & (EBB_SLOT_SIZE - 1)) + back, cls);
}

/* p, a small block of class cls marked freed, is free already: the
 * misuse is reported (naming the block's size and where it is) and 1
 * returned, so the call does nothing more.  0 for a block that only
 * happened to hold the mark: it is out, free it. */
static EBB_NOINLINE int freed_again_slow(const char *fn, unsigned cls, void *p)
{
    ebb__freed_t where = ebb__freed_where(ebb__thread_get_slow(), cls, p);
    if (where == EBB_NOT_FREED)
        return 0;
    char fault[160];
    ebb__format(fault, sizeof fault, "%s %u-byte block (size class %u); %s",
                fn[0] == 'f' ? "double free of a" : "realloc of a freed", ebb__classes[cls].size,
                cls, ebb__freed_place(where));
    ebb__report_corruption(fn, p, fault);
    return 1;
}

static inline int freed_again(const char *fn, unsigned cls, void *p)
{
    return EBB_UNLIKELY(ebb__block_marked_freed(p)) && freed_again_slow(fn, cls, p);
}

static void *debug_free(const char *fn, void *p);

EBB_NOINLINE void ebb__free_slow(void *p)
{
    if (p == NULL)
        return;
    ebb__expensive_check();
    if (EBB_UNLIKELY(ebb__debug_on) && (p = debug_free("free", p)) == NULL)
        return;
    int saved = errno;
    uintptr_t a = (uintptr_t)p;
    ebb__arena_t *ar = ebb__arena_of(a);
    if (ar) {
        unsigned s = ebb__slot_of(a);
        unsigned cls = __atomic_load_n(&ar->slot_class[s], __ATOMIC_RELAXED);
        if (cls >= EBB_CLASSES) {
            /* Inside ebb's arenas but in no pool: a block freed with its
             * whole pool, or no block at all; a program that goes on
             * would build on memory it does not own. */
            ebb__report_corruption("free", p, "double free or invalid pointer: no pool holds "
                                              "this address (a block freed here went home "
                                              "with its pool)");
        } else if (!is_block_start(ar, s, cls, a)) {
            ebb__report_corruption("free", p, "invalid pointer: not the start of a block");
        } else {
            ebb__thread_t *self = front_thread();
            if (!freed_again("free", cls, p)) {
                ebb__block_mark_freed(p);
                if (self && ebb__classes[cls].tcache_cap)
                    ebb__tcache_flush_push(self, cls, p);
                else
                    ebb__heap_free(&p, 1);
            }
        }
    } else if (!large_free(p)) {
        if (ebb__large_was_freed(p))
            ebb__report_corruption("free", p, "double free of a large block (freed before)");
        else
            foreign("free", p);
    }
    ebb__purge_owed_kick_on_free();
    errno = saved;
}

/* The fast path of every free: a small block of ours goes on the thread
 * cache's stack for its class, marked freed.  0 if p needs the slow path:
 * the stack is full, p is not a small block of ours, or it is marked freed
 * already (core/freed.c). */
static inline int free_to_cache(void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (ebb__is_arena_address(a)) {
        const ebb__arena_t *ar = (const ebb__arena_t *)(a & ~(EBB_ARENA_SIZE - 1));
        unsigned s = ebb__slot_of(a);
        unsigned cls = __atomic_load_n(&ar->slot_class[s], __ATOMIC_RELAXED);
        uintptr_t key = ebb__freed_key;
        /* A slot in no pool has the class byte EBB_NO_CLASS, whose block
         * start test always fails: no range check needed here. */
        if (EBB_LIKELY(is_block_start(ar, s, cls, a))) {
            ebb__tbin_t *b = &ebb__self_get()->bin[cls];
            void **top = b->top;
            /* The block is read only when it can be cached: a thread
             * without a cache (the debug heap's) never reads it here. */
            if (EBB_LIKELY(top != b->high) && EBB_LIKELY(ebb__block_mark(p) != key)) {
                memcpy((char *)p + sizeof key, &key, sizeof key); /* ebb__block_mark_freed */
                ebb__tbin_put(top, p);
                ebb__tbin_set_top(b, top + 1);
                return 1;
            }
        }
    }
    return 0;
}

EBB_API void ebb_free(void *p)
{
    if (EBB_LIKELY(free_to_cache(p)))
        return;
    ebb__free_slow(p);
}

/* A pointer outside the arenas is looked up once among the large blocks
 * and, if it is not there either, left to the caller without a diagnosis. */
static EBB_NOINLINE int free_if_managed_slow(void *p)
{
    if (ebb__is_arena_address((uintptr_t)p) || p == NULL) {
        ebb__free_slow(p);
        return 1;
    }
    if (!atomic_load_explicit(&ebb__core_ready, memory_order_acquire))
        return 0;
    if (EBB_UNLIKELY(ebb__debug_on) && ebb__large_usable(p)) {
        ebb__free_slow(p);
        return 1;
    }
    int saved = errno;
    int freed = large_free(p);
    ebb__purge_owed_kick_on_free();
    errno = saved;
    return freed;
}

EBB_API int ebb_free_if_managed(void *p)
{
    if (EBB_LIKELY(free_to_cache(p)))
        return 1;
    return free_if_managed_slow(p);
}

EBB_API void ebb_free_sized(void *p, size_t size)
{
    (void)size;
    ebb_free(p);
}

EBB_API void ebb_free_aligned_sized(void *p, size_t align, size_t size)
{
    (void)align;
    (void)size;
    ebb_free(p);
}

/* ----------------------------------------------------------- usable size */

/* Usable size of a small block, or 0 if a is not the start of one. */
static size_t small_usable(ebb__arena_t *ar, uintptr_t a)
{
    ebb__pool_t *p = ebb__pool_of(ar, a);
    uint32_t idx;
    if (p == NULL || !ebb__pool_block_index(p, a, &idx))
        return 0;
    return ebb__classes[p->cls].size;
}

/* Usable size of block p of ours, small or large; 0 if p is not one. */
static size_t block_usable(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    ebb__arena_t *ar = ebb__arena_of(a);
    return ar ? small_usable(ar, a) : ebb__large_usable(p);
}

/* ----------------------------------------------------------- debug heap */

/* An ordinary block with room for n bytes and the debug layout
 * (front/debug.c), by the same routes as without. */
static EBB_ENTRY void *debug_alloc(size_t n, size_t align, int zero, const char *fn)
{
    size_t m = ebb__debug_request(n);
    if (m > (size_t)PTRDIFF_MAX)
        return settle(NULL, n, fn);
    unsigned cls;
    void *p;
    if (align <= EBB_MIN_ALIGN && m <= EBB_LARGE_THRESHOLD)
        p = small_alloc_slow(ebb__class_of(m), m, fn);
    else if (align > EBB_MIN_ALIGN && aligned_class(m, align, &cls))
        p = small_alloc_slow(cls, m, fn);
    else
        p = large_alloc(m, align <= EBB_MIN_ALIGN ? 0 : align < page_size() ? page_size() : align,
                        0, fn);
    return p ? ebb__debug_dress(p, block_usable(p), n, zero) : NULL;
}

/* A debug block is checked and quarantined; what the quarantine lets go of
 * (or p itself if it is not a block of ours, for the ordinary diagnosis) is
 * returned to be freed, or NULL. */
static void *debug_free(const char *fn, void *p)
{
    size_t usable = block_usable(p), out_usable;
    return usable ? ebb__debug_release(fn, p, usable, &out_usable) : p;
}

/* realloc on the debug heap always moves: a pointer kept to the old block
 * then points into the quarantine, where a write through it is caught. */
static EBB_ENTRY void *debug_realloc(void *p, size_t n)
{
    size_t usable = block_usable(p);
    if (usable == 0) {
        foreign("realloc", p);
        errno = EINVAL;
        return NULL;
    }
    size_t old = ebb__debug_size("realloc", p, usable);
    if (old == (size_t)-1) {
        errno = EINVAL;
        return NULL;
    }
    void *q = malloc_as(n, "realloc");
    if (q) {
        memcpy(q, p, old < n ? old : n);
        ebb_free(p);
    }
    return q;
}

EBB_API size_t ebb_usable_size(const void *p)
{
    if (p == NULL)
        return 0;
    size_t n = block_usable(p);
    if (n && EBB_UNLIKELY(ebb__debug_on)) {
        n = ebb__debug_size("malloc_usable_size", p, n);
        return n == (size_t)-1 ? 0 : n;
    }
    if (n == 0)
        ebb__report_misuse("malloc_usable_size", p, "pointer was not allocated by ebb");
    return n;
}

EBB_API int ebb_owns(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (p == NULL || !atomic_load_explicit(&ebb__core_ready, memory_order_acquire))
        return 0;
    ebb__arena_t *ar = ebb__arena_of(a);
    if (ar == NULL)
        return ebb__large_usable(p) != 0;
    ebb__pool_t *pool = ebb__pool_of(ar, a);
    uint32_t idx;
    return pool != NULL && ebb__pool_block_index(pool, a, &idx) && !ebb__pool_is_free(pool, idx);
}

EBB_API int ebb_manages(const void *p)
{
    if (p == NULL || !atomic_load_explicit(&ebb__core_ready, memory_order_acquire))
        return 0;
    return ebb__arena_of((uintptr_t)p) != NULL || ebb__large_usable(p) != 0;
}

/* --------------------------------------------------------------- realloc */

static EBB_ENTRY void *move_block(void *p, size_t old_usable, size_t n)
{
    void *q = malloc_as(n, "realloc");
    if (q == NULL)
        return NULL;
    memcpy(q, p, old_usable < n ? old_usable : n);
    ebb_free(p);
    return q;
}

/* A large block resized in place or by mremap counts as freed and allocated
 * anew: its old sample (tag) goes, and its new size is ticked like any
 * allocation, so it is sampled with the probability its size calls for. */
static EBB_ENTRY EBB_NOINLINE void *resampled(void *q, size_t n, uint32_t tag)
{
    if (tag)
        ebb__sample_forget(tag);
    if (EBB_UNLIKELY(sample_tick(n))) {
        uint32_t fresh = ebb__sample_begin(n);
        if (fresh && !ebb__large_set_tag(q, fresh))
            ebb__sample_forget(fresh);
        else if (fresh)
            ebb__peak_consider();
    }
    return q;
}

/* The class a request of n would get is at most 3/4 of `usable`. */
static int shrink_saves_a_quarter(size_t n, size_t usable)
{
    size_t target = n <= EBB_LARGE_THRESHOLD ? ebb__classes[ebb__class_of(n)].size : n;
    return target <= usable - usable / 4;
}

EBB_API EBB_ENTRY void *ebb_realloc(void *p, size_t n)
{
    if (p == NULL)
        return malloc_as(n, "realloc");
    if (n == 0) {
        ebb_free(p);
        return NULL;
    }
    if (n > (size_t)PTRDIFF_MAX)
        return settle(NULL, n, "realloc");
    if (EBB_UNLIKELY(ebb__debug_on))
        return debug_realloc(p, n);
    uintptr_t a = (uintptr_t)p;
    ebb__arena_t *ar = ebb__arena_of(a);
    if (ar) {
        size_t usable = small_usable(ar, a);
        if (usable == 0) {
            ebb__report_corruption("realloc", p, "invalid pointer: no block of ebb's starts here");
            errno = EINVAL;
            return NULL;
        }
        /* Resizing a freed block would copy freed data and free it again. */
        if (freed_again("realloc", ebb__class_of(usable), p)) {
            errno = EINVAL;
            return NULL;
        }
        if (n <= usable && !shrink_saves_a_quarter(n, usable))
            return p;
        return move_block(p, usable, n);
    }
    size_t usable = ebb__large_usable(p);
    if (usable == 0) {
        if (ebb__large_was_freed(p))
            ebb__report_corruption("realloc", p, "realloc of a freed large block");
        else
            foreign("realloc", p);
        errno = EINVAL;
        return NULL;
    }
    if (n <= EBB_LARGE_THRESHOLD) {
        /* A small size: into a pool if it grows or the move saves a quarter
         * (a large block can be small when it came from an aligned request). */
        if (n > usable || shrink_saves_a_quarter(n, usable))
            return move_block(p, usable, n);
        return p;
    }
    int not_ours, resized;
    uint32_t tag;
    void *q = ebb__large_realloc(p, n, &not_ours, &resized, &tag);
    if (q && resized)
        return resampled(q, n, tag);
    /* Moved by copying when a resident cached mapping can take it, or when
     * mremap cannot (a block that grew into a neighbour spans two kernel
     * mappings). */
    return q ? q : move_block(p, usable < n ? usable : n, n);
}

EBB_API EBB_ENTRY void *ebb_reallocarray(void *p, size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n))
        return enomem();
    return ebb_realloc(p, n);
}

