// The supervisor's board: the wallboard (queues and agents), every live call,
// and the day's reports, updating live.
"use strict";

const calls = new Map();
let me = null, canMonitor = false;
const wall = { queues: new Map(), agents: new Map(), reasons: [], threshold: 20 };
const AGENT_WORDS = { offline: "Offline", ready: "Ready", not_ready: "Not ready", ringing: "Ringing",
  on_call: "On a call", wrapup: "Wrap-up" };
liveSocket(onMessage, setConn);
document.getElementById("logout").onclick = async () => { await postJSON("/api/logout", {}); location.href = "/"; };

// Times on the board are the service's (epoch s); this page's clock may be
// off: every message's sent_at keeps the difference.
let skew = 0;
const serverNow = () => Date.now() / 1000 + skew;

// What this page does with each message the service sends a supervisor's
// console: exactly the messages ivr/web/messages.py sends "to supervisor" (a
// test holds the two lists together). A handler returning false skips the
// board's render (the wallboard renders on its own schedule).
const ON = {
  hello(msg) {
    if (msg.user.role !== "supervisor") { location.href = "/agent"; return false; }
    document.getElementById("who").textContent = msg.user.name;
    me = msg.user; canMonitor = !!msg.can_monitor;
    calls.clear();
    for (const c of msg.board || []) calls.set(c.call_id, c);
    showProblems(msg.problems);
    if (msg.wallboard) loadWallboard(msg.wallboard);
  },
  board_call(msg) { calls.set(msg.call.call_id, msg.call); },
  board_ended(msg) { calls.delete(msg.call.call_id); },
  problems(msg) { showProblems(msg.problems); },
  monitor_failed(msg) { toast(`Listening in did not start: ${msg.reason}`); },
  wallboard_queue(msg) { wall.queues.set(msg.queue.queue, msg.queue); scheduleWall(); return false; },
  wallboard_agent(msg) { wall.agents.set(msg.agent.login, msg.agent); scheduleWall(); return false; },
};

function onMessage(msg) {
  if (typeof msg.sent_at === "number") skew = msg.sent_at - Date.now() / 1000;
  const handle = ON[msg.type];
  if (handle && handle(msg) === false) return;
  render();
}

function showProblems(problems) {
  const box = document.getElementById("problems");
  box.hidden = !(problems && problems.length); box.textContent = (problems || []).join("\n");
}

// ---------------------------------------------------------------- wallboard
function loadWallboard(w) {
  wall.queues.clear(); wall.agents.clear();
  for (const q of w.queues) wall.queues.set(q.queue, q);
  for (const a of w.agents) wall.agents.set(a.login, a);
  wall.reasons = w.reasons || []; wall.threshold = w.service_level_seconds;
  document.getElementById("sl-head").textContent = `Service level (≤ ${w.service_level_seconds} s)`;
  document.getElementById("wallboard").hidden = false;
  renderWall();
}

function agentState(a) {
  let words = AGENT_WORDS[a.state] || a.state;
  if (a.reason) words += ` · ${a.reason}`;
  if (a.then) words += ` (then ${a.then})`;
  if (a.state !== "offline" && !a.reachable) words += " · phone not registered";
  return words;
}

function agentSwitch(a) {
  const sel = el("select", { "aria-label": `Set the state of ${a.name}`, "data-agent": a.login },
    el("option", { value: "", text: "Change…" }),
    el("option", { value: "ready", text: a.state === "offline" ? "Log in: ready" : "Ready" }),
    wall.reasons.map((r) => el("option", { value: `not_ready:${r}`, text: `Not ready: ${r}` })),
    el("option", { value: "offline", text: "Log out" }));
  sel.addEventListener("change", async () => {
    const [st, reason] = sel.value.split(":");
    const error = document.getElementById("agent-error");
    error.textContent = ""; sel.disabled = true;
    try { await postJSON(`/api/agents/${encodeURIComponent(a.login)}/state`, { state: st, reason: reason || "" }); }
    catch (e) { error.textContent = `${a.name}: not changed: ${e.message}`; }
    finally { sel.disabled = false; sel.value = ""; }
  });
  return sel;
}

// A burst of pushes (a shift starting) is drawn once per frame.
let wallPending = false;
function scheduleWall() {
  if (wallPending) return;
  wallPending = true;
  requestAnimationFrame(() => { wallPending = false; renderWall(); });
}

