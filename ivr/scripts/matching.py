"""Which script pops for a call: decided from the call's data only.

Agents work several projects at once, so the script follows the call (its
project, campaign, DID, menu choice, queue, number), never the agent.

Precedence (deterministic, see scripts/README.md):
1. Candidates are the scripts of the call's direction with a `match:`
   alternative whose every criterion holds (a list of values: any of them).
2. The candidate whose strongest matching criterion ranks highest wins:
   campaign > project > did+ivr_choice > queue > did > ivr_choice > context
   > caller_prefix.
3. Ties: more criteria in the alternative wins, then the longer caller prefix,
   then the script id (alphabetical).
4. No candidate: the `default: true` script of that direction (if several,
   the first by id; the library reports that as a problem).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ..calls.model import Call, Direction
from ..calls.numbers import normalise
from .model import Criteria, Script

# Strongest first; "did+ivr_choice" is an alternative naming both.
TIERS = (
    "campaign",
    "project",
    "did+ivr_choice",
    "queue",
    "did",
    "ivr_choice",
    "context",
    "caller_prefix",
)
_LABELS = {
    "campaign": "campaign",
    "project": "project",
    "did": "DID",
    "ivr_choice": "IVR choice",
    "queue": "queue",
    "context": "context",
    "caller_prefix": "caller prefix",
}


@dataclass(frozen=True)
class ScriptChoice:
    script: Script | None
    reason: str  # for agents and supervisors, in words
    matched_on: list[str] = field(default_factory=list)  # criteria names, or ["default"]
    also_matched: tuple[str, ...] = ()  # other candidates' ids, best first


def call_direction(call: Call) -> Direction | None:
    """Inbound or outbound; guessed from the call's data while the PBX has not said."""
    if call.direction in (Direction.INBOUND, Direction.OUTBOUND):
        return call.direction
    if call.direction is Direction.UNKNOWN:
        if call.campaign or call.dialled:
            return Direction.OUTBOUND
        if call.did:
            return Direction.INBOUND
    return None


def _same(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _same_number(a: str, b: str) -> bool:
    na, nb = normalise(a), normalise(b)
    return na == nb if na and nb else _same(a, b)


def _customer_number(call: Call) -> str:
    return call.customer_num or (call.dialled if call.direction is not Direction.INBOUND else "")


def _holds(name: str, values: tuple[str, ...], call: Call) -> tuple[bool, str]:
    """Does one criterion hold? Also returns the call's value it matched."""
    if name == "did":
        return any(_same_number(v, call.did) for v in values) if call.did else False, call.did
    if name == "caller_prefix":
        number = normalise(_customer_number(call))
        hits = [
            v
            for v in values
            if number and normalise(v, prefix=True) and number.startswith(normalise(v, prefix=True))
        ]
        return bool(hits), max(hits, key=lambda v: len(normalise(v, prefix=True)), default="")
    if name == "context":
        contexts = [leg.context for leg in call.legs.values() if leg.context]
        hit = next((c for c in contexts if any(_same(v, c) for v in values)), "")
        return bool(hit), hit
    value = getattr(call, name)
    return (any(_same(v, value) for v in values) if value else False), value


Rank = tuple[int, int, int]  # (tier, number of criteria, caller prefix length): higher wins


def _rank(criteria: Criteria, call: Call) -> tuple[Rank, list[tuple[str, str]]] | None:
    """The alternative's rank and what it matched on, if every criterion holds."""
    matched: list[tuple[str, str]] = []
    prefix_len = 0
    for name in criteria.names():
        ok, value = _holds(name, getattr(criteria, name), call)
        if not ok:
            return None
        matched.append((name, value))
        if name == "caller_prefix":
            prefix_len = len(normalise(value, prefix=True))
    names = {n for n, _ in matched}
    tiers = [TIERS.index(n) for n in names]
    if {"did", "ivr_choice"} <= names:
        tiers.append(TIERS.index("did+ivr_choice"))
    strongest = min(tiers)
    return (len(TIERS) - strongest, len(matched), prefix_len), matched


def describe_call(call: Call) -> str:
    parts = [
        f"{label} {getattr(call, attr)!r}"
        for attr, label in (
            ("project", "project"),
            ("campaign", "campaign"),
            ("did", "DID"),
            ("ivr_choice", "IVR choice"),
            ("queue", "queue"),
        )
        if getattr(call, attr)
    ]
    number = _customer_number(call)
    if number:
        parts.append(f"number {number}")
    return ", ".join(parts) if parts else "no project, campaign, DID, queue or number"


def choose_script(call: Call, scripts: Iterable[Script]) -> ScriptChoice:
    """Pick the script for a call; never raises, always says why."""
    direction = call_direction(call)
    if direction is None:
        what = (
            "an internal call"
            if call.direction is Direction.INTERNAL
            else "a call whose direction is not known yet"
        )
        return ScriptChoice(None, f"no script for {what} ({describe_call(call)})")
    mine = sorted((s for s in scripts if s.direction is direction), key=lambda s: s.id)
    ranked = []
    for script in mine:
        best = None
        for alternative in script.match.alternatives:
            got = _rank(alternative, call)
            if got is not None and (best is None or got[0] > best[0]):
                best = got
        if best is not None:
            ranked.append((best[0], script, best[1]))
    # Highest rank first; Python's sort is stable, so equal ranks keep id order.
    ranked.sort(key=lambda r: r[0], reverse=True)
    d = direction.value
    if ranked:
        _, script, matched = ranked[0]
        others = tuple(s.id for _, s, _ in ranked[1:])
        how = " and ".join(f"{_LABELS[n]} {v!r}" for n, v in matched)
        reason = f"{d} call matched on {how}"
        if others:
            reason += f" (preferred over {', '.join(others)})"
        return ScriptChoice(script, reason, [n for n, _ in matched], others)
    defaults = [s for s in mine if s.match.default]
    if defaults:
        reason = f"default {d} script: no {d} script matches {describe_call(call)}"
        if len(defaults) > 1:
            reason += f" (several defaults: {', '.join(s.id for s in defaults)}; first by id)"
        return ScriptChoice(defaults[0], reason, ["default"])
    return ScriptChoice(
        None, f"no {d} script matches {describe_call(call)}, and there is no default {d} script"
    )
