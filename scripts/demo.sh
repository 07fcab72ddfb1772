#!/usr/bin/env bash
# Build ebb and show it on a real program: Python building and freeing a large
# structure of small objects, under glibc and under ebb, time and RSS side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh demo
make -s lib
exec python3 scripts/demo.py --ebb "$PWD/build/libebb.so" "$@"
