/*
 * blackbox.h -- the black box file's layout, shared by the library
 * (blackbox.c writes it) and the `ebb` tool (cli/box.c reads it after a
 * child died).  Version 2:
 *
 *   [0, HEADER)              ebb__blackbox_t
 *   [HEADER, HEADER + SLOT)  slot 0
 *   [HEADER + SLOT, END)     slot 1
 *
 * and each slot holds three NUL-terminated texts at fixed places:
 *
 *   [0, TEXT)                  a first line of key=value counters
 *                              (committed, peak_committed, live, mapped,
 *                              limit, purged, rss, failure, request; bytes
 *                              unless named otherwise), then ebb's brief
 *                              text report
 *   [TEXT, TEXT + JSON)        the brief JSON report (schema ebb.report/1),
 *                              or "" when the process names no report file
 *   [TEXT + JSON, SLOT)        the peak's stacks, folded (or "")
 *
 * A writer fills the other slot, then stores `current` with release order;
 * `seq` counts refreshes (0: nothing written yet).  The sizes are in the
 * header too, so a reader checks them rather than assuming.
 *
 * Version 1 (before the JSON) had one text of 16 KiB a slot and no sizes
 * past slot_size; `ebb blackbox` reads both.
 *
 * Why these sizes.  The JSON is what `ebb run` makes the report files from
 * after a SIGKILL: memory, the size classes, the 3 top sites and the 10
 * heaviest sites of the peak, each with its Python stack (at most 512
 * bytes) and 8 native frames.  Measured: about 9 KiB for a Python program
 * with Python stacks (tests/python/test_report_files.py's hog), 13 KiB for
 * one whose sites have only native frames; the most it can take is about
 * 13 sites x (8 frames x 255 bytes + 512 + 200) + 64 classes x 90 bytes,
 * about 42 KiB, and a JSON that still does not fit is written with fewer
 * frames (report.c).  So 48 KiB.  The folded stacks: a line per peak site,
 * at most the Python stack or 8 frames, under 8 KiB.  The text keeps its
 * 16 KiB.  Two slots of 72 KiB and a header page: a 148 KiB file per
 * process, its room reserved on disk when it is opened.
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
#define EBB_BLACKBOX_VERSION 2u
#define EBB_BLACKBOX_HEADER 4096u
#define EBB_BLACKBOX_TEXT 16384u
#define EBB_BLACKBOX_JSON 49152u
#define EBB_BLACKBOX_FOLDED 8192u
#define EBB_BLACKBOX_SLOT (EBB_BLACKBOX_TEXT + EBB_BLACKBOX_JSON + EBB_BLACKBOX_FOLDED)
#define EBB_BLACKBOX_FILE_SIZE (EBB_BLACKBOX_HEADER + 2u * EBB_BLACKBOX_SLOT)
#define EBB_BLACKBOX_NOTE 2048u

/* Version 1's layout, for readers of boxes an older ebb left. */
#define EBB_BLACKBOX_V1_SLOT 16384u
#define EBB_BLACKBOX_V1_FILE_SIZE (EBB_BLACKBOX_HEADER + 2u * EBB_BLACKBOX_V1_SLOT)

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
    /* Version 2: */
    uint32_t text_size;   /* EBB_BLACKBOX_TEXT */
    uint32_t json_size;   /* EBB_BLACKBOX_JSON */
    uint32_t folded_size; /* EBB_BLACKBOX_FOLDED */
    uint32_t reserved2;
    /* In either version, zeros in a box an ebb before it wrote (no note): */
    uint32_t note_len;    /* bytes of note, 0: none */
    uint32_t note_pad;
    char note[EBB_BLACKBOX_NOTE]; /* the crash note's line, not NUL-terminated */
} ebb__blackbox_t;

_Static_assert(sizeof(ebb__blackbox_t) <= EBB_BLACKBOX_HEADER, "the header fits its page");

#endif
