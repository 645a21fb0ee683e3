// The agent's console: one card per call on this agent's phone, from the
// moment it rings until the wrap-up is saved.
"use strict";

const state = { cards: new Map(), views: new Map(), departments: [], agents: [], user: null,
                consults: new Map(), monitors: new Map(), missed: new Map() };
const STATE_LABEL = { dialplan: "In menu", queued: "Queued", ringing: "Ringing", answered: "Answered",
  bridged: "Live", on_hold: "On hold", transferred: "Transferred", ended: "Ended" };

const socket = liveSocket(onMessage, setConn);
document.getElementById("logout").onclick = async () => { await postJSON("/api/logout", {}); location.href = "/"; };

// Times come from the service (epoch s); this page's clock may be off: every
// message's sent_at keeps the difference.
let skew = 0;
const serverNow = () => Date.now() / 1000 + skew;

// What this page does with each message the service sends an agent's console:
// exactly the messages ivr/web/messages.py sends "to agent" (a test holds the
// two lists together).
const ON = {
  hello(msg) {
    state.user = msg.user; state.departments = msg.departments || []; state.agents = msg.agents || [];
    state.consults.clear(); state.monitors.clear();
    document.getElementById("who").textContent = `${msg.user.name} · ${msg.user.login}`;
    const seen = new Set();
    for (const card of msg.cards || []) { seen.add(card.call_id); upsert(card); replayCoaching(card); }
    for (const id of [...state.cards.keys()]) if (!seen.has(id)) remove(id);
    showProblems(msg.problems);
    if ("agent_state" in msg) showAgentState(msg.agent_state, msg.reasons || []);
    else document.getElementById("shift").hidden = true;      // no agent states here
  },
  agent_state(msg) { showAgentState(msg.agent); },
  card(msg) { if (msg.card) upsert(msg.card); else remove(msg.call_id); },
  problems(msg) { showProblems(msg.problems); },
  transcript(msg) {
    if (msg.final) markShown(msg.call_id, `t:${msg.speaker}:${msg.start}:${msg.text}`);
    addTranscript(msg);
  },
  prompt(msg) {
    markShown(msg.call_id, `p:${msg.rule_id}:${msg.at}`);
    addPrompt(msg);
  },
  tap(msg) { showTap(msg); },
  coaching(msg) { showCoaching(msg); },
  cant_check(msg) { showCantCheck(msg); },
  capacity(msg) { showNotice(msg.call_id, msg.notice); },
  consult(msg) { showConsult(msg); },
  monitor(msg) { showMonitor(msg); },
};

function onMessage(msg) {
  if (typeof msg.sent_at === "number") skew = msg.sent_at - Date.now() / 1000;
  const handle = ON[msg.type];
  if (handle) handle(msg);
  document.getElementById("idle").hidden = state.cards.size > 0;
}

function showProblems(problems) {
  const box = document.getElementById("problems");
  box.hidden = !(problems && problems.length);
  box.textContent = (problems || []).join("\n");
}

function remove(callId) {
  const view = state.views.get(callId), card = state.cards.get(callId);
  state.views.delete(callId); state.cards.delete(callId);
  if (!view) return;
  if (card && card.phase === "ringing") {
    // The phone stopped ringing. A queue often rings the agent again for the
    // same call: keep the view a moment so that is one card, not a new pop.
    view.root.hidden = true;
    const timer = setTimeout(() => { view.root.remove(); state.missed.delete(callId); }, REPEAT_RING_MS);
    state.missed.set(callId, { view, timer });
    return;
  }
  view.root.remove();
}
const REPEAT_RING_MS = 8000;

