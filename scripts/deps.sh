#!/usr/bin/env bash
# Install the Debian packages ebb's build, tests, demo and benchmarks need.
# Idempotent: installs only what is missing.  Usage: scripts/deps.sh [build|m32|test|demo|bench|python]
# (m32: what 32-bit builds need, `make check-m32` and a -m32 libebb.so; test includes it;
# chromium: the HTML report's page is loaded in it, tests/python/test_report_files.py.)
# Exits non-zero, naming the packages, unless every one is installed at the
# end: a test that would skip for want of one must not pass unnoticed.
set -euo pipefail

what=${1:-test}
pkgs=(gcc make pkg-config libc6-dev)
# 32-bit builds: gcc's multilib files, and cmocka built for i386, which needs
# dpkg to accept packages of that architecture.
m32=(gcc-multilib libc6-dev-i386 libcmocka-dev:i386)
case "$what" in
  build) ;;
  m32)   pkgs+=("${m32[@]}") ;;
  demo)  pkgs+=(python3) ;;
  python) pkgs+=(python3 python3-dev python3-setuptools python3-pytest python3-venv python3-jsonschema strace) ;;
  bench) pkgs+=(python3 libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4 valgrind) ;;
  test)  pkgs+=(clang libclang-rt-14-dev libcmocka-dev python3 python3.11 libpython3.11-testsuite
               python3-dev python3-setuptools python3-pytest python3-venv python3-jsonschema
               sqlite3 git g++ valgrind strace chromium "${m32[@]}") ;;
  *) echo "usage: $0 [build|m32|test|demo|bench|python]" >&2; exit 2 ;;
esac

# The packages of $@ that are not installed, one a line.
not_installed() {
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
mapfile -t missing < <(not_installed "${pkgs[@]}")
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  if [[ " ${missing[*]}" == *:i386* ]] && ! dpkg --print-foreign-architectures | grep -qx i386; then
    $SUDO dpkg --add-architecture i386
  fi
  # A list that fails to download (a mirror caught mid-sync, seen with the
  # i386 security list) should not stop the install: apt-get install says
  # so itself if a package it needs cannot be found.
  $SUDO apt-get update -qq || echo "deps.sh: apt-get update had errors; installing from the lists it has" >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    echo "deps.sh: apt-get install failed" >&2
  mapfile -t missing < <(not_installed "${missing[@]}")
  if ((${#missing[@]})); then
    echo "deps.sh: FAILED: not installed: ${missing[*]} (see apt-get's messages above)" >&2
    exit 1
  fi
fi
