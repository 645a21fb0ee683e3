"""A call as a call centre sees it: legs, direction, queue, agent, timings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum


class Direction(str, Enum):
    INBOUND = "inbound"  # a customer called us
    OUTBOUND = "outbound"  # an agent (or the dialer) called a customer
    INTERNAL = "internal"  # agent to agent
    UNKNOWN = "unknown"  # not decided yet (e.g. first moments of a call)


class CallState(str, Enum):
    DIALPLAN = "dialplan"  # in the IVR menu or other dialplan, nobody rings yet
    QUEUED = "queued"  # waiting in a department's queue
    RINGING = "ringing"  # an agent's phone (or, outbound, the customer) rings
    ANSWERED = "answered"  # picked up, media not bridged yet
    BRIDGED = "bridged"  # agent and customer talk
    ON_HOLD = "on_hold"
    TRANSFERRED = "transferred"  # sent on to another queue/extension, not answered there yet
    ENDED = "ended"


class LegRole(str, Enum):
    CUSTOMER = "customer"  # the caller on an inbound call, the callee on an outbound call
    AGENT = "agent"  # an agent's phone
    OTHER = "other"


class CallResult(str, Enum):
    """How a call ended, for outcomes and callbacks."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"  # the customer hung up while queued
    QUEUE_TIMEOUT = "queue_timeout"  # waited the queue's longest wait and was sent away
    NO_ANSWER = "no_answer"  # rang, nobody picked up (or the queue had nobody)
    IVR_HANGUP = "ivr_hangup"  # the customer left in the menu, before any queue
    FAILED = "failed"  # could not be connected (busy, congestion, error)


@dataclass
class Leg:
    """One channel of a call (the customer's line, an agent's phone, ...)."""

    uniqueid: str
    channel: str
    linkedid: str
    endpoint: str  # PJSIP/1001-0000002a -> "1001"
    role: LegRole
    created_at: float
    caller_num: str = ""
    caller_name: str = ""
    state: str = ""  # Asterisk's ChannelStateDesc: Ring, Ringing, Up ...
    context: str = ""
    exten: str = ""
    bridge: str = ""
    dial_status: str = ""  # how being dialled ended: ANSWER, NOANSWER, CANCEL, BUSY ...
    answered_at: float | None = None
    ended_at: float | None = None
    cause: int | None = None
    cause_txt: str = ""
    queue: str = ""  # the queue this leg waited in, if any
    moved_from: str = ""  # joined this call from another one (a phone's attended transfer)


@dataclass
class Transfer:
    at: float
    kind: str  # blind | attended | queue
    by_agent: str | None
    target: str  # extension, queue or channel the call went to
    to_agent: str | None = None  # the agent who took the call on (once one answered)
    consult_call: str | None = None  # a phone's attended transfer: the consultation call


# Supervisor monitoring modes (dialplans/extensions.conf [supervisor-monitor]).
MONITOR_MODES = ("listen", "whisper", "barge")
# The service names a supervisor's monitoring channel (Originate ChannelId) with
# this prefix: that channel is no party of any call, and its ChanSpyStart says
# which call a supervisor listens to.
MONITOR_CHANNEL_PREFIX = "monitor-"


@dataclass
class Monitor:
    """A supervisor listening in on the call (or whispering to the agent, or barging in)."""

    supervisor: str  # the supervisor's login (MONITOR_BY), else their phone
    phone: str  # the supervisor's phone (endpoint)
    mode: str  # listen | whisper | barge
    agent: str | None  # the agent whose line was monitored
    started_at: float
    ended_at: float | None = None
    spyer: str = ""  # Uniqueid of the supervisor's channel


@dataclass
class Call:
    """Calls are grouped by Asterisk's Linkedid: every leg of one call shares it."""

    call_id: str
    started_at: float
    direction: Direction = Direction.UNKNOWN
    state: CallState = CallState.DIALPLAN
    did: str = ""  # number the customer dialled (inbound)
    dialled: str = ""  # number dialled to reach the customer (outbound)
    customer_num: str = ""
    customer_name: str = ""
    ivr_choice: str = ""
    ivr_keys: str = ""  # every key pressed in the menu, in order
    ivr_exit: str = ""  # the menu rule that ended it: key | no_key | wrong_key
    department: str = ""
    project: str = ""
    campaign: str = ""
    queue: str = ""
    agents_rung: list[str] = field(default_factory=list)
    agent: str | None = None  # the agent who answered (the latest, after transfers)
    queued_at: float | None = None
    queue_result: str = ""  # why the queue wait ended unanswered (QUEUESTATUS: TIMEOUT ...)
    agent_ring_at: float | None = None
    agent_answered_at: float | None = None
    answered_at: float | None = None  # agent and customer connected
    ended_at: float | None = None
    hold_started_at: float | None = None
    hold_seconds: float = 0.0
    hold_by: str = ""  # Uniqueid of the leg that put the call on hold
    abandoned: bool = False
    transfers: list[Transfer] = field(default_factory=list)
    monitors: list[Monitor] = field(default_factory=list)
    cause: int | None = None
    cause_txt: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    legs: dict[str, Leg] = field(default_factory=dict)
    pbx: str = ""  # the PBX's name in the config (several PBXs: ivr/cluster)

    @property
    def result(self) -> CallResult | None:
        if self.state is not CallState.ENDED:
            return None
        if self.answered_at is not None:
            return CallResult.ANSWERED
        if self.queue_result == "TIMEOUT":
            return CallResult.QUEUE_TIMEOUT
        if self.queue_result and not self.abandoned:
            return CallResult.NO_ANSWER  # the queue had nobody (FULL, JOINEMPTY, LEAVEEMPTY ...)
        if self.abandoned or (self.queued_at is not None and self.direction is Direction.INBOUND):
            return CallResult.ABANDONED
        if self.direction is Direction.INBOUND and not self.agents_rung:
            return CallResult.IVR_HANGUP
        if self.cause in (17, 34, 38, 41, 42, 1, 3, 27, 28):  # busy, congestion, bad number ...
            return CallResult.FAILED
        return CallResult.NO_ANSWER

    @property
    def talk_seconds(self) -> float | None:
        if self.answered_at is None:
            return None
        return (self.ended_at or self.answered_at) - self.answered_at

    @property
    def queue_wait_seconds(self) -> float | None:
        if self.queued_at is None:
            return None
        end = self.agent_answered_at or self.ended_at
        return None if end is None else end - self.queued_at

    def agent_legs(self) -> list[Leg]:
        return [leg for leg in self.legs.values() if leg.role is LegRole.AGENT]

    def customer_leg(self) -> Leg | None:
        for leg in self.legs.values():
            if leg.role is LegRole.CUSTOMER:
                return leg
        return None

    def snapshot(self) -> "Call":
        """An independent copy, handed to other stages with each call event."""
        return dataclasses.replace(
            self,
            agents_rung=list(self.agents_rung),
            transfers=[dataclasses.replace(t) for t in self.transfers],
            monitors=[dataclasses.replace(m) for m in self.monitors],
            variables=dict(self.variables),
            legs={k: dataclasses.replace(v) for k, v in self.legs.items()},
        )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["direction"] = self.direction.value
        d["state"] = self.state.value
        d["result"] = self.result.value if self.result else None
        d["legs"] = [
            {**dataclasses.asdict(leg), "role": leg.role.value} for leg in self.legs.values()
        ]
        return d
