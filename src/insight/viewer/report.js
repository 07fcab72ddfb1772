/*
 * report.js -- draws an ebb report (schema ebb.report/1) from the JSON the
 * page carries in <script type="application/json" id="ebb-data">.
 *
 * The page is one file, written by the library at exit or on a failure, or
 * by `ebb run` from a black box after a kill (src/insight/report_files.c,
 * cli/report.c): no network, no library, plain DOM and SVG.  It draws what
 * the report holds and says "not recorded" for what it does not: a report
 * from an older ebb, from a black box (brief), or from a build without the
 * timeline or the maps has fewer keys, and every key may be missing or
 * null.  Numbers are bytes unless named otherwise.
 *
 * Sections, top to bottom: the verdict (why the report was written, the
 * failure, the limit, memory); memory over time (`timeline`); who held the
 * peak as an icicle graph (`peak.top`, Python frames or native ones, hover
 * for details, click to zoom); the current top sites (`sites.top`); where
 * the mapped bytes are (`held`, `memory`); the size classes (`classes`);
 * the heap map (`heap_map`, `heap_map_peak`); the address space
 * (`address_space_map`, the shape of `ebb map --json`).
 *
 * Everything the data says is put in with textContent or SVG attributes,
 * never parsed as markup: a Python frame's text is the program's.  A
 * section that fails to draw says why in place (and on the console), and
 * the rest of the page still draws.
 */
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";

  /* ------------------------------------------------------------ helpers */

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else e.setAttribute(k, v);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
    return e;
  }

  function sv(tag, attrs, ...kids) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "text") e.textContent = v;
      else e.setAttribute(k, String(v));
    }
    for (const kid of kids) if (kid) e.append(kid);
    return e;
  }

  function isNum(v) {
    return typeof v === "number" && isFinite(v);
  }

  function bytes(n) {
    if (!isNum(n)) return "not recorded";
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let u = 0, v = n;
    while (Math.abs(v) >= 1024 && u < units.length - 1) { v /= 1024; u++; }
    return u === 0 ? n + " B" : v.toFixed(v < 10 ? 2 : 1) + " " + units[u];
  }

  function count(n) {
    return isNum(n) ? n.toLocaleString("en-US") : "not recorded";
  }

  function share(part, whole) {
    return whole > 0 ? (100 * part / whole).toFixed(part / whole < 0.1 ? 1 : 0) + "%" : "";
  }

  function obj(v) {
    return v !== null && typeof v === "object" && !Array.isArray(v) ? v : null;
  }

  function list(v) {
    return Array.isArray(v) ? v : [];
  }

  /* A colour from a string: the same name, the same colour. */
  function hue(s) {
    let h = 2166136261;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
    return (h >>> 0) % 360;
  }

  const tip = document.getElementById("tip");
  function showTip(ev, text) {
    tip.textContent = text;
    tip.hidden = false;
    const pad = 14, w = tip.offsetWidth, h = tip.offsetHeight;
    let x = ev.clientX + pad, y = ev.clientY + pad;
    if (x + w > window.innerWidth) x = Math.max(0, ev.clientX - w - pad);
    if (y + h > window.innerHeight) y = Math.max(0, ev.clientY - h - pad);
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }
  function hideTip() {
    tip.hidden = true;
  }
  function hover(node, text) {
    node.addEventListener("mousemove", (ev) => showTip(ev, typeof text === "function" ? text() : text));
    node.addEventListener("mouseleave", hideTip);
  }

  const main = document.getElementById("sections");

  /* A section with its heading; the draw function fills its body.  A draw
   * that throws leaves its message in place and the page goes on. */
  function section(id, title, note, draw) {
    const body = el("div", { class: "body" });
    const s = el("section", { id: id }, el("h2", { text: title }),
      note ? el("p", { class: "note", text: note }) : null, body);
    main.append(s);
    try {
      draw(body);
    } catch (e) {
      body.append(el("p", { class: "error", text: "This section could not be drawn: " + e }));
      console.error("ebb report: section " + id + ": " + (e && e.stack ? e.stack : e));
    }
    return s;
  }

  function missing(body, what) {
    body.append(el("p", { class: "missing", text: what + ": not recorded in this report." }));
  }

  function table(headers, rows) {
    const t = el("table");
    const tr = el("tr");
    for (const h of headers) tr.append(el("th", { class: h.n ? "n" : null, text: h.t }));
    t.append(el("thead", null, tr));
    const tb = el("tbody");
    for (const r of rows) {
      const row = el("tr");
      r.forEach((c, i) => {
        const td = el("td", { class: headers[i] && headers[i].n ? "n" : null });
        if (c instanceof Node) td.append(c); else td.textContent = c === undefined || c === null ? "" : String(c);
        row.append(td);
      });
      tb.append(row);
    }
    t.append(tb);
    return t;
  }

  /* --------------------------------------------------------------- data */

  let data = null, dataError = null;
  try {
    data = JSON.parse(document.getElementById("ebb-data").textContent);
    if (!obj(data)) throw new Error("not a JSON object");
  } catch (e) {
    dataError = e;
  }

  /* ------------------------------------------------------------ verdict */

  function drawVerdict(d) {
    const head = document.getElementById("verdict");
    head.textContent = "";
    head.append(el("h1", { text: "ebb report" }));
    const meta = [];
    if (d.pid) meta.push("pid " + d.pid);
    if (d.time) meta.push(d.time);
    if (d.ebb) meta.push("ebb " + d.ebb);
    if (d.schema) meta.push(d.schema);
    head.append(el("div", { class: "meta", text: meta.join(" \u00b7 ") }));

    const failure = obj(d.failure), limit = obj(d.limit), mem = obj(d.memory) || {};
    const box = obj(d.from_black_box);
    let line, bad = false;
    if (box && box.signal) {
      bad = true;
      line = "Killed by " + (box.signal_name || "signal " + box.signal) + " (signal " + box.signal + ")" +
        (box.signal === 9 ? ", as the kernel's out-of-memory killer kills" : "") +
        ": this is the black box's last record, " + (box.record_age_seconds || 0) +
        " s before the death was seen.";
    } else if (box) {
      line = "The program exited (status " + box.exit_status + ") without writing its report: " +
        "this is its black box's last record.";
    } else if (failure) {
      bad = true;
      line = "An allocation of " + bytes(failure.request) + " failed: " +
        (failure.kind === "limit" ? "refused at the limit of " + bytes(failure.limit)
          : "refused by the system (no memory or address space)") +
        ", with " + bytes(failure.committed) + " committed.";
    } else {
      line = "No allocation failed. " + (d.reason ? "Written because: " + d.reason + "." : "");
    }
    head.append(el("p", { class: "headline " + (bad ? "bad" : "ok"), text: line }));

    const facts = el("div", { class: "facts" });
    function fact(k, v, s) {
      facts.append(el("div", { class: "fact" }, el("div", { class: "k", text: k }),
        el("div", { class: "v", text: v }), s ? el("div", { class: "s", text: s }) : null));
    }
    fact("reason", d.reason || "not recorded");
    fact("limit", limit ? bytes(limit.bytes) : "none",
      limit ? (limit.source || "") + (isNum(limit.soft_bytes) ? "; soft level " + bytes(limit.soft_bytes) : "") : "");
    fact("committed", bytes(mem.committed), isNum(mem.peak_committed) ? "peak " + bytes(mem.peak_committed) : "");
    fact("live", bytes(mem.live), isNum(mem.live_large) ? "large blocks " + bytes(mem.live_large) : "");
    fact("process RSS", mem.process_rss ? bytes(mem.process_rss) : "not recorded");
    fact("mapped", bytes(mem.mapped), isNum(mem.peak_mapped) ? "peak " + bytes(mem.peak_mapped) : "");
    const peak = obj(d.peak);
    if (peak) fact("at the peak", bytes(peak.committed) + " committed", peak.time || "");
    head.append(facts);
  }

  /* -------------------------------------------------------- memory plot */

  /* The timeline's points, whatever shape: an array, or an object holding
   * one (`points`); a point's time in seconds (`t`), or ms (`ms`). */
  function timelinePoints(tl) {
    const pts = Array.isArray(tl) ? tl : obj(tl) && Array.isArray(tl.points) ? tl.points : null;
    if (!pts) return null;
    const out = [];
    for (const p of pts) {
      if (!obj(p)) continue;
      const t = isNum(p.t) ? p.t : isNum(p.ms) ? p.ms / 1000 : isNum(p.seconds) ? p.seconds : null;
      if (t === null) continue;
      out.push({ t: t, live: p.live, committed: p.committed, rss: p.rss, limit: p.limit });
    }
    out.sort((a, b) => a.t - b.t);
    return out.length ? out : null;
  }

  function niceStep(range, n) {
    const raw = range / n, mag = Math.pow(10, Math.floor(Math.log10(raw || 1)));
    for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * mag) return m * mag;
    return 10 * mag;
  }

  function byteStep(max, n) {
    let unit = 1;
    while (max / unit >= 1024 * 4 && unit < Math.pow(1024, 5)) unit *= 1024;
    return niceStep(max / unit, n) * unit;
  }

  function drawTimeline(body, d) {
    const pts = timelinePoints(d.timeline);
    if (!pts) {
      missing(body, "Memory over time (the timeline)");
      return;
    }
    const series = [
      { key: "live", name: "live" }, { key: "committed", name: "committed" },
      { key: "rss", name: "RSS" }, { key: "limit", name: "limit" },
    ].filter((s) => pts.some((p) => isNum(p[s.key]) && p[s.key] > 0));
    const W = 900, H = 280, L = 72, R = 16, T = 12, B = 32;
    const t0 = pts[0].t, t1 = Math.max(pts[pts.length - 1].t, t0 + 1e-3);
    let ymax = 1;
    for (const p of pts) for (const s of series) if (isNum(p[s.key])) ymax = Math.max(ymax, p[s.key]);
    ymax *= 1.05;
    const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0);
    const y = (v) => T + (H - T - B) * (1 - v / ymax);
    const g = sv("svg", { id: "timeline", viewBox: "0 0 " + W + " " + H, width: W, height: H,
      role: "img", "aria-label": "memory over time" });
    const axis = sv("g", { class: "axis" });
    const ystep = byteStep(ymax, 5);
    for (let v = 0; v <= ymax; v += ystep) {
      axis.append(sv("line", { x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      axis.append(sv("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", text: bytes(v) }));
    }
    const xstep = niceStep(t1 - t0, 8);
    for (let t = Math.ceil(t0 / xstep) * xstep; t <= t1 + 1e-9; t += xstep) {
      axis.append(sv("line", { x1: x(t), x2: x(t), y1: H - B, y2: H - B + 4 }));
      axis.append(sv("text", { x: x(t), y: H - B + 16, "text-anchor": "middle",
        text: (Math.round(t * 1000) / 1000) + " s" }));
    }
    g.append(axis);
    for (const s of series) {
      let dpath = "", n = 0;
      for (const p of pts) {
        /* a limit of 0 is none; an RSS of 0 was not recorded (the purger reads
         * it only for a consumer that follows the run: timeline.c) */
        if (!isNum(p[s.key]) || ((s.key === "limit" || s.key === "rss") && p[s.key] <= 0)) continue;
        dpath += (n ? "L" : "M") + x(p.t).toFixed(1) + " " + y(p[s.key]).toFixed(1);
        n++;
      }
      if (n === 1) dpath += "h2";
      if (n) g.append(sv("path", { class: "series " + s.key, d: dpath, "data-points": n }));
    }
    const cursor = sv("line", { y1: T, y2: H - B, stroke: "#999", visibility: "hidden" });
    g.append(cursor);
    const hit = sv("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "transparent" });
    g.append(hit);
    hit.addEventListener("mousemove", (ev) => {
      const box = g.getBoundingClientRect();
      const t = t0 + ((ev.clientX - box.left) * W / box.width - L) / (W - L - R) * (t1 - t0);
      let best = pts[0];
      for (const p of pts) if (Math.abs(p.t - t) < Math.abs(best.t - t)) best = p;
      cursor.setAttribute("x1", x(best.t));
      cursor.setAttribute("x2", x(best.t));
      cursor.setAttribute("visibility", "visible");
      showTip(ev, best.t.toFixed(3) + " s\n" +
        series.map((s) => s.name + ": " + (s.key === "rss" && !(best.rss > 0) ? "not recorded"
          : bytes(best[s.key]))).join("\n"));
    });
    hit.addEventListener("mouseleave", () => { cursor.setAttribute("visibility", "hidden"); hideTip(); });
    const legend = el("div", { class: "legend" });
    for (const s of series) {
      const sw = el("span", { class: "sw" });
      sw.style.background = "var(--" + s.key + ")";
      legend.append(el("span", null, sw, s.name));
    }
    body.append(legend, g);
    const tl = obj(d.timeline);
    if (tl && isNum(tl.stride) && tl.stride > 1)
      body.append(el("p", { class: "note", text: "Each point stands for " + tl.stride +
        " samples, merged keeping the largest of each figure." }));
  }

  /* --------------------------------------------------------- flame graph */

  /* The frames of a site, outermost first: Python lines ("file:line
   * function"), or the native frames when asked or when it has no stack. */
  function siteFrames(site, mode) {
    const py = list(site.stack).filter((s) => typeof s === "string" && s);
    const native = list(site.frames).filter((s) => typeof s === "string" && s);
    if (mode === "python" && !py.length) {
      /* In the Python view, a site without a Python stack (the
       * interpreter's own start-up, a C library) stays one shallow column:
       * its allocating call under a marker. */
      return ["(no Python stack)", native.length ? native[0] : "(no frames)"];
    }
    return (mode === "python" ? py : native).slice().reverse();
  }

  function buildTree(sites, mode) {
    const root = { name: "all", value: 0, blocks: 0, children: new Map(), parent: null, depth: 0 };
    for (const site of sites) {
      const v = isNum(site.live_bytes) ? site.live_bytes : 0;
      if (v <= 0) continue;
      const b = isNum(site.live_blocks) ? site.live_blocks : 0;
      let node = root;
      root.value += v;
      root.blocks += b;
      for (const f of siteFrames(site, mode)) {
        let kid = node.children.get(f);
        if (!kid) {
          kid = { name: f, value: 0, blocks: 0, children: new Map(), parent: node, depth: node.depth + 1 };
          node.children.set(f, kid);
        }
        kid.value += v;
        kid.blocks += b;
        node = kid;
      }
    }
    return root;
  }

  function pathOf(node) {
    const p = [];
    for (let n = node; n && n.parent; n = n.parent) p.push(n.name);
    return p.reverse();
  }

  function drawFlame(body, d) {
    const peak = obj(d.peak), sites = obj(d.sites);
    let source = peak ? list(peak.top) : [];
    let from = "the peak";
    if (!source.length && sites && list(sites.top).length) {
      source = list(sites.top);
      from = "now (no peak snapshot was taken)";
    }
    if (!source.length) {
      missing(body, "The peak's allocation sites (sampling off, or nothing sampled yet)");
      return;
    }
    const hasPython = source.some((s) => list(s.stack).length > 0);
    let mode = hasPython ? "python" : "native";
    const controls = el("div", { class: "controls" });
    const py = el("input", { type: "radio", name: "frames", id: "frames-python", value: "python" });
    const nat = el("input", { type: "radio", name: "frames", id: "frames-native", value: "native" });
    py.checked = mode === "python";
    nat.checked = mode === "native";
    if (!hasPython) py.disabled = true;
    const reset = el("button", { type: "button", id: "flame-reset", text: "whole graph" });
    controls.append(el("label", null, py, " Python frames" + (hasPython ? "" : " (none recorded)")),
      el("label", null, nat, " native frames"), reset);
    const crumbs = el("div", { class: "crumbs", id: "flame-crumbs" });
    const holder = el("div", { id: "flame-holder" });
    body.append(el("p", { class: "note", text: "Sites holding the most live bytes at " + from +
      (peak && peak.time ? " (" + peak.time + ", " + bytes(peak.committed) + " committed)" : "") +
      ", estimated from samples; callers above, the allocating line at the bottom. " +
      "Width is live bytes. Hover for details, click to zoom." }), controls, crumbs, holder);

    let tree = buildTree(source, mode), zoom = tree;
    function render() {
      holder.textContent = "";
      const W = Math.max(600, Math.min(1400, holder.clientWidth || body.clientWidth || 960));
      const rowH = 18;
      let maxDepth = 0;
      (function walk(n) {
        maxDepth = Math.max(maxDepth, n.depth);
        for (const k of n.children.values()) walk(k);
      })(tree);
      const H = (maxDepth + 1) * rowH + 2;
      const g = sv("svg", { id: "flame", width: W, height: H, viewBox: "0 0 " + W + " " + H,
        role: "img", "aria-label": "flame graph of the peak's allocation sites", "data-mode": mode });
      const total = tree.value;
      const anc = [];
      for (let n = zoom; n; n = n.parent) anc.push(n);
      anc.reverse();
      function bar(n, x0, w, isAncestor) {
        const yy = n.depth * rowH;
        const r = sv("rect", { x: x0.toFixed(2), y: yy, width: Math.max(w, 0.5).toFixed(2), height: rowH - 1,
          "data-name": n.name, "data-bytes": n.value, "data-depth": n.depth });
        if (isAncestor && n !== zoom) r.setAttribute("class", "ancestor");
        else r.setAttribute("fill", n.parent ? "hsl(" + (mode === "python" ? 20 + hue(n.name) % 40
          : 190 + hue(n.name) % 50) + ",70%," + (60 + hue(n.name + "l") % 15) + "%)" : "#c9ced4");
        hover(r, () => {
          const lines = [n.name, bytes(n.value) + " live (" + share(n.value, total) + " of the sites shown)" +
            (n.blocks ? " in ~" + count(n.blocks) + " blocks" : "")];
          const p = pathOf(n);
          if (p.length) lines.push("", "stack, outermost first:", ...p.map((f, i) => "  ".repeat(Math.min(i, 12)) + f));
          return lines.join("\n");
        });
        r.addEventListener("click", () => { zoom = n; render(); });
        g.append(r);
        const chars = Math.floor((w - 6) / 6.6);
        if (chars >= 3) {
          /* A Python line's directory is in the hover, not the label. */
          const short = /^\/[^ ]*\/([^/ ]+:\d+ )/.test(n.name) ? n.name.replace(/^\/[^ ]*\//, "") : n.name;
          const label = short.length > chars ? short.slice(0, chars - 1) + "\u2026" : short;
          g.append(sv("text", { x: (x0 + 3).toFixed(2), y: yy + rowH - 6, text: label }));
        }
      }
      for (const a of anc) if (a !== zoom) bar(a, 0, W, true);
      (function layout(n, x0, w) {
        bar(n, x0, w, false);
        let x = x0;
        const kids = [...n.children.values()].sort((a, b) => b.value - a.value);
        for (const k of kids) {
          const kw = w * k.value / n.value;
          if (kw >= 0.3) layout(k, x, kw);
          x += kw;
        }
      })(zoom, 0, W);
      holder.append(g);
      crumbs.textContent = zoom === tree ? "all sites: " + bytes(total) + " live"
        : "zoomed to " + zoom.name + " (" + bytes(zoom.value) + ", " + share(zoom.value, total) + "); click the top bar or \u201cwhole graph\u201d to go back";
    }
    function setMode(m) {
      mode = m;
      tree = buildTree(source, mode);
      zoom = tree;
      render();
    }
    py.addEventListener("change", () => { if (py.checked) setMode("python"); });
    nat.addEventListener("change", () => { if (nat.checked) setMode("native"); });
    reset.addEventListener("click", () => { zoom = tree; render(); });
    render();
  }

  /* --------------------------------------------------------------- sites */

  function where(site) {
    const st = list(site.stack), fr = list(site.frames);
    return st.length ? st[0] : fr.length ? fr[0] : "(no frames)";
  }

  function drawSites(body, d) {
    const sites = obj(d.sites);
    if (!sites) { missing(body, "Allocation sites"); return; }
    if (sites.rate === 0 && !sites.sites) {
      body.append(el("p", { class: "missing", text: "Sampling is off (EBB_SAMPLE_RATE=0): no sites." }));
      return;
    }
    body.append(el("p", { class: "note", text: "Estimated from " + count(sites.samples) + " samples (one per " +
      bytes(sites.rate) + " allocated; " + count(sites.live_samples) + " live, " + count(sites.sites) + " sites" +
      (sites.dropped ? ", " + count(sites.dropped) + " dropped: the site table was full" : "") + ")." }));
    const top = list(sites.top);
    if (!top.length) { body.append(el("p", { class: "missing", text: "No site holds live samples now." })); return; }
    const rows = top.map((s, i) => {
      const det = el("details", null, el("summary", null, el("code", { text: where(s) })));
      const st = list(s.stack), fr = list(s.frames);
      if (st.length) det.append(el("pre", { text: "Python, innermost first:\n" + st.join("\n") }));
      if (fr.length) det.append(el("pre", { text: "native, innermost first:\n" + fr.join("\n") }));
      return [i + 1, bytes(s.live_bytes), count(s.live_blocks), bytes(s.total_bytes), count(s.samples), det];
    });
    body.append(table([{ t: "#", n: 1 }, { t: "live", n: 1 }, { t: "blocks", n: 1 },
      { t: "allocated in all", n: 1 }, { t: "samples", n: 1 }, { t: "where (click for the stack)" }], rows));
  }

  /* ---------------------------------------------------------------- held */

  const HELD_COLOURS = ["#8c96a3", "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a",
    "#9467bd", "#c5b0d5", "#8c564b", "#e377c2", "#7f7f7f"];

  /* An object's numbers, nested objects flattened ("a.b"). */
  function numbersOf(o, prefix, out) {
    for (const [k, v] of Object.entries(o)) {
      if (isNum(v)) out.push([prefix + k, v]);
      else if (obj(v)) numbersOf(v, prefix + k + ".", out);
    }
    return out;
  }

  function drawHeld(body, d) {
    const held = obj(d.held), mem = obj(d.memory);
    if (!held && !mem) { missing(body, "Where the memory is"); return; }
    if (held) {
      const items = numbersOf(held, "", []);
      const total = items.reduce((a, [, v]) => a + Math.max(v, 0), 0);
      body.append(el("p", { class: "note", text: "Every mapped byte in exactly one category" +
        (mem && isNum(mem.mapped) ? " (they add up to " + bytes(mem.mapped) + " mapped" +
          (total !== mem.mapped ? "; here " + bytes(total) : "") + ")" : "") + "." }));
      const bar = el("div", { class: "stack", id: "held-bar" });
      items.forEach(([k, v], i) => {
        if (v <= 0 || !total) return;
        const seg = el("div");
        seg.style.width = (100 * v / total) + "%";
        seg.style.background = HELD_COLOURS[i % HELD_COLOURS.length];
        hover(seg, k.replace(/_/g, " ") + ": " + bytes(v) + " (" + share(v, total) + ")");
        bar.append(seg);
      });
      body.append(bar);
      body.append(table([{ t: "" }, { t: "category" }, { t: "bytes", n: 1 }, { t: "share", n: 1 }],
        items.map(([k, v], i) => {
          const sw = el("span", { class: "sw" });
          sw.style.cssText = "display:inline-block;width:12px;height:12px;border-radius:2px;background:" +
            HELD_COLOURS[i % HELD_COLOURS.length];
          return [sw, k.replace(/_/g, " "), bytes(v), share(v, total)];
        })));
    }
    if (mem) {
      body.append(el("h3", { text: "memory" }));
      body.append(table([{ t: "figure" }, { t: "value", n: 1 }],
        Object.entries(mem).filter(([, v]) => isNum(v)).map(([k, v]) =>
          [k.replace(/_/g, " "), k === "purges" || k === "large_blocks" ? count(v) : bytes(v)])));
    }
    for (const key of ["rss", "reconciliation", "rss_reconciliation"]) {
      const extra = obj(d[key]);
      if (!extra) continue;
      body.append(el("h3", { text: key.replace(/_/g, " ") }));
      body.append(table([{ t: "figure" }, { t: "value", n: 1 }],
        numbersOf(extra, "", []).map(([k, v]) => [k.replace(/_/g, " "), bytes(v)])));
    }
  }

  /* ------------------------------------------------------------- classes */

  function drawClasses(body, d) {
    if (!Array.isArray(d.classes)) { missing(body, "Size classes"); return; }
    if (!d.classes.length) { body.append(el("p", { class: "missing", text: "No size class is in use." })); return; }
    const rows = d.classes.map((c) => {
      const fill = c.pool_bytes ? Math.min(1, (c.bytes || 0) / c.pool_bytes) : 0;
      const bar = el("div", { class: "bar" }, el("div"));
      bar.firstChild.style.width = (100 * fill).toFixed(1) + "%";
      return [bytes(c.size), count(c.blocks), bytes(c.bytes), count(c.pools), bytes(c.pool_bytes),
        (100 * fill).toFixed(0) + "%", bar];
    });
    body.append(table([{ t: "block size", n: 1 }, { t: "blocks out", n: 1 }, { t: "their bytes", n: 1 },
      { t: "pools", n: 1 }, { t: "pool bytes", n: 1 }, { t: "fill", n: 1 }, { t: "" }], rows));
  }

  /* ------------------------------------------------------------ heap map */

  function drawOneHeapMap(holder, hm, title) {
    const slotBytes = isNum(hm.slot_bytes) && hm.slot_bytes > 0 ? hm.slot_bytes : 65536;
    const arenaBytes = isNum(hm.arena_bytes) && hm.arena_bytes > 0 ? hm.arena_bytes : 4194304;
    const slots = Math.max(1, Math.round(arenaBytes / slotBytes));
    const arenas = list(hm.arenas);
    const box = el("div");
    box.append(el("h3", { text: title + " (" + arenas.length + " arena" + (arenas.length === 1 ? "" : "s") +
      " of " + bytes(arenaBytes) + ", " + slots + " slots of " + bytes(slotBytes) + ")" }));
    if (!arenas.length) { box.append(el("p", { class: "missing", text: "No arena." })); holder.append(box); return; }
    const cw = Math.max(6, Math.min(14, Math.floor(900 / slots))), ch = 16, L = 120;
    const shown = arenas.slice(0, 256);
    const W = L + slots * cw + 2, H = shown.length * (ch + 3) + 2;
    const g = sv("svg", { class: "heapmap", width: W, height: H, viewBox: "0 0 " + W + " " + H });
    const defs = sv("defs");
    const pat = sv("pattern", { id: "purged-" + title.replace(/\W/g, ""), width: 4, height: 4,
      patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" });
    pat.append(sv("rect", { width: 4, height: 4, fill: "#f1f1f1" }), sv("line", { x1: 0, y1: 0, x2: 0, y2: 4,
      stroke: "#b0b0b0", "stroke-width": 2 }));
    defs.append(pat);
    g.append(defs);
    shown.forEach((a, row) => {
      const y = row * (ch + 3) + 1;
      g.append(sv("text", { x: 0, y: y + ch - 4, text: String(a.base || "arena " + row) }));
      const covered = new Array(slots).fill(false);
      for (const p of list(a.pools)) {
        const s = isNum(p.slot) ? p.slot : 0, span = isNum(p.span) && p.span > 0 ? p.span : 1;
        for (let i = s; i < s + span && i < slots; i++) covered[i] = true;
        const fill = p.blocks > 0 ? Math.min(1, (p.used || 0) / p.blocks) : 0;
        const state = p.state || (fill >= 1 ? "full" : fill > 0 ? "partial" : "empty");
        let colour;
        if (state === "purged") colour = "url(#" + pat.id + ")";
        else if (state === "empty") colour = "#ffffff";
        else colour = "hsl(212," + (45 + 30 * fill).toFixed(0) + "%," + (88 - 58 * fill).toFixed(0) + "%)";
        const r = sv("rect", { x: L + s * cw + 0.5, y: y, width: span * cw - 1, height: ch,
          fill: colour, stroke: state === "full" ? "#0b2545" : "#7a8794", "stroke-width": state === "full" ? 1.5 : 0.7,
          class: "pool " + state, "data-class": p.class, "data-fill": fill.toFixed(3) });
        hover(r, "pool at slot " + s + (span > 1 ? "-" + (s + span - 1) : "") + " of " + (a.base || "its arena") +
          "\nclass " + p["class"] + ": " + bytes(p.block_size) + " blocks\n" + count(p.used) + " of " + count(p.blocks) +
          " blocks out (" + (100 * fill).toFixed(0) + "%)\n" + state +
          (isNum(p.resident_pages) ? ", " + p.resident_pages + " of " + (span * slotBytes / 4096) + " pages resident" : ""));
        g.append(r);
      }
      for (let i = 0; i < slots; i++) {
        if (covered[i]) continue;
        const r = sv("rect", { x: L + i * cw + 0.5, y: y + ch / 2 - 2, width: cw - 1, height: 4, fill: "#d9dee3",
          class: "free-slot" });
        hover(r, "free slot " + i + " of " + (a.base || "its arena"));
        g.append(r);
      }
    });
    box.append(g);
    if (arenas.length > shown.length)
      box.append(el("p", { class: "note", text: "The first " + shown.length + " of " + arenas.length + " arenas." }));
    holder.append(box);
  }

  function drawHeapMap(body, d) {
    const now = obj(d.heap_map), peak = obj(d.heap_map_peak);
    if (!now && !peak) { missing(body, "The heap map"); return; }
    const legend = el("div", { class: "legend" });
    for (const [name, css] of [["pool, shaded by fill", "hsl(212,60%,60%)"], ["full", "hsl(212,75%,30%)"],
      ["empty", "#fff; border:1px solid #7a8794"], ["purged", "repeating-linear-gradient(45deg,#f1f1f1 0 2px,#b0b0b0 2px 4px)"],
      ["free slot", "#d9dee3"]]) {
      const sw = el("span", { class: "sw" });
      sw.style.cssText = "display:inline-block;width:12px;height:12px;border-radius:2px;background:" + css;
      legend.append(el("span", null, sw, name));
    }
    body.append(legend);
    const maps = el("div", { class: "maps" });
    if (now) drawOneHeapMap(maps, now, "now");
    else maps.append(el("p", { class: "missing", text: "The heap map now: not recorded." }));
    if (peak) drawOneHeapMap(maps, peak, "at the peak");
    body.append(maps);
  }

  /* ------------------------------------------------------- address space */

  const KIND_COLOURS = { ebb: "#1b9e77", heap: "#d95f02", stack: "#7570b3", program: "#1f78b4",
    library: "#33a02c", file: "#a6761d", anonymous: "#8c8c8c", kernel: "#222222", free: "#f3f5f7" };

  function kindColour(kind) {
    return KIND_COLOURS[kind] || "hsl(" + hue(String(kind)) + ",55%,55%)";
  }

  function hexAdd(start, n) {
    try {
      return "0x" + (BigInt(start) + BigInt(n)).toString(16);
    } catch (e) {
      return String(start);
    }
  }

  function drawAddressSpace(body, d) {
    const m = obj(d.address_space_map);
    if (!m) {
      const as = obj(d.address_space);
      missing(body, "The address-space map");
      if (as && as.largest_free)
        body.append(el("p", { text: "Largest free range: " + bytes(as.largest_free) + " at " + as.largest_free_at + "." }));
      return;
    }
    const grid = obj(m.grid) || {}, legend = obj(grid.legend) || {}, rows = list(grid.rows);
    const cols = isNum(grid.columns) && grid.columns > 0 ? grid.columns : 64, cell = grid.cell;
    body.append(el("p", { class: "note", text: (m.command ? m.command + ", " : "") + (m.pid ? "pid " + m.pid + ", " : "") +
      (m.bits ? m.bits + "-bit; " : "") + "each cell " + bytes(cell) + "; rows of free space in between are folded." }));
    const groups = list(m.groups).filter((g) => g && g.size > 0);
    const leg = el("div", { class: "legend" });
    for (const gr of groups) {
      const sw = el("span", { class: "sw" });
      sw.style.background = kindColour(gr.kind);
      leg.append(el("span", null, sw, (gr.name || gr.kind) + " " + bytes(gr.size) + (isNum(gr.rss) ? " (RSS " + bytes(gr.rss) + ")" : "")));
    }
    body.append(leg);
    const cw = 12, ch = 12, L = 130, shown = rows.slice(0, 600);
    let H = 0;
    const layout = shown.map((r) => { const y = H; H += r.cells ? ch + 2 : 14; return y; });
    const W = L + cols * cw + 8;
    const g = sv("svg", { id: "addrmap", width: W, height: H + 2, viewBox: "0 0 " + W + " " + (H + 2) });
    shown.forEach((r, i) => {
      const y = layout[i];
      if (typeof r.cells === "string") {
        g.append(sv("text", { x: 0, y: y + ch - 2, text: String(r.start) }));
        for (let c = 0; c < r.cells.length && c < cols; c++) {
          const kind = legend[r.cells[c]] || (r.cells[c] === "." ? "free" : r.cells[c]);
          const rect = sv("rect", { x: L + c * cw, y: y, width: cw - 1, height: ch, fill: kindColour(kind),
            class: "cell", "data-kind": kind });
          hover(rect, kind + " at " + hexAdd(r.start, isNum(cell) ? c * cell : 0) + (isNum(cell) ? " (" + bytes(cell) + " cell)" : ""));
          g.append(rect);
        }
      } else {
        g.append(sv("text", { x: L, y: y + 10, fill: "#5d6873",
          text: "\u22ee " + bytes(r.free) + " free, " + r.start + " to " + r.end }));
      }
    });
    body.append(g);
    if (rows.length > shown.length)
      body.append(el("p", { class: "note", text: "The first " + shown.length + " of " + rows.length + " rows." }));
    const free = obj(m.free);
    if (free) {
      body.append(el("h3", { text: "largest free regions (" + bytes(free.bytes) + " free in " + count(free.regions) + " regions)" }));
      body.append(table([{ t: "start" }, { t: "end" }, { t: "size", n: 1 }],
        list(free.largest).map((f) => [el("code", { text: String(f.start) }), el("code", { text: String(f.end) }), bytes(f.size)])));
    }
  }

  /* ---------------------------------------------------------------- page */

  if (dataError || !data) {
    main.append(el("section", null, el("h2", { text: "No report data" }),
      el("p", { class: "error", text: "The report's JSON could not be read: " + dataError })));
    console.error("ebb report: " + dataError);
    return;
  }
  document.title = "ebb report" + (data.pid ? ": pid " + data.pid : "") + (data.time ? ", " + data.time : "");
  try {
    drawVerdict(data);
  } catch (e) {
    console.error("ebb report: verdict: " + e);
  }
  section("memory-over-time", "Memory over time", "live: what the program holds; committed: ebb's estimate of its " +
    "resident memory; RSS: the process's resident set; limit: ebb's limit.", (b) => drawTimeline(b, data));
  section("peak-flame", "Who held the peak", null, (b) => drawFlame(b, data));
  section("sites", "Top allocation sites now", null, (b) => drawSites(b, data));
  section("held", "Where the memory is", null, (b) => drawHeld(b, data));
  section("heap-map", "Heap map", "Arenas as rows, pools as cells shaded by how full they are.", (b) => drawHeapMap(b, data));
  section("classes", "Size classes", "Small blocks by size class: blocks out, their bytes, and how full their pools are.",
    (b) => drawClasses(b, data));
  section("address-space", "Address space", null, (b) => drawAddressSpace(b, data));
  document.body.setAttribute("data-drawn", "1");
})();
