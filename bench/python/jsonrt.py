#!/usr/bin/python3
"""JSON round trips: records built, dumped, parsed back, checked, edited.

Each batch is a list of records (dicts of ints, floats, short strings and
small lists, nested one level), serialised with json.dumps, parsed with
json.loads (the C accelerator: a burst of small dicts, lists, strs and
floats), compared with the original and re-serialised after an edit.  One
parsed batch in three is kept, a live set of parsed documents like a cache
of API responses.  Phases: peak (cache full), free (cache dropped), end.
"""

import json

import common


def batch(seed, n):
    out = []
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append({
            "id": seed * 1000 + i,
            "name": "user%d" % (x % 10007),
            "score": (x % 10000) / 100.0,
            "tags": ["t%d" % (x % 13), "t%d" % (x % 7)],
            "geo": {"lat": (x % 180000) / 1000.0 - 90, "lon": (x % 360) - 180.0},
            "active": bool(x & 1),
        })
    return out


def main():
    args = common.parse(__doc__)
    batches = int(1200 * args.scale)
    cache = []
    acc = 0
    for b in range(batches):
        records = batch(b, 60 + b % 140)
        text = json.dumps(records)
        back = json.loads(text)
        if back != records:
            raise SystemExit("json round trip changed the data")
        back[0]["score"] += 1
        again = json.dumps(back, sort_keys=True)
        acc += len(text) + len(again) + int(sum(r["score"] for r in back))
        if b % 3 == 0:
            cache.append(back)
    common.phase("peak")
    acc += sum(len(c) for c in cache)
    del cache, records, back, text, again
    common.finish(acc, args.scale)


if __name__ == "__main__":
    main()
