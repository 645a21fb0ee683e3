"""The speech stage: tap audio in, Utterances out, recognition off the event loop.

Why threads and not processes: Vosk's decoding is C++ behind cffi, which
releases the GIL for the whole call (measured here: two streams in two
threads decode in parallel on 2 cores, and the event loop's 1 ms timers stay
within ~0.5 ms of schedule meanwhile). Threads share the one loaded model
(260 MB for the Korean one); worker processes would each load their own copy
(3 s and the memory, per worker) and need the audio pickled across. The GIL
is only held for the cheap parts (VAD, JSON), so a thread pool of one worker
per core is used.

Each stream's audio is appended to its own buffer on the event loop (no
blocking, no copying beyond that) and at most one job per stream runs at a
time, so a stream's audio is decoded in order while different streams decode
in parallel. A stream that falls more than ``max_backlog`` seconds behind
loses its oldest audio (logged) rather than memory growing without bound.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..calls.events import (AgentAnswered, CallBridged, CallEnded, CallEvent,
                            CustomerAnswered)
from ..calls.model import Call
from .recognizer import (DecoderStats, RecognitionMode, SpeechModel, StreamDecoder,
                         Utterance, VoiceActivity)
from .vad import VadSettings

log = logging.getLogger(__name__)


@dataclass
class StageStats:
    streams: int = 0
    audio_seconds: float = 0.0        # received
    decoded_seconds: float = 0.0      # handed to Vosk after gating
    decode_cpu: float = 0.0           # CPU seconds in Vosk
    gate_cpu: float = 0.0             # CPU seconds in the VAD
    dropped_seconds: float = 0.0      # lost to backlog
    finals: int = 0
    partials: int = 0

    def add(self, s: DecoderStats, rate: int) -> None:
        self.audio_seconds += s.audio_samples / rate
        self.decoded_seconds += s.decoded_samples / rate
        self.decode_cpu += s.decode_cpu
        self.gate_cpu += s.gate_cpu
        self.finals += s.finals
        self.partials += s.partials


class SpeechStream:
    """One speaker's audio of one call (one tap connection)."""

    def __init__(self, stage: "SpeechStage", call_id: str, speaker: str, rate: int,
                 started_at: float) -> None:
        self.stage = stage
        self.call_id = call_id
        self.speaker = speaker
        self.rate = rate
        self.started_at = started_at
        self.decoder: StreamDecoder | None = None
        self._pending = bytearray()
        self._lock = threading.Lock()
        self._busy = False
        self._ending = False
        self.ended = False
        self.dropped_samples = 0
        self.done = asyncio.Event()

    def feed(self, pcm: bytes, rate: int | None = None) -> None:
        if self._ending:
            return
        if rate and rate != self.rate:
            if self.decoder is None and not self._pending:
                self.rate = rate
            else:
                log.warning("speech %s %s: sample rate changed %d -> %d mid-stream; dropped",
                            self.call_id, self.speaker, self.rate, rate)
                return
        limit = int(self.stage.max_backlog * self.rate) * 2
        with self._lock:
            self._pending += pcm
            if len(self._pending) > limit:
                cut = len(self._pending) - limit
                cut -= cut % 2
                del self._pending[:cut]
                if not self.dropped_samples:
                    log.warning("speech %s %s: recognition is %.0f s behind; dropping audio",
                                self.call_id, self.speaker, self.stage.max_backlog)
                self.dropped_samples += cut // 2
            if self._busy:
                return
            self._busy = True
        self.stage._submit(self._drain)

    def end(self) -> None:
        """No more audio: the last segment is finalised, then the stream is closed."""
        if self._ending:
            return
        self._ending = True
        with self._lock:
            if self._busy:
                return            # the running job sees _ending and finishes the stream
            self._busy = True
        self.stage._submit(self._drain)

    # ------------------------------------------------------------ worker side
    def _drain(self) -> None:
        try:
            while True:
                with self._lock:
                    data = bytes(self._pending)
                    self._pending.clear()
                    if not data and not self._ending:
                        self._busy = False
                        return
                if self.decoder is None:
                    self.decoder = self.stage._decoder_for(self)
                if data:
                    out = self.decoder.process(data)
                    if out:
                        self.stage._publish(out)
                    continue
                # ending and nothing left
                out = self.decoder.finish()
                if out:
                    self.stage._publish(out)
                with self._lock:
                    self._busy = False
                self.stage._stream_finished(self)
                return
        except Exception:
            log.exception("speech %s %s: recognition failed; stream abandoned", self.call_id,
                          self.speaker)
            with self._lock:
                self._busy = False
                self._pending.clear()
            self._ending = True
            self.stage._stream_finished(self)


