// Sluice status page: polls GET /v1/status once a second, derives rates
// from successive *_total counters, and draws the last five minutes on
// <canvas> charts. No libraries, no external network, no build step.
//
// /v1/status shape (see include/sluice/www.h and the daemon's handler):
//   {time_ms, policy: {generation, mode, source},
//    classes: [{name, share_bytes_per_sec, bytes_total, active}],
//    connectors: [{name, class, bytes_total, records_total, connections,
//                  throttle: {reason, ms_total, events_total}, paused}],
//    brokers: [{id, host, latency_ms: {p50, p99}, inflight,
//               admitted_bytes_per_sec, limited, pressure_reason,
//               pressure_latency_ms}],
//    process: {connections, inflight_bytes, upstream_outstanding}}
//
// For automated checks (headless browser): <body data-state> is "loading",
// "ok" or "error"; every chart canvas carries data-points (points drawn)
// and data-series; window.sluiceStatus counts updates.
"use strict";

(function () {
  // History kept and drawn: five minutes, or ?window=90s / ?window=2m
  // (30 s to 30 min; a demo shows its story closer up).
  const WINDOW_MS = (function () {
    const m = /[?&]window=(\d+)(s|m)?(?:&|$)/.exec(window.location.search);
    if (!m) return 5 * 60 * 1000;
    const ms = Number(m[1]) * (m[2] === "m" ? 60000 : 1000);
    return Math.min(Math.max(ms, 30000), 30 * 60000);
  })();
  // Time axis ticks: every 30 s up to a three-minute window, else minutes.
  const TICK_MS = WINDOW_MS <= 3 * 60000 ? 30000 : 60000;
  function tickLabel(ms) {
    if (ms === 0) return "now";
    const s = Math.round(ms / 1000);
    return "-" + (s < 60 ? s + "s" : Math.floor(s / 60) + "m" + (s % 60 ? (s % 60) + "s" : ""));
  }
  const REFRESH_MS = 1000;         // pause between the end of one poll and the next
  const TIMEOUT_MS = 5000;         // a poll that takes longer is abandoned

  const state = { updates: 0, lastError: null, lastTime: null };
  window.sluiceStatus = state;

  const $ = (id) => document.getElementById(id);
  const num = (v) => typeof v === "number" && Number.isFinite(v);

  // ---- formatting -------------------------------------------------------

  function fmtScaled(v, units, base) {
    if (!num(v)) return "–";
    let i = 0;
    let x = Math.abs(v);
    while (x >= base && i < units.length - 1) {
      x /= base;
      i++;
    }
    const digits = x >= 100 || i === 0 ? 0 : x >= 10 ? 1 : 2;
    return (v < 0 ? "-" : "") + x.toFixed(digits) + " " + units[i];
  }
  const fmtRate = (v) => fmtScaled(v, ["B/s", "kB/s", "MB/s", "GB/s", "TB/s"], 1000);
  const fmtBytes = (v) => fmtScaled(v, ["B", "kB", "MB", "GB", "TB"], 1000);
  const fmtCount = (v) => (num(v) ? Math.round(v).toLocaleString("en-US") : "–");
  const fmtPerSec = (v) => (num(v) ? (v >= 100 ? v.toFixed(0) : v.toFixed(1)) : "–");
  const fmtMs = (v) => (num(v) ? (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) : "–");
  const fmtMsAxis = (v) => fmtMs(v) + " ms";
  const fmtHeld = (v) => (num(v) ? v.toFixed(0) + " ms/s" : "–");
  // Many muted connections hold more than 10 s per second in all: the
  // axis says "120k ms/s" rather than overflow its margin.
  const fmtHeldAxis = (v) => (num(v) && v >= 10000 ? (v / 1000).toFixed(0) + "k ms/s" : fmtHeld(v));

  // ---- colors -----------------------------------------------------------

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }
  function palette() {
    const p = cssVar("--series").split(/\s+/).filter(Boolean);
    return p.length ? p : ["#2f6fdf", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a"];
  }
  // One color per entity for the page's lifetime, so a connector has the
  // same color in the rate and the throttle charts.
  const colorIndex = new Map();
  function colorOf(entity) {
    if (!colorIndex.has(entity)) colorIndex.set(entity, colorIndex.size);
    const p = palette();
    return p[colorIndex.get(entity) % p.length];
  }

  // ---- rates from counters ----------------------------------------------

  // Per-second rate of a monotonic counter between two polls. null for the
  // first sample and when the counter went backwards (a daemon restart).
  const previous = new Map();
  function rate(key, t, v) {
    const p = previous.get(key);
    if (!num(v)) {
      previous.delete(key);
      return null;
    }
    previous.set(key, { t: t, v: v });
    if (!p || t <= p.t || v < p.v) return null;
    return ((v - p.v) * 1000) / (t - p.t);
  }

  // ---- events (the timeline) -------------------------------------------

  // The last events from /v1/status: pressure limits, operator actions,
  // policy reloads, annotations. Drawn as markers on every chart.
  let timeline = [];
  const KIND_COLORS = { pressure: "--bad-fg", operator: "--operator", policy: "--policy" };
  function kindColor(kind) {
    return cssVar(KIND_COLORS[kind] || "--muted") || "#777";
  }

  // ---- charts -----------------------------------------------------------

  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const e = Math.pow(10, Math.floor(Math.log10(v)));
    const f = v / e;
    const n = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
    return n * e;
  }

  class Chart {
    constructor(canvasId, legendId, fmtAxis, fmtValue) {
      this.canvas = $(canvasId);
      this.legend = $(legendId);
      this.fmtAxis = fmtAxis;
      this.fmtValue = fmtValue;
      this.series = new Map(); // key -> {label, color, dashed, points: [[t, v]], seen}
      this.now = null;
    }

    add(key, label, color, t, v, dashed) {
      let s = this.series.get(key);
      if (!s) {
        s = { label: label, color: color, dashed: !!dashed, points: [], seen: t };
        this.series.set(key, s);
      }
      s.label = label;
      s.points.push([t, num(v) ? v : null]);
      s.seen = t;
      this.now = this.now === null ? t : Math.max(this.now, t);
    }

    trim() {
      if (this.now === null) return;
      const cutoff = this.now - WINDOW_MS;
      for (const [key, s] of this.series) {
        while (s.points.length && s.points[0][0] < cutoff) s.points.shift();
        if (s.seen < cutoff || s.points.length === 0) this.series.delete(key);
      }
    }

    draw() {
      const c = this.canvas;
      const w = c.clientWidth;
      const h = c.clientHeight;
      if (!w || !h) return;
      const dpr = window.devicePixelRatio || 1;
      if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
        c.width = Math.round(w * dpr);
        c.height = Math.round(h * dpr);
      }
      const ctx = c.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, w, h);

      const padL = 70, padR = 10, padT = 8, padB = 20;
      const pw = Math.max(10, w - padL - padR);
      const ph = Math.max(10, h - padT - padB);
      const now = this.now === null ? Date.now() : this.now;

      let max = 0;
      let points = 0;
      for (const s of this.series.values()) {
        for (const p of s.points) {
          if (p[1] === null) continue;
          points++;
          if (p[1] > max) max = p[1];
        }
      }
      const top = niceCeil(max * 1.1);
      const X = (t) => padL + pw - (pw * (now - t)) / WINDOW_MS;
      const Y = (v) => padT + ph - (ph * Math.min(Math.max(v, 0), top)) / top;

      ctx.font = "11px system-ui, sans-serif";
      ctx.lineWidth = 1;
      ctx.strokeStyle = cssVar("--grid") || "#ddd";
      ctx.fillStyle = cssVar("--muted") || "#777";
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      for (let i = 0; i <= 4; i++) {
        const y = Math.round(padT + ph - (ph * i) / 4) + 0.5;
        ctx.beginPath();
        ctx.moveTo(padL, y);
        ctx.lineTo(padL + pw, y);
        ctx.stroke();
        ctx.fillText(this.fmtAxis((top * i) / 4), padL - 6, y);
      }
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      for (let k = 0; k * TICK_MS <= WINDOW_MS; k++) {
        const x = Math.round(X(now - k * TICK_MS)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(x, padT);
        ctx.lineTo(x, padT + ph);
        ctx.stroke();
        ctx.fillText(tickLabel(k * TICK_MS), Math.min(x, padL + pw - 12), padT + ph + 4);
      }

      // Event markers: a dotted line at each event, its text at the top
      // (staggered over three rows so that neighbours stay readable).
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      let lane = 0;
      let markers = 0;
      for (const e of timeline) {
        if (!num(e.time_ms) || e.time_ms < now - WINDOW_MS || e.time_ms > now + 1000) continue;
        const x = Math.round(X(Math.min(e.time_ms, now))) + 0.5;
        ctx.strokeStyle = kindColor(e.kind);
        ctx.fillStyle = ctx.strokeStyle;
        ctx.setLineDash([2, 3]);
        ctx.beginPath();
        ctx.moveTo(x, padT);
        ctx.lineTo(x, padT + ph);
        ctx.stroke();
        ctx.setLineDash([]);
        const text = String(e.text || e.kind);
        const label = text.length > 34 ? text.slice(0, 33) + "…" : text;
        const tw = ctx.measureText(label).width;
        ctx.fillText(label, Math.min(x + 3, padL + pw - tw), padT + 2 + 13 * (lane % 3));
        lane++;
        markers++;
      }
      c.dataset.markers = String(markers);

      for (const s of this.series.values()) {
        ctx.strokeStyle = s.color;
        ctx.fillStyle = s.color;
        ctx.lineWidth = 1.75;
        ctx.setLineDash(s.dashed ? [5, 4] : []);
        ctx.beginPath();
        let pen = false;
        let lone = null; // a point with no neighbour gets a dot
        for (let i = 0; i < s.points.length; i++) {
          const p = s.points[i];
          if (p[1] === null) {
            if (lone) ctx.fillRect(lone[0] - 1.5, lone[1] - 1.5, 3, 3);
            pen = false;
            lone = null;
            continue;
          }
          const x = X(p[0]);
          const y = Y(p[1]);
          if (pen) {
            ctx.lineTo(x, y);
            lone = null;
          } else {
            ctx.moveTo(x, y);
            pen = true;
            lone = [x, y];
          }
        }
        if (lone) ctx.fillRect(lone[0] - 1.5, lone[1] - 1.5, 3, 3);
        ctx.stroke();
      }
      ctx.setLineDash([]);

      if (points === 0) {
        ctx.fillStyle = cssVar("--muted") || "#777";
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.fillText(state.updates < 2 ? "collecting…" : "nothing to show", padL + pw / 2, padT + ph / 2);
      }
      c.dataset.points = String(points);
      c.dataset.series = String(this.series.size);
    }

    renderLegend() {
      const items = [];
      for (const s of this.series.values()) {
        const li = document.createElement("li");
        const sw = document.createElement("span");
        sw.className = "swatch" + (s.dashed ? " dashed" : "");
        if (s.dashed) sw.style.borderTopColor = s.color;
        else sw.style.background = s.color;
        const label = document.createElement("span");
        label.textContent = s.label;
        const value = document.createElement("span");
        value.className = "value";
        const last = s.points.length ? s.points[s.points.length - 1][1] : null;
        value.textContent = this.fmtValue(last);
        li.append(sw, label, value);
        items.push(li);
      }
      this.legend.replaceChildren(...items);
    }
  }

  const charts = {
    classes: new Chart("chart-classes", "legend-classes", fmtRate, fmtRate),
    connectors: new Chart("chart-connectors", "legend-connectors", fmtRate, fmtRate),
    throttle: new Chart("chart-throttle", "legend-throttle", fmtHeldAxis, fmtHeld),
    brokers: new Chart("chart-brokers", "legend-brokers", fmtMsAxis, (v) => (num(v) ? fmtMs(v) + " ms" : "–")),
  };

  function drawAll() {
    for (const ch of Object.values(charts)) ch.draw();
  }

  // ---- tables -----------------------------------------------------------

  // cells: [text, className?]; text always goes through textContent, so
  // names from the policy cannot inject markup.
  function row(cells, cls) {
    const tr = document.createElement("tr");
    if (cls) tr.className = cls;
    for (const cell of cells) {
      const td = document.createElement("td");
      const c = Array.isArray(cell) ? cell : [cell];
      if (c[0] instanceof Node) td.append(c[0]);
      else td.textContent = c[0] === null || c[0] === undefined ? "–" : String(c[0]);
      if (c[1]) td.className = c[1];
      tr.append(td);
    }
    return tr;
  }

  function badge(text, bad) {
    const b = document.createElement("span");
    b.className = "badge" + (bad ? " bad" : "");
    b.textContent = text;
    return b;
  }

  function setText(id, text) {
    $(id).textContent = text === null || text === undefined ? "–" : String(text);
  }

  // ---- one update -------------------------------------------------------

  function update(d) {
    const t = num(d.time_ms) ? d.time_ms : Date.now();
    const policy = d.policy || {};
    const proc = d.process || {};
    setText("policy-gen", num(policy.generation) ? "generation " + policy.generation : "none loaded");
    setText("policy-mode", policy.mode);
    setText("policy-source", policy.source);
    setText("proc-conns", fmtCount(proc.connections));
    setText("proc-inflight", fmtBytes(proc.inflight_bytes));
    setText("proc-upstream", num(proc.upstream_outstanding) ? fmtCount(proc.upstream_outstanding) + " records" : "–");

    // Classes.
    const classes = Array.isArray(d.classes) ? d.classes : [];
    const fragile = new Set();
    const classRows = [];
    for (const c of classes) {
      const name = String(c.name);
      const color = colorOf("class:" + name);
      const r = rate("class:" + name, t, c.bytes_total);
      charts.classes.add("class:" + name, name, color, t, r, false);
      if (num(c.share_bytes_per_sec))
        charts.classes.add("share:" + name, name + " budget", color, t, c.share_bytes_per_sec, true);
      if (/fragile/i.test(name)) fragile.add(name);
      classRows.push(row([name, [fmtRate(r), "num"], [fmtRate(c.share_bytes_per_sec), "num"],
                          c.active ? "yes" : "no"]));
    }
    $("table-classes").tBodies[0].replaceChildren(...classRows);

    // Connectors.
    const connectors = (Array.isArray(d.connectors) ? d.connectors : []).slice();
    connectors.sort((a, b) => String(a.name).localeCompare(String(b.name)));
    const connRows = [];
    for (const c of connectors) {
      const name = String(c.name);
      const cls = c.class === null || c.class === undefined ? "" : String(c.class);
      const color = colorOf("conn:" + name);
      const thr = c.throttle || {};
      const bps = rate("conn-bytes:" + name, t, c.bytes_total);
      const rps = rate("conn-records:" + name, t, c.records_total);
      const held = rate("conn-thr-ms:" + name, t, thr.ms_total);
      const events = rate("conn-thr-n:" + name, t, thr.events_total);
      charts.connectors.add("conn:" + name, cls ? name + " (" + cls + ")" : name, color, t, bps, false);
      if ((num(thr.ms_total) && thr.ms_total > 0) || charts.throttle.series.has("thr:" + name)) {
        const why = thr.reason ? " – " + thr.reason : "";
        charts.throttle.add("thr:" + name, name + why, color, t, held, false);
      }
      const throttledNow = num(held) && held > 0;
      const rowCls = [
        throttledNow ? "throttled" : "",
        throttledNow && (fragile.has(cls) || /fragile/i.test(cls)) ? "fragile" : "",
        c.paused ? "paused" : "",
      ].filter(Boolean).join(" ");
      connRows.push(row([
        name, cls, [fmtRate(bps), "num"], [fmtPerSec(rps), "num"], [fmtCount(c.connections), "num"],
        thr.reason ? String(thr.reason) : "–", [fmtHeld(held), "num"], [fmtPerSec(events), "num"],
        [c.paused ? badge("paused", true) : badge("running", false)],
      ], rowCls));
    }
    $("table-connectors").tBodies[0].replaceChildren(...connRows);
    $("empty-connectors").hidden = connectors.length > 0;

    // Events: the timeline, newest first in the list.
    timeline = Array.isArray(d.events) ? d.events : [];
    const evRows = [];
    for (const e of timeline.slice(-12).reverse()) {
      const li = document.createElement("li");
      const when = document.createElement("time");
      when.textContent = num(e.time_ms) ? new Date(e.time_ms).toLocaleTimeString() : "–";
      const kind = document.createElement("span");
      kind.className = "kind kind-" + String(e.kind).replace(/[^a-z]/g, "");
      kind.textContent = String(e.kind);
      const text = document.createElement("span");
      text.textContent = String(e.text);
      li.append(when, kind, text);
      evRows.push(li);
    }
    $("events").replaceChildren(...evRows);
    $("empty-events").hidden = timeline.length > 0;

    // Brokers.
    const brokers = Array.isArray(d.brokers) ? d.brokers : [];
    const brokerRows = [];
    for (const b of brokers) {
      const id = String(b.id);
      const lat = b.latency_ms || {};
      const color = colorOf("broker:" + id);
      charts.brokers.add("b99:" + id, "broker " + id + " p99", color, t, lat.p99, false);
      charts.brokers.add("b50:" + id, "broker " + id + " p50", color, t, lat.p50, true);
      brokerRows.push(row([id, [b.host, "mono"], [fmtMs(lat.p50), "num"], [fmtMs(lat.p99), "num"],
                           [fmtCount(b.inflight), "num"],
                           [b.limited ? fmtRate(b.admitted_bytes_per_sec) : "no limit", "num"],
                           [b.limited ? badge("limited: " + String(b.pressure_reason), true)
                                      : badge("ok", false)]]));
    }
    $("table-brokers").tBodies[0].replaceChildren(...brokerRows);

    for (const ch of Object.values(charts)) {
      ch.now = t;
      ch.trim();
      ch.renderLegend();
    }
    drawAll();
    state.updates++;
    state.lastTime = t;
  }

  function setState(s, message) {
    document.body.dataset.state = s;
    setText("status", message);
  }

  async function poll() {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), TIMEOUT_MS);
    try {
      const resp = await fetch("/v1/status", {
        cache: "no-store",
        signal: ctrl.signal,
        headers: { Accept: "application/json" },
      });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      update(await resp.json());
      state.lastError = null;
      setState("ok", "updated " + new Date().toLocaleTimeString());
    } catch (e) {
      // Shown on the page, not thrown: a daemon restart is not a page bug.
      state.lastError = e && e.name === "AbortError" ? "timed out" : String((e && e.message) || e);
      setState("error", "no data: " + state.lastError);
    } finally {
      clearTimeout(timer);
      setTimeout(poll, REFRESH_MS);
    }
  }

  window.addEventListener("resize", drawAll);
  if (window.matchMedia)
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", drawAll);
  drawAll();
  poll();
})();
