/*
 * linux_unwind.c -- the calling thread's return addresses, read from the
 * DWARF call-frame tables with the rules that matter cached per return
 * address: the heap profiler's unwinder on x86-64 (glibc 2.35 and later).
 *
 * Owns: the rule cache, the list of objects that can never be unloaded,
 * each thread's stack bounds, and how a thread's unwind memo is used.
 *
 * Why.  glibc's backtrace() (libgcc's unwinder) costs 1,700 to 2,000
 * instructions a frame: it finds the object, searches its .eh_frame_hdr,
 * parses the CIE and FDE, runs the call-frame program and fills a context
 * of every register, for every frame of every sample.  Nearly every frame
 * of x86-64 code needs three facts only: where the frame's CFA is (rsp or
 * rbp plus a constant), that the return address sits at CFA - 8, and where
 * the caller's rbp is (unchanged, or saved at CFA - 8k).  Those fit in 28
 * bits; with the return address itself they fit one 64-bit word, so the
 * cache is an array of such words, written and read with single atomic
 * stores and loads: no lock, no torn entry, a lost race costs a re-parse.
 * A warm unwind costs about 65 instructions a frame (callgrind: 1,611 for
 * a 25-frame stack, against 50,063 with backtrace()).
 *
 * The cache.  Direct mapped, EBB_UNWIND_CACHE_SLOTS words, indexed by the
 * low bits of the return address; the word holds the remaining bits as its
 * tag (return addresses below 2^48; above, nothing is cached).  A rule is
 * cached only for a return address inside an object that can never be
 * unloaded: the program, the dynamic loader, the C library and the object
 * ebb lives in.  So a cached rule never goes stale, and no dlopen or
 * dlclose needs noticing: a return address in any other object (a library
 * the program dlopened, or one it links) is looked up afresh each time,
 * through _dl_find_object (lock-free: it takes none of the loader's locks,
 * so a fork or another thread's dlopen never waits on a sample) and a
 * binary search of the object's .eh_frame_hdr and a run of its call-frame
 * program, each time (not measured apart; the tests' dlopened library
 * takes this path).  glibc's
 * dl_iterate_phdr, whose adds and subs counters would tell a dlclose, takes
 * the loader's lock: not on this path.
 *
 * The memo.  A program samples from a few call paths, over and over, and
 * the walk is the same each time.  So the sampler hands in its thread's
 * memo of the last unwind (os.h): where it started (sp, return address,
 * and rbp if a frame was found from it) and every stack word it read that
 * decided the answer, a return address or a saved rbp that located a
 * frame.  The next unwind from the same sp and return address first reads
 * those words again; if each still holds what it held, the walk from the
 * same registers through the same words with the same rules must give the
 * same answer, which is copied: about 10 instructions a frame instead of
 * 55.  Only unwinds whose every rule comes from a permanent object are
 * kept (a rule of a library that may be closed could change under the
 * same return address).  A saved rbp that no rule used is left out of the
 * key: code without frame pointers keeps its own values in rbp, different
 * at every call.  Measured on bench/run.py's largeblk (every block
 * sampled, stacks of 10 frames): a sample from a repeated path costs about
 * 700 instructions in all, the unwind about 150 of them (the sampler also
 * reuses the site it found for the same stack, sample.c); sampling's cost
 * there went from +6.7% to +2.2% (bench/run.py --callgrind
 * --cg-program-threads --cg-scale 0.5, sampling on against off).
 *
 * Reading the stack.  Every read is checked against the thread's stack:
 * [the sampler's own stack pointer, the top of the thread's stack).  The
 * top is learnt once per thread: pthread_getattr_np for a thread the
 * program started (it allocates and makes one system call, once), the
 * C library's __libc_stack_end for the main thread (its
 * pthread_getattr_np reads /proc/self/maps); a stack pointer outside those
 * bounds (a signal's alternate stack, a coroutine's) is refused.  Each CFA
 * must lie above the previous one.
 *
 * What it refuses (the caller then falls back to backtrace()): a rule it
 * does not model (a CFA computed by a DWARF expression, as a function that
 * realigns its stack has; a register rule other than "saved at CFA + n"; a
 * signal frame), a table it cannot search, a stack it cannot bound.  It
 * stops, as libgcc does, at a frame whose return address is undefined (the
 * outermost: _start, a thread's clone) or one without an FDE.  Every
 * refusal is counted (ebb__os_unwind_refusals).
 *
 * 32-bit x86 and other systems return -1 always and keep backtrace(): the
 * 32-bit build is ebb's answer to a small address space, not a speed
 * target, and i386's rules (ebx as GOT pointer, esp realignment in more
 * functions) would be a second unwinder to test.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"
#include "../../include/ebb.h" /* config.h checks its constants against it */
#include "../config.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__GLIBC__) && defined(__linux__)
#define OWN_UNWINDER 1
#else
#define OWN_UNWINDER 0
#endif

