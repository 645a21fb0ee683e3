"""A speech worker (`ivr serve --role speech`): taps in, what was heard out, over the bus.

It runs the taps' AudioSocket server, the VAD and Vosk (the speech stage) for the
controllers, and nothing else (no PBX, no store, no web):

- every HEARTBEAT s it publishes its tap address and load on `ivr.speech.workers`;
  controllers place each tap on the least loaded worker and count a worker dead
  after DEAD_AFTER s of silence (cluster/speech_pool.py);
- a controller places a tap here (request on `ivr.speech.worker.<id>`: the tap's
  uuid, call, party, the call's answer time and what that party listens for),
  then has Asterisk connect here;
- the taps' connections and what is heard (utterances, voice activity, progress,
  gaps, capacity) go back to that controller on `ivr.speech.results.<controller>`.

It keeps nothing a controller needs: a controller that takes a PBX over taps its
calls again, and a worker that dies only costs the audio until they are re-tapped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..bus import create_bus, subjects
from ..bus.codec import decode, encode
from ..lifecycle import run_until_stopped
from ..speech.recognizer import Heard, RecognitionMode, Utterance, VoiceActivity
from ..speech.stage import PAUSED, CapacityNotice, SpeechStage
from ..tap.server import TapServer, TapStream, TapTarget, connect_address
from .lease import new_instance_id

log = logging.getLogger(__name__)

HEARTBEAT = 0.25  # s between a worker's heartbeats
DEAD_AFTER = 1.0  # s of silence after which controllers count a worker dead
ROUTE_KEEP = 30.0  # s a call's results still go to its controller after it ended


class SpeechWorker:
    def __init__(self, settings: Any, bus: Any = None) -> None:
        self.settings = settings
        self.instance = settings.cluster.instance or new_instance_id()
        self.bus = bus or create_bus(settings.bus.url, f"ivr speech {self.instance}")
        sp = settings.speech
        self.stage = SpeechStage(
            sp.model,
            on_utterance=lambda u: self._send(u.call_id, "utterance", encode(u)),
            on_activity=lambda a: self._send(a.call_id, "activity", encode(a)),
            on_heard=lambda h: self._send(h.call_id, "heard", encode(h)),
            on_gap=self._gap,
            on_capacity=self._capacity,
            beam=sp.beam,
            max_active=sp.max_active,
            max_transcripts=sp.max_transcripts,
        )
        tap = settings.tap
        self.server = TapServer(tap.host, tap.port, sink_factory=self.stage.sink)
        self._routes: dict[str, str] = {}  # call id -> results subject of its controller
        self._ended: dict[str, float] = {}  # call id -> when its controller said it ended
        self._streams: dict[str, TapStream] = {}  # tap uuid -> its connection
        self._beat: asyncio.Task | None = None

    @property
    def address(self) -> str:
        tap = self.settings.tap
        return connect_address(tap.connect_host or tap.host, self.server.port)

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.bus.start()
        await self.stage.start()  # the model, and warm recognizers
        await self.server.start()
        await self.bus.serve(subjects.speech_worker(self.instance), self._request)
        await self.bus.subscribe(subjects.speech_worker(self.instance), self._order)
        self._beat = asyncio.ensure_future(self._heartbeat())
        log.info(
            "speech worker %s: taps at %s, %d decoding threads",
            self.instance,
            self.address,
            self.stage.workers,
        )

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        # Controllers move this worker's taps at once instead of after DEAD_AFTER.
        self.bus.publish(subjects.SPEECH_WORKERS, {"worker": self.instance, "leaving": True})
        await asyncio.sleep(0.1)
        await self.server.close()
        await self.stage.close()
        await self.bus.close()

    async def run_forever(self) -> None:
        await run_until_stopped(self.start, self.stop)

    async def _heartbeat(self) -> None:
        while True:
            self.bus.publish(subjects.SPEECH_WORKERS, self.load())
            now = time.monotonic()
            for call_id, at in list(self._ended.items()):
                if now - at > ROUTE_KEEP:
                    del self._ended[call_id]
                    self._routes.pop(call_id, None)
            await asyncio.sleep(HEARTBEAT)

    def load(self) -> dict[str, Any]:
        stage = self.stage
        return {
            "worker": self.instance,
            "address": self.address,
            "streams": stage.open_streams,
            "threads": stage.workers,
            "level": stage.level,
            "lag": round(stage.lag, 3),
        }

    # ------------------------------------------------------------ from controllers
    async def _request(self, subject: str, data: dict[str, Any]) -> dict[str, Any] | None:
        if data.get("op") != "place":
            return None
        try:
            return self._place(data)
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "error": f"bad placement: {exc}"}

    def _place(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.stage.level >= PAUSED:
            return {"ok": False, "error": f"speech worker {self.instance} is at capacity"}
        uid, call_id, speaker = str(data["uid"]), str(data["call_id"]), str(data["speaker"])
        self._routes[call_id] = str(data["reply"])
        self._ended.pop(call_id, None)
        self.stage.set_origin(call_id, float(data["origin"]))
        self.stage.set_mode(call_id, decode(RecognitionMode, data["mode"]), speaker)

        def connected(stream: TapStream) -> None:
            # A controller that took the PBX over taps its calls again: the party's
            # earlier tap (placed by the dead controller) goes.
            for other, old in list(self._streams.items()):
                if old.call_id == call_id and old.speaker == speaker:
                    old.close()
                    self._streams.pop(other, None)
            self._streams[uid] = stream
            self._tap(call_id, uid, "connected", opened_at=stream.opened_at)
            asyncio.ensure_future(self._first_audio(call_id, uid, stream))

        def closed(stream: TapStream, reason: str) -> None:
            self._streams.pop(uid, None)
            self._tap(call_id, uid, "closed", reason=reason)

        target = TapTarget(
            call_id, speaker, str(data["leg"]), on_connected=connected, on_closed=closed
        )
        self.server.registry.expect(uid, target)
        return {"ok": True}

    def _order(self, subject: str, data: dict[str, Any]) -> None:
        op = data.get("op")
        if op == "forget":
            self.server.registry.forget(str(data.get("uid")))
        elif op == "close":
            stream = self._streams.get(str(data.get("uid")))
            if stream is not None:
                stream.close()
        elif op == "end":
            call_id = str(data.get("call_id"))
            self.stage.end_call(call_id)
            self._ended[call_id] = time.monotonic()

    # ------------------------------------------------------------ to controllers
    def _send(self, call_id: str, kind: str, data: dict[str, Any]) -> None:
        subject = self._routes.get(call_id)
        if subject is not None:
            self.bus.publish(subject, {"worker": self.instance, "kind": kind, "data": data})

    def _tap(self, call_id: str, uid: str, event: str, **fields: Any) -> None:
        self._send(call_id, "tap", {"uid": uid, "event": event, **fields})

    async def _first_audio(self, call_id: str, uid: str, stream: TapStream) -> None:
        deadline = time.monotonic() + 2.0
        while stream.first_audio_at is None and stream.closed_reason is None:
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.01)
        if stream.first_audio_at is not None:
            self._tap(call_id, uid, "audio", first_audio_at=stream.first_audio_at)

    def _gap(self, call_id: str, speaker: str, start: float, end: float, reason: str) -> None:
        fields = {"call_id": call_id, "speaker": speaker, "start": start, "end": end}
        self._send(call_id, "gap", {**fields, "reason": reason})

    def _capacity(self, notice: CapacityNotice) -> None:
        if notice.call_id:
            self._send(notice.call_id, "capacity", encode(notice))
            return
        # A change for every call here: once to each controller with calls here.
        for subject in set(self._routes.values()):
            self.bus.publish(
                subject, {"worker": self.instance, "kind": "capacity", "data": encode(notice)}
            )


# What a controller decodes from a worker's results (cluster/speech_pool.py).
RESULT_TYPES: dict[str, type] = {
    "utterance": Utterance,
    "activity": VoiceActivity,
    "heard": Heard,
    "capacity": CapacityNotice,
}
