// minidet analysis page: trace + prediction, pre-processing, detection, event review, saving.
// The server holds all state; this page draws what /api/* sends and posts the person's edits.
"use strict";

const COLORS = {
  trace: "#24292f", traceFill: "rgba(36,41,47,.85)", pred: "#8250df", predFill: "rgba(130,80,223,.35)",
  event: "#d1242f", excluded: "#8c959f", selected: "#0969da", pick: "#bf8700", grid: "#eaeef2",
  axis: "#57606a", baseline: "#0969da", onset: "#1a7f37", peak: "#d1242f", half: "#8250df", raw: "#b6bec7",
};
const MARGIN = { left: 66, right: 12, top: 20, bottom: 24 };

const A = {
  state: null, models: [], methods: [],
  n: 0, rate: 1, unit: "", view: { start: 0, end: 1 },
  cache: null, fetching: false, refetch: false, overview: null,
  events: null, order: [], sort: { col: "time_s", dir: 1 },
  selected: -1, detail: null, stats: null,
  picking: false, picks: [], suggestion: null,
  ylock: null, pending: 0, polling: null, openPath: null, openKind: null, folder: null,
};
const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ server
function busy(delta) {
  A.pending += delta;
  document.body.dataset.pending = String(A.pending);
}

async function api(url, payload) {
  busy(1);
  try {
    const opts = payload === undefined ? { headers: { Accept: "application/json" } } : {
      method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(payload),
    };
    const r = await fetch(url, opts);
    const body = await r.json().catch(() => ({ error: r.statusText }));
    if (!r.ok) { const e = new Error(body.error || r.statusText); e.status = r.status; throw e; }
    return body;
  } finally {
    busy(-1);
  }
}

function flash(text, isError, ms) {
  const el = $("status");
  el.textContent = text;
  el.className = "status show" + (isError ? " error" : "");
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { el.className = "status"; }, ms || (isError ? 7000 : 2500));
}

function fail(err) { flash(err.message || String(err), true); }

// ------------------------------------------------------------------ formatting
function fmt(v, digits) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  return Number(v).toFixed(digits);
}
function sig(v, n) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(n - 1);
  return Number(v.toPrecision(n)).toString();
}
function fmtTime(s, span) {
  const digits = Math.max(0, Math.min(6, Math.ceil(-Math.log10(Math.max(span, 1e-9))) + 1));
  return s.toFixed(digits);
}
function niceStep(range, target) {
  const raw = range / Math.max(1, target);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}
function stepText(s) {
  switch (s.step) {
    case "highpass": return `high-pass ${sig(s.cutoff_hz, 4)} Hz (order ${s.order ?? 4})`;
    case "lowpass": return `low-pass ${sig(s.cutoff_hz, 4)} Hz (order ${s.order ?? 4})`;
    case "notch": return `notch ${sig(s.frequency_hz, 4)} Hz` + ((s.harmonics ?? 1) > 1 ? ` + ${s.harmonics - 1} harmonic${s.harmonics > 2 ? "s" : ""}` : "") + ` (Q ${sig(s.quality ?? 30, 3)})`;
    case "detrend": return `detrend (${s.kind || "linear"})`;
    case "cut": return `cut ${sig(s.start_s, 6)}–${sig(s.stop_s, 6)} s`;
    default: return s.step;
  }
}

// ------------------------------------------------------------------ canvases
// size: {w, h, dpr} for a canvas drawn off screen (a figure export); else the canvas's own size
function setupCanvas(canvas, size) {
  const dpr = size ? size.dpr || 1 : window.devicePixelRatio || 1;
  const w = size ? size.w : Math.max(10, canvas.clientWidth), h = size ? size.h : Math.max(10, canvas.clientHeight);
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  return { ctx, w, h };
}

function plotArea(w, h) {
  return { x: MARGIN.left, y: MARGIN.top, w: w - MARGIN.left - MARGIN.right, h: h - MARGIN.top - MARGIN.bottom };
}

// visible [i0, i1) range of an envelope slice for samples [s0, s1)
function sliceRange(piece, s0, s1) {
  const count = piece.lo.length;
  const i0 = Math.max(0, Math.floor((s0 - piece.x0) / piece.bin) - 1);
  const i1 = Math.min(count, Math.ceil((s1 - piece.x0) / piece.bin) + 1);
  return [i0, i1];
}

function sliceExtent(piece, s0, s1) {
  const [i0, i1] = sliceRange(piece, s0, s1);
  const hi = piece.hi || piece.lo;
  let lo = Infinity, up = -Infinity;
  for (let i = i0; i < i1; i++) {
    if (piece.lo[i] < lo) lo = piece.lo[i];
    if (hi[i] > up) up = hi[i];
  }
  return [lo, up];
}

