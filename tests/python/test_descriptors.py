"""ebb's own threads open no file while the program runs.

A descriptor that one of ebb's threads opens, even for microseconds, shows
in the program's table while the program's own threads may be listing it
(CPython's fd_status.py child in test_subprocess asserts that only the
descriptors it passed are open) or dup2ing onto every number they found
free (multiprocessing's test_large_fd_transfer: ebb then read the test's
socket and closed it).  Under ebb.install() the first failed in CI and
the second here, when the purger read /proc/self/stat before every sleep and /proc/self/statm for
each timeline point.  Now those reads happen on ebb's threads only when the
program's main thread has left (pthread_exit) or a consumer follows the run
(`ebb top`, report files, the black box): none of which a plain run has.

strace -f records every open of a busy run with the thread that made it:
none may come from a thread other than the main one (the purger runs all
along: the run frees tens of MiB, over and over, for a second)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from helpers import LIB, TOOL, child_env

BUSY = """
import time
end = time.monotonic() + 1.2
while time.monotonic() < end:
    blocks = [bytearray(256 << 10) for _ in range(120)]  # 30 MiB, freed at once
    del blocks
    time.sleep(0.02)  # the purger gives it back meanwhile
"""

OPEN = re.compile(r'^(\d+)\s+(?:openat|open)\((?:AT_FDCWD, )?"([^"]*)"')


class OwnThreadsOpenNothingTest(unittest.TestCase):
    def setUp(self):
        if shutil.which("strace") is None:
            self.skipTest("strace is not installed (scripts/deps.sh test installs it)")
        probe = subprocess.run(["strace", "-f", "-qq", "-e", "trace=openat", "-o", os.devnull,
                                "true"], capture_output=True, text=True)
        if probe.returncode != 0:
            self.skipTest("strace cannot trace here (ptrace refused?): " + probe.stderr.strip()[-200:])

    def traced_opens(self, cmd, env):
        """Every open of cmd and its children, as strace -f lines."""
        with tempfile.TemporaryDirectory() as d:
            log = os.path.join(d, "strace.log")
            p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", log] + cmd,
                               env=env, capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr[-2000:])
            with open(log) as f:
                lines = f.read().splitlines()
        self.assertTrue(lines, "strace recorded nothing")
        return lines

    def opens_by_other_threads(self, cmd, env):
        lines = self.traced_opens(cmd, env)
        main = lines[0].split()[0]
        seen_proc = any(m and m.group(2).startswith("/proc/") for m in map(OPEN.match, lines))
        others = [line for line in lines
                  if (m := OPEN.match(line)) and m.group(1) != main]
        return others, seen_proc

    def test_install(self):
        code = "import ebb\nassert ebb.install() is True\n" + BUSY
        others, _ = self.opens_by_other_threads([sys.executable, "-c", code], child_env())
        self.assertEqual(others, [], "ebb's threads opened files")

    def test_preload(self):
        env = child_env({"LD_PRELOAD": LIB, "PYTHONMALLOC": "malloc"})
        others, _ = self.opens_by_other_threads([sys.executable, "-c", BUSY], env)
        self.assertEqual(others, [], "ebb's threads opened files")

    def test_ebb_run_reads_rss_at_most_once_a_second(self):
        """Under `ebb run` the black box and the status page follow the run,
        so RSS is read (/proc/self/statm opened) there: at most once a
        second, whatever the purger's wakes and the new peaks (the library
        before: 151 reads in 1.3 s here, most by the box's brief at every
        new peak, on the program's thread)."""
        t0 = time.monotonic()
        lines = self.traced_opens([TOOL, "run", sys.executable, "-c", BUSY], child_env())
        wall = time.monotonic() - t0
        reads = [line for line in lines if "/proc/self/statm" in line]
        self.assertLessEqual(len(reads), int(wall) + 2,
                             "%d reads of statm in %.1f s:\n%s" % (len(reads), wall,
                                                                    "\n".join(reads[:20])))

    def test_ebb_run_fork_children_make_their_page_themselves(self):
        """Under `ebb run` a fork child makes its own status page for `ebb
        top` (and its black box): on its own thread, at its first allocation
        slow path, not on its purger's first pass (there it broke
        multiprocessing's test_large_fd_transfer, whose child dup2s onto
        every number it found free: EBUSY, in a few runs in a hundred)."""
        code = """
import os, time
for k in range(3):
    pid = os.fork()
    if pid == 0:
        end = time.monotonic() + 0.4
        while time.monotonic() < end:
            blocks = [bytearray(256 << 10) for _ in range(40)]
            del blocks
            time.sleep(0.01)
        os._exit(0)
    os.waitpid(pid, 0)
"""
        with tempfile.TemporaryDirectory() as d:
            log = os.path.join(d, "strace.log")
            p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat,clone,clone3",
                                "-o", log, TOOL, "run", sys.executable, "-c", code],
                               env=child_env(), capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr[-2000:])
            with open(log) as f:
                lines = f.read().splitlines()
        threads = set()  # tids of threads, not processes' first threads
        for line in lines:
            m = re.search(r"clone3?\(.*CLONE_THREAD.*(?:= |parent_tid=\[)(\d+)", line)
            if m:
                threads.add(m.group(1))
        pages = [line for line in lines if (m := OPEN.match(line)) and "/ebb-" in m.group(2)
                 and m.group(2).startswith("/dev/shm/")]
        self.assertGreaterEqual(len(pages), 4, "the parent's page and the 3 children's:\n" +
                                "\n".join(pages))
        # RSS, for the page and the box: at most once a second (the test
        # above), and not in a child's first second (timeline.c).
        by_threads = [line for line in lines
                      if (m := OPEN.match(line)) and m.group(1) in threads
                      and m.group(2) != "/proc/self/statm"]
        self.assertEqual(by_threads, [], "ebb's threads opened files")

    def test_the_check_sees_a_thread_that_opens(self):
        """The check itself: a thread of the program's that opens a file is
        seen."""
        code = BUSY + """
import threading
t = threading.Thread(target=lambda: open("/proc/self/statm").read())
t.start(); t.join()
"""
        env = child_env({"LD_PRELOAD": LIB, "PYTHONMALLOC": "malloc"})
        others, seen_proc = self.opens_by_other_threads([sys.executable, "-c", code], env)
        self.assertTrue(seen_proc)
        self.assertTrue(any("/proc/self/statm" in line for line in others), others)


if __name__ == "__main__":
    unittest.main()
