#!/usr/bin/python3
"""Driver for the RSS scenarios of issue 3 (bench/rss/): runs each scenario
program, in C and in Python, under several allocators and prints, per
scenario, RSS at its phase points next to the floor, with the issue's goal.

    python3 bench/rss/run.py                         # everything, scale 1
    python3 bench/rss/run.py --scale 0.1 --lang c    # quick look
    python3 bench/rss/run.py --scenario 1,2 --config ebb,glibc,mimalloc-0
    python3 bench/rss/run.py --ebb /path/libebb.so --markdown --json out.json

Each program prints machine-readable lines (see rss.h and README.md):
BASE, PHASE name t_ms=... rss_kib=... floor_kib=... ideal_kib=... base_kib=...,
SERIES, RESULT, INFO, DONE.  A run that exits non-zero (3: corrupted data)
or does not print DONE is reported as a failure, and run.py exits 1.

Python 3 standard library only; what the drivers share is in
bench/benchlib.py.
"""

import argparse
import concurrent.futures
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import benchlib  # noqa: E402  (bench/ is on the path only from here on)
from benchlib import ROOT, log, render, run_make  # noqa: E402

BUILD = benchlib.BUILD / "rss"
MIMALLOC = benchlib.PEER_LIBS["mimalloc"]
JEMALLOC = benchlib.PEER_LIBS["jemalloc"]
TCMALLOC = benchlib.PEER_LIBS["tcmalloc"]

# ---------------------------------------------------------------------------
# scenarios
#
# kind:  release  RSS back to floor + 2% of (peak - base) + 4 MiB (floor is
#                 base when nothing survives), within delay + 100 ms
#        floor    RSS <= ratio x floor within delay + 100 ms
#        points   RSS <= ratio x floor at every phase point (after settling)
#        peak     total peak <= ratio x one phase's peak
#        largest  largest allocatable block >= glibc's and >= 1 GiB (32-bit)

SCENARIOS = [
    {"id": "1", "title": "build ~1 GiB of small objects, free all, compute lightly",
     "args": ["build"], "kind": "release", "phase": "freed"},
    {"id": "2", "title": "as 1, 0.1% of the objects survive (scattered)",
     "args": ["build", "-p", "0.001"], "kind": "floor", "ratio": 1.1, "phase": "freed"},
    {"id": "2b", "title": "as 1, 1% of the objects survive (scattered)",
     "args": ["build", "-p", "0.01"], "kind": "floor", "ratio": 1.1, "phase": "freed"},
    {"id": "3", "title": "as 1, built and freed by a thread that then stays idle "
     "(blocked); another thread computes", "args": ["build", "-t"], "kind": "release",
     "phase": "freed"},
    {"id": "3b", "title": "as 3, 0.1% of the objects survive",
     "args": ["build", "-t", "-p", "0.001"], "kind": "floor", "ratio": 1.1, "phase": "freed",
     "optional": True},
    {"id": "4", "title": "size-class migration: ~1 GiB of 32-byte objects freed, then ~1 GiB "
     "of 256-byte objects", "args": ["migrate"], "kind": "peak", "ratio": 1.1},
    {"id": "5", "title": "1-64 MiB buffers (some grown by realloc) between batches of small "
     "objects, 2% survive, constant live set", "args": ["mixed"], "kind": "points",
     "ratio": 1.15},
    {"id": "6", "title": "server loop: live set with a slowly drifting size mix, many epochs",
     "args": ["server"], "kind": "points", "ratio": 1.15, "end_ideal": True},
    {"id": "6b", "title": "as 6 over 400 epochs, the size mix drifting up and down 4 times",
     "args": ["server", "-r", "400", "-e", "50", "-c", "4"], "kind": "points", "ratio": 1.15,
     "end_ideal": True},
    {"id": "7", "title": "producer/consumer thread pairs, then all threads exit (joined)",
     "args": ["prodcons"], "kind": "release", "phase": "joined"},
    {"id": "8", "title": "32-bit: scenario 5 for 100 rounds with 32 large buffers kept live, "
     "then the largest block malloc can return", "args": ["mixed", "-P", "-n", "32", "-r", "100",
                                                          "-e", "25"],
     "kind": "largest", "c_only": True},
]

# ---------------------------------------------------------------------------
# configurations: name, library to preload (None: none; "ebb": --ebb),
# environment, languages ("c", "py"), default (run without --config)

