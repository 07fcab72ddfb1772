#!/usr/bin/python3
"""A request loop with a drifting live set, as a long-running web service.

Each request is a text line plus headers, parsed into a dict, looked up in
a session table, answered with a formatted response.  Sessions hold a
bounded history of recent items whose length depends on the session, and
expire when idle; how many new sessions arrive follows a slow wave, so the
live set grows, shrinks and its mix of sizes shifts over the run (memory
freed in one phase must be reusable, or returnable, in the next).
Phases: peak (largest live set, sampled at the crest of the wave), free
(all sessions dropped at shutdown), end (after a little more work).
"""

import math
from collections import OrderedDict

import common

PATHS = ["/", "/item", "/search", "/cart", "/user/profile", "/api/v1/orders"]


def request_text(x, sid):
    path = PATHS[x % len(PATHS)]
    return (f"GET {path}?id={x % 100000}&q=w{x % 97} HTTP/1.1\r\n"
            f"Host: example.test\r\nCookie: sid={sid}\r\n"
            f"User-Agent: bench/{x % 5}.0\r\nAccept: */*\r\n\r\n")


def parse(text):
    head, _, _ = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    method, target, _ = lines[0].split(" ")
    path, _, query = target.partition("?")
    params = dict(kv.split("=", 1) for kv in query.split("&"))
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(": ")
        headers[k.lower()] = v
    return {"method": method, "path": path, "params": params, "headers": headers}


def main():
    args = common.parse(__doc__)
    requests = int(350_000 * args.scale)
    sessions = OrderedDict()  # least recently used first
    next_sid = 0
    x = 7
    acc = 0
    peak_live = 0
    peak_rss = 0
    for t in range(requests):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        # The wave: between 2% and 38% of requests open a new session.
        wave = 0.2 + 0.18 * math.sin(t * 6.2832 * 3 / requests)
        if x % 1000 < wave * 1000 or not sessions:
            sid = next_sid
            next_sid += 1
        else:
            sid = next_sid - 1 - (x >> 10) % min(len(sessions), 5000)
        req = parse(request_text(x, sid))
        sid = int(req["headers"]["cookie"][4:])
        s = sessions.get(sid)
        if s is None:
            s = sessions[sid] = {"sid": sid, "seen": t, "items": [], "cap": 4 + sid % 80}
        else:
            sessions.move_to_end(sid)
        s["seen"] = t
        s["items"].append((req["path"], req["params"]["id"], x % 1000 / 10))
        if len(s["items"]) > s["cap"]:
            del s["items"][: len(s["items"]) // 2]
        body = f'{{"sid": {sid}, "path": "{req["path"]}", "n": {len(s["items"])}}}'
        response = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        acc += len(response)
        # Expire sessions idle for more than 50000 requests.
        while sessions:
            old_sid, old = next(iter(sessions.items()))
            if t - old["seen"] <= 50000:
                break
            acc += len(old["items"])
            del sessions[old_sid]
        if len(sessions) > peak_live:
            peak_live = len(sessions)
            if t % 64 == 0:
                peak_rss = max(peak_rss, common.rss_kib())
    common.report("peak", peak_rss)
    acc += peak_live * 7 + len(sessions)
    sessions.clear()
    del sessions, s, req, old
    common.finish(acc, args.scale)


if __name__ == "__main__":
    main()
