/* Every EBB_* option and value: parsed (white box), and observed in a child
 * process started with it (options are read once, at start-up).  Both are
 * tables: a new option or value is a row. */
#include "unit.h"
#include "child.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- parsing */

static ebb__options_t parsed(const char *name, const char *value)
{
    ebb__options_t o;
    setenv(name, value, 1);
    ebb__options_read(&o);
    unsetenv(name);
    return o;
}

/* A field of ebb__options_t, read through an accessor so that a row does
 * not depend on the field's type: a number compares as assert_int_equal
 * compares (as uintmax_t), a text as assert_string_equal. */
typedef struct {
    const char *name;
    uintmax_t (*number)(const ebb__options_t *o);
    const char *(*text)(const ebb__options_t *o);
} field_t;

#define NUMBER_FIELD(f)                                                       \
    static uintmax_t number_##f(const ebb__options_t *o) { return (uintmax_t)o->f; } \
    static const field_t field_##f = { #f, number_##f, NULL };
#define TEXT_FIELD(f)                                                         \
    static const char *text_##f(const ebb__options_t *o) { return o->f; }    \
    static const field_t field_##f = { #f, NULL, text_##f };

NUMBER_FIELD(heaps) NUMBER_FIELD(tcache) NUMBER_FIELD(large_cache) NUMBER_FIELD(on_error)
NUMBER_FIELD(verbose) NUMBER_FIELD(purge_delay) NUMBER_FIELD(purge_lazy) NUMBER_FIELD(purge_surplus)
NUMBER_FIELD(limit)
NUMBER_FIELD(limit_percent) NUMBER_FIELD(limit_soft) NUMBER_FIELD(limit_psi)
NUMBER_FIELD(report_off) NUMBER_FIELD(report_json) NUMBER_FIELD(report_signal)
NUMBER_FIELD(sample_rate)
TEXT_FIELD(report_path) TEXT_FIELD(blackbox_path)
NUMBER_FIELD(fault_one_in) NUMBER_FIELD(fault_seed)

/* For one variable and one field of ebb__options_t: each value the
 * variable is given, and what the field must then be (number or text). */
#define MAX_VALUES 12
typedef struct {
    const char *var;
    const field_t *field;
    struct {
        const char *value;
        uintmax_t number;
        const char *text;
    } gives[MAX_VALUES]; /* up to the first without a value */
} parse_row_t;

/* The fields' -1s: purge_delay's "never", limit_psi's "unset" (listen to
 * the kernel's pressure if it can, quietly). */
#define NEVER ((uintmax_t)-1)
#define UNSET ((uintmax_t)-1)

/* value gives the number n, or the text t */
#define V(value, n) { value, (uintmax_t)(n), NULL }
#define VT(value, t) { value, 0, t }

