"""forbidden_phrase: the agent must never say these.

``phrases`` (never say), ``replace`` (a discouraged word: the brand's word, shown
as ``{preferred}``), ``names`` of other organisations with ``patterns`` of how
presenting as one sounds (``{name}`` in each; the name alone when no patterns).
Only the agent's speech counts.

    - id: brand_vocabulary
      type: forbidden_phrase
      text: 'Say "{preferred}", not "{phrase}".'
      replace: {cheap: great value}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...yamlfile import DocPath
from ..matcher import PhraseSet, phrase_key
from ..model import AGENT, Rule
from .base import UNHEARABLE, Hears, RuleType, none_heard
from .params import RuleChecker, TextMap, Texts

if TYPE_CHECKING:
    from ..engine import LiveCall


@dataclass(frozen=True)
class _Patterns(Texts):
    """How presenting as another organisation sounds: each with {name}, and names given."""

    def read(self, c: RuleChecker, d: dict, path: DocPath, out: dict[str, Any]) -> None:
        if self.key not in d:
            return
        pats = self.value(c, d, path)
        for i, pat in enumerate(pats):
            if "{name}" not in pat:
                c.add(
                    c.line(d, self.key),
                    (*path, self.key, i),
                    f"{pat!r} has no {{name}} (where the organisation's name goes)",
                )
        if "names" not in d:
            c.add(
                c.line(d, self.key),
                (*path, "names"),
                "missing (patterns need names to fill {name})",
            )
        out[self.key] = pats


def _said_as(rule: Rule) -> list[tuple[str, dict[str, str]]]:
    """Every phrase the rule forbids, with what its prompt shows for it."""
    out: list[tuple[str, dict[str, str]]] = [(p, {}) for p in rule.param("phrases", ())]
    out += [
        (word, {"preferred": preferred})
        for word, preferred in (rule.param("replace") or {}).items()
    ]
    for name in rule.param("names", ()):
        out += [
            (pat.replace("{name}", name), {"name": name})
            for pat in rule.param("patterns") or ("{name}",)
        ]
    return out


class ForbiddenPhrase(RuleType):
    name = "forbidden_phrase"
    rank = 20
    params = (
        Texts("phrases", what="what the agent must never say"),
        TextMap("replace", what="discouraged word to the brand's word"),
        Texts("names", what="names of other organisations"),
        _Patterns("patterns", what="how presenting as {name} sounds"),
    )
    placeholders = ("phrase", "preferred", "name")

    @classmethod
    def check_before(cls, c: RuleChecker, raw: dict, path: DocPath) -> None:
        if not any(k in raw for k in ("phrases", "replace", "names")):
            c.add(
                c.line(raw),
                (*path, "phrases"),
                "missing: give phrases (never say), replace (word: preferred word) or "
                "names (another organisation's names)",
            )

    @classmethod
    def listens(cls, rule: Rule) -> tuple[list[str], list[str]]:
        return [p for p, _ in _said_as(rule)], []

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.shows: dict[str, dict[str, str]] = {}  # phrase key -> prompt values
        phrases = []
        for p, values in _said_as(rule):
            phrases.append(p)
            if values:
                self.shows.setdefault(phrase_key(p), {}).update(values)
        self.phrases = PhraseSet(phrases)

    def unhearable(self, hears: Hears) -> str | None:
        if self.phrases and none_heard(hears, self.phrases.texts, AGENT):
            return f"{UNHEARABLE} ({', '.join(self.phrases.texts)})"
        return None

    def agent_said(self, call: "LiveCall", u: Any, said: Any) -> None:
        hits = self.phrases.in_said(said)
        if hits:
            h = hits[0]
            values = {
                "phrase": h.phrase,
                "preferred": "",
                "name": "",
                **self.shows.get(phrase_key(h.phrase), {}),
            }
            call.fire(self.rule, h.at, values=values, evidence=u.text, phrase=h.phrase)
