#!/usr/bin/python3
"""The RSS scenarios of bench/rss in Python (CPython 3.11, standard library).

    python3 scenarios.py build    [-s scale] [-p survive] [-t] [-w ms] [-k ms]   # 1, 2, 3
    python3 scenarios.py migrate  [-s scale] [-w ms]                             # 4
    python3 scenarios.py mixed    [-s scale] [-p survive] [-r rounds] [-e n] [-S ms]  # 5
    python3 scenarios.py server   [-s scale] [-r epochs] [-e n] [-S ms]          # 6
    python3 scenarios.py prodcons [-s scale] [-n pairs] [-w ms]                  # 7

The same scenarios as the C programs (see their headers and README.md), made
of ordinary Python objects: floats, ints, bytes and tuples for the small
objects (16..512 bytes as CPython allocates them), bytearrays for the large
buffers, lists as containers.  Run with PYTHONMALLOC=malloc every object is
one malloc, so LD_PRELOAD decides the allocator; without it CPython's
pymalloc serves objects of up to 512 bytes and the C library the rest.

Output is the same line format as the C programs (rss.h):

    BASE rss_kib=N snapshot_kib=M
    PHASE name t_ms=T at_ms=A rss_kib=R floor_kib=F ideal_kib=I base_kib=B
    SERIES name t:rss ...
    RESULT key=value ...
    INFO key=value ...
    DONE

Live bytes are sys.getsizeof() of the objects held (which for a GC-tracked
object includes its 16-byte GC header, and for a list or bytearray its
separately allocated storage); the pages they span are found from id(), the
GC header that precedes a tracked object, and for lists and bytearrays the
storage pointer read with ctypes (a bytearray's pages only as far as its
content and NUL: the spare capacity of one grown by appending is never
written, so need not be resident).  That is exact for these types on CPython
3.11 (each is one malloc of getsizeof bytes, or two for list/bytearray),
except that a bytes or tuple object may be shared with the interpreter.
The containers that hold the survivors count as live.  As in C, pages
that were resident when base was measured (found with mincore) are not
counted again in the floor: CPython's start-up leaves free memory in the
heap that new objects reuse.  floor_kib=-1 means
the floor was not computed (at a build's peak: too slow in Python).

The cyclic garbage collector is disabled (nothing here makes cycles), so
that its passes do not dominate the timing; each sampling window starts
with one gc.collect(), which in CPython 3.11 also empties the interpreter's
free lists (without it, the tuples it keeps for reuse, up to 2000 of each
small size, pin pages all over the heap).  Corrupted data exits with
status 3.
"""

import argparse
import ctypes
import gc
import math
import mmap
import os
import queue
import random
import sys
import threading
import time

KIB = 1024
MIB = 1024 * 1024
GIB = 1024 * MIB
PAGE = 4096
Py_TPFLAGS_HAVE_GC = 1 << 14
MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)  # not in 3.11's mmap

# ---------------------------------------------------------------------------
# measuring

_statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
_page_kib = os.sysconf("SC_PAGESIZE") // 1024


def rss_kib():
    return int(os.pread(_statm, 256, 0).split()[1]) * _page_kib


def status_kib(field):
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(field.encode() + b":"):
                return int(line.split()[1])
    return -1


def now_ms():
    return time.monotonic() * 1e3


def die(msg):
    sys.stdout.flush()
    print(msg, file=sys.stderr, flush=True)
    os._exit(3)


_trim = None
if os.environ.get("RSS_MALLOC_TRIM", "0") not in ("", "0"):
    try:
        _trim = ctypes.CDLL(None).malloc_trim
        _trim.argtypes = [ctypes.c_size_t]
        _trim.restype = ctypes.c_int
    except AttributeError:
        print("RSS_MALLOC_TRIM set but there is no malloc_trim", file=sys.stderr)


def trim():
    if _trim is not None:
        _trim(0)