// draw a min/max envelope (or samples) into a box; xOf(sample) and yOf(value) map to pixels
function drawSlice(ctx, piece, s0, s1, xOf, yOf, stroke, fill) {
  if (!piece || !piece.lo.length) return;
  const [i0, i1] = sliceRange(piece, s0, s1);
  if (i1 <= i0) return;
  ctx.lineWidth = 1;
  ctx.strokeStyle = stroke;
  if (!piece.hi) {
    ctx.beginPath();
    for (let i = i0; i < i1; i++) {
      const x = xOf(piece.x0 + i), y = yOf(piece.lo[i]);
      if (i === i0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    }
    ctx.stroke();
    return;
  }
  const half = piece.bin / 2;
  ctx.beginPath();
  for (let i = i0; i < i1; i++) {
    const x = xOf(piece.x0 + i * piece.bin + half), y = yOf(piece.hi[i]);
    if (i === i0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  }
  for (let i = i1 - 1; i >= i0; i--) ctx.lineTo(xOf(piece.x0 + i * piece.bin + half), yOf(piece.lo[i]));
  ctx.closePath();
  ctx.fillStyle = fill;
  ctx.fill();
  ctx.stroke();
}

function yTicks(ctx, box, lo, hi, yOf, unit) {
  const step = niceStep(hi - lo, Math.max(2, Math.floor(box.h / 40)));
  ctx.fillStyle = COLORS.axis;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  ctx.strokeStyle = COLORS.grid;
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) {
    const y = Math.round(yOf(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(box.x, y); ctx.lineTo(box.x + box.w, y); ctx.stroke();
    ctx.fillText(v.toFixed(digits), box.x - 5, y);
  }
  if (unit) {
    ctx.save();
    ctx.translate(11, box.y + box.h / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillText(unit, 0, 0);
    ctx.restore();
  }
}

// ------------------------------------------------------------------ the trace view
function traceGeometry(w, h) {
  const box = plotArea(w, h);
  const hasPred = !!(A.state && A.state.result && A.state.result.has_prediction);
  const predH = hasPred ? Math.max(50, Math.round(box.h * 0.24)) : 0;
  const gap = hasPred ? 14 : 0;
  return {
    trace: { x: box.x, y: box.y, w: box.w, h: box.h - predH - gap },
    pred: hasPred ? { x: box.x, y: box.y + box.h - predH, w: box.w, h: predH } : null,
    all: box,
  };
}

function xOfSample(s, box) { return box.x + (s - A.view.start) / (A.view.end - A.view.start) * box.w; }
function sampleOfX(x, box) { return A.view.start + (x - box.x) / box.w * (A.view.end - A.view.start); }

function drawTrace() {
  const canvas = $("trace");
  const { ctx, w, h } = setupCanvas(canvas);
  if (!A.state || !A.state.open) {
    ctx.fillStyle = COLORS.axis; ctx.textAlign = "center"; ctx.font = "14px system-ui, sans-serif";
    ctx.fillText("Open a recording or a results folder to begin (Open…)", w / 2, h / 2);
    return;
  }
  const g = traceGeometry(w, h);
  const box = g.trace;
  const s0 = A.view.start, s1 = A.view.end;
  const xOf = (s) => xOfSample(s, box);
  const data = A.cache && A.cache.data;
  // y range
  let lo, hi;
  if (A.ylock) [lo, hi] = A.ylock;
  else if (data) {
    [lo, hi] = sliceExtent(data.trace, s0, s1);
    if (!isFinite(lo)) [lo, hi] = [-1, 1];
    const pad = (hi - lo) * 0.06 || 1;
    lo -= pad; hi += pad;
  } else [lo, hi] = [-1, 1];
  A.yRange = [lo, hi];
  const yOf = (v) => box.y + (hi - v) / (hi - lo) * box.h;
  ctx.save();
  yTicks(ctx, box, lo, hi, yOf, A.unit);
  // time axis (shared)
  const span = (s1 - s0) / A.rate;
  const tStep = niceStep(span, Math.max(2, Math.floor(box.w / 110)));
  ctx.textAlign = "center"; ctx.textBaseline = "top"; ctx.fillStyle = COLORS.axis;
  const bottom = g.all.y + g.all.h;
  for (let t = Math.ceil(s0 / A.rate / tStep) * tStep; t <= s1 / A.rate; t += tStep) {
    const x = Math.round(xOf(t * A.rate)) + 0.5;
    ctx.strokeStyle = COLORS.grid;
    ctx.beginPath(); ctx.moveTo(x, box.y); ctx.lineTo(x, box.y + box.h); ctx.stroke();
    if (g.pred) { ctx.beginPath(); ctx.moveTo(x, g.pred.y); ctx.lineTo(x, g.pred.y + g.pred.h); ctx.stroke(); }
    ctx.fillText(fmtTime(t, tStep) + " s", x, bottom + 5);
  }
  // sweep joins (cut points, concatenated sweeps)
  const starts = (A.state.recording.sweep_starts || []).slice(1);
  ctx.strokeStyle = "#fd8c73"; ctx.setLineDash([2, 3]);
  for (const st of starts) {
    if (st < s0 || st > s1) continue;
    const x = Math.round(xOf(st)) + 0.5;
    ctx.beginPath(); ctx.moveTo(x, box.y); ctx.lineTo(x, g.all.y + g.all.h); ctx.stroke();
  }
  ctx.setLineDash([]);
  // the trace
  ctx.beginPath(); ctx.rect(box.x, box.y, box.w, box.h); ctx.clip();
  if (data) drawSlice(ctx, data.trace, s0, s1, xOf, yOf, COLORS.trace, COLORS.traceFill);
  ctx.restore();
  ctx.strokeStyle = COLORS.line || "#d0d7de";
  ctx.strokeRect(box.x + 0.5, box.y + 0.5, box.w - 1, box.h - 1);
  // prediction
  if (g.pred) {
    const pb = g.pred;
    const pyOf = (v) => pb.y + (1 - v) * pb.h;
    ctx.save();
    ctx.fillStyle = "#faf8ff"; ctx.fillRect(pb.x, pb.y, pb.w, pb.h);
    ctx.fillStyle = COLORS.axis; ctx.textAlign = "right"; ctx.textBaseline = "middle";
    ctx.fillText("1", pb.x - 5, pyOf(1)); ctx.fillText("0", pb.x - 5, pyOf(0));
    ctx.save(); ctx.translate(11, pb.y + pb.h / 2); ctx.rotate(-Math.PI / 2); ctx.textAlign = "center";
    ctx.fillStyle = COLORS.pred; ctx.fillText("prediction", 0, 0); ctx.restore();
    ctx.beginPath(); ctx.rect(pb.x, pb.y, pb.w, pb.h); ctx.clip();
    const thr = A.state.result.settings.threshold;
    if (thr !== null && thr !== undefined) {
      ctx.strokeStyle = COLORS.pred; ctx.setLineDash([4, 4]);
      const y = Math.round(pyOf(thr)) + 0.5;
      ctx.beginPath(); ctx.moveTo(pb.x, y); ctx.lineTo(pb.x + pb.w, y); ctx.stroke(); ctx.setLineDash([]);
    }
    if (data && data.prediction) drawSlice(ctx, data.prediction, s0, s1, xOf, pyOf, COLORS.pred, COLORS.predFill);
    ctx.restore();
    ctx.strokeStyle = "#d0d7de"; ctx.strokeRect(pb.x + 0.5, pb.y + 0.5, pb.w - 1, pb.h - 1);
  }
  drawMarkers(ctx, box, g, xOf);
  $("view-range").textContent = `${fmtTime(s0 / A.rate, span / 10)} – ${fmtTime(s1 / A.rate, span / 10)} s` +
    `  (${sig(span, 3)} s` + (data ? `, ${data.trace.bin > 1 ? data.trace.bin + " samples/column" : "every sample"})` : ")");
}

function drawMarkers(ctx, box, g, xOf) {
  const ev = A.events;
  const s0 = A.view.start, s1 = A.view.end;
  if (ev) {
    const samples = ev.sample, excl = ev.excluded;
    // first event in view (events are in time order)
    let lo = 0, hi = samples.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (samples[mid] < s0) lo = mid + 1; else hi = mid; }
    const y = box.y - 3;
    for (let i = lo; i < samples.length && samples[i] <= s1; i++) {
      const x = xOf(samples[i]);
      const sel = i === A.selected;
      ctx.beginPath();
      ctx.moveTo(x - (sel ? 6 : 4.5), y - (sel ? 11 : 9)); ctx.lineTo(x + (sel ? 6 : 4.5), y - (sel ? 11 : 9)); ctx.lineTo(x, y);
      ctx.closePath();
      if (excl[i]) {
        ctx.strokeStyle = COLORS.excluded; ctx.lineWidth = 1.2; ctx.stroke();
      } else {
        ctx.fillStyle = sel ? COLORS.selected : COLORS.event; ctx.fill();
      }
      if (sel) {
        ctx.save();
        ctx.strokeStyle = COLORS.selected; ctx.globalAlpha = 0.5; ctx.setLineDash([3, 3]);
        ctx.beginPath(); ctx.moveTo(Math.round(x) + 0.5, box.y); ctx.lineTo(Math.round(x) + 0.5, g.all.y + g.all.h); ctx.stroke();
        ctx.restore();
      }
      if (excl[i] && (s1 - s0) / box.w < 200) {  // a cross on excluded events when zoomed in
        ctx.strokeStyle = COLORS.excluded;
        ctx.beginPath(); ctx.moveTo(x - 3, y - 7); ctx.lineTo(x + 3, y - 2); ctx.moveTo(x + 3, y - 7); ctx.lineTo(x - 3, y - 2); ctx.stroke();
      }
    }
  }
  ctx.fillStyle = COLORS.pick;
  for (const p of A.picks) {
    if (p < s0 || p > s1) continue;
    const x = xOf(p);
    ctx.beginPath(); ctx.moveTo(x, box.y + 2); ctx.lineTo(x + 5, box.y + 8); ctx.lineTo(x, box.y + 14); ctx.lineTo(x - 5, box.y + 8);
    ctx.closePath(); ctx.fill();
    ctx.save(); ctx.strokeStyle = COLORS.pick; ctx.globalAlpha = 0.6; ctx.beginPath();
    ctx.moveTo(Math.round(x) + 0.5, box.y + 14); ctx.lineTo(Math.round(x) + 0.5, box.y + box.h); ctx.stroke(); ctx.restore();
  }
}

function drawOverview() {
  const canvas = $("overview");
  const { ctx, w, h } = setupCanvas(canvas);
  if (!A.overview || !A.n) return;
  const box = { x: MARGIN.left, y: 3, w: w - MARGIN.left - MARGIN.right, h: h - 6 };
  const piece = A.overview.trace;
  const [lo, hi] = sliceExtent(piece, 0, A.n);
  const xOf = (s) => box.x + s / A.n * box.w;
  const yOf = (v) => box.y + (hi - v) / ((hi - lo) || 1) * box.h;
  drawSlice(ctx, piece, 0, A.n, xOf, yOf, "#8c959f", "rgba(140,149,159,.5)");
  if (A.events) {
    ctx.fillStyle = COLORS.event;
    for (let i = 0; i < A.events.sample.length; i++) if (!A.events.excluded[i]) ctx.fillRect(xOf(A.events.sample[i]), box.y, 1, 4);
  }
  const x0 = xOf(A.view.start), x1 = xOf(A.view.end);
  ctx.fillStyle = "rgba(9,105,218,.12)";
  ctx.fillRect(x0, 0, Math.max(2, x1 - x0), h);
  ctx.strokeStyle = COLORS.selected;
  ctx.strokeRect(x0 + 0.5, 0.5, Math.max(2, x1 - x0) - 1, h - 1);
  ctx.fillStyle = COLORS.axis; ctx.textAlign = "right"; ctx.textBaseline = "middle";
  ctx.fillText("whole", box.x - 5, h / 2);
}

let drawQueued = false;
function redraw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    drawTrace();
    drawOverview();
  });
}

function traceWidth() { return Math.max(100, $("trace").clientWidth - MARGIN.left - MARGIN.right); }

function needFetch() {
  const c = A.cache;
  if (!c) return true;
  const span = A.view.end - A.view.start;
  if ((A.view.start < c.start && c.start > 0) || (A.view.end > c.stop && c.stop < A.n)) return true;
  // compare with the resolution asked for (the server may send fewer columns, never more)
  const spp = Math.max(span / traceWidth(), 0.25);
  return c.spp > spp * 1.6 || c.spp < spp / 1.6;
}

async function fetchTrace() {
  if (!A.state || !A.state.open) return;
  if (A.fetching) { A.refetch = true; return; }
  A.fetching = true;
  try {
    do {
      A.refetch = false;
      const span = A.view.end - A.view.start;
      const start = Math.max(0, Math.floor(A.view.start - span));
      const stop = Math.min(A.n, Math.ceil(A.view.end + span));
      const spp = Math.max(span / traceWidth(), 0.25);
      const pixels = Math.max(1, Math.min(8000, Math.round((stop - start) / spp)));
      const gen = A.generation;
      const data = await api(`/api/trace?start=${start}&stop=${stop}&pixels=${pixels}`);
      if (gen !== A.generation) break;
      A.cache = { start, stop, pixels, spp, data };
      redraw();
    } while (A.refetch || needFetch());
  } catch (e) {
    fail(e);
  } finally {
    A.fetching = false;
  }
}

function setView(start, end) {
  const minSpan = 20;
  let span = Math.max(minSpan, Math.min(A.n, end - start));
  start = Math.max(0, Math.min(A.n - span, start));
  A.view = { start, end: start + span };
  redraw();
  if (needFetch()) fetchTrace();
}

function zoom(factor, centre) {
  const span = A.view.end - A.view.start;
  const c = centre === undefined ? A.view.start + span / 2 : centre;
  const frac = (c - A.view.start) / span;
  const newSpan = span * factor;
  setView(c - frac * newSpan, c - frac * newSpan + newSpan);
}

function centreOn(sample, span) {
  span = span || (A.view.end - A.view.start);
  setView(sample - span / 2, sample + span / 2);
}

