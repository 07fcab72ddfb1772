#!/usr/bin/env python3
"""The layer check: no lower layer of src/ calls an upper one.

src/ has a folder per layer, bottom to top: os, base, core, policy,
insight, front (src/internal.h draws them and says what each holds).  A
file may refer to symbols of its own layer and of the layers below it,
never above.  This script compiles every src/**/*.c on its own (which also
proves each file includes what it uses), reads what each object defines and
what it leaves undefined (`nm`), and fails on every arrow that points
upward, naming the file, the symbol and the file that defines it.  Static
inline functions from the headers count where they are inlined: a file that
calls ebb__limit_poll() calls into policy.

It also builds the graph of files (an arrow from a file to every file it
refers to) and fails if a cycle joins more than three files: a tight pair or
trio inside the mechanism (a heap and its pools) is how such code is
written, a knot of a dozen is what this layering exists to prevent.

    python3 tests/layers/check_layers.py            # the tree this file is in
    python3 tests/layers/check_layers.py --root DIR # another tree (the test)
    python3 tests/layers/check_layers.py -v         # and every arrow
Exit status 0 when the layering holds, 1 when it does not, 2 on a build error.
"""
import argparse
import os
import subprocess
import sys
import tempfile

LAYERS = ["os", "base", "core", "policy", "insight", "front"]
RANK = {name: i for i, name in enumerate(LAYERS)}
MOST_IN_A_CYCLE = 3
# Each build a file is checked in: the release build, and the debug build
# whose assertions and consistency walks reach further.
BUILDS = [[], ["-DEBB_DEBUG=2"]]
# Files that only make sense inside src/ebb.c's one unit, with the flags
# they are checked with alone: override.c aliases malloc and friends to the
# ebb_* functions, and an alias needs its target in the same unit.
ALONE_FLAGS = {os.path.join("src", "front", "override.c"): ["-DEBB_NO_OVERRIDE"]}


def sources(root):
    """src/<layer>/<file>.c, as paths relative to root, sorted."""
    out = []
    for layer in LAYERS:
        folder = os.path.join(root, "src", layer)
        if not os.path.isdir(folder):
            continue
        out += sorted(os.path.join("src", layer, f) for f in os.listdir(folder) if f.endswith(".c"))
    stray = [f for f in os.listdir(os.path.join(root, "src"))
             if f.endswith(".c") and f != "ebb.c"]
    if stray:
        sys.exit("check_layers: src/%s is in no layer: move it into a layer's folder" % stray[0])
    return out


def layer_of(path):
    return path.split(os.sep)[1]


def compile_alone(root, src, flags, outdir, cc):
    obj = os.path.join(outdir, src.replace(os.sep, "_") + ".o")
    cmd = [cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-O0", "-fPIC",
           "-I" + os.path.join(root, "src"), "-I" + os.path.join(root, "include"),
           *flags, *ALONE_FLAGS.get(src, []), "-c", os.path.join(root, src), "-o", obj]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write("check_layers: %s does not compile on its own (%s):\n%s"
                         % (src, " ".join(flags) or "release", p.stderr))
        sys.exit(2)
    return obj


def symbols(obj):
    """(defined, undefined): the global symbols obj defines and needs."""
    p = subprocess.run(["nm", obj], capture_output=True, text=True, check=True)
    defined, undefined = set(), set()
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
        elif len(parts) == 3 and parts[1].isupper() and parts[1] != "U":
            defined.add(parts[2])
    return defined, undefined


def arrows(root, flags, cc):
    """{(from_file, to_file): set of symbols} for one build."""
    srcs = sources(root)
    with tempfile.TemporaryDirectory() as tmp:
        table = {src: symbols(compile_alone(root, src, flags, tmp, cc)) for src in srcs}
    owner = {}
    for src, (defined, _) in table.items():
        for sym in defined:
            if sym in owner and owner[sym] != src:
                sys.exit("check_layers: %s is defined by both %s and %s" % (sym, owner[sym], src))
            owner[sym] = src
    out = {}
    for src, (_, undefined) in table.items():
        for sym in undefined:
            to = owner.get(sym)  # None: the C library or the system
            if to is not None and to != src:
                out.setdefault((src, to), set()).add(sym)
    return out


def cycles(edges):
    """The strongly connected components of more than one file (Tarjan)."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on_stack, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def check(root, cc="cc", verbose=False, out=sys.stdout, builds=BUILDS):
    """Print what is wrong; return the number of problems."""
    edges = {}
    for flags in builds:
        for key, syms in arrows(root, flags, cc).items():
            edges.setdefault(key, set()).update(syms)
    problems = 0
    for (a, b), syms in sorted(edges.items()):
        upward = RANK[layer_of(a)] < RANK[layer_of(b)]
        if upward:
            problems += 1
            out.write("upward: %s (%s) calls %s (%s): %s\n"
                      % (a, layer_of(a), b, layer_of(b), ", ".join(sorted(syms))))
        elif verbose:
            out.write("  %s -> %s: %s\n" % (a, b, ", ".join(sorted(syms))))
    for comp in cycles(edges):
        if len(comp) > MOST_IN_A_CYCLE:
            problems += 1
            out.write("cycle of %d files (at most %d may call each other round): %s\n"
                      % (len(comp), MOST_IN_A_CYCLE, " ".join(comp)))
        elif verbose:
            out.write("  cycle (allowed): %s\n" % " ".join(comp))
    files = {f for pair in edges for f in pair}
    out.write("layers: %d arrows between %d files; %s\n"
              % (len(edges), len(files), "no upward call, no cycle of more than %d files"
                 % MOST_IN_A_CYCLE if problems == 0 else "%d problem(s)" % problems))
    return problems


def main():
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=here, help="the tree to check (default: this one)")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("-v", "--verbose", action="store_true", help="print every arrow")
    ap.add_argument("--release-only", action="store_true",
                    help="check the release build only (not also EBB_DEBUG=2)")
    args = ap.parse_args()
    builds = BUILDS[:1] if args.release_only else BUILDS
    return 1 if check(args.root, args.cc, args.verbose, builds=builds) else 0


if __name__ == "__main__":
    sys.exit(main())
