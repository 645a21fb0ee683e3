"""Listening in, and an attended transfer, from the consoles in a real Chromium
with real calls through the sandbox PBX."""
from __future__ import annotations

import asyncio

import pytest

from ivr.calls.events import (AgentAnswered, AgentRinging, CallEnded, CallTransferred,
                              MonitorEnded, MonitorStarted)
from ivr.testing.phones import AgentPhone, abandon_call, call_customer
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.pbx


def sip(pbx) -> str:
    return f"{pbx.sip_host}:{pbx.sip_port}"


async def post_from(page, url: str, body: dict) -> int:
    """A POST with the page's own session (as its scripts would send it): the status."""
    return await page.evaluate(
        """async ([url, body]) => (await fetch(url, {method: "POST", credentials: "same-origin",
             headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})).status""",
        [url, body])


async def test_supervisor_whispers_from_the_board_and_the_agent_is_told(
        pbx, console, browser, tmp_path, artifacts):
    calls = console.calls_seen
    csilla = await sign_in(browser, console, "1003")
    boss = await sign_in(browser, console, "boss")
    agent = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=300).astart()
    phone = await AgentPhone(sip(pbx), "1099", password="super1099", log_dir=tmp_path,
                             ring_ms=500).astart()
    try:
        customer = call_customer(sip(pbx), "5550111", talk_ms=20000, log_dir=tmp_path)
        answered = await calls.wait_for(lambda e: isinstance(e, AgentAnswered), 20, "answer")
        call_id = answered.call.call_id
        row = boss.locator(f"tr[data-call='{call_id}']")
        await row.locator("button[data-monitor=whisper]").wait_for(timeout=5000)
        # Agents never listen in: the same request from an agent's session is refused.
        assert await post_from(csilla, f"/api/calls/{call_id}/monitor", {"mode": "listen"}) == 403
        assert await csilla.locator("[data-role=monitor]").count() == 0
        await row.locator("button[data-monitor=whisper]").click()
        started = await calls.wait_for(lambda e: isinstance(e, MonitorStarted), 15,
                                       "the supervisor's phone joining")
        assert (started.monitor.mode, started.monitor.supervisor) == ("whisper", "boss")
        banner = csilla.locator(f"section.card[data-call='{call_id}'] [data-role=monitor]")
        await banner.wait_for(timeout=3000)
        text = await banner.inner_text()
        assert "Sara Supervisor" in text and "whisper" in text
        await row.locator("[data-role=listening]").wait_for(timeout=3000)
        await boss.screenshot(path=str(artifacts / "supervisor-whisper.png"))
        await csilla.screenshot(path=str(artifacts / "console-supervisor-whispering.png"),
                                full_page=True)
        # A reload keeps telling the agent.
        await csilla.reload()
        await banner.wait_for(timeout=5000)
        await row.locator("button[data-monitor=stop]").click()
        await calls.wait_for(lambda e: isinstance(e, MonitorEnded), 10, "the monitor ending")
        await banner.wait_for(state="detached", timeout=3000)
        assert await row.locator("button[data-monitor=listen]").count() == 1
        end = await calls.wait_for(lambda e: isinstance(e, CallEnded), 30, "call end")
        (await customer.wait_async(30)).check()
    finally:
        await agent.astop()
        await phone.astop()
    await console.recorder.drain()
    record = await console.store.get_call(call_id)
    assert [(m["supervisor"], m["mode"]) for m in record["monitors"]] == [("boss", "whisper")]
    assert end.call.monitors[0].ended_at is not None
    for page in (csilla, boss):
        assert page.errors == []


