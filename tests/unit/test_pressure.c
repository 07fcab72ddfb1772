/* Listening to the kernel (pressure.c, the OS layer's pressure files): the
 * trigger written, the files found in fixture trees (cgroup v2 with and
 * without a binding memory.max, the root cgroup, no PSI), memory.events
 * counted, an event delivered as POLLPRI by a stand-in descriptor (TCP
 * urgent data: the one ordinary file descriptor that polls POLLPRI), what
 * an event does (a purge at once, the soft callbacks once per episode), the
 * watcher thread end to end on the stand-in, and a real trigger on
 * /proc/pressure/memory when the kernel has PSI and allows it. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ fixtures */

static char tree[64];

/* tree/path with `text`, its directories made. */
static void put(const char *path, const char *text)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s", tree, path);
    for (char *s = full + strlen(tree) + 1; (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        mkdir(full, 0755);
        *s = '/';
    }
    FILE *f = fopen(full, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void slurp(const char *path, char *buf, size_t len)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s", tree, path);
    int fd = open(full, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    assert_true(n >= 0);
    buf[n] = '\0';
}

static int new_tree(void **state)
{
    (void)state;
    strcpy(tree, "/tmp/ebb-psi-XXXXXX");
    assert_non_null(mkdtemp(tree));
    return 0;
}

static int drop_tree(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tree);
    return system(cmd) == 0 ? 0 : -1;
}

static const char v2_mount[] = "30 23 0:26 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n";
static const char events[] = "low 0\nhigh 3\nmax 2\noom 0\noom_kill 0\n";

/* ----------------------------------------------------------- OS layer */

/* The trigger goes to the kernel in one write, with its NUL. */
static void test_trigger_text(void **state)
{
    (void)state;
    assert_string_equal(ebb__pressure_trigger, "some 300000 2000000");
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(ebb__os_psi_arm(p[1], ebb__pressure_trigger), 0);
    char buf[64];
    ssize_t n = read(p[0], buf, sizeof buf);
    assert_int_equal(n, (ssize_t)sizeof "some 300000 2000000");
    assert_memory_equal(buf, "some 300000 2000000", sizeof "some 300000 2000000");
    close(p[0]);
    close(p[1]);
}

/* The ancestor whose memory.max binds is watched, with its memory.events. */
static void test_cgroup_with_binding_ancestor(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "0::/app/worker\n");
    put("/proc/self/mountinfo", v2_mount);
    put("/sys/fs/cgroup/app/memory.max", "67108864\n");
    put("/sys/fs/cgroup/app/memory.pressure", "");
    put("/sys/fs/cgroup/app/memory.events", events);
    put("/sys/fs/cgroup/app/worker/memory.max", "max\n");
    put("/sys/fs/cgroup/app/worker/memory.pressure", "");
    put("/sys/fs/cgroup/app/worker/memory.events", "high 0\nmax 0\n");
    ebb__os_pressure_t h;
    assert_int_equal(ebb__os_pressure_open(tree, ebb__pressure_trigger, &h), 0);
    assert_string_equal(h.source, "/sys/fs/cgroup/app/memory.pressure");
    assert_true(h.psi >= 0 && h.events >= 0);
    assert_int_equal(h.seen, 5); /* high 3 + max 2 */
    ebb__os_pressure_close(&h);
    assert_true(h.psi == -1 && h.events == -1);
    char buf[64];
    slurp("/sys/fs/cgroup/app/memory.pressure", buf, sizeof buf);
    assert_string_equal(buf, "some 300000 2000000");
    slurp("/sys/fs/cgroup/app/worker/memory.pressure", buf, sizeof buf);
    assert_string_equal(buf, "");
}

/* No memory.max anywhere: the process's own cgroup. */
static void test_cgroup_own(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "12:memory:/elsewhere\n0::/app/worker\n");
    put("/proc/self/mountinfo", v2_mount);
    put("/sys/fs/cgroup/app/memory.pressure", "");
    put("/sys/fs/cgroup/app/worker/memory.pressure", "");
    put("/sys/fs/cgroup/app/worker/memory.events", events);
    ebb__os_pressure_t h;
    assert_int_equal(ebb__os_pressure_open(tree, ebb__pressure_trigger, &h), 0);
    assert_string_equal(h.source, "/sys/fs/cgroup/app/worker/memory.pressure");
    assert_int_equal(h.seen, 5);
    ebb__os_pressure_close(&h);
}

