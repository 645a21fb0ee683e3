"""The speech stage: tap audio in, Utterances out, recognition off the event loop,
with a bounded lag at any load.

Why threads and not processes: Vosk's decoding is C++ behind cffi, which
releases the GIL for the whole call (two streams in two threads decode in
parallel on 2 cores, and the event loop's timers stay on time meanwhile).
Threads share the one loaded model (about 530 MB resident for the Korean one);
worker processes would each load their own copy and need the audio pickled
across. One worker thread per core.

Each stream's audio is appended to its own buffer on the event loop (no
blocking) and handed to a worker in chunks of at least ``chunk`` seconds, at
most one job per stream at a time, so a stream is decoded in order while
different streams decode in parallel and a worker job costs one Python round
trip per chunk, not per 20 ms frame.

Nothing is lost silently. Every second of audio a tap delivers is either
decoded or deliberately *shed*, counted, and told to coaching as a gap (so a
deadline that falls in it is "can't check", never "missed"). When decoding
falls behind, the stage degrades in this order, one step at a time, and steps
back when it has caught up for a while (``Capacity``):

  1. transcript -> spotting for the busiest streams (the free-decoding pass is
     dropped; coaching relies on spotting);
  2. partial results off for every stream;
  3. no speech recognition for new streams ("coaching paused: capacity" on
     their consoles); calls in progress go on.

Whatever the level, audio that has waited more than ``max_backlog`` seconds
when a worker gets to it is shed, so nothing is recognised later than that
plus one job (the lag is bounded), and what waits is capped at twice that.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..calls.events import AgentAnswered, CallBridged, CallEnded, CallEvent, CustomerAnswered
from ..calls.model import Call
from ..metrics import Histogram
from .recognizer import (
    DecoderStats,
    Heard,
    RecognitionMode,
    SpeechModel,
    StreamDecoder,
    Utterance,
    VoiceActivity,
)
from .vad import VadSettings

log = logging.getLogger(__name__)

NORMAL, NO_TRANSCRIPT, NO_PARTIALS, PAUSED = 0, 1, 2, 3
# Free-decoding recognizers each worker warms at start (SpeechModel.warm_up) and the
# model keeps between busy periods: a new one costs ~0.6 s of CPU in its first sentence.
WARM_PER_WORKER = 2
STEP_GAP = 2.0  # seconds between two steps up: let the last one take effect
LAG_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
LEVEL_NAMES = {
    NORMAL: "normal",
    NO_TRANSCRIPT: "transcript off for the busiest streams",
    NO_PARTIALS: "partial results off",
    PAUSED: "no new speech streams",
}


@dataclass
class StageStats:
    streams: int = 0
    audio_seconds: float = 0.0  # received from the taps
    processed_seconds: float = 0.0  # classified by the VAD and, where speech, decoded
    decoded_seconds: float = 0.0  # handed to Vosk after gating
    shed_seconds: float = 0.0  # deliberately dropped to keep the lag bounded
    refused_seconds: float = 0.0  # of streams not recognised at all (paused: capacity)
    held_seconds: float = 0.0  # speech spotted but left out of the transcript while behind
    decode_cpu: float = 0.0  # CPU seconds in Vosk
    gate_cpu: float = 0.0  # CPU seconds in the VAD
    finals: int = 0
    partials: int = 0
    refused_streams: int = 0
    degradations: int = 0  # steps up the degradation ladder
    lags: deque = field(default_factory=lambda: deque(maxlen=20000))  # recent lags (s)
    lag_samples: int = 0
    lag: Histogram = field(default_factory=lambda: Histogram(LAG_BUCKETS))  # every lag

    def add_lag(self, lag: float) -> None:
        self.lags.append(lag)
        self.lag_samples += 1
        self.lag.observe(lag)

    def add(self, s: DecoderStats, rate: int) -> None:
        self.decoded_seconds += s.decoded_samples / rate
        self.held_seconds += s.held_samples / rate
        self.decode_cpu += s.decode_cpu
        self.gate_cpu += s.gate_cpu
        self.finals += s.finals
        self.partials += s.partials


class SpeechStream:
    """One speaker's audio of one call (one tap connection)."""

    def __init__(
        self, stage: "SpeechStage", call_id: str, speaker: str, rate: int, started_at: float
    ) -> None:
        self.stage = stage
        self.call_id = call_id
        self.speaker = speaker
        self.rate = rate
        self.started_at = started_at
        self.decoder: StreamDecoder | None = None
        self._pending = bytearray()
        self._skip = 0  # samples shed, to be skipped before the next audio
        self._lock = threading.Lock()
        self._busy = False
        self._ending = False
        self.ended = False
        self.received = 0  # samples received
        self.processed = 0  # samples processed (decoded, gated out or shed)
        self.shed = 0  # samples shed
        self._arrivals: deque[tuple[int, float]] = deque()  # (received after, monotonic)
        self.lag = 0.0  # seconds behind the audio, after the last job
        self.done = asyncio.Event()

    @property
    def backlog(self) -> float:
        """Seconds of audio received and not yet processed."""
        return (self.received - self.processed) / self.rate

    def feed(self, pcm: bytes, rate: int | None = None) -> None:
        if self._ending:
            return
        if rate and rate != self.rate:
            if self.decoder is None and not self._pending and not self.received:
                self.rate = rate
            else:
                log.warning(
                    "speech %s %s: sample rate changed %d -> %d mid-stream; dropped",
                    self.call_id,
                    self.speaker,
                    self.rate,
                    rate,
                )
                return
        n = len(pcm) // 2
        chunk = int(self.stage.chunk * self.rate) * 2
        # A hard cap on what waits (memory), twice the lag bound: the worker sheds stale
        # audio itself (_stale); this only matters if no worker gets to the stream.
        limit = int(2 * self.stage.max_backlog * self.rate) * 2
        shed = shed_from = 0
        with self._lock:
            self._pending += pcm
            self.received += n
            self._arrivals.append((self.received, time.monotonic()))
            if len(self._pending) > limit:
                shed_from, shed = self._cut(len(self._pending) - limit)
            if self._busy or len(self._pending) < chunk:
                submit = False
            else:
                self._busy = submit = True
        if shed:
            self.stage._shed_soon(self, shed_from, shed)
        if submit:
            self.stage._submit(self._drain)

    def _cut(self, nbytes: int) -> tuple[int, int]:
        """Drop the oldest ``nbytes`` of pending audio (lock held): (first sample, samples)."""
        nbytes -= nbytes % 2
        first = self.received - len(self._pending) // 2
        del self._pending[:nbytes]
        self._skip += nbytes // 2
        return first, nbytes // 2

    def _stale(self) -> tuple[int, int]:
        """Worker, lock held: drop pending audio that arrived more than ``max_backlog``
        seconds ago, so that nothing is recognised later than that (plus the job)."""
        too_old = time.monotonic() - self.stage.max_backlog
        upto = 0
        for received_after, at in self._arrivals:
            if at >= too_old:
                break
            upto = received_after
        first_pending = self.received - len(self._pending) // 2
        if upto <= first_pending:
            return 0, 0
        return self._cut(min(upto - first_pending, len(self._pending) // 2) * 2)

    def end(self) -> None:
        """No more audio: the last segment is finalised, then the stream is closed."""
        if self._ending:
            return
        self._ending = True
        with self._lock:
            if self._busy:
                return  # the running job sees _ending and finishes the stream
            self._busy = True
        self.stage._submit(self._drain)

    # ------------------------------------------------------------ worker side
    def _drain(self) -> None:
        try:
            while True:
                with self._lock:
                    shed_from, shed = self._stale()
                    oldest = self._arrivals[0][1] if self._pending and self._arrivals else None
                    data = bytes(self._pending)
                    self._pending.clear()
                    skip, self._skip = self._skip, 0
                    if not data and not skip and not self._ending:
                        self._busy = False
                        return
                if shed:
                    self.stage._shed_soon(self, shed_from, shed)
                if self.decoder is None:
                    self.decoder = self.stage._decoder_for(self)
                # Behind (a burst: every agent greeting at once)? The transcript sits
                # out until this stream catches up; spotting goes on, nothing is shed.
                waited = time.monotonic() - oldest if oldest is not None else 0.0
                held = self.decoder.hold_transcript
                self.decoder.hold_transcript = waited > (
                    self.stage.hold_transcript_at / 2 if held else self.stage.hold_transcript_at
                )
                if skip:
                    self.stage._publish(self.decoder.skip(skip))
                    self._processed(skip)
                if data:
                    self.stage._publish(self.decoder.process(data))
                    self._processed(len(data) // 2)
                    # Back of the queue for what arrived meanwhile: a stream that is
                    # slow to decode must not keep a worker while others wait (their
                    # audio would go stale and be shed). Closing: go on here.
                    if self.stage._requeue(self._drain):
                        return
                    continue
                if not self._ending:
                    continue
                self.stage._publish(self.decoder.finish())
                with self._lock:
                    self._busy = False
                self.stage._stream_finished(self)
                return
        except Exception:
            log.exception(
                "speech %s %s: recognition failed; stream abandoned", self.call_id, self.speaker
            )
            with self._lock:
                self._busy = False
                self._pending.clear()
            if self.decoder is not None:
                self.decoder.drop()
            self._ending = True
            self.stage._stream_finished(self)

    def _processed(self, samples: int) -> None:
        """Worker: account processed audio and measure how far behind it arrived."""
        now = time.monotonic()
        with self._lock:
            self.processed += samples
            arrived = now
            while self._arrivals and self._arrivals[0][0] <= self.processed:
                arrived = self._arrivals.popleft()[1]
            self.lag = max(0.0, now - arrived)
        self.stage.stats.add_lag(self.lag)


class _TapSink:
    """Adapter: what TapServer's sink_factory returns for one tap connection."""

    def __init__(self, stream: SpeechStream) -> None:
        self.stream = stream

    def audio(self, pcm: bytes, rate: int) -> None:
        self.stream.feed(pcm, rate)

    def end(self, reason: str) -> None:
        self.stream.end()


class _RefusedSink:
    """A tap connection whose audio is not recognised (capacity): counted, dropped."""

    def __init__(self, stage: "SpeechStage") -> None:
        self.stage = stage

    def audio(self, pcm: bytes, rate: int) -> None:
        self.stage.stats.refused_seconds += len(pcm) / 2 / (rate or 8000)
        self.stage.stats.audio_seconds += len(pcm) / 2 / (rate or 8000)

    def end(self, reason: str) -> None:
        pass


@dataclass
class _CallInfo:
    origin: float | None = None  # time.time() of the answer
    modes: dict[str, RecognitionMode] = field(default_factory=dict)  # speaker -> mode
    streams: list[SpeechStream] = field(default_factory=list)
    ended: bool = False


@dataclass(frozen=True)
class CapacityNotice:
    """The stage changed how much it recognises (for consoles and logs)."""

    level: int
    description: str
    call_id: str | None = None  # a call whose recognition this affects, if one


class SpeechStage:
    """Feeds tap audio to Vosk; calls ``on_utterance`` (and ``on_activity``, ``on_heard``,
    ``on_gap``, ``on_capacity``) on the loop.

    model: a SpeechModel, or what ``speech.model`` says ("auto", a name, a folder).
    mode: the default recognition mode; ``set_mode(call_id, speaker, ...)`` or
      ``mode_for_call(call, speaker)`` (called at answer time) choose per party.
    """

    def __init__(
        self,
        model: SpeechModel | str | Path = "auto",
        *,
        on_utterance: Callable[[Utterance], Any] | None = None,
        on_activity: Callable[[VoiceActivity], Any] | None = None,
        on_heard: Callable[[Heard], Any] | None = None,
        on_gap: Callable[[str, str, float, float, str], Any] | None = None,
        on_capacity: Callable[[CapacityNotice], Any] | None = None,
        mode: RecognitionMode = RecognitionMode(),
        mode_for_call: Callable[[Call, str], RecognitionMode | None] | None = None,
        vad: VadSettings = VadSettings(),
        partials: bool = True,
        workers: int | None = None,
        max_backlog: float = 1.5,
        chunk: float = 0.2,
        degrade_at: float = 0.8,
        hold_transcript_at: float = 0.5,
        recover_after: float = 15.0,
        beam: float | None = None,
        max_active: int | None = None,
        max_transcripts: int = 16,
    ) -> None:
        self._model_spec = model
        self._beam, self._max_active = beam or None, max_active or None
        self.model: SpeechModel | None = None if isinstance(model, (str, Path)) else model
        self.on_utterance = on_utterance
        self.on_activity = on_activity
        self.on_heard = on_heard
        self.on_gap = on_gap
        self.on_capacity = on_capacity
        self.default_mode = mode
        self.mode_for_call = mode_for_call
        self.vad = vad
        self.partials = partials
        self.workers = workers or max(1, os.cpu_count() or 1)
        self.max_backlog = max_backlog
        self.chunk = chunk
        self.degrade_at = degrade_at  # a stream this many seconds behind: degrade
        # A stream this many seconds behind decodes its sentences without the transcript
        # pass until it has caught up (SpeechStream._drain): before any shedding.
        self.hold_transcript_at = hold_transcript_at
        self.max_transcripts = max_transcripts
        self.recover_after = recover_after  # caught up this long: one step back
        self.level = NORMAL
        self.stats = StageStats()
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._calls: dict[str, _CallInfo] = {}
        self._streams: dict[tuple[str, str], SpeechStream] = {}
        self._open: set[SpeechStream] = set()
        self._stats_lock = threading.Lock()
        self._watch: asyncio.Task | None = None
        self._calm_since: float | None = None
        self._behind_checks = 0
        self._stepped_at = -1e9
        self._trim_due = False

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Load the model (in a thread: it takes seconds) and start the workers."""
        self._loop = asyncio.get_running_loop()
        spec = self._model_spec
        if self.model is None and not isinstance(spec, SpeechModel):
            self.model = await asyncio.to_thread(
                lambda: SpeechModel.load(spec, beam=self._beam, max_active=self._max_active)
            )
        model = self.model
        assert model is not None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="speech")
            if hasattr(model, "cold_limit"):
                model.cold_limit = self.workers
                model.free_limit = self.max_transcripts
            if hasattr(self.model, "warm_up"):
                # Each worker thread's first free decoding is slow (~0.7 s): pay it now,
                # one warm-up per thread (the barrier keeps one thread from taking two).
                barrier = threading.Barrier(self.workers)

                def warm() -> None:
                    model.warm_up(WARM_PER_WORKER, up_to=WARM_PER_WORKER * self.workers)
                    barrier.wait(timeout=60)

                await asyncio.gather(
                    *(asyncio.wrap_future(self._executor.submit(warm)) for _ in range(self.workers))
                )
        if self._watch is None:
            self._watch = asyncio.ensure_future(self._watch_capacity())

    async def close(self, timeout: float = 5.0) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
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
    def set_mode(self, call_id: str, mode: RecognitionMode, speaker: str | None = None) -> None:
        """Recognition mode of a call's streams (of one party, or both) opened from now on."""
        info = self._calls.setdefault(call_id, _CallInfo())
        for sp in (speaker,) if speaker else ("agent", "customer"):
            info.modes[sp] = mode

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
                if not info.modes and self.mode_for_call is not None:
                    for speaker in ("agent", "customer"):
                        try:
                            mode = self.mode_for_call(call, speaker)
                        except Exception:
                            log.exception(
                                "speech: choosing the mode of call %s failed", call.call_id
                            )
                            mode = None
                        if mode is not None:
                            info.modes[speaker] = mode
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
    def open_stream(
        self, call_id: str, speaker: str, *, rate: int = 8000, started_at: float | None = None
    ) -> SpeechStream:
        """A new stream for this speaker (ends the previous one, e.g. after a tap reconnect)."""
        if self._loop is None:
            raise RuntimeError("SpeechStage.start() was not awaited")
        old = self._streams.get((call_id, speaker))
        if old is not None:
            old.end()
        info = self._calls.setdefault(call_id, _CallInfo())
        stream = SpeechStream(
            self, call_id, speaker, rate, started_at if started_at is not None else time.time()
        )
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

    def sink(self, tap) -> _TapSink | _RefusedSink:
        """TapServer sink_factory: ``TapServer(..., sink_factory=stage.sink)``."""
        if self.level >= PAUSED and (tap.call_id, tap.speaker) not in self._streams:
            self.stats.refused_streams += 1
            self._notify(CapacityNotice(self.level, "coaching paused: capacity", tap.call_id))
            return _RefusedSink(self)
        started = getattr(tap, "opened_at", None)
        stream = self.open_stream(tap.call_id, tap.speaker, started_at=started)
        return _TapSink(stream)

    def mode_of(self, call_id: str, speaker: str = "agent") -> RecognitionMode:
        info = self._calls.get(call_id)
        mode = info.modes.get(speaker) if info is not None else None
        return mode if mode is not None else self.default_mode

    def accounted(self) -> tuple[float, float, float]:
        """(received, processed, shed) seconds so far, open streams included."""
        st = self.stats
        received, processed, shed = (
            st.audio_seconds - st.refused_seconds,
            st.processed_seconds,
            st.shed_seconds,
        )
        for s in list(self._open):
            received += s.received / s.rate
            processed += s.processed / s.rate
        return received, processed, shed

    def decode_cpu(self) -> float:
        """CPU seconds in Vosk and the VAD so far, open streams included."""
        st = self.stats
        total = st.decode_cpu + st.gate_cpu
        for s in list(self._open):
            d = s.decoder
            if d is not None:
                total += d.stats.decode_cpu + d.stats.gate_cpu
        return total

    @property
    def open_streams(self) -> int:
        """Streams being decoded (a tap connected, its call not over)."""
        return len(self._open)

    @property
    def lag(self) -> float:
        """The worst backlog of any open stream, in seconds of audio."""
        return max((s.backlog for s in self._open), default=0.0)

    # ------------------------------------------------------------ capacity
    async def _watch_capacity(self, every: float = 0.5) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                self._judge_capacity(time.monotonic())
            except Exception:
                log.exception("speech: capacity check failed")

    def _judge_capacity(self, now: float) -> None:
        streams = [s for s in self._open if not s._ending]
        behind = [s for s in streams if s.backlog > self.degrade_at]
        # One slow job (a first sentence, a GC pause) is no overload: degrade only when
        # streams stay behind over two checks in a row.
        self._behind_checks = self._behind_checks + 1 if behind else 0
        if behind and self._behind_checks >= 2 and now - self._stepped_at >= STEP_GAP:
            self._calm_since = None
            self._behind_checks = 0
            self._stepped_at = now
            self._degrade(behind)
        elif behind:
            self._calm_since = None
        elif all(s.backlog < self.degrade_at / 3 for s in streams):
            if self._calm_since is None:
                self._calm_since = now
            elif now - self._calm_since >= self.recover_after and self.level > NORMAL:
                self._calm_since = now
                self._set_level(self.level - 1)
        if self._trim_due and not streams:
            self._trim_due = False
            trim_warm = getattr(self.model, "trim_warm", None)
            if trim_warm is not None:
                trim_warm(WARM_PER_WORKER * self.workers)
            self._submit(_malloc_trim)

    def _degrade(self, behind: list[SpeechStream]) -> None:
        # Step 1 first: drop the transcript of the busiest streams still transcribing.
        transcribing = sorted(
            (
                s
                for s in self._open
                if s.decoder is not None and s.decoder.transcribing and len(s.decoder.passes) > 1
            ),
            key=lambda s: -s.backlog,
        )
        if transcribing:
            if self.level < NO_TRANSCRIPT:
                self._set_level(NO_TRANSCRIPT)
            for s in transcribing[: max(1, len(transcribing) // 2)]:
                if s.decoder is not None and s.decoder.transcript_off():
                    self._notify(
                        CapacityNotice(NO_TRANSCRIPT, "transcript off: capacity", s.call_id)
                    )
            self.stats.degradations += 1
            return
        if self.level < PAUSED:
            self._set_level(max(self.level + 1, NO_PARTIALS))
            self.stats.degradations += 1

    def _set_level(self, level: int) -> None:
        if level == self.level:
            return
        log.warning(
            "speech capacity: %s -> %s (worst lag %.1f s, %d streams)",
            LEVEL_NAMES[self.level],
            LEVEL_NAMES[level],
            self.lag,
            len(self._open),
        )
        self.level = level
        partials = self.partials and level < NO_PARTIALS
        for s in self._open:
            if s.decoder is not None:
                s.decoder.partials = partials
        self._notify(CapacityNotice(level, LEVEL_NAMES[level]))

    def _notify(self, notice: CapacityNotice) -> None:
        if self.on_capacity is not None:
            try:
                self.on_capacity(notice)
            except Exception:
                log.exception("speech: capacity consumer failed")

    # ------------------------------------------------------------ internals
    def _requeue(self, fn: Callable[[], None]) -> bool:
        """Worker: queue ``fn`` behind the jobs waiting; False if the stage is closing."""
        executor = self._executor
        if executor is None:
            return False
        try:
            executor.submit(fn)
        except RuntimeError:  # shut down meanwhile
            return False
        return True

    def _submit(self, fn: Callable[[], None]) -> None:
        if self._executor is None:
            raise RuntimeError("SpeechStage is closed")
        self._executor.submit(fn)

    def _decoder_for(self, stream: SpeechStream) -> StreamDecoder:
        """Worker thread: build a stream's decoder (a free-decoding one takes ~50 ms)."""
        info = self._calls.get(stream.call_id)
        origin = info.origin if info is not None and info.origin is not None else None
        if origin is None:
            origin = stream.started_at
            if info is not None:
                info.origin = origin
        assert self.model is not None
        mode = self.mode_of(stream.call_id, stream.speaker)
        if self.level >= NO_TRANSCRIPT and mode.transcript and mode.spots:
            mode = RecognitionMode(mode.phrases, mode.fillers, transcript=False)
        return StreamDecoder(
            self.model,
            call_id=stream.call_id,
            speaker=stream.speaker,
            rate=stream.rate,
            mode=mode,
            offset=stream.started_at - origin,
            vad=self.vad,
            partials=self.partials and self.level < NO_PARTIALS,
        )

    def _shed_soon(self, stream: SpeechStream, first: int, samples: int) -> None:
        """Any thread: account shed audio on the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._shed, stream, first, samples)

    def _shed(self, stream: SpeechStream, first: int, samples: int) -> None:
        """Loop: ``samples`` of the stream's oldest pending audio (from stream sample
        ``first``) were dropped."""
        seconds = samples / stream.rate
        stream.shed += samples
        self.stats.shed_seconds += seconds
        if stream.shed == samples:
            log.warning(
                "speech %s %s: recognition is %.1f s behind; shedding audio (counted)",
                stream.call_id,
                stream.speaker,
                self.max_backlog,
            )
        if self.on_gap is not None:
            info = self._calls.get(stream.call_id)
            origin = (
                info.origin if info is not None and info.origin is not None else stream.started_at
            )
            start = round(stream.started_at - origin + first / stream.rate, 3)
            try:
                self.on_gap(
                    stream.call_id,
                    stream.speaker,
                    start,
                    start + seconds,
                    "audio shed: speech recognition over capacity",
                )
            except Exception:
                log.exception("speech: gap consumer failed")

    def _publish(self, items: list) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or not items:
            return
        loop.call_soon_threadsafe(self._deliver, items)

    def _deliver(self, items: list) -> None:
        for item in items:
            cb: Callable[[Any], Any] | None
            if isinstance(item, Utterance):
                cb = self.on_utterance
            elif isinstance(item, VoiceActivity):
                cb = self.on_activity
            else:
                cb = self.on_heard
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
            self.stats.audio_seconds += stream.received / stream.rate
            self.stats.processed_seconds += stream.processed / stream.rate
        stream.decoder = None  # its recognizers' memory goes now
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._closed, stream)

    def _closed(self, stream: SpeechStream) -> None:
        stream.ended = True
        stream.done.set()
        self._open.discard(stream)
        self._trim_due = True
        if self._streams.get((stream.call_id, stream.speaker)) is stream:
            del self._streams[(stream.call_id, stream.speaker)]
        info = self._calls.get(stream.call_id)
        if info is not None and info.ended and all(s.ended for s in info.streams):
            self._calls.pop(stream.call_id, None)


_libc = None


def _malloc_trim() -> None:
    """Give freed recognizer memory back to the system (glibc keeps it otherwise, and
    the service would stay at its peak size after a busy hour)."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass
