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

With --callgrind, the workloads run under valgrind --tool=callgrind instead
(by default as stock CPython, under ebb run and with ebb.install()) and the
instructions they execute are reported, the median of --reps runs: a
measure of CPU cost that the machine's load does not disturb.

Python 3 standard library only; what the drivers share is in
bench/benchlib.py.
"""

import argparse
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import benchlib  # noqa: E402  (bench/ is on the path only from here on)
from benchlib import ROOT, fmt, log, median, ratio, render  # noqa: E402

WORKLOADS = ["churn", "strings", "jsonrt", "graph", "server", "threads"]
CONFIGS = ["stock", "glibc", "mimalloc", "jemalloc", "tcmalloc", "ebb-run", "ebb-install"]
# What --callgrind compares unless --configs says otherwise: CPython's own
# allocator against the two ways into ebb.
CALLGRIND_CONFIGS = ["stock", "ebb-run", "ebb-install"]
PHASES = ["free", "end"]  # the RSS a workload reports, besides its peak

# Settings that would change what a configuration measures: removed from
# every run's environment, then set again where a configuration wants them.
STRIP = benchlib.env_pattern("LD_PRELOAD", "PYTHONMALLOC", "PYTHONPATH", "PYTHONHASHSEED")
METRIC_RE = re.compile(r"^METRIC rss_([a-z]+)_kib=(\d+)\s*$", re.M)
TIME_RE = re.compile(r"^METRIC t_([a-z]+)_ms=([0-9.]+)\s*$", re.M)


# ---------------------------------------------------------------------------
# configurations
#
# A configuration is a dict: name (what the tables say), kind (one of
# CONFIGS: how the interpreter is started), build (ebb's build directory,
# for the ebb kinds) and env (extra settings).  --variant adds one of a
# known kind under a new name, with its own settings or build.


def parse_variant(spec, build):
    """NAME=KIND[@BUILD_DIR][?VAR=VAL&...] -> a configuration."""
    name, _, rest = spec.partition("=")
    rest, _, query = rest.partition("?")
    kind, _, other = rest.partition("@")
    if not name or kind not in CONFIGS:
        sys.exit("--variant wants NAME=KIND[@BUILD_DIR][?VAR=VAL&...] with KIND one of %s, "
                 "got %r" % (",".join(CONFIGS), spec))
    return {"name": name, "kind": kind, "build": Path(other).resolve() if other else build,
            "env": benchlib.parse_settings(query, spec), "variant": True}


def select_configs(args):
    build = Path(args.build).resolve()
    known = [{"name": c, "kind": c, "build": build, "env": {}} for c in CONFIGS]
    variants = [parse_variant(v, build) for v in args.variant]
    known = [c for c in known if c["name"] not in {v["name"] for v in variants}] + variants
    if args.configs:
        names = benchlib.pick(args.configs, [c["name"] for c in known], "configuration(s)")
    else:
        # the variants last, also one that took the name of a configuration
        names = [v["name"] for v in variants]
        names = [n for n in (CALLGRIND_CONFIGS if args.callgrind else CONFIGS)
                 if n not in names] + names
    by_name = {c["name"]: c for c in known}
    chosen = []
    for n in names:
        c = by_name[n]
        lib = benchlib.PEER_LIBS.get(c["kind"])
        why = lib and benchlib.probe_preload(lib)
        if why:
            log("skip %s: %s %s (apt-get install the peer's package)" % (n, lib, why))
            continue
        chosen.append(c)
    return chosen


def needs(cfg, callgrind):
    """The files of ebb's build a configuration runs with."""
    if cfg["kind"] == "ebb-run":
        return [cfg["build"] / ("libebb.so" if callgrind else "ebb")]
    if cfg["kind"] == "ebb-install":
        return [cfg["build"] / "python"]
    return []


