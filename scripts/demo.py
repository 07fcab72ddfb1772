"""Run the demo workload under the stock interpreter, glibc malloc and ebb,
and print time and RSS side by side.  Usage: demo.py --ebb PATH [--n N]"""
import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(python, env_extra, n):
    env = dict(os.environ)
    env.update(env_extra)
    cmd = [python, os.path.join(HERE, "demo_workload.py"), str(n)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ebb", required=True)
    ap.add_argument("--n", type=int, default=3_000_000, help="paths to build")
    ap.add_argument("--python", default="/usr/bin/python3.11" if os.path.exists(
        "/usr/bin/python3.11") else shutil.which("python3") or "python3")
    a = ap.parse_args()
    if not os.path.exists(a.ebb):
        sys.exit("demo: %s not found; run make first" % a.ebb)
    configs = [
        ("pymalloc (stock)", {}),
        ("glibc malloc", {"PYTHONMALLOC": "malloc"}),
        ("ebb", {"PYTHONMALLOC": "malloc", "LD_PRELOAD": a.ebb}),
    ]
    print("Python %s builds %d small path objects, frees them, computes on 0.1%%"
          % (a.python, a.n))
    rows = []
    for name, env in configs:
        r = run(a.python, env, a.n)
        rows.append((name, r))
    hdr = "%-18s %9s %9s %11s %11s %13s %10s" % (
        "allocator", "build s", "free s", "base MiB", "peak MiB", "after free", "end MiB")
    print(hdr)
    print("-" * len(hdr))
    for name, r in rows:
        print("%-18s %9.2f %9.2f %11.1f %11.1f %13.1f %10.1f" % (
            name, r["t_build"], r["t_free"], r["base"], r["peak"], r["after_free"], r["end"]))
    checks = {r["check"] for _, r in rows}
    if len(checks) != 1:
        sys.exit("demo: results differ between allocators: %s" % checks)


main()
