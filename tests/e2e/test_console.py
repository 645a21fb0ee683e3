"""The agent console in a real Chromium, with real calls through the sandbox PBX."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ivr.calls.events import AgentAnswered, AgentRinging, CallEnded
from ivr.outbound import OutboundCall, place_call
from ivr.testing.phones import AgentPhone, CustomerPhone, call_customer
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.pbx


def sip(pbx) -> str:
    return f"{pbx.sip_host}:{pbx.sip_port}"


async def test_inbound_pop_wrapup_and_isolation(pbx, console, browser, tmp_path, artifacts):
    calls = console.calls_seen
    anna = await sign_in(browser, console, "1001")       # another agent: must see nothing
    csilla = await sign_in(browser, console, "1003")
    boss = await sign_in(browser, console, "boss")
    agent = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=2500).astart()
    try:
        customer = call_customer(sip(pbx), "5550100", digit="2", talk_ms=12000, log_dir=tmp_path)
        ringing = await calls.wait_for(lambda e: isinstance(e, AgentRinging), 20, "ringing")
        card = csilla.locator(f"section.card[data-call='{ringing.call.call_id}']")
        await card.wait_for(timeout=3000)
        seen_after = time.time() - ringing.at
        assert seen_after < 1.0, f"pop visible {seen_after:.3f} s after the AMI event"
        # The server built the pop within 50 ms of the AMI event.
        pop = console.pop.card("1003", ringing.call.call_id)
        assert pop.popped_at - pop.ami_received_at < 0.05
        head = await card.locator(".card-head").inner_text()
        assert "36201234567" in head and "ringing" in head.lower() and "acme-support" in head
        script = await card.locator(".script").inner_text()
        assert "Acme Telecom" in script and "Csilla" in script       # filled for this agent
        assert pop.script["id"] == "acme-support"
        await calls.wait_for(lambda e: isinstance(e, AgentAnswered), 10, "answer")
        await card.locator(".badge.state-bridged").wait_for(timeout=5000)
        # The supervisor sees the live call with agent, project and script.
        row = boss.locator(f"tr[data-call='{ringing.call.call_id}']")
        await row.wait_for(timeout=3000)
        assert "1003" in await row.inner_text() and "acme-support" in await row.inner_text()
        # Tick a checklist item by hand.
        first_item = card.locator(".checklist label").first
        item_id = await first_item.get_attribute("data-item")
        await first_item.locator("input").check()
        await card.locator(f".checklist label.done[data-item='{item_id}']").wait_for(timeout=3000)
        await csilla.screenshot(path=str(artifacts / "console-mid-call.png"), full_page=True)
        await boss.screenshot(path=str(artifacts / "supervisor-mid-call.png"))
        # A reload mid-call brings the same call back.
        await csilla.reload()
        await card.wait_for(timeout=5000)
        await calls.wait_for(lambda e: isinstance(e, CallEnded), 30, "call end")
        (await customer.wait_async(30)).check()
    finally:
        await agent.astop()
    # Wrap-up: the form appears, needs a disposition, and is stored.
    form = card.locator("form[data-role=wrapup]")
    await form.wait_for(timeout=5000)
    dispositions = await form.locator("select option").all_inner_texts()
    assert len(dispositions) > 2
    await form.locator("button[type=submit]").click()          # no disposition chosen yet
    await asyncio.sleep(0.3)
    assert await form.is_visible()
    assert (await console.store.get_call(ringing.call.call_id))["disposition"] is None
    values = await form.locator("select option").evaluate_all("os => os.map(o => o.value)")
    resolved = "resolved" if "resolved" in values else values[1]
    await form.locator("select").select_option(resolved)
    await form.locator("textarea").fill("Explained the invoice <b>not html</b>")
    await form.locator("button[type=submit]").click()
    await card.wait_for(state="detached", timeout=5000)
    record = await console.store.get_call(ringing.call.call_id)
    assert record["disposition"] == resolved and record["wrapped_up_by"] == "1003"
    assert record["notes"] == "Explained the invoice <b>not html</b>"
    # The agent's tick is theirs; the call's coaching keeps its detail of every item
    # (the wrap-up does not flatten it), and nothing else is ticked.
    ticked = record["checklist"][item_id]
    assert ticked is True or (ticked["done"] and ticked["by"] == "agent"), record["checklist"]
    others = [v for k, v in record["checklist"].items() if k != item_id]
    assert not any(v is True or (isinstance(v, dict) and v["done"]) for v in others), others
    assert record["script_id"] == "acme-support" and record["result"] == "answered"
    # The other agent never saw this call; no page had a script error.
    assert await anna.locator("section.card").count() == 0
    for page in (anna, csilla, boss):
        assert page.errors == []


async def test_outbound_campaign_call_pops_campaign_script(pbx, console, browser, tmp_path):
    calls = console.calls_seen
    bela = await sign_in(browser, console, "1002")
    carrier_port = int(pbx.trunk_peer.rsplit(":", 1)[1])
    agent = await AgentPhone(sip(pbx), "1002", log_dir=tmp_path, ring_ms=1500).astart()
    customer = await CustomerPhone(log_dir=tmp_path, local_port=carrier_port, ring_ms=1000,
                                   talk_ms=4000).astart()
    try:
        placing = asyncio.ensure_future(place_call(console.ami, OutboundCall(
            agent="1002", number="5557777", project="acme-telesales", campaign="spring")))
        ringing = await calls.wait_for(lambda e: isinstance(e, AgentRinging), 15, "agent ringing")
        card = bela.locator(f"section.card[data-call='{ringing.call.call_id}']")
        await card.wait_for(timeout=3000)
        text = await card.inner_text()
        assert "5557777" in text and "spring" in text
        assert console.pop.card("1002", ringing.call.call_id).script["id"] == "acme-telesales"
        assert (await placing).answered_by_agent
        await calls.wait_for(lambda e: isinstance(e, CallEnded), 30, "call end")
        await card.locator("form[data-role=wrapup]").wait_for(timeout=5000)
    finally:
        await customer.astop()
        await agent.astop()


async def test_broken_script_is_reported_and_last_good_one_keeps_serving(
        pbx, console, browser, tmp_path):
    calls = console.calls_seen
    csilla = await sign_in(browser, console, "1003")
    path = Path(console.settings.scripts) / "acme-support.yaml"
    good_title = console.library.get("acme-support").title
    path.write_text(path.read_text() + "\nsteps: [broken\n")
    banner = csilla.locator("#problems")
    await banner.wait_for(state="visible", timeout=5000)
    assert "acme-support.yaml" in await banner.inner_text()
    agent = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=1000).astart()
    try:
        customer = call_customer(sip(pbx), "5550111", talk_ms=4000, log_dir=tmp_path)
        ringing = await calls.wait_for(lambda e: isinstance(e, AgentRinging), 20, "ringing")
        card = csilla.locator(f"section.card[data-call='{ringing.call.call_id}']")
        await card.wait_for(timeout=3000)
        assert good_title in await card.locator(".script h2").inner_text()
        (await customer.wait_async(30)).check()
    finally:
        await agent.astop()


async def test_console_survives_a_service_restart_mid_call(pbx, console, console_settings,
                                                           browser, tmp_path):
    from ivr.server import Service
    from tests.integration.conftest import CallLog
    csilla = await sign_in(browser, console, "1003")
    agent = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=500).astart()
    second = None
    try:
        customer = call_customer(sip(pbx), "5550111", talk_ms=14000, log_dir=tmp_path)
        answered = await console.calls_seen.wait_for(lambda e: isinstance(e, AgentAnswered), 20,
                                                     "answer")
        call_id = answered.call.call_id
        card = csilla.locator(f"section.card[data-call='{call_id}']")
        await card.locator(".badge.state-bridged").wait_for(timeout=5000)
        t0 = time.monotonic()
        await console.stop()                                 # the service goes away mid-call
        assert time.monotonic() - t0 < 3.0, "open consoles must not hold up the shutdown"
        await csilla.locator("#conn.down").wait_for(timeout=5000)
        second = Service(console_settings)                   # ... and comes back
        calls = CallLog()
        second.bus.subscribe(calls)
        await second.start()
        # The page reconnects by itself and shows the same live call, script included.
        await csilla.locator("#conn.up").wait_for(timeout=15000)
        await card.locator(".badge.state-bridged").wait_for(timeout=5000)
        assert "Acme Telecom" in await card.locator(".script").inner_text()
        end = await calls.wait_for(lambda e: isinstance(e, CallEnded), 30, "call end")
        assert end.call.call_id == call_id and end.call.agent == "1003"
        (await customer.wait_async(30)).check()
        form = card.locator("form[data-role=wrapup]")
        await form.wait_for(timeout=5000)
        await form.locator("select").select_option(index=1)
        await form.locator("textarea").fill("after restart")
        await form.locator("button[type=submit]").click()
        await card.wait_for(state="detached", timeout=5000)
        record = await second.store.get_call(call_id)
        assert record["notes"] == "after restart" and record["state"] == "ended"
        assert csilla.errors == []
    finally:
        await agent.astop()
        if second is not None:
            await second.stop()


async def test_agent_transfers_the_call_to_another_department(pbx, console, browser, tmp_path):
    """The transfer button sends the customer into the other department's queue;
    that department's agent gets the pop, the first agent gets the wrap-up."""
    from ivr.calls.events import CallTransferred
    calls = console.calls_seen
    csilla = await sign_in(browser, console, "1003")
    bela = await sign_in(browser, console, "1002")
    support = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=500).astart()
    sales = await AgentPhone(sip(pbx), "1002", log_dir=tmp_path, ring_ms=500).astart()
    try:
        customer = call_customer(sip(pbx), "5550111", talk_ms=15000, log_dir=tmp_path)
        answered = await calls.wait_for(
            lambda e: isinstance(e, AgentAnswered) and e.agent == "1003", 20, "support answers")
        call_id = answered.call.call_id
        card = csilla.locator(f"section.card[data-call='{call_id}']")
        await card.locator(".badge.state-bridged").wait_for(timeout=5000)
        await card.locator("button[data-department='sales']").click()
        moved = await calls.wait_for(lambda e: isinstance(e, CallTransferred), 10, "transfer")
        assert moved.target == "sales" and moved.call.call_id == call_id
        await calls.wait_for(lambda e: isinstance(e, AgentAnswered) and e.agent == "1002", 30,
                             "sales answers")
        popped = bela.locator(f"section.card[data-call='{call_id}']")
        await popped.wait_for(timeout=3000)
        assert console.pop.card("1002", call_id).script["id"] == "acme-sales"
        # The first agent's part is over: their card waits for the wrap-up.
        await card.locator("form[data-role=wrapup]").wait_for(timeout=10000)
        end = await calls.wait_for(lambda e: isinstance(e, CallEnded), 30, "call end")
        assert end.call.agent == "1002" and [t.target for t in end.call.transfers] == ["sales"]
        (await customer.wait_async(30)).check()
    finally:
        await sales.astop()
        await support.astop()


