"""Outbound campaigns, their contacts and the do-not-call list, in the store.

A mixin of SqlStore (sql.py): written once in the SQL both backends speak,
over the driver's transaction(), like the rest of the store. Numbers are kept
normalised (ivr/calls/numbers.py), so "+36 20 123 4567" on the DNC list stops
a campaign contact "0036201234567". What a campaign may be (names, settings)
and how a customer list becomes contacts is checked before it gets here
(ivr/dialer/campaigns.py); the store refuses only what would break its tables.

Contact life: pending -> dialling (claimed by the dialer, atomically) ->
done (the customer answered) | pending again (retry, at next_at) | failed
(out of attempts) | dnc (the number is on the do-not-call list) | cancelled.
"""

from __future__ import annotations

import json
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Sequence

from ...calls.numbers import normalise

CAMPAIGN_STATUSES = ("active", "paused", "done")
CONTACT_STATUSES = ("pending", "dialling", "done", "failed", "dnc", "cancelled")
# Callbacks a do-not-call entry cancels (the open ones).
_OPEN_CALLBACKS = ("pending",)

# Settings a campaign row holds, with their defaults.
CAMPAIGN_SETTINGS: dict[str, Any] = {
    "hours_start": "09:00",
    "hours_end": "20:00",
    "days": "mon-fri",
    "timezone": "UTC",
    "max_in_progress": 2,
    "max_per_minute": 10,
    "max_attempts": 3,
    "retry_after": 3600.0,
}
_CAMPAIGN_COLS = ["name", "project", "status", *CAMPAIGN_SETTINGS, "created_at", "updated_at"]
_CONTACT_COLS = [
    "id",
    "campaign",
    "number",
    "name",
    "fields",
    "status",
    "attempts",
    "next_at",
    "last_attempt_at",
    "last_result",
    "last_call_id",
    "created_at",
    "updated_at",
]
# What an import writes of a new contact (the rest comes from calling it).
_NEW_CONTACT_COLS = [
    c for c in _CONTACT_COLS if c not in ("id", "last_attempt_at", "last_result", "last_call_id")
]
_INSERT_BATCH = 200  # contacts per INSERT statement (well under both backends' limits)


@dataclass(frozen=True)
class Contact:
    """One customer to call, as imported."""

    number: str
    name: str = ""
    fields: dict[str, str] | None = None


