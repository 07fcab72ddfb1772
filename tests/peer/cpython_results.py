#!/usr/bin/env python3
"""Result handling for the CPython peer suite (tests/peer/cpython.sh).

  cpython_results.py summarize LOG XML OUT
      Normalise one regrtest run: the per-test-file outcome from the
      progress lines of LOG ("[ 3/40] test_dict passed") and the
      per-test-case outcome from the --junit-xml file XML. Writes sorted
      lines to OUT:
          file<TAB>test_dict<TAB>passed
          case<TAB>test_dict<TAB>test.test_dict.DictTest.test_copy<TAB>pass

  cpython_results.py report SUMMARY
      Print what did not pass in one run (for the log).

  cpython_results.py compare STOCK EBB [EXPECTED WAY]
      Print the differences between two summaries, and on the last line
      "DIFFERING: test_a test_b ..." (the test files involved). Exit
      status 1 if they differ.  Test cases EXPECTED lists for WAY may
      fail under ebb where they pass stock (each with its reason); a test
      file that fails only by them does not count as differing.

  cpython_results.py failures LOG
      Print the start of the first few unittest failure reports in LOG.

  cpython_results.py merge SUMMARY RERUN OUT
      Replace, in SUMMARY, every test file that RERUN covers by the
      rerun's lines.
"""

import os
import re
import sys
import xml.etree.ElementTree as ET

PROGRESS = re.compile(
    r"\[\s*\d+/\d+(?:/\d+)?\] (test_\w+|\w+) (passed|failed|skipped|crashed|"
    r"interrupted|ran no tests|timed out|finished)\b(.*)$")


def file_status(word, rest):
    rest = rest.split(" -- ")[0].strip()
    if word == "failed" and rest.startswith("(env changed)"):
        return "env_changed"
    if word == "failed" and rest.startswith("(uncaught exception)"):
        return "uncaught_exception"
    if word == "skipped" and rest.startswith("(resource denied)"):
        return "resource_denied"
    return word.replace(" ", "_")


# Test files whose cases live outside the test package.
OUTSIDE = {
    "datetimetester": "test_datetime",
    "unittest": "test_unittest",
    "lib2to3": "test_lib2to3",
    "idlelib": "test_idle",
    "tkinter": "test_tkinter",
}


def case_file(name, files):
    """Map a test case id to its test file, e.g.
    test.test_json.test_decode.TestDecode.test_x -> test_json."""
    parts = name.split(".")
    mod = parts[1] if parts[0] == "test" and len(parts) > 1 else parts[0]
    if mod in files:
        return mod
    if "test_" + mod in files:
        return "test_" + mod
    return OUTSIDE.get(mod, mod)


def summarize(log, xml, out):
    lines = set()
    files = {}
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = PROGRESS.search(line.rstrip("\n"))
            if m:
                # A test re-run later (-w) reports again: the last one wins.
                files[m.group(1)] = file_status(m.group(2), m.group(3))
    for name, status in files.items():
        lines.add("file\t%s\t%s" % (name, status))
    if os.path.exists(xml) and os.path.getsize(xml) > 0:
        root = ET.parse(xml).getroot()
        for suite in root.iter("testsuite"):
            cases = []
            votes = {}
            for tc in suite.iter("testcase"):
                name = " ".join(tc.get("name", "?").split())
                kids = {c.tag for c in tc}
                if "error" in kids:
                    status = "error"
                elif "failure" in kids:
                    status = "fail"
                elif "skipped" in kids:
                    status = "skip"
                else:
                    status = "pass"
                owner = case_file(name, files)
                if owner in files:
                    votes[owner] = votes.get(owner, 0) + 1
                cases.append((owner, name, status))
            # Cases that do not name their test file (doctests of other
            # modules) belong to the file that most of their suite names.
            fallback = max(sorted(votes), key=votes.get) if votes else None
            for owner, name, status in cases:
                if owner not in files and fallback:
                    owner = fallback
                lines.add("case\t%s\t%s\t%s" % (owner, name, status))
    with open(out, "w", encoding="utf-8") as f:
        for line in sorted(lines):
            f.write(line + "\n")


