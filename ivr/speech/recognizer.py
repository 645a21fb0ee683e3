"""Vosk recognition of one audio stream: the model (loaded once, shared), the
per-stream decoder with voice-activity gating, and what comes out of it.

A :class:`StreamDecoder` is plain synchronous code: :class:`SpeechStage`
(stage.py) runs it in worker threads. One model serves every stream: Vosk's
Model is read-only once loaded and each stream has its own KaldiRecognizer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .grammar import Grammar, build_grammar, fit_phrase, is_unk
from .models import resolve_model, supports_grammar, tuned
from .vad import VadGate, VadSettings

WARM_MAX = 24  # free-decoding recognizers kept warm for reuse (SpeechModel.release)

log = logging.getLogger(__name__)

TRANSCRIPT = "transcript"
PHRASES = "phrases"
SPOTTING = "spotting"  # an Utterance's source: the spotting pass (else TRANSCRIPT)


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    conf: float


@dataclass(frozen=True)
class Utterance:
    """Recognised speech of one speaker of one call.

    ``start``/``end`` are seconds since the call's origin (its answer time when
    the stage was told, else the start of its first audio stream), so the two
    speakers' utterances share one time line. Partial results (final=False)
    grow while the person speaks; the final one replaces them.
    """

    call_id: str
    speaker: str  # "agent" | "customer"
    text: str
    start: float
    end: float
    final: bool
    confidence: float | None = None  # mean word confidence (finals)
    phrases: tuple[str, ...] = ()  # phrase-spotting mode: script phrases heard, as written
    words: tuple[Word, ...] = ()  # finals: per-word times and confidences
    at: float = 0.0  # time.time() when it was produced
    source: str = TRANSCRIPT  # which pass: SPOTTING (grammar) or TRANSCRIPT (free)
    # A final that the voice-activity gate ended (not the recogniser's own end-pointing):
    # time.time() when the gate closed the segment, and the stream's sample count there.
    # Timing hooks: bench/prompt_latency.py splits a prompt's latency with them.
    closed_at: float | None = None
    closed_sample: int | None = None


@dataclass(frozen=True)
class VoiceActivity:
    """Someone started (end is None) or stopped talking: for talk-over and dead air."""

    call_id: str
    speaker: str
    start: float
    end: float | None
    at: float = 0.0


@dataclass(frozen=True)
class Heard:
    """Recognition has processed this speaker's audio up to ``until`` (call time line).

    Every final result for speech before it has been published, except that of a
    segment still open (a VoiceActivity start without its end). Deadlines are judged
    on this clock, so a stream that falls behind can never produce a false "missed"."""

    call_id: str
    speaker: str
    until: float


@dataclass(frozen=True)
class RecognitionMode:
    """What one party's recognition listens for: phrases (spotting), everything
    (transcript), or both on the same audio.

    Spotting decodes against a grammar of the phrases plus ``fillers`` (garbage
    words, vocabulary.py): about 1/10 to 1/30 of the cost of free decoding, and far
    more reliable on those phrases; it is what coaching relies on. A transcript is
    free decoding (every word, for the record and the console), at about 0.3-0.5
    CPU s per second of speech with the small models. Under load a stream's
    transcript is the first thing given up (``StreamDecoder.transcript_off``).
    """

    phrases: tuple[str, ...] = ()
    fillers: tuple[str, ...] = ()
    transcript: bool = True

    @classmethod
    def transcript_only(cls) -> "RecognitionMode":
        return cls()

    @classmethod
    def spotting(
        cls, phrases: Iterable[str], fillers: Iterable[str] = (), *, transcript: bool = False
    ) -> "RecognitionMode":
        return cls(
            tuple(dict.fromkeys(p for p in phrases if p.strip())), tuple(fillers), transcript
        )

    @property
    def kind(self) -> str:
        return PHRASES if self.phrases and not self.transcript else TRANSCRIPT

    @property
    def spots(self) -> bool:
        return bool(self.phrases)

    def __post_init__(self) -> None:
        if not self.phrases and not self.transcript:
            raise ValueError("a recognition mode needs phrases to spot or a transcript")


class SpeechModel:
    """A Vosk model loaded once; ``load`` returns the same object for the same folder."""

    _cache: dict[Path, "SpeechModel"] = {}
    _lock = threading.Lock()

    def __init__(self, path: str | Path) -> None:
        from vosk import Model, SetLogLevel

        SetLogLevel(-1)
        self.path = Path(path)
        t0 = time.monotonic()
        self.model = Model(str(self.path))
        self.load_seconds = time.monotonic() - t0
        self.grammar_capable = supports_grammar(self.path)
        self._grammars: dict[tuple[tuple[str, ...], tuple[str, ...]], Grammar] = {}
        self._glock = threading.Lock()
        # Free-decoding recognizers kept for reuse (see release()), per sample rate, and
        # how many new ones may be in their costly first sentence at once (take_free).
        self._warm: dict[int, list[tuple[Any, int]]] = {}  # (recognizer, samples fed)
        self._cold = 0
        self.cold_limit = 2  # the speech stage sets it to its number of workers
        self._free = 0  # free-decoding recognizers alive (in streams and warm)
        self._warming = 0  # being warmed up (warm_up)
        self.free_limit = 16  # the speech stage sets it (speech.max_transcripts)
        log.info("speech model %s loaded in %.1f s", self.path, self.load_seconds)

    @classmethod
    def load(
        cls, spec: str | Path = "auto", *, beam: float | None = None, max_active: int | None = None
    ) -> "SpeechModel":
        """The model ``spec`` names, loaded once per folder and search settings."""
        path = tuned(resolve_model(spec).resolve(), beam, max_active)
        with cls._lock:
            model = cls._cache.get(path)
            if model is None:
                model = cls._cache[path] = cls(path)
            return model

    def warm_up(self, recognizers: int = 1, up_to: int | None = None) -> None:
        """Decode two seconds of noise with up to ``recognizers`` new free-decoding
        recognizers and keep them for the first calls, until ``up_to`` are kept warm (a
        model shared by several services is warmed once): a new one spends ~0.6 s of CPU
        on its first sentence (its share of the decoding graph is built as it goes),
        better at start than in the first calls' greetings."""
        import random

        rng = random.Random(0)
        noise = b"".join(
            int(rng.gauss(0, 2000)).to_bytes(2, "little", signed=True) for _ in range(16000)
        )
        up_to = recognizers if up_to is None else up_to
        for _ in range(recognizers):
            with self._glock:
                if len(self._warm.get(8000, [])) + self._warming >= up_to:
                    return
                self._warming += 1
            try:
                rec = self.new_free(8000)
                rec.AcceptWaveform(noise)
                rec.FinalResult()
                self.release(rec, 8000, fed=len(noise) // 2)
            finally:
                with self._glock:
                    self._warming -= 1

    def has_word(self, word: str) -> bool:
        return self.model.vosk_model_find_word(word) != -1

    def can_hear(self, phrase: str) -> bool:
        """Whether the phrase's words are in the vocabulary (whole, or split into known
        pieces): a phrase that is not can never come out of this model."""
        return fit_phrase(phrase, self.has_word).usable

    def grammar(self, phrases: Iterable[str], fillers: Iterable[str] = ()) -> Grammar:
        key = (tuple(phrases), tuple(fillers))
        with self._glock:
            g = self._grammars.get(key)
            if g is None:
                g = self._grammars[key] = build_grammar(key[0], self.has_word, fillers=key[1])
                if g.unusable:
                    # Once per grammar, not per call: `ivr check` lists them per script.
                    log.info(
                        "phrase spotting: %d of %d phrases are not in the model's "
                        "vocabulary and cannot be heard: %s",
                        len(g.unusable),
                        len(g.fits),
                        ", ".join(f.phrase for f in g.unusable),
                    )
            return g

    def recognizer(self, rate: int, grammar: Grammar | None = None):
        from vosk import KaldiRecognizer

        if grammar is not None:
            if not self.grammar_capable:
                raise ValueError(
                    f"model {self.path} has no runtime graph: it cannot spot "
                    "phrases (use a small model, or the transcript mode)"
                )
            rec = KaldiRecognizer(self.model, float(rate), grammar.json())
        else:
            rec = KaldiRecognizer(self.model, float(rate))
        rec.SetWords(True)
        return rec

    def take_free(self, rate: int) -> tuple[Any, bool, int] | None:
        """A free-decoding recognizer for a transcript: (recognizer, is new, samples it
        was fed before), a warm one if any; a new one only while fewer than
        ``cold_limit`` new ones are in their first sentence (each costs ~0.6 s of CPU
        there); else None, and the sentence goes without a transcript (it is still
        spotted). Vosk's Reset() keeps a recognizer's clock: the word times of a
        reused one count from its first audio, hence the samples it was fed."""
        with self._glock:
            warm = self._warm.get(rate)
            if warm:
                rec, fed = warm.pop()
                return rec, False, fed
            if self._cold >= self.cold_limit or self._free >= self.free_limit:
                return None
            self._cold += 1
            self._free += 1
        return self.recognizer(rate), True, 0

    def new_free(self, rate: int) -> Any:
        """A new free-decoding recognizer, counted against ``free_limit`` (but made even
        beyond it: for warm-up, and for a stream whose only pass is the transcript)."""
        with self._glock:
            self._free += 1
        return self.recognizer(rate)

    def dropped(self) -> None:
        """A recognizer from take_free is gone for good (not given back)."""
        with self._glock:
            self._free = max(0, self._free - 1)

    def warmed(self) -> None:
        """A new recognizer got through its first sentence (or was dropped)."""
        with self._glock:
            self._cold = max(0, self._cold - 1)

    def release(self, rec: Any, rate: int, fed: int = 0) -> None:
        """A stream is done with a free-decoding recognizer: keep it for the next one.

        A new recognizer costs ~0.6 s of CPU in its first sentence and ~0.1 s per
        second of speech after that (measured on the small Korean model): when every
        agent of a shift greets at once, new recognizers alone put decoding seconds
        behind. Reset, a used one starts warm. At most WARM_MAX are kept (memory)."""
        rec.Reset()
        with self._glock:
            warm = self._warm.setdefault(rate, [])
            if len(warm) < WARM_MAX:
                warm.append((rec, fed))
            else:
                self._free = max(0, self._free - 1)

    def warm_recognizers(self) -> int:
        with self._glock:
            return sum(len(v) for v in self._warm.values())

    def trim_warm(self, keep: int) -> None:
        """No calls: keep only ``keep`` warm recognizers per rate (each holds some
        megabytes of decoding-graph cache), so memory returns after a busy hour."""
        with self._glock:
            for warm in self._warm.values():
                self._free = max(0, self._free - len(warm[keep:]))
                del warm[keep:]


@dataclass
class DecoderStats:
    audio_samples: int = 0  # samples received
    decoded_samples: int = 0  # samples handed to Vosk (after gating)
    skipped_samples: int = 0  # samples shed before decoding (see skip)
    decode_cpu: float = 0.0  # thread CPU seconds spent in Vosk
    gate_cpu: float = 0.0  # thread CPU seconds spent in the VAD
    finals: int = 0
    partials: int = 0
    segments: int = 0
    held_samples: int = 0  # speech left out of the transcript while behind (hold_transcript)


class _Pass:
    """One recognizer over the gated audio: the spotting or the transcript pass."""

    def __init__(self, decoder: "StreamDecoder", source: str, grammar: Grammar | None) -> None:
        self.d = decoder
        self.source = source
        self.grammar = grammar
        self.rec: Any = None  # a vosk.KaldiRecognizer once a segment starts
        self.rec_samples = 0  # samples fed to this recognizer in total
        self.anchors: list[tuple[int, int]] = []  # (recognizer sample, stream sample)
        self.since_partial = 0
        self.last_partial = ""
        self.cold = False  # a new free recognizer in its first sentence (take_free)

    def start(self, stream_sample: int, must: bool = False) -> bool:
        """A segment begins; False if this pass sits it out (no recognizer to spare,
        and another pass hears the segment: ``must`` is for a stream's only pass)."""
        if self.rec is None:
            take_free = getattr(self.d.model, "take_free", None)
            if self.grammar is None and take_free is not None:
                got = take_free(self.d.rate)
                if got is None and not must:
                    return False
                self.rec, self.cold, self.rec_samples = got or (
                    self.d.model.new_free(self.d.rate),
                    False,
                    0,
                )
            else:
                self.rec = self.d.model.recognizer(self.d.rate, self.grammar)
        self.anchors.append((self.rec_samples, stream_sample))
        if len(self.anchors) > 64:
            del self.anchors[:-32]
        self.since_partial = 0
        self.last_partial = ""
        return True

    def _warmed(self) -> None:
        if self.cold:
            self.cold = False
            self.d.model.warmed()

    def close(self, reuse: bool = True) -> None:
        """The stream is done with this pass: a free-decoding recognizer goes back to the
        model for reuse (SpeechModel.release), or is dropped (``reuse`` False: after a
        failure); a grammar's is cheap to make anew."""
        self._warmed()
        rec, self.rec = self.rec, None
        if rec is None or self.grammar is not None or not hasattr(self.d.model, "release"):
            return
        if reuse:
            self.d.model.release(rec, self.d.rate, self.rec_samples)
        else:
            self.d.model.dropped()

    def _rec_to_stream(self, rec_seconds: float) -> int:
        s = int(rec_seconds * self.d.rate)
        for rec_at, stream_at in reversed(self.anchors):
            if rec_at <= s:
                return stream_at + (s - rec_at)
        return s

    def audio(self, pcm: bytes) -> None:
        d = self.d
        n = len(pcm) // 2
        endpoint = self.rec.AcceptWaveform(pcm)
        self.rec_samples += n
        self.since_partial += n
        if endpoint:
            self.final(json.loads(self.rec.Result()))
        elif d.partials and self.since_partial >= d.partial_every:
            self.since_partial = 0
            text = d._clean(json.loads(self.rec.PartialResult()).get("partial", ""))
            if text and text != self.last_partial:
                self.last_partial = text
                d.stats.partials += 1
                phrases = self.grammar.spot(text) if self.grammar else ()
                d._out.append(
                    Utterance(
                        d.call_id,
                        d.speaker,
                        text,
                        d._t(d._seg_start),
                        d._t(d._stream_pos),
                        False,
                        None,
                        phrases,
                        (),
                        time.time(),
                        self.source,
                    )
                )

    def end(self) -> None:
        if self.rec is not None:
            self.final(json.loads(self.rec.FinalResult()))
            self._warmed()

    def final(self, result: dict) -> None:
        d = self.d
        words = []
        for w in result.get("result", []):
            if is_unk(w.get("word", "")):
                continue
            words.append(
                Word(
                    w["word"],
                    d._t(self._rec_to_stream(w["start"])),
                    d._t(self._rec_to_stream(w["end"])),
                    float(w.get("conf", 1.0)),
                )
            )
        text = " ".join(w.word for w in words) if words else d._clean(result.get("text", ""))
        self.since_partial = 0
        self.last_partial = ""
        if not text:
            return
        start = words[0].start if words else d._t(d._seg_start)
        end = words[-1].end if words else d._t(d._stream_pos)
        conf = sum(w.conf for w in words) / len(words) if words else None
        phrases = (
            self.grammar.spot([w.word for w in words] if words else text.split())
            if self.grammar
            else ()
        )
        d.stats.finals += 1
        closed_at, closed_sample = d._closing or (None, None)
        d._out.append(
            Utterance(
                d.call_id,
                d.speaker,
                text,
                start,
                end,
                True,
                round(conf, 3) if conf is not None else None,
                phrases,
                tuple(words),
                time.time(),
                self.source,
                closed_at,
                closed_sample,
            )
        )


class StreamDecoder:
    """Gates and decodes one stream; returns what it recognised. One thread at a time.

    The voice-activity gate runs once; its speech segments feed the spotting pass
    (a grammar of ``mode.phrases``) and/or the transcript pass (free decoding).
    """

    def __init__(
        self,
        model: SpeechModel,
        *,
        call_id: str,
        speaker: str,
        rate: int = 8000,
        mode: RecognitionMode = RecognitionMode(),
        offset: float = 0.0,
        vad: VadSettings = VadSettings(),
        partials: bool = True,
        partial_interval: float = 0.3,
    ) -> None:
        self.model = model
        self.call_id = call_id
        self.speaker = speaker
        self.rate = rate
        self.mode = mode
        self.offset = offset  # this stream's start on the call's time line
        self.passes: list[_Pass] = []
        if mode.spots and model.grammar_capable:
            self.passes.append(_Pass(self, SPOTTING, model.grammar(mode.phrases, mode.fillers)))
        if mode.transcript or not self.passes:
            self.passes.append(_Pass(self, TRANSCRIPT, None))
        self.grammar = self.passes[0].grammar
        self.gate = VadGate(rate, vad)
        self.partials = partials
        self.partial_every = int(partial_interval * rate)
        self.stats = DecoderStats()
        self._seg_start = 0  # stream sample where the open segment began
        self._stream_pos = 0  # stream sample reached by the recognizers
        self._out: list = []
        self._drop_transcript = False
        # Set by the speech stage while this stream is behind: the transcript pass sits
        # out (the rest of) the sentence so that spotting, which coaching relies on,
        # catches up instead of audio being shed. Unlike transcript_off, it comes back
        # with the next sentence once the stream has caught up.
        self.hold_transcript = False
        self._live: list[_Pass] = []  # the passes decoding the open segment
        self._gated_at = 0.0  # time.time() when the gate last returned
        self._closing: tuple[float, int] | None = None  # the segment the gate is closing

    @property
    def transcribing(self) -> bool:
        return any(p.source == TRANSCRIPT for p in self.passes)

    def transcript_off(self) -> bool:
        """Give up the transcript pass (capacity); spotting goes on. Any thread: takes
        effect at the next audio this decoder processes (the sentence in progress gets
        its final from what was heard). False if there is no spotting pass to fall back
        on (the transcript is then all there is)."""
        if not self.transcribing or len(self.passes) < 2:
            return False
        self._drop_transcript = True
        return True

    # ------------------------------------------------------------ time line
    def _t(self, stream_sample: int) -> float:
        return round(self.offset + stream_sample / self.rate, 3)

    # ------------------------------------------------------------ input
    def process(self, pcm: bytes) -> list:
        """Feed audio; returns Utterances, VoiceActivity events and one Heard."""
        self._out = []
        if self._drop_transcript:
            self._drop_transcript = False
            for p in [p for p in self.passes if p.source == TRANSCRIPT]:
                if self.gate.in_speech and p in self._live:
                    p.end()
                    self._live.remove(p)
                self.passes.remove(p)
                p.close()
        self.stats.audio_samples += len(pcm) // 2
        if self.hold_transcript and self.gate.in_speech:
            for p in [p for p in self._live if p.source == TRANSCRIPT and len(self._live) > 1]:
                p.end()  # the sentence so far gets its final; the rest is spotted only
                self._live.remove(p)
        c0 = time.thread_time()
        events = self.gate.push(pcm)
        self.stats.gate_cpu += time.thread_time() - c0
        self._gated_at = time.time()
        self._run(events)
        self._out.append(Heard(self.call_id, self.speaker, self._t(self.gate.offset)))
        return self._out

    def skip(self, samples: int) -> list:
        """``samples`` of this stream were shed before decoding: close the sentence in
        progress and move the time line on, so later results keep their true times."""
        self._out = []
        self._gated_at = time.time()
        self._run(self.gate.flush())
        self.gate.offset += samples
        self.stats.skipped_samples += samples
        self._out.append(Heard(self.call_id, self.speaker, self._t(self.gate.offset)))
        return self._out

    def finish(self) -> list:
        """End of stream: close the open segment and return the last results."""
        self._out = []
        self._gated_at = time.time()
        self._run(self.gate.flush())
        self._out.append(Heard(self.call_id, self.speaker, self._t(self.gate.offset)))
        for p in self.passes:
            p.close()  # free-decoding recognizers are kept warm for the next streams
        self.passes = []
        return self._out

    def drop(self) -> None:
        """Recognition of this stream failed: let its recognizers go (not for reuse)."""
        for p in self.passes:
            p.close(reuse=False)
        self.passes = []

    def _run(self, events) -> None:
        for kind, value in events:
            if kind == "start":
                self._start(value)
            elif kind == "audio":
                self._audio(value)
            elif kind == "end":
                self._end(value)

    def _start(self, stream_sample: int) -> None:
        self._live = [
            p
            for p in self.passes
            if not (self.hold_transcript and p.source == TRANSCRIPT and len(self.passes) > 1)
            and p.start(stream_sample, must=len(self.passes) == 1)
        ]
        self._seg_start = stream_sample
        self._stream_pos = stream_sample
        self.stats.segments += 1
        self._out.append(
            VoiceActivity(self.call_id, self.speaker, self._t(stream_sample), None, time.time())
        )

    def _audio(self, pcm: bytes) -> None:
        c0 = time.thread_time()
        n = len(pcm) // 2
        self._stream_pos += n
        self.stats.decoded_samples += n
        if len(self._live) < len(self.passes):
            self.stats.held_samples += n
        for p in self._live:
            p.audio(pcm)
        self.stats.decode_cpu += time.thread_time() - c0

    def _end(self, stream_sample: int) -> None:
        c0 = time.thread_time()
        self._closing = (self._gated_at, stream_sample)
        try:
            for p in self._live:
                p.end()
        finally:
            self._closing = None
            self._live = []
        self.stats.decode_cpu += time.thread_time() - c0
        self._out.append(
            VoiceActivity(
                self.call_id,
                self.speaker,
                self._t(self._seg_start),
                self._t(stream_sample),
                time.time(),
            )
        )

    @staticmethod
    def _clean(text: str) -> str:
        return " ".join(w for w in text.split() if not is_unk(w))


def transcribe(
    model: SpeechModel,
    pcm: bytes,
    *,
    rate: int = 8000,
    mode: RecognitionMode = RecognitionMode(),
    vad: VadSettings = VadSettings(),
    chunk: int = 320,
    call_id: str = "",
    speaker: str = "",
) -> list[Utterance]:
    """Decode a whole recording (in the calling thread); returns the final utterances."""
    dec = StreamDecoder(
        model, call_id=call_id, speaker=speaker, rate=rate, mode=mode, vad=vad, partials=False
    )
    out = []
    for i in range(0, len(pcm), chunk):
        out += dec.process(pcm[i : i + chunk])
    out += dec.finish()
    return [u for u in out if isinstance(u, Utterance) and u.final]
