"""Writes every agent state change into the store, in order, off the event loop's path.

State changes come from Asterisk's events (synchronous handlers); the store
is async. Changes queue up and one task writes them in batches, at most one
transaction every `interval` s (two statements each), so a shift of 200
agents costs a few commits a second, and one agent's changes are never
reordered. A failing write is retried with backoff; the wallboard never
waits for it. A state repeating the last one on record (a restart seeing the
same break) is not written again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping, Sequence

from ..agents.model import StateChange
from .store.agents import AgentStateRow

log = logging.getLogger(__name__)


class AgentStateRecorder:
    def __init__(
        self,
        store: Any,
        *,
        batch: int = 500,
        interval: float = 0.25,
        retry_delays: Sequence[float] = (0.2, 1.0, 2.0, 5.0, 10.0, 30.0),
    ):
        self.store = store
        self.batch = batch
        self.interval = interval
        self._last: dict[str, tuple[str, str]] = {}  # agent -> (state, reason) on record
        self.retry_delays = tuple(retry_delays)
        self.failures = 0
        self._pending: list[AgentStateRow] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def seed(self, recorded: Mapping[str, Mapping[str, Any]]) -> None:
        """Each agent's open state on record (store.last_agent_states())."""
        self._last = {a: (str(r["state"]), str(r.get("reason") or "")) for a, r in recorded.items()}

    def __call__(self, change: StateChange) -> None:
        if not change.new_state:
            return
        s = change.status
        if self._last.get(s.login) == (s.state.value, s.reason):
            return
        self._last[s.login] = (s.state.value, s.reason)
        self._pending.append(
            AgentStateRow(
                agent=s.login,
                state=s.state.value,
                reason=s.reason,
                started_at=change.at,
                call_id=change.call_id,
                project=change.project,
                changed_by=change.by,
            )
        )
        self._idle.clear()
        self._wake.set()
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                rows, self._pending = self._pending[: self.batch], self._pending[self.batch :]
                await self._write(rows)
                if not self._pending:
                    # Let a burst gather: fewer commits (each one an fsync).
                    await asyncio.sleep(self.interval)
            self._idle.set()

    async def _write(self, rows: list[AgentStateRow]) -> None:
        for attempt, delay in enumerate((*self.retry_delays, None)):
            try:
                await self.store.record_agent_states(rows)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                if delay is None:
                    log.exception(
                        "agent states: %d changes could not be recorded; dropped", len(rows)
                    )
                    return
                if attempt == 0:
                    log.warning("agent states: recording failed; retrying", exc_info=True)
                await asyncio.sleep(delay)

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until every change so far is written (tests, shutdown)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self, timeout: float = 10.0) -> None:
        try:
            await self.flush(timeout)
        except asyncio.TimeoutError:
            log.error("agent states: %d changes not recorded at shutdown", len(self._pending))
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
