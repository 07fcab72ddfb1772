/*
 * options_table.h -- every EBB_* option, once.
 *
 * One row per environment variable the library reads.  The library expands
 * it into its reader (base/options.c: default, parser, range, the field that
 * holds the value); the `ebb` tool expands the same rows into `ebb run --help`
 * and `ebb options --markdown`, which is the README's options table (a test
 * compares the two).  So an option exists in one place, and its name, default
 * and meaning cannot drift apart between the code and what users read.
 *
 * Columns of EBB_OPTION(name, field, kind, default, min, max, syntax,
 *                       default_text, doc, audience):
 *   name          the variable, without its EBB_ prefix
 *   field         where the value goes in ebb__options_t (library only)
 *   kind          the parser (EBB_OPT_<kind>, base/options.c): it fixes the
 *                 field's type, checked at compile time
 *   default       the value when the variable is unset or invalid
 *   min, max      the accepted range, for the kinds that have one (SIZE
 *                 and LIMIT: min is the floor, 0 aside; the bounds are
 *                 base/size.h's, which the `ebb` tool checks with too)
 *   syntax        what a value looks like; for CHOICE the names themselves,
 *                 '|'-separated, whose position is the stored value
 *   default_text  the default as a person reads it
 *   doc           the meaning, one line (Markdown: it is the README's)
 *   audience      USER (documented), LAUNCH (set by `ebb run`, documented
 *                 apart), TEST (debug builds' unit tests only)
 *
 * Rows are read in this order, which matters once: EBB_REPORT_FORMAT comes
 * after EBB_REPORT, so an explicit format wins over a path ending ".json".
 */
#ifndef EBB_OPTIONS_TABLE_H
#define EBB_OPTIONS_TABLE_H

