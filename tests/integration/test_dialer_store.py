"""Campaigns, the do-not-call list and both dialers on the real store (SQLite
and PostgreSQL), with a fake PBX and a fake clock."""
from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from ivr.calls.events import CallEnded
from ivr.calls.model import Call, CallState, Direction
from ivr.dialer import (AgentPool, CallbackDialer, CampaignDialer, NumberGuard, dnc_on_wrapup,
                        import_campaign)
from ivr.dialer.campaigns import contacts_from_csv
from ivr.outbound import OutboundCall, PlacedCall
from ivr.outcomes.store.campaigns import Contact
from ivr.scripts.customers import CustomerDirectory
from tests.store_fixtures import T0, make_call, postgres_cluster, store, store_url  # noqa: F401


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakePbx:
    """Places calls instantly; each ends after `duration` real seconds as the
    number's next scripted result says: answered, no_answer, busy, agent_miss."""

    def __init__(self, duration: float = 0.03):
        self.duration = duration
        self.script: dict[str, list[str]] = {}
        self.placed: list[OutboundCall] = []
        self.live: dict[str, OutboundCall] = {}
        self.peak = 0
        self.peak_per_number: dict[str, int] = {}
        self.listeners: list = []
        self._n = 0

    async def place(self, call: OutboundCall) -> PlacedCall:
        self._n += 1
        call_id = f"out-{self._n}"
        self.placed.append(call)
        self.live[call_id] = call
        self.peak = max(self.peak, len(self.live))
        same = sum(c.number == call.number for c in self.live.values())
        self.peak_per_number[call.number] = max(self.peak_per_number.get(call.number, 0), same)
        results = self.script.get(call.number) or ["answered"]
        result = results.pop(0) if len(results) > 1 else results[0]
        await asyncio.sleep(0)
        if result == "agent_miss":
            self._end(call_id, call, result)
            return PlacedCall(call_id, False, "agent's phone rang out")
        asyncio.get_running_loop().call_later(self.duration, self._end, call_id, call, result)
        return PlacedCall(call_id, True, "answered")

    def _end(self, call_id: str, call: OutboundCall, result: str) -> None:
        self.live.pop(call_id, None)
        c = Call(call_id=call_id, started_at=T0, direction=Direction.OUTBOUND,
                 state=CallState.ENDED, dialled=call.number, customer_num=call.number,
                 project=call.project, campaign=call.campaign, ended_at=T0 + 1)
        if result != "agent_miss":
            c.agent, c.agent_answered_at = call.agent, T0
        if result == "answered":
            c.answered_at = T0 + 0.5
        elif result == "busy":
            c.cause = 17
        for listener in self.listeners:
            listener(CallEnded(call=c, at=T0 + 1))


AGENTS = {"acme": ["1001", "1002", "1003", "1004"], "globex": ["2001"]}


def dialers(store, pbx, clock, *, busy=frozenset(), **kw):
    pool = AgentPool(lambda p: AGENTS.get(p, []), lambda a: a in busy, after_call_gap=0,
                     clock=clock)
    guard = NumberGuard()
    common = dict(place=pbx.place, agents=pool, guard=guard, clock=clock, agent_retry=20)
    campaigns = CampaignDialer(store, **common)
    callbacks = CallbackDialer(store, retry_spacing=(1200, 1800), max_attempts=3,
                               owner_grace=900, **common, **kw)
    pbx.listeners += [campaigns.on_call_event, callbacks.on_call_event]
    return campaigns, callbacks


async def run_until_idle(dialer, rounds: int = 400) -> None:
    """Tick every few ms until a tick places nothing and nothing is in progress."""
    for _ in range(rounds):
        started = await dialer.tick()
        if not started and not dialer.in_progress:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the dialer never went idle")


CSV = """Name;Phone;Plan
Kim Minji;+36 20 111 0001;basic
"Nagy, Bela";06-20-111-0002;plus
Duplicate;0036201110001;basic
;not a number;
Listed;+36 20 111 0003;basic
"""


