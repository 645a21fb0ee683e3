"""Controllers and web fronts as separate processes over NATS (real processes).

Two controllers (one per PBX), two web fronts, one NATS server, one
PostgreSQL store:
- calls on both PBXs pop on the agents' consoles, whichever web front they
  signed in on (the sign-in to a queue is made by the controller of the
  agent's PBX); the wrap-up saved on a web front is in the store;
- NATS restarted while a call starts: every instance reconnects, the call
  still pops on the console, and it is recorded;
- a controller's dialer calls for an agent whose console is open on a web
  front (presence), and again once the wrap-up saved there has freed them;
- a supervisor signed in on a web front listens in on a call of a PBX: the
  controller following that PBX rings the supervisor's phone (and nothing but
  such actions is made for a web front), and the agent's console on the other
  web front is told.
"""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from ivr.ami.client import AmiError
from ivr.bus import create_bus
from ivr.cluster.roles import BusAmi
from ivr.dialer import import_campaign
from ivr.outcomes.store import open_store
from ivr.testing.phones import AgentPhone, CustomerPhone, call_customer
from tests.cluster.conftest import Cluster, Console, carrier_port, sip, wait_until

pytestmark = pytest.mark.pbx


def cards(console: Console, call_id: str | None = None, phase: str | None = None) -> list[dict]:
    out = [m["card"] for m in console.messages if m.get("type") == "card" and m.get("card")]
    for m in console.messages:
        if m.get("type") == "hello":
            out += m.get("cards") or []
    return [c for c in out if (call_id is None or c["call_id"] == call_id)
            and (phase is None or c["phase"] == phase)]


async def start_roles(cluster: Cluster, nats_url: str):
    bus = {"bus": {"url": nats_url}}
    east = cluster.instance("ctl-east", prefer=["east"], cluster={"roles": ["controller"]},
                            **bus).start()
    west = cluster.instance("ctl-west", prefer=["west"], cluster={"roles": ["controller"]},
                            **bus).start()
    web1 = cluster.instance("web-1", cluster={"roles": ["web"]}, **bus).start()
    web2 = cluster.instance("web-2", cluster={"roles": ["web"]}, **bus).start()
    await east.wait_log(r"PBX east: this instance \(ctl-east\) follows it now")
    await west.wait_log(r"PBX west: this instance \(ctl-west\) follows it now")
    await web1.wait_web()
    await web2.wait_web()
    return east, west, web1, web2


async def test_calls_on_both_pbxs_pop_on_consoles_of_either_web_front(
        cluster: Cluster, nats_server, tmp_path):
    east, west, web1, web2 = await start_roles(cluster, nats_server.url)
    store = await open_store(cluster.dsn)
    dora = await cluster.console(web1, "1004")       # her phone is on PBX east
    bela = await cluster.console(web2, "1002")       # his on PBX west (sales queue)
    phones = [await AgentPhone(sip(cluster.east), "1004", log_dir=tmp_path, ring_ms=600).astart(),
              await AgentPhone(sip(cluster.west), "1002", log_dir=tmp_path, ring_ms=600).astart()]
    try:
        to_dora = call_customer(sip(cluster.east), "5550199", talk_ms=3000, log_dir=tmp_path,
                                name="to-dora")
        await asyncio.sleep(1.0)      # Bela's sign-in (forwarded to west's controller) lands
        to_bela = call_customer(sip(cluster.west), "5550122", talk_ms=3000, log_dir=tmp_path,
                                name="to-bela")

        async def popped(console: Console, did: str):
            return next((c for c in cards(console) if c["did"] == did
                         and c["phase"] == "live"), None)
        dora_card = await wait_until(lambda: popped(dora, "5550199"), 20,
                                     "the east call live on web-1's console")
        bela_card = await wait_until(lambda: popped(bela, "5550122"), 20,
                                     "the west call (sales queue) live on web-2's console")
        assert dora_card["script"] and bela_card["script"]
        # Each console sees its own calls only.
        assert not cards(dora, bela_card["call_id"]) and not cards(bela, dora_card["call_id"])
        (await to_dora.wait_async(30)).check()
        (await to_bela.wait_async(30)).check()

        async def wrapped(call_id: str):
            got = await store.get_call(call_id)
            return got if got and got["wrapped_up_at"] and got["state"] == "ended" else None
        # The console helper wraps up as soon as the card asks for it (web front -> store).
        dora_rec = await wait_until(lambda: wrapped(dora_card["call_id"]), 15, "east wrap-up")
        bela_rec = await wait_until(lambda: wrapped(bela_card["call_id"]), 15, "west wrap-up")
    finally:
        for p in phones:
            await p.astop()
        await dora.close()
        await bela.close()
    assert (dora_rec["pbx"], dora_rec["wrapped_up_by"], dora_rec["result"]) == \
        ("east", "1004", "answered")
    assert (bela_rec["pbx"], bela_rec["wrapped_up_by"], bela_rec["result"]) == \
        ("west", "1002", "answered")
    await store.close()


