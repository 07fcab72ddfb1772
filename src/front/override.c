/*
 * override.c -- ebb as the process's malloc.
 *
 * The C library's allocation functions and glibc's __libc_* aliases are
 * aliases of the ebb_* functions (one body each, no extra jump).  Loaded with
 * LD_PRELOAD, or linked before the C library, these definitions win for the
 * whole process, the C library's own internal calls and C++'s operator new
 * (libstdc++ calls malloc) included.  Built out with -DEBB_NO_OVERRIDE, for
 * sanitizer builds whose runtime owns malloc.
 */
#include "internal.h"

#ifndef EBB_NO_OVERRIDE

#define EBB_ALIAS(name) __attribute__((alias(#name), used, visibility("default")))
/* The same, for functions the header marks as returning fresh memory. */
#define EBB_ALIAS_M(name) __attribute__((malloc)) EBB_ALIAS(name)

void *malloc(size_t) EBB_ALIAS_M(ebb_malloc);
void *calloc(size_t, size_t) EBB_ALIAS_M(ebb_calloc);
void *realloc(void *, size_t) EBB_ALIAS(ebb_realloc);
void *reallocarray(void *, size_t, size_t) EBB_ALIAS(ebb_reallocarray);
void free(void *) EBB_ALIAS(ebb_free);
void cfree(void *) EBB_ALIAS(ebb_free);
void free_sized(void *, size_t) EBB_ALIAS(ebb_free_sized);
void free_aligned_sized(void *, size_t, size_t) EBB_ALIAS(ebb_free_aligned_sized);
int posix_memalign(void **, size_t, size_t) EBB_ALIAS(ebb_posix_memalign);
void *aligned_alloc(size_t, size_t) EBB_ALIAS_M(ebb_aligned_alloc);
void *memalign(size_t, size_t) EBB_ALIAS_M(ebb_memalign);
void *valloc(size_t) EBB_ALIAS_M(ebb_valloc);
void *pvalloc(size_t) EBB_ALIAS_M(ebb_pvalloc);
size_t malloc_usable_size(void *) EBB_ALIAS(ebb_usable_size);

void *__libc_malloc(size_t) EBB_ALIAS_M(ebb_malloc);
void *__libc_calloc(size_t, size_t) EBB_ALIAS_M(ebb_calloc);
void *__libc_realloc(void *, size_t) EBB_ALIAS(ebb_realloc);
void __libc_free(void *) EBB_ALIAS(ebb_free);
void *__libc_memalign(size_t, size_t) EBB_ALIAS_M(ebb_memalign);
void *__libc_valloc(size_t) EBB_ALIAS_M(ebb_valloc);
void *__libc_pvalloc(size_t) EBB_ALIAS_M(ebb_pvalloc);
int __posix_memalign(void **, size_t, size_t) EBB_ALIAS(ebb_posix_memalign);

/* glibc's heap-tuning entry points, answered for ebb's heap: trimming is a
 * collection; mallopt's knobs have no meaning here and report success. */
__attribute__((visibility("default"))) int malloc_trim(size_t pad)
{
    (void)pad;
    ebb_collect(0);
    return 1;
}

__attribute__((visibility("default"))) int mallopt(int param, int value)
{
    (void)param;
    (void)value;
    return 1;
}

#endif /* EBB_NO_OVERRIDE */