CONFIGS = [
    ("ebb", "ebb", {}, "c py", True),
    ("ebb-nopurge", "ebb", {"EBB_PURGE_DELAY_MS": "-1"}, "c py", True),
    ("ebb-free", "ebb", {"EBB_PURGE_MODE": "free"}, "c py", False),
    ("glibc", None, {}, "c py", True),
    ("glibc-trim", None, {"RSS_MALLOC_TRIM": "1"}, "c py", True),
    ("pymalloc", None, {}, "py", True),
    ("mimalloc", MIMALLOC, {}, "c py", True),
    ("mimalloc-0", MIMALLOC, {"MIMALLOC_DECOMMIT_DELAY": "0",
                              "MIMALLOC_SEGMENT_DECOMMIT_DELAY": "0"}, "c py", True),
    ("jemalloc", JEMALLOC, {}, "c py", True),
    ("jemalloc-0", JEMALLOC, {"MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0"}, "c py", True),
    ("tcmalloc", TCMALLOC, {}, "c py", True),
    ("tcmalloc-agg", TCMALLOC, {"TCMALLOC_AGGRESSIVE_DECOMMIT": "true"}, "c py", False),
]

# Issue 15's goal after a mass free (scenarios 1, 2, 2b, 3, 7): RSS within
# SURPLUS_RATIO x floor within SURPLUS_MS of the end of the free.
SURPLUS_RATIO = 1.3
SURPLUS_MS = 20
# Issue 15's goal while freed memory waits (scenario 5): the peak of RSS
# between two phase points within PEAK_RATIO x its ideal (base + the most
# the program held at once in that stretch).
PEAK_RATIO = 1.03
# Issue 15's goal for placement (scenarios 6, 6b): RSS at the end within
# END_IDEAL_RATIO x the ideal (base + live bytes).  The floor at the end,
# against the same ideal, is where placement that does not know lifetimes
# stops (every allocator's own floor: it depends on where objects landed).
END_IDEAL_RATIO = 1.5


def surplus_cell(t):
    """The time RSS took to reach SURPLUS_RATIO x floor for good, judged."""
    if t is None:
        return "never"
    return "%d ms%s" % (t, "" if t <= SURPLUS_MS else " (late)")


# variables that would change an allocator's behaviour behind our back
STRIP_ENV = benchlib.env_pattern("LD_PRELOAD", "PYTHONMALLOC", "RSS_MALLOC_TRIM")


# ---------------------------------------------------------------------------
# setup


def clean_env():
    return benchlib.env_without(STRIP_ENV)


def select_configs(args):
    all_cfgs = []
    for name, lib, env, langs, default in CONFIGS:
        all_cfgs.append({"name": name, "lib": args.ebb if lib == "ebb" else lib,
                         "env": dict(env), "langs": langs.split(), "default": default})
    for spec in args.lib:
        name, path, env = benchlib.parse_lib(spec)
        all_cfgs = [c for c in all_cfgs if c["name"] != name]
        all_cfgs.append({"name": name, "lib": path, "env": env, "langs": ["c", "py"],
                         "default": True})
    if args.config == "all":
        chosen = all_cfgs
    elif args.config:
        want = benchlib.pick(args.config, [c["name"] for c in all_cfgs], "configuration")
        chosen = [c for c in all_cfgs if c["name"] in want]
    else:
        chosen = [c for c in all_cfgs if c["default"]]
    out = []
    probed = {}
    for c in chosen:
        if c["lib"]:
            if c["lib"] not in probed:
                probed[c["lib"]] = benchlib.probe_preload(c["lib"], clean_env())
            why = probed[c["lib"]]
            if why:
                hint = " (make -C %s lib, or --ebb PATH)" % ROOT if c["lib"] == args.ebb else ""
                log("skip %s: %s %s%s" % (c["name"], c["lib"], why, hint))
                continue
        out.append(c)
    return out


def select_scenarios(spec):
    if not spec:
        return [s for s in SCENARIOS if not s.get("optional")]
    if spec == "all":
        return SCENARIOS
    out = []
    for w in spec.split(","):
        # "2" is scenario 2 and its variants (2b); "2b" only the variant
        hit = [s for s in SCENARIOS if s["id"] == w or (w.isdigit() and s["id"].rstrip("b") == w)]
        if not hit:
            sys.exit("unknown scenario %r (known: %s)" % (w, ", ".join(s["id"] for s in SCENARIOS)))
        out += [s for s in hit if s not in out]
    return sorted(out, key=SCENARIOS.index)


