"""Outcomes store benchmark: writes per second and report times on 1M calls.

    python bench/outcomes_store.py [--calls 1000000] [--days 30] [--backends sqlite,postgres]
                                   [--writes 1000] [--concurrency 1,8] [--keep DIR]

For each backend (SQLite file; PostgreSQL in a throw-away cluster started
like the tests do, tests/postgres.py):

1. Fill: a generator makes `--calls` calls over `--days` days (a busy site:
   8 projects, 60 agents, 75 % inbound, 80 % answered, most wrapped up, half
   with an adherence score) plus a few thousand callbacks, and loads them in
   bulk (executemany into SQLite, COPY into PostgreSQL) into the real schema
   (the store's migrations, all indexes in place), then ANALYZE.
2. Writes: `--writes` new calls recorded through the Store API exactly as the
   service does it, each a live upsert, an ended upsert and a wrap-up (three
   durable commits: SQLite synchronous=FULL, PostgreSQL synchronous_commit=on),
   one call at a time and with N calls at once (the recorder writes each
   call from its own task). Reported as store writes (commits) per second and
   as calls per second.
3. Reports (ivr.outcomes.reports, as the HTTP routes call them), median of 5
   after one warm-up: the summary (per project, per agent, totals, chart,
   callbacks) of the busiest day and of a week; the same for one project; a
   page of /api/calls with a filter; the CSV export of a whole day (streamed
   page by page, bytes counted).
4. Interference: one call's three writes timed while the day's summary runs
   back to back, with the reports on the service's own store instance and on
   a second instance (SQLite: its own connection; WAL lets it read while the
   first one writes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivr.calls.model import Call, CallState, Direction  # noqa: E402
from ivr.outcomes import reports  # noqa: E402
from ivr.outcomes.reports import CallFilter  # noqa: E402
from ivr.outcomes.store import open_store  # noqa: E402
from ivr.outcomes.store.base import CallRecord, columns, json_columns  # noqa: E402

DAY = 86400.0
PROJECTS = [
    "acme-support",
    "acme-sales",
    "acme-telesales",
    "acme-b2b",
    "acme-key-accounts",
    "globex-care",
    "globex-sales",
    "initech-help",
]
AGENTS = [f"{1000 + i}" for i in range(1, 61)]
DISPOSITIONS = [
    "resolved",
    "resolved",
    "resolved",
    "sale",
    "callback",
    "transferred",
    "no_longer_needed",
    "do_not_call",
]
COLS = columns(CallRecord)
JSON_COLS = json_columns(CallRecord)


def generate(n: int, days: int, start: float, seed: int = 7):
    """Yield call rows (tuples in COLS order), oldest first."""
    rnd = random.Random(seed)
    span = days * DAY
    for i in range(n):
        t = start + span * i / n + rnd.random()
        project = PROJECTS[int(rnd.random() ** 1.7 * len(PROJECTS))]
        inbound = rnd.random() < 0.75
        r = rnd.random()
        result = (
            "answered"
            if r < 0.80
            else "abandoned"
            if r < 0.88
            else "ivr_hangup"
            if r < 0.92
            else "no_answer"
            if r < 0.97
            else "failed"
        )
        if not inbound and result in ("abandoned", "ivr_hangup"):
            result = "no_answer"
        agent = rnd.choice(AGENTS) if result == "answered" or not inbound else None
        queued = t + rnd.uniform(3, 20) if inbound and result != "ivr_hangup" else None
        ring_at = (
            (queued or t) + rnd.uniform(0, 40) if result in ("answered", "no_answer") else None
        )
        agent_ans = ring_at + rnd.uniform(1, 8) if result == "answered" and ring_at else None
        answered = agent_ans + (0 if inbound else rnd.uniform(3, 15)) if agent_ans else None
        talk = rnd.lognormvariate(5.0, 0.7) if answered else None
        hold = rnd.choice([0.0, 0.0, 0.0, rnd.uniform(5, 90)]) if answered else 0.0
        ended = (answered + talk) if answered else (queued or t) + rnd.uniform(5, 120)
        wrapped = ended + rnd.uniform(5, 90) if answered and rnd.random() < 0.9 else None
        number = f"36{rnd.randrange(200000000, 709999999)}"
        row = {
            "call_id": f"bench-{i:08d}",
            "state": "ended",
            "direction": "inbound" if inbound else "outbound",
            "project": project,
            "script_id": project,
            "script_version": "3",
            "did": "5550100" if inbound else "",
            "dialled": "" if inbound else number,
            "customer_num": number,
            "customer_name": f"Customer {i % 5000}",
            "department": "support" if inbound else "",
            "queue": "support" if queued else "",
            "ivr_choice": "2" if inbound else "",
            "campaign": "" if inbound else "spring",
            "agents_rung": json.dumps([agent] if agent else []),
            "agent": agent,
            "started_at": t,
            "queued_at": queued,
            "agent_ring_at": ring_at,
            "agent_answered_at": agent_ans,
            "answered_at": answered,
            "ended_at": ended,
            "queue_wait_seconds": (agent_ans or ended) - queued if queued else None,
            "ring_seconds": (agent_ans or ended) - ring_at if ring_at else None,
            "talk_seconds": talk,
            "hold_seconds": hold,
            "cause": 16,
            "cause_txt": "Normal Clearing",
            "result": result,
            "transfers": "[]",
            "disposition": rnd.choice(DISPOSITIONS) if wrapped else None,
            "notes": "bench" if wrapped else None,
            "callback_at": None,
            "wrapped_up_at": wrapped,
            "wrapped_up_by": agent if wrapped else None,
            "checklist": None,
            "adherence_score": float(rnd.randint(40, 100))
            if answered and rnd.random() < 0.5
            else None,
            "prompts": None,
            "transcript": None,
            "updated_at": ended,
        }
        yield tuple(row[c] for c in COLS)


def callbacks(n: int, start: float, end: float, seed: int = 8):
    rnd = random.Random(seed)
    for i in range(n):
        due = rnd.uniform(start, end + DAY)
        status = rnd.choice(["pending", "done", "done", "failed"]) if due < end - DAY else "pending"
        yield (
            f"bench-cb-{i}",
            f"36{300000000 + i}",
            rnd.choice(PROJECTS),
            rnd.choice(AGENTS) if rnd.random() < 0.3 else None,
            "abandoned",
            due,
            status,
            0,
            due - 3600,
            due - 3600,
        )


CB_COLS = [
    "call_id",
    "number",
    "project",
    "agent",
    "reason",
    "due_at",
    "status",
    "attempts",
    "created_at",
    "updated_at",
]


# ------------------------------------------------------------------ fill


def fill_sqlite(path: str, n: int, days: int, start: float) -> float:
    t0 = time.perf_counter()
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")  # bulk load only; the store uses FULL
    db.execute("BEGIN")
    sql = f"INSERT INTO calls ({', '.join(COLS)}) VALUES ({', '.join('?' for _ in COLS)})"
    rows = generate(n, days, start)
    while True:
        chunk = [r for _, r in zip(range(50_000), rows, strict=False)]
        if not chunk:
            break
        db.executemany(sql, chunk)
    db.executemany(
        f"INSERT INTO callbacks ({', '.join(CB_COLS)}) VALUES ({', '.join('?' for _ in CB_COLS)})",
        callbacks(5000, start, start + days * DAY),
    )
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()
    return time.perf_counter() - t0


async def fill_postgres(dsn: str, n: int, days: int, start: float) -> float:
    import asyncpg

    t0 = time.perf_counter()
    con = await asyncpg.connect(dsn)
    try:
        rows = generate(n, days, start)
        while True:
            chunk = [r for _, r in zip(range(100_000), rows, strict=False)]
            if not chunk:
                break
            await con.copy_records_to_table("calls", records=chunk, columns=COLS)
        await con.copy_records_to_table(
            "callbacks", columns=CB_COLS, records=list(callbacks(5000, start, start + days * DAY))
        )
        await con.execute("ANALYZE")
    finally:
        await con.close()
    return time.perf_counter() - t0


# ------------------------------------------------------------------ measure


def live_call(i: int, at: float) -> Call:
    c = Call(
        call_id=f"w-{i:07d}",
        started_at=at,
        direction=Direction.INBOUND,
        state=CallState.BRIDGED,
        did="5550100",
        customer_num="36201234567",
        project="acme-support",
        queue="support",
        agents_rung=["1001"],
        agent="1001",
        queued_at=at + 3,
        agent_ring_at=at + 4,
        agent_answered_at=at + 6,
        answered_at=at + 6,
    )
    return c


async def one_call(store, i: int, at: float) -> None:
    c = live_call(i, at)
    await store.upsert_call(c, "acme-support", "3")
    c.state, c.ended_at, c.cause, c.cause_txt = CallState.ENDED, at + 90, 16, "Normal Clearing"
    await store.upsert_call(c)
    await store.save_wrapup(c.call_id, "1001", "resolved", "bench", at=at + 120)


async def writes(store, n: int, concurrency: int, at: float, offset: int) -> tuple[float, float]:
    """-> (commits per second, calls per second)."""
    queue = iter(range(offset, offset + n))

    async def worker():
        for i in queue:
            await one_call(store, i, at + i)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    dt = time.perf_counter() - t0
    return 3 * n / dt, n / dt


async def latency_during_reports(
    writer, reader, period, now, offset: int, n: int = 30
) -> tuple[float, float]:
    """Median and worst time of one call's three writes while reports run."""
    stop = asyncio.Event()

    async def reporter():
        while not stop.is_set():
            await reports.summary(reader, *period, now=now)
            await asyncio.sleep(0)

    task = asyncio.ensure_future(reporter())
    await asyncio.sleep(0.05)
    lat = []
    try:
        for i in range(offset, offset + n):
            t0 = time.perf_counter()
            await one_call(writer, 10_000_000 + i, now + 7200 + i)
            lat.append(time.perf_counter() - t0)
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task
    return statistics.median(lat), max(lat)


