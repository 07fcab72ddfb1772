/*
 * box.c -- reading a black box (src/insight/blackbox.h): `ebb blackbox FILE`, and
 * the summary `ebb run` prints when its program was killed by SIGKILL.
 *
 * The box's current slot is whole whenever the writer was stopped (the
 * writer publishes a slot only after filling it), so a box left by a
 * killed process is read as it stands; a box still being written may show
 * a slot one refresh old.  Both layouts are read: version 1 (a text a
 * slot) and version 2 (the text, the brief JSON and the folded stacks:
 * cli/report.c makes the report files from the last two).
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

/* The box at path, read whole (version 1 or 2), into *box: its header and
 * the current slot's texts, pointers into a static copy (the next load
 * replaces them); 0 with a message (unless quiet) if the file is not a box
 * or holds nothing yet. */
int cli_box_load(const char *path, cli_box_t *box, int quiet)
{
    static char file[EBB_BLACKBOX_FILE_SIZE + 1];
    ebb__blackbox_t *h = &box->h;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (!quiet)
            cli_error("%s: %s", path, strerror(errno));
        return 0;
    }
    ssize_t n = read(fd, file, sizeof file);
    close(fd);
    memset(h, 0, sizeof *h);
    memcpy(h, file, n > (ssize_t)sizeof *h ? sizeof *h : (size_t)(n > 0 ? n : 0));
    int v1 = h->version == 1 && h->slot_size == EBB_BLACKBOX_V1_SLOT &&
             n == (ssize_t)EBB_BLACKBOX_V1_FILE_SIZE;
    int v2 = h->version == 2 && h->slot_size == EBB_BLACKBOX_SLOT &&
             h->text_size == EBB_BLACKBOX_TEXT && h->json_size == EBB_BLACKBOX_JSON &&
             h->folded_size == EBB_BLACKBOX_FOLDED && n == (ssize_t)EBB_BLACKBOX_FILE_SIZE;
    if (n < (ssize_t)sizeof *h || memcmp(h->magic, EBB_BLACKBOX_MAGIC, 8) != 0 || !(v1 || v2) ||
        h->current > 1) {
        if (!quiet)
            cli_error("%s: not an ebb black box (versions 1 and 2 are read)", path);
        return 0;
    }
    if (h->seq == 0) {
        if (!quiet)
            cli_error("%s: the process recorded nothing yet", path);
        return 0;
    }
    char *slot = file + EBB_BLACKBOX_HEADER + h->current * h->slot_size;
    /* Each text ends within its room, whatever the file holds. */
    size_t text = v1 ? EBB_BLACKBOX_V1_SLOT : EBB_BLACKBOX_TEXT;
    slot[text - 1] = '\0';
    box->text = slot;
    const char *nl = strchr(slot, '\n');
    box->body = nl ? nl + 1 : slot;
    box->json = box->folded = NULL;
    if (v2) {
        char *json = slot + EBB_BLACKBOX_TEXT, *folded = json + EBB_BLACKBOX_JSON;
        json[EBB_BLACKBOX_JSON - 1] = folded[EBB_BLACKBOX_FOLDED - 1] = '\0';
        box->json = json;
        box->folded = folded;
    }
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
    cli_box_t box;
    if (!cli_box_load(path, &box, 1)) {
        fprintf(stderr, "ebb: %s left no black box state (it may not have allocated through ebb)\n",
                prog);
        return;
    }
    const char *text = box.text;
    long long ago = (long long)time(NULL) - box.h.updated;
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
    fputs(box_note(&box.h), stderr);
    fputs("ebb: its last record:\n", stderr);
    fputs(box.body, stderr);
}

int cmd_blackbox(int argc, char **argv)
{
    if (argc != 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs("usage: ebb blackbox FILE\n\n"
              "Print the last state a process kept in its black box (EBB_BLACKBOX=FILE).\n",
              argc == 2 ? stdout : stderr);
        return argc == 2 ? 0 : EBB_CLI_USAGE_ERROR;
    }
    cli_box_t box;
    if (!cli_box_load(argv[1], &box, 0))
        return 1;
    const ebb__blackbox_t h = box.h;
    char started[32], updated[32];
    time_t t0 = (time_t)h.started, t1 = (time_t)h.updated;
    strftime(started, sizeof started, "%Y-%m-%d %H:%M:%S", localtime(&t0));
    strftime(updated, sizeof updated, "%Y-%m-%d %H:%M:%S", localtime(&t1));
    printf("black box of pid %lld, started %s, last refresh %s (refresh %llu)\n",
           (long long)h.pid, started, updated, (unsigned long long)h.seq);
    fputs(box_note(&box.h), stdout); /* its last words, if a fault followed a refusal */
    fputs(box.body, stdout);
    return 0;
}
