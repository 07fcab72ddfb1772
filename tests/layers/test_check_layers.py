"""The layer check fails when it should: a copy of src/ with a lower layer
calling an upper one, or with a cycle through four files, is refused, with
the files named; src/ as it is passes."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CHECK = os.path.join(HERE, "check_layers.py")


def run_check(root, *extra):
    return subprocess.run([sys.executable, CHECK, "--root", root, *extra],
                          capture_output=True, text=True, timeout=600)


class LayerCheckTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ebb-layers-")
        for d in ("src", "include"):
            shutil.copytree(os.path.join(ROOT, d), os.path.join(self.tmp, d))

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def append(self, path, code):
        with open(os.path.join(self.tmp, path), "a") as f:
            f.write("\n" + code + "\n")

    def test_the_tree_as_it_is_passes(self):
        p = run_check(self.tmp, "--release-only")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("no upward call", p.stdout)

    def test_the_mechanism_calling_policy_fails(self):
        # A pool that gives memory back by calling ebb_collect (policy/purge.c).
        self.append("src/core/pool.c",
                    "void ebb__pool_collect_too(void);\n"
                    "void ebb__pool_collect_too(void) { ebb_collect(0); }")
        p = run_check(self.tmp, "--release-only")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("upward: src/core/pool.c (core) calls src/policy/purge.c (policy): "
                      "ebb_collect", p.stdout)

    def test_the_os_layer_calling_a_diagnosis_fails(self):
        self.append("src/os/linux.c",
                    "extern void ebb__diag(const char *fmt, ...);\n"
                    "void ebb__os_say(void);\n"
                    "void ebb__os_say(void) { ebb__diag(\"hello\\n\"); }")
        p = run_check(self.tmp, "--release-only")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("upward: src/os/linux.c (os) calls src/base/diag.c (base)", p.stdout)

    def test_a_cycle_of_four_files_fails(self):
        # check -> stats -> blackbox -> report (already) -> check.
        self.append("src/insight/check.c",
                    "void ebb__x_check(void);\nvoid ebb__x_check(void) { ebb_stats_print(); }")
        self.append("src/insight/stats.c",
                    "void ebb__x_stats(void);\n"
                    "void ebb__x_stats(void) { ebb__blackbox_tick_slow(); }")
        self.append("src/insight/report.c",
                    "void ebb__x_report(void);\n"
                    "void ebb__x_report(void) { (void)ebb__check_locked(); }")
        p = run_check(self.tmp, "--release-only")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"cycle of [4-9] files")
        for name in ("check.c", "stats.c", "blackbox.c", "report.c"):
            self.assertIn("src/insight/" + name, p.stdout)

    def test_a_file_that_does_not_compile_alone_fails(self):
        # Use a function declared nowhere that file includes.
        self.append("src/core/budget.c",
                    "int ebb__budget_alone(void);\n"
                    "int ebb__budget_alone(void) { return ebb__not_declared_anywhere(); }")
        p = run_check(self.tmp, "--release-only")
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("src/core/budget.c does not compile on its own", p.stderr)


if __name__ == "__main__":
    unittest.main()
