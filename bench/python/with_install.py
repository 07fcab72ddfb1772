#!/usr/bin/python3
"""Run a workload with ebb installed from inside the interpreter.

    python3 with_install.py WORKLOAD.py [ARGS...]

This is the second way into ebb (`import ebb; ebb.install()` in a plain
interpreter): the interpreter starts on pymalloc, then ebb wraps the three
allocator domains, and the workload runs as __main__ exactly as if it had
been started directly (same sys.argv, same sys.path[0]), so its timing and
checksum are comparable with the other configurations.
"""

import os
import runpy
import sys

import ebb

ebb.install()
script = sys.argv[1]
sys.argv = sys.argv[1:]
# As `python3 WORKLOAD.py` would: the script's directory first on the path,
# so that it finds common.py.
sys.path[0] = os.path.dirname(os.path.abspath(script))
runpy.run_path(script, run_name="__main__")
