#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what it needs,
# builds with gcc and clang (-Werror), then runs unit, API, stress, fork and
# LD_PRELOAD tests, the same as a 32-bit program (gcc -m32), the ASan, UBSan
# and TSan builds, a bounded fuzz run, and the peer suites (CPython's own tests,
# sqlite3, git, gcc, a C++ program) under ebb.
#
#   scripts/test.sh            everything (about 15 minutes on 2 cores)
#   scripts/test.sh --quick    no peer suites, short fuzz
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

quick=0
[ "${1:-}" = "--quick" ] && quick=1
scripts/deps.sh test

passed=0; failed=0; failures=()
logs=$(mktemp -d /tmp/ebb-test-logs.XXXXXX)
# Each stage's output goes to the screen and to its own log, so that the
# tally at the end can repeat the end of every failed stage's output: a
# CI record that keeps only the last lines still shows why.
stage() {
  local name=$1; shift
  local t0=$SECONDS log
  log="$logs/$((passed + failed + 1)).log"
  echo "=== $name"
  if "$@" 2>&1 | tee "$log"; then
    passed=$((passed + 1)); echo "=== $name: PASS ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1)); failures+=("$name|$log"); echo "=== $name: FAIL ($((SECONDS - t0)) s)"
  fi
}

stage "build with clang -Werror" make -s B=build/clang CC=clang lib tool
stage "build with gcc -Werror"   make -s lib tool python
stage "layers: no lower layer calls an upper one" make -s check-layers
stage "unit tests"               make -s check-unit
stage "API tests"                make -s check-api
stage "stress (direct and LD_PRELOAD)" make -s check-stress
stage "LD_PRELOAD smoke"         make -s check-preload
stage "install + pkg-config"     make -s check-install
stage "Python module and ebb run (Debian's CPython, pytest)" make -s check-python
stage "Python module and ebb run under CPython 3.8-3.13 (those present)" make -s check-python-versions
stage "API tests under clang"    make -s B=build/clang CC=clang check-api
stage "API tests, ebb_check on every slow path (EBB_DEBUG=2)" make -s check-debug
stage "unit, API, stress and LD_PRELOAD tests as 32-bit (gcc -m32)" make -s check-m32
stage "ASan"                     make -s check-asan
stage "UBSan"                    make -s check-ubsan
stage "TSan (stress, races, signals; no report)" make -s check-tsan
if ((quick)); then
  stage "fuzz (10 s)"            make -s fuzz FUZZ_SECONDS=10
else
  stage "fuzz (60 s)"            make -s fuzz FUZZ_SECONDS=60
  stage "peer suites under LD_PRELOAD" make -s peer
fi

echo
for f in "${failures[@]}"; do
  printf '=== failed stage: %s; the end of its output (all of it: %s):\n' "${f%%|*}" "${f#*|}"
  tail -n 40 "${f#*|}"
done
for f in "${failures[@]}"; do printf 'failed stage: %s\n' "${f%%|*}"; done
echo "$passed passed, $failed failed"
((failed == 0))
