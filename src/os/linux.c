/*
 * linux.c -- the OS layer for Linux (glibc or musl), 64- and 32-bit.
 *
 * Only this file calls mmap, munmap, madvise, mremap, brk, futex, poll and
 * write, reads the /proc and cgroup files that bound the process's memory,
 * and opens the ones that report memory pressure.  It keeps errno as the caller left it, because free() must preserve errno and
 * the layers above should not have to think about it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"

#include <errno.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <link.h>
#include <poll.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

size_t ebb__os_page_size(void)
{
    static size_t cached;
    if (cached == 0) {
        long v = sysconf(_SC_PAGESIZE);
        cached = v > 0 ? (size_t)v : 4096;
    }
    return cached;
}

unsigned ebb__os_cpu_count(void)
{
    cpu_set_t set;
    CPU_ZERO(&set); /* the kernel writes only its own mask's bytes */
    /* The raw system call: glibc's wrapper is fine too, but this one is sure
     * not to allocate and also answers before the library is set up. */
    long n = syscall(SYS_sched_getaffinity, 0, sizeof set, &set);
    if (n <= 0)
        return 1;
    unsigned count = (unsigned)CPU_COUNT(&set);
    return count ? count : 1;
}

#if EBB_DEBUG >= 1
__attribute__((visibility("hidden"))) _Atomic long ebb__os_fail_after = -1;

static int injected_failure(void)
{
    long n = atomic_load_explicit(&ebb__os_fail_after, memory_order_relaxed);
    while (n > 0 && !atomic_compare_exchange_weak_explicit(&ebb__os_fail_after, &n, n - 1,
                                                           memory_order_relaxed, memory_order_relaxed)) {
    }
    return n == 0;
}
#else
#define injected_failure() 0
#endif

void *ebb__os_map(size_t size)
{
    if (injected_failure())
        return NULL;
    int saved = errno;
    /* No MAP_NORESERVE: the kernel's overcommit check must be able to refuse
     * an impossible request here, as a clean NULL, rather than let it succeed
     * and kill the process when the pages are touched. */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    errno = saved;
    return p == MAP_FAILED ? NULL : p;
}

void *ebb__os_map_aligned(size_t size, size_t align)
{
    size_t page = ebb__os_page_size();
    if (align <= page)
        return ebb__os_map(size);
    if (size + align < size)
        return NULL;
    /* Map size+align, then give back the unaligned head and the tail. */
    size_t over = size + align - page;
    uint8_t *raw = ebb__os_map(over);
    if (raw == NULL)
        return NULL;
    uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = start - (uintptr_t)raw;
    size_t tail = over - head - size;
    if (head)
        ebb__os_unmap(raw, head);
    if (tail)
        ebb__os_unmap((void *)(start + size), tail);
    return (void *)start;
}

/* Since Linux 4.17; an older kernel ignores the flag and treats the address
 * as a hint, which ebb__os_map_at handles by checking where it landed. */
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

void *ebb__os_map_at(void *addr, size_t size)
{
    if (injected_failure())
        return NULL;
    int saved = errno;
    /* Never MAP_FIXED: it would silently replace whatever lives there. */
    void *p = mmap(addr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != MAP_FAILED && p != addr) {
        munmap(p, size); /* an old kernel put it elsewhere */
        p = MAP_FAILED;
    }
    errno = saved;
    return p == MAP_FAILED ? NULL : p;
}

uintptr_t ebb__os_program_break(void)
{
    int saved = errno;
    /* The raw call: brk(0) changes nothing and answers the current break,
     * without the C library's sbrk state (which may not be set up yet). */
    long brk = syscall(SYS_brk, 0);
    errno = saved;
    /* Through unsigned long: a 32-bit break above 2 GiB is a negative long. */
    return brk == -1 ? 0 : (uintptr_t)(unsigned long)brk;
}

uintptr_t ebb__os_image_end(void)
{
    /* The program headers the kernel mapped, found through the auxiliary
     * vector: no system call, no allocation, ready before the C library. */
    const ElfW(Phdr) *ph = (const ElfW(Phdr) *)getauxval(AT_PHDR);
    unsigned long n = getauxval(AT_PHNUM);
    if (ph == NULL || n == 0)
        return 0;
    uintptr_t bias = 0, end = 0;
    int have_bias = 0;
    for (unsigned long i = 0; i < n; i++)
        if (ph[i].p_type == PT_PHDR) {
            bias = (uintptr_t)ph - (uintptr_t)ph[i].p_vaddr; /* where a PIE was loaded */
            have_bias = 1;
        }
    if (!have_bias)
        return 0; /* no PT_PHDR: the load address cannot be told apart */
    for (unsigned long i = 0; i < n; i++)
        if (ph[i].p_type == PT_LOAD && bias + ph[i].p_vaddr + ph[i].p_memsz > end)
            end = bias + (uintptr_t)(ph[i].p_vaddr + ph[i].p_memsz);
    return end;
}

void ebb__os_unmap(void *p, size_t size)
{
    int saved = errno;
    munmap(p, size);
    errno = saved;
}

void ebb__os_purge(void *p, size_t size)
{
    int saved = errno;
    madvise(p, size, MADV_DONTNEED);
    errno = saved;
}

void ebb__os_purge_lazy(void *p, size_t size)
{
#ifdef MADV_FREE
    int saved = errno;
    int rc = madvise(p, size, MADV_FREE);
    errno = saved;
    if (rc == 0)
        return;
#endif
    ebb__os_purge(p, size); /* kernel before 4.5: no MADV_FREE */
}

