#!/usr/bin/python3
"""Run the Python workloads of bench/python under every way of allocating
CPython's memory and compare them with stock CPython (pymalloc).

Every repetition runs every workload under every configuration, the
configurations in a fresh random order each time, so the drifts of a noisy
machine spread over all of them.  Wall time, CPU time and peak RSS of each
run come from bench/tools/launch.c (wait4's ru_maxrss of the interpreter
alone, not of this script); the RSS at the workload's phase points comes
from the workload itself (METRIC lines on stderr).  Every run must exit 0
and print the same checksum under every configuration.

Python 3 standard library only.
"""

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LAUNCH = HERE.parent / "build" / "launch"
LIBDIR = "/usr/lib/x86_64-linux-gnu"

WORKLOADS = ["churn", "strings", "jsonrt", "graph", "server", "threads"]
CONFIGS = ["stock", "glibc", "mimalloc", "jemalloc", "tcmalloc", "ebb-run", "ebb-install"]
PRELOADS = {"mimalloc": LIBDIR + "/libmimalloc.so.2",
            "jemalloc": LIBDIR + "/libjemalloc.so.2",
            "tcmalloc": LIBDIR + "/libtcmalloc_minimal.so.4"}
PHASES = ["free", "end"]  # the RSS a workload reports, besides its peak

# Settings that would change what a configuration measures: removed from
# every run's environment, then set again where a configuration wants them.
STRIP = re.compile(r"^(LD_PRELOAD|PYTHONMALLOC|PYTHONPATH|PYTHONHASHSEED|EBB_|MALLOC_|"
                   r"GLIBC_TUNABLES|MIMALLOC_|TCMALLOC_|_RJEM_MALLOC_CONF|JE_MALLOC_CONF)")
METRIC_RE = re.compile(r"^METRIC rss_([a-z]+)_kib=(\d+)\s*$", re.M)
TIME_RE = re.compile(r"^METRIC t_([a-z]+)_ms=([0-9.]+)\s*$", re.M)
RESULT_RE = re.compile(r"(\w+)=(-?[0-9.]+)")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def command(config, workload, args):
    """(preload, argv, extra environment) of one run."""
    script = [str(HERE / (workload + ".py")), "--scale", "%g" % args.scale]
    if config == "stock":
        return "", [args.python] + script, {}
    if config == "ebb-run":
        return "", [str(args.ebb_tool), "run", "--", args.python] + script, {}
    if config == "ebb-install":
        return "", [args.python, str(HERE / "with_install.py")] + script, \
            {"PYTHONPATH": str(args.ebb_python)}
    # Every object through malloc, and malloc is the preloaded library's.
    return PRELOADS.get(config, ""), [args.python] + script, {"PYTHONMALLOC": "malloc"}


def run_one(config, workload, args, tmp):
    preload, argv, extra = command(config, workload, args)
    env = {k: v for k, v in os.environ.items() if not STRIP.match(k)}
    # A fixed hash seed: the same dict layouts, so the same allocations.
    env.update(extra, PYTHONHASHSEED="0")
    resfile = os.path.join(tmp, "result")
    if os.path.exists(resfile):
        os.unlink(resfile)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # A session of its own, so that a timeout kills the whole tree.
        p = subprocess.Popen([str(LAUNCH), resfile, preload] + argv, env=env,
                             stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             start_new_session=True)
        try:
            p.wait(args.timeout)
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    try:
        res = {k: float(v) for k, v in RESULT_RE.findall(Path(resfile).read_text())}
    except OSError:
        res = {"status": p.returncode or 127}
    if res.get("status") != 0:
        tail = " | ".join(stderr.strip().splitlines()[-5:])
        raise RuntimeError("%s under %s: exit %d: %s" % (workload, config, res["status"], tail))
    rss = {k: int(v) for k, v in METRIC_RE.findall(stderr)}
    t = {k: float(v) / 1000 for k, v in TIME_RE.findall(stderr)}
    return {"workload": workload, "config": config, "wall_s": res["wall_s"],
            "cpu_s": res["user_s"] + res["sys_s"], "maxrss_kib": int(res["maxrss_kib"]),
            "minflt": int(res["minflt"]), "rss_kib": rss,
            # the work alone: from the workload's start to the end of its free
            "work_s": t.get("free"), "stdout": stdout.strip()}