function upsert(card) {
  state.cards.set(card.call_id, card);
  let view = state.views.get(card.call_id);
  const missed = state.missed.get(card.call_id);
  if (!view && missed) {           // rung again for the same call: the same card
    clearTimeout(missed.timer); state.missed.delete(card.call_id);
    view = missed.view; view.root.hidden = false; view.rings = (view.rings || 1) + 1;
    state.views.set(card.call_id, view);
  }
  if (!view) {
    view = { root: el("section", { class: "card", "data-call": card.call_id }), head: el("div", { class: "card-head" }),
             script: el("div", { class: "script" }), checklist: el("div", { class: "checklist" }),
             transcript: el("div", { class: "transcript", "aria-live": "polite" }, el("div", { class: "empty", text: "The live transcript appears here once the call is answered." })),
             prompts: el("div", { class: "prompts", "aria-live": "assertive" }, el("div", { class: "empty", text: "No prompts." })),
             actions: el("div", { class: "actions" }), consult: el("div", { class: "consult", "data-role": "consult" }),
             wrapup: null, scriptKey: null };
    const side = el("div", { class: "side" },
      el("div", {}, el("h3", { text: "Prompts" }), view.prompts),
      el("div", {}, el("h3", { text: "Checklist" }), view.checklist),
      el("div", {}, el("h3", { text: "Transcript" }), view.transcript),
      el("div", {}, el("h3", { text: "Transfer to" }), view.actions),
      el("div", {}, el("h3", { text: "Consult, then transfer" }), view.consult));
    view.root.append(view.head, el("div", { class: "card-body" }, view.script, side));
    document.getElementById("cards").prepend(view.root);
    state.views.set(card.call_id, view);
    renderMonitor(card.call_id);
  }
  renderHead(view, card);
  const key = card.script ? `${card.script.id}@${card.script.version}` : `none:${card.script_reason}`;
  if (view.scriptKey !== key) { renderScript(view, card); view.scriptKey = key; }
  renderChecklist(view, card);
  for (const x of Object.values(view.cantCheck || {})) showCantCheck(x);
  renderActions(view, card);
  renderConsult(view, card);
  if (card.phase === "wrapup" && !view.wrapup) renderWrapup(view, card);
  if (card.phase !== "wrapup" && view.wrapup) { view.wrapup.remove(); view.wrapup = null; }
}

function renderHead(view, card) {
  const who = card.customer_name ? `${card.customer_name} (${card.customer_number || "unknown number"})`
                                 : (card.customer_number || "Unknown caller");
  const phaseState = card.phase === "ringing" ? "ringing" : card.state;
  const items = [
    el("span", { class: "caller", text: who }),
    el("span", { class: `badge state-${phaseState}`, text: card.phase === "wrapup" ? "Wrap-up" : (STATE_LABEL[phaseState] || phaseState) }),
    el("span", { class: "badge", text: card.direction }),
    el("span", { class: "meta" }, "Project ", el("b", { text: card.project || "—" })),
  ];
  if (card.did) items.push(el("span", { class: "meta" }, "Dialled ", el("b", { text: card.did })));
  if (card.dialled) items.push(el("span", { class: "meta" }, "Calling ", el("b", { text: card.dialled })));
  if (card.queue) items.push(el("span", { class: "meta" }, "Queue ", el("b", { text: card.queue })));
  if (card.ivr_choice) items.push(el("span", { class: "meta" }, "Menu choice ", el("b", { text: card.ivr_choice })));
  if (card.campaign) items.push(el("span", { class: "meta" }, "Campaign ", el("b", { text: card.campaign })));
  if (card.transferred_to) items.push(el("span", { class: "meta" }, "Transferred to ", el("b", { text: card.transferred_to })));
  const chain = transferChain(card);
  if (chain) items.push(el("span", { class: "meta", "data-role": "transfers" }, "Transfers ", el("b", { text: chain })));
  view.hold = el("span", { class: "meta", "data-role": "hold" });
  items.push(view.hold);
  if (view.rings > 1) items.push(el("span", { class: "meta", "data-role": "rings", text: `rang ${view.rings} times` }));
  view.timer = el("span", { class: "timer", "data-role": "timer" });
  items.push(view.timer);
  view.head.replaceChildren(...items);
  if (view.monitorLine) view.head.after(view.monitorLine);
  tick();
}

function segments(list) {
  // Filled script text: plain text, and variables; a missing one shows as such.
  return (list || []).map((s) => s.var === undefined ? document.createTextNode(s.text ?? "")
    : (s.value === null || s.value === undefined || s.value === ""
       ? el("span", { class: "missing", title: "missing value", text: `[${s.label || s.var} missing]` })
       : el("span", { class: "var", text: s.value })));
}

function renderScript(view, card) {
  const s = card.script;
  if (!s) {
    view.script.replaceChildren(el("h2", { text: "No script matched" }),
      el("div", { class: "reason", text: card.script_reason || "" }),
      el("p", { class: "empty", text: "Handle the call with the caller's details above." }));
    return;
  }
  const parts = [el("h2", {}, s.title + " ", el("span", { class: "badge", text: s.kind === "strict" ? "read word for word" : "talking points" })),
                 el("div", { class: "reason", text: `${card.script_reason} · ${s.id} v${s.version}` })];
  if (s.missing && s.missing.length)
    parts.push(el("div", { class: "reason missing", text: `Missing for this call: ${s.missing.join(", ")}` }));
  for (const step of s.steps || []) {
    const body = [];
    if (step.text) body.push(el("div", { class: "say" }, segments(step.text)));
    if (step.points && step.points.length) body.push(el("ul", {}, step.points.map((p) => el("li", {}, segments(p)))));
    parts.push(el("div", { class: "step", "data-step": step.id }, el("h3", { text: step.title }), ...body));
  }
  view.script.replaceChildren(...parts);
}

