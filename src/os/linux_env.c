/*
 * linux_env.c -- the environment, read and edited without the C library.
 *
 * ebb reads its settings (EBB_*) from the environment inside the process's
 * first malloc, which in a preloaded program may come before the C library
 * has set `environ`; and with EBB_NO_CHILDREN ebb takes itself out of what
 * the program's children inherit (LD_PRELOAD and its own variables).  So
 * getenv and unsetenv are out: the first may not be ready, and neither
 * is promised not to allocate.
 *
 * Why it is shaped so: a variable is looked up in `environ` when there is
 * one, else in the kernel's copy of the initial environment,
 * /proc/self/environ, matched as it streams past (its entries are
 * NUL-separated, of any length); nothing here allocates, and a value is
 * never cut without the caller being told.  Removing a variable, or a
 * library from LD_PRELOAD, edits the strings and the array in place, which
 * only ever shortens them.
 *
 * A privileged process (setuid, setgid, file capabilities) is told so by
 * the kernel (AT_SECURE): its environment belongs to whoever started it, so
 * ebb reads none of its own variables there (base/options.c) and removes
 * them for its children, as the dynamic loader does with LD_PRELOAD.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;

_Static_assert(EBB__OS_PATH_MAX == PATH_MAX, "os.h says what PATH_MAX is");

/* The environment entry "NAME=value" is the variable `name`. */
static int env_is(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* The value of entry (known to be `name`'s) into buf: 1, or -1 if it is
 * longer than len - 1 bytes (buf then holds the first len - 1). */
static int copy_value(const char *entry, const char *name, char *buf, size_t len)
{
    const char *v = entry + strlen(name) + 1;
    size_t vlen = strlen(v);
    int whole = vlen < len;
    if (!whole)
        vlen = len - 1;
    memcpy(buf, v, vlen);
    buf[vlen] = '\0';
    return whole ? 1 : -1;
}

/* Early in a preloaded process `environ` may not be set yet; the kernel's
 * copy of the initial environment is always there.  Its entries are
 * NUL-separated, of any length (a path may be PATH_MAX long): they are
 * matched against "name=" and the value copied as they stream past, so
 * nothing is cut but what does not fit buf, and that is said. */
static int getenv_from_proc(const char *name, char *buf, size_t len)
{
    int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t nlen = strlen(name), at = 0; /* bytes of the current entry seen */
    size_t got = 0;                     /* bytes of the value copied */
    int matching = 1, found = 0, cut = 0;
    char chunk[1024];
    ssize_t n;
    while (!found && ((n = read(fd, chunk, sizeof chunk)) > 0 || (n < 0 && errno == EINTR))) {
        for (ssize_t i = 0; i < n && !found; i++) {
            char c = chunk[i];
            if (c == '\0') {
                found = matching && at > nlen;
                buf[got] = '\0';
                at = got = 0;
                matching = 1;
                cut = found && cut;
                continue;
            }
            if (matching && at < nlen)
                matching = c == name[at];
            else if (matching && at == nlen)
                matching = c == '=';
            else if (matching && got + 1 < len)
                buf[got++] = c;
            else if (matching)
                cut = 1;
            at++;
        }
    }
    close(fd);
    if (!found)
        return 0;
    return cut ? -1 : 1;
}

int ebb__os_getenv(const char *name, char *buf, size_t len)
{
    if (len == 0)
        return 0;
    int saved = errno;
    int found = 0;
    if (environ != NULL) {
        for (char **e = environ; *e != NULL && !found; e++)
            if (env_is(*e, name))
                found = copy_value(*e, name, buf, len);
    } else {
        found = getenv_from_proc(name, buf, len);
    }
    errno = saved;
    return found;
}

/* Drop the entries `drop` says are `name`'s, in place. */
static void env_filter(const char *name, int (*drop)(const char *entry, const char *name))
{
    if (environ == NULL)
        return;
    char **out = environ;
    for (char **e = environ; *e != NULL; e++)
        if (!drop(*e, name))
            *out++ = *e;
    *out = NULL;
}

static int env_has_prefix(const char *entry, const char *prefix)
{
    return strncmp(entry, prefix, strlen(prefix)) == 0;
}

void ebb__os_env_remove(const char *name)
{
    env_filter(name, env_is);
}

void ebb__os_env_remove_prefix(const char *prefix)
{
    env_filter(prefix, env_has_prefix);
}

int ebb__os_getcwd(char *buf, size_t len)
{
    int saved = errno;
    /* The system call, not getcwd(NULL, 0): nothing here may allocate. */
    int ok = getcwd(buf, len) != NULL && buf[0] == '/';
    errno = saved;
    return ok;
}

int ebb__os_secure(void)
{
    int saved = errno;
    /* AT_SECURE is the kernel's word (set for setuid, setgid and file
     * capabilities); differing ids cover a loader that did not pass it. */
    int secure = getauxval(AT_SECURE) != 0 || getuid() != geteuid() || getgid() != getegid();
    errno = saved;
    return secure;
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
