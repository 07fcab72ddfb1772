/*
 * pool.c -- a run of 1 to 8 slots holding blocks of one size class.
 *
 * Owns: the free bitmap of each pool (in the arena header, bit set = free),
 * the count of blocks out, and the scan hint.  All calls are made under the
 * lock of the bin the pool belongs to.
 *
 * Why a bitmap and not a free list threaded through the blocks: the next
 * issue releases the pages of free blocks inside partly used pools, and the
 * OS then zeroes them; a list kept in those blocks would be lost, a bitmap in
 * the header is not.  The bitmap also catches double frees and frees of
 * interior pointers exactly, and costs nothing on the fast paths, which work
 * on thread-cache stacks: pools are only touched when a cache refills or
 * flushes half its capacity at a time.
 *
 * Blocks are taken lowest address first, so a pool fills from the bottom and
 * its upper pages stay untouched (never resident) or become free together.
 */
#include "internal.h"

#include <string.h>

void ebb__pool_format(ebb__pool_t *p, ebb__heap_t *h, unsigned cls)
{
    const ebb__class_t *c = &ebb__classes[cls];
    ebb__assert(p->span == c->span);
    __atomic_store_n(&p->heap, h, __ATOMIC_RELEASE);
    p->cls = (uint8_t)cls;
    p->used = 0;
    p->scan = 0;
    p->bucket = EBB_BUCKET_NONE;
    p->next = p->prev = NULL;
    uint64_t *bits = ebb__pool_bitmap(p);
    unsigned full_words = c->blocks / 64, rest = c->blocks % 64;
    memset(bits, 0xff, full_words * sizeof *bits);
    memset(bits + full_words, 0, (EBB_BITMAP_WORDS - full_words) * sizeof *bits);
    if (rest)
        bits[full_words] = ((uint64_t)1 << rest) - 1;
}

unsigned ebb__pool_take(ebb__pool_t *p, void **out, unsigned want)
{
    const ebb__class_t *c = &ebb__classes[p->cls];
    uint64_t *bits = ebb__pool_bitmap(p);
    unsigned words = (c->blocks + 63) / 64, got = 0, w = p->scan;
    for (; w < words && got < want; w++) {
        uint64_t m = bits[w];
        while (m && got < want) {
            unsigned b = (unsigned)__builtin_ctzll(m);
            m &= m - 1;
            out[got++] = p->start + ((size_t)w * 64 + b) * c->size;
        }
        bits[w] = m;
        if (m)
            break;
    }
    p->scan = w;
    p->used += got;
    ebb__assert(p->used <= c->blocks);
    return got;
}

int ebb__pool_block_index(const ebb__pool_t *p, uintptr_t a, uint32_t *idx)
{
    const ebb__class_t *c = &ebb__classes[p->cls];
    uintptr_t off = a - (uintptr_t)p->start;
    if (a < (uintptr_t)p->start || off >= (uintptr_t)c->blocks * c->size)
        return 0;
    return ebb__offset_to_index(off, p->cls, idx);
}

int ebb__pool_is_free(ebb__pool_t *p, uint32_t idx)
{
    return (int)((ebb__pool_bitmap(p)[idx / 64] >> (idx % 64)) & 1);
}

void ebb__pool_put(ebb__pool_t *p, uint32_t idx)
{
    uint64_t *bits = ebb__pool_bitmap(p);
    ebb__assert(!((bits[idx / 64] >> (idx % 64)) & 1));
    bits[idx / 64] |= (uint64_t)1 << (idx % 64);
    if (idx / 64 < p->scan)
        p->scan = idx / 64;
    ebb__assert(p->used > 0);
    p->used--;
}

ebb__pool_t *ebb__pool_of(ebb__arena_t *a, uintptr_t addr)
{
    unsigned s = ebb__slot_of(addr);
    if (__atomic_load_n(&a->slot_class[s], __ATOMIC_ACQUIRE) == EBB_NO_CLASS)
        return NULL;
    return &a->pool[a->slot_head[s]];
}