function renderChecklist(view, card) {
  // Built once per script, then updated in place: a tick from speech must not
  // take the keyboard focus away from the box the agent is on.
  const items = (card.script && card.script.checklist) || [];
  const key = items.map((i) => i.id).join("\u0000");
  if (view.checklistKey !== key) {
    view.checklistKey = key;
    if (!items.length) { view.checklist.replaceChildren(el("div", { class: "empty", text: "No checklist." })); return; }
    view.checklist.replaceChildren(...items.map((item) => {
      const box = el("input", { type: "checkbox", "data-item": item.id,
        onchange: (ev) => socket.send({ type: "checklist", call_id: card.call_id, item: item.id, done: ev.target.checked }) });
      return el("label", { "data-item": item.id }, box, el("span", { text: item.label }),
        el("span", { class: "weight", text: item.within ? `${item.weight} · ${item.within}s` : String(item.weight) }));
    }));
  }
  for (const item of items) {
    const mark = (card.checklist || {})[item.id];
    const done = !!(mark && mark.done);
    const label = view.checklist.querySelector(`label[data-item="${CSS.escape(item.id)}"]`);
    if (!label) continue;
    const box = label.querySelector("input");
    if (box.checked !== done) box.checked = done;
    label.classList.toggle("done", done);
    // Said, not only shown green: screen readers and colour-blind agents hear it.
    box.setAttribute("aria-label", `${item.label}: ${done ? "done" : "not done yet"}`);
  }
}

function renderActions(view, card) {
  const live = card.phase === "live";
  // Errors are announced (role=alert) in the page, never in a blocking alert().
  view.actionError = view.actionError || el("div", { class: "error", role: "alert", "data-role": "transfer-error" });
  const buttons = state.departments.length ? state.departments.map((d) =>
    el("button", { class: "secondary", type: "button", disabled: !live || d === card.queue, "data-department": d,
      onclick: async (ev) => { ev.target.disabled = true; view.actionError.textContent = "";
        try { await postJSON(`/api/calls/${encodeURIComponent(card.call_id)}/transfer`, { department: d }); }
        catch (e) { view.actionError.textContent = `Transfer failed: ${e.message}`; ev.target.disabled = false; } } }, d))
    : [el("span", { class: "empty", text: "No departments available." })];
  view.actions.replaceChildren(...buttons, view.actionError);
}

function renderWrapup(view, card) {
  const dispositions = card.dispositions;      // the script's, or the service's fallback ones
  const select = el("select", { name: "disposition", required: true },
    el("option", { value: "", text: "Choose the outcome…" }), dispositions.map((d) => el("option", { value: d.id, text: d.label })));
  const notes = el("textarea", { name: "notes", rows: 3 });
  const when = el("input", { name: "callback_at", type: "datetime-local" });
  const whenRow = el("label", { hidden: true }, "Call back at ", when);
  const notesLabel = el("span", { text: "Notes" });
  const error = el("div", { class: "error", role: "alert" });
  const save = el("button", { type: "submit", text: "Save wrap-up" });
  select.onchange = () => { const d = dispositions.find((x) => x.id === select.value); whenRow.hidden = !(d && d.needs_callback_time);
    notesLabel.textContent = d && d.needs_note ? "Notes (required)" : "Notes"; notes.required = !!(d && d.needs_note); };
  const form = el("form", { class: "wrapup", "data-role": "wrapup", "aria-label": "Wrap-up" }, el("h3", { text: "Wrap-up" }),
    el("label", {}, "Outcome ", select), whenRow, el("label", {}, notesLabel, notes), error, save);
  form.onsubmit = async (ev) => {
    ev.preventDefault(); save.disabled = true; error.textContent = "";
    try {
      await postJSON(`/api/calls/${encodeURIComponent(card.call_id)}/wrapup`,
        { disposition: select.value, notes: notes.value, callback_at: when.value || null });
      remove(card.call_id); document.getElementById("idle").hidden = state.cards.size > 0;
    } catch (e) { error.textContent = e.message; save.disabled = false; }
  };
  view.wrapup = form; view.root.append(form);
}

