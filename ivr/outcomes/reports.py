"""Reports on the outcomes store: calls with filters, CSV export, and the
figures per project and per agent. One SQL for SQLite and PostgreSQL.

Figures (over the calls *started* in [since, until)):

- calls: every recorded call; `live` of them still going.
- answered: the agent and the customer talked (result 'answered').
- offered: calls that ended asking for someone, i.e. all ended calls except
  those the caller left in the IVR menu; answer_rate = answered / offered.
- abandonment_rate = abandoned / inbound calls that reached a queue;
  queue_timeout (callers who waited the queue's longest wait and were sent
  away: not abandoned, they did not give up) and queue_timeout_rate apart.
- asa (average speed of answer): answered inbound calls' wait from entering
  the queue (or, without a queue, from the agent's phone ringing) to the
  agent's answer, in seconds.
- aht (average handle time) = talk + hold + wrap-up of answered calls, where
  wrap-up is the time from hang-up to the saved wrap-up (0 while none is
  saved); also given apart: avg_talk (without hold), avg_hold, avg_wrapup
  (of the calls wrapped up).
- dispositions: count per disposition chosen at wrap-up.
- adherence: average adherence_score (0-100, from the speech coaching) of
  the calls that have one, and how many have one.
- callbacks (now, not over the period): pending ones due now, and of those
  overdue (due more than `overdue_after` s ago), and scheduled for later.
- shift (per agent, from the agent state changes; see agent_times): login,
  ready, not-ready (by reason), on-call and wrap-up time, occupancy.

Per agent means per answering agent (`calls.agent`): calls nobody answered
count under the project only (and under agent "" in `agents`).

Efficiency: one scan of the period's calls grouped by (project, agent,
disposition) gives every figure (projects, agents and totals are summed from
it in Python, exactly: averages travel as sums and counts), one more gives the
chart's per-hour counts. Both use the started_at index; export and listing
page through it by keyset (started_at, call_id), never OFFSET.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from dataclasses import dataclass, fields
from typing import Any, AsyncIterator

# Columns of the CSV export (and of /api/calls rows), in order.
EXPORT_COLUMNS = (
    "call_id",
    "started_at",
    "direction",
    "state",
    "result",
    "project",
    "campaign",
    "script_id",
    "script_version",
    "did",
    "dialled",
    "customer_num",
    "customer_name",
    "department",
    "queue",
    "ivr_choice",
    "ivr_keys",
    "ivr_exit",
    "queue_result",
    "agents_rung",
    "agent",
    "queue_wait_seconds",
    "ring_seconds",
    "talk_seconds",
    "hold_seconds",
    "wrapup_seconds",
    "answered_at",
    "ended_at",
    "cause",
    "cause_txt",
    "transfers",
    "monitors",
    "disposition",
    "notes",
    "callback_at",
    "wrapped_up_by",
    "wrapped_up_at",
    "adherence_score",
)
_TIME_COLUMNS = frozenset({"started_at", "answered_at", "ended_at", "callback_at", "wrapped_up_at"})
_STORED = [c for c in EXPORT_COLUMNS if c != "wrapup_seconds"]
_JSON = frozenset({"agents_rung", "transfers", "monitors"})

# Wrap-up time of a call, in SQL both backends speak (no GREATEST / MAX(a, b)).
_WRAPUP = (
    "(CASE WHEN wrapped_up_at IS NOT NULL AND ended_at IS NOT NULL "
    "AND wrapped_up_at > ended_at THEN wrapped_up_at - ended_at ELSE 0 END)"
)
_ANSWERED = "result = 'answered'"

_FIGURES_SQL = f"""
SELECT project, agent, disposition,
  COUNT(*) AS calls,
  SUM(CASE WHEN state = 'live' THEN 1 ELSE 0 END) AS live,
  SUM(CASE WHEN direction = 'inbound' THEN 1 ELSE 0 END) AS inbound,
  SUM(CASE WHEN direction = 'outbound' THEN 1 ELSE 0 END) AS outbound,
  SUM(CASE WHEN {_ANSWERED} THEN 1 ELSE 0 END) AS answered,
  SUM(CASE WHEN result IS NOT NULL AND result <> 'ivr_hangup' THEN 1 ELSE 0 END) AS offered,
  SUM(CASE WHEN result = 'abandoned' THEN 1 ELSE 0 END) AS abandoned,
  SUM(CASE WHEN result = 'queue_timeout' THEN 1 ELSE 0 END) AS queue_timeout,
  SUM(CASE WHEN result IS NOT NULL AND direction = 'inbound' AND queued_at IS NOT NULL
      THEN 1 ELSE 0 END) AS queued,
  SUM(CASE WHEN result = 'no_answer' THEN 1 ELSE 0 END) AS no_answer,
  SUM(CASE WHEN result = 'failed' THEN 1 ELSE 0 END) AS failed,
  SUM(CASE WHEN {_ANSWERED} AND direction = 'inbound'
      THEN COALESCE(queue_wait_seconds, ring_seconds) END) AS asa_sum,
  COUNT(CASE WHEN {_ANSWERED} AND direction = 'inbound'
      THEN COALESCE(queue_wait_seconds, ring_seconds) END) AS asa_n,
  SUM(CASE WHEN {_ANSWERED} THEN talk_seconds + {_WRAPUP} END) AS handle_sum,
  COUNT(CASE WHEN {_ANSWERED} THEN talk_seconds END) AS handle_n,
  SUM(CASE WHEN {_ANSWERED} THEN talk_seconds - hold_seconds END) AS talk_sum,
  SUM(CASE WHEN {_ANSWERED} THEN hold_seconds END) AS hold_sum,
  SUM(CASE WHEN {_ANSWERED} AND wrapped_up_at IS NOT NULL THEN {_WRAPUP} END) AS wrapup_sum,
  COUNT(CASE WHEN {_ANSWERED} AND wrapped_up_at IS NOT NULL THEN 1 END) AS wrapup_n,
  SUM(CASE WHEN {_ANSWERED} AND wrapped_up_at IS NULL AND state <> 'live'
      THEN 1 ELSE 0 END) AS wrapups_owed,
  SUM(adherence_score) AS adherence_sum,
  COUNT(adherence_score) AS adherence_n
