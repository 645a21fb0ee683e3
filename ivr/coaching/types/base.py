"""What a rule type is: one class, in one module of this package, that holds all
of it. The registry (``types/__init__.py``) finds every subclass here, so adding
a rule type is adding one module (and its test).

The class side is the rule file's: the type's ``name``, its parameters
(``params``, typed and checked with file:line problems, defaults), the
``{placeholders}`` its text and reason may use, problems between parameters
(``check``), and the phrases it listens for per party (``listens``: the spotting
grammars and ``ivr check``).

An instance is the rule on one live call (made by the engine when the call is
answered). The engine calls its hooks as things happen; each does nothing
unless the type overrides it:

    agent_said(call, u, said)           a final result of the agent's speech
    customer_said(call, u, said, partial)  the customer's (partials too)
    items_changed(call)                 the checklist changed (speech, hand, restore)
    deadline(call, wall)                the clock: judge deadlines (``call.judge``)
    speech(call, t)                     speech timing changed (talk-over)
    turn(call, t)                       the agent's turn grew (monologue)
    clock(call, t)                      the clock, on what both parties' audio showed

``unhearable(hears)`` says why speech can never judge it on this call (or None),
``record()`` what the call's record keeps of it, ``turns()`` the turn-taking
settings it wants the engine to use (monologue). Hooks fire prompts with
``call.fire`` and read the shared speech timing of ``call`` (an
``engine.LiveCall``); they never do I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable

from ...yamlfile import DocPath
from ..model import Rule
from .params import Param, RuleChecker

if TYPE_CHECKING:
    from ...speech.recognizer import Utterance
    from ..engine import LiveCall
    from ..matcher import _Said

Hears = Callable[[str, str], bool]  # (speaker, phrase) -> can recognition hear it

UNHEARABLE = "the speech model cannot hear its phrases"


def none_heard(hears: Hears, phrases: Iterable[str], speaker: str) -> bool:
    """No phrase of ``phrases`` can be heard in ``speaker``'s speech."""
    return not any(hears(speaker, p) for p in phrases)


class RuleType:
    """A kind of coaching rule, whole (see the module docstring)."""

    name: ClassVar[str]
    rank: ClassVar[int]  # its place in listings (messages, docs)
    params: ClassVar[tuple[Param, ...]] = ()
    placeholders: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------ the rule file
    @classmethod
    def parse(cls, c: RuleChecker, raw: dict, path: DocPath) -> dict[str, Any]:
        """The rule's parameters from its mapping, defaults filled in; problems to ``c``."""
        params: dict[str, Any] = {}
        cls.check_before(c, raw, path)
        for param in cls.params:
            param.read(c, raw, path, params)
        cls.check(c, raw, params, path)
        return params

    @classmethod
    def check_before(cls, c: RuleChecker, raw: dict, path: DocPath) -> None:
        """Problems of the whole rule, reported before those of single parameters."""

    @classmethod
    def check(cls, c: RuleChecker, raw: dict, params: dict[str, Any], path: DocPath) -> None:
        """Problems between parameters (one needs or excludes another)."""

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(p.key for p in cls.params)

    @classmethod
    def listens(cls, rule: Rule) -> tuple[list[str], list[str]]:
        """The phrases it listens for: (in the agent's speech, in the customer's)."""
        return [], []

    # ------------------------------------------------------------ one call
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.cant_check: str | None = None  # why speech cannot judge it (None: it can)
        self.satisfied_at: float | None = None  # done (a required phrase said)

    def unhearable(self, hears: Hears) -> str | None:
        return None

    def turns(self) -> tuple[float, float] | None:
        """(max_pause, backchannel) for the engine's turn-taking, if this rule wants them."""
        return None

    def agent_said(self, call: "LiveCall", u: "Utterance", said: "_Said") -> None:
        pass

    def customer_said(self, call: "LiveCall", u: "Utterance", said: "_Said", partial: bool) -> None:
        pass

    def items_changed(self, call: "LiveCall") -> None:
        pass

    def deadline(self, call: "LiveCall", wall: float) -> None:
        pass

    def speech(self, call: "LiveCall", t: float) -> None:
        pass

    def turn(self, call: "LiveCall", t: float) -> None:
        pass

    def clock(self, call: "LiveCall", t: float) -> None:
        pass

    def record(self) -> dict[str, Any] | None:
        """What the call's record keeps of this rule (None: nothing)."""
        return None
