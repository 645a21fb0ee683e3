"""An agent's attended ("consult") transfer, started from the console.

The agent picks another agent or a department; the service asks Asterisk for
an attended transfer of the agent's line (AMI Atxfer into the dialplan's
[console-transfer] context): the customer waits on hold while the agent's
phone calls the target. The agent talks to the target, then completes (the
service hangs up the agent's line: Asterisk connects the customer to the
target) or cancels (AMI CancelAtxfer: back to the customer).

What happened is recorded by the call tracker from Asterisk's own events (the
hold, the target ringing and answering, AttendedTransfer). This stage only
asks, and tells the agent's console how the consultation stands:
calling -> talking -> (transferred | cancelled).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from .calls.events import (
    AgentAnswered,
    AgentLeft,
    CallEnded,
    CallEvent,
    CallResumed,
    CallTransferred,
)
from .calls.model import Call, Leg
from .web.messages import message

log = logging.getLogger(__name__)

CONSULT_CONTEXT = "console-transfer"
# Atxfer "dials" the target as keypad digits: a queue is this extension, named
# in the CONSULT_QUEUE variable (see extensions.conf).
QUEUE_EXTEN = "00"


class TransferError(Exception):
    """A transfer request that cannot be served; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


@dataclass
class Consult:
    call_id: str
    agent: str  # who consults
    target: str  # an agent's extension or a department (queue)
    kind: str  # agent | queue
    started_at: float
    state: str = "calling"  # calling | talking

    def to_json(self) -> dict[str, Any]:
        return message(
            "consult",
            call_id=self.call_id,
            target=self.target,
            kind=self.kind,
            state=self.state,
            started_at=self.started_at,
        )


def agent_leg(call: Call, agent: str) -> Leg | None:
    """The agent's own answered, live line in the call."""
    return next(
        (
            lg
            for lg in call.agent_legs()
            if lg.endpoint == agent and lg.ended_at is None and lg.answered_at is not None
        ),
        None,
    )


class ConsoleTransfers:
    def __init__(
        self,
        ami_for: Callable[[str], Any],
        live_call: Callable[[str], Call | None],
        agents: Callable[[], list[str]],
        departments: Callable[[], Awaitable[list[str]]],
        push: Callable[[str, dict[str, Any]], None],
    ):
        self.ami_for = ami_for  # pbx -> its AMI (as Supervision's)
        self.live_call = live_call
        self.agents = agents
        self.departments = departments
        self.push = push
        self._consults: dict[tuple[str, str], Consult] = {}  # (call_id, agent) -> consult

    async def _action(self, call: Call, action: dict[str, str], what: str) -> None:
        # Atxfer and CancelAtxfer answer "... successfully queued": panoramisk 1.4
        # then looks up the action's Async header and, without one, drops the
        # whole AMI connection (KeyError). Asterisk ignores the header.
        action = {**action, "Async": "false"}
        try:
            reply = await self.ami_for(call.pbx).send(action)
        except Exception as exc:
            raise TransferError(f"the PBX is not reachable: {exc}", 503) from None
        if reply.get("Response") != "Success":
            raise TransferError(f"the PBX refused to {what}: {reply.get('Message')}", 502)

    def _line(self, call_id: str, agent: str) -> tuple[Call, Leg]:
        call = self.live_call(call_id)
        if call is None:
            raise TransferError("the call is over", 409)
        leg = agent_leg(call, agent)
        if leg is None:
            raise TransferError("you are not talking on this call", 409)
        return call, leg

    async def consult(self, call_id: str, agent: str, target: str) -> Consult:
        """Put the customer on hold and call ``target`` (an agent or a department)."""
        if (call_id, agent) in self._consults:
            raise TransferError("a consultation is already going on: complete or cancel it")
        if target in self.agents() and target != agent:
            kind = "agent"
        elif target in await self.departments():
            kind = "queue"
        else:
            raise TransferError(f"unknown transfer target {target!r}", 400)
        call, leg = self._line(call_id, agent)
        if kind == "queue":
            # Inherited by the consultation's channels, where [console-transfer] reads it.
            await self._action(
                call,
                {
                    "Action": "Setvar",
                    "Channel": leg.channel,
                    "Variable": "__CONSULT_QUEUE",
                    "Value": target,
                },
                "prepare the transfer",
            )
        consult = Consult(call_id, agent, target, kind, time.time())
        self._consults[(call_id, agent)] = consult
        try:
            await self._action(
                call,
                {
                    "Action": "Atxfer",
                    "Channel": leg.channel,
                    "Exten": QUEUE_EXTEN if kind == "queue" else target,
                    "Context": CONSULT_CONTEXT,
                },
                "start the transfer",
            )
        except TransferError:
            self._consults.pop((call_id, agent), None)
            raise
        log.info("agent %s consults %s %s on call %s", agent, kind, target, call_id)
        self.push(agent, consult.to_json())
        return consult

    async def complete(self, call_id: str, agent: str) -> None:
        """Hand the customer over: the agent's line hangs up, as when the agent
        puts the phone down during a consultation."""
        if (call_id, agent) not in self._consults:
            raise TransferError("no consultation to complete")
        call, leg = self._line(call_id, agent)
        await self._action(
            call, {"Action": "Hangup", "Channel": leg.channel}, "complete the transfer"
        )

    async def cancel(self, call_id: str, agent: str) -> None:
        """Drop the consultation and go back to the customer."""
        if (call_id, agent) not in self._consults:
            raise TransferError("no consultation to cancel")
        call, leg = self._line(call_id, agent)
        await self._action(
            call, {"Action": "CancelAtxfer", "Channel": leg.channel}, "cancel the transfer"
        )

    def consult_of(self, call_id: str, agent: str) -> Consult | None:
        return self._consults.get((call_id, agent))

    def notices_for(self, agent: str) -> list[dict[str, Any]]:
        return [c.to_json() for (_, a), c in self._consults.items() if a == agent]

    # ------------------------------------------------------------ call events
    def on_call_event(self, event: CallEvent) -> None:
        call = event.call
        for (call_id, agent), c in list(self._consults.items()):
            if call_id != call.call_id:
                continue
            if isinstance(event, AgentAnswered) and event.agent != agent and c.state == "calling":
                c.state = "talking"
                self.push(agent, c.to_json())
            elif isinstance(event, CallTransferred):
                self._end(c, "transferred")
            elif isinstance(event, CallResumed) or (
                isinstance(event, AgentLeft) and event.agent == agent
            ):
                self._end(c, "cancelled" if isinstance(event, CallResumed) else "transferred")
            elif isinstance(event, CallEnded):
                self._end(c, "ended")

    def _end(self, c: Consult, how: str) -> None:
        if self._consults.pop((c.call_id, c.agent), None) is None:
            return
        log.info("agent %s's consultation of %s on call %s: %s", c.agent, c.target, c.call_id, how)
        self.push(c.agent, {**c.to_json(), "state": how})
