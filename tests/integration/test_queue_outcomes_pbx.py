"""Queue outcomes as they happened, on the real PBX: a phone that answers 486
Busy Here (or 603 Decline) is not re-rung every few seconds; a wrong menu key
and no key are told apart; a caller who waits out the queue is a queue
timeout, not abandoned; calls of a PBX that crashed end when it crashed."""
from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from ivr.calls.events import (AgentRejected, AgentRinging, CallBridged, CallEnded)
from ivr.calls.model import CallResult
from ivr.outcomes import reports
from ivr.testing.phones import AgentPhone, abandon_call, call_customer
from ivr.rejections import REASON
from ivr.server import Service
from tests.integration.conftest import CallLog

pytestmark = pytest.mark.pbx


def sip(pbx) -> str:
    return f"{pbx.sip_host}:{pbx.sip_port}"


async def member(svc: Service, agent: str, queue: str) -> dict:
    replies = await svc.ami.send({"Action": "QueueStatus", "Queue": queue,
                                  "Member": f"PJSIP/{agent}"}, as_list=True)
    found = [dict(r.items()) for r in replies if r.get("Event") == "QueueMember"
             and r.get("Location") == f"PJSIP/{agent}"]
    assert found, f"PJSIP/{agent} is no member of {queue}"
    return found[0]


@pytest.mark.parametrize("code,cause", [(486, 17), (603, 21)])
async def test_a_rejecting_agent_is_paused_not_rung_again_and_ready_after_the_pause(
        pbx, staffed, tmp_path, code, cause):
    svc: Service = staffed
    calls: CallLog = svc.calls_seen
    svc.rejects.pause_seconds = 6.0
    # 1003 is the only support agent whose phone is registered: before, the queue
    # rang it every ~2.3 s (15 times in 43 s), popping a card each time.
    agent = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=300,
                             reject=code).astart()
    try:
        customer = abandon_call(sip(pbx), "5550111", patience_ms=5000, log_dir=tmp_path)
        rejected = await calls.wait_for(lambda e: isinstance(e, AgentRejected), 15, "a rejection")
        await asyncio.sleep(1.0)
        paused = await member(svc, "1003", "support")
        end = await calls.wait_for(lambda e: isinstance(e, CallEnded), 20, "the caller giving up")
        (await customer.wait_async(20)).check()
        # The pause ends by itself after pause_seconds ...
        deadline = time.monotonic() + 10
        while (await member(svc, "1003", "support"))["Paused"] == "1":
            assert time.monotonic() < deadline, "the rejection pause never ended"
            await asyncio.sleep(0.2)
        unpaused_after = time.time() - rejected.at
        # ... and the agent is rung for the next call.
        customer = abandon_call(sip(pbx), "5550111", patience_ms=3000, log_dir=tmp_path,
                                name="next-caller")
        again = await calls.wait_for(lambda e: isinstance(e, AgentRinging)
                                     and e.call.call_id != rejected.call.call_id, 10,
                                     "the agent rung for the next call")
        await calls.wait_for(lambda e: isinstance(e, CallEnded)
                             and e.call.call_id == again.call.call_id, 20, "next call end")
        (await customer.wait_async(20)).check()
    finally:
        await agent.astop()
    call_id = rejected.call.call_id
    rings = [e for e in calls.of_call(call_id) if isinstance(e, AgentRinging)]
    assert len(rings) == 1, f"rung {len(rings)} times in {end.at - rings[0].at:.1f} s"
    assert end.at - rings[0].at > 4.0              # the caller waited on, unrung
    assert (rejected.agent, rejected.cause) == ("1003", cause)
    assert paused["Paused"] == "1" and paused["PausedReason"] == REASON
    assert 5.5 < unpaused_after < 8.0
    assert end.call.result is CallResult.ABANDONED and end.call.agents_rung == ["1003"]
    assert again.agent == "1003"


