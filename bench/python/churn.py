#!/usr/bin/python3
"""Object churn: an interpreter's steady state.

A working set of small objects (tuples, ints beyond the small-int cache,
floats, dicts and short lists) is replaced at random slot by slot, with the
temporaries every step makes.  Most objects are 32-200 bytes, the sizes
pymalloc exists for.  Phases: peak (working set full), free (working set
dropped), end (after a little more work).
"""

import common

SLOTS = 80000


def make(kind, x, i):
    # One of five shapes, as a running program mixes them.
    if kind == 0:
        return (i, x, x * 0.5)
    if kind == 1:
        return x * 1.25
    if kind == 2:
        return x << 40
    if kind == 3:
        return {"id": i, "x": x, "tag": kind}
    return [x, i, x ^ i]


def value(o):
    # A cheap number from any shape, for the checksum.
    if isinstance(o, tuple):
        return o[1]
    if isinstance(o, float):
        return int(o)
    if isinstance(o, int):
        return o >> 40
    if isinstance(o, dict):
        return o["x"]
    return o[0]


def main():
    args = common.parse(__doc__)
    steps = int(1_600_000 * args.scale)
    slots = [None] * SLOTS
    x = 12345
    acc = 0
    for i in range(steps):
        # A 31-bit LCG, inline: random.randrange would dominate the time.
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        k = x % SLOTS
        old = slots[k]
        if old is not None:
            acc += value(old)
        slots[k] = make(x % 5, x, i)
    common.phase("peak")
    acc += sum(value(o) for o in slots if o is not None)
    del slots, old
    common.finish(acc, args.scale)


if __name__ == "__main__":
    main()
