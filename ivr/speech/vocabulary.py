"""What words a Vosk model knows, and how often they occur: the garbage words of a
phrase-spotting grammar.

A grammar of only the script's phrases forces every sound onto one of them:
"바로 확인해 주세요" comes out as "바보 ... 주세요" and raises an abuse card. The
usual cure, the model's unknown-word token, is missing from some models (the
small Korean one), and where it exists it soaks up little. So the grammar also
gets *garbage words*: the model's most frequent short words (for Korean, single
syllables and particles), which any speech can be decoded as. A phrase then
wins only where it fits the sound better than a string of common words, and
its word confidences start to mean something.

Frequencies come from the model's own language model: the unigram costs of the
``graph/Gr.fst`` n-gram FST that small Vosk models ship (OpenFst's NGramFst
binary layout: header, symbol tables, then LOUDS-encoded contexts whose root
lists every word with its unigram cost). Parsing takes about two seconds, so
the result is cached per model file (size and mtime) in a small JSON file.
"""

from __future__ import annotations

import array
import hashlib
import json
import logging
import os
import struct
import sys
import tempfile
from collections.abc import Set
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_FST_MAGIC = 2125659606
_SYMBOLS_MAGIC = 2125658996
CACHE_DIR = Path(os.environ.get("IVR_CACHE", Path(tempfile.gettempdir()) / "ivr-cache"))
KEEP = 5000  # most frequent words kept in the cache


class VocabularyError(ValueError):
    pass


def _read_string(data: bytes, at: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<i", data, at)
    if n < 0 or at + 4 + n > len(data):
        raise VocabularyError("corrupt string in the FST")
    return data[at + 4 : at + 4 + n].decode("utf-8", "replace"), at + 4 + n


def _symbols(data: bytes, at: int) -> tuple[dict[int, str], int]:
    (magic,) = struct.unpack_from("<i", data, at)
    if magic != _SYMBOLS_MAGIC:
        raise VocabularyError("no symbol table where one was expected")
    _, at = _read_string(data, at + 4)
    _, size = struct.unpack_from("<qq", data, at)
    at += 16
    table: dict[int, str] = {}
    for _ in range(size):
        word, at = _read_string(data, at)
        (key,) = struct.unpack_from("<q", data, at)
        at += 8
        table[key] = word
    return table, at


def ngram_unigrams(fst: Path) -> list[tuple[str, float]]:
    """Every word of an OpenFst NGramFst with its unigram cost (-log p), cheapest first."""
    data = fst.read_bytes()
    (magic,) = struct.unpack_from("<i", data, 0)
    if magic != _FST_MAGIC:
        raise VocabularyError(f"{fst} is not an OpenFst file")
    fst_type, at = _read_string(data, 4)
    if fst_type != "ngram":
        raise VocabularyError(f"{fst} is a {fst_type!r} FST, not an n-gram one")
    _, at = _read_string(data, at)  # arc type
    _, flags = struct.unpack_from("<ii", data, at)
    at += 8 + 32  # version, flags; properties, start, sizes
    if not flags & 2:
        raise VocabularyError(f"{fst} has no output symbols")
    if flags & 1:
        _, at = _symbols(data, at)  # input symbols (the same words)
    words, at = _symbols(data, at)
    states, futures, finals = struct.unpack_from("<QQQ", data, at)
    at += 24

    def words64(bits: int) -> int:
        return (bits + 63) // 64 * 8

    at += words64(states * 2 + 1)  # context bitmap
    future_bitmap = at  # LOUDS bits, little-endian words
    at += words64(futures + states + 1)
    at += words64(states)  # final bitmap
    at += (states + 1) * 4  # context words
    future_words = at
    at += futures * 4
    at += (states + 1) * 4  # backoff weights
    at += finals * 4  # final weights
    future_probs = at
    # LOUDS: each context node's futures are a run of 1s ended by a 0; the root (the
    # unigram context) is the second node, after the super-root's run.
    zeros: list[int] = []
    byte = 0
    while len(zeros) < 2 and byte < words64(futures + states + 1):
        b = data[future_bitmap + byte]
        if b != 0xFF:
            for bit in range(8):
                if not b >> bit & 1:
                    zeros.append(byte * 8 + bit)
                    if len(zeros) == 2:
                        break
        byte += 1
    if len(zeros) < 2:
        raise VocabularyError(f"{fst}: no unigram context")
    start, count = zeros[0], zeros[1] - zeros[0] - 1  # future index = bit - zeros before it
    ids = array.array("i")
    ids.frombytes(data[future_words + 4 * start : future_words + 4 * (start + count)])
    costs = array.array("f")
    costs.frombytes(data[future_probs + 4 * start : future_probs + 4 * (start + count)])
    if sys.byteorder != "little":
        ids.byteswap()
        costs.byteswap()
    order = sorted(range(count), key=costs.__getitem__)
    return [(words.get(ids[i], ""), costs[i]) for i in order]


def _fst_words(fst: Path) -> list[str]:
    """The output symbol table of an OpenFst file: every word of the model."""
    data = fst.read_bytes()
    (magic,) = struct.unpack_from("<i", data, 0)
    if magic != _FST_MAGIC:
        raise VocabularyError(f"{fst} is not an OpenFst file")
    _, at = _read_string(data, 4)  # fst type
    _, at = _read_string(data, at)  # arc type
    _, flags = struct.unpack_from("<ii", data, at)
    at += 8 + 32
    if not flags & 2:
        raise VocabularyError(f"{fst} has no output symbols")
    if flags & 1:
        _, at = _symbols(data, at)
    words, _ = _symbols(data, at)
    return list(words.values())


def known_words(model_path: str | Path) -> frozenset[str] | None:
    """Every word the model can recognise, read from its files without loading it
    (``graph/words.txt``, else the n-gram FST's symbol table; cached like the
    frequencies); None when the folder has neither (then only loading says)."""
    graph = Path(model_path) / "graph"
    source = next((f for f in (graph / "words.txt", graph / "Gr.fst") if f.is_file()), None)
    if source is None:
        return None
    st = source.stat()
    key = f"{source.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    cache = CACHE_DIR / f"words-{hashlib.sha1(key.encode()).hexdigest()[:12]}.json"
    try:
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            return frozenset(cached["words"])
    except (OSError, ValueError):
        pass
    try:
        if source.name == "words.txt":
            lines = source.read_text(encoding="utf-8", errors="replace").splitlines()
            words = [line.split()[0] for line in lines if line.strip()]
        else:
            words = _fst_words(source)
    except (VocabularyError, struct.error, ValueError, OSError) as exc:
        log.warning("speech: cannot read the words of %s (%s)", source, exc)
        return None
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"key": key, "words": words}, ensure_ascii=False), encoding="utf-8")
    tmp.replace(cache)
    return frozenset(words)


