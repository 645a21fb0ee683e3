"""Claims a dead controller left 'dialling', settled from the PBX before any retry.

When a controller starts following a PBX (at start, or taking it over from
an instance that died), every contact or callback still 'dialling' through
that PBX whose owner is not alive is settled, after the channel resync and
before this instance's dialers place anything there:

1. its call (the claim names the call id it originated) is still up on the
   PBX: this instance adopts the claim and records the result when the call
   ends, as the dead owner would have;
2. it is gone: the PBX's own note says how it ended. The [outbound-campaign]
   dialplan keeps, per agent phone, "<call id> <DIALSTATUS>" in Asterisk's
   database (family ivr-dial), written at the end of the agent's leg, read
   here with AMI DBGet. ANSWER: the customer was reached (done, never dialled
   again); NOANSWER, BUSY, CONGESTION ...: an attempt; no note for that call:
   the customer's number was never dialled (the agent did not answer, or
   the Originate never went out), so it is due again without counting an
   attempt. A call the store saw answered counts as answered whatever the
   note says.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..calls.model import Call, LegRole
from ..dialer.common import Outcome

log = logging.getLogger(__name__)

DB_FAMILY = "ivr-dial"

# Asterisk DIALSTATUS -> the result the dialers retry on.
_STATUS_RESULT = {
    "ANSWER": "answered",
    "BUSY": "busy",
    "NOANSWER": "no_answer",
    "CANCEL": "no_answer",
    "CONGESTION": "failed",
    "CHANUNAVAIL": "failed",
    "DONTCALL": "failed",
    "TORTURE": "failed",
    "INVALIDARGS": "failed",
    "DIALLING": "unknown",
    "NONE": "unknown",
}


async def dial_note(ami: Any, agent: str | None) -> tuple[str, str] | None:
    """The PBX's note for an agent's last dialler call: (call id, DIALSTATUS)."""
    if not agent:
        return None
    replies = await ami.send(
        {"Action": "DBGet", "Family": DB_FAMILY, "Key": f"PJSIP/{agent}"}, as_list=None, timeout=5.0
    )
    if not isinstance(replies, list):
        replies = [replies]
    for r in replies:
        value = r.get("Val") if hasattr(r, "get") else None
        if value:
            call_id, _, status = str(value).partition(" ")
            return call_id, status.strip() or "NONE"
    return None


def outcome_of_adopted(call: Call) -> Outcome:
    """An adopted call ended: how it went, from what the tracker saw."""
    if call.answered_at is not None:
        return Outcome("answered", call)
    if not any(leg.role is LegRole.CUSTOMER for leg in call.legs.values()):
        return Outcome("agent_no_answer", call)
    if call.cause == 17:
        return Outcome("busy", call)
    return Outcome("no_answer", call)


class ClaimSettler:
    """Settles a PBX's orphaned claims (see the module's doc) with the
    dialers of that PBX, which know how a result is recorded."""

    def __init__(
        self,
        store: Any,
        owner: str,
        *,
        campaigns: Any,
        callbacks: Any,
        max_call_seconds: float = 4 * 3600,
    ):
        self.store = store
        self.owner = owner
        self.dialers = {"contact": campaigns, "callback": callbacks}
        self.max_call_seconds = max_call_seconds
        self.adopted: set[asyncio.Task] = set()
        self.settled: list[tuple[str, int, str]] = []  # (kind, id, how), for logs and tests

    async def settle(self, link: Any, alive: set[str]) -> int:
        claims = await self.store.claims_on(link.name, alive)
        for claim in claims:
            try:
                await self._settle_one(link, claim)
            except Exception:
                log.exception(
                    "PBX %s: could not settle %s %s (left dialling, tried again "
                    "at the next takeover)",
                    link.name,
                    claim["kind"],
                    claim["id"],
                )
        return len(claims)

    async def _settle_one(self, link: Any, claim: dict[str, Any]) -> None:
        kind, call_id, agent = claim["kind"], claim["call_id"], claim["agent"]
        dialer = self.dialers[kind]
        gone = (
            f"PBX {link.name}: {kind} {claim['id']} ({claim['number']}) was being dialled "
            f"by {claim['owner']}, which is gone"
        )
        call = link.tracker.calls.get(call_id) if call_id else None
        if call is not None:
            if await self.store.adopt_claim(claim, self.owner):
                log.warning("%s; its call %s is still up: followed to its end here", gone, call_id)
                task = asyncio.ensure_future(self._follow(dialer, claim, call_id))
                self.adopted.add(task)
                task.add_done_callback(self.adopted.discard)
                self.settled.append((kind, claim["id"], "adopted"))
            return
        note = await dial_note(link.ami, agent)
        record = await self.store.get_call(call_id) if call_id else None
        if note is not None and note[0] == call_id:
            outcome, source = Outcome(_STATUS_RESULT.get(note[1], "unknown")), "the PBX's note"
        elif record is not None and record.get("answered_at") is not None:
            outcome, source = Outcome("answered"), "the call's record"
        else:
            # No note for this call: the customer's number was never dialled.
            outcome, source = Outcome("agent_no_answer"), "no note: never dialled"
        log.warning("%s; call %s ended: %s (%s)", gone, call_id, outcome.result, source)
        await dialer.settle(claim["id"], outcome, agent, call_id)
        self.settled.append((kind, claim["id"], outcome.result))

    async def _follow(self, dialer: Any, claim: dict[str, Any], call_id: str) -> None:
        call = await dialer.watcher.wait(call_id, self.max_call_seconds)
        outcome = outcome_of_adopted(call) if call is not None else Outcome("unknown")
        await dialer.settle(claim["id"], outcome, claim["agent"], call_id)

    async def close(self) -> None:
        for task in list(self.adopted):
            task.cancel()
        await asyncio.gather(*self.adopted, return_exceptions=True)
