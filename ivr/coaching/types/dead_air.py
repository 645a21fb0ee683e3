"""dead_air: nobody has said anything for ``seconds`` (default 8) since someone last
spoke. From both streams' timing: judged on what both parties' audio has shown.

    - {id: dead_air, type: dead_air, text: Keep the customer informed., seconds: 8}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model import Rule
from .base import RuleType
from .params import Number

if TYPE_CHECKING:
    from ..engine import LiveCall


class DeadAir(RuleType):
    name = "dead_air"
    rank = 50
    params = (Number("seconds", default=8.0),)
    placeholders = ("seconds",)

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.judged: float | None = None  # the end of speech it last fired after

    def clock(self, call: "LiveCall", t: float) -> None:
        if not call.spoke or call.open or call.partial:
            return
        seconds = self.rule.param("seconds", 8.0)
        if t - call.last_speech_end <= seconds or self.judged == call.last_speech_end:
            return
        if call.fire(
            self.rule,
            call.last_speech_end + seconds,
            values={"seconds": seconds},
            evidence=f"silence since {call.last_speech_end:.1f} s",
        ):
            self.judged = call.last_speech_end
