/*
 * linux_limits.c -- what bounds this process's memory, for EBB_LIMIT=auto.
 *
 * limit.c sets ebb's automatic limit below the tightest bound it can
 * learn: a cgroup's memory limit, physical memory plus swap, the address
 * space and data rlimits (os.h, "memory bounds").  The bounds are only
 * written down in files, and the cgroup ones are hard to find, so this file
 * owns finding the process's cgroups; linux_pressure.c asks it too (linux.h).
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
 *
 * Why it is shaped so: this runs at start-up, perhaps inside the process's
 * first malloc, so nothing here may allocate; files are read through
 * linux_proc.c's readers into stack buffers (the deepest call takes about
 * 10 KiB of stack), below a root ("" for the real system) that tests point
 * at a fixture tree.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"
#include "linux.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>

#define BOUND_NO_LIMIT ((uint64_t)1 << 62)

/* ------------------------------------------------ finding the cgroups */

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

static int cgroup_line(char *line, void *raw)
{
    ebb__linux_cgroup_t *f = raw;
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c2 == NULL || c2[1] != '/' || strlen(c2 + 1) >= EBB__LINUX_PATH)
        return 0;
    int v2 = c1 == line + 1 && line[0] == '0' && c2 == c1 + 1;
    if (v2 || has_item(c1 + 1, (size_t)(c2 - c1 - 1), "memory"))
        memcpy(f->path[v2], c2 + 1, strlen(c2 + 1) + 1);
    return 0;
}

/* A mount of hierarchy i (0: v1 memory, 1: v2) with this root, at mnt: the
 * cgroup's directory, if the mount shows it. */
static void cgroup_place(ebb__linux_cgroup_t *f, int i, char *root, char *mnt)
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
    if (ebb__linux_join3(f->dir[i], sizeof f->dir[i], mnt, below, ""))
        f->mount_len[i] = strlen(mnt);
    else
        f->dir[i][0] = '\0';
}

static int mount_line(char *line, void *raw)
{
    ebb__linux_cgroup_t *f = raw;
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

void ebb__linux_cgroup_find(const char *root, ebb__linux_cgroup_t *f)
{
    memset(f, 0, sizeof *f);
    if (ebb__linux_each_line(root, "/proc/self/cgroup", cgroup_line, f) == 0 &&
        (f->path[0][0] || f->path[1][0]))
        ebb__linux_each_line(root, "/proc/self/mountinfo", mount_line, f);
}

int ebb__linux_cgroup_parent(char *dir, size_t *len, size_t mount_len)
{
    size_t at = *len;
    if (at <= mount_len)
        return 0;
    while (at > mount_len && dir[at - 1] != '/')
        at--;
    if (at > mount_len)
        at--; /* the slash before the last name */
    dir[at] = '\0';
    *len = at;
    return 1;
}

int ebb__linux_cgroup_value(const char *root, const char *path, uint64_t *out)
{
    char buf[64];
    uint64_t v;
    if (ebb__linux_read_text(root, path, buf, sizeof buf) <= 0 || !ebb__linux_parse_u64(buf, &v) ||
        v >= BOUND_NO_LIMIT)
        return 0; /* no file, "max", malformed, or no limit */
    *out = v;
    return 1;
}

/* ------------------------------------------------------- the bounds */

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

/* Each cgroup from dir up to its mount point (dir is cut on the way). */
static void cgroup_walk_up(const char *root, char *dir, size_t mount_len, int version,
                           ebb__os_bound_t *out)
{
    const char *file = version == 2 ? "/memory.max" : "/memory.limit_in_bytes";
    const char *what = version == 2 ? "cgroup v2 " : "cgroup v1 ";
    size_t len = strlen(dir);
    do {
        char path[EBB__LINUX_PATH + 32];
        uint64_t v;
        if (ebb__linux_join3(path, sizeof path, dir, file, "") &&
            ebb__linux_cgroup_value(root, path, &v))
            bound_offer(out, v, version, what, path, "");
    } while (ebb__linux_cgroup_parent(dir, &len, mount_len));
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
    s->found = ebb__linux_parse_u64(line + sizeof key - 1, &s->value);
    return 1;
}

int ebb__os_cgroup_limit(const char *root, ebb__os_bound_t *out)
{
    int saved = errno;
    ebb__linux_cgroup_t f;
    out->bytes = UINT64_MAX;
    out->cgroup = 0;
    out->source[0] = '\0';
    ebb__linux_cgroup_find(root, &f);
    if (f.dir[0][0]) {
        char stat[EBB__LINUX_PATH + 16];
        stat_find_t s = { 0, 0 };
        int have = ebb__linux_join3(stat, sizeof stat, f.dir[0], "/memory.stat", "") &&
                   ebb__linux_each_line(root, stat, hierarchical_line, &s) == 0 && s.found;
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
        m->have_mem = ebb__linux_scan_u64(line + 9, &m->mem_kb) != NULL;
    else if (strncmp(line, "SwapTotal:", 10) == 0 &&
             ebb__linux_scan_u64(line + 10, &m->swap_kb) == NULL)
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
    if (ebb__linux_each_line(root, "/proc/meminfo", meminfo_line, &m) == 0 && m.have_mem &&
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
