#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what it needs,
# builds with gcc and clang (-Werror), then runs unit, API, stress, fork and
# LD_PRELOAD tests, the same as a 32-bit program (gcc -m32), the ASan, UBSan
# and TSan builds, a bounded fuzz run, and the peer suites (CPython's own tests,
# sqlite3, git, gcc, a C++ program) under ebb.
#
#   scripts/test.sh            everything (about 20 minutes on 2 cores)
#   scripts/test.sh --quick    no peer suites, short fuzz
#
# It counts tests, not stages: each test records its result in its stage's
# tally (tests/tally/tally.sh; cmocka programs, pytest, unittest, the
# scripts), and a check that is no test run (a build, the dependencies'
# install) counts as one.  A stage fails if a test in it failed, if it
# exited non-zero, or if it ran no test at all (every test skipped counts
# as none).  The end: the last 40 lines of each failed stage's output, the
# failed stages, every skipped and every failed test with its reason, and
# last of all the line CI reads:
#   N passed, N failed, N skipped
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

quick=0
[ "${1:-}" = "--quick" ] && quick=1

tally=$PWD/tests/tally/tally.sh
logs=$(mktemp -d /tmp/ebb-test-logs.XXXXXX)
stages=0; failures=()

# run_stage KIND NAME CMD...: KIND "tests" for a command whose tests record
# themselves in $TEST_TALLY, "check" for a command that is one check.  Its
# output goes to the screen and to its own log, so that the tally at the
# end can repeat the end of every failed stage's output: a CI record that
# keeps only the last lines still shows why.
run_stage() {
  local kind=$1 name=$2; shift 2
  local t0=$SECONDS n=$((++stages)) rc p f s
  local log="$logs/$n.log"
  export TEST_TALLY="$logs/$n.tally"
  : >"$TEST_TALLY"
  echo "$name" >"$logs/$n.name"
  echo "=== $name"
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  if [ "$kind" = check ]; then
    if ((rc == 0)); then "$tally" record pass "$name"; else "$tally" record fail "$name" "exit status $rc"; fi
  fi
  read -r p f s < <("$tally" count "$TEST_TALLY")
  if ((rc != 0 && f == 0)); then
    "$tally" record fail "$name" "exit status $rc, but no test of it failed (see its output)"
  fi
  if ((p + f == 0)); then
    "$tally" record fail "$name" "it ran no test"
  fi
  read -r p f s < <("$tally" count "$TEST_TALLY")
  unset TEST_TALLY
  local counts="$((SECONDS - t0)) s; $p passed, $f failed, $s skipped"
  if ((f == 0)); then
    echo "=== $name: PASS ($counts)"
  else
    failures+=("$name|$log"); echo "=== $name: FAIL ($counts)"
  fi
}
stage() { run_stage tests "$@"; }
check() { run_stage check "$@"; }

# A failed install is a failed check, and the run goes on: what is
# missing then shows as failures (or skips, named below) of its own.
check "install the test dependencies (scripts/deps.sh test)" scripts/deps.sh test
check "build with clang -Werror" make -s B=build/clang CC=clang lib tool
check "build with gcc -Werror"   make -s lib tool python
stage "layers: no lower layer calls an upper one" make -s check-layers
stage "unit tests"               make -s check-unit
stage "API tests"                make -s check-api
stage "stress (direct and LD_PRELOAD)" make -s check-stress
stage "LD_PRELOAD smoke"         make -s check-preload
stage "a statically linked program (libebb.a, -static)" make -s check-static
stage "ebb map on live 64- and 32-bit processes" make -s check-map
stage "install + pkg-config"     make -s check-install
stage "Python module and ebb run (Debian's CPython, pytest)" make -s check-python
stage "Python module and ebb run under CPython 3.8-3.13 (those present)" make -s check-python-versions
stage "API tests under clang"    make -s B=build/clang CC=clang check-api
stage "API tests, ebb_check on every slow path (EBB_DEBUG=2)" make -s check-debug
stage "unit, API, stress, LD_PRELOAD and static-program tests as 32-bit (gcc -m32)" make -s check-m32
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
# Every skipped test, then every failed one, each with its stage and why
# (a record of the stage itself, or of a check, names the stage alone).
for what in skip fail; do
  for ((n = 1; n <= stages; n++)); do
    awk -F'\t' -v what=$what -v stage="$(cat "$logs/$n.name")" '$1 == what {
        printf "%s: %s%s (%s)\n", what == "skip" ? "skipped" : "failed", stage,
               $2 == stage ? "" : ": " $2, $3 }' "$logs/$n.tally"
  done
done
read -r passed failed skipped < <("$tally" count "$logs"/*.tally)
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