async def test_attended_transfer_from_the_console_pops_the_call_for_the_second_agent(
        pbx, console, browser, tmp_path, artifacts):
    calls = console.calls_seen
    csilla = await sign_in(browser, console, "1003")
    bela = await sign_in(browser, console, "1002")
    first = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=300).astart()
    second = await AgentPhone(sip(pbx), "1002", log_dir=tmp_path, ring_ms=1500).astart()
    try:
        customer = call_customer(sip(pbx), "5550111", talk_ms=22000, log_dir=tmp_path)
        answered = await calls.wait_for(lambda e: isinstance(e, AgentAnswered), 20, "answer")
        call_id = answered.call.call_id
        card = csilla.locator(f"section.card[data-call='{call_id}']")
        await card.locator(".badge.state-bridged").wait_for(timeout=5000)
        consult = card.locator("[data-role=consult]")
        await consult.locator("select").select_option("1002")
        await consult.locator("button[data-action=consult]").click()
        # The customer waits on hold; the second agent's phone rings and its console
        # pops the customer's call with the call's script.
        await card.locator(".badge.state-on_hold").wait_for(timeout=5000)
        ringing = await calls.wait_for(lambda e: isinstance(e, AgentRinging) and e.agent == "1002",
                                       10, "the second agent ringing")
        assert ringing.call.call_id == call_id
        theirs = bela.locator(f"section.card[data-call='{call_id}']")
        await theirs.wait_for(timeout=3000)
        assert "Acme" in await theirs.locator(".script h2").inner_text()
        assert console.pop.card("1002", call_id).script["id"] == "acme-support"
        await calls.wait_for(lambda e: isinstance(e, AgentAnswered) and e.agent == "1002",
                             10, "the second agent answering")
        await consult.locator("[data-consult-state=talking]").wait_for(timeout=5000)
        await card.locator("[data-role=hold] b").wait_for(timeout=3000)
        await csilla.screenshot(path=str(artifacts / "console-consulting.png"), full_page=True)
        await asyncio.sleep(1.0)
        await consult.locator("button[data-action=complete]").click()
        transferred = await calls.wait_for(lambda e: isinstance(e, CallTransferred), 10,
                                           "the transfer")
        # The first agent wraps up; the second has the live call, with the chain and hold.
        await card.locator("form[data-role=wrapup]").wait_for(timeout=5000)
        await theirs.locator(".badge.state-bridged").wait_for(timeout=5000)
        chain = await theirs.locator("[data-role=transfers]").inner_text()
        assert "1003" in chain and "1002" in chain
        held = await theirs.locator("[data-role=hold]").inner_text()
        assert held.startswith("Held")
        # Coaching follows the call: the second agent's own voice is tapped now.
        await theirs.locator("[data-role=taps] .tap.ok").first.wait_for(timeout=10000)
        assert "You: listening" in await theirs.locator("[data-role=taps]").inner_text()
        await bela.screenshot(path=str(artifacts / "console-after-transfer.png"), full_page=True)
        end = await calls.wait_for(lambda e: isinstance(e, CallEnded), 30, "call end")
        (await customer.wait_async(30)).check()
    finally:
        await first.astop()
        await second.astop()
    c = end.call
    [t] = c.transfers
    assert (t.kind, t.by_agent, t.target, t.to_agent) == ("attended", "1003", "1002", "1002")
    assert abs(t.at - transferred.at) < 0.01 and c.agent == "1002"
    assert 2.0 < c.hold_seconds < 8.0
    await console.recorder.drain()
    record = await console.store.get_call(call_id)
    assert record["transfers"][0]["to_agent"] == "1002"
    assert abs(record["hold_seconds"] - c.hold_seconds) < 0.01
    for page in (csilla, bela):
        assert page.errors == []


