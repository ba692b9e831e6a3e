// minidet scoring page: one snippet at a time, scored with the keyboard.
// Every change is sent to the server at once (in order); the server makes it durable.
"use strict";

const COLORS = { 1: "#1a7f37", 0: "#cf222e", 2: "#0969da", unscored: "#6e7781" };
const NAMES = { 1: "event", 0: "no event", 2: "exclude" };

const app = {
  state: null,
  index: 0,         // the snippet shown
  pos: 0,           // its position in the session's order (minidet score --order)
  order: [],        // snippet indices in the order they are presented
  position: [],     // snippet index -> position
  nav: 0,
  snippets: new Map(),
  contexts: new Map(),
  queue: Promise.resolve(),
  inFlight: 0,
  wheel: 0,
  cursorTimer: null,
};

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ server
async function getJSON(url) {
  const r = await fetch(url, { headers: { "Accept": "application/json" } });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function post(url, payload) {
  // changes go out one after the other, so the server sees them in the order they were made
  app.inFlight += 1;
  document.body.dataset.pending = String(app.inFlight);
  const run = async () => {
    const r = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(payload || {}),
    });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  };
  const p = app.queue.then(run);
  app.queue = p.catch(() => {}).finally(() => {
    app.inFlight -= 1;
    document.body.dataset.pending = String(app.inFlight);
  });
  return p;
}

function flash(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.className = "status show" + (isError ? " error" : "");
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { el.className = "status"; }, isError ? 5000 : 1200);
}

async function snippet(i) {
  if (!app.snippets.has(i)) app.snippets.set(i, getJSON(`/api/snippet/${i}`));
  return app.snippets.get(i);
}

function prefetch(pos) {
  for (const p of [pos + 1, pos + 2, pos - 1]) if (p >= 0 && p < app.state.n) snippet(app.order[p]).catch(() => {});
}

// ------------------------------------------------------------------ navigation
// Snippets are presented in the session's order: showAt() takes a position in it, show() a
// snippet index (what the server answers with).
function show(i) {
  const n = app.state.n;
  if (n === 0) return;
  i = ((i % n) + n) % n;
  return showAt(app.position[i]);
}

async function showAt(pos) {
  const n = app.state.n;
  if (n === 0) return;
  pos = ((pos % n) + n) % n;
  const i = app.order[pos];
  app.pos = pos;
  app.index = i;
  app.nav += 1;
  const s = await snippet(i);
  if (app.index !== i) return;       // the person moved on meanwhile
  render(s);
  prefetch(pos);
  loadContext(i);
  clearTimeout(app.cursorTimer);
  app.cursorTimer = setTimeout(() => post("/api/cursor", { index: i }).catch(() => {}), 400);
}

async function jump(kind) {
  try {
    const r = await getJSON(`/api/find/${kind}?from=${app.index}`);
    if (r.index === null) flash(kind === "unscored" ? "every snippet is scored" : "no snippet is scored 2");
    else show(r.index);
  } catch (e) { flash(e.message, true); }
}

// ------------------------------------------------------------------ scoring
async function setScore(score, advance) {
  const i = app.index;
  const s = await snippet(i);
  s.score = score;
  s.scored = true;
  render(s);
  post("/api/score", { index: i, score: score })
    .then((r) => updateCounts(r.counts, r.can_undo))
    .catch((e) => flash("not saved: " + e.message, true));
  const pos = app.position[i];
  if (advance && $("advance").checked && pos + 1 < app.state.n) showAt(pos + 1);
}

async function cycle() {
  const s = await snippet(app.index);
  setScore((s.score + 1) % 3, false);
}

function undo() {
  const nav = app.nav;
  post("/api/undo")
    .then(async (r) => {
      const s = await snippet(r.index);
      s.score = r.score;
      s.scored = r.scored;
      updateCounts(r.counts, r.can_undo);
      flash(`undone: #${r.index + 1}`);
      // go to the snippet that changed, unless the person has moved on meanwhile
      if (app.nav === nav) show(r.index);
      else if (app.index === r.index) render(s);
    })
    .catch((e) => flash(e.message, true));
}

function updateCounts(c, canUndo) {
  app.state.counts = c;
  $("n-event").textContent = c.event;
  $("n-noevent").textContent = c.no_event;
  $("n-exclude").textContent = c.exclude;
  $("n-unscored").textContent = c.unscored;
  const done = c.total - c.unscored;
  const pct = c.total ? (100 * done / c.total) : 0;
  $("progress-fill").style.width = pct.toFixed(1) + "%";
  $("progress-text").textContent = `${done} / ${c.total} scored (${pct.toFixed(0)} %)`;
  if (canUndo !== undefined) $("undo").disabled = !canUndo;
}

// ------------------------------------------------------------------ drawing
function colorOf(s) { return s.scored ? COLORS[s.score] : COLORS.unscored; }

function setupCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

function niceTicks(lo, hi, count) {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => span / s <= count) || 10 * mag;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
  return ticks;
}

