#!/usr/bin/env bash
# Build ebb and show BRIEF story 1 on a real program: Python building and
# freeing a large structure of small objects, under the stock interpreter,
# glibc's malloc and `ebb run`: time and RSS side by side, with the floor.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh demo
make -s lib tool
exec python3 scripts/demo.py --tool "$PWD/build/ebb" "$@"
