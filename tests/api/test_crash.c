/*
 * test_crash.c -- the crash note (EBB_CRASH_NOTE, src/insight/crash.c): a
 * SIGSEGV or SIGBUS that follows a refused allocation is named in one line
 * (the signal, the address, the call and its size, why, where), and the
 * process still dies of the same signal; nothing is said without a refusal;
 * a handler the program installed before ebb's still runs, after the line;
 * the line is in the black box after the death.
 *
 * Each scenario runs in a child that dies.  The calls are ebb_malloc and
 * ebb_calloc, which are malloc and calloc in the normal build and still
 * ebb's in the sanitizer builds (where the children are told to leave
 * SIGSEGV and SIGBUS alone: handle_segv=0).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "api.h"
#include "child.h"
#include "insight/blackbox.h"

/* A request no system grants: past any address space on 64-bit; past
 * PTRDIFF_MAX on 32-bit, which ebb refuses as larger than any block. */
#if UINTPTR_MAX > 0xffffffffu
#define HUGE ((size_t)10000000000000000ull)
#define HUGE_TEXT "10000000000000000"
#define HUGE_WHY "(no memory)"
#else
#define HUGE ((size_t)3000000000u)
#define HUGE_TEXT "3000000000"
#define HUGE_WHY "(larger than any block)"
#endif

/* The writes through NULL are the point: UBSan must not stop them first. */
#if defined(__clang__)
#define LET_IT_FAULT __attribute__((noinline, no_sanitize("undefined")))
#else
#define LET_IT_FAULT __attribute__((noinline, no_sanitize_undefined))
#endif

/* Exported (the test links -rdynamic), so the note names it. */
__attribute__((noinline)) void *crash_test_refused_here(size_t n)
{
    void *p = ebb_malloc(n);
    __asm__ volatile("" ::: "memory"); /* a call, not a tail jump: this frame stays */
    return p;
}

LET_IT_FAULT static void write_at(char *p, size_t i)
{
    ((volatile char *)p)[i] = 1;
}

/* ------------------------------------------------------ the program's own */

/* TEST_CRASH_OWN_HANDLER=1: a handler installed before ebb's constructor
 * runs (a constructor of higher priority), as a program's or a runtime's
 * would be when ebb comes later (dlopen, a static link).  It says it ran
 * and what it got, and exits 42. */
static void own_handler(int sig, siginfo_t *si, void *context)
{
    (void)context;
    char line[96];
    int n = snprintf(line, sizeof line, "own handler ran: signal %d, address %s\n", sig,
                     si && si->si_addr == NULL ? "NULL" : "other");
    if (write(1, line, (size_t)n) < 0)
        _exit(43);
    _exit(42);
}

__attribute__((constructor(101))) static void install_own_handler(void)
{
    const char *v = getenv("TEST_CRASH_OWN_HANDLER");
    if (v == NULL || strcmp(v, "1") != 0)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = own_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
}

/* ----------------------------------------------------------- the children */

static void *thread_refused;
static void *refuse_on_a_thread(void *arg)
{
    (void)arg;
    thread_refused = crash_test_refused_here(HUGE);
    return NULL;
}

/* A page of a file with no bytes: reading it is SIGBUS. */
LET_IT_FAULT static void bus_error(void)
{
    char path[] = "/tmp/ebb-test-crash-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return;
    unlink(path);
    volatile char *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return;
    (void)m[0];
}

/* Recursion that overflows the stack (not a loop: the result needs every
 * frame). */
static volatile int bottomless = 1; /* the compiler cannot see the end never comes */
LET_IT_FAULT static int deeper(int n)
{
    volatile char frame[512];
    frame[n % 512] = (char)n;
    if (!bottomless)
        return n;
    return deeper(n + 1) + frame[(n * 7) % 512];
}

static int child_main(const char *what)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(what, "refused_then_null")) { /* the program */
        char *p = crash_test_refused_here(HUGE);
        printf("got %s\n", p ? "memory" : "NULL");
        write_at(p, 0);
    } else if (!strcmp(what, "null_without_refusal")) {
        char *p = crash_test_refused_here(64);
        ebb_free(p);
        write_at(NULL, 0);
    } else if (!strcmp(what, "calloc_refused")) {
        char *p = ebb_calloc(1, HUGE);
        write_at(p, 100);
    } else if (!strcmp(what, "refused_on_a_thread")) {
        pthread_t t;
        if (pthread_create(&t, NULL, refuse_on_a_thread, NULL) != 0 || pthread_join(t, NULL) != 0)
            return 2;
        write_at(thread_refused, 8);
    } else if (!strcmp(what, "refused_then_sent")) {
        char *p = crash_test_refused_here(HUGE);
        printf("got %s\n", p ? "memory" : "NULL");
        raise(SIGSEGV);
    } else if (!strcmp(what, "refused_then_bus")) {
        if (crash_test_refused_here(HUGE) == NULL)
            bus_error();
    } else if (!strcmp(what, "refused_then_overflow")) {
        if (crash_test_refused_here(HUGE) == NULL)
            return deeper(0);
    } else if (!strcmp(what, "at_the_limit")) {
        char *p = crash_test_refused_here(64 * MiB);
        write_at(p, 4096);
    }
    return 0;
}

