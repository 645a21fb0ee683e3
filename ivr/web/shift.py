"""Agent states and the live wallboard, over HTTP and the consoles' push.

GET  /api/agents                     supervisors: every agent's state
GET  /api/wallboard                  supervisors: queues (waiting, longest wait, answered,
                                     abandoned, service level, ASA, agents by state) and agents
POST /api/agents/{login}/state       {"state": "ready" | "not_ready" | "offline", "reason"}
                                     an agent for themselves ({login} = their own or "me"),
                                     a supervisor for anyone (e.g. force not ready)

Pushed live (WebSocket), and in each console's hello:
  to the agent:       {"type": "agent_state", "agent": {...}}     hello: agent_state, reasons
  to supervisors:     {"type": "wallboard_agent", "agent": {...}}
                      {"type": "wallboard_queue", "queue": {...}} hello: wallboard
Agent entries are AgentStatus.to_json(), queue entries QueueFigures.to_json()
(the page ticks times in state and longest waits itself from their epoch times).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..agents.model import AgentState, StateChange
from ..agents.states import AgentStates, StateError
from ..calls.queues import QueueBoard, QueueFigures
from .hub import ConsoleHub
from .messages import message

log = logging.getLogger(__name__)

_STATUS = {
    "invalid": web.HTTPBadRequest,
    "unknown": web.HTTPNotFound,
    "conflict": web.HTTPConflict,
    "pbx": web.HTTPServiceUnavailable,
}


class ShiftWeb:
    def __init__(
        self,
        states: AgentStates,
        board: QueueBoard,
        hub: ConsoleHub,
        clock: Callable[[], float] = time.time,
    ):
        self.states = states
        self.board = board
        self.hub = hub
        self.clock = clock
        # Timing hook (benchmarks): called with (kind, sent message) after each push.
        self.on_push: Callable[[str, dict[str, Any]], None] | None = None

    # ------------------------------------------------------------ push
    def agent_changed(self, change: StateChange) -> None:
        entry = change.status.to_json()
        self.hub.to_login(change.status.login, message("agent_state", agent=entry))
        sent = message("wallboard_agent", agent=entry)
        self.hub.to_supervisors(sent)
        if self.on_push is not None:
            self.on_push("agent", sent)

    def queue_changed(self, figures: QueueFigures) -> None:
        sent = message("wallboard_queue", queue=figures.to_json())
        self.hub.to_supervisors(sent)
        if self.on_push is not None:
            self.on_push("queue", sent)

    # ------------------------------------------------------------ views
    @property
    def reasons(self) -> list[str]:
        return list(self.states.settings.not_ready_reasons)

    def wallboard(self) -> dict[str, Any]:
        agents = self.states.all()
        queues = []
        for q in self.board.all():
            by_state = {s.value: 0 for s in AgentState if s is not AgentState.OFFLINE}
            for a in agents:
                if q.queue in a.queues:
                    by_state[a.state.value] += 1
            queues.append({**q.to_json(), "agents": by_state})
        return {
            "now": self.clock(),
            "queues": queues,
            "agents": [a.to_json() for a in agents],
            "reasons": self.reasons,
            "service_level_seconds": self.states.settings.service_level_seconds,
        }

    def hello(self, user: Any) -> dict[str, Any]:
        if user.is_supervisor:
            return {"wallboard": self.wallboard()}
        status = self.states.status(user.login)
        return {"agent_state": status.to_json() if status else None, "reasons": self.reasons}

    async def signed_in(self, user: Any) -> None:
        """Console sign-in: an agent of a group joins their queues (if offline)."""
        if user.is_supervisor or self.states.status(user.login) is None:
            return
        try:
            await self.states.log_in(user.login)
        except StateError as exc:
            log.warning("agent %s signed in but is not in the queues: %s", user.login, exc)

    async def signed_out(self, user: Any) -> None:
        """Console sign-out: the agent leaves every queue."""
        if user.is_supervisor or self.states.status(user.login) is None:
            return
        try:
            await self.states.set_state(user.login, AgentState.OFFLINE, by=user.login)
        except StateError as exc:
            log.warning("agent %s signed out but could not leave the queues: %s", user.login, exc)

    # ------------------------------------------------------------ routes
    def add_routes(
        self,
        app: web.Application,
        auth_user: Callable[[web.Request], Any],
        read_json: Callable[[web.Request], Awaitable[dict[str, Any]]],
    ) -> None:
        def signed_in_user(request: web.Request) -> Any:
            user = auth_user(request)
            if user is None:
                raise web.HTTPUnauthorized(text="sign in first")
            return user

        def supervisor(request: web.Request) -> Any:
            user = signed_in_user(request)
            if not user.is_supervisor:
                raise web.HTTPForbidden(text="for supervisors only")
            return user

        async def agents(request: web.Request) -> web.Response:
            supervisor(request)
            return web.json_response(
                {
                    "now": self.clock(),
                    "reasons": self.reasons,
                    "agents": [a.to_json() for a in self.states.all()],
                }
            )

        async def wallboard(request: web.Request) -> web.Response:
            supervisor(request)
            return web.json_response(self.wallboard())

        async def set_state(request: web.Request) -> web.Response:
            user = signed_in_user(request)
            login = request.match_info["login"]
            if login == "me":
                login = user.login
            if login != user.login and not user.is_supervisor:
                raise web.HTTPForbidden(text="agents change their own state only")
            data = await read_json(request)
            state, reason = data.get("state"), data.get("reason", "")
            if not isinstance(state, str) or not isinstance(reason, str):
                raise web.HTTPBadRequest(text="state and reason must be text")
            try:
                status = await self.states.set_state(login, state, reason, by=user.login)
            except StateError as exc:
                raise _STATUS.get(exc.kind, web.HTTPBadRequest)(text=str(exc))
            log.info(
                "agent %s: %s asked for %s%s",
                login,
                user.login,
                state,
                f" ({reason})" if reason else "",
            )
            return web.json_response({"agent": status.to_json()})

        app.add_routes(
            [
                web.get("/api/agents", agents),
                web.get("/api/wallboard", wallboard),
                web.post("/api/agents/{login}/state", set_state),
            ]
        )
