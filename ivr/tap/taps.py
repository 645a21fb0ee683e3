"""Tap orchestration: for every answered call, one audio tap per party.

A tap is an AMI Originate of ``AudioSocket/<host>:<port>/<uuid>`` into the
dialplan context ``ivr-tap`` with the leg's Uniqueid as extension, which runs
``ChanSpy(<leg uniqueid>,qoESu)``: Asterisk connects to our TapServer and
streams what that one leg says (``o``), without a beep (``q``), ending when
the leg hangs up (``E``) or at once if it is already gone (``S``); ``u`` makes
the argument an exact Uniqueid. The call's own channels and dialplan are
never touched: a tap only ever creates, and at worst loses, its own channel.

Triggers: inbound calls when the agent answers (AgentAnswered: agent leg;
the customer leg is ``call.customer_leg()``); outbound calls when the customer
answers (CustomerAnswered). CallBridged (and the AgentAnswered replayed after
an AMI reconnect) start any tap still missing. A new agent after a transfer
gets a tap of their own.

A tap that fails (Originate refused or failed, e.g. server unreachable:
Reason 8; no connection within ``connect_timeout``; or the connection drops
while the call goes on) is retried with exponential backoff as long as its
leg is alive (checked with an AMI ``Status`` of that channel). Each change is
published as a :class:`TapStatus` for the console.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..ami.client import AmiError
from ..calls.events import AgentAnswered, CallBridged, CallEnded, CallEvent, CustomerAnswered
from ..calls.model import Call, CallState, Leg, LegRole
from ..logs import about_call
from .server import AGENT, CUSTOMER, TapPlacer, TapStream, TapTarget, TapUnplaced, connect_address

log = logging.getLogger(__name__)

STARTING = "starting"
OK = "ok"
RETRYING = "retrying"
FAILED = "failed"
ENDED = "ended"

# The dialplan context that runs a tap (dialplans/extensions.conf).
TAP_CONTEXT = "ivr-tap"

# OriginateResponse Reason: Asterisk's control frame of the outcome.
ORIGINATE_REASONS = {
    "0": "failed to create the tap channel",
    "1": "tap channel hung up",
    "3": "tap channel timed out",
    "5": "busy",
    "8": "congestion (is the tap server reachable from Asterisk?)",
}


@dataclass(frozen=True)
class TapStatus:
    """The state of one party's tap, as the console shows it."""

    call_id: str
    speaker: str  # agent | customer
    leg: str  # spied channel's Uniqueid
    channel: str  # spied channel's name
    state: str  # starting | ok | retrying | failed | ended
    reason: str = ""
    attempt: int = 0
    at: float = 0.0
    retry_in: float | None = None


@dataclass(eq=False)
class _Tap:
    call_id: str
    speaker: str
    leg: Leg
    task: asyncio.Task | None = None
    stopped: bool = False
    ever_ok: bool = False
    attempt: int = 0
    uuid: str | None = None
    stream: TapStream | None = None
    status: TapStatus | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Future | None = None


