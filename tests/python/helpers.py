"""Shared by the Python tests (unittest, so that every CPython from 3.8 on
runs them; pytest runs them too): where the built package, tool and
library are, and a runner for snippets in fresh interpreters.

Each test that changes process-wide state (install(), a limit, a fork)
runs its code in a child interpreter, started one of the two ways users
reach ebb: `ebb run python3 ...` ("run"), or plain python3 calling
`ebb.install()` first ("install")."""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("EBB_BUILD", os.path.join(ROOT, "build"))
PYPATH = os.environ.get("EBB_PYTHONPATH", os.path.join(BUILD, "python"))
TOOL = os.environ.get("EBB_TOOL", os.path.join(BUILD, "ebb"))
LIB = os.path.join(BUILD, "libebb.so")


def child_env(extra=None):
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "PYTHONMALLOC", "EBB_PYTHON", "EBB_NO_CHILDREN", "EBB_LIMIT",
              "EBB_BLACKBOX", "EBB_REPORT", "EBB_REPORT_FORMAT", "EBB_REPORT_SIGNAL", "EBB_TOP"):
        env.pop(k, None)
    env["PYTHONPATH"] = PYPATH
    env.update(extra or {})
    return env


def run_python(code, way="install", args=(), extra_env=None, timeout=120, check=True):
    """Run code in a new interpreter, ebb reached the given way; returns the
    CompletedProcess (stdout and stderr as text)."""
    code = textwrap.dedent(code)
    if way == "install":
        code = "import ebb\nassert ebb.install() is True\n" + code
        cmd = [sys.executable, "-c", code]
    elif way == "run":
        cmd = [TOOL, "run", *args, "--", sys.executable, "-c", code]
    elif way == "plain":
        cmd = [sys.executable, "-c", code]
    else:
        raise ValueError(way)
    p = subprocess.run(cmd, env=child_env(extra_env), capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("child failed (%d)\n--- stdout\n%s\n--- stderr\n%s"
                             % (p.returncode, p.stdout, p.stderr))
    return p


def require_build():
    for path in (PYPATH, TOOL, LIB):
        if not os.path.exists(path):
            raise SystemExit("%s is missing: run `make lib tool python` first" % path)


require_build()
