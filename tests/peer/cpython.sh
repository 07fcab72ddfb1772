#!/usr/bin/env bash
# Peer suite: CPython's own regression tests with ebb as Python's memory
# manager.
#
# Runs tests from Debian's libpython3.11-testsuite with /usr/bin/python3.11,
# once stock (CPython's own allocators: pymalloc) and once for each way ebb
# is reached (--ways, default "run install"):
#   run       `ebb run python3.11 -m test ...`: libebb.so preloaded, and ebb
#             the allocator of all three domains from before the interpreter
#             starts (inherited by regrtest's workers and by every Python
#             the tests start);
#   install   `import ebb; ebb.install()` at start-up (a sitecustomize.py,
#             tests/peer/site, with EBB_PEER_INSTALL=1, inherited likewise):
#             ebb wraps the domains of a running interpreter;
#   preload   LD_PRELOAD=$EBB_LIB with PYTHONMALLOC=malloc, compared with a
#             stock run that also has PYTHONMALLOC=malloc: any malloc
#             replacement can stand in for ebb here (EBB_LIB=...mimalloc).
# Every run has the same PYTHONPATH (tests/peer/site and the ebb package),
# so the runs differ only in how ebb is reached.  The outcome of every test
# file and of every test case (from --junit-xml) must be the stock run's,
# but for the few cases cpython_expected.txt lists with their reasons
# (under `ebb run`, two that assert pymalloc is the object allocator).
# Test files whose outcome differs are run again both ways once, to rule
# out flaky tests; a difference that persists fails the suite. Tests that
# fail in every run (because of this sandbox: no network, root user, ...)
# are listed but do not fail the suite.
#
# Usage: tests/peer/cpython.sh [--full] [--ways "W..."] [-j N] [--timeout SEC]
#                              [--memlimit M] [TEST...]
#
#   (default)      a memory-heavy subset, about 3-4 minutes per run on 2 cores
#   --ways W...    which of run, install, preload (default "run install")
#   --full         CPython's whole test suite (431 test files, about 15
#                  minutes per run on 2 cores, so about 30 minutes in all);
#                  test_ensurepip (disabled for Debian's system python) and
#                  test_idle (no python3-tk) fail in both runs
#   -j N           regrtest worker processes (default 2)
#   --timeout SEC  per test file (default 600; 1200 with --full)
#   --memlimit M   regrtest -M: run big-memory tests up to M, e.g. 2G
#                  (default 2G for the subset, none with --full; 0: none)
#   TEST...        run these test files instead of the subset
set -euo pipefail
# shellcheck source=tests/peer/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The default subset: containers, strings and bytes, the garbage collector
# and weak references, threads, fork, mmap, serialisation, compression,
# the compiler, ctypes and tracemalloc (which wrap or call the C
# allocator directly), and subprocess (children inherit the preload).
# With --memlimit (default 2G here) the big-memory tests run too
# (test_bigmem and the @bigmemtest cases of the others): strings, bytes
# and lists of gigabytes, grown by realloc. The slowest tests come first
# so that the two workers finish together.
SUBSET=(
    test_bigmem test_multiprocessing_fork test_io test_subprocess test_threading
    test_queue test_weakref test_pickle
    test_dict test_dictviews test_ordered_dict test_userdict
    test_list test_userlist test_tuple test_set test_deque test_collections
    test_heapq test_sort test_bisect test_itertools test_functools test_copy
    test_bytes test_unicode test_userstring test_string test_format test_fstring
    test_codecs test_unicodedata test_re
    test_long test_int test_float test_decimal test_fractions test_statistics
    test_array test_memoryview test_buffer test_struct test_mmap
    test_gc test_weakset test_finalization
    test_threading_local test_thread
    test_fork1 test_os
    test_json test_pickletools test_marshal test_copyreg
    test_csv test_plistlib test_xml_etree test_xml_etree_c test_email
    test_zlib test_bz2 test_lzma test_gzip test_zipfile test_tarfile
    test_dbm test_shelve test_hashlib
    test_ast test_compile test_grammar test_exceptions test_generators
    test_coroutines test_descr test_class test_traceback
    test_ctypes test_tracemalloc test_sys test_memoryio test_bufio
)

PY=/usr/bin/python3.11
WAYS="run install"
FULL=0
JOBS=2
TIMEOUT=
MEMLIMIT=
TESTS=()
while (($#)); do
    case $1 in
        --full) FULL=1 ;;
        --ways)
            WAYS=${2:-}
            shift
            ;;
        -j)
            JOBS=${2:-}
            shift
            ;;
        -j[0-9]*) JOBS=${1#-j} ;;
        --timeout)
            TIMEOUT=${2:-}
            shift
            ;;
        --memlimit)
            MEMLIMIT=${2:-}
            shift
            ;;
        -h | --help)
            peer_usage
            exit 0
            ;;
        -*) peer_die "unknown option '$1' (see --help)" ;;
        *) TESTS+=("$1") ;;
    esac
    shift
done
if ! [[ "$JOBS" =~ ^[0-9]+$ ]] || ((JOBS < 1)); then
    peer_die "-j needs a positive integer (got '$JOBS')"
