"""Typed call events the tracker publishes for the later stages (script pop,
audio tap, outcomes). Each carries a snapshot of the call at that moment."""

from __future__ import annotations

from dataclasses import dataclass

from .model import Call, Leg, Monitor


@dataclass(frozen=True)
class CallEvent:
    call: Call
    at: float

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class CallStarted(CallEvent):
    pass


@dataclass(frozen=True)
class CallUpdated(CallEvent):
    """Project, DID, IVR choice or direction became known or changed."""


@dataclass(frozen=True)
class CallQueued(CallEvent):
    queue: str


@dataclass(frozen=True)
class AgentRinging(CallEvent):
    agent: str
    leg: Leg


@dataclass(frozen=True)
class AgentAnswered(CallEvent):
    agent: str
    leg: Leg


@dataclass(frozen=True)
class AgentLeft(CallEvent):
    """An agent hung up while the call goes on (e.g. after transferring it)."""

    agent: str
    leg: Leg


@dataclass(frozen=True)
class AgentMissed(CallEvent):
    """An agent's phone rang and was not answered (or was busy)."""

    agent: str
    status: str


@dataclass(frozen=True)
class AgentRejected(CallEvent):
    """An agent's phone refused the call (486 Busy Here, 603 Decline): the agent
    pressed busy or reject, or the phone is set to do-not-disturb."""

    agent: str
    leg: Leg
    cause: int


@dataclass(frozen=True)
class AgentMoved(CallEvent):
    """An agent's line left this call for another one: a phone's attended
    transfer joined the consultation call (this call) to the customer's call
    (``to_call``). The agent's part of this call is over, with nothing to wrap up."""

    agent: str
    leg: Leg
    to_call: str


@dataclass(frozen=True)
class CustomerAnswered(CallEvent):
    """Outbound: the customer picked up."""

    leg: Leg


@dataclass(frozen=True)
class CallBridged(CallEvent):
    pass


@dataclass(frozen=True)
class CallHeld(CallEvent):
    pass


@dataclass(frozen=True)
class CallResumed(CallEvent):
    pass


@dataclass(frozen=True)
class CallTransferred(CallEvent):
    how: str  # blind | attended | queue
    target: str


@dataclass(frozen=True)
class CallEnded(CallEvent):
    pass


@dataclass(frozen=True)
class MonitorStarted(CallEvent):
    """A supervisor's phone began listening in on the call (or whispering, or barging in)."""

    monitor: Monitor


@dataclass(frozen=True)
class MonitorEnded(CallEvent):
    monitor: Monitor


def describe(event: CallEvent) -> str:
    """One log line per call event, in call-centre terms."""
    c = event.call
    parts = [f"call {c.call_id}", event.kind, c.direction.value, f"state={c.state.value}"]
    for label, value in (
        ("did", c.did),
        ("dialled", c.dialled),
        ("customer", c.customer_num),
        ("ivr", c.ivr_choice),
        ("queue", c.queue),
        ("project", c.project),
        ("campaign", c.campaign),
        ("agent", getattr(event, "agent", None) or c.agent),
    ):
        if value:
            parts.append(f"{label}={value}")
    if isinstance(event, CallEnded):
        parts.append(f"result={c.result.value if c.result else '?'}")
        parts.append(f"cause={c.cause}({c.cause_txt})")
        if c.talk_seconds is not None:
            parts.append(f"talk={c.talk_seconds:.1f}s")
    return " ".join(parts)
