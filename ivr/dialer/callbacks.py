"""Placing the callbacks that come due ("no missed calls").

Every tick the dialer takes the due callbacks from the store (most overdue
first) and, for each one it can serve now, picks an agent: the callback's own
agent if it has one (a "call me later" promise; after `owner_grace` s overdue
anyone in the project may take it), else any available agent of the project.
It marks the callback dialling, places the call (agent first, then the
customer) with PROJECT = the callback's project, so the right script pops,
and CAMPAIGN = "callback", then records the attempt:

- customer answered: done;
- customer did not answer / busy / failed: attempts + 1, and pending again
  after `retry_spacing[attempt - 1]` s, or failed after `max_attempts`;
- the agent's phone did not answer (or could not be reached): pending again
  after `agent_retry` s, not counted as an attempt (the customer did nothing).

A number on the do-not-call list is cancelled, never dialled; a number being
called right now (by a campaign, an agent, or calling in) waits.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from ..calls.numbers import normalise
from ..outbound import OutboundCall, new_call_id
from .base import DialerBase
from .common import Outcome
from .pacing import CallingHours, Pacer

log = logging.getLogger(__name__)

CAMPAIGN = "callback"


class CallbackDialer(DialerBase):
    name = "callback-dialer"

    def __init__(
        self,
        store: Any,
        ami: Any = None,
        *,
        max_in_progress: int = 4,
        max_per_minute: int | None = None,
        max_attempts: int = 3,
        retry_spacing: Sequence[float] = (900.0, 3600.0, 4 * 3600.0),
        owner_grace: float = 900.0,
        hours: CallingHours | None = None,
        campaign: str = CAMPAIGN,
        default_project: str = "callback",
        batch: int = 50,
        **kw: Any,
    ):
        """max_in_progress / max_per_minute: pacing of callback calls;
        hours: when callbacks may be placed (None: whenever due)."""
        super().__init__(store, ami, **kw)
        if max_attempts < 1 or not retry_spacing:
            raise ValueError("max_attempts >= 1 and a retry spacing are needed")
        self.pacer = Pacer(max_in_progress, max_per_minute)
        self.max_attempts = max_attempts
        self.retry_spacing = tuple(retry_spacing)
        self.owner_grace = owner_grace
        self.hours = hours
        self.campaign = campaign
        self.default_project = default_project
        self.batch = batch

    def _agent_for(self, cb: dict[str, Any], now: float) -> str | None:
        project = cb["project"] or self.default_project
        if cb["agent"]:
            agent = self.agents.pick(project, only=cb["agent"])
            if agent is not None or now - cb["due_at"] < self.owner_grace:
                return agent
        return self.agents.pick(project)

    async def tick(self) -> int:
        """Place what is due and can be served now; returns how many calls."""
        now = self.clock()
        if self.hours is not None and not self.hours.is_open(now):
            return 0
        if not self.pacer.can_place(now):
            return 0
        started = 0
        for cb in await self.store.due_callbacks(now, limit=self.batch):
            if not self.pacer.can_place(now):
                break
            number = normalise(cb["number"])
            if not number:
                await self.store.mark_callback(cb["id"], "failed", "not_diallable", now=now)
                continue
            if self.guard.busy(number):
                continue
            agent = self._agent_for(cb, now)
            if agent is None:
                continue
            if await self.store.is_dnc(number):
                await self.store.mark_callback(cb["id"], "cancelled", "do_not_call", now=now)
                continue
            if not self.guard.hold(number):
                continue
            self.agents.reserve(agent)
            self.pacer.placed(now)
            call_id = new_call_id()
            try:
                # Atomic across instances: False if another dialer took it first
                # or is calling this number now.
                claimed = await self.store.claim_callback(
                    cb["id"],
                    number,
                    now,
                    owner=self.owner,
                    pbx=self.pbx,
                    call_id=call_id,
                    agent=agent,
                )
            except BaseException:
                self._done(number, agent)
                raise
            if not claimed:
                self._done(number, agent)
                continue
            self._spawn(self._place(cb, number, agent, call_id), f"cb{cb['id']}")
            started += 1
        return started

    def _done(self, number: str, agent: str, penalty: float = 0.0) -> None:
        self.guard.release(number)
        self.agents.release(agent, penalty)
        self.pacer.finished()

    async def _place(self, cb: dict[str, Any], number: str, agent: str, call_id: str) -> None:
        penalty = 0.0
        try:
            project = cb["project"] or self.default_project
            log.info(
                "callback %s (%s, %s): calling %s for agent %s, attempt %d",
                cb["id"],
                cb["reason"],
                project,
                number,
                agent,
                cb["attempts"] + 1,
            )
            placed, outcome = await self._call(
                OutboundCall(
                    agent=agent,
                    number=number,
                    project=project,
                    campaign=self.campaign,
                    ring_seconds=self.ring_seconds,
                    call_id=call_id,
                )
            )
            penalty = await self.record(cb, outcome, call_id if placed else None)
        finally:
            self._done(number, agent, penalty)

    async def record(self, cb: dict[str, Any], outcome: Outcome, call_id: str | None) -> float:
        """Write how a callback's call went; returns the agent's penalty (s)."""
        now = self.clock()
        if outcome.customer_reached:
            status, due, result = "done", None, "answered"
        elif outcome.agent_failed:
            await self._persist(
                f"callback {cb['id']} (agent missed)",
                lambda: self.store.mark_callback(
                    cb["id"], "pending", due_at=now + self.agent_retry, now=now
                ),
            )
            return self.agent_retry
        else:
            attempts = cb["attempts"] + 1
            result = outcome.result
            if attempts >= self.max_attempts:
                status, due = "failed", None
            else:
                spacing = self.retry_spacing[min(attempts, len(self.retry_spacing)) - 1]
                status, due = "pending", now + spacing
        log.info("callback %s: %s -> %s", cb["id"], result, status)
        await self._persist(
            f"callback {cb['id']} attempt",
            lambda: self.store.mark_callback(
                cb["id"], status, result, due_at=due, call_id=call_id, now=now
            ),
        )
        return 0.0

    async def settle(
        self, callback_id: int, outcome: Outcome, agent: str | None, call_id: str | None
    ) -> None:
        """A claim left by a controller that died, settled from the PBX."""
        cb = await self.store.get_callback(callback_id)
        if cb is not None:
            await self.record(cb, outcome, call_id)
