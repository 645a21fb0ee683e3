"""talk_over: the agent started talking while the customer was talking, and both
went on for more than ``overlap`` seconds. From the two streams' timing (voice
activity and final results), not their words.

    - {id: talk_over, type: talk_over, text: Let the customer finish., overlap: 1.0}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model import AGENT, CUSTOMER, Rule
from .base import RuleType
from .params import Number

if TYPE_CHECKING:
    from ..engine import LiveCall

SETTLE = 5.0  # an agent span is judged for good this long after its end


class TalkOver(RuleType):
    name = "talk_over"
    rank = 40
    params = (Number("overlap", default=1.0),)
    placeholders = ("overlap",)

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.fired_for: set[float] = set()  # agent span starts that fired
        self.judged: set[tuple[float, float]] = set()  # agent spans judged for good

    def speech(self, call: "LiveCall", t: float) -> None:
        """Did the agent start talking while the customer was talking, for long enough?"""
        # (the engine forgets speech a minute old; so does this)
        self.judged = {s for s in self.judged if s[1] >= t - 120.0}
        agent: list[tuple[float, float | None]] = [
            (s.start, s.end) for s in call.spans[AGENT] if (s.start, s.end) not in self.judged
        ]
        if AGENT in call.open:
            agent.append((call.open[AGENT], None))
        if not agent:
            return
        customer = [(s.start, s.end) for s in call.spans[CUSTOMER]]
        if CUSTOMER in call.open:
            customer.append((call.open[CUSTOMER], None))
        need = self.rule.param("overlap", 1.0)
        for a_start, a_end in agent:
            key = round(a_start, 2)
            if key in self.fired_for:
                if a_end is not None:
                    self.judged.add((a_start, a_end))
                continue
            a_stop = t if a_end is None else min(a_end, t)
            for c_start, c_end in customer:
                c_stop = t if c_end is None else min(c_end, t)
                # the agent started while the customer was already talking
                if not (c_start < a_start < c_stop):
                    continue
                overlap = min(a_stop, c_stop) - a_start
                if overlap > need:
                    self.fired_for.add(key)
                    call.fire(
                        self.rule,
                        a_start + need,
                        values={"overlap": round(overlap, 1)},
                        evidence=f"agent started at {a_start:.1f} s while the "
                        f"customer was speaking ({overlap:.1f} s over)",
                    )
                    break
            if (
                a_end is not None
                and a_end + SETTLE <= t
                and not any(c_end is None for _, c_end in customer)
            ):
                self.judged.add((a_start, a_end))  # over, and late finals had time to come
