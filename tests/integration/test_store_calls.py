"""Call records and wrap-ups in the outcomes store, on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from ivr.calls.model import CallResult, CallState
from ivr.outcomes.store import StoreError, create_store, open_store
from ivr.outcomes.store.schema import LATEST, MIGRATIONS
from tests.store_fixtures import T0, make_call, postgres_cluster, store, store_url  # noqa: F401


@pytest.mark.parametrize("kind", list(CallResult))
async def test_a_call_of_every_result_is_recorded_and_read_back(store, kind):
    live = make_call(kind, "c1", ended=False)
    await store.upsert_call(live)
    rec = await store.get_call("c1")
    assert rec["state"] == "live" and rec["result"] is None

    call = make_call(kind, "c1")
    await store.upsert_call(call, script_id="support-en", script_version="7")
    rec = await store.get_call("c1")
    assert rec["state"] == "ended" and rec["result"] == kind.value
    for name in ("direction",):
        assert rec[name] == getattr(call, name).value
    for name in ("project", "did", "dialled", "customer_num", "customer_name", "department",
                 "queue", "ivr_choice", "campaign", "agents_rung", "agent", "started_at",
                 "queued_at", "agent_ring_at", "agent_answered_at", "answered_at", "ended_at",
                 "hold_seconds", "cause", "cause_txt"):
        assert rec[name] == getattr(call, name), name
    assert rec["transfers"] == [dataclasses.asdict(t) for t in call.transfers]
    assert (rec["script_id"], rec["script_version"]) == ("support-en", "7")
    assert rec["disposition"] is None and rec["wrapped_up_at"] is None
    assert rec["checklist"] is None and rec["transcript"] is None
    if kind is CallResult.ANSWERED:
        assert rec["queue_wait_seconds"] == 4.0      # queued +5 s, agent answered +9 s
        assert rec["ring_seconds"] == 3.0            # ring +6 s -> +9 s
        assert rec["talk_seconds"] == 51.0           # +9 s -> +60 s
        assert rec["transfers"][0]["target"] == "sales"
    elif kind is CallResult.ABANDONED:
        assert rec["queue_wait_seconds"] == 20.0 and rec["talk_seconds"] is None
        assert rec["ring_seconds"] == 19.0


async def test_upserts_are_idempotent(store):
    call = make_call("answered", "c1")
    for _ in range(3):
        await store.upsert_call(call)
    assert [c["call_id"] for c in await store.list_calls()] == ["c1"]


async def test_a_wrapup_is_committed_when_save_returns(store_url):
    """Read by a second store instance while the first is still open: committed,
    not merely buffered in the writer's connection."""
    writer = await open_store(store_url)
    try:
        await writer.upsert_call(make_call("answered", "c1"))
        await writer.save_wrapup("c1", "1001", "resolved", "reset the router",
                                 checklist={"greeting": True, "name": False}, at=T0 + 90)
        reader = await open_store(store_url)
        try:
            rec = await reader.get_call("c1")
        finally:
            await reader.close()
    finally:
        await writer.close()
    assert (rec["disposition"], rec["notes"], rec["wrapped_up_by"]) == \
        ("resolved", "reset the router", "1001")
    assert rec["wrapped_up_at"] == T0 + 90 and rec["wrapup_seconds"] == 30.0
    assert rec["checklist"] == {"greeting": True, "name": False}


async def test_a_wrapup_is_never_clobbered_by_later_call_writes(store):
    await store.upsert_call(make_call("answered", "c1"), script_id="support", script_version="1")
    await store.save_wrapup("c1", "1001", "sale", "two lines", callback_at=None,
                            checklist={"close": True})
    # The same snapshot again, a late live one, and one without a script.
    await store.upsert_call(make_call("answered", "c1"))
    await store.upsert_call(make_call("answered", "c1", ended=False))
    rec = await store.get_call("c1")
    assert (rec["disposition"], rec["notes"], rec["checklist"]) == ("sale", "two lines",
                                                                    {"close": True})
    assert rec["state"] == "ended" and rec["result"] == "answered", "a late live snapshot revived it"
    assert rec["ended_at"] == T0 + 60
    assert rec["script_id"] == "support"


async def test_a_second_wrapup_corrects_the_first_but_keeps_the_checklist(store):
    await store.upsert_call(make_call("answered", "c1"))
    await store.save_wrapup("c1", "1001", "sale", "", checklist={"greeting": True})
    await store.save_wrapup("c1", "1001", "not_interested", "changed their mind")
    rec = await store.get_call("c1")
    assert (rec["disposition"], rec["notes"]) == ("not_interested", "changed their mind")
    assert rec["checklist"] == {"greeting": True}