FROM calls {{where}}
GROUP BY project, agent, disposition
"""

# Additive figures: summed over groups; the rest are derived from them.
_SUMS = (
    "calls",
    "live",
    "inbound",
    "outbound",
    "answered",
    "offered",
    "abandoned",
    "queue_timeout",
    "queued",
    "no_answer",
    "failed",
    "asa_sum",
    "asa_n",
    "handle_sum",
    "handle_n",
    "talk_sum",
    "hold_sum",
    "wrapup_sum",
    "wrapup_n",
    "wrapups_owed",
    "adherence_sum",
    "adherence_n",
)


@dataclass(frozen=True)
class CallFilter:
    since: float | None = None
    until: float | None = None
    project: str | None = None
    agent: str | None = None
    disposition: str | None = None
    result: str | None = None
    direction: str | None = None
    campaign: str | None = None

    def where(
        self, extra: list[str] | None = None, extra_args: list[Any] | None = None
    ) -> tuple[str, list[Any]]:
        clauses, args = list(extra or []), list(extra_args or [])
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "since":
                clauses.append("started_at >= ?")
            elif f.name == "until":
                clauses.append("started_at < ?")
            elif f.name == "agent" and value == "-":  # calls no agent answered
                clauses.append("agent IS NULL")
                continue
            else:
                clauses.append(f"{f.name} = ?")
            args.append(value)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _num(v: Any) -> float:
    return float(v) if v is not None else 0.0


def _ratio(a: float, b: float, digits: int = 4) -> float | None:
    return round(a / b, digits) if b else None


def _figures(acc: dict[str, Any]) -> dict[str, Any]:
    """Derived figures of one group from its sums."""
    s = {k: _num(acc.get(k)) for k in _SUMS}
    return {
        "calls": int(s["calls"]),
        "live": int(s["live"]),
        "inbound": int(s["inbound"]),
        "outbound": int(s["outbound"]),
        "answered": int(s["answered"]),
        "offered": int(s["offered"]),
        "abandoned": int(s["abandoned"]),
        "queue_timeout": int(s["queue_timeout"]),
        "no_answer": int(s["no_answer"]),
        "failed": int(s["failed"]),
        "answer_rate": _ratio(s["answered"], s["offered"]),
        "abandonment_rate": _ratio(s["abandoned"], s["queued"]),
        "queue_timeout_rate": _ratio(s["queue_timeout"], s["queued"]),
        "asa": _ratio(s["asa_sum"], s["asa_n"], 1),
        "aht": _ratio(s["handle_sum"], s["handle_n"], 1),
        "avg_talk": _ratio(s["talk_sum"], s["handle_n"], 1),
        "avg_hold": _ratio(s["hold_sum"], s["handle_n"], 1),
        "avg_wrapup": _ratio(s["wrapup_sum"], s["wrapup_n"], 1),
        "wrapups_owed": int(s["wrapups_owed"]),
        "adherence": _ratio(s["adherence_sum"], s["adherence_n"], 3),
        "adherence_calls": int(s["adherence_n"]),
        "dispositions": dict(sorted(acc["dispositions"].items())),
    }


def _add(acc: dict[str, Any], row: dict[str, Any]) -> None:
    for k in _SUMS:
        acc[k] = acc.get(k, 0.0) + _num(row[k])
    if row["disposition"] is not None:
        d = acc["dispositions"]
        d[row["disposition"]] = d.get(row["disposition"], 0) + int(row["calls"])


def _new() -> dict[str, Any]:
    return {"dispositions": {}}


def _floor_seconds() -> str:
    # floor(started_at) for positive times: CAST truncates in SQLite, rounds in PostgreSQL.
    return (
        "(CAST(started_at AS BIGINT) - CASE WHEN CAST(started_at AS BIGINT) > started_at "
        "THEN 1 ELSE 0 END)"
    )


async def summary(
    store: Any,
    since: float,
    until: float,
    *,
    project: str | None = None,
    agent: str | None = None,
    now: float | None = None,
    overdue_after: float = 900.0,
    bucket: int | None = None,
) -> dict[str, Any]:
    """The figures per project, per agent and in total, the chart's series
    (calls and answered per bucket: an hour up to two days, else a day) and
    the callbacks due now."""
    import time as _time

    now = _time.time() if now is None else now
    if until <= since:
        raise ValueError("until must be after since")
    if bucket is None:
        bucket = 3600 if until - since <= 2 * 86400 else 86400
    flt = CallFilter(since=since, until=until, project=project, agent=agent)
    where, args = flt.where()
    start = int(since)
    n_buckets = int((until - start + bucket - 1) // bucket)
    async with store.transaction(readonly=True) as tx:
        rows = await tx.fetch(_FIGURES_SQL.format(where=where), args)
        series = await tx.fetch(
            f"SELECT ({_floor_seconds()} - ?) / ? AS b, COUNT(*) AS calls, "
            f"SUM(CASE WHEN {_ANSWERED} THEN 1 ELSE 0 END) AS answered, "
            "SUM(CASE WHEN result = 'abandoned' THEN 1 ELSE 0 END) AS abandoned, "
            "SUM(CASE WHEN result = 'queue_timeout' THEN 1 ELSE 0 END) AS queue_timeout "
            f"FROM calls{where} GROUP BY b ORDER BY b",
            [start, bucket, *args],
        )
        cb_where, cb_args = ["status = 'pending'"], []
        if project is not None:
            cb_where.append("project = ?")
            cb_args.append(project)
        if agent is not None:
            cb_where.append("agent = ?")
            cb_args.append(agent)
        callbacks = await tx.fetch(
            "SELECT project, agent, "
            "SUM(CASE WHEN due_at <= ? THEN 1 ELSE 0 END) AS due, "
            "SUM(CASE WHEN due_at <= ? THEN 1 ELSE 0 END) AS overdue, "
            "SUM(CASE WHEN due_at > ? THEN 1 ELSE 0 END) AS scheduled "
            f"FROM callbacks WHERE {' AND '.join(cb_where)} GROUP BY project, agent",
            [now, now - overdue_after, now, *cb_args],
        )
    total = _new()
    projects: dict[str, Any] = {}
    agents: dict[str, Any] = {}
    for row in rows:
        _add(total, row)
        _add(projects.setdefault(row["project"] or "", _new()), row)
        _add(agents.setdefault(row["agent"] or "", _new()), row)
    cb_total = {"due": 0, "overdue": 0, "scheduled": 0}
    cb_projects: dict[str, dict[str, int]] = {}
    cb_agents: dict[str, dict[str, int]] = {}
    for row in callbacks:
        for key, target in ((row["project"] or "", cb_projects), (row["agent"] or "", cb_agents)):
            t = target.setdefault(key, {"due": 0, "overdue": 0, "scheduled": 0})
            for k in t:
                t[k] += int(row[k] or 0)
        for k in cb_total:
            cb_total[k] += int(row[k] or 0)
    zero = {"due": 0, "overdue": 0, "scheduled": 0}

    def table(groups: dict[str, Any], cbs: dict[str, dict[str, int]], key: str) -> list[dict]:
        names = sorted(set(groups) | set(cbs))
        return [
            {key: n, **_figures(groups.get(n, _new())), "callbacks": cbs.get(n, zero)}
            for n in names
        ]

    per_bucket = {int(r["b"]): r for r in series}
    shift = await agent_times(store, since, until, agent=agent, now=now)
    agent_rows = table(agents, cb_agents, "agent")
    named = {row["agent"] for row in agent_rows}
    agent_rows += [
        {"agent": a, **_figures(_new()), "callbacks": zero} for a in sorted(set(shift) - named)
    ]
    for row in agent_rows:
        row["shift"] = shift.get(row["agent"]) or _shift_figures({})
    return {
        "since": since,
        "until": until,
        "now": now,
        "project": project,
        "agent": agent,
        "overdue_after": overdue_after,
        "total": {**_figures(total), "callbacks": cb_total},
        "projects": table(projects, cb_projects, "project"),
        "agents": agent_rows,
        "series": {
            "bucket_seconds": bucket,
            "start": start,
            "points": [
                {
                    "at": start + i * bucket,
                    "calls": int(per_bucket[i]["calls"]) if i in per_bucket else 0,
                    "answered": int(_num(per_bucket[i]["answered"])) if i in per_bucket else 0,
                    "abandoned": int(_num(per_bucket[i]["abandoned"])) if i in per_bucket else 0,
                    "queue_timeout": int(_num(per_bucket[i]["queue_timeout"]))
                    if i in per_bucket
                    else 0,
                }
                for i in range(n_buckets)
            ],
        },
    }


# -- agent states (shift) ---------------------------------------------------------

# Each state row's overlap with [since, until), clipped at `now` for open rows.
_STATE_TIMES_SQL = """
SELECT agent, state, reason,
  SUM((CASE WHEN COALESCE(ended_at, ?) < ? THEN COALESCE(ended_at, ?) ELSE ? END)
      - (CASE WHEN started_at > ? THEN started_at ELSE ? END)) AS seconds