def build(args, need_m32):
    if not run_make(["make", "-s", "-C", str(HERE)] + (["all", "m32"] if need_m32 else []),
                    "the scenario programs"):
        sys.exit("building the scenario programs failed")


def ebb32(args):
    """The 32-bit ebb: --ebb32, else build/m32/libebb.so at the repository
    root, made with the Makefile, or by hand if that fails."""
    if args.ebb32:
        return os.path.abspath(args.ebb32)
    lib = ROOT / "build" / "m32" / "libebb.so"
    if args.no_build:
        return str(lib)
    if run_make(["make", "-s", "-C", str(ROOT), "B=build/m32", "EXTRA_CFLAGS=-m32",
                 "LDFLAGS=-m32", "build/m32/libebb.so"], "32-bit ebb"):
        return str(lib)
    log("the Makefile could not build a 32-bit ebb; building it by hand")
    lib = BUILD / "m32" / "libebb.so"
    lib.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["cc", "-m32", "-std=c11", "-O2", "-g", "-fPIC", "-fvisibility=hidden",
           "-fno-semantic-interposition", "-shared", "-Wl,-soname,libebb.so", "-Wl,-z,now",
           "-o", str(lib), str(ROOT / "src" / "ebb.c")]
    if not run_make(cmd, "32-bit ebb by hand"):
        log("could not build a 32-bit ebb")
    return str(lib)


# ---------------------------------------------------------------------------
# running


def parse_output(text):
    res = {"base": None, "phases": {}, "series": {}, "peaks": {}, "result": {}, "info": {},
           "done": False}
    for line in text.splitlines():
        word, _, rest = line.partition(" ")
        if word == "BASE":
            res["base"] = benchlib.numbers(rest)
        elif word == "PHASE":
            name, _, kv = rest.partition(" ")
            res["phases"].setdefault(name, []).append(benchlib.numbers(kv))
        elif word == "PEAK":
            name, _, kv = rest.partition(" ")
            res["peaks"][name] = benchlib.numbers(kv)
        elif word == "SERIES":
            name, _, pts = rest.partition(" ")
            res["series"][name] = [tuple(float(x) for x in p.split(":")) for p in pts.split()]
        elif word == "RESULT":
            res["result"].update(benchlib.numbers(rest))
        elif word == "INFO":
            res["info"].update(dict(kv.split("=", 1) for kv in rest.split() if "=" in kv))
        elif word == "DONE":
            res["done"] = True
    return res


def command(args, scen, lang, m32=False):
    opts = ["-s", "%g" % args.scale, "-w", str(args.window_ms), "-S", str(args.settle_ms),
            "-k", str(args.tick_ms)]
    if scen["kind"] == "largest" and args.scale < 1:
        # the rounds' large buffers do not shrink with the scale: fewer rounds
        opts += ["-r", str(max(25, int(100 * args.scale)))]
    if lang == "py":
        return [args.python, str(HERE / "scenarios.py")] + scen["args"] + opts
    prog = scen["args"][0] + ("32" if m32 else "")
    return [str(BUILD / prog)] + scen["args"][1:] + opts


def run_one(args, job):
    """job: dict(scen, lang, cfg, cmd, env).  Returns the job with 'res',
    'wall_s' and 'error' filled in."""
    cfg = job["cfg"]
    env = clean_env()
    env.update(cfg["env"])
    if cfg.get("lib"):
        env["LD_PRELOAD"] = cfg["lib"]
    if job["lang"] == "py" and cfg["name"] != "pymalloc":
        env["PYTHONMALLOC"] = "malloc"
    ran = benchlib.run_group(job["cmd"], env, args.timeout)
    err = ran.stderr
    if ran.timed_out:
        err += "\n[run.py] killed after %g s" % args.timeout
    job["wall_s"] = ran.wall_s
    job["res"] = parse_output(ran.stdout)
    job["stderr"] = err
    job["error"] = None
    code = ran.returncode
    if "ERROR: ld.so" in err:
        job["error"] = "preload failed: " + err.strip().splitlines()[0][:200]
    elif code != 0:
        how = "killed by signal %d" % -code if code < 0 else "exit %d" % code
        if code == 3:
            how += " (corrupted data?)"
        job["error"] = how + ": " + " | ".join(err.strip().splitlines()[-3:])
    elif not job["res"]["done"]:
        job["error"] = "no DONE line: " + " | ".join(err.strip().splitlines()[-3:])
    return job