static _Atomic unsigned long unwind_refused;

unsigned long ebb__os_unwind_refusals(void)
{
    return atomic_load_explicit(&unwind_refused, memory_order_relaxed);
}

#if OWN_UNWINDER

#include <link.h>

/* glibc's own layout of _dl_find_object's answer (dlfcn.h, 2.35): declared
 * here so that ebb builds and runs on an older glibc, where the function is
 * looked up, not found, and backtrace() stays. */
struct ebb__dl_find_object {
    unsigned long long flags;
    void *map_start, *map_end;
    void *link_map;
    void *eh_frame; /* the object's PT_GNU_EH_FRAME: its .eh_frame_hdr */
    unsigned long long reserved[7];
};
typedef int (*find_object_fn)(void *, struct ebb__dl_find_object *);

static find_object_fn find_object;

/* Objects that are never unloaded: their rules may be cached for good. */
#define PERMANENT 4
static struct {
    uintptr_t lo, hi;
} permanent[PERMANENT];
static unsigned npermanent;
static _Atomic int unwinder_ok; /* set once the above are filled */

/* ------------------------------------------------------ reading tables */

/* A cursor over [p, end); `bad` once a read went past the end or met what
 * this reader does not handle. */
typedef struct {
    const uint8_t *p, *end;
    int bad;
} rd_t;

static uint64_t rd_fixed(rd_t *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    switch (n) {
    case 1: v = *r->p; break;
    case 2: { uint16_t x; memcpy(&x, r->p, 2); v = x; break; }
    case 4: { uint32_t x; memcpy(&x, r->p, 4); v = x; break; }
    default: memcpy(&v, r->p, 8); break;
    }
    r->p += n;
    return v;
}

static uint64_t rd_uleb(rd_t *r)
{
    uint64_t v = 0;
    unsigned shift = 0;
    while (!r->bad) {
        if (r->p >= r->end) {
            r->bad = 1;
            break;
        }
        uint8_t b = *r->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80))
            break;
    }
    return v;
}

static int64_t rd_sleb(rd_t *r)
{
    uint64_t v = 0;
    unsigned shift = 0;
    uint8_t b = 0;
    while (!r->bad) {
        if (r->p >= r->end) {
            r->bad = 1;
            return 0;
        }
        b = *r->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80))
            break;
    }
    if (shift < 64 && (b & 0x40))
        v |= ~(uint64_t)0 << shift;
    return (int64_t)v;
}

/* Pointer encodings (DW_EH_PE_*, LSB's "Exception Frames"). */
enum {
    PE_ABSPTR = 0x00, PE_ULEB128 = 0x01, PE_UDATA2 = 0x02, PE_UDATA4 = 0x03, PE_UDATA8 = 0x04,
    PE_SLEB128 = 0x09, PE_SDATA2 = 0x0a, PE_SDATA4 = 0x0b, PE_SDATA8 = 0x0c,
    PE_PCREL = 0x10, PE_DATAREL = 0x30, PE_INDIRECT = 0x80, PE_OMIT = 0xff
};

/* A value in encoding enc; data_base for DW_EH_PE_datarel (0: refused).
 * An indirect value is not followed (only skipped values are indirect). */
static uintptr_t rd_encoded(rd_t *r, uint8_t enc, uintptr_t data_base)
{
    if (enc == PE_OMIT)
        return 0;
    uintptr_t at = (uintptr_t)r->p, v;
    switch (enc & 0x0f) {
    case PE_ABSPTR: v = (uintptr_t)rd_fixed(r, sizeof(void *)); break;
    case PE_ULEB128: v = (uintptr_t)rd_uleb(r); break;
    case PE_UDATA2: v = (uintptr_t)rd_fixed(r, 2); break;
    case PE_UDATA4: v = (uintptr_t)rd_fixed(r, 4); break;
    case PE_UDATA8: v = (uintptr_t)rd_fixed(r, 8); break;
    case PE_SLEB128: v = (uintptr_t)rd_sleb(r); break;
    case PE_SDATA2: v = (uintptr_t)(int64_t)(int16_t)rd_fixed(r, 2); break;
    case PE_SDATA4: v = (uintptr_t)(int64_t)(int32_t)rd_fixed(r, 4); break;
    case PE_SDATA8: v = (uintptr_t)rd_fixed(r, 8); break;
    default: r->bad = 1; return 0;
    }
    switch (enc & 0x70) {
    case 0: break;
    case PE_PCREL: v += at; break;
    case PE_DATAREL:
        if (data_base == 0)
            r->bad = 1;
        v += data_base;
        break;
    default: r->bad = 1; break;
    }
    return v;
}

/* ------------------------------------------------ the call-frame program */

/* DWARF register numbers on x86-64 (the psABI's table). */
enum { DW_RBP = 6, DW_RSP = 7, DW_RA = 16 };

/* What the program says about one register: unchanged, saved at CFA + off,
 * undefined, or something this unwinder does not model. */
enum { R_SAME, R_OFFSET, R_UNDEF, R_OTHER };
typedef struct {
    uint8_t how;
    int64_t off;
} reg_rule_t;

typedef struct {
    uint64_t cfa_reg;
    int64_t cfa_off;
    int cfa_expr;        /* CFA is a DWARF expression: not modelled */
    reg_rule_t rbp, ra;
} row_t;

typedef struct {
    uint64_t code_align;
    int64_t data_align;
    uint64_t ra_reg;
    uint8_t fde_enc;
    int has_z, signal;
    const uint8_t *insns, *end;
} cie_t;

/* Skip a DWARF expression: its length, then its bytes. */
static void skip_block(rd_t *r)
{
    uint64_t len = rd_uleb(r);
    if (r->bad || len > (uint64_t)(r->end - r->p))
        r->bad = 1;
    else
        r->p += len;
}

#define REMEMBER_DEPTH 8 /* gcc nests remember_state one or two deep */

static void set_rule(row_t *row, uint64_t reg, uint64_t ra_reg, uint8_t how, int64_t off)
{
    reg_rule_t *r = reg == DW_RBP ? &row->rbp : reg == ra_reg ? &row->ra : NULL;
    if (r) {
        r->how = how;
        r->off = off;
    }
}

static void restore_rule(row_t *row, const row_t *init, uint64_t reg, uint64_t ra_reg)
{
    if (reg == DW_RBP)
        row->rbp = init->rbp;
    else if (reg == ra_reg)
        row->ra = init->ra;
}

/* Run the instructions in r on row, the location starting at loc, until
 * the location passes `target`.  init: the row after the CIE's
 * instructions (for DW_CFA_restore), NULL while running them.  0, or -1
 * on what is not modelled or malformed. */
