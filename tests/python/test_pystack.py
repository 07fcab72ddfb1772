"""Python stacks in heap-profile samples, and MemoryError at the limit, for
programs that never import ebb (src/front/pyframes.c, pymemerror.c).

Each test runs a small script file in a fresh interpreter (the one running
the tests: tests/python/versions.sh runs this file under every CPython 3.8
to 3.13 present), reached one of three ways: `ebb run` ("run"), libebb.so
preloaded with PYTHONMALLOC=malloc ("preload"), or `import ebb;
ebb.install()` before the script runs ("install", the extension's own copy
of ebb).  The script asks for a report by sending itself EBB_REPORT_SIGNAL
(the install way: the harness calls ebb.report), and the test reads the
JSON report's sites."""
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import LIB, TOOL, child_env  # noqa: E402

# Appended to every script: write a report now (EBB_REPORT_SIGNAL) and wait
# until the reporter thread has written it.
REPORT_TAIL = """
import os as _os, signal as _signal, time as _time
def _report_now():
    path = _os.environ["EBB_REPORT"]
    _os.kill(_os.getpid(), _signal.SIGUSR1)
    for _ in range(800):
        if _os.path.exists(path):
            with open(path) as f:
                if f.read().endswith("\\n"):
                    return
        _time.sleep(0.025)
    raise SystemExit("no report in %s" % path)
_report_now()
"""

# The install way: the extension's copy of ebb serves the script, and its
# report is taken by the harness once the script has run.
INSTALL_HARNESS = """
import json, os, runpy, sys, ebb
assert ebb.install() is True
g = runpy.run_path(sys.argv[1], run_name="__main__")
with open(os.environ["EBB_REPORT"], "w") as f:
    f.write(json.dumps(ebb.report("json")) + "\\n")
"""

WAYS = ("run", "preload", "install")


def line_of(script, marker):
    """The 1-based line of script that carries `# <marker>`."""
    for i, line in enumerate(script.splitlines(), 1):
        if line.rstrip().endswith("# " + marker):
            return i
    raise AssertionError("no marker %s" % marker)


def run_script(script, way, directory=None, extra_env=None, args=(), tail=True):
    """Run script (a file script.py in a new directory, or in `directory`)
    the given way, from its directory; returns (CompletedProcess, report or
    None, script text)."""
    script = textwrap.dedent(script)
    d = directory or tempfile.mkdtemp(prefix="ebb-pystack-")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "script.py")
    report = os.path.join(d, "report.json")
    with open(path, "w") as f:
        f.write(script + (REPORT_TAIL if tail and way != "install" else ""))
    env = {"EBB_REPORT": report, "EBB_REPORT_FORMAT": "json", "EBB_REPORT_SIGNAL": "USR1"}
    env.update(extra_env or {})
    if way == "run":
        cmd = [TOOL, "run", *args, "--", sys.executable, "script.py"]
    elif way == "preload":
        env.update(LD_PRELOAD=LIB, PYTHONMALLOC="malloc")
        cmd = [sys.executable, "script.py"]
    elif way == "install":
        cmd = [sys.executable, "-c", INSTALL_HARNESS, "script.py"]
    else:
        raise ValueError(way)
    p = subprocess.run(cmd, cwd=d, env=child_env(env), capture_output=True, text=True,
                       timeout=180)
    assert p.returncode == 0, "child failed (%d, %s)\n--- stdout\n%s\n--- stderr\n%s" % (
        p.returncode, way, p.stdout, p.stderr)
    rep = None
    if os.path.exists(report):
        with open(report) as f:
            rep = json.loads(f.readline())
    return p, rep, script


def frame_name(frame):
    """'/tmp/x/script.py:12 inner' -> 'script.py:12 inner'."""
    return frame.rsplit("/", 1)[-1]