def command(cfg, workload, args):
    """(preload, argv, extra environment) of one run."""
    script = [str(HERE / (workload + ".py")), "--scale", "%g" % args.scale]
    kind, build = cfg["kind"], cfg["build"]
    if kind == "stock":
        how = "", [args.python] + script, {}
    elif kind == "ebb-run" and args.callgrind:
        # What `ebb run` sets up (less its black box), in the environment
        # of valgrind itself: valgrind must start the interpreter, not the
        # ebb tool.
        how = str(build / "libebb.so"), [args.python] + script, {"EBB_PYTHON": "1"}
    elif kind == "ebb-run":
        how = "", [str(build / "ebb"), "run", "--", args.python] + script, {}
    elif kind == "ebb-install":
        how = "", [args.python, str(HERE / "with_install.py")] + script, \
            {"PYTHONPATH": str(build / "python")}
    else:
        # Every object through malloc, and malloc is the preloaded library's.
        how = (benchlib.PEER_LIBS.get(kind, ""), [args.python] + script,
               {"PYTHONMALLOC": "malloc"})
    preload, argv, extra = how
    return preload, argv, dict(extra, **cfg["env"])


def run_env(extra):
    env = benchlib.env_without(STRIP)
    # A fixed hash seed: the same dict layouts, so the same allocations.
    env.update(extra, PYTHONHASHSEED="0")
    return env


def run_all(args, configs, workloads, run, shuffle=None):
    """run(rep, workload, configuration, n, total, tmp) for everything (see
    benchlib.run_matrix); the checksums must agree.  Returns (runs,
    errors)."""
    with tempfile.TemporaryDirectory(prefix="ebb-pybench.") as tmp:
        runs, errors, sums = benchlib.run_matrix(
            args.reps, workloads, configs, lambda cfg: cfg["name"],
            lambda *where: run(*where, tmp), shuffle)
    return runs, errors + ["%s: checksums differ: %s" % (w, "; ".join(
        "%s: %s" % (",".join(sorted(cs)), o) for o, cs in outs.items()))
        for w, outs in sums.mismatches()]


# ---------------------------------------------------------------------------
# timing


def measure(args, configs, workloads):
    def run(rep, w, cfg, n, total, tmp):
        preload, argv, extra = command(cfg, w, args)
        ran = benchlib.launch(argv, preload, run_env(extra), args.timeout, tmp)
        benchlib.check_exit("%s under %s" % (w, cfg["name"]), int(ran.res["status"]),
                            ran.stderr)
        res = ran.res
        t = {k: float(v) / 1000 for k, v in TIME_RE.findall(ran.stderr)}
        r = {"workload": w, "config": cfg["name"], "wall_s": res["wall_s"],
             "cpu_s": res["user_s"] + res["sys_s"], "maxrss_kib": int(res["maxrss_kib"]),
             "minflt": int(res["minflt"]),
             "rss_kib": {k: int(v) for k, v in METRIC_RE.findall(ran.stderr)},
             # the work alone: from the workload's start to the end of its free
             "work_s": t.get("free"), "stdout": ran.stdout.strip(), "rep": rep}
        if not args.quiet:
            log("[%3d/%d] %-8s %-12s %6.3f s  peak %7.1f MiB  end %7.1f MiB" % (
                n, total, w, cfg["name"], r["wall_s"], r["maxrss_kib"] / 1024,
                r["rss_kib"].get("end", 0) / 1024))
        return r

    return run_all(args, configs, workloads, run, shuffle=random.Random(args.seed))


