"""Findings: a wrap-up's callback_at was not range-checked (1e308 saved, then
the CSV export broke off after the header; NaN gave a 500); nested JSON
(depth 1,000) and limit=1e999 gave 500s; summary?since=0&until=1e11 built 74 MB
and blocked the loop for a second.

Now every malformed value is a 400 with a reason, the service keeps
answering, and nothing is saved.
"""
from __future__ import annotations

import base64
import logging
import time

import aiohttp

from tests.security.conftest import WRAPUP_CALL, Client

DEEP = "[" * 1000 + "]" * 1000


async def test_bad_callback_times_are_400_and_nothing_is_saved(service):
    url = f"/api/calls/{WRAPUP_CALL}/wrapup"
    now = time.time()
    async with Client(service) as agent:
        await agent.sign_in(service, "1001")
        cb = '{"disposition": "callback", "notes": "call back", "callback_at": '
        raw = {                                   # bodies as an attacker would type them
            "1e308": (cb + "1e308}", "1970 and 2100"),
            "1e999": (cb + "1e999}", "out of range"),
            "NaN": (cb + "NaN}", "finite"),
            "-Infinity": (cb + "-Infinity}", "finite"),
            "huge int": (cb + "9" * 400 + "}", "out of range"),
            "past": (cb + f"{now - 3600}}}", "in the past"),
            "2 years": (cb + f"{now + 2 * 366 * 86400}}}", "more than a year ahead"),
            "year 9999": (cb + '"9999-01-01T10:00"}', "1970 and 2100"),
            "not a date": (cb + '"next tuesday"}', "ISO 8601"),
            "bool": (cb + "true}", "must be a time"),
            "object": (cb + '{"a": 1}}', "ISO 8601"),
            "notes object": ('{"disposition": "resolved", "notes": {"a": 1}}',
                             "notes must be text"),
            "deep": ('{"disposition": "resolved", "notes": ' + DEEP + "}", "nested deeper"),
            "not an object": ("[1, 2]", "JSON object"),
        }
        for what, (body, why) in raw.items():
            r = await agent.http.post(url, data=body,
                                      headers={"Content-Type": "application/json"})
            reason = await r.text()
            assert r.status == 400 and why in reason, (what, r.status, reason)
        assert (await service.store.get_call(WRAPUP_CALL))["disposition"] is None
        r = await agent.http.post(url, json={"disposition": "callback", "notes": "call back",
                                             "callback_at": now + 3600})
        assert r.status == 200, await r.text()
    saved = await service.store.get_call(WRAPUP_CALL)
    assert saved["callback_at"] == now + 3600


async def test_malformed_queries_and_bodies_are_400_never_500(service, caplog):
    caplog.set_level(logging.ERROR)
    bomb = base64.urlsafe_b64encode(DEEP.encode()).decode()
    async with Client(service) as boss:
        await boss.sign_in(service, "boss")
        gets = [
            "/api/calls?limit=1e999", "/api/calls?limit=nan", "/api/calls?limit=-1",
            "/api/calls?limit=2.5", "/api/calls?since=nan", "/api/calls?until=inf",
            "/api/calls?since=-1e300", f"/api/calls?after={bomb}", "/api/calls?after=%%%",
            "/api/calls.csv?since=0&until=1e11", "/api/callbacks?limit=1e999",
            "/api/dnc?limit=inf", "/api/campaigns/x/contacts?after_id=1e400",
            "/api/reports/summary?overdue_after=nan", "/api/reports/summary?tz=../../etc/passwd",
            "/api/reports/summary?since=2020-01-01&until=2099-01-01",
        ]
        for path in gets:
            r = await boss.http.get(path)
            assert r.status == 400, (path, r.status, await r.text())
        t0 = time.monotonic()
        r = await boss.http.get("/api/reports/summary?since=0&until=1e11")
        assert r.status == 400 and time.monotonic() - t0 < 0.5     # refused, not built
        for path, body in [("/api/login", DEEP), ("/api/dnc", '{"number": ' + DEEP + "}"),
                           ("/api/dnc", '{"number": NaN}'),
                           ("/api/campaigns/x/status", '{"status": Infinity}')]:
            r = await boss.http.post(path, data=body, headers={"Content-Type": "application/json"})
            assert r.status == 400, (path, r.status, await r.text())
        r = await boss.http.post("/api/campaigns?name=c1&project=p&max_in_progress=1e999",
                                 data="number\n+3620111\n",
                                 headers={"Content-Type": "text/csv", "X-Requested-With": "ivr"})
        assert r.status == 400, await r.text()
        # Garbage on the WebSocket closes that socket only.
        ws = await boss.websocket()
        await ws.receive_json()
        await ws.send_str('{"type": "checklist", "done": NaN}')
        assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1003
        assert (await boss.http.get("/api/health")).status == 200   # still answering
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
