/*
 * addrspace.h -- a process's address space read from the text of its
 * /proc/PID/maps or /proc/PID/smaps: each mapping with its kind, the
 * figures per kind, the largest free regions, and a grid to draw.
 *
 * Pure: everything works on text buffers and on arrays the caller gives,
 * makes no system call, allocates nothing and keeps no state, so the `ebb
 * map` tool (cli/map.c), the unit tests on fixtures and the library (a
 * report of its own process) use the same code.  Addresses are 64-bit
 * whatever the build, so a 32-bit build can read a 64-bit process's map.
 * src/os/linux_maps.c reads the files; addrspace_out.c writes the result
 * as text or JSON.
 */
#ifndef EBB_ADDRSPACE_H
#define EBB_ADDRSPACE_H

#include <stddef.h>
#include <stdint.h>

/* What a mapping is, from its name, permissions and neighbours. */
typedef enum {
    EBB__AS_EBB,     /* ebb's arenas (addrspace.c says how they are told) */
    EBB__AS_HEAP,    /* [heap]: the brk heap */
    EBB__AS_STACK,   /* [stack], and thread stacks with their guard page */
    EBB__AS_PROGRAM, /* the program's own file (its image) */
    EBB__AS_LIBRARY, /* shared objects: a file name with ".so" */
    EBB__AS_FILE,    /* every other file */
    EBB__AS_ANON,    /* every other anonymous mapping */
    EBB__AS_KERNEL,  /* [vdso], [vvar], [vsyscall]: the kernel's own */
    EBB__AS_KINDS
} ebb__as_kind_t;

typedef struct {
    uint64_t start, end;             /* [start, end) */
    uint64_t rss, pss, dirty, swap;  /* bytes, from smaps (0 from maps);
                                      * dirty: private and shared */
    const char *name;                /* into the text, name_len bytes: a path,
                                      * "[heap]", ..., or "" (anonymous) */
    uint32_t name_len;
    char perms[4];                   /* "rw-p" as maps writes it */
    uint8_t kind;                    /* ebb__as_kind_t */
    uint8_t no_access;               /* "---": a guard or a reservation */
} ebb__as_mapping_t;

/* Figures summed over some mappings. */
typedef struct {
    uint64_t mappings, size, rss, pss, dirty, swap;
} ebb__as_sum_t;

typedef struct {
    uint64_t start, end;
} ebb__as_range_t;

/* How many of the largest free regions are kept. */
#define EBB__AS_TOP_FREE 5

/* What the analysis needs besides the text. */
typedef struct {
    int bits;         /* 32 or 64; 0: guessed (32 if every mapping ends
                       * at or below 4 GiB) */
    uint64_t low;     /* the lowest address a mapping may have
                       * (vm.mmap_min_addr) */
    const char *exe;  /* the program's path, or NULL: its mappings are
                       * PROGRAM */
    int ebb;          /* 1: ebb is the process's allocator; 0: guessed
                       * (libebb*.so mapped); -1: it is not */
} ebb__as_input_t;

typedef struct {
    ebb__as_mapping_t *maps;   /* the caller's, in address order */
    size_t n;
    int bits, smaps, ebb;      /* smaps: the figures are known */
    uint64_t low, top;         /* the user address space: [low, top) */
    ebb__as_sum_t kind[EBB__AS_KINDS];
    ebb__as_sum_t user;        /* every mapping below top */
    uint64_t free_bytes, free_regions;
    ebb__as_range_t largest[EBB__AS_TOP_FREE]; /* largest first */
    unsigned nlargest;
} ebb__as_t;

/* An upper bound on the mappings in text: its lines. */
size_t ebb__as_max_mappings(const char *text, size_t len);

/* Parse maps or smaps text into maps[0..cap); returns how many, or -1 if a
 * line is not what the kernel writes (*bad_line: its number, from 1) or
 * the mappings are not in increasing order without overlap.  Names point
 * into text, which must outlive the mappings. */
long ebb__as_parse(const char *text, size_t len, ebb__as_mapping_t *maps, size_t cap,
                   size_t *bad_line);

/* Classify the n parsed mappings (their kind fields are set) and sum them
 * up, with the free regions of [low, top), into as. */
void ebb__as_analyse(ebb__as_t *as, ebb__as_mapping_t *maps, size_t n, int smaps,
                     const ebb__as_input_t *in);

/* What a kind is called, by the grid's character, one word (JSON) and a
 * few words (text). */
char ebb__as_kind_char(unsigned kind);
const char *ebb__as_kind_key(unsigned kind);
const char *ebb__as_kind_words(unsigned kind);

/* ---------------------------------------------------------------- grid */

#define EBB__AS_COLUMNS 64

/* A row of the grid: EBB__AS_COLUMNS cells from `start`, or, if `gap`, a
 * stretch of free address space [start, end) too large to draw, shown as
 * one line. */
typedef struct {
    uint64_t start, end;
    int gap;
    char cells[EBB__AS_COLUMNS + 1];
} ebb__as_row_t;

/* Lay the used span out in at most max_rows rows (into rows[], which holds
 * max_rows), each cell a power of two bytes (*cell), the smallest that
 * fits: a 32-bit space is drawn whole, a 64-bit one from its lowest to its
 * highest mapping with the stretches of more than two empty rows between
 * them shown as gap rows.  A cell shows the kind that covers most of it, in
 * lower case if most of that is no-access, '.' if nothing is mapped there.
 * Returns the rows used. */
size_t ebb__as_grid(const ebb__as_t *as, ebb__as_row_t *rows, size_t max_rows, uint64_t *cell);

/* -------------------------------------------------- addrspace_out.c */

/* Where the text goes: put(ctx, bytes, n). */
typedef struct {
    void (*put)(void *ctx, const char *s, size_t n);
    void *ctx;
} ebb__as_out_t;

/* Who was mapped, and when, for the first lines. */
typedef struct {
    long pid;
    const char *command;  /* its name (comm), or NULL */
    const char *when;     /* e.g. "now", or NULL */
} ebb__as_about_t;

/* For people: the grid and its legend, the largest free regions, the
 * groups, the labelled mappings. */
void ebb__as_write_text(const ebb__as_t *as, const ebb__as_row_t *rows, size_t nrows,
                        uint64_t cell, const ebb__as_about_t *about, ebb__as_out_t *o);
/* The same as one JSON object (schema "ebb.map/1"): addresses as "0x..."
 * strings, sizes as numbers of bytes. */
void ebb__as_write_json(const ebb__as_t *as, const ebb__as_row_t *rows, size_t nrows,
                        uint64_t cell, const ebb__as_about_t *about, ebb__as_out_t *o);

#endif
