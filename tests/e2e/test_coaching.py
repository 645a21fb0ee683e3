"""Live coaching on the real stack: SIPp phones speaking (espeak-ng, Korean), the
sandbox Asterisk, per-party audio taps, the real Korean Vosk model, the rules,
and the agent's console in Chromium.

The caller's number starts with 82, so the support line pops the Korean
support script (acme-support-ko). Each phone says its lines, pauses and says
them again (SIPp loops the audio).
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest

from ivr.calls.events import AgentAnswered, CallEnded
from ivr.config import Secret, User
from ivr.testing.phones import AgentPhone, call_customer
from ivr.server import Service
from ivr.testing.speech import lines_to_ulaw
from tests.conftest import reset_queues
from tests.e2e.conftest import sign_in
from tests.integration.conftest import CallLog

pytestmark = pytest.mark.pbx

KOREAN_CALLER = "821012345678"
COMPANY_ITEM = "named_company"          # within 15 s of the answer, phrase 에이스
COMPANY_PROMPT = "checklist.named_company"
CALM_CARD = "customer_abusive"


def speech_file(path: Path, *lines: str | float) -> Path:
    """Korean lines (str) and pauses (float seconds) as one u-law file for SIPp."""
    return lines_to_ulaw(lines, path, voice="ko")


def sip(pbx) -> str:
    return f"{pbx.sip_host}:{pbx.sip_port}"


@pytest.fixture
async def korean_console(pbx, console_settings):
    """The service with speech on; agent 1001 is 김민수 on the Korean support line."""
    reset_queues(pbx)      # 1001 joins the queues by signing in, ready
    users = tuple(u for u in console_settings.users if u.login != "1001") + (
        User(login="1001", name="김민수", operator_id="7", position="상담원",
             secret=Secret("kim-secret")),)
    svc = Service(dataclasses.replace(console_settings, users=users))
    svc.calls_seen = CallLog()
    svc.bus.subscribe(svc.calls_seen)
    await svc.start()
    await svc.ami.wait_connected(15)
    assert svc.speech is not None, "speech must be running (Korean model)"
    yield svc
    await svc.stop()


async def run_call(pbx, svc, page, tmp_path, agent_lines, customer_lines, talk_ms=24000,
                   during=None):
    agent = await AgentPhone(sip(pbx), "1001", log_dir=tmp_path, ring_ms=500,
                             audio=speech_file(tmp_path / "agent.ulaw", *agent_lines)).astart()
    try:
        customer = call_customer(sip(pbx), "5550111", caller=KOREAN_CALLER, talk_ms=talk_ms,
                                 log_dir=tmp_path,
                                 audio=speech_file(tmp_path / "customer.ulaw", *customer_lines))
        answered = await svc.calls_seen.wait_for(lambda e: isinstance(e, AgentAnswered), 20,
                                                 "answer")
        call_id = answered.call.call_id
        card = page.locator(f"section.card[data-call='{call_id}']")
        await card.wait_for(timeout=3000)
        assert svc.pop.card("1001", call_id).script["id"] == "acme-support-ko"
        if during is not None:
            await during(call_id, card)
        await svc.calls_seen.wait_for(lambda e: isinstance(e, CallEnded), 40, "call end")
        (await customer.wait_async(30)).check()
    finally:
        await agent.astop()
    await card.locator("[data-role=adherence]").wait_for(timeout=10000)
    from tests.e2e.test_coaching_trust import saved
    return call_id, card, await saved(svc, call_id)


async def test_missing_company_name_is_prompted_and_speakers_never_cross(
        pbx, korean_console, browser, tmp_path, artifacts):
    """(a) no company name -> prompt by the deadline, item missed in the record;
    (c) the customer saying the company name does not count for the agent, and
    the agent's rude word does not raise the customer card."""
    svc = korean_console
    page = await sign_in(browser, svc, "1001")
    seen = {}

    async def watch(call_id, card):
        prompt = card.locator(f".prompt[data-rule='{COMPANY_PROMPT}']")
        await prompt.wait_for(timeout=25000)
        seen["at"] = time.time()
        await page.screenshot(path=str(artifacts / "console-coaching-prompt.png"), full_page=True)

    call_id, card, record = await run_call(
        pbx, svc, page, tmp_path,
        agent_lines=[1.0, "여보세요", 1.2, "김민수", 1.2, "바보", 4.0],
        customer_lines=[2.0, "에이스", 3.0],
        during=watch)
    answered = record["answered_at"]
    # Within the deadline: 15 s after the answer (+ up to 2 s for a sentence in progress).
    assert 15.0 <= seen["at"] - answered <= 19.0, seen["at"] - answered
    prompts = {p["rule_id"]: p for p in record["prompts"]}
    assert COMPANY_PROMPT in prompts and CALM_CARD not in prompts
    item = record["checklist"][COMPANY_ITEM]
    assert item["missed"] and not item["done"]
    assert await card.locator(f".checklist label.missed[data-item='{COMPANY_ITEM}']").count() == 1
    # The transcript keeps each party apart: the customer's words are the customer's only.
    # Each party is listened to for its own phrases only: the customer's recognition
    # does not even look for the company name, the agent's never for abuse.
    said = {(t["speaker"], p) for t in record["transcript"] for p in t.get("phrases", [])}
    assert ("agent", "에이스") not in said and ("customer", "에이스") not in said
    assert ("agent", "바보") not in said
    assert ("agent", "김민수") in said and ("customer", "바보") not in said
    assert await card.locator(f".prompt[data-rule='{CALM_CARD}']").count() == 0
    assert page.errors == []


async def test_company_named_is_ticked_and_abuse_raises_the_calm_card(
        pbx, korean_console, browser, tmp_path, artifacts):
    """(b) the agent names the company: ticked, no prompt; (d) the customer is
    abusive: the calm card; (e) a tap killed mid-call comes back, the call goes on."""
    svc = korean_console
    page = await sign_in(browser, svc, "1001")

    async def during(call_id, card):
        await card.locator(f".checklist label.done[data-item='{COMPANY_ITEM}']").wait_for(
            timeout=15000)
        await card.locator(f".prompt[data-rule='{CALM_CARD}']").wait_for(timeout=15000)
        await card.locator("[data-role=taps] .tap.ok").nth(1).wait_for(timeout=5000)
        # Kill the customer's tap connection: it must come back while the call goes on.
        assert svc.tap_server.kill(call_id, "customer")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            back = [s for s in svc.taps.statuses(call_id)
                    if s.speaker == "customer" and s.state == "ok" and s.attempt >= 2]
            if back:
                break
            await asyncio.sleep(0.1)
        assert back, svc.taps.statuses(call_id)
        await card.locator("[data-role=taps] .tap.ok").nth(1).wait_for(timeout=3000)
        await page.screenshot(path=str(artifacts / "console-coaching-ticked.png"), full_page=True)

    call_id, card, record = await run_call(
        pbx, svc, page, tmp_path,
        agent_lines=[1.0, "여보세요", 1.2, "에이스 텔레콤", 1.2, "김민수", 1.2, "말씀해 주세요", 4.0],
        customer_lines=[3.0, "바보", 4.0],
        during=during)
    prompts = {p["rule_id"] for p in record["prompts"]}
    assert CALM_CARD in prompts and COMPANY_PROMPT not in prompts
    item = record["checklist"][COMPANY_ITEM]
    assert item["done"] and item["by"] == "speech" and item["in_time"]
    assert record["adherence_score"] is not None and record["adherence_score"] > 0
    assert record["result"] == "answered"
