/*
 * main.c -- the `ebb` command-line tool: dispatch and the shared helpers.
 *
 *   ebb run [options] [--] command [args...]   run a command with ebb as its
 *                                              memory manager (run.c)
 *   ebb blackbox FILE                          print a black box (box.c)
 *   ebb map [--json] PID | -- command [args]  draw a process's address
 *                                              space (map.c)
 *   ebb options [--markdown]                   the EBB_* variables (options.c)
 *   ebb version | --version                    print the version
 *   ebb help | --help                          print this overview
 *
 * The tool itself is an ordinary program on the C library's malloc: it
 * prepares an environment and starts the command; ebb lives in the child.
 */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../include/ebb.h"
#include "../src/base/size.h"

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ebb: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int usable_file(const char *path)
{
    return access(path, R_OK) == 0;
}

/* path made absolute into out; 0 if it cannot be, or does not fit. */
static int absolute_into(const char *path, char *out, size_t len)
{
    char *abs = realpath(path, NULL);
    int ok = abs && strlen(abs) < len;
    if (ok)
        strcpy(out, abs);
    free(abs);
    return ok;
}

int cli_find_library(char *out, size_t len)
{
    const char *env = getenv("EBB_LIB");
    if (env && *env) {
        if (!usable_file(env)) {
            cli_error("EBB_LIB=%s: %s", env, strerror(errno));
            return 0;
        }
        return absolute_into(env, out, len);
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return 0;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return 0;
    *slash = '\0';
    static const char *const where[] = { "%s/libebb.so", "%s/../lib/libebb.so" };
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        char candidate[PATH_MAX + 32];
        snprintf(candidate, sizeof candidate, where[i], exe);
        if (usable_file(candidate) && absolute_into(candidate, out, len))
            return 1;
    }
    return 0;
}

int cli_check_limit(const char *s)
{
    size_t bytes;
    unsigned percent;
    switch (ebb__check_limit(s, &bytes, &percent)) {
    case EBB_VALUE_OK:
        return 1;
    case EBB_VALUE_LOW:
        cli_error("--limit %s: below %zu MiB, the least ebb can work in", s,
                  (size_t)EBB_LIMIT_FLOOR >> 20);
        return 0;
    default:
        cli_error("--limit %s: expected a size such as 512M or 2G, N%% of the effective limit, "
                  "or auto", s);
        return 0;
    }
}

int cli_check_purge_delay(const char *s)
{
    long ms;
    switch (ebb__check_delay(s, &ms)) {
    case EBB_VALUE_OK:
        return 1;
    case EBB_VALUE_HIGH:
        cli_error("--purge-delay %s: more than %ld ms, a day (-1: never)", s,
                  (long)EBB_PURGE_DELAY_MAX_MS);
        return 0;
    default:
        cli_error("--purge-delay %s: expected milliseconds (0 at once, -1 never)", s);
        return 0;
    }
}

static void usage(FILE *to)
{
    fputs("usage: ebb <command> [options]\n"
          "\n"
          "commands:\n"
          "  run [options] [--] program [args...]\n"
          "                 run a program with ebb as its memory manager: its malloc,\n"
          "                 and for Python all of CPython's allocations\n"
          "  blackbox FILE  print the last state a process kept in its black box\n"
          "  map [--json] PID | map [options] -- program [args...]\n"
          "                 draw the address space of a process (any process, 32- or\n"
          "                 64-bit): what is mapped where, RSS per kind, the largest\n"
          "                 free regions (ebb map --help)\n"
          "  options        the EBB_* environment variables libebb.so reads\n"
          "  version        print ebb's version\n"
          "  help           print this help (ebb run --help: the options of run)\n",
          to);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EBB_CLI_USAGE_ERROR;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "blackbox"))
        return cmd_blackbox(argc - 1, argv + 1);
    if (!strcmp(cmd, "map"))
        return cmd_map(argc - 1, argv + 1);
    if (!strcmp(cmd, "options"))
        return cmd_options(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("ebb %s\n", EBB_VERSION_STRING);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    cli_error("unknown command '%s' (ebb --help lists the commands)", cmd);
    return EBB_CLI_USAGE_ERROR;
}