function eventNear(x, box, px) {
  if (!A.events) return -1;
  let best = -1, bestD = px;
  const samples = A.events.sample;
  for (let i = 0; i < samples.length; i++) {
    if (samples[i] < A.view.start || samples[i] > A.view.end) continue;
    const d = Math.abs(xOfSample(samples[i], box) - x);
    if (d < bestD) { bestD = d; best = i; }
  }
  return best;
}

function setupTraceInput() {
  const canvas = $("trace");
  let drag = null;
  canvas.addEventListener("wheel", (e) => {
    if (!A.state || !A.state.open) return;
    e.preventDefault();
    const box = traceGeometry(canvas.clientWidth, canvas.clientHeight).trace;
    const rect = canvas.getBoundingClientRect();
    if (Math.abs(e.deltaX) > Math.abs(e.deltaY) || e.shiftKey) {
      const d = (Math.abs(e.deltaX) > Math.abs(e.deltaY) ? e.deltaX : e.deltaY);
      const span = A.view.end - A.view.start;
      setView(A.view.start + d / box.w * span, A.view.end + d / box.w * span);
    } else {
      zoom(Math.pow(1.0015, e.deltaY), sampleOfX(e.clientX - rect.left, box));
    }
  }, { passive: false });
  canvas.addEventListener("pointerdown", (e) => {
    if (!A.state || !A.state.open || e.button !== 0) return;
    canvas.setPointerCapture(e.pointerId);
    drag = { x: e.clientX, start: A.view.start, end: A.view.end, moved: false };
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x;
    if (Math.abs(dx) > 3) { drag.moved = true; canvas.classList.add("dragging"); }
    if (!drag.moved) return;
    const box = traceGeometry(canvas.clientWidth, canvas.clientHeight).trace;
    const ds = -dx / box.w * (drag.end - drag.start);
    setView(drag.start + ds, drag.end + ds);
  });
  canvas.addEventListener("pointerup", (e) => {
    if (!drag) return;
    const moved = drag.moved;
    drag = null;
    canvas.classList.remove("dragging");
    if (moved) return;
    const rect = canvas.getBoundingClientRect();
    const box = traceGeometry(canvas.clientWidth, canvas.clientHeight).trace;
    const x = e.clientX - rect.left;
    if (x < box.x) return;
    const near = eventNear(x, box, 8);
    if (A.picking) {
      const s = near >= 0 ? A.events.sample[near] : Math.round(sampleOfX(x, box));
      const spp = (A.view.end - A.view.start) / box.w;
      const existing = A.picks.findIndex((p) => Math.abs(p - s) < 8 * spp);
      if (existing >= 0) A.picks.splice(existing, 1); else A.picks.push(s);
      updatePicks();
      redraw();
    } else if (near >= 0) {
      selectEvent(near, false);
    }
  });
  const ov = $("overview");
  let ovDrag = false;
  const ovMove = (e) => {
    const rect = ov.getBoundingClientRect();
    const w = rect.width - MARGIN.left - MARGIN.right;
    const s = (e.clientX - rect.left - MARGIN.left) / w * A.n;
    centreOn(s);
  };
  ov.addEventListener("pointerdown", (e) => { if (!A.n) return; ovDrag = true; ov.setPointerCapture(e.pointerId); ovMove(e); });
  ov.addEventListener("pointermove", (e) => { if (ovDrag) ovMove(e); });
  ov.addEventListener("pointerup", () => { ovDrag = false; });
  $("zoom-in").onclick = () => zoom(0.5);
  $("zoom-out").onclick = () => zoom(2);
  $("zoom-fit").onclick = () => setView(0, A.n);
  $("lock-y").onchange = (e) => { A.ylock = e.target.checked ? A.yRange.slice() : null; redraw(); };
  $("ev-lock-y").onchange = (e) => { A.evYlock = e.target.checked && A.evRange ? A.evRange.slice() : null; renderDetail(); };
}

// ------------------------------------------------------------------ state
async function loadState(fresh) {
  const st = fresh || await api("/api/state");
  const prev = A.state;
  A.state = st;
  renderHeader();
  renderSteps();
  renderOffer();
  renderSavedOffer();
  const recChanged = !prev || !prev.open || !st.open || !prev.recording ||
    prev.recording.source !== st.recording.source || prev.recording.n_samples !== st.recording.n_samples ||
    JSON.stringify(prev.steps) !== JSON.stringify(st.steps);
  if (st.open && recChanged) {
    A.generation = (A.generation || 0) + 1;
    A.n = st.recording.n_samples;
    A.rate = st.recording.sampling_rate_hz;
    A.unit = st.recording.unit;
    A.cache = null;
    A.ylock = null; $("lock-y").checked = false;
    A.evYlock = null; $("ev-lock-y").checked = false;
    A.picks = []; updatePicks();
    A.view = { start: 0, end: A.n };
    A.overview = await api(`/api/trace?start=0&stop=${A.n}&pixels=${Math.min(4000, traceWidth())}`);
  }
  const resultKey = st.result ? String(st.result.id) : "";
  if (recChanged || resultKey !== A.resultKey) {
    A.resultKey = resultKey;
    A.cache = null;  // the prediction changed
    if (st.result && (st.result.origin === "results" || st.result.origin === "recovered")) applyResultSettings(st.result);
    else if (st.result && !prev) selectModel(st.result);  // a reloaded tab: at least the model and method
    await loadResult();
  }
  $("analyze").disabled = !st.open || st.job.state === "running";
  $("step-add").disabled = !st.open;
  $("pick").disabled = !st.open;
  $("suggest-trace").disabled = !st.open;
  updatePicks();
  document.body.dataset.job = st.job.state;
  renderJob(st.job);
  if (st.job.state === "running") startPolling();
  redraw();
  fetchTrace();
}

function renderHeader() {
  const st = A.state;
  if (st.open) {
    const r = st.recording;
    $("file").textContent = r.source.split(/[\\/]/).pop() + (r.channel ? `  [${r.channel}]` : "");
    $("file").title = r.source;
    const cut = r.original_duration_s && Math.abs(r.original_duration_s - r.duration_s) > 1e-9 ? ` of ${sig(r.original_duration_s, 4)} s` : "";
    $("recinfo").textContent = `${sig(r.duration_s, 5)} s${cut} · ${sig(r.sampling_rate_hz / 1000, 4)} kHz · ${r.unit}` +
      (r.n_sweeps > 1 ? ` · ${r.n_sweeps} sweeps` : "");
    document.title = `minidet · ${r.name}`;
  }
  const dirty = $("dirty");
  if (st.dirty) {
    dirty.hidden = false;
    dirty.textContent = st.unsaved ? `${st.unsaved} unsaved change${st.unsaved === 1 ? "" : "s"}` : "analysis not saved";
  } else {
    dirty.hidden = true;
  }
  const where = $("saved-where");
  where.hidden = !(st.saved_to && !st.dirty);
  where.textContent = st.saved_to ? `saved in ${st.saved_to}` : "";
  where.title = st.saved_to || "";
  $("save-btn").disabled = !st.result;
  $("save-btn").classList.toggle("primary", !!st.dirty);
  $("undo").disabled = !st.can_undo;
}

function renderOffer() {
  const o = A.state.offer;
  $("offer").hidden = !o;
  if (!o) return;
  const steps = o.steps.length ? `; pre-processing: ${o.steps.map(stepText).join(", ")}` : "";
  $("offer-text").textContent = `Unsaved work on this recording from ${new Date(o.updated).toLocaleString()}: ` +
    `${o.n_events} events, ${o.n_excluded} removed by hand (model ${o.model})${steps}.`;
}

function renderSavedOffer() {
  const o = A.state.saved_results;
  const show = !!o && A.dismissedSaved !== o.folder;
  $("saved-offer").hidden = !show;
  if (!show) return;
  const steps = o.steps.length ? `; pre-processing: ${o.steps.map(stepText).join(", ")}` : "";
  $("saved-offer-text").textContent = `This recording has saved results in ${o.folder} ` +
    `(${new Date(o.updated).toLocaleString()}): ${o.n_kept} of ${o.n_events} events kept, model ${o.model}${steps}.`;
}

async function openSavedResults() {
  const o = A.state.saved_results;
  if (!o) return;
  if (A.state.dirty && !confirm("The current analysis is not saved (its work is kept for this recording). Open the saved results instead?")) return;
  try {
    await loadState(await api("/api/open", { path: o.folder }));
    flash("opened the results in " + o.folder);
  } catch (e) { fail(e); }
}

// ------------------------------------------------------------------ pre-processing
const STEP_PARAMS = {
  highpass: [["cutoff_hz", "cut-off", 1, "Hz"], ["order", "order", 4, ""]],
  lowpass: [["cutoff_hz", "cut-off", 2000, "Hz"], ["order", "order", 4, ""]],
  notch: [["frequency_hz", "line frequency", 50, "Hz"], ["harmonics", "frequencies", 3, "incl. harmonics"], ["quality", "quality", 30, "Q"]],
  detrend: [["kind", "kind", "linear", ""]],
  cut: [["start_s", "from", 0, "s"], ["stop_s", "to", 1, "s"]],
};