# ---------------------------------------------------------------------------
# objects

# A bytes object of n bytes is the slice _T[off(n):off(n)+n] of this
# template: a new object whose content depends on its length, checked with
# _T.startswith(o, off(n)) (a memcmp, no allocation); off(n) = 1 + 7n mod 1000.
_T = bytes((i * 131 + (i >> 8) * 7 + 1) & 255 for i in range(8192 + 1024))
INT_BASE = 1 << 40
CHAINS = 4096
GROUP_MAX = 48


def size_of(rnd):
    """A malloc size like rss.h's obj_size(): 16..512, mostly small."""
    p = rnd()
    if p < 0.7:
        return 16 + int(rnd() * 49)
    if p < 0.93:
        return 65 + int(rnd() * 96)
    return 161 + int(rnd() * 352)


def make(s, i, T=_T):
    """A new object that CPython allocates with about s bytes: a float
    (24), an int (32) or bytes (33 + length; lengths 0 and 1 are shared
    singletons, so bytes start at 35).  Its value derives from i."""
    if s <= 24:
        return i + 0.25
    if s <= 34:
        return INT_BASE + (i << 8) + ((i & 255) ^ 0x5A)
    n = s - 33
    o = 1 + (n * 7) % 1000
    return T[o:o + n]


def check(o, T=_T):
    """Check an object made by make()."""
    t = type(o)
    if t is bytes:
        ok = T.startswith(o, 1 + (len(o) * 7) % 1000)
    elif t is float:
        ok = o % 1.0 == 0.25
    elif t is int:
        ok = o >= INT_BASE and (o & 255) == ((o >> 8) & 255) ^ 0x5A
    else:
        ok = False
    if not ok:
        die("corrupted object %r (type %s)" % (o[:16] if t is bytes else o, t.__name__))


def pre_header(o):
    return 16 if type(o).__flags__ & Py_TPFLAGS_HAVE_GC else 0


def storage(o):
    """(address, bytes allocated, bytes written) of a list's item array or
    a bytearray's buffer.  A bytearray grown by appending may have spare
    capacity past its content and NUL (up to 1/8) that nothing writes and
    no allocator need make resident, so only the written part has pages in
    the floor.  A list's storage is counted whole: [None] * n fills it."""
    if type(o) is list:
        n = ctypes.c_ssize_t.from_address(id(o) + 32).value
        return ctypes.c_void_p.from_address(id(o) + 24).value or 0, 8 * n, 8 * n
    if type(o) is bytearray:
        a = ctypes.c_void_p.from_address(id(o) + 32).value or 0
        return a, o.__alloc__(), len(o) + 1 if a else 0
    return 0, 0, 0


def _bitmap():
    """An mmap with one bit per 4 KiB page of the 47-bit address space;
    only the pages of it that are written become resident."""
    return mmap.mmap(-1, 1 << 32, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE)


_BASEMAP = None  # pages of anonymous memory resident when base was measured


