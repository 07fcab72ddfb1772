/* cli.h -- what the subcommands of the `ebb` tool share. */
#ifndef EBB_CLI_H
#define EBB_CLI_H

#include <stddef.h>
#include <stdio.h>

#define EBB_CLI_USAGE_ERROR 2 /* bad arguments, as most tools */

/* Print "ebb: <message>\n" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The libebb.so this tool belongs to: $EBB_LIB if set, else beside the
 * executable (a build tree), else in ../lib (an installed prefix).  Writes
 * an absolute path into out; 0 if none exists. */
int cli_find_library(char *out, size_t len);

/* A value of --limit or --purge-delay, by the rules EBB_LIMIT and
 * EBB_PURGE_DELAY_MS are read with (src/base/size.h: the same functions
 * and bounds): 1, or 0 after saying on stderr what is wrong with it, so a
 * value the library would refuse in every child is refused here, once. */
int cli_check_limit(const char *s);
int cli_check_purge_delay(const char *s);

int cmd_run(int argc, char **argv);
int cmd_options(int argc, char **argv);
/* The EBB_* variables users set, one entry each (options.c). */
void cli_print_options(FILE *to);
int cmd_blackbox(int argc, char **argv);
/* `ebb map`: the address space of a process, drawn (map.c). */
int cmd_map(int argc, char **argv);

#include "../src/insight/blackbox.h"

/* A black box read whole (box.c): its header and the current slot's texts
 * (json and folded NULL in a version 1 box, "" when the process kept
 * none); pointers into a static copy that the next load replaces. */
typedef struct {
    ebb__blackbox_t h;
    const char *text;   /* the counters line, then the text report */
    const char *body;   /* the text report alone */
    const char *json, *folded;
} cli_box_t;
int cli_box_load(const char *path, cli_box_t *box, int quiet);
/* The report files and folded stacks (NULL none) of `ebb run --report`,
 * made from the box a program left (report.c): it died of signal sig, or
 * (sig 0) exited with status without writing them.  1 if all were written. */
int cli_reports_from_box(const char *box_path, char *const *files, size_t nfiles,
                         const char *folded, int sig, int status);
/* After `ebb run`'s program died of SIGKILL: what its black box says. */
void box_summary(const char *path, const char *prog);

#endif
