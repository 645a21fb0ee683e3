"""Supervisor reports, call export, campaigns and the do-not-call list, over HTTP.

    add_report_routes(app, store, auth_user, on_campaigns_changed=dialer.wake)

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
GET  /api/campaigns                                         campaigns with contact counts
POST /api/campaigns        ?name&project&hours_start&hours_end&days&timezone
                            &max_in_progress&max_per_minute&max_attempts&retry_after
                            body: the CSV (text/csv) or multipart/form-data with a `file`
                            part (the other fields may be form fields too); needs the
                            header `X-Requested-With: ivr` (see guard.py). Defaults:
                            09:00-20:00 mon-fri UTC, 2 at once, 10 a minute, 3 attempts
                            3600 s apart. Creates the campaign or adds to it; 201 with
                            counts: added, duplicates, dnc, invalid (+ problems by line)
POST /api/campaigns/{name}/status   {"status": "active" | "paused"}
GET  /api/campaigns/{name}/contacts ?status&limit&after_id
GET  /api/dnc  ?after&limit;  POST /api/dnc {"number", "reason"};  DELETE /api/dnc/{number}

Every malformed value is a 400 with a reason (see inputs.py): numbers finite
and in range, times in 1970-2100, a report or export spans at most MAX_SPAN.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import logging
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from ..dialer.campaigns import import_campaign
from ..outcomes import reports
from ..outcomes.store.campaigns import CAMPAIGN_SETTINGS
from .guard import file_upload
from .inputs import BadInput, instant, number, parse_json, read_json, text, whole

log = logging.getLogger(__name__)

MAX_UPLOAD = 20 * 1024 * 1024     # a CSV of a few hundred thousand customers
SUMMARY_TTL = 2.0                  # s a summary is served again to other pages
MAX_SPAN = 366 * 86400             # s a report, listing or export may cover
UPLOAD_TIMEOUT = 600.0             # s to send a campaign's CSV
_FILTERS = ("project", "agent", "disposition", "result", "direction", "campaign")


def add_report_routes(app: web.Application, store: Any,
                      auth_user: Callable[[web.Request], Any], *,
                      on_campaigns_changed: Callable[[], None] | None = None,
                      clock: Callable[[], float] | None = None) -> None:
    """Add the report, export, campaign and DNC routes to the console's app.

    auth_user(request) -> the signed-in User or None (ConsoleApp._user);
    on_campaigns_changed: called after an import or status change (e.g. the
    campaign dialer's wake)."""
    import time
    now = clock or time.time

    def supervisor(request: web.Request) -> Any:
        user = auth_user(request)
        if user is None:
            raise web.HTTPUnauthorized(text="sign in first")
        if not user.is_supervisor:
            raise web.HTTPForbidden(text="for supervisors only")
        return user

    def changed() -> None:
        if on_campaigns_changed is not None:
            try:
                on_campaigns_changed()
            except Exception:
                log.exception("on_campaigns_changed failed")

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
            data = await reports.summary(store, since, until, project=project, agent=agent,
                                         now=t, overdue_after=overdue)
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
        rows, cursor = await reports.list_calls(store, flt, limit=limit,
                                                after=_cursor(q.get("after")))
        return web.json_response({"calls": rows, "next": _encode_cursor(cursor)})

    async def calls_csv(request: web.Request) -> web.StreamResponse:
        supervisor(request)
        q = request.query
        tz = _tz(q.get("tz"))
        flt = _filter(q, tz)
        day = dt.datetime.fromtimestamp(flt.since or now(), tz).strftime("%Y-%m-%d")
        resp = web.StreamResponse(headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="calls-{day}.csv"',
            "Cache-Control": "no-store"})
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
            status=q.get("status") or None, project=q.get("project") or None,
            agent=q.get("agent") or None,
            limit=whole(q.get("limit"), "limit", 500, 1, 5000))
        return web.json_response({"callbacks": rows, "now": now()})

    async def campaigns(request: web.Request) -> web.Response:
        supervisor(request)
        return web.json_response({"campaigns": await store.list_campaigns()})

    @file_upload
    async def upload(request: web.Request) -> web.Response:
        user = supervisor(request)
        params: dict[str, str] = dict(request.query)
        try:
            async with asyncio.timeout(UPLOAD_TIMEOUT):
                if request.content_type.startswith("multipart/"):
                    csv_text = None
                    reader = await request.multipart()
                    while (part := await reader.next()) is not None:
                        if part.name == "file":
                            csv_text = _decode(await _read_limited(part))
                        elif part.name:
                            params[part.name] = _decode(await _read_limited(part, 1000))
                    if csv_text is None:
                        raise web.HTTPBadRequest(text="no `file` part with the CSV")
                else:
                    csv_text = _decode(await _read_limited(request.content))
        except TimeoutError:
            raise web.HTTPRequestTimeout(text="the upload took too long")
        name, project = params.get("name", ""), params.get("project", "")
        if not name or not project:
            raise web.HTTPBadRequest(text="name and project are required")
        settings = {k: params[k] for k in CAMPAIGN_SETTINGS if params.get(k, "") != ""}
        try:
            result = await import_campaign(store, name, project, csv_text, now=now(), **settings)
        except (ValueError, OverflowError) as exc:
            raise web.HTTPBadRequest(text=str(exc))
        log.info("campaign %s imported by %s: %d added, %d duplicates, %d on the DNC list, "
                 "%d invalid", name, user.login, result["added"], result["duplicates"],
                 result["dnc"], result["invalid"])
        changed()
        return web.json_response(result, status=201)

    async def campaign_status(request: web.Request) -> web.Response:
        supervisor(request)
        data = await read_json(request)
        status = data.get("status")
        if status not in ("active", "paused"):
            raise web.HTTPBadRequest(text="status must be active or paused")
        try:
            await store.set_campaign_status(request.match_info["name"], status, now=now())
        except KeyError:
            raise web.HTTPNotFound(text="no such campaign")
        changed()
        return web.json_response({"ok": True, "status": status})

    async def contacts(request: web.Request) -> web.Response:
        supervisor(request)
        q = request.query
        rows = await store.list_contacts(
            request.match_info["name"], status=q.get("status") or None,
            limit=whole(q.get("limit"), "limit", 500, 1, 5000),
            after_id=whole(q.get("after_id"), "after_id", 0, 0, 2 ** 53))
        return web.json_response({"contacts": rows})

    async def dnc_list(request: web.Request) -> web.Response:
        supervisor(request)
        q = request.query
        rows = await store.list_dnc(limit=whole(q.get("limit"), "limit", 1000, 1, 5000),
                                    after=q.get("after", "")[:64])
        return web.json_response({"numbers": rows})

    async def dnc_add(request: web.Request) -> web.Response:
        user = supervisor(request)
        data = await read_json(request)
        try:
            changes = await store.add_dnc(text(data, "number", limit=64),
                                          text(data, "reason", limit=1000)[:200],
                                          added_by=user.login, now=now())
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc))
        return web.json_response({"ok": True, **changes})

    async def dnc_remove(request: web.Request) -> web.Response:
        supervisor(request)
        if not await store.remove_dnc(request.match_info["number"]):
            raise web.HTTPNotFound(text="not on the list")
        return web.json_response({"ok": True})

    app.add_routes([
        web.get("/api/reports/summary", summary),
        web.get("/api/calls", calls),
        web.get("/api/calls.csv", calls_csv),
        web.get("/api/callbacks", callbacks),
        web.get("/api/campaigns", campaigns),
        web.post("/api/campaigns", upload),
        web.post("/api/campaigns/{name}/status", campaign_status),
        web.get("/api/campaigns/{name}/contacts", contacts),
        web.get("/api/dnc", dnc_list),
        web.post("/api/dnc", dnc_add),
        web.delete("/api/dnc/{number}", dnc_remove),
    ])


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
    return reports.CallFilter(since=since, until=until,
                              **{k: q[k] for k in _FILTERS if q.get(k)})


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


async def _read_limited(stream: Any, limit: int = MAX_UPLOAD) -> bytes:
    """Read a body or multipart part, refusing more than `limit` bytes (the
    console app's small client_max_size is for JSON, not for CSV files)."""
    chunks, size = [], 0
    while True:
        if hasattr(stream, "read_chunk") and not hasattr(stream, "readany"):
            chunk = await stream.read_chunk(64 * 1024)       # multipart part
        else:
            chunk = await stream.readany()                   # request body
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")
