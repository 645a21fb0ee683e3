"""The tracker on holds, transfers, supervisors listening in, rejecting phones, the
IVR's keys and queue timeouts, replayed from AMI captured on the real Asterisk
(tests/data/*.ami, recorded by `python -m tests.data.record_ami`)."""
from __future__ import annotations

from ivr.ami.message import AmiEvent
from ivr.calls.events import (AgentAnswered, AgentLeft, AgentMissed, AgentMoved, AgentRejected,
                              AgentRinging, CallEnded, CallHeld, CallResumed, CallTransferred,
                              MonitorEnded, MonitorStarted)
from ivr.calls.model import CallResult, CallState
from ivr.calls.tracker import CallTracker
from tests.unit.test_tracker import replay


def ends(events):
    return {e.call.call_id: e.call for e in events if isinstance(e, CallEnded)}


def of(events, cls):
    return [e for e in events if isinstance(e, cls)]


def test_phone_hold_then_attended_transfer_with_replaces_moves_the_call_to_the_second_agent():
    tracker, events = replay("phone_hold_and_attended_transfer")
    assert tracker.calls == {}
    calls = ends(events)
    assert len(calls) == 2                      # the customer's call and the consultation
    customer_call = next(c for c in calls.values() if c.customer_leg() is not None)
    consult = next(c for c in calls.values() if c is not customer_call)
    # Hold: the re-INVITE sendonly and its sendrecv, 2 s apart.
    held, resumed = of(events, CallHeld)[0], of(events, CallResumed)[0]
    assert held.call.call_id == resumed.call.call_id == customer_call.call_id
    assert 1.8 < resumed.at - held.at < 2.6
    assert abs(customer_call.hold_seconds - (resumed.at - held.at)) < 0.01
    # The transfer chain: 1003 consulted 1002 on a call of its own, then transferred.
    [t] = customer_call.transfers
    assert (t.kind, t.by_agent, t.target, t.to_agent, t.consult_call) == \
        ("attended", "1003", "1002", "1002", consult.call_id)
    assert customer_call.agent == "1002" and customer_call.agents_rung == ["1003", "1002"]
    assert customer_call.result is CallResult.ANSWERED
    assert customer_call.talk_seconds > 12          # the customer talked on, to 1002
    # The second agent's line left the consultation for the customer's call: the
    # consultation's card goes away, the customer's call pops for 1002.
    [moved] = of(events, AgentMoved)
    assert (moved.call.call_id, moved.agent, moved.to_call) == \
        (consult.call_id, "1002", customer_call.call_id)
    answered_after = [e for e in of(events, AgentAnswered) if e.at >= moved.at]
    assert [(e.call.call_id, e.agent) for e in answered_after] == \
        [(customer_call.call_id, "1002")]
    # The first agent's part ends at the transfer: wrap-up for 1003 then, not at the end.
    left = [e for e in of(events, AgentLeft) if e.call.call_id == customer_call.call_id]
    assert left[0].agent == "1003" and left[0].at - t.at < 0.5
    # The consultation's own variables (internal) never leak into the customer's call.
    assert customer_call.direction.value == "inbound" and customer_call.project == "acme-support"
    assert consult.direction.value == "internal" and consult.transfers == []


def test_console_attended_transfer_completed_counts_the_consultation_as_hold():
    tracker, events = replay("console_atxfer_completed")
    [call] = ends(events).values()
    held = of(events, CallHeld)[0]
    [t] = call.transfers
    assert (t.kind, t.by_agent, t.target, t.to_agent, t.consult_call) == \
        ("attended", "1003", "1002", "1002", None)
    # The customer was on hold from the Atxfer until the transfer completed.
    assert abs(call.hold_seconds - (t.at - held.at)) < 0.01 and 3.0 < call.hold_seconds < 4.0
    assert call.agent == "1002" and call.agents_rung == ["1003", "1002"]
    rings = [(e.agent, e.call.state) for e in of(events, AgentRinging)]
    assert rings == [("1003", CallState.RINGING), ("1002", CallState.ON_HOLD)]
    assert [e.agent for e in of(events, AgentLeft)][0] == "1003"
    assert of(events, CallTransferred)[0].target == "1002"


def test_console_attended_transfer_cancelled_goes_back_to_the_first_agent():
    tracker, events = replay("console_atxfer_cancelled")
    [call] = ends(events).values()
    assert call.transfers == []
    assert call.agent == "1003", "the consulted agent hung up: the call is the first agent's again"
    resumed = of(events, CallResumed)[0]
    assert abs(call.hold_seconds - (resumed.at - of(events, CallHeld)[0].at)) < 0.01
    assert [e.agent for e in of(events, AgentLeft)][0] == "1002"


