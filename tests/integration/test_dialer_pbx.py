"""The dialers on the real stack: SIPp phones through the sandbox Asterisk,
the service wired as ivr/server.py would wire it (built here: the fixture
composes Service with the dialers and the report routes), on SQLite and
PostgreSQL. Agents are offered calls only when ready (their state, from the
PBX's queues) and of a group serving the call's project.

- An abandoned queue call lands in the callback list and is called back when
  due: the agent's phone answers, then the customer's; the callback script
  pops on the agent's console.
- A campaign of 10 numbers (2 on the do-not-call list) is dialled for 3
  agents with at most 2 calls at once (measured from the tracker), the listed
  numbers never ring, and the CSV export of the calls matches what was placed.
"""
from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import re
import time

import aiohttp
import pytest

from ivr.calls.events import AgentRinging, CallEnded
from ivr.config import (AgentGroup, GroupMember, Settings, ShiftSettings, StoreSettings,
                        WebSettings)
from ivr.dialer import AgentPool, CallbackDialer, CampaignDialer, NumberGuard, busy_agents
from ivr.testing.phones import AgentPhone, CustomerPhone, abandon_call
from ivr.server import Service
from ivr.web import view
from ivr.web.campaigns import add_campaign_routes
from ivr.web.reports import add_report_routes
from tests.conftest import REPO, free_port, reset_queues
from tests.e2e.conftest import console_users
from tests.integration.conftest import CallLog, sign_in_agents, wait_until
from tests.store_fixtures import postgres_cluster, store_url  # noqa: F401

pytestmark = pytest.mark.pbx

GROUPS = (AgentGroup("support", ("acme-support",), ("support",), (GroupMember("1003"),)),
          AgentGroup("telesales", ("acme-telesales",), ("sales",),
                     (GroupMember("1001"), GroupMember("1002"), GroupMember("1003"))))


def sip(pbx) -> str:
    return f"{pbx.sip_host}:{pbx.sip_port}"


def wire_dialers(svc: Service, **dialer_kw) -> None:
    """What Service does, with the dialers' timings shortened for a test and
    without the console-open condition (no browsers here): one agent pool of
    the ready agents of the project's groups and one number guard for both
    dialers, the dialers hearing the bus, the report routes on the console,
    and the DNC hook on the wrap-up."""
    pool = AgentPool(svc.agent_states.ready_agents,
                     lambda a: a in busy_agents(svc.tracker.calls.values()),
                     penalty_of=svc.agent_states.penalty, after_call_gap=0.5)
    guard = NumberGuard(lambda: [c.customer_num for c in svc.tracker.calls.values()])
    svc.callback_dialer = CallbackDialer(svc.store, svc.ami, agents=pool, guard=guard,
                                         **dialer_kw)
    svc.campaign_dialer = CampaignDialer(svc.store, svc.ami, agents=pool, guard=guard,
                                         **dialer_kw)
    svc.bus.subscribe(svc.callback_dialer.on_call_event)
    svc.bus.subscribe(svc.campaign_dialer.on_call_event)
    build = svc.console.build

    def build_with_reports():
        app = build()
        add_report_routes(app, svc.store, svc.console._user)
        add_campaign_routes(app, svc.store, svc.console._user,
                            on_campaigns_changed=svc.campaign_dialer.wake)
        return app
    svc.console.build = build_with_reports


@pytest.fixture
async def dialing_service(pbx, pbx_settings: Settings, store_url: str, tmp_path):
    settings = dataclasses.replace(
        pbx_settings, web=WebSettings(host="127.0.0.1", port=free_port()),
        store=StoreSettings(url=store_url), scripts=str(REPO / "scripts"),
        customers=str(REPO / "scripts" / "customers.csv"), users=console_users(),
        groups=GROUPS, shift=ShiftSettings(wrapup_seconds=1.0))
    reset_queues(pbx)
    svc = Service(settings)
    svc.calls_seen = CallLog()
    svc.bus.subscribe(svc.calls_seen)
    wire_dialers(svc, interval=0.3, ring_seconds=15, agent_retry=3.0)
    await svc.start()
    await svc.ami.wait_connected(15)
    await svc.callback_dialer.start()
    await svc.campaign_dialer.start()
    yield svc
    await svc.campaign_dialer.stop()
    await svc.callback_dialer.stop()
    await svc.stop()


async def supervisor_session(svc: Service) -> aiohttp.ClientSession:
    """Signed in as the supervisor, as the console page is: the session cookie,
    and the console's own Origin on every request (uploads: X-Requested-With)."""
    boss = svc.settings.user("boss")
    s = aiohttp.ClientSession(svc.web_url, cookie_jar=aiohttp.CookieJar(unsafe=True),
                              headers={"Origin": svc.web_url, "X-Requested-With": "ivr"})
    r = await s.post("/api/login", json={"login": "boss", "secret": str(boss.secret)})
    assert r.status == 200
    return s