static int run_program(rd_t *r, const cie_t *cie, row_t *row, const row_t *init, uintptr_t loc,
                       uintptr_t target)
{
    row_t saved[REMEMBER_DEPTH];
    unsigned depth = 0;
    while (r->p < r->end && !r->bad) {
        uint8_t op = (uint8_t)rd_fixed(r, 1);
        uint64_t reg, delta = 0;
        switch (op >> 6) {
        case 1: /* DW_CFA_advance_loc */
            delta = (op & 0x3f) * cie->code_align;
            goto advance;
        case 2: /* DW_CFA_offset */
            set_rule(row, op & 0x3f, cie->ra_reg, R_OFFSET,
                     (int64_t)rd_uleb(r) * cie->data_align);
            continue;
        case 3: /* DW_CFA_restore */
            if (!init)
                return -1;
            restore_rule(row, init, op & 0x3f, cie->ra_reg);
            continue;
        default: break;
        }
        switch (op) {
        case 0x00: /* DW_CFA_nop */
            break;
        case 0x01: /* DW_CFA_set_loc */
            loc = rd_encoded(r, cie->fde_enc, 0);
            if (loc > target)
                return 0;
            break;
        case 0x02: delta = rd_fixed(r, 1) * cie->code_align; goto advance;
        case 0x03: delta = rd_fixed(r, 2) * cie->code_align; goto advance;
        case 0x04: delta = rd_fixed(r, 4) * cie->code_align; goto advance;
        case 0x05: /* DW_CFA_offset_extended */
            reg = rd_uleb(r);
            set_rule(row, reg, cie->ra_reg, R_OFFSET, (int64_t)rd_uleb(r) * cie->data_align);
            break;
        case 0x06: /* DW_CFA_restore_extended */
            reg = rd_uleb(r);
            if (!init)
                return -1;
            restore_rule(row, init, reg, cie->ra_reg);
            break;
        case 0x07: /* DW_CFA_undefined */
            set_rule(row, rd_uleb(r), cie->ra_reg, R_UNDEF, 0);
            break;
        case 0x08: /* DW_CFA_same_value */
            set_rule(row, rd_uleb(r), cie->ra_reg, R_SAME, 0);
            break;
        case 0x09: /* DW_CFA_register */
            reg = rd_uleb(r);
            (void)rd_uleb(r);
            set_rule(row, reg, cie->ra_reg, R_OTHER, 0);
            break;
        case 0x0a: /* DW_CFA_remember_state: the whole row, CFA too (as libgcc) */
            if (depth == REMEMBER_DEPTH)
                return -1;
            saved[depth++] = *row;
            break;
        case 0x0b: /* DW_CFA_restore_state */
            if (depth == 0)
                return -1;
            *row = saved[--depth];
            break;
        case 0x0c: /* DW_CFA_def_cfa */
            row->cfa_reg = rd_uleb(r);
            row->cfa_off = (int64_t)rd_uleb(r);
            row->cfa_expr = 0;
            break;
        case 0x0d: /* DW_CFA_def_cfa_register */
            row->cfa_reg = rd_uleb(r);
            row->cfa_expr = 0;
            break;
        case 0x0e: /* DW_CFA_def_cfa_offset */
            row->cfa_off = (int64_t)rd_uleb(r);
            break;
        case 0x0f: /* DW_CFA_def_cfa_expression */
            skip_block(r);
            row->cfa_expr = 1;
            break;
        case 0x10: /* DW_CFA_expression */
            reg = rd_uleb(r);
            set_rule(row, reg, cie->ra_reg, R_OTHER, 0);
            skip_block(r);
            break;
        case 0x11: /* DW_CFA_offset_extended_sf */
            reg = rd_uleb(r);
            set_rule(row, reg, cie->ra_reg, R_OFFSET, rd_sleb(r) * cie->data_align);
            break;
        case 0x12: /* DW_CFA_def_cfa_sf */
            row->cfa_reg = rd_uleb(r);
            row->cfa_off = rd_sleb(r) * cie->data_align;
            row->cfa_expr = 0;
            break;
        case 0x13: /* DW_CFA_def_cfa_offset_sf */
            row->cfa_off = rd_sleb(r) * cie->data_align;
            break;
        case 0x14: /* DW_CFA_val_offset */
            reg = rd_uleb(r);
            (void)rd_uleb(r);
            set_rule(row, reg, cie->ra_reg, R_OTHER, 0);
            break;
        case 0x15: /* DW_CFA_val_offset_sf */
            reg = rd_uleb(r);
            (void)rd_sleb(r);
            set_rule(row, reg, cie->ra_reg, R_OTHER, 0);
            break;
        case 0x16: /* DW_CFA_val_expression */
            reg = rd_uleb(r);
            set_rule(row, reg, cie->ra_reg, R_OTHER, 0);
            skip_block(r);
            break;
        case 0x2e: /* DW_CFA_GNU_args_size */
            (void)rd_uleb(r);
            break;
        case 0x2f: /* DW_CFA_GNU_negative_offset_extended */
            reg = rd_uleb(r);
            set_rule(row, reg, cie->ra_reg, R_OFFSET, -(int64_t)rd_uleb(r) * cie->data_align);
            break;
        default:
            return -1;
        }
        continue;
    advance:
        loc += delta;
        if (loc > target)
            return 0;
    }
    return r->bad ? -1 : 0;
}

/* The CIE at c: its fields, and its instructions in [insns, end).  0, or
 * -1 if it is not one this reader handles. */
static int parse_cie(const uint8_t *c, cie_t *cie)
{
    rd_t r = { c, c + 4, 0 };
    uint64_t len = rd_fixed(&r, 4);
    if (len == 0 || len >= 0xfffffff0u)
        return -1; /* a terminator, or the 64-bit format (never in .eh_frame) */
    r.end = r.p + len;
    if (rd_fixed(&r, 4) != 0)
        return -1; /* not a CIE */
    uint64_t version = rd_fixed(&r, 1);
    if (version != 1 && version != 3 && version != 4)
        return -1;
    const char *aug = (const char *)r.p;
    size_t alen = strnlen(aug, (size_t)(r.end - r.p));
    if (alen == (size_t)(r.end - r.p))
        return -1;
    r.p += alen + 1;
    if (version == 4)
        r.p += 2; /* address and segment selector sizes */
    cie->code_align = rd_uleb(&r);
    cie->data_align = rd_sleb(&r);
    cie->ra_reg = version == 1 ? rd_fixed(&r, 1) : rd_uleb(&r);
    cie->fde_enc = PE_ABSPTR;
    cie->has_z = aug[0] == 'z';
    cie->signal = 0;
    if (cie->has_z) {
        uint64_t dlen = rd_uleb(&r);
        if (r.bad || dlen > (uint64_t)(r.end - r.p))
            return -1;
        rd_t d = { r.p, r.p + dlen, 0 };
        r.p += dlen;
        for (size_t i = 1; i < alen; i++) {
            switch (aug[i]) {
            case 'R': cie->fde_enc = (uint8_t)rd_fixed(&d, 1); break;
            case 'P': {
                uint8_t enc = (uint8_t)rd_fixed(&d, 1);
                (void)rd_encoded(&d, enc & 0x7f, 1); /* skipped, never followed */
                break;
            }
            case 'L': (void)rd_fixed(&d, 1); break;
            case 'S': cie->signal = 1; break;
            case 'B': break;
            default: i = alen; break; /* the rest of the data is skipped with it */
            }
        }
        if (d.bad)
            return -1;
    } else if (alen != 0) {
        return -1; /* "eh" and other pre-'z' augmentations */
    }
    if (r.bad || cie->code_align == 0)
        return -1;
    cie->insns = r.p;
    cie->end = r.end;
    return 0;
}