fi
if [[ -z "$TIMEOUT" ]]; then
    TIMEOUT=$((FULL ? 1200 : 600))
fi
if ! [[ "$TIMEOUT" =~ ^[0-9]+$ ]]; then
    peer_die "--timeout needs a number of seconds (got '$TIMEOUT')"
fi
if [[ -z "$MEMLIMIT" ]]; then
    MEMLIMIT=$((FULL ? 0 : 2))G
fi
if ! [[ "$MEMLIMIT" =~ ^[0-9]+(\.[0-9]+)?[KMGT]?$ ]]; then
    peer_die "--memlimit takes a size such as 2G (got '$MEMLIMIT')"
fi
if ((FULL)) && ((${#TESTS[@]})); then
    peer_die "--full runs every test: give no test names with it"
fi
if ((!FULL)) && ((${#TESTS[@]} == 0)); then
    TESTS=("${SUBSET[@]}")
fi

for w in $WAYS; do
    [[ " run install preload " == *" $w "* ]] || peer_die "unknown way '$w' (run, install, preload)"
done
[[ -n "$WAYS" ]] || peer_die "--ways needs at least one of run, install, preload"

peer_need_pkgs python3.11 libpython3.11-testsuite
peer_setup_lib
peer_mktemp
TOOL=${EBB_TOOL:-$(dirname "$EBB_LIB")/ebb}
PYPKG=${EBB_PYTHONPATH:-$(dirname "$EBB_LIB")/python}
if [[ " $WAYS " == *" run "* && ! -x "$TOOL" ]]; then
    peer_die "the ebb tool is not at $TOOL (make tool, or set EBB_TOOL)"
fi
if [[ " $WAYS " == *" install "* && ! -e "$PYPKG/ebb/__init__.py" ]]; then
    peer_die "the ebb Python package is not in $PYPKG (make python, or set EBB_PYTHONPATH)"
fi

# The same environment for every run: none of the caller's PYTHON* or
# EBB_* variables (PYTHONUNBUFFERED, for one, makes test_cmd_line fail),
# and one PYTHONPATH.
while read -r var; do
    if [[ "$var" == PYTHON* || ( "$var" == EBB_* && "$var" != EBB_LIB ) ]]; then
        unset "$var"
    fi
done < <(compgen -e)
export LC_ALL=C.UTF-8 LANG=C.UTF-8 PYTHONPATH="$PEER_DIR/site:$PYPKG"

# command_for WAY: the command prefix a run of that way starts python with.
command_for() {
    case $1 in
        stock) echo env -u LD_PRELOAD -u PYTHONMALLOC ;;
        preload-stock) echo env -u LD_PRELOAD PYTHONMALLOC=malloc ;;
        preload) echo env LD_PRELOAD="$EBB_LIB" PYTHONMALLOC=malloc ;;
        run) echo "$TOOL" run -- ;;
        install) echo env -u LD_PRELOAD EBB_PEER_INSTALL=1 ;;
    esac
}

# Check that each way reaches ebb as intended: (pymalloc's blocks, whether
# libebb.so is loaded, whether ebb serves the object domain).
probe='import sys
maps = open("/proc/self/maps").read()
try:
    import ebb
    inst = int(ebb.installed())
except ImportError:
    inst = -1
print(int(sys.getallocatedblocks() > 0), int(sys.argv[1] in maps), inst)'
expect_probe() {
    local way=$1 want=$2 got
    # shellcheck disable=SC2046
    got=$($(command_for "$way") "$PY" -c "$probe" "$EBB_LIB")
    [[ "$got" == "$want" ]] || peer_die "python3.11 the '$way' way: probe says '$got', expected '$want'"
}
for w in $WAYS; do
    case $w in
        run) expect_probe stock "1 0 0"; expect_probe run "0 1 1" ;;
        install) expect_probe install "1 0 1" ;; # pymalloc keeps what it made before
        preload) expect_probe preload-stock "0 0 0"; expect_probe preload "0 1 1" ;;
    esac
done

# Tests that cannot run here at all: AF_VSOCK sockets exist in this kind
# of virtual machine, but accept() on them never returns.
IGNORE=(--ignore '*VSOCK*')
BIGMEM=()
if [[ "$MEMLIMIT" != 0 && "$MEMLIMIT" != 0[KMGT] ]]; then
    BIGMEM=(-M "$MEMLIMIT")
fi
RESULTS="$PEER_DIR/cpython_results.py"
EXPECTED="$PEER_DIR/cpython_expected.txt"

