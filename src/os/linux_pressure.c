/*
 * linux_pressure.c -- the kernel's word on memory pressure, for pressure.c.
 *
 * pressure.c's watcher thread sleeps until the kernel says memory is
 * short, then has ebb give pages back (os.h, "memory pressure").  This
 * file opens what the kernel says it through and waits on it; finding the
 * process's cgroup is linux_limits.c's (linux.h).
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
 *
 * Why it is shaped so: the descriptors stay open for the life of the
 * process, inside a program that owns the rest of its descriptor table and
 * may close them all.  So they are moved high, out of the way of the
 * program's own numbers, and remembered by device and inode: one that no
 * longer is the file ebb opened is given up, never polled, read or closed.
 * Nothing here allocates, and errno is left as the caller had it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"
#include "linux.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PRESSURE_SYSTEM "/proc/pressure/memory"

/* The directory of the process's cgroup v2, or of its nearest ancestor
 * with the smallest memory.max, into dir; 0 if none is found or it is the
 * hierarchy's root (mount point). */
static int cgroup2_pressure_dir(const char *root, char *dir, size_t len)
{
    ebb__linux_cgroup_t f;
    ebb__linux_cgroup_find(root, &f);
    char *d = f.dir[1];
    size_t at = strlen(d), mount = f.mount_len[1];
    if (!d[0] || at <= mount || at >= len)
        return 0;
    memcpy(dir, d, at + 1);
    uint64_t least = UINT64_MAX;
    do {
        char path[EBB__LINUX_PATH + 32];
        uint64_t v;
        if (ebb__linux_join3(path, sizeof path, d, "/memory.max", "") &&
            ebb__linux_cgroup_value(root, path, &v) && v < least) {
            least = v;
            memcpy(dir, d, at + 1);
        }
    } while (ebb__linux_cgroup_parent(d, &at, mount) && at > mount);
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
    int fd = ebb__linux_open_below(root, path, O_RDWR | O_NONBLOCK);
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
            ebb__linux_scan_u64(strchr(s, ' '), &v) != NULL)
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
    char dir[EBB__LINUX_PATH], path[EBB__LINUX_PATH + 32];
    out->psi = out->events = -1;
    out->seen = 0;
    out->source[0] = '\0';
    int cgroup = cgroup2_pressure_dir(root, dir, sizeof dir);
    if (cgroup && ebb__linux_join3(path, sizeof path, dir, "/memory.events", "")) {
        int fd = move_high(ebb__linux_open_below(root, path, O_RDONLY));
        if (fd >= 0 && ebb__os_pressure_events_open(out, fd) != 0)
            close(fd);
        if (out->events >= 0)
            ebb__linux_join3(out->source, sizeof out->source, path, "", "");
    }
    if (cgroup && ebb__linux_join3(path, sizeof path, dir, "/memory.pressure", "")) {
        out->psi = psi_open(root, path, trigger);
        err = out->psi < 0 && errno != ENOENT ? errno : err;
    }
    if (out->psi < 0) {
        ebb__linux_join3(path, sizeof path, PRESSURE_SYSTEM, "", "");
        out->psi = psi_open(root, path, trigger);
        err = out->psi < 0 && errno != ENOENT ? errno : err;
    }
    ebb__os_pressure_adopt(out, move_high(out->psi));
    if (out->psi >= 0) /* the PSI file names the watch; memory.events goes with it */
        ebb__linux_join3(out->source, sizeof out->source, path, "", "");
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
