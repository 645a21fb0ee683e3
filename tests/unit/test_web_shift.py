"""The agent state routes: who may change whose state, and every bad request
a 400 (or 401/403/404/503) with a reason, never a 500. Asterisk is the small
fake of tests/unit/test_agent_states.py."""
from __future__ import annotations

import secrets

import aiohttp
import pytest
from aiohttp import web

from ivr.agents import AgentGroups, AgentStates
from ivr.calls.queues import QueueBoard
from ivr.config import Secret, ShiftSettings, User
from ivr.outcomes.store import open_store
from ivr.pop import ScriptPop
from ivr.web.app import ConsoleApp, WebContext
from ivr.web.auth import Auth
from ivr.web.hub import ConsoleHub
from ivr.web.shift import ShiftWeb
from tests.conftest import free_port
from tests.unit.test_agent_states import GROUPS, FakeQueues

USERS = tuple(User(login=lg, name=n, role=r, secret=Secret(secrets.token_urlsafe(16)))
              for lg, n, r in (("1001", "Anna", "agent"), ("1003", "Csilla", "agent"),
                               ("2001", "Nobody", "agent"), ("boss", "Sara", "supervisor")))


@pytest.fixture
async def site(tmp_path):
    store = await open_store(f"sqlite://{tmp_path}/ivr.db")      # sign-in sessions
    pbx = FakeQueues()
    hub = ConsoleHub()
    states = AgentStates(AgentGroups(GROUPS), pbx, ShiftSettings(), names={"1003": "Csilla"})
    pbx.sink = states.on_ami_event
    shift = ShiftWeb(states, QueueBoard(20.0), hub)
    states.on_change = shift.agent_changed

    async def nothing(*a, **kw):
        return []
    console = ConsoleApp(WebContext(
        auth=Auth(USERS, store), hub=hub, pop=ScriptPop(None, {}, lambda *a: None),
        live_calls=lambda: [], save_wrapup=nothing, transfer=nothing, departments=nothing,
        shift=shift))
    await console.ctx.auth.start()
    app = console.build()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", states, pbx
    await runner.cleanup()
    await store.close()


async def session(base: str, login: str) -> aiohttp.ClientSession:
    """Signed in as the console page is: the session cookie and the console's Origin."""
    s = aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True),
                              headers={"Origin": base})
    user = next(u for u in USERS if u.login == login)
    r = await s.post("/api/login", json={"login": login, "secret": str(user.secret)})
    assert r.status == 200
    return s


async def test_sign_in_joins_the_queues_and_sign_out_leaves_them(site):
    base, states, pbx = site
    s = await session(base, "1003")
    try:
        assert states.status("1003").state.value == "ready"
        assert ("add", "support", "PJSIP/1003", False, "") in pbx.actions
        # An agent of no group signs in fine and stays out of the queues.
        other = await session(base, "2001")
        await other.close()
        r = await s.post("/api/logout", json={})
        assert r.status == 200
        assert states.status("1003").state.value == "offline" and not pbx.members
    finally:
        await s.close()


async def test_bad_requests_are_refused_with_a_reason(site):
    base, states, pbx = site
    anon = aiohttp.ClientSession(base, headers={"Origin": base})
    agent, boss = await session(base, "1003"), await session(base, "boss")
    try:
        r = await anon.post("/api/agents/me/state", json={"state": "ready"})
        assert r.status == 401
        r = await anon.get("/api/wallboard")
        assert r.status == 401
        r = await agent.get("/api/wallboard")
        assert r.status == 403
        for body, status, says in (
                (b"not json", 400, "JSON"), (b"[1]", 400, "object"),
                (b'{"state": 5}', 400, "text"), (b'{"state": "ready", "reason": []}', 400, "text"),
                (b'{"state": "dancing"}', 400, "unknown state"),
                (b'{"state": "wrapup"}', 400, "is not chosen"),
                (b'{"state": "not_ready", "reason": "nap"}', 400, "choose a reason")):
            r = await agent.post("/api/agents/me/state", data=body,
                                 headers={"Content-Type": "application/json"})
            assert (r.status, says in await r.text()) == (status, True), (body, await r.text())
        r = await agent.post("/api/agents/1001/state", json={"state": "offline"})
        assert r.status == 403
        r = await boss.post("/api/agents/9999/state", json={"state": "ready"})
        assert r.status == 404
        pbx.down = True
        r = await boss.post("/api/agents/1003/state", json={"state": "not_ready",
                                                            "reason": "lunch"})
        assert r.status == 503 and "PBX" in await r.text()
        pbx.down = False
        r = await boss.post("/api/agents/1003/state", json={"state": "not_ready",
                                                            "reason": "lunch"})
        assert r.status == 200 and (await r.json())["agent"]["reason"] == "lunch"
        board = await (await boss.get("/api/wallboard")).json()
        [csilla] = [a for a in board["agents"] if a["login"] == "1003"]
        assert (csilla["state"], csilla["reason"], csilla["name"]) == \
            ("not_ready", "lunch", "Csilla")
        assert board["reasons"] == ["break", "lunch", "training", "meeting"]
    finally:
        for s in (anon, agent, boss):
            await s.close()
