/* EBB_LIMIT=auto read from fixture trees (tests/fixtures/limit/<layout>/:
 * proc/self/cgroup, proc/self/mountinfo, proc/meminfo, proc/self/statm and
 * the cgroup files): the right bound and source for cgroup v1, v2, hybrid,
 * nested and namespaced layouts, no limit, missing and malformed files; the
 * rlimits, N% and the headroom rule; and, in a child, EBB_LIMIT=N% with
 * EBB_LIMIT_SOFT through start-up (EBB__TEST_ROOT points a debug build at a
 * fixture).  Run from the repository's root, as make does. */
#include "unit.h"
#include "child.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define FIXTURES "tests/fixtures/limit/"
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)

/* Every fixture's statm: 25600 pages mapped, 2560 resident, 12800 data. */
#define STATM_SIZE 25600
#define STATM_RESIDENT 2560
#define STATM_DATA 12800

static const ebb__limit_inputs_t no_rlimits = {
    .committed = (size_t)4 << 20,
    .mapped = (size_t)8 << 20,
    .rlimit_as = UINT64_MAX,
    .rlimit_data = UINT64_MAX,
};

static uint64_t pages(uint64_t n)
{
    return n * ebb__os_page_size();
}

static size_t clamp(uint64_t v)
{
    return v > SIZE_MAX ? SIZE_MAX : (size_t)v;
}

/* The room the rule leaves ebb under `bound`, when the process uses
 * `foreign` bytes of it that are not ebb's. */
static uint64_t room_for(uint64_t bound, uint64_t foreign)
{
    uint64_t headroom = foreign + EBB_LIMIT_AUTO_MARGIN + (bound >> EBB_LIMIT_AUTO_MARGIN_SHIFT);
    uint64_t keep = bound / EBB_LIMIT_AUTO_MIN_SHARE;
    return headroom < bound - keep ? bound - headroom : keep;
}

/* RSS not ebb's, in a fixture with a statm: resident minus committed. */
static uint64_t fixture_foreign(void)
{
    return pages(STATM_RESIDENT) - no_rlimits.committed;
}

static void expect_in(const char *layout, const ebb__limit_inputs_t *in, unsigned percent,
                      int from, const char *source, uint64_t bound, uint64_t foreign)
{
    ebb_limit_info_t info;
    memset(&info, 0x5a, sizeof info);
    int rc = ebb__limit_derive(layout, in, percent, &info);
    if (rc != 0 || strcmp(info.source, source) != 0)
        print_error("%s: rc %d, source \"%s\", expected \"%s\"\n", layout, rc, info.source, source);
    assert_int_equal(rc, 0);
    assert_string_equal(info.source, source);
    assert_int_equal(info.from, from);
    assert_int_equal(info.percent, percent);
    /* A 32-bit process sees at most SIZE_MAX of any bound. */
    bound = clamp(bound);
    uint64_t room = room_for(bound, foreign);
    assert_int_equal(info.effective, bound);
    assert_int_equal(info.headroom, bound - room);
    assert_int_equal(info.limit, room / 100 * percent + room % 100 * percent / 100);
}

static void expect(const char *layout, int from, const char *source, uint64_t bound,
                   uint64_t foreign)
{
    expect_in(layout, &no_rlimits, 100, from, source, bound, foreign);
}

static void test_v2(void **state)
{
    (void)state;
    expect(FIXTURES "v2", EBB_LIMIT_FROM_CGROUP2,
           "cgroup v2 /sys/fs/cgroup/user.slice/app.service/memory.max", 512 * MiB,
           fixture_foreign());
}

/* memory in a hierarchy with other controllers ("7:blkio,memory,hugetlb:");
 * hierarchical_memory_limit equal to the leaf's: the leaf's file names it. */
static void test_v1(void **state)
{
    (void)state;
    expect(FIXTURES "v1", EBB_LIMIT_FROM_CGROUP1,
           "cgroup v1 /sys/fs/cgroup/memory/batch/job1/memory.limit_in_bytes", 256 * MiB,
           fixture_foreign());
}

/* v1 memory controller beside the v2 unified hierarchy, which has no
 * memory.max: as on the CI machines. */
static void test_hybrid(void **state)
{
    (void)state;
    expect(FIXTURES "hybrid", EBB_LIMIT_FROM_CGROUP1,
           "cgroup v1 /sys/fs/cgroup/memory/process_api/f89b8671/memory.limit_in_bytes", GiB,
           fixture_foreign());
}

