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


async def both_on(console: Console, call_id: str, worker: str, since: float) -> dict:
    """Wait until both parties' taps are ok on ``worker`` after ``since``."""
    async def both():
        where = on_worker(console, call_id, worker, since)
        return where if len(where) == 2 else None
    return await wait_until(both, 10, f"both taps on {worker}")


def on_worker(console: Console, call_id: str, worker: str, since: float = 0.0) -> dict:
    """{speaker: when its tap was first ok on that worker (after `since`)}."""
    out: dict[str, float] = {}
    for at, m in taps(console, call_id):
        if at >= since and m["state"] == "ok" and f"speech worker {worker}" in m["reason"]:
            out.setdefault(m["speaker"], at)
    return out


SPEECH = {"enabled": True, "mode": "auto"}


async def speech_cluster(cluster: Cluster, nats_url: str, workers: list[str],
                         controllers: dict[str, list[str]]):
    """Speech workers, controllers (name -> PBXs preferred) without speech, a web front;
    returns them once every controller has heard every worker."""
    bus = {"bus": {"url": nats_url}}
    started = {name: cluster.instance(name, cluster={"roles": ["speech"]}, speech=SPEECH,
                                      tap={"host": "127.0.0.1", "port": free_port()},
                                      **bus).start() for name in workers}
    ctls = {name: cluster.instance(name, prefer=prefer, cluster={"roles": ["controller"]},
                                   speech=SPEECH, **bus).start()
            for name, prefer in controllers.items()}
    web = cluster.instance("web", cluster={"roles": ["web"]}, **bus).start()
    for name, worker in started.items():
        await worker.wait_log(rf"speech worker {name}: taps at", 90)
    for name, ctl in ctls.items():
        pbx = controllers[name][0]
        await ctl.wait_log(rf"PBX {pbx}: this instance \({name}\) follows it now", 30)
        for worker in workers:
            await ctl.wait_log(rf"speech worker {worker} at .* is up", 10)
    await web.wait_web()
    return started, ctls, web


async def korean_call(cluster: Cluster, console: Console, tmp_path, agent_pause: float):
    """The support queue's agent (1003, phone on east) greets, names the company, waits
    ``agent_pause`` s and thanks twice; the Korean caller is rude twice early on.
    Returns (agent phone, SIPp call, live card)."""
    agent_audio = lines_to_ulaw([1.0, "안녕하세요 에이스 텔레콤 고객센터입니다", agent_pause,
                                 "감사합니다", 1.5, "감사합니다", 5.0],
                                tmp_path / "agent.ulaw", voice="ko")
    talk = agent_pause + 20.0
    customer_audio = lines_to_ulaw([3.0, "바보", 1.5, "바보", talk - 8.0],
                                   tmp_path / "customer.ulaw", voice="ko")
    phone = await AgentPhone(sip(cluster.east), "1003", log_dir=tmp_path, ring_ms=500,
                             audio=agent_audio).astart()
    await asyncio.sleep(1.5)                         # her sign-in reaches the support queue
    call = call_customer(sip(cluster.east), "5550111", caller=KOREAN_CALLER,
                         talk_ms=int(talk * 1000), log_dir=tmp_path, audio=customer_audio)

    async def live():
        return next((m["card"] for m in console.messages if m.get("type") == "card"
                     and m["card"]["phase"] == "live"), None)
    card = await wait_until(live, 20, "the Korean support call live on the console")
    assert card["script"]["id"] == "acme-support-ko"
    return phone, call, card


def coached_before(console: Console, call_id: str) -> bool:
    """The calm card and the company named are on the agent's console."""
    prompts = [m for m in console.messages if m.get("type") == "prompt"
               and m.get("rule_id") == CALM_CARD]
    ticked = [m for m in console.messages if m.get("type") == "card" and m.get("card")
              and m["card"]["call_id"] == call_id
              and (m["card"]["checklist"].get("named_company") or {}).get("done")]
    return bool(prompts and ticked)