/* ------------------------------------------------------------- the tests */

static char out[1 << 16];

/* A handler that never hands the signal on loops on the fault for ever:
 * a child still running after this is a failure, not a wait. */
#define CRASH_DEADLINE_MS (120 * 1000L)

#define SAN_ENV                                                                                   \
    "ASAN_OPTIONS=handle_segv=0:handle_sigbus=0:detect_leaks=0:allow_user_segv_handler=1"
#define UBSAN_ENV "UBSAN_OPTIONS=handle_segv=0:handle_sigbus=0"

static int run(const char *what, const char *more, const char *more2)
{
    const char *env[] = { "EBB_CRASH_NOTE=1", SAN_ENV, UBSAN_ENV, more, more2 };
    return child_run_env_within(what, env, ARRAY_LEN(env), out, sizeof out, CRASH_DEADLINE_MS);
}

static void expect_no_note(void)
{
    EXPECT(strstr(out, "ebb: SIG") == NULL, "a note without a refusal:\n%s", out);
}

static void test_fault_after_refusal_is_named_and_still_kills(void **state)
{
    (void)state;
    int status = run("refused_then_null", NULL, NULL);
    EXPECT(child_killed(status, SIGSEGV), "status %#x, not SIGSEGV:\n%s", status, out);
    expect_output_has(out, "got NULL\n");
    expect_output_has(out, "ebb: SIGSEGV at 0x0, ");
    expect_output_has(out, " after malloc(" HUGE_TEXT ") was refused " HUGE_WHY " at ");
    expect_output_has(out, "crash_test_refused_here+0x");
    expect_output_has(out, ": probably an unchecked NULL\n");
    EXPECT(strstr(out, " on thread ") == NULL, "the same thread is not named:\n%s", out);
    /* One line, said once. */
    const char *line = strstr(out, "ebb: SIGSEGV");
    EXPECT(strstr(line + 1, "ebb: SIGSEGV") == NULL, "said twice:\n%s", out);
}

static void test_nothing_said_without_a_refusal(void **state)
{
    (void)state;
    int status = run("null_without_refusal", NULL, NULL);
    EXPECT(child_killed(status, SIGSEGV), "status %#x, not SIGSEGV:\n%s", status, out);
    expect_no_note();
}

static void test_nothing_said_when_off(void **state)
{
    (void)state;
    const char *env[] = { SAN_ENV, UBSAN_ENV };
    int status = child_run_env_within("refused_then_null", env, ARRAY_LEN(env), out, sizeof out,
                                      CRASH_DEADLINE_MS);
    EXPECT(child_killed(status, SIGSEGV), "status %#x, not SIGSEGV:\n%s", status, out);
    expect_output_has(out, "got NULL\n");
    expect_no_note();
    const char *off[] = { "EBB_CRASH_NOTE=0", SAN_ENV, UBSAN_ENV };
    status = child_run_env_within("refused_then_null", off, ARRAY_LEN(off), out, sizeof out,
                                  CRASH_DEADLINE_MS);
    EXPECT(child_killed(status, SIGSEGV), "status %#x:\n%s", status, out);
    expect_no_note();
}

static void test_the_call_and_the_thread_are_named(void **state)
{
    (void)state;
    int status = run("calloc_refused", NULL, NULL);
    EXPECT(child_killed(status, SIGSEGV), "status %#x:\n%s", status, out);
    expect_output_has(out, "ebb: SIGSEGV at 0x64, ");
    expect_output_has(out, " after calloc of " HUGE_TEXT " bytes was refused " HUGE_WHY);
    status = run("refused_on_a_thread", NULL, NULL);
    EXPECT(child_killed(status, SIGSEGV), "status %#x:\n%s", status, out);
    expect_output_has(out, "ebb: SIGSEGV at 0x8, ");
    expect_output_has(out, " after malloc(" HUGE_TEXT ") on thread ");
    expect_output_has(out, "crash_test_refused_here+0x");
}