void *ebb__os_remap(void *p, size_t old_size, size_t new_size, int may_move)
{
    if (new_size > old_size && injected_failure())
        return NULL;
    int saved = errno;
    void *q = mremap(p, old_size, new_size, may_move ? MREMAP_MAYMOVE : 0);
    errno = saved;
    return q == MAP_FAILED ? NULL : q;
}

void ebb__os_write_diag(const char *s, size_t n)
{
    int saved = errno;
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            break;
        }
        s += w;
        n -= (size_t)w;
    }
    errno = saved;
}

_Noreturn void ebb__os_abort(void)
{
    /* Avoid abort()'s stdio flushing: the heap may be what is broken. */
    raise(SIGABRT);
    _exit(127);
}

/* The environment entry "NAME=value" is the variable `name`. */
static int env_is(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

static int copy_value(const char *entry, const char *name, char *buf, size_t len)
{
    if (!env_is(entry, name))
        return 0;
    const char *v = entry + strlen(name) + 1;
    size_t vlen = strlen(v);
    if (vlen >= len)
        vlen = len - 1;
    memcpy(buf, v, vlen);
    buf[vlen] = '\0';
    return 1;
}

/* Early in a preloaded process `environ` may not be set yet; the kernel's
 * copy of the initial environment is always there. */
static int getenv_from_proc(const char *name, char *buf, size_t len)
{
    int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char chunk[4096], entry[512];
    size_t elen = 0;
    int found = 0, overflow = 0;
    ssize_t n;
    while (!found && (n = read(fd, chunk, sizeof chunk)) > 0) {
        for (ssize_t i = 0; i < n && !found; i++) {
            if (chunk[i] != '\0') {
                if (elen + 1 < sizeof entry)
                    entry[elen++] = chunk[i];
                else
                    overflow = 1;
                continue;
            }
            entry[elen] = '\0';
            if (!overflow)
                found = copy_value(entry, name, buf, len);
            elen = 0;
            overflow = 0;
        }
    }
    close(fd);
    return found;
}

int ebb__os_getenv(const char *name, char *buf, size_t len)
{
    if (len == 0)
        return 0;
    int saved = errno;
    int found = 0;
    if (environ != NULL) {
        for (char **e = environ; *e != NULL && !found; e++)
            found = copy_value(*e, name, buf, len);
    } else {
        found = getenv_from_proc(name, buf, len);
    }
    errno = saved;
    return found;
}

void ebb__os_env_remove(const char *name)
{
    if (environ == NULL)
        return;
    char **out = environ;
    for (char **e = environ; *e != NULL; e++)
        if (!env_is(*e, name))
            *out++ = *e;
    *out = NULL;
}

/* The entry [s, end) names `lib`: equal to it, or a path ending in /lib. */
static int names_lib(const char *s, const char *end, const char *lib)
{
    size_t n = strlen(lib), len = (size_t)(end - s);
    return len >= n && memcmp(end - n, lib, n) == 0 && (len == n || end[-n - 1] == '/');
}

void ebb__os_env_unpreload(const char *lib)
{
    if (environ == NULL)
        return;
    for (char **e = environ; *e != NULL; e++) {
        if (!env_is(*e, "LD_PRELOAD"))
            continue;
        /* Entries are separated by colons or spaces (ld.so(8)). */
        char *out = *e + sizeof "LD_PRELOAD";
        const char *in = out;
        int first = 1;
        while (*in) {
            while (*in == ':' || *in == ' ')
                in++;
            const char *end = in;
            while (*end && *end != ':' && *end != ' ')
                end++;
            if (end > in && !names_lib(in, end, lib)) {
                if (!first)
                    *out++ = ':';
                memmove(out, in, (size_t)(end - in));
                out += end - in;
                first = 0;
            }
            in = end;
        }
        *out = '\0';
    }
}

void *ebb__os_symbol(const char *name)
{
    return dlsym(RTLD_DEFAULT, name);
}

uint64_t ebb__os_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint32_t ebb__os_now_ms(void)
{
    struct timespec ts;
    /* The coarse clock is read from the vDSO without a system call and is
     * precise to a scheduler tick (4 ms here), enough for purge delays. */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

void ebb__os_wait(_Atomic int *word, int expected, long timeout_ms)
{
    int saved = errno;
    struct timespec ts, *tsp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, tsp, NULL, 0);
    errno = saved;
}

unsigned ebb__os_thread_count(void)
{
    int saved = errno;
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    errno = saved;
    if (n <= 0)
        return 0;
    buf[n] = '\0';
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

/* -------------------------------------------------------- memory bounds
 * The files that say what bounds this process's memory (os.h), for
 * EBB_LIMIT=auto.  They are read with open and read into stack buffers:
 * this runs at start-up, perhaps inside the process's first malloc, so
 * nothing here may allocate (the deepest call takes about 10 KiB of stack).
 * Every path is read below `root` ("" for the real system), so that tests
 * can point it at a fixture tree.
 *
 * cgroups.  /proc/self/cgroup names the process's cgroup in each hierarchy:
 * "0::/path" in the v2 (unified) one, "N:ctl,ctl:/path" in a v1 one; the v1
 * hierarchy that matters is the one whose controllers include memory.
 * /proc/self/mountinfo says where each is mounted (a cgroup2 file system, or
 * a cgroup one whose super options name memory), and from where: a mount
 * shows the hierarchy from its root field down, so the cgroup's directory is
 * the mount point plus the part of the path below that root.  On a host, and
 * in a container with its own cgroup namespace, the root is "/" (paths and
 * mounts are both relative to the namespace's root); a container sharing the
 * host's namespace with its cgroup bind-mounted sees root "/docker/<id>" and
 * path "/docker/<id>/...".  A path outside the mount's root (root "/.." in a
 * namespace entered after the mount was made) cannot be found, and that
 * hierarchy is skipped.  Limits are read from the cgroup's directory up to
 * the mount point, since a parent's limit binds its children; cgroup v1 also
 * states the smallest over all ancestors, those above the mount included, as
 * hierarchical_memory_limit in memory.stat.  "max" (v2) and values from 2^62
 * up (v1 writes 2^63 - 4096 for none) mean no limit.
 */

#define BOUND_PATH 1024 /* longest cgroup path handled; longer ones are skipped */
#define BOUND_LINE 1024 /* longest /proc line parsed; longer ones (overlay mounts'
                         * options) are skipped: no cgroup line is near it */
#define BOUND_NO_LIMIT ((uint64_t)1 << 62)

/* out = a b c, if it fits. */
static int join3(char *out, size_t len, const char *a, const char *b, const char *c)
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

static int open_below(const char *root, const char *path)
{
    char full[2 * BOUND_PATH];
    if (!join3(full, sizeof full, root, path, ""))
        return -1;
    return open(full, O_RDONLY | O_CLOEXEC);
}

/* Up to len - 1 bytes of root/path into buf, NUL-terminated: the length
 * read, or -1 if the file cannot be read. */
static long read_text(const char *root, const char *path, char *buf, size_t len)
{
    int fd = open_below(root, path);
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

/* What a reader of lines does with one longer than BOUND_LINE - 1 bytes. */
enum { LONG_LINES_SKIPPED, LONG_LINES_CUT };

/* Call fn on each line of root/path (newline removed) until it returns
 * nonzero; -1 if the file cannot be opened.  A line too long for the
 * buffer is skipped, or (LONG_LINES_CUT, for files whose lines lead with
 * what is wanted) passed cut to its first BOUND_LINE - 1 bytes. */
static int each_line_long(const char *root, const char *path, int long_lines,
                          int (*fn)(char *, void *), void *ctx)
{
    int fd = open_below(root, path);
    if (fd < 0)
        return -1;
    char chunk[1024], line[BOUND_LINE];
    size_t n = 0;
    int too_long = 0, stop = 0;
    int take_long = long_lines == LONG_LINES_CUT;
    ssize_t got;
    while (!stop && ((got = read(fd, chunk, sizeof chunk)) > 0 || (got < 0 && errno == EINTR))) {
        for (ssize_t i = 0; i < got && !stop; i++) {
            if (chunk[i] != '\n') {
                if (n + 1 < sizeof line)
                    line[n++] = chunk[i];
                else
                    too_long = 1;
                continue;
            }
            line[n] = '\0';
            if (!too_long || take_long)
                stop = fn(line, ctx);
            n = 0;
            too_long = 0;
        }
    }
    if (!stop && n > 0 && (!too_long || take_long)) { /* a last line without its newline */
        line[n] = '\0';
        fn(line, ctx);
    }
    close(fd);
    return 0;
}

static int each_line(const char *root, const char *path, int (*fn)(char *, void *), void *ctx)
{
    return each_line_long(root, path, LONG_LINES_SKIPPED, fn, ctx);
}

/* Digits after optional blanks: the number and the text after it, or NULL
 * (no digits, or more than 64 bits). */
static const char *scan_u64(const char *s, uint64_t *out)
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

/* A whole file's content is one number (then only white space). */
static int parse_u64(const char *s, uint64_t *out)
{
    s = scan_u64(s, out);
    if (s == NULL)
        return 0;
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    return *s == '\0';
}

/* The comma-separated list [s, s + n) has `item`. */
static int has_item(const char *s, size_t n, const char *item)
{
    size_t len = strlen(item);
    for (const char *end = s + n; s < end;) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *stop = comma ? comma : end;
        if ((size_t)(stop - s) == len && memcmp(s, item, len) == 0)
            return 1;
        s = stop + 1;
    }
    return 0;
}

/* mountinfo writes space, tab, newline and backslash as \ooo: undo it. */
static void unescape(char *s)
{
    char *out = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
            s += 3;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

/* What the search for the cgroups has found; index 0 is v1 memory, 1 is v2. */
typedef struct {
    char path[2][BOUND_PATH]; /* the cgroup, from /proc/self/cgroup; "" if none */
    char dir[2][BOUND_PATH];  /* its directory, once a mount shows it */
    size_t mount_len[2];      /* dir[i][0 .. mount_len) is the mount point */
} cgroup_find_t;

static int cgroup_line(char *line, void *raw)
{
    cgroup_find_t *f = raw;
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c2 == NULL || c2[1] != '/' || strlen(c2 + 1) >= BOUND_PATH)
        return 0;
    int v2 = c1 == line + 1 && line[0] == '0' && c2 == c1 + 1;
    if (v2 || has_item(c1 + 1, (size_t)(c2 - c1 - 1), "memory"))
        memcpy(f->path[v2], c2 + 1, strlen(c2 + 1) + 1);
    return 0;
}

/* A mount of hierarchy i (0: v1 memory, 1: v2) with this root, at mnt: the
 * cgroup's directory, if the mount shows it. */
static void cgroup_place(cgroup_find_t *f, int i, char *root, char *mnt)
{
    unescape(root);
    unescape(mnt);
    const char *path = f->path[i], *below;
    size_t nroot = strlen(root);
    if (strcmp(root, "/") == 0)
        below = path;
    else if (strncmp(path, root, nroot) == 0 && (path[nroot] == '\0' || path[nroot] == '/'))
        below = path + nroot;
    else
        return; /* the cgroup lies outside what this mount shows */
    if (strcmp(below, "/") == 0)
        below = "";
    if (join3(f->dir[i], sizeof f->dir[i], mnt, below, ""))
        f->mount_len[i] = strlen(mnt);
    else
        f->dir[i][0] = '\0';
}

static int mount_line(char *line, void *raw)
{
    cgroup_find_t *f = raw;
    char *field[48], *save = NULL;
    int n = 0;
    for (char *s = strtok_r(line, " ", &save); s && n < 48; s = strtok_r(NULL, " ", &save))
        field[n++] = s;
    /* id parent dev root mountpoint options [optional...] - fstype source super */
    int sep = 6;
    while (sep < n && strcmp(field[sep], "-") != 0)
        sep++;
    if (sep + 3 >= n)
        return 0;
    const char *fstype = field[sep + 1], *super = field[sep + 3];
    int i = -1;
    if (strcmp(fstype, "cgroup2") == 0)
        i = 1;
    else if (strcmp(fstype, "cgroup") == 0 && has_item(super, strlen(super), "memory"))
        i = 0;
    if (i >= 0 && f->path[i][0] && !f->dir[i][0])
        cgroup_place(f, i, field[3], field[4]);
    return (f->dir[0][0] || !f->path[0][0]) && (f->dir[1][0] || !f->path[1][0]);
}

/* source = a b c, cut to fit. */
static void bound_source(ebb__os_bound_t *out, const char *a, const char *b, const char *c)
{
    size_t at = 0;
    const char *part[3] = { a, b, c };
    for (int k = 0; k < 3; k++)
        for (const char *s = part[k]; *s && at + 1 < sizeof out->source; s++)
            out->source[at++] = *s;
    out->source[at] = '\0';
}

/* Keep the smaller bound; of equal ones the first found (the deepest
 * cgroup) names the source. */
static void bound_offer(ebb__os_bound_t *out, uint64_t bytes, int cgroup, const char *a,
                        const char *b, const char *c)
{
    if (bytes >= out->bytes)
        return;
    out->bytes = bytes;
    out->cgroup = cgroup;
    bound_source(out, a, b, c);
}

/* The limit in a memory.max or memory.limit_in_bytes file, if it has one. */
static int read_cgroup_value(const char *root, const char *path, uint64_t *out)
{
    char buf[64];
    uint64_t v;
    if (read_text(root, path, buf, sizeof buf) <= 0 || !parse_u64(buf, &v) || v >= BOUND_NO_LIMIT)
        return 0; /* no file, "max", malformed, or no limit */
    *out = v;
    return 1;
}

/* Each cgroup from dir up to its mount point (dir is cut on the way). */
static void cgroup_walk_up(const char *root, char *dir, size_t mount_len, int version,
                           ebb__os_bound_t *out)
{
    const char *file = version == 2 ? "/memory.max" : "/memory.limit_in_bytes";
    const char *what = version == 2 ? "cgroup v2 " : "cgroup v1 ";
    size_t len = strlen(dir);
    for (;;) {
        char path[BOUND_PATH + 32];
        uint64_t v;
        if (join3(path, sizeof path, dir, file, "") && read_cgroup_value(root, path, &v))
            bound_offer(out, v, version, what, path, "");
        if (len <= mount_len)
            break;
        while (len > mount_len && dir[len - 1] != '/')
            len--;
        if (len > mount_len)
            len--; /* the slash before the last name */
        dir[len] = '\0';
    }
}

typedef struct {
    uint64_t value;
    int found;
} stat_find_t;

static int hierarchical_line(char *line, void *raw)
{
    stat_find_t *s = raw;
    static const char key[] = "hierarchical_memory_limit ";
    if (strncmp(line, key, sizeof key - 1) != 0)
        return 0;
    s->found = parse_u64(line + sizeof key - 1, &s->value);
    return 1;
}

int ebb__os_cgroup_limit(const char *root, ebb__os_bound_t *out)
{
    int saved = errno;
    cgroup_find_t f;
    memset(&f, 0, sizeof f);
    out->bytes = UINT64_MAX;
    out->cgroup = 0;
    out->source[0] = '\0';
    if (each_line(root, "/proc/self/cgroup", cgroup_line, &f) == 0 &&
        (f.path[0][0] || f.path[1][0]))
        each_line(root, "/proc/self/mountinfo", mount_line, &f);
    if (f.dir[0][0]) {
        char stat[BOUND_PATH + 16];
        stat_find_t s = { 0, 0 };
        int have = join3(stat, sizeof stat, f.dir[0], "/memory.stat", "") &&
                   each_line(root, stat, hierarchical_line, &s) == 0 && s.found;
        cgroup_walk_up(root, f.dir[0], f.mount_len[0], 1, out);
        /* After the walk: of equal limits, the file that set one names it. */
        if (have && s.value < BOUND_NO_LIMIT)
            bound_offer(out, s.value, 1, "cgroup v1 ", stat, " hierarchical_memory_limit");
    }
    if (f.dir[1][0])
        cgroup_walk_up(root, f.dir[1], f.mount_len[1], 2, out);
    errno = saved;
    return out->bytes != UINT64_MAX;
}

typedef struct {
    uint64_t mem_kb, swap_kb;
    int have_mem;
} meminfo_t;

static int meminfo_line(char *line, void *raw)
{
    meminfo_t *m = raw;
    if (strncmp(line, "MemTotal:", 9) == 0)
        m->have_mem = scan_u64(line + 9, &m->mem_kb) != NULL;
    else if (strncmp(line, "SwapTotal:", 10) == 0 && scan_u64(line + 10, &m->swap_kb) == NULL)
        m->swap_kb = 0;
    return 0;
}

int ebb__os_physical_memory(const char *root, ebb__os_bound_t *out)
{
    int saved = errno;
    meminfo_t m = { 0, 0, 0 };
    out->bytes = UINT64_MAX;
    out->cgroup = 0;
    bound_source(out, "physical memory + swap", "", "");
    struct sysinfo si;
    if (each_line(root, "/proc/meminfo", meminfo_line, &m) == 0 && m.have_mem &&
        m.mem_kb <= UINT64_MAX / 2048 && m.swap_kb <= UINT64_MAX / 2048)
        out->bytes = (m.mem_kb + m.swap_kb) * 1024;
    else if (root[0] == '\0' && sysinfo(&si) == 0) /* no /proc: ask the kernel */
        out->bytes = ((uint64_t)si.totalram + si.totalswap) * (si.mem_unit ? si.mem_unit : 1);
    errno = saved;
    return out->bytes != UINT64_MAX;
}

static uint64_t rlimit_soft(int which)
{
    struct rlimit r;
    if (getrlimit(which, &r) != 0 || r.rlim_cur == RLIM_INFINITY)
        return UINT64_MAX;
    return (uint64_t)r.rlim_cur;
}

void ebb__os_rlimits(uint64_t *as, uint64_t *data)
{
    int saved = errno;
    *as = rlimit_soft(RLIMIT_AS);
    *data = rlimit_soft(RLIMIT_DATA);
    errno = saved;
}

int ebb__os_usage(const char *root, ebb__os_usage_t *out)
{
    int saved = errno;
    char buf[256];
    /* Pages: size resident shared text lib data dirty */
    uint64_t f[6];
    const char *s = buf;
    int ok = read_text(root, "/proc/self/statm", buf, sizeof buf) > 0;
    for (int i = 0; ok && i < 6; i++)
        ok = (s = scan_u64(s, &f[i])) != NULL;
    uint64_t page = ebb__os_page_size();
    if (ok && f[0] <= UINT64_MAX / page) {
        out->size = f[0] * page;
        out->resident = f[1] * page;
        out->data = f[5] * page;
    }
    errno = saved;
    return ok && f[0] <= UINT64_MAX / page;
}

/* ------------------------------------------------------ memory pressure
 * What the kernel says about memory pressure (os.h), for pressure.c.
 *
 * PSI (pressure stall information, Linux 4.20 and later): a trigger
 * "some <stall us> <window us>" written to a pressure file makes its file
 * descriptor poll POLLPRI once the tasks it covers stalled on memory that
 * long within a window; the kernel signals a trigger at most once per
 * window, and poll itself clears the signal.  The file is the memory.pressure
 * of the process's cgroup v2 (it covers the cgroup's tasks, whatever the
 * memory controller's hierarchy: PSI is kept for every v2 cgroup), or of the
 * ancestor whose memory.max binds, since that limit is shared with every
 * process below it; else the whole system's /proc/pressure/memory (also when
 * the v2 cgroup is the root: the same figures under its plain name).  Before
 * Linux 6.5 a trigger needs CAP_SYS_RESOURCE; since then anyone may write
 * one whose window is a multiple of 2 s.
 *
 * memory.events (cgroup v2, not the root): flat "key count" lines; "high"
 * counts throttling past memory.high, "max" reclaim at memory.max.  A change
 * is signalled as POLLPRI | POLLERR until the file is read again through the
 * same descriptor, so it is reread from its start on each signal.
 */

#define PRESSURE_SYSTEM "/proc/pressure/memory"

/* The directory of the process's cgroup v2, or of its nearest ancestor
 * with the smallest memory.max, into dir; 0 if none is found or it is the
 * hierarchy's root (mount point). */
static int cgroup2_pressure_dir(const char *root, char *dir, size_t len)
{
    cgroup_find_t f;
    memset(&f, 0, sizeof f);
    if (each_line(root, "/proc/self/cgroup", cgroup_line, &f) != 0 || !f.path[1][0])
        return 0;
    each_line(root, "/proc/self/mountinfo", mount_line, &f);
    size_t at = strlen(f.dir[1]), mount = f.mount_len[1];
    if (!f.dir[1][0] || at <= mount || at >= len)
        return 0;
    memcpy(dir, f.dir[1], at + 1);
    uint64_t least = UINT64_MAX;
    for (char *d = f.dir[1]; at > mount;) {
        char path[BOUND_PATH + 32];
        uint64_t v;
        if (join3(path, sizeof path, d, "/memory.max", "") && read_cgroup_value(root, path, &v) &&
            v < least) {
            least = v;
            memcpy(dir, d, at + 1);
        }
        while (at > mount && d[at - 1] != '/')
            at--;
        if (at > mount)
            at--;
        d[at] = '\0';
    }
    return 1;
}

int ebb__os_psi_arm(int fd, const char *trigger)
{
    /* The kernel takes the text with its NUL (its documented form). */
    size_t n = strlen(trigger) + 1;
    ssize_t w;
    while ((w = write(fd, trigger, n)) < 0 && errno == EINTR)
        ;
    return w == (ssize_t)n ? 0 : -1;
}

/* root/path opened for a trigger, and the trigger written: the fd, or -1
 * with errno set. */
static int psi_open(const char *root, const char *path, const char *trigger)
{
    char full[2 * BOUND_PATH];
    if (!join3(full, sizeof full, root, path, "")) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(full, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0 && ebb__os_psi_arm(fd, trigger) != 0) {
        int err = errno;
        close(fd);
        errno = err;
        fd = -1;
    }
    return fd;
}

/* Descriptors ebb keeps open for long go high (from EBB_OS_FD_FLOOR, if
 * the limit allows), out of the way of a program's own low numbers. */
#define EBB_OS_FD_FLOOR 900

static int move_high(int fd)
{
    if (fd < 0 || fd >= EBB_OS_FD_FLOOR)
        return fd;
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, EBB_OS_FD_FLOOR);
    if (hi < 0)
        return fd;
    close(fd);
    return hi;
}

