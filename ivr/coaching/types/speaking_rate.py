"""speaking_rate: the agent speaks faster than ``max`` words (or, ``unit:
syllables``, syllables: Hangul counts per syllable) per minute of their speech,
over the last ``window`` seconds (30), once at least ``min_count`` (12) have
been said. From the agent's final results and their times.

    - {id: speaking_rate, type: speaking_rate, text: Slow down a little., max: 170}
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from ..matcher import normalize, syllables
from ..model import Rule
from .base import RuleType
from .params import Choice, Number

if TYPE_CHECKING:
    from ..engine import LiveCall


class SpeakingRate(RuleType):
    name = "speaking_rate"
    rank = 70
    params = (
        Number("max", required="the most words or syllables per minute"),
        Choice("unit", options=("words", "syllables"), default="words"),
        Number("window", default=30.0),
        Number("min_count", default=12, whole=True),
    )
    placeholders = ("rate", "max", "unit")

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        # the agent's recent final results: (start, end, words, syllables)
        self.said: deque[tuple[float, float, int, int]] = deque(maxlen=500)

    def agent_said(self, call: "LiveCall", u: Any, said: Any) -> None:
        if u.end > u.start and u.text:
            self.said.append(
                (float(u.start), float(u.end), len(normalize(u.text)), syllables(u.text))
            )
        unit = self.rule.param("unit", "words")
        window = self.rule.param("window", 30.0)
        col = 3 if unit == "syllables" else 2
        while self.said and self.said[0][1] < float(u.end) - max(window, 120.0):
            self.said.popleft()
        recent = [w for w in self.said if w[1] > float(u.end) - window]
        total = sum(w[col] for w in recent)
        talk = sum(w[1] - w[0] for w in recent)
        if total < self.rule.param("min_count", 12) or talk <= 0:
            return
        rate = total / talk * 60.0
        limit = self.rule.param("max")
        if limit is not None and rate > limit:
            call.fire(
                self.rule,
                float(u.end),
                values={"rate": round(rate), "max": limit, "unit": unit},
                evidence=f"{round(rate)} {unit}/min over the last {total} {unit}",
            )