def test_supervisor_whisper_is_recorded_with_the_call_and_is_no_party_of_it():
    tracker, events = replay("supervisor_whisper")
    [call] = ends(events).values()
    [started] = of(events, MonitorStarted)
    [ended] = of(events, MonitorEnded)
    [m] = call.monitors
    assert (m.supervisor, m.phone, m.mode, m.agent) == ("boss", "1099", "whisper", "1003")
    assert m.started_at == started.at and m.ended_at == ended.at and m.ended_at <= call.ended_at
    # The supervisor's phone is neither an agent nor a call of its own.
    assert call.agents_rung == ["1003"] and "1099" not in {l.endpoint for l in call.legs.values()}
    assert all(e.call.call_id == call.call_id for e in events)


def test_a_rejecting_phone_is_reported_each_time_it_refuses():
    tracker, events = replay("agent_rejects_busy")
    [call] = ends(events).values()
    rejected = of(events, AgentRejected)
    assert len(rejected) >= 2 and {(e.agent, e.cause) for e in rejected} == {("1003", 17)}
    # Asterisk's queue re-rings a busy phone every few seconds (hence the service's pause).
    assert len(of(events, AgentRinging)) == len(of(events, AgentMissed)) == len(rejected)
    assert call.result is CallResult.ABANDONED and call.agents_rung == ["1003"]


def test_wrong_key_and_no_key_are_told_apart_and_both_time_out_in_the_queue():
    _, wrong = replay("ivr_wrong_key_then_timeout")
    _, none = replay("ivr_no_key_queue_timeout")
    [w] = ends(wrong).values()
    [n] = ends(none).values()
    assert (w.ivr_choice, w.ivr_keys, w.ivr_exit) == ("invalid", "7", "wrong_key")
    assert (n.ivr_choice, n.ivr_keys, n.ivr_exit) == ("timeout", "", "no_key")
    for c in (w, n):
        assert c.queue == "support" and c.queue_result == "TIMEOUT"
        assert c.result is CallResult.QUEUE_TIMEOUT and not c.abandoned


def test_resync_ends_legs_at_the_moment_ami_was_lost_and_adopts_a_monitor():
    events = replay("supervisor_whisper")[1]
    tracker = CallTracker()
    from ivr.ami.capture import read
    from tests.unit.test_tracker import DATA
    raw = read(DATA / "supervisor_whisper.ami")
    started = next(i for i, e in enumerate(raw) if e.name == "BridgeEnter")
    for ev in raw[:started + 2]:
        tracker.feed(ev)
    (call,) = tracker.calls.values()
    agent = next(l for l in call.legs.values() if l.endpoint == "1003")
    # AMI comes back: the agent's line and a monitoring channel spying on it remain.
    tracker.resync_begin()
    tracker.resync_channel(AmiEvent(name="CoreShowChannel", fields={
        "Channel": agent.channel, "Uniqueid": agent.uniqueid, "Linkedid": call.call_id,
        "ChannelStateDesc": "Up", "BridgeId": "b"}, received=500.0))
    tracker.resync_channel(AmiEvent.parse(
        "Event: CoreShowChannel\nChannel: PJSIP/1099-00000009\nUniqueid: monitor-x1\n"
        "Linkedid: monitor-x1\nContext: supervisor-monitor\nExten: barge\nApplication: ChanSpy\n"
        f"ApplicationData: {agent.uniqueid},qESuB\nDuration: 00:00:07\n"
        "ChanVariable: MONITOR_BY=boss", 500.0))
    out = tracker.resync_end(at=400.0, now=500.0)
    customer = call.customer_leg()
    assert customer.ended_at == 400.0, "ended when AMI was lost, not at the reconnect"
    [started] = [e for e in out if isinstance(e, MonitorStarted)]
    assert (started.monitor.mode, started.monitor.supervisor, started.monitor.started_at) == \
        ("barge", "boss", 493.0)
    # Next resync without either: the monitor ends, then the call.
    tracker.resync_begin()
    out = tracker.resync_end(at=600.0)
    assert [e.kind for e in out] == ["MonitorEnded", "CallEnded"]
    assert out[-1].call.monitors[0].ended_at == 600.0 and out[-1].call.ended_at == 600.0
    assert events  # the capture replays cleanly on its own, too


def test_console_consult_of_a_queue_moves_the_call_into_that_queue_when_completed():
    tracker, events = replay("console_atxfer_to_queue")
    [call] = ends(events).values()
    [t] = call.transfers
    assert (t.kind, t.by_agent, t.target, t.to_agent) == ("attended", "1003", "sales", "1002")
    # While the agent consulted, the call stayed support's; from the transfer on it is sales'.
    held = of(events, CallHeld)[0]
    during = [e.call for e in events if held.at <= e.at < t.at]
    assert during and all((c.project, c.queue) == ("acme-support", "support") for c in during)
    after = [e.call for e in events if e.at >= t.at]
    assert all((c.project, c.queue, c.department) == ("acme-sales", "sales", "sales")
               for c in after)
    assert (call.project, call.queue, call.agent) == ("acme-sales", "sales", "1002")
    assert 2.5 < call.hold_seconds < 4.0 and call.result is CallResult.ANSWERED
