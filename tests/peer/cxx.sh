#!/usr/bin/env bash
# Peer suite: a C++17 program (tests/peer/cxx.cpp) with the allocator
# under test.
#
# Builds cxx.cpp with g++, runs it stock (it must pass its own checks
# there), then with LD_PRELOAD=$EBB_LIB: the whole program REPEAT times
# (threads make each run interleave differently) and every section alone
# in its own process, so that a crash in one section does not hide the
# others. Output, including the checksums, must equal the stock run's.
#
# Usage: tests/peer/cxx.sh [--repeat N] [SECTION...]   (default N=3, all)
set -euo pipefail
# shellcheck source=tests/peer/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REPEAT=3
SECTIONS=()
while (($#)); do
    case $1 in
        --repeat)
            REPEAT=${2:-}
            shift 2 || peer_die "--repeat needs a number"
            ;;
        -h | --help)
            peer_usage
            exit 0
            ;;
        -*) peer_die "unknown option '$1'" ;;
        *)
            SECTIONS+=("$1")
            shift
            ;;
    esac
done
if ! [[ "$REPEAT" =~ ^[0-9]+$ ]] || ((REPEAT < 1)); then
    peer_die "--repeat needs a positive integer (got '$REPEAT')"
fi

peer_need_pkgs g++ libc6-dev
peer_setup_lib
peer_mktemp

BIN="$PEER_TMP/cxx"
if ! g++ -std=c++17 -O2 -g -Wall -Wextra -pthread "$PEER_DIR/cxx.cpp" -o "$BIN" 2>"$PEER_TMP/build.log"; then
    cat "$PEER_TMP/build.log" >&2
    peer_die "cannot build cxx.cpp"
fi

if ((${#SECTIONS[@]} == 0)); then
    mapfile -t SECTIONS < <("$BIN" --list)
fi

# run MODE OUTFILE ARGS...: run the program; record its exit status in
# the output so that it is compared too.
run() {
    local mode=$1 out=$2 rc=0
    shift 2
    peer_run "$mode" "$BIN" "$@" >"$out" 2>"$out.err" || rc=$?
    echo "exit status $rc" >>"$out"
    return 0
}

start=$(peer_now)
run stock "$PEER_TMP/stock.txt" "${SECTIONS[@]}"
if ! grep -qx 'exit status 0' "$PEER_TMP/stock.txt"; then
    cat "$PEER_TMP/stock.txt" "$PEER_TMP/stock.txt.err" >&2
    peer_die "the program fails its own checks with the stock allocator"
fi
peer_log "stock run: $(peer_elapsed "$start")s, $(grep '^checksum' "$PEER_TMP/stock.txt")"

rc=0
bad=()
for i in $(seq 1 "$REPEAT"); do
    start=$(peer_now)
    run ebb "$PEER_TMP/ebb-$i.txt" "${SECTIONS[@]}"
    if peer_compare "whole program, run $i ($(peer_elapsed "$start")s)" \
        "$PEER_TMP/stock.txt" "$PEER_TMP/ebb-$i.txt"; then
        :
    else
        rc=1
        bad+=("whole-program-run-$i")
        sed 's/^/    stderr: /' "$PEER_TMP/ebb-$i.txt.err" | head -n 20 >&2
    fi
done

for s in "${SECTIONS[@]}"; do
    run stock "$PEER_TMP/stock-$s.txt" "$s"
    run ebb "$PEER_TMP/ebb-$s.txt" "$s"
    if ! peer_compare "section $s alone" "$PEER_TMP/stock-$s.txt" "$PEER_TMP/ebb-$s.txt"; then
        rc=1
        bad+=("$s")
        sed 's/^/    stderr: /' "$PEER_TMP/ebb-$s.txt.err" | head -n 20 >&2
    fi
done

if ((rc != 0)); then
    peer_log "FAIL: differs from the stock run in: ${bad[*]}"
    exit 1
fi
peer_log "PASS ($(grep '^checksum' "$PEER_TMP/stock.txt"))"