function renderWall() {
  const now = serverNow();
  const agents = [...wall.agents.values()];
  document.getElementById("queues").replaceChildren(...[...wall.queues.values()].map((q) => {
    const count = (st) => agents.filter((a) => a.state === st && a.queues.includes(q.queue)).length;
    const longest = q.oldest_since ? now - q.oldest_since : 0;
    return el("tr", { "data-queue": q.queue },
      el("td", { text: q.queue }),
      el("td", { "data-figure": "waiting", text: String(q.waiting) }),
      el("td", { "data-figure": "longest_wait", class: longest > q.threshold ? "over" : "",
                 text: q.waiting ? clock(longest) + (longest > q.threshold ? " (over)" : "") : "—" }),
      el("td", { "data-figure": "answered", text: String(q.answered) }),
      el("td", { "data-figure": "abandoned", text: String(q.abandoned) }),
      el("td", { "data-figure": "timed_out", text: String(q.timed_out) }),
      el("td", { "data-figure": "service_level", text: q.service_level === null ? "—" : `${Math.round(q.service_level * 100)}%` }),
      el("td", { "data-figure": "asa", text: q.asa === null ? "—" : clock(q.asa) }),
      ...["ready", "not_ready", "ringing", "on_call", "wrapup"].map((st) =>
        el("td", { "data-figure": `agents_${st}`, text: String(count(st)) })));
  }));
  const rows = agents.sort((a, b) => a.login.localeCompare(b.login)).map((a) => {
    const call = a.call ? `${a.call.customer_number || "unknown"} · ${a.call.project || a.call.queue || ""}` : "—";
    return el("tr", { "data-agent": a.login, "data-state": a.state },
      el("td", {}, el("b", { text: a.name }), ` ${a.login}`),
      el("td", {}, el("span", { class: `agent-state`, "data-state": a.state, text: agentState(a) })),
      el("td", { class: "state-timer", "data-since": a.since, text: clock(now - a.since) }),
      el("td", { "data-role": "call", text: call }),
      el("td", { text: a.queues.join(", ") || "—" }),
      el("td", {}, agentSwitch(a)));
  });
  // The switch being used keeps its place (and focus) while pushes arrive.
  const body = document.getElementById("agents");
  const active = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.agent : null;
  if (active && body.contains(document.activeElement)) {
    for (const r of rows) if (r.dataset.agent !== active) {
      const old = body.querySelector(`tr[data-agent="${CSS.escape(r.dataset.agent)}"]`);
      if (old) old.replaceWith(r);
    }
  } else body.replaceChildren(...rows);
}

// Times tick here, from the epoch times pushed: four times a second, so a
// shown wait is never more than a quarter second behind.
function tickWall() {
  const now = serverNow();
  for (const td of document.querySelectorAll("#agents td[data-since]")) {
    const text = clock(now - Number(td.dataset.since));
    if (td.textContent !== text) td.textContent = text;
  }
  for (const q of wall.queues.values()) {
    const td = document.querySelector(`#queues tr[data-queue="${CSS.escape(q.queue)}"] td[data-figure="longest_wait"]`);
    if (!td) continue;
    const longest = q.oldest_since ? now - q.oldest_since : 0;
    const text = q.waiting ? clock(longest) + (longest > q.threshold ? " (over)" : "") : "—";
    if (td.textContent !== text) td.textContent = text;
    td.className = longest > q.threshold ? "over" : "";
  }
}
setInterval(tickWall, 250);

// ---------------------------------------------------------------- live calls
function render() {
  const now = serverNow();
  const rows = [...calls.values()].sort((a, b) => a.started_at - b.started_at).map((c) =>
    el("tr", { "data-call": c.call_id },
      el("td", {}, el("span", { class: `badge state-${c.state}`, text: c.state.replace("_", " ") })),
      el("td", { text: c.agent || "—" }), el("td", { text: c.project || "—" }),
      el("td", { text: c.script || "—" }), el("td", { text: c.customer_number || "—" }),
      el("td", { text: c.direction }), el("td", { text: c.queue || "—" }),
      el("td", { class: "timer", text: clock(now - c.started_at) }),
      el("td", { class: "listen" }, listenCell(c))));
  document.getElementById("board").replaceChildren(...rows);
  document.getElementById("none").hidden = calls.size > 0;
}
setInterval(render, 1000);

// ---------------------------------------------------------------- reports
// The figures of today (or the last 7 days) under the live calls, refreshed
// every few seconds from /api/reports/summary, with a bar chart of calls per
// hour (per day for the week) drawn as inline SVG. Text only via textContent.
const REFRESH_MS = 5000;
const SVG_NS = "http://www.w3.org/2000/svg";
let reportTimer = null;