async def test_a_wrapup_keeps_what_the_coaching_recorded_of_each_item(store):
    """The agent wraps up after the call's coaching is saved: the checklist keeps who
    ticked each item, when and whether in time; an item changed at the wrap-up is the
    agent's."""
    await store.upsert_call(make_call("answered", "c1"))
    speech = {"done": True, "by": "speech", "at": 4.2, "in_time": True, "missed": False}
    missed = {"done": False, "by": None, "at": None, "in_time": False, "missed": True}
    await store.save_coaching("c1", {"greeted": speech, "thanked": missed}, 50.0, [], [], {})
    await store.save_wrapup("c1", "1001", "resolved", "",
                            checklist={"greeted": True, "thanked": True, "extra": True})
    rec = await store.get_call("c1")
    assert rec["checklist"]["greeted"] == speech
    assert rec["checklist"]["thanked"] == {**missed, "done": True, "by": "agent"}
    assert rec["checklist"]["extra"] is True and rec["adherence_score"] == 50.0


async def test_a_wrapup_for_a_call_not_recorded_yet_lands_and_is_filled_in_later(store):
    await store.save_wrapup("c1", "1001", "resolved", "", at=T0 + 100)
    rec = await store.get_call("c1")
    assert rec["disposition"] == "resolved" and rec["state"] == "ended"
    await store.upsert_call(make_call("answered", "c1"))
    rec = await store.get_call("c1")
    assert rec["disposition"] == "resolved" and rec["started_at"] == T0
    assert rec["customer_num"] == "36201234567" and rec["result"] == "answered"


async def test_a_wrapup_asking_for_a_callback_schedules_it_in_the_same_transaction(store):
    await store.upsert_call(make_call("answered", "c1"))
    await store.save_wrapup("c1", "1001", "callback", "after 3 pm", callback_at=T0 + 3600)
    await store.upsert_call(make_call("answered", "c2", number="3630000000"))
    await store.save_wrapup("c2", "1001", "callback", "", callback_at=T0 + 7200,
                            callback_anyone=True)
    got = {c["call_id"]: c for c in await store.list_callbacks()}
    assert got["c1"]["agent"] == "1001" and got["c1"]["due_at"] == T0 + 3600
    assert got["c1"]["reason"] == "scheduled" and got["c1"]["number"] == "36201234567"
    assert got["c2"]["agent"] is None and got["c2"]["project"] == "acme"
    assert (await store.get_call("c1"))["callback_at"] == T0 + 3600


async def test_calls_left_live_by_a_crash_are_closed_as_interrupted(store):
    await store.upsert_call(make_call("answered", "talking", ended=False))
    await store.upsert_call(make_call("abandoned", "queued", ended=False))
    await store.upsert_call(make_call("answered", "done"))
    assert await store.close_interrupted(T0 + 500) == 2
    assert await store.close_interrupted(T0 + 501) == 0, "must be idempotent"
    states = {c["call_id"]: c["state"] for c in await store.list_calls()}
    assert states == {"talking": "interrupted", "queued": "interrupted", "done": "ended"}
    # The agent still owes a wrap-up for the interrupted conversation.
    owed = [c["call_id"] for c in await store.calls_needing_wrapup("1001")]
    assert sorted(owed) == ["done", "talking"]
    # Asterisk kept the call while we were down: adopted after the restart, it
    # is live again and ends normally.
    await store.upsert_call(make_call("answered", "talking", ended=False))
    assert (await store.get_call("talking"))["state"] == "live"
    await store.upsert_call(make_call("answered", "talking"))
    assert (await store.get_call("talking"))["state"] == "ended"


async def test_calls_needing_wrapup_are_the_agents_answered_ended_unwrapped_calls(store):
    await store.upsert_call(make_call("answered", "a", at=T0))
    await store.upsert_call(make_call("answered", "b", at=T0 + 100))
    await store.upsert_call(make_call("answered", "live", at=T0 + 200, ended=False))
    await store.upsert_call(make_call("answered", "other", at=T0 + 300, agent="1002"))
    await store.upsert_call(make_call("no_answer", "missed", at=T0 + 400))
    await store.save_wrapup("a", "1001", "resolved")
    assert [c["call_id"] for c in await store.calls_needing_wrapup("1001")] == ["b"]
    assert [c["call_id"] for c in await store.calls_needing_wrapup("1002")] == ["other"]


