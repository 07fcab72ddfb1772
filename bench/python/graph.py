#!/usr/bin/python3
"""Graph search that keeps millions of small path objects, then frees them.

Breadth-first search over an implicit graph of N integers (three edges per
node from a fixed hash), where every reached node's path is a linked chain
of 2-tuples (node, parent_path) kept in a list, as a search that must be
able to report any path does.  That is millions of tuples and ints, about
as much memory as the machine would spend on a real search.  When the
search ends, only the deepest path is kept (as a short list of nodes) and
everything else is freed; then the program computes lightly on that result
for a while.  What matters here (BRIEF story 1) is the RSS after the free
and at the end: a program that is now small should look small to the OS.
Phases: peak (search done, all paths alive), free (paths dropped), end
(after the light computation).
"""

from collections import deque

import common


def neighbours(n, size):
    # Three edges per node, spread over the whole graph, deterministic.
    h = (n * 2654435761) & 0xFFFFFFFF
    return ((h % size), ((h >> 7) + n + 1) % size, (n * 3 + 7) % size)


def main():
    args = common.parse(__doc__)
    size = int(2_500_000 * args.scale)
    seen = bytearray(size)
    start = (0, None)
    seen[0] = 1
    paths = [start]
    frontier = deque([start])
    while frontier:
        path = frontier.popleft()
        for m in neighbours(path[0], size):
            if not seen[m]:
                seen[m] = 1
                p = (m, path)
                paths.append(p)
                frontier.append(p)
    common.phase("peak")
    # The deepest path is the last one reached; walk it back to a list.
    result = []
    p = paths[-1]
    while p is not None:
        result.append(p[0])
        p = p[1]
    acc = len(paths) * 1000 + len(result)
    del paths, frontier, path, p, start
    common.finish(acc, args.scale, [float(v) for v in result], work=12_500_000)


if __name__ == "__main__":
    main()