# ---------------------------------------------------------------------------
# judging


def mib(kib):
    return "-" if kib is None or kib < 0 else "%.1f" % (kib / 1024)


def cell(rss, floor, late=False):
    """RSS MiB (RSS/floor); late: '*', the sample was taken well after its
    point (the program was busy, e.g. in malloc_trim)."""
    if rss is None:
        return "-"
    mark = "*" if late else ""
    if floor and floor > 0:
        return "%s%s (%.2f)" % (mib(rss), mark, rss / floor)
    return mib(rss) + mark


def late(p):
    return p.get("at_ms", 0) - p.get("t_ms", 0) > 25


def time_to_goal(series, limit):
    """First sample time from which every later sample is <= limit; None
    if the last sample is above."""
    t = None
    for ts, rss in series:
        if rss <= limit:
            if t is None:
                t = ts
        else:
            t = None
    return t


def judge(args, scen, res):
    """Returns dict(cells..., verdict) for the table of the scenario kind."""
    kind = scen["kind"]
    deadline = args.delay_ms + 100
    out = {"base": res["base"]["rss_kib"] if res["base"] else None,
           "hwm": res["result"].get("hwm_kib")}
    if kind in ("release", "floor"):
        pts = res["phases"].get(scen["phase"], [])
        if not pts:
            return dict(out, verdict="no data")
        floor = pts[0]["floor_kib"]
        base = pts[0]["base_kib"]
        peak = out["hwm"] or base
        if kind == "release":
            limit = floor + 0.02 * (peak - base) + 4096
        else:
            limit = scen["ratio"] * floor
        series = res["series"].get(scen["phase"], [])
        tg = time_to_goal(series, limit)
        # issue 15: RSS <= SURPLUS_RATIO x floor within SURPLUS_MS of the free
        t_surplus = time_to_goal(series, SURPLUS_RATIO * floor)
        out.update(floor=floor, limit=limit, points=pts, t_goal=tg, t_surplus=t_surplus)
        if tg is None:
            out["verdict"] = "FAIL (never)"
        elif tg <= deadline:
            out["verdict"] = "ok at %d ms" % tg
        else:
            out["verdict"] = "FAIL (%d ms)" % tg
        return out
    if kind == "peak":
        r = res["result"]
        built2 = res["phases"].get("built256", [{}])[0]
        second = r.get("floor2_kib") or built2.get("ideal_kib")
        one = max(r.get("peak1_kib", 0), second or 0)
        ratio = r["peak_kib"] / one if one else None
        out.update(peak1=r.get("peak1_kib"), peak=r.get("peak_kib"), one=one, ratio=ratio,
                   second=second,
                   freed32=res["phases"].get("freed32", [{}])[0].get("rss_kib"),
                   end=(res["phases"].get("freed256") or [{}])[-1].get("rss_kib"),
                   base_=built2.get("base_kib"))
        out["verdict"] = ("ok" if ratio is not None and ratio <= scen["ratio"] else "FAIL")
        return out
    if kind == "points":
        cells = []
        worst = 0.0
        for name, pts in res["phases"].items():
            last = pts[-1]  # after settling
            ratio = last["rss_kib"] / last["floor_kib"] if last["floor_kib"] > 0 else None
            cells.append((name, last["rss_kib"], last["floor_kib"], ratio, pts[0]["rss_kib"]))
            if ratio is not None:
                worst = max(worst, ratio)
        peaks = [p["peak_kib"] / p["ideal_kib"] for p in res.get("peaks", {}).values()
                 if p.get("ideal_kib")]
        out.update(cells=cells, worst=worst, worst_peak=max(peaks) if peaks else None)
        if res["phases"]:
            end = list(res["phases"].values())[-1][-1]
            if end.get("ideal_kib", 0) > 0:
                out.update(end_floor_ideal=end["floor_kib"] / end["ideal_kib"],
                           end_rss_ideal=end["rss_kib"] / end["ideal_kib"])
        out["verdict"] = "ok" if cells and worst <= scen["ratio"] else "FAIL"
        return out
    return dict(out, verdict="?")


# ---------------------------------------------------------------------------
# tables


def end_cells(v):
    """Scenario 6's placement columns: floor/ideal, RSS/ideal, judged."""
    fi, ri = v.get("end_floor_ideal"), v.get("end_rss_ideal")
    if ri is None:
        return ["-", "-", "-"]
    return ["%.2f" % fi, "%.2f" % ri, "ok" if ri <= END_IDEAL_RATIO else "FAIL"]


def goal_text(args, scen):
    d = args.delay_ms + 100
    k = scen["kind"]
    if k == "release":
        return "RSS <= floor + 2%% of (peak - base) + 4 MiB within %d ms of the free" % d
    if k == "floor":
        return "RSS <= %.2f x floor within %d ms of the free" % (scen["ratio"], d)
    if k == "points":
        return ("RSS <= %.2f x floor at every phase point (%d ms after it)"
                % (scen["ratio"], args.settle_ms))
    if k == "peak":
        return "total peak <= %.2f x one phase's peak (max of phase 1's peak, phase 2's floor)" \
            % scen["ratio"]
    if k == "largest":
        return "largest allocatable block >= glibc's and >= 1 GiB (32-bit process)"
    return ""


def failed_row(job, width):
    """A table row for a run that failed: its name, the error, blanks."""
    return [job["cfg"]["name"], "FAILED: " + job["error"][:150]] + [""] * (width - 2)


