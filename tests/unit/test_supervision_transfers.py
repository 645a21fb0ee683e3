"""Supervisors listening in, console consult transfers and rejection pauses:
their decisions, with a fake AMI (their routes are in
tests/integration/test_supervision_web.py; the real PBX in
tests/integration/test_supervision_pbx.py, test_transfers_pbx.py and
test_queue_outcomes_pbx.py)."""
from __future__ import annotations

import asyncio

import pytest

from ivr.calls.events import (AgentAnswered, AgentRejected, CallEnded, CallResumed,
                              CallTransferred, MonitorEnded, MonitorStarted)
from ivr.calls.model import Call, CallState, Leg, LegRole, Monitor, Transfer
from ivr.config import Secret, SupervisionSettings, User
from ivr.rejections import REASON, RejectPauses
from ivr.supervision import MonitorError, Supervision, agent_is_told, agent_line
from ivr.transfers import ConsoleTransfers, TransferError

BOSS = User("boss", "Sara Supervisor", role="supervisor", phone="1099", secret=Secret("b" * 12))
AGENT = User("1003", "Csilla", secret=Secret("a" * 12))


class FakeAmi:
    def __init__(self, replies=None):
        self.sent: list[dict] = []
        self.originated: list[dict] = []
        self.replies = replies or {}

    async def send(self, action, as_list=None, timeout=10.0):
        self.sent.append(dict(action))
        reply = self.replies.get(action["Action"], {"Response": "Success"})
        return reply(action) if callable(reply) else reply

    async def originate(self, **fields):
        self.originated.append(fields)
        return {"Response": "Success", "Reason": "4"}


def live_call(call_id="c1", agent="1003") -> Call:
    call = Call(call_id=call_id, started_at=100.0, state=CallState.BRIDGED, agent=agent,
                queued_at=101.0)
    call.legs = {
        "u0": Leg("u0", "PJSIP/trunk-0001", call_id, "trunk", LegRole.CUSTOMER, 100.0,
                  answered_at=100.0),
        "u1": Leg("u1", f"PJSIP/{agent}-0002", call_id, agent, LegRole.AGENT, 102.0,
                  answered_at=103.0),
    }
    return call


def test_who_is_told_follows_the_policy():
    assert [agent_is_told("always", m) for m in ("listen", "whisper", "barge")] == [True] * 3
    assert [agent_is_told("when_heard", m) for m in ("listen", "whisper", "barge")] == \
        [False, True, True]
    assert [agent_is_told("never", m) for m in ("listen", "whisper", "barge")] == [False] * 3


async def test_a_supervisor_phone_is_sent_to_spy_on_the_agents_line():
    ami, calls = FakeAmi(), {"c1": live_call()}
    sup = Supervision(lambda pbx: ami, SupervisionSettings(), {"boss": BOSS}, lambda *a: None,
                      lambda *a: None, calls.get)
    request = await sup.start("c1", BOSS, "barge")
    await asyncio.sleep(0)
    [o] = ami.originated
    assert o["Channel"] == "PJSIP/1099" and o["Context"] == "supervisor-monitor"
    assert o["Exten"] == "barge" and o["ChannelId"] == request
    assert request.startswith("monitor-")
    assert o["Variable"] == ["MONITOR_TARGET=u1", "MONITOR_BY=boss"]
    with pytest.raises(MonitorError) as exc:      # one line at a time per supervisor
        await sup.start("c1", BOSS, "listen")
    assert exc.value.status == 409
    for who, call_id, mode, status in ((AGENT, "c1", "listen", 403), (BOSS, "x", "listen", 404),
                                       (BOSS, "c1", "shout", 400)):
        with pytest.raises(MonitorError) as exc:
            await sup.start(call_id, who, mode)
        assert exc.value.status == status
    ringing = live_call("c2")
    ringing.legs["u1"].answered_at = None
    calls["c2"] = ringing
    assert agent_line(ringing) is None


@pytest.mark.parametrize("policy,told", [("always", True), ("when_heard", False), ("never", False)])
def test_the_agent_console_hears_of_a_listener_as_the_policy_says(policy, told):
    pushed = []
    sup = Supervision(lambda pbx, ami=FakeAmi(): ami, SupervisionSettings(tell_agent=policy), {"boss": BOSS},
                      lambda login, m: pushed.append((login, m)), lambda *a: None,
                      lambda cid: None)
    call = live_call()
    m = Monitor("boss", "1099", "listen", "1003", 110.0, spyer="monitor-1")
    sup.on_call_event(MonitorStarted(call=call, at=110.0, monitor=m))
    assert bool(sup.notices_for("1003")) == told
    sup.on_call_event(MonitorEnded(call=call, at=120.0, monitor=m))
    assert sup.notices_for("1003") == []
    if told:
        assert [(l, x["active"], x["supervisor"]) for l, x in pushed] == \
            [("1003", True, "Sara Supervisor"), ("1003", False, "Sara Supervisor")]
    else:
        assert pushed == []