async def test_csv_import_normalises_dedupes_and_flags_dnc(store):
    await store.add_dnc("+36 20 111 0003", "asked", now=T0)
    got = await import_campaign(store, "spring", "acme", CSV, now=T0, max_in_progress=3,
                                hours_start="08:00", timezone="Europe/Budapest")
    assert (got["added"], got["duplicates"], got["dnc"], got["invalid"]) == (3, 1, 1, 1)
    assert got["problems"] == ["line 5: number: 'not a number' is not a phone number; row skipped"]
    campaign = await store.get_campaign("spring")
    assert (campaign["project"], campaign["status"], campaign["max_in_progress"],
            campaign["hours_start"], campaign["timezone"]) == \
        ("acme", "active", 3, "08:00", "Europe/Budapest")
    assert campaign["contacts"]["pending"] == 2 and campaign["contacts"]["dnc"] == 1
    contacts = await store.list_contacts("spring")
    assert [(c["number"], c["name"], c["fields"], c["status"]) for c in contacts] == [
        ("36201110001", "Kim Minji", {"plan": "basic"}, "pending"),
        ("0620111000" "2", "Nagy, Bela", {"plan": "plus"}, "pending"),
        ("36201110003", "Listed", {"plan": "basic"}, "dnc")]
    # Importing again adds nothing; bad settings and files are refused.
    again = await import_campaign(store, "spring", "acme", CSV, now=T0)
    assert again["added"] == 0 and again["duplicates"] == 4
    for bad in ({"hours_start": "9am"}, {"timezone": "Nowhere/Land"}, {"max_in_progress": 0},
                {"days": "someday"}):
        with pytest.raises(ValueError):
            await import_campaign(store, "autumn", "acme", CSV, **bad)
    with pytest.raises(ValueError):
        await import_campaign(store, "autumn", "acme", "who,when\nx,y\n")
    with pytest.raises(ValueError):
        await import_campaign(store, "bad name!", "acme", CSV)
    assert await store.get_campaign("autumn") is None
    assert contacts_from_csv("number\n12345\n\n")[0] == [Contact("12345")]


TRICKY = ["+36 20 111 0001", "0036201110001", "12", "1" * 21, "(06) 20/111.0002",
          "\u0663\u0666\u0662\u0660\u0661\u0661", "555", "sip:1001"]


async def test_customer_list_campaign_dnc_and_dialer_agree_about_every_number(store, tmp_path):
    """Bug: the customer look-up took numbers of any length, the DNC list and the
    dialer 3-20 digits, and the two CSV readers had different header rules."""
    csv = "Phone;Name;Plan\n" + "".join(f"{n};Person {i};p{i}\n" for i, n in enumerate(TRICKY))
    (tmp_path / "c.csv").write_text(csv, encoding="utf-8")
    book = CustomerDirectory.from_csv(tmp_path / "c.csv")
    contacts, problems = contacts_from_csv(csv)
    for i, raw in enumerate(TRICKY):
        known = book.lookup(raw) is not None
        listed = any(c.name == f"Person {i}" for c in contacts)
        try:
            await store.add_dnc(raw, "test", now=T0)
            dnc = await store.is_dnc(raw)
        except ValueError:
            dnc = False
        guard = NumberGuard()
        diallable = guard.hold(raw)
        assert known == listed == dnc == diallable, raw
    # the same rows are refused for the same reasons, by line
    assert [f"line {p.line}: {p.field}: {p.reason}" for p in book.problems
            if "already on line" not in p.reason] == problems       # duplicates: see below
    assert [c.fields for c in contacts] == [{"plan": "p0"}, {"plan": "p1"}, {"plan": "p4"},
                                            {"plan": "p6"}]
    # ... and the first two are one number: one customer, and a duplicate contact
    assert book.lookup("36201110001").name == "Person 0" and len(book) == 3


async def test_claims_are_atomic_ordered_and_skip_busy_and_listed_numbers(store):
    await store.upsert_campaign("spring", "acme", now=T0)
    await store.add_contacts("spring", [Contact(f"3620000000{i}") for i in range(5)], now=T0)
    first = await store.claim_contact("spring", T0, exclude={"36200000000"})
    assert first["number"] == "36200000001" and first["status"] == "dialling"
    await store.add_dnc("36200000002", now=T0)
    both = await asyncio.gather(store.claim_contact("spring", T0),
                                store.claim_contact("spring", T0))
    assert sorted(c["number"] for c in both) == ["36200000000", "36200000003"]
    await store.finish_contact(first["id"], "pending", "no_answer", next_at=T0 + 600,
                               call_id="out-1", agent="1001", now=T0 + 5)
    last = await store.claim_contact("spring", T0 + 10)
    assert last["number"] == "36200000004"
    assert await store.claim_contact("spring", T0 + 10) is None      # the retry is not due
    retry = await store.claim_contact("spring", T0 + 600)
    assert retry["id"] == first["id"] and retry["attempts"] == 1
    got = await store.get_contact(first["id"])
    assert got["history"] == [{"at": T0 + 5, "status": "pending", "result": "no_answer",
                               "agent": "1001", "call_id": "out-1"}]
    assert await store.reset_dialling_contacts(T0 + 700) == 4
    assert (await store.get_campaign("spring"))["contacts"]["pending"] == 4


