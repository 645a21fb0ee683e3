"""The outcome recorder on a fake store: order per call, isolation between
calls, retries, coalescing, callbacks, closing."""
from __future__ import annotations

import asyncio
import logging

from ivr.calls.events import (AgentAnswered, CallEnded, CallHeld, CallQueued, CallStarted)
from ivr.calls.model import Call, Leg, LegRole
from ivr.outcomes import OutcomeRecorder
from tests.store_fixtures import T0, make_call


class FakeStore:
    """Logs writes; may be slow or fail for chosen calls."""

    def __init__(self) -> None:
        self.writes: list[tuple] = []
        self.delay: dict[str, float] = {}
        self.fail: dict[str, int] = {}        # call_id -> how many writes fail first

    async def _maybe_fail(self, call_id: str) -> None:
        await asyncio.sleep(self.delay.get(call_id, 0))
        if self.fail.get(call_id):
            self.fail[call_id] -= 1
            raise ConnectionError("database gone")

    async def upsert_call(self, call: Call, script_id=None, script_version=None) -> None:
        await self._maybe_fail(call.call_id)
        state = "ended" if call.state.value == "ended" else "live"
        self.writes.append(("upsert", call.call_id, state, script_id, script_version))

    async def add_callback(self, call_id, number, project, due_at, agent=None, reason="") -> int:
        await self._maybe_fail(call_id)
        self.writes.append(("callback", call_id, number, project, reason, agent))
        return 1

    async def resolve_callbacks(self, number, project, result, now=None) -> int:
        self.writes.append(("resolve", number, project, result))
        return 0

    def of(self, call_id: str) -> list[tuple]:
        return [w for w in self.writes if w[1] == call_id or (w[0] == "resolve")]


def leg() -> Leg:
    return Leg(uniqueid="u", channel="PJSIP/1001-1", linkedid="l", endpoint="1001",
               role=LegRole.AGENT, created_at=T0)


def lifecycle(kind: str, call_id: str) -> list:
    """Events of a call as the tracker would publish them."""
    live, ended = make_call(kind, call_id, ended=False), make_call(kind, call_id)
    events = [CallStarted(call=live, at=T0), CallQueued(call=live, at=T0 + 5, queue="support")]
    if kind == "answered":
        events.append(AgentAnswered(call=live, at=T0 + 9, agent="1001", leg=leg()))
        events.append(CallHeld(call=live, at=T0 + 20))
    events.append(CallEnded(call=ended, at=T0 + 60))
    return events


async def feed_slowly(recorder: OutcomeRecorder, events: list) -> None:
    for e in events:
        recorder(e)
        await asyncio.sleep(0.005)


async def test_each_calls_writes_stay_in_order_and_a_slow_call_delays_only_itself():
    store = FakeStore()
    store.delay["slow"] = 0.02
    recorder = OutcomeRecorder(store)
    await asyncio.gather(feed_slowly(recorder, lifecycle("answered", "slow")),
                         feed_slowly(recorder, lifecycle("answered", "fast")))
    await recorder.drain()
    for call_id in ("slow", "fast"):
        states = [w[2] for w in store.of(call_id) if w[0] == "upsert"]
        assert states[-1] == "ended" and "ended" not in states[:-1], states
        assert states[0] == "live"
    finish = [w[1] for w in store.writes if w[0] == "upsert" and w[2] == "ended"]
    assert finish == ["fast", "slow"], "the slow call held the fast one up"
    assert recorder.pending == 0


async def test_snapshots_waiting_behind_each_other_are_written_once():
    store = FakeStore()
    recorder = OutcomeRecorder(store)
    for e in lifecycle("answered", "c1"):     # all queued before the writer runs
        recorder(e)
    await recorder.drain()
    assert store.writes == [("upsert", "c1", "ended", None, None),
                            ("resolve", "36201234567", "acme", "inbound_answered")]


async def test_hold_and_other_noise_events_write_nothing():
    store = FakeStore()
    recorder = OutcomeRecorder(store)
    recorder(CallHeld(call=make_call("answered", "c1", ended=False), at=T0))
    await recorder.drain()
    assert store.writes == []