function period() {
  const now = new Date();
  const start = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  if (document.getElementById("period").value === "week") {
    const since = new Date(start); since.setDate(since.getDate() - 6);
    const until = new Date(start); until.setDate(until.getDate() + 1);
    return { since: since.getTime() / 1000, until: until.getTime() / 1000, title: "Last 7 days" };
  }
  const until = new Date(start); until.setDate(until.getDate() + 1);
  return { since: start.getTime() / 1000, until: until.getTime() / 1000, title: "Today" };
}

async function loadReports() {
  const p = period();
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  const q = new URLSearchParams({ since: p.since, until: p.until });
  if (tz) q.set("tz", tz);
  document.getElementById("export").href = `/api/calls.csv?${q}`;
  let r;
  try {
    r = await fetch(`/api/reports/summary?${q}`, { credentials: "same-origin" });
  } catch (e) { return; }                       // offline for a moment: next round
  const box = document.getElementById("reports");
  if (r.status === 404) { box.hidden = true; clearInterval(reportTimer); return; }   // not wired
  if (!r.ok) { box.hidden = true; return; }
  const data = await r.json();
  box.hidden = false;
  document.getElementById("reports-title").textContent = p.title;
  renderReports(data);
  document.getElementById("reports-updated").textContent =
    "updated " + new Date().toLocaleTimeString();
}

const pct = (x) => (x === null || x === undefined ? "—" : `${Math.round(x * 100)}%`);
const secs = (x) => (x === null || x === undefined ? "—" : clock(x));
const score = (x) => (x === null || x === undefined ? "—" : `${Math.round(x)}`);   // 0-100
const dispo = (d) => Object.entries(d || {}).map(([k, n]) => `${k} ${n}`).join(" · ") || "—";

function figure(label, value, alert) {
  return el("div", { class: "figure" + (alert ? " alert" : ""), "data-figure": label },
    el("div", { class: "value", text: value }), el("div", { class: "label", text: label }));
}

