"""Supervisor reports and the call export, over HTTP (campaigns and the do-not-call
list: campaigns.py).

    add_report_routes(app, store, auth_user)

Every route is for signed-in supervisors only (401 without a session, 403
for agents). Times in queries are epoch seconds or ISO 8601 (a date or a
date and time; without an offset they are read in `tz`, an IANA zone,
default the server's). Without since/until a report covers today in `tz`.

GET  /api/reports/summary  ?since&until&project&agent&tz   figures (see ivr.outcomes.reports)
GET  /api/calls            ?since&until&project&agent&disposition&result&direction&campaign
                            &limit&after                    JSON page + next cursor
                            (agent=- : calls no agent answered)
GET  /api/calls.csv        same filters                     CSV, streamed page by page
GET  /api/callbacks        ?status&project&agent&limit

Every malformed value is a 400 with a reason (see inputs.py): numbers finite
and in range, times in 1970-2100, a report or export spans at most MAX_SPAN.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from ..outcomes import reports
from .guard import require_supervisor
from .inputs import BadInput, instant, number, parse_json, whole

log = logging.getLogger(__name__)

SUMMARY_TTL = 2.0  # s a summary is served again to other pages
MAX_SPAN = 366 * 86400  # s a report, listing or export may cover
_FILTERS = ("project", "agent", "disposition", "result", "direction", "campaign")


def add_report_routes(
    app: web.Application,
    store: Any,
    auth_user: Callable[[web.Request], Any],
    *,
    clock: Callable[[], float] | None = None,
) -> None:
    """Add the report and export routes to the console's app.

    auth_user(request) -> the signed-in User or None (ConsoleApp._user)."""
    import time

    now = clock or time.time

    def supervisor(request: web.Request) -> Any:
        return require_supervisor(auth_user(request))

    # Every supervisor's page asks for the same figures every few seconds:
    # one query serves them all for SUMMARY_TTL seconds.
    cache: dict[tuple, tuple[float, dict[str, Any]]] = {}

    async def summary(request: web.Request) -> web.Response:
        supervisor(request)
        q = request.query
        tz = _tz(q.get("tz"))
        since, until = _period(q, tz)
        overdue = number(q.get("overdue_after"), "overdue_after", 900.0, 0, 30 * 86400)
        project, agent = q.get("project") or None, q.get("agent") or None
        key = (since, until, project, agent, overdue)
        t = now()
        hit = cache.get(key)
        if hit is not None and t - hit[0] < SUMMARY_TTL:
            return web.json_response(hit[1])
        try:
            data = await reports.summary(
                store, since, until, project=project, agent=agent, now=t, overdue_after=overdue
            )
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc))
        if len(cache) >= 64:
            cache.clear()
        cache[key] = (t, data)
        return web.json_response(data)

    async def calls(request: web.Request) -> web.Response:
        supervisor(request)
        q = request.query
        flt = _filter(q, _tz(q.get("tz")))
        limit = whole(q.get("limit"), "limit", 100, 1, 5000)
        rows, cursor = await reports.list_calls(
            store, flt, limit=limit, after=_cursor(q.get("after"))
        )
        return web.json_response({"calls": rows, "next": _encode_cursor(cursor)})

    async def calls_csv(request: web.Request) -> web.StreamResponse:
        supervisor(request)
        q = request.query
        tz = _tz(q.get("tz"))
        flt = _filter(q, tz)
        day = dt.datetime.fromtimestamp(flt.since or now(), tz).strftime("%Y-%m-%d")
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="calls-{day}.csv"',
                "Cache-Control": "no-store",
            }
        )
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        async for chunk in reports.export_csv(store, flt, tz):
            await resp.write(chunk.encode("utf-8"))
        await resp.write_eof()
        return resp

    async def callbacks(request: web.Request) -> web.Response:
        supervisor(request)
        q = request.query
        rows = await store.list_callbacks(
            status=q.get("status") or None,
            project=q.get("project") or None,
            agent=q.get("agent") or None,
            limit=whole(q.get("limit"), "limit", 500, 1, 5000),
        )
        return web.json_response({"callbacks": rows, "now": now()})

    app.add_routes(
        [
            web.get("/api/reports/summary", summary),
            web.get("/api/calls", calls),
            web.get("/api/calls.csv", calls_csv),
            web.get("/api/callbacks", callbacks),
        ]
    )


# -- parsing ----------------------------------------------------------------------


def _tz(name: str | None) -> dt.tzinfo | None:
    """The zone asked for; None: the server's local time (DST-aware)."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise web.HTTPBadRequest(text=f"unknown time zone {name!r}")


def _midnight(t: dt.datetime, tz: dt.tzinfo | None) -> float:
    return dt.datetime.combine(t.date(), dt.time(0), tzinfo=tz).timestamp()


def _period(q: Any, tz: dt.tzinfo | None) -> tuple[float, float]:
    since = instant(q.get("since"), "since", tz)
    until = instant(q.get("until"), "until", tz)
    if since is None:
        ref = dt.datetime.fromtimestamp(until - 1, tz) if until else dt.datetime.now(tz)
        since = _midnight(ref, tz)
    if until is None:
        day = dt.datetime.fromtimestamp(since, tz) + dt.timedelta(days=1)
        until = _midnight(day, tz)
    if until <= since:
        raise web.HTTPBadRequest(text="until must be after since")
    if until - since > MAX_SPAN:
        raise web.HTTPBadRequest(text=f"a period is at most {MAX_SPAN // 86400} days")
    return since, until


def _filter(q: Any, tz: dt.tzinfo | None) -> reports.CallFilter:
    since, until = _period(q, tz)
    return reports.CallFilter(since=since, until=until, **{k: q[k] for k in _FILTERS if q.get(k)})


def _encode_cursor(cursor: tuple[float, str] | None) -> str | None:
    if cursor is None:
        return None
    return base64.urlsafe_b64encode(json.dumps(list(cursor)).encode()).decode()


def _cursor(value: str | None) -> tuple[float, str] | None:
    if not value:
        return None
    try:
        t, call_id = parse_json(base64.urlsafe_b64decode(value[:512].encode()))
        if not isinstance(t, (int, float)) or not isinstance(call_id, str):
            raise TypeError
        return float(t), call_id
    except (BadInput, ValueError, TypeError, binascii.Error):
        raise web.HTTPBadRequest(text="bad cursor")
