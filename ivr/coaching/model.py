"""What coaching is made of: rules (from YAML), the prompts they raise, the
checklist ticks they make, and what a finished call's coaching record holds.

Times are seconds since the call's answer (the speech stage's time line), so
a prompt's ``at`` can be laid next to the transcript's ``start``/``end``.
Everything that leaves the engine is a frozen dataclass with ``to_dict()``
(JSON-able), so it can be pushed to the console and stored with the outcome.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

INFO = "info"
WARNING = "warning"
CRITICAL = "critical"
SEVERITIES = (INFO, WARNING, CRITICAL)

AGENT = "agent"
CUSTOMER = "customer"
SPEAKERS = (AGENT, CUSTOMER)

INBOUND = "inbound"
OUTBOUND = "outbound"
DIRECTIONS = (INBOUND, OUTBOUND)

# Rule types are defined in ivr/coaching/types/ (one module each, found by its
# registry); RULE_TYPES and the names (REQUIRED_PHRASE = "required_phrase" ...)
# are looked up there on first use (see __getattr__ at the end).

# The {placeholders} a checklist deadline prompt's text and reason may use.
CHECKLIST_PLACEHOLDERS = ("label", "within", "item")
# A checklist item with `within` is prompted as a required phrase by a deadline.
CHECKLIST_KIND = "required_phrase"
CHECKLIST_RULE_PREFIX = "checklist."


@dataclass(frozen=True)
class Rule:
    """One coaching rule as loaded from a rule file (parameters checked per type).

    ``params`` holds the type's parameters, already typed: phrase lists are
    tuples of text, numbers floats, ``replace`` a mapping of text to text.
    """

    id: str
    type: str
    text: str  # the prompt, in the rule file's language
    severity: str = WARNING
    reason: str = ""  # why, shown small under the prompt
    params: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    repeat_after: float | None = None  # fire again after this many seconds (else once)
    directions: tuple[str, ...] = ()  # only on calls of these directions (empty: all)
    spot: bool = True  # put its phrases into phrase-spotting grammars
    file: str = ""
    line: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def applies_to(self, direction: str) -> bool:
        return not self.directions or direction in self.directions

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


@dataclass(frozen=True)
class ChecklistPrompt:
    """How a script's checklist item with `within` is prompted when it is late."""

    text: str
    severity: str = WARNING
    reason: str = ""


DEFAULT_CHECKLIST_PROMPT = ChecklistPrompt(
    "Not yet: {label}", WARNING, "The script asks for this within {within} s of the answer."
)


@dataclass(frozen=True)
class RuleSet:
    """The rules for calls of some projects in one language (a rule file, resolved)."""

    id: str
    language: str
    rules: tuple[Rule, ...] = ()
    checklist: ChecklistPrompt = DEFAULT_CHECKLIST_PROMPT
    items: Mapping[str, ChecklistPrompt] = field(default_factory=dict, hash=False, compare=False)
    projects: tuple[str, ...] = ()
    default: bool = False
    extends: str | None = None
    file: str = ""
    dropped: tuple[str, ...] = ()  # inherited rule ids this set turns off

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def item_prompt(self, item_id: str) -> ChecklistPrompt:
        return self.items.get(item_id, self.checklist)


def empty_ruleset(language: str = "en") -> RuleSet:
    return RuleSet(id="", language=language)


@dataclass(frozen=True)
class Prompt:
    """A rule fired: shown to the agent at once, recorded with the call."""

    call_id: str
    rule_id: str
    kind: str  # the rule type, e.g. required_phrase, customer_phrase
    text: str
    severity: str
    reason: str
    at: float  # seconds since the answer
    evidence: str = ""  # the utterance (or what was measured) that fired it
    phrase: str | None = None  # the phrase heard (phrase rules)
    item_id: str | None = None  # the checklist item it is about (deadline prompts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Tick:
    """A checklist item was said (by the agent, heard by speech recognition)."""

    call_id: str
    item_id: str
    at: float  # seconds since the answer, when it was said
    phrase: str
    by: str = "speech"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CantCheck:
    """Speech cannot judge this checklist item or rule on this call, and why.

    Shown on the console ("can't check" instead of a guessed "missed") and kept in
    the record; the item is left out of the adherence score unless it is done."""

    call_id: str
    id: str  # checklist item id or rule id
    kind: str  # "item" | "rule"
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CallCoaching:
    """A finished call's coaching record, every field JSON-able.

    checklist:  [{id, label, weight, within, done, at, by, phrase, in_time, missed}]
    adherence:  {score (0-100 or None), earned, total, in_time, late, missed}
    rules:      [{id, type, status: done|missed|not_triggered|cant_check, at, phrase}]
                (required phrases)
    cant_check: [{id, kind: item|rule, reason}]  what speech could not judge
    prompts:    [Prompt.to_dict()]
    transcript: [{speaker, text, start, end, phrases}]   (final utterances, both sides)
    """

    call_id: str
    project: str
    language: str
    direction: str
    script_id: str | None
    answered_at: float
    duration: float
    checklist: list[dict[str, Any]]
    adherence: dict[str, Any]
    rules: list[dict[str, Any]]
    prompts: list[dict[str, Any]]
    transcript: list[dict[str, Any]]
    cant_check: list[dict[str, Any]] = field(default_factory=list)

    @property
    def score(self) -> int | None:
        return self.adherence.get("score")

    def item(self, item_id: str) -> dict[str, Any] | None:
        return next((i for i in self.checklist if i["id"] == item_id), None)

    @property
    def checklist_by_id(self) -> dict[str, dict[str, Any]]:
        """The checklist as the console and the store keep it: item id -> item."""
        return {item["id"]: item for item in self.checklist}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def round_time(t: float) -> float:
    """A time as records and prompts keep it (milliseconds)."""
    return round(float(t), 3)


def show_number(v: Any) -> Any:
    """A number as prompts show it: 15 rather than 15.0, 1.5 rather than 1.4999."""
    if isinstance(v, float):
        return int(v) if v == int(v) else round(v, 1)
    return v


def __getattr__(name: str) -> Any:
    # RULE_TYPES and each type's name in capitals, from the registry of rule types
    # (which imports this module, hence the late look-up).
    from . import types

    if name == "RULE_TYPES":
        return types.RULE_TYPES
    if name.lower() in types.TYPES and name.isupper():
        return name.lower()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
