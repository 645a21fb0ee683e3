"""What the outcomes store keeps: record types, their columns and statuses. What
it offers is sql.py's SqlStore (the Store), which SQLite and PostgreSQL share.

The records are plain dataclasses whose fields are the table's columns, in
order; field metadata says which part of the service owns a column, so the
SQL (sql.py) is generated from here and cannot drift from the schema.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class StoreError(Exception):
    """The store cannot be used as configured (bad URL, schema too new ...)."""


class CallStatus(str, Enum):
    """Where a call's record stands (not how the call went: that is `result`)."""

    LIVE = "live"  # the call is going on
    ENDED = "ended"  # the call ended and we saw it end
    INTERRUPTED = "interrupted"  # the service stopped (crash, kill -9) while it was live


class CallbackStatus(str, Enum):
    PENDING = "pending"  # waiting to be placed when due
    DIALLING = "dialling"  # being placed now
    DONE = "done"  # the customer was reached (or called back themselves)
    FAILED = "failed"  # given up after retries
    CANCELLED = "cancelled"  # no longer wanted (e.g. do-not-call)


# A number has at most one open callback per project: a customer who abandons
# three times gets one call back, not three (enforced by a partial unique index).
OPEN_CALLBACK_STATUSES = (CallbackStatus.PENDING.value, CallbackStatus.DIALLING.value)

# Reason of a callback asked for at wrap-up ("call me later"), as opposed to
# the automatic ones named after the call's result (abandoned, no_answer, failed).
SCHEDULED = "scheduled"

# Column owners: "key" call_id; "call" written from the tracker's Call on every
# upsert; "script" by the pop stage (kept when an upsert has none); "wrapup" by
# the agent's console; "speech" by the speech stage; "meta" by the store.
_CALL, _SCRIPT, _WRAPUP, _SPEECH, _META = "call", "script", "wrapup", "speech", "meta"


def _col(owner: str, default: Any = None, *, json: bool = False, factory: Any = None) -> Any:
    meta = {"owner": owner, "json": json}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class CallRecord:
    """One row of `calls`: a call, answered or not, with its wrap-up."""

    call_id: str = field(metadata={"owner": "key", "json": False})
    state: str = _col(_CALL, CallStatus.LIVE.value)
    direction: str = _col(_CALL, "unknown")
    project: str = _col(_CALL, "")
    script_id: str | None = _col(_SCRIPT)
    script_version: str | None = _col(_SCRIPT)
    did: str = _col(_CALL, "")
    dialled: str = _col(_CALL, "")
    customer_num: str = _col(_CALL, "")
    customer_name: str = _col(_CALL, "")
    department: str = _col(_CALL, "")
    queue: str = _col(_CALL, "")
    ivr_choice: str = _col(_CALL, "")
    ivr_keys: str = _col(_CALL, "")
    ivr_exit: str = _col(_CALL, "")
    campaign: str = _col(_CALL, "")
    agents_rung: list[str] = _col(_CALL, json=True, factory=list)
    agent: str | None = _col(_CALL)
    started_at: float = _col(_CALL, 0.0)
    queued_at: float | None = _col(_CALL)
    queue_result: str = _col(_CALL, "")
    agent_ring_at: float | None = _col(_CALL)
    agent_answered_at: float | None = _col(_CALL)
    answered_at: float | None = _col(_CALL)
    ended_at: float | None = _col(_CALL)
    queue_wait_seconds: float | None = _col(_CALL)
    ring_seconds: float | None = _col(_CALL)
    talk_seconds: float | None = _col(_CALL)
    hold_seconds: float = _col(_CALL, 0.0)
    cause: int | None = _col(_CALL)
    cause_txt: str = _col(_CALL, "")
    result: str | None = _col(_CALL)
    transfers: list[dict[str, Any]] = _col(_CALL, json=True, factory=list)
    monitors: list[dict[str, Any]] = _col(_CALL, json=True, factory=list)
    disposition: str | None = _col(_WRAPUP)
    notes: str | None = _col(_WRAPUP)
    callback_at: float | None = _col(_WRAPUP)
    wrapped_up_at: float | None = _col(_WRAPUP)
    wrapped_up_by: str | None = _col(_WRAPUP)
    checklist: dict[str, Any] | None = _col(_SPEECH, json=True)
    adherence_score: float | None = _col(_SPEECH)
    prompts: list[Any] | None = _col(_SPEECH, json=True)
    transcript: list[Any] | None = _col(_SPEECH, json=True)
    pbx: str = _col(_CALL, "")  # the PBX the call was on (ivr/cluster)
    updated_at: float = _col(_META, 0.0)
    cant_check: list[Any] | None = _col(_SPEECH, json=True)  # added by migration 50

    @property
    def wrapup_seconds(self) -> float | None:
        """After-call work: from hang-up to the saved wrap-up."""
        if self.wrapped_up_at is None or self.ended_at is None:
            return None
        return max(0.0, self.wrapped_up_at - self.ended_at)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "wrapup_seconds": self.wrapup_seconds}


@dataclass
class CallbackRecord:
    """One row of `callbacks`: a customer to be called back."""

    id: int
    call_id: str | None  # the call that asked for it (None: added by hand)
    number: str
    project: str
    agent: str | None  # None: anyone in the project may take it
    reason: str  # abandoned | queue_timeout | no_answer | failed | scheduled ...
    due_at: float
    status: str = CallbackStatus.PENDING.value
    attempts: int = 0
    last_attempt_at: float | None = None
    last_result: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def columns(record: type, owner: str | None = None) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(record)
        if owner is None or f.metadata.get("owner") == owner
    ]


def json_columns(record: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(record) if f.metadata.get("json"))
