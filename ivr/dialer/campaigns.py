"""Outbound campaigns: import a customer list, dial it for available agents.

A campaign (store table `campaigns`) belongs to a project, whose script pops
on its calls (PROJECT = the project, CAMPAIGN = the campaign's name), and has
calling hours (local time window, weekdays, time zone), a pacing limit
(`max_in_progress` calls at once, `max_per_minute` placed in any minute),
`max_attempts` and `retry_after` seconds between attempts.

Every tick, for each active campaign inside its calling hours, while the
pacing limit allows and an agent of the project is free, the dialer claims
the next due contact (atomically; never a number on the do-not-call list,
never a number being called right now) and places the call, agent first.
Results: answered -> done; no answer / busy / failed -> retried after
`retry_after` s, failed after `max_attempts`; the agent's phone missed ->
pending again shortly, not counted. A campaign with nothing left to call is
marked done.

Do-not-call: `dnc_on_wrapup` wraps the console's save_wrapup so a
"do_not_call" disposition puts the customer's number on the list (and
cancels their pending contacts and callbacks) before the wrap-up is saved.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Awaitable, Callable, Iterable

from ..calls.numbers import normalise
from ..outbound import OutboundCall, new_call_id
from ..outcomes.store.campaigns import CAMPAIGN_SETTINGS, Contact
from ..scripts.customers import CustomerFileError, read_customers
from .base import DialerBase
from .common import Outcome
from .pacing import CallingHours, Pacer

log = logging.getLogger(__name__)

DNC_DISPOSITIONS = frozenset({"do_not_call"})
DONE_CHECK_EVERY = 30.0  # s between "is anything left to call?" checks per campaign
MAX_CONTACTS = 200_000  # customers in one upload

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]|24:00")


def check_name(name: str, what: str = "campaign name") -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"invalid {what} {name!r}: letters, digits, '.', '_', '-', at most 64")
    return name


def check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Campaign settings checked and typed (ValueError says which one is wrong);
    None values are left out (the default, or what the campaign has)."""
    unknown = set(settings) - set(CAMPAIGN_SETTINGS)
    if unknown:
        raise ValueError(f"unknown campaign settings: {', '.join(sorted(unknown))}")
    out = {}
    for key, value in settings.items():
        if value is None:
            continue
        if key in ("hours_start", "hours_end"):
            if not isinstance(value, str) or not _HHMM.fullmatch(value):
                raise ValueError(f"{key} must be HH:MM (00:00-24:00), not {value!r}")
        elif key in ("days", "timezone"):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{key} must be text")
            value = value.strip()
        elif key in ("max_in_progress", "max_per_minute", "max_attempts"):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ValueError(f"{key} must be a whole number") from None
            if not 1 <= value <= 10_000:
                raise ValueError(f"{key} must be 1-10000")
        elif key == "retry_after":
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError("retry_after must be a number of seconds") from None
            if not 0 <= value <= 30 * 86400:
                raise ValueError("retry_after must be 0-30 days")
        out[key] = value
    # The hours, days and time zone must make calling hours the dialer can keep.
    merged = {**CAMPAIGN_SETTINGS, **out}
    CallingHours.parse(
        merged["hours_start"], merged["hours_end"], merged["days"], merged["timezone"]
    )
    return out


def contacts_from_csv(text: str, max_rows: int = MAX_CONTACTS) -> tuple[list[Contact], list[str]]:
    """A customer list (the same format as the one scripts are filled from, see
    ivr/scripts/customers.py) -> (contacts with normalised numbers, problems as
    'line N: why'). Other columns become the contact's fields (script variables)."""
    try:
        rows, problems = read_customers(text, "upload", max_rows)
    except CustomerFileError as exc:  # no header, no number column
        problems, rows = list(exc.problems), []
    contacts = [
        Contact(
            number=normalise(r.customer.number),
            name=r.customer.name[:200],
            fields=dict(r.customer.fields) or None,
        )
        for r in rows
    ]
    return contacts, [
        f"line {p.line}: {p.field + ': ' if p.field else ''}{p.reason}" if p.line else p.reason
        for p in problems
    ]


