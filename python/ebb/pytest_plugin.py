"""ebb's pytest plugin: a memory budget per test, and ebb's report for the
tests that fail.

    pytest -p ebb                      # or installed: the pytest11 entry point
    @pytest.mark.limit_memory("100 MB")
    def test_load(): ...
    pytest -p ebb --ebb-report DIR     # ebb's report (text, JSON) per failing test

A marked test may make ebb's committed memory (its estimate of the resident
memory it manages, the figure its limit counts) grow by the given amount over
what ebb held when the test's call began, after a garbage collection and a
purge.  ebb's limit enforces it: while the test runs, growth past the amount
is refused (MemoryError), and the previous limit comes back afterwards.  The
test fails, with ebb's report in its failure, when a MemoryError ends it, or
when it ends otherwise but its committed memory went past the amount (its
peak when it set a new high for the process, else what it held at its end).
Fixtures' setup and teardown are outside the budget.

The plugin is active when named (-p ebb), when --ebb-report is given, or when
a collected test carries the marker; otherwise (loaded only through the entry
point) it registers the marker and does nothing else.  Active, it makes ebb
the interpreter's allocator (ebb.install()) unless ebb already is (ebb run).
"""
import gc
import hashlib
import json
import os
import re
import tempfile
import warnings
from decimal import Decimal, InvalidOperation

import pytest

import ebb

MARKER = "limit_memory"

# Bare K, M, G, T and the IEC names are powers of 1024 (as EBB_LIMIT's
# "512M"); KB, MB, GB, TB are powers of 1000, as the SI says.
_UNITS = {"": 1, "b": 1}
for _i, _p in enumerate("kmgt", 1):
    _UNITS[_p] = _UNITS[_p + "ib"] = 1024 ** _i
    _UNITS[_p + "b"] = 1000 ** _i
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*\Z")