static const parse_row_t parse_rows[] = {
    /* 0 is invalid and 999 above the maximum: both leave the default */
    { "EBB_HEAPS", &field_heaps, { V("3", 3), V("0", 0), V("999", 0) } },
    { "EBB_TCACHE", &field_tcache, { V("0", 0), V("off", 0), V("1", 1), V("maybe", 1) } },
    { "EBB_LARGE_CACHE", &field_large_cache,
      { V("0", 0), V("16M", 16u << 20), V("512k", 512u << 10), V("1GiB", 1u << 30),
        V("lots", EBB_LARGE_CACHE_BYTES) } },
    { "EBB_ON_ERROR", &field_on_error,
      { V("abort", EBB_ON_ERROR_ABORT), V("ignore", EBB_ON_ERROR_IGNORE),
        V("warn", EBB_ON_ERROR_WARN), V("explode", EBB_ON_ERROR_DEFAULT) } },
    { "EBB_VERBOSE", &field_verbose, { V("1", 1), V("0", 0) } },
    { "EBB_PURGE_DELAY_MS", &field_purge_delay,
      { V("0", 0), V("-1", NEVER), V("250", 250), V("-2", EBB_PURGE_DELAY_MS),
        V("soon", EBB_PURGE_DELAY_MS), V("99999999999", EBB_PURGE_DELAY_MS) } },
    { "EBB_PURGE_MODE", &field_purge_lazy, { V("free", 1), V("dontneed", 0), V("later", 0) } },
    /* anything but 0/off and 1/on keeps the default: on */
    { "EBB_PURGE_SURPLUS", &field_purge_surplus,
      { V("0", 0), V("off", 0), V("1", 1), V("maybe", 1), V("-1", 1), V("2", 1) } },
    /* "50" is bytes, not percent (and below the 4 MiB floor, so refused);
     * "0%" is invalid: no limit */
    { "EBB_LIMIT", &field_limit,
      { V("512M", (size_t)512 << 20), V("1G", (size_t)1 << 30), V("lots", 0), V("auto", 0),
        V("50", 0), V("4M", (size_t)4 << 20), V("4095K", 0), V("0", 0) } },
    { "EBB_LIMIT", &field_limit_percent,
      { V("lots", 0), V("1G", 0), V("auto", 100), V("50%", 50), V("100%", 100), V("50", 0),
        V("0%", 0), V("101%", 0), V("5%%", 0), V("%", 0), V("autox", 0) } },
    { "EBB_LIMIT_SOFT", &field_limit_soft,
      { V("80%", 80), V("80", 80), V("100%", 100), V("0%", EBB_LIMIT_SOFT_PERCENT),
        V("120%", EBB_LIMIT_SOFT_PERCENT), V("high", EBB_LIMIT_SOFT_PERCENT) } },
    { "EBB_LIMIT_PSI", &field_limit_psi, { V("0", 0), V("1", 1), V("off", 0), V("maybe", UNSET) } },
    /* unset: if the kernel can */
    { "EBB_NOTHING", &field_limit_psi, { V("1", UNSET) } },
    /* Where automatic reports go, and the black box. */
    { "EBB_REPORT", &field_report_off, { V("off", 1), V("stderr", 0) } },
    { "EBB_REPORT", &field_report_path, { VT("stderr", ""), VT("/tmp/r.txt", "/tmp/r.txt") } },
    { "EBB_REPORT", &field_report_json, { V("/tmp/r.txt", 0), V("/tmp/r.json", 1) } },
    { "EBB_REPORT_FORMAT", &field_report_json, { V("json", 1), V("xml", 0) } },
    /* only USR1, USR2 and the real-time signals, by name or number */
    { "EBB_REPORT_SIGNAL", &field_report_signal,
      { V("USR2", SIGUSR2), V("SIGUSR1", SIGUSR1), V("12", SIGUSR2), V("KILL", 0), V("11", 0),
        V("4", 0), V("HUP", 0), V("WINCH", 0), V("SIGSEGV", 0), V("0", 0), V("RTMIN+x", 0) } },
    /* 0 (off), or at least 4 KiB */
    { "EBB_SAMPLE_RATE", &field_sample_rate,
      { V("0", 0), V("4K", 4096), V("1", EBB_SAMPLE_RATE_DEFAULT), V("4095", EBB_SAMPLE_RATE_DEFAULT),
        V("1M", 1 << 20) } },
    { "EBB_BLACKBOX", &field_blackbox_path, { VT("/run/box.%p", "/run/box.%p"), VT("off", "") } },
    { "EBB_NOTHING", &field_blackbox_path, { VT("1", "") } },
    /* Fault injection (debug builds): off by default; 0 is off. */
    { "EBB__FAULT_ONE_IN", &field_fault_one_in,
      { V("50", 50), V("0", 0), V("1", 1), V("2000000", 0), V("often", 0) } },
    { "EBB__FAULT_SEED", &field_fault_seed, { V("7", 7), V("0", 0), V("x", 1) } },
};

