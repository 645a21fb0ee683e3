"""Agent state changes in the store: one row per state an agent was in.

A mixin of SqlStore (sql.py), in the SQL both backends speak. A row opens
when the agent enters a state and is closed (ended_at) in the same
transaction that opens the next one, so an agent has at most one open row;
the shift reports (ivr.outcomes.reports.agent_times) sum the rows' overlap
with a period. The service's restart does not close rows: an agent on lunch
stays on lunch while the service is down (Asterisk holds the pause); the
recorder (ivr.outcomes.agent_states) skips a state repeating the open row.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Callable, Iterable

AGENT_STATES = ("offline", "ready", "not_ready", "ringing", "on_call", "wrapup")
_COLS = ("agent", "state", "reason", "started_at", "ended_at", "call_id", "project", "changed_by")


@dataclass(frozen=True)
class AgentStateRow:
    """One state change as the store takes it."""

    agent: str
    state: str
    started_at: float
    reason: str = ""
    call_id: str | None = None
    project: str = ""
    changed_by: str = ""


class AgentStateSql:
    """Agent state queries (mixed into SqlStore)."""

    # SqlStore's: one driver transaction (commit on exit, roll back on error).
    transaction: Callable[..., AbstractAsyncContextManager[Any]]

    async def record_agent_states(self, rows: Iterable[AgentStateRow]) -> int:
        """Append state changes (in order): each agent's open row is closed where
        their first new one begins, and a new row that another in the same
        batch follows is written closed. Two statements per batch, whatever
        its size. Returns how many rows were added."""
        rows = list(rows)
        for r in rows:
            if r.state not in AGENT_STATES:
                raise ValueError(f"unknown agent state {r.state!r}")
        if not rows:
            return 0
        first: dict[str, float] = {}
        following: dict[int, float] = {}
        last_of: dict[str, int] = {}
        for i, r in enumerate(rows):
            first.setdefault(r.agent, r.started_at)
            if r.agent in last_of:
                following[last_of[r.agent]] = r.started_at
            last_of[r.agent] = i
        async with self.transaction() as tx:
            await tx.execute_many(
                "UPDATE agent_states SET ended_at = CASE WHEN started_at > ? THEN started_at "
                "ELSE ? END WHERE agent = ? AND ended_at IS NULL",
                [(at, at, agent) for agent, at in first.items()],
            )
            await tx.execute_many(
                f"INSERT INTO agent_states ({', '.join(_COLS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.agent,
                        r.state,
                        r.reason,
                        r.started_at,
                        max(following[i], r.started_at) if i in following else None,
                        r.call_id,
                        r.project,
                        r.changed_by,
                    )
                    for i, r in enumerate(rows)
                ],
            )
        return len(rows)

    async def last_agent_states(self) -> dict[str, dict[str, Any]]:
        """Each agent's open state row (where they were when last seen)."""
        async with self.transaction(readonly=True) as tx:
            rows = await tx.fetch(
                f"SELECT {', '.join(_COLS)} FROM agent_states "
                "WHERE ended_at IS NULL ORDER BY started_at"
            )
        return {r["agent"]: r for r in rows}

    async def agent_state_history(
        self, agent: str, since: float, limit: int = 1000
    ) -> list[dict[str, Any]]:
        async with self.transaction(readonly=True) as tx:
            return await tx.fetch(
                f"SELECT {', '.join(_COLS)} FROM agent_states WHERE agent = ? AND "
                "(ended_at IS NULL OR ended_at > ?) ORDER BY started_at, id LIMIT ?",
                [agent, since, limit],
            )