class _TapSink:
    """Adapter: what TapServer's sink_factory returns for one tap connection."""

    def __init__(self, stream: SpeechStream) -> None:
        self.stream = stream

    def audio(self, pcm: bytes, rate: int) -> None:
        self.stream.feed(pcm, rate)

    def end(self, reason: str) -> None:
        self.stream.end()


@dataclass
class _CallInfo:
    origin: float | None = None               # time.time() of the answer
    mode: RecognitionMode | None = None
    streams: list[SpeechStream] = field(default_factory=list)
    ended: bool = False


class SpeechStage:
    """Feeds tap audio to Vosk; calls ``on_utterance`` (and ``on_activity``) on the loop.

    model: a SpeechModel, or what ``speech.model`` says ("auto", a name, a folder).
    mode: the default recognition mode; ``set_mode(call_id, ...)`` or ``mode_for_call``
      (called with the Call at answer time) choose per call (per project/script).
    """

    def __init__(self, model: SpeechModel | str | Path = "auto", *,
                 on_utterance: Callable[[Utterance], Any] | None = None,
                 on_activity: Callable[[VoiceActivity], Any] | None = None,
                 mode: RecognitionMode = RecognitionMode(),
                 mode_for_call: Callable[[Call], RecognitionMode | None] | None = None,
                 vad: VadSettings = VadSettings(), partials: bool = True,
                 workers: int | None = None, max_backlog: float = 10.0) -> None:
        self._model_spec = model
        self.model: SpeechModel | None = model if isinstance(model, SpeechModel) else None
        self.on_utterance = on_utterance
        self.on_activity = on_activity
        self.default_mode = mode
        self.mode_for_call = mode_for_call
        self.vad = vad
        self.partials = partials
        self.workers = workers or max(1, os.cpu_count() or 1)
        self.max_backlog = max_backlog
        self.stats = StageStats()
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._calls: dict[str, _CallInfo] = {}
        self._streams: dict[tuple[str, str], SpeechStream] = {}
        self._open: set[SpeechStream] = set()
        self._stats_lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Load the model (in a thread: it takes seconds) and start the workers."""
        self._loop = asyncio.get_running_loop()
        if self.model is None:
            self.model = await asyncio.to_thread(SpeechModel.load, self._model_spec)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="speech")

    async def close(self, timeout: float = 5.0) -> None:
        for s in list(self._open):
            s.end()
        pending = [s.done.wait() for s in list(self._open)]
        if pending:
            try:
                await asyncio.wait_for(asyncio.gather(*pending), timeout)
            except asyncio.TimeoutError:
                log.warning("speech: %d streams still decoding at close", len(self._open))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # ------------------------------------------------------------ calls
    def set_mode(self, call_id: str, mode: RecognitionMode) -> None:
        """Recognition mode of a call's streams opened from now on."""
        self._calls.setdefault(call_id, _CallInfo()).mode = mode

    def set_origin(self, call_id: str, at: float) -> None:
        """The call's time zero (its answer), for Utterance.start/end."""
        info = self._calls.setdefault(call_id, _CallInfo())
        if info.origin is None:
            info.origin = at

    def on_call_event(self, event: CallEvent) -> None:
        """Call bus subscriber: learns answer times and modes, forgets ended calls."""
        call = event.call
        if isinstance(event, (AgentAnswered, CustomerAnswered, CallBridged)):
            if call.answered_at is not None:
                self.set_origin(call.call_id, call.answered_at)
                info = self._calls[call.call_id]
                if info.mode is None and self.mode_for_call is not None:
                    try:
                        mode = self.mode_for_call(call)
                    except Exception:
                        log.exception("speech: choosing the mode of call %s failed", call.call_id)
                        mode = None
                    if mode is not None:
                        info.mode = mode
        elif isinstance(event, CallEnded):
            self.end_call(call.call_id)

    def end_call(self, call_id: str) -> None:
        info = self._calls.get(call_id)
        if info is None:
            return
        info.ended = True
        for s in list(info.streams):
            s.end()
        if not any(not s.ended for s in info.streams):
            self._calls.pop(call_id, None)

    # ------------------------------------------------------------ streams
    def open_stream(self, call_id: str, speaker: str, *, rate: int = 8000,
                    started_at: float | None = None) -> SpeechStream:
        """A new stream for this speaker (ends the previous one, e.g. after a tap reconnect)."""
        if self._loop is None:
            raise RuntimeError("SpeechStage.start() was not awaited")
        old = self._streams.get((call_id, speaker))
        if old is not None:
            old.end()
        info = self._calls.setdefault(call_id, _CallInfo())
        stream = SpeechStream(self, call_id, speaker, rate,
                              started_at if started_at is not None else time.time())
        info.streams.append(stream)
        self._streams[(call_id, speaker)] = stream
        self._open.add(stream)
        self.stats.streams += 1
        return stream

    def feed(self, call_id: str, speaker: str, pcm: bytes, rate: int = 8000) -> None:
        """Audio of a speaker; opens the stream on first use."""
        stream = self._streams.get((call_id, speaker))
        if stream is None or stream._ending:
            stream = self.open_stream(call_id, speaker, rate=rate)
        stream.feed(pcm, rate)

    def end_stream(self, call_id: str, speaker: str) -> None:
        stream = self._streams.get((call_id, speaker))
        if stream is not None:
            stream.end()

    def sink(self, tap) -> _TapSink:
        """TapServer sink_factory: ``TapServer(..., sink_factory=stage.sink)``."""
        started = getattr(tap, "opened_at", None)
        stream = self.open_stream(tap.call_id, tap.speaker, started_at=started)
        return _TapSink(stream)

    def mode_of(self, call_id: str) -> RecognitionMode:
        info = self._calls.get(call_id)
        return info.mode if info is not None and info.mode is not None else self.default_mode

    # ------------------------------------------------------------ internals
    def _submit(self, fn: Callable[[], None]) -> None:
        if self._executor is None:
            raise RuntimeError("SpeechStage is closed")
        self._executor.submit(fn)

    def _decoder_for(self, stream: SpeechStream) -> StreamDecoder:
        """Worker thread: build a stream's decoder (creating a recognizer takes a few ms)."""
        info = self._calls.get(stream.call_id)
        origin = info.origin if info is not None and info.origin is not None else None
        if origin is None:
            origin = stream.started_at
            if info is not None:
                info.origin = origin
        assert self.model is not None
        return StreamDecoder(self.model, call_id=stream.call_id, speaker=stream.speaker,
                             rate=stream.rate, mode=self.mode_of(stream.call_id),
                             offset=stream.started_at - origin, vad=self.vad,
                             partials=self.partials)

    def _publish(self, items: list) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._deliver, items)

    def _deliver(self, items: list) -> None:
        for item in items:
            cb = self.on_utterance if isinstance(item, Utterance) else self.on_activity
            if cb is None:
                continue
            try:
                cb(item)
            except Exception:
                log.exception("speech: consumer %r failed", cb)

    def _stream_finished(self, stream: SpeechStream) -> None:
        """Worker thread: account the stream, then close it on the loop."""
        with self._stats_lock:
            if stream.decoder is not None:
                self.stats.add(stream.decoder.stats, stream.rate)
            self.stats.dropped_seconds += stream.dropped_samples / stream.rate
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._closed, stream)

    def _closed(self, stream: SpeechStream) -> None:
        stream.ended = True
        stream.done.set()
        self._open.discard(stream)
        if self._streams.get((stream.call_id, stream.speaker)) is stream:
            del self._streams[(stream.call_id, stream.speaker)]
        info = self._calls.get(stream.call_id)
        if info is not None and info.ended and all(s.ended for s in info.streams):
            self._calls.pop(stream.call_id, None)
