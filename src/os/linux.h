/*
 * linux.h -- what the Linux files of the OS layer share with each other.
 *
 * The layer is split by concern (primitives, the environment, /proc
 * readers, memory bounds, memory pressure, report helpers, stacks), but
 * several concerns read the same kinds of files the same way: a small text
 * file below a fixture root, a file cut into lines, a number in text, the
 * cgroup the process lives in.  Each of those has one home, named here;
 * nothing above src/os/ includes this header, so the ebb__linux_ names stay
 * private to the layer (and hidden from the shared object's symbol table).
 *
 * Like the rest of the layer, none of these allocates: they run inside the
 * first malloc, before the C library may be ready.
 */
#ifndef EBB_OS_LINUX_H
#define EBB_OS_LINUX_H

#include <stddef.h>
#include <stdint.h>

#define EBB__LINUX_PRIVATE __attribute__((visibility("hidden")))

/* Longest path below a root that the readers handle (cgroup paths are the
 * long ones); a longer one is not read. */
#define EBB__LINUX_PATH 1024
/* Size of a line reader's buffer: no line ebb parses is near it, so a
 * longer one (an overlay mount's options) is skipped or cut. */
#define EBB__LINUX_LINE 1024

/* ---------------------------------------------------- linux_proc.c */

/* The lowest address at or above `from`, aligned to `align` (a power of
 * two), where `size` bytes fit between the mappings /proc/self/maps lists;
 * 0 if none, or if the file cannot be read. */
uintptr_t ebb__linux_lowest_free(size_t size, size_t align, uintptr_t from) EBB__LINUX_PRIVATE;

/* out = a b c, if it fits: 1, else 0 (out then unspecified). */
int ebb__linux_join3(char *out, size_t len, const char *a, const char *b, const char *c)
    EBB__LINUX_PRIVATE;
/* open(root path, flags | O_CLOEXEC): a descriptor, or -1 with errno set
 * (ENAMETOOLONG when root and path together are 2 * EBB__LINUX_PATH bytes
 * or more). */
int ebb__linux_open_below(const char *root, const char *path, int flags) EBB__LINUX_PRIVATE;
/* Up to len - 1 bytes of root/path into buf, NUL-terminated: the length
 * read, or -1 if the file cannot be read. */
long ebb__linux_read_text(const char *root, const char *path, char *buf, size_t len)
    EBB__LINUX_PRIVATE;
/* The process runs under a seccomp filter (or /proc cannot say): a system
 * call the filter does not know may kill it, so only long-standing calls
 * are made.  Allocates nothing. */
int ebb__linux_seccomp_filtered(void) EBB__LINUX_PRIVATE;

/* How ebb__linux_read_lines cuts a file into lines. */
typedef struct {
    char end;        /* the byte that ends a line: '\n', or '\0' for the
                      * NUL-separated /proc files (environ) */
    int cut_long;    /* a line longer than `longest`: 1 passes its first
                      * `longest` bytes (for lines that lead with what is
                      * wanted), 0 skips it */
    size_t longest;  /* the longest line passed whole, below EBB__LINUX_LINE */
} ebb__linux_split_t;

/* Call fn on each line of root/path (its end byte removed, NUL-terminated,
 * writable) until fn returns nonzero; -1 if the file cannot be opened, else
 * 0.  A last line without its newline still counts; a last NUL-separated
 * entry without its NUL was cut short, and is dropped. */
int ebb__linux_read_lines(const char *root, const char *path, const ebb__linux_split_t *how,
                          int (*fn)(char *, void *), void *ctx) EBB__LINUX_PRIVATE;

/* The common case: newline-ended lines, long ones skipped. */
static inline int ebb__linux_each_line(const char *root, const char *path,
                                       int (*fn)(char *, void *), void *ctx)
{
    const ebb__linux_split_t lines = { '\n', 0, EBB__LINUX_LINE - 1 };
    return ebb__linux_read_lines(root, path, &lines, fn, ctx);
}

/* Digits after optional blanks: the number and the text after it, or NULL
 * (no digits, or more than 64 bits). */
const char *ebb__linux_scan_u64(const char *s, uint64_t *out) EBB__LINUX_PRIVATE;
/* The whole text is one number (then only white space): 1 if so. */
int ebb__linux_parse_u64(const char *s, uint64_t *out) EBB__LINUX_PRIVATE;

/* --------------------------------------------------- linux_limits.c */

/* Where the process's cgroups are; index 0 is the v1 memory hierarchy, 1
 * the v2 (unified) one.  Every string is "" when not found. */
typedef struct {
    char path[2][EBB__LINUX_PATH]; /* the cgroup, from /proc/self/cgroup */
    char dir[2][EBB__LINUX_PATH];  /* its directory, once a mount shows it */
    size_t mount_len[2];           /* dir[i][0 .. mount_len) is the mount point */
} ebb__linux_cgroup_t;

/* Find the process's cgroups and their directories below root. */
void ebb__linux_cgroup_find(const char *root, ebb__linux_cgroup_t *f) EBB__LINUX_PRIVATE;
/* Cut dir, a cgroup directory *len bytes long, to its parent's directory:
 * 1, or 0 (dir unchanged) when it is the mount point already. */
int ebb__linux_cgroup_parent(char *dir, size_t *len, size_t mount_len) EBB__LINUX_PRIVATE;
/* The limit in a memory.max or memory.limit_in_bytes file, if it states
 * one ("max", and v1's values from 2^62 up, do not). */
int ebb__linux_cgroup_value(const char *root, const char *path, uint64_t *out)
    EBB__LINUX_PRIVATE;

#endif /* EBB_OS_LINUX_H */