def measure(args, configs, workloads):
    rng = random.Random(args.seed)
    runs, errors, broken = [], [], set()
    total = args.reps * len(workloads) * len(configs)
    n = 0
    with tempfile.TemporaryDirectory(prefix="ebb-pybench.") as tmp:
        for rep in range(args.reps):
            for w in workloads:
                order = list(configs)
                rng.shuffle(order)
                for c in order:
                    n += 1
                    if (w, c) in broken:
                        continue
                    try:
                        r = run_one(c, w, args, tmp)
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        errors.append(str(e))
                        broken.add((w, c))  # not retried in later reps
                        log("FAIL " + str(e))
                        continue
                    r["rep"] = rep + 1
                    runs.append(r)
                    if not args.quiet:
                        log("[%3d/%d] %-8s %-12s %6.3f s  peak %7.1f MiB  end %7.1f MiB" % (
                            n, total, w, c, r["wall_s"], r["maxrss_kib"] / 1024,
                            r["rss_kib"].get("end", 0) / 1024))
    for w in workloads:
        outs = {}
        for r in runs:
            if r["workload"] == w:
                outs.setdefault(r["stdout"], set()).add(r["config"])
        if len(outs) > 1:
            errors.append("%s: checksums differ: %s" % (w, "; ".join(
                "%s: %s" % (",".join(sorted(cs)), o) for o, cs in outs.items())))
    return runs, errors


def summarize(runs, configs, workloads):
    med = statistics.median
    rows = []
    for w in workloads:
        by = {}
        for c in configs:
            rs = [r for r in runs if r["workload"] == w and r["config"] == c]
            if not rs:
                continue
            walls = [r["wall_s"] for r in rs]
            by[c] = {"workload": w, "config": c, "n": len(rs), "wall_s": med(walls),
                     "spread": (max(walls) - min(walls)) / med(walls),
                     "cpu_s": med([r["cpu_s"] for r in rs]),
                     "work_s": med([r["work_s"] for r in rs]) if rs[0]["work_s"] else None,
                     "peak_mib": med([r["maxrss_kib"] for r in rs]) / 1024,
                     "faults_k": med([r["minflt"] for r in rs]) / 1000}
            for ph in PHASES:
                vals = [r["rss_kib"][ph] for r in rs if ph in r["rss_kib"]]
                by[c][ph + "_mib"] = med(vals) / 1024 if vals else None
        stock = by.get("stock")
        for row in by.values():
            row["wall_vs_stock"] = row["wall_s"] / stock["wall_s"] if stock else None
            row["cpu_vs_stock"] = row["cpu_s"] / stock["cpu_s"] if stock else None
            row["work_vs_stock"] = (row["work_s"] / stock["work_s"]
                                    if stock and row["work_s"] and stock["work_s"] else None)
        rows += by.values()
    overall = []
    for c in configs:
        mine = [r for r in rows if r["config"] == c and r["wall_vs_stock"]]
        if not mine:
            continue
        wall = [r["wall_vs_stock"] for r in mine]
        overall.append({"config": c, "median_wall_vs_stock": med(wall),
                        "worst_wall_vs_stock": max(wall),
                        "median_cpu_vs_stock": med([r["cpu_vs_stock"] for r in mine]),
                        "median_work_vs_stock": med([r["work_vs_stock"] or 0 for r in mine]),
                        "lowest_free": lowest_count(rows, c, "free_mib"),
                        "lowest_end": lowest_count(rows, c, "end_mib")})
    return rows, overall


def lowest_count(rows, config, key):
    """On how many workloads this configuration's RSS was the lowest (within
    1%: a few pages either way are not a difference)."""
    n = 0
    for w in dict.fromkeys(r["workload"] for r in rows):
        vals = {r["config"]: r[key] for r in rows if r["workload"] == w and r[key] is not None}
        if config in vals and vals[config] <= min(vals.values()) * 1.01:
            n += 1
    return n


def render(headers, body, markdown):
    if markdown:
        return "\n".join(["| " + " | ".join(headers) + " |",
                          "|:---|" + "---:|" * (len(headers) - 1)] +
                         ["| " + " | ".join(r) + " |" for r in body])
    widths = [max(len(x) for x in col) for col in zip(headers, *body)]
    fmt = lambda cells: "  ".join([cells[0].ljust(widths[0])] + [
        c.rjust(wd) for c, wd in zip(cells[1:], widths[1:])]).rstrip()
    return "\n".join([fmt(headers), fmt(["-" * wd for wd in widths])] + [fmt(r) for r in body])


