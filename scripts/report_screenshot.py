#!/usr/bin/env python3
"""Make docs/report.png, the README's picture of the HTML report: a real run
of a small Python program under `ebb run --report x.html`, loaded in headless
Chromium (tests/python/browser.py) and photographed.

    python3 scripts/report_screenshot.py [--build build] [--out docs/report.png]

The program (below) parses rows into a list and an index, fills buffers, frees
it all and keeps a little: the peak's flame graph shows the three Python lines
that held it."""
import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))

APP = '''\
import time  # no import of ebb: ebb run records the Python stacks itself

def load_rows(n):
    return [("row-%d" % i).encode() * 8 for i in range(n)]

def index(rows):
    return {r: i for i, r in enumerate(rows)}

def parse(n):
    rows = load_rows(n)
    return rows, index(rows)

def buffers(k):
    return [bytearray(64 * 1024) for _ in range(k)]

def main():
    rows, idx = parse(200000)
    bufs = buffers(400)
    time.sleep(0.2)
    del rows, idx, bufs
    return load_rows(20000)

keep = main()
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "report.png"))
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=1500, help="the part of the page photographed")
    a = ap.parse_args()
    import browser
    with tempfile.TemporaryDirectory() as tmp:
        app = os.path.join(tmp, "app.py")
        with open(app, "w") as f:
            f.write(APP)
        page = os.path.join(tmp, "report.html")
        env = dict(os.environ, PYTHONPATH=os.path.join(a.build, "python"))
        subprocess.run([os.path.join(a.build, "ebb"), "run", "--report", page, "/usr/bin/python3", app],
                       env=env, check=True, cwd=tmp)
        with browser.Browser() as b:
            b.load("file://" + page, width=a.width, height=a.height)
            errors = b.errors()
            if errors:
                sys.exit("the page logged errors: %s" % errors)
            b.screenshot(a.out, full_page=False)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
