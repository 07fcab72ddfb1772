#!/usr/bin/env bash
# The Python tests (module, launcher, Python stacks, pytest plugin, crash
# note) under every CPython 3.8 to 3.13 this machine has besides Debian's
# (pyenv's, here): first the frame walker's layout rows against each version's headers
# (layouts.sh), then each version builds the module for itself (with the
# machine's setuptools when it has none of its own) and runs the tests with
# unittest, each test recorded in the tally
# (tests/tally/tally.py; $TEST_TALLY).  A version not found is a skip, named
# as one; finding none at all, so that no test ran, is a failure.
#
#   tests/python/versions.sh [python...]     default: ~/.pyenv/versions/3.{8..13}*
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
. tests/python/pyenv_versions.sh
root=$PWD
tally=$root/tests/tally/tally.sh
pys=("$@")
# The layouts first, for the same interpreters (its own skips when none given).
failed=0
tests/python/layouts.sh "$@" || failed=1
if ((${#pys[@]} == 0)); then
    add_pyenv_versions versions "the module and launcher tests"
fi
ran=0
for py in "${pys[@]}"; do
    v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || {
        echo "versions: $py does not run"; "$tally" record fail "$py" "does not run"; failed=1; continue; }
    b=build/py$v
    setuptools=""
    "$py" -c 'import setuptools' 2>/dev/null || setuptools=/usr/lib/python3/dist-packages
    echo "== CPython $v ($py)"
    if ! PYTHONPATH=$setuptools make -s python PYTHON="$py" B="$b" >"$b.log" 2>&1; then
        cat "$b.log"; echo "== CPython $v: build FAILED"
        "$tally" record fail "CPython $v: building the module" "make python failed (log: $b.log)"
        failed=1; continue
    fi
    ran=$((ran + 1))
    if ! (cd tests/python && EBB_PYTHONPATH="$root/$b/python" \
            "$py" "$root/tests/tally/tally.py" --name "CPython $v: " test_module test_cli test_pytest_plugin test_pystack test_crash); then
        echo "== CPython $v: FAILED"; failed=1
    fi
done
if ((ran == 0)); then
    echo "versions: no interpreter ran the tests (none found, or none built)" >&2
    "$tally" record fail "CPython 3.8-3.13: the module and launcher tests" "no interpreter ran them"
    failed=1
fi
echo "versions: $ran interpreter(s) ran the tests$( ((failed)) && echo ', with failures')"
exit $failed