/* An ancestor's limit below the leaf's binds. */
static void test_nested(void **state)
{
    (void)state;
    expect(FIXTURES "nested", EBB_LIMIT_FROM_CGROUP2,
           "cgroup v2 /sys/fs/cgroup/kubepods/pod1/memory.max", 256 * MiB, fixture_foreign());
    expect(FIXTURES "nested-v1", EBB_LIMIT_FROM_CGROUP1,
           "cgroup v1 /sys/fs/cgroup/memory/a/memory.limit_in_bytes", 192 * MiB,
           fixture_foreign());
}

/* Mount roots other than "/": the part of the path below the root is
 * under the mount point; a limit above the mount is seen only through
 * hierarchical_memory_limit; a mount whose root is merely a string prefix
 * of the path is not the cgroup's; a cgroup outside the mount's root
 * cannot be found. */
static void test_namespace_roots(void **state)
{
    (void)state;
    expect(FIXTURES "ns-v1", EBB_LIMIT_FROM_CGROUP1,
           "cgroup v1 /sys/fs/cgroup/memory/memory.stat hierarchical_memory_limit", 128 * MiB,
           fixture_foreign());
    expect(FIXTURES "ns-v2", EBB_LIMIT_FROM_CGROUP2, "cgroup v2 /sys/fs/cgroup/memory.max",
           768 * MiB, fixture_foreign());
    expect(FIXTURES "outside", EBB_LIMIT_FROM_MEMORY, "physical memory + swap", 5 * GiB,
           fixture_foreign());
}

/* mountinfo's octal escapes (a space is \040). */
static void test_escaped_mount_point(void **state)
{
    (void)state;
    expect(FIXTURES "escaped", EBB_LIMIT_FROM_CGROUP2, "cgroup v2 /run/cg root/app/memory.max",
           300 * MiB, fixture_foreign());
}

/* "max", 2^63 - 4096 and 2^62 all mean no limit: memory plus swap binds. */
static void test_unlimited(void **state)
{
    (void)state;
    expect(FIXTURES "unlimited", EBB_LIMIT_FROM_MEMORY, "physical memory + swap",
           (4194304 + 1048576) * (uint64_t)1024, fixture_foreign());
}

static void test_missing_files(void **state)
{
    (void)state;
    ebb_limit_info_t info;
    assert_int_equal(ebb__limit_derive(FIXTURES "does-not-exist", &no_rlimits, 100, &info), -1);
    assert_int_equal(info.limit, 0);
    assert_int_equal(info.from, EBB_LIMIT_FROM_NONE);
    assert_string_equal(info.source, "none");
    /* A cgroup but no mountinfo, and no statm: nothing measured, the
     * margin alone is kept off memory plus swap. */
    expect(FIXTURES "missing-mounts", EBB_LIMIT_FROM_MEMORY, "physical memory + swap",
           2 * GiB, 0);
}

/* Garbage lines in /proc/self/cgroup (whose last line has no newline),
 * mountinfo lines too short, without the separator or longer than the line
 * buffer (an overlay mount), a memory.max that is not a number, an empty
 * one, an unreadable meminfo and statm: what is well formed is still read. */
static void test_malformed(void **state)
{
    (void)state;
    expect(FIXTURES "malformed", EBB_LIMIT_FROM_CGROUP2, "cgroup v2 /sys/fs/cgroup/svc/memory.max",
           2 * GiB, 0);
}

/* The rlimits bound address space: their headroom is what the process has
 * mapped (RLIMIT_AS) or privately writable (RLIMIT_DATA) that is not ebb's;
 * the candidate that leaves the least room wins. */
static void test_rlimits(void **state)
{
    (void)state;
    ebb__limit_inputs_t in = no_rlimits;
    in.rlimit_as = 400 * MiB;
    in.rlimit_data = 300 * MiB;
    expect_in(FIXTURES "v2", &in, 100, EBB_LIMIT_FROM_RLIMIT_DATA, "RLIMIT_DATA", 300 * MiB,
              pages(STATM_DATA) - in.mapped);
    in.rlimit_data = UINT64_MAX;
    in.rlimit_as = 200 * MiB;
    expect_in(FIXTURES "v2", &in, 100, EBB_LIMIT_FROM_RLIMIT_AS, "RLIMIT_AS", 200 * MiB,
              pages(STATM_SIZE) - in.mapped);
    /* Far above the cgroup's: the cgroup binds. */
    in.rlimit_as = 64 * GiB;
    expect_in(FIXTURES "v2", &in, 100, EBB_LIMIT_FROM_CGROUP2,
              "cgroup v2 /sys/fs/cgroup/user.slice/app.service/memory.max", 512 * MiB,
              fixture_foreign());
}

/* N% is N percent of the room; however much is measured, half the bound
 * is left to ebb. */
