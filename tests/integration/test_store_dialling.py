"""Dialler claims shared by service instances, on SQLite and PostgreSQL.

Two stores opened on one database play two instances: they claim contacts
and callbacks concurrently; no row and no number is ever taken twice, a
result frees the number, and what a dead owner left is found per PBX.
"""
from __future__ import annotations

import asyncio

from ivr.outcomes.store import open_store
from ivr.outcomes.store.campaigns import Contact
from tests.store_fixtures import T0, make_call, postgres_cluster, store, store_url  # noqa: F401

NUMBERS = [f"3620{i:07d}" for i in range(40)]


async def _campaign(store, name: str, numbers: list[str]) -> None:
    await store.upsert_campaign(name, "acme", now=T0)
    await store.add_contacts(name, [Contact(n) for n in numbers], now=T0)


async def test_two_instances_claiming_at_once_never_take_one_contact_or_number_twice(
        store_url):
    a, b = await open_store(store_url), await open_store(store_url)
    try:
        await _campaign(a, "spring", NUMBERS)
        await _campaign(a, "summer", NUMBERS[:10])       # the same people in another campaign
        taken: list[tuple[str, str, str]] = []

        async def claimer(store, owner: str, campaign: str) -> None:
            for i in range(40):
                c = await store.claim_contact(campaign, T0 + 1, owner=owner, pbx=owner,
                                              call_id=f"{owner}-{campaign}-{i}", agent="1001")
                if c is None:
                    return
                taken.append((campaign, c["number"], owner))
        await asyncio.gather(claimer(a, "east", "spring"), claimer(b, "west", "spring"),
                             claimer(a, "east", "summer"), claimer(b, "west", "summer"))
        numbers = [n for _, n, _ in taken]
        # Every number held once at a time: no two claims of one number, whatever campaign.
        assert len(numbers) == len(set(numbers)) == len(NUMBERS)
        assert await a.numbers_being_dialled() == set(NUMBERS)
        # A result frees the number: the summer contact of that number can go now.
        spring = {c["number"]: c for c in await a.list_contacts("spring")}
        first = next(n for c, n, _ in taken if c == "spring" and n in NUMBERS[:10])
        await b.finish_contact(spring[first]["id"], "done", "answered", now=T0 + 2)
        assert first not in await a.numbers_being_dialled()
        again = await a.claim_contact("summer", T0 + 3, owner="east", pbx="east",
                                      call_id="east-again", agent="1001")
        assert again is not None and again["number"] == first
    finally:
        await a.close()
        await b.close()


async def test_a_callback_is_claimed_by_one_instance_and_its_number_is_held(store_url):
    a, b = await open_store(store_url), await open_store(store_url)
    try:
        cb = await a.add_callback(None, NUMBERS[0], "acme", due_at=T0, now=T0)
        got = await asyncio.gather(*(
            s.claim_callback(cb, NUMBERS[0], T0 + 1, owner=o, pbx=o, call_id=f"{o}-cb",
                             agent="1001") for s, o in ((a, "east"), (b, "west"))))
        assert sorted(got) == [False, True]
        # A campaign cannot dial that number while the callback is being placed.
        await _campaign(a, "spring", [NUMBERS[0]])
        assert await a.claim_contact("spring", T0 + 2, owner="east", pbx="east",
                                     call_id="c1", agent="1002") is None
        await a.mark_callback(cb, "done", "answered", call_id="x", now=T0 + 3)
        assert await a.numbers_being_dialled() == set()
        assert await a.claim_contact("spring", T0 + 4, owner="east", pbx="east",
                                     call_id="c2", agent="1002") is not None
    finally:
        await a.close()
        await b.close()


async def test_claims_left_by_dead_owners_are_found_per_pbx(store):
    await _campaign(store, "spring", NUMBERS[:3])
    for i, (owner, pbx) in enumerate((("dead", "east"), ("alive", "east"), ("dead", "west"))):
        await store.claim_contact("spring", T0 + 1, owner=owner, pbx=pbx, call_id=f"call-{i}",
                                  agent="1001")
    cb = await store.add_callback(None, NUMBERS[5], "acme", due_at=T0, now=T0)
    assert await store.claim_callback(cb, NUMBERS[5], T0 + 1, owner="dead", pbx="east",
                                      call_id="cb-call", agent="1003")
    left = await store.claims_on("east", not_owned_by={"alive"})
    assert sorted((c["kind"], c["call_id"], c["agent"]) for c in left) == \
        [("callback", "cb-call", "1003"), ("contact", "call-0", "1001")]
    # Adopted: the claim and its number are the new owner's.
    contact = next(c for c in left if c["kind"] == "contact")
    assert await store.adopt_claim(contact, "alive")
    assert [c["call_id"] for c in await store.claims_on("east", {"alive"})] == ["cb-call"]


async def test_calls_of_one_pbx_that_ended_unseen_are_closed_there_only(store):
    for call_id, pbx in (("e1", "east"), ("e2", "east"), ("w1", "west")):
        call = make_call("answered", call_id, ended=False)
        call.pbx = pbx
        await store.upsert_call(call)
    assert sorted(await store.live_call_ids("east")) == ["e1", "e2"]
    assert await store.close_interrupted_on("east", ["e2"], now=T0 + 9) == 1
    states = {c["call_id"]: (c["state"], c["pbx"]) for c in await store.list_calls()}
    assert states == {"e1": ("live", "east"), "e2": ("interrupted", "east"),
                      "w1": ("live", "west")}


async def test_a_call_adopted_after_a_takeover_keeps_the_moments_seen_before(store):
    call = make_call("answered", "c1", ended=False)
    await store.upsert_call(call)
    adopted = make_call("answered", "c1", ended=False, at=T0 + 40)     # seen later by another
    await store.upsert_call(adopted)
    got = await store.get_call("c1")
    assert (got["started_at"], got["answered_at"]) == (call.started_at, call.answered_at)
