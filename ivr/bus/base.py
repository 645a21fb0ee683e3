"""The bus between service instances: publish, subscribe, request.

Messages are JSON objects on NATS-style subjects (`ivr.call.east.<id>`;
`*` matches one token, `>` the rest). `LocalBus` is the embedded default:
the same interface inside one process (one machine needs no server);
`NatsBus` (nats.py) carries it between instances.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], "Awaitable[None] | None"]
# A responder returns None to stay silent (another instance answers that one).
Responder = Callable[[str, dict[str, Any]], Awaitable["dict[str, Any] | None"]]


class BusError(Exception):
    pass


def token(value: str) -> str:
    """A value as one subject token (call ids have dots; logins could have anything)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in value) or "_"


def matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, part in enumerate(p):
        if part == ">":
            return len(s) > i
        if i >= len(s) or (part != "*" and part != s[i]):
            return False
    return len(p) == len(s)


async def call_handler(handler: Handler, subject: str, data: dict[str, Any]) -> None:
    try:
        result = handler(subject, data)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("bus handler for %s failed", subject)


class LocalBus:
    """In-process bus (the embedded default): delivery in publish order."""

    kind = "local"

    def __init__(self) -> None:
        self._subs: list[tuple[str, Handler]] = []
        self._responders: list[tuple[str, Responder]] = []
        self.on_reconnect: list[Callable[[], None]] = []
        self.published = 0

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    @property
    def connected(self) -> bool:
        return True

    def publish(self, subject: str, data: dict[str, Any]) -> None:
        self.published += 1
        for pattern, handler in list(self._subs):
            if matches(pattern, subject):
                asyncio.ensure_future(call_handler(handler, subject, data))

    async def subscribe(self, subject: str, handler: Handler) -> None:
        self._subs.append((subject, handler))

    async def serve(self, subject: str, responder: Responder) -> None:
        self._responders.append((subject, responder))

    async def request(
        self, subject: str, data: dict[str, Any], timeout: float = 2.0
    ) -> dict[str, Any]:
        for pattern, responder in self._responders:
            if matches(pattern, subject):
                reply = await asyncio.wait_for(responder(subject, data), timeout)
                if reply is not None:  # None: not this responder's to answer
                    return reply
        raise BusError(f"nobody answers {subject}")

    async def gather(
        self, subject: str, data: dict[str, Any], window: float = 0.5
    ) -> list[dict[str, Any]]:
        replies = []
        for pattern, responder in self._responders:
            if matches(pattern, subject):
                try:
                    reply = await asyncio.wait_for(responder(subject, data), window)
                    if reply is not None:
                        replies.append(reply)
                except Exception:
                    log.exception("bus responder for %s failed", subject)
        return replies