async def import_campaign(
    store: Any, name: str, project: str, csv_text: str, *, now: float | None = None, **settings: Any
) -> dict[str, Any]:
    """Create (or update) a campaign and add the CSV's customers to it.

    CSV: a customer list (see ``contacts_from_csv``). Returns counts and the
    lines that could not be used."""
    check_name(name)
    check_name(project, "project")
    checked = check_settings(settings)
    contacts, problems = contacts_from_csv(csv_text)
    if not contacts and problems:
        raise ValueError("; ".join(problems[:5]))
    campaign = await store.upsert_campaign(name, project, now=now, **checked)
    counts = await store.add_contacts(name, contacts, now=now)
    if counts["added"] and campaign["status"] == "done":
        await store.set_campaign_status(name, "active", now=now)  # new people to call
        campaign["status"] = "active"
    return {
        "campaign": campaign["name"],
        "project": campaign["project"],
        **counts,
        "invalid": len(problems),
        "problems": problems[:50],
    }


def dnc_on_wrapup(
    store: Any,
    save_wrapup: Callable[..., Awaitable[None]] | None = None,
    *,
    number_of: Callable[[str], str | None] | None = None,
    dispositions: Iterable[str] = DNC_DISPOSITIONS,
) -> Callable[..., Awaitable[None]]:
    """save_wrapup that also honours a do-not-call disposition.

    The number goes on the list first, then the wrap-up is saved: when the
    agent's console says "saved", both are durable (a crash in between leaves
    the number listed and the wrap-up to be saved again, never the reverse).
    number_of(call_id) gives the number when the store has not got the call
    yet (e.g. from the pop's card)."""
    save = save_wrapup or store.save_wrapup
    wanted = frozenset(dispositions)

    async def wrapped(call_id: str, agent: str, disposition: str, *args: Any, **kw: Any) -> None:
        if disposition in wanted:
            fallback = None
            if number_of is not None:
                try:
                    fallback = number_of(call_id)
                except Exception:
                    log.exception("number_of(%r) failed", call_id)
            listed = await store.add_dnc_for_call(
                call_id, disposition, number=fallback, added_by=agent
            )
            if listed:
                log.info("call %s: %s put %s on the do-not-call list", call_id, agent, listed)
            else:
                log.warning(
                    "call %s: 'do not call' chosen but the customer's number is "
                    "unknown; nothing listed",
                    call_id,
                )
        await save(call_id, agent, disposition, *args, **kw)

    return wrapped


