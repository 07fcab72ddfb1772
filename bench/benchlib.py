"""benchlib -- what the three benchmark drivers of bench/ share.

The drivers are bench/run.py (the C workloads, timed or under callgrind),
bench/rss/run.py (the RSS scenarios) and bench/python/run.py (the Python
workloads).  Each keeps its own workloads, options, judging and report
shapes; this module owns the machinery under them, so that a fix to how a
run is started, killed, probed or printed is made once:

  - where things are (the bench/ tree, its build directory, the launcher)
    and which peer allocators the drivers compare with;
  - the environment: which variables tune an allocator (reported by one
    driver, stripped by the others), library specs
    NAME=PATH[?VAR=VAL&...] and whether a library can be preloaded;
  - running a child in a process group of its own, with a timeout that
    kills the whole group (a workload's threads and children too), directly
    or through bench/tools/launch.c, which measures the child alone;
  - callgrind: the command line and the instruction total of its output;
  - the loop over repetitions x workloads x configurations: a combination
    that fails is not tried again, and the stdout of runs that must agree
    (checksums) is compared;
  - numbers: median, ratio, geometric mean, spread, runs grouped by
    workload and configuration;
  - the options every driver has in the same sense (--markdown, --json,
    -q, --ebb, --lib, --reps, --seed);
  - output: plain or Markdown tables, header lines, the machine and git
    revision, the --json file, the closing list of errors.

Python 3 standard library only: the drivers run on a bare interpreter.
"""

import glob
import json
import math
import os
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
LAUNCH = BUILD / "launch"

LIBDIR = "/usr/lib/x86_64-linux-gnu"
PEER_LIBS = {
    "mimalloc": LIBDIR + "/libmimalloc.so.2",
    "jemalloc": LIBDIR + "/libjemalloc.so.2",
    "tcmalloc": LIBDIR + "/libtcmalloc_minimal.so.4",
}

# Prefixes of the variables through which some allocator reads its tuning.
TUNING_PREFIXES = ("MALLOC_", "GLIBC_TUNABLES", "MIMALLOC_", "TCMALLOC_", "EBB_",
                   "_RJEM_MALLOC_CONF", "JE_MALLOC_CONF")


class Failure(Exception):
    """A run that did not do what it must (exit 0, an instruction count):
    reported, the others go on."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# environment and libraries


def env_pattern(*more):
    """A regex matching the tuning variables and the names (prefixes) in
    `more`, e.g. LD_PRELOAD for a driver that sets it itself."""
    return re.compile("^(" + "|".join(re.escape(p) for p in TUNING_PREFIXES + more) + ")")


def env_without(pattern):
    """This process's environment without the variables `pattern` matches."""
    return {k: v for k, v in os.environ.items() if not pattern.match(k)}


def parse_settings(query, spec):
    """VAR=VAL&VAR=VAL (the part of a library spec after '?') -> dict."""
    settings = {}
    for item in filter(None, query.split("&")):
        var, eq, val = item.partition("=")
        if not eq or not var:
            sys.exit("bad setting %r in %r (want VAR=VALUE)" % (item, spec))
        settings[var] = val
    return settings


def split_preload(lib):
    """PATH[?VAR=VAL&...] -> (PATH, settings): one library can run under
    several settings side by side under different names."""
    if not lib:
        return lib, {}
    path, _, query = lib.partition("?")
    return path, parse_settings(query, lib)


def parse_lib(spec):
    """A --lib argument, NAME=PATH[?VAR=VAL&...] -> (NAME, absolute PATH,
    settings)."""
    name, _, rest = spec.partition("=")
    path, _, query = rest.partition("?")
    if not name or not path:
        sys.exit("--lib wants NAME=PATH[?VAR=VAL&...], got %r" % spec)
    return name, os.path.abspath(path), parse_settings(query, spec)


