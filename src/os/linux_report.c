/*
 * linux_report.c -- what report.c needs from the system to write a report.
 *
 * A report (and the black box that report.c keeps) is written when
 * something has gone wrong, perhaps with the heap exhausted or broken, and
 * may be asked for by a signal (os.h, "reports").  This file opens,
 * appends to, maps and removes the files it goes to, dates it, and turns a
 * signal's name into its number and a handler.
 *
 * Why it is shaped so: none of it may allocate or touch stdio, which
 * rules out the C library's conveniences that do (fopen; gmtime_r, which
 * loads the time zone file through malloc), so plain file descriptors and
 * a calendar of its own do instead.  Unlike the primitives, open_append and write_all
 * leave errno saying why they failed: the caller's message names it.
 *
 * The files are named by the environment, perhaps in a directory others
 * can write to (/tmp), and a report holds code addresses: both are opened
 * without following a symbolic link planted at the path, with mode 0600,
 * never inherited across exec; a report is only appended to, and the black
 * box is created new, or taken only if it is a box this user left (a file
 * ebb did not make is never truncated) and no other process holds (a lock
 * on it, kept with the descriptor for the process's life).  A report file
 * (EBB_REPORT_FILE) is written whole to a new file beside it and renamed
 * over it, after file_head showed what is there, so that report_files.c
 * can refuse to replace anything but a report of ebb's.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h> /* rename(2), nothing of stdio's buffering */
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int ebb__os_open_append(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
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

int ebb__os_file_head(const char *path, char *head, size_t cap, size_t *len, const char **why)
{
    int saved = errno;
    *len = 0;
    *why = NULL;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        int err = errno;
        errno = saved;
        if (err == ENOENT)
            return 0;
        *why = err == ELOOP ? "a symbolic link" : ebb__os_error_text(err);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0)
        *why = "cannot be examined";
    else if (!S_ISREG(st.st_mode))
        *why = "not a regular file";
    else if (st.st_uid != geteuid())
        *why = "owned by another user";
    else if (st.st_nlink != 1)
        *why = "a file with other names (hard links)";
    if (*why == NULL) {
        ssize_t n = pread(fd, head, cap, 0);
        if (n < 0)
            *why = ebb__os_error_text(errno);
        else
            *len = (size_t)n;
    }
    close(fd);
    errno = saved;
    return *why == NULL ? 1 : -1;
}

int ebb__os_create_new(const char *path)
{
    int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = open(path, flags, 0600);
    if (fd < 0 && errno == EEXIST) {
        /* Left by a process of the same pid that died writing: the name is
         * ebb's own; unlink removes a link planted there, not its target. */
        unlink(path);
        fd = open(path, flags, 0600);
    }
    return fd;
}

