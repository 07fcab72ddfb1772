/*
 * report.c -- `ebb run --report FILE`, `--folded FILE` after the program
 * died without writing them: the report files made from its black box.
 *
 * The library writes the report files itself at a normal exit and on its
 * first failed allocation (src/insight/report_files.c).  A process killed
 * by SIGKILL (the OOM killer) writes nothing, nor does one that ends by
 * another signal or by _exit; its black box (version 2) then holds the
 * brief JSON and the folded stacks of its last refresh, and the tool
 * writes the same files from them: the page (the viewer's template from
 * the same generated header the library uses, around the JSON), the JSON,
 * the text, the folded stacks.  The JSON gets one key more,
 * "from_black_box", which says how the program ended and how old the
 * record is; the text gets a last line that says the same.
 *
 * The files are replaced by the library's rules: only nothing, or a report
 * of ebb's (a regular file of this user with one name, starting as the
 * format does), is replaced; never through a symbolic link; written under
 * a temporary name beside the path (created new, mode 0600) and renamed
 * over it.
 */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ebb_viewer.h"

enum { R_TEXT, R_JSON, R_HTML, R_FOLDED };

static int ends_with(const char *s, const char *end)
{
    size_t n = strlen(s), k = strlen(end);
    return n >= k && strcmp(s + n - k, end) == 0;
}

static int cli_report_kind(const char *path)
{
    if (ends_with(path, ".html") || ends_with(path, ".htm"))
        return R_HTML;
    return ends_with(path, ".json") ? R_JSON : R_TEXT;
}

/* What is at path may be replaced: nothing, or a report of ebb's in the
 * format `kind`.  NULL, or why not. */
static const char *replaceable(const char *path, int kind)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return errno == ENOENT ? NULL : errno == ELOOP ? "a symbolic link" : strerror(errno);
    struct stat st;
    char head[64];
    const char *why = NULL;
    ssize_t n = 0;
    if (fstat(fd, &st) != 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (st.st_uid != geteuid())
        why = "owned by another user";
    else if (st.st_nlink != 1)
        why = "a file with other names (hard links)";
    else if ((n = pread(fd, head, sizeof head, 0)) < 0)
        why = strerror(errno);
    close(fd);
    if (why)
        return why;
    static const char *const sig[] = { "== ebb report: ", "{\"schema\":\"ebb.report/1\"",
                                       "<!DOCTYPE html>\n<!-- ebb report" };
    if (kind != R_FOLDED) {
        size_t k = strlen(sig[kind]);
        return (size_t)n >= k && memcmp(head, sig[kind], k) == 0
                   ? NULL
                   : "a file ebb did not write: it is left alone";
    }
    /* Folded stacks: empty, or a first line "frames... <count>". */
    const char *nl = memchr(head, '\n', (size_t)n), *d = nl;
    if (n == 0)
        return NULL;
    while (d && d > head && d[-1] >= '0' && d[-1] <= '9')
        d--;
    return d && d < nl && d > head && d[-1] == ' ' ? NULL
                                                   : "a file ebb did not write: it is left alone";
}

/* The JSON with every '<' as \u003c (report_files.c says why). */
static void put_html_safe(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("\\u003c", f);
        else
            fputc(*s, f);
    }
}

/* The box's JSON with "from_black_box" added before its last '}'. */
static void put_json(FILE *f, const char *json, const char *extra, int html)
{
    const char *end = strrchr(json, '}');
    size_t body = (size_t)(end - json);
    char *copy = strndup(json, body);
    if (copy == NULL)
        return;
    if (html)
        put_html_safe(f, copy);
    else
        fputs(copy, f);
    free(copy);
    fputs(extra, f);
    fputs("}\n", f);
}

static int write_one(const char *path, int kind, const cli_box_t *box, const char *extra,
                     const char *words)
{
    const char *why = replaceable(path, kind);
    if (why) {
        cli_error("not writing the report file %s (%s)", path, why);
        return 0;
    }
    char tmp[PATH_MAX + 64];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.ebb-%ld.tmp", path, (long)getpid()) >= sizeof tmp) {
        cli_error("not writing the report file %s (its path is too long)", path);
        return 0;
    }
    int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = open(tmp, flags, 0600);
    if (fd < 0 && errno == EEXIST) {
        unlink(tmp);
        fd = open(tmp, flags, 0600);
    }
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL) {
        cli_error("cannot write the report file %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 0;
    }
    switch (kind) {
    case R_HTML:
        fputs(ebb__viewer_head, f);
        put_json(f, box->json, extra, 1);
        fputs(ebb__viewer_tail, f);
        break;
    case R_JSON:
        put_json(f, box->json, extra, 0);
        break;
    case R_TEXT:
        fputs(box->body, f);
        fprintf(f, "%s\n", words);
        break;
    default:
        fputs(box->folded, f);
        break;
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        cli_error("cannot write the report file %s: %s", path, strerror(errno));
        unlink(tmp);
        return 0;
    }
    return 1;
}

int cli_reports_from_box(const char *box_path, char *const *files, size_t nfiles,
                         const char *folded, int sig, int status)
{
    cli_box_t box;
    if (!cli_box_load(box_path, &box, 1) || box.json == NULL || box.json[0] == '\0' ||
        strrchr(box.json, '}') == NULL) {
        cli_error("the program left no report in its black box: no report file written");
        return 0;
    }
    long long age = (long long)time(NULL) - box.h.updated;
    if (age < 0)
        age = 0;
    char extra[256], words[256];
    const char *name = sig ? sigabbrev_np(sig) : NULL;
    if (sig) {
        snprintf(extra, sizeof extra,
                 ",\"from_black_box\":{\"signal\":%d,\"signal_name\":\"SIG%s\","
                 "\"exit_status\":null,\"record_age_seconds\":%lld}",
                 sig, name ? name : "?", age);
        snprintf(words, sizeof words,
                 "ebb run: the program was killed by signal %d (SIG%s) %llds after this record; "
                 "written from its black box",
                 sig, name ? name : "?", age);
    } else {
        snprintf(extra, sizeof extra,
                 ",\"from_black_box\":{\"signal\":null,\"signal_name\":null,"
                 "\"exit_status\":%d,\"record_age_seconds\":%lld}",
                 status, age);
        snprintf(words, sizeof words,
                 "ebb run: the program exited (status %d) without writing its report, %llds "
                 "after this record; written from its black box",
                 status, age);
    }
    int ok = 1;
    for (size_t i = 0; i < nfiles; i++)
        ok &= write_one(files[i], cli_report_kind(files[i]), &box, extra, words);
    if (folded)
        ok &= write_one(folded, R_FOLDED, &box, extra, words);
    return ok;
}