static void file_id(int fd, uint64_t id[2])
{
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0) {
        id[0] = (uint64_t)st.st_dev;
        id[1] = (uint64_t)st.st_ino;
    } else {
        id[0] = id[1] = 0;
    }
}

/* fd is still the file it was opened as. */
static int still_ours(int fd, const uint64_t id[2])
{
    uint64_t now[2];
    file_id(fd, now);
    return fd >= 0 && now[0] == id[0] && now[1] == id[1] && (id[0] | id[1]) != 0;
}

/* memory.events' "high" plus "max"; -1 if it cannot be read. */
static int64_t events_count(int fd)
{
    char buf[512];
    if (lseek(fd, 0, SEEK_SET) != 0)
        return -1;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf - 1)) < 0 && errno == EINTR)
        ;
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    uint64_t sum = 0, v;
    for (const char *s = buf; *s;) {
        const char *eol = strchr(s, '\n');
        const char *end = eol ? eol : s + strlen(s);
        if ((strncmp(s, "high ", 5) == 0 || strncmp(s, "max ", 4) == 0) &&
            scan_u64(strchr(s, ' '), &v) != NULL)
            sum += v;
        s = *end ? end + 1 : end;
    }
    return (int64_t)(sum & INT64_MAX);
}

void ebb__os_pressure_adopt(ebb__os_pressure_t *p, int psi)
{
    p->psi = psi;
    file_id(psi, p->psi_id);
}