static void test_refused_at_the_limit(void **state)
{
    (void)state;
    int status = run("at_the_limit", "EBB_LIMIT=16M", "EBB_REPORT=off");
    EXPECT(child_killed(status, SIGSEGV), "status %#x:\n%s", status, out);
    expect_output_has(out, "ebb: SIGSEGV at 0x1000, ");
    expect_output_has(out, " after malloc(67108864) was refused (ebb's limit) at ");
    expect_output_has(out, ": probably an unchecked NULL\n");
}

static void test_sent_signal_and_sigbus(void **state)
{
    (void)state;
    int status = run("refused_then_sent", NULL, NULL);
    EXPECT(child_killed(status, SIGSEGV), "status %#x:\n%s", status, out);
    expect_output_has(out, "ebb: SIGSEGV (sent with kill or raise, so no address) ");
    expect_output_has(out, ": perhaps an unchecked NULL\n");
    status = run("refused_then_bus", NULL, NULL);
    EXPECT(child_killed(status, SIGBUS), "status %#x, not SIGBUS:\n%s", status, out);
    expect_output_has(out, "ebb: SIGBUS at 0x");
    /* A file mapping lies far above the first 64 KiB (and, on 64-bit, may
     * lie below the refused size: then it is "near" by that rule). */
    EXPECT(strstr(out, "not near NULL, so perhaps unrelated\n") ||
               (sizeof(void *) == 8 && strstr(out, "probably an unchecked NULL\n")),
           "%s", out);
}

/* The main thread's stack overflows: the handler runs on its alternate
 * stack (without one the kernel could not deliver the signal and would
 * kill the process unexplained). */
static void test_stack_overflow_runs_on_the_alternate_stack(void **state)
{
    (void)state;
    int status = run("refused_then_overflow", NULL, NULL);
    EXPECT(child_killed(status, SIGSEGV), "status %#x, not SIGSEGV:\n%s", status, out);
    expect_output_has(out, "ebb: SIGSEGV at 0x");
    expect_output_has(out, " after malloc(" HUGE_TEXT ") was refused ");
}

static void test_handler_installed_before_still_runs(void **state)
{
    (void)state;
    int status = run("refused_then_null", "TEST_CRASH_OWN_HANDLER=1", NULL);
    EXPECT(child_exited(status, 42), "status %#x: the program's handler did not end it:\n%s",
           status, out);
    const char *note = strstr(out, "ebb: SIGSEGV at 0x0, ");
    const char *own = strstr(out, "own handler ran: signal 11, address NULL\n");
    EXPECT(note && own && note < own, "the note, then the program's handler with its siginfo:\n%s",
           out);
    status = run("null_without_refusal", "TEST_CRASH_OWN_HANDLER=1", NULL);
    EXPECT(child_exited(status, 42), "status %#x:\n%s", status, out);
    expect_no_note();
}

static void test_the_line_is_in_the_black_box(void **state)
{
    (void)state;
    char path[64], env[96];
    snprintf(path, sizeof path, "/tmp/ebb-test-crash-box.%d", (int)getpid());
    snprintf(env, sizeof env, "EBB_BLACKBOX=%s", path);
    unlink(path);
    int status = run("refused_then_null", env, NULL);
    EXPECT(child_killed(status, SIGSEGV), "status %#x:\n%s", status, out);
    static char file[EBB_BLACKBOX_FILE_SIZE];
    int fd = open(path, O_RDONLY);
    EXPECT(fd >= 0, "no box at %s after the death", path);
    ssize_t n = read(fd, file, sizeof file);
    close(fd);
    unlink(path);
    EXPECT(n == (ssize_t)sizeof file, "a short box (%zd bytes)", n);
    ebb__blackbox_t h;
    memcpy(&h, file, sizeof h);
    EXPECT(h.note_len > 0 && h.note_len <= sizeof h.note, "no note in the box (%u)", h.note_len);
    char note[EBB_BLACKBOX_NOTE + 1];
    memcpy(note, h.note, h.note_len);
    note[h.note_len] = '\0';
    const char *said = strstr(out, "ebb: SIGSEGV");
    EXPECT(said && strncmp(said, note, h.note_len) == 0, "box: %s\nstderr: %s", note, out);
}

CHILD_TEST_MAIN("crash", child_main, T(test_fault_after_refusal_is_named_and_still_kills),
                T(test_nothing_said_without_a_refusal), T(test_nothing_said_when_off),
                T(test_the_call_and_the_thread_are_named), T(test_refused_at_the_limit),
                T(test_sent_signal_and_sigbus), T(test_stack_overflow_runs_on_the_alternate_stack),
                T(test_handler_installed_before_still_runs),
                T(test_the_line_is_in_the_black_box))
