"""Outbound campaigns and the do-not-call list, over HTTP (supervisors only).

    add_campaign_routes(app, store, auth_user, on_campaigns_changed=dialer.wake)

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

What a campaign and its customer list may be is the dialer's (ivr/dialer/campaigns.py);
every malformed value is a 400 with its reason.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from aiohttp import BodyPartReader, web

from ..dialer.campaigns import import_campaign
from ..outcomes.store.campaigns import CAMPAIGN_SETTINGS
from .guard import file_upload, require_supervisor
from .inputs import read_json, text, whole

log = logging.getLogger(__name__)

MAX_UPLOAD = 20 * 1024 * 1024  # a CSV of a few hundred thousand customers
UPLOAD_TIMEOUT = 600.0  # s to send a campaign's CSV


def add_campaign_routes(
    app: web.Application,
    store: Any,
    auth_user: Callable[[web.Request], Any],
    *,
    on_campaigns_changed: Callable[[], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> None:
    """Add the campaign and DNC routes to the console's app.

    auth_user(request) -> the signed-in User or None (ConsoleApp._user);
    on_campaigns_changed: called after an import or status change (e.g. the
    campaign dialer's wake)."""
    import time

    now = clock or time.time

    def supervisor(request: web.Request) -> Any:
        return require_supervisor(auth_user(request))

    def changed() -> None:
        if on_campaigns_changed is not None:
            try:
                on_campaigns_changed()
            except Exception:
                log.exception("on_campaigns_changed failed")

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
                        if not isinstance(part, BodyPartReader):
                            raise web.HTTPBadRequest(text="nested multipart is not taken")
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
        log.info(
            "campaign %s imported by %s: %d added, %d duplicates, %d on the DNC list, %d invalid",
            name,
            user.login,
            result["added"],
            result["duplicates"],
            result["dnc"],
            result["invalid"],
        )
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
            request.match_info["name"],
            status=q.get("status") or None,
            limit=whole(q.get("limit"), "limit", 500, 1, 5000),
            after_id=whole(q.get("after_id"), "after_id", 0, 0, 2**53),
        )
        return web.json_response({"contacts": rows})

    async def dnc_list(request: web.Request) -> web.Response:
        supervisor(request)
        q = request.query
        rows = await store.list_dnc(
            limit=whole(q.get("limit"), "limit", 1000, 1, 5000), after=q.get("after", "")[:64]
        )
        return web.json_response({"numbers": rows})

    async def dnc_add(request: web.Request) -> web.Response:
        user = supervisor(request)
        data = await read_json(request)
        try:
            changes = await store.add_dnc(
                text(data, "number", limit=64),
                text(data, "reason", limit=1000)[:200],
                added_by=user.login,
                now=now(),
            )
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc))
        return web.json_response({"ok": True, **changes})

    async def dnc_remove(request: web.Request) -> web.Response:
        supervisor(request)
        if not await store.remove_dnc(request.match_info["number"]):
            raise web.HTTPNotFound(text="not on the list")
        return web.json_response({"ok": True})

    app.add_routes(
        [
            web.get("/api/campaigns", campaigns),
            web.post("/api/campaigns", upload),
            web.post("/api/campaigns/{name}/status", campaign_status),
            web.get("/api/campaigns/{name}/contacts", contacts),
            web.get("/api/dnc", dnc_list),
            web.post("/api/dnc", dnc_add),
            web.delete("/api/dnc/{number}", dnc_remove),
        ]
    )


async def _read_limited(stream: Any, limit: int = MAX_UPLOAD) -> bytes:
    """Read a body or multipart part, refusing more than `limit` bytes (the
    console app's small client_max_size is for JSON, not for CSV files)."""
    chunks, size = [], 0
    while True:
        if hasattr(stream, "read_chunk") and not hasattr(stream, "readany"):
            chunk = await stream.read_chunk(64 * 1024)  # multipart part
        else:
            chunk = await stream.readany()  # request body
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
