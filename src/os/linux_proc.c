/*
 * linux_proc.c -- reading /proc (and the cgroup file system) without malloc.
 *
 * Much of what ebb must know about its process is only written down as
 * text in a pseudo-file: what it uses (statm), how many threads it has
 * (stat), where its address space is free (maps), its cgroups, the
 * system's memory and pressure.  The readers that understand that text
 * live here, once, for every other file of the layer (linux.h names them);
 * so do the three answers that are nothing but one such read.
 *
 * Why it is shaped so: this runs inside the process's first malloc and
 * when memory has run out, so nothing may allocate and stdio is out of the
 * question.  Files are read with open and read into buffers on the stack,
 * and a file is cut into lines as it streams through a fixed line buffer
 * (lines too long for it are skipped or cut, as the caller says).  Every
 * path is read below a root ("" for the real system) so that tests can
 * point the readers at a fixture tree.  errno is the caller's business:
 * the public functions here leave it as they found it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"
#include "linux.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int ebb__linux_join3(char *out, size_t len, const char *a, const char *b, const char *c)
{
    size_t na = strlen(a), nb = strlen(b), nc = strlen(c);
    if (na + nb + nc >= len)
        return 0;
    memcpy(out, a, na);
    memcpy(out + na, b, nb);
    memcpy(out + na + nb, c, nc);
    out[na + nb + nc] = '\0';
    return 1;
}

int ebb__linux_open_below(const char *root, const char *path, int flags)
{
    char full[2 * EBB__LINUX_PATH];
    if (!ebb__linux_join3(full, sizeof full, root, path, "")) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(full, flags | O_CLOEXEC);
}

long ebb__linux_read_text(const char *root, const char *path, char *buf, size_t len)
{
    int fd = ebb__linux_open_below(root, path, O_RDONLY);
    if (fd < 0)
        return -1;
    size_t got = 0;
    while (got + 1 < len) {
        ssize_t n = read(fd, buf + got, len - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return (long)got;
}

int ebb__linux_read_lines(const char *root, const char *path, const ebb__linux_split_t *how,
                          int (*fn)(char *, void *), void *ctx)
{
    int fd = ebb__linux_open_below(root, path, O_RDONLY);
    if (fd < 0)
        return -1;
    char chunk[1024], line[EBB__LINUX_LINE];
    size_t n = 0, longest = how->longest < sizeof line ? how->longest : sizeof line - 1;
    int too_long = 0, stop = 0;
    ssize_t got;
    while (!stop && ((got = read(fd, chunk, sizeof chunk)) > 0 || (got < 0 && errno == EINTR))) {
        for (ssize_t i = 0; i < got && !stop; i++) {
            if (chunk[i] != how->end) {
                if (n < longest)
                    line[n++] = chunk[i];
                else
                    too_long = 1;
                continue;
            }
            line[n] = '\0';
            if (!too_long || how->cut_long)
                stop = fn(line, ctx);
            n = 0;
            too_long = 0;
        }
    }
    /* A text file's last line may lack its newline; a NUL-separated entry
     * without its NUL is one the file cut short. */
    if (!stop && how->end == '\n' && n > 0 && (!too_long || how->cut_long)) {
        line[n] = '\0';
        fn(line, ctx);
    }
    close(fd);
    return 0;
}

const char *ebb__linux_scan_u64(const char *s, uint64_t *out)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s < '0' || *s > '9')
        return NULL;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return NULL;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return s;
}

int ebb__linux_parse_u64(const char *s, uint64_t *out)
{
    s = ebb__linux_scan_u64(s, out);
    if (s == NULL)
        return 0;
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    return *s == '\0';
}

/* ------------------------------------------------ answers from /proc */

int ebb__os_usage(const char *root, ebb__os_usage_t *out)
{
    int saved = errno;
    char buf[256];
    /* Pages: size resident shared text lib data dirty */
    uint64_t f[6];
    const char *s = buf;
    int ok = ebb__linux_read_text(root, "/proc/self/statm", buf, sizeof buf) > 0;
    for (int i = 0; ok && i < 6; i++)
        ok = (s = ebb__linux_scan_u64(s, &f[i])) != NULL;
    uint64_t page = ebb__os_page_size();
    if (ok && f[0] <= UINT64_MAX / page) {
        out->size = f[0] * page;
        out->resident = f[1] * page;
        out->data = f[5] * page;
    }
    errno = saved;
    return ok && f[0] <= UINT64_MAX / page;
}

size_t ebb__os_cmdline(char *buf, size_t len)
{
    int saved = errno;
    long n = len > 0 ? ebb__linux_read_text("", "/proc/self/cmdline", buf, len) : 0;
    errno = saved;
    if (n <= 0) {
        if (len > 0)
            buf[0] = '\0';
        return 0;
    }
    size_t end = (size_t)n;
    while (end > 0 && buf[end - 1] == '\0')
        end--;
    for (size_t i = 0; i < end; i++)
        if (buf[i] == '\0' || buf[i] == '\n')
            buf[i] = ' ';
    buf[end] = '\0';
    return end;
}

