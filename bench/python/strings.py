#!/usr/bin/python3
"""String building: formatting, joining, splitting, appending, encoding.

Documents of 10 to 2000 lines are formatted line by line (f-strings),
joined, upper-cased, split again, grown by += (which CPython resizes in
place when it can, a realloc), encoded to UTF-8 and searched.  Strings run
from a few bytes to about 100 KB, so both pymalloc's sizes and the C
library's are exercised.  Every other document is kept, so the live set
grows to tens of MiB.  Phases: peak (all kept documents alive), free (they
are dropped), end (after a little more work).
"""

import common

NAMES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]


def document(seed, n_lines):
    lines = []
    x = seed
    for i in range(n_lines):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        name = NAMES[x & 7]
        lines.append(f"{i:05d}:{name}:{x % 1000 / 7:.3f}:{name * (x % 4)}")
    return "\n".join(lines)


def main():
    args = common.parse(__doc__)
    docs = int(1400 * args.scale)
    kept = []
    acc = 0
    for d in range(docs):
        n_lines = 10 + (d * 7919) % 1990
        text = document(d, n_lines)
        parts = text.upper().split("\n")
        # Appending piece by piece: the builder pattern that realloc serves.
        summary = ""
        for p in parts[::3]:
            summary += p[:12] + ";"
        data = summary.encode()
        acc += len(text) + data.count(b"ALPHA") + len(parts)
        acc += text.find("theta")
        if d % 2 == 0:
            kept.append((text, summary, data))
    common.phase("peak")
    acc += sum(len(t) + len(s) for t, s, _ in kept)
    del kept, text, parts, summary, data
    common.finish(acc, args.scale)


if __name__ == "__main__":
    main()
