#!/usr/bin/env bash
# The Python tests (module and launcher) under every CPython 3.8 to 3.13 this
# machine has besides Debian's (pyenv's, here): each builds the module for
# itself (with the machine's setuptools when it has none of its own) and runs
# the tests with unittest.  Versions not found are listed, not failed.
#
#   tests/python/versions.sh [python...]     default: ~/.pyenv/versions/3.{8..13}*
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
pys=("$@")
if ((${#pys[@]} == 0)); then
    for v in 3.8 3.9 3.10 3.11 3.12 3.13; do
        found=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/$v.*/bin/python3 2>/dev/null | head -1)
        if [ -n "$found" ]; then pys+=("$found"); else echo "versions: no CPython $v here (skipped)"; fi
    done
fi
failed=0; ran=0
for py in "${pys[@]}"; do
    v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || { echo "versions: $py does not run"; failed=1; continue; }
    b=build/py$v
    setuptools=""
    "$py" -c 'import setuptools' 2>/dev/null || setuptools=/usr/lib/python3/dist-packages
    echo "== CPython $v ($py)"
    if ! PYTHONPATH=$setuptools make -s python PYTHON="$py" B="$b" >"$b.log" 2>&1; then
        cat "$b.log"; echo "== CPython $v: build FAILED"; failed=1; continue
    fi
    if (cd tests/python && EBB_PYTHONPATH="$PWD/../../$b/python" "$py" -m unittest -q test_module test_cli); then
        ran=$((ran + 1))
    else
        echo "== CPython $v: FAILED"; failed=1
    fi
done
echo "versions: $ran interpreter(s) passed"
exit $failed