static void test_percent_and_floor(void **state)
{
    (void)state;
    expect_in(FIXTURES "v2", &no_rlimits, 50, EBB_LIMIT_FROM_CGROUP2,
              "cgroup v2 /sys/fs/cgroup/user.slice/app.service/memory.max", 512 * MiB,
              fixture_foreign());
    expect_in(FIXTURES "v2", &no_rlimits, 1, EBB_LIMIT_FROM_CGROUP2,
              "cgroup v2 /sys/fs/cgroup/user.slice/app.service/memory.max", 512 * MiB,
              fixture_foreign());
    ebb__limit_inputs_t in = no_rlimits;
    in.rlimit_data = 20 * MiB; /* less than the margin and the data mapped */
    ebb_limit_info_t info;
    assert_int_equal(ebb__limit_derive(FIXTURES "v2", &in, 100, &info), 0);
    assert_int_equal(info.from, EBB_LIMIT_FROM_RLIMIT_DATA);
    assert_int_equal(info.limit, 10 * MiB);
    assert_int_equal(info.headroom, 10 * MiB);
}

/* The OS layer's readers on their own. */
static void test_os_readers(void **state)
{
    (void)state;
    ebb__os_usage_t u;
    assert_int_equal(ebb__os_usage(FIXTURES "v2", &u), 1);
    assert_int_equal(u.size, pages(STATM_SIZE));
    assert_int_equal(u.resident, pages(STATM_RESIDENT));
    assert_int_equal(u.data, pages(STATM_DATA));
    assert_int_equal(ebb__os_usage(FIXTURES "malformed", &u), 0);
    ebb__os_bound_t b;
    assert_int_equal(ebb__os_physical_memory(FIXTURES "v1", &b), 1);
    assert_int_equal(b.bytes, 8 * GiB);
    assert_int_equal(ebb__os_physical_memory(FIXTURES "malformed", &b), 0);
    assert_int_equal(ebb__os_cgroup_limit(FIXTURES "unlimited", &b), 0);
    assert_int_equal(ebb__os_cgroup_limit(FIXTURES "v2", &b), 1);
    assert_int_equal(b.cgroup, 2);
    /* The real system: some memory, and this process's own usage. */
    assert_int_equal(ebb__os_physical_memory("", &b), 1);
    assert_true(b.bytes >= 64 * MiB);
    assert_int_equal(ebb__os_usage("", &u), 1);
    assert_true(u.resident > 0 && u.resident <= u.size);
}

/* ---- child side: `test_limit_auto child info` prints the limit in force */

static int child(const char *what)
{
    if (strcmp(what, "info") != 0)
        return 2;
    ebb_limit_info_t i;
    ebb_limit_info(&i);
    printf("limit=%zu soft=%zu soft_percent=%u percent=%u from=%d effective=%zu headroom=%zu "
           "source=%s\n",
           i.limit, i.soft, i.soft_percent, i.percent, i.from, i.effective, i.headroom, i.source);
    fflush(stdout);
    return 0;
}

/* In a child before it starts: no address-space or data rlimit, which
 * auto would take as the bound (none at all where the hard limits can be
 * raised; otherwise the soft limits raised to the hard ones).  Exit 125
 * tells the test that a limit stays. */
static void lift_rlimits(void *arg)
{
    (void)arg;
    static const int which[] = { RLIMIT_AS, RLIMIT_DATA };
    for (size_t k = 0; k < ARRAY_LEN(which); k++) {
        struct rlimit r = { RLIM_INFINITY, RLIM_INFINITY };
        if (setrlimit(which[k], &r) != 0 && getrlimit(which[k], &r) == 0) {
            r.rlim_cur = r.rlim_max;
            setrlimit(which[k], &r);
        }
        if (getrlimit(which[k], &r) != 0 || r.rlim_cur != RLIM_INFINITY)
            _exit(125);
    }
}

/* The child's limit info, started with envp (and before_exec, when not
 * NULL); 0, 125 if before_exec said so, or -1 with its output shown. */
static int run_info_in(char *const envp[], void (*before_exec)(void *), ebb_limit_info_t *i,
                       char *out, size_t len)
{
    char *argv[] = { "self", "child", "info", NULL };
    int st = child_spawn(argv, envp, before_exec, NULL, out, len);
    if (child_exited(st, 125))
        return 125;
    const char *line = strstr(out, "limit=");
    memset(i, 0, sizeof *i);
    if (st != 0 || line == NULL ||
        sscanf(line, "limit=%zu soft=%zu soft_percent=%u percent=%u from=%d effective=%zu "
                     "headroom=%zu source=%511[^\n]",
               &i->limit, &i->soft, &i->soft_percent, &i->percent, &i->from, &i->effective,
               &i->headroom, i->source) != 8) {
        print_error("child: status %d, output:\n%s\n", st, out);
        return -1;
    }
    return 0;
}