async def test_do_not_call_disposition_lists_the_number_and_cancels_what_is_pending(store):
    call = make_call("answered", "c1", number="36209999999")
    await store.upsert_call(call)
    await store.upsert_campaign("spring", "acme", now=T0)
    await store.add_contacts("spring", [Contact("36209999999")], now=T0)
    cb = await store.add_callback("c0", "+36209999999", "acme", due_at=T0, reason="abandoned")
    saved = []

    async def save(call_id, agent, disposition, notes="", callback_at=None, checklist=None):
        # The number is already listed when the wrap-up is saved.
        assert await store.is_dnc("36209999999")
        saved.append((call_id, agent, disposition))
        await store.save_wrapup(call_id, agent, disposition, notes, callback_at, checklist)

    wrapup = dnc_on_wrapup(store, save)
    await wrapup(call_id="c1", agent="1001", disposition="do_not_call", notes="never again")
    assert saved == [("c1", "1001", "do_not_call")]
    [entry] = await store.list_dnc()
    assert (entry["number"], entry["call_id"], entry["added_by"], entry["reason"]) == \
        ("36209999999", "c1", "1001", "do_not_call")
    assert (await store.get_callback(cb))["status"] == "cancelled"
    assert (await store.list_contacts("spring"))[0]["status"] == "dnc"
    assert (await store.get_call("c1"))["disposition"] == "do_not_call"
    # Other dispositions list nothing; a call the store has not got yet uses number_of.
    await dnc_on_wrapup(store)(call_id="c1", agent="1001", disposition="resolved")
    assert len(await store.list_dnc()) == 1
    await dnc_on_wrapup(store, number_of=lambda cid: "06 30 555 1234")(
        "unknown-call", "1002", "do_not_call")
    assert await store.is_dnc("0630 5551234")
    assert await store.remove_dnc("+36209999999") and not await store.is_dnc("36209999999")


async def test_campaign_pacing_is_never_exceeded(store):
    clock, pbx = Clock(), FakePbx(duration=0.03)
    campaigns, _ = dialers(store, pbx, clock)
    await store.upsert_campaign("spring", "acme", max_in_progress=2, max_per_minute=1000,
                                hours_start="00:00", hours_end="24:00", days="daily", now=T0)
    await store.add_contacts("spring", [Contact(f"362011100{i:02d}") for i in range(9)], now=T0)
    await run_until_idle(campaigns)
    assert len(pbx.placed) == 9 and pbx.peak == 2          # 4 agents free, the limit is 2
    assert campaigns.pacers["spring"].peak == 2
    assert {c.project for c in pbx.placed} == {"acme"}
    assert {c.campaign for c in pbx.placed} == {"spring"}
    got = await store.get_campaign("spring")
    assert got["contacts"]["done"] == 9
    clock.now += 60
    await campaigns.tick()                                  # nothing left: done
    assert (await store.get_campaign("spring"))["status"] == "done"


async def test_campaign_calls_per_minute_and_calling_hours(store):
    budapest = ZoneInfo("Europe/Budapest")
    monday_8am = dt.datetime(2024, 3, 4, 8, 0, tzinfo=budapest).timestamp()
    clock, pbx = Clock(monday_8am), FakePbx(duration=0.01)
    campaigns, _ = dialers(store, pbx, clock)
    await store.upsert_campaign("spring", "acme", max_in_progress=10, max_per_minute=3,
                                hours_start="09:00", hours_end="17:00", days="mon-fri",
                                timezone="Europe/Budapest", now=monday_8am)
    await store.add_contacts("spring", [Contact(f"362011100{i:02d}") for i in range(5)],
                             now=monday_8am)
    await run_until_idle(campaigns)
    assert pbx.placed == []                                 # 08:00 local: closed
    clock.now += 3600                                       # 09:00
    await run_until_idle(campaigns)
    assert len(pbx.placed) == 3                             # 3 a minute
    clock.now += 59
    await run_until_idle(campaigns)
    assert len(pbx.placed) == 3
    clock.now += 1
    await run_until_idle(campaigns)
    assert len(pbx.placed) == 5


async def test_campaign_retries_with_spacing_and_gives_up(store):
    clock, pbx = Clock(), FakePbx(duration=0.01)
    campaigns, _ = dialers(store, pbx, clock)
    await store.upsert_campaign("spring", "acme", max_attempts=3, retry_after=600,
                                hours_start="00:00", hours_end="24:00", days="daily", now=T0)
    await store.add_contacts("spring", [Contact("36201110001"), Contact("36201110002")], now=T0)
    pbx.script = {"36201110001": ["agent_miss", "no_answer", "busy", "no_answer"],
                  "36201110002": ["no_answer", "answered"]}
    await run_until_idle(campaigns)
    assert [c.number for c in pbx.placed] == ["36201110001", "36201110002"]
    clock.now += 5                                          # the agent's miss: again soon
    await run_until_idle(campaigns)
    assert len(pbx.placed) == 3 and pbx.placed[0].agent != pbx.placed[2].agent
    for _ in range(2):
        clock.now += 599
        await run_until_idle(campaigns)
        clock.now += 1
        await run_until_idle(campaigns)
    contacts = {c["number"]: c for c in await store.list_contacts("spring")}
    first, second = contacts["36201110001"], contacts["36201110002"]
    assert (first["status"], first["attempts"], first["last_result"]) == ("failed", 3, "no_answer")
    assert (second["status"], second["attempts"], second["last_result"]) == ("done", 2, "answered")
    history = (await store.get_contact(first["id"]))["history"]
    assert [h["result"] for h in history] == ["agent_no_answer", "no_answer", "busy", "no_answer"]
    assert [h["at"] - history[1]["at"] for h in history[1:]] == [0, 600, 1200]
    assert len(pbx.placed) == 6