static void test_parse_each_option(void **state)
{
    (void)state;
    for (const parse_row_t *r = parse_rows; r < parse_rows + ARRAY_LEN(parse_rows); r++) {
        for (size_t k = 0; k < MAX_VALUES && r->gives[k].value; k++) {
            const char *value = r->gives[k].value;
            ebb__options_t o = parsed(r->var, value);
            if (r->field->text) {
                const char *got = r->field->text(&o), *want = r->gives[k].text;
                SOFT(strcmp(got, want) == 0, "%s=%s: %s is \"%s\", expected \"%s\"", r->var,
                     value, r->field->name, got, want);
            } else {
                uintmax_t got = r->field->number(&o), want = r->gives[k].number;
                SOFT(got == want, "%s=%s: %s is %jd, expected %jd", r->var, value,
                     r->field->name, (intmax_t)got, (intmax_t)want);
            }
        }
    }
    END_SOFT();
}

/* ---- child side: `test_options child WHAT` prints what it observes ---- */

static void *alloc_in_thread(void *arg)
{
    (void)arg;
    ebb_free(ebb_malloc(64));
    ebb_stats_t s;
    ebb_stats(&s);
    printf("threads=%zu\n", s.threads);
    return NULL;
}

static void child_heaps(void)
{
    ebb_stats_t s;
    ebb_stats(&s);
    printf("heaps=%zu\n", s.heaps);
}

static void child_tcache(void)
{
    pthread_t t;
    pthread_create(&t, NULL, alloc_in_thread, NULL);
    pthread_join(t, NULL);
}

static void child_large_cache(void)
{
    ebb_free(ebb_malloc(1 << 20));
    ebb_stats_t s;
    ebb_stats(&s);
    printf("cached=%zu\n", s.mapped_large_cached);
}

static void child_foreign(void)
{
    static char not_ours[64];
    ebb_free(not_ours + 16);
    ebb_stats_t s;
    ebb_stats(&s);
    printf("survived foreign=%zu\n", s.foreign_frees);
}

static void child_verbose(void)
{
    ebb_free(ebb_malloc(10));
}

/* What the public ebb_get_option answers, for a number, a flag, a choice,
 * and the refusals: a name that is no option, one whose value is text. */
static void child_get_option(void)
{
    static const char *const names[] = { "EBB_SAMPLE_RATE", "EBB_TCACHE", "EBB_ON_ERROR",
                                         "EBB_PURGE_DELAY_MS", "EBB_NO_SUCH", "EBB_REPORT" };
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        long long v = -7;
        errno = 0;
        int rc = ebb_get_option(names[i], &v);
        printf("%s rc=%d value=%lld%s\n", names[i], rc, v, rc && errno == ENOENT ? " ENOENT" : "");
    }
}

static const struct {
    const char *what;
    void (*run)(void);
} child_actions[] = {
    { "heaps", child_heaps }, { "tcache", child_tcache }, { "large_cache", child_large_cache },
    { "foreign", child_foreign }, { "verbose", child_verbose },
    { "get_option", child_get_option },
};

static int child(const char *what)
{
    for (size_t i = 0; i < ARRAY_LEN(child_actions); i++)
        if (!strcmp(what, child_actions[i].what))
            child_actions[i].run();
    fflush(stdout);
    return 0;
}

/* ---- parent side: each run is this binary as a child with one variable
 * set, both output streams captured ---- */

#define MAX_RUNS 3
#define MAX_STRINGS 3

typedef struct {
    const char *what;                 /* the child's action (child_actions) */
    const char *env;                  /* its one setting */
    int signal;                       /* the signal that must kill it; 0: it must exit 0 */
    const char *present[MAX_STRINGS]; /* strings its output must have */
    const char *absent[MAX_STRINGS];  /* and must not */
} child_run_t;

typedef struct {
    const char *name;
    child_run_t runs[MAX_RUNS]; /* up to the first without a `what` */
} child_test_t;

