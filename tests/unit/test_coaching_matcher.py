"""Phrase matching on transcripts: normalisation, word boundaries, Korean, spotted phrases."""
from __future__ import annotations

import pytest

from ivr.coaching.matcher import PhraseSet, is_spaceless, normalize, phrase_key, syllables
from ivr.speech.recognizer import Utterance, Word


def u(text: str, start: float = 0.0, end: float = 2.0, phrases=(), words=()) -> Utterance:
    return Utterance("c1", "agent", text, start, end, True, None, tuple(phrases), tuple(words))


def test_normalize_drops_punctuation_and_case_keeps_apostrophes():
    assert normalize("I can't, sorry!") == ["i", "can't", "sorry"]
    assert normalize("I can\u2019t") == ["i", "can't"]
    assert normalize("  ACME   Telecom. ") == ["acme", "telecom"]
    assert normalize("e-mail 'quoted'") == ["e", "mail", "quoted"]
    assert normalize("안녕하세요! 에이스 텔레콤입니다.") == ["안녕하세요", "에이스", "텔레콤입니다"]


def test_korean_is_matched_without_spaces_english_with_word_boundaries():
    assert is_spaceless("에이스 텔레콤") and not is_spaceless("acme telecom")
    assert phrase_key("말씀해 주세요") == phrase_key("말씀 해 주세요") == "말씀해주세요"
    assert phrase_key("How can I help?") == "how can i help"


@pytest.mark.parametrize("phrase,text,hit", [
    ("no idea", "I have no idea, sorry", True),
    ("no idea", "no ideas at all", False),              # whole words only
    ("acme", "Acme Telecom, Anna speaking", True),
    ("acme", "acmes", False),
    ("acme", "the academy", False),
    ("i can't", "I CAN'T do that", True),
    ("i can't", "I can tell you", False),
    ("how can i help", "how can I help you today?", True),
    ("how can i help", "how I can help", False),        # order matters
    ("sorry", "so rry", False),
    # Korean: particles and morpheme splits do not matter
    ("에이스 텔레콤", "에이스텔레콤입니다", True),
    ("에이스 텔레콤", "에이스 해 무엇", False),
    ("말씀해 주세요", "네 말씀 해 주세요", True),
    ("무엇을 도와드릴까요", "무엇 을 도 와 드릴까요", True),
    ("바보", "이 바보야", True),
    ("멍청이", "멍청", False),
])
def test_phrase_in_text(phrase, text, hit):
    assert (PhraseSet([phrase]).find(text) is not None) is hit


def test_spotted_phrases_from_grammar_mode_count():
    # Grammar mode reports the phrases as written; the text may be spelled differently.
    ps = PhraseSet(["Acme Telecom", "how can i help"])
    hits = ps.in_utterance(u("<unk>", phrases=["acme telecom"]))
    assert [h.phrase for h in hits] == ["Acme Telecom"]
    assert ps.in_utterance(u("", phrases=["something else"])) == []


def test_all_hits_in_order_said_and_duplicates_folded():
    ps = PhraseSet(["thank you", "Thank you", "acme", "how can i help"])
    assert len(ps) == 3
    hits = ps.find_all("Acme here, how can I help? Thank you")
    assert [h.phrase for h in hits] == ["acme", "how can i help", "thank you"]


def test_hit_time_from_word_times_else_utterance_end():
    words = [Word("this", 1.0, 1.2, 1), Word("is", 1.2, 1.3, 1), Word("acme", 1.4, 1.8, 1),
             Word("telecom", 1.8, 2.4, 1), Word("how", 5.0, 5.2, 1)]
    ps = PhraseSet(["acme telecom"])
    assert ps.in_utterance(u("this is acme telecom how", 1.0, 5.2, words=words))[0].at == 2.4
    assert ps.in_utterance(u("this is acme telecom how", 1.0, 5.2))[0].at == 5.2
    ko = [Word("에이스", 0.5, 0.9, 1), Word("텔레콤", 0.9, 1.5, 1), Word("김민수", 2.0, 2.6, 1)]
    hit = PhraseSet(["에이스텔레콤"]).in_utterance(u("에이스 텔레콤 김민수", 0.5, 2.6, words=ko))
    assert hit[0].at == 1.5


def test_syllables_count_hangul_and_other_words():
    assert syllables("안녕하세요") == 5
    assert syllables("에이스 텔레콤 ok") == 7
    assert syllables("hello there") == 2
