"""The Store written once in SQL that SQLite and PostgreSQL both speak.

Drivers (sqlite.py, postgres.py) only connect, run a transaction and adapt
placeholders; every query lives here, written with `?` placeholders. JSON
columns travel as text both ways (SQLite TEXT, PostgreSQL JSONB) so encoding
is the same code for both.
"""

from __future__ import annotations

import abc
import json
import logging
import time
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Protocol, Sequence

from .agents import AgentStateSql
from .base import (
    OPEN_CALLBACK_STATUSES,
    SCHEDULED,
    CallbackRecord,
    CallbackStatus,
    CallRecord,
    CallStatus,
    columns,
    json_columns,
)
from .campaigns import CampaignSql
from .dialling import DiallingSql
from .records import record_of
from .schema import migrate
from .sessions import SessionSql

log = logging.getLogger(__name__)


class Tx(Protocol):
    """One open transaction of a driver."""

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run a statement; returns the number of rows it changed."""

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of arguments (one round trip)."""


_JSON = json_columns(CallRecord)
_CALL_COLS = columns(CallRecord, "call")
_SCRIPT_COLS = columns(CallRecord, "script")
_UPSERT_COLS = ["call_id", *_CALL_COLS, *_SCRIPT_COLS, "updated_at"]

# An ended call's record is final: a late snapshot of it while it was live
# (a retried or reordered write) must not bring it back to life.
_STALE = (
    f"(calls.state = '{CallStatus.ENDED.value}' AND excluded.state <> '{CallStatus.ENDED.value}')"
)


# Moments a call passed once: the earliest seen wins (a controller that takes a
# PBX over learns of a call in progress only from its channel list).
_FIRST_SEEN = ("queued_at", "agent_ring_at", "agent_answered_at", "answered_at")


def _upsert_set(col: str) -> str:
    if col in _SCRIPT_COLS:  # known script kept when the caller has none
        return f"{col} = COALESCE(excluded.{col}, calls.{col})"
    if col == "started_at":  # earliest wins: a call adopted after a restart
        return (
            f"started_at = CASE WHEN {_STALE} OR calls.started_at < excluded.started_at "
            f"THEN calls.started_at ELSE excluded.started_at END"
        )
    if col == "updated_at":
        return "updated_at = excluded.updated_at"
    if col in _FIRST_SEEN:  # a call adopted by another controller keeps its times
        return (
            f"{col} = CASE WHEN {_STALE} OR (calls.{col} IS NOT NULL AND "
            f"(excluded.{col} IS NULL OR calls.{col} < excluded.{col})) "
            f"THEN calls.{col} ELSE excluded.{col} END"
        )
    return f"{col} = CASE WHEN {_STALE} THEN calls.{col} ELSE excluded.{col} END"


# Wrap-up and speech columns are absent here: no call event can clobber them.
UPSERT_CALL = (
    f"INSERT INTO calls ({', '.join(_UPSERT_COLS)}) "
    f"VALUES ({', '.join('?' for _ in _UPSERT_COLS)}) "
    f"ON CONFLICT (call_id) DO UPDATE SET " + ", ".join(_upsert_set(c) for c in _UPSERT_COLS[1:])
)

# A wrap-up for a call the store never saw (its writes failed or lag behind)
# still lands: as an 'ended' placeholder the call's own upserts fill in later.
SAVE_WRAPUP = (
    "INSERT INTO calls (call_id, state, started_at, updated_at, disposition, notes, "
    "callback_at, wrapped_up_at, wrapped_up_by, checklist) "
    f"VALUES (?, '{CallStatus.ENDED.value}', ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (call_id) DO UPDATE SET disposition = excluded.disposition, "
    "notes = excluded.notes, callback_at = excluded.callback_at, "
    "wrapped_up_at = excluded.wrapped_up_at, wrapped_up_by = excluded.wrapped_up_by, "
    "checklist = COALESCE(excluded.checklist, calls.checklist), "
    "updated_at = excluded.updated_at"
)

