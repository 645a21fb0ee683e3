"""The callback list in the outcomes store, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from tests.store_fixtures import T0, postgres_cluster, store, store_url  # noqa: F401

NUM = "36201234567"


async def test_a_callback_goes_from_pending_through_retries_to_done(store):
    cb = await store.add_callback("c1", NUM, "acme", due_at=T0 + 60, reason="abandoned", now=T0)
    assert await store.due_callbacks(T0 + 59) == []
    [due] = await store.due_callbacks(T0 + 60)
    assert (due["id"], due["number"], due["project"], due["agent"], due["reason"],
            due["status"], due["attempts"]) == (cb, NUM, "acme", None, "abandoned", "pending", 0)

    await store.mark_callback(cb, "dialling", now=T0 + 61)
    assert await store.due_callbacks(T0 + 1000) == [], "a callback being placed is not due"
    await store.mark_callback(cb, "pending", "no_answer", due_at=T0 + 900, call_id="r1",
                              now=T0 + 90)
    assert await store.due_callbacks(T0 + 899) == []
    assert [c["id"] for c in await store.due_callbacks(T0 + 900)] == [cb]
    await store.mark_callback(cb, "dialling", now=T0 + 901)
    await store.mark_callback(cb, "done", "answered", call_id="r2", now=T0 + 950)

    got = await store.get_callback(cb)
    assert (got["status"], got["attempts"], got["last_result"], got["last_attempt_at"]) == \
        ("done", 2, "answered", T0 + 950)
    assert got["due_at"] == T0 + 900 and got["created_at"] == T0
    assert got["history"] == [
        {"at": T0 + 90, "status": "pending", "result": "no_answer", "call_id": "r1"},
        {"at": T0 + 950, "status": "done", "result": "answered", "call_id": "r2"}]
    assert await store.due_callbacks(T0 + 10_000) == []


async def test_a_number_has_one_open_callback_per_project(store):
    first = await store.add_callback("c1", NUM, "acme", due_at=T0, reason="abandoned", now=T0)
    again = await store.add_callback("c2", NUM, "acme", due_at=T0 + 50, reason="no_answer")
    assert again == first
    kept = await store.get_callback(first)
    assert (kept["call_id"], kept["reason"], kept["due_at"]) == ("c1", "abandoned", T0)
    other_project = await store.add_callback("c3", NUM, "globex", due_at=T0, reason="failed")
    assert other_project != first
    # "Call me tomorrow" replaces the automatic one's time and owner.
    scheduled = await store.add_callback("c4", NUM, "acme", due_at=T0 + 86400, agent="1001",
                                         reason="scheduled")
    assert scheduled == first
    moved = await store.get_callback(first)
    assert (moved["due_at"], moved["agent"], moved["reason"], moved["call_id"]) == \
        (T0 + 86400, "1001", "scheduled", "c4")
    # Once done, the number can get a new one.
    await store.mark_callback(first, "done", "answered")
    new = await store.add_callback("c5", NUM, "acme", due_at=T0, reason="abandoned")
    assert new != first


async def test_list_callbacks_filters(store):
    a = await store.add_callback("c1", "111", "acme", due_at=T0 + 10, reason="abandoned")
    b = await store.add_callback("c2", "222", "acme", due_at=T0 + 20, agent="1001")
    c = await store.add_callback("c3", "333", "globex", due_at=T0 + 30, reason="failed")
    await store.mark_callback(c, "cancelled")

    async def ids(**kw):
        return [x["id"] for x in await store.list_callbacks(**kw)]

    assert await ids() == [a, b, c]
    assert await ids(status="pending") == [a, b]
    assert await ids(project="acme") == [a, b]
    assert await ids(agent="1001") == [b]
    assert await ids(due_before=T0 + 20) == [a]
    assert await ids(limit=1) == [a]


async def test_unknown_callbacks_and_statuses_are_errors(store):
    with pytest.raises(KeyError):
        await store.mark_callback(12345, "done", "answered")
    cb = await store.add_callback(None, NUM, "acme", due_at=T0)
    with pytest.raises(ValueError):
        await store.mark_callback(cb, "maybe")
    with pytest.raises(ValueError):
        await store.add_callback(None, "", "acme", due_at=T0)
    assert await store.get_callback(12345) is None


async def test_a_callback_caught_dialling_by_a_crash_is_pending_again(store):
    cb = await store.add_callback("c1", NUM, "acme", due_at=T0)
    await store.mark_callback(cb, "dialling")
    await store.close_interrupted(T0 + 100)
    got = await store.get_callback(cb)
    assert (got["status"], got["last_result"]) == ("pending", "interrupted")
    assert [c["id"] for c in await store.due_callbacks(T0 + 100)] == [cb]


async def test_a_customer_who_got_through_needs_no_automatic_callback(store):
    auto = await store.add_callback("c1", NUM, "acme", due_at=T0, reason="abandoned")
    other = await store.add_callback("c2", "999", "acme", due_at=T0, reason="abandoned")
    assert await store.resolve_callbacks(NUM, "acme", "inbound_answered", T0 + 5) == 1
    assert (await store.get_callback(auto))["status"] == "done"
    assert (await store.get_callback(other))["status"] == "pending"
    # A callback the customer asked for at a time stays.
    asked = await store.add_callback("c3", NUM, "acme", due_at=T0 + 3600, reason="scheduled")
    assert await store.resolve_callbacks(NUM, "acme", "inbound_answered") == 0
    assert (await store.get_callback(asked))["status"] == "pending"
