"""Which ended calls need a callback ("a call must not be lost").

A pure function of the call, so the rule is tested without a store: an
inbound call that was abandoned in the queue, timed out there, rang out unanswered or could not
be connected is called back, by anyone in its project, if we know a number
that can be dialled. Customers who hung up in the IVR menu left before asking
for anyone, so they are not (pass `results` to change that).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..calls.model import Call, CallResult, CallState, Direction

CALLBACK_RESULTS = frozenset(
    {CallResult.ABANDONED, CallResult.QUEUE_TIMEOUT, CallResult.NO_ANSWER, CallResult.FAILED}
)

# Something that can be dialled back: digits, optionally a leading +
# ("anonymous", "unknown", "restricted", "" are not).
_DIALLABLE = re.compile(r"\+?[0-9]{3,}")


@dataclass(frozen=True)
class CallbackRequest:
    call_id: str
    number: str
    project: str
    reason: str  # the call's result: abandoned | queue_timeout | no_answer | failed
    due_at: float
    agent: str | None = None  # None: anyone in the project


def diallable(number: str) -> bool:
    return bool(_DIALLABLE.fullmatch(number.strip().replace(" ", "")))


def callbacks_for(
    call: Call, delay: float = 0.0, results: frozenset[CallResult] = CALLBACK_RESULTS
) -> list[CallbackRequest]:
    """The callbacks an ended call asks for (none or one), due `delay` s after it ended."""
    result = call.result
    if (
        call.state is not CallState.ENDED
        or call.direction is not Direction.INBOUND
        or result not in results
        or not diallable(call.customer_num)
    ):
        return []
    ended = call.ended_at if call.ended_at is not None else call.started_at
    return [
        CallbackRequest(
            call_id=call.call_id,
            number=call.customer_num.strip(),
            project=call.project,
            reason=result.value,
            due_at=ended + delay,
        )
    ]
