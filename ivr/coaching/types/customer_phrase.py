"""customer_phrase: what the customer says raises a card for the agent.

``phrases``: what the customer says (abuse -> "stay calm and polite", "call me
later" -> "propose a callback time"); ``department`` for the card's
``{department}`` (a question for another department -> "transfer to X"). Only
the customer's speech counts. A critical card fires only on a final result
whose words were recognised at least ``speech.critical_confidence`` sure; a
non-critical one may fire on a partial result, once two partials in a row name
the phrase.

    - id: customer_abusive
      type: customer_phrase
      text: Stay calm and polite.
      severity: critical
      phrases: [idiot, stupid]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..matcher import PhraseSet
from ..model import CRITICAL, CUSTOMER, Rule
from .base import UNHEARABLE, Hears, RuleType, none_heard
from .params import Text, Texts

if TYPE_CHECKING:
    from ..engine import LiveCall


class CustomerPhrase(RuleType):
    name = "customer_phrase"
    rank = 30
    params = (Texts("phrases", required="what the customer says"), Text("department"))
    placeholders = ("phrase", "department")

    @classmethod
    def listens(cls, rule: Rule) -> tuple[list[str], list[str]]:
        return [], list(rule.param("phrases", ()))

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.phrases = PhraseSet(rule.param("phrases", ()))

    def unhearable(self, hears: Hears) -> str | None:
        if none_heard(hears, self.phrases.texts, CUSTOMER):
            return f"{UNHEARABLE} ({', '.join(self.phrases.texts)})"
        return None

    def customer_said(self, call: "LiveCall", u: Any, said: Any, partial: bool) -> None:
        r = self.rule
        hits = self.phrases.in_said(said)
        if not hits:
            return
        h = hits[0]
        if partial:
            steady = call.named_before(f"{r.id}\0{h.phrase}")
            if r.severity == CRITICAL or not steady:
                return
        if (
            r.severity == CRITICAL
            and h.confidence is not None
            and h.confidence < call.critical_confidence
        ):
            return
        call.fire(
            r,
            h.at,
            values={"phrase": h.phrase, "department": r.param("department", "")},
            evidence=u.text,
            phrase=h.phrase,
        )
