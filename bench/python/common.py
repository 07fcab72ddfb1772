"""What every workload in this directory shares: the --scale option, RSS
read from /proc/self/statm at phase points, and the checksum line.

A workload prints exactly one line on stdout, `checksum=...`, computed from
its data, so the driver can tell that every allocator computed the same.
Phase RSS goes to stderr as `METRIC rss_<phase>_kib=N` lines (the format of
bench/run.py), because RSS differs between allocators and must stay out of
the line that is compared.
"""

import argparse
import os
import sys
import time

# Phase times count from here, when the workload starts its own work: the
# interpreter's start-up and the light tail are the same under every
# allocator, so the driver can also compare the work alone.
_T0 = time.perf_counter()

_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def parse(description, extra=None):
    """The command line every workload takes; extra(ap) may add options."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="work multiplier (default 1: about 1-3 s on stock CPython)")
    if extra:
        extra(ap)
    args = ap.parse_args()
    if not args.scale > 0:
        ap.error("--scale must be positive")
    return args


def rss_kib():
    # statm's second field is resident pages; reading it allocates a few
    # small objects only, so it does not disturb what it measures.
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE_KIB


def report(name, kib):
    print("METRIC rss_%s_kib=%d" % (name, kib), file=sys.stderr, flush=True)


def phase(name):
    report(name, rss_kib())
    print("METRIC t_%s_ms=%.1f" % (name, (time.perf_counter() - _T0) * 1000),
          file=sys.stderr, flush=True)


def done(checksum):
    # Masked to 64 bits so that the line stays short whatever was summed.
    print("checksum=%016x" % (checksum & 0xFFFFFFFFFFFFFFFF), flush=True)


def linger(values, rounds):
    """Light computation on a small result after the big free: a program
    that goes on working (so allocating short-lived floats and ints) while
    the memory it freed is, or is not, going back to the OS.  Returns an
    integer for the checksum.  About 40 ns per value and round on the
    development VM, so len(values) * rounds = 5M is 0.2 s."""
    acc = 0.0
    for r in range(rounds):
        for v in values:
            acc = (acc * 0.5 + v * 1.000001 + r) % 1e9
    return int(acc)


def finish(acc, scale, values=(1.5, 2.5, 3.5, 4.5), work=5_000_000):
    """The end every workload shares: RSS right after its big free, about
    0.2 s (`work` value-rounds, scaled) of light computation on a small
    result, RSS at the end, and the checksum."""
    phase("free")
    acc += linger(list(values), max(1, int(work * scale / len(values))))
    phase("end")
    done(acc)
