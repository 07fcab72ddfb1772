#!/usr/bin/python3
"""Benchmark harness for ebb: runs the workloads in bench/workloads/ under
several malloc implementations (swapped in with LD_PRELOAD) and compares them.

Timing mode (default): every repetition runs every workload under every
available allocator, the allocators in a fresh random order each time, so
slow drifts of a noisy machine spread over all of them.  Each run's wall
time, user+sys CPU time and peak RSS (wait4's ru_maxrss, taken by the small
bench/tools/launch.c so the harness's own size does not leak in) are
recorded, and the medians (or minima, --stat min) are reported with ratios
to mimalloc and to glibc.

Callgrind mode (--callgrind): every workload runs under every allocator
under valgrind --tool=callgrind at a small scale, once or --reps times, and
the instruction counts (Ir, the median of the repetitions) are reported:
slower to get, but nearly independent of machine noise.

In both modes each run must exit 0 and print the same stdout under every
allocator (the workloads print a checksum of their data); anything else is
reported as an error and the script exits with status 1.

Python 3 standard library only; what the drivers share is in benchlib.py.
"""

import argparse
import os
import platform
import random
import re
import sys
import tempfile
import time

import benchlib
from benchlib import BENCH, BUILD, fmt, log, ratio, render

WORKLOADS = ["churn", "buildfree", "realloc", "prodcons", "larson", "largeblk",
             # the classic allocator benchmarks' patterns (issue 14)
             "threadchurn", "remotefree", "server", "falseshare", "mixedlife", "bigblocks"]

# Workloads that run for a fixed time and report their throughput (METRIC
# ops_per_s): their wall time says nothing, and under callgrind they would
# count how far they got, so --callgrind leaves them out.
FIXED_DURATION = {"server"}

# name -> library to preload (None: the C library's own malloc).  "ebb" is
# filled in from --ebb.  Order here is the order of the report.
PEERS = [("glibc", None), ("ebb", None)] + list(benchlib.PEER_LIBS.items())

# Environment variables that change how some allocator behaves; reported in
# the header when set so a result is not misread.
TUNING_VARS = benchlib.env_pattern()

METRIC_RE = re.compile(r"^METRIC ([A-Za-z0-9_]+)=(-?[0-9.]+)\s*$", re.M)


# --------------------------------------------------------------------------
# allocators


def select_allocators(args):
    """(name, library spec PATH[?VAR=VAL&...] or None) of every allocator
    to run, in the order of the report."""
    peers = [(n, args.ebb if n == "ebb" else lib) for n, lib in PEERS]
    for spec in args.lib:
        name, path, settings = benchlib.parse_lib(spec)
        if settings:
            path += "?" + "&".join("%s=%s" % kv for kv in settings.items())
        if name in (n for n, _ in peers):
            peers = [(n, path if n == name else l) for n, l in peers]
        else:
            peers.append((name, path))
    if args.alloc:
        wanted = benchlib.pick(args.alloc, [n for n, _ in peers], "allocator")
        peers = [p for p in peers if p[0] in wanted]
    chosen = []
    for name, lib in peers:
        if lib is None:
            chosen.append((name, None))
            continue
        path, settings = benchlib.split_preload(lib)
        why = benchlib.probe_preload(path, dict(os.environ, **settings))
        if why:
            hint = ""
            if name == "ebb":
                hint = " (run make at the repository root, or pass --ebb PATH)"
            log("skip %s: %s %s%s" % (name, lib, why, hint))
            continue
        chosen.append((name, lib))
    if not chosen:
        sys.exit("no allocator available")
    return chosen


# --------------------------------------------------------------------------
# running


def fmt_scale(s):
    return "%.10g" % s


LD_PRELOAD_RE = re.compile("^LD_PRELOAD$")


def preload_env(lib):
    """(library path, environment) of a run under the library spec lib:
    this environment with the spec's settings, without LD_PRELOAD, which
    the launcher sets."""
    path, settings = benchlib.split_preload(lib)
    return path, dict(benchlib.env_without(LD_PRELOAD_RE), **settings)


def run_measured(prog, lib, timeout, tmpdir):
    """Run prog (a list: executable path and arguments) with lib preloaded,
    through the launcher.  Returns (result dict, stdout, stderr)."""
    path, env = preload_env(lib)
    ran = benchlib.launch(prog, path, env, timeout, tmpdir)
    return ran.res, ran.stdout, ran.stderr


