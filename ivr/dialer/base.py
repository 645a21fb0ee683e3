"""The loop both dialers run: every `interval` s a tick decides which calls to
place; each call runs in its own task (place it, wait for its end, record
the result); stop() lets calls in progress finish for a while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Coroutine, Iterable

from ..calls.events import CallEvent
from ..outbound import OutboundCall, PlacedCall, place_call
from .common import AgentPool, CallWatcher, NumberGuard, Outcome, outcome_of

log = logging.getLogger(__name__)

Place = Callable[[OutboundCall], Awaitable[PlacedCall]]


class DialerBase:
    name = "dialer"

    def __init__(
        self,
        store: Any,
        ami: Any = None,
        *,
        place: Place | None = None,
        agents: AgentPool | None = None,
        agents_for: Callable[[str], Iterable[str]] | None = None,
        is_busy: Callable[[str], bool] | None = None,
        guard: NumberGuard | None = None,
        watcher: CallWatcher | None = None,
        interval: float = 2.0,
        ring_seconds: int = 30,
        max_call_seconds: float = 4 * 3600,
        failed_call_wait: float = 5.0,
        agent_retry: float = 30.0,
        after_call_gap: float = 5.0,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        pbx: str = "",
    ):
        """store: the outcomes store (SqlStore); ami + place_call, or `place`
        (a coroutine function OutboundCall -> PlacedCall) places the calls.
        Agents: an AgentPool shared with the other dialer, or agents_for +
        is_busy to build one. Subscribe `on_call_event` to the call event bus.
        owner / pbx: this service instance and the PBX the calls go through;
        every claim names them (ivr/cluster settles a dead owner's claims
        from the PBX). Without an owner the dialer is standalone and puts
        its own leftover claims back at start, as one service always did."""
        if place is None:
            if ami is None:
                raise ValueError("give the AMI client or a place() function")
            place = lambda call: place_call(ami, call)  # noqa: E731
        if agents is None:
            if agents_for is None or is_busy is None:
                raise ValueError("give an AgentPool or agents_for and is_busy")
            agents = AgentPool(agents_for, is_busy, after_call_gap=after_call_gap, clock=clock)
        self.store = store
        self.place = place
        self.agents = agents
        self.guard = guard or NumberGuard()
        self.watcher = watcher or CallWatcher()
        self.interval = interval
        self.ring_seconds = ring_seconds
        self.max_call_seconds = max_call_seconds
        self.failed_call_wait = failed_call_wait
        self.agent_retry = agent_retry
        self.clock = clock
        self.standalone = owner is None
        self.owner = owner or "standalone"
        self.pbx = pbx
        self.placed_calls: list[tuple[str, str, str]] = []  # (call_id, number, agent), newest last
        self._tasks: set[asyncio.Task] = set()
        self._loop_task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    # -- wiring ------------------------------------------------------------------
    def on_call_event(self, event: CallEvent) -> None:
        """Subscribe to the call event bus: the dialer learns how its calls end."""
        self.watcher(event)

    # -- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(
                self._run_loop(), name=f"{self.name}-loop"
            )

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop placing calls; calls in progress get `timeout` s to end (their
        results recorded), then are left to the PBX (their records say
        'dialling' until the next start puts them back to pending)."""
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._tasks:
            done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def wake(self) -> None:
        """Tick now (e.g. a campaign was just imported)."""
        self._wake.set()

    async def drain(self) -> None:
        """Wait until no call of this dialer is in progress (tests)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    @property
    def in_progress(self) -> int:
        return len(self._tasks)

    async def _run_loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: tick failed; trying again in %.0f s", self.name, self.interval)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass

    async def tick(self) -> int:
        raise NotImplementedError

    # -- one call ----------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, outbound: OutboundCall) -> tuple[PlacedCall | None, Outcome]:
        """Place one call and wait for its end."""
        try:
            placed = await self.place(outbound)
        except Exception as exc:
            log.warning(
                "%s: placing a call to %s for agent %s failed: %s",
                self.name,
                outbound.number,
                outbound.agent,
                exc,
            )
            return None, Outcome("agent_no_answer")
        self.placed_calls.append((placed.call_id, outbound.number, outbound.agent))
        del self.placed_calls[:-1000]
        if not placed.answered_by_agent:
            log.info(
                "%s: agent %s did not take the call to %s (%s)",
                self.name,
                outbound.agent,
                outbound.number,
                placed.reason,
            )
        wait = self.max_call_seconds if placed.answered_by_agent else self.failed_call_wait
        call = await self.watcher.wait(placed.call_id, wait)
        return placed, outcome_of(call, placed.answered_by_agent)

    async def _persist(
        self,
        what: str,
        write: Callable[[], Awaitable[Any]],
        delays: tuple[float, ...] = (0.2, 1.0, 2.0, 5.0, 10.0),
    ) -> bool:
        """A result write, retried: the store may be briefly unreachable."""
        for attempt, delay in enumerate((*delays, None)):
            try:
                await write()
                return True
            except Exception:
                if delay is None:
                    log.exception("%s: could not record %s; given up", self.name, what)
                    return False
                if attempt == 0:
                    log.warning("%s: recording %s failed; retrying", self.name, what, exc_info=True)
                await asyncio.sleep(delay)
        return False
