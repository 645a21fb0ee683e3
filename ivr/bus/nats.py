"""The bus over NATS (the Debian `nats-server`, the `nats-py` client).

Publishing is synchronous for the stages (bus subscribers are): messages go
into one queue, written in order by one task. While the server is away,
nats-py reconnects by itself (every `reconnect_wait` s, forever) and keeps
what was published in its pending buffer; subscriptions come back with the
connection. `on_reconnect` callbacks run after every reconnect, so the
instances can resync what they may have missed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import Any, Callable

from .base import BusError, Handler, Responder, call_handler

log = logging.getLogger(__name__)


class NatsBus:
    kind = "nats"

    def __init__(self, url: str, name: str = "ivr", *, reconnect_wait: float = 0.5):
        self.url = url
        self.name = name
        self.reconnect_wait = reconnect_wait
        self.on_reconnect: list[Callable[[], None]] = []
        self.published = 0
        self.received = 0
        self._nc: Any = None  # nats.aio.client.Client once started
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"NatsBus({self.url.rsplit('@', 1)[-1]!r})"

    async def start(self) -> None:
        import nats

        self._nc = await nats.connect(
            self.url,
            name=self.name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=self.reconnect_wait,
            connect_timeout=5,
            allow_reconnect=True,
            ping_interval=5,
            max_outstanding_pings=2,
            disconnected_cb=self._disconnected,
            reconnected_cb=self._reconnected,
            error_cb=self._error,
        )
        self._writer = asyncio.ensure_future(self._write())
        log.info("bus: connected to %s as %s", self.url.rsplit("@", 1)[-1], self.name)

    async def _disconnected(self) -> None:
        log.warning("bus: NATS connection lost; reconnecting")

    async def _reconnected(self) -> None:
        log.info("bus: NATS connection back")
        for callback in list(self.on_reconnect):
            try:
                callback()
            except Exception:
                log.exception("bus: reconnect callback failed")

    async def _error(self, exc: Exception) -> None:
        log.debug("bus: %s", exc)

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def publish(self, subject: str, data: dict[str, Any]) -> None:
        self._queue.append((subject, json.dumps(data, separators=(",", ":")).encode()))
        self._wake.set()

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                subject, payload = self._queue.popleft()
                try:
                    await self._nc.publish(subject, payload)
                    self.published += 1
                except Exception as exc:  # closed, or the pending buffer is full
                    log.warning("bus: dropped a message on %s: %s", subject, exc)

    async def _subscribe(self, subject: str, on_msg) -> None:
        if self._nc is None:
            raise BusError("the bus is not started")
        await self._nc.subscribe(subject, cb=on_msg)

    async def subscribe(self, subject: str, handler: Handler) -> None:
        async def on_msg(msg) -> None:
            self.received += 1
            try:
                data = json.loads(msg.data)
            except ValueError:
                log.warning("bus: a message on %s is not JSON; dropped", msg.subject)
                return
            await call_handler(handler, msg.subject, data)

        await self._subscribe(subject, on_msg)

    async def serve(self, subject: str, responder: Responder) -> None:
        async def on_msg(msg) -> None:
            try:
                reply = await responder(msg.subject, json.loads(msg.data))
            except Exception as exc:
                log.exception("bus: answering %s failed", msg.subject)
                reply = {"error": str(exc) or type(exc).__name__}
            if msg.reply and reply is not None:  # None: another instance answers
                await self._nc.publish(msg.reply, json.dumps(reply).encode())

        await self._subscribe(subject, on_msg)

    async def request(
        self, subject: str, data: dict[str, Any], timeout: float = 2.0
    ) -> dict[str, Any]:
        import nats.errors

        if self._nc is None:
            raise BusError("the bus is not started")
        try:
            msg = await self._nc.request(subject, json.dumps(data).encode(), timeout=timeout)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise BusError(f"nobody answered {subject}") from exc
        return json.loads(msg.data)

    async def gather(
        self, subject: str, data: dict[str, Any], window: float = 0.5
    ) -> list[dict[str, Any]]:
        """Every reply that arrives within `window` s (several controllers)."""
        if self._nc is None:
            raise BusError("the bus is not started")
        inbox = self._nc.new_inbox()
        replies: list[dict[str, Any]] = []

        async def on_reply(msg) -> None:
            try:
                replies.append(json.loads(msg.data))
            except ValueError:
                pass

        sub = await self._nc.subscribe(inbox, cb=on_reply)
        try:
            await self._nc.publish(subject, json.dumps(data).encode(), reply=inbox)
            await self._nc.flush(timeout=window)
            await asyncio.sleep(window)
        finally:
            await sub.unsubscribe()
        return replies

    async def close(self) -> None:
        if self._writer is not None:
            # What the stages published last still goes out.
            for _ in range(50):
                if not self._queue:
                    break
                await asyncio.sleep(0.02)
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        nc, self._nc = self._nc, None
        if nc is not None:
            try:
                await asyncio.wait_for(nc.drain(), 3)
            except Exception:
                await nc.close()
