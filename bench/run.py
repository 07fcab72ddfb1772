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

Callgrind mode (--callgrind): every workload runs once per allocator under
valgrind --tool=callgrind at a small scale and the instruction counts (Ir)
are reported: slower to get, but nearly independent of machine noise.

In both modes each run must exit 0 and print the same stdout under every
allocator (the workloads print a checksum of their data); anything else is
reported as an error and the script exits with status 1.

Python 3 standard library only.
"""

import argparse
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BUILD = BENCH / "build"

WORKLOADS = ["churn", "buildfree", "realloc", "prodcons", "larson", "largeblk"]

LIBDIR = "/usr/lib/x86_64-linux-gnu"
# name -> library to preload (None: the C library's own malloc).  "ebb" is
# filled in from --ebb.  Order here is the order of the report.
PEERS = [
    ("glibc", None),
    ("ebb", None),
    ("mimalloc", LIBDIR + "/libmimalloc.so.2"),
    ("jemalloc", LIBDIR + "/libjemalloc.so.2"),
    ("tcmalloc", LIBDIR + "/libtcmalloc_minimal.so.4"),
]

# Environment variables that change how some allocator behaves; reported in
# the header when set so a result is not misread.
TUNING_VARS = re.compile(r"^(MALLOC_|GLIBC_TUNABLES|MIMALLOC_|TCMALLOC_|EBB_|"
                         r"_RJEM_MALLOC_CONF|JE_MALLOC_CONF)")

METRIC_RE = re.compile(r"^METRIC ([A-Za-z0-9_]+)=(-?[0-9.]+)\s*$", re.M)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Failure(Exception):
    pass


# --------------------------------------------------------------------------
# allocators


def probe_preload(lib):
    """Return None if `lib` can be preloaded, else a reason."""
    if not os.path.isfile(split_lib(lib)[0]):
        return "not found"
    env = clean_env(lib)
    try:
        p = subprocess.run(["/bin/true"], env=env, capture_output=True,
                           text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return "probe failed: %s" % e
    if p.returncode != 0 or "ld.so" in p.stderr:
        return "cannot be preloaded: %s" % p.stderr.strip()[:200]
    return None


def select_allocators(args):
    peers = [(n, args.ebb if n == "ebb" else lib) for n, lib in PEERS]
    for spec in args.lib:
        name, _, path = spec.partition("=")
        if not name or not path:
            sys.exit("--lib wants NAME=PATH, got %r" % spec)
        lib_path, _, query = path.partition("?")
        path = os.path.abspath(lib_path) + ("?" + query if query else "")
        if name in (n for n, _ in peers):
            peers = [(n, path if n == name else l) for n, l in peers]
        else:
            peers.append((name, path))
    names = [n for n, _ in peers]
    if args.alloc:
        wanted = args.alloc.split(",")
        for w in wanted:
            if w not in names:
                sys.exit("unknown allocator %r (known: %s)" % (w, ", ".join(names)))
        peers = [p for p in peers if p[0] in wanted]
    chosen = []
    for name, lib in peers:
        if lib is None:
            chosen.append((name, None))
            continue
        why = probe_preload(lib)
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


def split_lib(lib):
    """A library spec is PATH, optionally followed by ?VAR=VALUE settings
    joined with '&' (e.g. build/libebb.so?EBB_PURGE_DELAY_MS=-1), so one
    library can run under several settings side by side."""
    if not lib:
        return lib, {}
    path, _, query = lib.partition("?")
    extra = {}
    for item in filter(None, query.split("&")):
        var, eq, val = item.partition("=")
        if not eq:
            sys.exit("bad setting %r in library spec %r" % (item, lib))
        extra[var] = val
    return path, extra


def clean_env(lib):
    path, extra = split_lib(lib)
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if path:
        env["LD_PRELOAD"] = path
    env.update(extra)
    return env


# --------------------------------------------------------------------------
# running


def fmt_scale(s):
    return "%.10g" % s


RESULT_RE = re.compile(r"(\w+)=(-?[0-9.]+)")


def run_measured(prog, lib, timeout, tmpdir):
    """Run prog (a list: executable path and arguments) with lib preloaded,
    through the launcher, which forks it, waits for it with wait4 and
    reports wall time, user/sys time, peak RSS (ru_maxrss) and exit status.
    Returns (result dict, stdout, stderr)."""
    resfile = os.path.join(tmpdir, "result")
    try:
        os.unlink(resfile)
    except FileNotFoundError:
        pass
    path, extra = split_lib(lib)
    cmd = [str(BUILD / "launch"), resfile, path or ""] + prog
    timed_out = False
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # The launcher leads a new process group, so a timeout can kill the
        # workload as well.
        env = clean_env(None)
        env.update(extra)
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        except BaseException:
            # e.g. ^C: the run is in its own session and would live on
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    res = {}
    try:
        with open(resfile) as f:
            res = {k: float(v) for k, v in RESULT_RE.findall(f.read())}
    except OSError:
        pass
    if timed_out:
        stderr += "\n[harness] killed after the %g s timeout" % timeout
        res["status"] = -signal.SIGKILL
    elif "status" not in res:
        stderr += "\n[harness] launcher failed (exit %d)" % p.returncode
        res["status"] = p.returncode if p.returncode else 127
    return res, stdout, stderr


def check_run(what, code, stderr):
    if "ld.so" in stderr and "preload" in stderr:
        raise Failure("%s: preload failed: %s" % (what, stderr.strip()[:300]))
    if code != 0:
        how = ("killed by signal %d" % -code) if code < 0 else ("exit %d" % code)
        tail = "\n    ".join(stderr.strip().splitlines()[-8:])
        raise Failure("%s: %s\n    %s" % (what, how, tail))


def build(args):
    cmd = ["make", "-C", str(BENCH), "-s"]
    log("building workloads: " + " ".join(cmd))
    r = subprocess.run(cmd, stdout=sys.stderr)
    if r.returncode != 0:
        sys.exit("building the workloads failed")


class Checksums:
    """Stdout of every run of a workload must be identical."""

    def __init__(self):
        self.seen = {}  # workload -> {stdout: [allocators]}

    def add(self, workload, alloc, stdout):
        outs = self.seen.setdefault(workload, {})
        names = outs.setdefault(stdout.strip(), [])
        if alloc not in names:
            names.append(alloc)

    def errors(self):
        errs = []
        for w, outs in self.seen.items():
            if len(outs) < 2:
                continue
            lines = []
            for out, names in outs.items():
                lines.append("    %-28s %s" % (",".join(names),
                                             out.replace("\n", " | ")))
            errs.append("%s: OUTPUT MISMATCH between allocators (memory "
                        "corruption?):\n%s" % (w, "\n".join(lines)))
        return errs


def timing_mode(args, allocs, workloads, tmpdir):
    rng = random.Random(args.seed)
    scale = fmt_scale(args.scale)
    runs = []
    failures = []
    broken = set()
    sums = Checksums()
    total = args.reps * len(workloads) * len(allocs)
    n = 0
    t_start = time.time()
    for rep in range(args.reps):
        for w in workloads:
            order = list(allocs)
            rng.shuffle(order)
            for name, lib in order:
                n += 1
                if (w, name) in broken:
                    continue
                res, out, err = run_measured([str(BUILD / w), scale], lib,
                                             args.timeout, tmpdir)
                what = "%s under %s (rep %d)" % (w, name, rep + 1)
                try:
                    check_run(what, int(res["status"]), err)
                except Failure as e:
                    # a broken combination is not retried in later reps
                    failures.append(str(e))
                    broken.add((w, name))
                    log("FAIL " + str(e))
                    continue
                sums.add(w, name, out)
                metrics = {k: float(v) for k, v in METRIC_RE.findall(err)}
                run = {"rep": rep + 1, "workload": w, "alloc": name,
                       "wall_s": res["wall_s"],
                       "cpu_s": res["user_s"] + res["sys_s"],
                       "user_s": res["user_s"], "sys_s": res["sys_s"],
                       "maxrss_kib": int(res["maxrss_kib"]),
                       "minflt": int(res.get("minflt", 0)),
                       "metrics": metrics, "stdout": out.strip()}
                runs.append(run)
                if not args.quiet:
                    log("[%3d/%d] rep %d  %-10s %-10s wall %7.3f s  cpu %7.3f s"
                        "  %8.1f MiB" % (n, total, rep + 1, w, name,
                                         run["wall_s"], run["cpu_s"],
                                         run["maxrss_kib"] / 1024))
    log("timing runs took %.0f s" % (time.time() - t_start))
    failures += sums.errors()
    return runs, failures


def callgrind_mode(args, allocs, workloads, tmpdir):
    valgrind = shutil.which("valgrind")
    if not valgrind:
        sys.exit("--callgrind needs valgrind (apt-get install valgrind)")
    scale = fmt_scale(args.cg_scale)
    runs = []
    failures = []
    sums = Checksums()
    for w in workloads:
        for name, lib in allocs:
            outfile = os.path.join(tmpdir, "callgrind.out")
            try:
                os.unlink(outfile)
            except FileNotFoundError:
                pass
            # valgrind hands LD_PRELOAD on to the program it runs, so the
            # allocator under test is what the program calls.
            prog = [valgrind, "--tool=callgrind", "--dump-instr=no",
                    "--callgrind-out-file=" + outfile, str(BUILD / w), scale]
            t0 = time.time()
            res, out, err = run_measured(prog, lib, args.timeout * 20, tmpdir)
            what = "%s under %s (callgrind)" % (w, name)
            try:
                check_run(what, int(res["status"]), err)
                ir = read_callgrind_total(outfile)
            except Failure as e:
                failures.append(str(e))
                log("FAIL " + str(e))
                continue
            sums.add(w, name, out)
            runs.append({"workload": w, "alloc": name, "ir": ir,
                         "stdout": out.strip()})
            if not args.quiet:
                log("callgrind %-10s %-10s Ir %15d  (%.0f s)" %
                    (w, name, ir, time.time() - t0))
    failures += sums.errors()
    return runs, failures


def read_callgrind_total(path):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        raise Failure("no callgrind output %s: %s" % (path, e))
    m = re.search(r"^totals:\s*(\d+)", text, re.M) or \
        re.search(r"^summary:\s*(\d+)", text, re.M)
    if not m:
        raise Failure("no instruction total in %s" % path)
    return int(m.group(1))


# --------------------------------------------------------------------------
# reporting


def ratio(a, b):
    if a is None or not b:
        return None
    return a / b


def geomean(xs):
    xs = [x for x in xs if x]
    if not xs:
        return None
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def summarize_timing(runs, allocs, workloads, stat):
    """One row per workload and allocator; stat (median or min) reduces the
    repetitions."""
    rows = []
    for w in workloads:
        med = {}
        for name, _ in allocs:
            rs = [r for r in runs if r["workload"] == w and r["alloc"] == name]
            if not rs:
                continue
            walls = [r["wall_s"] for r in rs]
            m = stat(walls)
            keys = sorted({k for r in rs for k in r["metrics"]})
            med[name] = {
                "workload": w, "alloc": name, "n": len(rs),
                "wall_s": m,
                "spread_pct": 100 * (max(walls) - min(walls)) / m if m else 0,
                "cpu_s": stat([r["cpu_s"] for r in rs]),
                "rss_mib": stat([r["maxrss_kib"] for r in rs]) / 1024,
                "faults_k": stat([r["minflt"] for r in rs]) / 1000,
                "metrics": {k: stat([r["metrics"][k] for r in rs
                                     if k in r["metrics"]])
                            for k in keys},
            }
        for name, row in med.items():
            for ref in ("mimalloc", "glibc"):
                for t in ("wall", "cpu"):
                    row["%s_vs_%s" % (t, ref)] = ratio(
                        row[t + "_s"], med.get(ref, {}).get(t + "_s"))
            rows.append(row)
    return rows


def summarize_callgrind(runs, workloads):
    rows = []
    for w in workloads:
        by = {r["alloc"]: r for r in runs if r["workload"] == w}
        for name, r in by.items():
            rows.append({
                "workload": w, "alloc": name, "ir": r["ir"],
                "vs_mimalloc": ratio(r["ir"], by.get("mimalloc", {}).get("ir")),
                "vs_glibc": ratio(r["ir"], by.get("glibc", {}).get("ir")),
            })
    return rows


def geomean_rows(rows, allocs, keys):
    """Per allocator, the geometric mean over workloads of each ratio."""
    out = []
    for name, _ in allocs:
        mine = [r for r in rows if r["alloc"] == name]
        if mine:
            g = {"alloc": name}
            for k in keys:
                g[k] = geomean(r[k] for r in mine)
            out.append(g)
    return out


def fmt_metric(x):
    if x is None:
        return "-"
    return "%d" % x if x == int(x) else "%.1f" % x


def fmt_ratio(x):
    return "-" if x is None else "%.2f" % x


def render(headers, body, markdown, align, group=False):
    """align: string of 'l'/'r' per column; group: blank line in the plain
    text whenever the first column changes."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join(("---:" if a == "r" else ":---") for a in align) + "|"]
        for row in body:
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(wd) if a == "r" else c.ljust(wd)
                         for c, wd, a in zip(cells, widths, align)).rstrip()

    out = [line(headers), line(["-" * wd for wd in widths])]
    prev = None
    for row in body:
        if group and prev is not None and row[0] != prev:
            out.append("")
        prev = row[0]
        out.append(line(row))
    return "\n".join(out)


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
                    [fmt_ratio(r[k]) for k in RATIOS])
    for g in geomean_rows(rows, allocs, RATIOS):
        body.append(["geomean", g["alloc"], "", "", "", "", ""] +
                    [fmt_ratio(g[k]) for k in RATIOS])
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


def report_callgrind(rows, allocs, markdown):
    headers = ["workload", "allocator", "Ir (M)", "Ir/mimalloc", "Ir/glibc"]
    body = [[r["workload"], r["alloc"], "%.1f" % (r["ir"] / 1e6),
             fmt_ratio(r["vs_mimalloc"]), fmt_ratio(r["vs_glibc"])]
            for r in rows]
    for g in geomean_rows(rows, allocs, ["vs_mimalloc", "vs_glibc"]):
        body.append(["geomean", g["alloc"], "", fmt_ratio(g["vs_mimalloc"]),
                     fmt_ratio(g["vs_glibc"])])
    return render(headers, body, markdown, "llrrr", group=True)


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
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                env["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        env["git"] = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return env


def header(args, env, mode):
    if mode == "callgrind":
        what = "callgrind Ir, scale %s, 1 run each" % fmt_scale(args.cg_scale)
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
    if args.markdown:
        return "\n".join("_%s_  " % l for l in lines)
    return "\n".join(lines)


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(
        description="Run the ebb allocator benchmarks under several allocators.",
        epilog="Only ratios measured within one invocation are comparable.")
    ap.add_argument("--reps", type=int, default=5,
                    help="repetitions per workload and allocator (default 5)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="work multiplier passed to every workload (default 1)")
    ap.add_argument("--only", metavar="W1,W2",
                    help="run only these workloads (%s)" % ",".join(WORKLOADS))
    ap.add_argument("--alloc", metavar="A1,A2",
                    help="use only these allocators (%s)" %
                    ",".join(n for n, _ in PEERS))
    ap.add_argument("--ebb", default=str(ROOT / "build" / "libebb.so"),
                    help="ebb library to preload (default: build/libebb.so "
                    "at the repository root)")
    ap.add_argument("--lib", action="append", default=[], metavar="NAME=PATH[?VAR=VAL&...]",
                    help="add (or replace) an allocator to preload; repeatable")
    ap.add_argument("--stat", choices=["median", "min"], default="median",
                    help="how repetitions are reduced (default median; min "
                    "discards more of the noise from other load)")
    ap.add_argument("--markdown", action="store_true",
                    help="print the tables as Markdown")
    ap.add_argument("--json", metavar="FILE",
                    help="also write every run and the summary as JSON")
    ap.add_argument("--callgrind", action="store_true",
                    help="instead of timing, count instructions under "
                    "valgrind --tool=callgrind (one run each, small scale)")
    ap.add_argument("--cg-scale", type=float, default=0.02,
                    help="scale for --callgrind (default 0.02)")
    ap.add_argument("--seed", type=int, default=None,
                    help="seed for the run order (default: from the clock)")
    ap.add_argument("--timeout", type=float, default=300,
                    help="seconds before a run is killed (x20 under callgrind)")
    ap.add_argument("--no-build", action="store_true",
                    help="do not run make first")
    ap.add_argument("-q", "--quiet", action="store_true",
                    help="no per-run progress on stderr")
    args = ap.parse_args()

    if args.reps < 1:
        sys.exit("--reps must be at least 1")
    if not args.scale > 0 or not args.cg_scale > 0:
        sys.exit("scales must be positive")
    if args.seed is None:
        args.seed = int(time.time()) % 100000
    args.ebb = os.path.abspath(args.ebb)

    workloads = WORKLOADS
    if args.only:
        workloads = args.only.split(",")
        bad = [w for w in workloads if w not in WORKLOADS]
        if bad:
            sys.exit("unknown workload(s) %s (known: %s)" %
                     (",".join(bad), ",".join(WORKLOADS)))

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
            runs, failures = callgrind_mode(args, allocs, workloads, tmpdir)
            rows = summarize_callgrind(runs, workloads)
            table = report_callgrind(rows, allocs, args.markdown)
        else:
            mode = "timing"
            runs, failures = timing_mode(args, allocs, workloads, tmpdir)
            rows = summarize_timing(runs, allocs, workloads,
                                    min if args.stat == "min" else statistics.median)
            table = report_timing(rows, allocs, args.markdown)

    print(header(args, env, mode))
    print()
    print(table)

    if args.json:
        doc = {"mode": mode, "config": {
                   "reps": args.reps, "stat": args.stat, "scale": args.scale,
                   "cg_scale": args.cg_scale, "seed": args.seed,
                   "workloads": workloads},
               "environment": env, "summary": rows, "runs": runs,
               "errors": failures}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        log("wrote " + args.json)

    if failures:
        print("\nERRORS:", file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