async def test_nats_restarted_instances_reconnect_and_nothing_is_lost(
        cluster: Cluster, nats_server, tmp_path):
    east, west, web1, web2 = await start_roles(cluster, nats_server.url)
    store = await open_store(cluster.dsn)
    dora = await cluster.console(web2, "1004")
    phone = await AgentPhone(sip(cluster.east), "1004", log_dir=tmp_path, ring_ms=400).astart()
    try:
        # NATS goes away; a call starts meanwhile; NATS comes back.
        await asyncio.to_thread(nats_server.kill)
        started = time.time()
        call = call_customer(sip(cluster.east), "5550199", talk_ms=8000, log_dir=tmp_path)
        await asyncio.sleep(1.5)
        await asyncio.to_thread(nats_server.start)

        async def live_card():
            return next((c for c in cards(dora) if c["project"] == "acme-key-accounts"
                         and c["phase"] == "live" and c["started_at"] >= started - 1), None)
        card = await wait_until(live_card, 15, "the call popped on the console after NATS came back")
        for svc in (east, web2):
            await svc.wait_log(r"bus: NATS connection back", 10)
        (await call.wait_async(30)).check()

        async def recorded():
            got = await store.get_call(card["call_id"])
            return got if got and got["state"] == "ended" and got["wrapped_up_at"] else None
        rec = await wait_until(recorded, 15, "the call recorded and wrapped up")
    finally:
        await phone.astop()
        await dora.close()
    assert (rec["pbx"], rec["agent"], rec["result"]) == ("east", "1004", "answered")
    # One pop for that call on the console (no duplicate card from the replay).
    ids = {c["call_id"] for c in cards(dora) if c["started_at"] >= started - 1}
    assert ids == {card["call_id"]}
    await store.close()


async def test_a_controller_dials_for_an_agent_whose_console_is_on_a_web_front(
        cluster: Cluster, nats_server, tmp_path):
    """Presence crosses the bus (the dialer offers calls to agents with an open
    console) and so do wrap-ups (the agent is free for the next call)."""
    store = await open_store(cluster.dsn)
    await import_campaign(store, "winter", "acme-telesales", "number\n5557301\n5557302\n",
                          max_in_progress=1, max_per_minute=60, max_attempts=1,
                          hours_start="00:00", hours_end="24:00", days="daily", timezone="UTC")
    east, west, web1, web2 = await start_roles(cluster, nats_server.url)
    phone = await AgentPhone(sip(cluster.east), "1001", log_dir=tmp_path, ring_ms=300).astart()
    carrier = await CustomerPhone(log_dir=tmp_path, local_port=carrier_port(cluster.east),
                                  ring_ms=300, talk_ms=1500).astart()
    anna = None
    try:
        await asyncio.sleep(3)
        assert await store.list_contacts("winter", status="done") == [], \
            "dialled for an agent whose console is not open anywhere"
        anna = await cluster.console(web2, "1001")

        async def both_done():
            done = await store.list_contacts("winter", status="done")
            return len(done) == 2
        await wait_until(both_done, 60, "both contacts called for the agent on web-2", every=0.3)
    finally:
        if anna is not None:
            await anna.close()
        await carrier.astop()
        await phone.astop()
    calls = [r for r in await store.list_calls(since=time.time() - 120) if r["campaign"] == "winter"]
    assert sorted((r["customer_num"], r["pbx"], r["agent"]) for r in calls) == \
        [("5557301", "east", "1001"), ("5557302", "east", "1001")]
    assert [status for _, status in anna.wrapped] == [200, 200]
    await store.close()


async def test_a_transfer_asked_on_a_web_front_is_made_by_the_pbx_s_controller(
        cluster: Cluster, nats_server, tmp_path):
    east, west, web1, web2 = await start_roles(cluster, nats_server.url)
    store = await open_store(cluster.dsn)
    dora = await cluster.console(web1, "1004")
    phone = await AgentPhone(sip(cluster.east), "1004", log_dir=tmp_path, ring_ms=300).astart()
    try:
        call = call_customer(sip(cluster.east), "5550199", talk_ms=8000, log_dir=tmp_path)

        async def live():
            return next((c for c in cards(dora, phase="live")
                         if c["project"] == "acme-key-accounts"), None)
        card = await wait_until(live, 20, "the call live on web-1's console")
        [hello] = [m for m in dora.messages if m.get("type") == "hello"]
        assert "support" in hello["departments"]          # asked of a controller over NATS
        # web-1 has no AMI: the controller following east makes the Redirect.
        r = await dora.http.post(f"/api/calls/{card['call_id']}/transfer",
                                 json={"department": "support"})
        assert r.status == 200, await r.text()
        (await call.wait_async(30)).check()

        async def recorded():
            got = await store.get_call(card["call_id"])
            return got if got and got["state"] == "ended" else None
        rec = await wait_until(recorded, 15, "the transferred call recorded")
    finally:
        await phone.astop()
        await dora.close()
    assert [(t["kind"], t["target"]) for t in rec["transfers"]] == [("queue", "support")]
    assert rec["queue"] == "support"
    await store.close()


