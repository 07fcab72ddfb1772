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
    heap_map,
    install,
    installed,
    limit_info,
    on_pressure,
    set_limit,
    stats,
)
from ._ebb import _report, _report_to

# `pytest -p ebb` registers this module as a plugin, and pytest then loads
# the plugin itself (ebb/pytest_plugin.py, also the pytest11 entry point).
pytest_plugins = ["ebb.pytest_plugin"]

__all__ = ["install", "installed", "stats", "collect", "set_limit", "get_limit",
           "limit_info", "on_pressure", "check", "report", "heap", "heap_map", "__version__"]


def report(format="text"):
    """ebb's report: the limit and its source, committed, live and purged
    bytes, what every mapped byte is held for, the sites holding memory (now
    and at the peak), the size classes, and the largest free range of the
    address space.  format="text" returns it as a str for people;
    format="json" returns the parsed JSON object (a dict whose "schema" is
    "ebb.report/1"); format="html" returns a self-contained page (the JSON
    inside a viewer: plots, a flame graph of the peak, heap maps) as a str."""
    if format == "text":
        return _report(0)
    if format == "json":
        import json
        return json.loads(_report(1))
    if format == "html":
        return _report(2)
    raise ValueError("report: format must be 'text', 'json' or 'html', not %r" % (format,))
