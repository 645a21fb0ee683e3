"""Voice-activity gating: only speech (with some padding) reaches the recognizer.

webrtcvad classifies each 20 ms frame. A segment starts when most frames of a
short window are voiced; it then takes the ``pre_roll_ms`` of audio before
that moment too (so a word's first consonant is not clipped), every frame
while the person talks, and ``hangover_ms`` of trailing silence: that tail is
what lets the recognizer close the last word, after which it is asked for a
final result. Silence between segments is never decoded.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import webrtcvad

VAD_RATES = (8000, 16000, 32000, 48000)


@dataclass(frozen=True)
class VadSettings:
    enabled: bool = True
    aggressiveness: int = 2  # 0 (lenient) .. 3 (strict)
    frame_ms: int = 20  # 10, 20 or 30
    start_window_ms: int = 120  # window looked at to start a segment ...
    start_ratio: float = 0.6  # ... and the voiced share of it that starts one
    pre_roll_ms: int = 300  # audio kept from before the start
    hangover_ms: int = 500  # trailing silence that ends a segment (and pads it)
    max_segment_s: float = 30.0  # a longer segment is cut (a final result is forced)


# Gate events: ("start", sample_offset) | ("audio", pcm) | ("end", sample_offset).
GateEvent = tuple


class VadGate:
    """Splits one stream's audio into speech segments. Not thread-safe: one per stream."""

    def __init__(self, rate: int = 8000, settings: VadSettings = VadSettings()) -> None:
        self.rate = rate
        self.settings = settings
        self.passthrough = not settings.enabled or rate not in VAD_RATES
        self._vad: Any = None if self.passthrough else webrtcvad.Vad(settings.aggressiveness)
        fm = settings.frame_ms
        self.frame_samples = rate * fm // 1000
        self.frame_bytes = self.frame_samples * 2
        self._window: deque[bool] = deque(maxlen=max(1, settings.start_window_ms // fm))
        self._need = max(1, round((self._window.maxlen or 1) * settings.start_ratio))
        self._ring: deque[bytes] = deque(maxlen=max(1, settings.pre_roll_ms // fm))
        self._hangover = max(1, settings.hangover_ms // fm)
        self._max_frames = max(1, int(settings.max_segment_s * 1000 // fm))
        self._rem = bytearray()
        self.in_speech = False
        self._silence_run = 0
        self._seg_frames = 0
        self.offset = 0  # samples of this stream classified so far
        self.frames = 0
        self.voiced_frames = 0
        self.passed_samples = 0  # samples handed on to the recognizer
        self.segments = 0

    def push(self, pcm: bytes) -> list[GateEvent]:
        if self.passthrough:
            return self._push_all(pcm)
        self._rem += pcm
        events: list[GateEvent] = []
        fb = self.frame_bytes
        n = len(self._rem) // fb
        if not n:
            return events
        data = bytes(self._rem[: n * fb])
        del self._rem[: n * fb]
        audio: list[bytes] = []
        for i in range(n):
            frame = data[i * fb : (i + 1) * fb]
            voiced = self._vad.is_speech(frame, self.rate)
            self.frames += 1
            self.voiced_frames += voiced
            self.offset += self.frame_samples
            if not self.in_speech:
                self._ring.append(frame)
                self._window.append(voiced)
                if voiced and sum(self._window) >= self._need:
                    start = self.offset - len(self._ring) * self.frame_samples
                    events.append(("start", start))
                    audio.extend(self._ring)
                    self._seg_frames = len(self._ring)
                    self._ring.clear()
                    self.in_speech = True
                    self._silence_run = 0
                    self.segments += 1
            else:
                audio.append(frame)
                self._seg_frames += 1
                self._silence_run = 0 if voiced else self._silence_run + 1
                if self._silence_run >= self._hangover or self._seg_frames >= self._max_frames:
                    events.append(("audio", b"".join(audio)))
                    audio = []
                    events.append(("end", self.offset))
                    self.in_speech = False
                    self._window.clear()
        if audio:
            events.append(("audio", b"".join(audio)))
        self.passed_samples += sum(len(e[1]) // 2 for e in events if e[0] == "audio")
        return _merge(events)

    def flush(self) -> list[GateEvent]:
        """End of stream: close an open segment."""
        events: list[GateEvent] = []
        if self.passthrough:
            if self._rem:
                events.append(("audio", bytes(self._rem)))
                self.passed_samples += len(self._rem) // 2
                self.offset += len(self._rem) // 2
                self._rem.clear()
        self._rem.clear()
        if self.in_speech:
            events.append(("end", self.offset))
            self.in_speech = False
        return events

    def _push_all(self, pcm: bytes) -> list[GateEvent]:
        events: list[GateEvent] = []
        self._rem += pcm
        n = len(self._rem) // 2 * 2
        if not n:
            return events
        data = bytes(self._rem[:n])
        del self._rem[:n]
        if not self.in_speech:
            events.append(("start", self.offset))
            self.in_speech = True
            self.segments += 1
        events.append(("audio", data))
        self.offset += n // 2
        self.passed_samples += n // 2
        self.frames += n // self.frame_bytes
        return events


def _merge(events: list[GateEvent]) -> list[GateEvent]:
    out: list[GateEvent] = []
    for e in events:
        if e[0] == "audio" and out and out[-1][0] == "audio":
            out[-1] = ("audio", out[-1][1] + e[1])
        else:
            out.append(e)
    return out
