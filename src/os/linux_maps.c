/*
 * linux_maps.c -- a process's /proc files read whole, for the map of its
 * address space (src/insight/addrspace.c analyses the text).
 *
 * The other /proc readers of this layer stream small files through a
 * buffer on the stack; a map cannot be read so: /proc/PID/smaps is about
 * 1 KiB of text per mapping, a megabyte for a large process, and the
 * analysis wants all of it at once.  So the text goes into memory mapped
 * here and grown with mremap, never malloc: the library may map its own
 * process when its heap is exhausted, and the `ebb map` tool (which
 * compiles this file on its own, with no other file of the layer) uses the
 * same reader for another process.
 *
 * The kernel writes maps and smaps a record at a time, so a read is never
 * torn inside a line, but the file as a whole is not one snapshot: a
 * mapping made or removed while it is read may or may not be in it.  A
 * process that exits while it is read leaves the rest of the file empty;
 * the caller tells that from a process that has no mappings left by asking
 * ebb__os_proc_alive afterwards.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The first mapping of a text buffer; it doubles as it fills. */
#define MAPS_FIRST_BYTES ((size_t)64 << 10)

/* "/proc/self/NAME" or "/proc/PID/NAME" into out; 0 if it does not fit.
 * (No snprintf: nothing in this layer touches stdio.) */
static int proc_path(char *out, size_t len, long pid, const char *name)
{
    char digits[24];
    size_t nd = 0;
    if (pid > 0) {
        for (unsigned long v = (unsigned long)pid; v; v /= 10)
            digits[nd++] = (char)('0' + v % 10);
    } else {
        memcpy(digits, "fles", 4); /* "self", reversed as the digits are */
        nd = 4;
    }
    size_t nn = strlen(name);
    if (6 + nd + 1 + nn + 1 > len)
        return 0;
    memcpy(out, "/proc/", 6);
    for (size_t i = 0; i < nd; i++)
        out[6 + i] = digits[nd - 1 - i];
    out[6 + nd] = '/';
    memcpy(out + 7 + nd, name, nn + 1);
    return 1;
}

/* Room for at least one more page of text after t->len. */
static int text_grow(ebb__os_text_t *t)
{
    if (t->cap - t->len >= 4096)
        return 0;
    size_t cap = t->cap ? t->cap * 2 : MAPS_FIRST_BYTES;
    void *p = t->cap ? mremap(t->text, t->cap, cap, MREMAP_MAYMOVE)
                     : mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    t->text = p;
    t->cap = cap;
    return 0;
}

int ebb__os_proc_read(long pid, const char *name, ebb__os_text_t *t)
{
    char path[64];
    t->text = NULL;
    t->len = t->cap = 0;
    if (!proc_path(path, sizeof path, pid, name)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    for (;;) {
        if (text_grow(t) != 0)
            break;
        ssize_t n = read(fd, t->text + t->len, t->cap - t->len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0) {
                t->text[t->len] = '\0';
                close(fd);
                return 0;
            }
            break;
        }
        t->len += (size_t)n;
    }
    int err = errno;
    close(fd);
    ebb__os_text_free(t);
    errno = err;
    return -1;
}

void ebb__os_text_free(ebb__os_text_t *t)
{
    if (t->cap)
        munmap(t->text, t->cap);
    t->text = NULL;
    t->len = t->cap = 0;
}

int ebb__os_proc_alive(long pid)
{
    char path[64], stat[512];
    if (!proc_path(path, sizeof path, pid, "stat"))
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (n <= 0)
        return 0;
    stat[n] = '\0';
    /* "pid (comm) S ...": the state follows the last ')', as comm may
     * hold one */
    const char *paren = strrchr(stat, ')');
    return paren && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
}

long ebb__os_proc_link(long pid, const char *name, char *buf, size_t len)
{
    char path[64];
    if (len == 0 || !proc_path(path, sizeof path, pid, name)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    ssize_t n = readlink(path, buf, len - 1);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return (long)n;
}

uint64_t ebb__os_mmap_min_addr(void)
{
    char text[32];
    uint64_t v = 0;
    int fd = open("/proc/sys/vm/mmap_min_addr", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, text, sizeof text - 1) : -1;
    if (fd >= 0)
        close(fd);
    for (ssize_t i = 0; i < n && text[i] >= '0' && text[i] <= '9'; i++)
        v = v * 10 + (uint64_t)(text[i] - '0');
    /* The sysctl is only the floor the administrator set; the kernel's
     * is the larger of it and CONFIG_LSM_MMAP_MIN_ADDR (65536 where a
     * security module is built in, as in the usual distribution kernels):
     * measured here, with the sysctl at 4096, no mmap was placed below
     * 0x10000. */
    return v > EBB__OS_MMAP_MIN_ADDR_DEFAULT ? v : EBB__OS_MMAP_MIN_ADDR_DEFAULT;
}