int ebb__linux_seccomp_filtered(void)
{
    int saved = errno;
    char buf[4096];
    long n = ebb__linux_read_text("", "/proc/self/status", buf, sizeof buf);
    errno = saved;
    const char *f = n > 0 ? strstr(buf, "\nSeccomp:") : NULL;
    if (f == NULL)
        return 1; /* cannot tell: as if filtered */
    f += strlen("\nSeccomp:");
    while (*f == ' ' || *f == '\t')
        f++;
    return *f != '0';
}

unsigned ebb__os_thread_count(void)
{
    int saved = errno;
    char buf[1024];
    long n = ebb__linux_read_text("", "/proc/self/stat", buf, sizeof buf);
    errno = saved;
    if (n <= 0)
        return 0;
    /* Field 20, num_threads; the command name (field 2) ends at the last ')'.
     * Field 3 is the state of the first thread, which stays in the count as
     * a zombie when it exits before the others: it is not live. */
    const char *p = strrchr(buf, ')');
    int leader_gone = p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
    for (int field = 2; p && field < 20; field++)
        p = strchr(p + 1, ' ');
    unsigned count = 0;
    for (p = p ? p + 1 : NULL; p && *p >= '0' && *p <= '9'; p++)
        count = count * 10 + (unsigned)(*p - '0');
    return count > 1 && leader_gone ? count - 1 : count;
}

static uintptr_t parse_hex(const char **s)
{
    uintptr_t v = 0;
    for (;; (*s)++) {
        char c = **s;
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                   : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16u;
        if (d == 16)
            return v;
        v = v * 16 + d;
    }
}

/* User space as the kernel hands it out: from the lowest address mmap may
 * use (vm.mmap_min_addr, 64 KiB by default) to the top of the lower half
 * (47 bits on x86-64 without 5-level paging; the whole 32-bit space less
 * the kernel's part is not knowable here, so 3 GiB, the usual split). */
#define GAP_LOW ((uintptr_t)0x10000)
#if UINTPTR_MAX > 0xffffffffu
#define GAP_HIGH ((uintptr_t)1 << 47)
#else
#define GAP_HIGH ((uintptr_t)0xc0000000u)
#endif

typedef struct {
    uintptr_t prev_end, best_start;
    size_t best;
} gap_scan_t;

static void gap_see(gap_scan_t *g, uintptr_t start, uintptr_t end)
{
    if (start >= GAP_HIGH)
        return; /* [vsyscall] and the like: not user space */
    if (start > g->prev_end && start - g->prev_end > g->best) {
        g->best = start - g->prev_end;
        g->best_start = g->prev_end;
    }
    if (end > g->prev_end)
        g->prev_end = end;
}

/* One line of /proc/self/maps: "start-end perms ..." (hex addresses). */
static int gap_line(char *line, void *ctx)
{
    const char *s = line;
    uintptr_t lo = parse_hex(&s);
    if (*s == '-') {
        s++;
        gap_see(ctx, lo, parse_hex(&s));
    }
    return 0;
}

/* The lowest aligned place for `size` bytes at or above `from`, among the
 * mappings as /proc/self/maps lists them (in address order). */
typedef struct {
    uintptr_t align, size, at, found;
} low_scan_t;

static uintptr_t align_up(uintptr_t a, uintptr_t align)
{
    uintptr_t up = (a + align - 1) & ~(align - 1);
    return up < a ? 0 : up; /* 0: past the top */
}

/* The next mapping is [start, end): the candidate fits before it, or moves
 * past it.  1 when the scan is over. */
static int low_see(low_scan_t *l, uintptr_t start, uintptr_t end)
{
    if (l->at == 0)
        return 1; /* past the top: nothing fits */
    if (start >= l->at && start - l->at >= l->size) {
        l->found = l->at;
        return 1;
    }
    if (end > l->at)
        l->at = align_up(end, l->align);
    return 0;
}

static int low_line(char *line, void *ctx)
{
    const char *s = line;
    uintptr_t lo = parse_hex(&s);
    if (*s != '-')
        return 0;
    s++;
    return low_see(ctx, lo, parse_hex(&s));
}

uintptr_t ebb__linux_lowest_free(size_t size, size_t align, uintptr_t from)
{
    int saved = errno;
    low_scan_t l = { align, size, align_up(from, align), 0 };
    const ebb__linux_split_t cut = { '\n', 1, EBB__LINUX_LINE - 1 };
    int read = ebb__linux_read_lines("", "/proc/self/maps", &cut, low_line, &l) == 0;
    errno = saved;
    if (!read)
        return 0;
    if (!l.found)
        low_see(&l, GAP_HIGH, GAP_HIGH);
    return l.found;
}