async def test_a_supervisor_on_a_web_front_listens_in_through_the_pbx_s_controller(
        cluster: Cluster, nats_server, tmp_path):
    east, west, web1, web2 = await start_roles(cluster, nats_server.url)
    store = await open_store(cluster.dsn)
    dora = await cluster.console(web1, "1004")
    boss = await cluster.console(web2, "boss")
    phone = await AgentPhone(sip(cluster.east), "1004", log_dir=tmp_path, ring_ms=300).astart()
    sup_phone = await AgentPhone(sip(cluster.east), "1099", password="super1099",
                                 log_dir=tmp_path, ring_ms=400).astart()
    try:
        call = call_customer(sip(cluster.east), "5550199", talk_ms=12000, log_dir=tmp_path)

        async def live():
            return next((c for c in cards(dora, phase="live")
                         if c["project"] == "acme-key-accounts"), None)
        card = await wait_until(live, 20, "the call live on web-1's console")
        call_id = card["call_id"]
        r = await boss.http.post(f"/api/calls/{call_id}/monitor", json={"mode": "listen"})
        assert r.status == 202, await r.text()

        async def told():
            return next((m for m in dora.messages if m.get("type") == "monitor"
                         and m.get("call_id") == call_id and m.get("active")), None)
        notice = await wait_until(told, 15, "the agent told that her supervisor listens")
        assert notice["mode"] == "listen" and notice["supervisor"] == "Sara Supervisor"
        r = await boss.http.post(f"/api/calls/{call_id}/monitor/stop", json={})
        assert r.status == 202, await r.text()
        # Only what a console needs crosses: a web front cannot have a controller
        # originate anywhere else or hang up a channel that is no call's.
        bus_ami = BusAmi(web_bus := create_bus(nats_server.url, "probe"), "east", timeout=5)
        await web_bus.start()
        try:
            with pytest.raises(AmiError, match="refused"):
                await bus_ami.originate(Channel="PJSIP/1001", Context="from-internal",
                                        Exten="0999", Priority="1")
            with pytest.raises(AmiError, match="refused"):
                await bus_ami.send({"Action": "Hangup", "Channel": "PJSIP/1001-0000beef"})
            with pytest.raises(AmiError, match="refused"):
                await bus_ami.send({"Action": "Command", "Command": "core stop now"})
        finally:
            await web_bus.close()
        (await call.wait_async(30)).check()

        async def recorded():
            got = await store.get_call(call_id)
            return got if got and got["state"] == "ended" and got["monitors"] else None
        rec = await wait_until(recorded, 15, "the call recorded with its monitoring")
    finally:
        await sup_phone.astop()
        await phone.astop()
        await dora.close()
        await boss.close()
    assert [(m["supervisor"], m["mode"], m["agent"]) for m in rec["monitors"]] == \
        [("boss", "listen", "1004")]
    await store.close()


async def test_a_sign_in_on_one_web_front_holds_on_the_other_and_a_sign_out_ends_it_on_both(
        cluster: Cluster, nats_server, tmp_path):
    """Sessions live in the shared store (with the key that signs their cookies): a
    load balancer may send an agent's next request to either web front."""
    east, west, web1, web2 = await start_roles(cluster, nats_server.url)
    jar = aiohttp.CookieJar(unsafe=True)       # one browser: its cookie goes to either front
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        r = await http.post(f"{web1.base}/api/login", headers={"Origin": web1.base},
                            json={"login": "1002", "secret": cluster.secrets["1002"]})
        assert r.status == 200, await r.text()
        value = {c.key: c.value for c in jar}["ivr_session"]
        for front in (web1, web2):
            async with http.ws_connect(f"{front.base}/ws", headers={"Origin": front.base}) as ws:
                hello = await ws.receive_json(timeout=10)
                assert hello["type"] == "hello" and hello["user"]["login"] == "1002", hello
        r = await http.post(f"{web2.base}/api/logout", headers={"Origin": web2.base}, json={})
        assert r.status == 200, await r.text()
        # A web front is healthy without an AMI of its own: its store and its bus.
        r = await http.get(f"{web1.base}/api/health")
        health = await r.json()
        assert r.status == 200 and set(health["components"]) == {"store", "bus"}, health
    # Signed out on web-2: the cookie, replayed on web-1 where it was issued, is refused.
    async with aiohttp.ClientSession(cookies={"ivr_session": value}) as http:
        async with http.ws_connect(f"{web1.base}/ws", headers={"Origin": web1.base}) as ws:
            msg = await ws.receive(timeout=10)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
            assert ws.close_code == 4401 or msg.data == 4401, (msg, ws.close_code)
