"""pytest's hooks for the test tally (tests/tally/tally.py): with
TEST_TALLY set, as scripts/test.sh sets it, each test's result is recorded
there, skips with their reason."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tally"))
from tally import pytest_collectreport, pytest_runtest_logreport, pytest_sessionfinish  # noqa: E402,F401
