"""Placing a call to a customer for an agent (AMI Originate).

The agent's phone rings first; when the agent answers, the dialplan context
(outbound-campaign, see dialplans/extensions.conf) dials the customer through
the trunk. The call is tracked like any other: the project and campaign ride
on the channel as variables, and we choose the first leg's Uniqueid ourselves
so the caller knows the call's id before Asterisk says anything.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from .ami.client import AmiClient, AmiError


@dataclass(frozen=True)
class OutboundCall:
    agent: str  # the agent's extension, e.g. "1002"
    number: str  # the customer's number
    project: str
    campaign: str = ""
    context: str = "outbound-campaign"
    ring_seconds: int = 30  # how long the agent's phone rings before we give up
    call_id: str = ""  # chosen by the caller before a claim (new_call_id), else here


@dataclass(frozen=True)
class PlacedCall:
    call_id: str  # = the Linkedid the tracker groups the call by
    answered_by_agent: bool
    reason: str


def _checked(value: str, what: str) -> str:
    # Values go into AMI headers and dial strings: refuse anything that could
    # smuggle another header or dial target.
    if not value or any(c in value for c in "\r\n,&/;|") or len(value) > 64:
        raise ValueError(f"invalid {what}: {value!r}")
    return value


def new_call_id() -> str:
    """The id of a call we place: the agent leg's Uniqueid (Originate ChannelId)."""
    return f"out-{uuid.uuid4().hex[:20]}"


async def place_call(ami: AmiClient, call: OutboundCall) -> PlacedCall:
    agent = _checked(call.agent, "agent extension")
    number = _checked(call.number, "customer number")
    project = _checked(call.project, "project")
    call_id = _checked(call.call_id, "call id") if call.call_id else new_call_id()
    variables = ["__CALL_DIRECTION=outbound", f"__PROJECT={project}", f"__DIALLED={number}"]
    if call.campaign:
        variables.append(f"__CAMPAIGN={_checked(call.campaign, 'campaign')}")
    try:
        reply = await ami.originate(
            Channel=f"PJSIP/{agent}",
            Context=call.context,
            Exten=number,
            Priority="1",
            CallerID=f'"Customer {number}" <{number}>',
            Timeout=str(call.ring_seconds * 1000),
            ChannelId=call_id,
            Variable=variables,
        )
    except AmiError as exc:
        return PlacedCall(call_id=call_id, answered_by_agent=False, reason=str(exc))
    ok = reply.get("Response") == "Success"
    reasons = {
        "0": "no such extension or number",
        "1": "no answer",
        "3": "agent's phone rang out",
        "4": "answered",
        "5": "busy",
        "8": "congestion or phone not registered",
    }
    return PlacedCall(
        call_id=call_id,
        answered_by_agent=ok,
        reason=reasons.get(reply.get("Reason", ""), reply.get("Reason", "unknown")),
    )
