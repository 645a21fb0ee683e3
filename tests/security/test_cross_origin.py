"""Findings: no Origin check on the WebSocket; POSTs accepted text/plain and
multipart with the cookie and a foreign Origin (a page on another port of the
same host read an agent's hello and ticked a checklist item); no CSP,
X-Frame-Options or nosniff; the Server header showed versions.

Now: the WebSocket and every state-changing request need the console's own
Origin; bodies are JSON only (a campaign upload needs X-Requested-With);
every response carries the security headers and a bare Server header.
(The same attack from a real page in Chromium: test_cross_origin_browser.py.)
"""
from __future__ import annotations

import aiohttp
import pytest

from tests.security.conftest import WRAPUP_CALL, Client, hello_or_close

EVIL = "http://127.0.0.1:1"          # another port of the same host: same site, other origin


async def test_the_websocket_needs_the_consoles_own_origin(service):
    async with Client(service) as agent:
        await agent.sign_in(service, "1001")
        async with agent.bare() as bare:
            for origin in (EVIL, "null", "http://localhost.evil.example", None):
                headers = {"Origin": origin} if origin else {}
                with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                    await bare.ws_connect("/ws", headers=headers)
                assert err.value.status == 403, origin
        ws = await agent.websocket()                    # its own origin: the hello
        hello = await hello_or_close(ws)
        assert isinstance(hello, dict) and hello["user"]["login"] == "1001"
        await ws.close()


async def test_state_changing_requests_need_the_origin_and_json(service):
    url = f"/api/calls/{WRAPUP_CALL}/wrapup"
    body = '{"disposition": "resolved", "notes": "forged"}'
    async with Client(service) as agent:
        await agent.sign_in(service, "1001")
        cases = [
            ({"Origin": EVIL, "Content-Type": "application/json"}, 403),
            ({"Content-Type": "application/json"}, 403),                  # no Origin at all
            ({"Content-Type": "text/plain"}, 415),                         # a form's text/plain
            ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
            ({"Content-Type": "multipart/form-data; boundary=x"}, 415),
        ]
        async with agent.bare() as bare:
            for headers, status in cases:
                if "Origin" not in headers and headers["Content-Type"] != "application/json":
                    headers = {**headers, "Origin": service.web_url}   # only the type is wrong
                r = await bare.post(url, data=body, headers=headers)
                assert r.status == status, (headers, r.status, await r.text())
        call = await service.store.get_call(WRAPUP_CALL)
        assert call["disposition"] is None                     # nothing was saved
        # The real page's request: own Origin, JSON.
        r = await agent.http.post(url, json={"disposition": "resolved", "notes": "ok"})
        assert r.status == 200, await r.text()
        assert (await service.store.get_call(WRAPUP_CALL))["disposition"] == "resolved"
        # Sign-in and sign-out are state changes too.
        r = await agent.http.post("/api/logout", json={}, headers={"Origin": EVIL})
        assert r.status == 403


async def test_a_campaign_upload_needs_the_custom_header(service):
    csv_text = "number,name\n+36201234567,Kim\n"
    async with Client(service) as boss:
        await boss.sign_in(service, "boss")
        form = aiohttp.FormData()
        form.add_field("file", csv_text, filename="c.csv", content_type="text/csv")
        r = await boss.http.post("/api/campaigns?name=spring&project=acme-telesales", data=form)
        assert r.status == 403 and "X-Requested-With" in await r.text()
        r = await boss.http.post("/api/campaigns?name=spring&project=acme-telesales",
                                 data=csv_text, headers={"Content-Type": "text/csv"})
        assert r.status == 403
        r = await boss.http.post("/api/campaigns?name=spring&project=acme-telesales",
                                 data=csv_text, headers={"Content-Type": "text/csv",
                                                         "X-Requested-With": "ivr",
                                                         "Origin": EVIL})
        assert r.status == 403                          # the header alone is not enough
        r = await boss.http.post("/api/campaigns?name=spring&project=acme-telesales",
                                 data=csv_text, headers={"Content-Type": "text/csv",
                                                         "X-Requested-With": "ivr"})
        assert r.status == 201 and (await r.json())["added"] == 1


@pytest.mark.parametrize("path", ["/", "/agent", "/supervisor", "/static/common.js",
                                  "/api/health", "/api/calls", "/nowhere"])
async def test_every_response_has_the_security_headers_and_no_versions(service, path):
    async with aiohttp.ClientSession(service.web_url) as s:
        async with s.get(path) as r:
            h = r.headers
    csp = h.get("Content-Security-Policy", "")
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert h.get("X-Frame-Options") == "DENY"
    assert h.get("X-Content-Type-Options") == "nosniff"
    assert h.get("Referrer-Policy") == "no-referrer"
    assert h.get("Server") == "ivr"
    assert "Strict-Transport-Security" not in h                 # plain HTTP here (see test_tls)
