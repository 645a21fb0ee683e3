"""Agent states on the real stack: the sandbox Asterisk's queues, SIPp phones,
the service with its console API (sign-in, wrap-up, state switch).

- An agent in wrap-up is not rung while a second agent is; once the wrap-up
  is saved on the console they are rung for the next call. Same when the
  wrap-up reaches the project's maximum instead.
- Not ready with a reason: not rung (the caller waits); ready again: rung.
- A service restart with one agent on lunch and one mid-call: both states
  come back from Asterisk (nothing paused or unpaused), and the call's end
  starts the wrap-up as usual.
"""
from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time

import aiohttp
import pytest

from ivr.agents import AgentState
from ivr.calls.events import AgentRinging, CallEnded
from ivr.config import (AgentGroup, GroupMember, Secret, Settings, ShiftSettings, StoreSettings,
                        User, WebSettings)
from ivr.testing.phones import AgentPhone, call_customer
from ivr.server import Service
from tests.conftest import REPO, free_port, reset_queues
from tests.integration.conftest import CallLog

pytestmark = pytest.mark.pbx

SUPPORT = "5550111"      # the support hotline: straight into the support queue
GROUPS = (AgentGroup("support", ("acme-support",), ("support",),
                      (GroupMember("1003"), GroupMember("1004"))),
          AgentGroup("sales", ("acme-sales",), ("sales",), (GroupMember("1001"),)))


def sip(pbx) -> str:
    return f"{pbx.sip_host}:{pbx.sip_port}"


def users() -> tuple[User, ...]:
    def user(login, name, **kw):
        return User(login=login, name=name, secret=Secret(secrets.token_urlsafe(16)), **kw)
    return (user("1001", "Anna Kovacs"), user("1003", "Csilla Toth"), user("1004", "Dorj Bat"),
            user("boss", "Sara Supervisor", role="supervisor"))


def shift_settings(pbx_settings: Settings, tmp_path, **shift) -> Settings:
    return dataclasses.replace(
        pbx_settings, web=WebSettings(host="127.0.0.1", port=free_port()),
        store=StoreSettings(url=f"sqlite:///{tmp_path / 'ivr.db'}"),
        scripts=str(REPO / "scripts"), users=users(), groups=GROUPS,
        shift=ShiftSettings(**shift),
        speech=dataclasses.replace(pbx_settings.speech, enabled=False))


async def start(settings: Settings) -> Service:
    svc = Service(settings)
    svc.calls_seen = CallLog()
    svc.bus.subscribe(svc.calls_seen)
    await svc.start()
    await svc.ami.wait_connected(15)
    return svc


class Console:
    """An agent's (or supervisor's) console session over HTTP, as the page uses it."""

    def __init__(self, svc: Service, login: str):
        self.svc, self.login = svc, login
        # unsafe: keep cookies for an IP address (the service listens on 127.0.0.1);
        # the console's own Origin on every request, as the page sends it.
        self.http = aiohttp.ClientSession(svc.web_url, cookie_jar=aiohttp.CookieJar(unsafe=True),
                                          headers={"Origin": svc.web_url})

    async def sign_in(self) -> "Console":
        r = await self.http.post("/api/login", json={
            "login": self.login, "secret": str(self.svc.settings.user(self.login).secret)})
        assert r.status == 200, await r.text()
        return self

    async def state(self, state: str, reason: str = "", who: str = "me") -> dict:
        r = await self.http.post(f"/api/agents/{who}/state", json={"state": state,
                                                                  "reason": reason})
        assert r.status == 200, await r.text()
        return (await r.json())["agent"]

    async def save_wrapup(self, call_id: str) -> None:
        r = await self.http.post(f"/api/calls/{call_id}/wrapup",
                                 json={"disposition": "resolved", "notes": ""})
        assert r.status == 200, await r.text()

    async def close(self) -> None:
        await self.http.close()


async def wait_state(svc: Service, login: str, state: AgentState, timeout: float = 10.0,
                     reason: str | None = None):
    deadline = time.monotonic() + timeout
    while True:
        s = svc.agent_states.status(login)
        if s.state is state and (reason is None or s.reason == reason):
            return s
        if time.monotonic() > deadline:
            raise AssertionError(f"{login}: {s.state.value} ({s.reason}), not {state.value} "
                                 f"within {timeout} s")
        await asyncio.sleep(0.05)


def rung(calls: CallLog, call_id: str) -> list[str]:
    return [e.agent for e in calls.of_call(call_id) if isinstance(e, AgentRinging)]


async def next_call(calls: CallLog, seen: set[str], timeout: float = 15.0) -> str:
    """The id of the next support call to start after those in `seen`."""
    e = await calls.wait_for(lambda e: e.call.did == SUPPORT and e.call.call_id not in seen
                             and e.call.queued_at is not None, timeout, "a new queued call")
    seen.add(e.call.call_id)
    return e.call.call_id


