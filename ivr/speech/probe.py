"""Which phrases does a model recognise? Synthetic speech through a phone line.

``python -m ivr.speech.probe --voice ko 안녕하세요 "에이스 텔레콤" ...`` speaks
each phrase with espeak-ng (several speeds and voices), sends it through
8 kHz u-law as a phone call would, and decodes it against a grammar of all
the phrases given: a phrase is *reliable* when every rendering was spotted
and it was never heard where another phrase was spoken. Tests and demo
scripts use this to pick phrases that synthetic speakers can say; real
people are recognised better than espeak-ng.

``PHRASE=SPOKEN`` speaks SPOKEN for PHRASE: espeak-ng's Korean lacks the
nasal assimilation of ㅂ before ㄴ, so ``감사합니다=감사함니다`` says it the
way a person would.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from .pronunciation import pronounce as _pronounce
from .recognizer import RecognitionMode, SpeechModel, transcribe


class SynthError(RuntimeError):
    pass


def synth(text: str, *, voice: str = "ko", speed: int = 150, rate: int = 8000,
          telephone: bool = True, cache: Path | None = None, pronounce: bool = True) -> bytes:
    """espeak-ng speech as signed 16-bit mono PCM at ``rate``.

    telephone=True passes it through 8 kHz G.711 u-law first, as a SIP call
    and the tap deliver it. Korean is said as people say it (pronunciation.py:
    "감사합니다" as "감사함니다"), not letter by letter as espeak-ng reads it.
    Cached by text, voice and speed."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SynthError(f"{tool} is not installed (apt-get install -y espeak-ng sox)")
    cache = cache or Path(tempfile.gettempdir()) / "ivr-speech-probe"
    cache.mkdir(parents=True, exist_ok=True)
    said = _pronounce(text) if pronounce and voice.split("+")[0] == "ko" else text
    key = hashlib.sha1(f"{voice}\0{speed}\0{rate}\0{telephone}\0{said}".encode()).hexdigest()[:20]
    out = cache / f"{key}.s16"
    if out.exists():
        return out.read_bytes()
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        wav = Path(tmp) / "s.wav"
        _run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), said])
        src = ["sox", str(wav)]
        if telephone:
            ul = Path(tmp) / "s.ul"
            _run(["sox", str(wav), "-t", "raw", "-r", "8000", "-c", "1", "-e", "u-law", "-b", "8",
                  str(ul)])
            src = ["sox", "-t", "raw", "-r", "8000", "-c", "1", "-e", "u-law", "-b", "8", str(ul)]
        raw = Path(tmp) / "s.raw"
        _run([*src, "-t", "raw", "-r", str(rate), "-c", "1", "-e", "signed", "-b", "16", str(raw)])
        os.replace(raw, out)
    return out.read_bytes()


def ulaw_file(text: str, path: Path, *, voice: str = "ko", speed: int = 150) -> Path:
    """The same speech as a raw u-law 8 kHz file (what SIPp's rtp_stream plays)."""
    return pcm_to_ulaw(synth(text, voice=voice, speed=speed, rate=8000, telephone=True), path)


def lines_to_ulaw(lines, path: Path, *, voice: str = "ko", speed: int = 150) -> Path:
    """Spoken lines (str) and pauses (float seconds) as one u-law file for a SIPp phone."""
    pcm = b"".join(silence(x) if isinstance(x, (int, float)) else
                   synth(x, voice=voice, speed=speed) for x in lines)
    return pcm_to_ulaw(pcm, path)


def pcm_to_ulaw(pcm: bytes, path: Path) -> Path:
    """8 kHz signed 16-bit PCM to a raw u-law file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "s.raw"
        raw.write_bytes(pcm)
        _run(["sox", "-t", "raw", "-r", "8000", "-c", "1", "-e", "signed", "-b", "16", str(raw),
              "-t", "raw", "-r", "8000", "-c", "1", "-e", "u-law", "-b", "8", str(path)])
    return path


def silence(seconds: float, rate: int = 8000) -> bytes:
    return b"\0\0" * int(seconds * rate)


def _run(cmd: list[str]) -> None:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SynthError(f"{cmd[0]} failed ({p.returncode}): {p.stderr.strip()}")


@dataclass
class ProbeResult:
    phrase: str
    spoken: str
    trials: int = 0
    hits: int = 0
    heard: list[str] = field(default_factory=list)          # what each trial gave
    false_alarms: dict[str, int] = field(default_factory=dict)   # phrase heard instead

    @property
    def reliable(self) -> bool:
        return self.trials > 0 and self.hits == self.trials and not self.false_alarms


def probe(model: SpeechModel, phrases: Sequence[str], *, spoken: dict[str, str] | None = None,
          voices: Iterable[str] = ("ko",), speeds: Iterable[int] = (140, 170),
          lead: float = 0.6) -> list[ProbeResult]:
    """Speak each phrase in every voice and speed; decode against all the phrases."""
    spoken = spoken or {}
    mode = RecognitionMode.spotting(phrases)
    results = {p: ProbeResult(p, spoken.get(p, p)) for p in phrases}
    grammar = model.grammar(mode.phrases)
    usable = {f.phrase for f in grammar.usable}
    tokens = {f.phrase: f.tokens for f in grammar.usable}

    def inside(small: str, big: str) -> bool:
        a, b = tokens.get(small, ()), tokens.get(big, ())
        return bool(a) and any(b[i:i + len(a)] == a for i in range(len(b) - len(a) + 1))

    for p in phrases:
        r = results[p]
        if p not in usable:
            r.heard.append("(unusable: " + grammar.report() + ")")
            continue
        for voice in voices:
            for speed in speeds:
                pcm = silence(lead) + synth(r.spoken, voice=voice, speed=speed) + silence(lead)
                utts = transcribe(model, pcm, mode=mode)
                heard = [ph for u in utts for ph in u.phrases]
                r.trials += 1
                r.heard.append(" | ".join(u.text for u in utts) or "-")
                if p in heard:
                    r.hits += 1
                for other in set(heard) - {p}:
                    if inside(other, p) or inside(p, other):
                        continue        # "텔레콤" within "에이스 텔레콤" is no false alarm
                    r.false_alarms[other] = r.false_alarms.get(other, 0) + 1
    return [results[p] for p in phrases]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ivr.speech.probe", description=__doc__)
    ap.add_argument("phrases", nargs="+", help="PHRASE or PHRASE=SPOKEN")
    ap.add_argument("--model", default="auto")
    ap.add_argument("--voice", action="append", help="espeak-ng voice(s) (default ko)")
    ap.add_argument("--speed", action="append", type=int, help="words per minute (default 140, 170)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    spoken = {}
    phrases = []
    for item in args.phrases:
        phrase, _, say = item.partition("=")
        phrases.append(phrase)
        if say:
            spoken[phrase] = say
    model = SpeechModel.load(args.model)
    results = probe(model, phrases, spoken=spoken, voices=args.voice or ["ko"],
                    speeds=args.speed or [140, 170])
    for r in results:
        mark = "RELIABLE" if r.reliable else "        "
        fa = f" false alarms: {r.false_alarms}" if r.false_alarms else ""
        print(f"{mark} {r.hits}/{r.trials} {r.phrase}{fa}")
        if args.verbose:
            for h in r.heard:
                print(f"           heard: {h}")
    print(f"{sum(r.reliable for r in results)} of {len(results)} reliable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