int ebb__os_pressure_events_open(ebb__os_pressure_t *p, int fd)
{
    int64_t n = events_count(fd);
    if (n < 0)
        return -1;
    p->events = fd;
    p->seen = (uint64_t)n;
    file_id(fd, p->events_id);
    return 0;
}

int ebb__os_pressure_events_grew(ebb__os_pressure_t *p)
{
    int saved = errno;
    int64_t now = still_ours(p->events, p->events_id) ? events_count(p->events) : -1;
    int got = now < 0 ? EBB__OS_PRESSURE_GONE : (uint64_t)now > p->seen ? EBB__OS_PRESSURE_EVENTS : 0;
    if (now >= 0)
        p->seen = (uint64_t)now;
    errno = saved;
    return got;
}

int ebb__os_pressure_open(const char *root, const char *trigger, ebb__os_pressure_t *out)
{
    int saved = errno, err = ENOENT;
    char dir[BOUND_PATH], path[BOUND_PATH + 32];
    out->psi = out->events = -1;
    out->seen = 0;
    out->source[0] = '\0';
    int cgroup = cgroup2_pressure_dir(root, dir, sizeof dir);
    if (cgroup && join3(path, sizeof path, dir, "/memory.events", "")) {
        int fd = move_high(open_below(root, path));
        if (fd >= 0 && ebb__os_pressure_events_open(out, fd) != 0)
            close(fd);
        if (out->events >= 0)
            join3(out->source, sizeof out->source, path, "", "");
    }
    if (cgroup && join3(path, sizeof path, dir, "/memory.pressure", "")) {
        out->psi = psi_open(root, path, trigger);
        err = out->psi < 0 && errno != ENOENT ? errno : err;
    }
    if (out->psi < 0) {
        join3(path, sizeof path, PRESSURE_SYSTEM, "", "");
        out->psi = psi_open(root, path, trigger);
        err = out->psi < 0 && errno != ENOENT ? errno : err;
    }
    ebb__os_pressure_adopt(out, move_high(out->psi));
    if (out->psi >= 0) /* the PSI file names the watch; memory.events goes with it */
        join3(out->source, sizeof out->source, path, "", "");
    int ok = out->psi >= 0 || out->events >= 0;
    errno = ok ? saved : err;
    return ok ? 0 : -1;
}

