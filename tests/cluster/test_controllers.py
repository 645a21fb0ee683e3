"""Two service instances, two sandbox PBXs, one PostgreSQL store (real processes).

- kill -9 of the instance following PBX east mid-call: the other takes east
  over within 5 s, keeps tracking the call, and the call is recorded once,
  with the times seen before the kill;
- a campaign dialled by both instances (each through its own PBX): every
  contact once, never a do-not-call number, and a number shared by two
  campaigns never called twice at once;
- a campaign call whose controller died and whose call ended while nobody
  followed the PBX is settled from the PBX's own note (answered: done, never
  dialled again) before the next instance dials anything.
"""
from __future__ import annotations

import asyncio
import time

import pytest

from ivr.dialer import import_campaign
from ivr.outcomes.store import open_store
from ivr.testing.phones import AgentPhone, CustomerPhone, call_customer
from tests.cluster.conftest import (Cluster, carrier_port, lease_holder, sip, wait_until)

pytestmark = pytest.mark.pbx

ALWAYS = dict(hours_start="00:00", hours_end="24:00", days="daily", timezone="UTC")


async def test_kill_9_of_a_controller_mid_call_the_other_takes_its_pbx_within_5_s(
        cluster: Cluster, postgres_cluster, tmp_path):
    a = cluster.instance("ctl-a", prefer=["east"]).start()
    b = cluster.instance("ctl-b", prefer=["west"]).start()
    await a.wait_log(r"PBX east: this instance \(ctl-a\) follows it now")
    await b.wait_log(r"PBX west: this instance \(ctl-b\) follows it now")
    await a.wait_web()
    store = await open_store(cluster.dsn)
    agent = await AgentPhone(sip(cluster.east), "1004", log_dir=tmp_path, ring_ms=300).astart()
    try:
        customer = call_customer(sip(cluster.east), "5550199", talk_ms=9000, log_dir=tmp_path)

        async def answered():
            rows = await store.list_calls(since=time.time() - 60, agent="1004")
            return next((r for r in rows if r["answered_at"] and r["state"] == "live"), None)
        before = await wait_until(answered, 20, "the call answered and recorded live by ctl-a")
        assert before["pbx"] == "east"
        assert lease_holder(postgres_cluster, cluster.dsn, "east") == "ctl-a"

        killed_at = time.monotonic()
        a.kill9()

        async def taken():
            return lease_holder(postgres_cluster, cluster.dsn, "east") == "ctl-b"
        await wait_until(taken, 5, "ctl-b holding PBX east's lease")
        # ... and following it: logged in, resynced, the live call adopted.
        await b.wait_log(r"PBX east: AMI resync: \d+ live channels, 1 calls in progress", 5)
        took = time.monotonic() - killed_at
        assert took < 5.0, f"takeover took {took:.1f} s"
        print(f"PBX east followed again {took:.2f} s after kill -9 of its controller")

        (await customer.wait_async(30)).check()

        async def ended():
            got = await store.get_call(before["call_id"])
            return got if got["state"] == "ended" else None
        after = await wait_until(ended, 15, "the call recorded as ended by ctl-b")
    finally:
        await agent.astop()
    assert (after["result"], after["agent"], after["pbx"]) == ("answered", "1004", "east")
    # Recorded once: the same row, with the moments ctl-a saw before it died.
    assert after["started_at"] == before["started_at"]
    assert after["answered_at"] == before["answered_at"]
    assert after["talk_seconds"] > 5
    rows = [r for r in await store.list_calls(since=time.time() - 120)
            if r["customer_num"] == before["customer_num"] and r["did"] == "5550199"]
    assert [r["call_id"] for r in rows] == [before["call_id"]]
    await store.close()