async def test_a_failing_write_is_retried_and_other_calls_go_on(caplog):
    store = FakeStore()
    store.fail["broken"] = 3
    recorder = OutcomeRecorder(store, retry_delays=(0.02,))
    with caplog.at_level(logging.WARNING, "ivr.outcomes.recorder"):
        recorder(CallStarted(call=make_call("answered", "broken", ended=False), at=T0))
        recorder(CallStarted(call=make_call("answered", "fine", ended=False), at=T0))
        await asyncio.sleep(0.01)
        assert [w[1] for w in store.writes] == ["fine"]
        await recorder.drain()
    assert [w[1] for w in store.writes] == ["fine", "broken"]
    assert recorder.failures == 3
    assert "writing call record failed; retrying" in caplog.text


async def test_a_newer_snapshot_replaces_one_being_retried():
    store = FakeStore()
    store.fail["c1"] = 1
    recorder = OutcomeRecorder(store, retry_delays=(0.05,))
    recorder(CallStarted(call=make_call("answered", "c1", ended=False), at=T0))
    await asyncio.sleep(0.01)                 # first write failed, waiting to retry
    recorder(CallEnded(call=make_call("answered", "c1"), at=T0 + 60))
    await recorder.drain()
    assert [w[2] for w in store.writes if w[0] == "upsert"] == ["ended"]


async def test_unanswered_inbound_calls_get_a_callback_after_their_record():
    store = FakeStore()
    recorder = OutcomeRecorder(store, callback_delay=120)
    await feed_slowly(recorder, lifecycle("abandoned", "c1"))
    await recorder.drain()
    kinds = [w[0] for w in store.writes]
    assert kinds[-2:] == ["upsert", "callback"]
    assert store.writes[-1] == ("callback", "c1", "36201234567", "acme", "abandoned", None)


async def test_a_failing_callback_write_is_retried_too():
    store = FakeStore()
    recorder = OutcomeRecorder(store, retry_delays=(0.01,))
    recorder(CallStarted(call=make_call("abandoned", "c1", ended=False), at=T0))
    await recorder.drain()
    store.fail["c1"] = 2
    recorder(CallEnded(call=make_call("abandoned", "c1"), at=T0 + 30))
    await recorder.drain()
    assert [w[0] for w in store.writes] == ["upsert", "upsert", "callback"]


async def test_the_script_is_recorded_whether_pulled_or_pushed():
    store = FakeStore()
    scripts = {"c1": ("support", "3")}
    recorder = OutcomeRecorder(store, script_of=scripts.get)
    recorder(CallStarted(call=make_call("answered", "c1", ended=False), at=T0))
    recorder(CallStarted(call=make_call("answered", "c2", ended=False), at=T0))
    await recorder.drain()
    recorder.set_script("c2", "sales", "1")
    await recorder.drain()
    recorder(CallEnded(call=make_call("answered", "c2"), at=T0 + 60))
    await recorder.drain()
    assert ("upsert", "c1", "live", "support", "3") in store.writes
    assert [w for w in store.writes if w[1] == "c2"] == [
        ("upsert", "c2", "live", None, None),           # before the pop said anything
        ("upsert", "c2", "live", "sales", "1"),
        ("upsert", "c2", "ended", "sales", "1")]


async def test_closing_gives_up_on_a_dead_store_loudly_and_in_time(caplog):
    store = FakeStore()
    store.fail["c1"] = 10_000
    recorder = OutcomeRecorder(store, retry_delays=(0.01,))
    recorder(CallStarted(call=make_call("answered", "c1", ended=False), at=T0))
    with caplog.at_level(logging.ERROR, "ivr.outcomes.recorder"):
        await asyncio.wait_for(recorder.close(timeout=0.1), 2)
    assert "unwritten outcomes of 1 calls" in caplog.text
    recorder(CallStarted(call=make_call("answered", "c2", ended=False), at=T0))
    assert recorder.pending == 1, "nothing new is queued after close"


async def test_ended_calls_are_forgotten_once_written():
    store = FakeStore()
    recorder = OutcomeRecorder(store)
    for i in range(1200):
        for e in lifecycle("answered", f"c{i}"):
            recorder(e)
    await recorder.drain()
    assert len(recorder._calls) == 1000
    assert len([w for w in store.writes if w[0] == "upsert"]) == 1200


async def test_a_broken_script_lookup_does_not_cost_the_call_its_record(caplog):
    store = FakeStore()

    def broken(call_id):
        raise RuntimeError("pop bug")

    recorder = OutcomeRecorder(store, script_of=broken)
    recorder(CallStarted(call=make_call("answered", "c1", ended=False), at=T0))
    await recorder.drain()
    assert store.writes == [("upsert", "c1", "live", None, None)]
    assert "asking for its script failed" in caplog.text