function renderReports(data) {
  const t = data.total;
  document.getElementById("totals").replaceChildren(
    figure("calls", String(t.calls)),
    figure("answer rate", pct(t.answer_rate)),
    figure("avg speed of answer", secs(t.asa)),
    figure("abandoned", pct(t.abandonment_rate), t.abandonment_rate > 0.1),
    figure("queue timeouts", String(t.queue_timeout || 0), t.queue_timeout > 0),
    figure("avg handle time", secs(t.aht)),
    figure("callbacks due", String(t.callbacks.due), t.callbacks.due > 0),
    figure("overdue", String(t.callbacks.overdue), t.callbacks.overdue > 0),
    figure("adherence", score(t.adherence)));
  document.getElementById("by-project").replaceChildren(...data.projects.map((p) =>
    el("tr", { "data-project": p.project },
      el("td", { text: p.project || "(none)" }), el("td", { text: String(p.calls) }),
      el("td", { text: pct(p.answer_rate) }), el("td", { text: secs(p.asa) }),
      el("td", { text: pct(p.abandonment_rate) }), el("td", { text: secs(p.aht) }),
      el("td", { text: score(p.adherence) }), el("td", { text: String(p.callbacks.due) }),
      el("td", { text: String(p.callbacks.overdue) }), el("td", { text: dispo(p.dispositions) }))));
  // A shift's times run to hours: h:mm:ss past the hour.
  const hm = (x) => { x = Math.floor(x || 0);
    return x < 3600 ? clock(x) : `${Math.floor(x / 3600)}:${clock(x % 3600).padStart(5, "0")}`; };
  document.getElementById("shift-times").replaceChildren(...data.agents.filter((a) => a.agent && a.shift).map((a) =>
    el("tr", { "data-agent": a.agent },
      el("td", { text: a.agent }), el("td", { text: hm(a.shift.login_time) }),
      el("td", { text: hm(a.shift.ready_time) }), el("td", { text: hm(a.shift.not_ready_time) }),
      el("td", { "data-role": "reasons", text: Object.entries(a.shift.not_ready_by_reason).map(([r, s]) => `${r} ${hm(s)}`).join(" · ") || "—" }),
      el("td", { text: hm(a.shift.on_call_time + a.shift.ringing_time) }),
      el("td", { text: hm(a.shift.wrapup_time) }), el("td", { text: pct(a.shift.occupancy) }))));
  document.getElementById("by-agent").replaceChildren(...data.agents.map((a) =>
    el("tr", { "data-agent": a.agent },
      el("td", { text: a.agent || "(no agent)" }), el("td", { text: String(a.calls) }),
      el("td", { text: String(a.answered) }), el("td", { text: secs(a.aht) }),
      el("td", { text: secs(a.avg_talk) }), el("td", { text: secs(a.avg_hold) }),
      el("td", { text: secs(a.avg_wrapup) }), el("td", { text: score(a.adherence) }),
      el("td", { text: String(a.callbacks.due) }), el("td", { text: dispo(a.dispositions) }))));
  drawChart(data.series);
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawChart(series) {
  const chart = document.getElementById("chart");
  const hourly = series.bucket_seconds < 86400;
  document.getElementById("chart-title").textContent = hourly ? "Calls per hour" : "Calls per day";
  const W = Math.max(chart.clientWidth || 720, 200), H = 180, left = 30, bottom = 18, top = 8;
  chart.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const pts = series.points, n = Math.max(pts.length, 1);
  const max = Math.max(1, ...pts.map((p) => p.calls));
  const y = (v) => (H - bottom) - v * (H - bottom - top) / max;
  const slot = (W - left) / n, bar = Math.max(1, slot * 0.7);
  const nodes = [];
  for (const v of [0, max]) {
    nodes.push(svg("line", { class: "grid", x1: left, x2: W, y1: y(v), y2: y(v) }));
    nodes.push(svg("text", { class: "axis", x: left - 4, y: y(v) + 4, "text-anchor": "end" }, String(v)));
  }
  const every = hourly ? Math.ceil(n / 8) : 1;
  pts.forEach((p, i) => {
    const x = left + i * slot + (slot - bar) / 2, when = new Date(p.at * 1000);
    const label = hourly ? `${String(when.getHours()).padStart(2, "0")}:00`
                         : when.toLocaleDateString(undefined, { weekday: "short" });
    const other = Math.max(0, p.calls - p.answered - p.abandoned);
    let base = 0;
    for (const [cls, v] of [["answered", p.answered], ["abandoned", p.abandoned], ["other", other]]) {
      if (!v) continue;
      const rect = svg("rect", { class: cls, x, width: bar, y: y(base + v), height: y(base) - y(base + v) });
      rect.append(svg("title", {}, `${label}: ${v} ${cls === "other" ? "not answered" : cls}`));
      nodes.push(rect); base += v;
    }
    if (i % every === 0)
      nodes.push(svg("text", { class: "axis", x: x + bar / 2, y: H - 4, "text-anchor": "middle" }, label));
  });
  chart.replaceChildren(...nodes);
}

document.getElementById("period").onchange = loadReports;
loadReports();
reportTimer = setInterval(loadReports, REFRESH_MS);

// ---------------------------------------------------------------- listen, whisper, barge
// The supervisor's own phone rings; once answered it hears the call (listen),
// or speaks to the agent only (whisper), or to both (barge).
const MODES = [["listen", "Listen"], ["whisper", "Whisper"], ["barge", "Barge"]];

function listenCell(c) {
  const mine = (c.monitors || []).find((m) => me && m.supervisor === me.login);
  const others = (c.monitors || []).filter((m) => !me || m.supervisor !== me.login)
    .map((m) => el("span", { class: "listening", text: `${m.supervisor}: ${m.mode}` }));
  if (mine) {
    return [el("span", { class: "listening", "data-role": "listening", text: `you: ${mine.mode}` }),
      el("button", { class: "secondary", type: "button", "data-monitor": "stop", text: "Stop",
        onclick: (ev) => monitorAction(ev, c.call_id, "monitor/stop", {}) }), ...others];
  }
  if (!canMonitor || !c.can_monitor) return others;
  return [...MODES.map(([mode, label]) => el("button", { class: "secondary", type: "button", "data-monitor": mode,
    title: `Ring my phone and ${mode}`, text: label,
    onclick: (ev) => monitorAction(ev, c.call_id, "monitor", { mode }) })), ...others];
}

async function monitorAction(ev, callId, path, body) {
  ev.target.disabled = true;
  try {
    const r = await postJSON(`/api/calls/${encodeURIComponent(callId)}/${path}`, body);
    if (r.phone) toast(`Your phone (${r.phone}) is ringing: answer it to ${r.mode}.`);
  } catch (e) { toast(e.message); ev.target.disabled = false; }
}

function toast(text) {
  const t = el("div", { class: "toast", role: "status", text });
  document.body.append(t);
  setTimeout(() => t.remove(), 6000);
}
