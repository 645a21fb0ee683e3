"""The cross-site attack of the review, from a real page in Chromium.

An agent is signed in (through the real form, under the console's CSP). In
the same browser, a page on another port of the same host (same site, so
even a SameSite=Strict cookie goes along) tries to read the agent's console
over the WebSocket, and to post a wrap-up and a checklist tick with the
agent's cookie: as a text/plain fetch, a JSON fetch, and a plain HTML form.
None of it may get through.
"""
from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from tests.conftest import free_port
from tests.e2e.conftest import browser, sign_in  # noqa: F401
from tests.security.conftest import WRAPUP_CALL

pytestmark = pytest.mark.pbx

ATTACK = """<!doctype html><html><body>
<form id="f" method="POST" enctype="text/plain" target="sink"
      action="{target}/api/calls/{call}/wrapup">
  <input name='{{"disposition":"resolved","notes":"form","x":"' value='"}}'>
</form><iframe name="sink"></iframe>
<script>
window.out = {{ws: [], text: null, json: null}};
const ws = new WebSocket("{ws}/ws");
ws.onmessage = (e) => out.ws.push("message " + e.data.slice(0, 300));
ws.onclose = (e) => out.ws.push("close " + e.code);
ws.onerror = () => out.ws.push("error");
fetch("{target}/api/calls/{call}/wrapup", {{method: "POST", mode: "no-cors",
  credentials: "include", headers: {{"Content-Type": "text/plain"}},
  body: JSON.stringify({{disposition: "resolved", notes: "text/plain"}})}})
  .then((r) => out.text = "sent " + r.type).catch((e) => out.text = "blocked " + e);
fetch("{target}/api/calls/{call}/checklist", {{method: "POST", credentials: "include",
  headers: {{"Content-Type": "application/json"}},
  body: JSON.stringify({{item: "greeting", done: true}})}})
  .then((r) => out.json = "status " + r.status).catch((e) => out.json = "blocked " + e);
document.getElementById("f").submit();
</script></body></html>"""


async def test_a_page_on_another_port_can_neither_read_nor_change_the_console(
        service, browser, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, "ivr.web.guard")
    console_errors: list[str] = []
    agent = await sign_in(browser, service, "1001")       # the real form, under the CSP
    agent.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    await agent.wait_for_selector(".card", timeout=10000)   # the wrap-up it owes
    assert agent.errors == []

    target = service.web_url
    page_html = ATTACK.format(target=target, ws=target.replace("http", "ws", 1), call=WRAPUP_CALL)

    async def attack(request: web.Request) -> web.Response:
        return web.Response(text=page_html, content_type="text/html")
    app = web.Application()
    app.router.add_get("/", attack)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        evil = await agent.context.new_page()           # same browser, same cookies
        await evil.goto(f"http://127.0.0.1:{port}/")
        await evil.wait_for_function("out.ws.length > 0 && out.text && out.json", timeout=10000)
        await asyncio.sleep(1.0)                        # the form's POST lands too
        out = await evil.evaluate("out")
    finally:
        await runner.cleanup()
    assert not any(m.startswith("message") for m in out["ws"]), out     # no hello read
    assert out["json"].startswith("blocked"), out       # no CORS for it: the page learns nothing
    call = await service.store.get_call(WRAPUP_CALL)
    assert call["disposition"] is None and call["notes"] is None        # nothing saved
    refused = [r.getMessage() for r in caplog.records if "cross-site" in r.getMessage()]
    assert any("GET /ws" in m for m in refused), refused
    assert sum("POST /api/calls/" in m for m in refused) >= 2, refused  # the fetch and the form
    # The agent's own page still works, untouched by any of it.
    assert await agent.locator(".card").count() == 1
    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors
