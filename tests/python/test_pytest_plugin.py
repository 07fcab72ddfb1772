"""The pytest plugin (python/ebb/pytest_plugin.py): a test marked
limit_memory fails, with ebb's report, when it goes past its amount, passes
under it, and leaves the limit as it found it; --ebb-report DIR writes a
report per failing test and none for the others; a bad amount is a usage
error; all of it with the plugin installing ebb and under `ebb run`.

Each case runs pytest in a child interpreter on test files written to a
temporary directory.  unittest, so that versions.sh runs it under every
CPython: where the interpreter has no pytest, each case is a named skip."""
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import PYPATH, TOOL, child_env  # noqa: E402

sys.path.insert(0, PYPATH)

HAVE_PYTEST = importlib.util.find_spec("pytest") is not None
NO_PYTEST = "no pytest for %s" % sys.executable

# A test file's cases, by what they do.
OVER = """
    @pytest.mark.limit_memory("8 MB")
    def test_over():
        chunks = []
        for i in range(64):
            chunks.append(bytearray(1 << 20))
"""
UNDER = """
    @pytest.mark.limit_memory("32 MB")
    def test_under():
        chunks = [bytearray(1 << 20) for i in range(8)]
        assert len(chunks) == 8
"""
# Runs after a marked test: the limit is back to what it was.
AFTER = """
    def test_after():
        assert ebb.get_limit() == PREVIOUS, (ebb.get_limit(), PREVIOUS)
        big = bytearray(96 << 20)
        assert len(big) == 96 << 20
"""


@unittest.skipUnless(HAVE_PYTEST, NO_PYTEST)
class PluginTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def pytest(self, body, *args, way="install", ebb_args=(), plugin=True, previous=0,
               conftest=None):
        """Run pytest on a test file made of body (a str or a tuple of
        them, each dedented); returns (exit status, output)."""
        head = "import pytest\nimport ebb\nPREVIOUS = %d\n" % previous
        with open(os.path.join(self.dir, "test_cases.py"), "w") as f:
            parts = body if isinstance(body, tuple) else (body,)
            f.write(head + "".join(textwrap.dedent(part) for part in parts))
        if conftest is not None:
            with open(os.path.join(self.dir, "conftest.py"), "w") as f:
                f.write(textwrap.dedent(conftest))
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA"]
        if plugin:
            cmd += ["-p", "ebb"]
        cmd += list(args)
        if way == "run":
            cmd = [TOOL, "run", *ebb_args, "--"] + cmd
        # Only the plugins asked for: none that this machine happens to have.
        env = child_env({"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
        p = subprocess.run(cmd, cwd=self.dir, env=env, capture_output=True, text=True,
                           timeout=300)
        return p.returncode, p.stdout + p.stderr

    def assert_failed_with_report(self, out, name):
        self.assertIn("FAILED test_cases.py::%s" % name, out)
        self.assertIn("ebb: %s used more memory than limit_memory(" % name, out)
        self.assertIn("== ebb report: pid ", out)
        self.assertIn("== end of ebb report", out)

    # ------------------------------------------------------------------

    def both_ways(self, check):
        for way in ("install", "run"):
            with self.subTest(way=way):
                check(way)

    def test_over_the_limit_fails_with_the_report(self):
        def check(way):
            rc, out = self.pytest((OVER, UNDER, AFTER), way=way)
            self.assertEqual(rc, 1, out)
            self.assert_failed_with_report(out, "test_over")
            self.assertIn("MemoryError: ebb memory limit of", out)
            self.assertIn("an allocation was refused at the test's limit (MemoryError)", out)
            self.assertIn("PASSED test_cases.py::test_under", out)
            self.assertIn("PASSED test_cases.py::test_after", out)
            self.assertIn("1 failed, 2 passed", out)
            mode = "running under ebb run" if way == "run" else "allocator installed by the plugin"
            self.assertIn("\nebb: %s\n" % mode, out)
        self.both_ways(check)

    def test_under_the_limit_passes(self):
        def check(way):
            rc, out = self.pytest((UNDER, AFTER), way=way)
            self.assertEqual(rc, 0, out)
            self.assertIn("2 passed", out)
            self.assertNotIn("== ebb report", out)
        self.both_ways(check)

    def test_previous_limit_restored(self):
        # Under `ebb run --limit 1G` the limit to come back is 1 GiB; the
        # marked tests fail (an exception, an assertion, the limit) or pass.
        body = ("""
            @pytest.mark.limit_memory("4 MB")
            def test_raises():
                raise RuntimeError("boom")

            @pytest.mark.limit_memory(4 << 20)
            def test_asserts():
                assert ebb.get_limit() not in (0, PREVIOUS)
                assert False
        """, OVER, AFTER, UNDER, AFTER.replace("test_after", "test_after_again"))
        rc, out = self.pytest(body, way="run", ebb_args=("--limit", "1G"), previous=1 << 30)
        self.assertEqual(rc, 1, out)
        self.assertIn("3 failed, 3 passed", out)
        self.assertIn("RuntimeError: boom", out)
        rc, out = self.pytest(body)
        self.assertIn("3 failed, 3 passed", out)

    def test_tighter_outer_limit_stays(self):
        body = ("""
            @pytest.mark.limit_memory("1 GiB")
            def test_limited():
                assert ebb.get_limit() == PREVIOUS
                chunks = [bytearray(1 << 20) for i in range(128)]
        """, AFTER.replace("96 << 20", "8 << 20"))
        rc, out = self.pytest(body, way="run", ebb_args=("--limit", "64M"), previous=64 << 20)
        self.assertEqual(rc, 1, out)
        self.assertIn("the limit in force before the test (tighter than the test's)", out)
        self.assertIn("1 failed, 1 passed", out)

    def test_over_without_memory_error(self):
        # The test catches the MemoryError and goes on into ebb's emergency
        # reserve, open since the refusal (and catches the second
        # MemoryError too): committed passes the amount, the peak shows it.
        # 64 MB: the reserve (1/32 of the limit, 2 MiB) is larger than a
        # 1 MiB step, so the next step does not close it again.
        body = """
            @pytest.mark.limit_memory("64 MB")
            def test_caught():
                chunks = []
                for phase in (1, 2):
                    try:
                        while True:
                            chunks.append(bytearray(1 << 20))
                    except MemoryError:
                        pass
                del chunks
        """
        rc, out = self.pytest(body)
        self.assertEqual(rc, 1, out)
        self.assert_failed_with_report(out, "test_caught")
        self.assertIn("past the amount without a MemoryError", out)
        self.assertIn("a new high for the process, so the test's own peak", out)
        self.assertIn("2 request(s) refused at the limit", out)

    def test_expected_memory_error_is_not_a_failure(self):
        body = ("""
            @pytest.mark.xfail(raises=MemoryError, strict=True)
            @pytest.mark.limit_memory("8 MB")
            def test_xfail():
                chunks = [bytearray(1 << 20) for i in range(64)]
        """, AFTER)
        rc, out = self.pytest(body)
        self.assertEqual(rc, 0, out)
        self.assertIn("1 passed, 1 xfailed", out)

    def test_report_dir(self):
        body = (OVER, UNDER, """
            @pytest.mark.parametrize("arg", ["a/b c", "x"])
            def test_fails(arg):
                assert arg == "x"

            def test_passes():
                pass
        """)
        reports = os.path.join(self.dir, "reports")
        rc, out = self.pytest(body, "--ebb-report", reports)
        self.assertEqual(rc, 1, out)
        self.assertIn("2 failed, 3 passed", out)
        self.assertIn("ebb: a report for each failing test in %s" % reports, out)
        names = sorted(os.listdir(reports))
        self.assertEqual(names, ["test_cases.py--test_fails_a_b_c.html",
                                 "test_cases.py--test_fails_a_b_c.json",
                                 "test_cases.py--test_fails_a_b_c.txt",
                                 "test_cases.py--test_over.html",
                                 "test_cases.py--test_over.json",
                                 "test_cases.py--test_over.txt"])
        for base in ("test_cases.py--test_over", "test_cases.py--test_fails_a_b_c"):
            with open(os.path.join(reports, base + ".txt")) as f:
                text = f.read()
            self.assertIn("== ebb report: pid ", text)
            with open(os.path.join(reports, base + ".json")) as f:
                data = json.load(f)
            self.assertEqual(data["schema"], "ebb.report/1")
            # The page: the viewer around the same kind of JSON.
            with open(os.path.join(reports, base + ".html")) as f:
                page = f.read()
            self.assertTrue(page.startswith("<!DOCTYPE html>"), page[:100])
            m = re.search(r'<script type="application/json" id="ebb-data">\n(.*?)</script>', page,
                          re.S)
            self.assertIsNotNone(m, page[:500])
            self.assertEqual(json.loads(m.group(1))["schema"], "ebb.report/1")
        with open(os.path.join(reports, "test_cases.py--test_over.txt")) as f:
            text = f.read()
        self.assertTrue(text.startswith("ebb report for test_cases.py::test_over (failed in "
                                        "call)\nebb: test_over used more memory"), text[:300])
        self.assertIn("failed in call", text)

    def test_bad_marker_is_a_usage_error(self):
        for arg in ('"junk"', '"10 parsecs"', "-1", '"1.5 B"', "1.5", '"8 MB", "again"', ""):
            with self.subTest(arg=arg):
                body = "@pytest.mark.limit_memory(%s)\ndef test_bad():\n    pass\n" % arg
                rc, out = self.pytest(body)
                self.assertEqual(rc, 4, out)
                self.assertIn("test_cases.py::test_bad: limit_memory: ", out)
                self.assertNotIn("Traceback", out)

    def test_inert_unless_used(self):
        # Loaded the way the entry point loads it (not named with -p), the
        # plugin neither installs ebb nor says anything...
        conftest = 'pytest_plugins = ["ebb.pytest_plugin"]\n'
        body = """
            def test_plain():
                assert not ebb.installed()
        """
        rc, out = self.pytest(body, plugin=False, conftest=conftest)
        self.assertEqual(rc, 0, out)
        self.assertNotIn("ebb:", out)
        # ... until a collected test carries the marker.
        rc, out = self.pytest((body.replace("not ", ""), OVER), plugin=False, conftest=conftest)
        self.assertEqual(rc, 1, out)
        self.assertIn("\nebb: allocator installed by the plugin\n", out)
        self.assert_failed_with_report(out, "test_over")


@unittest.skipUnless(HAVE_PYTEST, NO_PYTEST)
class ParseSizeTest(unittest.TestCase):
    def test_sizes(self):
        from ebb.pytest_plugin import parse_size
        for text, n in [("100 MB", 100 * 10**6), ("100MB", 100 * 10**6),
                        ("1.5 GiB", 3 << 29), ("512K", 512 << 10), ("512 kib", 512 << 10),
                        ("2G", 2 << 30), ("7", 7), ("7 B", 7), (" 3 KB ", 3000), (4096, 4096),
                        (0, 0), ("0.5 KiB", 512)]:
            with self.subTest(text=text):
                self.assertEqual(parse_size(text), n)
        for bad in ("junk", "", "MB", "-1 MB", "1e6", "1.5 B", "1 MBB", -1, 1.5, True, None):
            with self.subTest(bad=bad):
                with self.assertRaises(ValueError):
                    parse_size(bad)


if __name__ == "__main__":
    unittest.main()