async def test_wrong_key_and_no_key_are_recorded_apart_and_time_out_in_the_queue(
        pbx, staffed, tmp_path):
    svc: Service = staffed
    calls: CallLog = svc.calls_seen
    # A quick menu and a short queue wait, for this test only (globals of extensions.conf).
    for name, value in (("IVR_WAIT", "1"), ("IVR_TRIES", "2"), ("QUEUE_MAX_WAIT", "3")):
        pbx.cli(f"dialplan set global {name} {value}")
    try:
        runs = {
            "7": call_customer(sip(pbx), "5550100", digit="7", dtmf_delay_ms=800,
                               talk_ms=30000, log_dir=tmp_path, name="wrong-key",
                               caller="36201110001"),
            None: call_customer(sip(pbx), "5550100", talk_ms=30000, log_dir=tmp_path,
                                name="no-key", caller="36201110002"),
            "2": call_customer(sip(pbx), "5550100", digit="2", dtmf_delay_ms=800,
                               talk_ms=30000, log_dir=tmp_path, name="right-key",
                               caller="36201110003"),
        }
        await calls.wait_for(lambda e: sum(isinstance(x, CallEnded) for x in calls.events) >= 3,
                             60, "three calls ending")
        for run in runs.values():
            (await run.wait_async(20)).check()    # the PBX hung up on each (sorry, busy)
    finally:
        for name, value in (("IVR_WAIT", "6"), ("IVR_TRIES", "3"), ("QUEUE_MAX_WAIT", "300")):
            pbx.cli(f"dialplan set global {name} {value}")
    ends = {e.call.customer_num: e.call for e in calls.events if isinstance(e, CallEnded)}
    wrong, none, right = ends["36201110001"], ends["36201110002"], ends["36201110003"]
    assert (wrong.ivr_keys, wrong.ivr_exit, wrong.ivr_choice) == ("7", "wrong_key", "invalid")
    assert (none.ivr_keys, none.ivr_exit, none.ivr_choice) == ("", "no_key", "timeout")
    assert (right.ivr_keys, right.ivr_exit, right.ivr_choice) == ("2", "key", "2")
    for c in (wrong, none, right):
        assert c.queue_result == "TIMEOUT" and c.result is CallResult.QUEUE_TIMEOUT, c
        assert 2.5 < c.queue_wait_seconds < 10.0    # QUEUE_MAX_WAIT, then "sorry, all busy"
    # Recorded as such, counted apart in the reports, and called back.
    await svc.recorder.drain()
    records = {r["customer_num"]: r for r in await svc.store.list_calls()}
    assert (records["36201110001"]["ivr_keys"], records["36201110001"]["ivr_exit"]) == \
        ("7", "wrong_key")
    assert (records["36201110002"]["ivr_keys"], records["36201110002"]["ivr_exit"]) == \
        ("", "no_key")
    assert {r["result"] for r in records.values()} == {"queue_timeout"}
    summary = await reports.summary(svc.store, time.time() - 600, time.time() + 60)
    assert summary["total"]["queue_timeout"] == 3 and summary["total"]["abandoned"] == 0
    callbacks = await svc.store.list_callbacks()
    assert {(cb["number"], cb["reason"]) for cb in callbacks} == \
        {(n, "queue_timeout") for n in ("36201110001", "36201110002", "36201110003")}


async def test_calls_of_a_crashed_pbx_end_when_it_crashed_not_when_it_came_back(
        pbx, staffed, tmp_path):
    svc: Service = staffed
    calls: CallLog = svc.calls_seen
    agent = await AgentPhone(sip(pbx), "1004", log_dir=tmp_path, ring_ms=300).astart()
    customer = None
    try:
        customer = call_customer(sip(pbx), "5550199", talk_ms=60000, log_dir=tmp_path)
        bridged = await calls.wait_for(lambda e: isinstance(e, CallBridged), 20, "the call")
        await asyncio.sleep(2.0)
        crashed_at = time.time()
        os.kill(pbx.pid(), signal.SIGKILL)          # the PBX dies mid-call
        await asyncio.sleep(6.0)                    # ... and stays down a while
        assert not svc.ami.connected
        await asyncio.to_thread(pbx.start, 60)
        end = await calls.wait_for(lambda e: isinstance(e, CallEnded), 30, "the call closed")
        reconnected_at = time.time()
    finally:
        if customer is not None:
            customer.stop(grace=0.5)
        agent.uas.stop(grace=0.5) if agent.uas else None
        await agent.astop()
    c = end.call
    assert c.call_id == bridged.call.call_id
    assert abs(c.ended_at - crashed_at) < 1.0, \
        f"ended {c.ended_at - crashed_at:+.1f} s after the crash (reconnect was " \
        f"{reconnected_at - crashed_at:.1f} s after it)"
    assert 1.5 < c.talk_seconds < 3.5
    assert {l.cause_txt for l in c.legs.values()} == {"the PBX restarted"}
    await svc.recorder.drain()
    record = await svc.store.get_call(c.call_id)
    assert record["state"] == "ended" and abs(record["ended_at"] - crashed_at) < 1.0
    assert record["talk_seconds"] < 3.5