async def test_a_call_without_a_script_offers_the_services_own_dispositions(
        pbx, console, browser, tmp_path):
    """Bug 4: the page had a fallback list of 3 dispositions of its own, the service 4
    ("transferred" too); the page now offers what the card says, the service's list."""
    calls = console.calls_seen
    folder = Path(console.settings.scripts)
    for script in folder.glob("*.yaml"):
        script.unlink()                       # no script at all: every call pops without one
    deadline = time.monotonic() + 10
    while console.library.scripts() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert not console.library.scripts()
    csilla = await sign_in(browser, console, "1003")
    agent = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=1000).astart()
    try:
        customer = call_customer(sip(pbx), "5550111", talk_ms=3000, log_dir=tmp_path)
        ringing = await calls.wait_for(lambda e: isinstance(e, AgentRinging), 20, "ringing")
        call_id = ringing.call.call_id
        assert console.pop.card("1003", call_id).script is None
        card = csilla.locator(f"section.card[data-call='{call_id}']")
        await calls.wait_for(lambda e: isinstance(e, CallEnded), 30, "call end")
        (await customer.wait_async(30)).check()
    finally:
        await agent.astop()
    form = card.locator("form[data-role=wrapup]")
    await form.wait_for(timeout=5000)
    values = await form.locator("select option").evaluate_all("os => os.map(o => o.value)")
    assert values == ["", "resolved", "callback", "transferred", "other"]
    await form.locator("select").select_option("transferred")
    await form.locator("button[type=submit]").click()
    await card.wait_for(state="detached", timeout=5000)
    assert (await console.store.get_call(call_id))["disposition"] == "transferred"
    assert csilla.errors == []
