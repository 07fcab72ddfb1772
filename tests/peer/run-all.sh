#!/usr/bin/env bash
# Run every peer suite: real third-party programs run with the allocator
# under test (LD_PRELOAD=$EBB_LIB) and compared against their stock run.
#
# Usage: tests/peer/run-all.sh [--no-cpython] [--cpython-full] [SUITE...]
#
#   SUITE...         run only these (cxx sqlite git gcc cpython)
#   --no-cpython     skip the CPython suite (the quick run, ~4 minutes)
#   --cpython-full   run CPython's whole test suite instead of the subset
#
# Prints one line per suite (PASS/FAIL and time), then a final line
# "N passed, N failed"; exits non-zero if any suite failed.  Each suite is
# one test in the tally (tests/tally/tally.sh, $TEST_TALLY). Each suite's
# full output goes to a log in $PEER_LOG_DIR (default: a new directory
# under /tmp); the tail of a failing suite's log is shown.
set -euo pipefail
# shellcheck source=tests/peer/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ALL_SUITES=(cxx sqlite git gcc cpython)
SUITES=()
CPYTHON=1
CPYTHON_ARGS=()
while (($#)); do
    case $1 in
        --no-cpython) CPYTHON=0 ;;
        --cpython-full) CPYTHON_ARGS=(--full) ;;
        -h | --help)
            peer_usage
            exit 0
            ;;
        -*) peer_die "unknown option '$1' (see --help)" ;;
        *)
            if [[ " ${ALL_SUITES[*]} " != *" $1 "* ]]; then
                peer_die "unknown suite '$1' (suites: ${ALL_SUITES[*]})"
            fi
            SUITES+=("$1")
            ;;
    esac
    shift
done
if ((${#SUITES[@]} == 0)); then
    SUITES=("${ALL_SUITES[@]}")
fi
if ((CPYTHON == 0)); then
    kept=()
    for s in "${SUITES[@]}"; do
        [[ "$s" == cpython ]] || kept+=("$s")
    done
    SUITES=("${kept[@]}")
fi

# Time limits (seconds) so that a hanging allocator cannot stall CI.
limit_for() {
    case $1 in
        cpython)
            if ((${#CPYTHON_ARGS[@]})); then echo 14400; else echo 2700; fi
            ;;
        *) echo 1200 ;;
    esac
}

LOG_DIR=${PEER_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ebb-peer-logs.XXXXXX")}
mkdir -p "$LOG_DIR"

passed=0
failed=0
TALLY=$PEER_DIR/../tally/tally.sh

# The library is checked once here, so that a missing one gives a single
# clear message rather than one per suite.
if ! (peer_setup_lib) >"$LOG_DIR/setup.log" 2>&1; then
    cat "$LOG_DIR/setup.log" >&2
    for s in "${SUITES[@]}"; do
        "$TALLY" record fail "peer suite $s" "the library under test did not load (see above)"
    done
    echo "$passed passed, ${#SUITES[@]} failed"
    exit 1
fi

echo "peer suites: ${SUITES[*]} (logs in $LOG_DIR)"
for s in "${SUITES[@]}"; do
    log="$LOG_DIR/$s.log"
    args=()
    if [[ "$s" == cpython ]] && ((${#CPYTHON_ARGS[@]})); then
        args=("${CPYTHON_ARGS[@]}")
    fi
    start=$(peer_now)
    rc=0
    timeout -k 30 "$(limit_for "$s")" "$PEER_DIR/$s.sh" "${args[@]}" </dev/null >"$log" 2>&1 || rc=$?
    t=$(peer_elapsed "$start")
    if ((rc == 0)); then
        passed=$((passed + 1))
        "$TALLY" record pass "peer suite $s"
        printf 'PASS  %-8s %7ss\n' "$s" "$t"
    else
        failed=$((failed + 1))
        why="exit status $rc"
        if ((rc == 124 || rc == 137)); then
            why="timed out after $(limit_for "$s")s"
        fi
        "$TALLY" record fail "peer suite $s" "$why; log: $log"
        printf 'FAIL  %-8s %7ss  (%s; log: %s)\n' "$s" "$t" "$why" "$log"
        tail -n 40 "$log" | sed 's/^/      | /'
    fi
done

echo "$passed passed, $failed failed"
if ((failed != 0)); then
    exit 1
fi
