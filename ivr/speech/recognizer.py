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
from typing import Iterable

from .grammar import Grammar, build_grammar, is_unk
from .models import resolve_model, supports_grammar
from .vad import VadGate, VadSettings

log = logging.getLogger(__name__)

TRANSCRIPT = "transcript"
PHRASES = "phrases"


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
    speaker: str                      # "agent" | "customer"
    text: str
    start: float
    end: float
    final: bool
    confidence: float | None = None   # mean word confidence (finals)
    phrases: tuple[str, ...] = ()     # phrase-spotting mode: script phrases heard, as written
    words: tuple[Word, ...] = ()      # finals: per-word times and confidences
    at: float = 0.0                   # time.time() when it was produced


@dataclass(frozen=True)
class VoiceActivity:
    """Someone started (end is None) or stopped talking: for talk-over and dead air."""

    call_id: str
    speaker: str
    start: float
    end: float | None
    at: float = 0.0


@dataclass(frozen=True)
class RecognitionMode:
    """Full transcript, or phrase spotting with a grammar built from ``phrases``.

    Trade-off: a transcript gives every word (for the record and free rules)
    but costs about 0.35 CPU s per second of speech with the small models and
    is unreliable on short or unusual phrases; phrase spotting costs ~1/10 of
    that and recognises the script's phrases far more reliably, but hears
    nothing else (other speech comes out as the unknown token and is dropped).
    """

    kind: str = TRANSCRIPT
    phrases: tuple[str, ...] = ()

    @classmethod
    def transcript(cls) -> "RecognitionMode":
        return cls(TRANSCRIPT)

    @classmethod
    def spotting(cls, phrases: Iterable[str]) -> "RecognitionMode":
        return cls(PHRASES, tuple(dict.fromkeys(p for p in phrases if p.strip())))

    def __post_init__(self) -> None:
        if self.kind not in (TRANSCRIPT, PHRASES):
            raise ValueError(f"recognition mode must be {TRANSCRIPT!r} or {PHRASES!r}")
        if self.kind == PHRASES and not self.phrases:
            raise ValueError("phrase spotting needs at least one phrase")


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
        self._grammars: dict[tuple[str, ...], Grammar] = {}
        self._glock = threading.Lock()
        log.info("speech model %s loaded in %.1f s", self.path, self.load_seconds)

    @classmethod
    def load(cls, spec: str | Path = "auto") -> "SpeechModel":
        path = resolve_model(spec).resolve()
        with cls._lock:
            model = cls._cache.get(path)
            if model is None:
                model = cls._cache[path] = cls(path)
            return model

    def has_word(self, word: str) -> bool:
        return self.model.vosk_model_find_word(word) != -1

    def grammar(self, phrases: Iterable[str]) -> Grammar:
        key = tuple(phrases)
        with self._glock:
            g = self._grammars.get(key)
            if g is None:
                g = self._grammars[key] = build_grammar(key, self.has_word)
                for f in g.unusable:
                    log.warning("phrase spotting: %s", f.describe())
            return g

    def recognizer(self, rate: int, grammar: Grammar | None = None):
        from vosk import KaldiRecognizer
        if grammar is not None:
            if not self.grammar_capable:
                raise ValueError(f"model {self.path} has no runtime graph: it cannot spot "
                                 "phrases (use a small model, or the transcript mode)")
            rec = KaldiRecognizer(self.model, float(rate), grammar.json())
        else:
            rec = KaldiRecognizer(self.model, float(rate))
        rec.SetWords(True)
        return rec


@dataclass
class DecoderStats:
    audio_samples: int = 0        # samples received
    decoded_samples: int = 0      # samples handed to Vosk (after gating)
    decode_cpu: float = 0.0       # thread CPU seconds spent in Vosk
    gate_cpu: float = 0.0         # thread CPU seconds spent in the VAD
    finals: int = 0
    partials: int = 0
    segments: int = 0


