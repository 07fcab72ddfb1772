#!/usr/bin/env bash
# Peer suite: gcc and g++ with the allocator under test.
#
# Generates a large C file (many functions, big switches, a large
# initialised table) and a template-heavy C++17 file, compiles both with
# -O2 -g, once stock and once with LD_PRELOAD=$EBB_LIB (the gcc driver
# passes LD_PRELOAD on to cc1, cc1plus, as, collect2 and ld), links and
# runs them. With -frandom-seed and the same working directory the
# objects and executables must be byte-identical to the stock ones, and
# the programs' output must match.
#
# Usage: tests/peer/gcc.sh [C_FUNCS [CXX_TYPES]]   (default 1000 40)
set -euo pipefail
# shellcheck source=tests/peer/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

C_FUNCS=${1:-1000}
CXX_TYPES=${2:-40}
for n in "$C_FUNCS" "$CXX_TYPES"; do
    if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 1)); then
        peer_die "sizes must be positive integers (got '$n')"
    fi
done

PY=/usr/bin/python3.11
peer_need_pkgs gcc g++ binutils libc6-dev python3.11
peer_setup_lib
peer_mktemp

export LC_ALL=C SOURCE_DATE_EPOCH=1600000000
unset GCC_EXEC_PREFIX COMPILER_PATH CPATH C_INCLUDE_PATH CPLUS_INCLUDE_PATH LIBRARY_PATH

cd "$PEER_TMP"
"$PY" "$PEER_DIR/gen_compiler_input.py" c "$C_FUNCS" >big.c
"$PY" "$PEER_DIR/gen_compiler_input.py" cxx "$CXX_TYPES" >templates.cpp
peer_log "generated big.c ($(wc -l <big.c) lines) and templates.cpp ($(wc -l <templates.cpp) lines)"

CFLAGS=(-O2 -g -Wall -frandom-seed=ebb-peer)
CXXFLAGS=(-std=c++17 "${CFLAGS[@]}")

# run_one MODE: compile, link and run everything into $PEER_TMP/MODE.
# Both modes compile from the same directory, so DW_AT_comp_dir matches.
run_one() {
    local mode=$1 start t
    mkdir -p "$mode"
    start=$(peer_now)
    peer_run "$mode" gcc "${CFLAGS[@]}" -c big.c -o "$mode/big.o"
    peer_run "$mode" gcc "$mode/big.o" -o "$mode/big"
    t=$(peer_elapsed "$start")
    start=$(peer_now)
    peer_run "$mode" g++ "${CXXFLAGS[@]}" -c templates.cpp -o "$mode/templates.o"
    peer_run "$mode" g++ "$mode/templates.o" -o "$mode/templates"
    peer_log "$mode compile: C ${t}s, C++ $(peer_elapsed "$start")s"
    # The programs themselves run under the same allocator.
    peer_run "$mode" "./$mode/big" >"$mode/big.out"
    peer_run "$mode" "./$mode/templates" >"$mode/templates.out"
}

run_one stock
run_one ebb

rc=0
for f in big.o big templates.o templates big.out templates.out; do
    peer_compare "$f" "stock/$f" "ebb/$f" || rc=1
done
if ((rc != 0)); then
    peer_log "FAIL"
    exit 1
fi
peer_log "PASS: $(tail -n 1 stock/big.out); $(cat stock/templates.out)"
