/*
 * box.c -- reading a black box (src/insight/blackbox.h): `ebb blackbox FILE`, and
 * the summary `ebb run` prints when its program was killed by SIGKILL.
 *
 * The box's current slot is whole whenever the writer was stopped (the
 * writer publishes a slot only after filling it), so a box left by a
 * killed process is read as it stands; a box still being written may show
 * a slot one refresh old.
 */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../src/insight/blackbox.h"

/* The crash note's line (src/insight/crash.c) the header holds, or "". */
static const char *box_note(const ebb__blackbox_t *h)
{
    static char line[EBB_BLACKBOX_NOTE + 2];
    size_t n = h->note_len < EBB_BLACKBOX_NOTE ? h->note_len : EBB_BLACKBOX_NOTE;
    memcpy(line, h->note, n);
    if (n > 0 && line[n - 1] != '\n')
        line[n++] = '\n';
    line[n] = '\0';
    return line;
}

/* The current slot's text into out (NUL-terminated) and the header into
 * *h; 0 with a message if the file is not a box or holds nothing yet. */
static int box_read(const char *path, ebb__blackbox_t *h, char *out, size_t len, int quiet)
{
    static char file[EBB_BLACKBOX_FILE_SIZE];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (!quiet)
            cli_error("%s: %s", path, strerror(errno));
        return 0;
    }
    ssize_t n = read(fd, file, sizeof file);
    close(fd);
    memcpy(h, file, sizeof *h);
    if (n < (ssize_t)sizeof file || memcmp(h->magic, EBB_BLACKBOX_MAGIC, 8) != 0 ||
        h->version != EBB_BLACKBOX_VERSION || h->slot_size != EBB_BLACKBOX_SLOT ||
        h->current > 1) {
        if (!quiet)
            cli_error("%s: not an ebb black box (version %u)", path, EBB_BLACKBOX_VERSION);
        return 0;
    }
    if (h->seq == 0) {
        if (!quiet)
            cli_error("%s: the process recorded nothing yet", path);
        return 0;
    }
    const char *slot = file + EBB_BLACKBOX_HEADER + h->current * EBB_BLACKBOX_SLOT;
    size_t k = strnlen(slot, EBB_BLACKBOX_SLOT);
    if (k >= len)
        k = len - 1;
    memcpy(out, slot, k);
    out[k] = '\0';
    return 1;
}

/* key=value from the slot's first line; 0 if absent. */
static unsigned long long counter(const char *text, const char *key)
{
    size_t klen = strlen(key);
    const char *eol = strchr(text, '\n');
    for (const char *at = text; at && (!eol || at < eol); at = strchr(at, ' ')) {
        if (*at == ' ')
            at++;
        if (strncmp(at, key, klen) == 0 && at[klen] == '=')
            return strtoull(at + klen + 1, NULL, 10);
    }
    return 0;
}

static void print_size(FILE *to, unsigned long long n)
{
    static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        fprintf(to, "%llu B", n);
    else
        fprintf(to, "%.1f %s", v, unit[u]);
}

void box_summary(const char *path, const char *prog)
{
    ebb__blackbox_t h;
    static char text[EBB_BLACKBOX_SLOT];
    if (!box_read(path, &h, text, sizeof text, 1)) {
        fprintf(stderr, "ebb: %s left no black box state (it may not have allocated through ebb)\n",
                prog);
        return;
    }
    long long ago = (long long)time(NULL) - h.updated;
    fprintf(stderr, "ebb: at its last record (%llds before its death was seen), ebb held ",
            ago < 0 ? 0 : ago);
    print_size(stderr, counter(text, "committed"));
    fputs(" committed (peak ", stderr);
    print_size(stderr, counter(text, "peak_committed"));
    fputs("), ", stderr);
    print_size(stderr, counter(text, "live"));
    fputs(" of it live; the process's RSS was ", stderr);
    print_size(stderr, counter(text, "rss"));
    unsigned long long limit = counter(text, "limit");
    if (limit) {
        fputs("; ebb's limit ", stderr);
        print_size(stderr, limit);
    }
    fputs(".\n", stderr);
    fputs(box_note(&h), stderr);
    fputs("ebb: its last record:\n", stderr);
    const char *body = strchr(text, '\n');
    fputs(body ? body + 1 : text, stderr);
}

int cmd_blackbox(int argc, char **argv)
{
    if (argc != 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs("usage: ebb blackbox FILE\n\n"
              "Print the last state a process kept in its black box (EBB_BLACKBOX=FILE).\n",
              argc == 2 ? stdout : stderr);
        return argc == 2 ? 0 : EBB_CLI_USAGE_ERROR;
    }
    ebb__blackbox_t h;
    static char text[EBB_BLACKBOX_SLOT];
    if (!box_read(argv[1], &h, text, sizeof text, 0))
        return 1;
    char started[32], updated[32];
    time_t t0 = (time_t)h.started, t1 = (time_t)h.updated;
    strftime(started, sizeof started, "%Y-%m-%d %H:%M:%S", localtime(&t0));
    strftime(updated, sizeof updated, "%Y-%m-%d %H:%M:%S", localtime(&t1));
    printf("black box of pid %lld, started %s, last refresh %s (refresh %llu)\n",
           (long long)h.pid, started, updated, (unsigned long long)h.seq);
    fputs(box_note(&h), stdout); /* its last words, if a fault followed a refusal */
    const char *body = strchr(text, '\n');
    fputs(body ? body + 1 : text, stdout);
    return 0;
}