class StackTest(unittest.TestCase):
    SCRIPT = """
        def inner(n):
            return [bytearray(1000) for i in range(n)]  # inner
        def outer():
            return inner(100000)  # outer
        keep = outer()  # module
    """

    def check_top_site(self, rep, script, way):
        inner, outer = line_of(script, "inner"), line_of(script, "outer")
        top = rep["sites"]["top"][0]
        assert top["live_bytes"] > 50 << 20, (way, top)
        names = [frame_name(f) for f in top["stack"]]
        # 3.12 inlines comprehensions (PEP 709): before, the innermost frame
        # is the comprehension's, on the same line.
        if names and names[0] == "script.py:%d <listcomp>" % inner:
            names = names[1:]
        assert names[:3] == ["script.py:%d inner" % inner, "script.py:%d outer" % outer,
                             "script.py:%d <module>" % line_of(script, "module")], (way, top)

    def test_site_names_the_line_and_its_caller(self):
        for way in WAYS:
            with self.subTest(way=way):
                p, rep, script = run_script(self.SCRIPT, way)
                self.check_top_site(rep, script, way)

    def test_long_file_names_keep_their_end(self):
        d = os.path.join(tempfile.mkdtemp(prefix="ebb-pystack-"), "a-directory-with-a-long-name",
                         "and-another-one-below-it")
        p, rep, script = run_script(self.SCRIPT, "run", directory=d)
        top = rep["sites"]["top"][0]
        if sys.version_info >= (3, 9):  # 3.8 names __main__'s file as given
            want = "..." + os.path.join(d, "script.py")[-48:] + ":%d " % line_of(script, "inner")
            assert any(f.startswith(want) for f in top["stack"]), (want, top)
        else:
            self.check_top_site(rep, script, "run")

    def test_sampling_without_stacks_when_asked(self):
        p, rep, script = run_script(self.SCRIPT, "run", extra_env={"EBB_PYTHON_STACKS": "0"})
        assert all(not s["stack"] for s in rep["sites"]["top"]), rep["sites"]["top"]

    def test_a_python_thread_has_its_own_stack(self):
        script = """
            import threading
            def worker():
                global kept
                kept = [bytearray(1000) for i in range(100000)]  # worker
            t = threading.Thread(target=worker)
            t.start()
            t.join()
        """
        for way in ("run", "preload"):
            with self.subTest(way=way):
                p, rep, script = run_script(script, way)
                line = line_of(script, "worker")
                top = rep["sites"]["top"][0]
                names = [frame_name(f) for f in top["stack"]]
                assert top["live_bytes"] > 50 << 20, top
                assert "script.py:%d worker" % line in names[:2], top
                # The thread's outer frames are threading.py's, not the
                # main thread's module code.
                assert any(n.startswith("threading.py:") for n in names), top
                assert not any(n.endswith(" <module>") for n in names), top

    def test_c_code_and_threads_without_the_gil_get_no_python_stack(self):
        # ctypes calls C with the GIL released; pthread_create with malloc as
        # the start routine runs malloc(arg) on a thread Python never saw.
        script = """
            import ctypes
            libc = ctypes.CDLL(None)
            libc.malloc.restype = ctypes.c_void_p
            libc.malloc.argtypes = [ctypes.c_size_t]
            libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
            MiB = 1 << 20
            unlocked = [libc.malloc(MiB) for i in range(64)]
            start = ctypes.cast(libc.malloc, ctypes.c_void_p)
            threaded = []
            for i in range(64):
                tid = ctypes.c_ulong()
                assert libc.pthread_create(ctypes.byref(tid), None, start, ctypes.c_void_p(MiB)) == 0
                out = ctypes.c_void_p()
                assert libc.pthread_join(tid, ctypes.byref(out)) == 0
                threaded.append(out.value)
            assert all(unlocked) and all(threaded)
            for b in unlocked + threaded:
                libc.memset(b, 1, MiB)
            held = [bytearray(1000) for i in range(40000)]  # held
        """
        for way in ("run", "preload"):
            with self.subTest(way=way):
                p, rep, script = run_script(script, way)
                big = [s for s in rep["sites"]["top"] if s["live_bytes"] >= 24 << 20]
                bare = [s for s in big if not s["stack"]]
                with_stack = [s for s in big if s["stack"]]
                # 128 blocks of 1 MiB, about 110 of them sampled, in the two
                # stackless sites; the 40 MB the script held under the GIL
                # in one with its line.
                assert len(bare) == 2 and sum(s["live_bytes"] for s in bare) > 96 << 20, big
                assert len(with_stack) == 1, big
                held = "script.py:%d " % line_of(script, "held")
                assert frame_name(with_stack[0]["stack"][0]).startswith(held), with_stack


class MemoryErrorTest(unittest.TestCase):
    SCRIPT = """
        try:
            bytearray(200 << 20)
        except MemoryError as e:
            first = str(e)
        else:
            raise AssertionError("no MemoryError at the limit")
        assert first.startswith("ebb memory limit of 64.0 MiB reached ("), first
        assert first.endswith(" committed, 200.0 MiB requested)"), first
        keep = []
        try:
            while True:
                keep.append(bytes(1 << 20))
        except MemoryError as e:
            assert "ebb memory limit of 64.0 MiB" in str(e), str(e)
        del keep[:]
        try:
            raise MemoryError("mine")
        except MemoryError as e:
            assert str(e) == "mine", str(e)
        print("ok")
    """

    def test_memory_error_names_the_limit_without_import(self):
        env = {"EBB_REPORT": "off"}
        for way, args, extra in (("run", ("--limit", "64M"), {}),
                                 ("preload", (), {"EBB_LIMIT": "64M"})):
            with self.subTest(way=way):
                p, _, _ = run_script(self.SCRIPT, way, args=args, tail=False,
                                     extra_env=dict(env, **extra))
                assert p.stdout.strip() == "ok", p.stdout

    def test_no_limit_no_message(self):
        # A MemoryError ebb did not cause (a request no allocator can meet,
        # without a limit) keeps CPython's own empty message.
        p, _, _ = run_script("""
            try:
                bytearray(1 << 62)
            except MemoryError as e:
                assert str(e) == "", str(e)
            print("ok")
        """, "run", tail=False)
        assert p.stdout.strip() == "ok", p.stdout


if __name__ == "__main__":
    unittest.main()