def summarize(runs, configs, workloads):
    def reduce(rs):
        walls = [r["wall_s"] for r in rs]
        row = {"wall_s": median(walls), "spread": benchlib.spread(walls),
               "cpu_s": median([r["cpu_s"] for r in rs]),
               "work_s": median([r["work_s"] for r in rs]) if rs[0]["work_s"] else None,
               "peak_mib": median([r["maxrss_kib"] for r in rs]) / 1024,
               "faults_k": median([r["minflt"] for r in rs]) / 1000}
        for ph in PHASES:
            vals = [r["rss_kib"][ph] for r in rs if ph in r["rss_kib"]]
            row[ph + "_mib"] = median(vals) / 1024 if vals else None
        return row

    rows = []
    for by in benchlib.summary_rows(runs, workloads, configs, "config", reduce).values():
        stock = by.get("stock", {})
        for row in by.values():
            row["wall_vs_stock"] = ratio(row["wall_s"], stock.get("wall_s"))
            row["cpu_vs_stock"] = ratio(row["cpu_s"], stock.get("cpu_s"))
            row["work_vs_stock"] = ratio(row["work_s"] or None, stock.get("work_s"))
        rows += by.values()
    overall = []
    for c in configs:
        mine = [r for r in rows if r["config"] == c and r["wall_vs_stock"]]
        if not mine:
            continue
        wall = [r["wall_vs_stock"] for r in mine]
        overall.append({"config": c, "median_wall_vs_stock": median(wall),
                        "worst_wall_vs_stock": max(wall),
                        "median_cpu_vs_stock": median([r["cpu_vs_stock"] for r in mine]),
                        "median_work_vs_stock": median([r["work_vs_stock"] or 0 for r in mine]),
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


def report(rows, overall, markdown):
    headers = ["workload", "config", "wall s", "spread", "wall/stock", "cpu/stock", "work/stock",
               "peak MiB", "after free MiB", "end MiB", "faults K"]
    body = [[r["workload"], r["config"], fmt(r["wall_s"], "%.3f"),
             fmt(100 * r["spread"], "%.0f%%"),
             fmt(r["wall_vs_stock"]), fmt(r["cpu_vs_stock"]), fmt(r["work_vs_stock"]),
             fmt(r["peak_mib"], "%.1f"), fmt(r["free_mib"], "%.1f"), fmt(r["end_mib"], "%.1f"),
             fmt(r["faults_k"], "%.1f")] for r in rows]
    n = len({r["workload"] for r in rows})
    sums = [[o["config"], fmt(o["median_wall_vs_stock"]), fmt(o["worst_wall_vs_stock"]),
             fmt(o["median_cpu_vs_stock"]), fmt(o["median_work_vs_stock"]),
             "%d/%d" % (o["lowest_free"], n), "%d/%d" % (o["lowest_end"], n)] for o in overall]
    return render(headers, body, markdown) + "\n\n" + render(
        ["config", "median wall/stock", "worst wall/stock", "median cpu/stock", "median work/stock",
         "lowest after free", "lowest at end"], sums, markdown)


# ---------------------------------------------------------------------------
# callgrind


def measure_callgrind(args, configs, workloads):
    """Every workload under every configuration, args.reps times, under
    callgrind.  The counts of one configuration vary a little from run to
    run (ebb samples the heap at random, threads interleave differently),
    which is why a difference of a percent or two wants the median of
    3-5."""
    def run(rep, w, cfg, n, total, tmp):
        preload, argv, extra = command(cfg, w, args)
        t0 = time.time()
        ir, out = benchlib.callgrind("%s under %s (callgrind, rep %d)" % (w, cfg["name"], rep),
                                     argv, preload, run_env(extra), args.timeout * 20, tmp,
                                     program_threads=args.cg_program_threads)
        if not args.quiet:
            log("[%3d/%d] callgrind rep %d  %-8s %-12s Ir %15d  (%.0f s)" % (
                n, total, rep, w, cfg["name"], ir, time.time() - t0))
        return {"rep": rep, "workload": w, "config": cfg["name"], "ir": ir,
                "stdout": out.strip()}

    return run_all(args, configs, workloads, run)


def summarize_callgrind(runs, configs, workloads):
    rows = []
    table = benchlib.summary_rows(runs, workloads, configs, "config", benchlib.ir_summary)
    for by in table.values():
        for row in by.values():
            row["ir_vs_stock"] = ratio(row["ir"], by.get("stock", {}).get("ir"))
        rows += by.values()
    overall = [{"config": c, "geomean_ir_vs_stock":
                benchlib.geomean(r["ir_vs_stock"] for r in rows if r["config"] == c)}
               for c in configs if any(r["config"] == c for r in rows)]
    return rows, overall


def report_callgrind(rows, overall, markdown, reps):
    spread = reps > 1
    headers = ["workload", "config", "Ir (M)"] + (["spread"] if spread else []) + ["Ir/stock"]
    body = [[r["workload"], r["config"], "%.1f" % (r["ir"] / 1e6)] +
            (["%.2f%%" % r["spread_pct"]] if spread else []) + [fmt(r["ir_vs_stock"], "%.3f")]
            for r in rows]
    body += [["geomean", o["config"], ""] + ([""] if spread else []) +
             [fmt(o["geomean_ir_vs_stock"], "%.3f")] for o in overall]
    return render(headers, body, markdown, "ll" + "r" * (len(headers) - 2), group=True)


# ---------------------------------------------------------------------------


def build(args, configs):
    # ebb itself is the top Makefile's business (make bench-python builds it
    # first); the launcher is bench/'s.
    for cfg in configs:
        for p in needs(cfg, args.callgrind):
            if not p.exists():
                sys.exit("missing %s (for %s): `make lib tool python` at %s builds it "
                         "into build/" % (p, cfg["name"], ROOT))
    if not benchlib.run_make(["make", "-s", "-C", str(benchlib.BENCH), "build/launch"],
                             "the launcher"):
        sys.exit("building the launcher failed")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Only ratios measured within one invocation are comparable.")
    benchlib.add_repeat_options(ap, "repetitions (default 5; 1 with --callgrind)")
    ap.add_argument("--scale", type=float, default=None,
                    help="passed to every workload (default 1; 0.1 with --callgrind)")
    ap.add_argument("--only", metavar="W1,W2", help="workloads (%s)" % ",".join(WORKLOADS))
    ap.add_argument("--configs", metavar="C1,C2", help="configurations (%s; with --callgrind "
                    "the default is %s, and variants)" % (",".join(CONFIGS),
                                                          ",".join(CALLGRIND_CONFIGS)))
    ap.add_argument("--variant", action="append", default=[],
                    metavar="NAME=KIND[@BUILD_DIR][?VAR=VAL&...]",
                    help="add a configuration that runs like KIND (one of the configurations) "
                    "with ebb from BUILD_DIR and/or these environment settings, e.g. "
                    "'ebb-nosample=ebb-run?EBB_SAMPLE_RATE=0'; repeatable")
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="interpreter (default /usr/bin/python3, the one build/python is for)")
    ap.add_argument("--build", default=str(ROOT / "build"), help="ebb's build directory")
    ap.add_argument("--callgrind", action="store_true",
                    help="count instructions under valgrind --tool=callgrind instead of timing")
    ap.add_argument("--cg-program-threads", action="store_true",
                    help="with --callgrind, count only the interpreter's threads, not ebb's "
                    "own (the purger wakes by the clock: for comparing ebb with itself)")
    ap.add_argument("--timeout", type=float, default=300,
                    help="seconds before a run is killed (x20 under callgrind)")
    benchlib.add_output_options(ap, "also write every run and the summary as JSON")
    args = ap.parse_args()
    benchlib.settle_repeats(args, 5)
    if args.scale is None:
        args.scale = 0.1 if args.callgrind else 1.0
    if not args.scale > 0:
        sys.exit("--scale must be positive")
    if args.callgrind:
        # valgrind must instrument the interpreter, not a wrapper script.
        args.python = benchlib.real_interpreter(args.python)
    workloads = benchlib.pick(args.only, WORKLOADS, "workload(s)") if args.only else WORKLOADS
    configs = select_configs(args)
    if not configs:
        sys.exit("no configuration to run")
    names = [c["name"] for c in configs]
    variants = {c["name"]: {"kind": c["kind"], "build": str(c["build"]), "env": c["env"]}
                for c in configs if c.get("variant")}

    build(args, configs)
    git = benchlib.git_describe()
    t0 = time.time()
    if args.callgrind:
        runs, errors = measure_callgrind(args, configs, workloads)
        log("runs took %.0f s" % (time.time() - t0))
        rows, overall = summarize_callgrind(runs, names, workloads)
        head = "ebb Python bench: callgrind Ir, scale %g, %s, %s, %d CPUs, git %s" % (
            args.scale, "1 run each" if args.reps == 1 else "median of %d runs each" % args.reps,
            args.python, os.cpu_count(), git)
        table = report_callgrind(rows, overall, args.markdown, args.reps)
        doc = {"mode": "callgrind"}
    else:
        runs, errors = measure(args, configs, workloads)
        log("runs took %.0f s" % (time.time() - t0))
        rows, overall = summarize(runs, names, workloads)
        head = "ebb Python bench: scale %g, %d reps, median, order seed %d, %s, %d CPUs, git %s" % (
            args.scale, args.reps, args.seed, args.python, os.cpu_count(), git)
        table = report(rows, overall, args.markdown)
        doc = {}
    print(benchlib.emphasize([head], args.markdown) + "\n")
    print(table)
    if args.json:
        doc["config"] = {"scale": args.scale, "reps": args.reps, "seed": args.seed, "git": git}
        if variants:
            doc["config"]["variants"] = variants
        doc.update(summary=rows, overall=overall, runs=runs, errors=errors)
        benchlib.write_json(args.json, doc)
    benchlib.exit_on_errors("ERRORS", errors)


if __name__ == "__main__":
    main()