int ebb__os_pressure_wait(ebb__os_pressure_t *p, long timeout_ms)
{
    int saved = errno;
    struct pollfd fds[2];
    nfds_t n = 0;
    int psi_at = -1, events_at = -1;
    /* A descriptor the program closed (and maybe reused) is given up, never
     * touched again. */
    if (p->psi >= 0 && !still_ours(p->psi, p->psi_id))
        p->psi = -1;
    if (p->events >= 0 && !still_ours(p->events, p->events_id))
        p->events = -1;
    if (p->psi >= 0) {
        psi_at = (int)n;
        fds[n++] = (struct pollfd){ .fd = p->psi, .events = POLLPRI };
    }
    if (p->events >= 0) {
        events_at = (int)n;
        fds[n++] = (struct pollfd){ .fd = p->events, .events = POLLPRI };
    }
    int got = 0;
    if (n == 0)
        got = EBB__OS_PRESSURE_GONE;
    else if (poll(fds, n, (int)timeout_ms) > 0) {
        if (psi_at >= 0) {
            short r = fds[psi_at].revents;
            /* POLLERR: the trigger is gone (its cgroup was removed). */
            if (r & (POLLERR | POLLHUP | POLLNVAL))
                got |= EBB__OS_PRESSURE_GONE;
            else if (r & POLLPRI)
                got |= EBB__OS_PRESSURE_PSI;
        }
        if (events_at >= 0 && (fds[events_at].revents & (POLLPRI | POLLERR)))
            got |= ebb__os_pressure_events_grew(p);
    }
    errno = saved;
    return got;
}