def load(path):
    files, cases = {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "file":
                files[parts[1]] = parts[2]
            elif parts[0] == "case":
                cases[parts[2]] = (parts[1], parts[3])
    return files, cases


def report(path):
    files, cases = load(path)
    counts = {}
    for status in files.values():
        counts[status] = counts.get(status, 0) + 1
    print("test files: %d (%s)" % (len(files), ", ".join(
        "%d %s" % (n, s) for s, n in sorted(counts.items()))))
    ccounts = {}
    for _, status in cases.values():
        ccounts[status] = ccounts.get(status, 0) + 1
    print("test cases: %d (%s)" % (len(cases), ", ".join(
        "%d %s" % (n, s) for s, n in sorted(ccounts.items()))))
    for name in sorted(files):
        if files[name] not in ("passed", "skipped", "resource_denied"):
            bad = sorted(c for c, (fl, st) in cases.items()
                         if fl == name and st in ("fail", "error"))
            print("  not passed: %s %s" % (name, files[name]))
            for c in bad[:10]:
                print("      %s %s" % (c, cases[c][1]))
            if len(bad) > 10:
                print("      ... and %d more" % (len(bad) - 10))
        elif files[name] != "passed":
            print("  %s: %s" % (files[name].replace("_", " "), name))


def load_expected(path, way):
    """Test cases allowed to fail the given way although they pass stock:
    lines of "way<TAB>test case<TAB>why" (cpython_expected.txt)."""
    expected = {}
    if path:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    w, case, why = line.rstrip("\n").split("\t", 2)
                    if w == way:
                        expected[case] = why
    return expected


def difference_rank(stock, ebb):
    """0 for a case ebb broke (it passed stock), 1 for other changes, 2 for
    a case only ebb's run has (its file crashed or timed out stock)."""
    if stock == "missing":
        return 2
    if stock in ("pass", "skip") and ebb in ("fail", "error", "missing"):
        return 0
    return 1


def compare(a, b, expected_path=None, way=None):
    fa, ca = load(a)
    fb, cb = load(b)
    expected = load_expected(expected_path, way)
    differing = set()
    excused = {}  # test file -> its expected differing cases
    found = []  # (rank, line): what ebb broke first, so that a log's tail shows it
    for name in sorted(set(ca) | set(cb)):
        if name == "?":
            continue  # regrtest writes a failing subTest as a bare <testcase/>
        sa = ca.get(name, (None, "missing"))
        sb = cb.get(name, (None, "missing"))
        if sa[1] == sb[1]:
            continue
        # A case that fails in a subTest is written by regrtest's JUnit
        # output as a nameless <testcase/> (without its failure): it shows
        # as missing here, and its file as failed.
        if name in expected and sa[1] == "pass" and sb[1] in ("fail", "missing"):
            excused.setdefault(sa[0] or sb[0], []).append(name)
            print("expected: test case %s: stock pass, ebb %s (%s)" % (name, sb[1], expected[name]))
            continue
        differing.add(sa[0] or sb[0])
        found.append((difference_rank(sa[1], sb[1]),
                      "test case %s: stock %s, ebb %s" % (name, sa[1], sb[1])))
    found.sort(key=lambda item: item[0])
    for _, line in found[:40]:
        print(line)
    if len(found) > 40:
        print("... and %d more differing test cases" % (len(found) - 40))
    for name in sorted(set(fa) | set(fb)):
        sa, sb = fa.get(name, "missing"), fb.get(name, "missing")
        if sa == sb:
            continue
        if name in excused and name not in differing and (sa, sb) == ("passed", "failed"):
            continue  # failed only by its expected test cases
        print("test file %s: stock %s, ebb %s" % (name, sa, sb))
        differing.add(name)
    print("DIFFERING: %s" % " ".join(sorted(differing)))
    return 1 if differing else 0


def failures(log, most=3, lines=14):
    """Print the start of the first few failure reports unittest wrote in
    LOG (the blocks that open with a line of "=" and "FAIL:" or "ERROR:"),
    so that a failing run's log says why without opening it."""
    with open(log, encoding="utf-8", errors="replace") as f:
        text = f.read().splitlines()
    shown = 0
    i = 0
    while i < len(text) and shown < most:
        if text[i].startswith("=" * 20) and i + 1 < len(text) and \
                text[i + 1].startswith(("FAIL:", "ERROR:")):
            block = [text[i + 1]]
            j = i + 2
            while j < len(text) and not text[j].startswith(("=" * 20, "Ran ")):
                block.append(text[j])
                j += 1
            block = [b for b in block if b.strip() and not b.startswith("-" * 20)]
            for b in block[:lines]:
                print(b)
            if len(block) > lines:
                print("    ... (%d more lines in %s)" % (len(block) - lines, log))
            shown += 1
            i = j
        else:
            i += 1


def merge(summary, rerun, out):
    with open(rerun, encoding="utf-8") as f:
        new = [line for line in f]
    covered = {line.split("\t")[1] for line in new}
    with open(summary, encoding="utf-8") as f:
        old = [line for line in f if line.split("\t")[1] not in covered]
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(sorted(old + new))


def main():
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "summarize":
        summarize(*args[1:])
    elif len(args) == 2 and args[0] == "report":
        report(args[1])
    elif len(args) == 5 and args[0] == "compare":
        sys.exit(compare(*args[1:]))
    elif len(args) == 3 and args[0] == "compare":
        sys.exit(compare(*args[1:]))
    elif len(args) == 2 and args[0] == "failures":
        failures(args[1])
    elif len(args) == 4 and args[0] == "merge":
        merge(*args[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
