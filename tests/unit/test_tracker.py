"""The tracker on AMI traffic captured from the real Asterisk (tests/data/*.ami)."""
from __future__ import annotations

from pathlib import Path

import pytest

from ivr.ami.capture import read
from ivr.ami.message import AmiEvent
from ivr.calls.events import (AgentAnswered, AgentRinging, CallEnded, CallQueued,
                              CallStarted, CustomerAnswered)
from ivr.calls.model import CallResult, CallState, Direction
from ivr.calls.tracker import CallTracker, endpoint_of

DATA = Path(__file__).parents[1] / "data"


def replay(name: str, tracker: CallTracker | None = None):
    tracker = tracker or CallTracker()
    events = []
    for ev in read(DATA / f"{name}.ami"):
        events += tracker.feed(ev)
    return tracker, events


def only(events, cls):
    found = [e for e in events if isinstance(e, cls)]
    assert len(found) == 1, [e.kind for e in events]
    return found[0]


def test_endpoint_of_channel_names():
    assert endpoint_of("PJSIP/1001-0000002a") == "1001"
    assert endpoint_of("PJSIP/trunk-00000000") == "trunk"
    assert endpoint_of("PJSIP/my-phone-00000003") == "my-phone"


def test_inbound_call_through_ivr_and_queue_is_tracked_to_its_end():
    tracker, events = replay("inbound_ivr_support_answered")
    assert tracker.calls == {}, "an ended call must not stay in memory"
    kinds = [e.kind for e in events]
    assert kinds.index("CallStarted") < kinds.index("CallQueued") < kinds.index("AgentRinging") \
        < kinds.index("AgentAnswered") < kinds.index("CallBridged") < kinds.index("CallEnded")
    ringing = only(events, AgentRinging)
    assert ringing.agent == "1003"
    assert ringing.call.project == "acme-support" and ringing.call.did == "5550100"
    call = only(events, CallEnded).call
    assert call.direction is Direction.INBOUND
    assert (call.did, call.ivr_choice, call.queue, call.department) == \
        ("5550100", "2", "support", "support")
    assert call.customer_num == "36201234567"
    assert call.agents_rung == ["1003"] and call.agent == "1003"
    assert call.result is CallResult.ANSWERED and call.state is CallState.ENDED
    assert call.started_at < call.queued_at <= call.agent_ring_at < call.answered_at < call.ended_at
    # The agent phone rings ~1 s (ring_ms=1000) before answering.
    assert 0.8 < call.answered_at - call.agent_ring_at < 2.0
    assert call.cause == 16 and call.cause_txt == "Normal Clearing"
    assert len(call.legs) == 2


def test_abandoned_queue_call_is_abandoned():
    tracker, events = replay("inbound_abandoned_in_queue")
    call = only(events, CallEnded).call
    assert only(events, CallQueued).queue == "support"
    assert call.result is CallResult.ABANDONED
    assert call.agent is None and call.answered_at is None
    assert call.queue_wait_seconds is not None and call.queue_wait_seconds > 2


def test_outbound_campaign_call_is_outbound_with_campaign_and_dialled_number():
    tracker, events = replay("outbound_campaign_answered")
    ring = only(events, AgentRinging)
    assert ring.agent == "1002"
    assert only(events, AgentAnswered).agent == "1002"
    only(events, CustomerAnswered)
    call = only(events, CallEnded).call
    assert call.direction is Direction.OUTBOUND
    assert (call.project, call.campaign, call.dialled, call.customer_num) == \
        ("acme-telesales", "spring", "5551234", "5551234")
    assert call.call_id.startswith("out-")
    assert call.agent_answered_at < call.answered_at
    assert call.result is CallResult.ANSWERED


def test_direct_line_call_ended_by_agent():
    _, events = replay("inbound_direct_agent_hangs_up")
    call = only(events, CallEnded).call
    # The agent hung up first: their part ended before the call did.
    kinds = [e.kind for e in events]
    assert kinds.index("AgentLeft") < kinds.index("CallEnded")
    assert call.direction is Direction.INBOUND and call.did == "5550199"
    assert call.agent == "1004" and call.project == "acme-key-accounts"
    assert call.queue == "" and call.result is CallResult.ANSWERED


def test_events_missing_fields_do_not_crash():
    tracker = CallTracker()
    for name in ("DialBegin", "DialEnd", "Hangup", "Newstate", "BridgeEnter", "QueueCallerJoin",
                 "Hold", "BlindTransfer", "AttendedTransfer", "AgentCalled"):
        assert tracker.feed(AmiEvent(name=name, fields={"Event": name})) == []
    assert tracker.calls == {}


def test_late_events_of_an_ended_leg_are_dropped():
    tracker, _ = replay("inbound_direct_agent_hangs_up")
    last_hangup = [e for e in read(DATA / "inbound_direct_agent_hangs_up.ami")
                   if e.name == "Hangup"][-1]
    assert tracker.feed(last_hangup) == []
    assert tracker.calls == {}


def test_tap_channels_are_ignored():
    tracker = CallTracker()
    ev = AmiEvent(name="Newchannel", fields={
        "Event": "Newchannel", "Channel": "AudioSocket/127.0.0.1:9092-1f2e", "Uniqueid": "9.1",
        "Linkedid": "9.1"})
    assert tracker.feed(ev) == [] and tracker.calls == {}


