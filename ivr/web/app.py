"""The aiohttp application: routes, handlers and the live push.

Everything a handler needs comes in one explicit WebContext; handlers never
reach into other stages' internals beyond what it offers.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import WSMsgType, web

from ..ami.actions import ActionError, CallGone, NotConnected
from ..calls.events import CallEnded, CallEvent
from ..calls.model import Call
from ..pop import CallCard, ScriptPop
from .auth import COOKIE, Auth
from .hub import Client, ConsoleHub
from .reports import add_report_routes
from .shift import ShiftWeb

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"

# Offered when a call popped no script (the wrap-up must still be possible).
FALLBACK_DISPOSITIONS = [
    {"id": "resolved", "label": "Resolved", "needs_callback_time": False, "needs_note": False},
    {"id": "callback", "label": "Call back", "needs_callback_time": True, "needs_note": False},
    {"id": "transferred", "label": "Transferred", "needs_callback_time": False, "needs_note": False},
    {"id": "other", "label": "Other", "needs_callback_time": False, "needs_note": True},
]
MAX_NOTE = 4000


@dataclass
class WebContext:
    auth: Auth
    hub: ConsoleHub
    pop: ScriptPop
    live_calls: Callable[[], list[Call]]
    save_wrapup: Callable[..., Awaitable[None]]
    transfer: Callable[[Call, str], Awaitable[None]]
    departments: Callable[[], Awaitable[list[str]]]
    problems: Callable[[], list[str]] = lambda: []
    extra_hello: dict[str, Any] = field(default_factory=dict)
    store: Any = None                        # reports, export, campaigns, DNC (supervisors)
    on_campaigns_changed: Callable[[], None] | None = None
    shift: ShiftWeb | None = None            # agent states, wallboard


def board_entry(call: Call, pop: ScriptPop) -> dict[str, Any]:
    """One live call as the supervisor sees it."""
    card = next((c for (_, cid), c in pop.cards.items() if cid == call.call_id), None)
    script = card.script if card else None
    return {
        "call_id": call.call_id, "state": call.state.value, "direction": call.direction.value,
        "agent": call.agent or (call.agents_rung[-1] if call.agents_rung else None),
        "project": call.project, "queue": call.queue, "customer_number": call.customer_num,
        "script": script["title"] if script else None,
        "script_id": script["id"] if script else None,
        "started_at": call.started_at, "answered_at": call.answered_at, "ended_at": call.ended_at,
        "result": call.result.value if call.result else None,
    }


class ConsoleApp:
    def __init__(self, ctx: WebContext):
        self.ctx = ctx

    # ------------------------------------------------------------ push from the stages
    def card_changed(self, login: str, call_id: str, card: CallCard | None) -> None:
        self.ctx.hub.to_login(login, {"type": "card", "call_id": call_id,
                                      "card": card.to_json() if card else None})

    def call_event(self, event: CallEvent) -> None:
        entry = board_entry(event.call, self.ctx.pop)
        if isinstance(event, CallEnded):
            self.ctx.hub.to_supervisors({"type": "board_ended", "call": entry})
        else:
            self.ctx.hub.to_supervisors({"type": "board_call", "call": entry})

    def scripts_changed(self, problems: list[str]) -> None:
        self.ctx.hub.to_everyone({"type": "problems", "problems": problems})

    # ------------------------------------------------------------ app
    def build(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.add_routes([
            web.get("/", self.page("login.html")),
            web.get("/agent", self.page("agent.html")),
            web.get("/supervisor", self.page("supervisor.html")),
            web.post("/api/login", self.login),
            web.post("/api/logout", self.logout),
            web.get("/api/health", self.health),
            web.get("/ws", self.websocket),
            web.post("/api/calls/{call_id}/wrapup", self.wrapup),
            web.post("/api/calls/{call_id}/transfer", self.transfer),
            web.post("/api/calls/{call_id}/checklist", self.checklist),
            web.static("/static", STATIC),
        ])
        if self.ctx.store is not None:
            add_report_routes(app, self.ctx.store, self._user,
                              on_campaigns_changed=self.ctx.on_campaigns_changed)
        if self.ctx.shift is not None:
            self.ctx.shift.add_routes(app, self._user, self._json)
        app.on_shutdown.append(self._close_sockets)
        return app

    async def _close_sockets(self, app: web.Application) -> None:
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
    def _user(self, request: web.Request):
        token = request.cookies.get(COOKIE) or request.headers.get("Authorization", "") \
            .removeprefix("Bearer ")
        return self.ctx.auth.user_for(token)

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text="body must be JSON")
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text="body must be a JSON object")
        return data

    async def login(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        token = self.ctx.auth.sign_in(str(data.get("login", "")), str(data.get("secret", "")))
        if token is None:
            log.info("console sign-in refused for %r", str(data.get("login", ""))[:40])
            raise web.HTTPUnauthorized(text="wrong login or secret")
        user = self.ctx.auth.user_for(token)
        if self.ctx.shift is not None:
            await self.ctx.shift.signed_in(user)     # an agent joins their queues
        resp = web.json_response({"login": user.login, "name": user.name, "role": user.role,
                                  "token": token})
        resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", max_age=self.ctx.auth.ttl)
        return resp

    async def logout(self, request: web.Request) -> web.Response:
        user = self._user(request)
        if user is not None and self.ctx.shift is not None:
            await self.ctx.shift.signed_out(user)    # an agent leaves their queues
        resp = web.json_response({"ok": True})
        resp.del_cookie(COOKIE)
        return resp

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "live_calls": len(self.ctx.live_calls())})

    # ------------------------------------------------------------ live push
    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        user = self._user(request) or self.ctx.auth.user_for(request.query.get("token"))
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=16 * 1024)
        await ws.prepare(request)
        if user is None:
            # 4401 tells the page to go to the sign-in form instead of retrying.
            await ws.close(code=4401, message=b"sign in first")
            return ws
        role = "supervisor" if user.is_supervisor else "agent"
        client = Client(login=user.login, role=role, ws=ws)
        departments: list[str] = []
        if role == "agent":
            try:
                departments = await self.ctx.departments()
            except Exception as exc:   # AMI down: the console still works
                log.warning("departments unavailable: %s", exc)
        # No await from here to hub.add: a card pushed meanwhile would reach
        # neither this hello nor the socket.
        hello: dict[str, Any] = {"type": "hello", "user": {"login": user.login, "name": user.name,
                                                          "role": role},
                                 "problems": self.ctx.problems(), **self.ctx.extra_hello}
        if role == "agent":
            hello["cards"] = [c.to_json() for c in self.ctx.pop.cards_for(user.login)]
            hello["departments"] = departments
        else:
            hello["board"] = [board_entry(c, self.ctx.pop) for c in self.ctx.live_calls()]
        if self.ctx.shift is not None:
            hello.update(self.ctx.shift.hello(user))
        client.send(hello)
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

    def _client_message(self, login: str, text: str) -> bool:
        """Messages from a page: only 'ping' and checklist ticks. Garbage closes the socket."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError):
            log.warning("console %s sent non-JSON; closing that connection", login)
            return False
        if not isinstance(data, dict):
            return False
        if data.get("type") == "ping":
            return True
        if data.get("type") == "checklist":
            return self.ctx.pop.mark_item(login, str(data.get("call_id")), str(data.get("item")),
                                          bool(data.get("done")), by="agent") or True
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
        if not self.ctx.pop.mark_item(user.login, card.call_id, str(data.get("item")),
                                      bool(data.get("done"))):
            raise web.HTTPBadRequest(text="no such checklist item")
        return web.json_response({"ok": True})

    async def transfer(self, request: web.Request) -> web.Response:
        user, card = self._card(request)
        data = await self._json(request)
        department = str(data.get("department", ""))
        if department not in await self.ctx.departments():
            raise web.HTTPBadRequest(text=f"unknown department {department!r}")
        if card.phase != "live":
            raise web.HTTPConflict(text="the call is not live")
        try:
            await self.ctx.transfer(card.call, department)
        except CallGone as exc:
            raise web.HTTPConflict(text=str(exc))
        except NotConnected as exc:
            raise web.HTTPServiceUnavailable(text=f"the PBX is not connected: {exc}")
        except ActionError as exc:
            raise web.HTTPBadGateway(text=str(exc))
        return web.json_response({"ok": True})

    async def wrapup(self, request: web.Request) -> web.Response:
        user, card = self._card(request)
        data = await self._json(request)
        dispositions = (card.script or {}).get("dispositions") or FALLBACK_DISPOSITIONS
        chosen = next((d for d in dispositions if d["id"] == data.get("disposition")), None)
        if chosen is None:
            raise web.HTTPBadRequest(text="choose one of the dispositions")
        notes = str(data.get("notes") or "").strip()
        if len(notes) > MAX_NOTE:
            raise web.HTTPBadRequest(text=f"notes are limited to {MAX_NOTE} characters")
        if chosen.get("needs_note") and not notes:
            raise web.HTTPBadRequest(text=f"'{chosen['label']}' needs a note")
        callback_at = _parse_time(data.get("callback_at"))
        if chosen.get("needs_callback_time"):
            if callback_at is None:
                raise web.HTTPBadRequest(text=f"'{chosen['label']}' needs a callback time")
            if callback_at < time.time() - 60:
                raise web.HTTPBadRequest(text="the callback time is in the past")
        checklist = {k: v["done"] for k, v in card.checklist.items()}
        # Durable first: the agent only sees "saved" once the store has it.
        await self.ctx.save_wrapup(call_id=card.call_id, agent=user.login,
                                   disposition=chosen["id"], notes=notes,
                                   callback_at=callback_at, checklist=checklist)
        self.ctx.pop.wrapped_up(user.login, card.call_id)
        return web.json_response({"saved": True, "call_id": card.call_id,
                                  "disposition": chosen["id"]})


def _parse_time(value: Any) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        t = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise web.HTTPBadRequest(text="callback time must be an ISO date and time")
    if t.tzinfo is None:
        t = t.astimezone()   # the agent's browser sends local time
    return t.timestamp()