size_t ebb__os_largest_gap(uintptr_t *start)
{
    int saved = errno;
    gap_scan_t g = { GAP_LOW, 0, 0 };
    /* A line with a long file name still leads with its addresses. */
    const ebb__linux_split_t cut = { '\n', 1, EBB__LINUX_LINE - 1 };
    int read = ebb__linux_read_lines("", "/proc/self/maps", &cut, gap_line, &g) == 0;
    errno = saved;
    if (!read)
        return 0;
    gap_see(&g, GAP_HIGH - 1, GAP_HIGH - 1);
    *start = g.best_start;
    return g.best;
}

/* ----------------------------------------------- resident memory, by mapping */

/* One header line of smaps, "start-end perms offset dev inode   name", read
 * into the mapping it opens; its Rss line follows.  A thread stack is told
 * by its neighbour: glibc maps a thread's stack and guard as one mapping and
 * makes the guard, at the low end, inaccessible, so the stack is the
 * writable anonymous mapping that starts where an inaccessible anonymous one
 * ends (threads' stacks that glibc keeps cached for reuse look the same). */
typedef struct {
    void (*fn)(const ebb__os_vma_t *, void *);
    void *ctx;
    ebb__os_vma_t cur;
    int open;                 /* cur is a mapping whose lines are being read */
    uintptr_t guard_end;      /* end of the last inaccessible anonymous mapping */
} vma_scan_t;

static const char *skip_field(const char *s)
{
    while (*s && *s != ' ')
        s++;
    while (*s == ' ')
        s++;
    return s;
}

static int vma_kind(const char *perms, const char *name, uintptr_t start, vma_scan_t *v)
{
    int anon = name[0] == '\0' || strncmp(name, "[anon", 5) == 0;
    if (!anon) {
        if (name[0] != '[')
            return EBB__OS_VMA_FILE;
        if (strcmp(name, "[heap]") == 0)
            return EBB__OS_VMA_HEAP;
        return strncmp(name, "[stack", 6) == 0 ? EBB__OS_VMA_STACK : EBB__OS_VMA_OTHER;
    }
    if (perms[0] == '-' && perms[1] == '-' && perms[2] == '-')
        return EBB__OS_VMA_ANON; /* a guard, or space reserved: never resident */
    return perms[1] == 'w' && start == v->guard_end ? EBB__OS_VMA_THREAD_STACK : EBB__OS_VMA_ANON;
}

static void vma_flush(vma_scan_t *v)
{
    if (v->open)
        v->fn(&v->cur, v->ctx);
    v->open = 0;
}

static void vma_header(vma_scan_t *v, const char *line)
{
    const char *s = line;
    uintptr_t start = parse_hex(&s), end;
    if (*s++ != '-')
        return;
    end = parse_hex(&s);
    if (*s++ != ' ')
        return;
    const char *perms = s;
    s = skip_field(perms);                   /* to the offset */
    s = skip_field(skip_field(skip_field(s))); /* past offset, device, inode */
    vma_flush(v);
    v->cur = (ebb__os_vma_t){ .start = start, .end = end, .kind = vma_kind(perms, s, start, v) };
    v->open = 1;
    int anon = s[0] == '\0' || strncmp(s, "[anon", 5) == 0;
    if (anon && perms[0] == '-' && perms[1] == '-' && perms[2] == '-')
        v->guard_end = end;
}

static int vma_line(char *line, void *ctx)
{
    vma_scan_t *v = ctx;
    char c = line[0];
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) {
        vma_header(v, line);
        return 0;
    }
    uint64_t kb;
    if (v->open && strncmp(line, "Rss:", 4) == 0 && ebb__linux_scan_u64(line + 4, &kb))
        v->cur.rss = kb * 1024;
    return 0;
}

int ebb__os_vmas(const char *root, void (*fn)(const ebb__os_vma_t *, void *), void *ctx)
{
    int saved = errno;
    vma_scan_t v = { .fn = fn, .ctx = ctx };
    /* A header with a long file name still leads with what is parsed. */
    const ebb__linux_split_t cut = { '\n', 1, EBB__LINUX_LINE - 1 };
    int read = ebb__linux_read_lines(root, "/proc/self/smaps", &cut, vma_line, &v) == 0;
    vma_flush(&v);
    errno = saved;
    return read;
}

static int rollup_line(char *line, void *ctx)
{
    uint64_t kb;
    if (strncmp(line, "Rss:", 4) != 0 || !ebb__linux_scan_u64(line + 4, &kb))
        return 0;
    *(uint64_t *)ctx = kb * 1024;
    return 1;
}

int ebb__os_rss(const char *root, uint64_t *rss)
{
    int saved = errno;
    uint64_t got = UINT64_MAX;
    int read = ebb__linux_each_line(root, "/proc/self/smaps_rollup", rollup_line, &got) == 0;
    errno = saved;
    if (!read || got == UINT64_MAX)
        return 0;
    *rss = got;
    return 1;
}
