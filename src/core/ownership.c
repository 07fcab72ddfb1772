/*
 * ownership.c -- "is this pointer ours?" in one load, without touching it.
 *
 * One byte per arena-sized (4 MiB) piece of the user address space: non-zero
 * when an ebb arena occupies it.  Because arenas are aligned to their size,
 * the byte for address a is map[a >> 22], and a pointer that passes is inside
 * an arena whose header is at a & ~(4 MiB - 1).  The map lives in .bss: 32 MiB
 * of address space on x86-64 (2^47 / 4 MiB entries) that the kernel backs with
 * the shared zero page until an arena is recorded, so it costs one resident
 * page per 16 GiB of address space actually used.  CPython answers the same
 * question with a three-level radix tree; a flat map is one load instead of
 * three, and the address range makes it affordable.
 *
 * Large blocks are not in the map: they are found in large.c's table, which
 * free() consults only for pointers outside every arena.
 */
#include "internal.h"

EBB_HIDDEN uint8_t ebb__owner_map[EBB_MAP_ENTRIES];

void ebb__owner_set(ebb__arena_t *a, int ours)
{
    uintptr_t i = (uintptr_t)a >> EBB_ARENA_SHIFT;
    ebb__assert(i < EBB_MAP_ENTRIES);
    __atomic_store_n(&ebb__owner_map[i], (uint8_t)(ours ? 1 : 0), __ATOMIC_RELEASE);
}
