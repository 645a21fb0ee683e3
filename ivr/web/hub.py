"""Who is connected, and pushing to them in order without ever blocking.

Each WebSocket gets its own outbox and writer task: a slow or dead browser
only ever delays (then loses) its own connection, never the service.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 1000


@dataclass(frozen=True)
class Encoded:
    """A message for many consoles, JSON-encoded once ("sent_at" is added per socket)."""

    text: str

    @classmethod
    def of(cls, message: dict[str, Any]) -> "Encoded":
        return cls(json.dumps(message))

    def stamped(self, at: float) -> str:
        # The object's closing brace makes room for one more field.
        return f'{self.text[:-1]}, "sent_at": {at!r}}}'


@dataclass(eq=False)
class Client:
    login: str
    role: str
    ws: web.WebSocketResponse
    session: str = ""  # the sign-in session (its store id) the socket runs on
    outbox: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(OUTBOX_LIMIT))
    writer: asyncio.Task | None = None
    on_sent: Callable[["Client", dict[str, Any]], None] | None = None

    def send(self, message: dict[str, Any] | Encoded) -> None:
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("console %s is not reading; closing its connection", self.login)
            self.outbox = asyncio.Queue(1)
            asyncio.ensure_future(self.ws.close(code=1013, message=b"too slow"))

    async def run_writer(self) -> None:
        try:
            while True:
                message = await self.outbox.get()
                if isinstance(message, Encoded):
                    await self.ws.send_str(message.stamped(time.time()))
                    continue
                message["sent_at"] = time.time()
                await self.ws.send_json(message)
                if self.on_sent is not None:
                    try:
                        self.on_sent(self, message)
                    except Exception:
                        log.exception("console hub: on_sent failed")
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass


class ConsoleHub:
    """The open consoles. ``on_sent(client, message)``: a message has just been
    written to a console (timing: e.g. the pop's latency)."""

    def __init__(self) -> None:
        self.clients: set[Client] = set()
        self.on_sent: Callable[[Client, dict[str, Any]], None] | None = None
        # Indexes: a push to one agent or to the supervisors does not look at
        # every console (200 agents, each state change pushed).
        self._agents: dict[str, set[Client]] = {}
        self._supervisors: set[Client] = set()

    def add(self, client: Client) -> None:
        client.on_sent = self.on_sent
        client.writer = asyncio.ensure_future(client.run_writer())
        self.clients.add(client)
        if client.role == "supervisor":
            self._supervisors.add(client)
        else:
            self._agents.setdefault(client.login, set()).add(client)

    def remove(self, client: Client) -> None:
        self.clients.discard(client)
        self._supervisors.discard(client)
        mine = self._agents.get(client.login)
        if mine is not None:
            mine.discard(client)
            if not mine:
                del self._agents[client.login]
        if client.writer:
            client.writer.cancel()

    def connected(self, login: str) -> bool:
        return bool(self._agents.get(login)) or any(c.login == login for c in self._supervisors)

    def to_login(self, login: str, message: dict[str, Any]) -> None:
        for c in list(self._agents.get(login, ())):
            c.send(dict(message))

    def to_supervisor(self, login: str, message: dict[str, Any]) -> None:
        """To one supervisor's consoles."""
        for c in list(self._supervisors):
            if c.login == login:
                c.send(dict(message))

    def to_supervisors(self, message: dict[str, Any]) -> None:
        if self._supervisors:
            encoded = Encoded.of(message)
            for c in list(self._supervisors):
                c.send(encoded)

    def to_everyone(self, message: dict[str, Any]) -> None:
        if self.clients:
            encoded = Encoded.of(message)
            for c in list(self.clients):
                c.send(encoded)
