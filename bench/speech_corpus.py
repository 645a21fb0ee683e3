"""Labelled calls for the coaching benchmarks: built from bench/corpus/<language>.yaml.

A corpus file lists, slot by slot, lines each party may say, each labelled with
what it really contains (the checklist items and rules it satisfies or
triggers). ``generate(corpus, n, seed)`` draws ``n`` calls (one line per slot,
random gaps, a voice, speed and line noise per call and speaker) and
``render(call)`` turns one into the two parties' audio as the tap receives it:
espeak-ng speech -> band-pass 300-3400 Hz -> noise at the call's SNR -> 8 kHz
G.711 u-law -> signed 16-bit PCM. The labels carry times on the call's time
line (seconds since the answer), so a result can be scored against them.

Everything is deterministic for a given seed: the same calls, voices, noise.
"""

from __future__ import annotations

import audioop  # noqa: F401  (deprecated in 3.13; here 3.11: G.711 in C)
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ivr.testing.speech import synth

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
RATE = 8000
CACHE = Path(tempfile.gettempdir()) / "ivr-speech-corpus"


@dataclass(frozen=True)
class Line:
    text: str
    says: tuple[str, ...]
    voice: str | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class Slot:
    speaker: str
    name: str
    lines: tuple[Line, ...]
    at: tuple[float, float] | None = None
    gap: tuple[float, float] = (0.5, 1.5)


@dataclass(frozen=True)
class Corpus:
    language: str
    script: str
    project: str
    customer_number: str
    agent_name: str
    voices: tuple[str, ...]
    speeds: tuple[int, ...]
    snr_db: tuple[float, ...]
    slots: tuple[Slot, ...]

    @classmethod
    def load(cls, language: str = "ko") -> "Corpus":
        data = yaml.safe_load((CORPUS_DIR / f"{language}.yaml").read_text(encoding="utf-8"))
        slots = tuple(
            Slot(
                s["speaker"],
                s["name"],
                tuple(
                    Line(
                        str(x.get("text") or ""),
                        tuple(x.get("says") or ()),
                        x.get("voice"),
                        float(x.get("weight", 1)),
                    )
                    for x in s["lines"]
                ),
                tuple(s["at"]) if "at" in s else None,
                tuple(s.get("gap", (0.5, 1.5))),
            )
            for s in data["slots"]
        )
        return cls(
            data["language"],
            data["script"],
            data["project"],
            str(data["customer_number"]),
            data["agent_name"],
            tuple(data["voices"]),
            tuple(data["speeds"]),
            tuple(float(x) for x in data["snr_db"]),
            slots,
        )


@dataclass(frozen=True)
class Said:
    """One line as said in one call: who, what, when (seconds since the answer)."""

    speaker: str
    text: str
    says: tuple[str, ...]
    start: float
    end: float
    voice: str
    speed: int


@dataclass
class LabelledCall:
    index: int
    lines: list[Said]
    voices: dict[str, str]  # speaker -> espeak-ng voice
    speeds: dict[str, int]
    snr_db: dict[str, float]
    seed: int
    duration: float = 0.0
    audio: dict[str, bytes] = field(default_factory=dict, repr=False)  # speaker -> PCM

    def said(self, label: str, speaker: str | None = None) -> list[Said]:
        return [
            s for s in self.lines if label in s.says and (speaker is None or s.speaker == speaker)
        ]


def speech(text: str, voice: str, speed: int) -> bytes:
    """espeak-ng speech, band-passed to a phone line's 300-3400 Hz, 8 kHz signed 16-bit,
    trimmed of leading/trailing silence (cached)."""
    return synth(text, voice=voice, speed=speed, rate=RATE, telephone=False, line=True, cache=CACHE)


def _pick(rng: random.Random, lines: tuple[Line, ...]) -> Line:
    return rng.choices(lines, weights=[ln.weight for ln in lines])[0]


def generate(corpus: Corpus, n: int, seed: int = 1) -> list[LabelledCall]:
    """``n`` labelled calls (audio not rendered yet: see ``render``)."""
    calls = []
    for i in range(n):
        rng = random.Random(seed * 100_003 + i)
        voices = {"agent": rng.choice(corpus.voices), "customer": rng.choice(corpus.voices)}
        speeds = {"agent": rng.choice(corpus.speeds), "customer": rng.choice(corpus.speeds)}
        snr = {"agent": rng.choice(corpus.snr_db), "customer": rng.choice(corpus.snr_db)}
        t = 0.0
        said: list[Said] = []
        for slot in corpus.slots:
            line = _pick(rng, slot.lines)
            t = rng.uniform(*slot.at) if slot.at else t + rng.uniform(*slot.gap)
            if not line.text:
                continue
            voice = line.voice or voices[slot.speaker]
            if line.voice and "+" in voices[slot.speaker]:
                voice = f"{line.voice}+{voices[slot.speaker].split('+', 1)[1]}"
            seconds = len(speech(line.text, voice, speeds[slot.speaker])) / 2 / RATE
            said.append(
                Said(
                    slot.speaker,
                    line.text,
                    line.says,
                    round(t, 3),
                    round(t + seconds, 3),
                    voice,
                    speeds[slot.speaker],
                )
            )
            t += seconds
        calls.append(
            LabelledCall(
                i, said, voices, speeds, snr, seed * 100_003 + i, duration=round(t + 2.5, 3)
            )
        )
    return calls


def render(call: LabelledCall) -> dict[str, bytes]:
    """Each party's audio as the tap hears it (their line only; noise throughout)."""
    import numpy as np

    out = {}
    for speaker in ("agent", "customer"):
        n = int(call.duration * RATE)
        signal = np.zeros(n, dtype=np.float64)
        voiced = []
        for s in call.lines:
            if s.speaker != speaker:
                continue
            pcm = np.frombuffer(speech(s.text, s.voice, s.speed), dtype="<i2").astype(np.float64)
            a = int(s.start * RATE)
            b = min(n, a + len(pcm))
            signal[a:b] += pcm[: b - a]
            voiced.append(pcm)
        rng = np.random.default_rng(call.seed * 7 + (speaker == "agent"))
        # Pinkish line noise (1/f power, flat below 100 Hz), shaped in the frequency domain.
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / RATE)
        spectrum /= np.sqrt(np.maximum(freqs, 100.0))
        noise = np.fft.irfft(spectrum, n)
        noise -= noise.mean()
        ref = np.sqrt(np.mean(np.concatenate(voiced) ** 2)) if voiced else 1000.0
        noise *= ref / (np.sqrt(np.mean(noise**2)) + 1e-9) / (10 ** (call.snr_db[speaker] / 20))
        mixed = np.clip(signal + noise, -32768, 32767).astype("<i2").tobytes()
        out[speaker] = audioop.ulaw2lin(audioop.lin2ulaw(mixed, 2), 2)
    call.audio = out
    return out


def describe(call: LabelledCall) -> str:
    rows = [f"call {call.index}: voices {call.voices}, speeds {call.speeds}, SNR {call.snr_db}"]
    for s in call.lines:
        rows.append(f"  {s.start:5.1f}-{s.end:5.1f} {s.speaker:<8} {s.text}  {list(s.says)}")
    return "\n".join(rows)
