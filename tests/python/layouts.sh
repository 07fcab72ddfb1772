#!/usr/bin/env bash
# The frame walker's layout rows (src/front/pylayout.h) against each
# CPython's own headers: for every CPython 3.8 to 3.13 this machine has
# (pyenv's), tests/python/pylayout_check.c is compiled against that
# version's include directory, internal headers included, and run; it fails
# naming each offset the walker's row has wrong.  One tally record per
# version (tests/tally/tally.sh; $TEST_TALLY); a version not found is a
# skip, named as one.  Debian's interpreter is checked too when its headers
# are installed (python3-dev).
#
#   tests/python/layouts.sh [python...]      default: ~/.pyenv/versions/3.{8..13}* and /usr/bin/python3
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
. tests/python/pyenv_versions.sh
tally=$PWD/tests/tally/tally.sh
CC=${CC:-cc}
out=${B:-build}/pylayout
mkdir -p "$out"
pys=("$@")
if ((${#pys[@]} == 0)); then
    add_pyenv_versions layouts "the frame walker's layout row"
    [ -x /usr/bin/python3 ] && pys+=(/usr/bin/python3)
fi
failed=0
for py in "${pys[@]}"; do
    inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])') || {
        "$tally" record fail "$py: the frame walker's layout row" "does not run"; failed=1; continue; }
    v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    name="CPython $v ($py): the frame walker's layout row"
    if [ ! -f "$inc/Python.h" ] || [ ! -d "$inc/internal" ]; then
        echo "layouts: $py has no headers (internal ones included) in $inc (skipped)"
        "$tally" record skip "$name" "no headers in $inc"
        continue
    fi
    bin=$out/check-$(echo "$py" | tr / _)
    if ! $CC -std=c11 -Wall -Wextra -Werror -Isrc -I"$inc" -I"$inc/internal" \
            tests/python/pylayout_check.c -o "$bin"; then
        "$tally" record fail "$name" "pylayout_check.c does not compile against $inc"
        failed=1; continue
    fi
    "$tally" run "$name" "$bin" || failed=1
done
exit $failed