def build(args):
    if not benchlib.run_make(["make", "-C", str(BENCH), "-s"], "workloads"):
        sys.exit("building the workloads failed")


def mismatch_errors(sums):
    errs = []
    for w, outs in sums.mismatches():
        lines = ["    %-28s %s" % (",".join(names), out.replace("\n", " | "))
                 for out, names in outs.items()]
        errs.append("%s: OUTPUT MISMATCH between allocators (memory "
                    "corruption?):\n%s" % (w, "\n".join(lines)))
    return errs


def alloc_name(alloc):
    return alloc[0]


def timing_mode(args, allocs, workloads, tmpdir):
    scale = fmt_scale(args.scale)

    def run(rep, w, alloc, n, total):
        name, lib = alloc
        res, out, err = run_measured([str(BUILD / w), scale], lib, args.timeout, tmpdir)
        benchlib.check_exit("%s under %s (rep %d)" % (w, name, rep), int(res["status"]), err)
        r = {"rep": rep, "workload": w, "alloc": name,
             "wall_s": res["wall_s"],
             "cpu_s": res["user_s"] + res["sys_s"],
             "user_s": res["user_s"], "sys_s": res["sys_s"],
             "maxrss_kib": int(res["maxrss_kib"]),
             "minflt": int(res.get("minflt", 0)),
             "metrics": {k: float(v) for k, v in METRIC_RE.findall(err)},
             "stdout": out.strip()}
        if not args.quiet:
            log("[%3d/%d] rep %d  %-10s %-10s wall %7.3f s  cpu %7.3f s  %8.1f MiB" % (
                n, total, rep, w, name, r["wall_s"], r["cpu_s"], r["maxrss_kib"] / 1024))
        return r

    t_start = time.time()
    runs, failures, sums = benchlib.run_matrix(args.reps, workloads, allocs, alloc_name, run,
                                               shuffle=random.Random(args.seed))
    log("timing runs took %.0f s" % (time.time() - t_start))
    return runs, failures + mismatch_errors(sums)


def callgrind_mode(args, allocs, workloads, tmpdir):
    """Every workload under every allocator, args.reps times: the counts
    vary a little between runs (thread interleavings, ebb's randomly
    placed heap samples), so a small difference wants the median of a
    few."""
    scale = fmt_scale(args.cg_scale)

    def run(rep, w, alloc, n, total):
        name, lib = alloc
        path, env = preload_env(lib)
        what = "%s under %s (callgrind%s)" % (w, name, ", rep %d" % rep if args.reps > 1 else "")
        t0 = time.time()
        ir, out = benchlib.callgrind(what, [str(BUILD / w), scale], path, env,
                                     args.timeout * 20, tmpdir,
                                     program_threads=args.cg_program_threads)
        if not args.quiet:
            log("callgrind %-10s %-10s Ir %15d  (%.0f s)%s" % (
                w, name, ir, time.time() - t0, "  rep %d" % rep if args.reps > 1 else ""))
        return {"rep": rep, "workload": w, "alloc": name, "ir": ir, "stdout": out.strip()}

    runs, failures, sums = benchlib.run_matrix(args.reps, workloads, allocs, alloc_name, run)
    return runs, failures + mismatch_errors(sums)


# --------------------------------------------------------------------------
# reporting


def summarize_timing(runs, allocs, workloads, stat):
    """One row per workload and allocator; stat (median or min) reduces the
    repetitions."""
    def reduce(rs):
        walls = [r["wall_s"] for r in rs]
        m = stat(walls)
        keys = sorted({k for r in rs for k in r["metrics"]})
        return {"wall_s": m,
                "spread_pct": 100 * benchlib.spread(walls, m),
                "cpu_s": stat([r["cpu_s"] for r in rs]),
                "rss_mib": stat([r["maxrss_kib"] for r in rs]) / 1024,
                "faults_k": stat([r["minflt"] for r in rs]) / 1000,
                "metrics": {k: stat([r["metrics"][k] for r in rs if k in r["metrics"]])
                            for k in keys}}

    rows = []
    names = [n for n, _ in allocs]
    for by in benchlib.summary_rows(runs, workloads, names, "alloc", reduce).values():
        for row in by.values():
            for ref in ("mimalloc", "glibc"):
                for t in ("wall", "cpu"):
                    row["%s_vs_%s" % (t, ref)] = ratio(
                        row[t + "_s"], by.get(ref, {}).get(t + "_s"))
            rows.append(row)
    return rows