/* The root cgroup (here, and a cgroup v1 machine's unified mount): the
 * system's file, no memory.events. */
static void test_root_cgroup_uses_system_file(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "4:memory:/job\n0::/\n");
    put("/proc/self/mountinfo", "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
    put("/sys/fs/cgroup/unified/memory.pressure", "");
    put("/proc/pressure/memory", "");
    ebb__os_pressure_t h;
    assert_int_equal(ebb__os_pressure_open(tree, ebb__pressure_trigger, &h), 0);
    assert_string_equal(h.source, "/proc/pressure/memory");
    assert_true(h.psi >= 0 && h.events == -1);
    ebb__os_pressure_close(&h);
    char buf[64];
    slurp("/proc/pressure/memory", buf, sizeof buf);
    assert_string_equal(buf, "some 300000 2000000");
}

/* No PSI at all (a kernel without it, or booted psi=0). */
static void test_no_psi(void **state)
{
    (void)state;
    put("/proc/self/cgroup", "0::/\n");
    put("/proc/self/mountinfo", v2_mount);
    ebb__os_pressure_t h;
    errno = 0;
    assert_int_equal(ebb__os_pressure_open(tree, ebb__pressure_trigger, &h), -1);
    assert_int_equal(errno, ENOENT);
    assert_true(h.psi == -1 && h.events == -1 && h.source[0] == '\0');
}

/* memory.events: only high and max count, and only growth is an event. */
static void test_events_grow(void **state)
{
    (void)state;
    put("/ev", events);
    char full[512];
    snprintf(full, sizeof full, "%s/ev", tree);
    ebb__os_pressure_t h = { .psi = -1, .events = -1 };
    int fd = open(full, O_RDONLY);
    assert_int_equal(ebb__os_pressure_events_open(&h, fd), 0);
    assert_int_equal(h.seen, 5);
    assert_int_equal(ebb__os_pressure_events_grew(&h), 0);
    put("/ev", "low 9\nhigh 3\nmax 2\noom 1\noom_kill 1\n");
    assert_int_equal(ebb__os_pressure_events_grew(&h), 0);
    put("/ev", "low 9\nhigh 4\nmax 2\noom 1\noom_kill 1\n");
    assert_int_equal(ebb__os_pressure_events_grew(&h), EBB__OS_PRESSURE_EVENTS);
    assert_int_equal(h.seen, 6);
    assert_int_equal(ebb__os_pressure_events_grew(&h), 0);
    put("/ev", "");
    assert_int_equal(ebb__os_pressure_events_grew(&h), EBB__OS_PRESSURE_GONE);
    ebb__os_pressure_close(&h);
}

/* A connected loopback TCP pair: urgent data on *tx makes *rx poll POLLPRI,
 * as a PSI trigger's descriptor does when it fires.  0 if none can be made. */
static int urgent_pair(int *rx, int *tx)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) != 0)
        return 0;
    *tx = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*tx < 0 || connect(*tx, (struct sockaddr *)&a, sizeof a) != 0)
        return 0;
    *rx = accept(l, NULL, NULL);
    close(l);
    return *rx >= 0;
}

static void urgent_take(int rx)
{
    char c;
    assert_int_equal(recv(rx, &c, 1, MSG_OOB), 1);
}

static void test_wait_sees_pollpri(void **state)
{
    (void)state;
    int rx, tx;
    if (!urgent_pair(&rx, &tx))
        SKIP_TEST("no loopback TCP connection to send urgent data on: %s", strerror(errno));
    ebb__os_pressure_t h = { .psi = -1, .events = -1 };
    ebb__os_pressure_adopt(&h, rx);
    assert_int_equal(ebb__os_pressure_wait(&h, 0), 0);
    char plain = 'x';
    assert_int_equal(send(tx, &plain, 1, 0), 1); /* ordinary data is not pressure */
    assert_int_equal(ebb__os_pressure_wait(&h, 50), 0);
    assert_int_equal(send(tx, "!", 1, MSG_OOB), 1);
    assert_int_equal(ebb__os_pressure_wait(&h, 5000), EBB__OS_PRESSURE_PSI);
    urgent_take(rx);
    assert_int_equal(ebb__os_pressure_wait(&h, 0), 0);
    ebb__os_pressure_t none = { .psi = -1, .events = -1 };
    assert_int_equal(ebb__os_pressure_wait(&none, 0), EBB__OS_PRESSURE_GONE);
    /* The program closes the descriptor and gets its number again for a
     * file of its own: ebb gives the watch up and never closes the file. */
    int other = open("/dev/null", O_RDONLY);
    assert_true(other >= 0);
    int mine = dup2(other, rx); /* closes rx, the number now names the program's file */
    close(other);
    assert_int_equal(mine, rx);
    assert_int_equal(ebb__os_pressure_wait(&h, 0), EBB__OS_PRESSURE_GONE);
    assert_int_equal(h.psi, -1);
    ebb__os_pressure_adopt(&h, rx); /* as if the watch had not noticed yet */
    h.psi_id[1] ^= 1;
    ebb__os_pressure_close(&h);
    assert_true(fcntl(mine, F_GETFD) >= 0); /* still open: not ebb's to close */
    close(mine);
    close(tx);
}