function renderStepParams() {
  const kind = $("step-kind").value;
  const box = $("step-params");
  box.innerHTML = "";
  for (const [key, label, def, unit] of STEP_PARAMS[kind]) {
    const l = document.createElement("label");
    l.textContent = label + " ";
    let input;
    if (key === "kind") {
      input = document.createElement("select");
      input.innerHTML = "<option>linear</option><option>constant</option>";
    } else {
      input = document.createElement("input");
      input.type = "number"; input.step = "any"; input.value = def;
    }
    input.id = "p-" + key;
    l.appendChild(input);
    const u = document.createElement("span"); u.className = "u"; u.textContent = unit; l.appendChild(u);
    box.appendChild(l);
  }
  if (kind === "cut") {
    const b = document.createElement("button");
    b.textContent = "use the visible stretch"; b.className = "link use-view"; b.type = "button";
    b.onclick = () => {
      $("p-start_s").value = sig(A.view.start / A.rate, 6);
      $("p-stop_s").value = sig(A.view.end / A.rate, 6);
    };
    box.appendChild(b);
  }
}

function renderSteps() {
  const ol = $("steps");
  ol.innerHTML = "";
  const steps = A.state.steps || [];
  if (!steps.length) { ol.innerHTML = '<li class="none">none: the trace as read</li>'; return; }
  steps.forEach((s, i) => {
    const li = document.createElement("li");
    li.textContent = stepText(s);
    const b = document.createElement("button");
    b.textContent = "×"; b.title = "remove this step";
    b.onclick = () => setSteps(steps.filter((_, j) => j !== i));
    li.appendChild(b);
    ol.appendChild(li);
  });
}

async function setSteps(steps) {
  try {
    let st;
    try {
      st = await api("/api/preprocess", { steps });
    } catch (e) {
      if (e.status !== 409 || !confirm(e.message + "\n\nDiscard the analysis and change the pre-processing?")) throw e;
      st = await api("/api/preprocess", { steps, discard: true });
    }
    await loadState(st);
    flash(steps.length ? `pre-processing: ${steps.map(stepText).join(", ")}` : "pre-processing removed");
  } catch (e) { fail(e); }
}

function addStep() {
  const kind = $("step-kind").value;
  const step = { step: kind };
  for (const [key] of STEP_PARAMS[kind]) {
    const el = $("p-" + key);
    step[key] = key === "kind" ? el.value : (["order", "harmonics"].includes(key) ? parseInt(el.value, 10) : parseFloat(el.value));
  }
  setSteps([...(A.state.steps || []), step]);
}

// ------------------------------------------------------------------ detection
// the fields of the settings panel: every declared setting (minidet.params, sent with
// /api/models) that has an element s-<name>; resample is the checkbox
let SETTING_KEYS = [];
A.schema = {};
// what an empty field means where the setting has no default of its own
const UNSET_HINT = { stride: "window / 30", gradient_convolve_win: "2 × filter", peak_prominence: "= threshold" };

function applySchema(rows) {
  A.schema = Object.fromEntries(rows.map((r) => [r.name, r]));
  SETTING_KEYS = rows.map((r) => r.name).filter((k) => k !== "model" && k !== "resample" && $("s-" + k));
  for (const k of [...SETTING_KEYS, "resample"]) {
    const r = A.schema[k], el = $("s-" + k);
    const label = el.closest("label");
    if (label) label.title = `${r.help} Accepts ${r.accepted}.`;
    if (r.kind === "choice" && el.tagName === "SELECT") {
      const first = el.options[0].textContent;
      el.innerHTML = `<option value="">${first}</option>` + r.choices.map((c) => `<option>${c}</option>`).join("");
    }
    if (el.type === "number") {
      if (r.low !== null && r.low !== undefined && !r.low_open && !(r.also || []).includes(0)) el.min = String(r.low);
      else if ((r.also || []).includes(0)) el.min = "0";
      if (r.high !== null && r.high !== undefined && !r.high_open) el.max = String(r.high);
    }
  }
}

function modelDefaults() {
  const name = $("model").value;
  return A.models.find((m) => m.name === name) || null;
}

function showModelDefaults() {
  const m = modelDefaults();
  const miniml = $("method").value === "miniml";
  document.querySelector(".model-row").hidden = !miniml;
  document.querySelector(".model-file").hidden = !miniml || $("model").value !== "__file__";
  const defaults = m ? { window_size: m.window_size, threshold: m.threshold, stride: m.stride, convolve_win: m.convolve_win,
    gradient_convolve_win: m.gradient_convolve_win, smoothing_steps: m.smoothing_steps, peak_prominence: m.peak_prominence } : {};
  const fallback = Object.assign(Object.fromEntries(Object.values(A.schema).map((r) => [r.name, r.default])),
    UNSET_HINT, { threshold: miniml ? 0.5 : "" });
  for (const k of SETTING_KEYS) {
    const el = $("s-" + k);
    if (el.tagName === "SELECT") {
      const dflt = A.schema[k] && !A.schema[k].from_model ? `default (${A.schema[k].default})` : "model default";
      el.options[0].textContent = m && m[k] && miniml ? `model (${m[k]})` : dflt;
    } else if (k !== "device") {
      const v = defaults[k] ?? fallback[k];
      el.placeholder = v === undefined || v === null ? "" : String(v);
    }
  }
  if (m) $("model").title = m.description || "";
}

function selectModel(result) {
  const s = result.settings;
  const method = result.method || "miniml";
  if ([...$("method").options].some((o) => o.value === method)) $("method").value = method;
  if (method === "miniml" && s.model) {
    if (A.models.some((m) => m.name === s.model)) $("model").value = s.model;
    else { $("model").value = "__file__"; $("model-file").value = s.model; }
  }
}

// the settings panel takes the settings and model a result was made with (a results folder
// or restored work), so that Analyze repeats them rather than the model's defaults
function applyResultSettings(result) {
  const s = result.settings;
  selectModel(result);
  for (const k of SETTING_KEYS) {
    const v = s[k];
    $("s-" + k).value = v === null || v === undefined ? "" : String(v);
  }
  // a threshold chosen per recording ("auto") is chosen again, not fixed at the number it gave
  if (result.threshold_auto) $("s-threshold").value = "auto";
  $("s-resample").checked = s.resample !== false;
  A.extraSettings = {};  // settings the panel has no field for
  for (const k of Object.keys(A.schema)) {
    if (k !== "model" && k !== "resample" && !SETTING_KEYS.includes(k) && s[k] !== undefined && s[k] !== null) A.extraSettings[k] = s[k];
  }
  showModelDefaults();
  const model = result.method && result.method !== "miniml" ? `method ${result.method}` : `model ${s.model}`;
  showSettingsNote(result.origin === "results" ? `Settings and ${model} of the results in ${result.opened_from}.`
    : `Settings and ${model} of the restored analysis.`);
}

function showSettingsNote(text) {
  $("settings-note").hidden = !text;
  $("settings-note-text").textContent = text || "";
}

function resetSettings() {
  for (const k of SETTING_KEYS) $("s-" + k).value = "";
  $("s-resample").checked = true;
  A.extraSettings = {};
  showSettingsNote(null);
  showModelDefaults();
}

function analysisSettings() {
  const settings = Object.assign({}, A.extraSettings || {});
  for (const k of SETTING_KEYS) {
    const v = $("s-" + k).value.trim();
    if (v !== "") settings[k] = v;
  }
  if (!$("s-resample").checked) settings.resample = false;
  return settings;
}

async function analyze() {
  const st = A.state;
  if (st.offer && !confirm("A new analysis replaces the unsaved work kept for this recording. Continue?")) return;
  if (st.dirty && !confirm("The current analysis is not saved. Analyze again and replace it?")) return;
  const method = $("method").value;
  let model = $("model").value;
  if (model === "__file__") model = $("model-file").value.trim();
  try {
    const job = await api("/api/analyze", { model, method, settings: analysisSettings() });
    renderJob(job);
    document.body.dataset.job = job.state;
    startPolling();
  } catch (e) { fail(e); }
}

function renderJob(job) {
  const fill = $("progress-fill");
  const running = job.state === "running";
  $("analyze").disabled = running || !A.state || !A.state.open;
  $("cancel").hidden = !running;
  fill.classList.toggle("indeterminate", running && job.fraction === null);
  fill.style.width = job.fraction === null ? (running ? "30%" : "0") : `${Math.round(job.fraction * 100)}%`;
  const text = $("job-text");
  text.classList.toggle("error", job.state === "error");
  if (running) {
    text.textContent = `${job.stage}` + (job.total ? ` ${job.done} / ${job.total} s of recording` : "") + ` · ${fmt(job.elapsed_s, 0)} s`;
  } else if (job.state === "done") {
    text.textContent = `done in ${fmt(job.elapsed_s, 1)} s: ${job.stage}`;
  } else if (job.state === "error") {
    text.textContent = job.message;
  } else if (job.state === "cancelled") {
    text.textContent = "cancelled";
  } else {
    // the settings note above already says where opened results come from
    const noted = !$("settings-note").hidden;
    const from = A.state && A.state.result ? A.state.result.opened_from : null;
    text.textContent = from && !noted ? "results opened from " + from : "";
  }
}

function startPolling() {
  if (A.polling) return;
  A.polling = setInterval(async () => {
    try {
      const job = await api("/api/progress");
      renderJob(job);
      if (job.state !== "running") {
        clearInterval(A.polling);
        A.polling = null;
        await loadState();
        document.body.dataset.job = job.state;
        if (job.state === "error") flash(job.message, true);
        else if (job.state === "done") flash(`analysis done: ${job.stage}`);
      }
    } catch (e) { /* the next tick retries */ }
  }, 250);
}

