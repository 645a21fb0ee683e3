"""What the outcomes store keeps and what it offers: record types and the
abstract Store every backend implements.

The records are plain dataclasses whose fields are the table's columns, in
order; field metadata says which part of the service owns a column, so the
SQL (sql.py) is generated from here and cannot drift from the schema.
"""
from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class StoreError(Exception):
    """The store cannot be used as configured (bad URL, schema too new ...)."""


class CallStatus(str, Enum):
    """Where a call's record stands (not how the call went: that is `result`)."""

    LIVE = "live"                # the call is going on
    ENDED = "ended"              # the call ended and we saw it end
    INTERRUPTED = "interrupted"  # the service stopped (crash, kill -9) while it was live


class CallbackStatus(str, Enum):
    PENDING = "pending"      # waiting to be placed when due
    DIALLING = "dialling"    # being placed now
    DONE = "done"            # the customer was reached (or called back themselves)
    FAILED = "failed"        # given up after retries
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
    pbx: str = _col(_CALL, "")           # the PBX the call was on (ivr/cluster)
    updated_at: float = _col(_META, 0.0)
    cant_check: list[Any] | None = _col(_SPEECH, json=True)     # added by migration 50

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
    call_id: str | None          # the call that asked for it (None: added by hand)
    number: str
    project: str
    agent: str | None            # None: anyone in the project may take it
    reason: str                  # abandoned | queue_timeout | no_answer | failed | scheduled ...
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
    return [f.name for f in dataclasses.fields(record)
            if owner is None or f.metadata.get("owner") == owner]


def json_columns(record: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(record) if f.metadata.get("json"))


class Store(abc.ABC):
    """Async outcomes store. Every write is committed when its await returns."""

    async def __aenter__(self) -> "Store":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date (idempotent)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # -- calls ---------------------------------------------------------------
    @abc.abstractmethod
    async def upsert_call(self, call: Any, script_id: str | None = None,
                          script_version: str | None = None) -> None:
        """Record a call snapshot (ivr.calls.model.Call). Idempotent by call_id;
        never touches the wrap-up or speech columns, never turns an ended call
        back into a live one, and keeps a known script when given none."""

    @abc.abstractmethod
    async def save_wrapup(self, call_id: str, agent: str, disposition: str, notes: str = "",
                          callback_at: float | None = None,
                          checklist: dict[str, Any] | None = None, *,
                          callback_anyone: bool = False, at: float | None = None) -> None:
        """Record an agent's wrap-up; committed (durable) when this returns.

        With a callback_at and a known customer number, the scheduled callback
        is added in the same transaction: for this agent, or for anyone in the
        project with callback_anyone."""

    @abc.abstractmethod
    async def save_coaching(self, call_id: str, checklist: dict[str, Any] | None,
                            adherence_score: float | None, prompts: list[Any],
                            transcript: list[Any], cant_check: list[Any] | None = None, *,
                            at: float | None = None) -> None:
        """Record what the speech coaching saw of a call: checklist results,
        adherence score (0-100), prompts raised, the two-sided transcript, and
        the items and rules speech could not check (with why)."""

    @abc.abstractmethod
    async def live_coaching(self) -> dict[str, dict[str, Any]]:
        """Coaching saved so far of calls still 'live' (checkpoints): after a restart
        the console shows the same prompts, ticks and transcript as before."""

    @abc.abstractmethod
    async def close_interrupted(self, now: float, callbacks: bool = True) -> int:
        """At service start: calls still 'live' were cut off by a crash; mark
        them 'interrupted' and put callbacks caught 'dialling' back to
        'pending'. Returns the number of calls closed."""

    @abc.abstractmethod
    async def get_call(self, call_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def list_calls(self, since: float | None = None, until: float | None = None,
                         project: str | None = None, agent: str | None = None,
                         disposition: str | None = None, *, state: str | None = None,
                         result: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Calls started in [since, until), oldest first."""

    @abc.abstractmethod
    async def calls_needing_wrapup(self, agent: str, limit: int = 100) -> list[dict[str, Any]]:
        """Calls this agent answered that are over (ended or interrupted) and
        have no wrap-up yet, oldest first."""

    # -- callbacks -----------------------------------------------------------
    @abc.abstractmethod
    async def add_callback(self, call_id: str | None, number: str, project: str, due_at: float,
                           agent: str | None = None, reason: str = SCHEDULED, *,
                           now: float | None = None) -> int:
        """Add a callback; returns its id. If the number already has an open
        callback in the project, that one's id is returned instead (a
        'scheduled' request then moves it to the new time and agent)."""

    @abc.abstractmethod
    async def get_callback(self, callback_id: int) -> dict[str, Any] | None:
        """The callback with its attempts ('history', oldest first)."""

    @abc.abstractmethod
    async def due_callbacks(self, now: float, limit: int = 100) -> list[dict[str, Any]]:
        """Pending callbacks due at `now`, most overdue first."""

    @abc.abstractmethod
    async def list_callbacks(self, status: str | None = None, project: str | None = None,
                             agent: str | None = None, due_before: float | None = None,
                             limit: int = 1000) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def mark_callback(self, callback_id: int, status: str,
                            attempt_result: str | None = None, *, due_at: float | None = None,
                            call_id: str | None = None, now: float | None = None) -> None:
        """Move a callback to `status`. With an attempt_result, an attempt is
        counted and logged (call_id: the call placed for it); due_at
        reschedules a retry. Raises KeyError for an unknown id."""

    @abc.abstractmethod
    async def resolve_callbacks(self, number: str, project: str, result: str,
                                now: float | None = None) -> int:
        """The customer got through (e.g. called in and was answered): mark the
        number's pending automatic callbacks in the project done. Returns how many."""
