/*
 * sizeclass.c -- which block size serves a request, and how pools of each
 * size are shaped.
 *
 * Classes 0..31 are 16-byte steps up to 512 bytes: CPython's small objects
 * (tuples, ints, floats, short strings, small dicts) fall on these exactly, as
 * in pymalloc.  Classes 32..63 are four per doubling from 640 bytes to 128 KiB,
 * like jemalloc's, so a request wastes at most 25% (about 10% on average).
 *
 * A pool of class c spans `span` 64 KiB slots: the fewest (1, 2, 4 or 8) that
 * hold at least 4 blocks and lose at most an eighth of the span to the tail
 * that no block fits.  Measured on the table below: the worst tail is 12.5%
 * (14336-byte and 28672-byte classes), the mean 1.6%.
 *
 * A block's index in its pool is offset * recip >> 48, with
 * recip = ceil(2^48 / size): exact for every offset below 2^19 (8 slots),
 * because the rounding error stays under 2^-29 while an index needs 1/size.
 */
#include "internal.h"

EBB_HIDDEN ebb__class_t ebb__classes[EBB_CLASSES];
EBB_HIDDEN uint8_t ebb__class_lut[(1024 / EBB_SMALL_STEP) + 1];
EBB_HIDDEN uint64_t ebb__class_recip[EBB_CLASSES];
EBB_HIDDEN uint32_t ebb__class_size[EBB_CLASSES];
/* One entry per value of a slot's class byte: 0 past the last class (a free
 * slot, the header: EBB_NO_CLASS), where the test always fails, so the free
 * fast path needs no separate range check of the byte. */
EBB_HIDDEN uint64_t ebb__class_divisor_test[256];

static uint32_t class_size(unsigned i)
{
    if (i < 32)
        return EBB_SMALL_STEP * (i + 1);
    unsigned j = i - 32, doubling = j / 4, quarter = j % 4;
    return (uint32_t)((EBB_SMALL_STEP_MAX << doubling) +
                      (quarter + 1) * ((EBB_SMALL_STEP_MAX / 4) << doubling));
}

static unsigned choose_span(uint32_t size)
{
    for (unsigned span = 1; span < EBB_MAX_POOL_SPAN; span *= 2) {
        size_t bytes = span * EBB_SLOT_SIZE;
        size_t blocks = bytes / size, tail = bytes - blocks * size;
        if (blocks >= 4 && tail * 8 <= bytes)
            return span;
    }
    return EBB_MAX_POOL_SPAN;
}

static uint8_t tcache_capacity(uint32_t size)
{
    if (size > EBB_TCACHE_MAX_SIZE)
        return 0;
    size_t cap = EBB_TCACHE_CLASS_BYTES / size;
    if (cap > EBB_TCACHE_MAX_COUNT)
        cap = EBB_TCACHE_MAX_COUNT;
    if (cap < EBB_TCACHE_MIN_COUNT)
        cap = EBB_TCACHE_MIN_COUNT;
    return (uint8_t)cap;
}

void ebb__sizeclass_init(void)
{
    for (unsigned i = 0; i < EBB_CLASSES; i++) {
        ebb__class_t *c = &ebb__classes[i];
        c->size = class_size(i);
        c->span = (uint8_t)choose_span(c->size);
        c->blocks = (uint32_t)(c->span * EBB_SLOT_SIZE / c->size);
        c->recip = (((uint64_t)1 << 48) + c->size - 1) / c->size;
        c->tcache_cap = tcache_capacity(c->size);
        c->bucket_recip = (uint32_t)((((uint64_t)1 << 32) + c->blocks - 1) / c->blocks);
        ebb__class_recip[i] = c->recip;
        ebb__class_size[i] = c->size;
        ebb__class_divisor_test[i] = UINT64_MAX / c->size + 1;
        ebb__assert(c->blocks <= EBB_POOL_MAX_BLOCKS);
    }
    ebb__assert(ebb__classes[EBB_CLASSES - 1].size == EBB_LARGE_THRESHOLD);
    unsigned c = 0;
    for (unsigned q = 0; q < sizeof ebb__class_lut; q++) {
        while (ebb__classes[c].size < q * EBB_SMALL_STEP)
            c++;
        ebb__class_lut[q] = (uint8_t)c;
    }
}

unsigned ebb__class_of_big(size_t n)
{
    ebb__assert(n > 1024 && n <= EBB_LARGE_THRESHOLD);
    size_t m = n - 1;
    unsigned log2 = (unsigned)(sizeof(size_t) * 8 - 1) - (unsigned)__builtin_clzl((unsigned long)m);
    unsigned quarter = (unsigned)(m >> (log2 - 2)) & 3;
    return 32 + (log2 - 9) * 4 + quarter;
}