int ebb__os_rename(const char *from, const char *to)
{
    return rename(from, to);
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

/* Give the file `size` bytes whose blocks are on disk: a store through a
 * shared mapping into a hole the file system cannot fill (it is full, or
 * over quota) is SIGBUS, so the room is taken now, when failing is cheap.
 * A file system without fallocate gets the zeros written. */
static int reserve(int fd, size_t size)
{
    if (ftruncate(fd, (off_t)size) != 0)
        return -1;
    int rc;
    while ((rc = fallocate(fd, 0, 0, (off_t)size)) != 0 && errno == EINTR)
        ;
    if (rc == 0 || (errno != EOPNOTSUPP && errno != ENOSYS))
        return rc;
    static const char zeros[4096];
    for (size_t at = 0; at < size; at += sizeof zeros) {
        size_t n = size - at < sizeof zeros ? size - at : sizeof zeros;
        if (pwrite(fd, zeros, n, (off_t)at) != (ssize_t)n)
            return -1;
    }
    return 0;
}

/* An existing file at the box's path is taken only if it is what a box of
 * this process's user left: a regular file it owns, with no other name
 * (a hard link), that starts with `magic`.  Anything else, whoever put it
 * there, is not ebb's to truncate. */
static const char *not_a_box(int fd, const char *magic, size_t magic_len)
{
    struct stat st;
    char head[16];
    if (fstat(fd, &st) != 0)
        return "cannot be examined";
    if (!S_ISREG(st.st_mode))
        return "not a regular file";
    if (st.st_uid != geteuid())
        return "owned by another user";
    if (st.st_nlink != 1)
        return "a file with other names (hard links)";
    if (magic_len > sizeof head || pread(fd, head, magic_len, 0) != (ssize_t)magic_len ||
        memcmp(head, magic, magic_len) != 0)
        return "a file that is not an ebb black box";
    return NULL;
}

/* Take the file for this process alone: the lock is the open file's, so
 * it lasts while the box's descriptor stays open (a fork child closes its
 * copy; exec closes it), and goes with the process however it ends. */
static const char *lock_box(int fd)
{
    int rc;
    while ((rc = flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR)
        ;
    if (rc == 0)
        return NULL;
    return errno == EWOULDBLOCK ? "another process keeps its box there" : ebb__os_error_text(errno);
}

void *ebb__os_box_open(const char *path, size_t size, const char *magic, size_t magic_len,
                       int *fd_out, const char **why)
{
    int saved = errno;
    void *p = MAP_FAILED;
    *why = NULL;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
        *why = lock_box(fd);
    } else if (errno == EEXIST) {
        fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd >= 0 && (*why = lock_box(fd)) == NULL)
            *why = not_a_box(fd, magic, magic_len);
    }
    if (fd < 0)
        *why = errno == ELOOP ? "a symbolic link" : ebb__os_error_text(errno);
    else if (*why == NULL && reserve(fd, size) != 0)
        *why = ebb__os_error_text(errno);
    if (*why == NULL) {
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            *why = ebb__os_error_text(errno);
    }
    /* The descriptor goes either way.  Mapped, the lock stays: a flock
     * belongs to the open file, which the mapping keeps open, and it is
     * released when the mapping goes (at exit, at exec, or when a fork child
     * unmaps its copy).  Keeping the descriptor would show the program, and
     * every program it starts with ebb, a file descriptor it did not open:
     * CPython's test_subprocess counts them. */
    if (fd >= 0)
        close(fd);
    *fd_out = -1;
    errno = saved;
    return p == MAP_FAILED ? NULL : p;
}

const char *ebb__os_error_text(int err)
{
    /* strerror may translate, and so allocate; the description does not. */
    const char *s = strerrordesc_np(err);
    return s ? s : "an unknown error";
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

/* Digits, the whole rest of s: their value (at most 1000), or -1. */
static int small_number(const char *s)
{
    int v = 0;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9' && v < 1000; s++)
        v = v * 10 + (*s - '0');
    return *s == '\0' ? v : -1;
}

/* Any other signal means something already: SIGSEGV, SIGILL, SIGBUS,
 * SIGFPE or SIGABRT caught and returned from would fault again, for ever,
 * writing reports instead of dying; SIGPIPE, SIGHUP, SIGINT or SIGTERM
 * would no longer end the program; SIGWINCH comes with every resize of a
 * terminal, SIGCHLD with every child's end. */
static int may_ask_for_reports(int sig)
{
    return sig == SIGUSR1 || sig == SIGUSR2 || (sig >= SIGRTMIN && sig <= SIGRTMAX);
}

int ebb__os_report_signal(const char *name)
{
    int sig = 0, n;
    if (strncmp(name, "SIG", 3) == 0)
        name += 3;
    if (strcmp(name, "USR1") == 0)
        sig = SIGUSR1;
    else if (strcmp(name, "USR2") == 0)
        sig = SIGUSR2;
    else if (strcmp(name, "RTMIN") == 0)
        sig = SIGRTMIN;
    else if (strcmp(name, "RTMAX") == 0)
        sig = SIGRTMAX;
    else if (strncmp(name, "RTMIN+", 6) == 0 && (n = small_number(name + 6)) >= 0)
        sig = SIGRTMIN + n;
    else if (strncmp(name, "RTMAX-", 6) == 0 && (n = small_number(name + 6)) >= 0)
        sig = SIGRTMAX - n;
    else if ((n = small_number(name)) > 0)
        sig = n;
    return may_ask_for_reports(sig) ? sig : 0;
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