void ebb__os_pressure_close(ebb__os_pressure_t *p)
{
    int saved = errno;
    if (p->psi >= 0 && still_ours(p->psi, p->psi_id))
        close(p->psi);
    if (p->events >= 0 && still_ours(p->events, p->events_id))
        close(p->events);
    p->psi = p->events = -1;
    errno = saved;
}

typedef struct {
    void (*fn)(void *);
    void *arg;
} thread_start_t;

static void *thread_trampoline(void *raw)
{
    thread_start_t start = *(thread_start_t *)raw;
    munmap(raw, sizeof start > 4096 ? sizeof start : 4096);
    start.fn(start.arg);
    return NULL;
}

int ebb__os_thread_start(void (*fn)(void *), void *arg, const char *name)
{
    int saved = errno;
    /* The start record comes from the OS, not from malloc: the caller may be
     * the allocator itself. */
    thread_start_t *start = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (start == MAP_FAILED) {
        errno = saved;
        return -1;
    }
    start->fn = fn;
    start->arg = arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, (size_t)128 << 10);
    /* Every signal blocked in the new thread, so none meant for the program
     * is ever delivered to it. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    int rc = pthread_create(&t, &attr, thread_trampoline, start);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        munmap(start, 4096);
        errno = saved;
        return -1;
    }
    pthread_setname_np(t, name);
    errno = saved;
    return 0;
}

/* Drepper's three-state futex mutex: 0 free, 1 held, 2 held with waiters. */
void ebb__os_lock_wait(ebb__lock_t *l)
{
    int saved = errno;
    for (int spin = 0; spin < 100; spin++) {
        int expect = 0;
        if (atomic_load_explicit(&l->state, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->state, &expect, 1,
                memory_order_acquire, memory_order_relaxed)) {
            errno = saved;
            return;
        }
        __asm__ __volatile__("" ::: "memory");
    }
    while (atomic_exchange_explicit(&l->state, 2, memory_order_acquire) != 0)
        syscall(SYS_futex, &l->state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
    errno = saved;
}

void ebb__os_lock_wake(ebb__lock_t *l)
{
    int saved = errno;
    syscall(SYS_futex, &l->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
}

/* glibc's hook for C++ thread_local destructors: it runs at thread exit
 * before the thread's TLS goes away, and needs no pthread key (whose setter
 * may allocate from inside malloc).  It allocates its record through malloc,
 * which the caller is prepared for. */
extern int __cxa_thread_atexit_impl(void (*fn)(void *), void *arg, void *dso)
    __attribute__((weak));
extern void *__dso_handle __attribute__((weak));

int ebb__os_on_thread_exit(void (*fn)(void *), void *arg)
{
    if (__cxa_thread_atexit_impl == NULL)
        return -1;
    int saved = errno;
    int rc = __cxa_thread_atexit_impl(fn, arg, &__dso_handle);
    errno = saved;
    return rc;
}

void ebb__os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    pthread_atfork(prepare, parent, child);
}

/* ------------------------------------------------------------ reports */

int ebb__os_open_append(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

int ebb__os_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

void ebb__os_remove_file(const char *path)
{
    int saved = errno;
    unlink(path);
    errno = saved;
}

void ebb__os_close(int fd)
{
    int saved = errno;
    close(fd);
    errno = saved;
}

void *ebb__os_map_file(const char *path, size_t size)
{
    int saved = errno;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    void *p = MAP_FAILED;
    if (fd >= 0 && ftruncate(fd, (off_t)size) == 0)
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (fd >= 0)
        close(fd);
    errno = saved;
    return p == MAP_FAILED ? NULL : p;
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

size_t ebb__os_largest_gap(uintptr_t *start)
{
    int saved = errno;
    gap_scan_t g = { GAP_LOW, 0, 0 };
    /* A line with a long file name still leads with its addresses. */
    int read = each_line_long("", "/proc/self/maps", LONG_LINES_CUT, gap_line, &g) == 0;
    errno = saved;
    if (!read)
        return 0;
    gap_see(&g, GAP_HIGH - 1, GAP_HIGH - 1);
    *start = g.best_start;
    return g.best;
}

long ebb__os_pid(void)
{
    return (long)getpid();
}

long long ebb__os_wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec;
}

static char *put2(char *p, int v)
{
    *p++ = (char)('0' + v / 10 % 10);
    *p++ = (char)('0' + v % 10);
    return p;
}

/* The calendar date of a day count from 1970-01-01, by the proleptic
 * Gregorian rules (400-year eras of 146097 days, years starting in March so
 * the leap day comes last).  Not gmtime_r: glibc's loads the time zone
 * file on first use, through malloc, and this runs when memory is out. */
static void civil_date(long long days, long long *year, int *month, int *day)
{
    long long z = days + 719468; /* days since 0000-03-01 */
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;                                   /* [0, 146096] */
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);            /* [0, 365] */
    long long mp = (5 * doy + 2) / 153;                                 /* March = 0 */
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (*month <= 2);
}

void ebb__os_format_utc(long long seconds, char *buf)
{
    long long days = seconds / 86400, rest = seconds % 86400;
    if (rest < 0) {
        rest += 86400;
        days--;
    }
    long long year;
    int month, day;
    civil_date(days, &year, &month, &day);
    if (year < 0 || year > 9999) {
        memcpy(buf, "0000-00-00T00:00:00Z", 21);
        return;
    }
    char *p = put2(buf, (int)(year / 100));
    p = put2(p, (int)(year % 100));
    *p++ = '-';
    p = put2(p, month);
    *p++ = '-';
    p = put2(p, day);
    *p++ = 'T';
    p = put2(p, (int)(rest / 3600));
    *p++ = ':';
    p = put2(p, (int)(rest / 60 % 60));
    *p++ = ':';
    p = put2(p, (int)(rest % 60));
    *p++ = 'Z';
    *p = '\0';
}

int ebb__os_signal_number(const char *name)
{
    static const struct { const char *name; int sig; } known[] = {
        { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "HUP", SIGHUP },
        { "QUIT", SIGQUIT }, { "PWR", SIGPWR },   { "WINCH", SIGWINCH },
    };
    if (strncmp(name, "SIG", 3) == 0)
        name += 3;
    if (name[0] >= '0' && name[0] <= '9') {
        int v = 0;
        for (; *name >= '0' && *name <= '9' && v < 1000; name++)
            v = v * 10 + (*name - '0');
        return *name == '\0' && v > 0 && v < NSIG && v != SIGKILL && v != SIGSTOP ? v : 0;
    }
    if (strncmp(name, "RTMIN+", 6) == 0) {
        int v = name[6] >= '0' && name[6] <= '9' ? name[6] - '0' : -1;
        if (v >= 0 && name[7] == '\0' && SIGRTMIN + v <= SIGRTMAX)
            return SIGRTMIN + v;
        return 0;
    }
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(name, known[i].name) == 0)
            return known[i].sig;
    return 0;
}

