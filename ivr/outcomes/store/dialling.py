"""Dialler claims shared by every service instance on one store.

A mixin of SqlStore (sql.py), like campaigns.py. Whoever places a campaign
call or a callback first claims it here, in one transaction:

- the contact or callback goes to 'dialling' with the claiming instance
  (`dial_owner`), the PBX (`dial_pbx`), the agent and the call id the
  Originate will use (chosen before it, so a claim always names its call);
- the customer's number goes into `dialling_numbers` (one row per number):
  no other claim, by this dialer, the other one or another instance, gets it
  until the result is written.

PostgreSQL claims contacts with `FOR UPDATE SKIP LOCKED` (two instances
never wait on, nor take, the same row); SQLite's one writer (BEGIN
IMMEDIATE) gives the same. A claim whose owner died is settled by the
controller that follows its PBX next (ivr/cluster/reconcile.py), from what
the PBX says, before anything is dialled again.
"""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from typing import Any, Callable, Iterable

from .base import CallbackStatus

_CLAIM_COLS = ("dial_owner", "dial_pbx", "dial_call_id", "dial_agent")


class DialClaim(dict):
    """What a claim row says: kind (contact|callback), id, number, owner, pbx,
    call_id, agent, and the row's own fields (attempts, campaign ...)."""


class DiallingSql:
    # PostgreSQL's row locking clause for a queue-like claim; '' on SQLite.
    SKIP_LOCKED = ""
    # SqlStore's: one driver transaction (commit on exit, roll back on error).
    transaction: Callable[..., AbstractAsyncContextManager[Any]]

    async def _hold_number(
        self, tx: Any, number: str, owner: str, pbx: str, call_id: str, now: float
    ) -> bool:
        return bool(
            await tx.execute(
                "INSERT INTO dialling_numbers (number, owner, pbx, call_id, since) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (number) DO NOTHING",
                [number, owner, pbx, call_id, now],
            )
        )

    async def numbers_being_dialled(self) -> set[str]:
        async with self.transaction(readonly=True) as tx:
            rows = await tx.fetch("SELECT number FROM dialling_numbers")
        return {r["number"] for r in rows}

    async def claim_callback(
        self,
        callback_id: int,
        number: str,
        now: float,
        *,
        owner: str,
        pbx: str,
        call_id: str,
        agent: str,
    ) -> bool:
        """Take a due callback for one call: False if another dialer (any
        instance) took it first, or is calling its number right now."""
        async with self.transaction() as tx:
            if not await self._hold_number(tx, number, owner, pbx, call_id, now):
                return False
            changed = await tx.execute(
                "UPDATE callbacks SET status = ?, dial_owner = ?, dial_pbx = ?, "
                "dial_call_id = ?, dial_agent = ?, updated_at = ? "
                "WHERE id = ? AND status = ? AND due_at <= ?",
                [
                    CallbackStatus.DIALLING.value,
                    owner,
                    pbx,
                    call_id,
                    agent,
                    now,
                    callback_id,
                    CallbackStatus.PENDING.value,
                    now,
                ],
            )
            if not changed:
                await tx.execute("DELETE FROM dialling_numbers WHERE call_id = ?", [call_id])
            return bool(changed)

    async def _release_claim(self, tx: Any, table: str, row_id: int) -> None:
        """The claim's result is being written: free its number and forget it."""
        await tx.execute(
            f"DELETE FROM dialling_numbers WHERE call_id IN "
            f"(SELECT dial_call_id FROM {table} WHERE id = ?)",
            [row_id],
        )
        await tx.execute(
            f"UPDATE {table} SET "
            + ", ".join(f"{c} = NULL" for c in _CLAIM_COLS)
            + " WHERE id = ?",
            [row_id],
        )

    async def claims_on(self, pbx: str, not_owned_by: Iterable[str] = ()) -> list[DialClaim]:
        """Contacts and callbacks 'dialling' through `pbx` (or through no known
        PBX: claimed before version 60) by an owner not in `not_owned_by` (the
        instances alive)."""
        alive = set(not_owned_by)
        out: list[DialClaim] = []
        async with self.transaction(readonly=True) as tx:
            contacts = await tx.fetch(
                "SELECT id, number, attempts, campaign, dial_owner, dial_pbx, dial_call_id, "
                "dial_agent FROM campaign_contacts WHERE status = 'dialling' "
                "AND (dial_pbx = ? OR dial_pbx IS NULL)",
                [pbx],
            )
            callbacks = await tx.fetch(
                "SELECT id, number, attempts, project, dial_owner, dial_pbx, dial_call_id, "
                "dial_agent FROM callbacks WHERE status = ? "
                "AND (dial_pbx = ? OR dial_pbx IS NULL)",
                [CallbackStatus.DIALLING.value, pbx],
            )
        for kind, rows in (("contact", contacts), ("callback", callbacks)):
            for r in rows:
                if r["dial_owner"] in alive:
                    continue
                out.append(
                    DialClaim(
                        kind=kind,
                        id=r["id"],
                        number=r["number"],
                        owner=r["dial_owner"],
                        pbx=r["dial_pbx"],
                        call_id=r["dial_call_id"],
                        agent=r["dial_agent"],
                        attempts=r["attempts"],
                        row=dict(r),
                    )
                )
        return out

    async def adopt_claim(self, claim: DialClaim, owner: str) -> bool:
        """This instance follows a dead owner's call to its end (it is still up
        on the PBX): the claim and its number become ours."""
        table = "campaign_contacts" if claim["kind"] == "contact" else "callbacks"
        async with self.transaction() as tx:
            changed = await tx.execute(
                f"UPDATE {table} SET dial_owner = ? WHERE id = ? AND status = 'dialling' "
                "AND dial_call_id = ?",
                [owner, claim["id"], claim["call_id"]],
            )
            if changed:
                await tx.execute(
                    "UPDATE dialling_numbers SET owner = ? WHERE call_id = ?",
                    [owner, claim["call_id"]],
                )
        return bool(changed)

    async def live_call_ids(self, pbx: str) -> list[str]:
        async with self.transaction(readonly=True) as tx:
            rows = await tx.fetch(
                "SELECT call_id FROM calls WHERE state = 'live' AND pbx = ?", [pbx]
            )
        return [r["call_id"] for r in rows]

    async def close_interrupted_on(
        self, pbx: str, call_ids: Iterable[str], now: float | None = None
    ) -> int:
        """Calls of one PBX that ended while no controller followed it (the
        list: live in the store, gone from the PBX): closed as interrupted."""
        now = time.time() if now is None else now
        closed = 0
        async with self.transaction() as tx:
            for call_id in call_ids:
                closed += await tx.execute(
                    "UPDATE calls SET state = 'interrupted', updated_at = ? "
                    "WHERE call_id = ? AND state = 'live' AND pbx = ?",
                    [now, call_id, pbx],
                )
        return closed
