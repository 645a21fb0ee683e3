"""A shift in a real Chromium: the agent's state switch, the supervisor's
wallboard, queue figures against what the SIPp callers lived through.

- An agent goes on lunch from the console; the supervisor's wallboard shows
  it and the waiting caller; the supervisor sets her ready from the board, the
  call rings, the console shows "On a call" then the wrap-up, saved through
  its labelled fields; the day's report lists the lunch.
- 20 callers queue for 4 agents in 2 groups (sales and support): the
  wallboard's waiting, longest wait and service level match the SIPp
  callers' own INVITE and 200 OK times.

Screenshots land in test-artifacts/ (and in docs/ with IVR_UPDATE_DOCS=1).
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import re
import secrets
import shutil
from pathlib import Path

import pytest

from ivr.agents import AgentState
from ivr.calls.events import AgentRinging, CallEnded
from ivr.config import (AgentGroup, GroupMember, Secret, Settings, ShiftSettings, User)
from ivr.testing.phones import AgentPhone, SippRun, call_customer
from ivr.server import Service
from tests.conftest import REPO, reset_queues
from tests.e2e.conftest import sign_in
from tests.integration.conftest import CallLog

pytestmark = pytest.mark.pbx


def sip(pbx) -> str:
    return f"{pbx.sip_host}:{pbx.sip_port}"


def keep_screenshot(artifacts: Path, name: str) -> None:
    """A screenshot for the README: copied into docs/ when asked to."""
    if os.environ.get("IVR_UPDATE_DOCS") == "1":
        shutil.copy(artifacts / name, REPO / "docs" / name)


async def test_agent_goes_on_lunch_and_the_supervisor_sets_her_ready(
        pbx, console, browser, tmp_path, artifacts):
    svc: Service = console
    calls: CallLog = svc.calls_seen
    phone = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=800).astart()
    try:
        csilla = await sign_in(browser, svc, "1003")
        boss = await sign_in(browser, svc, "boss")
        state = csilla.locator("#my-state")
        await csilla.wait_for_selector('#my-state[data-state="ready"]', timeout=5000)
        assert await state.inner_text() == "Ready"
        row = boss.locator('#agents tr[data-agent="1003"]')
        await boss.wait_for_selector('#agents tr[data-agent="1003"][data-state="ready"]')
        # Lunch, from the console's switch (a labelled control).
        await csilla.get_by_label("Change to").select_option("not_ready:lunch")
        await csilla.wait_for_selector('#my-state[data-state="not_ready"]', timeout=5000)
        assert await state.inner_text() == "Not ready · lunch"
        await boss.wait_for_selector('#agents tr[data-agent="1003"][data-state="not_ready"]')
        assert "Not ready · lunch" in await row.inner_text()
        # A caller waits: the board shows them, Csilla's phone stays quiet.
        run = call_customer(sip(pbx), "5550111", talk_ms=6000, log_dir=tmp_path)
        waiting = boss.locator('#queues tr[data-queue="support"] td[data-figure="waiting"]')
        # (The page's CSP allows no eval: wait on selectors, not on script.)
        await boss.locator('#queues tr[data-queue="support"] td[data-figure="waiting"]',
                           has_text="1").wait_for(timeout=10000)
        await asyncio.sleep(3.0)
        assert not [e for e in calls.events if isinstance(e, AgentRinging)]
        assert await waiting.inner_text() == "1"
        longest = await boss.locator('#queues tr[data-queue="support"] '
                                     'td[data-figure="longest_wait"]').inner_text()
        assert re.fullmatch(r"0:0[2-5]", longest), longest
        await boss.screenshot(path=str(artifacts / "wallboard-lunch.png"), full_page=True)
        # The supervisor sets her ready from the board: the call rings her at once.
        await boss.get_by_label("Set the state of Csilla Toth").select_option("ready")
        await calls.wait_for(lambda e: isinstance(e, AgentRinging) and e.agent == "1003", 10)
        await csilla.wait_for_selector('#my-state[data-state="on_call"]', timeout=10000)
        assert (await state.inner_text()) == "On a call"
        await csilla.wait_for_selector("section.card")
        await csilla.screenshot(path=str(artifacts / "console-shift.png"), full_page=True)
        keep_screenshot(artifacts, "console-shift.png")
        # The call ends: wrap-up, with its count-down; the labelled form saves it.
        (await run.wait_async(30)).check()
        await csilla.wait_for_selector('#my-state[data-state="wrapup"]', timeout=10000)
        assert (await state.inner_text()).startswith("Wrap-up · 1:")
        assert await csilla.get_by_label("After this").is_visible()
        await csilla.get_by_label("Outcome").select_option("resolved")
        await csilla.get_by_label("Notes").fill("asked about the invoice")
        await csilla.get_by_role("button", name="Save wrap-up").click()
        await csilla.wait_for_selector('#my-state[data-state="ready"]', timeout=10000)
        # The day's report on the board lists the lunch.
        await svc.agent_log.flush()
        await boss.reload()
        reasons = boss.locator('#shift-times tr[data-agent="1003"] td[data-role="reasons"]')
        await reasons.wait_for(timeout=15000)
        assert "lunch 0:0" in await reasons.inner_text()
        assert csilla.errors == [] and boss.errors == []
    finally:
        await phone.astop()


# ---------------------------------------------------------------- 20 callers, 4 agents

GROUPS = (AgentGroup("sales", ("acme-sales",), ("sales",),
                     (GroupMember("1001"), GroupMember("1002"))),
          AgentGroup("support", ("acme-support",), ("support",),
                     (GroupMember("1003"), GroupMember("1004"))))
LINES = {"sales": "5550122", "support": "5550111"}
THRESHOLD = 10.0


def sipp_waits(run: SippRun) -> list[tuple[float, float | None]]:
    """(INVITE sent, 200 OK to it received) of each call of a SIPp run, as
    wall-clock times from SIPp's own message log."""
    text = run.messages()
    blocks = re.split(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n", text, flags=re.M)
    calls: dict[str, list] = {}
    for stamp, body in zip(blocks[1::2], blocks[2::2]):
        at = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
        call_id = re.search(r"^Call-ID: *(\S+)", body, re.M | re.I)
        cseq = re.search(r"^CSeq: *\d+ (\w+)", body, re.M | re.I)
        if not call_id or not cseq or cseq.group(1) != "INVITE":
            continue
        entry = calls.setdefault(call_id.group(1), [None, None])
        if "message sent" in body.split("\n", 1)[0] and body.split("\n\n", 1)[-1].lstrip() \
                .startswith("INVITE ") and entry[0] is None:
            entry[0] = at
        elif re.search(r"^SIP/2.0 200", body.split("\n\n", 1)[-1].lstrip(), re.M) \
                and entry[1] is None:
            entry[1] = at
    return [(a, b) for a, b in calls.values() if a is not None]


def waiting_at(waits: list[tuple[float, float | None]], t: float) -> list[float]:
    return [a for a, b in waits if a <= t and (b is None or b > t)]


def seconds(text: str) -> int:
    """'1:05' or '0:14 (over)' -> seconds; '—' (nobody waiting) -> 0."""
    if ":" not in text:
        return 0
    m, s = text.split(" ")[0].split(":")
    return int(m) * 60 + int(s)


@pytest.fixture
async def shift_floor(pbx, console_settings: Settings, tmp_path):
    def user(login, name, **kw):
        return User(login=login, name=name, secret=Secret(secrets.token_urlsafe(8)), **kw)
    settings = dataclasses.replace(
        console_settings, groups=GROUPS,
        users=(user("1001", "Anna Kovacs"), user("1002", "Bela Nagy"),
               user("1003", "Csilla Toth"), user("1004", "Dorj Bat"),
               user("boss", "Sara Supervisor", role="supervisor")),
        shift=ShiftSettings(wrapup_seconds=1.0, service_level_seconds=THRESHOLD),
        speech=dataclasses.replace(console_settings.speech, enabled=False))
    reset_queues(pbx)
    phones = [await AgentPhone(sip(pbx), ext, log_dir=tmp_path, ring_ms=500).astart()
              for ext in ("1001", "1002", "1003", "1004")]
    svc = Service(settings)
    svc.calls_seen = CallLog()
    svc.bus.subscribe(svc.calls_seen)
    await svc.start()
    await svc.ami.wait_connected(15)
    for login in ("1001", "1002", "1003", "1004"):
        await svc.agent_states.log_in(login, by="test")
    yield svc
    await svc.stop()
    for p in phones:
        await p.astop()


async def test_wallboard_matches_twenty_queued_callers(pbx, shift_floor, browser, tmp_path,
                                                       artifacts):
    svc: Service = shift_floor
    boss = await sign_in(browser, svc, "boss")
    await boss.wait_for_selector('#agents tr[data-agent="1004"][data-state="ready"]')
    runs = {q: call_customer(sip(pbx), did, calls=10, rate=10, limit=10, talk_ms=3000,
                             log_dir=tmp_path, name=f"callers-{q}")
            for q, did in LINES.items()}
    samples: list[tuple[float, str, str, str]] = []
    shot = False
    while any(r.running for r in runs.values()):
        got = await boss.evaluate("""() => [Date.now() / 1000, ...['sales', 'support'].map((q) => {
            const row = document.querySelector(`#queues tr[data-queue="${q}"]`);
            return [q, row.querySelector('[data-figure="waiting"]').textContent,
                    row.querySelector('[data-figure="longest_wait"]').textContent];
          })]""")
        at = got[0]
        for q, waiting, longest in got[1:]:
            samples.append((at, q, waiting, longest))
        if not shot and all(int(w) >= 3 and seconds(lw) >= THRESHOLD for _, w, lw in got[1:]):
            await boss.screenshot(path=str(artifacts / "wallboard.png"))
            keep_screenshot(artifacts, "wallboard.png")
            shot = True
        await asyncio.sleep(0.4)
    for r in runs.values():
        (await r.wait_async(10)).check()
    assert shot, "the wallboard never showed 3 callers waiting past the threshold in both queues"
    await asyncio.sleep(1.0)
    figures = {}
    for q in LINES:
        row = boss.locator(f'#queues tr[data-queue="{q}"]')
        figures[q] = {f: await row.locator(f'[data-figure="{f}"]').inner_text()
                      for f in ("waiting", "answered", "abandoned", "service_level", "asa")}
    assert boss.errors == []
    checked = 0
    for q, run in runs.items():
        waits = sipp_waits(run)
        assert len(waits) == 10 and all(b is not None for _, b in waits)
        for at, queue, waiting, longest in (s for s in samples if s[1] == q):
            # The board and SIPp agree, allowing for a caller joining or being
            # answered within 0.3 s of the sample (the push and the read race).
            around = [len(waiting_at(waits, at + d)) for d in (-0.3, 0.0, 0.3)]
            assert min(around) <= int(waiting) <= max(around), (q, at, waiting, around)
            now = waiting_at(waits, at)
            if len(now) == int(waiting) and now and longest != "—":
                # Shown in whole seconds, ticking four times a second.
                expected = at - min(now)
                assert expected - 1.3 <= seconds(longest) <= expected + 0.1, \
                    (q, at, longest, expected)
                checked += 1
        assert max(int(w) for _, qq, w, _ in samples if qq == q) >= 5
        # Service level: the share of callers answered within the threshold.
        answered = [b - a for a, b in waits]
        low = sum(w <= THRESHOLD - 0.3 for w in answered) / len(answered)
        high = sum(w <= THRESHOLD + 0.3 for w in answered) / len(answered)
        shown = int(figures[q]["service_level"].rstrip("%")) / 100
        assert round(low, 2) <= shown <= round(high, 2), (q, shown, answered)
        assert 0 < shown < 1, "the run should have callers on both sides of the threshold"
        assert (figures[q]["waiting"], figures[q]["answered"], figures[q]["abandoned"]) == \
            ("0", "10", "0")
        asa = sum(answered) / len(answered)
        assert abs(seconds(figures[q]["asa"]) - asa) <= 1.0, (figures[q]["asa"], asa)
    assert checked >= 10
    ends = [e for e in svc.calls_seen.events if isinstance(e, CallEnded)]
    assert len(ends) == 20 and all(e.call.result.value == "answered" for e in ends)
    sales_agents = {e.call.agent for e in ends if e.call.queue == "sales"}
    assert sales_agents == {"1001", "1002"}
    assert {e.call.agent for e in ends if e.call.queue == "support"} == {"1003", "1004"}
    assert svc.agent_states.status("1001").state in (AgentState.READY, AgentState.WRAPUP)
