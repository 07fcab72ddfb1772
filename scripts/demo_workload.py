"""The demo's workload (BRIEF story 1): a search that keeps millions of small
path objects, frees them, then computes lightly on the small result.

Prints one JSON line: time of each phase and RSS (VmRSS) after each."""
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


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3_000_000
    out = {"base": rss_mib()}
    t = time.perf_counter()
    frontier, index = build(n)
    out["t_build"] = time.perf_counter() - t
    out["peak"] = rss_mib()
    keep = [frontier[i] for i in range(0, n, 1000)]  # the small result
    t = time.perf_counter()
    del frontier, index
    gc.collect()
    out["t_free"] = time.perf_counter() - t
    out["after_free"] = rss_mib()
    t = time.perf_counter()
    total = 0.0
    for _ in range(20):
        total += sum(p[1] for p in keep)
    time.sleep(0.2)
    out["t_compute"] = time.perf_counter() - t
    out["end"] = rss_mib()
    out["check"] = total
    print(json.dumps(out))


main()
