"""Hold and attended transfers on the real stack: from a SIP phone (re-INVITE
sendonly/inactive, a consultation call, REFER with Replaces) and from the
console (AMI Atxfer to an agent or a department's queue). The record must
carry the hold time and the transfer chain, and the second agent must get
the customer's call (its card, with the call's script)."""
from __future__ import annotations

import asyncio
import time

import pytest

from ivr.calls.events import (AgentAnswered, AgentLeft, AgentMoved, AgentRinging, CallEnded,
                              CallHeld, CallResumed, CallTransferred)
from ivr.calls.model import CallResult
from ivr.testing.phones import AgentPhone, call_customer
from ivr.server import Service
from ivr.transfers import TransferError
from tests.integration.conftest import CallLog

pytestmark = pytest.mark.pbx


def sip(pbx) -> str:
    return f"{pbx.sip_host}:{pbx.sip_port}"


def first(calls: CallLog, cls, call_id: str, **kw):
    return next(e for e in calls.of_call(call_id) if isinstance(e, cls)
                and all(getattr(e, k) == v for k, v in kw.items()))


async def test_phone_hold_and_attended_transfer_are_recorded_and_the_call_moves(
        pbx, staffed, tmp_path):
    svc: Service = staffed
    calls: CallLog = svc.calls_seen
    anna = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=300).astart()
    bela = await AgentPhone(sip(pbx), "1002", log_dir=tmp_path, ring_ms=500).astart()
    try:
        customer = call_customer(sip(pbx), "5550111", talk_ms=22000, log_dir=tmp_path)
        answered = await calls.wait_for(lambda e: isinstance(e, AgentAnswered), 20, "answer")
        call_id = answered.call.call_id
        await asyncio.sleep(1.0)
        t_hold = time.time()
        await anna.ahold("sendonly")                 # the phone's hold button
        await asyncio.sleep(2.0)
        await anna.aresume()
        t_resumed = time.time()
        await asyncio.sleep(0.5)
        await anna.ahold("inactive")                 # some phones hold with a=inactive
        await asyncio.sleep(1.5)
        await anna.aresume()
        consult = anna.call("1002")                  # the second line: the consultation
        ringing = await calls.wait_for(lambda e: isinstance(e, AgentAnswered) and e.agent == "1002",
                                       15, "the second agent answering the consultation")
        consult_id = ringing.call.call_id
        assert consult_id != call_id
        await asyncio.sleep(1.5)
        await anna.atransfer_attended(consult)       # "transfer": REFER with Replaces
        moved = await calls.wait_for(lambda e: isinstance(e, CallTransferred)
                                     and e.call.call_id == call_id, 10, "the transfer")
        await asyncio.sleep(0.5)
        card = svc.pop.card("1002", call_id)
        card_phase = card.phase if card else None
        consult_card = svc.pop.card("1002", consult_id)
        (await consult.wait_async(15)).check()
        end = await calls.wait_for(lambda e: isinstance(e, CallEnded)
                                   and e.call.call_id == call_id, 30, "the customer's call end")
        (await customer.wait_async(20)).check()
    finally:
        await anna.astop()
        await bela.astop()
    c = end.call
    held = [e for e in calls.of_call(call_id) if isinstance(e, CallHeld)]
    resumed = [e for e in calls.of_call(call_id) if isinstance(e, CallResumed)]
    assert len(held) == len(resumed) == 2
    assert 1.9 < resumed[0].at - held[0].at < 2.6 and abs(held[0].at - t_hold) < 0.5
    assert abs(resumed[0].at - t_resumed) < 0.5
    assert abs(c.hold_seconds - sum(r.at - h.at for h, r in zip(held, resumed))) < 0.01
    assert 3.2 < c.hold_seconds < 4.4
    [t] = c.transfers
    assert (t.kind, t.by_agent, t.target, t.to_agent, t.consult_call) == \
        ("attended", "1003", "1002", "1002", consult_id)
    assert abs(t.at - moved.at) < 0.01
    assert c.agent == "1002" and c.agents_rung == ["1003", "1002"]
    assert c.result is CallResult.ANSWERED and c.project == "acme-support"
    # The first agent's part ended at the transfer; the second agent took the call.
    left = first(calls, AgentLeft, call_id, agent="1003")
    assert left.at - t.at < 1.0
    first(calls, AgentMoved, consult_id, agent="1002")
    assert card is not None and card_phase == "live"
    assert card.script is not None and card.script["id"] == "acme-support"
    assert consult_card is None, "the consultation's card went when it joined the customer's call"
    # The record says the same.
    await svc.recorder.drain()
    record = await svc.store.get_call(call_id)
    assert record["agent"] == "1002" and abs(record["hold_seconds"] - c.hold_seconds) < 0.01
    assert [(x["kind"], x["by_agent"], x["target"], x["to_agent"]) for x in record["transfers"]] \
        == [("attended", "1003", "1002", "1002")]
    consult_record = await svc.store.get_call(consult_id)
    assert consult_record["direction"] == "internal" and consult_record["state"] == "ended"