def test_resync_adopts_live_calls_and_ends_vanished_ones():
    events = read(DATA / "inbound_ivr_support_answered.ami")
    bridged = max(i for i, e in enumerate(events) if e.name == "BridgeEnter")
    tracker = CallTracker()
    for ev in events[:bridged + 1]:
        tracker.feed(ev)
    (call,) = tracker.calls.values()
    # AMI drops; on reconnect Asterisk lists only the agent's leg (the customer
    # hung up meanwhile, and we missed its Hangup).
    agent_leg = next(l for l in call.legs.values() if l.endpoint == "1003")
    tracker.resync_begin()
    tracker.resync_channel(AmiEvent(name="CoreShowChannel", fields={
        "Event": "CoreShowChannel", "Channel": agent_leg.channel, "Uniqueid": agent_leg.uniqueid,
        "Linkedid": call.call_id, "ChannelStateDesc": "Up", "BridgeId": "b1"}, received=1.0))
    out = tracker.resync_end(at=2.0)
    assert out == [] and call.call_id in tracker.calls
    customer = call.customer_leg()
    assert customer.ended_at == 2.0 and customer.cause_txt == "ended while AMI was disconnected"
    # A second resync without the agent's leg ends the call.
    tracker.resync_begin()
    out = tracker.resync_end(at=3.0)
    assert [e.kind for e in out] == ["CallEnded"] and tracker.calls == {}


def test_resync_after_service_restart_adopts_an_answered_call():
    tracker = CallTracker()
    tracker.resync_begin()
    common = {"Event": "CoreShowChannel", "Linkedid": "100.1", "ChannelStateDesc": "Up",
              "BridgeId": "b1"}
    out = tracker.resync_channel(AmiEvent.parse(
        "Event: CoreShowChannel\nChannel: PJSIP/trunk-00000001\nUniqueid: 100.1\nLinkedid: 100.1\n"
        "ChannelStateDesc: Up\nCallerIDNum: 3612345\nChanVariable: PROJECT=acme-sales\n"
        "ChanVariable: CALL_DIRECTION=inbound\nChanVariable: DID=5550100", 10.0))
    out += tracker.resync_channel(AmiEvent(name="CoreShowChannel", fields={
        **common, "Channel": "PJSIP/1002-00000002", "Uniqueid": "100.2"}, received=10.0))
    tracker.resync_end(10.0)
    call = tracker.calls["100.1"]
    assert isinstance(out[0], CallStarted)
    answered = [e for e in out if isinstance(e, AgentAnswered)]
    assert answered and answered[0].agent == "1002"
    assert call.project == "acme-sales" and call.direction is Direction.INBOUND
    assert call.customer_num == "3612345"


async def test_a_resync_adopts_each_call_s_channels_in_the_order_they_were_made():
    """Asterisk lists channels in any order: the agent's first would replay the answer
    before the caller is known (another script, no customer tap)."""
    from ivr.resync import reconcile_calls

    caller = AmiEvent.parse(
        "Event: CoreShowChannel\nChannel: PJSIP/trunk-00000001\nUniqueid: east-100.9\n"
        "Linkedid: east-100.9\nChannelStateDesc: Up\nCallerIDNum: 821012345678\n"
        "ChanVariable: PROJECT=acme-support\nChanVariable: CALL_DIRECTION=inbound", 10.0)
    agent = AmiEvent(name="CoreShowChannel", fields={
        "Event": "CoreShowChannel", "Linkedid": "east-100.9", "ChannelStateDesc": "Up",
        "BridgeId": "b1", "Channel": "PJSIP/1003-00000002", "Uniqueid": "east-100.10"},
        received=10.0)

    class Ami:
        logins, lost_at, pbx_started_at = 1, None, None

        async def channels(self):
            return [agent, caller]

    seen = []
    tracker = CallTracker(on_event=seen.append)
    await reconcile_calls(tracker, Ami())
    [answered] = [e for e in seen if isinstance(e, AgentAnswered)]
    assert answered.call.customer_num == "821012345678"
    assert answered.call.customer_leg() is not None


@pytest.mark.parametrize("name", ["inbound_ivr_support_answered", "inbound_abandoned_in_queue",
                                  "outbound_campaign_answered", "inbound_direct_agent_hangs_up"])
def test_each_capture_yields_exactly_one_call(name):
    _, events = replay(name)
    assert len({e.call.call_id for e in events}) == 1
    assert sum(isinstance(e, CallStarted) for e in events) == 1
    assert sum(isinstance(e, CallEnded) for e in events) == 1


def test_events_for_unknown_legs_leave_nothing_behind():
    tracker = CallTracker()
    for i in range(50):
        for name in ("Hangup", "BridgeLeave"):
            tracker.feed(AmiEvent(name=name, fields={"Event": name, "Channel": f"PJSIP/x-{i}",
                                                     "Uniqueid": f"7.{i}", "Linkedid": f"7.{i}"}))
    assert tracker.calls == {} and tracker._touched == {} and tracker._leg_call == {}
