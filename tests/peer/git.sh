#!/usr/bin/env bash
# Peer suite: git with the allocator under test.
#
# Builds the same generated repository twice, once stock and once with
# LD_PRELOAD=$EBB_LIB: a fast-import of a generated history (400 commits
# over a few hundred files plus three side branches), merges and work-tree
# commits made with porcelain commands, then gc --aggressive (threaded
# delta search), repack -adf, fsck, and read-only commands (log --stat,
# log -p, blame -M -C, rev-list --objects, archive, grep, shortlog, ...).
# Author and committer dates are fixed, so commit ids, command output and
# the final single-threaded pack must be identical between the two runs.
#
# Usage: tests/peer/git.sh [COMMITS]      (default COMMITS=400)
set -euo pipefail
# shellcheck source=tests/peer/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

COMMITS=${1:-400}
if ! [[ "$COMMITS" =~ ^[0-9]+$ ]] || ((COMMITS < 20)); then
    peer_die "COMMITS must be an integer >= 20 (got '$COMMITS')"
fi

PY=/usr/bin/python3.11
peer_need_pkgs git python3.11
peer_setup_lib
peer_mktemp

# A clean, fixed git environment: no user or system configuration.
export HOME="$PEER_TMP/home"
mkdir -p "$HOME"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL="$HOME/gitconfig"
export TZ=UTC LC_ALL=C GIT_PAGER=cat PAGER=cat
export GIT_AUTHOR_NAME="Peer Tester" GIT_AUTHOR_EMAIL="peer@example.invalid"
export GIT_COMMITTER_NAME="Peer Tester" GIT_COMMITTER_EMAIL="peer@example.invalid"
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE
: >"$GIT_CONFIG_GLOBAL"

"$PY" "$PEER_DIR/gen_git_history.py" stream "$COMMITS" >"$PEER_TMP/stream.fi"

MODE=
REPO=
OUT=
CLOCK=1900000000

g() {
    peer_run "$MODE" git -C "$REPO" "$@"
}

# at: set the author/committer date for the next commit (an hour later).
at() {
    CLOCK=$((CLOCK + 3600))
    export GIT_AUTHOR_DATE="@$CLOCK +0000" GIT_COMMITTER_DATE="@$CLOCK +0000"
}

# save NAME CMD...: run CMD, keep its stdout as $OUT/NAME.
save() {
    local name=$1
    shift
    "$@" >"$OUT/$name"
}

build_and_inspect() {
    g init -q -b main
    g config core.autocrlf false
    g config gc.auto 0
    g fast-import --quiet <"$PEER_TMP/stream.fi"
    g reset -q --hard main

    local n step
    for n in 1 2 3; do
        at
        g merge -q --no-ff -m "merge side$n" "side$n"
    done
    for step in $(seq 1 24); do
        (cd "$REPO" && "$PY" "$PEER_DIR/gen_git_history.py" edit "$step")
        g add -A
        at
        g commit -q -m "work step $step"
        if ((step % 8 == 0)); then
            at
            g tag -a "v$((step / 8)).0" -m "release $((step / 8))"
        fi
    done
    at
    g checkout -q -b topic HEAD~10
    g cherry-pick -X theirs main~3 >/dev/null
    g checkout -q main
    g branch -q -D topic
    g stash list >/dev/null

    # Threaded, memory-hungry repacking; then verify.
    g gc --aggressive --quiet --prune=now
    save fsck-after-gc.txt g fsck --full --strict --no-dangling
    # A single-threaded full repack gives a deterministic pack to compare.
    g repack -adf -q --threads=1 --window=50 --depth=50
    save fsck-after-repack.txt g fsck --full --strict --no-dangling
    g count-objects -v | grep -Ev '^(size|size-pack|size-garbage):' >"$OUT/count-objects.txt"
    cat "$REPO"/.git/objects/pack/*.pack >"$OUT/pack.bin"

    # Read-only commands over the whole history.
    save refs.txt g for-each-ref --format='%(objectname) %(refname)'
    save log-stat.txt g log --all --stat -M --format='%H %P%n%an %at%n%s'
    save log-patch.txt g log -p -M --format='%H' main
    save log-graph.txt g log --graph --oneline --all
    save rev-list.txt g rev-list --objects --all
    save shortlog.txt g shortlog -sne --all
    save describe.txt g describe --tags main
    save diffstat.txt g diff --stat -M "$(g rev-list --max-parents=0 main)" main
    save grep.txt g grep -c -e lambda -e omega main
    save archive.tar g archive --format=tar main
    # Blame the files that changed most often.
    local f i=0
    while read -r f; do
        i=$((i + 1))
        save "blame-$i.txt" g blame -M -C -w --line-porcelain main -- "$f"
    done < <(g log --format= --name-only main | sort | uniq -c | sort -k1,1nr -k2 |
        awk 'NR <= 5 { print $2 }')
}

run_one() {
    local start
    MODE=$1
    REPO="$PEER_TMP/$MODE/repo"
    OUT="$PEER_TMP/$MODE/out"
    CLOCK=1900000000
    mkdir -p "$REPO" "$OUT"
    start=$(peer_now)
    # (Not "build_and_inspect || die": that would switch off set -e.)
    build_and_inspect
    peer_log "$MODE run: $(peer_elapsed "$start")s, $(wc -l <"$OUT/rev-list.txt") objects"
}

run_one stock
run_one ebb

for f in fsck-after-gc.txt fsck-after-repack.txt; do
    if [[ -s "$PEER_TMP/stock/out/$f" ]]; then
        peer_die "stock run: git fsck reported problems ($PEER_TMP/stock/out/$f)"
    fi
done

rc=0
for f in "$PEER_TMP"/stock/out/*; do
    name=$(basename "$f")
    peer_compare "$name" "$f" "$PEER_TMP/ebb/out/$name" || rc=1
done
if ((rc != 0)); then
    peer_log "FAIL"
    exit 1
fi
peer_log "PASS (commits=$COMMITS, HEAD $(awk '$2 == "refs/heads/main" { print $1 }' "$PEER_TMP/stock/out/refs.txt"))"
