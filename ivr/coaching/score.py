"""Adherence: how much of the script's weighted checklist the agent did, in time.

    score = 100 * (sum of the weights of items done in time) / (sum of all weights)

rounded half up to a whole number (0-100); None when the script has no
checklist (or only zero weights), so "no script" is never scored as 0 or 100.

An item is *done in time* when it is ticked at the end of the call (by speech
recognition or by the agent's own tick on the console) and, if it has
``within``, it was said (or ticked) at or before ``within`` seconds after the
answer. An item done after its deadline is *late*: it shows as done on the
record but earns nothing. An item never done is *missed*. Items without
``within`` (e.g. "thanked the caller") count whenever they were done.

An item speech recognition *cannot check* (its phrases are not in the model's
vocabulary, the party's audio never reached recognition, or recognition was
too far behind at the deadline) and that was not done is left out of both
sums: it is neither earned nor missed, so a model that cannot hear a phrase
never lowers an agent's score. Done by hand or heard after all, it counts.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

DONE = "done"
LATE = "late"
MISSED = "missed"
CANT_CHECK = "cant_check"


def item_status(
    done: bool, at: float | None, within: float | None, cant_check: str | None = None
) -> str:
    if not done:
        return CANT_CHECK if cant_check else MISSED
    if within is not None and at is not None and at > within + 1e-9:
        # Heard only after its deadline, but the deadline itself could not be judged
        # (audio shed, recognition behind): it may well have been said in time.
        return CANT_CHECK if cant_check else LATE
    return DONE


def adherence(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """items: [{id, weight, done, at, within, cant_check}] ->
    {score, earned, total, in_time, late, missed, cant_check}."""
    total = earned = 0.0
    in_time: list[str] = []
    late: list[str] = []
    missed: list[str] = []
    unchecked: list[str] = []
    for it in items:
        weight = float(it.get("weight", 1.0) or 0.0)
        status = item_status(
            bool(it.get("done")), it.get("at"), it.get("within"), it.get("cant_check")
        )
        if status == CANT_CHECK:
            unchecked.append(it["id"])
            continue
        total += weight
        if status == DONE:
            earned += weight
            in_time.append(it["id"])
        elif status == LATE:
            late.append(it["id"])
        else:
            missed.append(it["id"])
    score = math.floor(100.0 * earned / total + 0.5) if total > 0 else None
    return {
        "score": score,
        "earned": earned,
        "total": total,
        "in_time": in_time,
        "late": late,
        "missed": missed,
        "cant_check": unchecked,
    }