@pytest.fixture
async def phones(pbx, tmp_path):
    reset_queues(pbx)
    started = [await AgentPhone(sip(pbx), ext, log_dir=tmp_path, ring_ms=300).astart()
               for ext in ("1003", "1004")]
    yield started
    for p in started:
        await p.astop()


async def test_wrapup_is_not_rung_until_saved(pbx, pbx_settings, phones, tmp_path):
    svc = await start(shift_settings(pbx_settings, tmp_path, wrapup_seconds=120))
    calls: CallLog = svc.calls_seen
    csilla, dorj = Console(svc, "1003"), Console(svc, "1004")
    seen: set[str] = set()
    try:
        await csilla.sign_in()
        await dorj.sign_in()
        assert svc.agent_states.status("1003").queues == ("support",)
        await dorj.state("not_ready", "meeting")
        # Call 1 goes to Csilla, the only one ready; its end puts her in wrap-up.
        first = call_customer(sip(pbx), SUPPORT, talk_ms=1500, log_dir=tmp_path, name="c1")
        c1 = await next_call(calls, seen)
        await calls.wait_for(lambda e: isinstance(e, CallEnded) and e.call.call_id == c1, 20)
        await wait_state(svc, "1003", AgentState.WRAPUP)
        assert rung(calls, c1) == ["1003"]
        await dorj.state("ready")
        # Call 2: Dorj is rung, Csilla (in wrap-up) is not.
        second = call_customer(sip(pbx), SUPPORT, talk_ms=8000, log_dir=tmp_path, name="c2")
        c2 = await next_call(calls, seen)
        await wait_state(svc, "1004", AgentState.ON_CALL)
        # Call 3 waits: Dorj talks, Csilla is still in wrap-up.
        third = call_customer(sip(pbx), SUPPORT, talk_ms=1500, log_dir=tmp_path, name="c3")
        c3 = await next_call(calls, seen)
        await asyncio.sleep(4.0)
        assert rung(calls, c2) == ["1004"] and rung(calls, c3) == []
        assert svc.agent_states.status("1003").state is AgentState.WRAPUP
        # Csilla saves her wrap-up: she is ready and rung for call 3 at once.
        saved_at = time.time()
        await csilla.save_wrapup(c1)
        ring = await calls.wait_for(lambda e: isinstance(e, AgentRinging)
                                    and e.call.call_id == c3, 10, "call 3 rings")
        assert ring.agent == "1003" and ring.at - saved_at < 3.0, ring.at - saved_at
        for run in (first, second, third):
            (await run.wait_async(30)).check()
        await svc.agent_log.flush()
        history = await svc.store.agent_state_history("1003", since=0)
    finally:
        for c in (csilla, dorj):
            await c.close()
        await svc.stop()
    states = [(h["state"], h["changed_by"]) for h in history if h["state"] != "offline"]
    assert states[:5] == [("ready", "1003"), ("ringing", "pbx"), ("on_call", "pbx"),
                          ("wrapup", "pbx"), ("ready", "1003")], states
    wrap = next(h for h in history if h["state"] == "wrapup")
    assert (wrap["call_id"], wrap["project"]) == (c1, "acme-support")
    assert wrap["ended_at"] - wrap["started_at"] == pytest.approx(saved_at - wrap["started_at"],
                                                                  abs=1.0)


async def test_wrapup_ends_after_the_projects_maximum(pbx, pbx_settings, phones, tmp_path):
    limit = 6.0
    svc = await start(shift_settings(pbx_settings, tmp_path, wrapup_seconds=120,
                                     wrapup_by_project=(("acme-support", limit),)))
    calls: CallLog = svc.calls_seen
    csilla = Console(svc, "1003")
    seen: set[str] = set()
    try:
        await csilla.sign_in()
        first = call_customer(sip(pbx), SUPPORT, talk_ms=1500, log_dir=tmp_path, name="c1")
        c1 = await next_call(calls, seen)
        end = await calls.wait_for(lambda e: isinstance(e, CallEnded) and e.call.call_id == c1)
        # The next caller waits for the whole wrap-up, then Csilla is rung.
        second = call_customer(sip(pbx), SUPPORT, talk_ms=1500, log_dir=tmp_path, name="c2")
        c2 = await next_call(calls, seen)
        status = await wait_state(svc, "1003", AgentState.WRAPUP)
        assert status.wrapup_until == pytest.approx(end.at + limit, abs=0.5)
        ring = await calls.wait_for(lambda e: isinstance(e, AgentRinging)
                                    and e.call.call_id == c2, limit + 10, "call 2 rings")
        assert ring.agent == "1003"
        assert limit - 0.5 < ring.at - end.at < limit + 4.0, ring.at - end.at
        for run in (first, second):
            (await run.wait_async(30)).check()
        await svc.agent_log.flush()
        history = await svc.store.agent_state_history("1003", since=0)
    finally:
        await csilla.close()
        await svc.stop()
    ended = next(h for h in history if h["state"] == "wrapup")
    after = history[history.index(ended) + 1]
    assert (after["state"], after["changed_by"]) == ("ready", "service")
    assert after["started_at"] - ended["started_at"] == pytest.approx(limit, abs=0.5)