def probe_preload(path, env=None):
    """None if the library at `path` can be preloaded into a trivial
    program (env: its environment, this process's by default), else why
    not: a missing or broken library is skipped with a message rather than
    failing every run."""
    if not os.path.isfile(path):
        return "not found"
    env = dict(os.environ if env is None else env, LD_PRELOAD=path)
    try:
        p = subprocess.run(["/bin/true"], env=env, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return "probe failed: %s" % e
    if p.returncode != 0 or "ld.so" in p.stderr:
        return "cannot be preloaded: " + p.stderr.strip()[:200]
    return None


def pick(spec, known, what):
    """The names of a comma-separated option (--only, --alloc, ...), in the
    order given; exits naming the unknown ones."""
    names = spec.split(",")
    bad = [n for n in names if n not in known]
    if bad:
        sys.exit("unknown %s %s (known: %s)" % (what, ",".join(bad), ",".join(known)))
    return names


# ---------------------------------------------------------------------------
# running


class Ran:
    """What a finished (or killed) child left: returncode, stdout, stderr,
    timed_out, wall_s; after launch() also res, the launcher's numbers."""

    def __init__(self, returncode, stdout, stderr, timed_out, wall_s):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.timed_out = timed_out
        self.wall_s = wall_s
        self.res = {}


def _kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def run_group(cmd, env, timeout):
    """Run cmd with stdin from /dev/null, leading a process group of its
    own, so that a timeout (or ^C here) kills everything it started, not
    just the first process.  Output goes through temporary files, which,
    unlike pipes, cannot fill up and stall a child that writes a lot."""
    t0 = time.time()
    timed_out = False
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(p)
        except BaseException:
            _kill_group(p)
            raise
        wall = time.time() - t0
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    return Ran(p.returncode, stdout, stderr, timed_out, wall)


NUMBER_RE = re.compile(r"(\w+)=(-?[0-9.]+)")


def numbers(text):
    """Every key=number of a line (the launcher's result, a PHASE line)."""
    return {k: float(v) for k, v in NUMBER_RE.findall(text)}


def launch(prog, preload, env, timeout, tmpdir):
    """Run prog (argv list) through bench/build/launch with `preload` as
    LD_PRELOAD ("" or None: none).  The launcher forks the program and
    takes its wall, user and sys time, peak RSS and minor faults with
    wait4: the program's own, not this interpreter's, which a child forked
    from here would inherit.  Returns a Ran whose res holds those numbers
    and always a status (-9 after the timeout; the launcher's exit code if
    it could not write its result)."""
    resfile = os.path.join(tmpdir, "result")
    try:
        os.unlink(resfile)
    except FileNotFoundError:
        pass
    ran = run_group([str(LAUNCH), resfile, preload or ""] + prog, env, timeout)
    try:
        ran.res = numbers(Path(resfile).read_text())
    except OSError:
        ran.res = {}
    if ran.timed_out:
        ran.stderr += "\n[harness] killed after the %g s timeout" % timeout
        ran.res["status"] = -signal.SIGKILL
    elif "status" not in ran.res:
        ran.stderr += "\n[harness] launcher failed (exit %d)" % ran.returncode
        ran.res["status"] = ran.returncode if ran.returncode else 127
    return ran


def check_exit(what, code, stderr):
    """Raise Failure unless a run exited 0 with its library preloaded."""
    if "ld.so" in stderr and "preload" in stderr:
        raise Failure("%s: preload failed: %s" % (what, stderr.strip()[:300]))
    if code != 0:
        how = ("killed by signal %d" % -code) if code < 0 else ("exit %d" % code)
        tail = "\n    ".join(stderr.strip().splitlines()[-8:])
        raise Failure("%s: %s\n    %s" % (what, how, tail))


def run_make(cmd, what):
    """Run a build command, its output on stderr; True if it worked."""
    log("building %s: %s" % (what, " ".join(cmd)))
    return subprocess.run(cmd, stdout=sys.stderr).returncode == 0


# ---------------------------------------------------------------------------
# callgrind


def valgrind_path():
    v = shutil.which("valgrind")
    if not v:
        sys.exit("--callgrind needs valgrind (apt-get install valgrind, or scripts/deps.sh bench)")
    return v


# A thread ebb starts for itself (the purger, the pressure watcher) runs
# everything under this function.
EBB_OWN_THREAD = "thread_trampoline"


def callgrind(what, prog, preload, env, timeout, tmpdir, program_threads=False):
    """Run prog under valgrind --tool=callgrind through the launcher and
    return (instructions executed, stdout).  valgrind hands LD_PRELOAD on
    to the program it runs, so the preloaded allocator is what the program
    calls.  With program_threads, only the threads the program started
    count: ebb's own threads wake by the clock, so what they execute varies
    from run to run by more than a small difference to be measured (the
    sampler's cost, for one).  Raises Failure for a bad exit or a missing
    total."""
    outfile = os.path.join(tmpdir, "callgrind.out")
    for old in glob.glob(outfile + "*"):
        os.unlink(old)
    cmd = [valgrind_path(), "--tool=callgrind", "--dump-instr=no",
           "--callgrind-out-file=" + outfile]
    if program_threads:
        cmd.append("--separate-threads=yes")
    ran = launch(cmd + prog, preload, env, timeout, tmpdir)
    check_exit(what, int(ran.res["status"]), ran.stderr)
    if not program_threads:
        return callgrind_total(outfile), ran.stdout
    # A part is a thread slot, which threads that start after another ended
    # share: take off what ran under ebb's thread function, not the part.
    total = 0
    for part in sorted(glob.glob(outfile + "-*")):
        total += callgrind_total(part) - inclusive_cost(part, EBB_OWN_THREAD)
    return total, ran.stdout


def inclusive_cost(path, function):
    """The instructions executed in function and what it called, in one
    callgrind output file (callgrind_annotate's inclusive count); 0 if it
    never ran there."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                         capture_output=True, text=True).stdout
    m = re.search(r"^\s*([\d,]+) .*:%s \[" % re.escape(function), out, re.M)
    return int(m.group(1).replace(",", "")) if m else 0


def callgrind_total(path):
    """The Ir total of a callgrind output file."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        raise Failure("no callgrind output %s: %s" % (path, e))
    m = re.search(r"^totals:\s*(\d+)", text, re.M) or \
        re.search(r"^summary:\s*(\d+)", text, re.M)
    if not m:
        raise Failure("no instruction total in %s" % path)
    return int(m.group(1))


def ir_summary(runs):
    """What a summary row says of the callgrind runs of one workload under
    one configuration: the median Ir and the spread, in percent."""
    irs = [r["ir"] for r in runs]
    return {"ir": int(round(median(irs))), "spread_pct": 100 * spread(irs)}


# ---------------------------------------------------------------------------
# the loop over everything, and outputs that must agree


class Outputs:
    """The stdout of every run of a workload must be the same under every
    allocator or configuration: the workloads print what they computed from
    their data, so a difference means memory was corrupted."""

    def __init__(self):
        self.seen = {}  # workload -> {stdout: [configurations]}

    def add(self, workload, config, stdout):
        names = self.seen.setdefault(workload, {}).setdefault(stdout.strip(), [])
        if config not in names:
            names.append(config)

    def mismatches(self):
        """[(workload, {stdout: [configurations]})] where they differ."""
        return [(w, outs) for w, outs in self.seen.items() if len(outs) > 1]


def run_matrix(reps, workloads, configs, name, run, shuffle=None):
    """Call run(rep, workload, config, n, total) for every repetition (from
    1), workload and configuration; it returns a run (a dict with the
    stripped "stdout") or raises Failure.  name(config) is what runs are
    told apart by.  With shuffle (a random.Random) the configurations come
    in a fresh order for every workload of every repetition, so that the
    slow drifts of a noisy machine spread over all of them.  A combination
    that failed is not tried again: the same error would come back.
    Returns (runs, errors, Outputs of the runs)."""
    runs, errors, broken = [], [], set()
    outputs = Outputs()
    total = reps * len(workloads) * len(configs)
    n = 0
    for rep in range(1, reps + 1):
        for w in workloads:
            order = list(configs)
            if shuffle:
                shuffle.shuffle(order)
            for c in order:
                n += 1
                key = (w, name(c))
                if key in broken:
                    continue
                try:
                    r = run(rep, w, c, n, total)
                except Failure as e:
                    errors.append(str(e))
                    broken.add(key)
                    log("FAIL " + str(e))
                    continue
                runs.append(r)
                outputs.add(w, key[1], r["stdout"])
    return runs, errors, outputs


def summary_rows(runs, workloads, configs, key, reduce):
    """{workload: {config: row}} in the order of workloads and configs
    (names), for every pair that has runs: row is {"workload", key, "n"}
    and what reduce(its runs) returns (medians and the like).  key: the
    runs' field that names the configuration."""
    out = {}
    for w in workloads:
        out[w] = {}
        for c in configs:
            rs = [r for r in runs if r["workload"] == w and r[key] == c]
            if rs:
                out[w][c] = dict({"workload": w, key: c, "n": len(rs)}, **reduce(rs))
    return out


# ---------------------------------------------------------------------------
# numbers

median = statistics.median


def ratio(a, b):
    """a / b, None if either is missing (or b is 0)."""
    if a is None or not b:
        return None
    return a / b


def geomean(xs):
    xs = [x for x in xs if x]
    if not xs:
        return None
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def spread(xs, center=None):
    """(largest - smallest) / center (the median by default): how far
    apart the repetitions were; 0 for a single one."""
    center = median(xs) if center is None else center
    return (max(xs) - min(xs)) / center if center else 0


def fmt(x, spec="%.2f"):
    return "-" if x is None else spec % x


# ---------------------------------------------------------------------------
# options


def add_output_options(ap, json_help):
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    ap.add_argument("--json", metavar="FILE", help=json_help)
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-run progress on stderr")


def add_library_options(ap, lib_help):
    """--ebb and --lib NAME=PATH[?VAR=VAL&...] (see parse_lib)."""
    ap.add_argument("--ebb", default=str(ROOT / "build" / "libebb.so"),
                    help="ebb library to preload (default: build/libebb.so at the "
                    "repository root)")
    ap.add_argument("--lib", action="append", default=[], metavar="NAME=PATH[?VAR=VAL&...]",
                    help=lib_help)


def add_repeat_options(ap, reps_help):
    """--reps (None unless given: the default depends on the mode) and
    --seed (the run order's, None: from the clock)."""
    ap.add_argument("--reps", type=int, default=None, help=reps_help)
    ap.add_argument("--seed", type=int, default=None,
                    help="seed for the run order (default: from the clock)")


def settle_repeats(args, default, callgrind_default=1):
    """Fill in --reps and --seed after parsing; exits if --reps < 1."""
    if args.reps is None:
        args.reps = callgrind_default if args.callgrind else default
    if args.reps < 1:
        sys.exit("--reps must be at least 1")
    if args.seed is None:
        args.seed = int(time.time()) % 100000


# ---------------------------------------------------------------------------
# tables and the lines around them


def render(headers, body, markdown, align=None, group=False):
    """A table of strings.  align: 'l' or 'r' per column (default: the
    first left, the others right); group: a blank line in the plain text
    whenever the first column changes."""
    if align is None:
        align = "l" + "r" * (len(headers) - 1)
    if markdown:
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join(("---:" if a == "r" else ":---") for a in align) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max([len(h)] + [len(row[i]) for row in body]) for i, h in enumerate(headers)]

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