static int run_info(char *const envp[], ebb_limit_info_t *i, char *out, size_t len)
{
    return run_info_in(envp, NULL, i, out, len);
}

static void test_child_percent_and_soft(void **state)
{
    (void)state;
    char out[4096];
    ebb_limit_info_t i;
    char *env[] = { "EBB_LIMIT=50%", "EBB_LIMIT_SOFT=75%", "EBB__TEST_ROOT=" FIXTURES "v2", NULL };
    assert_int_equal(run_info(env, &i, out, sizeof out), 0);
    assert_string_equal(i.source, "cgroup v2 /sys/fs/cgroup/user.slice/app.service/memory.max");
    assert_int_equal(i.from, EBB_LIMIT_FROM_CGROUP2);
    assert_int_equal(i.percent, 50);
    assert_int_equal(i.effective, 512 * MiB);
    uint64_t room = i.effective - i.headroom;
    assert_int_equal(i.limit, room / 2);
    assert_int_equal(i.soft_percent, 75);
    assert_int_equal(i.soft, i.limit / 100 * 75 + i.limit % 100 * 75 / 100);

    char *env_size[] = { "EBB_LIMIT=64M", "EBB_LIMIT_SOFT=80", NULL };
    assert_int_equal(run_info(env_size, &i, out, sizeof out), 0);
    assert_string_equal(i.source, "EBB_LIMIT");
    assert_int_equal(i.from, EBB_LIMIT_FROM_ENV);
    assert_int_equal(i.limit, 64 * MiB);
    assert_int_equal(i.soft, 64 * MiB / 100 * 80 + 64 * MiB % 100 * 80 / 100);

    char *env_bad[] = { "EBB_LIMIT=200%", "EBB_LIMIT_SOFT=0%", NULL };
    assert_int_equal(run_info(env_bad, &i, out, sizeof out), 0);
    assert_non_null(strstr(out, "ignoring EBB_LIMIT=200%"));
    assert_non_null(strstr(out, "ignoring EBB_LIMIT_SOFT=0%"));
    assert_int_equal(i.limit, 0);
    assert_string_equal(i.source, "none");
    assert_int_equal(i.soft_percent, EBB_LIMIT_SOFT_PERCENT);

    /* 1% of a 256 MiB cgroup is about 2.3 MiB: below the floor, refused. */
    char *env_tiny[] = { "EBB_LIMIT=1%", "EBB__TEST_ROOT=" FIXTURES "nested", NULL };
    assert_int_equal(run_info(env_tiny, &i, out, sizeof out), 0);
    EXPECT(strstr(out, "ebb: ignoring EBB_LIMIT=1%: it comes to ") != NULL &&
               strstr(out, " bytes, below 4 MiB, the least ebb can work in; no limit set\n"),
           "%s", out);
    assert_int_equal(i.limit, 0);
    assert_string_equal(i.source, "none");
}

/* auto with nothing to read says so and sets no limit (the child runs
 * without the rlimits this process may have, which auto would find; only
 * a finite hard limit this process may not raise stops the test). */
static void test_child_auto_nothing_found(void **state)
{
    (void)state;
    char out[4096];
    ebb_limit_info_t i;
    char *env[] = { "EBB_LIMIT=auto", "EBB__TEST_ROOT=" FIXTURES "does-not-exist", NULL };
    int rc = run_info_in(env, lift_rlimits, &i, out, sizeof out);
    if (rc == 125)
        SKIP_TEST("this process has a hard RLIMIT_AS or RLIMIT_DATA it may not raise, which "
                  "EBB_LIMIT=auto would find: no child of it can be without a limit");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "no memory bound found"));
    assert_int_equal(i.limit, 0);
    assert_string_equal(i.source, "none");
}

int main(int argc, char **argv)
{
    const char *what = child_what(argc, argv);
    if (what)
        return child(what);
    if (access(FIXTURES "v2/proc/self/cgroup", R_OK) != 0) {
        fprintf(stderr, "test_limit_auto: %s not found: run from the repository's root\n",
                FIXTURES);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_hybrid),
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_namespace_roots),
        cmocka_unit_test(test_escaped_mount_point),
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_missing_files),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_rlimits),
        cmocka_unit_test(test_percent_and_floor),
        cmocka_unit_test(test_os_readers),
        cmocka_unit_test(test_child_percent_and_soft),
        cmocka_unit_test(test_child_auto_nothing_found),
    };
    return cmocka_run_group_tests_name("limit_auto", tests, NULL, NULL);
}
