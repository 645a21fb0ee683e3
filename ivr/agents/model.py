"""An agent's state as values: what the wallboard, the console and the
outcomes store are told."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class AgentState(str, Enum):
    OFFLINE = "offline"  # in no queue: signed out
    READY = "ready"  # waiting for a call
    NOT_READY = "not_ready"  # paused in every queue, with a reason (break, lunch ...)
    RINGING = "ringing"  # their phone rings
    ON_CALL = "on_call"  # talking, or holding a call
    WRAPUP = "wrapup"  # after a call, paused until the wrap-up is saved (or too long)


@dataclass(frozen=True)
class CurrentCall:
    """The call an agent is on, as the wallboard shows it."""

    call_id: str
    customer_number: str = ""
    project: str = ""
    queue: str = ""
    since: float = 0.0


@dataclass(frozen=True)
class AgentStatus:
    """One agent at one moment."""

    login: str
    name: str
    state: AgentState
    since: float  # when this state began (epoch s)
    reason: str = ""  # not ready: the reason
    then: str = ""  # on a call / wrap-up: the pause after it ("": ready)
    queues: tuple[str, ...] = ()  # queues they are in now
    reachable: bool = True  # False: their phone is not registered
    call: CurrentCall | None = None
    wrapup_until: float | None = None  # wrap-up: when it ends by itself
    logged_in_at: float | None = None

    @property
    def ready(self) -> bool:
        return self.state is AgentState.READY and self.reachable

    def to_json(self) -> dict[str, Any]:
        return {
            "login": self.login,
            "name": self.name,
            "state": self.state.value,
            "since": self.since,
            "reason": self.reason,
            "then": self.then,
            "queues": list(self.queues),
            "reachable": self.reachable,
            "call": None
            if self.call is None
            else {
                "call_id": self.call.call_id,
                "customer_number": self.call.customer_number,
                "project": self.call.project,
                "queue": self.call.queue,
                "since": self.call.since,
            },
            "wrapup_until": self.wrapup_until,
            "logged_in_at": self.logged_in_at,
        }


@dataclass(frozen=True)
class StateChange:
    """An agent's state changed (recorded in the outcomes store, pushed live)."""

    status: AgentStatus
    previous: AgentState | None
    previous_reason: str
    by: str  # the agent's login, a supervisor's, "pbx" or "service"
    at: float
    # The call behind a wrap-up or a call state, and its project (wrap-up limits).
    call_id: str | None = None
    project: str = ""

    @property
    def new_state(self) -> bool:
        """A new state or reason (not only a new call, queue or "then")."""
        return self.previous is not self.status.state or self.previous_reason != self.status.reason
