"""The crash note through the ways users meet it: `ebb run` of a C program
that writes through the NULL a refused malloc returned (one line naming the
call, its size and where, then the same death by SIGSEGV); the same fault
without a refusal (nothing said); a program's own SIGSEGV handler, installed
before ebb's (it still runs) or after (it wins); a C function called from
Python (the Python line, and Python's faulthandler still prints its
traceback); and `ebb blackbox FILE` after the death."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import LIB, PYPATH, TOOL, child_env  # noqa: E402

CC = shutil.which(os.environ.get("CC", "cc")) or shutil.which("cc")
HUGE = "10000000000000000"
SEGV = 128 + signal.SIGSEGV

# The program: `refuse` writes through what malloc(HUGE) returned, `plain`
# through a NULL no allocation gave, `own` installs a SIGSEGV handler first
# (after ebb's, which the preload installed), then refuses.
PROGRAM = r"""
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void own(int sig)
{
    (void)sig;
    static const char said[] = "own handler ran\n";
    write(2, said, sizeof said - 1);
    _exit(42);
}

__attribute__((noinline)) char *crash_site(void)
{
    char *volatile p = malloc((size_t)HUGEull);
    return p;
}

int main(int argc, char **argv)
{
    char *volatile p = NULL;
    if (argc > 1 && strcmp(argv[1], "own") == 0)
        signal(SIGSEGV, own);
    if (argc > 1 && strcmp(argv[1], "plain") != 0)
        p = crash_site();
    p[0] = 1;
    return 0;
}
""".replace("HUGEull", HUGE + "ull")

# A program that installs its handler and only then loads ebb (dlopen), so
# ebb's handler comes second and hands the signal on to the program's.
LOADS_EBB_LATER = r"""
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void own(int sig, siginfo_t *si, void *context)
{
    (void)context;
    char line[80];
    int n = snprintf(line, sizeof line, "own handler ran: %d %s\n", sig,
                     si->si_addr == NULL ? "NULL" : "other");
    write(2, line, (size_t)n);
    _exit(42);
}

int main(int argc, char **argv)
{
    struct sigaction sa = { .sa_sigaction = own, .sa_flags = SA_SIGINFO };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL)
        return 3;
    void *(*ebb_malloc)(size_t) = (void *(*)(size_t))dlsym(lib, "ebb_malloc");
    char *volatile p = ebb_malloc((size_t)HUGEull);
    p[0] = 1;
    return 0;
}
""".replace("HUGEull", HUGE + "ull")

# A C function a Python program calls (ctypes) that does the same.
WRITER = r"""
#include <stdlib.h>
int crash_writer(void)
{
    char *volatile p = malloc((size_t)HUGEull);
    p[16] = 1;
    return 0;
}
""".replace("HUGEull", HUGE + "ull")

NOTE = re.compile(r"^ebb: SIGSEGV (at 0x[0-9a-f]+,|\(sent with kill or raise, so no address\)) "
                  r"[0-9.]+ (us|ms|s) after malloc\(" + HUGE + r"\) was refused \(no memory\)"
                  r" at (.*): (probably|perhaps) an unchecked NULL$", re.M)


@unittest.skipIf(CC is None, "no C compiler to build the test programs")
class CrashNoteTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ebb-crash-")
        cls.prog = cls.build("prog", PROGRAM, ["-rdynamic"])
        cls.later = cls.build("later", LOADS_EBB_LATER, ["-ldl"])
        cls.writer = cls.build("libwriter.so", WRITER, ["-shared", "-fPIC", "-rdynamic"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def build(cls, name, source, flags):
        src = os.path.join(cls.tmp, name + ".c")
        out = os.path.join(cls.tmp, name)
        with open(src, "w") as f:
            f.write(source)
        # -O0 and volatile: the store through NULL must be made as written.
        subprocess.run([CC, "-O0", "-g", src, "-o", out, *flags], check=True, timeout=120)
        return out

    def run_tool(self, *args, env=None):
        return subprocess.run([TOOL, "run", *args], env=child_env(env), capture_output=True,
                              text=True, timeout=120)

    def note(self, stderr):
        m = NOTE.search(stderr)
        self.assertIsNotNone(m, "no crash note in:\n" + stderr)
        self.assertEqual(len(NOTE.findall(stderr)), 1, "said more than once:\n" + stderr)
        return m

    def test_ebb_run_names_the_refusal_and_the_death_is_unchanged(self):
        p = self.run_tool(self.prog, "refuse")
        self.assertEqual(p.returncode, SEGV, p.stderr)
        m = self.note(p.stderr)
        self.assertTrue(m.group(1).startswith("at 0x0,"), m.group(0))
        self.assertRegex(m.group(3), r"^crash_site\+0x[0-9a-f]+ \(" + re.escape(self.prog) +
                         r"\) <- main\+0x")
        self.assertIn("killed by signal 11 (SIGSEGV", p.stderr)
        # The line comes before the tool's word on the death.
        self.assertLess(p.stderr.index("ebb: SIGSEGV"), p.stderr.index("killed by signal 11"))
        # Without ebb the program dies the same way.
        q = subprocess.run([self.prog, "refuse"], env=child_env(), capture_output=True, timeout=60)
        self.assertEqual(q.returncode, -signal.SIGSEGV)

    def test_nothing_said_without_a_refusal_or_when_turned_off(self):
        p = self.run_tool(self.prog, "plain")
        self.assertEqual(p.returncode, SEGV, p.stderr)
        self.assertNotIn("ebb: SIG", p.stderr)
        p = self.run_tool(self.prog, "refuse", env={"EBB_CRASH_NOTE": "0"})
        self.assertEqual(p.returncode, SEGV, p.stderr)
        self.assertNotIn("ebb: SIG", p.stderr)

    def test_a_handler_installed_before_ebb_still_runs(self):
        p = subprocess.run([self.later, LIB], env=child_env({"EBB_CRASH_NOTE": "1"}),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 42, p.stderr)
        self.note(p.stderr)
        self.assertIn("own handler ran: 11 NULL\n", p.stderr)
        self.assertLess(p.stderr.index("ebb: SIGSEGV"), p.stderr.index("own handler ran"))

    def test_a_handler_installed_after_ebb_wins(self):
        p = self.run_tool(self.prog, "own")
        self.assertEqual(p.returncode, 42, p.stderr)
        self.assertIn("own handler ran\n", p.stderr)
        self.assertNotIn("ebb: SIG", p.stderr)

    def python_program(self, loader):
        path = os.path.join(self.tmp, "app_%s.py" % loader)
        with open(path, "w") as f:
            f.write(textwrap.dedent("""\
                import ctypes
                import ebb

                def load_and_crash():
                    lib = ctypes.%s(%r)
                    lib.crash_writer()

                load_and_crash()
                """ % (loader, self.writer)))
        return path

    def test_python_line_when_the_gil_is_held(self):
        # ctypes.PyDLL keeps the GIL across the call, so the stack hook can
        # read the Python frames at the refusal.
        app = self.python_program("PyDLL")
        p = self.run_tool(sys.executable, app, env={"PYTHONPATH": PYPATH})
        self.assertEqual(p.returncode, SEGV, p.stderr)
        m = self.note(p.stderr)
        self.assertEqual(m.group(1), "at 0x10,")
        python_lines = (re.escape(app) + r":6 load_and_crash <- " + re.escape(app) +
                        r":8 <module>, in ")
        if sys.version_info >= (3, 13):
            # The module reads no frames of 3.13 yet (README): the native
            # frames alone, unless a frame walker reads them by now.
            python_lines = "(" + python_lines + ")?"
        self.assertRegex(m.group(3), r"^" + python_lines + r"crash_writer\+0x")

    def test_python_faulthandler_still_prints_its_traceback(self):
        # ctypes.CDLL lets the GIL go: no Python stack can be read at the
        # refusal (the native frames name the C function), and faulthandler,
        # installed after ebb, prints the traceback and raises the signal
        # again, into ebb's handler.
        app = self.python_program("CDLL")
        p = self.run_tool(sys.executable, "-X", "faulthandler", app, env={"PYTHONPATH": PYPATH})
        self.assertEqual(p.returncode, SEGV, p.stderr)
        self.assertIn("Fatal Python error: Segmentation fault", p.stderr)
        self.assertRegex(p.stderr, r'File "' + re.escape(app) + r'", line 6 in load_and_crash')
        m = self.note(p.stderr)
        self.assertIn("crash_writer+0x", m.group(3))
        self.assertLess(p.stderr.index("Fatal Python error"), p.stderr.index("ebb: SIGSEGV"))

    def test_the_black_box_keeps_the_line(self):
        box = os.path.join(self.tmp, "box")
        p = subprocess.run([self.prog, "refuse"], capture_output=True, text=True, timeout=60,
                           env=child_env({"LD_PRELOAD": LIB, "EBB_CRASH_NOTE": "1",
                                          "EBB_BLACKBOX": box}))
        self.assertEqual(p.returncode, -signal.SIGSEGV, p.stderr)
        said = self.note(p.stderr).group(0)
        q = subprocess.run([TOOL, "blackbox", box], env=child_env(), capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(q.returncode, 0, q.stderr)
        lines = q.stdout.split("\n")
        self.assertTrue(lines[0].startswith("black box of pid "), q.stdout)
        self.assertEqual(lines[1], said, q.stdout)
        self.assertIn("\nreason      an allocation failed\n", q.stdout)


if __name__ == "__main__":
    unittest.main()