function axes(ctx, box, xr, yr, xlabel, ylabel) {
  const { l, t, w, h } = box;
  const X = (v) => l + (v - xr[0]) / (xr[1] - xr[0]) * w;
  const Y = (v) => t + h - (v - yr[0]) / (yr[1] - yr[0]) * h;
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#59636e";
  ctx.strokeStyle = "#eaeef2";
  ctx.lineWidth = 1;
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (const v of niceTicks(yr[0], yr[1], 6)) {
    ctx.beginPath(); ctx.moveTo(l, Y(v)); ctx.lineTo(l + w, Y(v)); ctx.stroke();
    ctx.fillText(String(v), l - 6, Y(v));
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (const v of niceTicks(xr[0], xr[1], 10)) {
    ctx.beginPath(); ctx.moveTo(X(v), t); ctx.lineTo(X(v), t + h); ctx.stroke();
    ctx.fillText(String(v), X(v), t + h + 5);
  }
  ctx.fillText(xlabel, l + w / 2, t + h + 21);
  ctx.save();
  ctx.translate(14, t + h / 2); ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = "middle"; ctx.fillText(ylabel, 0, 0);
  ctx.restore();
  ctx.strokeStyle = "#8c959f";
  ctx.strokeRect(l, t, w, h);
  return { X, Y };
}

function range(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  const pad = (hi - lo || 1) * 0.08;
  return [lo - pad, hi + pad];
}

function render(s) {
  const color = colorOf(s);
  const n = app.state.n;
  $("index").textContent = `#${app.position[s.index] + 1}`;
  $("of").textContent = `of ${n}`;
  const badge = $("badge");
  badge.className = "badge s" + s.score + (s.scored ? "" : " suggested");
  badge.textContent = s.scored ? `${s.score} · ${NAMES[s.score]}` : `unscored · suggested ${NAMES[s.score]}`;
  const parts = [];
  if (app.state.order_kind !== "extraction") {
    const by = app.state.order_kind === "uncertainty" && app.state.order_model ? ` of ${escapeHtml(app.state.order_model)}` : "";
    parts.push(`snippet ${s.index + 1} · ${escapeHtml(app.state.order_kind)} order${by}`);
  }
  if (s.source) parts.push(`<b>${escapeHtml(basename(s.source))}</b>${s.channel ? " · " + escapeHtml(s.channel) : ""}`);
  if (s.raw_index >= 0) {
    parts.push(s.sampling_rate ? `at ${(s.raw_index / s.sampling_rate).toFixed(4)} s (sample ${s.raw_index})`
                               : `sample ${s.raw_index}`);
  }
  if (s.category && s.category !== "unknown") parts.push(`found by ${s.category}`);
  if (s.criterion !== null) parts.push(`criterion ${s.criterion.toFixed(2)}`);
  if (s.prescore !== null) parts.push(`model ${s.prescore.toFixed(2)}`);
  $("meta").innerHTML = parts.join(" &nbsp;·&nbsp; ");

  const canvas = $("snippet");
  canvas.style.borderColor = color;
  const { ctx, w, h } = setupCanvas(canvas);
  const y = s.samples;
  const ms = s.sampling_rate ? 1000 / s.sampling_rate : null;
  const xs = y.map((_, k) => (ms ? k * ms : k));
  const box = { l: 64, t: 14, w: w - 80, h: h - 52 };
  const { X, Y } = axes(ctx, box, [xs[0], xs[xs.length - 1]], range(y), ms ? "time (ms)" : "sample",
                      app.state.unit ? `${app.state.unit}, baseline subtracted` : "baseline subtracted");
  // onset marker: the extractor puts the event onset at this fraction of the window
  const onset = xs[Math.round(app.state.baseline_fraction * (y.length - 1))];
  ctx.setLineDash([4, 4]); ctx.strokeStyle = "#afb8c1";
  ctx.beginPath(); ctx.moveTo(X(onset), box.t); ctx.lineTo(X(onset), box.t + box.h); ctx.stroke();
  ctx.setLineDash([]);
  const [y0, y1] = range(y);
  if (y0 < 0 && y1 > 0) {
    ctx.strokeStyle = "#d0d7de";
    ctx.beginPath(); ctx.moveTo(box.l, Y(0)); ctx.lineTo(box.l + box.w, Y(0)); ctx.stroke();
  }
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.lineJoin = "round";
  ctx.beginPath();
  y.forEach((v, k) => (k ? ctx.lineTo(X(xs[k]), Y(v)) : ctx.moveTo(X(xs[k]), Y(v))));
  ctx.stroke();
  ctx.lineWidth = 1;
  drawContext();
}

async function loadContext(i) {
  if (!app.contexts.has(i)) app.contexts.set(i, getJSON(`/api/context/${i}`).catch((e) => ({ available: false, reason: e.message })));
  if (app.contexts.size > 40) app.contexts.delete(app.contexts.keys().next().value);
  const c = await app.contexts.get(i);
  if (app.index === i) drawContext();
}

async function drawContext() {
  const i = app.index;
  const canvas = $("context");
  const { ctx, w, h } = setupCanvas(canvas);
  const pending = app.contexts.get(i);
  const c = pending ? await pending : null;
  if (app.index !== i) return;
  const note = $("context-note");
  if (!c || !c.available) {
    note.textContent = c ? c.reason : "loading…";
    ctx.fillStyle = "#8c959f"; ctx.font = "13px system-ui, sans-serif"; ctx.textAlign = "center";
    ctx.fillText(c ? "no context: " + c.reason : "loading…", w / 2, h / 2);
    return;
  }
  note.textContent = `${(c.window_start / c.sampling_rate).toFixed(3)} s, shaded: this snippet`;
  const s = await snippet(i);
  const color = colorOf(s);
  const t = c.x.map((k) => k / c.sampling_rate);
  const box = { l: 64, t: 8, w: w - 80, h: h - 44 };
  const { X, Y } = axes(ctx, box, [t[0], t[t.length - 1]], range(c.y), "time (s)", c.unit);
  const a = X(c.window_start / c.sampling_rate), b = X(c.window_stop / c.sampling_rate);
  ctx.fillStyle = color + "22";
  ctx.fillRect(a, box.t, b - a, box.h);
  ctx.lineWidth = 1;
  ctx.beginPath();
  c.y.forEach((v, k) => (k ? ctx.lineTo(X(t[k]), Y(v)) : ctx.moveTo(X(t[k]), Y(v))));
  ctx.strokeStyle = "#424a53";
  ctx.stroke();
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5;
  ctx.strokeRect(a, box.t + 1, b - a, box.h - 2);
}

function basename(p) { return String(p).split(/[\\/]/).pop(); }
function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch]));
}