# run_tests MODE TAG TEST...: one regrtest run in $PEER_TMP/TAG; leaves
# log.txt, results.xml and summary.txt there.
run_tests() {
    local mode=$1 tag=$2 dir="$PEER_TMP/$2" start rc=0
    shift 2
    mkdir -p "$dir/tmp"
    start=$(peer_now)
    local envcmd
    read -r -a envcmd < <(command_for "$mode")
    # regrtest runs as a job of its own (set -m: its own process group,
    # and SIGINT not ignored), so that a SIGTERM to our process group
    # (run-all's time limit) does not kill it outright and leave its
    # workers behind: we pass the signal on as SIGINT, on which regrtest
    # stops its workers and exits.
    (
        set -m
        cd "$dir"
        TMPDIR="$dir/tmp" "${envcmd[@]}" "$PY" -m test -j "$JOBS" --timeout "$TIMEOUT" \
            --junit-xml "$dir/results.xml" "${IGNORE[@]}" "${BIGMEM[@]}" "$@" >"$dir/log.txt" 2>&1 &
        child=$!
        trap 'kill -INT "$child" 2>/dev/null; wait "$child"; exit 143' TERM INT
        wait "$child"
    ) || rc=$?
    if ((rc == 143)); then
        peer_die "interrupted during the $tag run"
    fi
    "$PY" "$RESULTS" summarize "$dir/log.txt" "$dir/results.xml" "$dir/summary.txt"
    peer_log "$tag run: $(peer_elapsed "$start")s (regrtest exit status $rc," \
        "$(grep -c '^file' "$dir/summary.txt" || true) test files, log $dir/log.txt)"
    rm -rf "$dir/tmp"
}

what="${#TESTS[@]} test files"
if ((FULL)); then
    what="the whole test suite"
fi
peer_log "running $what with -j $JOBS${BIGMEM[*]:+ ${BIGMEM[*]}}: stock, then each way ($WAYS)"

# stock_run STOCK: the stock run a way is compared with, made once.
stock_run() {
    local tag=$1
    [[ -e "$PEER_TMP/$tag/summary.txt" ]] && return 0
    run_tests "$tag" "$tag" "${TESTS[@]}"
    if ! grep -q '^file' "$PEER_TMP/$tag/summary.txt"; then
        tail -n 30 "$PEER_TMP/$tag/log.txt" >&2
        peer_die "the $tag run reported no test results"
    fi
    peer_log "$tag results:"
    "$PY" "$RESULTS" report "$PEER_TMP/$tag/summary.txt" | sed 's/^/    /'
}

# compare_way WAY STOCK: 0 if WAY's results are STOCK's, after rerunning
# the test files that differ both ways once.
compare_way() {
    local way=$1 stock=$2 compare_out="$PEER_TMP/compare-$1.txt"
    run_tests "$way" "$way" "${TESTS[@]}"
    peer_log "results the '$way' way:"
    "$PY" "$RESULTS" report "$PEER_TMP/$way/summary.txt" | sed 's/^/    /'
    if "$PY" "$RESULTS" compare "$PEER_TMP/$stock/summary.txt" "$PEER_TMP/$way/summary.txt" \
        "$EXPECTED" "$way" >"$compare_out"; then
        grep '^expected' "$compare_out" | sed 's/^/    /' || true
        peer_log "PASS ($way): the stock results for every test file and test case (but the expected ones listed)"
        return 0
    fi
    sed '$d' "$compare_out" | sed 's/^/    /'
    local differing
    read -r -a differing < <(tail -n 1 "$compare_out" | sed 's/^DIFFERING: *//')
    peer_log "($way) results differ in ${#differing[@]} test file(s): ${differing[*]}; running them again both ways"
    run_tests "$stock" "$stock-rerun-$way" "${differing[@]}"
    run_tests "$way" "$way-rerun" "${differing[@]}"
    "$PY" "$RESULTS" merge "$PEER_TMP/$stock/summary.txt" "$PEER_TMP/$stock-rerun-$way/summary.txt" \
        "$PEER_TMP/$stock/merged-$way.txt"
    "$PY" "$RESULTS" merge "$PEER_TMP/$way/summary.txt" "$PEER_TMP/$way-rerun/summary.txt" \
        "$PEER_TMP/$way/merged.txt"
    if "$PY" "$RESULTS" compare "$PEER_TMP/$stock/merged-$way.txt" "$PEER_TMP/$way/merged.txt" \
        "$EXPECTED" "$way" >"$compare_out"; then
        peer_log "PASS ($way): the differences were flaky: the reruns agree (${differing[*]})"
        return 0
    fi
    sed '$d' "$compare_out" | sed 's/^/    /'
    # The last lines are what a caller shows of this log: what broke, and why.
    peer_log "($way) why, from the rerun's log ($PEER_TMP/$way-rerun/log.txt):"
    "$PY" "$RESULTS" failures "$PEER_TMP/$way-rerun/log.txt" | sed 's/^/    /'
    grep -E ', ebb (fail|error|missing|crashed|timed_out|failed)$' "$compare_out" | head -n 8 | sed 's/^/    broken: /' || true
    peer_log "FAIL ($way): results differ from the stock run, also when run again"
    return 1
}

failed=()
for w in $WAYS; do
    stock=stock
    [[ "$w" == preload ]] && stock=preload-stock
    stock_run "$stock"
    compare_way "$w" "$stock" || failed+=("$w")
done
if ((${#failed[@]})); then
    peer_log "FAIL: results differ the way(s): ${failed[*]}"
    exit 1
fi
peer_log "PASS: every way ($WAYS) gives the stock results"