async def final_record(store, call_id: str) -> dict:
    async def recorded():
        got = await store.get_call(call_id)
        # The adherence score comes with the final coaching result (checkpoints have none).
        return got if got and got["state"] == "ended" and got["adherence_score"] is not None \
            else None
    return await wait_until(recorded, 20, "the call recorded with its coaching")


def assert_kept_and_went_on(record: dict, call_id: str, calls: list[dict]) -> None:
    """The card and tick from before, not twice; the thanks after, ticked; one record."""
    prompts = [p["rule_id"] for p in record["prompts"]]
    assert prompts.count(CALM_CARD) == 1, record["prompts"]
    assert record["checklist"]["named_company"]["done"]
    thanked = record["checklist"]["thanked"]
    assert thanked["done"] and thanked["by"] == "speech", thanked
    assert [r["call_id"] for r in calls].count(call_id) == 1


async def test_a_dead_speech_worker_s_taps_move_and_the_call_keeps_its_coaching(
        cluster: Cluster, nats_server, tmp_path):
    workers, _, web = await speech_cluster(cluster, nats_server.url, ["speech-a", "speech-b"],
                                           {"ctl": ["east", "west"]})
    store = await open_store(cluster.dsn)
    csilla = await cluster.console(web, "1003")
    phone, call, card = await korean_call(cluster, csilla, tmp_path, agent_pause=10.0)
    call_id = card["call_id"]
    try:
        # Coached on one worker: both taps there, the calm card and the company named.
        async def coached():
            return next((name for name in workers if len(on_worker(csilla, call_id, name)) == 2
                         and coached_before(csilla, call_id)), None)
        first = await wait_until(coached, 20, "both taps on one worker, the card and the tick")
        other = next(n for n in workers if n != first)
        killed_at = time.monotonic()
        await asyncio.to_thread(workers[first].kill9)

        where = await both_on(csilla, call_id, other, killed_at)
        took = {speaker: at - killed_at for speaker, at in where.items()}
        print(f"taps moved from {first} to {other} in "
              + ", ".join(f"{s} {t:.2f} s" for s, t in sorted(took.items())))
        assert max(took.values()) < 2.0, took
        (await call.wait_async(45)).check()
        record = await final_record(store, call_id)
    finally:
        await phone.astop()
        await csilla.close()
    assert_kept_and_went_on(record, call_id, await store.list_calls(since=time.time() - 300))
    await store.close()


async def test_a_call_keeps_its_coaching_when_its_controller_dies(
        cluster: Cluster, nats_server, tmp_path):
    """kill -9 the controller following the call's PBX: the standby takes the PBX, taps
    the call again (on the worker, which drops the dead controller's taps) with the
    coaching saved so far, and goes on coaching it."""
    _, ctls, web = await speech_cluster(cluster, nats_server.url, ["speech-a"],
                                        {"ctl-a": ["east"], "ctl-b": ["west"]})
    store = await open_store(cluster.dsn)
    csilla = await cluster.console(web, "1003")
    phone, call, card = await korean_call(cluster, csilla, tmp_path, agent_pause=14.0)
    call_id = card["call_id"]
    try:
        async def coached():
            return coached_before(csilla, call_id)
        await wait_until(coached, 20, "the calm card and the company named, on ctl-a")
        await asyncio.sleep(2.5)                     # a coaching checkpoint is in the store
        killed_at = time.monotonic()
        await asyncio.to_thread(ctls["ctl-a"].kill9)
        await ctls["ctl-b"].wait_log(r"PBX east: this instance \(ctl-b\) follows it now", 10)

        where = await both_on(csilla, call_id, "speech-a", killed_at)   # tapped by ctl-b
        print("tapped again after the controller's kill: "
              + ", ".join(f"{s} {at - killed_at:.2f} s" for s, at in sorted(where.items())))
        (await call.wait_async(50)).check()
        record = await final_record(store, call_id)
    finally:
        await phone.astop()
        await csilla.close()
    assert_kept_and_went_on(record, call_id, await store.list_calls(since=time.time() - 300))
    await store.close()