/* A frame's rule: what the unwinder needs of a row. */
enum { RULE_NONE = 0, RULE_FRAME = 1, RULE_END = 2 };
typedef struct {
    int kind;        /* RULE_FRAME, RULE_END (outermost frame), RULE_NONE (refused) */
    int cfa_rbp;     /* CFA = rbp + off (else rsp + off) */
    uint32_t cfa_off;
    uint32_t rbp_slot; /* 0: rbp unchanged; k: the caller's rbp at CFA - 8k */
} rule_t;

/* The FDE of the object whose .eh_frame_hdr is hdr that covers pc: NULL
 * if none does; *refused set if the table cannot be searched. */
static const uint8_t *fde_search(const uint8_t *hdr, uintptr_t pc, int *refused)
{
    if (hdr[0] != 1) {
        *refused = 1;
        return NULL;
    }
    uint8_t count_enc = hdr[2], table_enc = hdr[3];
    rd_t r = { hdr + 4, hdr + 4 + 16, 0 };
    (void)rd_encoded(&r, hdr[1], (uintptr_t)hdr); /* .eh_frame itself: unused */
    uintptr_t count = rd_encoded(&r, count_enc, (uintptr_t)hdr);
    /* Every linker writes datarel sdata4 pairs, sorted by address. */
    if (r.bad || table_enc != (PE_DATAREL | PE_SDATA4) || count_enc == PE_OMIT) {
        *refused = 1;
        return NULL;
    }
    const uint8_t *table = r.p;
    intptr_t rel = (intptr_t)(pc - (uintptr_t)hdr);
    size_t lo = 0, hi = count;
    while (lo < hi) { /* the last entry whose start is <= pc */
        size_t mid = lo + (hi - lo) / 2;
        int32_t start;
        memcpy(&start, table + 8 * mid, 4);
        if ((intptr_t)start <= rel)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    int32_t fde;
    memcpy(&fde, table + 8 * (lo - 1) + 4, 4);
    return hdr + fde;
}

/* The rule for return address ra in the object whose .eh_frame_hdr is hdr. */
static rule_t rule_from_tables(const uint8_t *hdr, uintptr_t ra)
{
    rule_t out = { RULE_NONE, 0, 0, 0 };
    uintptr_t pc = ra - 1; /* the call: ra may be the next function's first byte */
    int refused = 0;
    const uint8_t *f = fde_search(hdr, pc, &refused);
    if (f == NULL) {
        out.kind = refused ? RULE_NONE : RULE_END;
        return out;
    }
    rd_t r = { f, f + 8, 0 };
    uint64_t len = rd_fixed(&r, 4);
    if (len == 0 || len >= 0xfffffff0u)
        return out;
    r.end = r.p + len;
    const uint8_t *id_at = r.p;
    uint32_t id = (uint32_t)rd_fixed(&r, 4);
    cie_t cie;
    if (id == 0 || parse_cie(id_at - id, &cie) != 0 || cie.signal || cie.ra_reg != DW_RA)
        return out;
    uintptr_t begin = rd_encoded(&r, cie.fde_enc, 0);
    uintptr_t range = rd_encoded(&r, cie.fde_enc & 0x0f, 0);
    if (r.bad)
        return out;
    if (pc < begin || pc - begin >= range) {
        out.kind = RULE_END; /* in a gap of the table: as libgcc, the end */
        return out;
    }
    if (cie.has_z) {
        uint64_t alen = rd_uleb(&r);
        if (r.bad || alen > (uint64_t)(r.end - r.p))
            return out;
        r.p += alen;
    }
    row_t init = { DW_RSP, 8, 0, { R_SAME, 0 }, { R_SAME, 0 } };
    rd_t ci = { cie.insns, cie.end, 0 };
    if (run_program(&ci, &cie, &init, NULL, 0, UINTPTR_MAX) != 0)
        return out;
    row_t row = init;
    if (run_program(&r, &cie, &row, &init, begin, pc) != 0)
        return out;
    if (row.ra.how == R_UNDEF) {
        out.kind = RULE_END;
        return out;
    }
    if (row.cfa_expr || (row.cfa_reg != DW_RSP && row.cfa_reg != DW_RBP) ||
        row.cfa_off <= 0 || row.cfa_off >= (1 << 30) || row.ra.how != R_OFFSET || row.ra.off != -8)
        return out;
    if (row.rbp.how == R_OFFSET) {
        if (row.rbp.off >= 0 || (-row.rbp.off) % 8 != 0 || -row.rbp.off >= (1 << 30))
            return out;
        out.rbp_slot = (uint32_t)(-row.rbp.off / 8);
    } else if (row.rbp.how != R_SAME) {
        return out;
    }
    out.kind = RULE_FRAME;
    out.cfa_rbp = row.cfa_reg == DW_RBP;
    out.cfa_off = (uint32_t)row.cfa_off;
    return out;
}

/* ------------------------------------------------------------- the cache */

/* A slot: ra >> CACHE_SHIFT (36 bits) | rbp_slot (10) | cfa_off (15) |
 * cfa_rbp (1) | kind (2).  0 is empty (no return address is that low). */
#define CACHE_SHIFT 12
#define CACHE_SLOTS ((size_t)1 << CACHE_SHIFT)
_Static_assert(CACHE_SLOTS == EBB_UNWIND_CACHE_SLOTS, "the slot's tag is ra's bits above the index");
#define TAG_SHIFT 28
static _Atomic uint64_t cache[CACHE_SLOTS];

static int cacheable(uintptr_t ra, const rule_t *r)
{
    return ((uint64_t)ra >> 48) == 0 && r->kind != RULE_NONE && r->cfa_off < (1u << 15) &&
           r->rbp_slot < (1u << 10);
}

static uint64_t encode(uintptr_t ra, const rule_t *r)
{
    return ((uint64_t)ra >> CACHE_SHIFT) << TAG_SHIFT | (uint64_t)r->rbp_slot << 18 |
           (uint64_t)r->cfa_off << 3 | (uint64_t)r->cfa_rbp << 2 | (uint64_t)r->kind;
}

static void decode(uint64_t w, rule_t *r)
{
    r->kind = (int)(w & 3);
    r->cfa_rbp = (int)(w >> 2 & 1);
    r->cfa_off = (uint32_t)(w >> 3 & 0x7fff);
    r->rbp_slot = (uint32_t)(w >> 18 & 0x3ff);
}

static int permanent_has(uintptr_t ra)
{
    for (unsigned i = 0; i < npermanent; i++)
        if (ra > permanent[i].lo && ra <= permanent[i].hi)
            return 1;
    return 0;
}

/* The rule for return address ra: from the cache, else from the tables.
 * *lasting is cleared unless the rule is one of a permanent object's, which
 * no dlclose can change (the memo below keeps only such unwinds). */
static rule_t rule_for(uintptr_t ra, int *lasting)
{
    rule_t r;
    _Atomic uint64_t *slot = &cache[ra & (CACHE_SLOTS - 1)];
    uint64_t w = atomic_load_explicit(slot, memory_order_relaxed);
    if (w != 0 && (w >> TAG_SHIFT) == (uint64_t)ra >> CACHE_SHIFT) {
        decode(w, &r);
        return r;
    }
    struct ebb__dl_find_object obj;
    if (find_object((void *)(ra - 1), &obj) != 0 || obj.eh_frame == NULL) {
        r.kind = RULE_END; /* no object, or one without tables: as libgcc */
        r.cfa_rbp = 0;
        r.cfa_off = r.rbp_slot = 0;
        *lasting = 0;
        return r;
    }
    r = rule_from_tables(obj.eh_frame, ra);
    if (!permanent_has(ra))
        *lasting = 0;
    else if (cacheable(ra, &r))
        atomic_store_explicit(slot, encode(ra, &r), memory_order_relaxed);
    return r;
}

/* ---------------------------------------------------------- stack bounds */

extern void *__libc_stack_end;

static __thread uintptr_t stack_lo __attribute__((tls_model("initial-exec")));
static __thread uintptr_t stack_hi __attribute__((tls_model("initial-exec")));
/* 0 not learnt yet, 1 known, -1 cannot be known */
static __thread int stack_state __attribute__((tls_model("initial-exec")));

/* Reads above the main thread's stack top stay within this: the kernel
 * keeps at least 128 MiB (or RLIMIT_STACK, if more) free below the stack's
 * top for it to grow into, so [sp, top) is the stack itself. */
#define MAIN_STACK_SPAN ((uintptr_t)128 << 20)

static int main_thread(void)
{
    return ebb__os_thread_id() == ebb__os_pid();
}

static void learn_stack(void)
{
    int saved = errno;
    stack_state = -1;
    if (main_thread()) {
        uintptr_t top = (uintptr_t)__libc_stack_end, span = MAIN_STACK_SPAN;
        struct rlimit rl;
        if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            rl.rlim_cur > span)
            span = (uintptr_t)rl.rlim_cur;
        if (top > span) {
            stack_lo = top - span;
            stack_hi = top;
            stack_state = 1;
        }
    } else {
        pthread_attr_t attr;
        void *addr;
        size_t size;
        if (pthread_getattr_np(pthread_self(), &attr) == 0) {
            if (pthread_attr_getstack(&attr, &addr, &size) == 0 && size > 0) {
                stack_lo = (uintptr_t)addr;
                stack_hi = (uintptr_t)addr + size;
                stack_state = 1;
            }
            pthread_attr_destroy(&attr);
        }
    }
    errno = saved;
}

