"""Call -> record conversion, the callback rule, store URLs and SQL adaptation."""
from __future__ import annotations

import dataclasses

import pytest

from ivr.calls.model import CallResult, Direction
from ivr.outcomes.callbacks import callbacks_for, diallable
from ivr.outcomes.store import CallRecord, StoreError, create_store, parse_url
from ivr.outcomes.store.base import columns
from ivr.outcomes.store.postgres import _rowcount, numbered
from ivr.outcomes.store.records import call_of, record_of
from ivr.outcomes.store.schema import MIGRATIONS
from ivr.outcomes.store.sql import UPSERT_CALL
from tests.store_fixtures import T0, make_call


def test_a_record_carries_the_call_and_its_derived_timings():
    rec = record_of(make_call("answered", "c1"), now=T0 + 100, script_id="s", script_version="2")
    assert (rec.call_id, rec.state, rec.direction, rec.result) == \
        ("c1", "ended", "inbound", "answered")
    assert (rec.queue_wait_seconds, rec.ring_seconds, rec.talk_seconds, rec.hold_seconds) == \
        (4.0, 3.0, 51.0, 4.5)
    assert rec.agents_rung == ["1002", "1001"]
    assert rec.transfers == [{"at": T0 + 30, "kind": "blind", "by_agent": "1002",
                              "target": "sales", "to_agent": None, "consult_call": None}]
    assert (rec.script_id, rec.script_version, rec.updated_at) == ("s", "2", T0 + 100)
    assert rec.disposition is None and rec.checklist is None


def test_a_live_call_has_no_result_and_open_timings():
    rec = record_of(make_call("answered", "c1", ended=False), now=T0)
    assert (rec.state, rec.result, rec.ended_at) == ("live", None, None)
    assert rec.talk_seconds == 0.0        # answered, talking since this very moment
    unanswered = record_of(make_call("abandoned", "c2", ended=False), now=T0)
    assert unanswered.ring_seconds is None, "still ringing: not known yet"


@pytest.mark.parametrize("kind", list(CallResult))
def test_a_call_rebuilt_from_its_record_has_the_same_outcome(kind):
    call = make_call(kind, "c1")
    record = record_of(call, now=T0).to_dict()
    back = call_of(record)
    assert back.result is kind
    for name in ("call_id", "direction", "project", "customer_num", "agent", "agents_rung",
                 "started_at", "answered_at", "ended_at", "hold_seconds", "transfers", "cause",
                 "ivr_keys", "ivr_exit", "queue_result", "monitors"):
        assert getattr(back, name) == getattr(call, name), name


def test_the_record_fields_are_the_columns_of_the_schema():
    ddl = next(s for s in MIGRATIONS[0].statements if s.startswith("CREATE TABLE calls"))
    body = ddl[ddl.index("(") + 1:]
    in_ddl = [line.split()[0] for line in body.splitlines()
              if line.strip() and not line.strip().startswith(("CHECK", ")"))]
    # Later migrations add columns: ALTER TABLE calls ADD COLUMN name ...
    added = [s.split()[5] for m in MIGRATIONS[1:] for s in m.statements
             if s.startswith("ALTER TABLE calls ADD COLUMN")]
    assert sorted(in_ddl + added) == sorted(columns(CallRecord))
    assert len(in_ddl + added) == len(set(in_ddl + added))


def test_the_upsert_never_writes_wrapup_or_speech_columns():
    inserted = UPSERT_CALL[UPSERT_CALL.index("(") + 1:UPSERT_CALL.index(")")]
    for col in ("disposition", "notes", "callback_at", "wrapped_up_at", "wrapped_up_by",
                "checklist", "adherence_score", "prompts", "transcript"):
        assert col not in inserted.split(", ")
        assert f"{col} =" not in UPSERT_CALL


@pytest.mark.parametrize("kind,wanted", [("abandoned", True), ("no_answer", True),
                                         ("failed", True), ("queue_timeout", True),
                                         ("answered", False), ("ivr_hangup", False)])
def test_unanswered_inbound_calls_ask_for_a_callback(kind, wanted):
    call = make_call(kind, "c1")
    if kind == "no_answer":    # an inbound one: a direct call to an agent that rang out
        call.direction, call.agents_rung, call.agent = Direction.INBOUND, ["1001"], None
    assert call.direction is Direction.INBOUND and call.result.value == kind
    got = callbacks_for(call, delay=60)
    if not wanted:
        assert got == []
        return
    [req] = got
    assert (req.call_id, req.number, req.project, req.reason, req.agent) == \
        ("c1", "36201234567", "acme", kind, None)
    assert req.due_at == call.ended_at + 60


def test_no_callback_for_outbound_live_or_anonymous_calls():
    outbound = make_call("no_answer", "c1")
    assert outbound.direction is Direction.OUTBOUND and callbacks_for(outbound) == []
    assert callbacks_for(make_call("abandoned", "c2", ended=False)) == []
    for number in ("", "anonymous", "Unknown", "12"):
        assert callbacks_for(make_call("abandoned", "c3", number=number)) == []
    assert diallable("+36 20 123 4567") and not diallable("restricted")


@pytest.mark.parametrize("url,kind,target", [
    ("sqlite:ivr-data/ivr.db", "sqlite", "/etc/ivr/ivr-data/ivr.db"),
    ("sqlite:///var/lib/ivr/ivr.db", "sqlite", "/var/lib/ivr/ivr.db"),
    ("sqlite:/var/lib/ivr/ivr.db", "sqlite", "/var/lib/ivr/ivr.db"),
    ("sqlite::memory:", "sqlite", ":memory:"),
    ("postgresql://ivr@db:5432/ivr", "postgres", "postgresql://ivr@db:5432/ivr"),
    ("postgres://ivr@db/ivr", "postgres", "postgres://ivr@db/ivr"),
])
def test_store_urls(url, kind, target):
    assert parse_url(url, base_dir="/etc/ivr") == (kind, target)


def test_a_relative_sqlite_path_without_a_base_stays_relative():
    assert parse_url("sqlite:ivr-data/ivr.db") == ("sqlite", "ivr-data/ivr.db")


@pytest.mark.parametrize("url", ["mysql://x/y", "ivr.db", "sqlite://host/ivr.db", "sqlite:",
                                 "sqlite:///"])
def test_bad_store_urls_say_what_is_accepted(url):
    with pytest.raises(StoreError, match="sqlite:relative"):
        parse_url(url)


def test_the_driver_follows_the_url():
    assert type(create_store("sqlite::memory:")).__name__ == "SqliteStore"
    pg = create_store("postgresql://ivr:s3cret@db/ivr")
    assert type(pg).__name__ == "PostgresStore" and "s3cret" not in repr(pg)


def test_placeholders_are_numbered_for_postgres_outside_quoted_text():
    assert numbered("SELECT ? WHERE a = ? AND b = '?' AND c IN (?, ?)") == \
        "SELECT $1 WHERE a = $2 AND b = '?' AND c IN ($3, $4)"
    assert _rowcount("UPDATE 3") == 3 and _rowcount("INSERT 0 1") == 1
    assert _rowcount("CREATE TABLE") == 0


def test_a_record_dict_has_the_wrapup_time():
    rec = dataclasses.replace(record_of(make_call("answered", "c1"), now=T0),
                              wrapped_up_at=T0 + 75)
    assert rec.to_dict()["wrapup_seconds"] == 15.0