def parse_size(value):
    """Bytes from an int or a text such as "100 MB", "100MB", "1.5 GiB",
    "512K"; ValueError for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a size must not be negative, not %r" % (value,))
        return value
    if not isinstance(value, str):
        raise ValueError("a size is an int (bytes) or a str such as '100 MB', not %r" % (value,))
    m = _SIZE.match(value)
    unit = m and _UNITS.get(m.group(2).lower())
    if unit is None:
        raise ValueError("not a size: %r (expected bytes, or a number and a unit: B, K/KiB, "
                         "M/MiB, G/GiB, T/TiB (1024s), KB, MB, GB, TB (1000s))" % (value,))
    try:
        n = Decimal(m.group(1)) * unit
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        raise ValueError("not a size: %r" % (value,))
    if n != n.to_integral_value():
        raise ValueError("not a whole number of bytes: %r" % (value,))
    return int(n)


def format_size(n):
    """As ebb's text report writes sizes (tenths truncated), so that the
    figures above the report read the same as those in it."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    sign, n = ("-" if n < 0 else ""), abs(n)
    u = 0
    while n >> (10 * u) >= 1024 and u + 1 < len(units):
        u += 1
    if u == 0:
        return "%s%d B" % (sign, n)
    tenths = n * 10 >> (10 * u)
    return "%s%d.%d %s" % (sign, tenths // 10, tenths % 10, units[u])


def _safe_name(nodeid, taken):
    """A file name for a test's node id: letters, digits, '.', '_', '-';
    a short hash of the id when it had to be shortened or is already taken
    by another test."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid.replace("::", "--")).strip("._-") or "test"
    if len(name) > 120 or taken.get(name, nodeid) != nodeid:
        name = "%s-%s" % (name[:120], hashlib.sha1(nodeid.encode()).hexdigest()[:8])
    taken[name] = nodeid
    return name


# The test being measured, if any: the pressure callback counts its refusals.
# on_pressure callbacks cannot be removed, so one is registered per process.
_measuring = []
_callback_registered = []


def _on_pressure(level, committed, limit):
    if level == "hard" and _measuring:
        _measuring[-1].refusals += 1


class Measure:
    """One marked test's budget and what was measured while it ran."""

    def __init__(self, text, amount):
        self.text = text              # the marker's argument, as written
        self.amount = amount          # bytes of growth allowed
        self.start = self.end = 0     # committed at the start, at the end
        self.peak_before = self.peak_after = 0  # the process's peak_committed
        self.limit = 0                # ebb's limit during the test
        self.reserve = 0
        self.outer = False            # a tighter limit was already in force
        self.refusals = 0             # requests refused at the limit (hard pressure)
        self.memory_error = False
        self.report_text = self.report_json = self.report_html = None

    @property
    def new_high(self):
        return self.peak_after > self.peak_before

    @property
    def used(self):
        """Growth over the start, as far as it can be known: the peak when
        the test set a new high for the process, else its end."""
        return (self.peak_after if self.new_high else self.end) - self.start

    @property
    def over(self):
        return self.used > self.amount

    def verdict(self):
        if self.memory_error and self.refusals:
            return "an allocation was refused at the test's limit (MemoryError)"
        if self.memory_error:
            return ("MemoryError, with no request refused at the test's limit (raised by the "
                    "test, or the system refused)")
        return ("ebb's committed memory went %s past the amount without a MemoryError"
                % format_size(self.used - self.amount))

    def summary(self, name):
        if self.new_high:
            measured = ("peak %s committed, %s above the start (a new high for the process, so "
                        "the test's own peak); %s at the end"
                        % (format_size(self.peak_after), format_size(self.used),
                           format_size(self.end)))
        else:
            measured = ("%s committed at the end, %s above the start; the test's own peak is "
                        "not known (the process's, %s, is from before it)"
                        % (format_size(self.end), format_size(self.used),
                           format_size(self.peak_after)))
        lines = [
            "ebb: %s used more memory than limit_memory(%r) allows: %s"
            % (name, self.text, self.verdict()),
            "  allowed   %s of growth over the %s ebb held committed at the start of the call"
            % (format_size(self.amount), format_size(self.start)),
            "  measured  %s; %d request(s) refused at the limit" % (measured, self.refusals),
        ]
        if self.outer:
            lines.append("  limit     %s, the limit in force before the test (tighter than the "
                         "test's)" % format_size(self.limit))
        else:
            lines.append("  limit     %s during the test: growth is refused past %s, the limit "
                         "less ebb's emergency reserve (%s)" % (
                             format_size(self.limit), format_size(self.limit - self.reserve),
                             format_size(self.reserve)))
        return "\n".join(lines)


def _set_budget(target, previous):
    """Set the limit at which ebb starts refusing growth past `target`
    committed bytes (the limit less its reserve, which depends on the
    limit); keep a tighter limit already in force.  Returns (limit, reserve,
    outer)."""
    if previous:
        info = ebb.limit_info()
        if previous - info["reserve"] <= target:
            return previous, info["reserve"], True
    limit, reserve = target, 0
    for _ in range(16):
        ebb.set_limit(limit)
        r = ebb.limit_info()["reserve"]
        if r == reserve:
            break
        reserve, limit = r, target + r
    ebb.set_limit(limit)
    return limit, ebb.limit_info()["reserve"], False


def pytest_addoption(parser):
    group = parser.getgroup("ebb", "ebb memory manager")
    group.addoption("--ebb-report", metavar="DIR", dest="ebb_report", default=None,
                    help="write ebb's report (text and JSON) for each failing test to DIR, "
                         "named after the test's node id; makes ebb the allocator")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "limit_memory(amount): fail the test if ebb's committed memory grows by "
                   "more than amount (bytes, or '100 MB', '1.5 GiB', '512K') while it runs; "
                   "ebb refuses the growth (MemoryError)")
    config.pluginmanager.register(EbbPlugin(config), "ebb-session")


def _named(config):
    names = ("ebb", "ebb.pytest_plugin")
    args = config.getoption("plugins", None) or []
    env = [p.strip() for p in os.environ.get("PYTEST_PLUGINS", "").split(",")]
    return any(a in names for a in args) or any(p in names for p in env)