class TapManager:
    """Keeps one audio tap per party of every answered call.

    ami: an object with ``originate(**fields) -> dict`` and ``send(action)``
      (ivr.ami.client.AmiClient).
    server: the TapServer the taps connect to (its registry is used).
    connect_host/connect_port: the address Asterisk connects to (default: the
      server's host and port).
    """

    def __init__(
        self,
        ami: Any,
        server: TapPlacer,
        *,
        connect_host: str = "",
        connect_port: int | None = None,
        on_status: Callable[[TapStatus], Any] | None = None,
        retry_min: float = 0.5,
        retry_max: float = 10.0,
        connect_timeout: float = 5.0,
        originate_timeout: float = 15.0,
        drop_grace: float = 0.5,
        stable_after: float = 10.0,
    ) -> None:
        self.ami = ami
        self.server = server
        self.connect_host = connect_host
        self.connect_port = connect_port
        self.on_status = on_status
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.connect_timeout = connect_timeout
        self.originate_timeout = originate_timeout
        self.drop_grace = drop_grace
        self.stable_after = stable_after
        self._taps: dict[str, dict[str, _Tap]] = {}  # call_id -> leg uniqueid -> tap
        self._ended: dict[str, float] = {}  # recently ended calls
        self._closing = False
        self.counts: dict[str, int] = {}  # tap status changes, by state (/metrics)
        # For measurements: seconds from Originate to the first audio frame.
        self.first_audio_latencies: list[float] = []

    # ------------------------------------------------------------ public
    @property
    def address(self) -> str:
        return connect_address(
            self.connect_host or self.server.host, self.connect_port or self.server.port
        )

    def on_call_event(self, event: CallEvent) -> None:
        """Call bus subscriber (synchronous; starts tasks on the running loop)."""
        if self._closing:
            return
        call = event.call
        if isinstance(event, CallEnded):
            self._end_call(call.call_id, "call ended")
            return
        if not isinstance(event, (AgentAnswered, CustomerAnswered, CallBridged)):
            return
        agent = event.leg if isinstance(event, AgentAnswered) else _answered_agent_leg(call)
        customer = event.leg if isinstance(event, CustomerAnswered) else call.customer_leg()
        self._ensure_call(call, agent, customer)

    def resync(self, calls: Iterable[Call]) -> None:
        """After an AMI (re)sync or a takeover: every party of every answered call has
        its tap. The answers replayed there come one channel at a time, an agent's at
        times before the customer's leg is known: the taps they missed start here."""
        if self._closing:
            return
        for call in calls:
            self._ensure_call(call, _answered_agent_leg(call), call.customer_leg())

    def _ensure_call(self, call: Call, agent: Leg | None, customer: Leg | None) -> None:
        if call.state is CallState.ENDED or call.call_id in self._ended:
            return
        if call.answered_at is None:
            return  # outbound: the agent is up, the customer not yet
        if agent is not None and agent.role is LegRole.AGENT and agent.ended_at is None:
            self._ensure(call.call_id, AGENT, agent)
        if customer is not None and customer.ended_at is None:
            self._ensure(call.call_id, CUSTOMER, customer)

    def statuses(self, call_id: str | None = None) -> list[TapStatus]:
        out: list[TapStatus] = []
        for cid, taps in self._taps.items():
            if call_id is None or cid == call_id:
                out.extend(t.status for t in taps.values() if t.status is not None)
        return out

    def streams(self, call_id: str) -> list[TapStream]:
        return [t.stream for t in self._taps.get(call_id, {}).values() if t.stream is not None]

    async def close(self) -> None:
        self._closing = True
        for call_id in list(self._taps):
            self._end_call(call_id, "service stopping")
        tasks = [t.task for taps in self._taps.values() for t in taps.values() if t.task]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------ internals
    def _ensure(self, call_id: str, speaker: str, leg: Leg) -> None:
        taps = self._taps.setdefault(call_id, {})
        if leg.uniqueid in taps:
            return
        tap = _Tap(call_id, speaker, leg)
        taps[leg.uniqueid] = tap
        tap.task = asyncio.get_running_loop().create_task(
            self._run(tap), name=f"tap-{call_id}-{speaker}"
        )

    def _end_call(self, call_id: str, reason: str) -> None:
        now = time.time()
        self._ended[call_id] = now
        for cid, at in list(self._ended.items()):
            if now - at > 300:
                del self._ended[cid]
        taps = self._taps.pop(call_id, {})
        for tap in taps.values():
            tap.stopped = True
            if tap.uuid and tap.stream is None:
                self.server.registry.forget(tap.uuid)
            if tap.status is None or tap.status.state not in (ENDED, FAILED):
                state = ENDED if tap.ever_ok else FAILED
                why = (
                    reason
                    if tap.ever_ok
                    else f"{reason} before the tap worked "
                    f"({tap.status.reason if tap.status else ''})"
                )
                self._publish(tap, state, why)
            if tap.task is not None and not tap.task.done():
                tap.task.cancel()
            if tap.stream is not None:
                # E makes Asterisk end the tap with the leg; this is the safety net.
                stream = tap.stream
                asyncio.get_running_loop().call_later(3.0, stream.close)

    def _publish(
        self, tap: _Tap, state: str, reason: str = "", retry_in: float | None = None
    ) -> None:
        tap.status = TapStatus(
            tap.call_id,
            tap.speaker,
            tap.leg.uniqueid,
            tap.leg.channel,
            state,
            reason,
            tap.attempt,
            time.time(),
            retry_in,
        )
        self.counts[state] = self.counts.get(state, 0) + 1
        level = logging.WARNING if state in (RETRYING, FAILED) else logging.INFO
        log.log(
            level,
            "tap call %s %s (%s): %s%s",
            tap.call_id,
            tap.speaker,
            tap.leg.channel,
            state,
            f" - {reason}" if reason else "",
        )
        if self.on_status is not None:
            try:
                self.on_status(tap.status)
            except Exception:
                log.exception("tap status consumer failed")

    async def _run(self, tap: _Tap) -> None:
        about_call(tap.call_id)  # this task's log lines are about the call
        delay = self.retry_min
        try:
            while not tap.stopped:
                tap.attempt += 1
                started = time.monotonic()
                outcome, reason = await self._attempt(tap)
                if tap.stopped:
                    return
                if outcome == "dropped" and time.monotonic() - started > self.stable_after:
                    delay = self.retry_min  # it had worked for a while: start afresh
                if outcome != "moved":
                    await asyncio.sleep(self.drop_grace)  # let a CallEnded arrive first
                if tap.stopped:
                    return
                alive = await self._leg_alive(tap.leg)
                if tap.stopped:
                    return
                if alive is False:
                    self._publish(
                        tap,
                        ENDED if tap.ever_ok else FAILED,
                        f"{reason}; the {tap.speaker}'s leg is gone",
                    )
                    self._forget(tap)
                    return
                if outcome == "moved":
                    # Its end (a speech worker gone) was not the call's: tap again at once,
                    # elsewhere; every second here is a second of the call not coached.
                    self._publish(tap, RETRYING, reason, retry_in=0.0)
                    continue
                self._publish(tap, RETRYING, reason, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("tap call %s %s: supervisor crashed", tap.call_id, tap.speaker)
            self._publish(tap, FAILED, "internal error (see log)")

    def _forget(self, tap: _Tap) -> None:
        taps = self._taps.get(tap.call_id)
        if taps is not None and taps.get(tap.leg.uniqueid) is tap:
            del taps[tap.leg.uniqueid]
            if not taps:
                del self._taps[tap.call_id]

    async def _attempt(self, tap: _Tap) -> tuple[str, str]:
        """One Originate and its connection; returns (outcome, reason) once it is over."""
        loop = asyncio.get_running_loop()
        uid = str(uuidlib.uuid4())
        tap.uuid = uid
        tap.stream = None
        tap.connected = asyncio.Event()
        tap.closed = loop.create_future()
        sent = time.time()

        def connected(stream: TapStream) -> None:
            tap.stream = stream
            tap.connected.set()

        def closed(stream: TapStream, reason: str, elsewhere: bool = False) -> None:
            # elsewhere: the far end went away (a speech worker), not the call's leg.
            if tap.stream is stream:
                tap.stream = None
            if tap.closed is not None and not tap.closed.done():
                tap.closed.set_result((reason, elsewhere))

        if tap.attempt == 1:
            self._publish(tap, STARTING)
        target = TapTarget(
            tap.call_id, tap.speaker, tap.leg.uniqueid, on_connected=connected, on_closed=closed
        )
        try:
            try:
                placed = await self.server.place(uid, target)
            except TapUnplaced as exc:
                return "failed", str(exc)
            address, where = placed or (self.address, "")
            try:
                reply = await asyncio.wait_for(
                    self.ami.originate(
                        # The dialplan's [ivr-tap] runs ChanSpy(<leg>,qoESu) for AudioSocket
                        # channels only: the service never originates into an application.
                        Channel=f"AudioSocket/{address}/{uid}",
                        Context=TAP_CONTEXT,
                        Exten=tap.leg.uniqueid,
                        Priority="1",
                        CallerID=f"ivr tap <{tap.speaker}>",
                        Timeout=str(int(self.connect_timeout * 1000)),
                    ),
                    self.originate_timeout,
                )
            except asyncio.TimeoutError:
                return "failed", f"no answer to the Originate within {self.originate_timeout:.0f} s"
            except AmiError as exc:
                return "failed", str(exc)
            if reply.get("Response") not in ("Success", None) and not tap.connected.is_set():
                code = str(reply.get("Reason", ""))
                why = ORIGINATE_REASONS.get(code, "unknown")
                return "failed", f"Originate failed: reason {code} ({why})"
            # Connected, or closed first (the speech worker it was placed on went away).
            waiter = asyncio.ensure_future(tap.connected.wait())
            try:
                await asyncio.wait(
                    {waiter, tap.closed},
                    timeout=self.connect_timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                waiter.cancel()
            if not tap.connected.is_set():
                if tap.closed.done():
                    reason, elsewhere = tap.closed.result()
                    return ("moved" if elsewhere else "failed"), reason
                return "failed", (
                    f"Asterisk did not connect to the tap server at {address} "
                    f"within {self.connect_timeout:.0f} s"
                )
            stream = tap.stream
            if stream is not None:
                await self._wait_first_audio(tap, stream, sent)
            if not tap.closed.done() and not tap.stopped:
                tap.ever_ok = True
                took = f"connected in {(time.time() - sent) * 1000:.0f} ms"
                self._publish(tap, OK, f"{took} ({where})" if where else took)
            reason, elsewhere = await tap.closed
            return ("moved" if elsewhere else "dropped"), f"tap connection ended ({reason})"
        finally:
            if tap.stream is None and tap.uuid == uid:
                self.server.registry.forget(uid)

    async def _wait_first_audio(
        self, tap: _Tap, stream: TapStream, sent: float, timeout: float = 2.0
    ) -> None:
        """Wait (briefly) for the first frame, to report a true 'ok' and its latency."""
        deadline = time.monotonic() + timeout
        closed = tap.closed
        while (
            stream.first_audio_at is None
            and not (closed is not None and closed.done())
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.01)
        if stream.first_audio_at is not None:
            self.first_audio_latencies.append(stream.first_audio_at - sent)

    async def _leg_alive(self, leg: Leg) -> bool | None:
        """Does the spied channel still exist? None if AMI cannot tell now."""
        try:
            reply = await self.ami.send({"Action": "Status", "Channel": leg.channel}, timeout=5.0)
        except (AmiError, asyncio.TimeoutError, OSError):
            return None
        replies = reply if isinstance(reply, list) else [reply]
        if not replies:
            return None
        first = replies[0]
        if first.get("Response") == "Error":
            return False
        for r in replies:
            if r.get("Event") == "Status" and r.get("Uniqueid") in ("", leg.uniqueid):
                return True
        return any(r.get("Event") == "Status" for r in replies) or None


def _answered_agent_leg(call: Call) -> Leg | None:
    """The agent leg that answered most recently and is still up."""
    best = None
    for leg in call.agent_legs():
        if leg.ended_at is not None:
            continue
        if leg.dial_status == "ANSWER" or leg.state == "Up" or leg.answered_at is not None:
            if best is None or (leg.answered_at or 0) >= (best.answered_at or 0):
                best = leg
    return best