def report(rows, overall, markdown):
    f = lambda x, spec: "-" if x is None else spec % x
    headers = ["workload", "config", "wall s", "spread", "wall/stock", "cpu/stock", "work/stock",
               "peak MiB", "after free MiB", "end MiB", "faults K"]
    body = [[r["workload"], r["config"], f(r["wall_s"], "%.3f"), f(100 * r["spread"], "%.0f%%"),
             f(r["wall_vs_stock"], "%.2f"), f(r["cpu_vs_stock"], "%.2f"),
             f(r["work_vs_stock"], "%.2f"),
             f(r["peak_mib"], "%.1f"), f(r["free_mib"], "%.1f"), f(r["end_mib"], "%.1f"),
             f(r["faults_k"], "%.1f")] for r in rows]
    n = len({r["workload"] for r in rows})
    sums = [[o["config"], f(o["median_wall_vs_stock"], "%.2f"), f(o["worst_wall_vs_stock"], "%.2f"),
             f(o["median_cpu_vs_stock"], "%.2f"), f(o["median_work_vs_stock"], "%.2f"), "%d/%d" % (o["lowest_free"], n),
             "%d/%d" % (o["lowest_end"], n)] for o in overall]
    return render(headers, body, markdown) + "\n\n" + render(
        ["config", "median wall/stock", "worst wall/stock", "median cpu/stock", "median work/stock",
         "lowest after free", "lowest at end"], sums, markdown)


def build(args):
    # ebb itself is the top Makefile's business (make bench-python builds it
    # first); the launcher is bench/'s.
    for p in (args.ebb_tool, args.ebb_python):
        if not p.exists():
            sys.exit("missing %s: run make lib tool python at %s" % (p, ROOT))
    subprocess.run(["make", "-s", "-C", str(HERE.parent), "build/launch"], check=True,
                   stdout=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Only ratios measured within one invocation are comparable.")
    ap.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    ap.add_argument("--scale", type=float, default=1.0, help="passed to every workload")
    ap.add_argument("--only", metavar="W1,W2", help="workloads (%s)" % ",".join(WORKLOADS))
    ap.add_argument("--configs", metavar="C1,C2", help="configurations (%s)" % ",".join(CONFIGS))
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="interpreter (default /usr/bin/python3, the one build/python is for)")
    ap.add_argument("--build", default=str(ROOT / "build"), help="ebb's build directory")
    ap.add_argument("--seed", type=int, help="seed of the run order (default: the clock)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds before a run is killed")
    ap.add_argument("--markdown", action="store_true", help="tables as Markdown")
    ap.add_argument("--json", metavar="FILE", help="also write every run and the summary")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = int(time.time()) % 100000
    args.ebb_tool = Path(args.build).resolve() / "ebb"
    args.ebb_python = Path(args.build).resolve() / "python"
    workloads = args.only.split(",") if args.only else WORKLOADS
    configs = args.configs.split(",") if args.configs else CONFIGS
    for name, known in ((workloads, WORKLOADS), (configs, CONFIGS)):
        bad = set(name) - set(known)
        if bad:
            sys.exit("unknown: %s (known: %s)" % (",".join(sorted(bad)), ",".join(known)))
    for c in configs:
        if c in PRELOADS and not os.path.isfile(PRELOADS[c]):
            log("skip %s: %s not found (apt-get install the peer's package)" % (c, PRELOADS[c]))
            configs = [x for x in configs if x != c]

    build(args)
    t0 = time.time()
    runs, errors = measure(args, configs, workloads)
    log("runs took %.0f s" % (time.time() - t0))
    rows, overall = summarize(runs, configs, workloads)
    git = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()
    head = "ebb Python bench: scale %g, %d reps, median, order seed %d, %s, %d CPUs, git %s" % (
        args.scale, args.reps, args.seed, args.python, os.cpu_count(), git)
    print(("_%s_" % head if args.markdown else head) + "\n")
    print(report(rows, overall, args.markdown))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": {"scale": args.scale, "reps": args.reps, "seed": args.seed,
                                  "git": git}, "summary": rows, "overall": overall,
                       "runs": runs, "errors": errors}, f, indent=1)
    if errors:
        log("\nERRORS:\n  " + "\n  ".join(errors))
        sys.exit(1)


if __name__ == "__main__":
    main()
