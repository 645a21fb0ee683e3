"""What the callback and campaign dialers share: which agent may take a call,
which numbers are being called, and how a placed call ended.

One `AgentPool` and one `NumberGuard` serve both dialers in a service, so
they never hand one agent two calls, nor call one number twice at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable

from ..calls.events import CallEnded, CallEvent
from ..calls.model import Call, CallResult, LegRole
from ..calls.numbers import normalise

log = logging.getLogger(__name__)


def busy_agents(calls: Iterable[Call]) -> set[str]:
    """Agents with a phone leg in a live call (ringing, talking, on hold)."""
    return {
        leg.endpoint
        for call in calls
        for leg in call.legs.values()
        if leg.role is LegRole.AGENT and leg.ended_at is None
    }


def busy_unless(
    console_open: Callable[[str], bool], live_calls: Callable[[], Iterable[Call]]
) -> Callable[[str], bool]:
    """An AgentPool's ``is_busy``: not free for a dialer call beyond what the agent's
    state says when their console is not open (nobody would see the script) or a
    leg of theirs is live."""

    def is_busy(login: str) -> bool:
        return not console_open(login) or login in busy_agents(live_calls())

    return is_busy


class NumberGuard:
    """Numbers being called now. `live_numbers` (e.g. the tracker's calls)
    adds calls the dialers did not place: an agent dialling by hand, the
    customer calling in."""

    def __init__(self, live_numbers: Callable[[], Iterable[str]] | None = None):
        self.live_numbers = live_numbers
        self._held: set[str] = set()

    def busy_numbers(self) -> set[str]:
        out = set(self._held)
        if self.live_numbers is not None:
            out.update(n for n in (normalise(x) for x in self.live_numbers()) if n)
        return out

    def busy(self, number: str) -> bool:
        return normalise(number) in self.busy_numbers()

    def hold(self, number: str) -> bool:
        """Take the number for a call; False if it is being called already."""
        n = normalise(number)
        if not n or n in self.busy_numbers():
            return False
        self._held.add(n)
        return True

    def release(self, number: str) -> None:
        self._held.discard(normalise(number))


class AgentPool:
    """Who may take a dialer's call now.

    Available = listed for the project by `agents_for` (the service: the
    ready agents of the project's groups, see AgentStates.ready_agents), not
    `is_busy` (the service: console closed, or a live leg), not already given
    a dialer call, and past the short `after_call_gap` since their last dialer
    call. Of those, the lowest `penalty_of(agent, project)`, then the one
    idle longest, gets the call.
    """

    def __init__(
        self,
        agents_for: Callable[[str], Iterable[str]],
        is_busy: Callable[[str], bool],
        *,
        after_call_gap: float = 5.0,
        penalty_of: Callable[[str, str], int] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.agents_for = agents_for
        self.is_busy = is_busy
        self.penalty_of = penalty_of
        self.after_call_gap = after_call_gap
        self.clock = clock
        self._reserved: set[str] = set()
        self._free_at: dict[str, float] = {}  # agent -> not before (gap, penalty)
        self._last_call: dict[str, float] = {}  # agent -> when their last dialer call ended

    def available(self, agent: str, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        if agent in self._reserved or self._free_at.get(agent, 0.0) > now:
            return False
        try:
            return not self.is_busy(agent)
        except Exception:
            log.exception("is_busy(%r) failed; taking the agent as busy", agent)
            return False

    def pick(self, project: str, only: str | None = None) -> str | None:
        """An available agent of the project (`only`: that agent, if they are
        one of the project's, or nobody)."""
        now = self.clock()
        try:
            candidates = list(dict.fromkeys(self.agents_for(project)))
        except Exception:
            log.exception("agents_for(%r) failed", project)
            return None
        if only is not None:
            candidates = [only] if only in candidates else []
        free = [a for a in candidates if self.available(a, now)]
        if not free:
            return None

        def penalty(agent: str) -> int:
            return self.penalty_of(agent, project) if self.penalty_of is not None else 0

        return min(
            free, key=lambda a: (penalty(a), self._last_call.get(a, 0.0), candidates.index(a))
        )

    def reserve(self, agent: str) -> None:
        self._reserved.add(agent)

    def release(self, agent: str, penalty: float = 0.0) -> None:
        """The agent's dialer call is over; `penalty` s (e.g. their phone did
        not answer) instead of the usual gap before the next one."""
        now = self.clock()
        self._reserved.discard(agent)
        self._last_call[agent] = now
        self._free_at[agent] = now + max(self.after_call_gap, penalty)

    @property
    def reserved(self) -> set[str]:
        return set(self._reserved)


class CallWatcher:
    """Hears CallEnded on the call event bus, for the dialers' calls.

    place_call chooses the call id and returns it only once the agent's leg
    is settled, and a failed call may end before that: ended calls are kept
    for a while so a late `wait` still finds them.
    """

    def __init__(self, keep: int = 2000):
        self._ended: OrderedDict[str, Call] = OrderedDict()
        self._waiting: dict[str, asyncio.Future[Call]] = {}
        self.keep = keep

    def __call__(self, event: CallEvent) -> None:
        if not isinstance(event, CallEnded):
            return
        call = event.call
        self._ended[call.call_id] = call
        while len(self._ended) > self.keep:
            self._ended.popitem(last=False)
        fut = self._waiting.pop(call.call_id, None)
        if fut is not None and not fut.done():
            fut.set_result(call)

    on_call_event = __call__

    async def wait(self, call_id: str, timeout: float) -> Call | None:
        """The ended call, or None if it did not end within `timeout` s."""
        if call_id in self._ended:
            return self._ended[call_id]
        fut = self._waiting.get(call_id)
        if fut is None:
            fut = self._waiting[call_id] = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            if self._waiting.get(call_id) is fut and not fut.done():
                del self._waiting[call_id]


@dataclass(frozen=True)
class Outcome:
    """How a dialer's call went, in the terms retries are decided on."""

    result: str  # answered | no_answer | busy | failed | agent_no_answer | unknown
    call: Call | None = None

    @property
    def customer_reached(self) -> bool:
        return self.result == "answered"

    @property
    def agent_failed(self) -> bool:
        """The agent's phone, not the customer, is why nobody talked."""
        return self.result == "agent_no_answer"


def outcome_of(call: Call | None, agent_answered: bool) -> Outcome:
    """`call`: the ended call (None: it never ended in time); `agent_answered`:
    what the Originate said about the agent's phone."""
    if call is not None and call.answered_at is not None:
        return Outcome("answered", call)
    if not agent_answered:
        return Outcome("agent_no_answer", call)
    if call is None:
        return Outcome("unknown")
    if call.cause == 17:
        return Outcome("busy", call)
    if call.result is CallResult.FAILED:
        return Outcome("failed", call)
    return Outcome("no_answer", call)