class CampaignDialer(DialerBase):
    name = "campaign-dialer"

    def __init__(self, store: Any, ami: Any = None, **kw: Any):
        super().__init__(store, ami, **kw)
        self.pacers: dict[str, Pacer] = {}
        self._hours: dict[tuple, CallingHours] = {}
        self._done_checked: dict[str, float] = {}
        self._reset = False

    def pacer(self, campaign: dict[str, Any]) -> Pacer:
        p = self.pacers.get(campaign["name"])
        if p is None:
            p = self.pacers[campaign["name"]] = Pacer()
        # Settings may change while the campaign runs: the new limit holds from now.
        p.max_in_progress = int(campaign["max_in_progress"])
        p.max_per_minute = int(campaign["max_per_minute"])
        return p

    def hours(self, campaign: dict[str, Any]) -> CallingHours:
        key = tuple(campaign[k] for k in ("hours_start", "hours_end", "days", "timezone"))
        h = self._hours.get(key)
        if h is None:
            h = self._hours[key] = CallingHours.parse(*key)
        return h

    async def start(self) -> None:
        if not self._reset and self.standalone:
            n = await self.store.reset_dialling_contacts(self.clock())
            if n:
                log.warning(
                    "%d campaign contacts were being dialled when the service last "
                    "stopped; pending again",
                    n,
                )
            self._reset = True
        await super().start()

    async def tick(self) -> int:
        now = self.clock()
        started = 0
        for campaign in await self.store.list_campaigns(status="active", with_counts=False):
            try:
                hours = self.hours(campaign)
            except ValueError as exc:
                log.error(
                    "campaign %s: bad calling hours (%s); not dialling", campaign["name"], exc
                )
                continue
            if not hours.is_open(now):
                continue
            started += await self._dial(campaign, now)
        return started

    async def _dial(self, campaign: dict[str, Any], now: float) -> int:
        name, project = campaign["name"], campaign["project"]
        pacer = self.pacer(campaign)
        started = 0
        while pacer.can_place(now):
            agent = self.agents.pick(project)
            if agent is None:
                break
            call_id = new_call_id()
            contact = await self.store.claim_contact(
                name,
                now,
                exclude=self.guard.busy_numbers(),
                owner=self.owner,
                pbx=self.pbx,
                call_id=call_id,
                agent=agent,
            )
            if contact is None:
                await self._maybe_done(campaign, pacer, now)
                break
            number = contact["number"]
            if not self.guard.hold(number):  # became busy since the claim
                await self.store.finish_contact(
                    contact["id"],
                    "pending",
                    "number_busy",
                    next_at=now + 30,
                    count_attempt=False,
                    now=now,
                )
                continue
            self.agents.reserve(agent)
            pacer.placed(now)
            self._spawn(
                self._place(campaign, pacer, contact, agent, call_id), f"{name}-{contact['id']}"
            )
            started += 1
        return started

    async def _maybe_done(self, campaign: dict[str, Any], pacer: Pacer, now: float) -> None:
        name = campaign["name"]
        if pacer.in_progress or now - self._done_checked.get(name, 0.0) < DONE_CHECK_EVERY:
            return
        self._done_checked[name] = now
        if await self.store.campaign_open_contacts(name) == 0:
            log.info("campaign %s: every contact called; done", name)
            await self.store.set_campaign_status(name, "done", now=now)

    async def _place(
        self,
        campaign: dict[str, Any],
        pacer: Pacer,
        contact: dict[str, Any],
        agent: str,
        call_id: str,
    ) -> None:
        number = contact["number"]
        penalty = 0.0
        try:
            log.info(
                "campaign %s: calling %s for agent %s, attempt %d",
                campaign["name"],
                number,
                agent,
                contact["attempts"] + 1,
            )
            placed, outcome = await self._call(
                OutboundCall(
                    agent=agent,
                    number=number,
                    project=campaign["project"],
                    campaign=campaign["name"],
                    ring_seconds=self.ring_seconds,
                    call_id=call_id,
                )
            )
            penalty = await self.record(campaign, contact, outcome, agent, call_id)
        finally:
            self.guard.release(number)
            self.agents.release(agent, penalty)
            pacer.finished()

    async def record(
        self,
        campaign: dict[str, Any],
        contact: dict[str, Any],
        outcome: Outcome,
        agent: str | None,
        call_id: str | None,
    ) -> float:
        """Write how a call to a contact went; returns the agent's penalty (s)."""
        now = self.clock()
        penalty = 0.0
        kw: dict[str, Any] = {"call_id": call_id, "agent": agent, "now": now}
        if outcome.customer_reached:
            status, kw["next_at"] = "done", None
        elif outcome.agent_failed:
            penalty = self.agent_retry
            status, kw["next_at"], kw["count_attempt"] = "pending", now + 5.0, False
        elif contact["attempts"] + 1 >= int(campaign["max_attempts"]):
            status = "failed"
        else:
            status = "pending"
            kw["next_at"] = now + float(campaign["retry_after"])
        log.info(
            "campaign %s: %s %s -> %s", campaign["name"], contact["number"], outcome.result, status
        )
        await self._persist(
            f"contact {contact['id']}",
            lambda: self.store.finish_contact(contact["id"], status, outcome.result, **kw),
        )
        return penalty

    async def settle(
        self, contact_id: int, outcome: Outcome, agent: str | None, call_id: str | None
    ) -> None:
        """A claim left by a controller that died, settled from the PBX."""
        contact = await self.store.get_contact(contact_id)
        campaign = contact and await self.store.get_campaign(contact["campaign"])
        if contact is None or campaign is None:
            return
        await self.record(campaign, contact, outcome, agent, call_id)


__all__ = [
    "CAMPAIGN_SETTINGS",
    "CampaignDialer",
    "DNC_DISPOSITIONS",
    "check_name",
    "check_settings",
    "contacts_from_csv",
    "dnc_on_wrapup",
    "import_campaign",
]