def summarize_callgrind(runs, allocs, workloads):
    """One row per workload and allocator: the median Ir of its runs."""
    rows = []
    names = [n for n, _ in allocs]
    table = benchlib.summary_rows(runs, workloads, names, "alloc", benchlib.ir_summary)
    for by in table.values():
        for row in by.values():
            for ref in ("mimalloc", "glibc"):
                row["vs_" + ref] = ratio(row["ir"], by.get(ref, {}).get("ir"))
            rows.append(row)
    return rows


def geomean_rows(rows, allocs, keys):
    """Per allocator, the geometric mean over workloads of each ratio."""
    out = []
    for name, _ in allocs:
        mine = [r for r in rows if r["alloc"] == name]
        if mine:
            g = {"alloc": name}
            for k in keys:
                g[k] = benchlib.geomean(r[k] for r in mine)
            out.append(g)
    return out


def fmt_metric(x):
    if x is None:
        return "-"
    return "%d" % x if x == int(x) else "%.1f" % x


RATIOS = ["wall_vs_mimalloc", "wall_vs_glibc", "cpu_vs_mimalloc", "cpu_vs_glibc"]


def report_timing(rows, allocs, markdown):
    headers = ["workload", "allocator", "wall s", "spread", "cpu s",
               "peak RSS MiB", "faults K", "wall/mimalloc", "wall/glibc", "cpu/mimalloc",
               "cpu/glibc"]
    body = []
    for r in rows:
        body.append([r["workload"], r["alloc"], "%.3f" % r["wall_s"],
                     "%.0f%%" % r["spread_pct"], "%.3f" % r["cpu_s"],
                     "%.1f" % r["rss_mib"], "%.1f" % r.get("faults_k", 0)] +
                    [fmt(r[k]) for k in RATIOS])
    for g in geomean_rows(rows, allocs, RATIOS):
        body.append(["geomean", g["alloc"], "", "", "", "", ""] +
                    [fmt(g[k]) for k in RATIOS])
    parts = [render(headers, body, markdown, "llrrrrrrrrr", group=True)]

    # Extra numbers some workloads print (METRIC lines), one table each.
    for w in dict.fromkeys(r["workload"] for r in rows):
        mine = [r for r in rows if r["workload"] == w and r["metrics"]]
        if not mine:
            continue
        keys = list(dict.fromkeys(k for r in mine for k in r["metrics"]))
        body = [[r["alloc"]] + [fmt_metric(r["metrics"].get(k)) for k in keys]
                for r in mine]
        parts.append("%s (what the workload reports on stderr):\n\n" % w +
                     render(["allocator"] + keys, body, markdown,
                            "l" + "r" * len(keys)))
    return "\n\n".join(parts)


def report_callgrind(rows, allocs, markdown, reps):
    """With repetitions, a spread column: (largest - smallest) / median
    Ir, what a difference between allocators must clearly exceed."""
    spread = reps > 1
    headers = ["workload", "allocator", "Ir (M)"] + (["spread"] if spread else []) + \
        ["Ir/mimalloc", "Ir/glibc"]
    body = [[r["workload"], r["alloc"], "%.1f" % (r["ir"] / 1e6)] +
            (["%.2f%%" % r["spread_pct"]] if spread else []) +
            [fmt(r["vs_mimalloc"]), fmt(r["vs_glibc"])]
            for r in rows]
    for g in geomean_rows(rows, allocs, ["vs_mimalloc", "vs_glibc"]):
        body.append(["geomean", g["alloc"], ""] + ([""] if spread else []) +
                    [fmt(g["vs_mimalloc"]), fmt(g["vs_glibc"])])
    return render(headers, body, markdown, "llr" + "r" * (len(headers) - 3), group=True)


def environment(args, allocs):
    env = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "host": platform.node(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "allocators": {n: l for n, l in allocs},
        "tuning_env": {k: v for k, v in os.environ.items() if TUNING_VARS.match(k)},
    }
    cpu = benchlib.cpu_model()
    if cpu != "?":
        env["cpu_model"] = cpu
    git = benchlib.git_describe(None)
    if git is not None:
        env["git"] = git
    return env