async def test_callbacks_go_to_their_agent_then_anyone_and_retry(store):
    clock, pbx = Clock(), FakePbx(duration=0.01)
    busy = {"1001"}
    _, callbacks = dialers(store, pbx, clock, busy=busy)
    mine = await store.add_callback("c1", "36201110001", "acme", due_at=T0, agent="1001",
                                    reason="scheduled", now=T0)
    anyone = await store.add_callback("c2", "36201110002", "acme", due_at=T0 + 60,
                                      reason="abandoned", now=T0)
    await store.add_callback("c3", "36201110009", "acme", due_at=T0 + 3600, now=T0)
    pbx.script = {"36201110002": ["no_answer", "no_answer", "busy"]}
    await run_until_idle(callbacks)
    assert pbx.placed == []                         # 1001 is busy, the other is not due
    clock.now += 60
    await run_until_idle(callbacks)
    assert [(c.number, c.project, c.campaign) for c in pbx.placed] == \
        [("36201110002", "acme", "callback")]
    clock.now += 900                                # 1001 still busy after the grace: anyone
    await run_until_idle(callbacks)
    assert pbx.placed[1].number == "36201110001" and pbx.placed[1].agent != "1001"
    assert (await store.get_callback(mine))["status"] == "done"
    cb = await store.get_callback(anyone)
    assert (cb["status"], cb["attempts"], cb["due_at"]) == ("pending", 1, T0 + 60 + 1200)
    clock.now = T0 + 60 + 1200
    await run_until_idle(callbacks)
    clock.now += 1800
    await run_until_idle(callbacks)
    cb = await store.get_callback(anyone)
    assert (cb["status"], cb["attempts"], cb["last_result"]) == ("failed", 3, "busy")
    assert [h["result"] for h in cb["history"]] == ["no_answer", "no_answer", "busy"]
    assert all(h["call_id"] for h in cb["history"])


async def test_owner_gets_the_callback_when_free_and_dnc_cancels(store):
    clock, pbx = Clock(), FakePbx(duration=0.01)
    _, callbacks = dialers(store, pbx, clock)
    await store.add_callback("c1", "36201110001", "acme", due_at=T0, agent="1003",
                             reason="scheduled", now=T0)
    listed = await store.add_callback("c2", "36201110002", "acme", due_at=T0, now=T0)
    async with store.transaction() as tx:       # listed behind the store's back
        await tx.execute("INSERT INTO dnc (number, added_at) VALUES (?, ?)",
                         ["36201110002", T0])
    await run_until_idle(callbacks)
    assert [(c.number, c.agent) for c in pbx.placed] == [("36201110001", "1003")]
    got = await store.get_callback(listed)
    assert (got["status"], got["last_result"]) == ("cancelled", "do_not_call")


async def test_a_number_is_never_called_twice_at_once(store):
    clock, pbx = Clock(), FakePbx(duration=0.05)
    campaigns, callbacks = dialers(store, pbx, clock)
    number = "36201110001"
    await store.upsert_campaign("spring", "acme", max_in_progress=4, hours_start="00:00",
                                hours_end="24:00", days="daily", now=T0)
    await store.upsert_campaign("autumn", "acme", max_in_progress=4, hours_start="00:00",
                                hours_end="24:00", days="daily", now=T0)
    await store.add_contacts("spring", [Contact(number)], now=T0)
    await store.add_contacts("autumn", [Contact(number), Contact("36201110002")], now=T0)
    await store.add_callback("c1", number, "acme", due_at=T0, now=T0)
    for _ in range(100):
        await campaigns.tick()
        await callbacks.tick()
        await asyncio.sleep(0.004)
        if not pbx.live and not campaigns.in_progress and not callbacks.in_progress \
                and len(pbx.placed) == 4:
            break
    assert sorted(c.number for c in pbx.placed) == [number, number, number, "36201110002"]
    assert pbx.peak_per_number[number] == 1
    assert pbx.peak >= 2                          # other numbers did go in parallel