/* ------------------------------------------------------- what an event does */

static int calls, last_level;

static void on_pressure(void *arg, int level, size_t request, size_t committed, size_t limit)
{
    (void)arg;
    (void)request;
    (void)committed;
    (void)limit;
    calls++;
    last_level = level;
}

/* A slow path that holds no lock at its end: a large block's. */
static void slow_path(void)
{
    void *p = ebb_malloc(1 << 20);
    assert_non_null(p);
    ebb_free(p);
}

/* Free small blocks, then an event: they go back at once, and the soft
 * callbacks run once at the next slow path, however many events came. */
static void test_event_purges_and_owes_callbacks_once(void **state)
{
    (void)state;
    unit_quiet_purger();
    ebb_set_limit((size_t)1 << 30);
    calls = 0;
    assert_int_equal(ebb_on_pressure(on_pressure, NULL), 0);
    enum { N = 8192 };
    static void *blk[N];
    for (int i = 0; i < N; i++)
        blk[i] = ebb_malloc(1024);
    for (int i = 0; i < N; i++)
        ebb_free(blk[i]);
    ebb_stats_t before, after;
    ebb_stats(&before);
    ebb_limit_info_t li0, li1;
    ebb_limit_info(&li0);
    ebb__pressure_event();
    ebb__pressure_event();
    ebb_stats(&after);
    ebb_limit_info(&li1);
    assert_int_equal(li1.pressure_events, li0.pressure_events + 2);
    assert_true(after.purged >= before.purged + 4 * 1024 * 1024);
    assert_true(after.committed + 4 * 1024 * 1024 <= before.committed);
    assert_int_equal(calls, 0); /* never on the thread that heard the kernel */
    slow_path();
    assert_int_equal(calls, 1);
    assert_int_equal(last_level, EBB_PRESSURE_SOFT);
    slow_path();
    slow_path();
    assert_int_equal(calls, 1);
    /* Committed is below the soft level: the episode ended at the next
     * admission, and a new event owes the callbacks again. */
    ebb__pressure_event();
    slow_path();
    assert_int_equal(calls, 2);
    ebb_on_pressure_remove(on_pressure, NULL);
    ebb_set_limit(0);
}

/* An episode of ebb's own is open (committed above the soft level, its
 * callbacks ran): the kernel's event joins it, no second call. */
static void test_event_joins_open_episode(void **state)
{
    (void)state;
    unit_quiet_purger();
    ebb_set_limit((size_t)1 << 30);
    assert_int_equal(ebb_set_limit_soft(1), 0); /* ~10.7 MiB */
    calls = 0;
    assert_int_equal(ebb_on_pressure(on_pressure, NULL), 0);
    void *big = ebb_malloc(16 << 20);
    assert_non_null(big);
    memset(big, 1, 16 << 20);
    assert_int_equal(calls, 1);
    ebb__pressure_event();
    slow_path();
    slow_path();
    assert_int_equal(calls, 1);
    ebb_free(big);
    ebb_on_pressure_remove(on_pressure, NULL);
    assert_int_equal(ebb_set_limit_soft(EBB_LIMIT_SOFT_PERCENT), 0);
    ebb_set_limit(0);
}

/* ---------------------------------------------------- the watcher thread */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The watcher on a stand-in descriptor: an event is counted, purges, and
 * owes the callbacks to the next slow path; without a limit it ends, and
 * its descriptor is closed. */
