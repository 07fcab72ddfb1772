# shellcheck shell=bash
# Shared helpers for the peer test suites (sourced, never executed).
#
# Each suite runs a real third-party program twice: once "stock" (the
# system allocator, no preload) and once with LD_PRELOAD=$EBB_LIB, and
# compares what the two runs produce.
#
# Environment:
#   EBB_LIB        allocator to preload (default: <repo>/build/libebb.so)
#   PEER_KEEP=1    keep the temporary work directories for inspection
#   PEER_NO_APT=1  never call apt-get; fail if a dependency is missing

if [[ -n "${PEER_COMMON_LOADED:-}" ]]; then
    return 0
fi
PEER_COMMON_LOADED=1

PEER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEER_ROOT=$(cd "$PEER_DIR/../.." && pwd)
PEER_NAME=$(basename "${BASH_SOURCE[1]:-peer}" .sh)

# Say which command failed, and where, when set -e stops a suite.
peer_on_err() {
    local rc=$1 cmd=$2 i where=
    if [[ -n "${PEER_ERR_SHOWN:-}" ]]; then
        return 0
    fi
    PEER_ERR_SHOWN=1
    # Frame i runs in ${BASH_SOURCE[i]}, at line ${BASH_LINENO[i-1]}.
    for ((i = 1; i < ${#BASH_SOURCE[@]}; i++)); do
        if [[ "${BASH_SOURCE[i]}" != */common.sh ]]; then
            where+="${where:+ < }$(basename "${BASH_SOURCE[i]}"):${BASH_LINENO[i - 1]}"
        fi
    done
    peer_log "FAILED: '$cmd' exited with status $rc (at ${where:-?})" >&2
}
set -E
trap 'peer_on_err $? "$BASH_COMMAND"' ERR

peer_log() {
    printf '[%s] %s\n' "$PEER_NAME" "$*"
}

# peer_usage: print the comment block at the top of the running script.
peer_usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

peer_die() {
    PEER_ERR_SHOWN=1
    printf '[%s] ERROR: %s\n' "$PEER_NAME" "$*" >&2
    exit 1
}

# peer_need_pkgs PKG...: install the Debian packages that are not yet
# installed. apt-get update runs only when something must be installed.
peer_need_pkgs() {
    local missing=() pkg status
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        if [[ "$status" != "install ok installed" ]]; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    if [[ -n "${PEER_NO_APT:-}" ]]; then
        peer_die "missing Debian packages: ${missing[*]} (PEER_NO_APT is set)"
    fi
    if [[ $(id -u) -ne 0 ]]; then
        peer_die "missing Debian packages: ${missing[*]} (run as root to install them)"
    fi
    peer_log "installing missing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || peer_die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
        peer_die "apt-get install ${missing[*]} failed"
}

# peer_setup_lib: resolve EBB_LIB to an absolute path, check that it
# exists and that the dynamic loader really preloads it.
peer_setup_lib() {
    local lib=${EBB_LIB:-$PEER_ROOT/build/libebb.so}
    if [[ "$lib" != /* ]]; then
        lib=$PWD/$lib
    fi
    if [[ ! -e "$lib" ]]; then
        peer_die "allocator library not found: $lib
  build it with 'make' at the repo root, or point EBB_LIB at a malloc
  replacement, e.g. EBB_LIB=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"
    fi
    if [[ ! -f "$lib" || ! -r "$lib" ]]; then
        peer_die "allocator library is not a readable file: $lib"
    fi
    EBB_LIB=$(readlink -f "$lib")
    export EBB_LIB
    # The loader only warns (and carries on) when a preload fails, so look
    # for the library in the memory map of a preloaded process.
    local maps err
    err=$(mktemp)
    maps=$(LD_PRELOAD="$EBB_LIB" cat /proc/self/maps 2>"$err") || true
    if ! grep -qF -- "$EBB_LIB" <<<"$maps"; then
        cat "$err" >&2
        rm -f "$err"
        peer_die "LD_PRELOAD=$EBB_LIB does not load into a process"
    fi
    rm -f "$err"
    peer_log "allocator under test: $EBB_LIB"
}

# peer_stock CMD...: run CMD with the system allocator.
peer_stock() {
    env -u LD_PRELOAD "$@"
}

# peer_ebb CMD...: run CMD with the allocator under test preloaded.
# Child processes inherit LD_PRELOAD, so they use it too.
peer_ebb() {
    env LD_PRELOAD="$EBB_LIB" "$@"
}

# peer_run MODE CMD...: MODE is "stock" or "ebb".
peer_run() {
    local mode=$1
    shift
    case $mode in
        stock) peer_stock "$@" ;;
        ebb) peer_ebb "$@" ;;
        *) peer_die "peer_run: bad mode '$mode'" ;;
    esac
}

# peer_mktemp: create the work directory PEER_TMP, removed at exit
# unless PEER_KEEP is set.
peer_mktemp() {
    PEER_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ebb-peer-$PEER_NAME.XXXXXX")
    export PEER_TMP
    trap peer_cleanup EXIT
}

peer_cleanup() {
    local rc=$?
    PEER_ERR_SHOWN=1
    if [[ -n "${PEER_TMP:-}" && -d "$PEER_TMP" ]]; then
        if [[ -n "${PEER_KEEP:-}" || $rc -ne 0 ]]; then
            printf '[%s] work directory kept: %s\n' "$PEER_NAME" "$PEER_TMP" >&2
        else
            rm -rf "$PEER_TMP"
        fi
    fi
    return "$rc"
}

# peer_compare NAME FILE_STOCK FILE_EBB: fail with a diff excerpt when
# the two outputs differ.
peer_compare() {
    local name=$1 a=$2 b=$3
    if cmp -s "$a" "$b"; then
        peer_log "same: $name"
        return 0
    fi
    printf '[%s] DIFFERENT: %s (stock: %s, ebb: %s)\n' "$PEER_NAME" "$name" "$a" "$b" >&2
    if command -v diff >/dev/null; then
        diff -u "$a" "$b" 2>&1 | head -n 40 >&2 || true
    fi
    return 1
}

# peer_now: seconds since the epoch with fractions, for timings.
peer_now() {
    printf '%s' "$EPOCHREALTIME"
}

# peer_elapsed START: seconds since START, one decimal.
peer_elapsed() {
    awk -v s="$1" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }'
}