async def test_not_ready_is_not_rung_and_ready_again_is(pbx, pbx_settings, phones, tmp_path):
    svc = await start(shift_settings(pbx_settings, tmp_path))
    calls: CallLog = svc.calls_seen
    csilla, boss = Console(svc, "1003"), Console(svc, "boss")
    seen: set[str] = set()
    try:
        await csilla.sign_in()
        await boss.sign_in()
        await csilla.state("not_ready", "lunch")
        run = call_customer(sip(pbx), SUPPORT, talk_ms=1500, log_dir=tmp_path)
        c1 = await next_call(calls, seen)
        await asyncio.sleep(5.0)
        assert rung(calls, c1) == []
        r = await boss.http.get("/api/wallboard")
        board = await r.json()
        [me] = [a for a in board["agents"] if a["login"] == "1003"]
        assert (me["state"], me["reason"]) == ("not_ready", "lunch")
        [support] = [q for q in board["queues"] if q["queue"] == "support"]
        assert support["waiting"] == 1 and support["agents"]["not_ready"] == 1
        assert 4.5 < board["now"] - support["oldest_since"] < 7.0
        # The supervisor sets her ready (a supervisor may change anyone's state).
        await boss.state("ready", who="1003")
        ring = await calls.wait_for(lambda e: isinstance(e, AgentRinging)
                                    and e.call.call_id == c1, 10, "rings once ready")
        assert ring.agent == "1003"
        (await run.wait_async(30)).check()
        r = await boss.http.get("/api/reports/summary", params={"since": str(time.time() - 600)})
        report = await r.json()
        # An agent may not change another's state.
        r = await csilla.http.post("/api/agents/1004/state", json={"state": "offline"})
        assert r.status == 403
        r = await csilla.http.post("/api/agents/me/state", json={"state": "not_ready",
                                                                 "reason": "nap"})
        assert r.status == 400 and "choose a reason" in await r.text()
    finally:
        for c in (csilla, boss):
            await c.close()
        await svc.stop()
    [row] = [a for a in report["agents"] if a["agent"] == "1003"]
    assert 4.5 < row["shift"]["not_ready_by_reason"]["lunch"] < 9.0
    assert row["shift"]["login_time"] >= row["shift"]["not_ready_time"] > 0


async def test_restart_brings_back_a_lunch_break_and_a_call(pbx, pbx_settings, phones,
                                                            tmp_path):
    settings = shift_settings(pbx_settings, tmp_path, wrapup_seconds=120)
    svc = await start(settings)
    csilla, dorj = Console(svc, "1003"), Console(svc, "1004")
    try:
        await csilla.sign_in()
        await dorj.sign_in()
        await dorj.state("not_ready", "lunch")
        lunch_since = svc.agent_states.status("1004").since
        run = call_customer(sip(pbx), SUPPORT, talk_ms=9000, log_dir=tmp_path)
        talking = await wait_state(svc, "1003", AgentState.ON_CALL)
        await svc.agent_log.flush()
    finally:
        for c in (csilla, dorj):
            await c.close()
        await svc.stop()
    members_before = pbx.cli("queue show support")
    svc = await start(settings)
    try:
        lunch = svc.agent_states.status("1004")
        call = svc.agent_states.status("1003")
        assert (lunch.state, lunch.reason) == (AgentState.NOT_READY, "lunch")
        assert lunch.since == pytest.approx(lunch_since, abs=0.01)
        assert call.state is AgentState.ON_CALL and call.call is not None
        assert call.call.call_id == talking.call.call_id
        assert "paused:lunch" in members_before.replace(" ", "") or "lunch" in members_before
        # The call ends after the restart: the wrap-up begins, the lunch goes on.
        (await run.wait_async(30)).check()
        await wait_state(svc, "1003", AgentState.WRAPUP)
        assert svc.agent_states.status("1004").reason == "lunch"
        await svc.agent_log.flush()
        history = await svc.store.agent_state_history("1004", since=0)
    finally:
        await svc.stop()
    # The record has one lunch, not one per service start.
    assert [h["state"] for h in history] == ["offline", "ready", "not_ready"]


async def test_the_ami_user_may_change_queues_but_not_run_commands(pbx, service):
    """manager.conf keeps least privilege: queue writes (agent class), no CLI."""
    refused = await service.ami.send({"Action": "Command", "Command": "core show version"},
                                     as_list=False)
    assert refused.get("Response") == "Error" and "Permission denied" in refused.get("Message")
    refused = await service.ami.send({"Action": "UpdateConfig", "SrcFilename": "queues.conf",
                                      "DstFilename": "queues.conf"}, as_list=False)
    assert refused.get("Response") == "Error"
    status = await service.pbx.queue_status()
    assert {"sales", "support", "key-accounts"} <= set(status.queues)
    await service.pbx.queue_pause("PJSIP/1003", True, "training")
    await wait_state(service, "1003", AgentState.NOT_READY, reason="training")