def table(args, scen, lang, jobs):
    k = scen["kind"]
    rows = []
    if k in ("release", "floor"):
        first = next((j for j in jobs if not j["error"]), None)
        tpts = [int(p["t_ms"]) for p in first["res"]["phases"].get(scen["phase"], [])] if first else []
        headers = ["config", "base", "peak", "floor"] + ["%d ms" % t for t in tpts] + \
                  ["limit", "goal", "%gx floor" % SURPLUS_RATIO]
        for j in jobs:
            if j["error"]:
                rows.append(failed_row(j, len(headers)))
                continue
            v = judge(args, scen, j["res"])
            byt = {int(p["t_ms"]): p for p in v.get("points", [])}
            rows.append([j["cfg"]["name"], mib(v["base"]), mib(v["hwm"]), mib(v.get("floor"))] +
                        [cell(byt[t]["rss_kib"], byt[t]["floor_kib"], late(byt[t]))
                         if t in byt else "-" for t in tpts] +
                        [mib(v.get("limit")), v["verdict"], surplus_cell(v.get("t_surplus"))])
            j["judged"] = v
        note = ("cells: RSS MiB (RSS/floor) at each time after the free, * = first sample came "
                "later (the program was still in malloc_trim or gc.collect); peak = VmHWM; "
                "limit = what the goal allows; goal: when RSS got below the limit for good; "
                "%gx floor: when RSS got below %g x the floor for good (issue 15's goal: "
                "within %d ms; samples every %d ms)" % (SURPLUS_RATIO, SURPLUS_RATIO, SURPLUS_MS,
                                                        args.tick_ms))
        return render(headers, rows, args.markdown, "lrrr" + "r" * len(tpts) + "rlr"), note
    if k == "peak":
        headers = ["config", "base", "peak phase 1", "after free 1", "phase 2 floor",
                   "total peak", "peak/one phase", "end (+%d ms)" % args.window_ms, "goal"]
        for j in jobs:
            if j["error"]:
                rows.append(failed_row(j, len(headers)))
                continue
            v = judge(args, scen, j["res"])
            rows.append([j["cfg"]["name"], mib(v["base"]), mib(v["peak1"]), mib(v["freed32"]),
                         mib(v["second"]), mib(v["peak"]),
                         "-" if v["ratio"] is None else "%.2f" % v["ratio"],
                         mib(v["end"]), v["verdict"]])
            j["judged"] = v
        note = ("MiB; phase 2 floor is its ideal (live bytes) in Python, where the floor "
                "of a whole build is too slow to compute")
        return render(headers, rows, args.markdown, "lrrrrrrrl"), note
    if k == "points":
        first = next((j for j in jobs if not j["error"]), None)
        names = list(first["res"]["phases"]) if first else []
        has_peaks = any(j["res"].get("peaks") for j in jobs if not j["error"])
        ends = bool(scen.get("end_ideal"))
        headers = ["config", "base"] + names + ["worst", "goal"] + \
            (["peak/ideal", "<= %.2f" % PEAK_RATIO] if has_peaks else []) + \
            (["end floor/ideal", "end RSS/ideal", "<= %.1f" % END_IDEAL_RATIO] if ends else [])
        for j in jobs:
            if j["error"]:
                rows.append(failed_row(j, len(headers)))
                continue
            v = judge(args, scen, j["res"])
            by = {c[0]: c for c in v["cells"]}
            wp = v["worst_peak"]
            rows.append([j["cfg"]["name"], mib(v["base"])] +
                        [cell(by[n][1], by[n][2]) if n in by else "-" for n in names] +
                        ["%.2f" % v["worst"], v["verdict"]] +
                        (["-" if wp is None else "%.3f" % wp,
                          "-" if wp is None else ("ok" if wp <= PEAK_RATIO else "FAIL")]
                         if has_peaks else []) +
                        (end_cells(v) if ends else []))
            j["judged"] = v
        floors = ""
        if first:
            floors = ", ".join("%s %s" % (n, mib(first["res"]["phases"][n][-1]["floor_kib"]))
                               for n in names)
        note = ("cells: RSS MiB (RSS/floor) %d ms after the phase point; floors differ by "
                "allocator (they depend on where objects landed), e.g. %s's: %s"
                % (args.settle_ms, first["cfg"]["name"] if first else "-", floors))
        if has_peaks:
            note += ("; peak/ideal: the worst, over the stretches between phase points, of "
                     "VmHWM (reset at each point) against base + the most the program held "
                     "in the stretch (issue 15's goal: <= %.2f)" % PEAK_RATIO)
        if ends:
            note += ("; end floor/ideal: the floor at the last phase point against base + live "
                     "bytes, where placement that does not know lifetimes stops; end RSS/ideal: "
                     "issue 15's goal, <= %.1f" % END_IDEAL_RATIO)
        return render(headers, rows, args.markdown,
                      "lr" + "r" * len(names) + "rl" + ("rl" if has_peaks else "") +
                      ("rrl" if ends else "")), note
    if k == "largest":
        headers = ["config", "largest, fresh process", "largest after the rounds",
                   "largest gap in maps", "live", "peak RSS", "goal"]
        glibc_after = None
        for j in jobs:
            if not j["error"] and j["cfg"]["name"].startswith("glibc"):
                glibc_after = j["res"]["result"].get("largest_kib")
        for j in jobs:
            if j["error"]:
                rows.append(failed_row(j, len(headers)))
                continue
            r = j["res"]["result"]
            fresh = j.get("fresh", {}).get("largest_kib")
            after = r.get("largest_kib")
            ok = after is not None and after >= 1024 * 1024 and \
                (glibc_after is None or after >= glibc_after)
            verdict = "ok" if ok else "FAIL"
            if glibc_after is None:
                verdict += " (>= 1 GiB; no glibc run to compare)"
            rows.append([j["cfg"]["name"], mib(fresh), mib(after), mib(r.get("largest_gap_kib")),
                         mib(r.get("live_kib")), mib(r.get("hwm_kib")), verdict])
        note = ("MiB; largest = binary search on the malloc size in 1 MiB steps, each probe "
                "freed at once, with the survivors and the live buffers in place (2047 MiB "
                "= PTRDIFF_MAX, the most one object can have in a 32-bit process); gap = "
                "the largest hole between mappings in /proc/self/maps")
        return render(headers, rows, args.markdown, "lrrrrrl"), note
    return "", ""