/* -------------------------------------------------------------- unwinding */

void ebb__os_unwind_prime(void)
{
    if (atomic_load_explicit(&unwinder_ok, memory_order_acquire))
        return;
    find_object = (find_object_fn)ebb__os_symbol("_dl_find_object");
    if (find_object == NULL)
        return;
    /* The program (its entry point), the loader, the C library (one of its
     * functions: one no sanitizer intercepts, for an interceptor is the
     * program's, and TSan's dl_iterate_phdr left the C library out: no
     * rule of it cached, no memo kept) and the object this file is in. */
    const void *anchors[PERMANENT] = {
        (const void *)getauxval(AT_ENTRY), (const void *)getauxval(AT_BASE),
        ebb__os_symbol("gnu_get_libc_version"), (const void *)(uintptr_t)&ebb__os_unwind_prime,
    };
    unsigned n = 0;
    for (unsigned i = 0; i < PERMANENT; i++) {
        struct ebb__dl_find_object obj;
        if (anchors[i] && find_object((void *)(uintptr_t)anchors[i], &obj) == 0) {
            permanent[n].lo = (uintptr_t)obj.map_start;
            permanent[n].hi = (uintptr_t)obj.map_end;
            n++;
        }
    }
    npermanent = n;
    atomic_store_explicit(&unwinder_ok, 1, memory_order_release);
}

