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

    def warm_up(self) -> None:
        """Decode a second of noise once: the first free-decoding recognizer of a process
        takes ~1 s (the decoding graph is paged in and its caches built); better at start
        than in the first call's first sentence."""
        import random

        rng = random.Random(0)
        noise = b"".join(
            int(rng.gauss(0, 2000)).to_bytes(2, "little", signed=True) for _ in range(8000)
        )
        rec = self.recognizer(8000)
        rec.AcceptWaveform(noise)
        rec.FinalResult()

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

    def start(self, stream_sample: int) -> None:
        if self.rec is None:
            self.rec = self.d.model.recognizer(self.d.rate, self.grammar)
        self.anchors.append((self.rec_samples, stream_sample))
        if len(self.anchors) > 64:
            del self.anchors[:-32]
        self.since_partial = 0
        self.last_partial = ""

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
                if self.gate.in_speech:
                    p.end()
                self.passes.remove(p)
        self.stats.audio_samples += len(pcm) // 2
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
        self.passes = []  # the recognizers' memory goes with them
        return self._out

    def _run(self, events) -> None:
        for kind, value in events:
            if kind == "start":
                self._start(value)
            elif kind == "audio":
                self._audio(value)
            elif kind == "end":
                self._end(value)

    def _start(self, stream_sample: int) -> None:
        for p in self.passes:
            p.start(stream_sample)
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
        for p in self.passes:
            p.audio(pcm)
        self.stats.decode_cpu += time.thread_time() - c0

    def _end(self, stream_sample: int) -> None:
        c0 = time.thread_time()
        self._closing = (self._gated_at, stream_sample)
        try:
            for p in self.passes:
                p.end()
        finally:
            self._closing = None
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