// ------------------------------------------------------------------ input
function onKey(e) {
  if (e.target && e.target.tagName === "INPUT" && e.target.type !== "checkbox") return;
  const k = e.key;
  if ((e.ctrlKey || e.metaKey) && (k === "z" || k === "Z")) { e.preventDefault(); undo(); return; }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  switch (k) {
    case "ArrowLeft": showAt(app.pos - 1); break;
    case "ArrowRight": showAt(app.pos + 1); break;
    case "Home": showAt(0); break;
    case "End": showAt(app.state.n - 1); break;
    case "0": case "1": case "2": setScore(Number(k), true); break;
    case "m": case "M": cycle(); break;
    case "n": case "N": jump("unscored"); break;
    case "u": case "U": jump("unclear"); break;
    case "z": case "Z": case "Backspace": undo(); break;
    default: return;
  }
  e.preventDefault();
}

function onWheel(e) {
  e.preventDefault();
  app.wheel += e.deltaY;
  const step = 60;
  if (Math.abs(app.wheel) >= step) {
    const n = Math.trunc(app.wheel / step);
    app.wheel -= n * step;
    showAt(app.pos + Math.sign(n));
  }
}

async function main() {
  try {
    app.state = await getJSON("/api/state");
  } catch (e) {
    document.body.innerHTML = `<p style="padding:20px">cannot reach the scoring server: ${escapeHtml(e.message)}</p>`;
    return;
  }
  document.title = `${app.state.name} · minidet scoring`;
  app.order = app.state.order;
  app.position = new Array(app.order.length);
  app.order.forEach((index, pos) => { app.position[index] = pos; });
  $("file").textContent = app.state.file;
  updateCounts(app.state.counts, app.state.can_undo);
  document.addEventListener("keydown", onKey);
  $("snippet").addEventListener("wheel", onWheel, { passive: false });
  $("context").addEventListener("wheel", onWheel, { passive: false });
  $("prev").onclick = () => showAt(app.pos - 1);
  $("next").onclick = () => showAt(app.pos + 1);
  $("set1").onclick = () => setScore(1, true);
  $("set0").onclick = () => setScore(0, true);
  $("set2").onclick = () => setScore(2, true);
  $("cycle").onclick = cycle;
  $("next-unscored").onclick = () => jump("unscored");
  $("next-unclear").onclick = () => jump("unclear");
  $("undo").onclick = undo;
  $("quit").onclick = async () => {
    try {
      await app.queue;
      await post("/api/quit");
      document.body.innerHTML = '<p style="padding:20px;font-size:16px">Saved. The scoring server has stopped; you can close this tab.</p>';
    } catch (e) { flash(e.message, true); }
  };
  const saved = localStorage.getItem("minidet.scoring.advance");
  if (saved !== null) $("advance").checked = saved === "1";
  $("advance").onchange = () => localStorage.setItem("minidet.scoring.advance", $("advance").checked ? "1" : "0");
  window.addEventListener("resize", () => snippet(app.index).then(render));
  document.body.dataset.pending = "0";
  if (app.state.n === 0) { flash("the dataset holds no snippets", true); return; }
  await show(app.state.cursor);
  document.body.dataset.ready = "1";
}

window.minidetScoring = app;
main();
