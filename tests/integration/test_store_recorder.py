"""AMI traffic captured from the real Asterisk -> tracker -> bus -> recorder ->
store (SQLite and PostgreSQL): what ends up recorded."""
from __future__ import annotations

from pathlib import Path

from ivr.ami.capture import read
from ivr.calls.bus import CallEventBus
from ivr.calls.tracker import CallTracker
from ivr.outcomes import OutcomeRecorder
from tests.store_fixtures import postgres_cluster, store, store_url  # noqa: F401

DATA = Path(__file__).parents[1] / "data"


def replay(recorder: OutcomeRecorder, *names: str) -> None:
    bus = CallEventBus()
    bus.subscribe(recorder)
    tracker = CallTracker(on_event=bus.publish)
    for name in names:
        for ev in read(DATA / f"{name}.ami"):
            tracker.feed(ev)


async def test_an_abandoned_queue_call_is_recorded_and_lands_in_the_callback_list(store):
    recorder = OutcomeRecorder(store)
    replay(recorder, "inbound_abandoned_in_queue")
    await recorder.drain()
    [rec] = await store.list_calls()
    assert (rec["result"], rec["state"], rec["direction"], rec["project"], rec["queue"]) == \
        ("abandoned", "ended", "inbound", "acme-support", "support")
    assert rec["queue_wait_seconds"] > 0 and rec["agent"] is None
    [cb] = await store.list_callbacks()
    assert (cb["call_id"], cb["number"], cb["project"], cb["reason"], cb["status"],
            cb["agent"]) == (rec["call_id"], "36201234567", "acme-support", "abandoned",
                             "pending", None)
    assert cb["due_at"] == rec["ended_at"]
    assert recorder.pending == 0 and recorder.failures == 0


async def test_answered_calls_are_recorded_with_agent_script_and_timings(store):
    scripts = {"1795442225.0": ("support-en", "4")}
    recorder = OutcomeRecorder(store, script_of=scripts.get)
    replay(recorder, "inbound_ivr_support_answered", "outbound_campaign_answered")
    await recorder.drain()
    inbound = await store.get_call("1795442225.0")
    assert (inbound["result"], inbound["agent"], inbound["agents_rung"], inbound["did"],
            inbound["ivr_choice"]) == ("answered", "1003", ["1003"], "5550100", "2")
    assert (inbound["script_id"], inbound["script_version"]) == ("support-en", "4")
    assert 0.8 < inbound["ring_seconds"] < 2.0 and inbound["talk_seconds"] > 0
    assert inbound["cause"] == 16
    outbound = await store.get_call("out-b12d1153d76645459021")
    assert (outbound["direction"], outbound["result"], outbound["agent"], outbound["project"]) \
        == ("outbound", "answered", "1002", "acme-telesales")
    assert outbound["script_id"] is None
    assert await store.list_callbacks() == [], "answered calls need no callback"
    owed = await store.calls_needing_wrapup("1003")
    assert [c["call_id"] for c in owed] == ["1795442225.0"]


async def test_the_customer_getting_through_later_resolves_the_automatic_callback(store):
    recorder = OutcomeRecorder(store)
    # Same number and project: abandoned first, then answered through the IVR.
    replay(recorder, "inbound_abandoned_in_queue")
    await recorder.drain()
    replay(recorder, "inbound_ivr_support_answered")
    await recorder.drain()
    [cb] = await store.list_callbacks()
    assert (cb["status"], cb["last_result"]) == ("done", "inbound_answered")


async def test_writes_that_fail_are_retried_until_recorded(store):
    class Flaky:
        """The real store, failing its first three writes (a DB restart, a full disk)."""

        def __init__(self, inner):
            self.inner, self.failing = inner, 3

        def __getattr__(self, name):
            method = getattr(self.inner, name)

            async def call(*args, **kw):
                if self.failing:
                    self.failing -= 1
                    raise ConnectionError("database restarting")
                return await method(*args, **kw)
            return call

    recorder = OutcomeRecorder(Flaky(store), retry_delays=(0.01,))
    replay(recorder, "inbound_abandoned_in_queue", "inbound_direct_agent_hangs_up")
    await recorder.drain()
    assert recorder.failures == 3
    results = sorted(c["result"] for c in await store.list_calls())
    assert results == ["abandoned", "answered"]
    assert len(await store.list_callbacks()) == 1
