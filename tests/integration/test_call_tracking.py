"""Call tracking against the real sandbox Asterisk with real SIP phones (SIPp)."""
from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from ivr.calls.events import (AgentAnswered, AgentMissed, AgentRinging, CallEnded,
                              CallQueued, CustomerAnswered)
from ivr.calls.model import CallResult, CallState, Direction
from ivr.outbound import OutboundCall, place_call
from ivr.server import Service
from tests.integration.conftest import CallLog, with_ami_port
from tests.integration.tcp_proxy import TcpProxy
from ivr.testing.phones import AgentPhone, CustomerPhone, abandon_call, call_customer

pytestmark = pytest.mark.pbx


def sip(pbx) -> str:
    return f"{pbx.sip_host}:{pbx.sip_port}"


def ended(call_id: str | None = None, did: str | None = None):
    return lambda e: isinstance(e, CallEnded) and (call_id is None or e.call.call_id == call_id) \
        and (did is None or e.call.did == did)


async def test_inbound_call_via_ivr_and_queue_to_agent(pbx, service, tmp_path):
    calls: CallLog = service.calls_seen
    agent = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=1500).astart()
    try:
        t0 = time.time()
        # The customer hangs up 7 s after the IVR answers (menu, key, queue, ring, talk).
        customer = call_customer(sip(pbx), "5550100", digit="2", talk_ms=7000, log_dir=tmp_path)
        ringing = await calls.wait_for(lambda e: isinstance(e, AgentRinging), 20, "agent ringing")
        assert ringing.agent == "1003"
        assert ringing.call.project == "acme-support" and ringing.call.queue == "support"
        end = await calls.wait_for(ended(ringing.call.call_id), 30, "call end")
        (await customer.wait_async(30)).check()
    finally:
        await agent.astop()
    c = end.call
    assert c.direction is Direction.INBOUND
    assert (c.did, c.ivr_choice, c.queue, c.department, c.project) == \
        ("5550100", "2", "support", "support", "acme-support")
    assert c.customer_num == "36201234567"
    assert c.agents_rung == ["1003"] and c.agent == "1003"
    assert c.result is CallResult.ANSWERED
    assert t0 <= c.started_at < c.queued_at <= c.agent_ring_at < c.answered_at < c.ended_at
    assert 1.2 < c.answered_at - c.agent_ring_at < 3.0          # the phone rang 1.5 s
    assert 2.5 < c.talk_seconds < 7.0                            # what is left of the 7 s
    assert c.cause == 16                                         # normal clearing
    kinds = calls.kinds(c.call_id)
    assert kinds.index("CallQueued") < kinds.index("AgentRinging") < kinds.index("AgentAnswered") \
        < kinds.index("CallBridged") < kinds.index("CallEnded")


async def test_caller_who_gives_up_in_queue_is_abandoned(pbx, service, tmp_path):
    calls: CallLog = service.calls_seen
    # Agent 1001 rings but never answers; the caller gives up after 6 s.
    agent = await AgentPhone(sip(pbx), "1001", answer=False, log_dir=tmp_path).astart()
    try:
        customer = abandon_call(sip(pbx), "5550111", patience_ms=6000, log_dir=tmp_path)
        end = await calls.wait_for(ended(did="5550111"), 30, "call end")
        (await customer.wait_async(30)).check()
    finally:
        await agent.astop()
    c = end.call
    assert c.result is CallResult.ABANDONED and c.abandoned
    assert c.queue == "support" and c.agent is None and c.answered_at is None
    assert c.agents_rung == ["1001"]
    missed = [e for e in calls.of_call(c.call_id) if isinstance(e, AgentMissed)]
    assert [m.agent for m in missed] == ["1001"], [(m.agent, m.status, m.at - c.started_at) for m in missed]
    assert 4.0 < c.queue_wait_seconds < 8.0


async def test_outbound_call_is_tracked_as_outbound(pbx, pbx_settings, service, tmp_path):
    calls: CallLog = service.calls_seen
    carrier_port = int(pbx.trunk_peer.rsplit(":", 1)[1])
    agent = await AgentPhone(sip(pbx), "1002", log_dir=tmp_path, ring_ms=800).astart()
    customer = await CustomerPhone(log_dir=tmp_path, local_port=carrier_port,
                                   ring_ms=1000, talk_ms=3000).astart()
    try:
        placed = await place_call(service.ami, OutboundCall(
            agent="1002", number="5557777", project="acme-telesales", campaign="autumn"))
        assert placed.answered_by_agent, placed.reason
        end = await calls.wait_for(ended(placed.call_id), 30, "outbound call end")
    finally:
        await customer.astop()
        await agent.astop()
    c = end.call
    assert c.direction is Direction.OUTBOUND
    assert (c.project, c.campaign, c.dialled, c.customer_num) == \
        ("acme-telesales", "autumn", "5557777", "5557777")
    assert c.agent == "1002" and c.result is CallResult.ANSWERED
    assert c.agent_answered_at < c.answered_at < c.ended_at
    kinds = calls.kinds(c.call_id)
    assert kinds.index("AgentRinging") < kinds.index("AgentAnswered") \
        < kinds.index("CustomerAnswered") < kinds.index("CallEnded")