int ebb__os_on_signal(int sig, void (*fn)(int))
{
    int saved = errno;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    int rc = sigaction(sig, &sa, NULL);
    errno = saved;
    return rc;
}

void ebb__os_wake_all(_Atomic int *word)
{
    int saved = errno;
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
    errno = saved;
}

/* --------------------------------------------------------- stacks */

#ifdef __GLIBC__
#include <execinfo.h>
#endif

/* glibc's backtrace() (libgcc's DWARF unwinder, loaded on first use) gives
 * the return address in this function first: dropped, so pcs[0] is in our
 * caller (the sampler, which drops the rest of ebb's frames by address). */
__attribute__((noinline)) int ebb__os_backtrace(void **pcs, int max)
{
#ifdef __GLIBC__
    void *raw[128];
    int saved = errno;
    int n = backtrace(raw, max + 1 < 128 ? max + 1 : 128);
    errno = saved;
    if (n <= 1)
        return 0;
    memcpy(pcs, raw + 1, (size_t)(n - 1) * sizeof(void *));
    return n - 1;
#else
    (void)pcs;
    (void)max;
    return 0;
#endif
}

static size_t sym_put_str(char *buf, size_t len, size_t at, const char *s)
{
    while (*s && at + 1 < len)
        buf[at++] = *s++;
    return at;
}

