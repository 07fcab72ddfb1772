"""Report files: `ebb run --report FILE` (.html, .json, anything else the
text) and `--folded FILE`, written by the library at exit and on the first
failed allocation (src/insight/report_files.c), and by `ebb run` from the
black box after a kill (cli/report.c); and the page itself, loaded in a real
headless Chromium (tests/python/browser.py): no console error, and the
plot, the flame graph and the maps drawn from the data."""
import json
import os
import re
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import ROOT, TOOL, child_env  # noqa: E402
from test_module import check_reports, schema_checker  # noqa: E402
import browser  # noqa: E402

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "report", "extra_sections.json")

# Grows to ~100 MiB in build() under main(), frees it, keeps ~10 MiB.  `import
# ebb` turns on the Python stacks of samples.  argv[1]: "kill" ends it by
# SIGKILL, "_exit" by os._exit (no exit handlers), "child" starts a child
# under ebb first and says whether the report existed after it ended.
APP = """\
import ebb, os, subprocess, sys

def build(n):
    return [bytearray(1000) for i in range(n)]

def main():
    x = build(100000)
    del x
    return build(10000)

keep = main()
how = sys.argv[1] if len(sys.argv) > 1 else ""
if how == "kill":
    os.kill(os.getpid(), 9)
elif how == "_exit":
    os._exit(3)
elif how == "child":
    subprocess.run([sys.executable, "-c", "x = bytearray(1 << 20)"], check=True)
    print("pid", os.getpid(), "exists", os.path.exists(sys.argv[2]), flush=True)
"""

# Past a 64 MiB limit: a MemoryError, after which the program reads its own
# report file (written on the failure), then exits normally.
FAIL_APP = """\
import ebb, json, sys
def hog():
    return [bytearray(1 << 20) for i in range(200)]
try:
    x = hog()
except MemoryError:
    pass
with open(sys.argv[1]) as f:
    d = json.load(f)
print("during:", d["reason"], "|", (d["failure"] or {}).get("kind"), flush=True)
"""

FOLDED_LINE = re.compile(r"^(\S.*) (\d+)$")


def run(tmp, args, app=APP, prog_args=(), extra_env=None, timeout=120):
    path = os.path.join(tmp, "app.py")
    with open(path, "w") as f:
        f.write(app)
    env = {"TMPDIR": tmp, "XDG_RUNTIME_DIR": ""}
    env.update(extra_env or {})
    return subprocess.run([TOOL, "run", *args, "--", sys.executable, path, *prog_args],
                          env=child_env(env), capture_output=True, text=True, timeout=timeout,
                          cwd=tmp)


def report_args(tmp, stem="r"):
    files = {k: os.path.join(tmp, stem + "." + k) for k in ("html", "json", "txt", "folded")}
    args = ["--report", files["html"], "--report", files["json"], "--report", files["txt"],
            "--folded", files["folded"]]
    return files, args


def page_json(html):
    """The JSON a page carries (its '<' escaped as \\u003c, which JSON reads)."""
    m = re.search(r'<script type="application/json" id="ebb-data">\n(.*?)</script>', html, re.S)
    assert m, html[:500]
    assert "<" not in m.group(1)
    return json.loads(m.group(1))


class ReportFilesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.checker = schema_checker()

    def check_files(self, files, reason):
        """Every file there, mode 0600, in its format; the JSON (alone and in
        the page) valid against the schema; returns the JSON."""
        for path in files.values():
            st = os.lstat(path)
            assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, (path, oct(st.st_mode))
            assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]
        with open(files["json"]) as f:
            d = json.load(f)
        with open(files["html"]) as f:
            html = f.read()
        assert html.startswith("<!DOCTYPE html>\n<!-- ebb report"), html[:100]
        assert "<script src" not in html and "http://" not in html.replace("http://www.w3.org", "")
        assert page_json(html) == d
        with open(files["txt"]) as f:
            text = f.read()
        assert text.startswith("== ebb report: pid %d" % d["pid"]), text[:200]
        assert reason in d["reason"] and ("reason      " + d["reason"]) in text, (d["reason"], text[:400])
        with open(files["folded"]) as f:
            lines = f.read().splitlines()
        assert lines, "no folded stacks"
        for line in lines:
            assert FOLDED_LINE.match(line), line
        # The peak's heaviest site, in Python frames, outermost first.
        top = max(lines, key=lambda l: int(l.rsplit(" ", 1)[1]))
        frames = top.rsplit(" ", 1)[0].split(";")
        assert frames[0].endswith("<module>") and "main" in frames[1] and "build" in frames[2], top
        assert int(top.rsplit(" ", 1)[1]) > 50 << 20, top
        peak = d["peak"]
        assert peak and peak["top"][0]["live_bytes"] > 50 << 20, peak
        if self.checker:
            check_reports(self.checker, [d], [])
        return d

    def test_files_written_at_exit_and_replaced_by_the_next_run(self):
        with tempfile.TemporaryDirectory() as tmp:
            files, args = report_args(tmp)
            p = run(tmp, args)
            assert p.returncode == 0, p.stderr
            d = self.check_files(files, "the program exited")
            assert d["failure"] is None and "from_black_box" not in d
            p = run(tmp, args)
            assert p.returncode == 0, p.stderr
            d2 = self.check_files(files, "the program exited")
            assert d2["pid"] != d["pid"], "a report of ebb's is replaced by the next run's"

    def test_files_rewritten_on_the_first_failure(self):
        with tempfile.TemporaryDirectory() as tmp:
            files, args = report_args(tmp)
            p = run(tmp, ["--limit", "64M", *args], app=FAIL_APP, prog_args=[files["json"]])
            assert p.returncode == 0, p.stderr
            assert "during: first allocation refused at the limit | limit" in p.stdout, p.stdout + p.stderr
            with open(files["json"]) as f:
                d = json.load(f)
            assert d["reason"] == "the program exited, after an allocation was refused for want of memory", d["reason"]
            assert d["failure"]["kind"] == "limit" and d["limit"]["bytes"] == 64 << 20, d
            if self.checker:
                check_reports(self.checker, [d], [])

    def test_files_from_the_black_box_after_sigkill(self):
        with tempfile.TemporaryDirectory() as tmp:
            files, args = report_args(tmp)
            p = run(tmp, args, prog_args=["kill"])
            assert p.returncode == 128 + signal.SIGKILL, p.stderr
            d = self.check_files(files, "the black box's last refresh")
            fb = d["from_black_box"]
            assert fb["signal"] == 9 and fb["signal_name"] == "SIGKILL" and fb["exit_status"] is None, fb
            # The box trails the truth by up to its interval (10 ms), so its
            # live figure may predate the last build; the peak does not.
            assert d["memory"]["peak_committed"] >= 95 << 20, d["memory"]
            with open(files["txt"]) as f:
                assert "killed by signal 9 (SIGKILL)" in f.read()
            assert sorted(os.listdir(tmp)) == ["app.py", "r.folded", "r.html", "r.json", "r.txt"]

    def test_files_from_the_black_box_after_exit_without_handlers(self):
        with tempfile.TemporaryDirectory() as tmp:
            files, args = report_args(tmp)
            p = run(tmp, args, prog_args=["_exit"])
            assert p.returncode == 3, p.stderr
            d = self.check_files(files, "the black box's last refresh")
            assert d["from_black_box"] == {"signal": None, "signal_name": None, "exit_status": 3,
                                           "record_age_seconds": d["from_black_box"]["record_age_seconds"]}

    def test_children_of_the_program_do_not_write_its_files(self):
        with tempfile.TemporaryDirectory() as tmp:
            files, args = report_args(tmp)
            p = run(tmp, args, prog_args=["child", files["json"]])
            assert p.returncode == 0, p.stderr
            m = re.search(r"pid (\d+) exists (\w+)", p.stdout)
            assert m and m.group(2) == "False", p.stdout
            with open(files["json"]) as f:
                assert json.load(f)["pid"] == int(m.group(1))

    def test_a_link_or_a_foreign_file_at_the_path_is_left_alone(self):
        for how in ("", "kill"):
            with tempfile.TemporaryDirectory() as tmp:
                files, args = report_args(tmp)
                victim = os.path.join(tmp, "victim")
                with open(victim, "w") as f:
                    f.write("precious\n")
                os.symlink(victim, files["json"])
                os.symlink(victim, files["html"])
                with open(files["txt"], "w") as f:
                    f.write("my own notes\n")
                p = run(tmp, args, prog_args=[how] if how else [])
                assert p.returncode == (128 + 9 if how else 0), p.stderr
                with open(victim) as f:
                    assert f.read() == "precious\n", "the link was followed"
                assert os.path.islink(files["json"]) and os.path.islink(files["html"])
                with open(files["txt"]) as f:
                    assert f.read() == "my own notes\n"
                assert "a symbolic link" in p.stderr and "did not write" in p.stderr, p.stderr
                with open(files["folded"]) as f:
                    assert FOLDED_LINE.match(f.readline()), "the other files are written"

    def test_report_name_with_a_colon_is_refused(self):
        p = subprocess.run([TOOL, "run", "--report", "a:b.html", "true"], env=child_env(),
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and "may not contain ':'" in p.stderr, p.stderr

    def test_blackbox_command_reads_versions_1_and_2(self):
        with tempfile.TemporaryDirectory() as tmp:
            v1 = os.path.join(tmp, "v1")
            text = (b"committed=1 peak_committed=2 live=3 mapped=4 limit=0 purged=0 rss=5 failure=0 request=0\n"
                    b"== ebb report: pid 4242, 2026-01-01T00:00:00Z, ebb 0.0.9\nreason      old box\n")
            header = struct.pack("<8sIIIIQqqq", b"EBBBOX1\n", 1, 16384, 0, 0, 7, 4242, 1, 2)
            with open(v1, "wb") as f:
                f.write(header.ljust(4096, b"\0") + text.ljust(16384, b"\0") + b"\0" * 16384)
            p = subprocess.run([TOOL, "blackbox", v1], capture_output=True, text=True, timeout=60)
            assert p.returncode == 0 and "black box of pid 4242" in p.stdout and "reason      old box" in p.stdout, \
                p.stdout + p.stderr
            v2 = os.path.join(tmp, "v2")
            lib = os.path.join(os.path.dirname(TOOL), "libebb.so")
            subprocess.run([sys.executable, "-c", "x = [bytearray(1000) for i in range(1000)]"],
                           env=child_env({"LD_PRELOAD": lib, "EBB_BLACKBOX": v2}), check=True, timeout=60)
            with open(v2, "rb") as f:
                assert struct.unpack("<8sI", f.read(12))[1] == 2
            p = subprocess.run([TOOL, "blackbox", v2], capture_output=True, text=True, timeout=60)
            assert p.returncode == 0 and "\n== end of ebb report" in p.stdout, p.stdout + p.stderr


class ReportPageInBrowserTest(unittest.TestCase):
    """The page in headless Chromium: loads with no console error, and draws
    its plot, flame graph and maps from the data."""

    @classmethod
    def setUpClass(cls):
        if browser.find_chromium() is None:
            raise unittest.SkipTest("chromium is not installed (scripts/deps.sh test installs it): "
                                    "the report page is not loaded in a browser")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.files, args = report_args(cls.tmp.name)
        p = run(cls.tmp.name, args)
        assert p.returncode == 0, p.stderr
        cls.browser = browser.Browser()

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.tmp.cleanup()

    def load(self, path):
        b = self.browser
        b.events.clear()
        b.load("file://" + path)
        assert b.evaluate("document.body.dataset.drawn") == "1", "the page did not finish drawing"
        return b

    def count(self, selector):
        return self.browser.evaluate("document.querySelectorAll(%s).length" % json.dumps(selector))

    def test_page_of_a_real_run(self):
        b = self.load(self.files["html"])
        assert b.errors() == [], b.errors()
        rects = self.count("#flame rect[data-bytes]")
        assert rects > 3, rects
        labels = b.evaluate("[...document.querySelectorAll('#flame text')].map(t => t.textContent).join('|')")
        assert "main" in labels and "build" in labels, labels
        assert b.evaluate("document.querySelector('#flame').dataset.mode") == "python"
        # Native frames: the toggle redraws from the native stacks.
        b.evaluate("document.getElementById('frames-native').click()")
        assert b.evaluate("document.querySelector('#flame').dataset.mode") == "native"
        assert self.count("#flame rect[data-bytes]") > 3
        names = b.evaluate("[...document.querySelectorAll('#flame rect')].map(r => r.dataset.name).join('|')")
        assert "app.py" not in names and "(/" in names, names[:300]
        # Click to zoom: the clicked bar spans the whole width.
        b.evaluate("document.getElementById('frames-python').click()")
        b.evaluate("[...document.querySelectorAll('#flame rect')].find(r => r.dataset.name.endsWith(' main'))"
                   ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
        assert "zoomed to" in b.evaluate("document.getElementById('flame-crumbs').textContent")
        w = b.evaluate("+document.querySelector('#flame').getAttribute('width')")
        zw = b.evaluate("+[...document.querySelectorAll('#flame rect')].find(r => r.dataset.name.endsWith(' main'))"
                        ".getAttribute('width')")
        assert abs(w - zw) < 1, (w, zw)
        # The run's own timeline is plotted, a point per point of its JSON;
        # what the report does not hold is said, not drawn.
        with open(self.files["json"]) as f:
            points = json.load(f)["timeline"]
        points = points.get("points", points) if isinstance(points, dict) else points
        assert len(points) >= 2, points
        n = b.evaluate("+(document.querySelector('#timeline path.series.committed') || "
                       "{dataset: {points: 0}}).dataset.points")
        assert n == len(points), (n, len(points))
        # ... and so is its own address space, a cell per cell of its grid.
        with open(self.files["json"]) as f:
            grid = json.load(f)["address_space_map"]["grid"]
        cells = sum(len(r["cells"]) for r in grid["rows"] if "cells" in r)
        assert self.count("#addrmap rect.cell") == cells > 0, cells
        text = b.evaluate("document.body.innerText")
        assert "Memory over time (the timeline): not recorded" not in text, text[:2000]
        assert "No allocation failed" in text
        assert self.count("#classes tbody tr") > 3 and self.count("#held-bar div") > 1
        assert b.errors() == [], b.errors()

    def test_page_with_every_section(self):
        with open(self.files["json"]) as f:
            d = json.load(f)
        with open(FIXTURE) as f:
            d.update(json.load(f))
        d["from_black_box"] = {"signal": 9, "signal_name": "SIGKILL", "exit_status": None,
                               "record_age_seconds": 0}
        # A frame text that would end the page's <script> if not escaped.
        d["peak"]["top"][0]["stack"][0] += " </script><b>x</b>"
        with open(self.files["html"]) as f:
            html = f.read()
        head, rest = html.split('id="ebb-data">\n', 1)
        tail = rest.split("</script>", 1)[1]
        page = os.path.join(self.tmp.name, "every.html")
        with open(page, "w") as f:
            f.write(head + 'id="ebb-data">\n' + json.dumps(d).replace("<", "\\u003c") + "\n</script>" + tail)
        b = self.load(page)
        assert b.errors() == [], b.errors()
        for series in ("live", "committed", "rss", "limit"):
            n = b.evaluate("+(document.querySelector('#timeline path.series.%s') || {dataset: {points: 0}})"
                           ".dataset.points" % series)
            assert n == len(d["timeline"]), (series, n)
        assert self.count("#flame rect[data-bytes]") > 3
        assert "</script><b>x</b>" in b.evaluate(
            "[...document.querySelectorAll('#flame rect')].map(r => r.dataset.name).join('|')")
        assert self.count("#heap-map svg.heapmap") == 2
        pools = sum(len(a["pools"]) for a in d["heap_map"]["arenas"] + d["heap_map_peak"]["arenas"])
        assert self.count("#heap-map rect.pool") == pools
        assert self.count("#heap-map rect.pool.purged") > 0 and self.count("#heap-map rect.free-slot") > 0
        cells = sum(len(r["cells"]) for r in d["address_space_map"]["grid"]["rows"] if "cells" in r)
        assert self.count("#addrmap rect.cell") == cells > 0
        assert self.count("#address-space tbody tr") == len(d["address_space_map"]["free"]["largest"])
        text = b.evaluate("document.body.innerText")
        assert "Killed by SIGKILL (signal 9)" in text, text[:500]
        assert "not recorded" not in text.split("Top allocation sites")[0], text[:3000]
        assert b.errors() == [], b.errors()

    def test_page_from_the_black_box(self):
        with tempfile.TemporaryDirectory() as tmp:
            files, args = report_args(tmp)
            p = run(tmp, args, prog_args=["kill"])
            assert p.returncode == 128 + signal.SIGKILL, p.stderr
            b = self.load(files["html"])
            assert b.errors() == [], b.errors()
            assert self.count("#flame rect[data-bytes]") > 3
            assert "Killed by SIGKILL" in b.evaluate("document.getElementById('verdict').innerText")

    def test_a_broken_page_is_seen(self):
        """The test's own check: a page whose data does not parse logs an
        error, and the browser test sees it."""
        with open(self.files["html"]) as f:
            html = f.read()
        page = os.path.join(self.tmp.name, "broken.html")
        with open(page, "w") as f:
            f.write(html.replace('id="ebb-data">\n{', 'id="ebb-data">\n{,', 1))
        b = self.browser
        b.events.clear()
        b.load("file://" + page)
        assert any("could not be read" in e or "JSON" in e for e in b.errors()), b.errors()


if __name__ == "__main__":
    unittest.main()
