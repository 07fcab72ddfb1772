"""ebb: a memory manager for Python that gives memory back to the OS.

Under ``ebb run python3 app.py`` ebb already allocates every object; in a
running interpreter, ``ebb.install()`` makes it the allocator from then on.
Either way the functions below report on it and steer it.  The work is done
in C (``ebb._ebb``); this file only names what is public.
"""
from ._ebb import (  # noqa: F401
    __version__,
    check,
    collect,
    get_limit,
    heap,
    install,
    installed,
    on_pressure,
    set_limit,
    stats,
)
from ._ebb import _manages, _raw_stress  # noqa: F401  (for tests)

__all__ = ["install", "installed", "stats", "collect", "set_limit", "get_limit",
           "on_pressure", "check", "heap", "__version__"]