static void test_watcher_end_to_end(void **state)
{
    (void)state;
    int rx, tx;
    if (!urgent_pair(&rx, &tx))
        SKIP_TEST("no loopback TCP connection to send urgent data on: %s", strerror(errno));
    ebb_set_limit((size_t)1 << 30);
    calls = 0;
    assert_int_equal(ebb_on_pressure(on_pressure, NULL), 0);
    atomic_store(&ebb__pressure_state, EBB_PRESSURE_IDLE);
    ebb__os_pressure_t h = { .psi = -1, .events = -1 };
    ebb__os_pressure_adopt(&h, rx);
    strcpy(h.source, "stand-in");
    assert_int_equal(ebb__pressure_watch(&h), 0);
    assert_int_equal(ebb__pressure_watch(&h), -1); /* one watcher */
    ebb_limit_info_t li;
    ebb_limit_info(&li);
    assert_string_equal(li.pressure_source, "stand-in");
    size_t seen = li.pressure_events;
    assert_int_equal(send(tx, "!", 1, MSG_OOB), 1);
    double t0 = now_s();
    do {
        usleep(1000);
        ebb_limit_info(&li);
    } while (li.pressure_events == seen && now_s() - t0 < 10);
    assert_true(li.pressure_events > seen);
    urgent_take(rx); /* within the watcher's quiet pause: one event */
    assert_int_equal(calls, 0);
    slow_path();
    assert_int_equal(calls, 1);
    ebb_set_limit(0);
    t0 = now_s();
    while (atomic_load(&ebb__pressure_state) != EBB_PRESSURE_IDLE && now_s() - t0 < 10)
        usleep(10000);
    assert_int_equal(atomic_load(&ebb__pressure_state), EBB_PRESSURE_IDLE);
    ebb_limit_info(&li);
    assert_string_equal(li.pressure_source, "");
    assert_true(fcntl(rx, F_GETFD) == -1 && errno == EBADF); /* the watcher closed it */
    atomic_store(&ebb__pressure_state, EBB_PRESSURE_OFF);
    ebb_on_pressure_remove(on_pressure, NULL);
    close(tx);
}

/* ----------------------------------------------------------- the kernel */

/* A real trigger, where the kernel has PSI and lets this process write one. */
static void test_real_kernel_trigger(void **state)
{
    (void)state;
    ebb__os_pressure_t h;
    if (ebb__os_pressure_open("", ebb__pressure_trigger, &h) != 0) {
        int err = errno;
        SKIP_TEST("no PSI trigger could be armed (%s): %s", strerror(err),
                  err == ENOENT ? "this kernel offers no PSI"
                                : "the kernel refused it (before Linux 6.5 a trigger "
                                  "needs CAP_SYS_RESOURCE)");
    }
    print_message("watching %s (memory.events: %s)\n", h.source, h.events >= 0 ? "yes" : "no");
    assert_true(h.psi >= 0 || h.events >= 0);
    assert_true(h.source[0] == '/');
    /* Listening costs nothing and reports no failure. */
    assert_int_equal(ebb__os_pressure_wait(&h, 0) & EBB__OS_PRESSURE_GONE, 0);
    /* A second trigger on the same file is refused (one per open file). */
    if (h.psi >= 0) {
        errno = 0;
        assert_int_equal(ebb__os_psi_arm(h.psi, ebb__pressure_trigger), -1);
        assert_int_equal(errno, EBUSY);
    }
    ebb__os_pressure_close(&h);
}

int main(void)
{
    /* The process's own watcher would listen to the real kernel (and this
     * machine may be under pressure): off, so that counts are exact. */
    ebb__ensure_init();
    ebb__opt.limit_psi = 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trigger_text),
        cmocka_unit_test_setup_teardown(test_cgroup_with_binding_ancestor, new_tree, drop_tree),
        cmocka_unit_test_setup_teardown(test_cgroup_own, new_tree, drop_tree),
        cmocka_unit_test_setup_teardown(test_root_cgroup_uses_system_file, new_tree, drop_tree),
        cmocka_unit_test_setup_teardown(test_no_psi, new_tree, drop_tree),
        cmocka_unit_test_setup_teardown(test_events_grow, new_tree, drop_tree),
        cmocka_unit_test(test_wait_sees_pollpri),
        cmocka_unit_test_teardown(test_event_purges_and_owes_callbacks_once, unit_teardown_check),
        cmocka_unit_test_teardown(test_event_joins_open_episode, unit_teardown_check),
        cmocka_unit_test_teardown(test_watcher_end_to_end, unit_teardown_check),
        cmocka_unit_test(test_real_kernel_trigger),
    };
    return cmocka_run_group_tests_name("pressure", tests, NULL, NULL);
}