static size_t sym_put_hex(char *buf, size_t len, size_t at, uintptr_t v)
{
    char digits[2 + 2 * sizeof v + 1];
    int i = (int)sizeof digits - 1;
    digits[i] = 0;
    do {
        digits[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    digits[--i] = 'x';
    digits[--i] = '0';
    return sym_put_str(buf, len, at, digits + i);
}

size_t ebb__os_symbolise(const void *pc, char *buf, size_t len)
{
    if (len == 0)
        return 0;
    Dl_info info;
    size_t at = 0;
    int saved = errno;
    /* A return address may be one past its function's last byte. */
    int found = dladdr((const char *)pc - 1, &info) != 0;
    errno = saved;
    if (found && info.dli_sname && info.dli_saddr) {
        at = sym_put_str(buf, len, at, info.dli_sname);
        at = sym_put_str(buf, len, at, "+");
        at = sym_put_hex(buf, len, at, (uintptr_t)pc - (uintptr_t)info.dli_saddr);
    } else if (!found) {
        at = sym_put_hex(buf, len, at, (uintptr_t)pc);
    }
    if (found && info.dli_fname && info.dli_fname[0]) {
        /* Without a dynamic symbol (a function of the executable, which
         * exports none unless linked -rdynamic) the offset in the object is
         * what addr2line -e OBJECT takes. */
        int named = info.dli_sname && info.dli_saddr;
        at = sym_put_str(buf, len, at, named ? " (" : "(");
        at = sym_put_str(buf, len, at, info.dli_fname);
        if (!named) {
            at = sym_put_str(buf, len, at, "+");
            at = sym_put_hex(buf, len, at, (uintptr_t)pc - (uintptr_t)info.dli_fbase);
        }
        at = sym_put_str(buf, len, at, ")");
    }
    buf[at] = 0;
    return at;
}