async def campaign_finished(svc: Service, name: str, timeout: float) -> dict:
    """The campaign once no contact is pending or being dialled."""
    async def finished():
        c = await svc.store.get_campaign(name)
        return c if c["contacts"]["pending"] + c["contacts"]["dialling"] == 0 else None
    return await wait_until(finished, timeout, f"campaign {name} finished", every=0.5)


async def test_abandoned_call_is_called_back_when_due_with_its_script(
        pbx, dialing_service, tmp_path):
    svc, calls = dialing_service, dialing_service.calls_seen
    svc.recorder.callback_delay = 4.0       # due 4 s after the caller gave up
    # Nobody answers the support queue: the caller gives up after 4 s.
    caller = abandon_call(sip(pbx), "5550111", patience_ms=4000, log_dir=tmp_path)
    gave_up = await calls.wait_for(lambda e: isinstance(e, CallEnded)
                                   and e.call.did == "5550111", 20, "abandoned call")
    (await caller.wait_async(20)).check()
    assert gave_up.call.result.value == "abandoned"
    assert svc.agent_states.ready_agents("acme-support") == []    # nobody signed in yet

    async def listed():
        return await svc.store.list_callbacks(status="pending")
    [cb] = await wait_until(listed, 10, "callback listed")
    assert (cb["number"], cb["project"], cb["reason"], cb["agent"], cb["call_id"]) == \
        ("36201234567", "acme-support", "abandoned", None, gave_up.call.call_id)
    carrier_port = int(pbx.trunk_peer.rsplit(":", 1)[1])
    agent = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=500).astart()
    customer = await CustomerPhone(log_dir=tmp_path, local_port=carrier_port, ring_ms=500,
                                   talk_ms=3000).astart()
    await sign_in_agents(svc, "1003")
    try:
        ringing = await calls.wait_for(lambda e: isinstance(e, AgentRinging)
                                       and e.call.campaign == "callback", 20, "callback rings")
        assert ringing.at >= cb["due_at"] - 0.5, "placed before it was due"
        assert ringing.agent == "1003"
        card = svc.pop.card("1003", ringing.call.call_id)
        assert card is not None and card.script is not None
        assert card.script["id"] == "acme-callback"
        card_json = view.card_json(card)
        assert card_json["customer_number"] == "36201234567"
        assert card_json["customer_name"] == "Eszter Szabo"    # from the customer list
        assert "calling you back" in str(card.script["steps"])
        end = await calls.wait_for(lambda e: isinstance(e, CallEnded)
                                   and e.call.call_id == ringing.call.call_id, 30, "callback end")
    finally:
        await customer.astop()
        await agent.astop()
    assert end.call.result.value == "answered" and end.call.agent == "1003"

    async def done():
        got = await svc.store.get_callback(cb["id"])
        return got if got["status"] == "done" else None
    got = await wait_until(done, 10, "callback done")
    assert (got["attempts"], got["last_result"]) == (1, "answered")
    assert [(h["status"], h["result"], h["call_id"]) for h in got["history"]] == \
        [("done", "answered", end.call.call_id)]
    await svc.recorder.drain()
    record = await svc.store.get_call(end.call.call_id)
    assert (record["direction"], record["project"], record["campaign"], record["script_id"],
            record["result"], record["agent"], record["customer_num"]) == \
        ("outbound", "acme-support", "callback", "acme-callback", "answered", "1003",
         "36201234567")
    # The supervisor's figures count the callback as done and nothing as due.
    session = await supervisor_session(svc)
    try:
        r = await session.get("/api/reports/summary", params={"since": str(time.time() - 600),
                                                              "until": str(time.time() + 60)})
        figures = await r.json()
    finally:
        await session.close()
    assert figures["total"]["callbacks"]["due"] == 0
    assert figures["total"]["abandoned"] == 1 and figures["total"]["answered"] == 1