class CampaignSql:
    """Campaign, contact and do-not-call queries (mixed into SqlStore)."""

    # SqlStore's: one driver transaction (commit on exit, roll back on error).
    transaction: Callable[..., AbstractAsyncContextManager[Any]]
    # dialling.py's (DiallingSql): claims shared by every instance.
    SKIP_LOCKED: str
    _hold_number: Callable[..., Awaitable[bool]]
    _release_claim: Callable[..., Awaitable[Any]]

    # -- campaigns -------------------------------------------------------------
    async def upsert_campaign(
        self,
        name: str,
        project: str,
        *,
        status: str | None = None,
        now: float | None = None,
        **settings: Any,
    ) -> dict[str, Any]:
        """Create a campaign, or change the given settings of an existing one
        (checked by the caller: ivr.dialer.campaigns.check_settings)."""
        if status is not None and status not in CAMPAIGN_STATUSES:
            raise ValueError(f"status must be one of {', '.join(CAMPAIGN_STATUSES)}")
        unknown = set(settings) - set(CAMPAIGN_SETTINGS)
        if unknown:  # they would become column names
            raise ValueError(f"unknown campaign settings: {', '.join(sorted(unknown))}")
        given = {k: v for k, v in settings.items() if v is not None}
        now = time.time() if now is None else now
        async with self.transaction() as tx:
            rows = await tx.fetch("SELECT project FROM campaigns WHERE name = ?", [name])
            if rows:
                sets = {"project": project, **given, "updated_at": now}
                if status is not None:
                    sets["status"] = status
                await tx.execute(
                    f"UPDATE campaigns SET {', '.join(f'{k} = ?' for k in sets)} WHERE name = ?",
                    [*sets.values(), name],
                )
            else:
                values = {
                    "name": name,
                    "project": project,
                    "status": status or "active",
                    **CAMPAIGN_SETTINGS,
                    **given,
                    "created_at": now,
                    "updated_at": now,
                }
                await tx.execute(
                    f"INSERT INTO campaigns ({', '.join(_CAMPAIGN_COLS)}) "
                    f"VALUES ({', '.join('?' for _ in _CAMPAIGN_COLS)})",
                    [values[c] for c in _CAMPAIGN_COLS],
                )
        got = await self.get_campaign(name)
        assert got is not None
        return got

    async def set_campaign_status(self, name: str, status: str, now: float | None = None) -> None:
        if status not in CAMPAIGN_STATUSES:
            raise ValueError(f"status must be one of {', '.join(CAMPAIGN_STATUSES)}")
        now = time.time() if now is None else now
        async with self.transaction() as tx:
            if not await tx.execute(
                "UPDATE campaigns SET status = ?, updated_at = ? WHERE name = ?",
                [status, now, name],
            ):
                raise KeyError(f"no campaign {name!r}")

    async def get_campaign(self, name: str) -> dict[str, Any] | None:
        found = await self.list_campaigns(name=name)
        return found[0] if found else None

    async def list_campaigns(
        self, status: str | None = None, name: str | None = None, *, with_counts: bool = True
    ) -> list[dict[str, Any]]:
        """Campaigns, with their contacts counted by status ('contacts')."""
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if name is not None:
            where.append("name = ?")
            args.append(name)
        sql = f"SELECT {', '.join(_CAMPAIGN_COLS)} FROM campaigns"
        if where:
            sql += " WHERE " + " AND ".join(where)
        async with self.transaction(readonly=True) as tx:
            rows = await tx.fetch(sql + " ORDER BY name", args)
            if not rows or not with_counts:
                return rows
            names = [r["name"] for r in rows]
            counts = await tx.fetch(
                "SELECT campaign, status, COUNT(*) AS n FROM campaign_contacts "
                f"WHERE campaign IN ({', '.join('?' for _ in names)}) GROUP BY campaign, status",
                names,
            )
        by_name: dict[str, dict[str, int]] = {n: {s: 0 for s in CONTACT_STATUSES} for n in names}
        for c in counts:
            by_name[c["campaign"]][c["status"]] = int(c["n"])
        return [{**r, "contacts": by_name[r["name"]]} for r in rows]

    async def campaign_open_contacts(self, name: str) -> int:
        """Contacts still to be called or being called."""
        async with self.transaction(readonly=True) as tx:
            rows = await tx.fetch(
                "SELECT COUNT(*) AS n FROM campaign_contacts "
                "WHERE campaign = ? AND status IN ('pending', 'dialling')",
                [name],
            )
        return int(rows[0]["n"])

    # -- contacts --------------------------------------------------------------
    async def add_contacts(
        self,
        campaign: str,
        contacts: Iterable[Contact],
        *,
        due_at: float | None = None,
        now: float | None = None,
    ) -> dict[str, int]:
        """Add contacts (numbers normalised by the caller) in
        one transaction. Returns counts: added, duplicates (already in the
        campaign or twice in this batch), dnc (added, but on the list)."""
        now = time.time() if now is None else now
        due_at = now if due_at is None else due_at
        batch: dict[str, Contact] = {}
        seen = 0
        for c in contacts:
            seen += 1
            if not c.number or normalise(c.number) != c.number:
                raise ValueError(f"contact number {c.number!r} is not normalised")
            batch.setdefault(c.number, c)
        items = list(batch.values())
        added = 0
        cols = _NEW_CONTACT_COLS
        async with self.transaction() as tx:
            if not await tx.fetch("SELECT name FROM campaigns WHERE name = ?", [campaign]):
                raise KeyError(f"no campaign {campaign!r}")
            for i in range(0, len(items), _INSERT_BATCH):
                chunk = items[i : i + _INSERT_BATCH]
                row = "(" + ", ".join("?" for _ in cols) + ")"
                args: list[Any] = []
                for c in chunk:
                    args += [
                        campaign,
                        c.number,
                        c.name or "",
                        json.dumps(c.fields or {}),
                        "pending",
                        0,
                        due_at,
                        now,
                        now,
                    ]
                added += await tx.execute(
                    f"INSERT INTO campaign_contacts ({', '.join(cols)}) VALUES "
                    + ", ".join(row for _ in chunk)
                    + " ON CONFLICT (campaign, number) DO NOTHING",
                    args,
                )
            dnc = await tx.execute(
                "UPDATE campaign_contacts SET status = 'dnc', last_result = 'do_not_call', "
                "updated_at = ? WHERE campaign = ? AND status = 'pending' AND created_at = ? "
                "AND number IN (SELECT number FROM dnc)",
                [now, campaign, now],
            )
        return {"added": added, "duplicates": seen - added, "dnc": dnc}

    async def claim_contact(
        self,
        campaign: str,
        now: float,
        exclude: Iterable[str] = (),
        look_ahead: int = 20,
        *,
        owner: str | None = None,
        pbx: str = "",
        call_id: str = "",
        agent: str = "",
    ) -> dict[str, Any] | None:
        """Take the most overdue pending contact not on the DNC list and not
        among `exclude` (numbers being called right now) and mark it dialling.
        Atomic: a contact is claimed once even with two dialers on two
        instances. With `owner` (the claiming instance) the claim also names
        the PBX, the call id it will originate and the agent, and holds the
        number in `dialling_numbers` (see dialling.py): a number some dialer
        is calling now, on any instance, is skipped."""
        skip = set(exclude)
        async with self.transaction() as tx:
            rows = await tx.fetch(
                f"SELECT {', '.join(_CONTACT_COLS)} FROM campaign_contacts c "
                "WHERE campaign = ? AND status = 'pending' AND next_at <= ? "
                "AND NOT EXISTS (SELECT 1 FROM dnc WHERE dnc.number = c.number) "
                "AND NOT EXISTS (SELECT 1 FROM dialling_numbers d WHERE d.number = c.number) "
                "ORDER BY next_at, id LIMIT ?" + self.SKIP_LOCKED,
                [campaign, now, look_ahead + len(skip)],
            )
            for row in rows:
                if row["number"] in skip:
                    continue
                if owner is not None and not await self._hold_number(
                    tx, row["number"], owner, pbx, call_id, now
                ):
                    continue
                if await tx.execute(
                    "UPDATE campaign_contacts SET status = 'dialling', "
                    "dial_owner = ?, dial_pbx = ?, dial_call_id = ?, "
                    "dial_agent = ?, updated_at = ? "
                    "WHERE id = ? AND status = 'pending'",
                    [owner, pbx or None, call_id or None, agent or None, now, row["id"]],
                ):
                    return _contact(row, status="dialling", updated_at=now)
                if owner is not None:
                    await tx.execute("DELETE FROM dialling_numbers WHERE call_id = ?", [call_id])
        return None

    async def finish_contact(
        self,
        contact_id: int,
        status: str,
        result: str,
        *,
        next_at: float | None = None,
        call_id: str | None = None,
        agent: str | None = None,
        count_attempt: bool = True,
        now: float | None = None,
    ) -> None:
        """Record how a call to a contact went and move it to `status`
        (pending with next_at: retry then). count_attempt=False (the agent, not
        the customer, failed) logs it without counting an attempt."""
        if status not in CONTACT_STATUSES:
            raise ValueError(f"unknown contact status {status!r}")
        now = time.time() if now is None else now
        async with self.transaction() as tx:
            await self._release_claim(tx, "campaign_contacts", contact_id)
            changed = await tx.execute(
                "UPDATE campaign_contacts SET status = ?, next_at = COALESCE(?, next_at), "
                "attempts = attempts + ?, last_attempt_at = ?, last_result = ?, "
                "last_call_id = COALESCE(?, last_call_id), updated_at = ? WHERE id = ?",
                [status, next_at, 1 if count_attempt else 0, now, result, call_id, now, contact_id],
            )
            if not changed:
                raise KeyError(f"no campaign contact {contact_id}")
            await tx.execute(
                "INSERT INTO campaign_attempts (contact_id, at, status, result, "
                "agent, call_id) VALUES (?, ?, ?, ?, ?, ?)",
                [contact_id, now, status, result, agent, call_id],
            )

    async def get_contact(self, contact_id: int) -> dict[str, Any] | None:
        async with self.transaction(readonly=True) as tx:
            rows = await tx.fetch(
                f"SELECT {', '.join(_CONTACT_COLS)} FROM campaign_contacts WHERE id = ?",
                [contact_id],
            )
            if not rows:
                return None
            history = await tx.fetch(
                "SELECT at, status, result, agent, call_id "
                "FROM campaign_attempts WHERE contact_id = ? "
                "ORDER BY at, id",
                [contact_id],
            )
        return {**_contact(rows[0]), "history": history}

    async def list_contacts(
        self, campaign: str, status: str | None = None, limit: int = 1000, after_id: int = 0
    ) -> list[dict[str, Any]]:
        args: list[Any] = [campaign, after_id]
        sql = (
            f"SELECT {', '.join(_CONTACT_COLS)} FROM campaign_contacts "
            "WHERE campaign = ? AND id > ?"
        )
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        async with self.transaction(readonly=True) as tx:
            rows = await tx.fetch(sql + " ORDER BY id LIMIT ?", [*args, limit])
        return [_contact(r) for r in rows]

    async def reset_dialling_contacts(self, now: float | None = None) -> int:
        """At dialer start: contacts caught 'dialling' by a stop are pending again."""
        now = time.time() if now is None else now
        async with self.transaction() as tx:
            return await tx.execute(
                "UPDATE campaign_contacts SET status = 'pending', last_result = 'interrupted', "
                "updated_at = ? WHERE status = 'dialling'",
                [now],
            )

    # -- do not call -----------------------------------------------------------
    async def add_dnc(
        self,
        number: str,
        reason: str = "",
        *,
        call_id: str | None = None,
        added_by: str | None = None,
        now: float | None = None,
    ) -> dict[str, int]:
        """Put a number on the do-not-call list; its pending campaign contacts
        become 'dnc' and its pending callbacks 'cancelled', in the same
        transaction. Returns what it changed."""
        plain = normalise(number)
        if not plain:
            raise ValueError(f"not a phone number: {number!r}")
        now = time.time() if now is None else now
        async with self.transaction() as tx:
            return await self._add_dnc(tx, number, plain, reason, call_id, added_by, now)

    async def _add_dnc(
        self,
        tx: Any,
        raw: str,
        plain: str,
        reason: str,
        call_id: str | None,
        added_by: str | None,
        now: float,
    ) -> dict[str, int]:
        added = await tx.execute(
            "INSERT INTO dnc (number, reason, call_id, added_by, added_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (number) DO NOTHING",
            [plain, reason, call_id, added_by, now],
        )
        contacts = await tx.execute(
            "UPDATE campaign_contacts SET status = 'dnc', last_result = 'do_not_call', "
            "updated_at = ? WHERE number = ? AND status = 'pending'",
            [now, plain],
        )
        # Callback numbers come from caller ID, as the PBX wrote them.
        spellings = sorted({raw.strip(), plain, "+" + plain, "00" + plain})
        callbacks = await tx.execute(
            "UPDATE callbacks SET status = 'cancelled', last_result = 'do_not_call', "
            f"updated_at = ? WHERE number IN ({', '.join('?' for _ in spellings)}) "
            "AND status = 'pending'",
            [now, *spellings],
        )
        return {"added": added, "contacts": contacts, "callbacks": callbacks}

    async def add_dnc_for_call(
        self,
        call_id: str,
        reason: str = "do_not_call",
        *,
        number: str | None = None,
        added_by: str | None = None,
    ) -> str | None:
        """The customer of a call asked not to be called again: their number
        (the stored call's, else `number`) goes on the list. Returns the
        number listed, or None when the call's number is unknown."""
        now = time.time()
        async with self.transaction() as tx:
            rows = await tx.fetch("SELECT customer_num FROM calls WHERE call_id = ?", [call_id])
            raw = (rows[0]["customer_num"] if rows else "") or (number or "")
            plain = normalise(raw)
            if not plain:
                return None
            await self._add_dnc(tx, raw, plain, reason, call_id, added_by, now)
        return plain

    async def remove_dnc(self, number: str) -> bool:
        async with self.transaction() as tx:
            return bool(await tx.execute("DELETE FROM dnc WHERE number = ?", [normalise(number)]))

    async def is_dnc(self, number: str) -> bool:
        plain = normalise(number)
        if not plain:
            return False
        async with self.transaction(readonly=True) as tx:
            return bool(await tx.fetch("SELECT 1 AS x FROM dnc WHERE number = ?", [plain]))

    async def list_dnc(self, limit: int = 1000, after: str = "") -> list[dict[str, Any]]:
        async with self.transaction(readonly=True) as tx:
            return await tx.fetch(
                "SELECT number, reason, call_id, added_by, added_at FROM dnc "
                "WHERE number > ? ORDER BY number LIMIT ?",
                [after, limit],
            )


def _contact(row: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**row, **changes}
    if isinstance(out.get("fields"), str):
        out["fields"] = json.loads(out["fields"])
    return out


__all__: Sequence[str] = [
    "CAMPAIGN_SETTINGS",
    "CAMPAIGN_STATUSES",
    "CONTACT_STATUSES",
    "CampaignSql",
    "Contact",
]
