"""Report queries and the CSV export on the outcomes store, on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import datetime as dt
import io

from ivr.calls.model import CallResult
from ivr.outcomes import reports
from ivr.outcomes.reports import CallFilter
from tests.store_fixtures import T0, make_call, postgres_cluster, store, store_url  # noqa: F401

DAY = 86400


async def fill(store) -> None:
    """Six calls of project acme (one of each result), one of globex, one the day before."""
    for kind in CallResult:
        await store.upsert_call(make_call(kind, f"c-{kind.value}", at=T0))
    await store.upsert_call(make_call("answered", "g-1", at=T0 + 600, project="globex",
                                      agent="1002"))
    await store.upsert_call(make_call("answered", "old", at=T0 - DAY))
    await store.upsert_call(make_call("answered", "live", at=T0 + 700, ended=False))
    # The answered acme call: wrapped up 30 s after hang-up (talk 51 s, 4.5 s of it on hold).
    await store.save_wrapup("c-answered", "1001", "resolved", "ok", at=T0 + 60 + 30)
    await store.save_wrapup("g-1", "1002", "sale", "", at=T0 + 600 + 60 + 10)
    await store.save_wrapup("c-no_answer", "1001", "no_answer", "")
    async with store.transaction() as tx:
        await tx.execute("UPDATE calls SET adherence_score = ? WHERE call_id = ?",
                         [80, "c-answered"])
        await tx.execute("UPDATE calls SET adherence_score = ? WHERE call_id = ?", [50, "g-1"])


async def test_summary_figures_per_project_agent_and_total(store):
    await fill(store)
    now = T0 + 3600
    await store.add_callback("c-x", "111", "acme", due_at=now - 10, reason="abandoned", now=T0)
    await store.add_callback("c-y", "222", "acme", due_at=now - 2000, agent="1001", now=T0)
    await store.add_callback("c-z", "333", "globex", due_at=now + 500, now=T0)
    got = await reports.summary(store, T0 - 60, T0 + DAY - 60, now=now)

    acme = next(p for p in got["projects"] if p["project"] == "acme")
    assert (acme["calls"], acme["live"], acme["answered"], acme["offered"], acme["abandoned"],
            acme["queue_timeout"], acme["no_answer"], acme["failed"], acme["inbound"],
            acme["outbound"]) == (7, 1, 1, 5, 1, 1, 1, 1, 6, 1)
    assert acme["answer_rate"] == 0.2              # 1 of 5 (the IVR hang-up is not offered)
    # A queue timeout is no abandoned call: each counts apart, over the 3 ended calls that queued.
    assert acme["abandonment_rate"] == 0.3333 and acme["queue_timeout_rate"] == 0.3333
    assert acme["asa"] == 4.0                      # queued at +5, agent answered at +9
    assert acme["avg_talk"] == 46.5 and acme["avg_hold"] == 4.5 and acme["avg_wrapup"] == 30.0
    assert acme["aht"] == 51 + 30
    assert acme["dispositions"] == {"no_answer": 1, "resolved": 1}
    assert acme["adherence"] == 80 and acme["adherence_calls"] == 1
    assert acme["callbacks"] == {"due": 2, "overdue": 1, "scheduled": 0}

    globex = next(p for p in got["projects"] if p["project"] == "globex")
    assert (globex["calls"], globex["answered"], globex["aht"], globex["dispositions"]) == \
        (1, 1, 61.0, {"sale": 1})
    assert globex["callbacks"] == {"due": 0, "overdue": 0, "scheduled": 1}

    total = got["total"]
    assert total["calls"] == 8 and total["answered"] == 2 and total["offered"] == 6
    assert total["queue_timeout"] == 1 and total["abandoned"] == 1
    assert total["aht"] == (81 + 61) / 2 and total["adherence"] == 65
    assert total["callbacks"] == {"due": 2, "overdue": 1, "scheduled": 1}

    agents = {a["agent"]: a for a in got["agents"]}
    assert set(agents) == {"", "1001", "1002"}
    assert agents["1001"]["calls"] == 3            # answered, the outbound no-answer, the live one
    assert agents["1001"]["callbacks"]["due"] == 1 and agents["1002"]["aht"] == 61.0
    assert agents[""]["calls"] == 4                # abandoned, queue timeout, IVR hang-up, failed

    series = got["series"]
    assert series["bucket_seconds"] == 3600 and len(series["points"]) == 24
    assert series["points"][0]["calls"] == 8 and series["points"][0]["answered"] == 2
    assert series["points"][0]["abandoned"] == 1 and series["points"][0]["queue_timeout"] == 1
    assert sum(p["calls"] for p in series["points"]) == 8


async def test_summary_filters_and_buckets_of_a_week(store):
    await fill(store)
    got = await reports.summary(store, T0 - DAY - 60, T0 + 6 * DAY, project="acme", now=T0)
    assert [p["project"] for p in got["projects"]] == ["acme"]
    assert got["total"]["calls"] == 8               # the day before counts too now
    assert got["series"]["bucket_seconds"] == DAY
    assert [p["calls"] for p in got["series"]["points"][:2]] == [1, 7]
    one = await reports.summary(store, T0 - 60, T0 + 3600, agent="1002", now=T0)
    assert one["total"]["calls"] == 1 and [a["agent"] for a in one["agents"]] == ["1002"]


async def test_list_calls_filters_and_pages(store):
    await fill(store)
    day = CallFilter(since=T0 - 60, until=T0 + DAY)

    async def ids(flt, **kw):
        rows, cursor = await reports.list_calls(store, flt, **kw)
        return [r["call_id"] for r in rows], cursor

    everything, cursor = await ids(day)
    assert cursor is None and len(everything) == 8 and "old" not in everything
    assert (await ids(CallFilter(since=T0 - 60, until=T0 + DAY, project="globex")))[0] == ["g-1"]
    assert (await ids(CallFilter(since=T0 - 60, until=T0 + DAY, disposition="resolved")))[0] \
        == ["c-answered"]
    assert sorted((await ids(CallFilter(since=T0 - 60, until=T0 + DAY, agent="-")))[0]) == \
        ["c-abandoned", "c-failed", "c-ivr_hangup", "c-queue_timeout"]
    assert (await ids(CallFilter(result="abandoned")))[0] == ["c-abandoned"]
    assert (await ids(CallFilter(result="queue_timeout")))[0] == ["c-queue_timeout"]
    # Pages of 3 by keyset, calls of the same second included, none twice.
    seen, after = [], None
    while True:
        rows, after = await reports.list_calls(store, day, limit=3, after=after)
        seen += [r["call_id"] for r in rows]
        if after is None:
            break
    assert seen == everything
    rows, _ = await reports.list_calls(store, CallFilter(project="globex"))
    assert rows[0]["wrapup_seconds"] == 10.0 and rows[0]["agents_rung"] == ["1002", "1002"]


async def test_csv_export_quotes_and_neutralises_formulas(store):
    call = make_call("answered", "q-1", at=T0)
    call.customer_name = 'Kim "The Boss", Minji'
    await store.upsert_call(call)
    await store.save_wrapup("q-1", "1001", "resolved", "line one\nline two, \"quoted\"",
                            at=T0 + 90)
    evil = make_call("answered", "q-2", at=T0 + 1, number="+36201234567")
    evil.customer_name = "=HYPERLINK(\"http://x\")"
    await store.upsert_call(evil)
    chunks = [c async for c in reports.export_csv(store, CallFilter(since=T0 - 1, until=T0 + 5),
                                                  tz=dt.timezone.utc, page=1)]
    assert len(chunks) == 3          # the header, then one page per call
    rows = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert [r["call_id"] for r in rows] == ["q-1", "q-2"]
    first, second = rows
    assert first["customer_name"] == 'Kim "The Boss", Minji'
    assert first["notes"] == "line one\nline two, \"quoted\""
    assert first["started_at"] == "2023-11-14T22:13:20+00:00"
    assert first["talk_seconds"] == "51" and first["hold_seconds"] == "4.5"
    assert first["wrapup_seconds"] == "30" and first["agents_rung"] == "1002 1001"
    assert first["transfers"] == "blind:sales" and first["disposition"] == "resolved"
    assert second["customer_name"].startswith("'=HYPERLINK")
    assert second["customer_num"] == "+36201234567"      # a number stays a number
    assert second["disposition"] == "" and second["result"] == "answered"