static const child_test_t child_tests[] = {
    { "test_child_heaps", {
        { "heaps", "EBB_HEAPS=3", 0, { "heaps=3" }, { NULL } },
    } },
    { "test_child_tcache_off", {
        { "tcache", "EBB_TCACHE=0", 0, { "threads=0" }, { NULL } },
        { "tcache", "EBB_TCACHE=1", 0, { NULL }, { "threads=0" } },
    } },
    { "test_child_large_cache", {
        { "large_cache", "EBB_LARGE_CACHE=0", 0, { "cached=0\n" }, { NULL } },
        { "large_cache", "EBB_LARGE_CACHE=8M", 0, { "cached=1048576\n" }, { NULL } },
    } },
    { "test_child_on_error", {
        { "foreign", "EBB_ON_ERROR=warn", 0,
          { "ebb: free(0x", "not allocated by ebb", "survived foreign=1" }, { NULL } },
        { "foreign", "EBB_ON_ERROR=ignore", 0, { "survived foreign=1" }, { "ebb: free(" } },
        { "foreign", "EBB_ON_ERROR=abort", SIGABRT, { "not allocated by ebb" }, { "survived" } },
    } },
    { "test_child_verbose", {
        { "verbose", "EBB_VERBOSE=1", 0, { "statistics", "mapped" }, { NULL } },
        { "verbose", "EBB_VERBOSE=0", 0, { NULL }, { "statistics" } },
    } },
    { "test_child_bad_value_is_reported", {
        { "heaps", "EBB_HEAPS=many", 0, { "ignoring EBB_HEAPS=many" }, { NULL } },
    } },
    { "test_child_get_option", {
        { "get_option", "EBB_SAMPLE_RATE=64K", 0,
          { "EBB_SAMPLE_RATE rc=0 value=65536\n", "EBB_TCACHE rc=0 value=1\n",
            "EBB_PURGE_DELAY_MS rc=0 value=100\n" },
          { "EBB_NO_SUCH rc=0", "EBB_REPORT rc=0" } },
        { "get_option", "EBB_ON_ERROR=ignore", 0,
          { "EBB_ON_ERROR rc=0 value=2\n", "EBB_NO_SUCH rc=-1 value=-7 ENOENT\n",
            "EBB_REPORT rc=-1 value=-7 ENOENT\n" },
          { NULL } },
        { "get_option", "EBB_TCACHE=off", 0, { "EBB_TCACHE rc=0 value=0\n" }, { NULL } },
    } },
};

/* The runs of one child_tests entry, its cmocka state. */
static void test_child_runs(void **state)
{
    const child_test_t *t = *state;
    for (const child_run_t *r = t->runs; r < t->runs + MAX_RUNS && r->what; r++) {
        char out[8192];
        int st = child_run_env(r->what, &r->env, 1, out, sizeof out);
        if (r->signal)
            EXPECT(child_killed(st, r->signal), "child %s with %s: status %#x, not signal %d:\n%s",
                   r->what, r->env, st, r->signal, out);
        else
            EXPECT(st == 0, "child %s with %s: status %#x, not exit 0:\n%s", r->what, r->env, st,
                   out);
        for (size_t k = 0; k < MAX_STRINGS && r->present[k]; k++)
            EXPECT(strstr(out, r->present[k]) != NULL, "child %s with %s: no \"%s\" in:\n%s",
                   r->what, r->env, r->present[k], out);
        for (size_t k = 0; k < MAX_STRINGS && r->absent[k]; k++)
            EXPECT(strstr(out, r->absent[k]) == NULL, "child %s with %s: \"%s\" in:\n%s",
                   r->what, r->env, r->absent[k], out);
    }
}

int main(int argc, char **argv)
{
    const char *what = child_what(argc, argv);
    if (what)
        return child(what);
    struct CMUnitTest tests[1 + ARRAY_LEN(child_tests)] = {
        cmocka_unit_test(test_parse_each_option),
    };
    for (size_t i = 0; i < ARRAY_LEN(child_tests); i++)
        tests[1 + i] = (struct CMUnitTest){ .name = child_tests[i].name,
                                            .test_func = test_child_runs,
                                            .initial_state = (void *)&child_tests[i] };
    return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