async def test_rings_of_one_agent_for_one_call_make_one_card(pbx, console, browser, tmp_path):
    """Without the rejection pause (pause_seconds: 0) the queue rings a busy phone
    again every few seconds: the console keeps one card for the call, not a pop
    each time. With the pause (the default) the agent is rung once."""
    calls = console.calls_seen
    console.rejects.pause_seconds = 0
    csilla = await sign_in(browser, console, "1003")
    agent = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=1200,
                             reject=486).astart()
    try:
        customer = abandon_call(sip(pbx), "5550111", patience_ms=9000, log_dir=tmp_path)
        first_ring = await calls.wait_for(lambda e: isinstance(e, AgentRinging), 20, "ringing")
        call_id = first_ring.call.call_id
        card = csilla.locator(f"section.card[data-call='{call_id}']")
        await card.wait_for(timeout=3000)
        await card.evaluate("node => { node.dataset.first = 'yes'; }")
        await calls.wait_for(lambda e: sum(isinstance(x, AgentRinging) for x in
                                           calls.of_call(call_id)) >= 3, 15, "three rings")
        await card.locator("[data-role=rings]").wait_for(timeout=3000)
        assert await csilla.locator("section.card").count() == 1
        assert await card.get_attribute("data-first") == "yes", "the same card, not a new pop"
        assert "rang" in await card.locator("[data-role=rings]").inner_text()
        await calls.wait_for(lambda e: isinstance(e, CallEnded), 20, "call end")
        (await customer.wait_async(20)).check()
    finally:
        await agent.astop()
    assert csilla.errors == []


async def test_phone_hold_and_transfer_show_on_both_consoles(pbx, console, browser, tmp_path):
    """The agent's own phone: hold (re-INVITE sendonly), a consultation call to
    1002, then transfer (REFER with Replaces). The first console shows the hold
    and wraps up; the second drops the consultation's card and pops the
    customer's call with its script."""
    calls = console.calls_seen
    csilla = await sign_in(browser, console, "1003")
    bela = await sign_in(browser, console, "1002")
    first = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=300).astart()
    second = await AgentPhone(sip(pbx), "1002", log_dir=tmp_path, ring_ms=800).astart()
    try:
        customer = call_customer(sip(pbx), "5550111", talk_ms=20000, log_dir=tmp_path)
        answered = await calls.wait_for(lambda e: isinstance(e, AgentAnswered), 20, "answer")
        call_id = answered.call.call_id
        card = csilla.locator(f"section.card[data-call='{call_id}']")
        await card.locator(".badge.state-bridged").wait_for(timeout=5000)
        await first.ahold("sendonly")
        await card.locator(".badge.state-on_hold").wait_for(timeout=3000)
        await card.locator("[data-role=hold] b").wait_for(timeout=3000)
        consult = first.call("1002")
        ringing = await calls.wait_for(lambda e: isinstance(e, AgentRinging) and e.agent == "1002",
                                       15, "the consultation ringing 1002")
        consult_card = bela.locator(f"section.card[data-call='{ringing.call.call_id}']")
        await consult_card.wait_for(timeout=3000)
        await calls.wait_for(lambda e: isinstance(e, AgentAnswered) and e.agent == "1002",
                             10, "1002 answering")
        await asyncio.sleep(1.0)
        await first.atransfer_attended(consult)
        await calls.wait_for(lambda e: isinstance(e, CallTransferred), 10, "the transfer")
        theirs = bela.locator(f"section.card[data-call='{call_id}']")
        await theirs.wait_for(timeout=3000)
        assert "Acme" in await theirs.locator(".script h2").inner_text()
        await consult_card.wait_for(state="detached", timeout=3000)
        await card.locator("form[data-role=wrapup]").wait_for(timeout=5000)
        assert "1003 → 1002" in await theirs.locator("[data-role=transfers]").inner_text()
        (await consult.wait_async(15)).check()
        end = await calls.wait_for(lambda e: isinstance(e, CallEnded) and e.call.call_id == call_id,
                                   30, "call end")
        (await customer.wait_async(30)).check()
    finally:
        await first.astop()
        await second.astop()
    assert end.call.agent == "1002" and end.call.transfers[0].consult_call == ringing.call.call_id
    assert end.call.hold_seconds > 1.0
    for page in (csilla, bela):
        assert page.errors == []
