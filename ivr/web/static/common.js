// Shared by the console pages. Every value that comes from a call (names,
// numbers, speech) is put in the page with textContent, never as HTML.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function clock(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const m = Math.floor(seconds / 60), s = seconds % 60;
  return `${m}:${String(s).padStart(2, "0")}`;
}

// A WebSocket that reconnects with backoff and gets the full state again on
// every connect ("hello"), so a reload or a service restart loses nothing.
// It signs in with the session cookie alone (never a token in the URL); the
// server closes it with 4401 when the session ends (signed out, expired).
function liveSocket(onMessage, onStatus) {
  let delay = 500, ws = null, pinger = null;
  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/ws`);
    ws.onopen = () => { delay = 500; onStatus(true); pinger = setInterval(() => send({type: "ping"}), 15000); };
    ws.onmessage = (ev) => { try { onMessage(JSON.parse(ev.data)); } catch (e) { console.error(e); } };
    ws.onclose = (ev) => {
      clearInterval(pinger); onStatus(false);
      if (ev.code === 4401) { location.href = "/"; return; }
      setTimeout(connect, delay); delay = Math.min(delay * 2, 8000);
    };
  }
  function send(obj) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj)); }
  connect();
  return { send };
}

// Every state change is a same-origin JSON POST: the server refuses other
// bodies and other origins (cross-site request forgery).
async function postJSON(url, body) {
  const r = await fetch(url, { method: "POST", headers: {"Content-Type": "application/json"},
                               body: JSON.stringify(body), credentials: "same-origin" });
  const text = await r.text();
  // The session ended (signed out elsewhere, expired, idle): back to sign-in.
  if (r.status === 401 && url !== "/api/login") { location.href = "/"; }
  if (!r.ok) throw new Error(text || r.statusText);
  return text ? JSON.parse(text) : {};
}

function setConn(up) {
  const c = document.getElementById("conn");
  c.textContent = up ? "live" : "reconnecting…";
  c.className = "conn " + (up ? "up" : "down");
}