class StreamDecoder:
    """Gates and decodes one stream; returns what it recognised. One thread at a time."""

    def __init__(self, model: SpeechModel, *, call_id: str, speaker: str, rate: int = 8000,
                 mode: RecognitionMode = RecognitionMode(), offset: float = 0.0,
                 vad: VadSettings = VadSettings(), partials: bool = True,
                 partial_interval: float = 0.3) -> None:
        self.model = model
        self.call_id = call_id
        self.speaker = speaker
        self.rate = rate
        self.mode = mode
        self.offset = offset                  # this stream's start on the call's time line
        self.grammar = model.grammar(mode.phrases) if mode.kind == PHRASES else None
        self.gate = VadGate(rate, vad)
        self.partials = partials
        self.partial_every = int(partial_interval * rate)
        self.stats = DecoderStats()
        self._rec = None
        self._rec_samples = 0                 # samples fed to this recognizer in total
        self._anchors: list[tuple[int, int]] = []   # (recognizer sample, stream sample)
        self._seg_start = 0                   # stream sample where the open segment began
        self._stream_pos = 0                  # stream sample reached by the recognizer
        self._since_partial = 0
        self._last_partial = ""
        self._out: list = []

    # ------------------------------------------------------------ time line
    def _t(self, stream_sample: int) -> float:
        return round(self.offset + stream_sample / self.rate, 3)

    def _rec_to_stream(self, rec_seconds: float) -> int:
        s = int(rec_seconds * self.rate)
        for rec_at, stream_at in reversed(self._anchors):
            if rec_at <= s:
                return stream_at + (s - rec_at)
        return s

    # ------------------------------------------------------------ input
    def process(self, pcm: bytes) -> list:
        """Feed audio; returns Utterances and VoiceActivity events it produced."""
        self._out = []
        self.stats.audio_samples += len(pcm) // 2
        c0 = time.thread_time()
        events = self.gate.push(pcm)
        self.stats.gate_cpu += time.thread_time() - c0
        self._run(events)
        return self._out

    def finish(self) -> list:
        """End of stream: close the open segment and return the last results."""
        self._out = []
        self._run(self.gate.flush())
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
        if self._rec is None:
            self._rec = self.model.recognizer(self.rate, self.grammar)
        self._anchors.append((self._rec_samples, stream_sample))
        if len(self._anchors) > 64:
            del self._anchors[:-32]
        self._seg_start = stream_sample
        self._stream_pos = stream_sample
        self._since_partial = 0
        self._last_partial = ""
        self.stats.segments += 1
        self._out.append(VoiceActivity(self.call_id, self.speaker, self._t(stream_sample), None,
                                       time.time()))

    def _audio(self, pcm: bytes) -> None:
        rec = self._rec
        n = len(pcm) // 2
        c0 = time.thread_time()
        endpoint = rec.AcceptWaveform(pcm)
        self._rec_samples += n
        self._stream_pos += n
        self.stats.decoded_samples += n
        self._since_partial += n
        if endpoint:
            self._final(json.loads(rec.Result()))
        elif self.partials and self._since_partial >= self.partial_every:
            self._since_partial = 0
            text = self._clean(json.loads(rec.PartialResult()).get("partial", ""))
            if text and text != self._last_partial:
                self._last_partial = text
                self.stats.partials += 1
                phrases = self.grammar.spot(text) if self.grammar else ()
                self._out.append(Utterance(self.call_id, self.speaker, text,
                                           self._t(self._seg_start), self._t(self._stream_pos),
                                           False, None, phrases, (), time.time()))
        self.stats.decode_cpu += time.thread_time() - c0

    def _end(self, stream_sample: int) -> None:
        c0 = time.thread_time()
        self._final(json.loads(self._rec.FinalResult()))
        self.stats.decode_cpu += time.thread_time() - c0
        self._out.append(VoiceActivity(self.call_id, self.speaker, self._t(self._seg_start),
                                       self._t(stream_sample), time.time()))

    def _final(self, result: dict) -> None:
        words = []
        for w in result.get("result", []):
            if is_unk(w.get("word", "")):
                continue
            words.append(Word(w["word"], self._t(self._rec_to_stream(w["start"])),
                              self._t(self._rec_to_stream(w["end"])), float(w.get("conf", 1.0))))
        text = " ".join(w.word for w in words) if words else self._clean(result.get("text", ""))
        self._since_partial = 0
        self._last_partial = ""
        if not text:
            return
        start = words[0].start if words else self._t(self._seg_start)
        end = words[-1].end if words else self._t(self._stream_pos)
        conf = sum(w.conf for w in words) / len(words) if words else None
        phrases = self.grammar.spot([w.word for w in words] if words else text.split()) \
            if self.grammar else ()
        self.stats.finals += 1
        self._out.append(Utterance(self.call_id, self.speaker, text, start, end, True,
                                   round(conf, 3) if conf is not None else None, phrases,
                                   tuple(words), time.time()))

    @staticmethod
    def _clean(text: str) -> str:
        return " ".join(w for w in text.split() if not is_unk(w))


def transcribe(model: SpeechModel, pcm: bytes, *, rate: int = 8000,
               mode: RecognitionMode = RecognitionMode(), vad: VadSettings = VadSettings(),
               chunk: int = 320, call_id: str = "", speaker: str = "") -> list[Utterance]:
    """Decode a whole recording (in the calling thread); returns the final utterances."""
    dec = StreamDecoder(model, call_id=call_id, speaker=speaker, rate=rate, mode=mode, vad=vad,
                        partials=False)
    out = []
    for i in range(0, len(pcm), chunk):
        out += dec.process(pcm[i:i + chunk])
    out += dec.finish()
    return [u for u in out if isinstance(u, Utterance) and u.final]