# ---------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(
        description="Run the RSS scenarios (issue 3) under several allocators.",
        epilog="Scenarios: " + "; ".join("%s: %s" % (s["id"], s["title"]) for s in SCENARIOS) +
        ".  Configurations: " + ", ".join(c[0] + ("" if c[4] else " (only by name)")
                                          for c in CONFIGS) + ".")
    ap.add_argument("--scenario", metavar="N,N", help="scenarios to run (default: all but "
                    "3b; 'all' for every one; 2 includes its variant 2b, 3 its 3b)")
    ap.add_argument("--config", metavar="A,B", help="configurations (default: all but those "
                    "marked 'only by name'; 'all' for every one)")
    ap.add_argument("--lang", choices=["c", "py", "both"], default="both")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiplies the programs' sizes (1: ~1 GiB builds; default 1)")
    ap.add_argument("--delay-ms", type=int, default=None,
                    help="purge delay the goals allow for: RSS must reach the goal within "
                    "delay + 100 ms (default 100; ebb itself runs with its own default "
                    "unless --lib sets EBB_PURGE_DELAY_MS)")
    ap.add_argument("--window-ms", type=int, default=2000,
                    help="how long RSS is sampled after a free phase (default 2000)")
    ap.add_argument("--tick-ms", type=int, default=5,
                    help="sampling period in a window after a free (default 5: the time to "
                    "reach issue 15's bound is judged to the tick)")
    ap.add_argument("--settle-ms", type=int, default=None,
                    help="wait at scenario 5/6 phase points before the judged sample "
                    "(default delay + 100)")
    benchlib.add_library_options(ap, "add (or replace) a configuration; repeatable")
    ap.add_argument("--ebb32", help="32-bit ebb for scenario 8 (default: build it into "
                    "build/m32/ at the root with the Makefile)")
    ap.add_argument("--python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3")
                    else sys.executable, help="interpreter for the Python scenarios "
                    "(default /usr/bin/python3)")
    ap.add_argument("--jobs", type=int, default=None, help="runs at once (default 1 at "
                    "scale >= 0.5, where runs are busy and parallel ones would disturb the "
                    "purge timing on 2 cores; 3 below, where runs mostly sleep in their "
                    "sampling windows)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per run (default 900)")
    benchlib.add_output_options(ap, "also write every run's parsed output")
    ap.add_argument("--no-build", action="store_true", help="do not run make first")
    ap.add_argument("--from-json", metavar="FILE", help="run nothing: print the tables of a "
                    "--json file again (e.g. with --markdown, or another --delay-ms)")
    args = ap.parse_args()
    if not args.scale > 0:
        sys.exit("--scale must be positive")
    args.ebb = os.path.abspath(args.ebb)
    if args.from_json:
        with open(args.from_json) as f:
            doc = json.load(f)
        for k in ("scale", "window_ms", "settle_ms", "ebb", "python"):
            setattr(args, k, doc["args"][k])
        args.tick_ms = doc["args"].get("tick_ms", 10)
        if args.delay_ms is None:
            args.delay_ms = doc["args"]["delay_ms"]
        scens, langs, jobs = restore_jobs(doc)
        header = doc.get("header") or ["ebb bench/rss: scale %g, window %d ms, settle %d ms" % (
            args.scale, args.window_ms, args.settle_ms), "ebb: %s" % args.ebb]
    else:
        if args.delay_ms is None:
            args.delay_ms = 100
        if args.settle_ms is None:
            args.settle_ms = args.delay_ms + 100
        if args.jobs is None:
            args.jobs = 1 if args.scale >= 0.5 else 3
        header = ["ebb bench/rss: scale %g, window %d ms, settle %d ms" % (
                      args.scale, args.window_ms, args.settle_ms),
                  "%s, %d CPUs, Linux %s, %s, git %s, python %s %s" % (
                      benchlib.cpu_model(), os.cpu_count(), platform.release(),
                      time.strftime("%Y-%m-%d %H:%M"), benchlib.git_describe(), args.python,
                      benchlib.python_version(args.python)),
                  "ebb: %s" % args.ebb]
        scens, langs, jobs = run_all(args)
    failures = report(args, header, scens, langs, jobs)
    if args.json:
        benchlib.write_json(args.json, {
            "args": vars(args), "header": header,
            "scenarios": [s["id"] for s in scens], "langs": langs, "runs": [
                {"scenario": j["scen"]["id"], "lang": j["lang"], "config": j["cfg"]["name"],
                 "fresh": "fresh_of" in j,
                 "lib": j["cfg"].get("lib"), "env": j["cfg"].get("env"), "cmd": j["cmd"],
                 "wall_s": j["wall_s"], "error": j["error"], "output": j["res"],
                 "judged": j.get("judged")} for j in jobs]}, default=str)
    benchlib.exit_on_errors("FAILED RUNS", failures)


