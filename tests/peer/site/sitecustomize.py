# On PYTHONPATH in every run of tests/peer/cpython.sh, so that the runs
# differ in nothing but how ebb is reached.  With EBB_PEER_INSTALL=1 the
# interpreter (and every Python the tests start, which inherit the
# variable) calls ebb.install() first thing; otherwise this does nothing
# but what the system's own sitecustomize does, which it would shadow.
import os
import runpy

if os.environ.get("EBB_PEER_INSTALL") == "1":
    import ebb

    ebb.install()

_here = os.path.dirname(os.path.abspath(__file__))
for _dir in __import__("sys").path:
    _candidate = os.path.join(_dir, "sitecustomize.py")
    if _dir and os.path.abspath(_dir) != _here and os.path.exists(_candidate):
        runpy.run_path(_candidate, run_name="sitecustomize")
        break