static int refuse(void)
{
    atomic_fetch_add_explicit(&unwind_refused, 1, memory_order_relaxed);
    return -1;
}

static _Atomic unsigned long memo_hits;

unsigned long ebb__os_unwind_memo_hits(void)
{
    return atomic_load_explicit(&memo_hits, memory_order_relaxed);
}

/* Every word the memo's unwind read still holds what it held, each
 * address checked against this thread's stack first (a memo is only ever
 * the owner's, but a check costs two compares).  Then, from the same
 * registers, with rules that cannot change, the unwind would go the same
 * way: its answer stands. */
static int memo_holds(const ebb__unwind_memo_t *m, uintptr_t sp, uintptr_t hi)
{
    for (int i = 0; i < m->reads; i++) {
        uintptr_t at = m->at[i], now;
        if (at < sp || at > hi - 8)
            return 0;
        memcpy(&now, (const void *)at, sizeof now);
        if (now != m->seen[i])
            return 0;
    }
    return 1;
}

/* Note a word the unwind read; its index in the memo, -1 if none kept. */
static int memo_read(ebb__unwind_memo_t *m, uintptr_t at, uintptr_t value)
{
    if (m == NULL || m->reads >= 2 * EBB__UNWIND_MEMO_FRAMES)
        return -1;
    m->at[m->reads] = at;
    m->seen[m->reads] = value;
    return m->reads++;
}

/* Keep only the reads marked in `needed`: a saved rbp that no rule used to
 * find a frame is a register the program used for something else (a loop
 * counter, a pointer), different at every call from the same place. */
static void memo_keep(ebb__unwind_memo_t *m, const unsigned char *needed)
{
    int k = 0;
    for (int i = 0; i < m->reads; i++)
        if (needed[i]) {
            m->at[k] = m->at[i];
            m->seen[k] = m->seen[i];
            k++;
        }
    m->reads = k;
}

/* The unwind itself, from a frame that keeps a frame pointer (fp: saved
 * rbp, then the return address, then the caller's stack). */
static inline __attribute__((always_inline)) int unwind_from(const uintptr_t *fp, void **pcs,
                                                              int max, ebb__unwind_memo_t *m,
                                                              int may_allocate)
{
    if (!atomic_load_explicit(&unwinder_ok, memory_order_acquire))
        return -1;
    uintptr_t sp = (uintptr_t)(fp + 2), rbp = fp[0], ra = fp[1];
    if (__builtin_expect(stack_state == 0, 0)) {
        if (!may_allocate && !main_thread())
            return -1; /* learning this thread's stack would allocate */
        learn_stack();
    }
    uintptr_t hi = stack_hi;
    if (stack_state < 0 || sp < stack_lo || sp >= hi)
        return refuse();
    if (m && max > EBB__UNWIND_MEMO_FRAMES) {
        m->sp = 0;
        m->note = 0;
        m = NULL;
    }
    if (m) {
        if (m->sp == sp && m->ra == ra && m->max == max && (m->rbp == rbp || !m->rbp_used) &&
            memo_holds(m, sp, hi)) {
            memcpy(pcs, m->pcs, (size_t)m->n * sizeof *pcs);
            atomic_fetch_add_explicit(&memo_hits, 1, memory_order_relaxed);
            return m->n;
        }
        m->sp = 0; /* empty until this unwind ends well */
        m->reads = 0;
        m->note = 0;
    }
    uintptr_t sp0 = sp, rbp0 = rbp, ra0 = ra;
    int n = 0, lasting = 1, full = 0;
    /* Where rbp's value came from: -2 the register as we started, else the
     * memo's read it came from (-1: none kept); and whether each read, or
     * the starting rbp, located a frame (those alone are the memo's key). */
    int rbp_from = -2, rbp_used = 0;
    unsigned char needed[2 * EBB__UNWIND_MEMO_FRAMES];
    while (n < max && ra != 0) {
        pcs[n++] = (void *)ra;
        rule_t r = rule_for(ra, &lasting);
        if (r.kind == RULE_END)
            break;
        if (r.kind != RULE_FRAME)
            return refuse();
        uintptr_t cfa = (r.cfa_rbp ? rbp : sp) + r.cfa_off;
        if (r.cfa_rbp) {
            if (rbp_from == -2)
                rbp_used = 1;
            else if (rbp_from >= 0)
                needed[rbp_from] = 1;
            else
                full = 1; /* the read it came from was not kept */
        }
        if (cfa < sp + 8 || cfa > hi)
            return refuse();
        uintptr_t next_ra, at = cfa - 8 * (uintptr_t)r.rbp_slot;
        memcpy(&next_ra, (const void *)(cfa - 8), sizeof next_ra);
        int i = memo_read(m, cfa - 8, next_ra);
        if (i >= 0)
            needed[i] = 1;
        else
            full = 1;
        if (r.rbp_slot) {
            if (at < sp || at > hi - 8)
                return refuse();
            memcpy(&rbp, (const void *)at, sizeof rbp);
            rbp_from = memo_read(m, at, rbp);
            if (rbp_from >= 0)
                needed[rbp_from] = 0;
        }
        sp = cfa;
        ra = next_ra;
    }
    if (m && lasting && !full) {
        memo_keep(m, needed);
        memcpy(m->pcs, pcs, (size_t)n * sizeof *pcs);
        m->n = n;
        m->max = max;
        m->rbp = rbp0;
        m->rbp_used = rbp_used;
        m->ra = ra0;
        m->sp = sp0;
    }
    return n;
}

/* Each keeps a frame pointer (asking for its frame makes the compiler keep
 * one), so the unwind starts in its caller. */
__attribute__((noinline)) int ebb__os_unwind(void **pcs, int max)
{
    return unwind_from(__builtin_frame_address(0), pcs, max, NULL, 1);
}

__attribute__((noinline)) int ebb__os_unwind_memo(void **pcs, int max, ebb__unwind_memo_t *memo)
{
    return unwind_from(__builtin_frame_address(0), pcs, max, memo, 1);
}

__attribute__((noinline)) int ebb__os_unwind_no_alloc(void **pcs, int max)
{
    return unwind_from(__builtin_frame_address(0), pcs, max, NULL, 0);
}

#else /* !OWN_UNWINDER */

void ebb__os_unwind_prime(void)
{
}

int ebb__os_unwind(void **pcs, int max)
{
    (void)pcs;
    (void)max;
    return -1;
}

int ebb__os_unwind_memo(void **pcs, int max, ebb__unwind_memo_t *memo)
{
    (void)memo;
    return ebb__os_unwind(pcs, max);
}

int ebb__os_unwind_no_alloc(void **pcs, int max)
{
    return ebb__os_unwind(pcs, max);
}

unsigned long ebb__os_unwind_memo_hits(void)
{
    return 0;
}

#endif
