#!/usr/bin/env bash
# Install the Debian packages ebb's build, tests, demo and benchmarks need.
# Idempotent: installs only what is missing.  Usage: scripts/deps.sh [build|test|demo|bench]
set -euo pipefail

what=${1:-test}
pkgs=(gcc make pkg-config libc6-dev)
case "$what" in
  build) ;;
  demo)  pkgs+=(python3) ;;
  bench) pkgs+=(python3 libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4 valgrind) ;;
  test)  pkgs+=(clang libclang-rt-14-dev libcmocka-dev python3 python3.11 libpython3.11-testsuite
               sqlite3 git g++) ;;
  *) echo "usage: $0 [build|test|demo|bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