async def test_console_consult_to_an_agent_completed_and_to_a_queue_cancelled(
        pbx, staffed, tmp_path):
    svc: Service = staffed
    calls: CallLog = svc.calls_seen
    pushed: list[tuple[str, dict]] = []
    svc.transfers.push = lambda login, msg: pushed.append((login, msg))
    csilla = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=300).astart()
    bela = await AgentPhone(sip(pbx), "1002", log_dir=tmp_path, ring_ms=800).astart()
    try:
        # 1: consult agent 1002, then complete: the customer goes to 1002.
        customer = call_customer(sip(pbx), "5550111", talk_ms=14000, log_dir=tmp_path)
        answered = await calls.wait_for(lambda e: isinstance(e, AgentAnswered), 20, "answer")
        first_id = answered.call.call_id
        await asyncio.sleep(1.0)
        with pytest.raises(TransferError) as exc:
            await svc.transfers.consult(first_id, "1003", "9999")
        assert exc.value.status == 400
        with pytest.raises(TransferError):
            await svc.transfers.complete(first_id, "1003")        # nothing to complete yet
        asked = time.time()
        await svc.transfers.consult(first_id, "1003", "1002")
        await calls.wait_for(lambda e: isinstance(e, AgentAnswered) and e.agent == "1002"
                             and e.call.call_id == first_id, 15, "1002 answering the consult")
        card = svc.pop.card("1002", first_id)
        assert card is not None and card.script["id"] == "acme-support"
        await asyncio.sleep(1.5)
        done_at = time.time()
        await svc.transfers.complete(first_id, "1003")
        end1 = await calls.wait_for(lambda e: isinstance(e, CallEnded)
                                    and e.call.call_id == first_id, 30, "first call end")
        (await customer.wait_async(20)).check()

        # 2: consult the sales queue (1002 is a member), then go back to the customer.
        customer = call_customer(sip(pbx), "5550111", talk_ms=12000, log_dir=tmp_path,
                                 name="second")
        answered = await calls.wait_for(lambda e: isinstance(e, AgentAnswered)
                                        and e.call.call_id != first_id and e.agent == "1003",
                                        20, "answer")
        second_id = answered.call.call_id
        await asyncio.sleep(1.0)
        await svc.transfers.consult(second_id, "1003", "sales")
        await calls.wait_for(lambda e: isinstance(e, AgentRinging) and e.agent == "1002"
                             and e.call.call_id == second_id, 15, "the sales queue ringing 1002")
        during = svc.tracker.calls[second_id]
        assert (during.project, during.queue) == ("acme-support", "support")
        await asyncio.sleep(2.0)
        await svc.transfers.cancel(second_id, "1003")
        await calls.wait_for(lambda e: isinstance(e, CallResumed) and e.call.call_id == second_id,
                             10, "back to the customer")
        end2 = await calls.wait_for(lambda e: isinstance(e, CallEnded)
                                    and e.call.call_id == second_id, 30, "second call end")
        (await customer.wait_async(20)).check()
    finally:
        await csilla.astop()
        await bela.astop()
    c1, c2 = end1.call, end2.call
    [t] = c1.transfers
    assert (t.kind, t.by_agent, t.target, t.to_agent) == ("attended", "1003", "1002", "1002")
    assert abs(t.at - done_at) < 1.0
    held = first(calls, CallHeld, first_id)
    assert abs(held.at - asked) < 1.0
    assert abs(c1.hold_seconds - (t.at - held.at)) < 0.01 and c1.agent == "1002"
    assert c2.transfers == [] and c2.agent == "1003" and c2.project == "acme-support"
    assert 1.5 < c2.hold_seconds < 5.0
    states = [(login, m["call_id"], m["state"]) for login, m in pushed]
    assert states[0] == ("1003", first_id, "calling")
    assert ("1003", first_id, "talking") in states and ("1003", first_id, "transferred") in states
    assert ("1003", second_id, "cancelled") in states
    await svc.recorder.drain()
    r1 = await svc.store.get_call(first_id)
    assert r1["transfers"][0]["to_agent"] == "1002" and r1["hold_seconds"] == c1.hold_seconds