def emphasize(lines, markdown):
    """Header lines; in Markdown each in italics with a hard line break."""
    if markdown:
        return "\n".join("_%s_  " % line for line in lines)
    return "\n".join(lines)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def git_describe(default="?"):
    """The repository's revision (with -dirty for local changes), so that
    a saved result says what it measured; `default` if git cannot say."""
    try:
        return subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return default


def python_version(py):
    try:
        return subprocess.run([py, "-c", "import platform; print(platform.python_version())"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def real_interpreter(py):
    """The interpreter binary behind `py`.  A wrapper script (a pyenv shim
    is a bash script) would be what valgrind instruments and what
    LD_PRELOAD reaches first; the interpreter itself knows its path."""
    py = shutil.which(py) or py
    try:
        with open(py, "rb") as f:
            if f.read(2) != b"#!":
                return py
        real = subprocess.run([py, "-c", "import sys; print(sys.executable)"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return py
    return real or py


# ---------------------------------------------------------------------------
# the end of a run


def write_json(path, doc, **dump_args):
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, **dump_args)
        f.write("\n")
    log("wrote " + path)


def exit_on_errors(title, errors):
    """List the errors on stderr and exit 1, if there are any."""
    if errors:
        print("\n%s:" % title, file=sys.stderr)
        for e in errors:
            print("  " + e, file=sys.stderr)
        sys.exit(1)
