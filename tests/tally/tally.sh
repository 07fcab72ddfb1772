#!/usr/bin/env bash
# The test tally: every test the suite runs leaves one record, so that
# scripts/test.sh can end with "N passed, N failed, N skipped" counted in
# tests (not stages) and name each test that failed or skipped, and so that
# a stage which ran nothing cannot pass.
#
# A record is one line in the file $TEST_TALLY (scripts/test.sh gives each
# stage its own), fields separated by tabs:
#     pass <TAB> name
#     fail <TAB> name <TAB> why
#     skip <TAB> name <TAB> why
# Without TEST_TALLY the commands below run the same and record nothing.
#
#   tally.sh cmocka PROG [ARG...]    run a cmocka test program: its output
#                                    passes through, and each test's result
#                                    (its "SKIP: why" line, for a skip) is
#                                    recorded; a program that dies, or whose
#                                    tests do not all report, is a failure
#   tally.sh run NAME CMD [ARG...]   run CMD, one test named NAME: passed if
#                                    it exits 0
#   tally.sh record pass|fail|skip NAME [WHY]
#   tally.sh count FILE...           "P F S": the records in FILEs
# Each exits with the command's status (cmocka: non-zero also when a
# result is missing).
set -uo pipefail

tally=${TEST_TALLY:-/dev/null}

record() {
    local status=$1 name=$2 why=${3:-}
    case $status in pass | fail | skip) ;; *) echo "tally.sh: no status '$status'" >&2; return 2 ;; esac
    # One record, one line: a tab or newline in a name would split it.
    name=${name//[$'\t\n']/ }
    why=${why//[$'\t\n']/ }
    if [ "$status" = pass ]; then
        printf 'pass\t%s\n' "$name" >>"$tally"
    else
        printf '%s\t%s\t%s\n' "$status" "$name" "$why" >>"$tally"
    fi
}

# cmocka's standard output: "[ RUN      ] t", then "[       OK ] t",
# "[  FAILED  ] t" or "[  SKIPPED ] t"; a summary after the last test lists
# the failed and skipped ones again (ignored here: only the result of the
# test that ran counts).  The markers are looked for anywhere in a line, as
# a test's output without a final newline can run into them.
cmocka() {
    local prog=$1 rc results
    results=$(mktemp)
    "$@" | awk -v prog="$prog" -v out="$results" '
        function result(status, why) {
            if (status == "pass")
                printf "pass\t%s: %s\n", prog, current >> out
            else
                printf "%s\t%s: %s\t%s\n", status, prog, current, why >> out
            resolved++; current = ""
        }
        { print; fflush() }
        match($0, /\[==========\] Running [0-9]+ test/) {
            s = substr($0, RSTART, RLENGTH); sub(/.* Running /, "", s); sub(/ test/, "", s)
            announced += s
        }
        match($0, /\[ RUN      \] /) { current = substr($0, RSTART + RLENGTH); why = ""; next }
        current == "" { next }
        match($0, /SKIP: /) { why = substr($0, RSTART + RLENGTH) }
        index($0, "[       OK ] " current) { result("pass", ""); next }
        index($0, "[  FAILED  ] " current) { result("fail", "see its output"); next }
        index($0, "[  SKIPPED ] " current) { result("skip", why == "" ? "no reason given" : why); next }
        END {
            if (current != "")
                result("fail", "no result: the program died during this test")
            if (announced > resolved)
                printf "fail\t%s\t%d of its %d tests gave no result\n", prog,
                       announced - resolved, announced >> out
            else if (announced == 0)
                printf "fail\t%s\tit ran no cmocka test\n", prog >> out
            close(out)
        }'
    rc=${PIPESTATUS[0]}
    # cmocka exits with the number of failed tests: a status it did not
    # explain with a failed test is a crash or an exit of the test's own.
    if ((rc != 0)) && ! grep -q '^fail' "$results"; then
        printf 'fail\t%s\texit status %d\n' "$prog" "$rc" >>"$results"
    fi
    grep -q '^fail' "$results" && ((rc == 0)) && rc=1
    cat "$results" >>"$tally"
    rm -f "$results"
    return "$rc"
}

run() {
    local name=$1 rc
    shift
    "$@"
    rc=$?
    if ((rc == 0)); then record pass "$name"; else record fail "$name" "exit status $rc"; fi
    return "$rc"
}

count() {
    cat "$@" 2>/dev/null | awk -F'\t' '
        $1 == "pass" { p++ } $1 == "fail" { f++ } $1 == "skip" { s++ }
        END { printf "%d %d %d\n", p, f, s }'
}

what=${1:-}
shift || true
case $what in
    cmocka | run | record | count)
        [ $# -gt 0 ] || { echo "tally.sh $what: missing arguments (see the top of $0)" >&2; exit 2; }
        "$what" "$@"
        ;;
    *) echo "usage: $0 cmocka PROG [ARG...] | run NAME CMD [ARG...] | record STATUS NAME [WHY] | count FILE..." >&2
       exit 2 ;;
esac