# The speech stage's results; like a wrap-up, it may arrive before the call's row.
SAVE_COACHING = (
    "INSERT INTO calls (call_id, state, started_at, updated_at, checklist, adherence_score, "
    "prompts, transcript, cant_check) "
    f"VALUES (?, '{CallStatus.ENDED.value}', ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (call_id) DO UPDATE SET checklist = excluded.checklist, "
    "adherence_score = excluded.adherence_score, prompts = excluded.prompts, "
    "transcript = excluded.transcript, cant_check = excluded.cant_check, "
    "updated_at = excluded.updated_at"
)

_OPEN = "('" + "', '".join(OPEN_CALLBACK_STATUSES) + "')"

# The conflict target names the partial unique index callbacks_open_number.
ADD_CALLBACK = (
    "INSERT INTO callbacks (call_id, number, project, agent, reason, due_at, status, "
    "attempts, created_at, updated_at) "
    f"VALUES (?, ?, ?, ?, ?, ?, '{CallbackStatus.PENDING.value}', 0, ?, ?) "
    f"ON CONFLICT (number, project) WHERE status IN {_OPEN} "
    "DO UPDATE SET due_at = excluded.due_at, agent = excluded.agent, "
    "reason = excluded.reason, call_id = excluded.call_id, updated_at = excluded.updated_at "
    f"WHERE excluded.reason = '{SCHEDULED}' "
    f"AND callbacks.status = '{CallbackStatus.PENDING.value}' "
    "RETURNING id"
)

_CALLBACK_COLS = ", ".join(columns(CallbackRecord))


def _encode(record: CallRecord, col: str) -> Any:
    value = getattr(record, col)
    return json.dumps(value) if col in _JSON and value is not None else value


def _call_dict(row: dict[str, Any]) -> dict[str, Any]:
    values = {
        k: (json.loads(v) if k in _JSON and isinstance(v, str) else v) for k, v in row.items()
    }
    return CallRecord(**values).to_dict()


def _callback_dict(row: dict[str, Any]) -> dict[str, Any]:
    return CallbackRecord(**row).to_dict()


