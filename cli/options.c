/*
 * options.c -- `ebb options`: the EBB_* variables libebb.so reads, from the
 * library's own table (src/base/options_table.h).
 *
 *   ebb options              each variable, its values, default and meaning
 *   ebb options --markdown   the same as the README's table (a test checks
 *                            that the README holds exactly this)
 *
 * `ebb run --help` lists them too.  Printing from the table the library
 * parses with means a new option, or a changed default, reaches the help and
 * the README without anyone remembering to update them.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "../src/base/options_table.h"

typedef struct {
    const char *name, *syntax, *default_text, *doc;
    int user; /* documented for users (not set by `ebb run`, not a test's) */
} option_doc_t;

#define EBB_OPTION_DOC(name, field, kind, dflt, min, max, syntax, dtext, doc, audience)           \
    { "EBB_" #name, syntax, dtext, doc, EBB_OPTION_AUDIENCE_##audience },
#define EBB_OPTION_AUDIENCE_USER 1
#define EBB_OPTION_AUDIENCE_LAUNCH 0
#define EBB_OPTION_AUDIENCE_TEST 0

static const option_doc_t options[] = { EBB_OPTIONS(EBB_OPTION_DOC) };
#define NOPTIONS (sizeof options / sizeof options[0])

/* The text without Markdown's code marks, for a terminal. */
static void put_plain(FILE *to, const char *s)
{
    for (; *s; s++)
        if (*s != '`' && *s != '*')
            fputc(*s, to);
}

/* Words of s after `indent` spaces, wrapped before column `width`. */
static void put_wrapped(FILE *to, const char *s, int indent, int width)
{
    int col = width; /* start a line at the first word */
    while (*s) {
        while (*s == ' ')
            s++;
        size_t n = strcspn(s, " ");
        int shown = 0;
        for (size_t i = 0; i < n; i++)
            shown += s[i] != '`' && s[i] != '*';
        if (col + 1 + shown > width) {
            fprintf(to, "%s%*s", col == width && indent == 0 ? "" : "\n", indent, "");
            col = indent;
        } else {
            fputc(' ', to);
            col++;
        }
        for (size_t i = 0; i < n; i++)
            if (s[i] != '`' && s[i] != '*')
                fputc(s[i], to);
        col += shown;
        s += n;
    }
    fputc('\n', to);
}

void cli_print_options(FILE *to)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        const option_doc_t *o = &options[i];
        if (!o->user)
            continue;
        fprintf(to, "  %s=%s (default: ", o->name, o->syntax);
        put_plain(to, o->default_text);
        fputs(")", to);
        put_wrapped(to, o->doc, 6, 78);
    }
}

/* '|' inside a Markdown table cell is written "\|". */
static void put_cell(FILE *to, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', to);
        fputc(*s, to);
    }
}

static void print_markdown(FILE *to)
{
    fputs("| variable | default | meaning |\n| --- | --- | --- |\n", to);
    for (size_t i = 0; i < NOPTIONS; i++) {
        const option_doc_t *o = &options[i];
        if (!o->user)
            continue;
        fprintf(to, "| `%s=", o->name);
        put_cell(to, o->syntax);
        fputs("` | ", to);
        put_cell(to, o->default_text);
        fputs(" | ", to);
        put_cell(to, o->doc);
        fputs(" |\n", to);
    }
}

int cmd_options(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--markdown")) {
        print_markdown(stdout);
        return 0;
    }
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        puts("usage: ebb options [--markdown]\n\n"
             "The EBB_* environment variables libebb.so reads at start-up; an invalid\n"
             "value is reported on stderr and the default used.  --markdown prints\n"
             "them as the README's table.");
        return 0;
    }
    if (argc != 1) {
        cli_error("options: unknown argument '%s' (usage: ebb options [--markdown])", argv[1]);
        return EBB_CLI_USAGE_ERROR;
    }
    puts("libebb.so reads these at start-up (an invalid value is reported on stderr\n"
         "and the default used):\n");
    cli_print_options(stdout);
    return 0;
}
