"""A tracker Call <-> the store's call record: the row written (with derived
timings) and, for wrap-ups owed after a restart, a Call rebuilt from a row."""

from __future__ import annotations

import dataclasses
from typing import Any

from ...calls.model import Call, CallResult, CallState, Direction, Monitor, Transfer
from .base import CallRecord, CallStatus


def ring_seconds(call: Call) -> float | None:
    """How long agents' phones rang before one answered (or the call ended)."""
    if call.agent_ring_at is None:
        return None
    end = call.agent_answered_at
    if end is None and call.state is CallState.ENDED:
        end = call.ended_at
    return None if end is None else max(0.0, end - call.agent_ring_at)


def record_of(
    call: Call, now: float, script_id: str | None = None, script_version: str | None = None
) -> CallRecord:
    ended = call.state is CallState.ENDED
    result = call.result
    return CallRecord(
        call_id=call.call_id,
        state=(CallStatus.ENDED if ended else CallStatus.LIVE).value,
        direction=call.direction.value,
        project=call.project,
        script_id=script_id,
        script_version=script_version,
        did=call.did,
        dialled=call.dialled,
        customer_num=call.customer_num,
        customer_name=call.customer_name,
        department=call.department,
        queue=call.queue,
        ivr_choice=call.ivr_choice,
        ivr_keys=call.ivr_keys,
        ivr_exit=call.ivr_exit,
        campaign=call.campaign,
        agents_rung=list(call.agents_rung),
        agent=call.agent,
        started_at=call.started_at,
        queued_at=call.queued_at,
        queue_result=call.queue_result,
        agent_ring_at=call.agent_ring_at,
        agent_answered_at=call.agent_answered_at,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        queue_wait_seconds=call.queue_wait_seconds,
        ring_seconds=ring_seconds(call),
        talk_seconds=call.talk_seconds,
        hold_seconds=call.hold_seconds,
        cause=call.cause,
        cause_txt=call.cause_txt,
        result=result.value if result else None,
        transfers=[dataclasses.asdict(t) for t in call.transfers],
        pbx=call.pbx,
        monitors=[dataclasses.asdict(m) for m in call.monitors],
        updated_at=now,
    )


def call_of(record: dict[str, Any]) -> Call:
    """A Call from a stored record (get_call / list_calls dict). Legs and
    channel variables are not stored; a call that is not live comes back ENDED."""
    live = record["state"] == CallStatus.LIVE.value
    try:
        direction = Direction(record["direction"])
    except ValueError:
        direction = Direction.UNKNOWN
    text: dict[str, Any] = {
        name: record[name] or ""
        for name in (
            "did",
            "dialled",
            "customer_num",
            "customer_name",
            "ivr_choice",
            "ivr_keys",
            "ivr_exit",
            "department",
            "project",
            "campaign",
            "queue",
            "queue_result",
            "cause_txt",
        )
    }
    return Call(
        call_id=record["call_id"],
        started_at=record["started_at"],
        direction=direction,
        state=CallState.BRIDGED
        if live and record["answered_at"]
        else CallState.DIALPLAN
        if live
        else CallState.ENDED,
        **text,
        agents_rung=list(record["agents_rung"] or []),
        agent=record["agent"],
        queued_at=record["queued_at"],
        agent_ring_at=record["agent_ring_at"],
        agent_answered_at=record["agent_answered_at"],
        answered_at=record["answered_at"],
        ended_at=record["ended_at"],
        hold_seconds=record["hold_seconds"] or 0.0,
        abandoned=record["result"] == CallResult.ABANDONED.value,
        transfers=[Transfer(**t) for t in record["transfers"] or []],
        monitors=[Monitor(**m) for m in record["monitors"] or []],
        cause=record["cause"],
    )