class EbbPlugin:
    def __init__(self, config):
        self.config = config
        self.report_dir = config.getoption("ebb_report")
        self.mode = None
        self.budgets = {}    # nodeid -> (text, bytes)
        self.measures = {}   # nodeid -> Measure, for the call that was measured
        self.written = {}    # nodeid -> file name, once per test
        self.names = {}
        self.late_line = None
        if self.report_dir or _named(config):
            self.activate()

    def activate(self):
        if self.mode is not None:
            return
        if ebb.installed():
            if ebb.heap == "process" and os.environ.get("EBB_PYTHON") == "1":
                self.mode = "running under ebb run"
            elif ebb.heap == "process":
                self.mode = "the process's allocator (libebb.so preloaded)"
            else:
                self.mode = "installed before the plugin (ebb.install())"
        else:
            ebb.install()
            self.mode = "allocator installed by the plugin"
        if not _callback_registered:
            ebb.on_pressure(_on_pressure)
            _callback_registered.append(True)

    def header_lines(self):
        lines = ["ebb: %s" % self.mode]
        if self.report_dir:
            lines.append("ebb: a report for each failing test in %s" % self.report_dir)
        return lines

    def pytest_report_header(self, config):
        return self.header_lines() if self.mode else None

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        errors = []
        for item in items:
            mark = item.get_closest_marker(MARKER)
            if mark is None:
                continue
            try:
                if len(mark.args) != 1 or mark.kwargs:
                    raise ValueError("takes one argument, the amount (bytes, or a str such as "
                                     "'100 MB')")
                self.budgets[item.nodeid] = (mark.args[0], parse_size(mark.args[0]))
            except ValueError as e:
                errors.append("%s: %s: %s" % (item.nodeid, MARKER, e))
        if errors:
            raise pytest.UsageError("\n".join(errors))
        if self.budgets and self.mode is None:
            self.activate()
            self.late_line = self.header_lines()

    def pytest_report_collectionfinish(self, config):
        return self.late_line

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        budget = self.budgets.get(item.nodeid)
        if budget is None:
            yield
            return
        m = Measure(*budget)
        # Files for the reports, made now: under the test's limit the
        # reports are written straight into them by ebb (nothing allocated
        # in Python: a page is ~100 KiB, more than a test at its limit has
        # left) and read back once the limit is lifted.
        spool = {fmt: tempfile.TemporaryFile() for fmt in ("text", "json", "html")}
        gc.collect()
        ebb.collect()
        previous = ebb.get_limit()
        s = ebb.stats()
        m.start, m.peak_before = s["committed"], s["peak_committed"]
        try:
            m.limit, m.reserve, m.outer = _set_budget(m.start + m.amount, previous)
            _measuring.append(m)
            outcome = yield
            _measuring.remove(m)
            s = ebb.stats()
            m.end, m.peak_after = s["committed"], s["peak_committed"]
            exc = outcome.excinfo
            m.memory_error = exc is not None and issubclass(exc[0], MemoryError)
            # While the test's frames are still held by the traceback and
            # its limit is in force: what ebb held when it failed.
            wanted = m.memory_error or m.over or (exc is not None and self.report_dir)
            if wanted:
                for fmt, code in (("text", 0), ("json", 1), ("html", 2)):
                    if fmt == "text" or self.report_dir:
                        ebb._report_to(spool[fmt].fileno(), code)
            self.measures[item.nodeid] = m
        finally:
            if m in _measuring:
                _measuring.remove(m)
            ebb.set_limit(previous)
        for fmt, f in spool.items():
            f.seek(0)
            data = f.read().decode("utf-8", "replace")
            f.close()
            if not data:
                continue
            if fmt == "text":
                m.report_text = data
            elif fmt == "json":
                m.report_json = json.loads(data)
            else:
                m.report_html = data
        if (m.refusals and not m.memory_error and not m.over and not m.new_high
                and m.peak_before - m.start > m.amount):
            warnings.warn(pytest.PytestWarning(
                "ebb: %s: %d request(s) refused at its limit, and the test went on (it caught "
                "the MemoryError); whether it then went past the amount through ebb's emergency "
                "reserve is not known: the process's peak (%s) is from before the test"
                % (item.nodeid, m.refusals, format_size(m.peak_after))))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        rep = outcome.get_result()
        m = self.measures.pop(item.nodeid, None) if call.when == "call" else None
        failing = m is not None and (m.memory_error or m.over) and not rep.skipped
        if failing:
            text = m.summary(item.name) + "\n\n" + m.report_text
            if rep.failed and hasattr(rep.longrepr, "addsection"):
                rep.longrepr.addsection("ebb: limit_memory", text)
            elif rep.failed:
                rep.longrepr = "%s\n\n%s" % (rep.longrepr, text)
            else:
                rep.outcome = "failed"
                rep.longrepr = text
        if rep.failed and self.report_dir and item.nodeid not in self.written:
            if m is not None and m.report_text is not None:
                head = m.summary(item.name) if failing else ""
                text, data, page = m.report_text, m.report_json, m.report_html
            else:
                head, text, data = "", ebb.report(), ebb.report("json")
                page = ebb.report("html")
            self.write_report(item.nodeid, rep.when, head, text, data, page)

    def write_report(self, nodeid, when, head, text, data, page):
        os.makedirs(self.report_dir, exist_ok=True)
        name = _safe_name(nodeid, self.names)
        self.written[nodeid] = name
        first = "ebb report for %s (failed in %s)\n" % (nodeid, when)
        path = os.path.join(self.report_dir, name)
        with open(path + ".txt", "w") as f:
            f.write(first + (head + "\n\n" if head else "") + text)
        with open(path + ".json", "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        with open(path + ".html", "w") as f:
            f.write(page)
