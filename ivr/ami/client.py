"""The service's AMI connection (panoramisk underneath).

Logs in, hands every event to ``on_event`` as an AmiEvent, reconnects with
exponential backoff after any loss (panoramisk alone retries every 2 s and
never after a refused login), and calls ``on_connected`` after each login so
the call tracker can resync the live channels it may have missed.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import time
from typing import Any, Awaitable, Callable

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from ..config import AmiSettings
from .message import AmiEvent

log = logging.getLogger(__name__)


class AmiError(Exception):
    pass


class _Protocol(AMIProtocol):
    """panoramisk decodes each TCP read on its own and drops a UTF-8 character
    split across two reads ("Kovács" -> "Kovcs"); decode incrementally first."""

    def connection_made(self, transport):
        super().connection_made(transport)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def data_received(self, data: bytes) -> None:
        super().data_received(self._decoder.decode(data).encode("utf-8"))


class _Manager(Manager):
    """panoramisk's Manager with our backoff in place of its fixed 2 s retry."""

    client: "AmiClient"

    def connection_made(self, f):
        if f.exception() is not None:
            self.reconnect_timeout = self.client._next_delay()
            if not self.client._closing:
                log.warning(
                    "AMI %s:%s unreachable (%s); retrying in %.1f s",
                    self.config["host"],
                    self.config["port"],
                    f.exception(),
                    self.reconnect_timeout,
                )
            if self.client._closing:
                return
        super().connection_made(f)

    def connection_lost(self, exc):
        self.reconnect_timeout = self.client._next_delay()
        if self.client._closing:
            self._connected = False
            return
        super().connection_lost(exc)

    def login(self, future):
        ok = super().login(future)
        if not ok:
            delay = self.client._next_delay(refused=True)
            log.error(
                "AMI login refused for user %r: check the password (IVR_AMI_SECRET) and "
                "manager.conf; retrying in %.0f s",
                self.config["username"],
                delay,
            )
            self.client._set_state("refused")
            if self.protocol:
                self.protocol.close()
            self.loop.call_later(delay, self.connect)
        return ok


class AmiClient:
    def __init__(
        self,
        settings: AmiSettings,
        on_event: Callable[[AmiEvent], None],
        on_connected: Callable[["AmiClient"], Awaitable[None]] | None = None,
    ):
        self.settings = settings
        self.on_event = on_event
        self.on_connected = on_connected
        self.state = "disconnected"
        self.logins = 0
        self.events_received = 0  # ever (for /metrics)
        # When the connection was last lost (None: never), and when the PBX
        # last started (from FullyBooted's Uptime at each login): a PBX that
        # started after the loss crashed or restarted, taking its calls down.
        self.lost_at: float | None = None
        self.pbx_started_at: float | None = None
        self._closing = False
        self._delay = 0.0
        self._connected = asyncio.Event()
        self._manager: _Manager | None = None
        self._resync_task: asyncio.Task | None = None

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if not self.settings.secret:
            raise AmiError("no AMI password: set IVR_AMI_SECRET or ami.secret")
        self._closing = False  # a client closed (lease lost) may follow its PBX again
        loop = asyncio.get_running_loop()
        m = _Manager(
            loop=loop,
            host=self.settings.host,
            port=self.settings.port,
            username=self.settings.username,
            secret=str(self.settings.secret),
            reconnect_timeout=self.settings.reconnect_min,
            ping_delay=10,
            on_login=self._logged_in,
            on_disconnect=self._lost,
            protocol_factory=_Protocol,
            log=logging.getLogger("panoramisk"),
        )
        m.client = self
        m.register_event("*", self._dispatch)
        self._manager = m
        self._set_state("connecting")
        m.connect()

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def close(self) -> None:
        self._closing = True
        if self._resync_task:
            self._resync_task.cancel()
        if self._manager:
            self._manager.close()
        self._set_state("closed")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # ------------------------------------------------------------ callbacks
    def _set_state(self, state: str) -> None:
        if state != self.state:
            log.info(
                "AMI %s:%s: %s -> %s", self.settings.host, self.settings.port, self.state, state
            )
            self.state = state

    def _next_delay(self, refused: bool = False) -> float:
        s = self.settings
        self._delay = s.reconnect_min if self._delay == 0 else min(self._delay * 2, s.reconnect_max)
        return max(self._delay, 5.0) if refused else self._delay

    def _logged_in(self, manager: Manager) -> None:
        self._delay = 0.0
        self.logins += 1
        self._set_state("connected")
        self._connected.set()
        if self.on_connected is not None:
            self._resync_task = asyncio.ensure_future(self._run_on_connected())

    async def _run_on_connected(self) -> None:
        if self.on_connected is None:
            return
        try:
            await self.on_connected(self)
        except Exception:
            log.exception("AMI: resync after login failed; calls already tracked are kept")

    def _lost(self, manager: Manager, exc: Any) -> None:
        if self._connected.is_set():
            self.lost_at = time.time()
        self._connected.clear()
        if not self._closing:
            self._set_state("disconnected")
            log.warning("AMI connection lost; reconnecting in %.1f s", manager.reconnect_timeout)

    def _dispatch(self, manager: Manager, message: Any) -> None:
        self.events_received += 1
        try:
            if message.get("Event") == "FullyBooted" and str(message.get("Uptime", "")).isdigit():
                self.pbx_started_at = time.time() - int(message.get("Uptime"))
            self.on_event(AmiEvent.from_headers(message, time.time()))
        except Exception:
            # One bad event (or a bug in a handler) must not kill the connection.
            log.exception("AMI event %s could not be handled", message.get("Event"))

    # ------------------------------------------------------------ actions
    async def send(self, action: dict, as_list: bool | None = None, timeout: float = 10.0) -> Any:
        if self._manager is None or not self.connected:
            raise AmiError("AMI is not connected")
        return await asyncio.wait_for(
            self._manager.send_action(dict(action), as_list=as_list), timeout
        )

    async def channels(self) -> list[AmiEvent]:
        """Every live channel (CoreShowChannels)."""
        replies = await self.send({"Action": "CoreShowChannels"}, as_list=True)
        if not isinstance(replies, list):
            replies = [replies]
        now = time.time()
        return [
            AmiEvent.from_headers(r, now) for r in replies if r.get("Event") == "CoreShowChannel"
        ]

    async def originate(self, **fields: Any) -> dict:
        """Originate asynchronously; returns the OriginateResponse fields."""
        action = {"Action": "Originate", "Async": "true", **fields}
        # as_list=None: panoramisk then waits for the OriginateResponse after a
        # "successfully queued", but resolves at once on an outright Error.
        replies = await self.send(action, as_list=None, timeout=90.0)
        if not isinstance(replies, list):
            replies = [replies]
        first = replies[0]
        if first.get("Response") != "Success":
            raise AmiError(f"Originate refused: {first.get('Message')}")
        final = next((r for r in replies if r.get("Event") == "OriginateResponse"), None)
        return dict(final.items()) if final is not None else {}
