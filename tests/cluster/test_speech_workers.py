"""Speech workers as a pool (real processes): a controller without speech, two
speech workers (`ivr serve --role speech`, each with the Korean Vosk model), a web
front, NATS, PostgreSQL and the sandbox Asterisk; SIPp phones speak Korean.

kill -9 the worker a call's taps are on, mid-call: both parties' taps move to the
other worker within 2 s (as the agent's console shows them), the call keeps the
prompt and tick it had, a phrase said after the move is still ticked, and the
call is recorded once with its coaching.
"""
from __future__ import annotations

import asyncio
import time

import pytest

from ivr.outcomes.store import open_store
from ivr.testing.phones import AgentPhone, call_customer
from ivr.testing.speech import lines_to_ulaw
from tests.cluster.conftest import Cluster, Console, sip, wait_until
from tests.conftest import free_port

pytestmark = pytest.mark.pbx

KOREAN_CALLER = "821012345678"  # scripts/customers.csv: the Korean support script pops
CALM_CARD = "customer_abusive"


def taps(console: Console, call_id: str) -> list[tuple[float, dict]]:
    return [(m["_at"], m) for m in console.messages
            if m.get("type") == "tap" and m.get("call_id") == call_id]


def on_worker(console: Console, call_id: str, worker: str, since: float = 0.0) -> dict:
    """{speaker: when its tap was first ok on that worker (after `since`)}."""
    out: dict[str, float] = {}
    for at, m in taps(console, call_id):
        if at >= since and m["state"] == "ok" and f"speech worker {worker}" in m["reason"]:
            out.setdefault(m["speaker"], at)
    return out


async def test_a_dead_speech_worker_s_taps_move_and_the_call_keeps_its_coaching(
        cluster: Cluster, nats_server, tmp_path):
    bus = {"bus": {"url": nats_server.url}}
    speech = {"enabled": True, "mode": "auto"}
    workers = {
        name: cluster.instance(name, cluster={"roles": ["speech"]}, speech=speech,
                               tap={"host": "127.0.0.1", "port": free_port()}, **bus).start()
        for name in ("speech-a", "speech-b")
    }
    ctl = cluster.instance("ctl", prefer=["east", "west"], cluster={"roles": ["controller"]},
                           speech=speech, **bus).start()
    web = cluster.instance("web", cluster={"roles": ["web"]}, **bus).start()
    for name, worker in workers.items():
        await worker.wait_log(rf"speech worker {name}: taps at", 90)
    await ctl.wait_log(r"PBX east: this instance \(ctl\) follows it now", 30)
    await ctl.wait_log(r"speech worker speech-a at .* is up", 10)
    await ctl.wait_log(r"speech worker speech-b at .* is up", 10)
    await web.wait_web()
    store = await open_store(cluster.dsn)
    csilla = await cluster.console(web, "1003")      # the support queue's agent, phone on east

    agent_audio = lines_to_ulaw([1.0, "안녕하세요 에이스 텔레콤 고객센터입니다", 10.0,
                                 "감사합니다", 1.5, "감사합니다", 5.0],
                                tmp_path / "agent.ulaw", voice="ko")
    customer_audio = lines_to_ulaw([3.0, "바보", 1.5, "바보", 22.0],
                                   tmp_path / "customer.ulaw", voice="ko")
    phone = await AgentPhone(sip(cluster.east), "1003", log_dir=tmp_path, ring_ms=500,
                             audio=agent_audio).astart()
    try:
        await asyncio.sleep(1.5)                     # her sign-in reaches the support queue
        call = call_customer(sip(cluster.east), "5550111", caller=KOREAN_CALLER,
                             talk_ms=30000, log_dir=tmp_path, audio=customer_audio)

        async def live():
            return next((m["card"] for m in csilla.messages if m.get("type") == "card"
                         and m["card"]["phase"] == "live"), None)
        card = await wait_until(live, 20, "the Korean support call live on the console")
        call_id = card["call_id"]
        assert card["script"]["id"] == "acme-support-ko"

        # Coached on one worker: both taps there, the calm card and the company named.
        async def coached():
            for name in workers:
                where = on_worker(csilla, call_id, name)
                if len(where) == 2:
                    prompts = [m for m in csilla.messages if m.get("type") == "prompt"
                               and m.get("rule_id") == CALM_CARD]
                    marks = [m for m in csilla.messages if m.get("type") == "card"
                             and m.get("card") and m["card"]["call_id"] == call_id
                             and (m["card"]["checklist"].get("named_company") or {}).get("done")]
                    return name if prompts and marks else None
            return None
        first = await wait_until(coached, 20, "both taps on one worker, the card and the tick")
        other = next(n for n in workers if n != first)
        killed_at = time.monotonic()
        await asyncio.to_thread(workers[first].kill9)

        async def moved():
            where = on_worker(csilla, call_id, other, since=killed_at)
            return where if len(where) == 2 else None
        where = await wait_until(moved, 10, f"both taps moved to {other}")
        took = {speaker: at - killed_at for speaker, at in where.items()}
        print(f"taps moved from {first} to {other} in "
              + ", ".join(f"{s} {t:.2f} s" for s, t in sorted(took.items())))
        assert max(took.values()) < 2.0, took

        (await call.wait_async(45)).check()

        async def recorded():
            got = await store.get_call(call_id)
            # The adherence score comes with the final coaching result (checkpoints have none).
            return got if got and got["state"] == "ended" and got["adherence_score"] is not None \
                else None
        record = await wait_until(recorded, 20, "the call recorded with its coaching")
    finally:
        await phone.astop()
        await csilla.close()
    prompts = {p["rule_id"] for p in record["prompts"]}
    assert CALM_CARD in prompts, record["prompts"]                 # raised before the kill
    assert record["checklist"]["named_company"]["done"]            # ticked before it
    thanked = record["checklist"]["thanked"]                       # said after the move
    assert thanked["done"] and thanked["by"] == "speech", thanked
    assert len([r for r in await store.list_calls(since=time.time() - 300)
                if r["call_id"] == call_id]) == 1
    await store.close()