// ------------------------------------------------------------------ events
async function loadResult() {
  A.selected = -1;
  A.detail = null;
  if (!A.state.result) {
    A.events = null; A.stats = null;
    renderTable(); renderDetail(); renderStats();
    return;
  }
  const [events, stats] = await Promise.all([api("/api/events"), api("/api/stats")]);
  A.events = events;
  A.stats = stats;
  document.querySelectorAll("#events .unit").forEach((el) => { el.textContent = events.unit; });
  document.querySelectorAll("#events .cunit").forEach((el) => { el.textContent = events.charge_unit; });
  sortEvents();
  renderTable();
  renderStats();
  renderDetail();
  if (A.order.length) selectEvent(A.order[0], false, true);
}

function sortEvents() {
  const ev = A.events;
  if (!ev) { A.order = []; return; }
  const n = ev.sample.length;
  const { col, dir } = A.sort;
  const idx = Array.from({ length: n }, (_, i) => i);
  if (col !== "index") {
    const v = ev[col];
    idx.sort((a, b) => {
      const x = v[a], y = v[b];
      const nx = x === null || !isFinite(x), ny = y === null || !isFinite(y);
      if (nx || ny) return nx - ny;  // missing values last
      return (x - y) * dir || a - b;
    });
  } else if (dir < 0) idx.reverse();
  A.order = idx;
  document.querySelectorAll("#events th").forEach((th) => {
    th.classList.toggle("sorted", th.dataset.col === col);
    th.classList.toggle("asc", th.dataset.col === col && dir > 0);
    th.classList.toggle("desc", th.dataset.col === col && dir < 0);
  });
}

function rowHTML(i) {
  const ev = A.events;
  const cls = (ev.excluded[i] ? "excluded" : "") + (i === A.selected ? " selected" : "");
  return `<tr data-i="${i}" class="${cls}"><td>${i}</td><td>${fmt(ev.time_s[i], 4)}</td><td>${fmt(ev.amplitude[i], 2)}</td>` +
    `<td>${fmt(ev.rise_time_s[i] * 1e3, 3)}</td><td>${fmt(ev.half_decay_s[i] * 1e3, 3)}</td>` +
    `<td>${sig(ev.charge[i], 3)}</td><td>${fmt(ev.score[i], 3)}</td></tr>`;
}

function renderTable() {
  const body = document.querySelector("#events tbody");
  if (!A.events) {
    body.innerHTML = "";
    $("n-kept").textContent = "0"; $("n-events").textContent = "0";
    return;
  }
  body.innerHTML = A.order.map(rowHTML).join("");
  updateCounts();
}

function updateCounts() {
  const ev = A.events;
  const kept = ev ? ev.excluded.filter((x) => !x).length : 0;
  $("n-kept").textContent = String(kept);
  $("n-events").textContent = String(ev ? ev.sample.length : 0);
}

function updateRow(i) {
  const tr = document.querySelector(`#events tr[data-i="${i}"]`);
  if (!tr) return;
  tr.classList.toggle("excluded", !!A.events.excluded[i]);
  tr.classList.toggle("selected", i === A.selected);
}

async function selectEvent(i, centre, quiet) {
  if (!A.events || i < 0 || i >= A.events.sample.length) return;
  const prev = A.selected;
  A.selected = i;
  if (prev >= 0) updateRow(prev);
  updateRow(i);
  const tr = document.querySelector(`#events tr[data-i="${i}"]`);
  if (tr && !quiet) tr.scrollIntoView({ block: "nearest" });
  if (centre) {
    const w = A.state.result.settings.window_size;
    const span = A.view.end - A.view.start;
    centreOn(A.events.sample[i], span > 60 * w || span < 2 * w ? 12 * w : span);
  } else redraw();
  $("ev-toggle").disabled = false;
  try {
    const detail = await api(`/api/event/${i}`);
    if (A.selected === i) { A.detail = detail; renderDetail(); }
  } catch (e) { fail(e); }
}

function step(delta) {
  if (!A.order.length) return;
  const pos = A.order.indexOf(A.selected);
  const next = pos < 0 ? 0 : Math.max(0, Math.min(A.order.length - 1, pos + delta));
  selectEvent(A.order[next], true);
}

async function setExcluded(i, excluded) {
  if (!A.events || i < 0) return;
  try {
    const answer = await api("/api/exclude", { indices: [i], excluded });
    applyEdit(answer);
  } catch (e) { fail(e); }
}

async function undo() {
  try { applyEdit(await api("/api/undo", {})); } catch (e) { fail(e); }
}

function applyEdit(answer) {
  answer.changed.forEach((i, k) => { A.events.excluded[i] = answer.excluded[k]; updateRow(i); });
  A.state.unsaved = answer.unsaved;
  A.state.dirty = answer.dirty;
  A.state.can_undo = answer.can_undo;
  renderHeader();
  updateCounts();
  if (A.detail && answer.changed.includes(A.detail.index)) {
    A.detail.excluded = A.events.excluded[A.detail.index];
    renderDetail();
  }
  redraw();
  refreshStats();
}

async function refreshStats() {
  try { A.stats = await api("/api/stats"); renderStats(); } catch (e) { fail(e); }
}

