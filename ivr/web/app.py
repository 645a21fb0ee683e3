"""The aiohttp application: routes, handlers and the consoles' WebSocket.

Everything a handler needs comes in one explicit WebContext; handlers never
reach into other stages' internals beyond what it offers. What the consoles
show of each call is view.py's; the messages on the socket are messages.py's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import WSMsgType, web

from ..ami.actions import ActionError, CallGone, NotConnected
from ..calls.model import Call
from ..config import WebSettings
from ..logs import about
from ..pop import CallCard, ScriptPop
from ..supervision import MonitorError
from ..transfers import TransferError
from .auth import COOKIE, Auth, Throttled
from .campaigns import add_campaign_routes
from .guard import CLIENT, SESSION, USER, Guard
from .hub import Client, ConsoleHub
from .inputs import BadInput, instant, parse_json, read_json, text
from .messages import MESSAGES, SERVICE, message
from .reports import add_report_routes
from .shift import ShiftWeb
from .view import ConsoleView, dispositions

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"

MAX_NOTE = 4000
CALLBACK_HORIZON = 366 * 86400  # a callback is booked at most a year ahead
SESSION_RECHECK = 30.0  # s between checks of the open consoles' sessions


@dataclass
class WebContext:
    auth: Auth
    hub: ConsoleHub
    pop: ScriptPop
    live_calls: Callable[[], list[Call]]
    save_wrapup: Callable[..., Awaitable[None]]
    transfer: Callable[[str | None, str], Awaitable[None]]  # (customer's channel, department)
    departments: Callable[[], Awaitable[list[str]]]
    # What the consoles show of each call (the service's, wired to its pop and live
    # coaching); None: the app makes one for its pop.
    view: ConsoleView | None = None
    problems: Callable[[], list[str]] = lambda: []
    health: Callable[[], dict[str, dict]] = lambda: {}
    wrapup_saved: Callable[[str, str], Awaitable[None]] | None = None  # (agent, call id)
    metrics: Callable[[], bytes] | None = None  # Prometheus text exposition
    store: Any = None  # reports, export, campaigns, DNC (supervisors)
    on_campaigns_changed: Callable[[], None] | None = None
    web: WebSettings = field(default_factory=WebSettings)
    supervision: Any = None  # listen, whisper, barge (ivr/supervision.py)
    transfers: Any = None  # consult transfers (ivr/transfers.py)
    agents: Callable[[], list[dict[str, str]]] = lambda: []  # consult targets: login, name
    shift: ShiftWeb | None = None  # agent states, wallboard


@web.middleware
async def _log_context(request: web.Request, handler: Callable) -> web.StreamResponse:
    """What a request logs is about its signed-in user and the call in its path."""
    user = request.get(USER)
    with about(request.match_info.get("call_id"), user.login if user else None):
        return await handler(request)


class ConsoleApp:
    def __init__(self, ctx: WebContext):
        if ctx.view is None:
            ctx.view = ConsoleView(ctx.hub, ctx.pop)
            ctx.pop.subscribe_cards(ctx.view.card_changed)
        self.view: ConsoleView = ctx.view
        self.ctx = ctx
        self.guard = Guard(ctx.web, ctx.auth)
        self.session_recheck = SESSION_RECHECK
        self._recheck: asyncio.Task | None = None

    # ------------------------------------------------------------ push from the stages
    def scripts_changed(self, problems: list[str]) -> None:
        self.ctx.hub.to_everyone(message("problems", problems=problems))

    # ------------------------------------------------------------ app
    def build(self) -> web.Application:
        app = web.Application(
            client_max_size=64 * 1024, middlewares=[self.guard.middleware, _log_context]
        )
        app.on_response_prepare.append(self.guard.on_response_prepare)
        app.add_routes(
            [
                web.get("/", self.page("login.html")),
                web.get("/agent", self.page("agent.html")),
                web.get("/supervisor", self.page("supervisor.html")),
                web.post("/api/login", self.login),
                web.post("/api/logout", self.logout),
                web.get("/api/health", self.health),
                web.get("/metrics", self.metrics),
                web.get("/ws", self.websocket),
                web.post("/api/calls/{call_id}/wrapup", self.wrapup),
                web.post("/api/calls/{call_id}/transfer", self.transfer),
                web.post("/api/calls/{call_id}/checklist", self.checklist),
                web.post("/api/calls/{call_id}/consult", self.consult),
                web.post("/api/calls/{call_id}/consult/complete", self.consult_complete),
                web.post("/api/calls/{call_id}/consult/cancel", self.consult_cancel),
                web.post("/api/calls/{call_id}/monitor", self.monitor),
                web.post("/api/calls/{call_id}/monitor/stop", self.monitor_stop),
                web.static("/static", STATIC),
            ]
        )
        if self.ctx.store is not None:
            add_report_routes(app, self.ctx.store, self._user)
            add_campaign_routes(
                app, self.ctx.store, self._user, on_campaigns_changed=self.ctx.on_campaigns_changed
            )
        app.on_startup.append(self._start_rechecks)
        if self.ctx.shift is not None:
            self.ctx.shift.add_routes(app, self._user, self._json)
        app.on_shutdown.append(self._close_sockets)
        return app

    async def _start_rechecks(self, app: web.Application) -> None:
        self._recheck = asyncio.ensure_future(self._recheck_sessions())

    async def _recheck_sessions(self) -> None:
        """Open consoles keep their session alive, and close once it ends (signed
        out on another instance, secret changed, expired)."""
        while True:
            await asyncio.sleep(self.session_recheck)
            by_session: dict[str, list[Client]] = {}
            for client in list(self.ctx.hub.clients):
                by_session.setdefault(client.session, []).append(client)
            for sid, clients in by_session.items():
                try:
                    alive = await self.ctx.auth.check(sid) is not None
                except Exception as exc:  # store down: keep the consoles
                    log.warning("console session check failed: %s", exc)
                    break
                if not alive:
                    for client in clients:
                        await client.ws.close(code=4401, message=b"signed out")

    async def _close_sockets(self, app: web.Application) -> None:
        if self._recheck is not None:
            self._recheck.cancel()
        # Open consoles would hold the shutdown for aiohttp's whole grace period;
        # "going away" makes the pages reconnect to the next instance at once.
        for client in list(self.ctx.hub.clients):
            await client.ws.close(code=1001, message=b"service restarting")

    @staticmethod
    def page(name: str):
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-store"})

        return handler

    # ------------------------------------------------------------ auth
    @staticmethod
    def _user(request: web.Request):
        """The signed-in user of a request (the guard read the session cookie)."""
        return request.get(USER)

    async def _json(self, request: web.Request) -> dict[str, Any]:
        return await read_json(request, self.ctx.web.body_timeout)

    async def login(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        login, secret = text(data, "login", limit=128), text(data, "secret", limit=1024)
        try:
            signed = await self.ctx.auth.sign_in(
                login, secret, request[CLIENT], request.headers.get("User-Agent", "")
            )
        except Throttled as exc:
            raise web.HTTPTooManyRequests(
                text=str(exc), headers={"Retry-After": str(max(1, round(exc.retry_after)))}
            )
        if signed is None:
            raise web.HTTPUnauthorized(text="wrong login or secret")
        cookie, session = signed
        user = session.user
        if self.ctx.shift is not None:
            await self.ctx.shift.signed_in(user)  # an agent joins their queues
        resp = web.json_response(
            {
                "login": user.login,
                "name": user.name,
                "role": user.role,
                "expires_at": session.expires_at,
            }
        )
        resp.set_cookie(
            COOKIE,
            cookie,
            httponly=True,
            samesite="Strict",
            path="/",
            secure=self.guard.secure(request),
            max_age=int(self.ctx.auth.max_age),
        )
        return resp

    async def logout(self, request: web.Request) -> web.Response:
        user = self._user(request)
        if user is not None and self.ctx.shift is not None:
            await self.ctx.shift.signed_out(user)  # an agent leaves their queues
        sid = await self.ctx.auth.sign_out(request.cookies.get(COOKIE))
        if sid is not None:
            for client in [c for c in self.ctx.hub.clients if c.session == sid]:
                await client.ws.close(code=4401, message=b"signed out")
        resp = web.json_response({"ok": True})
        resp.del_cookie(COOKIE, path="/")
        return resp

    async def health(self, request: web.Request) -> web.Response:
        """200 when every component is up, else 503 naming what is down."""
        components = self.ctx.health()
        ok = all(c.get("ok") for c in components.values())
        return web.json_response(
            {"ok": ok, "live_calls": len(self.ctx.live_calls()), "components": components},
            status=200 if ok else 503,
        )

    async def metrics(self, request: web.Request) -> web.Response:
        if self.ctx.metrics is None:
            raise web.HTTPNotFound(text="metrics are off")
        if not self.guard.may_read_metrics(request):
            raise web.HTTPForbidden(text="metrics are served to loopback and web.metrics_from only")
        return web.Response(
            body=self.ctx.metrics(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    # ------------------------------------------------------------ live push
    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        session = request[SESSION]  # the cookie only, never a URL token
        user = session.user if session else None
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=16 * 1024)
        await ws.prepare(request)
        if user is None:
            # 4401 tells the page to go to the sign-in form instead of retrying.
            await ws.close(code=4401, message=b"sign in first")
            return ws
        role = "supervisor" if user.is_supervisor else "agent"
        client = Client(login=user.login, role=role, ws=ws, session=session.id)
        departments: list[str] = []
        if role == "agent":
            try:
                departments = await self.ctx.departments()
            except Exception as exc:  # AMI down: the console still works
                log.warning("departments unavailable: %s", exc)
        # No await from here to hub.add: a card pushed meanwhile would reach
        # neither this hello nor the socket.
        hello = message(
            "hello",
            user={"login": user.login, "name": user.name, "role": role},
            problems=self.ctx.problems(),
        )
        notices: list[dict[str, Any]] = []
        if role == "agent":
            # A page that reloads (or a service restart) gets back the coaching so far:
            # prompts, ticks, transcript, "can't check", taps and notices.
            hello["cards"] = self.view.cards_for(user.login)
            hello["departments"] = departments
            hello["agents"] = [a for a in self.ctx.agents() if a["login"] != user.login]
            # Consultations and supervisors on the line that are going on now.
            for stage in (self.ctx.transfers, self.ctx.supervision):
                if stage is not None:
                    notices += stage.notices_for(user.login)
        else:
            hello["board"] = [self.view.board_entry(c) for c in self.ctx.live_calls()]
            hello["can_monitor"] = bool(getattr(user, "phone", ""))
        if self.ctx.shift is not None:
            hello.update(self.ctx.shift.hello(user))
        client.send(hello)
        for notice in notices:
            client.send(notice)
        self.ctx.hub.add(client)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                if not self._client_message(user.login, msg.data):
                    await ws.close(code=1003, message=b"bad message")
                    break
        finally:
            self.ctx.hub.remove(client)
        return ws

    def _client_message(self, login: str, raw: str) -> bool:
        """Messages from a page (messages.py: ping, checklist). Garbage closes the socket."""
        try:
            data = parse_json(raw)
        except BadInput as exc:
            log.warning("console %s sent bad JSON (%s); closing that connection", login, exc)
            return False
        if not isinstance(data, dict):
            return False
        kind = MESSAGES.get(str(data.get("type")))
        if kind is None or SERVICE not in kind.to or set(data) - {"type", *kind.fields}:
            log.warning("console %s sent an unknown message; closing", login)
            return False
        if data.get("type") == "ping":
            return True
        if data.get("type") == "checklist":
            return (
                self.ctx.pop.mark_item(
                    login,
                    str(data.get("call_id")),
                    str(data.get("item")),
                    bool(data.get("done")),
                    by="agent",
                )
                or True
            )
        log.warning("console %s sent an unknown message type; closing", login)
        return False

    # ------------------------------------------------------------ agent actions
    def _card(self, request: web.Request) -> tuple[Any, CallCard]:
        user = self._user(request)
        if user is None:
            raise web.HTTPUnauthorized(text="sign in first")
        card = self.ctx.pop.card(user.login, request.match_info["call_id"])
        if card is None:
            raise web.HTTPNotFound(text="no such call on your console")
        return user, card

    async def checklist(self, request: web.Request) -> web.Response:
        user, card = self._card(request)
        data = await self._json(request)
        done = data.get("done")
        if not isinstance(done, bool):
            raise web.HTTPBadRequest(text="done must be true or false")
        if not self.ctx.pop.mark_item(user.login, card.call_id, text(data, "item"), done):
            raise web.HTTPBadRequest(text="no such checklist item")
        return web.json_response({"ok": True})

    async def transfer(self, request: web.Request) -> web.Response:
        user, card = self._card(request)
        data = await self._json(request)
        department = text(data, "department")
        if department not in await self.ctx.departments():
            raise web.HTTPBadRequest(text=f"unknown department {department!r}")
        if card.phase != "live":
            raise web.HTTPConflict(text="the call is not live")
        customer = card.call.customer_leg()
        try:
            await self.ctx.transfer(
                customer.channel if customer and customer.ended_at is None else None, department
            )
        except CallGone as exc:
            raise web.HTTPConflict(text=str(exc))
        except NotConnected as exc:
            raise web.HTTPServiceUnavailable(text=f"the PBX is not connected: {exc}")
        except ActionError as exc:
            raise web.HTTPBadGateway(text=str(exc))
        return web.json_response({"ok": True})

    # ------------------------------------------------------------ consult transfers
    async def consult(self, request: web.Request) -> web.Response:
        """Attended transfer from the console: hold the customer, call the target."""
        user, card = self._card(request)
        data = await self._json(request)
        target = text(data, "target", limit=64)
        if not target:
            raise web.HTTPBadRequest(text="target must be an agent or a department")
        if card.phase != "live":
            raise web.HTTPConflict(text="the call is not live")
        consult = await self._transfer_step(
            self.ctx.transfers.consult(card.call_id, user.login, target)
        )
        return web.json_response(consult.to_json(), status=202)

    async def consult_complete(self, request: web.Request) -> web.Response:
        user, card = self._card(request)
        await self._transfer_step(self.ctx.transfers.complete(card.call_id, user.login))
        return web.json_response({"ok": True}, status=202)

    async def consult_cancel(self, request: web.Request) -> web.Response:
        user, card = self._card(request)
        await self._transfer_step(self.ctx.transfers.cancel(card.call_id, user.login))
        return web.json_response({"ok": True}, status=202)

    async def _transfer_step(self, step: Awaitable[Any]) -> Any:
        if self.ctx.transfers is None:
            raise web.HTTPNotFound(text="transfers are not available")
        try:
            return await step
        except TransferError as exc:
            raise _http(exc.status, str(exc)) from None

    # ------------------------------------------------------------ supervisors listen in
    def _supervisor(self, request: web.Request):
        user = self._user(request)
        if user is None:
            raise web.HTTPUnauthorized(text="sign in first")
        if not user.is_supervisor:
            # Agents never listen in on each other.
            raise web.HTTPForbidden(text="only supervisors may listen in")
        if self.ctx.supervision is None:
            raise web.HTTPNotFound(text="listening in is not available")
        return user

    async def monitor(self, request: web.Request) -> web.Response:
        """A supervisor listens to (whispers to, barges into) a live call on their phone."""
        user = self._supervisor(request)
        data = await self._json(request)
        mode = text(data, "mode", limit=16)
        try:
            request_id = await self.ctx.supervision.start(request.match_info["call_id"], user, mode)
        except MonitorError as exc:
            raise _http(exc.status, str(exc)) from None
        return web.json_response(
            {"monitor": request_id, "mode": mode, "phone": user.phone}, status=202
        )

    async def monitor_stop(self, request: web.Request) -> web.Response:
        user = self._supervisor(request)
        if not await self.ctx.supervision.stop(request.match_info["call_id"], user):
            raise web.HTTPNotFound(text="you are not listening to this call")
        return web.json_response({"ok": True}, status=202)

    async def wrapup(self, request: web.Request) -> web.Response:
        user, card = self._card(request)
        data = await self._json(request)
        disposition = text(data, "disposition", limit=100)
        chosen = next((d for d in dispositions(card) if d["id"] == disposition), None)
        if chosen is None:
            raise web.HTTPBadRequest(text="choose one of the dispositions")
        notes = text(data, "notes", limit=MAX_NOTE).strip()
        if chosen.get("needs_note") and not notes:
            raise web.HTTPBadRequest(text=f"'{chosen['label']}' needs a note")
        callback_at = instant(data.get("callback_at"), "callback_at")
        if callback_at is not None:
            now = time.time()
            if callback_at < now - 60:
                raise web.HTTPBadRequest(text="the callback time is in the past")
            if callback_at > now + CALLBACK_HORIZON:
                raise web.HTTPBadRequest(text="the callback time is more than a year ahead")
        if chosen.get("needs_callback_time") and callback_at is None:
            raise web.HTTPBadRequest(text=f"'{chosen['label']}' needs a callback time")
        checklist = {k: v["done"] for k, v in card.checklist.items()}
        # Durable first: the agent only sees "saved" once the store has it.
        await self.ctx.save_wrapup(
            call_id=card.call_id,
            agent=user.login,
            disposition=chosen["id"],
            notes=notes,
            callback_at=callback_at,
            checklist=checklist,
        )
        if self.ctx.wrapup_saved is not None:
            try:
                await self.ctx.wrapup_saved(user.login, card.call_id)  # e.g. ready again
            except Exception:
                log.exception("agent %s: after the wrap-up of %s", user.login, card.call_id)
        self.ctx.pop.wrapped_up(user.login, card.call_id)
        return web.json_response(
            {"saved": True, "call_id": card.call_id, "disposition": chosen["id"]}
        )


def _http(status: int, text: str) -> web.HTTPException:
    """An HTTP error of the given status with a reason (never a 500)."""
    kinds = {
        400: web.HTTPBadRequest,
        403: web.HTTPForbidden,
        404: web.HTTPNotFound,
        409: web.HTTPConflict,
        502: web.HTTPBadGateway,
        503: web.HTTPServiceUnavailable,
    }
    return kinds.get(status, web.HTTPConflict)(text=text)
