"""Which phrases does a model recognise? Synthetic speech through a phone line.

``python -m ivr.testing.probe --voice ko 안녕하세요 "에이스 텔레콤" ...`` speaks
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
import sys
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..speech.recognizer import RecognitionMode, SpeechModel, transcribe
from .speech import silence, synth


@dataclass
class ProbeResult:
    phrase: str
    spoken: str
    trials: int = 0
    hits: int = 0
    heard: list[str] = field(default_factory=list)  # what each trial gave
    false_alarms: dict[str, int] = field(default_factory=dict)  # phrase heard instead

    @property
    def reliable(self) -> bool:
        return self.trials > 0 and self.hits == self.trials and not self.false_alarms


def probe(
    model: SpeechModel,
    phrases: Sequence[str],
    *,
    spoken: dict[str, str] | None = None,
    voices: Iterable[str] = ("ko",),
    speeds: Iterable[int] = (140, 170),
    lead: float = 0.6,
) -> list[ProbeResult]:
    """Speak each phrase in every voice and speed; decode against all the phrases."""
    spoken = spoken or {}
    mode = RecognitionMode.spotting(phrases)
    results = {p: ProbeResult(p, spoken.get(p, p)) for p in phrases}
    grammar = model.grammar(mode.phrases)
    usable = {f.phrase for f in grammar.usable}
    tokens = {f.phrase: f.tokens for f in grammar.usable}

    def inside(small: str, big: str) -> bool:
        a, b = tokens.get(small, ()), tokens.get(big, ())
        return bool(a) and any(b[i : i + len(a)] == a for i in range(len(b) - len(a) + 1))

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
                        continue  # "텔레콤" within "에이스 텔레콤" is no false alarm
                    r.false_alarms[other] = r.false_alarms.get(other, 0) + 1
    return [results[p] for p in phrases]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ivr.testing.probe", description=__doc__)
    ap.add_argument("phrases", nargs="+", help="PHRASE or PHRASE=SPOKEN")
    ap.add_argument("--model", default="auto")
    ap.add_argument("--voice", action="append", help="espeak-ng voice(s) (default ko)")
    ap.add_argument(
        "--speed", action="append", type=int, help="words per minute (default 140, 170)"
    )
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
    results = probe(
        model, phrases, spoken=spoken, voices=args.voice or ["ko"], speeds=args.speed or [140, 170]
    )
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
