"""Phrase-spotting grammars for Vosk.

A grammar is the JSON list of phrases Vosk may recognise, plus the model's
unknown-word token (``[unk]`` in most models, ``<UNK>`` in some, e.g. the
small Korean one) which soaks up speech that is none of them. Vosk builds a
small bigram language model from that list, so decoding is far cheaper than
free transcription (about 10-30x here), and the phrases are recognised far
more reliably.

Vosk silently drops (with a log warning) every word that is not in the
model's vocabulary, which changes the phrase. So each phrase is fitted first:

* words in the vocabulary are kept;
* an unknown word may be split into known pieces (``segment=True``): Korean
  models hold morpheme-like units, so ``무엇을`` becomes ``무엇 을`` and
  ``에이스텔레콤`` becomes ``에이스 텔레콤`` (fewest pieces wins);
* a phrase with a word that still does not fit is *unusable*: it is left out
  of the grammar and reported with the missing words.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

UNK_TOKENS = ("[unk]", "<UNK>", "<unk>")
# Punctuation dropped from phrases; an apostrophe inside a word stays (English "can't").
_PUNCT = re.compile(r"[^\w\s'’-]+|(?<!\w)['’-]|['’-](?!\w)")


def normalize(text: str) -> list[str]:
    """Lower-case words without punctuation, as Vosk models spell them."""
    text = _PUNCT.sub(" ", text.replace("’", "'")).lower()
    return text.split()


def segment_word(
    word: str, has_word: Callable[[str], bool], max_piece: int = 16
) -> list[str] | None:
    """Split ``word`` into the fewest known pieces (None if it cannot be)."""
    n = len(word)
    best: list[list[str] | None] = [None] * (n + 1)
    best[0] = []
    for i in range(1, n + 1):
        for j in range(max(0, i - max_piece), i):
            prev = best[j]
            if prev is None:
                continue
            piece = word[j:i]
            if has_word(piece):
                cand = prev + [piece]
                cur = best[i]
                if cur is None or len(cand) < len(cur):
                    best[i] = cand
    return best[n]


@dataclass(frozen=True)
class PhraseFit:
    """How one phrase fits the model's vocabulary."""

    phrase: str  # as the script wrote it
    tokens: tuple[str, ...]  # the words Vosk will use (empty if unusable)
    missing: tuple[str, ...] = ()  # words that are not in the vocabulary at all
    segmented: tuple[str, ...] = ()  # words that were split into known pieces

    @property
    def usable(self) -> bool:
        return bool(self.tokens) and not self.missing

    @property
    def form(self) -> str:
        return " ".join(self.tokens)

    def describe(self) -> str:
        if not self.usable:
            why = ", ".join(self.missing) if self.missing else "no words"
            return f"{self.phrase!r}: unusable (not in the model's vocabulary: {why})"
        if self.segmented:
            return f"{self.phrase!r}: as {self.form!r} (split: {', '.join(self.segmented)})"
        return f"{self.phrase!r}: ok"


def fit_phrase(phrase: str, has_word: Callable[[str], bool], *, segment: bool = True) -> PhraseFit:
    tokens: list[str] = []
    missing: list[str] = []
    segmented: list[str] = []
    for word in normalize(phrase):
        if has_word(word):
            tokens.append(word)
            continue
        pieces = segment_word(word, has_word) if segment and len(word) > 1 else None
        if pieces:
            tokens.extend(pieces)
            segmented.append(word)
        else:
            missing.append(word)
    if missing:
        return PhraseFit(phrase, (), tuple(missing), tuple(segmented))
    return PhraseFit(phrase, tuple(tokens), (), tuple(segmented))


@dataclass(frozen=True)
class Grammar:
    fits: tuple[PhraseFit, ...]
    unk: str | None  # the model's unknown-word token, if it has one
    fillers: tuple[str, ...] = ()  # garbage words: other speech lands on them (vocabulary.py)

    @property
    def usable(self) -> tuple[PhraseFit, ...]:
        return tuple(f for f in self.fits if f.usable)

    @property
    def unusable(self) -> tuple[PhraseFit, ...]:
        return tuple(f for f in self.fits if not f.usable)

    @property
    def entries(self) -> list[str]:
        seen: dict[str, None] = {}
        for f in self.usable:
            seen.setdefault(f.form, None)
        for w in self.fillers:
            seen.setdefault(w, None)
        out = list(seen)
        if self.unk:
            out.append(self.unk)
        return out

    def json(self) -> str:
        """The grammar as Vosk's KaldiRecognizer takes it."""
        return json.dumps(self.entries, ensure_ascii=False)

    def spot(self, tokens: Sequence[str] | str) -> tuple[str, ...]:
        """The script phrases (as written) found in recognised words, in order of appearance."""
        if isinstance(tokens, str):
            tokens = tokens.split()
        found: list[tuple[int, int, str]] = []
        for order, f in enumerate(self.usable):
            k = len(f.tokens)
            for i in range(len(tokens) - k + 1):
                if tuple(tokens[i : i + k]) == f.tokens:
                    found.append((i, order, f.phrase))
        found.sort()
        return tuple(p for _, _, p in found)

    def report(self) -> str:
        return "\n".join(f.describe() for f in self.fits)


def build_grammar(
    phrases: Iterable[str],
    has_word: Callable[[str], bool],
    *,
    segment: bool = True,
    unk: str | None | bool = True,
    fillers: Iterable[str] = (),
) -> Grammar:
    """Fit every phrase to the vocabulary; ``unk=True`` finds the model's unknown token."""
    fits = tuple(fit_phrase(p, has_word, segment=segment) for p in phrases if p.strip())
    token: str | None
    if unk is True:
        token = next((t for t in UNK_TOKENS if has_word(t)), None)
    elif unk is False:
        token = None
    else:
        token = unk
    return Grammar(fits, token, tuple(w for w in fillers if has_word(w)))


def is_unk(word: str) -> bool:
    return word in UNK_TOKENS
