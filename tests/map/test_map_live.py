"""`ebb map` on live processes (make check-map).

A probe (tests/map/probe.c) lays out its address space, finds the largest
mapping the kernel will give it by bisection, prints it, and waits; `ebb map
PID` must report that as its largest free region (to the byte, or up to the
1 MiB the kernel keeps free below a growing stack).  Done for a 64-bit probe,
one on ebb (its arenas found), a 32-bit one (gcc -m32) and a 32-bit one with
its space fragmented; then `ebb map -- program` (sampling, and --after) and
the errors: no such process, another user's process, a process that has
exited.

Environment: EBB_TOOL (the ebb binary), EBB_LIB (libebb.so), EBB_MAP_PROBES
(the directory with probe64; probe32 is built there by this test with
`$CC -m32`, and the 32-bit tests are skipped, by name, when that cannot
build: gcc-multilib missing, scripts/deps.sh m32).  Run from the
repository's root:
    python3 tests/tally/tally.py tests/map/test_map_live.py
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.environ.get("EBB_TOOL", os.path.join(ROOT, "build", "ebb"))
LIB = os.environ.get("EBB_LIB", os.path.join(ROOT, "build", "libebb.so"))
PROBES = os.environ.get("EBB_MAP_PROBES", os.path.join(ROOT, "build", "map"))
PROBE64 = os.path.join(PROBES, "probe64")
PROBE32 = os.path.join(PROBES, "probe32")
# The kernel keeps this much free below a stack that grows (stack_guard_gap,
# 256 pages): an mmap of a whole free region right below [stack] gets less.
STACK_GUARD_GAP = (1 << 20) + 4096
SCHEMA = os.path.join(ROOT, "schema", "ebb.map-1.json")

_probe32_error = None


def build_probe32():
    """Build the 32-bit probe once; None, or why it cannot be."""
    global _probe32_error
    if _probe32_error is None:
        cc = os.environ.get("CC", "cc")
        r = subprocess.run([cc, "-m32", "-std=c11", "-O1", os.path.join(ROOT, "tests/map/probe.c"),
                            "-lpthread", "-o", PROBE32], capture_output=True, text=True)
        _probe32_error = "" if r.returncode == 0 else (
            "no 32-bit build (%s -m32 failed: gcc-multilib missing? scripts/deps.sh m32): %s"
            % (cc, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "no output"))
    return _probe32_error or None


class Probe:
    """A probe running, stopped when its standard input closes."""

    def __init__(self, exe, *args, env=None):
        self.p = subprocess.Popen([exe, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, env=env)
        self.largest = None
        for line in self.p.stdout:
            if line.startswith("largest "):
                self.largest = int(line.split()[1])
            if line.strip() == "ready":
                break
        else:
            raise AssertionError("the probe ended before it was ready (status %s)" % self.p.wait())
        self.pid = self.p.pid

    def stop(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def ebb_map(*args, **kw):
    return subprocess.run([TOOL, "map", *args], capture_output=True, text=True, timeout=120, **kw)


def validate(test, doc):
    """doc against schema/ebb.map-1.json, where jsonschema is installed
    (scripts/deps.sh installs it; without it the other checks still run)."""
    try:
        import jsonschema
    except ImportError:
        return
    with open(SCHEMA) as f:
        jsonschema.Draft202012Validator(json.load(f)).validate(doc)


def one_line_error(test, r, words):
    test.assertNotEqual(r.returncode, 0, r.stdout)
    lines = r.stderr.strip().splitlines()
    test.assertEqual(len(lines), 1, r.stderr)
    test.assertIn(words, lines[0])
    test.assertTrue(lines[0].startswith("ebb: map: "), lines[0])


class LiveMap(unittest.TestCase):
    def map_probe(self, probe, bits, ebb=False):
        r = ebb_map("--json", str(probe.pid))
        self.assertEqual(r.returncode, 0, r.stderr)
        m = json.loads(r.stdout)
        validate(self, m)
        self.assertEqual(m["schema"], "ebb.map/1")
        self.assertEqual(m["pid"], probe.pid)
        self.assertEqual(m["bits"], bits)
        self.assertTrue(m["smaps"])
        self.assertEqual(m["ebb"], ebb)
        biggest = m["free"]["largest"][0]
        self.assertEqual(int(biggest["end"], 16) - int(biggest["start"], 16), biggest["size"])
        # the probe cannot map more than the largest free region, nor much less
        self.assertLessEqual(probe.largest, biggest["size"], biggest)
        self.assertGreaterEqual(probe.largest, biggest["size"] - STACK_GUARD_GAP, biggest)
        kinds = {g["kind"]: g for g in m["groups"]}
        self.assertGreaterEqual(kinds["program"]["mappings"], 1)
        self.assertGreaterEqual(kinds["library"]["mappings"], 1)
        self.assertEqual(sum(g["mappings"] for g in m["groups"]), len(m["mappings"]))
        # the probe's thread: a stack with its no-access guard below it
        stacks = [x for x in m["mappings"] if x["kind"] == "stack"]
        self.assertTrue(any(x["perms"] == "---p" for x in stacks), stacks)
        self.assertTrue(any(x["name"] == "[stack]" for x in stacks), stacks)
        if ebb:
            self.assertGreaterEqual(kinds["ebb"]["mappings"], 1)
        rows = m["grid"]["rows"]
        self.assertLessEqual(len(rows), 40)
        if bits == 32:
            self.assertEqual(m["user_space"]["end"], "0xffffe000")
            self.assertEqual(len(rows), 32)
        # the text says the same
        t = ebb_map(str(probe.pid))
        self.assertEqual(t.returncode, 0, t.stderr)
        self.assertIn("largest free regions", t.stdout)
        self.assertIn(" 1. 0x%0*x-0x%0*x " % (8 if bits == 32 else 12, int(biggest["start"], 16),
                                              8 if bits == 32 else 12, int(biggest["end"], 16)),
                      t.stdout)
        return m

    def test_64bit_process(self):
        probe = Probe(PROBE64)
        try:
            self.map_probe(probe, 64)
        finally:
            probe.stop()

    def test_64bit_process_on_ebb(self):
        probe = Probe(PROBE64, env=dict(os.environ, LD_PRELOAD=LIB))
        try:
            self.map_probe(probe, 64, ebb=True)
        finally:
            probe.stop()

    def test_32bit_process(self):
        why = build_probe32()
        if why:
            self.skipTest(why)
        probe = Probe(PROBE32)
        try:
            self.map_probe(probe, 32)
        finally:
            probe.stop()

    def test_32bit_fragmented_process(self):
        why = build_probe32()
        if why:
            self.skipTest(why)
        probe = Probe(PROBE32, "--fragment")
        try:
            m = self.map_probe(probe, 32)
            self.assertGreaterEqual(m["free"]["regions"], 20)
            self.assertLess(m["free"]["largest"][0]["size"], 256 << 20)
        finally:
            probe.stop()

    def marker(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "ebb-map-marker")
        with open(path, "wb") as f:
            f.write(b"\0" * 4096)
        return path

    def test_map_a_program_it_runs(self):
        path = self.marker()
        out = os.path.join(os.path.dirname(path), "map.json")
        r = ebb_map("--json", "-o", out, "--interval", "20", "--", PROBE64, "--no-probe",
                    "--marker", path, "--exit-after", "600")
        self.assertEqual(r.returncode, 3, r.stderr)  # the program's status
        self.assertEqual(r.stdout, "ready\n")        # the program's output, alone
        with open(out) as f:
            m = json.load(f)
        validate(self, m)
        self.assertIn("largest free region was smallest", m["when"])
        # the moment kept came after the probe mapped its marker (tighter)
        self.assertIn(path, [x["name"] for x in m["mappings"]])
        self.assertEqual(m["command"], "probe64")
        kinds = {g["kind"]: g for g in m["groups"]}
        self.assertGreaterEqual(kinds["program"]["mappings"], 1)  # found by its path

    def test_map_a_program_after_a_delay(self):
        path = self.marker()
        t0 = time.monotonic()
        r = ebb_map("--after", "0.3", "--", PROBE64, "--no-probe", "--marker", path,
                    "--exit-after", "1500")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertGreater(time.monotonic() - t0, 1.4)  # it let the program run on
        self.assertIn("(--after 0.3)", r.stdout)
        self.assertIn(path, r.stdout)

    def test_a_program_that_cannot_run(self):
        r = ebb_map("--", "/nonexistent/program")
        self.assertEqual(r.returncode, 127)
        one_line_error(self, r, "cannot run /nonexistent/program")

    def test_no_such_process(self):
        with open("/proc/sys/kernel/pid_max") as f:
            beyond = int(f.read()) + 1
        one_line_error(self, ebb_map(str(beyond)), "no process %d" % beyond)

    def test_another_users_process(self):
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                self.skipTest("as root, needs setpriv to run as nobody")
            cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
                   TOOL, "map", "1"]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        else:
            r = ebb_map("1")
        one_line_error(self, r, "not allowed to read the map of process 1")

    def test_a_process_that_has_exited(self):
        # a zombie: exited, not yet waited for, so its pid is still there
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        try:
            for _ in range(500):
                with open("/proc/%d/stat" % child.pid) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
                time.sleep(0.01)
            one_line_error(self, ebb_map(str(child.pid)), "process %d has exited" % child.pid)
        finally:
            child.wait()

    def test_help(self):
        r = subprocess.run([TOOL, "map", "--help"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertIn("--after SECONDS", r.stdout)
        r = subprocess.run([TOOL, "--help"], capture_output=True, text=True)
        self.assertIn("map [--json] PID", r.stdout)


if __name__ == "__main__":
    unittest.main()