def run_all(args):
    scens = select_scenarios(args.scenario)
    langs = ["c", "py"] if args.lang == "both" else [args.lang]
    cfgs = select_configs(args)
    need_m32 = any(s["kind"] == "largest" for s in scens) and "c" in langs
    if not args.no_build:
        build(args, need_m32)

    # the job list: scenario x language x configuration
    jobs = []
    for s in scens:
        for lang in langs:
            if lang == "py" and s.get("c_only"):
                continue
            if s["kind"] == "largest":
                prog = BUILD / "mixed32"
                if not prog.is_file():
                    log("skip scenario 8: %s missing (make -C %s m32)" % (prog, HERE))
                    continue
                for c in cfgs:
                    if c["name"] not in ("glibc", "ebb"):
                        continue
                    lib = None if c["name"] == "glibc" else ebb32(args)
                    if lib and not os.path.isfile(lib):
                        log("skip scenario 8 under ebb: no 32-bit library %s" % lib)
                        continue
                    c32 = {"name": c["name"] + " (32-bit)", "lib": lib, "env": {}}
                    cmd = command(args, s, lang, m32=True)
                    jobs.append({"scen": s, "lang": lang, "cfg": c32, "cmd": cmd})
                    jobs.append({"scen": s, "lang": lang, "cfg": c32, "fresh_of": len(jobs) - 1,
                                 "cmd": cmd + ["-r", "0"]})
                continue
            for c in cfgs:
                if lang in c["langs"]:
                    jobs.append({"scen": s, "lang": lang, "cfg": c, "cmd": command(args, s, lang)})
    if not jobs:
        sys.exit("nothing to run")

    log("%d runs (%d at once): scenarios %s, %s, configurations %s" % (
        len(jobs), args.jobs, ",".join(s["id"] for s in scens), "+".join(langs),
        ",".join(c["name"] for c in cfgs)))
    t_start = time.time()
    done = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        futs = [ex.submit(run_one, args, j) for j in jobs]
        for f in concurrent.futures.as_completed(futs):
            j = f.result()
            done += 1
            if not args.quiet:
                log("[%d/%d] %-3s %-3s %-20s %6.1f s%s" % (
                    done, len(jobs), j["scen"]["id"], j["lang"], j["cfg"]["name"], j["wall_s"],
                    "  FAILED: " + j["error"] if j["error"] else ""))
    log("runs took %.0f s" % (time.time() - t_start))
    for j in jobs:
        if "fresh_of" in j:
            jobs[j["fresh_of"]]["fresh"] = j["res"]["result"] if not j["error"] else {}
    return scens, langs, jobs


def restore_jobs(doc):
    """The jobs of a --json file, for --from-json."""
    by_id = {s["id"]: s for s in SCENARIOS}
    ids = doc.get("scenarios") or list(dict.fromkeys(r["scenario"] for r in doc["runs"]))
    scens = [by_id[i] for i in ids]
    langs = doc.get("langs") or [x for x in ("c", "py") if any(r["lang"] == x
                                                              for r in doc["runs"])]
    jobs = []
    for r in doc["runs"]:
        j = {"scen": by_id[r["scenario"]], "lang": r["lang"], "cmd": r["cmd"],
             "cfg": {"name": r["config"], "lib": r["lib"], "env": r["env"]},
             "wall_s": r["wall_s"], "error": r["error"], "res": r["output"]}
        j["res"]["series"] = {k: [tuple(p) for p in v] for k, v in j["res"]["series"].items()}
        if r["fresh"]:
            main_job = next(m for m in reversed(jobs) if "fresh_of" not in m and
                            m["scen"] is j["scen"] and m["cfg"]["name"] == j["cfg"]["name"])
            j["fresh_of"] = jobs.index(main_job)
            main_job["fresh"] = j["res"]["result"] if not j["error"] else {}
        jobs.append(j)
    return scens, langs, jobs


def report(args, header, scens, langs, jobs):
    """Print the tables; returns the failed runs."""
    hdr = header[:1] + ["goals: purge delay %d ms allowed (RSS must get there within %d ms of "
                        "the free)" % (args.delay_ms, args.delay_ms + 100)] + header[1:]
    print(benchlib.emphasize(hdr, args.markdown))
    failures = []
    for s in scens:
        for lang in langs:
            mine = [j for j in jobs if j["scen"] is s and j["lang"] == lang and "fresh_of" not in j]
            if not mine:
                continue
            failures += ["%s/%s/%s: %s" % (s["id"], lang, j["cfg"]["name"], j["error"])
                         for j in mine if j["error"]]
            text, note = table(args, s, lang, mine)
            lname = "C" if lang == "c" else "Python"
            print()
            title = "Scenario %s (%s): %s" % (s["id"], lname, s["title"])
            goal = "goal: " + goal_text(args, s)
            if args.markdown:
                print("#### %s\n\n%s; %s\n\n%s" % (title, goal, note, text))
            else:
                print("%s\n%s\n%s\n\n%s" % (title, goal, note, text))
    return failures


if __name__ == "__main__":
    main()
