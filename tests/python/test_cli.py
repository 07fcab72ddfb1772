"""`ebb run`, the launcher: options, errors, exit status, children."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import LIB, TOOL, child_env  # noqa: E402


def ebb(*args, **kw):
    return subprocess.run([TOOL, *args], env=child_env(kw.pop("env", None)), capture_output=True,
                          text=True, timeout=60, **kw)


class CliTest(unittest.TestCase):
    def test_help_and_version(self):
        p = ebb("--help")
        assert p.returncode == 0 and "run [options]" in p.stdout
        p = ebb("run", "--help")
        assert p.returncode == 0 and "--no-children" in p.stdout and "--limit" in p.stdout
        p = ebb("--version")
        assert p.returncode == 0 and p.stdout.startswith("ebb ")

    def test_usage_errors_are_clear(self):
        cases = [
            (["run"], "no program given"),
            (["run", "--bogus", "true"], "unknown option '--bogus'"),
            (["run", "--purge-delay", "soon", "true"], "--purge-delay soon"),
            (["run", "--limit", "lots", "true"], "--limit lots"),
            (["frobnicate"], "unknown command 'frobnicate'"),
            ([], "usage: ebb"),
        ]
        for args, words in cases:
            p = ebb(*args)
            assert p.returncode == 2, (args, p.returncode)
            assert words in p.stderr, (args, p.stderr)

    def test_option_without_its_value(self):
        for opt in ("--limit", "--purge-delay"):
            p = ebb("run", opt)
            assert p.returncode == 2, (opt, p.returncode)
            assert "option '%s' needs a value" % opt in p.stderr, (opt, p.stderr)
            assert "unknown option" not in p.stderr, (opt, p.stderr)

    def test_values_checked_by_the_library_rules(self):
        # The tool accepts a value of --limit or --purge-delay exactly when
        # the library would read it from EBB_LIMIT or EBB_PURGE_DELAY_MS, so a
        # value every child would refuse is refused once, by the tool.
        cases = {
            ("--purge-delay", "EBB_PURGE_DELAY_MS"): [
                "0", "-1", "250", "86400000", "86400001", "99999999999", "-2", "+5", " 5",
                "5ms", "1K", "soon", ""],
            ("--limit", "EBB_LIMIT"): [
                "1", "4095K", "4M", "0", "1G", "50%", "0%", "101%", "auto", "lots", ""],
        }
        for (opt, var), values in cases.items():
            for value in values:
                lib = subprocess.run(["/bin/true"], env=child_env({"LD_PRELOAD": LIB, var: value}),
                                     capture_output=True, text=True, timeout=60)
                library_takes = lib.returncode == 0 and "ignoring %s=" % var not in lib.stderr
                p = ebb("run", "--no-blackbox", opt, value, "/bin/true")
                tool_takes = p.returncode == 0
                assert tool_takes == library_takes, (opt, value, p.stderr, lib.stderr)
                if not tool_takes:
                    assert p.returncode == 2 and ("%s %s:" % (opt, value)) in p.stderr, p.stderr

    def test_run_directory_removed_when_stderr_is_gone(self):
        # The tool's last words (how the program died) go to a pipe nobody
        # reads: it must still remove its run directory, and exit as the
        # program died, not die of SIGPIPE.
        with tempfile.TemporaryDirectory() as tmp:
            r, w = os.pipe()
            os.close(r)
            try:
                p = subprocess.run([TOOL, "run", "sh", "-c", "kill -TERM $$"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=w, timeout=60,
                                   env=child_env({"TMPDIR": tmp, "XDG_RUNTIME_DIR": ""}))
            finally:
                os.close(w)
            assert p.returncode == 128 + signal.SIGTERM, p.returncode
            assert os.listdir(tmp) == [], os.listdir(tmp)
        # and the program keeps the SIGPIPE disposition it would have had
        p = ebb("run", "sh", "-c", "kill -PIPE $$")
        assert p.returncode == 128 + signal.SIGPIPE, (p.returncode, p.stderr)

    def test_missing_program_and_library(self):
        p = ebb("run", "/no/such/program")
        assert p.returncode == 127 and "cannot run '/no/such/program'" in p.stderr
        p = ebb("run", "true", env={"EBB_LIB": "/no/such/libebb.so"})
        assert p.returncode == 2 and "EBB_LIB" in p.stderr

    def test_exit_status_passes_through(self):
        for code in (0, 1, 7, 255):
            assert ebb("run", "sh", "-c", "exit %d" % code).returncode == code

    def test_death_by_signal_in_words(self):
        p = ebb("run", "sh", "-c", "kill -TERM $$")
        assert p.returncode == 128 + signal.SIGTERM
        assert "killed by signal 15 (SIGTERM" in p.stderr
        p = ebb("run", "sh", "-c", "kill -KILL $$")
        assert p.returncode == 128 + signal.SIGKILL
        assert "killed by signal 9 (SIGKILL" in p.stderr and "out-of-memory" in p.stderr

    def test_program_runs_on_ebb_with_python_domains(self):
        code = ("import ctypes, sys; lib = ctypes.CDLL(None); "
                "print(lib.ebb_python_domains(), sys.getallocatedblocks())")
        p = ebb("run", sys.executable, "-c", code)
        assert p.returncode == 0, p.stderr
        assert p.stdout.split() == ["1", "0"]  # every domain is ebb's: pymalloc holds nothing
        p = ebb("run", "--no-python", sys.executable, "-c", code)
        domains, blocks = p.stdout.split()
        assert domains == "0" and int(blocks) > 1000  # pymalloc serves objects

    def test_children_inherit_unless_no_children(self):
        show = "echo \"[$LD_PRELOAD][$EBB_PYTHON]\""
        p = ebb("run", "sh", "-c", show)
        assert p.stdout.strip() == "[%s][1]" % os.path.realpath(LIB)
        p = ebb("run", "--no-children", "sh", "-c", show)
        assert p.stdout.strip() == "[][]"
        # Another preloaded library stays.
        p = ebb("run", "--no-children", "sh", "-c", show, env={"LD_PRELOAD": "libc.so.6"})
        assert p.stdout.strip() == "[libc.so.6][]", p.stdout
        # A Python grandchild is on ebb, or not.
        code = ("import subprocess, sys; print(subprocess.run([sys.executable, '-c', "
                "'import ctypes; print(hasattr(ctypes.CDLL(None), \"ebb_malloc\"))'], "
                "capture_output=True, text=True).stdout.strip())")
        assert ebb("run", sys.executable, "-c", code).stdout.strip() == "True"
        assert ebb("run", "--no-children", sys.executable, "-c", code).stdout.strip() == "False"

    def test_options_reach_the_library(self):
        code = ("import ctypes; lib = ctypes.CDLL(None); lib.ebb_get_limit.restype = ctypes.c_size_t; "
                "print(lib.ebb_get_limit())")
        p = ebb("run", "--limit", "512M", sys.executable, "-c", code)
        assert p.stdout.strip() == str(512 << 20)
        p = ebb("run", "--limit", "64M", sys.executable, "-c", "bytearray(100 << 20)")
        assert p.returncode == 1 and "MemoryError" in p.stderr
        p = ebb("run", "--stats", "true")
        assert "ebb 0." in p.stderr and "committed" in p.stderr
        p = ebb("run", "--purge-delay", "-1", "sh", "-c", "echo $EBB_PURGE_DELAY_MS")
        assert p.stdout.strip() == "-1"

    def test_signals_sent_to_the_tool_reach_the_program(self):
        p = subprocess.Popen([TOOL, "run", sys.executable, "-c",
                              "import signal, sys, time\n"
                              "signal.signal(signal.SIGTERM, lambda *a: sys.exit(42))\n"
                              "print('ready', flush=True)\n"
                              # short sleeps: a signal that lands between
                              # CPython's check and its sleep waits only
                              # for the next check, not for the whole sleep
                              "for _ in range(300): time.sleep(0.1)\n"],
                             env=child_env(), stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 42
        p.stdout.close()


    # A program that holds about 100 MiB, then dies as the OOM killer kills.
    HOG = ("import os\n"
           "x = [bytearray(1000) for i in range(100000)]\n"
           "os.kill(os.getpid(), 9)\n")

    def test_sigkill_prints_the_black_box(self):
        with tempfile.TemporaryDirectory() as tmp:
            p = ebb("run", sys.executable, "-c", self.HOG,
                    env={"TMPDIR": tmp, "XDG_RUNTIME_DIR": ""})
            assert p.returncode == 128 + signal.SIGKILL, p.stderr
            m = re.search(r"ebb held ([0-9.]+) MiB committed .*, ([0-9.]+) MiB of it live", p.stderr)
            assert m, p.stderr
            assert 95 <= float(m.group(2)) <= float(m.group(1)) < 200, m.groups()
            assert "its last record:" in p.stderr and "\n  1024 B: " in p.stderr, p.stderr
            assert os.listdir(tmp) == [], "the run directory is removed"
        p = ebb("run", "--no-blackbox", sys.executable, "-c", self.HOG)
        assert p.returncode == 128 + signal.SIGKILL and "ebb held" not in p.stderr, p.stderr

    # Grows to about 100 MiB, frees it, holds 10 MiB, then is killed.
    SHRUNK = ("import os\n"
              "x = [bytearray(1000) for i in range(100000)]\n"
              "del x\n"
              "y = [bytearray(1000) for i in range(10000)]\n"
              "os.kill(os.getpid(), 9)\n")

    def test_sigkill_box_names_the_peak(self):
        """After a kill, the black box still says what was live at the
        peak, though it was freed before the end (insight/peak.c)."""
        p = ebb("run", sys.executable, "-c", self.SHRUNK)
        assert p.returncode == 128 + signal.SIGKILL, p.stderr
        m = re.search(r"at the peak committed ([0-9.]+) MiB at \S+; the sites below are what "
                      r"held ~([0-9.]+) MiB live then:\n +1\. ~([0-9.]+) MiB in ", p.stderr)
        assert m, p.stderr
        committed, held, top = map(float, m.groups())
        # held is the sampled estimate of ~97 MiB live at the peak: 82.9 to
        # 114 in 30 runs, and 79.4 once (a CI run failed on ">= 80"); what
        # it must tell apart is the ~10 MiB live at the end.
        assert committed >= 95 and held >= 60 and top >= 50, m.groups()

    def test_native_shows_every_frame(self):
        """--native (EBB_REPORT_NATIVE=1): a site's native frames on lines of
        their own; by default one line a site, Python's frames."""
        code = ("x = [bytearray(1000) for i in range(20000)]\n"
                "import ctypes; ctypes.CDLL(None).ebb_report(1, 0)\n")
        plain = ebb("run", sys.executable, "-c", code).stdout
        native = ebb("run", "--native", sys.executable, "-c", code).stdout
        assert re.search(r"\n  1\. ~[0-9.]+ [KMG]iB in ~[0-9]+ blocks  <string>:1 ", plain), plain
        assert "\n       in " not in plain and "EBB_REPORT_NATIVE=1" in plain, plain
        assert "\n       in " in native and "\n       <- " in native, native
        assert "allocated in all" in native, native

    def test_blackbox_command(self):
        with tempfile.TemporaryDirectory() as tmp:
            box = os.path.join(tmp, "box")
            p = subprocess.run([sys.executable, "-c", "x = [bytearray(4000) for i in range(5000)]"],
                               env=child_env({"LD_PRELOAD": LIB, "EBB_BLACKBOX": box}), timeout=60)
            assert p.returncode == 0
            p = ebb("blackbox", box)
            assert p.returncode == 0, p.stderr
            assert p.stdout.startswith("black box of pid ") and "\nmemory      committed " in p.stdout, p.stdout
            junk = os.path.join(tmp, "junk")
            with open(junk, "w") as f:
                f.write("not a box\n")
            p = ebb("blackbox", junk)
            assert p.returncode == 1 and "not an ebb black box" in p.stderr, p.stderr
            p = ebb("blackbox")
            assert p.returncode == 2 and "usage: ebb blackbox FILE" in p.stderr


if __name__ == "__main__":
    unittest.main()
