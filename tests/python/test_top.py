"""`ebb top` and the status pages it reads (EBB_TOP, src/insight/status.c):
the page's life (private, gone at exit, a stale one cleaned), the tool's
output, the tool driven under a pseudo-terminal, and the timeline in the
JSON report."""
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import LIB, TOOL, child_env, run_python  # noqa: E402

SHM = "/dev/shm"
MAGIC = b"EBBTOP1\n"

# A program that prints its pid, holds about `mb` MiB in small objects,
# and waits for its stdin to close.
HOLDER = ("import os, sys\n"
          "x = [bytearray(1000) for i in range({n})]\n"
          "print(os.getpid(), flush=True)\n"
          "sys.stdin.read()\n")


def page_of(pid):
    return os.path.join(SHM, "ebb-%d-%d" % (os.geteuid(), pid))


def wait_for(cond, timeout=10.0, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def top(*args):
    return subprocess.run([TOOL, "top", *args], env=child_env(), capture_output=True, text=True,
                          timeout=60)


class Holder:
    """A Python program on ebb that holds memory until stopped: through `ebb run`,
    or preloaded with EBB_TOP=1 (way="preload")."""

    def __init__(self, mb=20, way="run", args=()):
        code = HOLDER.format(n=mb * 1000)
        if way == "run":
            cmd = [TOOL, "run", *args, "--", sys.executable, "-c", code]
            env = child_env()
        else:
            cmd = [sys.executable, "-c", code]
            env = child_env({"LD_PRELOAD": LIB, "EBB_TOP": "1", "PYTHONMALLOC": "malloc"})
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.pid = int(self.proc.stdout.readline())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.stop()
        except subprocess.TimeoutExpired:
            for pid in (self.pid, self.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()


@unittest.skipUnless(os.path.isdir(SHM), "no /dev/shm here")
class PageTest(unittest.TestCase):
    def test_page_is_private_and_goes_at_exit(self):
        with Holder() as h:
            path = page_of(h.pid)
            self.assertTrue(wait_for(lambda: os.path.exists(path)), "no page at %s" % path)
            st = os.lstat(path)
            self.assertEqual(st.st_mode & 0o7777, 0o600)
            self.assertEqual(st.st_uid, os.geteuid())
            self.assertTrue(os.path.isfile(path) and not os.path.islink(path))
            with open(path, "rb") as f:
                head = f.read(24)
            self.assertEqual(head[:8], MAGIC)
            self.assertEqual(struct.unpack("<q", head[16:24])[0], h.pid)
            self.assertEqual(h.stop(), 0)
        self.assertFalse(os.path.exists(path), "the page stays after a normal exit")

    def test_no_top_publishes_nothing(self):
        with Holder(args=("--no-top",)) as h:
            time.sleep(0.3)
            self.assertFalse(os.path.exists(page_of(h.pid)))

    def test_stale_page_after_sigkill_is_cleaned_by_top(self):
        with Holder(way="preload") as h:
            path = page_of(h.pid)
            self.assertTrue(wait_for(lambda: os.path.exists(path)))
            h.proc.kill()
            h.proc.wait()
            self.assertTrue(os.path.exists(path), "a page outlives SIGKILL (the test's premise)")
            p = top("--once")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertNotIn(" %d " % h.pid, p.stdout)
            self.assertFalse(os.path.exists(path), "ebb top left the stale page")

    def test_ebb_run_sweeps_the_page_of_a_killed_program(self):
        p = subprocess.run([TOOL, "run", sys.executable, "-c",
                            "import os; print(os.getpid(), flush=True); x = bytearray(10 << 20);"
                            "os.kill(os.getpid(), 9)"],
                           env=child_env(), capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 128 + signal.SIGKILL, p.stderr)
        self.assertFalse(os.path.exists(page_of(int(p.stdout.split()[0]))))

    def test_a_symbolic_link_at_a_page_name_is_left_alone(self):
        # A symbolic link planted at a page's name (of a pid that is gone):
        # ebb top neither follows nor removes it.
        pid_guess = None
        with Holder(way="preload") as h:
            pid_guess = h.pid
        link = page_of(pid_guess)
        target = os.path.join(SHM, "ebb-test-target-%d" % os.getpid())
        try:
            os.symlink(target, link)
            p = top("--once")
            self.assertEqual(p.returncode, 0)
            self.assertTrue(os.path.islink(link), "ebb top removed a symbolic link")
            self.assertFalse(os.path.exists(target))
        finally:
            for f in (link, target):
                if os.path.lexists(f):
                    os.unlink(f)


@unittest.skipUnless(os.path.isdir(SHM), "no /dev/shm here")
class TopOutputTest(unittest.TestCase):
    def test_once_lists_the_process_and_its_detail(self):
        with Holder(mb=60) as h:
            self.assertTrue(wait_for(lambda: os.path.exists(page_of(h.pid))))
            time.sleep(0.3)
            p = top("--once")
            self.assertEqual(p.returncode, 0, p.stderr)
            row = [ln for ln in p.stdout.splitlines() if re.match(r"\s*%d\s" % h.pid, ln)]
            self.assertTrue(row, p.stdout)
            self.assertIn("python", row[0])
            live = row[0].split()[1]
            self.assertRegex(live, r"^[0-9.]+M$", row[0])
            self.assertGreaterEqual(float(live[:-1]), 40, row[0])
            p = top("--once", str(h.pid))
            self.assertEqual(p.returncode, 0, p.stderr)
            out = p.stdout
            for text in ("pid %d" % h.pid, "command    ", "live       ", "committed over time",
                         "peak       ", "purged     ", "top allocation sites"):
                self.assertIn(text, out)
            self.assertIn("█", out, "no chart:\n" + out)
            self.assertRegex(out, r"\n +1\. ~[0-9.]+[KMG]", "no site:\n" + out)
        p = top("--once", str(h.pid))
        self.assertEqual(p.returncode, 1)
        self.assertIn("no ebb process %d" % h.pid, p.stdout)

    def test_usage(self):
        p = top("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("usage: ebb top", p.stdout)
        self.assertEqual(top("--frobnicate").returncode, 2)
        self.assertEqual(top("not-a-pid").returncode, 2)


@unittest.skipUnless(os.path.isdir(SHM), "no /dev/shm here")
class TopTerminalTest(unittest.TestCase):
    """ebb top driven through a pseudo-terminal, as a person runs it."""

    def read_until(self, fd, buf, cond, timeout):
        end = time.monotonic() + timeout
        while not cond(buf) and time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # the slave side closed: the tool ended
                    break
                if not data:
                    break
                buf.extend(data)
        return cond(buf)

    def test_refreshes_follows_processes_and_quits_cleanly(self):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 140, 0, 0))
        before = termios.tcgetattr(slave)
        with Holder(mb=30) as first:
            self.assertTrue(wait_for(lambda: os.path.exists(page_of(first.pid))))
            env = child_env({"TERM": "xterm"})
            tool = subprocess.Popen([TOOL, "top"], stdin=slave, stdout=slave, stderr=slave,
                                    env=env, start_new_session=True)
            buf = bytearray()
            try:
                has = lambda pid: (lambda b: re.search(rb"\n\s*%d\s" % pid, bytes(b)) is not None)
                self.assertTrue(self.read_until(master, buf, has(first.pid), 10),
                                "the running process is not shown:\n%r" % bytes(buf))
                self.assertIn(b"\x1b[?1049h", buf, "not on the alternate screen")
                self.assertIn(b"\x1b[?25l", buf, "the cursor is not hidden")
                # It refreshes: another frame comes within a few seconds.
                frames = bytes(buf).count(b"\x1b[H")
                self.assertTrue(self.read_until(master, buf,
                                                lambda b: bytes(b).count(b"\x1b[H") > frames, 5),
                                "no second frame")
                # A process that appears is shown, and goes when it exits.
                with Holder(mb=5) as second:
                    mark = len(buf)
                    self.assertTrue(self.read_until(
                        master, buf, lambda b: has(second.pid)(b[mark:]), 10),
                        "a new process is not shown")
                    second.stop()
                mark = len(buf)

                def gone(b):
                    frame = bytes(b[mark:]).split(b"\x1b[H")
                    return len(frame) > 2 and not has(second.pid)(frame[-2])
                self.assertTrue(self.read_until(master, buf, gone, 10),
                                "a process that exited is still shown")
                os.write(master, b"q")
                tool.wait(timeout=10)
                self.read_until(master, buf, lambda b: False, 0.3)
            finally:
                if tool.poll() is None:
                    tool.kill()
                    tool.wait()
            self.assertEqual(tool.returncode, 0)
            tail = bytes(buf[-64:])
            self.assertIn(b"\x1b[?25h", tail, "the cursor is not shown again: %r" % tail)
            self.assertTrue(tail.endswith(b"\x1b[?1049l"),
                            "the alternate screen is not left last: %r" % tail)
            self.assertEqual(termios.tcgetattr(slave)[3], before[3],
                             "the terminal's modes are not restored")
        os.close(master)
        os.close(slave)

    def test_interrupt_also_restores_the_terminal(self):
        master, slave = pty.openpty()
        tool = subprocess.Popen([TOOL, "top"], stdin=slave, stdout=slave, stderr=slave,
                                env=child_env({"TERM": "xterm"}), start_new_session=True)
        buf = bytearray()
        try:
            self.assertTrue(self.read_until(master, buf, lambda b: b"ebb top" in b, 10))
            tool.send_signal(signal.SIGINT)
            tool.wait(timeout=10)
            self.read_until(master, buf, lambda b: False, 0.3)
        finally:
            if tool.poll() is None:
                tool.kill()
                tool.wait()
        self.assertEqual(tool.returncode, 0)
        self.assertTrue(bytes(buf).endswith(b"\x1b[?25h\x1b[?1049l"), bytes(buf[-40:]))
        os.close(master)
        os.close(slave)


class TimelineReportTest(unittest.TestCase):
    def test_json_report_has_the_timeline(self):
        p = run_python("""
            import ebb, json, time
            x = [bytearray(1000) for i in range(60000)]
            time.sleep(0.3)
            del x
            time.sleep(1.2)
            y = [bytearray(1000) for i in range(90000)]
            time.sleep(0.3)
            r = ebb.report("json")
            print(json.dumps(r["timeline"]))
        """, way="run")
        t = json.loads(p.stdout)
        pts = t["points"]
        self.assertGreaterEqual(len(pts), 6, t)
        self.assertLessEqual(len(pts), 128)
        self.assertEqual([q["ms"] for q in pts], sorted(q["ms"] for q in pts))
        mb = [q["committed"] >> 20 for q in pts]
        first = next(i for i, v in enumerate(mb) if v >= 55)
        valley = next(i for i in range(first, len(mb)) if mb[i] <= 30)
        second = next(i for i in range(valley, len(mb)) if mb[i] >= 85)
        self.assertTrue(first < valley < second, mb)
        self.assertGreaterEqual(t["peak_committed"] >> 20, 85)
        self.assertGreaterEqual(t["peak_committed_ms"], pts[valley]["ms"])
        self.assertEqual(pts[-1]["ms"], t["now_ms"], "the last point is the report's moment")


if __name__ == "__main__":
    unittest.main()
