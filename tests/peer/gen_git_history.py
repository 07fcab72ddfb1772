#!/usr/bin/env python3
"""Deterministic generator for the git peer suite (tests/peer/git.sh).

  gen_git_history.py stream [COMMITS]   write a git fast-import stream
  gen_git_history.py edit STEP          edit the work tree in the cwd

The stream holds a main branch of COMMITS commits (default 400) over a
few hundred generated text files, plus three side branches that only
touch files under side/N/, so that they merge cleanly into main later.
Everything comes from a seeded PRNG: the same arguments always give the
same bytes, and so the same commit ids.
"""

import os
import random
import sys

WORDS = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu "
    "xi omicron pi rho sigma tau upsilon phi chi psi omega arena bucket "
    "chunk slab page span heap free list bin cache thread local remote "
    "segment region arena_t size class align guard canary pointer offset "
    "lock atomic fence epoch retire reclaim purge decommit commit reserve"
).split()

EPOCH = 1600000000  # commit timestamps start here, one hour apart
AUTHORS = [
    ("Ada Peer", "ada@example.invalid"),
    ("Bo Peer", "bo@example.invalid"),
    ("Cy Peer", "cy@example.invalid"),
]


def make_line(rng):
    n = rng.randint(0, 12)
    indent = "    " * rng.randint(0, 3)
    if n == 0:
        return ""
    words = [rng.choice(WORDS) for _ in range(n)]
    if rng.random() < 0.3:
        words.append(str(rng.randint(0, 1 << 32)))
    return indent + " ".join(words)


def make_file(rng, path):
    nlines = rng.choice([5, 20, 60, 150, 400, 1200])
    lines = ["# generated file %s" % path]
    lines += [make_line(rng) for _ in range(nlines)]
    return lines


def mutate(rng, lines):
    """Apply a few line-level edits: change, insert a block, delete a block."""
    lines = list(lines)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        pos = rng.randint(1, max(1, len(lines)))
        if op < 0.4 and len(lines) > 1:
            idx = min(pos, len(lines) - 1)
            lines[idx] = make_line(rng)
        elif op < 0.75:
            lines[pos:pos] = [make_line(rng) for _ in range(rng.randint(1, 40))]
        elif len(lines) > 10:
            del lines[pos:pos + rng.randint(1, 20)]
    return lines


def blob(lines):
    return ("\n".join(lines) + "\n").encode()


class Stream:
    def __init__(self, out):
        self.out = out
        self.mark = 0
        self.when = EPOCH

    def data(self, payload):
        self.out.write(b"data %d\n" % len(payload))
        self.out.write(payload)
        self.out.write(b"\n")

    def commit(self, ref, msg, author, changes, parent=None, merge=None):
        """changes: list of ('M', path, bytes) / ('D', path) / ('R', a, b)."""
        self.mark += 1
        self.when += 3600
        name, email = author
        self.out.write(b"commit %s\n" % ref.encode())
        self.out.write(b"mark :%d\n" % self.mark)
        stamp = b"%s <%s> %d +0000\n" % (name.encode(), email.encode(), self.when)
        self.out.write(b"author " + stamp)
        self.out.write(b"committer " + stamp)
        self.data(msg.encode())
        if parent is not None:
            self.out.write(b"from %s\n" % parent.encode())
        if merge is not None:
            self.out.write(b"merge %s\n" % merge.encode())
        for ch in changes:
            if ch[0] == "M":
                self.out.write(b"M 100644 inline %s\n" % ch[1].encode())
                self.data(ch[2])
            elif ch[0] == "D":
                self.out.write(b"D %s\n" % ch[1].encode())
            else:
                self.out.write(b'R "%s" "%s"\n' % (ch[1].encode(), ch[2].encode()))
        self.out.write(b"\n")
        return self.mark


def gen_stream(ncommits, out):
    rng = random.Random(0xEBB)
    st = Stream(out)
    files = {}  # path -> lines, for main
    dirs = ["src/core", "src/util", "src/os", "docs", "tests/unit", "tests/big", "tools"]
    serial = 0

    def new_path():
        nonlocal serial
        serial += 1
        return "%s/f%04d.txt" % (rng.choice(dirs), serial)

    # Initial commit with 250 files.
    changes = []
    for _ in range(250):
        p = new_path()
        files[p] = make_file(rng, p)
        changes.append(("M", p, blob(files[p])))
    st.commit("refs/heads/main", "initial import\n", AUTHORS[0], changes)

    fork_points = {ncommits // 4: 1, ncommits // 2: 2, (3 * ncommits) // 4: 3}
    forks = {}
    for i in range(1, ncommits):
        changes = []
        for _ in range(rng.randint(1, 15)):
            p = rng.choice(sorted(files))
            files[p] = mutate(rng, files[p])
            changes.append(("M", p, blob(files[p])))
        r = rng.random()
        if r < 0.08:
            p = new_path()
            files[p] = make_file(rng, p)
            changes.append(("M", p, blob(files[p])))
        elif r < 0.12 and len(files) > 50:
            p = rng.choice(sorted(files))
            del files[p]
            changes = [c for c in changes if c[1] != p]
            changes.append(("D", p))
        elif r < 0.16:
            p = rng.choice(sorted(files))
            q = new_path()
            files[q] = files.pop(p)
            changes = [c for c in changes if c[1] != p]
            changes.append(("R", p, q))
        msg = "change %d: %s\n\n%s\n" % (
            i, " ".join(rng.choice(WORDS) for _ in range(5)),
            "\n".join(make_line(rng) for _ in range(rng.randint(0, 6))))
        mark = st.commit("refs/heads/main", msg, AUTHORS[i % 3], changes)
        if i in fork_points:
            forks[fork_points[i]] = mark

    # Side branches: only under side/N/, forked from main at fork points.
    for n in sorted(forks):
        side = {}
        parent = ":%d" % forks[n]
        for k in range(20):
            changes = []
            if k < 3 or rng.random() < 0.3:
                p = "side/%d/s%02d.txt" % (n, k)
                side[p] = make_file(rng, p)
                changes.append(("M", p, blob(side[p])))
            for _ in range(rng.randint(1, 3)):
                p = rng.choice(sorted(side))
                side[p] = mutate(rng, side[p])
                changes.append(("M", p, blob(side[p])))
            st.commit("refs/heads/side%d" % n, "side %d step %d\n" % (n, k),
                      AUTHORS[(n + k) % 3], changes, parent=parent)
            parent = None


def edit_tree(step):
    """Edit the work tree of the repository in the cwd, deterministically."""
    rng = random.Random(1000 + step)
    paths = []
    for root, dnames, fnames in os.walk("."):
        dnames[:] = sorted(d for d in dnames if d != ".git")
        paths += [os.path.join(root, f)[2:] for f in sorted(fnames)]
    paths.sort()
    for _ in range(rng.randint(2, 8)):
        p = rng.choice(paths)
        with open(p, encoding="utf-8") as f:
            lines = f.read().split("\n")[:-1]
        with open(p, "w", encoding="utf-8") as f:
            f.write("\n".join(mutate(rng, lines)) + "\n")
    if step % 4 == 0:
        p = "work/w%03d.txt" % step
        os.makedirs("work", exist_ok=True)
        with open(p, "w", encoding="utf-8") as f:
            f.write("\n".join(make_file(rng, p)) + "\n")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "stream":
        n = int(sys.argv[2]) if len(sys.argv) > 2 else 400
        gen_stream(n, sys.stdout.buffer)
        sys.stdout.buffer.write(b"done\n")
    elif len(sys.argv) == 3 and sys.argv[1] == "edit":
        edit_tree(int(sys.argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
