"""Agent state changes in the store: one row per state an agent was in.

A mixin of SqlStore (sql.py), in the SQL both backends speak. A row opens
when the agent enters a state and is closed (ended_at) in the same
transaction that opens the next one, so an agent has at most one open row;
the shift reports (ivr.outcomes.reports.agent_times) sum the rows' overlap
with a period. The service's restart does not close rows: an agent on lunch
stays on lunch while the service is down (Asterisk holds the pause).
"""
from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Callable, Iterable

AGENT_STATES = ("offline", "ready", "not_ready", "ringing", "on_call", "wrapup")
_COLS = ("agent", "state", "reason", "started_at", "ended_at", "call_id", "project",
         "changed_by")


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
        """Append state changes (in order), closing each agent's open row; a row
        repeating the open one's state and reason is skipped (a restart seeing
        the same state). Returns how many rows were added."""
        added = 0
        async with self.transaction() as tx:
            for r in rows:
                if r.state not in AGENT_STATES:
                    raise ValueError(f"unknown agent state {r.state!r}")
                open_rows = await tx.fetch(
                    "SELECT id, state, reason, started_at FROM agent_states "
                    "WHERE agent = ? AND ended_at IS NULL", [r.agent])
                if any(o["state"] == r.state and o["reason"] == r.reason for o in open_rows):
                    continue
                for o in open_rows:
                    await tx.execute("UPDATE agent_states SET ended_at = ? WHERE id = ?",
                                     [max(r.started_at, float(o["started_at"])), o["id"]])
                await tx.execute(
                    f"INSERT INTO agent_states ({', '.join(_COLS)}) "
                    "VALUES (?, ?, ?, ?, NULL, ?, ?, ?)",
                    [r.agent, r.state, r.reason, r.started_at, r.call_id, r.project,
                     r.changed_by])
                added += 1
        return added

    async def last_agent_states(self) -> dict[str, dict[str, Any]]:
        """Each agent's open state row (where they were when last seen)."""
        async with self.transaction(readonly=True) as tx:
            rows = await tx.fetch(f"SELECT {', '.join(_COLS)} FROM agent_states "
                                  "WHERE ended_at IS NULL ORDER BY started_at")
        return {r["agent"]: r for r in rows}

    async def agent_state_history(self, agent: str, since: float,
                                  limit: int = 1000) -> list[dict[str, Any]]:
        async with self.transaction(readonly=True) as tx:
            return await tx.fetch(
                f"SELECT {', '.join(_COLS)} FROM agent_states WHERE agent = ? AND "
                "(ended_at IS NULL OR ended_at > ?) ORDER BY started_at, id LIMIT ?",
                [agent, since, limit])
