#!/bin/sh
# Build the libFuzzer harness tests/fuzz/fuzz_alloc.c and run it for a bounded
# time.  Exits non-zero if the build fails or libFuzzer finds a crash (the
# crashing input is left in $FUZZ_OUT, replay it with
#   FUZZ_TRACE=1 $FUZZ_OUT/fuzz_alloc <crash-file>).
#
# Usage: tests/fuzz/run.sh [SECONDS]       (default $FUZZ_SECONDS, else 60)
# Environment:
#   FUZZ_SECONDS    run time in seconds
#   FUZZ_CC         compiler with libFuzzer (default clang)
#   FUZZ_OUT        build and work directory (default build/fuzz)
#   FUZZ_JOBS       parallel fuzzing processes (default 1)
#   FUZZ_MAX_LEN    longest input in bytes (default 1024)
#   EBB_FUZZ_LIB    link this ebb object/archive instead of building ebb from
#                   src/ (it must not export malloc: -DEBB_NO_OVERRIDE)
#   FUZZ_EXTRA_CFLAGS  more flags for both compilations
# The library is built from source with coverage instrumentation so that
# libFuzzer is guided by ebb's own branches, with EBB_DEBUG=1 (internal
# assertions) and UBSan; without ASan, which would replace malloc.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECONDS_TO_RUN=${1:-${FUZZ_SECONDS:-60}}
CC=${FUZZ_CC:-clang}
OUT=${FUZZ_OUT:-$ROOT/build/fuzz}
JOBS=${FUZZ_JOBS:-1}
MAX_LEN=${FUZZ_MAX_LEN:-1024}
EXTRA=${FUZZ_EXTRA_CFLAGS:-}
SAN="-fsanitize=undefined -fno-sanitize-recover=all"

mkdir -p "$OUT/corpus"
cd "$ROOT"

if [ -n "${EBB_FUZZ_LIB:-}" ]; then
    LIB=$EBB_FUZZ_LIB
else
    # src/ebb.c includes every other source file (one translation unit);
    # otherwise compile them all.
    if [ -f src/ebb.c ]; then
        SRCS=src/ebb.c
    else
        SRCS=$(ls src/*.c src/os/*.c 2>/dev/null)
    fi
    rm -f "$OUT"/ebb_*.o
    for s in $SRCS; do
        o="$OUT/ebb_$(echo "$s" | tr '/.' '__').o"
        # shellcheck disable=SC2086
        $CC -std=c11 -g -O1 -fPIC -fvisibility=hidden -DEBB_DEBUG=1 -DEBB_NO_OVERRIDE \
            -fsanitize=fuzzer-no-link $SAN -Iinclude -Isrc $EXTRA -c "$s" -o "$o"
    done
    LIB=$(ls "$OUT"/ebb_*.o)
fi

# shellcheck disable=SC2086
$CC -std=c11 -Wall -Wextra -Werror -g -O1 -fsanitize=fuzzer $SAN -Iinclude -Itests/include $EXTRA \
    tests/fuzz/fuzz_alloc.c $LIB -lpthread -o "$OUT/fuzz_alloc"

echo "fuzz: running $OUT/fuzz_alloc for ${SECONDS_TO_RUN}s (jobs $JOBS)"
# New inputs go to $OUT/corpus; the committed seeds are only read.
set +e
if [ "$JOBS" -gt 1 ]; then
    "$OUT/fuzz_alloc" -max_total_time="$SECONDS_TO_RUN" -max_len="$MAX_LEN" -timeout=30 \
        -print_final_stats=1 -artifact_prefix="$OUT/" -jobs="$JOBS" -workers="$JOBS" \
        "$OUT/corpus" tests/fuzz/corpus
else
    "$OUT/fuzz_alloc" -max_total_time="$SECONDS_TO_RUN" -max_len="$MAX_LEN" -timeout=30 \
        -print_final_stats=1 -artifact_prefix="$OUT/" "$OUT/corpus" tests/fuzz/corpus
fi
rc=$?
set -e
if [ $rc -ne 0 ]; then
    echo "fuzz: FAILED (exit $rc); crashing input(s):" >&2
    ls -1 "$OUT"/crash-* "$OUT"/timeout-* "$OUT"/oom-* >&2 2>/dev/null || true
    exit 1
fi
echo "fuzz: OK"