async def timed(coro_fn, runs: int = 5) -> float:
    await coro_fn()  # warm-up (caches, plans)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await coro_fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def measure(url: str, args, start: float, fill_s: float, label: str) -> dict:
    out: dict = {"backend": label, "fill_s": fill_s}
    store = await open_store(url)
    try:
        async with store.transaction(readonly=True) as tx:
            out["calls_stored"] = int((await tx.fetch("SELECT COUNT(*) AS n FROM calls"))[0]["n"])
        # Busiest day: the last full day; a week: the last seven.
        end = start + args.days * DAY
        day = (end - DAY, end)
        week = (end - 7 * DAY, end)
        now = end
        out["summary_day_s"] = await timed(lambda: reports.summary(store, *day, now=now))
        out["summary_week_s"] = await timed(lambda: reports.summary(store, *week, now=now))
        out["summary_day_project_s"] = await timed(
            lambda: reports.summary(store, *day, project="acme-sales", now=now)
        )
        out["summary_week_agent_s"] = await timed(
            lambda: reports.summary(store, *week, agent="1042", now=now)
        )
        out["calls_page_s"] = await timed(
            lambda: reports.list_calls(
                store,
                CallFilter(since=week[0], until=week[1], project="acme-b2b", disposition="sale"),
                limit=100,
            )
        )
        exported = {}

        async def export():
            size = rows = 0
            async for chunk in reports.export_csv(store, CallFilter(since=day[0], until=day[1])):
                size += len(chunk.encode())
                rows += chunk.count("\r\n")
            exported.update(bytes=size, rows=rows - 1)

        out["export_day_s"] = await timed(export, runs=3)
        out["export_day_rows"] = exported["rows"]
        out["export_day_mb"] = round(exported["bytes"] / 1e6, 1)
        day_calls = await reports.summary(store, *day, now=now)
        out["day_calls"] = day_calls["total"]["calls"]
        offset = 0
        # Write latency while the day's summary (the supervisor page's) runs over and over: on the
        # service's own store instance, and on a second one (its own
        # connection: what the wiring gives the report routes).
        reader = await open_store(url)
        try:
            for label_, rstore in (("same", store), ("separate", reader)):
                p50, worst = await latency_during_reports(store, rstore, day, now, offset)
                offset += 50
                out[f"latency_{label_}"] = (p50, worst)
        finally:
            await reader.close()
        for conc in args.concurrency:
            commits, calls = await writes(store, args.writes, conc, end + 3600, offset)
            offset += args.writes
            out[f"writes_c{conc}"] = (commits, calls)
    finally:
        await store.close()
    return out


