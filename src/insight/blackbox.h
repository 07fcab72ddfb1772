/*
 * blackbox.h -- the black box file's layout, shared by the library
 * (blackbox.c writes it) and the `ebb` tool (cli/run.c reads it after a
 * child died).  Version 1:
 *
 *   [0, HEADER)              ebb__blackbox_t
 *   [HEADER, HEADER + SLOT)  slot 0: NUL-terminated text
 *   [HEADER + SLOT, END)     slot 1: NUL-terminated text
 *
 * The text of the current slot is a first line of key=value counters
 * (committed, peak_committed, live, mapped, limit, purged, rss, failure,
 * request; bytes unless named otherwise), then ebb's text report.  A
 * writer fills the other slot, then stores `current` with release order;
 * `seq` counts refreshes (0: nothing written yet).
 *
 * `note` (in the header, after the fields above; zeros in a box written
 * before it existed, which reads as no note) holds the crash note's line
 * (insight/crash.c) once a fault followed a refused allocation: its text,
 * then `note_len` stored with release order.
 */
#ifndef EBB_BLACKBOX_H
#define EBB_BLACKBOX_H

#include <stdint.h>

#define EBB_BLACKBOX_MAGIC "EBBBOX1\n"
#define EBB_BLACKBOX_VERSION 1u
#define EBB_BLACKBOX_HEADER 4096u
#define EBB_BLACKBOX_SLOT 16384u
#define EBB_BLACKBOX_FILE_SIZE (EBB_BLACKBOX_HEADER + 2u * EBB_BLACKBOX_SLOT)
#define EBB_BLACKBOX_NOTE 2048u

typedef struct {
    char magic[8];        /* EBB_BLACKBOX_MAGIC */
    uint32_t version;     /* EBB_BLACKBOX_VERSION */
    uint32_t slot_size;   /* EBB_BLACKBOX_SLOT */
    uint32_t current;     /* the slot last completed: 0 or 1 */
    uint32_t reserved;
    uint64_t seq;         /* refreshes written */
    int64_t pid;
    int64_t started;      /* wall clock, seconds since the epoch */
    int64_t updated;      /* wall clock of the last refresh */
    uint32_t note_len;    /* bytes of note, 0: none */
    uint32_t note_pad;
    char note[EBB_BLACKBOX_NOTE]; /* the crash note's line, not NUL-terminated */
} ebb__blackbox_t;

_Static_assert(sizeof(ebb__blackbox_t) <= EBB_BLACKBOX_HEADER, "the header fits its page");

#endif
