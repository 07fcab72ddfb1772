"""valgrind's memcheck finds a program's leaks and overruns while ebb is its
allocator: with EBB_DEBUG=1, ebb registers every block with memcheck
(client requests, src/front/debug.c).  memcheck must be told to leave ebb's
malloc in place (`--soname-synonyms=somalloc=nouserintercepts`); by default
it replaces every exported malloc with its own."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import LIB, ROOT, child_env  # noqa: E402

VALGRIND = shutil.which("valgrind")


@unittest.skipIf(VALGRIND is None, "valgrind is not installed (scripts/deps.sh test installs it)")
class MemcheckTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.prog = os.path.join(self.tmp.name, "leaky")
        subprocess.run(["gcc", "-O0", "-g", "-o", self.prog,
                        os.path.join(ROOT, "tests", "debug", "leaky.c")], check=True)

    def memcheck(self, debug):
        # warn: ebb reports the overrun at the free and lets the program end
        env = child_env({"LD_PRELOAD": LIB, "EBB_DEBUG": debug, "EBB_ON_ERROR": "warn"})
        p = subprocess.run([VALGRIND, "--soname-synonyms=somalloc=nouserintercepts",
                            "--leak-check=full", self.prog],
                           env=env, capture_output=True, text=True, timeout=300)
        return p

    def test_memcheck_finds_the_leak_and_the_overrun(self):
        p = self.memcheck("1")
        self.assertIn("done", p.stdout)
        err = p.stderr
        self.assertIn("Invalid write of size 1", err)
        self.assertIn("0 bytes after a block of size 24 alloc'd", err)
        self.assertIn("100 bytes in 1 blocks are definitely lost", err)
        # ebb's own guard check saw the overrun too, at the free.
        self.assertIn("overrun: byte 0 past the end of a 24-byte block", err)

    def test_without_the_debug_heap_memcheck_sees_no_blocks(self):
        # The control: the same run with ebb's ordinary heap, whose blocks
        # memcheck does not know, finds neither bug.
        p = self.memcheck("0")
        self.assertIn("done", p.stdout)
        self.assertNotIn("definitely lost", p.stderr)
        self.assertNotIn("Invalid write", p.stderr)


if __name__ == "__main__":
    unittest.main()
