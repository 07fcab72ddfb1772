"""The heap map: ebb.heap_map() as text, and the report's "heap_map" (the
HTML report draws it), whose pools add up to the size classes' counts."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import run_python  # noqa: E402

BUILD = """
import ebb, json
keep = [bytearray(200) for i in range(200000)]   # about 40 MiB of one class
drop = [bytes(3000) for i in range(3000)]
del drop
"""


class HeapMapTest(unittest.TestCase):
    def check_way(self, way):
        p = run_python(BUILD + """
ebb.collect()
print(ebb.heap_map())
print("JSON", json.dumps(ebb.report("json")))
""", way=way, extra_env={"EBB_SAMPLE_RATE": "0"})
        text, _, data = p.stdout.partition("\nJSON ")
        assert text.startswith("ebb heap map: "), text[:200]
        rows = [line for line in text.splitlines() if line.startswith("0x")]
        # 40 MiB of 200-byte blocks fills at least 9 arenas of 4 MiB
        assert len(rows) >= 9, text
        assert sum(row.count("#") for row in rows) >= 500, text
        report = json.loads(data)
        hm = report["heap_map"]
        assert hm["slot_bytes"] == 65536 and hm["arena_bytes"] == 4 << 20
        assert len(hm["arenas"]) == len(rows)
        used, pools = {}, {}
        for arena in hm["arenas"]:
            for pool in arena["pools"]:
                assert 0 <= pool["used"] <= pool["blocks"], pool
                assert pool["state"] in ("full", "partial", "empty", "purged"), pool
                if pool["used"] == pool["blocks"]:
                    assert pool["state"] == "full", pool
                used[pool["block_size"]] = used.get(pool["block_size"], 0) + pool["used"]
                pools[pool["block_size"]] = pools.get(pool["block_size"], 0) + 1
        # The address space too, as `ebb map --json` has it: ebb's arenas in it.
        am = report["address_space_map"]
        assert am["schema"] == "ebb.map/1" and am["ebb"] is True, am.get("schema")
        arenas = [g for g in am["groups"] if g["kind"] == "ebb"]
        assert arenas and arenas[0]["size"] >= len(hm["arenas"]) * hm["arena_bytes"], arenas
        assert am["free"]["largest"] and am["grid"], am["free"]
        # The map and the class statistics are two views of one heap.
        for c in report["classes"]:
            self.assertEqual(used.get(c["size"], 0), c["blocks"], c)
            self.assertEqual(pools.get(c["size"], 0), c["pools"], c)

    def test_under_ebb_run(self):
        self.check_way("run")

    def test_after_install(self):
        self.check_way("install")


if __name__ == "__main__":
    unittest.main()