async def test_twenty_concurrent_calls_are_all_tracked(pbx, service, tmp_path):
    calls: CallLog = service.calls_seen
    agent = await AgentPhone(sip(pbx), "1004", log_dir=tmp_path, ring_ms=300).astart()
    try:
        customers = call_customer(sip(pbx), "5550199", calls=20, rate=20, limit=20,
                                  talk_ms=5000, log_dir=tmp_path)
        # All 20 are up at the same time at some point.
        deadline = time.monotonic() + 20
        peak = 0
        while time.monotonic() < deadline:
            live = [c for c in service.tracker.calls.values() if c.state is CallState.BRIDGED]
            peak = max(peak, len(live))
            if peak == 20:
                break
            await asyncio.sleep(0.05)
        (await customers.wait_async(60)).check()
        await calls.wait_for(lambda e: sum(isinstance(x, CallEnded) and x.call.did == "5550199"
                                           for x in calls.events) >= 20, 20, "20 call ends")
    finally:
        await agent.astop()
    ends = [e.call for e in calls.events if isinstance(e, CallEnded) and e.call.did == "5550199"]
    assert peak == 20
    assert len(ends) == 20 and len({c.call_id for c in ends}) == 20
    assert all(c.agent == "1004" and c.result is CallResult.ANSWERED for c in ends)
    assert all(4.0 < c.talk_seconds < 7.0 for c in ends)
    assert service.tracker.calls == {}


async def test_call_survives_ami_connection_cut(pbx, pbx_settings, tmp_path):
    """The AMI line dies mid-call; after the reconnect the call is tracked to its end,
    and a call that ended while AMI was down is closed by the resync."""
    proxy = TcpProxy(pbx_settings.ami.host, pbx_settings.ami.port)
    port = await proxy.start()
    svc = Service(with_ami_port(pbx_settings, "127.0.0.1", port))
    calls = CallLog()
    svc.bus.subscribe(calls)
    await svc.start()
    await svc.ami.wait_connected(10)
    agent = await AgentPhone(sip(pbx), "1004", log_dir=tmp_path, ring_ms=300).astart()
    try:
        long_call = call_customer(sip(pbx), "5550199", talk_ms=9000, log_dir=tmp_path,
                                  name="long")
        short_call = call_customer(sip(pbx), "5550199", talk_ms=3000, log_dir=tmp_path,
                                   name="short")
        await calls.wait_for(lambda e: sum(x.kind == "CallBridged" for x in calls.events) >= 2,
                             15, "two calls bridged")
        ids = {e.call.call_id for e in calls.events if e.kind == "CallBridged"}
        logins = svc.ami.logins
        # Cut the line and keep it down for 4 s: the short call ends meanwhile.
        proxy.accepting = False
        assert proxy.cut() == 1
        await asyncio.sleep(4.0)
        assert not svc.ami.connected
        proxy.accepting = True
        await svc.ami.wait_connected(10)
        assert svc.ami.logins == logins + 1
        (await short_call.wait_async(10)).check()
        (await long_call.wait_async(20)).check()
        await calls.wait_for(lambda e: {x.call.call_id for x in calls.events
                                        if isinstance(x, CallEnded)} >= ids, 20, "both ends")
    finally:
        await agent.astop()
        await svc.stop()
        await proxy.close()
    ends = {e.call.call_id: e.call for e in calls.events if isinstance(e, CallEnded)}
    by_length = sorted((ends[i] for i in ids), key=lambda c: c.ended_at)
    short, long_ = by_length
    # The short call ended during the outage: the resync closed it.
    assert short.legs and any(l.cause_txt == "ended while AMI was disconnected"
                              for l in short.legs.values())
    # The long call was followed across the reconnect to its real hangup.
    assert long_.agent == "1004" and long_.result is CallResult.ANSWERED
    assert long_.cause == 16 and 8.0 < long_.talk_seconds < 11.0
    assert svc.tracker.calls == {}