FROM agent_states
WHERE started_at < ? AND started_at < ? AND (ended_at IS NULL OR ended_at > ?) {extra}
GROUP BY agent, state, reason
"""
# Handle time (ringing, talking, wrap-up) over the time the agent was available
# for it (the same plus ready): not ready and offline do not count.
_HANDLING = ("ringing", "on_call", "wrapup")


def _shift_figures(times: dict[tuple[str, str], float]) -> dict[str, Any]:
    by_state: dict[str, float] = {}
    not_ready: dict[str, float] = {}
    for (state, reason), secs in times.items():
        by_state[state] = by_state.get(state, 0.0) + secs
        if state == "not_ready":
            not_ready[reason or "(no reason)"] = not_ready.get(reason or "(no reason)", 0.0) + secs
    handling = sum(by_state.get(s, 0.0) for s in _HANDLING)
    available = handling + by_state.get("ready", 0.0)
    r = lambda x: round(x, 1)  # noqa: E731
    return {
        "login_time": r(sum(v for s, v in by_state.items() if s != "offline")),
        "ready_time": r(by_state.get("ready", 0.0)),
        "not_ready_time": r(by_state.get("not_ready", 0.0)),
        "not_ready_by_reason": {k: r(v) for k, v in sorted(not_ready.items())},
        "ringing_time": r(by_state.get("ringing", 0.0)),
        "on_call_time": r(by_state.get("on_call", 0.0)),
        "wrapup_time": r(by_state.get("wrapup", 0.0)),
        "occupancy": _ratio(handling, available),
    }


async def agent_times(
    store: Any, since: float, until: float, *, agent: str | None = None, now: float | None = None
) -> dict[str, dict[str, Any]]:
    """Per agent over [since, until): login time (any state but offline),
    ready time, not-ready time in total and by reason, ringing, on-call and
    wrap-up time, and occupancy = (ringing + on call + wrap-up) / (the same +
    ready). A state still going counts up to `now`."""
    import time as _time

    now = _time.time() if now is None else now
    end = min(until, now)
    extra, args = "", []
    if agent is not None:
        extra, args = "AND agent = ?", [agent]
    async with store.transaction(readonly=True) as tx:
        rows = await tx.fetch(
            _STATE_TIMES_SQL.format(extra=extra),
            [now, end, now, end, since, since, until, now, since, *args],
        )
    per: dict[str, dict[tuple[str, str], float]] = {}
    for row in rows:
        secs = _num(row["seconds"])
        if secs > 0:
            per.setdefault(row["agent"], {})[(row["state"], row["reason"])] = secs
    return {a: _shift_figures(times) for a, times in sorted(per.items())}


async def queue_day(store: Any, since: float, threshold: float) -> list[dict[str, Any]]:
    """Per queue, callers who entered it since `since` (e.g. today): answered
    (and within `threshold` s), the sum of their waits, abandoned, and the
    others who left unanswered (sent on when the queue's time ran out)."""
    async with store.transaction(readonly=True) as tx:
        return await tx.fetch(
            "SELECT queue, "
            "SUM(CASE WHEN agent_answered_at IS NOT NULL THEN 1 ELSE 0 END) AS answered, "
            "SUM(CASE WHEN agent_answered_at IS NOT NULL AND agent_answered_at - queued_at <= ? "
            "THEN 1 ELSE 0 END) AS answered_in_time, "
            "SUM(CASE WHEN agent_answered_at IS NOT NULL THEN agent_answered_at - queued_at "
            "ELSE 0 END) AS wait_sum, "
            "SUM(CASE WHEN agent_answered_at IS NULL AND result = 'abandoned' THEN 1 ELSE 0 END)"
            " AS abandoned, "
            "SUM(CASE WHEN agent_answered_at IS NULL AND result IS NOT NULL "
            "AND result <> 'abandoned' THEN 1 ELSE 0 END) AS timed_out "
            "FROM calls WHERE queued_at >= ? AND queue <> '' GROUP BY queue",
            [threshold, since],
        )


# -- listing and export --------------------------------------------------------


def _row(r: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for c in _STORED:
        v = r[c]
        if c in _JSON and isinstance(v, str):
            v = json.loads(v)
        out[c] = v
    w, e = r["wrapped_up_at"], r["ended_at"]
    out["wrapup_seconds"] = max(0.0, w - e) if w is not None and e is not None else None
    return {c: out[c] for c in EXPORT_COLUMNS}


async def list_calls(
    store: Any, flt: CallFilter, *, limit: int = 100, after: tuple[float, str] | None = None
) -> tuple[list[dict[str, Any]], tuple[float, str] | None]:
    """A page of calls, oldest first, and the cursor of the next page (None: last)."""
    limit = max(1, min(int(limit), 5000))
    extra, extra_args = [], []
    if after is not None:
        # Keyset: rows after (started_at, call_id); the first clause keeps the index range.
        extra = ["started_at >= ?", "(started_at > ? OR call_id > ?)"]
        extra_args = [after[0], after[0], after[1]]
    where, args = flt.where(extra, extra_args)
    async with store.transaction(readonly=True) as tx:
        rows = await tx.fetch(
            f"SELECT {', '.join(_STORED)} FROM calls{where} ORDER BY started_at, call_id LIMIT ?",
            [*args, limit + 1],
        )
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = (rows[-1]["started_at"], rows[-1]["call_id"]) if more and rows else None
    return [_row(r) for r in rows], cursor


async def iter_calls(
    store: Any, flt: CallFilter, page: int = 2000
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every matching call, a page (one short read transaction) at a time, so
    an export of millions never holds the store for long nor memory for all."""
    after = None
    while True:
        rows, after = await list_calls(store, flt, limit=page, after=after)
        if rows:
            yield rows
        if after is None:
            return


_FORMULA = re.compile(r"^[=+\-@\t\r]")
_NUMBERLIKE = re.compile(r"^[+-]?[0-9][0-9 .]*$")
# A formula can also start after a separator inside a cell: a spreadsheet set
# to another separator (";" in much of Europe, or tab) splits the cell there.
_INNER_FORMULA = re.compile(r"([,;\t\r\n|][\s\"']*)(?=[=+\-@])")


def _cell(column: str, value: Any, tz: dt.tzinfo | None) -> str:
    if value is None:
        return ""
    if column in _TIME_COLUMNS:
        try:
            t = (
                dt.datetime.fromtimestamp(value, tz)
                if tz is not None
                else dt.datetime.fromtimestamp(value).astimezone()
            )  # local, with its offset
        except (OverflowError, OSError, ValueError):
            return str(value)  # a time no calendar holds: shown, not fatal to the export
        return t.isoformat(timespec="seconds")
    if column == "agents_rung":
        return " ".join(value)
    if column == "transfers":  # the chain: kind:target, and who took the call on
        return "; ".join(
            f"{t.get('kind')}:{t.get('target')}"
            + (f">{t['to_agent']}" if t.get("to_agent") else "")
            for t in value
        )
    if column == "monitors":  # mode:supervisor, seconds
        return "; ".join(
            f"{m.get('mode')}:{m.get('supervisor')}"
            + (f" {m['ended_at'] - m['started_at']:.0f}s" if m.get("ended_at") else "")
            for m in value
        )
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    text = str(value)
    # A cell a spreadsheet would run as a formula is quoted as text (numbers stay
    # numbers), at its start and after any separator of any locale inside it.
    if _FORMULA.match(text) and not _NUMBERLIKE.match(text):
        text = "'" + text
    return _INNER_FORMULA.sub(r"\1'", text)


def csv_header() -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(EXPORT_COLUMNS)
    return buf.getvalue()


def csv_rows(rows: list[dict[str, Any]], tz: dt.tzinfo | None = None) -> str:
    """Rows as RFC 4180 CSV text (quotes doubled, fields with , " or newlines quoted).
    Times are ISO 8601 with their offset, in `tz` (None: the server's local time)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    for r in rows:
        w.writerow([_cell(c, r[c], tz) for c in EXPORT_COLUMNS])
    return buf.getvalue()


async def export_csv(
    store: Any, flt: CallFilter, tz: dt.tzinfo | None = None, page: int = 2000
) -> AsyncIterator[str]:
    """The CSV export as chunks of text: the header, then a chunk per page."""
    yield csv_header()
    async for rows in iter_calls(store, flt, page):
        yield csv_rows(rows, tz)
