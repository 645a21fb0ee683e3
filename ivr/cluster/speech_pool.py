"""A controller's speech workers (`ivr serve --role controller`, without speech).

To the TapManager the pool is the tap server: ``place`` puts each tap on the
least loaded speech worker alive (by the heartbeats on `ivr.speech.workers`)
and returns that worker's address for Asterisk to connect to; the worker's
results come back on `ivr.speech.results.<this instance>` and go to live
coaching as if the stage ran here (what each party listens for is decided here,
from the model's vocabulary, and sent with the tap).

A worker silent for DEAD_AFTER s (killed, its machine gone) or saying it
leaves: each of its taps is closed "elsewhere", and the TapManager taps that
leg again at once, on another worker (tap/taps.py). Only the results of the
worker a party's tap is on now count: a worker thought dead that was only
slow cannot add a second copy of what was said.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..bus import BusError, subjects
from ..bus.codec import decode, encode
from ..calls.events import AgentAnswered, CallBridged, CallEnded, CallEvent, CustomerAnswered
from ..speech.stage import PAUSED
from ..tap.server import TapTarget, TapUnplaced
from .speech_worker import DEAD_AFTER, RESULT_TYPES

log = logging.getLogger(__name__)


@dataclass
class _Worker:
    name: str
    address: str
    streams: int
    threads: int
    level: int
    seen: float  # time.monotonic() of its last heartbeat

    @property
    def load(self) -> float:
        return self.streams / max(1, self.threads)


@dataclass(eq=False)
class RemoteStream:
    """A tap connected to a speech worker, as the TapManager sees a TapStream."""

    uuid: str
    target: TapTarget
    worker: str
    opened_at: float
    close_on_worker: Callable[[], None]
    first_audio_at: float | None = None

    @property
    def call_id(self) -> str:
        return self.target.call_id

    @property
    def speaker(self) -> str:
        return self.target.speaker

    def close(self) -> None:
        self.close_on_worker()


@dataclass
class _Placed:
    worker: str
    target: TapTarget
    stream: RemoteStream | None = None
    at: float = field(default_factory=time.monotonic)


class SpeechPool:
    """live: LiveCoaching (modes_for, and the on_* the speech stage would call)."""

    def __init__(self, bus: Any, instance: str, live: Any, place_timeout: float = 1.0):
        self.bus = bus
        self.instance = instance
        self.live = live
        self.place_timeout = place_timeout
        self.registry = self  # the TapManager forgets taps through its server's registry
        self.host, self.port = "", 0  # no address of its own: every tap is placed
        self.workers: dict[str, _Worker] = {}
        self._placed: dict[str, _Placed] = {}  # tap uuid -> where it went
        self._current: dict[tuple[str, str], str] = {}  # (call, speaker) -> worker heard
        self._origins: dict[str, float] = {}  # call id -> answer time
        self._call_workers: dict[str, set[str]] = {}  # call id -> workers it was placed on
        self._watch: asyncio.Task | None = None
        self.moved = 0  # taps moved off a dead worker (/metrics, logs)

    async def start(self) -> None:
        await self.bus.subscribe(subjects.SPEECH_WORKERS, self._on_worker)
        await self.bus.subscribe(subjects.speech_results(self.instance), self._on_result)
        self._watch = asyncio.ensure_future(self._watch_workers())

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()

    @property
    def listening(self) -> bool:
        """For /api/health: at least one speech worker is up."""
        return bool(self.workers)

    @property
    def streams(self) -> dict[str, RemoteStream]:
        """Taps connected now, on any worker (/metrics)."""
        return {uid: p.stream for uid, p in self._placed.items() if p.stream is not None}

    rejected = 0  # refused connections are counted by the workers themselves

    def describe(self) -> str:
        if not self.workers:
            return "no speech worker is up: calls are not coached"
        return ", ".join(
            f"{w.name} ({w.streams} streams, level {w.level})" for w in self.workers.values()
        )

    # ------------------------------------------------------------ calls
    def on_call_event(self, event: CallEvent) -> None:
        call = event.call
        if isinstance(event, (AgentAnswered, CustomerAnswered, CallBridged)):
            if call.answered_at is not None:
                self._origins.setdefault(call.call_id, call.answered_at)
        elif isinstance(event, CallEnded):
            self._origins.pop(call.call_id, None)
            workers = self._call_workers.pop(call.call_id, set())
            for key in [k for k in self._current if k[0] == call.call_id]:
                del self._current[key]
            for worker in workers:  # each forgets the call (its streams, modes, route)
                self._order(worker, op="end", call_id=call.call_id)

    # ------------------------------------------------------------ the TapManager's server
    async def place(self, uuid: str, target: TapTarget) -> tuple[str, str]:
        tried: list[str] = []
        while True:
            worker = self._choose(exclude=tried)
            if worker is None:
                why = "no speech worker is up" if not tried else "no speech worker took it"
                raise TapUnplaced(f"{why} (speech workers: `ivr serve --role speech`)")
            tried.append(worker.name)
            mode = self.live.modes_for(target.call_id)[target.speaker]
            try:
                reply = await self.bus.request(
                    subjects.speech_worker(worker.name),
                    {
                        "op": "place",
                        "uid": uuid,
                        "call_id": target.call_id,
                        "speaker": target.speaker,
                        "leg": target.leg,
                        "origin": self._origins.get(target.call_id, time.time()),
                        "mode": encode(mode),
                        "reply": subjects.speech_results(self.instance),
                    },
                    timeout=self.place_timeout,
                )
            except (BusError, asyncio.TimeoutError):
                log.warning("speech worker %s did not take a tap in time", worker.name)
                continue
            if not reply.get("ok"):
                log.info("speech worker %s refused a tap: %s", worker.name, reply.get("error"))
                continue
            self._placed[uuid] = _Placed(worker.name, target)
            self._call_workers.setdefault(target.call_id, set()).add(worker.name)
            worker.streams += 1  # until its next heartbeat says
            return worker.address, f"speech worker {worker.name}"

    def forget(self, uuid: str) -> None:
        placed = self._placed.pop(uuid, None)
        if placed is not None and placed.stream is None:
            self._order(placed.worker, op="forget", uid=uuid)

    def _choose(self, exclude: list[str]) -> _Worker | None:
        fit = [w for w in self.workers.values() if w.level < PAUSED and w.name not in exclude]
        return min(fit, key=lambda w: (w.load, w.streams, w.name), default=None)

    def _order(self, worker: str, **data: Any) -> None:
        self.bus.publish(subjects.speech_worker(worker), data)

    # ------------------------------------------------------------ workers
    def _on_worker(self, subject: str, data: dict[str, Any]) -> None:
        name = str(data.get("worker", ""))
        if data.get("leaving"):
            self._lost(name, f"speech worker {name} stopped")
            return
        try:
            worker = _Worker(
                name,
                str(data["address"]),
                int(data["streams"]),
                int(data["threads"]),
                int(data["level"]),
                time.monotonic(),
            )
        except (KeyError, TypeError, ValueError):
            log.warning("a speech worker's heartbeat could not be read: %r", data)
            return
        if name not in self.workers:
            log.info("speech worker %s at %s is up", name, worker.address)
        self.workers[name] = worker

    async def _watch_workers(self, every: float = 0.1) -> None:
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            for worker in list(self.workers.values()):
                if now - worker.seen > DEAD_AFTER:
                    self._lost(worker.name, f"speech worker {worker.name} stopped answering")

    def _lost(self, name: str, reason: str) -> None:
        self.workers.pop(name, None)
        taps = [(uid, p) for uid, p in self._placed.items() if p.worker == name]
        if taps:
            log.warning("%s: moving its %d taps to another worker", reason, len(taps))
        for uid, placed in taps:
            del self._placed[uid]
            self.moved += 1
            # If it was only slow, it must not keep decoding what moves elsewhere.
            self._order(name, op="close", uid=uid)
            if placed.target.on_closed is not None:
                placed.target.on_closed(placed.stream, reason, True)  # type: ignore[arg-type,call-arg]

    # ------------------------------------------------------------ results
    def _on_result(self, subject: str, msg: dict[str, Any]) -> None:
        worker, kind, data = str(msg.get("worker")), msg.get("kind"), msg.get("data") or {}
        if kind == "tap":
            self._tap_event(worker, data)
            return
        cls = RESULT_TYPES.get(str(kind))
        if kind == "gap":
            if self._current.get((data["call_id"], data["speaker"])) == worker:
                self.live.on_gap(
                    data["call_id"], data["speaker"], data["start"], data["end"], data["reason"]
                )
            return
        if cls is None:
            log.debug("unknown speech result %r from %s", kind, worker)
            return
        result = decode(cls, data)
        if kind == "capacity":
            on_worker = sorted({cid for (cid, _), w in self._current.items() if w == worker})
            self.live.on_capacity(result, calls=on_worker)
            return
        if self._current.get((result.call_id, result.speaker)) != worker:
            return  # a worker this party's tap has moved away from
        if kind == "utterance":
            self.live.on_utterance(result)
        elif kind == "activity":
            self.live.on_activity(result)
        elif kind == "heard":
            self.live.on_heard(result)

    def _tap_event(self, worker: str, data: dict[str, Any]) -> None:
        uid = str(data.get("uid"))
        placed = self._placed.get(uid)
        if placed is None or placed.worker != worker:
            return
        target = placed.target
        event = data.get("event")
        if event == "connected":
            placed.stream = RemoteStream(
                uid,
                target,
                worker,
                float(data.get("opened_at") or time.time()),
                lambda: self._order(worker, op="close", uid=uid),
            )
            self._current[(target.call_id, target.speaker)] = worker
            if target.on_connected is not None:
                target.on_connected(placed.stream)  # type: ignore[arg-type]
        elif event == "audio" and placed.stream is not None:
            placed.stream.first_audio_at = float(data["first_audio_at"])
        elif event == "closed":
            del self._placed[uid]
            if target.on_closed is not None:
                target.on_closed(placed.stream, str(data.get("reason", "")))  # type: ignore[arg-type]