async def test_a_call_keeps_its_coaching_when_its_controller_dies(
        cluster: Cluster, nats_server, tmp_path):
    """kill -9 the controller following the call's PBX: the standby takes the PBX, taps
    the call again (on the worker, which drops the dead controller's taps) with the
    coaching saved so far, and goes on coaching it."""
    bus = {"bus": {"url": nats_server.url}}
    speech = {"enabled": True, "mode": "auto"}
    worker = cluster.instance("speech-a", cluster={"roles": ["speech"]}, speech=speech,
                              tap={"host": "127.0.0.1", "port": free_port()}, **bus).start()
    ctl_a = cluster.instance("ctl-a", prefer=["east"], cluster={"roles": ["controller"]},
                             speech=speech, **bus).start()
    ctl_b = cluster.instance("ctl-b", prefer=["west"], cluster={"roles": ["controller"]},
                             speech=speech, **bus).start()
    web = cluster.instance("web", cluster={"roles": ["web"]}, **bus).start()
    await worker.wait_log(r"speech worker speech-a: taps at", 90)
    await ctl_a.wait_log(r"PBX east: this instance \(ctl-a\) follows it now", 30)
    await ctl_b.wait_log(r"PBX west: this instance \(ctl-b\) follows it now", 30)
    for ctl in (ctl_a, ctl_b):
        await ctl.wait_log(r"speech worker speech-a at .* is up", 10)
    await web.wait_web()
    store = await open_store(cluster.dsn)
    csilla = await cluster.console(web, "1003")
    agent_audio = lines_to_ulaw([1.0, "안녕하세요 에이스 텔레콤 고객센터입니다", 14.0,
                                 "감사합니다", 1.5, "감사합니다", 5.0],
                                tmp_path / "agent.ulaw", voice="ko")
    customer_audio = lines_to_ulaw([3.0, "바보", 1.5, "바보", 26.0],
                                   tmp_path / "customer.ulaw", voice="ko")
    phone = await AgentPhone(sip(cluster.east), "1003", log_dir=tmp_path, ring_ms=500,
                             audio=agent_audio).astart()
    try:
        await asyncio.sleep(1.5)
        call = call_customer(sip(cluster.east), "5550111", caller=KOREAN_CALLER,
                             talk_ms=34000, log_dir=tmp_path, audio=customer_audio)

        async def live():
            return next((m["card"] for m in csilla.messages if m.get("type") == "card"
                         and m["card"]["phase"] == "live"), None)
        card = await wait_until(live, 20, "the Korean support call live on the console")
        call_id = card["call_id"]

        async def coached():
            prompts = [m for m in csilla.messages if m.get("type") == "prompt"
                       and m.get("rule_id") == CALM_CARD]
            ticked = [m for m in csilla.messages if m.get("type") == "card" and m.get("card")
                      and (m["card"]["checklist"].get("named_company") or {}).get("done")]
            return bool(prompts and ticked)
        await wait_until(coached, 20, "the calm card and the company named, on ctl-a")
        await asyncio.sleep(2.5)                     # a coaching checkpoint is in the store
        killed_at = time.monotonic()
        await asyncio.to_thread(ctl_a.kill9)
        await ctl_b.wait_log(r"PBX east: this instance \(ctl-b\) follows it now", 10)

        async def tapped_again():
            where = on_worker(csilla, call_id, "speech-a", since=killed_at)
            return where if len(where) == 2 else None
        where = await wait_until(tapped_again, 10, "both parties tapped again by ctl-b")
        print("tapped again after the controller's kill: "
              + ", ".join(f"{s} {at - killed_at:.2f} s" for s, at in sorted(where.items())))
        (await call.wait_async(50)).check()

        async def recorded():
            got = await store.get_call(call_id)
            return got if got and got["state"] == "ended" and got["adherence_score"] is not None \
                else None
        record = await wait_until(recorded, 20, "the call recorded with its coaching")
    finally:
        await phone.astop()
        await csilla.close()
    assert CALM_CARD in {p["rule_id"] for p in record["prompts"]}, record["prompts"]
    assert [p["rule_id"] for p in record["prompts"]].count(CALM_CARD) == 1   # not raised twice
    assert record["checklist"]["named_company"]["done"]
    thanked = record["checklist"]["thanked"]
    assert thanked["done"] and thanked["by"] == "speech", thanked
    assert len([r for r in await store.list_calls(since=time.time() - 300)
                if r["call_id"] == call_id]) == 1
    await store.close()
