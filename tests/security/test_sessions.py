"""Findings: the session token was HMAC(key = the user's own secret,
"login:expiry"), an offline cracking oracle anyone knowing a secret could mint
for the year 2100; sign-out revoked nothing; the token worked in the URL
(/ws?token=) and as Authorization: Bearer.

Now: a random session id in a cookie signed (itsdangerous) with a random
server key, the session kept in the store; sign-out, a changed secret, the
expiry cap and the idle timeout end it, across restarts and instances; the
cookie is the only credential.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import os
import stat
import time
from pathlib import Path

import aiohttp
import pytest
from itsdangerous import URLSafeTimedSerializer

from ivr.config import Secret, StoreSettings, WebSettings
from ivr.server import Service
from tests.conftest import free_port
from tests.security.conftest import Client, hello_or_close
from tests.store_fixtures import postgres_cluster  # noqa: F401


def old_style_token(login: str, secret: str, expires: int) -> str:
    """What the console accepted before: anyone with the secret could mint one."""
    msg = f"{login}:{expires}"
    sig = hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()
    return base64.urlsafe_b64encode(f"{msg}:{sig}".encode()).decode().rstrip("=")


async def status_of(service, cookie: str | None = None, **kw) -> int:
    """GET /api/calls (supervisors) with exactly this cookie (and headers)."""
    headers = dict(kw.pop("headers", {}))
    if cookie is not None:
        headers["Cookie"] = f"ivr_session={cookie}"
    async with aiohttp.ClientSession(service.web_url, cookie_jar=aiohttp.DummyCookieJar()) as s:
        async with s.get("/api/calls", headers=headers, **kw) as r:
            return r.status


async def ws_with(service, cookie: str | None = None, *, query: dict | None = None,
                  headers: dict | None = None) -> dict | int:
    h = {"Origin": service.web_url, **(headers or {})}
    if cookie is not None:
        h["Cookie"] = f"ivr_session={cookie}"
    async with aiohttp.ClientSession(service.web_url, cookie_jar=aiohttp.DummyCookieJar()) as s:
        ws = await s.ws_connect("/ws", headers=h, params=query or {})
        try:
            return await hello_or_close(ws)
        finally:
            await ws.close()


async def test_a_token_minted_from_a_users_secret_opens_nothing(service):
    boss = str(service.settings.user("boss").secret)
    forged = old_style_token("boss", boss, 4102444800)          # "expires in 2100"
    assert await status_of(service, forged) == 401
    assert await status_of(service, headers={"Authorization": f"Bearer {forged}"}) == 401
    assert await ws_with(service, forged) == 4401
    assert await ws_with(service, query={"token": forged}) == 4401
    # Knowing the secret does not let anyone sign a cookie either: the key is the server's.
    async with Client(service) as c:
        assert (await c.sign_in(service, "boss")).status == 200
        real = c.cookie()
    payload = URLSafeTimedSerializer(b"x").loads_unsafe(real)[1]
    for key in (boss.encode(), b"", b"ivr"):
        minted = URLSafeTimedSerializer(key, salt="ivr.console.session").dumps(payload)
        assert await status_of(service, minted) == 401
    tampered = real[:-2] + ("A" if real[-2] != "A" else "B") + real[-1]
    assert await status_of(service, tampered) == 401
    assert await status_of(service, real) == 200
    # The key lives beside the SQLite database, readable by the service only.
    db = Path(service.settings.store.url.removeprefix("sqlite://"))
    key = db.with_name(db.name + ".web-session.key")
    assert key.exists() and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert len(key.read_bytes()) == 32


async def test_the_cookie_is_httponly_strict_and_capped_and_the_cap_holds(service):
    async with Client(service) as c:
        r = await c.sign_in(service, "boss")
        assert r.status == 200
        body = await r.json()
        assert "token" not in body                     # the page never sees the credential
        cookie = r.cookies["ivr_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
        assert int(cookie["max-age"]) == 12 * 3600
        assert body["expires_at"] - time.time() == pytest.approx(12 * 3600, abs=60)
        value = c.cookie()
    auth = service.console.ctx.auth
    # 12 hours later the session is over, however the cookie was kept.
    auth.clock = lambda: time.time() + 12 * 3600 + 5
    assert await status_of(service, value) == 401
    auth.clock = time.time
    assert await status_of(service, value) == 401      # ... and stays over (revoked)


async def test_an_unused_session_dies_after_the_idle_timeout(service):
    auth = service.console.ctx.auth
    async with Client(service) as c:
        await c.sign_in(service, "1001")
        value = c.cookie()
    auth.clock = lambda: time.time() + auth.idle - 30
    assert await status_of(service, value) == 403     # alive (an agent: not for supervisors)
    auth.clock = lambda: time.time() + auth.idle - 30 + auth.idle + 5
    assert await status_of(service, value) == 401     # idle too long since the last use


async def test_sign_out_ends_the_session_its_sockets_and_every_replay(service):
    async with Client(service) as c:
        assert (await c.sign_in(service, "boss")).status == 200
        value = c.cookie()
        ws = await c.websocket()
        hello = await hello_or_close(ws)
        assert isinstance(hello, dict) and hello["user"]["login"] == "boss"
        r = await c.http.post("/api/logout", json={})
        assert r.status == 200
        closed = await hello_or_close(ws)               # the open console is closed at once
        assert closed == 4401
    assert await status_of(service, value) == 401
    assert await status_of(service, headers={"Authorization": f"Bearer {value}"}) == 401
    assert await ws_with(service, value) == 4401
    assert await ws_with(service, query={"token": value}) == 4401


async def test_sessions_survive_a_restart_but_not_a_changed_secret(sec_settings):
    svc = Service(sec_settings)
    await svc.start()
    try:
        async with Client(svc) as c:
            await c.sign_in(svc, "boss")
            boss_cookie = c.cookie()
        async with Client(svc) as c:
            await c.sign_in(svc, "1001")
            agent_cookie = c.cookie()
    finally:
        await svc.stop()
    svc = Service(sec_settings)                       # same config: a plain restart
    await svc.start()
    try:
        assert await status_of(svc, boss_cookie) == 200
        assert await ws_with(svc, agent_cookie) != 4401
    finally:
        await svc.stop()
    users = tuple(dataclasses.replace(u, secret=Secret(u.secret + "-rotated"))
                  if u.login == "boss" else u for u in sec_settings.users)
    svc = Service(dataclasses.replace(sec_settings, users=users))   # boss's secret changed
    await svc.start()
    try:
        assert await status_of(svc, boss_cookie) == 401
        assert isinstance(await ws_with(svc, agent_cookie), dict)    # others unaffected
    finally:
        await svc.stop()


async def test_two_instances_on_postgres_share_sessions_and_sign_out(
        sec_settings, postgres_cluster):  # noqa: F811
    url = postgres_cluster.create_database()

    def instance() -> Service:
        return Service(dataclasses.replace(
            sec_settings, store=StoreSettings(url=url),
            web=WebSettings(host="127.0.0.1", port=free_port())))
    a, b = instance(), instance()
    b.console.session_recheck = 0.5
    await a.start()
    await b.start()
    try:
        async with Client(a) as on_a:
            assert (await on_a.sign_in(a, "boss")).status == 200
            value = on_a.cookie()
            assert await status_of(b, value) == 200            # one sign-in, every instance
            async with Client(b) as on_b:
                on_b.http.cookie_jar.update_cookies({"ivr_session": value})
                ws = await on_b.websocket()
                assert isinstance(await hello_or_close(ws), dict)
                assert (await on_a.http.post("/api/logout", json={})).status == 200
                assert await status_of(b, value) == 401         # signed out on A: out on B
                assert await hello_or_close(ws, 5.0) == 4401    # B's open console closes
    finally:
        await b.stop()
        await a.stop()
