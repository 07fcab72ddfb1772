"""The ebb module's API, both ways in: ebb.install() in a running
interpreter (InstallTest) and `ebb run` (RunTest)."""
import copy
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import PYPATH, ROOT, run_python  # noqa: E402

sys.path.insert(0, PYPATH)
import ebb  # noqa: E402  (the module in this process: plain, not installed)

SCHEMA = os.path.join(ROOT, "schema", "ebb.report-1.json")

# Run by an interpreter with jsonschema: the reports on stdin ({"valid":
# [...], "invalid": [...]}) against the schema named in argv[1].
CHECK_REPORTS = """
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
check = jsonschema.Draft202012Validator(schema)
check.check_schema(schema)
given = json.load(sys.stdin)
for report in given["valid"]:
    check.validate(report)
for i, report in enumerate(given["invalid"]):
    assert not check.is_valid(report), "damaged report %d passes the schema" % i
"""


def schema_checker():
    """This interpreter if it has jsonschema, else Debian's if it has, else None."""
    for py in dict.fromkeys((sys.executable, "/usr/bin/python3")):
        if os.path.exists(py) and subprocess.run([py, "-c", "import jsonschema"],
                                                 capture_output=True).returncode == 0:
            return py
    return None


def check_reports(checker, valid, invalid):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    p = subprocess.run([checker, "-c", CHECK_REPORTS, SCHEMA], capture_output=True, text=True,
                       env=env, input=json.dumps({"valid": valid, "invalid": invalid}), timeout=120)
    assert p.returncode == 0, "%s found a report against the schema:\n%s" % (checker, p.stderr)


class PlainTest(unittest.TestCase):
    """The module in a plain interpreter that did not install it."""

    def test_version_and_heap_of_a_plain_interpreter(self):
        assert ebb.__version__.count(".") == 2
        assert ebb.heap == "module"  # no libebb.so in this process
        assert ebb.installed() is False

    def test_api_argument_errors(self):
        with self.assertRaises(TypeError):
            ebb.on_pressure(42)
        with self.assertRaises(ValueError):
            ebb.set_limit(-1)
        with self.assertRaises(ValueError):
            ebb.set_limit("lots")
        with self.assertRaises(TypeError):
            ebb.set_limit(1.5)
        with self.assertRaises(TypeError):
            ebb.collect(1, 2)
        assert ebb.get_limit() == 0
        assert ebb.check() == 0

    def test_docstrings_and_stub(self):
        for name in ebb.__all__:
            obj = getattr(ebb, name)
            if callable(obj):
                assert obj.__doc__ and len(obj.__doc__) > 20, name
        stub = os.path.join(os.path.dirname(ebb.__file__), "__init__.pyi")
        with open(stub) as f:
            text = f.read()
        for name in ebb.__all__:
            assert name in text, name

    def test_the_tests_build_has_the_test_hooks(self):
        # `make python` builds with EBB_BUILD_TEST_HOOKS=1; a plain pip
        # install has none of them (test_packaging), and the package itself
        # names none.
        for name in ("_manages", "_raw_stress"):
            hook = getattr(ebb._ebb, name, None)
            assert hook is not None, "ebb._ebb.%s is missing: build with `make python`" % name
            assert "(for tests)" in hook.__doc__, name
            assert not hasattr(ebb, name), name

    def test_blocks_made_before_install_are_freed_by_their_allocator(self):
        run_python("""
            import gc, ebb
            before = [bytes(i % 700) for i in range(20000)]     # pymalloc and malloc blocks
            grow = list(range(100))                             # resized after install
            dicts = [{j: j for j in range(i % 20)} for i in range(5000)]
            assert not ebb._ebb._manages(before[1000]) and not ebb._ebb._manages(grow)
            assert ebb.install() is True
            after = [bytes(i % 700) for i in range(20000)]
            assert ebb._ebb._manages(after[1000])
            grow.extend(range(100000))                          # realloc of an old block
            for d in dicts:
                d.update({k: k for k in range(50)})             # old tables resized
            del before, dicts
            gc.collect()
            assert sum(grow) == sum(range(100)) + sum(range(100000))
            assert ebb.check() == 0
            assert ebb.stats()["foreign_frees"] == 0
        """, "plain")

    def test_install_under_a_running_tracemalloc(self):
        # tracemalloc started first would put pymalloc back when it stops
        # (at exit) and hand ebb's blocks to pymalloc: install() restarts it
        # on top of ebb.  Once aborted in munmap_chunk() at exit.
        run_python("""
            import tracemalloc, ebb
            assert tracemalloc.is_tracing() and tracemalloc.get_traceback_limit() == 3
            assert ebb.install() is True
            assert tracemalloc.is_tracing() and tracemalloc.get_traceback_limit() == 3
            xs = [str(i) * 4 for i in range(10000)]
            assert ebb._ebb._manages(xs[100])
            assert tracemalloc.get_traced_memory()[0] > 0
            tracemalloc.stop()
            assert ebb.installed() and ebb._ebb._manages(str(12345) * 4)
            del xs
            tracemalloc.start()
        """, "plain", extra_env={"PYTHONTRACEMALLOC": "3"})