async def test_campaign_is_paced_skips_dnc_and_exports_what_was_placed(
        pbx, dialing_service, tmp_path):
    svc, calls = dialing_service, dialing_service.calls_seen
    numbers = [f"555700{i}" for i in range(1, 10)] + ["5557010"]
    listed = {"5557003", "5557008"}
    carrier_port = int(pbx.trunk_peer.rsplit(":", 1)[1])
    phones = [await AgentPhone(sip(pbx), ext, log_dir=tmp_path, ring_ms=300).astart()
              for ext in ("1001", "1002", "1003")]
    customer = await CustomerPhone(log_dir=tmp_path, local_port=carrier_port, ring_ms=400,
                                   talk_ms=1500).astart()
    await sign_in_agents(svc, "1001", "1002", "1003")
    session = await supervisor_session(svc)
    peak, per_number, stop = [0], {}, asyncio.Event()

    async def watch_tracker():
        while not stop.is_set():
            live = [c for c in svc.tracker.calls.values() if c.campaign == "acme-telesales"]
            peak[0] = max(peak[0], len(live))
            for n in {c.customer_num for c in live}:
                per_number[n] = max(per_number.get(n, 0),
                                    sum(c.customer_num == n for c in live))
            await asyncio.sleep(0.02)

    watcher = asyncio.ensure_future(watch_tracker())
    started = time.time()
    try:
        for n in sorted(listed):
            r = await session.post("/api/dnc", json={"number": n, "reason": "asked"})
            assert r.status == 200
        body = "number,name\n" + "".join(f"{n},Customer {n[-2:]}\n" for n in numbers)
        r = await session.post("/api/campaigns", data=body, headers={"Content-Type": "text/csv"},
                               params={"name": "acme-telesales", "project": "acme-telesales",
                                       "max_in_progress": "2", "max_per_minute": "60",
                                       "hours_start": "00:00", "hours_end": "24:00",
                                       "days": "daily", "retry_after": "5"})
        assert r.status == 201, await r.text()
        assert (await r.json())["dnc"] == 2

        campaign = await campaign_finished(svc, "acme-telesales", 120)
        await svc.campaign_dialer.drain()
        await svc.recorder.drain()
    finally:
        stop.set()
        await watcher
        await customer.astop()
        for phone in phones:
            await phone.astop()
    assert campaign["contacts"]["done"] == 8 and campaign["contacts"]["dnc"] == 2
    assert peak[0] == 2, f"at most 2 campaign calls at once, saw a peak of {peak[0]}"
    assert svc.campaign_dialer.pacers["acme-telesales"].peak == 2
    assert max(per_number.values()) == 1
    # What reached the carrier: each allowed number once, the listed ones never.
    invited = re.findall(r"^INVITE sip:([0-9]+)@", customer.uas.messages(), re.M)
    assert sorted(invited) == sorted(set(numbers) - listed)
    placed = {call_id: number for call_id, number, _ in svc.campaign_dialer.placed_calls}
    assert sorted(placed.values()) == sorted(set(numbers) - listed)
    ends = {e.call.call_id: e.call for e in calls.events if isinstance(e, CallEnded)}
    assert all(ends[c].result.value == "answered" for c in placed)
    # The CSV export of the calls of the period is exactly what was placed.
    try:
        r = await session.get("/api/calls.csv", params={"since": str(started - 5),
                                                        "until": str(time.time() + 5)})
        assert r.status == 200
        rows = list(csv.DictReader(io.StringIO(await r.text())))
    finally:
        await session.close()
    assert {row["call_id"]: row["dialled"] for row in rows} == placed
    for row in rows:
        assert (row["direction"], row["project"], row["campaign"], row["result"],
                row["script_id"]) == ("outbound", "acme-telesales", "acme-telesales",
                                      "answered", "acme-telesales")
        assert row["customer_num"] == row["dialled"] and row["agent"] in ("1001", "1002", "1003")
        assert float(row["talk_seconds"]) > 0.5
    assert sorted(row["started_at"] for row in rows) == [row["started_at"] for row in rows]


async def test_campaign_calls_only_ready_agents_of_the_projects_group(pbx, dialing_service,
                                                                      tmp_path):
    """A support campaign: the sales agents (ready all along) are never offered
    a call; support's only agent is not dialled while on lunch, then takes
    every call once ready."""
    svc, calls = dialing_service, dialing_service.calls_seen
    carrier_port = int(pbx.trunk_peer.rsplit(":", 1)[1])
    phones = [await AgentPhone(sip(pbx), ext, log_dir=tmp_path, ring_ms=300).astart()
              for ext in ("1001", "1002", "1003")]
    customer = await CustomerPhone(log_dir=tmp_path, local_port=carrier_port, ring_ms=400,
                                   talk_ms=1500).astart()
    await sign_in_agents(svc, "1001", "1002", "1003")
    await svc.agent_states.set_state("1003", "not_ready", "lunch", by="1003")
    session = await supervisor_session(svc)
    numbers = ["5558001", "5558002", "5558003"]
    try:
        body = "number,name\n" + "".join(f"{n},Customer {n[-1]}\n" for n in numbers)
        r = await session.post("/api/campaigns", data=body, headers={"Content-Type": "text/csv"},
                               params={"name": "support-renewals", "project": "acme-support",
                                       "max_in_progress": "2", "max_per_minute": "60",
                                       "hours_start": "00:00", "hours_end": "24:00",
                                       "days": "daily", "retry_after": "5"})
        assert r.status == 201, await r.text()
        # Lunch: nothing is dialled, although two sales agents are ready.
        await asyncio.sleep(4.0)
        assert svc.agent_states.ready_agents("acme-telesales") == ["1001", "1002"]
        assert svc.campaign_dialer.placed_calls == []
        assert not [e for e in calls.events if isinstance(e, AgentRinging)]
        await svc.agent_states.set_state("1003", "ready", by="1003")

        campaign = await campaign_finished(svc, "support-renewals", 60)
        await svc.campaign_dialer.drain()
    finally:
        await session.close()
        await customer.astop()
        for phone in phones:
            await phone.astop()
    assert campaign["contacts"]["done"] == 3
    rung = [e.agent for e in calls.events if isinstance(e, AgentRinging)
            and e.call.campaign == "support-renewals"]
    assert rung == ["1003"] * 3, rung
    assert {agent for _, _, agent in svc.campaign_dialer.placed_calls} == {"1003"}
