"""BRIEF story 1 end to end: the same Python program under the stock
interpreter (pymalloc), under glibc's malloc, and under `ebb run`, with time
and RSS at each phase side by side, next to the floor.

Usage: demo.py --tool build/ebb [--n N] [--python PYTHON]"""
import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd_prefix, python, env_extra, n):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "EBB_")) and k != "LD_PRELOAD"}
    env.update(env_extra)
    cmd = cmd_prefix + [python, os.path.join(HERE, "demo_workload.py"), str(n)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("demo: %s failed:\n%s" % (" ".join(cmd), p.stderr))
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True, help="the ebb command-line tool")
    ap.add_argument("--n", type=int, default=3_000_000, help="paths to build")
    ap.add_argument("--python", default="/usr/bin/python3.11" if os.path.exists(
        "/usr/bin/python3.11") else shutil.which("python3") or "python3")
    a = ap.parse_args()
    if not os.path.exists(a.tool):
        sys.exit("demo: %s not found; run make first" % a.tool)
    configs = [
        ("python3 (pymalloc)", [], {}),
        ("glibc malloc", [], {"PYTHONMALLOC": "malloc"}),
        ("ebb run python3", [a.tool, "run", "--"], {}),
    ]
    print("%s builds %d small path objects (a search frontier), frees all but 0.1%%,"
          % (a.python, a.n))
    print("then computes on the rest for 0.5 s.  RSS in MiB; floor = base + the pages")
    print("that still hold a live object.\n")
    rows = [(name, run(prefix, a.python, env, a.n)) for name, prefix, env in configs]
    hdr = "%-20s %8s %8s %8s %8s %11s %11s %8s" % (
        "", "build s", "free s", "base", "peak", "after free", "0.5 s later", "floor")
    print(hdr)
    print("-" * len(hdr))
    for name, r in rows:
        print("%-20s %8.2f %8.2f %8.1f %8.1f %11.1f %11.1f %8.1f" % (
            name, r["t_build"], r["t_free"], r["base"], r["peak"], r["after_free"], r["end"],
            r["floor"]))
    checks = {r["check"] for _, r in rows}
    if len(checks) != 1:
        sys.exit("demo: results differ between allocators: %s" % checks)
    ebb, stock = rows[-1][1], rows[0][1]
    print("\nebb gives back %.0f MiB the stock interpreter keeps: %.1f MiB against %.1f, "
          "%.2fx the floor." % (stock["end"] - ebb["end"], ebb["end"], stock["end"],
                                 ebb["end"] / ebb["floor"]))


main()