function addTranscript(msg) {
  // A speaker's partial result grows in one line; their final result settles it.
  const view = state.views.get(msg.call_id); if (!view) return;
  view.transcript.querySelector(".empty")?.remove();
  view.partials = view.partials || {};
  let line = view.partials[msg.speaker];
  if (!line) { line = el("div", { class: "line" }); view.transcript.append(line); }
  line.className = "line" + (msg.final ? "" : " partial");
  line.replaceChildren(el("span", { class: `who ${msg.speaker}`, text: msg.speaker === "agent" ? "You" : "Customer" }),
                       el("span", { text: msg.text }));
  view.partials[msg.speaker] = msg.final ? null : line;
  view.transcript.scrollTop = view.transcript.scrollHeight;
}

const SEVERITY_WORDS = { critical: "Critical", warning: "Warning", info: "Tip" };

function addPrompt(msg) {
  const view = state.views.get(msg.call_id); if (!view) return;
  view.prompts.querySelector(".empty")?.remove();
  const severity = msg.severity || "info";
  // The severity is written, not only coloured.
  view.prompts.prepend(el("div", { class: `prompt ${severity}`, "data-rule": msg.rule_id || "" },
    el("span", { class: "severity", text: `${SEVERITY_WORDS[severity] || severity}: ` }),
    el("strong", { text: msg.text }), el("span", { class: "why", text: msg.reason || "" })));
}

function tick() {
  const now = serverNow();
  for (const [id, card] of state.cards) {
    const view = state.views.get(id); if (!view || !view.timer) continue;
    const from = card.answered_at || card.started_at;
    const to = card.ended_at || now;
    view.timer.textContent = from ? clock(to - from) : "";
    if (view.hold) {
      // Hold time: the total so far, counting a hold going on now.
      const held = (card.hold_seconds || 0) + (card.hold_started_at ? Math.max(0, to - card.hold_started_at) : 0);
      view.hold.replaceChildren(...(held > 0 || card.hold_started_at ? [card.hold_started_at ? "On hold " : "Held ", el("b", { text: clock(held) })] : []));
    }
  }
}
setInterval(tick, 1000);

function showTap(msg) {
  // Whether the service hears each side: agents should know when coaching is blind.
  const view = state.views.get(msg.call_id); if (!view) return;
  view.taps = view.taps || {};
  view.taps[msg.speaker] = msg;
  const parts = ["agent", "customer"].filter((s) => view.taps[s]).map((s) => {
    const t = view.taps[s];
    const ok = t.state === "ok";
    return el("span", { class: ok ? "tap ok" : "tap bad", title: t.reason || "",
      text: `${s === "agent" ? "You" : "Customer"}: ${ok ? "listening" : t.state}` });
  });
  if (!view.tapLine) { view.tapLine = el("div", { class: "taps", "data-role": "taps" }); view.transcript.before(view.tapLine); }
  view.tapLine.replaceChildren(...parts);
}

function showCoaching(msg) {
  const view = state.views.get(msg.call_id); if (!view) return;
  if (typeof msg.adherence !== "number") return;
  const line = el("div", { class: "adherence", "data-role": "adherence" },
    "Script adherence ", el("b", { text: `${Math.round(msg.adherence)}%` }));
  view.adherence?.remove(); view.adherence = line;
  view.checklist.before(line);
  for (const [id, item] of Object.entries(msg.checklist || {})) {
    const label = view.checklist.querySelector(`label[data-item="${CSS.escape(id)}"]`);
    if (label && item.missed) label.classList.add("missed");
  }
}

function markShown(callId, key) {
  const view = state.views.get(callId); if (!view) return;
  (view.shown = view.shown || new Set()).add(key);
}

function replayCoaching(card) {
  // After a reload, a reconnect or a service restart: the coaching so far, as it was
  // shown live. What this page already shows is not shown twice; taps are as they are now.
  const c = card.coaching; const view = state.views.get(card.call_id);
  if (!c || !view) return;
  view.shown = view.shown || new Set();
  for (const line of c.transcript || []) {
    const key = `t:${line.speaker}:${line.start}:${line.text}`;
    if (view.shown.has(key)) continue;
    view.shown.add(key);
    addTranscript({ ...line, call_id: card.call_id, final: true });
  }
  for (const p of c.prompts || []) {
    const key = `p:${p.rule_id}:${p.at}`;
    if (view.shown.has(key)) continue;
    view.shown.add(key);
    addPrompt({ ...p, call_id: card.call_id });
  }
  for (const x of c.cant_check || []) showCantCheck({ ...x, call_id: card.call_id });
  for (const t of c.taps || []) showTap(t);
  if (c.notice) showNotice(card.call_id, c.notice);
  if (c.summary) showCoaching(c.summary);       // the call ended: its adherence
}

