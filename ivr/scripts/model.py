"""What a call script is, once loaded and checked: frozen dataclasses.

Everything here is immutable so a script can be shared between calls, the
library and the web layer without anyone changing it under the others' feet;
a reload builds new objects instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ..calls.model import Direction

# What the package re-exports (ivr/scripts/__init__.py).
__all__ = ["BUILTIN_VARIABLES", "ChecklistItem", "Criteria", "Disposition", "FieldDef", "Kind"]
__all__ += ["Match", "Reply", "Script", "Step"]


class Kind(str, Enum):
    STRICT = "strict"  # read word for word (typical for B2C)
    FLEXIBLE = "flexible"  # talking points for a live conversation (typical for B2B)


# Variables every script may use without declaring them, and where their value
# comes from (see fill.py). Scripts may not redeclare these under `fields:`.
BUILTIN_VARIABLES: dict[str, str] = {
    "company": "the script's `company:`, else the call's COMPANY channel variable",
    "department": "the call's department (DEPARTMENT channel variable)",
    "agent_name": "the signed-in agent's name",
    "operator_id": "the agent's operator number",
    "agent_position": "the agent's position, e.g. customer adviser",
    "customer_name": "the customer list's name, else the caller ID name",
    "customer_number": "the customer's number (caller on inbound, callee on outbound)",
    "campaign": "the call's outbound campaign (CAMPAIGN channel variable)",
}

# The match criteria, strongest first: when several scripts match a call, the
# one whose strongest criterion comes first here wins (see matching.py).
CRITERIA = ("campaign", "project", "did", "ivr_choice", "queue", "context", "caller_prefix")


@dataclass(frozen=True)
class Criteria:
    """One set of conditions; all given ones must hold (a list means any of its values)."""

    did: tuple[str, ...] = ()
    queue: tuple[str, ...] = ()
    ivr_choice: tuple[str, ...] = ()
    project: tuple[str, ...] = ()
    campaign: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    caller_prefix: tuple[str, ...] = ()

    def names(self) -> list[str]:
        """The criteria this set uses, strongest first."""
        return [name for name in CRITERIA if getattr(self, name)]


@dataclass(frozen=True)
class Match:
    """When the script pops: any one of `alternatives` matching, or as the default."""

    alternatives: tuple[Criteria, ...] = ()
    default: bool = False


@dataclass(frozen=True)
class FieldDef:
    """A custom variable: filled from channel variables, the customer list, or `default`."""

    name: str
    default: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Reply:
    """A prepared answer: when the customer says/asks `when`, say `say` (objections)."""

    when: str
    say: str


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    text: str | None = None  # strict scripts: read word for word
    points: tuple[str, ...] = ()  # flexible scripts: talking points
    note: str | None = None  # guidance for the agent, not read aloud
    replies: tuple[Reply, ...] = ()


@dataclass(frozen=True)
class ChecklistItem:
    id: str
    label: str
    step: str
    weight: float = 1.0
    within: float | None = None  # seconds after answer by which it must be said
    # language -> phrases, any of which proves the item was said. A dict in a
    # frozen dataclass: excluded from hashing, never mutated after loading.
    phrases: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Disposition:
    id: str
    label: str
    needs_callback_time: bool = False
    needs_note: bool = False


@dataclass(frozen=True)
class Script:
    id: str
    project: str
    title: str
    language: str
    direction: Direction  # INBOUND or OUTBOUND only
    kind: Kind
    version: str  # given, or derived from the file's content hash
    match: Match
    steps: tuple[Step, ...]
    dispositions: tuple[Disposition, ...]
    checklist: tuple[ChecklistItem, ...] = ()
    fields: tuple[FieldDef, ...] = ()
    company: str | None = None
    description: str = ""
    source: str = ""  # the file it came from
    digest: str = ""  # sha256 of that file's content

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def field_def(self, name: str) -> FieldDef | None:
        return next((f for f in self.fields if f.name == name), None)