// ------------------------------------------------------------------ event viewer
function renderDetail() {
  const canvas = $("viewer");
  const { ctx, w, h } = setupCanvas(canvas);
  const d = A.detail;
  if (!d) {
    $("ev-title").textContent = "–"; $("ev-state").textContent = ""; $("ev-state").className = "tag";
    $("ev-meta").textContent = A.events ? "click a row or an event marker" : "";
    ctx.fillStyle = COLORS.axis; ctx.textAlign = "center";
    ctx.fillText(A.events ? "no event selected" : "analyze to see events", w / 2, h / 2);
    return;
  }
  const m = d.markers;
  const box = { x: 52, y: 22, w: w - 60, h: h - 44 };
  const t = d.t_ms;
  let lo = Infinity, hi = -Infinity;
  if (A.evYlock) [lo, hi] = A.evYlock;  // fixed y scale: the same range for every event
  else {
    for (const v of d.raw) { if (v < lo) lo = v; if (v > hi) hi = v; }
    const pad = (hi - lo) * 0.08 || 1; lo -= pad; hi += pad;
  }
  if ($("ev-lock-y").checked && !A.evYlock) A.evYlock = [lo, hi];
  A.evRange = [lo, hi];
  canvas.dataset.ylo = String(lo); canvas.dataset.yhi = String(hi);
  const t0 = t[0], t1 = t[t.length - 1];
  const xOf = (ms) => box.x + (ms - t0) / (t1 - t0) * box.w;
  const yOf = (v) => box.y + (hi - v) / (hi - lo) * box.h;
  yTicks(ctx, box, lo, hi, yOf, d.unit);
  const tStep = niceStep(t1 - t0, Math.max(2, Math.floor(box.w / 70)));
  ctx.textAlign = "center"; ctx.textBaseline = "top"; ctx.fillStyle = COLORS.axis;
  for (let v = Math.ceil(t0 / tStep) * tStep; v <= t1; v += tStep) ctx.fillText(`${sig(v, 3)}`, xOf(v), box.y + box.h + 4);
  ctx.textAlign = "right"; ctx.fillText("ms", box.x - 5, box.y + box.h + 4);
  ctx.save();
  ctx.beginPath(); ctx.rect(box.x, box.y, box.w, box.h); ctx.clip();
  const line = (ys, color, width) => {
    ctx.strokeStyle = color; ctx.lineWidth = width; ctx.beginPath();
    ys.forEach((v, k) => { const x = xOf(t[k]), y = yOf(v); if (k) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
    ctx.stroke();
  };
  ctx.globalAlpha = d.excluded ? 0.45 : 1;
  line(d.raw, COLORS.raw, 1);
  line(d.filtered, COLORS.trace, 1.6);
  ctx.globalAlpha = 1;
  // baseline
  ctx.setLineDash([5, 4]); ctx.strokeStyle = COLORS.baseline; ctx.lineWidth = 1.2;
  ctx.beginPath(); ctx.moveTo(box.x, yOf(m.baseline)); ctx.lineTo(box.x + box.w, yOf(m.baseline)); ctx.stroke();
  ctx.setLineDash([]);
  // position of the steepest rise
  ctx.strokeStyle = "#afb8c1"; ctx.beginPath(); ctx.moveTo(xOf(0), box.y); ctx.lineTo(xOf(0), box.y + box.h); ctx.stroke();
  // neighbours
  ctx.fillStyle = COLORS.excluded;
  for (const n of d.neighbours_ms) { const x = xOf(n); ctx.beginPath(); ctx.moveTo(x - 4, box.y); ctx.lineTo(x + 4, box.y); ctx.lineTo(x, box.y + 7); ctx.fill(); }
  const dot = (ms, v, color, r) => {
    if (ms === null || ms === undefined || !isFinite(v)) return;
    ctx.fillStyle = color; ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.arc(xOf(ms), yOf(v), r, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
  };
  if (m.onset_ms !== null) {
    ctx.strokeStyle = COLORS.onset; ctx.lineWidth = 1.2;
    ctx.beginPath(); ctx.moveTo(xOf(m.onset_ms), box.y); ctx.lineTo(xOf(m.onset_ms), box.y + box.h); ctx.stroke();
  }
  if (m.peak_ms !== null) {  // amplitude bracket
    ctx.strokeStyle = COLORS.peak; ctx.setLineDash([2, 3]); ctx.lineWidth = 1.2;
    ctx.beginPath(); ctx.moveTo(xOf(m.peak_ms), yOf(m.baseline)); ctx.lineTo(xOf(m.peak_ms), yOf(m.peak)); ctx.stroke();
    ctx.setLineDash([]);
  }
  if (m.half_decay_ms !== null && m.peak_ms !== null) {
    ctx.strokeStyle = COLORS.half; ctx.setLineDash([2, 3]); ctx.lineWidth = 1.2;
    ctx.beginPath(); ctx.moveTo(xOf(m.peak_ms), yOf(m.half)); ctx.lineTo(xOf(m.half_decay_ms), yOf(m.half)); ctx.stroke();
    ctx.setLineDash([]);
  }
  dot(m.onset_ms, m.baseline, COLORS.onset, 5);
  dot(m.peak_ms, m.peak, COLORS.peak, 5.5);
  dot(m.half_decay_ms, m.half, COLORS.half, 5);
  ctx.restore();
  // legend
  const legend = [["baseline", COLORS.baseline], ["onset", COLORS.onset], ["peak", COLORS.peak], ["half decay", COLORS.half],
    ["filtered", COLORS.trace], ["raw", COLORS.raw]];
  let lx = box.x + 4;
  ctx.textAlign = "left"; ctx.textBaseline = "middle";
  for (const [label, color] of legend) {
    ctx.fillStyle = color; ctx.fillRect(lx, 7, 10, 4);
    ctx.fillStyle = COLORS.axis; ctx.fillText(label, lx + 13, 9);
    lx += ctx.measureText(label).width + 26;
  }
  if (d.excluded) {
    ctx.fillStyle = COLORS.event; ctx.font = "bold 13px system-ui, sans-serif"; ctx.textAlign = "right";
    ctx.fillText("EXCLUDED", box.x + box.w - 4, box.y + 12);
  }
  $("ev-title").textContent = `#${d.index}`;
  const tag = $("ev-state");
  tag.textContent = d.excluded ? "excluded" : "kept";
  tag.className = "tag " + (d.excluded ? "excluded" : "kept");
  $("ev-toggle").textContent = d.excluded ? "restore" : "exclude";
  const me = d.measures;
  $("ev-meta").innerHTML = `t <b>${fmt(d.time_s, 4)} s</b> · amp <b>${fmt(me.amplitude, 2)} ${d.unit}</b> · rise <b>${fmt(me.rise_time_s * 1e3, 3)} ms</b>` +
    ` · half decay <b>${fmt(me.half_decay_s * 1e3, 3)} ms</b> · charge <b>${sig(me.charge, 3)}</b> · score <b>${fmt(d.score, 3)}</b>` +
    (d.overlapping ? ' <span class="tag overlap">overlapping</span>' : "");
}

// ------------------------------------------------------------------ statistics
const STAT_PLOTS = ["average", "h-amplitude", "h-rise_time_s", "h-half_decay_s", "h-interval_s", "c-amplitude", "c-interval_s"];

function summaryRows(s) {
  const x = s.summary;
  const ms = (v) => fmt(v * 1e3, 3);
  return [
    ["events", `${s.n_kept} of ${s.n_events}`],
    ["frequency", `${sig(x.frequency_hz, 3)} Hz`],
    ["amplitude", `${fmt(x.amplitude_mean, 2)} ± ${fmt(x.amplitude_sd, 2)} ${s.unit}`],
    ["rise 10–90", `${ms(x.rise_time_s_mean)} ms`],
    ["half decay", `${ms(x.half_decay_s_mean)} ms`],
    ["charge", `${sig(x.charge_mean, 3)} ${s.charge_unit}`],
    ["decay τ (avg.)", `${ms(x.tau_decay_s)} ms`],
  ];
}

function renderStats() {
  const s = A.stats;
  const table = $("summary");
  $("export-fig").disabled = !s;
  if (!s) {
    table.innerHTML = "<tr><td>no analysis yet</td><td></td></tr>";
    for (const c of STAT_PLOTS) setupCanvas($(c));
    return;
  }
  table.innerHTML = summaryRows(s).map(([k, v]) => `<tr><td>${k}</td><td>${v}</td></tr>`).join("");
  drawAverage($("average"), s.average, s.unit);
  for (const hgram of s.histograms) {
    const c = $("h-" + hgram.column);
    if (c) drawHistogram(c, hgram);
  }
  for (const cum of s.cumulative || []) {
    const c = $("c-" + cum.column);
    if (c) drawCumulative(c, cum);
  }
}

// tick values from lo to hi at a round step (1, 2 or 5 times a power of ten; whole numbers
// with integer), at least three where the step allows
function ticks(lo, hi, target, integer) {
  let step = niceStep((hi - lo) || Math.abs(hi) || 1, target);
  if (integer) step = Math.max(1, Math.round(step));
  const make = (st) => {
    const values = [];
    for (let v = Math.ceil(lo / st - 1e-9) * st; v <= hi + st * 1e-9; v += st) values.push(Number(v.toPrecision(12)));
    return values;
  };
  let values = make(step);
  while (values.length < 3 && !(integer && step <= 1)) {
    const p = Math.pow(10, Math.floor(Math.log10(step) + 1e-9)), m = Math.round(step / p);
    step = m === 5 ? 2 * p : m === 2 ? p : p / 2;
    if (integer) step = Math.max(1, step);
    values = make(step);
  }
  return { values, digits: Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) };
}

// axes of a small plot: x and y ticks with labels, a y-axis title; the tick values are kept
// on the canvas (data-xticks, data-yticks) so that tests can read what was drawn
function smallAxes(ctx, canvas, box, xr, yr, opts) {
  const o = opts || {};
  const xt = ticks(xr[0], xr[1], Math.max(2, Math.floor(box.w / 48)));
  const yt = ticks(yr[0], yr[1], Math.max(2, Math.floor(box.h / 24)), o.yInteger);
  const xOf = (v) => box.x + (v - xr[0]) / ((xr[1] - xr[0]) || 1) * box.w;
  const yOf = (v) => box.y + (yr[1] - v) / ((yr[1] - yr[0]) || 1) * box.h;
  ctx.save();
  ctx.lineWidth = 1;
  ctx.strokeStyle = COLORS.grid;
  for (const v of yt.values) { const y = Math.round(yOf(v)) + 0.5; ctx.beginPath(); ctx.moveTo(box.x, y); ctx.lineTo(box.x + box.w, y); ctx.stroke(); }
  ctx.strokeStyle = COLORS.axis; ctx.fillStyle = COLORS.axis;
  ctx.beginPath(); ctx.moveTo(box.x + 0.5, box.y); ctx.lineTo(box.x + 0.5, box.y + box.h + 0.5); ctx.lineTo(box.x + box.w, box.y + box.h + 0.5); ctx.stroke();
  ctx.font = "10px system-ui, sans-serif";
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (const v of yt.values) {
    const y = Math.round(yOf(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(box.x - 3, y); ctx.lineTo(box.x, y); ctx.stroke();
    ctx.fillText(v.toFixed(yt.digits), box.x - 4, y);
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  // every tick marked; labels thinned to every k-th where they would touch
  const labels = xt.values.map((v) => v.toFixed(xt.digits));
  const widest = Math.max(...labels.map((l) => ctx.measureText(l).width));
  const spacing = xt.values.length > 1 ? Math.abs(xOf(xt.values[1]) - xOf(xt.values[0])) : Infinity;
  const every = Math.max(1, Math.ceil((widest + 5) / spacing));
  xt.values.forEach((v, k) => {
    const x = Math.round(xOf(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(x, box.y + box.h); ctx.lineTo(x, box.y + box.h + 3); ctx.stroke();
    if (k % every === 0) ctx.fillText(labels[k], x, box.y + box.h + 4);
  });
  if (o.ylabel) {
    ctx.translate(7, box.y + box.h / 2); ctx.rotate(-Math.PI / 2); ctx.textBaseline = "middle";
    ctx.fillText(o.ylabel, 0, 0);
  }
  ctx.restore();
  canvas.dataset.xticks = JSON.stringify(xt.values);
  canvas.dataset.yticks = JSON.stringify(yt.values);
  return { xOf, yOf };
}

function plotTitle(ctx, w, title, right) {
  ctx.fillStyle = COLORS.axis; ctx.textBaseline = "top"; ctx.textAlign = "left";
  ctx.fillText(title, 4, 1);
  if (right) { ctx.textAlign = "right"; ctx.fillText(right, w - 4, 1); }
}

function drawAverage(canvas, avg, unit, size, title) {
  const { ctx, w, h } = setupCanvas(canvas, size);
  const ys = avg.y.filter(isFinite);
  if (!ys.length) { $("avg-cap").textContent = "average event"; return; }
  const fit = avg.fit;
  if (title) plotTitle(ctx, w, title);
  const box = { x: 34, y: title ? 17 : 6, w: w - 40, h: h - (title ? 33 : 22) };
  let lo = Math.min(0, ...ys), hi = Math.max(0, ...ys);
  const pad = (hi - lo) * 0.08 || 1; lo -= pad; hi += pad;
  const t0 = avg.t_ms[0], t1 = avg.t_ms[avg.t_ms.length - 1];
  const { xOf, yOf } = smallAxes(ctx, canvas, box, [t0, t1], [lo, hi], { ylabel: unit });
  ctx.save();
  ctx.beginPath(); ctx.rect(box.x, box.y, box.w, box.h); ctx.clip();
  const line = (tt, vv, color, width, dash) => {
    ctx.strokeStyle = color; ctx.lineWidth = width; ctx.setLineDash(dash || []); ctx.beginPath();
    vv.forEach((v, k) => { if (k) ctx.lineTo(xOf(tt[k]), yOf(v)); else ctx.moveTo(xOf(tt[k]), yOf(v)); });
    ctx.stroke(); ctx.setLineDash([]);
  };
  line(avg.t_ms, avg.y, COLORS.event, 1.6);
  if (fit) line(fit.t_ms, fit.y, COLORS.selected, 1.6, [5, 3]);
  ctx.restore();
  ctx.fillStyle = COLORS.axis; ctx.textAlign = "right"; ctx.textBaseline = "top"; ctx.font = "10px system-ui, sans-serif";
  ctx.fillText("ms", box.x - 4, box.y + box.h + 4);
  if (fit) {
    // in the empty corner: below the baseline for negative events, above it for positive ones
    const below = Math.abs(lo) > Math.abs(hi);
    ctx.fillStyle = COLORS.selected; ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = below ? "bottom" : "top";
    ctx.fillText(`fit τ ${sig(fit.tau_ms, 3)} ms`, box.x + box.w - 2, below ? box.y + box.h - 2 : box.y + 2);
  }
  canvas.dataset.fit = fit ? String(fit.tau_ms) : "";
  const ext = Math.abs(lo) > Math.abs(hi) ? Math.min(...ys) : Math.max(...ys);
  if (!size) $("avg-cap").textContent = `average event: peak ${sig(ext, 3)} ${unit}` + (fit ? " · decay fit dashed" : "");
}

function drawHistogram(canvas, hg, size) {
  const { ctx, w, h } = setupCanvas(canvas, size);
  plotTitle(ctx, w, `${hg.label}${hg.unit ? " (" + hg.unit + ")" : ""}`, `n ${hg.n}`);
  if (!hg.counts.length) return;
  const box = { x: 34, y: 17, w: w - 42, h: h - 33 };
  const maxC = Math.max(...hg.counts);
  const e0 = hg.edges[0], e1 = hg.edges[hg.edges.length - 1];
  const { xOf, yOf } = smallAxes(ctx, canvas, box, [e0, e1], [0, Math.max(1, maxC)], { yInteger: true, ylabel: "count" });
  ctx.fillStyle = "rgba(9,105,218,.55)";
  hg.counts.forEach((c, k) => {
    const x0 = xOf(hg.edges[k]), x1 = xOf(hg.edges[k + 1]);
    ctx.fillRect(x0 + 0.5, yOf(c), Math.max(1, x1 - x0 - 1), box.y + box.h - yOf(c));
  });
}

function drawCumulative(canvas, cum, size) {
  const { ctx, w, h } = setupCanvas(canvas, size);
  const unit = cum.unit ? ` (${cum.unit})` : "";
  const short = cum.column === "interval_s" ? ["IEI"] : [cum.label, cum.label.slice(0, 3) + "."];
  const titles = [`cumulative ${cum.label}${unit}`, ...short.map((l) => `cum. ${l}${unit}`)];
  const title = titles.find((t) => ctx.measureText(t + `   n ${cum.n}`).width <= w - 8) || titles[titles.length - 1];
  plotTitle(ctx, w, title, `n ${cum.n}`);
  if (!cum.values.length) return;
  const box = { x: 34, y: 17, w: w - 42, h: h - 33 };
  let v0 = cum.values[0], v1 = cum.values[cum.values.length - 1];
  if (v1 <= v0) { v0 -= 0.5 * (Math.abs(v0) || 1); v1 += 0.5 * (Math.abs(v1) || 1); }
  const { xOf, yOf } = smallAxes(ctx, canvas, box, [v0, v1], [0, 1], { ylabel: "fraction" });
  ctx.strokeStyle = COLORS.selected; ctx.lineWidth = 1.5; ctx.beginPath();
  ctx.moveTo(xOf(cum.values[0]), yOf(0));
  cum.values.forEach((v, k) => {  // a step at each value
    ctx.lineTo(xOf(v), yOf(k ? cum.fraction[k - 1] : 0));
    ctx.lineTo(xOf(v), yOf(cum.fraction[k]));
  });
  ctx.stroke();
}

// one PNG with the summary and every statistics plot, drawn afresh at a fixed size
function exportFigure() {
  const s = A.stats;
  if (!s) return null;
  const dpr = 2, cellW = 400, cellH = 250, top = 34;
  const fig = document.createElement("canvas");
  fig.width = 3 * cellW * dpr; fig.height = (top + 3 * cellH) * dpr;
  const ctx = fig.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, 3 * cellW, top + 3 * cellH);
  const r = A.state.recording, res = A.state.result;
  ctx.fillStyle = COLORS.trace; ctx.font = "bold 15px system-ui, sans-serif"; ctx.textBaseline = "top";
  const how = res.method && res.method !== "miniml" ? res.method : `model ${res.settings.model}`;
  ctx.fillText(`${r.source.split(/[\\/]/).pop()} · ${s.n_kept} of ${s.n_events} events kept · ${how}`, 12, 9);
  const cells = [
    null, (c, size) => drawAverage(c, s.average, s.unit, size, `average event (${s.unit}); decay fit dashed`),
    ...s.cumulative.filter((c) => c.column === "amplitude").map((cum) => (c, size) => drawCumulative(c, cum, size)),
    ...s.histograms.filter((hg) => ["amplitude", "rise_time_s", "half_decay_s", "charge", "interval_s"].includes(hg.column))
      .map((hg) => (c, size) => drawHistogram(c, hg, size)),
    ...s.cumulative.filter((c) => c.column === "interval_s").map((cum) => (c, size) => drawCumulative(c, cum, size)),
  ];
  // the summary table in the first cell
  ctx.font = "13px system-ui, sans-serif";
  summaryRows(s).forEach(([k, v], i) => {
    ctx.fillStyle = COLORS.axis; ctx.textAlign = "left"; ctx.fillText(k, 16, top + 16 + i * 22);
    ctx.fillStyle = COLORS.trace; ctx.textAlign = "right"; ctx.fillText(v, cellW - 16, top + 16 + i * 22);
  });
  cells.forEach((draw, i) => {
    if (!draw) return;
    const c = document.createElement("canvas");
    draw(c, { w: cellW - 12, h: cellH - 14, dpr });
    ctx.drawImage(c, (i % 3) * cellW + 6, top + Math.floor(i / 3) * cellH + 4, cellW - 12, cellH - 14);
  });
  const url = fig.toDataURL("image/png");
  const a = document.createElement("a");
  a.href = url;
  a.download = `${r.name || "recording"}-statistics.png`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  document.body.dataset.exported = a.download;
  return a.download;
}

// ------------------------------------------------------------------ window helper
function updatePicks() {
  $("pick").classList.toggle("active", A.picking);
  $("trace").classList.toggle("picking", A.picking);
  $("pick-count").textContent = `${A.picks.length} picked`;
  $("pick-clear").hidden = !A.picks.length;
  $("suggest-picked").disabled = A.picks.length < 2;
}

async function suggestWindow(fromPicks) {
  const text = $("window-text");
  $("window-result").hidden = false;
  text.textContent = "estimating the event kinetics…";
  $("suggest-picked").disabled = $("suggest-trace").disabled = true;
  try {
    const body = fromPicks ? { positions: A.picks, span_samples: Math.round((A.view.end - A.view.start) / 2) } : {};
    const direction = $("s-event_direction").value;
    if (direction) body.direction = direction;
    const s = await api("/api/window", body);
    A.suggestion = s;
    text.textContent = `suggested window: ${s.window_size} samples (${sig(s.window_s * 1e3, 3)} ms)\n` + s.text.split("\n").slice(0, 2).join("\n");
    $("window-use").textContent = `Use ${s.window_size} as window size`;
    drawSuggestion();
  } catch (e) {
    text.textContent = e.message;
  } finally {
    $("suggest-trace").disabled = !A.state.open;
    updatePicks();
  }
}

function drawSuggestion() {
  const s = A.suggestion;
  const { ctx, w, h } = setupCanvas($("window-plot"));
  if (!s) return;
  const a = s.average;
  const box = { x: 4, y: 4, w: w - 8, h: h - 18 };
  const t0 = Math.min(a.t_ms[0], s.window_start_ms), t1 = Math.max(a.t_ms[a.t_ms.length - 1], s.window_stop_ms);
  const vals = a.y.concat(a.fit).filter(isFinite);
  let lo = Math.min(0, ...vals), hi = Math.max(0, ...vals);
  const pad = (hi - lo) * 0.1 || 1; lo -= pad; hi += pad;
  const xOf = (t) => box.x + (t - t0) / (t1 - t0) * box.w, yOf = (v) => box.y + (hi - v) / (hi - lo) * box.h;
  ctx.fillStyle = "rgba(9,105,218,.08)";
  ctx.fillRect(xOf(s.window_start_ms), box.y, xOf(s.window_stop_ms) - xOf(s.window_start_ms), box.h);
  ctx.strokeStyle = COLORS.selected; ctx.setLineDash([3, 3]);
  for (const t of [s.window_start_ms, s.window_stop_ms]) { ctx.beginPath(); ctx.moveTo(xOf(t), box.y); ctx.lineTo(xOf(t), box.y + box.h); ctx.stroke(); }
  ctx.setLineDash([]);
  const line = (ys, color, width) => {
    ctx.strokeStyle = color; ctx.lineWidth = width; ctx.beginPath();
    ys.forEach((v, k) => { if (k) ctx.lineTo(xOf(a.t_ms[k]), yOf(v)); else ctx.moveTo(xOf(a.t_ms[k]), yOf(v)); });
    ctx.stroke();
  };
  line(a.y, COLORS.trace, 1.4);
  line(a.fit, COLORS.event, 1.2);
  ctx.fillStyle = COLORS.axis; ctx.textBaseline = "top";
  ctx.textAlign = "left"; ctx.fillText(`average of ${s.n_events}`, box.x, box.y + box.h + 2);
  ctx.textAlign = "right"; ctx.fillStyle = COLORS.event; ctx.fillText("fit", box.x + box.w, box.y + box.h + 2);
}

// ------------------------------------------------------------------ open / save
async function listFolder(folder) {
  try {
    const listing = await api("/api/files" + (folder ? `?folder=${encodeURIComponent(folder)}` : ""));
    A.folder = listing.folder;
    $("files-folder").textContent = listing.folder || "opened folders";
    $("files-up").disabled = !listing.folder;
    $("files-up").dataset.parent = listing.parent || "";
    const ul = $("files");
    ul.innerHTML = "";
    for (const e of listing.entries) {
      const li = document.createElement("li");
      li.className = "k-" + e.kind;
      li.innerHTML = `<span></span><span class="kind"></span>`;
      li.firstChild.textContent = e.name;
      li.lastChild.textContent = e.kind === "results" ? "results" : e.kind === "folder" ? "folder" : `${sig(e.size / 1e6, 3)} MB`;
      li.onclick = () => chooseEntry(e, li);
      li.ondblclick = () => { if (e.kind !== "folder") openChosen(); };
      ul.appendChild(li);
    }
    if (!listing.entries.length) ul.innerHTML = '<li class="muted">no recordings here</li>';
  } catch (e) { fail(e); }
}

async function chooseEntry(e, li) {
  if (e.kind === "folder") { listFolder(e.path); return; }
  document.querySelectorAll("#files li").forEach((x) => x.classList.remove("selected"));
  li.classList.add("selected");
  A.openPath = e.path; A.openKind = e.kind;
  $("open-go").disabled = false;
  $("open-path").textContent = e.kind === "results" ? "(not needed for results)" : "";
  $("reader").disabled = e.kind === "results";
  const sel = $("r-channel");
  sel.innerHTML = '<option value="">first</option>';
  if (e.kind === "recording") {
    try {
      const info = await api("/api/describe", { path: e.path });
      for (const c of info.channels || []) {
        const o = document.createElement("option");
        o.value = c.name; o.textContent = `${c.name}${c.unit ? " (" + c.unit + ")" : ""}`;
        sel.appendChild(o);
      }
      $("open-path").textContent = `${info.format}, ${info.n_sweeps} sweep(s), ${info.sampling_rate_hz ? sig(info.sampling_rate_hz / 1000, 4) + " kHz" : "rate not stored"}`;
    } catch (err) { $("open-path").textContent = err.message; }
  }
}

async function openChosen() {
  if (!A.openPath) return;
  const reader = {};
  if (A.openKind === "recording") {
    for (const k of ["channel", "sweeps", "skip_start_s", "dataset", "sampling_rate", "scale", "unit"]) {
      const v = $("r-" + k).value.trim();
      if (v) reader[k] = v;
    }
  }
  try {
    const st = await api("/api/open", { path: A.openPath, reader });
    $("open-dialog").close();
    await loadState(st);
    flash("opened " + A.openPath);
  } catch (e) { fail(e); }
}

async function save() {
  const folder = $("save-folder").value.trim();
  const plots = $("save-plots").checked;
  try {
    let st;
    try {
      st = await api("/api/save", { folder, plots });
    } catch (e) {
      if (e.status !== 409 || !/already holds results/.test(e.message) || !confirm(e.message + "\n\nOverwrite them?")) throw e;
      st = await api("/api/save", { folder, plots, force: true });
    }
    $("save-dialog").close();
    A.state = st;
    renderHeader();
    document.body.dataset.saved = st.folder;
    flash(`saved to ${st.folder}: ${st.written.filter((n) => !n.endsWith(".png")).join(", ")}` +
      (st.written.some((n) => n.endsWith(".png")) ? " and the figures" : ""), false, 8000);
  } catch (e) { fail(e); }
}

// ------------------------------------------------------------------ keyboard
function onKey(e) {
  const tag = (e.target.tagName || "").toLowerCase();
  if (["input", "select", "textarea"].includes(tag) || document.querySelector("dialog[open]")) return;
  const key = e.key;
  if ((e.ctrlKey || e.metaKey) && key.toLowerCase() === "s") { e.preventDefault(); if (A.state && A.state.result) showSave(); return; }
  if ((e.ctrlKey || e.metaKey) && key.toLowerCase() === "z") { e.preventDefault(); undo(); return; }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const sel = A.selected;
  switch (key) {
    case "ArrowRight": case "j": step(1); break;
    case "ArrowLeft": case "k": step(-1); break;
    case "Delete": case "Backspace": case "x": case "d":
      if (sel >= 0) setExcluded(sel, !A.events.excluded[sel]); break;
    case "r": if (sel >= 0 && A.events.excluded[sel]) setExcluded(sel, false); break;
    case "z": undo(); break;
    case "+": case "=": zoom(0.5); break;
    case "-": zoom(2); break;
    case "0": case "Home": setView(0, A.n); break;
    case "PageDown": case "]": { const s = A.view.end - A.view.start; setView(A.view.start + 0.8 * s, A.view.end + 0.8 * s); break; }
    case "PageUp": case "[": { const s = A.view.end - A.view.start; setView(A.view.start - 0.8 * s, A.view.end - 0.8 * s); break; }
    case "p": togglePick(); break;
    case "a": if (!$("analyze").disabled) analyze(); break;
    case "o": showOpen(); break;
    default: return;
  }
  e.preventDefault();
}

function togglePick() {
  if (!A.state || !A.state.open) return;
  A.picking = !A.picking;
  updatePicks();
}

function showOpen() {
  A.openPath = null;
  $("open-go").disabled = true;
  $("reader").disabled = true;
  const src = A.state && A.state.open ? A.state.recording.source : null;
  const folder = src ? src.replace(/[\\/][^\\/]*$/, "") : null;
  listFolder(folder && A.state.roots.some((r) => folder.startsWith(r)) ? folder : null);
  $("open-dialog").showModal();
}

function showSave() {
  $("save-folder").value = A.state.saved_to || A.state.out_dir;
  $("save-dialog").showModal();
}

// ------------------------------------------------------------------ start
async function main() {
  setupTraceInput();
  renderStepParams();
  $("step-kind").onchange = renderStepParams;
  $("step-add").onclick = addStep;
  $("analyze").onclick = analyze;
  $("cancel").onclick = () => api("/api/cancel", {}).catch(fail);
  $("method").onchange = showModelDefaults;
  $("model").onchange = showModelDefaults;
  $("open-btn").onclick = showOpen;
  $("open-go").onclick = openChosen;
  $("files-up").onclick = () => listFolder($("files-up").dataset.parent || null);
  $("save-btn").onclick = showSave;
  $("save-go").onclick = save;
  $("offer-restore").onclick = async () => { try { await loadState(await api("/api/recover", { action: "restore" })); flash("unsaved work restored"); } catch (e) { fail(e); } };
  $("saved-open").onclick = openSavedResults;
  $("export-fig").onclick = () => { const name = exportFigure(); if (name) flash(`figure downloaded as ${name}`); };
  $("saved-dismiss").onclick = () => { A.dismissedSaved = A.state.saved_results && A.state.saved_results.folder; renderSavedOffer(); };
  $("settings-reset").onclick = resetSettings;
  $("offer-discard").onclick = async () => {
    if (!confirm("Discard the kept analysis and its edits for good?")) return;
    try { await loadState(await api("/api/recover", { action: "discard" })); } catch (e) { fail(e); }
  };
  $("ev-toggle").onclick = () => { if (A.selected >= 0) setExcluded(A.selected, !A.events.excluded[A.selected]); };
  $("undo").onclick = undo;
  $("pick").onclick = togglePick;
  $("pick-clear").onclick = () => { A.picks = []; updatePicks(); redraw(); };
  $("suggest-picked").onclick = () => suggestWindow(true);
  $("suggest-trace").onclick = () => suggestWindow(false);
  $("window-use").onclick = () => {
    if (!A.suggestion) return;
    $("s-window_size").value = A.suggestion.window_size;
    flash(`window size set to ${A.suggestion.window_size} samples; Analyze to use it`);
  };
  document.querySelectorAll("#events th").forEach((th) => {
    th.onclick = () => {
      const col = th.dataset.col;
      A.sort = { col, dir: A.sort.col === col ? -A.sort.dir : (col === "score" || col === "amplitude" ? 1 : 1) };
      sortEvents();
      renderTable();
    };
  });
  document.querySelector("#events tbody").addEventListener("click", (e) => {
    const tr = e.target.closest("tr");
    if (tr) selectEvent(parseInt(tr.dataset.i, 10), true, true);
  });
  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", () => { redraw(); renderDetail(); renderStats(); if (A.suggestion) drawSuggestion(); if (needFetch()) fetchTrace(); });
  try {
    const [models, st] = await Promise.all([api("/api/models"), api("/api/state")]);
    A.models = models.models;
    applySchema(models.settings);
    const msel = $("model");
    msel.innerHTML = A.models.map((m) => `<option value="${m.name}">${m.name}</option>`).join("") + '<option value="__file__">model file…</option>';
    if (A.models.some((m) => m.name === models.default)) msel.value = models.default;
    $("method").innerHTML = models.methods.map((m) => `<option value="${m}">${m === "miniml" ? "miniML model" : m}</option>`).join("");
    showModelDefaults();
    await loadState(st);
    showModelDefaults();
  } catch (e) { fail(e); }
  document.body.dataset.ready = "1";
}

main();