def header(args, env, mode):
    if mode == "callgrind":
        what = "callgrind Ir, scale %s, %s" % (
            fmt_scale(args.cg_scale),
            "1 run each" if args.reps == 1 else "median of %d runs each" % args.reps)
    else:
        what = "scale %s, %d reps, %s of the reps, order seed %d" % (
            fmt_scale(args.scale), args.reps,
            "minimum" if args.stat == "min" else "median", args.seed)
    lines = ["ebb bench: %s" % what,
             "%s, %s CPUs, Linux %s, %s, git %s" % (
                 env.get("cpu_model", "?"), env["cpus"], env["kernel"],
                 env["date"], env.get("git", "?"))]
    if env["tuning_env"]:
        lines.append("allocator tuning in environment: " + " ".join(
            "%s=%s" % kv for kv in sorted(env["tuning_env"].items())))
    return benchlib.emphasize(lines, args.markdown)


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(
        description="Run the ebb allocator benchmarks under several allocators.",
        epilog="Only ratios measured within one invocation are comparable.")
    benchlib.add_repeat_options(ap, "repetitions per workload and allocator (default 5; "
                                "1 with --callgrind)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="work multiplier passed to every workload (default 1)")
    ap.add_argument("--only", metavar="W1,W2",
                    help="run only these workloads (%s)" % ",".join(WORKLOADS))
    ap.add_argument("--alloc", metavar="A1,A2",
                    help="use only these allocators (%s)" %
                    ",".join(n for n, _ in PEERS))
    benchlib.add_library_options(ap, "add (or replace) an allocator to preload; repeatable")
    ap.add_argument("--stat", choices=["median", "min"], default="median",
                    help="how repetitions are reduced (default median; min "
                    "discards more of the noise from other load)")
    benchlib.add_output_options(ap, "also write every run and the summary as JSON")
    ap.add_argument("--callgrind", action="store_true",
                    help="instead of timing, count instructions under "
                    "valgrind --tool=callgrind (small scale; the median of "
                    "--reps runs each)")
    ap.add_argument("--cg-scale", type=float, default=0.02,
                    help="scale for --callgrind (default 0.02)")
    ap.add_argument("--cg-program-threads", action="store_true",
                    help="with --callgrind, count only the threads the workload "
                    "started, not ebb's own (the purger, which wakes by the clock: "
                    "for comparing ebb with itself, e.g. sampling on and off)")
    ap.add_argument("--timeout", type=float, default=300,
                    help="seconds before a run is killed (x20 under callgrind)")
    ap.add_argument("--no-build", action="store_true",
                    help="do not run make first")
    args = ap.parse_args()

    benchlib.settle_repeats(args, 5)
    if not args.scale > 0 or not args.cg_scale > 0:
        sys.exit("scales must be positive")
    args.ebb = os.path.abspath(args.ebb)

    workloads = benchlib.pick(args.only, WORKLOADS, "workload(s)") if args.only else WORKLOADS

    if not args.no_build:
        build(args)
    for w in workloads + ["launch"]:
        if not (BUILD / w).is_file():
            sys.exit("missing %s; run make -C %s" % (BUILD / w, BENCH))

    allocs = select_allocators(args)
    log("allocators: " + ", ".join(n for n, _ in allocs))
    env = environment(args, allocs)

    with tempfile.TemporaryDirectory(prefix="ebb-bench.") as tmpdir:
        if args.callgrind:
            mode = "callgrind"
            timed = [w for w in workloads if w in FIXED_DURATION]
            if timed:
                log("callgrind leaves out %s: fixed-duration" % ", ".join(timed))
            workloads = [w for w in workloads if w not in FIXED_DURATION]
            runs, failures = callgrind_mode(args, allocs, workloads, tmpdir)
            rows = summarize_callgrind(runs, allocs, workloads)
            table = report_callgrind(rows, allocs, args.markdown, args.reps)
        else:
            mode = "timing"
            runs, failures = timing_mode(args, allocs, workloads, tmpdir)
            rows = summarize_timing(runs, allocs, workloads,
                                    min if args.stat == "min" else benchlib.median)
            table = report_timing(rows, allocs, args.markdown)

    print(header(args, env, mode))
    print()
    print(table)

    if args.json:
        benchlib.write_json(args.json, {
            "mode": mode, "config": {
                "reps": args.reps, "stat": args.stat, "scale": args.scale,
                "cg_scale": args.cg_scale, "seed": args.seed, "workloads": workloads},
            "environment": env, "summary": rows, "runs": runs, "errors": failures})
    benchlib.exit_on_errors("ERRORS", failures)


if __name__ == "__main__":
    main()