class SqlStore(DiallingSql, CampaignSql, SessionSql, AgentStateSql, abc.ABC):
    """Async outcomes store. Every write is committed when its await returns;
    a driver (sqlite.py, postgres.py) supplies the connection and transactions."""

    # Type names of schema.py's placeholders, per driver.
    TYPES: ClassVar[dict[str, str]]

    async def __aenter__(self) -> "SqlStore":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def disconnect(self) -> None: ...

    @abc.abstractmethod
    def transaction(self, readonly: bool = False) -> AbstractAsyncContextManager[Tx]:
        """Commit on normal exit (durably: committed means on disk), roll back on error."""

    async def lock_for_migration(self, tx: Tx) -> None:
        """Keep two services opening at once from migrating together (driver's job)."""

    async def open(self) -> None:
        """Connect and bring the schema up to date (idempotent)."""
        await self.connect()
        try:
            await migrate(self)
        except BaseException:
            await self.disconnect()
            raise

    async def close(self) -> None:
        await self.disconnect()

    # -- calls ---------------------------------------------------------------
    async def upsert_call(
        self, call: Any, script_id: str | None = None, script_version: str | None = None
    ) -> None:
        """Record a call snapshot (ivr.calls.model.Call). Idempotent by call_id;
        never touches the wrap-up or speech columns, never turns an ended call
        back into a live one, and keeps a known script when given none."""
        record = record_of(call, time.time(), script_id, script_version)
        async with self.transaction() as tx:
            await tx.execute(UPSERT_CALL, [_encode(record, c) for c in _UPSERT_COLS])

    async def save_wrapup(
        self,
        call_id: str,
        agent: str,
        disposition: str,
        notes: str = "",
        callback_at: float | None = None,
        checklist: dict[str, Any] | None = None,
        *,
        callback_anyone: bool = False,
        at: float | None = None,
    ) -> None:
        """Record an agent's wrap-up; committed (durable) when this returns.

        With a callback_at and a known customer number, the scheduled callback
        is added in the same transaction: for this agent, or for anyone in the
        project with callback_anyone."""
        at = time.time() if at is None else at
        async with self.transaction() as tx:
            if checklist is not None:
                rows = await tx.fetch("SELECT checklist FROM calls WHERE call_id = ?", [call_id])
                saved = rows[0]["checklist"] if rows else None
                saved = json.loads(saved) if isinstance(saved, str) else saved
                checklist = merge_checklist(saved, checklist)
            await tx.execute(
                SAVE_WRAPUP,
                [
                    call_id,
                    at,
                    at,
                    disposition,
                    notes,
                    callback_at,
                    at,
                    agent,
                    None if checklist is None else json.dumps(checklist),
                ],
            )
            if callback_at is None:
                return
            rows = await tx.fetch(
                "SELECT customer_num, project FROM calls WHERE call_id = ?", [call_id]
            )
            number = rows[0]["customer_num"] if rows else ""
            if not number:
                log.warning(
                    "call %s: callback asked at wrap-up but the customer's number "
                    "is unknown; recorded in the wrap-up only",
                    call_id,
                )
                return
            await self._add_callback(
                tx,
                call_id,
                number,
                rows[0]["project"],
                callback_at,
                None if callback_anyone else agent,
                SCHEDULED,
                at,
            )

    async def save_coaching(
        self,
        call_id: str,
        checklist: dict[str, Any] | None,
        adherence_score: float | None,
        prompts: list[Any],
        transcript: list[Any],
        cant_check: list[Any] | None = None,
        *,
        at: float | None = None,
    ) -> None:
        """Record what the speech coaching saw of a call: checklist results,
        adherence score (0-100), prompts raised, the two-sided transcript, and
        the items and rules speech could not check (with why)."""
        at = time.time() if at is None else at
        async with self.transaction() as tx:
            await tx.execute(
                SAVE_COACHING,
                [
                    call_id,
                    at,
                    at,
                    None if checklist is None else json.dumps(checklist),
                    adherence_score,
                    json.dumps(prompts),
                    json.dumps(transcript),
                    json.dumps(cant_check or []),
                ],
            )

    async def live_coaching(self) -> dict[str, dict[str, Any]]:
        """Coaching saved so far of calls still 'live' (checkpoints): after a restart
        the console shows the same prompts, ticks and transcript as before."""
        async with self.transaction(readonly=True) as tx:
            rows = await tx.fetch(
                "SELECT call_id, checklist, prompts, transcript, cant_check FROM calls "
                "WHERE state = ? AND transcript IS NOT NULL",
                [CallStatus.LIVE.value],
            )
        cols = ("checklist", "prompts", "transcript", "cant_check")
        return {
            r["call_id"]: {k: json.loads(r[k]) if isinstance(r[k], str) else r[k] for k in cols}
            for r in rows
        }

    async def close_interrupted(self, now: float, callbacks: bool = True) -> int:
        """At service start: calls still 'live' were cut off by a crash; mark
        them 'interrupted' and (unless callbacks=False: the service settles
        them from the PBX, ivr/cluster) put callbacks caught 'dialling' back
        to 'pending'. Returns the number of calls closed."""
        async with self.transaction() as tx:
            closed = await tx.execute(
                "UPDATE calls SET state = ?, updated_at = ? WHERE state = ?",
                [CallStatus.INTERRUPTED.value, now, CallStatus.LIVE.value],
            )
            if not callbacks:
                return closed
            # A callback being placed when we died was never completed.
            await tx.execute(
                "UPDATE callbacks SET status = ?, last_result = ?, updated_at = ? WHERE status = ?",
                [CallbackStatus.PENDING.value, "interrupted", now, CallbackStatus.DIALLING.value],
            )
        return closed

    async def get_call(self, call_id: str) -> dict[str, Any] | None:
        async with self.transaction(readonly=True) as tx:
            rows = await tx.fetch("SELECT * FROM calls WHERE call_id = ?", [call_id])
        return _call_dict(rows[0]) if rows else None

    async def list_calls(
        self,
        since: float | None = None,
        until: float | None = None,
        project: str | None = None,
        agent: str | None = None,
        disposition: str | None = None,
        *,
        state: str | None = None,
        result: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Calls started in [since, until), oldest first."""
        where, args = [], []
        for clause, value in (
            ("started_at >= ?", since),
            ("started_at < ?", until),
            ("project = ?", project),
            ("agent = ?", agent),
            ("disposition = ?", disposition),
            ("state = ?", state),
            ("result = ?", result),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = "SELECT * FROM calls"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at, call_id LIMIT ?"
        async with self.transaction(readonly=True) as tx:
            rows = await tx.fetch(sql, [*args, limit])
        return [_call_dict(r) for r in rows]

    async def calls_needing_wrapup(self, agent: str, limit: int = 100) -> list[dict[str, Any]]:
        """Calls this agent answered that are over (ended or interrupted) and
        have no wrap-up yet, oldest first."""
        async with self.transaction(readonly=True) as tx:
            rows = await tx.fetch(
                "SELECT * FROM calls WHERE agent = ? AND wrapped_up_at IS NULL "
                "AND answered_at IS NOT NULL AND state IN (?, ?) "
                "ORDER BY started_at, call_id LIMIT ?",
                [agent, CallStatus.ENDED.value, CallStatus.INTERRUPTED.value, limit],
            )
        return [_call_dict(r) for r in rows]

    # -- callbacks -----------------------------------------------------------
    async def _add_callback(
        self,
        tx: Tx,
        call_id: str | None,
        number: str,
        project: str,
        due_at: float,
        agent: str | None,
        reason: str,
        now: float,
    ) -> int:
        rows = await tx.fetch(
            ADD_CALLBACK, [call_id, number, project, agent, reason, due_at, now, now]
        )
        if not rows:  # an open one exists and was kept as it was
            rows = await tx.fetch(
                f"SELECT id FROM callbacks WHERE number = ? AND project = ? AND status IN {_OPEN}",
                [number, project],
            )
        return int(rows[0]["id"])

    async def add_callback(
        self,
        call_id: str | None,
        number: str,
        project: str,
        due_at: float,
        agent: str | None = None,
        reason: str = SCHEDULED,
        *,
        now: float | None = None,
    ) -> int:
        """Add a callback; returns its id. If the number already has an open
        callback in the project, that one's id is returned instead (a
        'scheduled' request then moves it to the new time and agent)."""
        if not number:
            raise ValueError("a callback needs a number")
        now = time.time() if now is None else now
        async with self.transaction() as tx:
            return await self._add_callback(
                tx, call_id, number, project, due_at, agent, reason, now
            )

    async def get_callback(self, callback_id: int) -> dict[str, Any] | None:
        """The callback with its attempts ('history', oldest first)."""
        async with self.transaction(readonly=True) as tx:
            rows = await tx.fetch(
                f"SELECT {_CALLBACK_COLS} FROM callbacks WHERE id = ?", [callback_id]
            )
            if not rows:
                return None
            history = await tx.fetch(
                "SELECT at, status, result, call_id FROM callback_attempts "
                "WHERE callback_id = ? ORDER BY at, id",
                [callback_id],
            )
        return {**_callback_dict(rows[0]), "history": history}

    async def due_callbacks(self, now: float, limit: int = 100) -> list[dict[str, Any]]:
        """Pending callbacks due at `now`, most overdue first."""
        async with self.transaction(readonly=True) as tx:
            rows = await tx.fetch(
                f"SELECT {_CALLBACK_COLS} FROM callbacks WHERE status = ? AND due_at <= ? "
                "ORDER BY due_at, id LIMIT ?",
                [CallbackStatus.PENDING.value, now, limit],
            )
        return [_callback_dict(r) for r in rows]

    async def list_callbacks(
        self,
        status: str | None = None,
        project: str | None = None,
        agent: str | None = None,
        due_before: float | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        where, args = [], []
        for clause, value in (
            ("status = ?", status),
            ("project = ?", project),
            ("agent = ?", agent),
            ("due_at < ?", due_before),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = f"SELECT {_CALLBACK_COLS} FROM callbacks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY due_at, id LIMIT ?"
        async with self.transaction(readonly=True) as tx:
            rows = await tx.fetch(sql, [*args, limit])
        return [_callback_dict(r) for r in rows]

    async def mark_callback(
        self,
        callback_id: int,
        status: str,
        attempt_result: str | None = None,
        *,
        due_at: float | None = None,
        call_id: str | None = None,
        now: float | None = None,
    ) -> None:
        """Move a callback to `status`. With an attempt_result, an attempt is
        counted and logged (call_id: the call placed for it); due_at
        reschedules a retry. Raises KeyError for an unknown id."""
        status = CallbackStatus(status).value  # ValueError on a status we do not know
        now = time.time() if now is None else now
        async with self.transaction() as tx:
            if status != CallbackStatus.DIALLING.value:
                await self._release_claim(tx, "callbacks", callback_id)
            if attempt_result is None:
                changed = await tx.execute(
                    "UPDATE callbacks SET status = ?, due_at = COALESCE(?, due_at), "
                    "updated_at = ? WHERE id = ?",
                    [status, due_at, now, callback_id],
                )
            else:
                changed = await tx.execute(
                    "UPDATE callbacks SET status = ?, due_at = COALESCE(?, due_at), "
                    "attempts = attempts + 1, last_attempt_at = ?, last_result = ?, "
                    "updated_at = ? WHERE id = ?",
                    [status, due_at, now, attempt_result, now, callback_id],
                )
                if changed:
                    await tx.execute(
                        "INSERT INTO callback_attempts (callback_id, at, status, result, call_id) "
                        "VALUES (?, ?, ?, ?, ?)",
                        [callback_id, now, status, attempt_result, call_id],
                    )
            if not changed:
                raise KeyError(f"no callback {callback_id}")

    async def resolve_callbacks(
        self, number: str, project: str, result: str, now: float | None = None
    ) -> int:
        """The customer got through after all: their pending automatic callbacks
        are done (scheduled ones stay: the customer asked for that time)."""
        now = time.time() if now is None else now
        async with self.transaction() as tx:
            return await tx.execute(
                "UPDATE callbacks SET status = ?, last_result = ?, updated_at = ? "
                "WHERE number = ? AND project = ? AND status = ? AND reason <> ?",
                [
                    CallbackStatus.DONE.value,
                    result,
                    now,
                    number,
                    project,
                    CallbackStatus.PENDING.value,
                    SCHEDULED,
                ],
            )


# What the rest of the service types its store as.
Store = SqlStore


def merge_checklist(saved: Any, ticked: dict[str, Any]) -> dict[str, Any]:
    """The wrap-up's ticks (item -> done) over what the call's coaching recorded
    (item -> {done, by, at, in_time, missed, ...}): the coaching's detail stays, an
    item the agent changed at the wrap-up is theirs."""
    if not isinstance(saved, dict):
        return dict(ticked)
    out = dict(saved)
    for item, done in ticked.items():
        before = out.get(item)
        if isinstance(before, dict):
            if bool(before.get("done")) != bool(done):
                out[item] = {**before, "done": bool(done), "by": "agent"}
        else:
            out[item] = done
    return out
