"""The demo's workload (BRIEF story 1): a search that keeps millions of small
path objects, frees them, then computes lightly on the small result.

Prints one JSON line: the time of each phase, RSS (VmRSS) after each, and
the floor: base RSS plus the 4 KiB pages that hold a live object after the
free (the least any allocator that does not move objects could keep)."""
import gc
import json
import sys
import time


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def build(n):
    # A frontier of paths: tuples of small ints, floats and short strings,
    # plus a dict per hundred paths, as a breadth-first search would keep.
    frontier = []
    index = {}
    for i in range(n):
        path = (i, i * 0.5, "n%d" % (i % 1000), (i & 7, i >> 3))
        frontier.append(path)
        if i % 100 == 0:
            index[i] = {"len": i & 15, "cost": i * 1.5}
    return frontier, index


def pages_of(objs):
    """Distinct 4 KiB pages holding the objects and what they point to (a
    tuple's GC header sits 16 bytes before id())."""
    pages = set()
    seen = set()
    stack = list(objs)
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        start = id(o) - (16 if gc.is_tracked(o) else 0)
        end = id(o) + sys.getsizeof(o)
        pages.update(range(start >> 12, (end - 1 >> 12) + 1))
        if isinstance(o, tuple):
            stack.extend(o)
    return len(pages)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3_000_000
    gc.collect()
    out = {"base": rss_mib()}
    t = time.perf_counter()
    frontier, index = build(n)
    out["t_build"] = time.perf_counter() - t
    out["peak"] = rss_mib()
    keep = tuple(frontier[i] for i in range(0, n, 1000))  # the small result
    t = time.perf_counter()
    del frontier, index
    gc.collect()
    out["t_free"] = time.perf_counter() - t
    out["after_free"] = rss_mib()
    # Compute lightly for half a second, as the program would for hours.
    t = time.perf_counter()
    total = 0.0
    while time.perf_counter() - t < 0.5:
        total = sum(p[1] for p in keep)
        time.sleep(0.01)
    out["end"] = rss_mib()
    out["floor"] = out["base"] + (pages_of([keep]) * 4) / 1024.0
    out["check"] = total
    print(json.dumps(out))


main()
