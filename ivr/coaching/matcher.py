"""Finding rule and checklist phrases in what was said.

Both sides are normalised the same way (Unicode NFKC, lower case, punctuation
dropped as the phrase-spotting grammar does, hyphens as spaces), then:

* phrases in scripts that separate words with spaces (English, Hungarian...)
  must match whole words: "no idea" matches "I have no idea" but not
  "no ideas"; "acme" does not match "acmes";
* phrases with Hangul, CJK or Thai letters are matched without regard to
  spaces: Korean writes particles onto words (회사명 + 입니다 ->
  "에이스텔레콤입니다") and Vosk's Korean model outputs morpheme-like pieces
  ("말씀 해 주세요"), so "에이스 텔레콤" matches "에이스텔레콤입니다" and
  "말씀해 주세요" matches "말씀 해 주세요". A Korean phrase must begin where a
  recognised word begins (particles attach after a word, never before it), so
  "꺼져" is not found inside "안꺼져" nor "바보" inside "이바보야" read as one word.

An Utterance from phrase-spotting mode also lists the script phrases the
grammar heard (``Utterance.phrases``, as written): those count as said too.
When the utterance carries per-word times, a hit is timed by the end of the
last word of the phrase, else by the end of the utterance.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

_PUNCT = re.compile(r"[^\w\s'-]+|(?<!\w)['-]|['-](?!\w)")
_SPACELESS = re.compile(
    "[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff"  # Hangul
    "\u3040-\u30ff\u31f0-\u31ff"  # kana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK
    "\u0e00-\u0e7f]"
)  # Thai
_HANGUL_SYLLABLE = re.compile("[\uac00-\ud7a3]")


def normalize(text: str) -> list[str]:
    """Words, lower case, without punctuation ("I can't!" -> ["i", "can't"])."""
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'")
    text = _PUNCT.sub(" ", text).casefold().replace("-", " ")
    return text.split()


def is_spaceless(text: str) -> bool:
    """Whether ``text`` is in a script matched without word spaces (Korean...)."""
    return bool(_SPACELESS.search(text))


def syllables(text: str) -> int:
    """Hangul syllables, plus one per word of other letters (a speaking-rate unit)."""
    hangul = len(_HANGUL_SYLLABLE.findall(text))
    rest = normalize(_HANGUL_SYLLABLE.sub(" ", text))
    other = sum(1 for w in rest if any(c.isalnum() for c in w))
    return hangul + other


@dataclass(frozen=True)
class Phrase:
    text: str  # as written in the script or rule file
    tokens: tuple[str, ...]
    spaceless: bool

    @property
    def key(self) -> str:
        return "".join(self.tokens) if self.spaceless else " ".join(self.tokens)

    @classmethod
    def of(cls, text: str) -> "Phrase":
        return cls(text, tuple(normalize(text)), is_spaceless(text))


def phrase_key(text: str) -> str:
    return Phrase.of(text).key


@dataclass(frozen=True)
class Hit:
    phrase: str  # the phrase as written
    at: float  # when it was said (seconds on the call's time line)
    index: int  # where in the utterance (token or character), for order
    confidence: float | None = None  # the least sure of its recognised words (if known)


class _Said:
    """One utterance prepared for matching: tokens, their join, and word times."""

    def __init__(
        self, text: str, words: Sequence = (), end: float = 0.0, spotted: Iterable[str] = ()
    ) -> None:
        self.end = end
        self.tokens: list[str] = []
        self.token_end: list[float | None] = []
        self.token_conf: list[float | None] = []
        if words:
            for w in words:
                for tok in normalize(w.word):
                    self.tokens.append(tok)
                    self.token_end.append(float(w.end))
                    self.token_conf.append(float(w.conf))
        if not self.tokens:
            self.tokens = normalize(text)
            self.token_end = [None] * len(self.tokens)
            self.token_conf = [None] * len(self.tokens)
        self.joined = "".join(self.tokens)
        # character offset in `joined` -> token index; offsets where a token begins
        self.char_token: list[int] = []
        self.starts: set[int] = set()
        for i, tok in enumerate(self.tokens):
            self.starts.add(len(self.char_token))
            self.char_token.extend([i] * len(tok))
        self.spotted = {phrase_key(p) for p in spotted}

    def _time(self, token: int) -> float:
        t = self.token_end[token] if 0 <= token < len(self.token_end) else None
        return self.end if t is None else t

    def _conf(self, first: int, last: int) -> float | None:
        confs = [c for c in self.token_conf[first : last + 1] if c is not None]
        return min(confs) if confs else None

    def find(self, phrase: Phrase) -> Hit | None:
        if not phrase.tokens:
            return None
        if phrase.spaceless:
            key = phrase.key
            pos = self.joined.find(key)
            while pos >= 0 and pos not in self.starts:
                pos = self.joined.find(key, pos + 1)
            if pos >= 0:
                first, last = self.char_token[pos], self.char_token[pos + len(key) - 1]
                return Hit(phrase.text, self._time(last), pos, self._conf(first, last))
        else:
            k = len(phrase.tokens)
            for i in range(len(self.tokens) - k + 1):
                if tuple(self.tokens[i : i + k]) == phrase.tokens:
                    return Hit(
                        phrase.text,
                        self._time(i + k - 1),
                        len("".join(self.tokens[:i])),
                        self._conf(i, i + k - 1),
                    )
        if phrase.key in self.spotted:
            return Hit(phrase.text, self.end, len(self.joined))
        return None


class PhraseSet:
    """Phrases any of which proves something was said."""

    def __init__(self, phrases: Iterable[str]) -> None:
        seen: dict[str, Phrase] = {}
        for text in phrases:
            p = Phrase.of(text)
            if p.tokens and p.key not in seen:
                seen[p.key] = p
        self.phrases: tuple[Phrase, ...] = tuple(seen.values())

    def __bool__(self) -> bool:
        return bool(self.phrases)

    def __len__(self) -> int:
        return len(self.phrases)

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.phrases]

    def find_all(
        self, text: str, *, words: Sequence = (), end: float = 0.0, spotted: Iterable[str] = ()
    ) -> list[Hit]:
        """Every phrase heard, in the order said (longer phrase first at the same place)."""
        return self.in_said(_Said(text, words, end, spotted))

    def in_said(self, said: "_Said") -> list[Hit]:
        hits = [h for h in (said.find(p) for p in self.phrases) if h is not None]
        hits.sort(key=lambda h: (h.index, -len(h.phrase)))
        return hits

    def find(self, text: str, **kw) -> Hit | None:
        hits = self.find_all(text, **kw)
        return hits[0] if hits else None

    def in_utterance(self, u) -> list[Hit]:
        """Hits in an ivr.speech.recognizer.Utterance (its text, words and spotted phrases)."""
        return self.in_said(prepare(u))


def prepare(u) -> _Said:
    """An Utterance normalised once, for matching many phrase sets against it."""
    return _Said(u.text, u.words, u.end, u.phrases)