def frequent_words(model_path: str | Path, limit: int = KEEP) -> list[str]:
    """The model's most frequent words, most frequent first; [] if its graph has no
    readable n-gram (a big model, a custom build): grammars then rely on [unk]."""
    fst = Path(model_path) / "graph" / "Gr.fst"
    if not fst.is_file():
        return []
    st = fst.stat()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    key = f"{fst.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    cache = CACHE_DIR / f"unigrams-{hashlib.sha1(key.encode()).hexdigest()[:12]}.json"
    try:
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            return cached["words"][:limit]
    except (OSError, ValueError):
        pass
    try:
        ranked = ngram_unigrams(fst)
    except (VocabularyError, struct.error, ValueError) as exc:
        log.warning(
            "speech: cannot read word frequencies from %s (%s); phrase spotting uses "
            "the unknown-word token only",
            fst,
            exc,
        )
        return []
    words = [w for w, _ in ranked if w and not w.startswith(("<", "#", "!"))][:KEEP]
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, "words": words}, ensure_ascii=False), encoding="utf-8")
    tmp.replace(cache)
    return words[:limit]


def garbage_words(
    frequent: list[str],
    count: int,
    *,
    exclude: Set[str] = frozenset(),
    max_chars: int = 2,
    min_chars: int = 1,
) -> tuple[str, ...]:
    """``count`` frequent short words (letters only: no digits, brackets or signs)."""
    out: list[str] = []
    for w in frequent:
        if len(out) >= count:
            break
        if min_chars <= len(w) <= max_chars and w.isalpha() and w not in exclude:
            out.append(w)
    return tuple(out)


class ModelVocabulary:
    """What a model can hear, read from its files without loading it (some hundred
    megabytes): for a controller whose speech runs on speech workers, to decide what
    each party listens for and what cannot be checked. The same answers as
    ``SpeechModel.can_hear`` (the same word table)."""

    def __init__(self, path: Path, words: frozenset[str]) -> None:
        from .models import supports_grammar

        self.path = path
        self.words = words
        self.grammar_capable = supports_grammar(path)

    @classmethod
    def load(cls, spec: str | Path = "auto") -> Any:
        """The vocabulary of the model ``spec`` names; the loaded model where its words
        cannot be read from the files."""
        from .models import resolve_model
        from .recognizer import SpeechModel

        path = resolve_model(spec).resolve()
        words = known_words(path)
        return cls(path, words) if words is not None else SpeechModel.load(path)

    def has_word(self, word: str) -> bool:
        return word in self.words

    def can_hear(self, phrase: str) -> bool:
        from .grammar import fit_phrase

        return fit_phrase(phrase, self.has_word).usable
