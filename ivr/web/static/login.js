// The sign-in form. The session is an HttpOnly cookie the server sets: this
// page never sees or stores a token (the Content-Security-Policy forbids
// inline scripts, hence this file).
"use strict";

document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try {
    const me = await postJSON("/api/login", {login: f.get("login"), secret: f.get("secret")});
    location.href = me.role === "supervisor" ? "/supervisor" : "/agent";
  } catch (e) { document.getElementById("error").textContent = e.message; }
});