async def test_console_consult_asks_for_an_attended_transfer_and_follows_it():
    ami, pushed = FakeAmi(), []
    call = live_call()

    async def departments():
        return ["sales", "support"]
    tr = ConsoleTransfers(lambda pbx: ami, {"c1": call}.get, lambda: ["1002", "1003"], departments,
                          lambda login, m: pushed.append(m["state"]))
    with pytest.raises(TransferError) as exc:
        await tr.consult("c1", "1003", "1003")            # not to oneself
    assert exc.value.status == 400
    with pytest.raises(TransferError) as exc:
        await tr.consult("c1", "1001", "1002")            # not this agent's call
    assert exc.value.status == 409
    await tr.consult("c1", "1003", "sales")
    setvar, atxfer = ami.sent
    assert (setvar["Action"], setvar["Variable"], setvar["Value"]) == \
        ("Setvar", "__CONSULT_QUEUE", "sales")
    assert (atxfer["Action"], atxfer["Channel"], atxfer["Exten"], atxfer["Context"]) == \
        ("Atxfer", "PJSIP/1003-0002", "00", "console-transfer")
    assert atxfer["Async"] == "false"      # panoramisk drops the link on "queued" without it
    with pytest.raises(TransferError):
        await tr.consult("c1", "1003", "1002")            # one consultation at a time
    target = Leg("u5", "PJSIP/1002-0005", "c1", "1002", LegRole.AGENT, 105.0, answered_at=106.0)
    tr.on_call_event(AgentAnswered(call=call, at=106.0, agent="1002", leg=target))
    await tr.complete("c1", "1003")
    assert ami.sent[-1] == {"Action": "Hangup", "Channel": "PJSIP/1003-0002", "Async": "false"}
    call.transfers.append(Transfer(107.0, "attended", "1003", "sales", "1002"))
    tr.on_call_event(CallTransferred(call=call, at=107.0, how="attended", target="sales"))
    assert pushed == ["calling", "talking", "transferred"] and tr.notices_for("1003") == []
    # A refused Atxfer (e.g. no transfer feature on the channel) is a clear 502.
    ami.replies["Atxfer"] = {"Response": "Error", "Message": "No attended transfer feature"}
    with pytest.raises(TransferError) as exc:
        await tr.consult("c1", "1003", "1002")
    assert exc.value.status == 502 and tr.consult_of("c1", "1003") is None
    ami.replies.pop("Atxfer")
    await tr.consult("c1", "1003", "1002")
    tr.on_call_event(CallResumed(call=call, at=110.0))
    assert pushed[-1] == "cancelled"
    tr.on_call_event(CallEnded(call=call, at=111.0))


async def test_a_rejecting_agent_is_paused_on_queue_calls_only_and_only_our_pause_is_ended():
    status = {"Paused": "1", "PausedReason": REASON}

    def queue_status(action):
        return [{"Event": "QueueMember", "Location": "PJSIP/1003", **status}]
    ami = FakeAmi({"QueueStatus": queue_status})
    pauses = RejectPauses(lambda agent: ami, pause_seconds=0.2)
    direct = live_call()
    direct.queued_at = None
    leg = direct.legs["u1"]
    pauses.on_call_event(AgentRejected(call=direct, at=1.0, agent="1003", leg=leg, cause=17))
    await asyncio.sleep(0.05)
    assert ami.sent == [], "a direct call's caller hears busy: nobody re-rings"
    queued = live_call()
    pauses.on_call_event(AgentRejected(call=queued, at=1.0, agent="1003", leg=leg, cause=17))
    pauses.on_call_event(AgentRejected(call=queued, at=1.1, agent="1003", leg=leg, cause=17))
    await asyncio.sleep(0.05)
    assert ami.sent == [{"Action": "QueuePause", "Interface": "PJSIP/1003", "Paused": "true",
                         "Reason": REASON}]
    await asyncio.sleep(0.3)
    assert ami.sent[-1] == {"Action": "QueuePause", "Interface": "PJSIP/1003", "Paused": "false"}
    # The agent went to lunch during the pause: that pause is not ours to end.
    ami.sent.clear()
    status["PausedReason"] = "lunch"
    pauses.on_call_event(AgentRejected(call=queued, at=5.0, agent="1003", leg=leg, cause=21))
    await asyncio.sleep(0.4)
    assert [a.get("Paused") for a in ami.sent if a["Action"] == "QueuePause"] == ["true"]
    await pauses.close()
