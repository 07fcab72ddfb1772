"""The test tally for Python tests (tests/tally/tally.sh describes the
records and the file, $TEST_TALLY): one record per test, passed, failed or
skipped with its reason, so that scripts/test.sh counts and names them.

Two ways in, both writing nothing without TEST_TALLY:
  - pytest: tests/python/conftest.py takes the hooks below;
  - unittest, for the interpreters without pytest and for tests outside
    tests/python:  python3 tests/tally/tally.py [--name PREFIX] TEST...
    where a TEST is a module name (importable from the current directory)
    or a file path; it runs them like `python3 -m unittest -q`, and exits
    non-zero if any failed or none ran.

Written for every CPython from 3.8 on."""
import argparse
import importlib.util
import os
import sys
import unittest

ORDER = {"pass": 0, "skip": 1, "fail": 2}


class Tally:
    """Each test's worst outcome (a failure in teardown after a pass is a
    failure), written out at the end, in the order the tests ran."""

    def __init__(self, prefix=""):
        self.prefix = prefix
        self.outcome = {}

    def note(self, name, status, why=""):
        old = self.outcome.get(name)
        if old is None or ORDER[status] > ORDER[old[0]]:
            self.outcome[name] = (status, why)

    def write(self):
        path = os.environ.get("TEST_TALLY")
        if not path:
            return
        with open(path, "a") as f:
            for name, (status, why) in self.outcome.items():
                name = one_line(self.prefix + name)
                if status == "pass":
                    f.write("pass\t%s\n" % name)
                else:
                    f.write("%s\t%s\t%s\n" % (status, name, one_line(why) or "no reason given"))

    def counts(self):
        n = {"pass": 0, "fail": 0, "skip": 0}
        for status, _ in self.outcome.values():
            n[status] += 1
        return n


def one_line(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---------------------------------------------------------------- pytest

_pytest_tally = Tally()


def _skip_reason(report):
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = longrepr[2]
    else:
        reason = str(longrepr)
    return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason


def _failure(report):
    crash = getattr(report.longrepr, "reprcrash", None)
    message = crash.message if crash is not None else str(report.longrepr).strip().split("\n")[-1]
    return "%s: %s" % (report.when, message) if report.when != "call" else message


def pytest_runtest_logreport(report):
    if report.failed:
        _pytest_tally.note(report.nodeid, "fail", _failure(report))
    elif report.skipped:
        _pytest_tally.note(report.nodeid, "skip", _skip_reason(report))
    elif report.when == "call":
        _pytest_tally.note(report.nodeid, "pass")


def pytest_collectreport(report):
    if report.failed:
        _pytest_tally.note("collecting " + (report.nodeid or "the tests"), "fail",
                           str(report.longrepr).strip().split("\n")[-1])


def pytest_sessionfinish(session, exitstatus):
    _pytest_tally.write()


# -------------------------------------------------------------- unittest

class TallyResult(unittest.TextTestResult):
    tally = None  # set by main()

    def addSuccess(self, test):
        super().addSuccess(test)
        self.tally.note(test.id(), "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.tally.note(test.id(), "fail", "%s: %s" % (err[0].__name__, err[1]))

    def addError(self, test, err):
        super().addError(test, err)
        self.tally.note(test.id(), "fail", "%s: %s" % (err[0].__name__, err[1]))

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.tally.note(test.id(), "fail", "%s: %s: %s" % (subtest.id(), err[0].__name__, err[1]))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.tally.note(test.id(), "skip", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.tally.note(test.id(), "pass")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.tally.note(test.id(), "fail", "passed, but marked as an expected failure")


def load(name):
    """The tests of a module name or of a .py file."""
    if not name.endswith(".py"):
        return unittest.defaultTestLoader.loadTestsFromName(name)
    path = os.path.abspath(name)
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return unittest.defaultTestLoader.loadTestsFromModule(module)


def main(argv=None):
    parser = argparse.ArgumentParser(description="run unittest tests, recording each in $TEST_TALLY")
    parser.add_argument("--name", default="", help="a prefix for the tests' names (e.g. 'CPython 3.8: ')")
    parser.add_argument("tests", nargs="+", help="module names or .py files")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.getcwd())
    tally = Tally(args.name)
    TallyResult.tally = tally
    try:
        suite = unittest.TestSuite(load(name) for name in args.tests)
    except Exception as e:  # an import error: no test of them ran
        tally.note("loading " + " ".join(args.tests), "fail", "%s: %s" % (type(e).__name__, e))
        tally.write()
        raise
    result = unittest.TextTestRunner(resultclass=TallyResult, verbosity=1).run(suite)
    tally.write()
    if result.testsRun == 0:
        print("tally.py: no test ran", file=sys.stderr)
        return 1
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
