"""Agent state changes in the outcomes store and the shift figures, on SQLite
and PostgreSQL: rows open and close in order, a period clips them, a state
still going counts up to now, the queue figures of a day."""
from __future__ import annotations

import pytest

from ivr.outcomes import reports
from ivr.outcomes.store.agents import AgentStateRow
from tests.store_fixtures import T0, make_call, postgres_cluster, store, store_url  # noqa: F401


def row(agent, state, at, reason="", **kw) -> AgentStateRow:
    return AgentStateRow(agent=agent, state=state, started_at=at, reason=reason, **kw)


async def test_rows_close_where_the_next_begins_even_within_one_batch(store):
    await store.record_agent_states([row("1001", "ready", T0), row("1002", "ready", T0 + 1)])
    await store.record_agent_states([
        row("1001", "ringing", T0 + 10, call_id="c1"), row("1001", "on_call", T0 + 12,
                                                           call_id="c1", project="acme"),
        row("1002", "not_ready", T0 + 20, "lunch", changed_by="boss")])
    history = await store.agent_state_history("1001", since=0)
    assert [(h["state"], h["started_at"], h["ended_at"]) for h in history] == [
        ("ready", T0, T0 + 10), ("ringing", T0 + 10, T0 + 12), ("on_call", T0 + 12, None)]
    last = await store.last_agent_states()
    assert {a: (r["state"], r["reason"], r["changed_by"]) for a, r in last.items()} == {
        "1001": ("on_call", "", ""), "1002": ("not_ready", "lunch", "boss")}
    assert last["1001"]["project"] == "acme" and last["1001"]["call_id"] == "c1"
    with pytest.raises(ValueError):
        await store.record_agent_states([row("1001", "napping", T0 + 30)])


async def test_shift_figures_clip_the_period_and_count_open_states_to_now(store):
    await store.record_agent_states([
        row("1001", "ready", T0 - 100),                 # began before the period
        row("1001", "ringing", T0 + 100),
        row("1001", "on_call", T0 + 110),
        row("1001", "wrapup", T0 + 170),
        row("1001", "not_ready", T0 + 200, "lunch"),
        row("1001", "ready", T0 + 1400),
        row("1001", "not_ready", T0 + 1500, "break"),
        row("1001", "offline", T0 + 1800),
        row("1002", "ready", T0 + 50),                  # still ready: counts up to now
    ])
    got = await reports.agent_times(store, T0, T0 + 3600, now=T0 + 1000)
    a, b = got["1001"], got["1002"]
    # Up to now (T0 + 1000): ready 100, ringing 10, on a call 60, wrap-up 30, lunch 800.
    assert (a["ready_time"], a["ringing_time"], a["on_call_time"], a["wrapup_time"]) == \
        (100.0, 10.0, 60.0, 30.0)
    assert a["not_ready_by_reason"] == {"lunch": 800.0} and a["login_time"] == 1000.0
    assert a["occupancy"] == pytest.approx(100 / 200, abs=1e-4)
    assert b["ready_time"] == 950.0 and b["occupancy"] == 0.0
    later = await reports.agent_times(store, T0, T0 + 3600, now=T0 + 7200, agent="1001")
    assert set(later) == {"1001"}
    assert later["1001"]["not_ready_by_reason"] == {"break": 300.0, "lunch": 1200.0}
    assert later["1001"]["login_time"] == 1800.0 and later["1001"]["ready_time"] == 200.0
    # The summary's agents carry them, also an agent who took no call.
    summary = await reports.summary(store, T0, T0 + 3600, now=T0 + 1000)
    assert {r["agent"]: r["shift"]["ready_time"] for r in summary["agents"]} == \
        {"1001": 100.0, "1002": 950.0}


async def test_queue_day_counts_answered_in_time_and_abandoned(store):
    answered = make_call("answered", "q1", at=T0)          # waited 5 s in queue support
    await store.upsert_call(answered)
    slow = make_call("answered", "q2", at=T0 + 100)
    slow.agent_answered_at = slow.queued_at + 40
    await store.upsert_call(slow)
    await store.upsert_call(make_call("abandoned", "q3", at=T0 + 200))
    await store.upsert_call(make_call("answered", "q0", at=T0 - 86400))   # another day
    rows = {r["queue"]: r for r in await reports.queue_day(store, T0 - 10, threshold=20)}
    s = rows["support"]
    assert (s["answered"], s["answered_in_time"], s["abandoned"], s["timed_out"]) == (2, 1, 1, 0)
    assert float(s["wait_sum"]) == pytest.approx(
        (answered.agent_answered_at - answered.queued_at) + 40)
