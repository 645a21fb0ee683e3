"""Rule types are units: the registry finds each module, each module's example
loads, and a new type is one class (parameters, placeholders, phrases, hooks):
the rule files, the spotting grammars and the engine take it with nothing else
changed."""
from __future__ import annotations

import pkgutil
import re
from typing import Any

import pytest

import ivr.coaching.types as types_pkg
from ivr.coaching import CoachingEngine, parse_ruleset
from ivr.coaching.model import RULE_TYPES, Rule
from ivr.coaching.types import TYPES, RuleType, rule_phrases
from ivr.coaching.types.base import UNHEARABLE, none_heard
from ivr.coaching.types.params import Number, Texts
from ivr.speech.recognizer import Utterance

T0 = 1_700_000_000.0


def test_the_registry_holds_one_type_per_module_in_their_listed_order():
    modules = {m.name for m in pkgutil.iter_modules(types_pkg.__path__)} - {"base", "params"}
    assert set(TYPES) == modules                      # the module is named after its type
    assert RULE_TYPES == ("required_phrase", "forbidden_phrase", "customer_phrase", "talk_over",
                          "dead_air", "monologue", "speaking_rate")
    for name, kind in TYPES.items():
        assert kind.name == name and kind.__module__ == f"ivr.coaching.types.{name}"
        assert len({p.key for p in kind.params}) == len(kind.params), name


@pytest.mark.parametrize("name", RULE_TYPES)
def test_each_type_documents_a_rule_that_loads(name):
    """The example in each type's module docstring is a valid rule of that type."""
    doc = __import__(f"ivr.coaching.types.{name}", fromlist=["x"]).__doc__
    example = "\n".join(line[4:] for line in doc.splitlines()
                        if line.startswith("    ") and line.strip())
    assert example.startswith("- "), name
    rs, problems = parse_ruleset(f"id: t\nlanguage: en\ndefault: true\nrules:\n"
                                 f"{re.sub('(?m)^', '  ', example)}\n", "doc")
    assert problems == [] and [r.type for r in rs.rules] == [name]


class FillerWords(RuleType):
    """A new type, as one module would define it: the agent says a filler too often."""

    name = "filler_words"
    rank = 80
    params = (Texts("phrases", required="the fillers"), Number("max", default=3, whole=True))
    placeholders = ("phrase", "count")

    @classmethod
    def listens(cls, rule: Rule) -> tuple[list[str], list[str]]:
        return list(rule.param("phrases")), []

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.count = 0

    def unhearable(self, hears) -> str | None:
        phrases = self.rule.param("phrases")
        return UNHEARABLE if none_heard(hears, phrases, "agent") else None

    def agent_said(self, call, u, said) -> None:
        from ivr.coaching.matcher import PhraseSet
        hits = PhraseSet(self.rule.param("phrases")).in_said(said)
        self.count += len(hits)
        if hits and self.count > self.rule.param("max"):
            call.fire(self.rule, hits[-1].at, values={"phrase": hits[-1].phrase,
                                                      "count": self.count}, evidence=u.text)

    def record(self) -> dict[str, Any]:
        return {"id": self.rule.id, "type": self.name, "count": self.count}


RULES = """\
id: t
language: en
default: true
rules:
  - {id: fillers, type: filler_words, text: "{count} times {phrase}", phrases: [um, you know],
     max: 2}
  - {id: calm, type: customer_phrase, text: Stay calm, phrases: [idiot]}
"""


def test_a_new_type_is_one_class_that_files_grammars_and_the_engine_take(monkeypatch):
    monkeypatch.setitem(TYPES, FillerWords.name, FillerWords)
    rs, problems = parse_ruleset(RULES, "F")
    assert problems == []
    rule = rs.rule("fillers")
    assert rule.param("max") == 2 and rule.param("phrases") == ("um", "you know")
    assert rule_phrases(rule, "agent") == ["um", "you know"] and rule_phrases(rule, "customer") == []
    # its parameters are checked like any other type's, file:line: field: reason
    _, problems = parse_ruleset(RULES.replace("max: 2", "maxx: 2").replace("{count}", "{cnt}"),
                                "F")
    assert [str(p) for p in problems] == [
        "F:5: rules[0].text: unknown placeholder {cnt} (this type knows: {phrase}, {count})",
        "F:6: rules[0].maxx: unknown key for a filler_words rule (did you mean max?)"]
    _, problems = parse_ruleset(RULES.replace(", phrases: [um, you know]", ""), "F")
    assert [str(p) for p in problems] == ["F:5: rules[0].phrases: missing (the fillers)"]

    prompts = []
    engine = CoachingEngine(lambda p, l: rs, prompts.append, lambda t: None)
    assert engine.spotting_phrases({"language": "en", "checklist": []}, speaker="agent") == \
        ["um", "you know"]
    engine.start_call("c1", None, "inbound", T0)
    for i, text in enumerate(["um hello", "you know it is", "um fine", "idiot"]):
        engine.utterance(Utterance("c1", "customer" if text == "idiot" else "agent", text,
                                   i * 2.0, i * 2.0 + 1.5, True, at=T0 + i * 2.0 + 1.5))
    assert [(p.rule_id, p.text) for p in prompts] == [("fillers", "3 times um"),
                                                      ("calm", "Stay calm")]
    record = engine.end_call("c1", T0 + 10).to_dict()
    assert {"id": "fillers", "type": "filler_words", "count": 3} in record["rules"]
    # what it listens for that recognition cannot hear is "can't check" from the start
    engine.start_call("c2", None, "inbound", T0, hears=lambda speaker, phrase: False)
    assert {"id": "fillers", "kind": "rule", "reason": UNHEARABLE} in \
        engine.live("c2")["cant_check"]