def base_snapshot():
    """Fill _BASEMAP from /proc/self/maps and mincore(); returns the
    resident pages seen.  File mappings and inaccessible ones are skipped
    (no object can be on them)."""
    global _BASEMAP
    bm = _bitmap()
    ref = ctypes.c_char.from_buffer(bm)
    self_addr = ctypes.addressof(ref)
    del ref
    mincore = ctypes.CDLL(None, use_errno=True).mincore
    mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    mincore.restype = ctypes.c_int
    chunk = 16384
    vec = ctypes.create_string_buffer(chunk)
    with open("/proc/self/maps") as f:
        maps = f.read().splitlines()
    resident = 0
    for line in maps:
        parts = line.split()
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        if int(parts[4]) != 0 or parts[1].startswith("--") or lo == self_addr:
            continue
        a = lo
        while a < hi:
            n = min(hi - a, chunk * PAGE)
            if mincore(a, n, vec) != 0:
                break
            raw = vec.raw[:n // PAGE]
            for i, v in enumerate(raw):
                if v & 1:
                    pg = (a >> 12) + i
                    bm[pg >> 3] |= 1 << (pg & 7)
                    resident += 1
            a += n
    _BASEMAP = bm
    return resident


class PageSet:
    """Distinct 4 KiB pages holding live bytes and not resident at base: a
    bitmap over the whole address space, unmapped by close().  Take RSS
    readings before opening one."""

    def __init__(self):
        self.bm = _bitmap()
        self.pages = 0
        self.bytes = 0

    def add(self, addr, n):
        if n <= 0 or not addr:
            return
        bm = self.bm
        base = _BASEMAP
        for pg in range(addr >> 12, ((addr + n - 1) >> 12) + 1):
            i = pg >> 3
            m = 1 << (pg & 7)
            b = bm[i]
            if not b & m:
                bm[i] = b | m
                if base is None or not base[i] & m:
                    self.pages += 1

    def add_obj(self, o):
        """An object and, for a list or bytearray, its storage (the list's
        items are not followed)."""
        size = sys.getsizeof(o)
        self.bytes += size
        a, n, written = storage(o)
        head = size - n
        self.add(id(o) - pre_header(o), head)
        self.add(a, written)

    def add_all(self, objs):
        add = self.add_obj
        for o in objs:
            add(o)

    def close(self):
        self.bm.close()
        return self.pages


# ---------------------------------------------------------------------------
# output, sampling


class Run:
    def __init__(self, args):
        self.a = args
        self.base = -1
        self.samples = []
        self.lrnd = random.Random(0x11947).random
        # the interpreter's lazy start-up allocations before base
        for _ in range(3):
            self.light_work()
        gc.disable()
        gc.collect()

    def set_base(self):
        gc.collect()
        resident = base_snapshot()
        self.base = rss_kib()
        print("BASE rss_kib=%d snapshot_kib=%d" % (self.base, resident * 4), flush=True)
        return self.base

    def light_work(self):
        s = [make(size_of(self.lrnd), j) for j in range(32)]
        for o in s:
            check(o)

    def observe(self, window_ms):
        t0 = now_ms()
        # A full collection, as a CPython program with the collector on
        # runs sooner or later: in 3.11 it also empties the free lists of
        # tuples, floats, lists and dicts, which otherwise keep up to 2000
        # objects of each small tuple size, scattered over the heap.
        gc.collect()
        trim()
        tick = self.a.tick
        self.samples = []
        k = 1
        while True:
            t = now_ms() - t0
            self.samples.append((t, rss_kib()))
            if t >= window_ms:
                break
            self.light_work()
            el = now_ms() - t0
            if k * tick <= el:
                k = int(el / tick) + 1
            nxt = min(k * tick, window_ms)
            d = t0 + nxt - now_ms()
            if d > 0:
                time.sleep(d / 1e3)
            k += 1

    def instant(self):
        self.samples = [(0.0, rss_kib())]

    def report(self, phase, points, floor_pages, live_bytes):
        floor = self.base + floor_pages * 4 if floor_pages >= 0 else -1
        ideal = self.base + (live_bytes + 1023) // 1024
        out = []
        for p in points:
            j = 0
            while j < len(self.samples) - 1 and self.samples[j][0] < p:
                j += 1
            t, r = self.samples[j]
            out.append("PHASE %s t_ms=%d at_ms=%.0f rss_kib=%d floor_kib=%d ideal_kib=%d base_kib=%d"
                       % (phase, p, t, r, floor, ideal, self.base))
        out.append("SERIES %s " % phase + " ".join("%.0f:%d" % s for s in self.samples))
        print("\n".join(out), flush=True)

    def free_points(self):
        w = self.a.window
        pts = [p for p in (0, 50, 100, 200, 500, 1000, 2000) if p <= w]
        if pts[-1] != w:
            pts.append(w)
        return pts

    def peak_end(self, name, live_max):
        """PEAK line for the stretch since peak_begin: VmHWM against base +
        the most the program held in it."""
        print("PEAK %s peak_kib=%d ideal_kib=%d"
              % (name, status_kib("VmHWM"), self.base + (live_max + 1023) // 1024))

    def peak_begin(self):
        """Starts a stretch: resets VmHWM (5 to /proc/self/clear_refs).
        Called after a phase point's settle (rss.h's rss_peak_begin says
        why).  False if the kernel refused it."""
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def done(self):
        print("RESULT hwm_kib=%d" % status_kib("VmHWM"))
        print("DONE", flush=True)


# ---------------------------------------------------------------------------
# scenarios 1-3: build, free all but a fraction, compute lightly

# Object sizes and group lengths are drawn once, at start-up (so inside
# base), and cycled through: the build loop stays cheap.
_CYCLE = 1 << 16
_r0 = random.Random(99).random
_SIZES = [size_of(_r0) for _ in range(_CYCLE)]
_SIZES += _SIZES[:GROUP_MAX]
_NS = [1 + int(_r0() * GROUP_MAX) for _ in range(4096)]
_OFF = [1 + ((s - 33) * 7) % 1000 for s in range(4200)]
del _r0


def build_heap(target, survive, surv, rnd_seed=1, sizes=_SIZES):
    """target bytes of objects in groups (tuples of 1-48 objects) on 4096
    chains (lists) picked at random; with survive, each object goes to the
    list surv instead with that probability (the gaps between survivors
    are drawn from the geometric distribution).  The objects are those of
    make(), built inline.  Returns (chains, bytes, objects)."""
    rnd = random.Random(rnd_seed).random
    chains = [[] for _ in range(CHAINS)]
    getsize = sys.getsizeof
    T = _T
    OFF = _OFF
    NS = _NS
    IB = INT_BASE
    total = 0
    objects = 0
    gi = 0
    k = 0
    if survive:
        lg = math.log(1.0 - survive)
        nxt = int(math.log(1.0 - rnd()) / lg)
    else:
        nxt = -1
    while total < target:
        n = NS[gi & 4095]
        v = IB + (gi << 8) + ((gi & 255) ^ 0x5A)
        items = [(gi + 0.25) if s <= 24 else (v + 0) if s <= 34 else T[OFF[s]:OFF[s] + s - 33]
                 for s in sizes[k:k + n]]
        total += sum(map(getsize, items))
        if objects <= nxt < objects + n:
            keep = []
            for j, o in enumerate(items):
                if objects + j == nxt:
                    surv.append(o)
                    nxt += 1 + int(math.log(1.0 - rnd()) / lg)
                else:
                    keep.append(o)
            items = keep
            del o
        g = tuple(items)
        total += getsize(g)
        objects += n
        gi += 1
        k = (k + n) & (_CYCLE - 1)
        chains[int(rnd() * CHAINS)].append(g)
    return chains, total, objects


def check_heap(chains, T=_T):
    """check() of every object of every group, inline."""
    sw = T.startswith
    IB = INT_BASE
    for ch in chains:
        for g in ch:
            for o in g:
                t = type(o)
                if t is bytes:
                    ok = sw(o, 1 + (len(o) * 7) % 1000)
                elif t is float:
                    ok = o % 1.0 == 0.25
                else:
                    ok = t is int and o >= IB and (o & 255) == ((o >> 8) & 255) ^ 0x5A
                if not ok:
                    check(o)


def cmd_build(a):
    run = Run(a)
    survive = a.survive if a.survive >= 0 else 0.0
    target = int(a.scale * GIB)
    surv = []
    state = {"step": 0}
    cv = threading.Condition()
    box = {}

    def step_to(s):
        with cv:
            state["step"] = s
            cv.notify_all()

    def wait_for(s):
        with cv:
            while state["step"] < s:
                cv.wait()

    def do_build():
        t0 = now_ms()
        box["chains"], box["bytes"], box["objects"] = build_heap(target, survive, surv)
        box["build_ms"] = now_ms() - t0

    def do_free():
        t0 = now_ms()
        check_heap(box["chains"])
        box["check_ms"] = now_ms() - t0
        t0 = now_ms()
        del box["chains"]  # frees groups chain by chain
        box["free_ms"] = now_ms() - t0

    def builder():
        wait_for(1)
        do_build()
        step_to(2)
        wait_for(3)
        do_free()
        step_to(4)
        wait_for(5)  # idle, blocked, while the main thread samples

    th = None
    if a.idle_thread:
        th = threading.Thread(target=builder)
        th.start()
    run.set_base()
    if th:
        step_to(1)
        wait_for(2)
    else:
        do_build()
    run.instant()
    chains_bytes = sum(sys.getsizeof(c) for c in box["chains"]) + sys.getsizeof(box["chains"])
    run.report("built", [0], -1, box["bytes"] + chains_bytes)
    if th:
        step_to(3)
        wait_for(4)
    else:
        do_free()
    run.observe(a.window)
    ps = PageSet()
    ps.add_all(surv)
    ps.add_obj(surv)
    pages = ps.close()
    run.report("freed", run.free_points(), pages, ps.bytes)
    print("INFO target_kib=%d objects=%d bytes=%d survivors=%d idle_thread=%d build_ms=%.0f"
          " check_ms=%.0f free_ms=%.0f" % (target // 1024, box["objects"], box["bytes"], len(surv),
                                          bool(th), box["build_ms"], box["check_ms"], box["free_ms"]))
    for o in surv:
        check(o)
    del surv[:]
    if th:
        step_to(5)
        th.join()
    run.done()


# ---------------------------------------------------------------------------
# scenario 4: 32-byte objects, then 256-byte ones

def cmd_migrate(a):
    run = Run(a)
    target = int(a.scale * GIB)
    # an int of 2 digits is 32 bytes; a bytes object of 223 is 256
    s32 = [32] * (_CYCLE + GROUP_MAX)
    s256 = [256] * (_CYCLE + GROUP_MAX)
    run.set_base()

    def build_phase(name, seed, sizes):
        """One phase's build, reported as `name`, then dropped: the bytes
        built and VmHWM right after the build."""
        ch, built, _ = build_heap(target, 0, None, seed, sizes=sizes)
        run.instant()
        hwm = status_kib("VmHWM")
        run.report(name, [0], -1, built)
        check_heap(ch)
        return built, hwm

    b1, peak1 = build_phase("built32", 41, s32)
    run.instant()
    run.report("freed32", [0], 0, 0)
    b2, peak = build_phase("built256", 42, s256)
    run.observe(a.window)
    run.report("freed256", run.free_points(), 0, 0)
    print("INFO target_kib=%d bytes1=%d bytes2=%d" % (target // 1024, b1, b2))
    print("RESULT peak1_kib=%d peak_kib=%d" % (peak1, peak))
    run.done()


# ---------------------------------------------------------------------------
# scenario 5: large buffers between batches of small objects

def page_byte(tag, i):
    return (tag + (i // PAGE) * 7) & 255


def big_fill(ba, tag, start):
    for i in range(start - start % PAGE, len(ba), PAGE):
        if i >= start:
            ba[i] = page_byte(tag, i)
    ba[-1] = page_byte(tag, len(ba) - 1)


def big_check(ba, tag):
    for i in range(0, len(ba), PAGE):
        if ba[i] != page_byte(tag, i):
            die("bytearray of %d bytes corrupted at %d" % (len(ba), i))
    if ba[-1] != page_byte(tag, len(ba) - 1):
        die("bytearray of %d bytes corrupted at its end" % len(ba))


def check_bigs(pairs):
    """big_check() of each (bytearray, tag) pair.  A function, so that its
    loop variable dies with it: a `for ba, tag in ...` in cmd_mixed would
    keep the last buffer alive after the caller drops the list (and a
    `for w in bigs` the whole list), pinning up to 64 MiB at the next phase
    point that the floor rightly leaves out."""
    for ba, tag in pairs:
        big_check(ba, tag)


_CHUNK = bytes(MIB)


def grow(ba, n):
    """Append n zero bytes to ba (realloc inside bytearray), <= 1 MiB at a
    time from a shared zero block."""
    mv = memoryview(_CHUNK)
    while n > 0:
        k = min(n, MIB)
        ba += mv[:k]
        n -= k


class Ring:
    """A circular buffer of survivors in a preallocated list; when full, a
    new object replaces (frees) the oldest, checked first."""

    def __init__(self, cap):
        self.v = [None] * cap
        self.cap = cap
        self.head = self.n = 0
        self.pushed = 0
        self.bytes = 0

    def push(self, o):
        self.pushed += 1
        self.bytes += sys.getsizeof(o)
        if self.n == self.cap:
            check(self.v[self.head])
            self.bytes -= sys.getsizeof(self.v[self.head])
            self.v[self.head] = o
            self.head = (self.head + 1) % self.cap
        else:
            self.v[(self.head + self.n) % self.cap] = o
            self.n += 1

    def items(self):
        return (self.v[(self.head + j) % self.cap] for j in range(self.n))


class Plan:
    """A large buffer being made: allocated at once, or from 64 KiB grown
    by 25% a step."""

    def __init__(self, rnd):
        self.ba = None
        self.tag = int(rnd() * 256)
        self.final = (int(2 ** (20 + 6 * rnd())) + PAGE - 1) // PAGE * PAGE
        self.grows = rnd() < 1 / 3
        self.done = False
        self.steps = 1
        if self.grows:
            m = 64 * KIB
            while m < self.final:
                m += m // 4
                self.steps += 1

    def step(self):
        if self.ba is None:
            self.ba = bytearray(64 * KIB if self.grows else self.final)
            big_fill(self.ba, self.tag, 0)
        else:
            old = len(self.ba)
            grow(self.ba, min(old // 4, self.final - old))
            big_fill(self.ba, self.tag, old)
        self.done = len(self.ba) >= self.final


def mixed_round(rnd, batch, survive, ring, held_before=0):
    """One round's small batch with its large buffers' steps spread
    through it; returns the new buffers as (bytearray, tag) pairs, the
    number grown, and the most held at once (held_before: the older
    buffers live through the round; 8 bytes a list slot)."""
    plans = [Plan(rnd) for _ in range(1 + int(rnd() * 3))]
    gap = batch // (sum(p.steps for p in plans) + 1)
    next_step = gap
    getsize = sys.getsizeof
    total = 0
    p = 0
    chains = [[] for _ in range(256)]
    i = 0
    while total < batch or p < len(plans):
        if total >= next_step or total >= batch:
            while p < len(plans) and plans[p].done:
                p += 1
            if p < len(plans):
                plans[p].step()
            next_step += gap
            if total >= batch:
                continue
        o = make(size_of(rnd), i)
        i += 1
        total += getsize(o)
        if rnd() < survive:
            ring.push(o)
        else:
            chains[int(rnd() * 256)].append(o)
    held = held_before + ring.bytes + total + 8 * i + sum(len(pl.ba) for pl in plans)
    check_heap([chains])
    return [(pl.ba, pl.tag) for pl in plans], sum(pl.grows for pl in plans), held


def cmd_mixed(a):
    run = Run(a)
    rnd = random.Random(5).random
    survive = a.survive if a.survive >= 0 else 0.02
    rounds = a.count if a.count >= 0 else 48
    every = a.every or 8
    batch = int(a.scale * 16 * MIB)
    ring = Ring(int(batch / 80 * survive * 8) + 16)
    bigs = [[], []]  # (bytearray, tag) of this round and the previous one
    grown = 0
    run.set_base()
    if not run.peak_begin():
        print("INFO no_peak_windows=1")
    held_max = 0
    for r in range(rounds):
        cur = r & 1
        older = sum(len(ba) for ba, _ in bigs[cur ^ 1])
        bigs[cur], g, held = mixed_round(rnd, batch, survive, ring, older)
        held_max = max(held_max, held)
        grown += g
        check_bigs(bigs[cur ^ 1])
        bigs[cur ^ 1] = []  # the last reference: frees them
        if (r + 1) % every == 0 or r + 1 == rounds:
            run.peak_end("round%d" % (r + 1), held_max)
            held_max = 0
            run.observe(a.settle)
            ps = PageSet()
            ps.add_obj(ring.v)
            ps.add_all(ring.items())
            ps.add_all(ba for w in bigs for ba, _ in w)  # no loop variable outlives it
            pages = ps.close()
            pts = [0, a.settle] if a.settle > 0 else [0]
            run.report("round%d" % (r + 1), pts, pages, ps.bytes)
            run.peak_begin()
    print("INFO rounds=%d batch_kib=%d survive=%g ring_cap=%d survived=%d grown=%d"
          % (rounds, batch // 1024, survive, ring.cap, ring.pushed, grown))
    check_bigs(bigs[0] + bigs[1])
    del bigs
    for o in ring.items():
        check(o)
    del ring
    run.done()


# ---------------------------------------------------------------------------
# scenario 6: a server loop with a drifting live set

def drift_at(e, n, passes):
    """Where the size mix stands at epoch e of n: 0 (small) to 1 (larger),
    going up and down `passes` times in all (server.c's drift_at)."""
    x = e / max(n, 1) * passes
    k = min(int(x), passes - 1)
    f = x - k
    return f if k % 2 == 0 else 1.0 - f


def cmd_server(a):
    run = Run(a)
    rng = random.Random(6)
    rnd = rng.random
    epochs = a.count if a.count >= 0 else 100
    every = a.every or 10
    target = int(a.scale * 32 * MIB)
    getsize = sys.getsizeof
    table = []
    sizes = []
    live = 0
    counter = [0, 0, 0]  # allocs, frees, temp KiB
    run.set_base()

    def mix(drift):
        if rnd() < 0.03:
            return int(2 ** (9 + 3 * rnd()))
        return int(2 ** (4 + 2 * drift + 3 * rnd()))

    def refill(drift):
        nonlocal live
        i = counter[0]
        while live < target:
            s = mix(drift)
            o = make(s, i)
            i += 1
            table.append(o)
            sz = getsize(o)
            sizes.append(sz)
            live += sz
        counter[0] = i

    def point(e):
        run.observe(a.settle)
        ps = PageSet()
        ps.add_obj(table)
        ps.add_obj(sizes)
        ps.add_all(table)
        pages = ps.close()
        pts = [0, a.settle] if a.settle > 0 else [0]
        run.report("epoch%d" % e, pts, pages, ps.bytes)

    refill(0)
    point(0)
    for e in range(1, epochs + 1):
        drift = drift_at(e, epochs, a.cycles)
        k = int(len(table) * (0.02 + 0.04 * rnd()))
        for _ in range(k):
            j = int(rnd() * len(table))
            check(table[j])
            live -= sizes[j]
            table[j] = table[-1]
            sizes[j] = sizes[-1]
            table.pop()
            sizes.pop()
            counter[1] += 1
        tmp = bytearray(int(2 ** (20 + 4 * rnd())))
        tag = int(rnd() * 256)
        big_fill(tmp, tag, 0)
        counter[2] += len(tmp) // 1024
        refill(drift)
        big_check(tmp, tag)
        del tmp
        if e % every == 0 or e == epochs:
            point(e)
    print("INFO epochs=%d target_kib=%d live_kib=%d objects=%d allocs=%d frees=%d temp_kib=%d"
          % (epochs, target // 1024, live // 1024, len(table), counter[0], counter[1], counter[2]))
    for o in table:
        check(o)
    del table, o
    run.done()


# ---------------------------------------------------------------------------
# scenario 7: producer/consumer threads, then all exit

def cmd_prodcons(a):
    run = Run(a)
    pairs = a.threads
    per_pair = int(a.scale * 64 * MIB)
    fifo_cap = int(a.scale * 8 * MIB / 70) + 1
    go = threading.Event()
    stats = [[0, 0] for _ in range(pairs)]
    fifos = [Ring(fifo_cap) for _ in range(pairs)]
    queues = [queue.Queue(maxsize=16) for _ in range(pairs)]

    def producer(k):
        rnd = random.Random(700 + k).random
        q = queues[k]
        getsize = sys.getsizeof
        total = 0
        i = 0
        go.wait()
        while total < per_pair:
            b = [make(size_of(rnd), i + j) for j in range(256)]
            for o in b:
                total += getsize(o)
            i += 256
            q.put(b)
            del b, o
        stats[k][0] = i
        q.put(None)

    def consume(b, ring):
        for o in b:
            check(o)
            ring.push(o)

    def consumer(k):
        q = queues[k]
        ring = fifos[k]
        go.wait()
        while True:
            b = q.get()
            if b is None:
                break
            consume(b, ring)
            stats[k][1] += len(b)
            del b
        for o in ring.items():
            check(o)
        ring.v[:] = [None] * ring.cap  # frees the FIFO, keeps its storage

    threads = []
    for k in range(pairs):
        threads.append(threading.Thread(target=producer, args=(k,)))
        threads.append(threading.Thread(target=consumer, args=(k,)))
    for t in threads:
        t.start()
    run.set_base()
    t0 = now_ms()
    go.set()
    for t in threads:
        t.join()
    run_ms = now_ms() - t0
    for k in range(pairs):
        if stats[k][0] != stats[k][1]:
            die("pair %d produced %d but consumed %d" % (k, stats[k][0], stats[k][1]))
    hwm = status_kib("VmHWM")
    run.observe(a.window)
    run.report("joined", run.free_points(), 0, 0)
    print("INFO pairs=%d per_pair_kib=%d fifo_objects=%d objects=%d run_ms=%.0f"
          % (pairs, per_pair // 1024, fifo_cap, sum(s[0] for s in stats), run_ms))
    print("RESULT peak_kib=%d" % hwm)
    run.done()


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", choices=["build", "migrate", "mixed", "server", "prodcons"])
    ap.add_argument("-s", dest="scale", type=float, default=1.0)
    ap.add_argument("-p", dest="survive", type=float, default=-1.0)
    ap.add_argument("-w", dest="window", type=int, default=2000)
    ap.add_argument("-k", dest="tick", type=int, default=10)
    ap.add_argument("-S", dest="settle", type=int, default=200)
    ap.add_argument("-r", dest="count", type=int, default=-1)
    ap.add_argument("-e", dest="every", type=int, default=0)
    ap.add_argument("-n", dest="threads", type=int, default=3)
    ap.add_argument("-c", dest="cycles", type=int, default=1)
    ap.add_argument("-t", dest="idle_thread", action="store_true")
    a = ap.parse_args()
    if not 0 < a.scale <= 100 or a.tick < 1 or a.window < 0 or a.settle < 0 or a.cycles < 1:
        ap.error("bad value")
    {"build": cmd_build, "migrate": cmd_migrate, "mixed": cmd_mixed,
     "server": cmd_server, "prodcons": cmd_prodcons}[a.scenario](a)


if __name__ == "__main__":
    main()
