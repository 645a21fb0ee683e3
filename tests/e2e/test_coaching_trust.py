"""Coaching an agent can trust, on the real stack: SIPp phones speaking whole sentences
(espeak-ng Korean), the sandbox Asterisk, per-party taps, the Korean Vosk model, the
rules, the console in Chromium, the store.

* an innocent customer sentence raises no card; a script phrase said inside a longer
  sentence ticks its item;
* an English script with only the Korean model: "can't check", never "missed";
* the store unwritable mid-call: no coaching result lost, and /api/health says so.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from ivr.calls.events import AgentAnswered, CallEnded
from ivr.testing.phones import AgentPhone, call_customer
from ivr.testing.speech import lines_to_ulaw
from tests.e2e.conftest import sign_in
from tests.integration.conftest import sign_in_agents
from tests.e2e.test_coaching import (CALM_CARD, COMPANY_ITEM, COMPANY_PROMPT, korean_console,  # noqa: F401
                                     run_call, sip, speech_file)

pytestmark = pytest.mark.pbx


async def test_innocent_sentences_raise_no_card_and_a_phrase_inside_a_sentence_ticks(
        pbx, korean_console, browser, tmp_path, artifacts):
    svc = korean_console
    page = await sign_in(browser, svc, "1001")

    async def during(call_id, card):
        await card.locator(f".checklist label.done[data-item='{COMPANY_ITEM}']").wait_for(
            timeout=15000)
        await asyncio.sleep(14)                  # the customer's sentences, spoken twice
        await page.screenshot(path=str(artifacts / "console-innocent-customer.png"),
                              full_page=True)
        assert await card.locator(f".prompt[data-rule='{CALM_CARD}']").count() == 0

    call_id, card, record = await run_call(
        pbx, svc, page, tmp_path,
        agent_lines=[1.0, "안녕하세요 에이스 텔레콤 고객센터 김민수입니다 무엇을 도와드릴까요", 9.0],
        customer_lines=[7.0, "여보세요 요금이 너무 많이 나왔어요", 1.5,
                        "바로 확인해 주실 수 있나요", 1.5, "지난달 청구서가 좀 이상해요", 2.0],
        talk_ms=30000, during=during)
    prompts = {p["rule_id"] for p in record["prompts"]}
    assert CALM_CARD not in prompts and COMPANY_PROMPT not in prompts
    # The brand word inside the whole greeting, and the agent's name inside "김민수입니다".
    for item in (COMPANY_ITEM, "gave_own_name", "greeted"):
        got = record["checklist"][item]
        assert got["done"] and got["by"] == "speech" and got["in_time"], got
    # Spotting shows what it spotted, never words forced onto the customer's speech.
    customer = [t for t in record["transcript"] if t["speaker"] == "customer"]
    assert all(t["source"] == "spotting" and t["phrases"] for t in customer), customer
    assert page.errors == []


async def test_an_english_script_with_only_the_korean_model_says_cant_check(
        pbx, korean_console, browser, tmp_path, artifacts):
    """The support line without a Korean caller pops the English script; the Korean model
    cannot hear its phrases: the console says "can't check", no deadline prompt fires,
    nothing is scored as missed."""
    svc = korean_console
    page = await sign_in(browser, svc, "1001")
    agent = await AgentPhone(sip(pbx), "1001", log_dir=tmp_path, ring_ms=500,
                             audio=lines_to_ulaw([1.0, "Good morning, Acme Telecom, Anna "
                                                  "speaking.", 1.0, "How can I help you?", 6.0],
                                                 tmp_path / "agent.ulaw", voice="en")).astart()
    try:
        customer = call_customer(sip(pbx), "5550111", caller="36201234567", talk_ms=26000,
                                 log_dir=tmp_path,
                                 audio=lines_to_ulaw([4.0, "I am calling about my invoice.",
                                                      4.0], tmp_path / "customer.ulaw",
                                                     voice="en"))
        answered = await svc.calls_seen.wait_for(lambda e: isinstance(e, AgentAnswered), 20,
                                                 "answer")
        call_id = answered.call.call_id
        assert svc.pop.card("1001", call_id).script["id"] == "acme-support"
        card = page.locator(f"section.card[data-call='{call_id}']")
        await card.locator(f".checklist label.cant-check[data-item='{COMPANY_ITEM}']").wait_for(
            timeout=5000)
        assert "can't check" in await card.locator(
            f".checklist label[data-item='{COMPANY_ITEM}']").inner_text()
        await asyncio.sleep(18)                  # past every deadline (15-20 s)
        await page.screenshot(path=str(artifacts / "console-cant-check.png"), full_page=True)
        assert await card.locator(".prompt[data-rule^='checklist.']").count() == 0
        await svc.calls_seen.wait_for(lambda e: isinstance(e, CallEnded), 40, "call end")
        (await customer.wait_async(30)).check()
    finally:
        await agent.astop()
    record = await saved(svc, call_id)
    assert not any(p["rule_id"].startswith("checklist.") for p in record["prompts"])
    statuses = {i: v["status"] for i, v in record["checklist"].items()}
    assert set(statuses.values()) == {"cant_check"}, statuses
    assert record["adherence_score"] is None            # nothing checkable: no score, not 0
    assert {c["id"] for c in record["cant_check"]} >= {COMPANY_ITEM, "offered_help"}
    assert all("cannot hear" in c["reason"] for c in record["cant_check"])


async def test_store_unwritable_mid_call_loses_no_coaching_and_health_says_so(
        pbx, korean_console, tmp_path):
    svc = korean_console
    db = Path(svc.settings.store.url.split("sqlite:///", 1)[1])
    files = [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]

    def health() -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(svc.web_url + "/api/health", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    assert (await asyncio.to_thread(health))[0] == 200
    await sign_in_agents(svc, "1001")            # into the support queue
    agent = await AgentPhone(sip(pbx), "1001", log_dir=tmp_path, ring_ms=300,
                             audio=speech_file(tmp_path / "agent.ulaw", 1.0, "안녕하세요",
                                               1.0, "에이스 텔레콤", 1.0, "김민수", 4.0)).astart()
    locked = False
    try:
        customer = call_customer(sip(pbx), "5550111", caller="821012345678", talk_ms=14000,
                                 log_dir=tmp_path,
                                 audio=speech_file(tmp_path / "customer.ulaw", 3.0, "바보", 4.0))
        answered = await svc.calls_seen.wait_for(lambda e: isinstance(e, AgentAnswered), 20,
                                                 "answer")
        call_id = answered.call.call_id
        await asyncio.sleep(2)
        # Root ignores file modes; an immutable file refuses even root's writes.
        subprocess.run(["chattr", "+i", *map(str, files)], check=True)
        locked = True
        await svc.calls_seen.wait_for(lambda e: isinstance(e, CallEnded), 40, "call end")
        (await customer.wait_async(30)).check()
        status, body = await asyncio.to_thread(health)
        deadline = time.monotonic() + 10
        while status == 200 and time.monotonic() < deadline:   # the first failed write
            await asyncio.sleep(0.3)
            status, body = await asyncio.to_thread(health)
        assert status == 503 and not body["components"]["store"]["ok"], body
        await asyncio.sleep(3)
    finally:
        if locked:
            subprocess.run(["chattr", "-i", *map(str, files)], check=True)
        await agent.astop()
    record = await saved(svc, call_id, timeout=60)
    assert record["state"] == "ended"
    assert CALM_CARD in {p["rule_id"] for p in record["prompts"]}
    assert record["checklist"][COMPANY_ITEM]["done"]
    assert any(t["speaker"] == "agent" for t in record["transcript"])
    deadline = time.monotonic() + 30
    while (await asyncio.to_thread(health))[0] != 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert (await asyncio.to_thread(health))[0] == 200


async def saved(svc, call_id: str, timeout: float = 15.0) -> dict:
    """The call's record once the call has ended and its final coaching result is in the
    store (checkpoints are written while it is live)."""
    deadline = time.monotonic() + timeout
    while True:
        record = await svc.store.get_call(call_id)
        if record and record["state"] == "ended" and record.get("transcript") is not None:
            await asyncio.wait_for(svc.recorder.drain(), max(1.0, deadline - time.monotonic()))
            return await svc.store.get_call(call_id)
        if time.monotonic() > deadline:
            raise AssertionError(f"no coaching result for call {call_id}: {record}")
        await asyncio.sleep(0.2)


async def test_a_reload_or_a_service_restart_mid_call_keeps_the_coaching(
        pbx, korean_console, console_settings, browser, tmp_path):
    """The console shows the same prompts, ticks, transcript and taps after the page
    reloads, and after the service itself restarts mid-call."""
    import dataclasses

    from ivr.config import Secret, User
    from ivr.server import Service
    from tests.integration.conftest import CallLog
    svc = korean_console
    page = await sign_in(browser, svc, "1001")
    agent = await AgentPhone(sip(pbx), "1001", log_dir=tmp_path, ring_ms=300,
                             audio=speech_file(tmp_path / "agent.ulaw", 1.0, "안녕하세요", 1.0,
                                               "에이스 텔레콤", 1.0, "김민수", 6.0)).astart()
    second = customer = None

    async def shown(card) -> tuple[set, set, set, set]:
        prompts = set(await card.locator(".prompt").evaluate_all(
            "els => els.map(e => e.dataset.rule)"))
        done = set(await card.locator(".checklist label.done").evaluate_all(
            "els => els.map(e => e.dataset.item)"))
        lines = set(await card.locator(".transcript .line:not(.partial)").all_inner_texts())
        taps = set(await card.locator("[data-role=taps] .tap").all_inner_texts())
        return prompts, done, lines, taps

    try:
        customer = call_customer(sip(pbx), "5550111", caller="821012345678", talk_ms=40000,
                                 log_dir=tmp_path,
                                 audio=speech_file(tmp_path / "customer.ulaw", 3.0, "바보", 6.0))
        answered = await svc.calls_seen.wait_for(lambda e: isinstance(e, AgentAnswered), 20,
                                                 "answer")
        call_id = answered.call.call_id
        card = page.locator(f"section.card[data-call='{call_id}']")
        await card.locator(f".prompt[data-rule='{CALM_CARD}']").wait_for(timeout=15000)
        await card.locator(f".checklist label.done[data-item='{COMPANY_ITEM}']").wait_for(
            timeout=15000)
        await card.locator("[data-role=taps] .tap.ok").nth(1).wait_for(timeout=5000)
        before = await shown(card)
        assert CALM_CARD in before[0] and COMPANY_ITEM in before[1] and before[2]

        await page.reload()                                  # 1. the page reloads
        await page.locator("#conn.up").wait_for(timeout=10000)
        await card.locator(f".prompt[data-rule='{CALM_CARD}']").wait_for(timeout=5000)
        after = await shown(card)
        assert after[0] >= before[0] and after[1] >= before[1] and after[2] >= before[2]
        assert after[3] == before[3]

        await svc.stop()                                     # 2. the service restarts
        await page.locator("#conn.down").wait_for(timeout=5000)
        users = svc.settings.users
        second = Service(dataclasses.replace(console_settings, users=users))
        second.calls_seen = CallLog()
        second.bus.subscribe(second.calls_seen)
        await second.start()
        await page.locator("#conn.up").wait_for(timeout=15000)
        await card.locator(f".prompt[data-rule='{CALM_CARD}']").wait_for(timeout=10000)
        await card.locator(f".checklist label.done[data-item='{COMPANY_ITEM}']").wait_for(
            timeout=5000)
        restarted = await shown(card)
        assert restarted[0] >= before[0] and restarted[1] >= before[1]
        assert restarted[2] >= before[2]
        await card.locator("[data-role=taps] .tap.ok").nth(1).wait_for(timeout=20000)
        # ... and the card raised before the restart is not raised again.
        assert await card.locator(f".prompt[data-rule='{CALM_CARD}']").count() == 1
        end = await second.calls_seen.wait_for(lambda e: isinstance(e, CallEnded), 60, "end")
        assert end.call.call_id == call_id
        record = await saved(second, call_id)
        assert CALM_CARD in {p["rule_id"] for p in record["prompts"]}
        assert record["checklist"][COMPANY_ITEM]["done"]
        assert page.errors == []
    finally:
        if customer is not None:
            customer.stop()
        # Never leave a live call to the next test (a stopped SIPp may not send its BYE).
        await asyncio.to_thread(pbx.cli, "channel request hangup all")
        await agent.astop()
        if second is not None:
            await second.stop()