function showCantCheck(msg) {
  // Speech cannot judge this item: say so instead of a guessed "missed".
  const view = state.views.get(msg.call_id); if (!view) return;
  view.cantCheck = view.cantCheck || {};
  view.cantCheck[msg.id] = msg;
  if (msg.kind !== "item") return;
  const label = view.checklist.querySelector(`label[data-item="${CSS.escape(msg.id)}"]`);
  if (!label || label.classList.contains("done")) return;
  label.classList.add("cant-check");
  label.title = `Can't check: ${msg.reason}`;
  if (!label.querySelector(".cant")) label.append(el("span", { class: "cant", text: "can't check" }));
}

function showNotice(callId, text) {
  const view = state.views.get(callId); if (!view || !text) return;
  if (!view.notice) { view.notice = el("div", { class: "notice", role: "status", "data-role": "notice" }); view.prompts.before(view.notice); }
  view.notice.textContent = text;
}

// ---------------------------------------------------------------- transfers and supervisors
function transferChain(card) {
  // "1003 → 1002 → sales": who had the call, in order.
  const t = card.transfers || [];
  if (!t.length) return "";
  const hops = [t[0].by_agent || "?"];
  for (const x of t) hops.push(x.to_agent && x.to_agent !== x.target ? `${x.target} (${x.to_agent})` : x.target);
  return hops.join(" → ");
}

function renderConsult(view, card) {
  const c = state.consults.get(card.call_id);
  const live = card.phase === "live";
  if (c) {
    const call = async (what, ev) => {
      ev.target.disabled = true;
      try { await postJSON(`/api/calls/${encodeURIComponent(card.call_id)}/consult/${what}`, {}); }
      catch (e) { alert(`Transfer: ${e.message}`); ev.target.disabled = false; }
    };
    view.consult.replaceChildren(
      el("div", { class: "meta", "data-consult-state": c.state }, c.state === "talking" ? "Talking to " : "Calling ",
         el("b", { text: targetLabel(c) }), " · the customer is on hold"),
      el("div", { class: "actions" },
        el("button", { type: "button", "data-action": "complete", disabled: !live, text: "Complete transfer", onclick: (ev) => call("complete", ev) }),
        el("button", { class: "secondary", type: "button", "data-action": "cancel", disabled: !live, text: "Back to the customer", onclick: (ev) => call("cancel", ev) })));
    return;
  }
  const targets = [...state.agents.map((a) => ({ value: a.login, label: `${a.name} (${a.login})` })),
                   ...state.departments.map((d) => ({ value: d, label: `${d} queue` }))];
  if (!targets.length) { view.consult.replaceChildren(el("span", { class: "empty", text: "Nobody to transfer to." })); return; }
  const select = el("select", { name: "consult-target", disabled: !live },
    targets.map((x) => el("option", { value: x.value, text: x.label })));
  view.consult.replaceChildren(el("div", { class: "actions" }, select,
    el("button", { class: "secondary", type: "button", "data-action": "consult", disabled: !live, text: "Consult",
      onclick: async (ev) => { ev.target.disabled = true;
        try { await postJSON(`/api/calls/${encodeURIComponent(card.call_id)}/consult`, { target: select.value }); }
        catch (e) { alert(`Transfer: ${e.message}`); ev.target.disabled = false; } } })));
}

function targetLabel(c) {
  const a = state.agents.find((x) => x.login === c.target);
  return a ? `${a.name} (${a.login})` : (c.kind === "queue" ? `the ${c.target} queue` : c.target);
}

function showConsult(msg) {
  if (msg.state === "calling" || msg.state === "talking") state.consults.set(msg.call_id, msg);
  else state.consults.delete(msg.call_id);
  const view = state.views.get(msg.call_id), card = state.cards.get(msg.call_id);
  if (view && card) renderConsult(view, card);
}

function showMonitor(msg) {
  // The centre's policy decides whether this is sent at all (supervision.tell_agent).
  const key = msg.call_id, list = state.monitors.get(key) || [];
  const rest = list.filter((m) => m.supervisor !== msg.supervisor);
  if (msg.active) rest.push(msg);
  if (rest.length) state.monitors.set(key, rest); else state.monitors.delete(key);
  renderMonitor(key);
}

