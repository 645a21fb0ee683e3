// The supervisor's board: every live call, updating live.
"use strict";

const calls = new Map();
liveSocket(onMessage, setConn);
document.getElementById("logout").onclick = async () => { await postJSON("/api/logout", {}); location.href = "/"; };

function onMessage(msg) {
  if (msg.type === "hello") {
    if (msg.user.role !== "supervisor") { location.href = "/agent"; return; }
    document.getElementById("who").textContent = msg.user.name;
    calls.clear();
    for (const c of msg.board || []) calls.set(c.call_id, c);
    const box = document.getElementById("problems");
    box.hidden = !(msg.problems && msg.problems.length); box.textContent = (msg.problems || []).join("\n");
  } else if (msg.type === "board_call") {
    calls.set(msg.call.call_id, msg.call);
  } else if (msg.type === "board_ended") {
    calls.delete(msg.call.call_id);
  } else if (msg.type === "problems") {
    const box = document.getElementById("problems");
    box.hidden = !msg.problems.length; box.textContent = msg.problems.join("\n");
  }
  render();
}

function render() {
  const now = Date.now() / 1000;
  const rows = [...calls.values()].sort((a, b) => a.started_at - b.started_at).map((c) =>
    el("tr", { "data-call": c.call_id },
      el("td", {}, el("span", { class: `badge state-${c.state}`, text: c.state.replace("_", " ") })),
      el("td", { text: c.agent || "—" }), el("td", { text: c.project || "—" }),
      el("td", { text: c.script || "—" }), el("td", { text: c.customer_number || "—" }),
      el("td", { text: c.direction }), el("td", { text: c.queue || "—" }),
      el("td", { class: "timer", text: clock(now - c.started_at) })));
  document.getElementById("board").replaceChildren(...rows);
  document.getElementById("none").hidden = calls.size > 0;
}
setInterval(render, 1000);
