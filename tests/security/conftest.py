"""The service as an attacker on the same network meets it: the real Service
(sandbox Asterisk, real store, real aiohttp server on a loopback port) and a
plain HTTP client that only does what a browser page or a script could do.

Every test of this suite answers one finding of the security review (issue
10); the module names say which.
"""
from __future__ import annotations

import dataclasses
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ivr.config import Secret, Settings, StoreSettings, User, WebSettings
from ivr.outcomes.store import open_store
from ivr.server import Service
from tests.conftest import REPO, free_port
from tests.store_fixtures import make_call

WRAPUP_CALL = "sec-call-1"        # an answered call that 1001 still owes a wrap-up for


def strong_users() -> tuple[User, ...]:
    def user(login: str, name: str, **kw: Any) -> User:
        return User(login=login, name=name, secret=Secret(secrets.token_urlsafe(18)), **kw)
    return (user("1001", "Anna Kovacs"), user("1002", "Bela Nagy"),
            user("boss", "Sara Supervisor", role="supervisor"))


@pytest.fixture
def sec_settings(pbx, pbx_settings: Settings, tmp_path: Path) -> Settings:
    scripts = tmp_path / "scripts"
    shutil.copytree(REPO / "scripts", scripts)
    return dataclasses.replace(
        pbx_settings,
        web=WebSettings(host="127.0.0.1", port=free_port()),
        store=StoreSettings(url=f"sqlite:///{tmp_path / 'ivr.db'}"),
        speech=dataclasses.replace(pbx_settings.speech, enabled=False),
        scripts=str(scripts), customers=str(scripts / "customers.csv"),
        users=strong_users())


async def owe_wrapup(settings: Settings, call_id: str = WRAPUP_CALL, agent: str = "1001") -> None:
    """An answered call that ended while the service was down: at start, its
    wrap-up comes back to the agent's console (a card the API can act on)."""
    store = await open_store(settings.store.url)
    try:
        await store.upsert_call(make_call("answered", call_id, at=time.time() - 600, agent=agent))
    finally:
        await store.close()


@pytest.fixture
async def service(sec_settings: Settings):
    await owe_wrapup(sec_settings)
    svc = Service(sec_settings)
    await svc.start()
    yield svc
    await svc.stop()


class Client:
    """What a console page (or a script with the user's secret) can do over HTTP:
    a cookie jar, and the console's own Origin on every request."""

    def __init__(self, service: Service, origin: str | None = None, **session_kw: Any):
        self.base = service.web_url
        self.origin = self.base if origin is None else origin
        headers = {"Origin": self.origin} if self.origin else {}
        headers.update(session_kw.pop("headers", {}))
        self.http = aiohttp.ClientSession(self.base, headers=headers,
                                          cookie_jar=aiohttp.CookieJar(unsafe=True),
                                          **session_kw)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()

    async def sign_in(self, service: Service, login: str, secret: str | None = None
                      ) -> aiohttp.ClientResponse:
        if secret is None:
            secret = str(service.settings.user(login).secret)
        r = await self.http.post("/api/login", json={"login": login, "secret": secret})
        await r.read()
        return r

    def cookie(self) -> str | None:
        for c in self.http.cookie_jar:
            if c.key == "ivr_session":
                return c.value
        return None

    def bare(self) -> aiohttp.ClientSession:
        """A session with the same cookies but no default Origin header."""
        return aiohttp.ClientSession(self.base, cookie_jar=self.http.cookie_jar)

    async def websocket(self, **kw: Any) -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect("/ws", **kw)


async def hello_or_close(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0
                         ) -> dict | int:
    """The first message of a console socket: the hello (dict), or the close code."""
    msg = await ws.receive(timeout)
    if msg.type == aiohttp.WSMsgType.TEXT:
        return msg.json()
    return ws.close_code if ws.close_code is not None else -1
