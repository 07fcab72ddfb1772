"""Careless or hostile EBB_* values, in programs ebb did not build
(LD_PRELOAD): refused with one line on stderr, the default used, and the
program runs as it would without them."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import LIB, child_env  # noqa: E402


def preloaded(cmd, **env):
    return subprocess.run(cmd, env=child_env(dict(env, LD_PRELOAD=LIB)), capture_output=True,
                          text=True, timeout=60)


class EnvTest(unittest.TestCase):
    def test_limit_below_the_floor_is_refused(self):
        # EBB_LIMIT=1 once made /bin/true abort in glibc ("failed to register
        # TLS destructor"): below what ebb and the C library need to start.
        for value in ("1", "64K", "1M"):
            for cmd in (["/bin/true"], [sys.executable, "-c", "print('ok')"]):
                p = preloaded(cmd, EBB_LIMIT=value)
                assert p.returncode == 0, (value, cmd, p.returncode, p.stderr)
                assert ("ebb: ignoring EBB_LIMIT=%s (below 4 MiB, the least ebb can work in; "
                        "0 for none)\n" % value) == p.stderr, (value, cmd, p.stderr)
        p = preloaded([sys.executable, "-c", "bytearray(64 << 20)"], EBB_LIMIT="16M")
        assert p.returncode != 0 and "MemoryError" in p.stderr, "16M is a limit: %s" % p.stderr


if __name__ == "__main__":
    unittest.main()