def show(r: dict, args) -> None:
    print(
        f"\n== {r['backend']}: {r['calls_stored']:,} calls stored (bulk fill {r['fill_s']:.0f} s)"
    )
    for conc in args.concurrency:
        commits, calls = r[f"writes_c{conc}"]
        print(
            f"  outcome writes, {conc} call(s) at a time: {commits:,.0f} durable writes/s "
            f"= {calls:,.0f} calls/s (upsert live + upsert ended + wrap-up)"
        )
    for label, what in (
        ("same", "on the service's store instance"),
        ("separate", "on a second instance (own connection)"),
    ):
        p50, worst = r[f"latency_{label}"]
        print(
            f"  one call's 3 writes while day summaries run {what}: "
            f"median {p50 * 1000:,.0f} ms, worst {worst * 1000:,.0f} ms"
        )
    print(f"  summary, busiest day ({r['day_calls']:,} calls): {r['summary_day_s'] * 1000:,.0f} ms")
    print(f"  summary, a week:                       {r['summary_week_s'] * 1000:,.0f} ms")
    print(f"  summary, a day, one project:           {r['summary_day_project_s'] * 1000:,.0f} ms")
    print(f"  summary, a week, one agent:            {r['summary_week_agent_s'] * 1000:,.0f} ms")
    print(f"  calls page (week, project+disposition): {r['calls_page_s'] * 1000:,.1f} ms")
    print(
        f"  CSV export of a day: {r['export_day_rows']:,} rows, {r['export_day_mb']} MB in "
        f"{r['export_day_s']:.2f} s ({r['export_day_rows'] / r['export_day_s']:,.0f} rows/s)"
    )


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--writes", type=int, default=1000, help="calls written per measurement")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--keep", help="keep the SQLite file in this folder")
    args = ap.parse_args()
    args.concurrency = [int(x) for x in args.concurrency.split(",")]
    start = 1_700_000_000.0
    print(
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs, {platform.platform()}"
    )
    print(f"{args.calls:,} calls over {args.days} days; {args.writes} calls per write test")
    results = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ivr-bench-"))
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "outcomes.db"
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
            url = f"sqlite://{path.resolve()}"
            await (await open_store(url)).close()  # the schema, by the migrations
            fill_s = fill_sqlite(str(path), args.calls, args.days, start)
            results.append(await measure(url, args, start, fill_s, "SQLite"))
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
        elif backend == "postgres":
            from tests.postgres import PostgresCluster

            cluster = PostgresCluster.start_new()
            try:
                url = cluster.create_database("bench")
                await (await open_store(url)).close()
                fill_s = await fill_postgres(url, args.calls, args.days, start)
                version = cluster.psql("SHOW server_version").strip()
                results.append(await measure(url, args, start, fill_s, f"PostgreSQL {version}"))
            finally:
                cluster.stop()
        else:
            raise SystemExit(f"unknown backend {backend!r}")
        show(results[-1], args)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
