#!/usr/bin/python3
"""Threaded producer/consumer: objects made in one thread, freed in another.

A producer thread builds batches of small records (tuples, dicts, strs,
floats) and hands them through a bounded queue.Queue to a consumer thread,
which reads them, keeps one record in eight (a growing result) and drops
the rest, so nearly every object is freed by a thread that did not
allocate it; the main thread finally drops what the consumer kept.  Under
the GIL the threads take turns, but each turn is a run of allocations on
one side and frees on the other.  Phases: peak (kept records at their
most), free (dropped by the main thread), end (after a little more work).
"""

import queue
import threading

import common

BATCH = 200


def producer(q, batches):
    x = 99
    for b in range(batches):
        items = []
        for i in range(BATCH):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            items.append({"k": (b, i), "v": x * 0.001, "s": "r%d" % x})
        q.put(items)
    q.put(None)


def consumer(q, kept, sums):
    total = 0
    n = 0
    while True:
        items = q.get()
        if items is None:
            break
        for r in items:
            total += int(r["v"]) + len(r["s"])
            n += 1
            if n % 8 == 0:
                kept.append(r)
    sums.append(total)


def main():
    args = common.parse(__doc__)
    batches = int(9000 * args.scale)
    q = queue.Queue(maxsize=32)
    kept, sums = [], []
    threads = [threading.Thread(target=producer, args=(q, batches)),
               threading.Thread(target=consumer, args=(q, kept, sums))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    common.phase("peak")
    acc = sums[0] + len(kept)
    del kept
    common.finish(acc, args.scale)


if __name__ == "__main__":
    main()
