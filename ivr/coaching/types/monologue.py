"""monologue: the agent has held the floor for ``seconds`` (default 45) without the
customer speaking. The agent's turn goes on across pauses of up to ``max_pause``
(2 s); customer speech of less than ``backchannel`` (1.5 s: "mm", "yes") does
not end it. The engine keeps the turns (LiveCall.turn_start/turn_last) with
these two settings, taken from the call's first monologue rule.

    - {id: monologue, type: monologue, text: Ask the customer a question., seconds: 45}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model import AGENT
from .base import RuleType
from .params import Number

if TYPE_CHECKING:
    from ..engine import LiveCall


class Monologue(RuleType):
    name = "monologue"
    rank = 60
    params = (
        Number("seconds", default=45.0),
        Number("max_pause", default=2.0),
        Number("backchannel", default=1.5),
    )
    placeholders = ("seconds",)

    def turns(self) -> tuple[float, float]:
        return self.rule.param("max_pause", 2.0), self.rule.param("backchannel", 1.5)

    def turn(self, call: "LiveCall", t: float) -> None:
        self.clock(call, t)

    def clock(self, call: "LiveCall", t: float) -> None:
        if call.turn_start is None:
            return
        talking_now = AGENT in call.open or AGENT in call.partial
        end = max(t, call.turn_last or t) if talking_now else (call.turn_last or call.turn_start)
        seconds = self.rule.param("seconds", 45.0)
        if end - call.turn_start > seconds:
            call.fire(
                self.rule,
                call.turn_start + seconds,
                values={"seconds": seconds},
                evidence=f"agent talking since {call.turn_start:.1f} s without the "
                f"customer speaking",
            )
