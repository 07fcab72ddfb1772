#!/bin/sh
# Build tests/preload/preload_smoke.c and run it under LD_PRELOAD=libebb.so.
# It must pass there, and must report "not running on ebb" (exit 2) without
# the preload, which shows the detection itself works.  With
# PRELOAD_STRESS=1 it also runs the malloc/free build of the stress test
# under the preload.
#
# Usage: tests/preload/run.sh [path/to/libebb.so]   (default build/libebb.so)
# Environment: CC (default cc), PRELOAD_OUT (default build/tests/preload)
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LIB=${1:-$ROOT/build/libebb.so}
CC=${CC:-cc}
OUT=${PRELOAD_OUT:-$ROOT/build/tests/preload}

case $LIB in /*) ;; *) LIB=$(pwd)/$LIB ;; esac
if [ ! -f "$LIB" ]; then
    echo "preload: $LIB not found (build the library first)" >&2
    exit 1
fi
mkdir -p "$OUT"
$CC -std=c11 -Wall -Wextra -Werror -g -O1 -D_GNU_SOURCE \
    "$ROOT/tests/preload/preload_smoke.c" -ldl -lpthread -o "$OUT/preload_smoke"

echo "== preload_smoke without LD_PRELOAD (must say it is not on ebb)"
set +e
"$OUT/preload_smoke" 2>/dev/null
rc=$?
set -e
if [ $rc -ne 2 ]; then
    echo "preload: expected exit 2 without the preload, got $rc" >&2
    exit 1
fi

echo "== preload_smoke with LD_PRELOAD=$LIB"
LD_PRELOAD=$LIB "$OUT/preload_smoke"

if [ "${PRELOAD_STRESS:-0}" = 1 ]; then
    $CC -std=c11 -Wall -Wextra -Werror -g -O1 -DSTRESS_USE_LIBC \
        "$ROOT/tests/stress/stress.c" -ldl -lpthread -o "$OUT/stress-libc"
    echo "== stress (malloc/free build) with LD_PRELOAD=$LIB"
    LD_PRELOAD=$LIB "$OUT/stress-libc"
fi
echo "preload: OK"