function renderMonitor(key) {
  const view = state.views.get(key), rest = state.monitors.get(key) || [];
  if (!view) return;
  const words = { listen: "is listening to this call", whisper: "is listening and can speak to you (whisper)",
                  barge: "has joined this call (barge): the customer hears them too" };
  if (!rest.length) { view.monitorLine?.remove(); view.monitorLine = null; return; }
  const line = el("div", { class: "monitor", "data-role": "monitor" },
    rest.map((m) => el("div", {}, el("b", { text: m.supervisor }), " ", words[m.mode] || "is listening")));
  view.monitorLine?.remove(); view.monitorLine = line; view.head.after(line);
}
// ---------------------------------------------------------------- your state
// Ready / not ready (with a reason) / offline, owned by the PBX's queues and
// pushed here ("agent_state"). The switch asks for a change; on a call or in
// wrap-up it says what comes after it. Every state is written out in words,
// never shown by colour alone.
const STATE_WORDS = { offline: "Offline", ready: "Ready", not_ready: "Not ready", ringing: "Ringing",
  on_call: "On a call", wrapup: "Wrap-up" };
const shift = { agent: null, reasons: [] };

function showAgentState(agent, reasons) {
  if (reasons) shift.reasons = reasons;
  shift.agent = agent;
  const badge = document.getElementById("my-state");
  const detail = document.getElementById("my-state-detail");
  if (!agent) {
    badge.dataset.state = "offline"; badge.textContent = "Not in any agent group";
    document.getElementById("state-switch").disabled = true; detail.textContent = "";
    return;
  }
  badge.dataset.state = agent.state;
  badge.textContent = STATE_WORDS[agent.state] + (agent.reason ? ` · ${agent.reason}` : "");
  const parts = [];
  if (agent.then) parts.push(`then not ready · ${agent.then}`);
  else if (["on_call", "ringing", "wrapup"].includes(agent.state)) parts.push("then ready");
  if (agent.state !== "offline" && !agent.reachable) parts.push("your phone is not registered");
  if (agent.state !== "offline" && agent.queues.length) parts.push(`queues: ${agent.queues.join(", ")}`);
  detail.textContent = parts.join(" · ");
  renderSwitch();
  tickState();
}

function renderSwitch() {
  const agent = shift.agent; if (!agent) return;
  const sw = document.getElementById("state-switch");
  const busy = ["on_call", "ringing", "wrapup"].includes(agent.state);
  document.getElementById("switch-label").textContent = busy ? "After this" : "Change to";
  const current = agent.state === "not_ready" ? `not_ready:${agent.reason}`
    : busy ? (agent.then ? `not_ready:${agent.then}` : "ready") : agent.state;
  const options = [el("option", { value: "ready", text: agent.state === "offline" ? "Log in: ready" : "Ready" })];
  const reasons = el("optgroup", { label: "Not ready" },
    shift.reasons.map((r) => el("option", { value: `not_ready:${r}`, text: `Not ready: ${r}` })));
  options.push(reasons);
  options.push(el("option", { value: "offline", text: "Log out of the queues" }));
  if (agent.state === "offline") options.unshift(el("option", { value: "offline", text: "Offline" }));
  // Rebuilt only when it differs, so keyboard focus and an open list survive a push.
  const key = JSON.stringify([agent.state, shift.reasons, busy]);
  if (sw.dataset.key !== key) { sw.replaceChildren(...options); sw.dataset.key = key; }
  sw.disabled = false;
  sw.value = current;
}

document.getElementById("state-switch").addEventListener("change", async (ev) => {
  const [state, reason] = ev.target.value.split(":");
  const error = document.getElementById("state-error");
  error.textContent = "";
  ev.target.disabled = true;
  try {
    const r = await postJSON("/api/agents/me/state", { state, reason: reason || "" });
    showAgentState(r.agent);
  } catch (e) {
    error.textContent = `Your state was not changed: ${e.message}`;
    renderSwitch();
  } finally { ev.target.disabled = false; }
});

function tickState() {
  const agent = shift.agent; if (!agent) return;
  const now = serverNow();
  document.getElementById("my-state-time").textContent = clock(now - agent.since);
  if (agent.state === "wrapup" && agent.wrapup_until) {
    const left = Math.max(0, agent.wrapup_until - now);
    document.getElementById("my-state").textContent = `Wrap-up · ${clock(left)} left`;
  }
}
setInterval(tickState, 1000);