class BothWays:
    """Each test runs in a child interpreter that reached ebb `way`."""
    way = None

    def test_install_is_harmless_twice_and_installed_tells(self):
        out = run_python("""
            import ebb
            assert ebb.installed() is True
            assert ebb.install() is False      # already: harmless
            assert ebb.installed() is True
            print(ebb.heap)
        """, self.way).stdout.split()
        assert out == (["module"] if self.way == "install" else ["process"])

    def test_objects_come_from_ebb(self):
        run_python("""
            import ebb
            xs = [str(i) * 3 for i in range(1000)]
            assert all(ebb._ebb._manages(x) for x in xs)
            # Dicts and lists come from CPython's free lists first (up to 80
            # each, made before install): most of a thousand are new.
            ds = [{i: [i]} for i in range(1000)]
            assert sum(ebb._ebb._manages(d) for d in ds) > 900
            assert sum(ebb._ebb._manages(d[i]) for i, d in enumerate(ds)) > 900
            assert ebb.check() == 0
        """, self.way)

    def test_stats_add_up_and_track_live_memory(self):
        run_python("""
            import ebb
            s0 = ebb.stats()
            for k in ("live", "committed", "resident", "peak_committed", "purged", "mapped",
                      "limit", "classes"):
                assert k in s0, k
            parts = ("mapped_meta", "mapped_pools", "mapped_free_slots", "mapped_large",
                     "mapped_large_cached")
            assert sum(s0[p] for p in parts) == s0["mapped"]
            assert len(s0["classes"]) == 64 and s0["classes"][0]["size"] == 16
            keep = [bytes(200) for _ in range(200000)]          # ~45 MiB of small objects
            s1 = ebb.stats()
            assert s1["live"] - s0["live"] > 40 << 20, (s0["live"], s1["live"])
            assert s1["committed"] >= s1["live"]
            cls = [c for c in s1["classes"] if c["size"] == 240][0]
            assert cls["used"] >= 200000 and cls["used_bytes"] == cls["used"] * 240
            assert s1["resident"] > s1["committed"] // 2
            del keep
        """, self.way)

    def test_stats_detail_peak_time_and_rss(self):
        # Builds ~150 MiB of small objects and large buffers, frees most:
        # the per-class detail adds up to the totals, the peak keeps the time
        # it was reached, and stats(rss=True) takes the RSS apart into parts
        # that add up to smaps' figure within 2%.
        out = run_python("""
            import ebb, time
            def rss_checked(tag):
                s = ebb.stats(rss=True)
                r = s["rss"]
                ebb_parts = ("live_small", "live_large", "thread_caches", "pool_free",
                             "pools_empty", "free_slots", "large_cached", "metadata")
                other_parts = ("files", "stacks", "brk_heap", "anonymous", "kernel")
                assert r["ebb"] == sum(r[k] for k in ebb_parts), r
                assert r["other"] == sum(r[k] for k in other_parts), r
                assert r["rss"] == r["ebb"] + r["other"] + r["unaccounted"], r
                assert abs(r["unaccounted"]) * 50 <= r["rss"], (tag, r)
                assert r["ebb"] == (r["committed"] - r["committed_not_resident"]
                                    + r["resident_not_committed"]), r
                # statm's RSS, read a moment apart from smaps'
                assert abs(s["resident"] - r["rss"]) <= r["rss"] // 20 + (2 << 20), (s, r)
                assert r["files"] > 0 and r["stacks"] > 0 and r["metadata"] > 0, r
                print("%s: rss %d, unaccounted %d (%.3f%%)"
                      % (tag, r["rss"], r["unaccounted"], 100.0 * r["unaccounted"] / r["rss"]))
                return s

            def detail_checked(s):
                slack = 1 << 20   # stats() allocates while it reads
                cls = s["classes"]
                for c in cls:
                    for k in ("live", "live_bytes", "cached", "cached_bytes", "sampled",
                              "pools_empty", "free_bytes", "committed", "empty_committed"):
                        assert k in c, (k, c)
                    assert c["used"] == c["live"] + c["cached"] + c["sampled"], c
                    assert c["live_bytes"] == c["live"] * c["size"], c
                    assert c["empty_committed"] <= c["committed"] <= c["pool_bytes"], c
                live = sum(c["live_bytes"] for c in cls)
                assert abs(live - s["small_live"]) <= slack, (live, s["small_live"])
                assert abs(s["small_live"] + s["small_cached"] - s["small_used"]) <= slack, s
                assert abs(sum(c["pool_bytes"] for c in cls) - s["mapped_pools"]) <= slack, s
                pools = sum(c["pools"] for c in cls)
                assert abs(pools - s["pools_in_use"] - s["pools_empty"]) <= 16, s
                lg = s["large"]
                assert lg["blocks"] == s["large_blocks"] and lg["bytes"] == s["large_used"], lg
                assert lg["cached_bytes"] == s["mapped_large_cached"], lg
                assert lg["mapped"] == s["mapped_large"] + s["mapped_large_cached"], lg

            s0 = rss_checked("start")
            t0 = time.time_ns()
            keep = [(i, str(i) * 3) for i in range(1000000)]          # ~100 MiB small
            bufs = [bytearray(1 << 20) for _ in range(48)]          # 48 MiB large
            s1 = rss_checked("built")
            t1 = time.time_ns()
            detail_checked(s1)
            assert s1["peak_committed"] > s0["peak_committed"] + (120 << 20), (s0, s1)
            assert t0 - 5000000 <= s1["peak_committed_time_ns"] <= t1 + 5000000, (t0, t1)
            assert 0 < s1["peak_committed_uptime_ns"] <= s1["uptime_ns"], s1
            del keep[::2]
            s2 = rss_checked("half freed")
            detail_checked(s2)
            assert s2["pool_free"] > 20 << 20, s2
            del keep, bufs
            ebb.collect()
            s3 = rss_checked("freed")
            # Shrinking leaves the peak and its time where they were (s2's:
            # s1's reading itself allocated after it was taken).
            assert s3["committed"] < s2["committed"] - (100 << 20)
            assert s3["peak_committed"] == s2["peak_committed"]
            assert s3["peak_committed_uptime_ns"] == s2["peak_committed_uptime_ns"]
            drift = abs(s3["peak_committed_time_ns"] - s2["peak_committed_time_ns"])
            assert drift < 5000000, drift  # wall time from the monotonic clock
            assert "rss" not in ebb.stats()
        """, self.way).stdout
        assert out.count("unaccounted") == 4, out

    def test_report_text_and_json(self):
        run_python('''
            import ebb
            keep = [bytes(900) for _ in range(20000)]           # 20 MiB in the 1024-byte class
            text = ebb.report()
            assert text.startswith("== ebb report: pid ") and text.endswith("== end of ebb report\\n")
            for words in ("reason      asked for (ebb_report)", "limit       none", ", live ",
                          "size classes by pool bytes", "\\n  1024 B: ", "largest free range"):
                assert words in text, (words, text)
            j = ebb.report("json")
            assert j["schema"] == "ebb.report/1" and j["limit"] is None and j["failure"] is None
            assert sum(j["held"].values()) == j["memory"]["mapped"], j["held"]
            big = [c for c in j["classes"] if c["size"] == 1024][0]
            assert big["blocks"] >= 20000 and big["bytes"] == big["blocks"] * 1024
            assert j["memory"]["live"] >= 20000 * 1024
            ebb.set_limit(ebb.stats()["committed"] + (16 << 20))
            try:
                bytearray(64 << 20)
            except MemoryError:
                pass
            else:
                raise AssertionError("64 MiB allocated with the limit 16 MiB away")
            j = ebb.report("json")
            assert j["limit"]["source"] == "ebb_set_limit", j["limit"]
            page = ebb.report("html")
            assert page.startswith("<!DOCTYPE html>") and '"schema":"ebb.report/1"' in page, page[:300]
            try:
                ebb.report("xml")
            except ValueError as e:
                assert "'text', 'json' or 'html'" in str(e)
            else:
                raise AssertionError("report('xml') accepted")
        ''', self.way)

    def test_limit_auto_and_info(self):
        run_python('''
            import ebb
            info = ebb.limit_info()
            assert info["from"] == "none" and info["limit"] == 0, info
            ebb.set_limit(64 << 20)
            info = ebb.limit_info()
            assert info["from"] == "api" and info["limit"] == 64 << 20, info
            assert info["soft"] == (64 << 20) * 90 // 100 and info["reserve"] == (64 << 20) // 32
            ebb.set_limit("50%")
            half = ebb.limit_info()
            assert half["percent"] == 50 and half["from"] in ("cgroup1", "cgroup2", "memory",
                                                               "rlimit_as", "rlimit_data"), half
            ebb.set_limit("auto")
            full = ebb.limit_info()
            assert full["percent"] == 100 and full["effective"] > 0 and full["source"], full
            assert abs(full["limit"] // 2 - half["limit"]) < (64 << 20), (full, half)
            ebb.set_limit("512M")
            assert ebb.get_limit() == 512 << 20
            for bad in ("lots", "0%", "101%", "50x"):
                try:
                    ebb.set_limit(bad)
                except ValueError as e:
                    assert "'auto' or 'N%'" in str(e), e
                else:
                    raise AssertionError("set_limit(%r) accepted" % bad)
            ebb.set_limit(None)
            assert ebb.limit_info()["limit"] == 0
        ''', self.way)

    def test_report_json_follows_its_schema(self):
        # The reports come from the interpreter under test; any interpreter
        # with jsonschema checks them (the pyenv ones have none).
        checker = schema_checker()
        if checker is None:
            self.skipTest("no interpreter here imports jsonschema (Debian's python3-jsonschema "
                          "for /usr/bin/python3, which scripts/deps.sh installs)")
        p = run_python('''
            import json, ebb
            keep = [bytes(100) for _ in range(10000)]
            plain = ebb.report("json")
            ebb.set_limit(ebb.stats()["committed"] + (8 << 20))
            try:
                bytearray(64 << 20)
            except MemoryError:
                pass
            else:
                raise AssertionError("64 MiB allocated with the limit 8 MiB away")
            print(json.dumps([plain, ebb.report("json")]))
        ''', self.way)
        plain, limited = json.loads(p.stdout.strip().split("\n")[-1])
        assert limited["limit"]["source"] == "ebb_set_limit", limited["limit"]
        # The report written at the first refusal, with its failure, too.
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "report.json")
            run_python('''
                import ebb
                ebb.set_limit(ebb.stats()["committed"] + (8 << 20))
                try:
                    bytearray(64 << 20)
                except MemoryError:
                    pass
                else:
                    raise AssertionError("64 MiB allocated with the limit 8 MiB away")
            ''', self.way, extra_env={"EBB_REPORT": path})
            with open(path) as f:
                first = json.load(f)
        assert first["failure"]["kind"] == "limit" and first["failure"]["request"] >= 64 << 20
        # The schema is not vacuous: a missing category, a negative size or
        # another version fails.
        damaged = []
        assert limited["rss"]["rss"] > 0 and limited["memory"]["peak_committed_time"], limited
        for damage in (lambda r: r["held"].pop("metadata"),
                       lambda r: r["limit"].update(bytes=-1),
                       lambda r: r.update(schema="ebb.report/2"),
                       lambda r: r["rss"].pop("live_small"),
                       lambda r: r["rss"].update(ebb=-1),
                       lambda r: r["memory"].update(peak_committed_time="yesterday")):
            bad = copy.deepcopy(limited)
            damage(bad)
            damaged.append(bad)
        check_reports(checker, valid=[plain, limited, first], invalid=damaged)

    def test_report_names_the_python_line_that_allocated_most(self):
        p = run_python('''
            import ebb
            def build_paths(n):
                return [("node", i, float(i)) for i in range(n)]
            line = build_paths.__code__.co_firstlineno + 1
            def small():
                return [str(i) for i in range(2000)]
            keep = build_paths(300000)
            other = small()
            text = ebb.report()
            top = text[text.index("\\n  1. ~"):]
            top = top[:top.index("\\n  2. ~")] if "\\n  2. ~" in top else top
            print(line)
            print(top)
            j = ebb.report("json")
            first = j["sites"]["top"][0]
            # 3.12 inlines comprehensions (PEP 709): the line is build_paths's.
            assert first["stack"] and first["stack"][0] in (
                "<string>:%d <listcomp>" % line, "<string>:%d build_paths" % line), first
            assert any(s.endswith(" build_paths") for s in first["stack"]), first
            assert j["sites"]["estimated"] is True and first["live_bytes"] > 8 << 20, first
        ''', self.way, extra_env={"EBB_SAMPLE_RATE": "64K"})
        line = int(p.stdout.split()[0])
        assert (" blocks  <string>:%d <listcomp> <- " % line in p.stdout or
                " blocks  <string>:%d build_paths <- " % line in p.stdout), p.stdout
        # Without the hook the sites have no Python stack.
        p = run_python('''
            import ebb
            keep = [("node", i, float(i)) for i in range(300000)]
            assert all(not s["stack"] for s in ebb.report("json")["sites"]["top"])
        ''', self.way, extra_env={"EBB_SAMPLE_RATE": "64K", "EBB_PYTHON_STACKS": "0"})

    def test_first_failure_writes_the_report(self):
        p = run_python('''
            import ebb
            ebb.set_limit(ebb.stats()["committed"] + (16 << 20))
            refused = 0
            for _ in range(3):
                try:
                    bytearray(64 << 20)
                except MemoryError:
                    refused += 1
            print("went on after %d refusals" % refused)
        ''', self.way)
        assert p.stdout.strip() == "went on after 3 refusals", p.stdout
        assert p.stderr.count("== ebb report: pid") == 1, p.stderr
        assert "reason      first allocation refused at the limit" in p.stderr, p.stderr
        assert "failed      64.0 MiB refused at the limit of " in p.stderr, p.stderr

    def test_full_gc_purges_at_once(self):
        # The purge delay is set long: only the gc.callbacks hook can give the
        # memory back right after gc.collect().
        run_python("""
            import gc, ebb
            gc.disable()
            class Node:
                def __init__(self): self.me = self; self.pad = [0] * 30
            junk = [Node() for _ in range(100000)]           # cycles: only gc frees them
            before = ebb.stats()["committed"]
            del junk
            gc.collect()
            after = ebb.stats()
            assert after["committed"] < before - (20 << 20), (before, after["committed"])
        """, self.way, extra_env={"EBB_PURGE_DELAY_MS": "600000"})

    def test_collect_gives_memory_back(self):
        run_python("""
            import ebb
            keep = [bytes(1000) for _ in range(50000)]
            before = ebb.stats()["committed"]
            del keep
            ebb.collect()
            assert ebb.stats()["committed"] < before - (30 << 20)
            ebb.collect(force=True)
        """, self.way, extra_env={"EBB_PURGE_DELAY_MS": "-1"})

    def test_limit_memory_error_names_the_limit_and_recovers(self):
        run_python("""
            import ebb
            ebb.collect(force=True)     # nothing free but not given back: the room is 64 MiB
            ebb.set_limit(ebb.stats()["committed"] + (64 << 20))
            limit = ebb.get_limit()
            try:
                bytearray(200 << 20)
            except MemoryError as e:
                msg = str(e)
            else:
                raise AssertionError("no MemoryError at the limit")
            assert "limit of %.1f MiB" % (limit / 2**20) in msg, msg
            keep = []
            try:
                while True:
                    keep.append(bytes(1 << 20))
            except MemoryError as e:
                assert "ebb memory limit" in str(e)
            # 1 MiB blocks fill the 64 MiB, less the emergency reserve (1/32
            # of the limit) and a page of each block's own: 61 of them here.
            assert 58 <= len(keep) <= 64, len(keep)
            del keep[:]
            again = bytearray(32 << 20)                   # room again after the frees
            ebb.set_limit(None)
            assert ebb.get_limit() == 0
            big = bytearray(300 << 20)
            try:
                raise MemoryError("mine")
            except MemoryError as e:
                assert str(e) == "mine"
        """, self.way)

    def test_pressure_collects_cycles_before_failing(self):
        # 600 MiB of cyclic garbage through a 64 MiB limit with the collector
        # off: it fits only because pressure runs a collection in time.
        run_python("""
            import gc, ebb
            gc.disable()
            seen = []
            @ebb.on_pressure
            def note(level, committed, limit):
                seen.append((level, committed, limit))
            ebb.set_limit(ebb.stats()["committed"] + (64 << 20))
            for i in range(600):
                a = [bytes(1 << 20)]
                a.append(a)                          # a cycle holding 1 MiB
                del a
            assert seen, "no pressure callback"
            assert all(level in ("soft", "hard") for level, _, _ in seen)
            assert seen[0][2] == ebb.get_limit()
            print(len(seen))
        """, self.way)

    def test_pressure_callback_errors_are_reported_not_raised(self):
        p = run_python("""
            import gc, ebb
            gc.disable()
            @ebb.on_pressure
            def broken(level, committed, limit):
                raise RuntimeError("callback failed on purpose")
            ebb.set_limit(ebb.stats()["committed"] + (32 << 20))
            for i in range(100):
                a = [bytes(1 << 20)]; a.append(a); del a
            print("survived")
        """, self.way)
        assert "survived" in p.stdout
        assert "callback failed on purpose" in p.stderr

    def test_raw_domain_from_threads_without_the_gil(self):
        run_python("""
            import ebb, threading
            assert ebb._ebb._raw_stress(4, 50000) == 0
            def work():
                for _ in range(20):
                    xs = [str(i) for i in range(5000)]
                    del xs
            ts = [threading.Thread(target=work) for _ in range(4)]
            for t in ts: t.start()
            for t in ts: t.join()
            assert ebb.check() == 0
        """, self.way)

    def test_fork_after_install(self):
        run_python("""
            import ebb, os
            keep = [bytes(300) for _ in range(10000)]
            pid = os.fork()
            if pid == 0:
                more = [bytes(300) for _ in range(10000)]
                del keep[:5000], more
                ok = ebb.check() == 0 and ebb.installed()
                os._exit(0 if ok else 1)
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
            assert ebb.check() == 0
        """, self.way)

    def test_subinterpreter(self):
        try:
            import _testcapi  # noqa: F401
        except ImportError:
            self.skipTest("_testcapi is not available for this interpreter")
        run_python('''
            import ebb, _testcapi
            code = """if 1:
                import ebb
                xs = [str(i) for i in range(10000)]
                assert ebb.installed()
                assert ebb._ebb._manages(xs[10])
                s = ebb.stats(); ebb.collect()
                try:
                    ebb.on_pressure(print)
                except RuntimeError:
                    pass
                else:
                    raise AssertionError("on_pressure in a subinterpreter")
            """
            assert _testcapi.run_in_subinterp(code) == 0
            assert ebb.check() == 0
        ''', self.way)


    def test_capi_memory_tests(self):
        # CPython's own C-level checks of its memory API (Debian ships no
        # test_capi, but _testcapi has them): allocations of 0 bytes, and
        # hooks set on top of ebb's allocators and taken off again.  Then
        # an allocator that fails on purpose, over ebb's: MemoryError, and
        # a clean recovery once it is removed.
        try:
            import _testcapi  # noqa: F401
        except ImportError:
            self.skipTest("_testcapi is not available for this interpreter")
        run_python("""
            import _testcapi, ebb
            for name in ("test_pymem_alloc0", "test_pymem_setrawallocators",
                         "test_pymem_setallocators", "test_pyobject_setallocators"):
                getattr(_testcapi, name)()
            class Thing:
                pass
            _testcapi.set_nomemory(0)
            try:
                for _ in range(1000):
                    Thing()
            except MemoryError:
                failed = True
            else:
                failed = False
            _testcapi.remove_mem_hooks()
            assert failed, "no MemoryError with every allocation failing"
            things = [Thing() for _ in range(10000)]
            assert ebb.installed() and ebb.check() == 0
        """, self.way)


class InstallTest(BothWays, unittest.TestCase):
    way = "install"


class RunTest(BothWays, unittest.TestCase):
    way = "run"


if __name__ == "__main__":
    unittest.main()