async def test_list_calls_filters_by_time_project_agent_and_disposition(store):
    specs = [("c1", "answered", T0, "acme", "1001", "sale"),
             ("c2", "answered", T0 + 100, "acme", "1002", "resolved"),
             ("c3", "answered", T0 + 200, "globex", "1001", "sale"),
             ("c4", "abandoned", T0 + 300, "acme", "1001", None),
             ("c5", "ivr_hangup", T0 + 400, "globex", "1001", None)]
    for call_id, kind, at, project, agent, disposition in reversed(specs):
        await store.upsert_call(make_call(kind, call_id, at=at, project=project, agent=agent))
        if disposition:
            await store.save_wrapup(call_id, agent, disposition)

    async def ids(**kw):
        return [c["call_id"] for c in await store.list_calls(**kw)]

    assert await ids() == ["c1", "c2", "c3", "c4", "c5"], "oldest first"
    assert await ids(since=T0 + 100, until=T0 + 300) == ["c2", "c3"]
    assert await ids(project="acme") == ["c1", "c2", "c4"]
    assert await ids(agent="1001") == ["c1", "c3"], "only answered calls have an agent"
    assert await ids(disposition="sale") == ["c1", "c3"]
    assert await ids(project="acme", disposition="sale", since=T0) == ["c1"]
    assert await ids(result="abandoned") == ["c4"]
    assert await ids(state="ended", limit=2) == ["c1", "c2"]
    assert await ids(project="nobody") == []


async def test_opening_again_applies_no_migration_twice(store_url):
    first = await open_store(store_url)
    await first.upsert_call(make_call("answered", "c1"))
    await first.close()
    # Two services starting at once on the migrated database, then a third.
    stores = await asyncio.gather(open_store(store_url), open_store(store_url))
    stores.append(await open_store(store_url))
    try:
        async with stores[0].transaction(readonly=True) as tx:
            rows = await tx.fetch("SELECT version FROM schema_version ORDER BY version")
        assert [r["version"] for r in rows] == sorted(m.version for m in MIGRATIONS)
        assert rows[-1]["version"] == LATEST
        assert (await stores[2].get_call("c1"))["result"] == "answered"
    finally:
        for s in stores:
            await s.close()


async def test_two_services_creating_the_schema_at_once_both_succeed(store_url):
    stores = await asyncio.gather(*(open_store(store_url) for _ in range(3)))
    try:
        await stores[0].upsert_call(make_call("answered", "c1"))
        assert await stores[1].get_call("c1") is not None
    finally:
        for s in stores:
            await s.close()


async def test_a_database_newer_than_the_code_is_refused(store_url):
    async with create_store(store_url) as store:
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO schema_version (version, description, applied_at) "
                             "VALUES (?, ?, ?)", [LATEST + 1, "from the future", T0])
    with pytest.raises(StoreError, match="newer than this code"):
        await open_store(store_url)


async def test_speech_columns_are_left_alone_by_call_writes(store):
    await store.upsert_call(make_call("answered", "c1", ended=False))
    async with store.transaction() as tx:
        await tx.execute("UPDATE calls SET transcript = ?, prompts = ?, adherence_score = ? "
                         "WHERE call_id = ?",
                         ['[{"who": "agent", "text": "안녕하세요"}]', '["offer the upgrade"]',
                          0.75, "c1"])
    await store.upsert_call(make_call("answered", "c1"))
    rec = await store.get_call("c1")
    assert rec["transcript"] == [{"who": "agent", "text": "안녕하세요"}]
    assert rec["prompts"] == ["offer the upgrade"] and rec["adherence_score"] == 0.75
    assert rec["state"] == CallState.ENDED.value


async def test_coaching_results_are_stored_and_survive_the_wrapup(store):
    from tests.store_fixtures import make_call
    call = make_call("answered", "coached-1")
    await store.upsert_call(call)
    checklist = {"company": {"done": True, "at": 3.2, "by": "speech", "phrase": "acme"},
                 "thanks": {"done": False, "missed": True}}
    prompts = [{"rule": "thanks", "text": "Thank the customer", "at": 40.0}]
    transcript = [{"speaker": "agent", "text": "acme telecom", "start": 1.0, "end": 2.0}]
    await store.save_coaching("coached-1", checklist, 62.5, prompts, transcript)
    await store.save_wrapup("coached-1", "1003", "resolved", "ok")
    got = await store.get_call("coached-1")
    assert got["adherence_score"] == 62.5 and got["prompts"] == prompts
    assert got["transcript"] == transcript and got["checklist"]["company"]["done"] is True
    assert got["disposition"] == "resolved"
