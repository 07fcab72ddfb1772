#!/usr/bin/env bash
# Peer suite: CPython's own regression tests with the allocator under test.
#
# Runs tests from Debian's libpython3.11-testsuite with /usr/bin/python3.11
# and PYTHONMALLOC=malloc (so that every Python object goes through malloc
# rather than pymalloc), once stock and once with LD_PRELOAD=$EBB_LIB
# (inherited by regrtest's worker processes and by every subprocess the
# tests start). The outcome of every test file and of every test case
# (from --junit-xml) must be the same in both runs. Test files whose
# outcome differs are run again both ways once, to rule out flaky tests;
# a difference that persists fails the suite. Tests that fail in both
# runs (because of this sandbox: no network, root user, ...) are listed
# but do not fail the suite.
#
# Usage: tests/peer/cpython.sh [--full] [-j N] [--timeout SEC] [--memlimit M]
#                              [TEST...]
#
#   (default)      a memory-heavy subset, about 3-4 minutes per run on 2 cores
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
FULL=0
JOBS=2
TIMEOUT=
MEMLIMIT=
TESTS=()
while (($#)); do
    case $1 in
        --full) FULL=1 ;;
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

peer_need_pkgs python3.11 libpython3.11-testsuite
peer_setup_lib
peer_mktemp

# The same environment for both runs: none of the caller's PYTHON*
# variables (PYTHONUNBUFFERED, for one, makes test_cmd_line fail), and
# the malloc allocator instead of pymalloc.
while read -r var; do
    if [[ "$var" == PYTHON* ]]; then
        unset "$var"
    fi
done < <(compgen -e)
export PYTHONMALLOC=malloc LC_ALL=C.UTF-8 LANG=C.UTF-8

# Check that the interpreter really runs on malloc (PYMEM_ALLOCATOR_MALLOC
# is 3) and that the preload reaches it.
probe='import _testinternalcapi, sys
alloc = _testinternalcapi.get_configs()["pre_config"]["allocator"]
maps = open("/proc/self/maps").read()
print(alloc, int(sys.argv[1] in maps))'
if [[ "$(peer_stock "$PY" -c "$probe" "$EBB_LIB")" != "3 0" ]]; then
    peer_die "stock python3.11 does not run with PYTHONMALLOC=malloc as expected"
fi
if [[ "$(peer_ebb "$PY" -c "$probe" "$EBB_LIB")" != "3 1" ]]; then
    peer_die "python3.11 does not load $EBB_LIB under LD_PRELOAD"
fi

# Tests that cannot run here at all: AF_VSOCK sockets exist in this kind
# of virtual machine, but accept() on them never returns.
IGNORE=(--ignore '*VSOCK*')
BIGMEM=()
if [[ "$MEMLIMIT" != 0 && "$MEMLIMIT" != 0[KMGT] ]]; then
    BIGMEM=(-M "$MEMLIMIT")
fi
RESULTS="$PEER_DIR/cpython_results.py"

# run_tests MODE TAG TEST...: one regrtest run in $PEER_TMP/TAG; leaves
# log.txt, results.xml and summary.txt there.
run_tests() {
    local mode=$1 tag=$2 dir="$PEER_TMP/$2" start rc=0
    shift 2
    mkdir -p "$dir/tmp"
    start=$(peer_now)
    local envcmd=(env -u LD_PRELOAD)
    if [[ "$mode" == ebb ]]; then
        envcmd=(env LD_PRELOAD="$EBB_LIB")
    fi
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
peer_log "running $what with -j $JOBS${BIGMEM[*]:+ ${BIGMEM[*]}}, once stock and once with the preload"

run_tests stock stock "${TESTS[@]}"
if ! grep -q '^file' "$PEER_TMP/stock/summary.txt"; then
    tail -n 30 "$PEER_TMP/stock/log.txt" >&2
    peer_die "the stock run reported no test results"
fi
peer_log "stock results:"
"$PY" "$RESULTS" report "$PEER_TMP/stock/summary.txt" | sed 's/^/    /'

run_tests ebb ebb "${TESTS[@]}"
peer_log "results with the preload:"
"$PY" "$RESULTS" report "$PEER_TMP/ebb/summary.txt" | sed 's/^/    /'

compare_out="$PEER_TMP/compare.txt"
if "$PY" "$RESULTS" compare "$PEER_TMP/stock/summary.txt" "$PEER_TMP/ebb/summary.txt" >"$compare_out"; then
    peer_log "PASS: identical results for every test file and test case"
    exit 0
fi

sed '$d' "$compare_out" | sed 's/^/    /'
read -r -a differing < <(tail -n 1 "$compare_out" | sed 's/^DIFFERING: *//')
peer_log "results differ in ${#differing[@]} test file(s): ${differing[*]}; running them again both ways"
run_tests stock stock-rerun "${differing[@]}"
run_tests ebb ebb-rerun "${differing[@]}"
for t in stock ebb; do
    "$PY" "$RESULTS" merge "$PEER_TMP/$t/summary.txt" "$PEER_TMP/$t-rerun/summary.txt" \
        "$PEER_TMP/$t/merged.txt"
done
if "$PY" "$RESULTS" compare "$PEER_TMP/stock/merged.txt" "$PEER_TMP/ebb/merged.txt" >"$compare_out"; then
    peer_log "PASS: the differences were flaky: the reruns agree (${differing[*]})"
    exit 0
fi
sed '$d' "$compare_out" | sed 's/^/    /'
peer_log "FAIL: results differ from the stock run, also when run again"
exit 1