async def test_a_campaign_dialled_by_two_controllers_calls_every_contact_once(
        cluster: Cluster, tmp_path):
    store = await open_store(cluster.dsn)
    spring = [f"555710{i}" for i in range(1, 9)]
    shared = ["5557101", "5557102", "5557104"]         # also in the summer campaign
    summer = [*shared, "5557109"]
    await store.add_dnc("5557103", "asked not to be called")
    for name, numbers in (("spring", spring), ("summer", summer)):
        await import_campaign(store, name, "acme-telesales", "number\n" + "\n".join(numbers),
                              max_in_progress=2, max_per_minute=60, max_attempts=1, **ALWAYS)
    a = cluster.instance("dial-a", prefer=["east"]).start()
    b = cluster.instance("dial-b", prefer=["west"]).start()
    phones = [await AgentPhone(sip(cluster.east), ext, log_dir=tmp_path, ring_ms=300).astart()
              for ext in ("1001", "1003")]
    phones.append(await AgentPhone(sip(cluster.west), "1002", log_dir=tmp_path,
                                   ring_ms=300).astart())
    carriers = [await CustomerPhone(log_dir=tmp_path, local_port=carrier_port(pbx), ring_ms=400,
                                    talk_ms=1500).astart() for pbx in (cluster.east, cluster.west)]
    consoles = []
    try:
        await a.wait_web()
        await b.wait_web()
        # A dialer offers calls to agents signed in on its instance's console.
        consoles = [await cluster.console(a, "1001"), await cluster.console(a, "1003"),
                    await cluster.console(b, "1002")]

        async def all_called():
            open_ = [c for name in ("spring", "summer")
                     for c in await store.list_contacts(name)
                     if c["status"] in ("pending", "dialling")]
            return not open_
        await wait_until(all_called, 150, "every contact of both campaigns called", every=0.5)
    finally:
        for c in consoles:
            await c.close()
        for p in [*carriers, *phones]:
            await p.astop()
    for name, numbers in (("spring", spring), ("summer", summer)):
        contacts = {c["number"]: c for c in await store.list_contacts(name)}
        assert set(contacts) == set(numbers)
        for number, c in contacts.items():
            if number == "5557103":
                assert (c["status"], c["attempts"]) == ("dnc", 0)
            else:
                assert (c["status"], c["attempts"], c["last_result"]) == \
                    ("done", 1, "answered"), c
    calls = [r for r in await store.list_calls(since=time.time() - 600)
             if r["campaign"] in ("spring", "summer")]
    assert "5557103" not in {r["customer_num"] for r in calls}, "a do-not-call number was dialled"
    assert len(calls) == len(spring) - 1 + len(summer)
    # Both controllers dialled, each through the PBX it follows.
    assert {r["pbx"] for r in calls} == {"east", "west"}
    assert {r["agent"] for r in calls if r["pbx"] == "west"} == {"1002"}
    # A number in both campaigns: its two calls never overlapped.
    for number in shared:
        spans = sorted((r["started_at"], r["ended_at"]) for r in calls
                       if r["customer_num"] == number)
        assert len(spans) == 2 and spans[0][1] <= spans[1][0], (number, spans)
    await store.close()


async def test_a_claim_left_by_a_dead_controller_is_settled_from_the_pbx(
        cluster: Cluster, tmp_path):
    store = await open_store(cluster.dsn)
    await import_campaign(store, "autumn", "acme-telesales", "number\n5557201\n",
                          max_in_progress=1, max_attempts=3, retry_after=1.0, **ALWAYS)
    a = cluster.instance("first", prefer=["east", "west"]).start()
    agent = await AgentPhone(sip(cluster.east), "1001", log_dir=tmp_path, ring_ms=300).astart()
    customer = await CustomerPhone(log_dir=tmp_path, local_port=carrier_port(cluster.east),
                                   ring_ms=300, talk_ms=4000).astart()
    console = None
    try:
        await a.wait_web()
        console = await cluster.console(a, "1001")

        async def talking():
            [c] = await store.list_contacts("autumn")
            if c["status"] != "dialling":
                return None
            rows = await store.list_calls(since=time.time() - 60, agent="1001")
            return c if any(r["answered_at"] for r in rows) else None
        await wait_until(talking, 30, "the customer answered the campaign call")
        a.kill9()
        await console.close()
        console = None

        # The call ends while no instance follows PBX east.
        async def hung_up():
            out = await asyncio.to_thread(cluster.east.cli, "core show channels count")
            return "0 active channels" in out
        await wait_until(hung_up, 20, "the call over on the PBX", every=0.3)
        [c] = await store.list_contacts("autumn")
        assert c["status"] == "dialling", "nobody may settle the claim before a controller looks"

        nxt = cluster.instance("second", prefer=["east", "west"]).start()
        await nxt.wait_log(r"contact \d+ \(5557201\) was being dialled by first, which is gone; "
                           r"call out-\w+ ended: answered \(the PBX's note\)", 20)
        await nxt.wait_web()
        console = await cluster.console(nxt, "1001")
        await asyncio.sleep(4)       # time enough for a wrong retry (retry_after is 1 s)
    finally:
        if console is not None:
            await console.close()
        await customer.astop()
        await agent.astop()
    [c] = await store.list_contacts("autumn")
    assert (c["status"], c["attempts"], c["last_result"]) == ("done", 1, "answered")
    calls = [r for r in await store.list_calls(since=time.time() - 120)
             if r["campaign"] == "autumn"]
    assert len(calls) == 1, "the customer who answered was called again"
    await store.close()