#define EBB_OPTIONS(EBB_OPTION)                                                                     \
    EBB_OPTION(HEAPS, heaps, COUNT, 0, 1, EBB_MAX_HEAPS, "N", "CPUs (≤ 64)",                        \
               "shared heaps threads are spread over; bounds the footprint of many threads", USER)  \
    EBB_OPTION(TCACHE, tcache, FLAG, 1, 0, 1, "0|1", "1",                                           \
               "per-thread caches (0: every call goes to a locked heap; for debugging)", USER)      \
    EBB_OPTION(LARGE_CACHE, large_cache, SIZE, EBB_LARGE_CACHE_BYTES, 0, 0, "SIZE",                 \
               "64M (0 on 32-bit)",                                                                 \
               "bytes of freed large blocks (> 128 KiB) kept for reuse, or half the live large "     \
               "bytes if more (up to 512M); `0` keeps none; `K`, `M`, `G` suffixes",                \
               USER)                                                                                \
    EBB_OPTION(ON_ERROR, on_error, CHOICE, EBB_ON_ERROR_DEFAULT, 0, 0, "warn|abort|ignore",         \
               "see right",                                                                         \
               "what a detected misuse does; unset: a double free, a free of a pointer ebb never "  \
               "made or a corrupted block aborts (as glibc), other misuses are reported",           \
               USER)                                                                                \
    EBB_OPTION(VERBOSE, verbose, FLAG, 0, 0, 1, "0|1", "0", "print the statistics at exit", USER)   \
    EBB_OPTION(DEBUG, debug, FLAG, 0, 0, 1, "0|1", "0",                                             \
               "debug heap, no rebuild: guard bytes after every block checked on free, fill "       \
               "patterns, a quarantine that delays reuse and catches writes after free, valgrind "  \
               "client requests; every call takes the slow path",                                   \
               USER)                                                                                \
    EBB_OPTION(PURGE_DELAY_MS, purge_delay, DELAY, EBB_PURGE_DELAY_MS, -1, EBB_PURGE_DELAY_MAX_MS,  \
               "N", "100",                                                                          \
               "give free memory back to the OS once it has stayed unused for N ms; `0` at once, "  \
               "`-1` never (only `ebb_collect`)",                                                   \
               USER)                                                                                \
    EBB_OPTION(PURGE_SURPLUS, purge_surplus, FLAG, 1, 0, 1, "0|1", "1",                             \
               "free memory beyond what the program took over the last delay (surplus) goes back "  \
               "within ms, not after the whole delay (`0`: everything waits the delay)",            \
               USER)                                                                                \
    EBB_OPTION(LIMIT, limit, LIMIT, 0, EBB_LIMIT_FLOOR, 0, "SIZE|N%|auto", "none",                  \
               "most bytes ebb commits (at least `4M`): growth past the soft level runs the "       \
               "pressure callbacks and purges, past the limit allocations fail cleanly "            \
               "(`ebb_set_limit`); `auto` is the effective limit (cgroup, rlimits, memory + swap, " \
               "less what ebb does not manage), `N%` that share of it (see *Memory limit*)",        \
               USER)                                                                                \
    EBB_OPTION(LIMIT_SOFT, limit_soft, PERCENT, EBB_LIMIT_SOFT_PERCENT, 1, 100, "N%", "90%",        \
               "the soft level, as a share of the limit (`100%`: callbacks only when a request "    \
               "is refused; `ebb_set_limit_soft`)",                                                 \
               USER)                                                                                \
    EBB_OPTION(LIMIT_PSI, limit_psi, FLAG, -1, 0, 1, "0|1", "on if the kernel offers PSI",          \
               "while a limit is set, listen to the kernel's memory pressure (a PSI trigger on "    \
               "the cgroup v2 `memory.pressure` or `/proc/pressure/memory`, and cgroup v2 "         \
               "`memory.events`): each event gives free memory back and runs the callbacks once "   \
               "(see *Memory limit*); `1` also says so when nothing can be watched",                \
               USER)                                                                                \
    EBB_OPTION(REPORT, report_path, REPORT, 0, 0, 0, "PATH|stderr|off", "stderr",                   \
               "where ebb writes (appends) the report on the first allocation refused for want "    \
               "of memory and on `EBB_REPORT_SIGNAL`; a path ending `.json` means JSON, one "       \
               "object a line",                                                                     \
               USER)                                                                                \
    EBB_OPTION(REPORT_FORMAT, report_json, CHOICE, 0, 0, 0, "text|json", "text",                    \
               "the format of those reports", USER)                                                 \
    EBB_OPTION(REPORT_NATIVE, report_native, FLAG, 0, 0, 1, "0|1", "0",                            \
               "text reports show each site's native frames on lines of their own, not only "      \
               "its innermost frames on one line (`ebb run --native`; JSON always has them)",      \
               USER)                                                                                \
    EBB_OPTION(REPORT_SIGNAL, report_signal, SIGNAL, 0, 0, 0, "NAME|N", "none",                     \
               "a signal that makes ebb write a report: `USR1`, `USR2` or a real-time one "         \
               "(`RTMIN+1`), by name or number (`SIGUSR2`, `12`); no other",                        \
               USER)                                                                                \
    EBB_OPTION(REPORT_FILE, report_files, PATHS, 0, 0, 0, "PATH[:PATH...]", "none",                \
               "report files rewritten at exit, on the first allocation refused for want of "       \
               "memory and on `EBB_REPORT_SIGNAL`: `.html` a page with plots and a flame graph, "   \
               "`.json` the JSON, anything else the text (`ebb run --report`; see *Report files*)", \
               USER)                                                                                \
    EBB_OPTION(REPORT_FOLDED, report_folded, PATH, 0, 0, 0, "PATH", "none",                         \
               "the peak's stacks in the folded format of flamegraph.pl and speedscope, written "   \
               "with the report files (`ebb run --folded`)",                                        \
               USER)                                                                                \
    EBB_OPTION(BLACKBOX, blackbox_path, PATH, 0, 0, 0, "PATH", "none (`ebb run`: one per process)", \
               "keep the last state in PATH (`%p`: the pid) for after a SIGKILL", USER)             \
    EBB_OPTION(TOP, top, FLAG, 0, 0, 1, "0|1", "0 (`ebb run`: 1)",                                 \
               "publish this process's memory, top sites and timeline for `ebb top`, in a page in " \
               "memory (`/dev/shm/ebb-UID-PID`, mode 0600, removed at exit)", USER)                 \
    EBB_OPTION(SAMPLE_RATE, sample_rate, SIZE, EBB_SAMPLE_RATE_DEFAULT, EBB_SAMPLE_RATE_FLOOR, 0,   \
               "SIZE", "512K",                                                                      \
               "mean bytes allocated between heap-profile samples (`ebb_set_sample_rate`), at "     \
               "least `4K`; `0` off",                                                               \
               USER)                                                                                \
    EBB_OPTION(PYTHON_STACKS, python_stacks, FLAG, 1, 0, 1, "0|1", "1",                             \
               "in a CPython process (3.8 to 3.13, x86-64): record the Python stack of each "       \
               "sample",                                                                            \
               USER)                                                                                \
    EBB_OPTION(PURGE_MODE, purge_lazy, CHOICE, 0, 0, 0, "dontneed|free", "dontneed",                \
               "`MADV_DONTNEED` (RSS drops at once) or `MADV_FREE` (cheaper; the kernel takes "     \
               "the pages when it needs memory, so RSS may stay until then)",                       \
               USER)                                                                                \
    EBB_OPTION(CRASH_NOTE, crash_note, FLAG, 0, 0, 1, "0|1", "0 (`ebb run`: 1)",                    \
               "when SIGSEGV or SIGBUS follows an allocation ebb refused, say so in one line on "    \
               "stderr and in the black box (the call, its size, where it was made), then die of "  \
               "the same signal (see *When a refused allocation kills*)",                           \
               USER)                                                                                \
    EBB_OPTION(PYTHON, python, FLAG, 0, 0, 1, "1", "unset",                                         \
               "make ebb CPython's allocator before the interpreter starts", LAUNCH)                \
    EBB_OPTION(REPORT_PID, report_pid, COUNT, 0, 0, 2147483647, "PID", "unset",                      \
               "only process PID writes the report files (`ebb run`: its program; a fork or exec'd " \
               "child does not)", LAUNCH)                                                           \
    EBB_OPTION(NO_CHILDREN, no_children, FLAG, 0, 0, 1, "1", "unset",                               \
               "ebb removes itself from the environment children get (`--no-children`)", LAUNCH)    \
    EBB_OPTION(_TEST_ROOT, test_root, PATH, 0, 0, 0, "DIR", "the real system",                      \
               "read system files (cgroup, /proc) below DIR instead of /", TEST)                    \
    EBB_OPTION(_FAULT_ONE_IN, fault_one_in, COUNT, 0, 0, 1000000, "N", "0 (off)",                   \
               "fail about one in N of ebb's requests to the OS for memory or a thread, at "        \
               "random (seeded by EBB__FAULT_SEED), as the system would when out of them", TEST)    \
    EBB_OPTION(_FAULT_SEED, fault_seed, COUNT, 1, 0, 4294967295u, "N", "1",                        \
               "the seed of EBB__FAULT_ONE_IN's choices: one seed, one sequence of failed requests", \
               TEST)

#endif /* EBB_OPTIONS_TABLE_H */
