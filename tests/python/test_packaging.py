"""pip install . works offline (the machine's setuptools), and the package
it installs is complete (the extension, the stub and py.typed) and no more:
the module's test hooks are built only for the tests (`make python`)."""
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import ROOT, child_env  # noqa: E402


class PackagingTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def test_pip_install_offline(self):
        tmp_path = Path(self.tmp.name)
        venv = tmp_path / "venv"
        made = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                              capture_output=True, text=True)
        if made.returncode != 0:
            self.skipTest("no venv module with pip for %s: %s" % (sys.executable, made.stderr[-300:]))
        # Build from a copy, so the checkout gets no build/ or egg-info of pip's.
        src = tmp_path / "src"
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns("build", ".git", "*.egg-info"))
        py = str(venv / "bin" / "python")
        env = child_env({"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        env.pop("PYTHONPATH")
        env.pop("EBB_BUILD_TEST_HOOKS", None)  # what a user runs: no test hooks asked for
        p = subprocess.run([py, "-m", "pip", "install", "--no-build-isolation", "-q", str(src)],
                           capture_output=True, text=True, env=env, timeout=600)
        assert p.returncode == 0, p.stdout + p.stderr
        # Installed, ebb allocates the objects made next; the functions
        # only the tests use (python/test_hooks.c) are not in the module.
        code = textwrap.dedent("""
            import ebb, os
            assert ebb.install()
            live = ebb.stats()["live"]
            x = [str(i) for i in range(9999)]
            assert ebb.stats()["live"] > live + 9999 * 32, (live, ebb.stats()["live"])
            hooks = [n for n in ("_manages", "_raw_stress") if hasattr(ebb._ebb, n)]
            assert not hooks, "test hooks in a plain pip install: %s" % hooks
            d = os.path.dirname(ebb.__file__)
            print(sorted(f for f in os.listdir(d) if not f.startswith("__pycache__")))
        """)
        p = subprocess.run([py, "-c", code], capture_output=True, text=True, env=env, cwd=str(tmp_path))
        assert p.returncode == 0, p.stderr
        files = p.stdout
        for name in ("__init__.py", "__init__.pyi", "py.typed", "_ebb.", "pytest_plugin.py"):
            assert name in files, files
        self.check_pytest_entry_point(py, env, tmp_path)

    def check_pytest_entry_point(self, py, env, tmp_path):
        """Installed, the pytest plugin is found through its pytest11 entry
        point: it says and does nothing in a run that does not use it, and
        a test marked limit_memory works without -p ebb."""
        if subprocess.run([py, "-c", "import pytest"], env=env).returncode != 0:
            return  # no pytest here: test_pytest_plugin.py says so
        tests = tmp_path / "tests"
        tests.mkdir()
        (tests / "test_plain.py").write_text(textwrap.dedent("""
            import ebb
            def test_plain():
                assert not ebb.installed()
        """))
        run = [py, "-m", "pytest", "-p", "no:cacheprovider"]
        p = subprocess.run(run + ["test_plain.py"], capture_output=True, text=True, env=env,
                           cwd=str(tests))
        assert p.returncode == 0, p.stdout + p.stderr
        # pytest lists it among its plugins ("plugins: ebb-0.1.0"), no more
        assert "plugins: ebb-" in p.stdout and "ebb:" not in p.stdout, p.stdout
        (tests / "test_marked.py").write_text(textwrap.dedent("""
            import pytest
            @pytest.mark.limit_memory("4 MB")
            def test_over():
                chunks = [bytearray(1 << 20) for i in range(32)]
        """))
        for named in ([], ["-p", "ebb"]):  # -p ebb names the plugin the entry point loaded
            p = subprocess.run(run + named + ["-rf", "test_marked.py"], capture_output=True,
                               text=True, env=env, cwd=str(tests))
            assert p.returncode == 1, p.stdout + p.stderr
            for text in ("ebb: allocator installed by the plugin", "== ebb report: pid",
                         "FAILED test_marked.py::test_over - MemoryError"):
                assert text in p.stdout, p.stdout



if __name__ == "__main__":
    unittest.main()
