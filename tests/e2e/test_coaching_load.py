"""Coaching many calls at once on the real stack: the speech stage keeps up, and when
it cannot it degrades in order, says so on the consoles, and never turns its own
delay into a false "missed".

Every call rings agent 1004 directly (the key-account line, Dial() rings a busy
phone too), whose SIPp phone answers them all and says the whole greeting in
each: an item "missed" on any of these calls would be false. The callers are
Korean (82...), and in this test's copy of the scripts the Korean support script
also serves the key-account line.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ivr.calls.events import AgentAnswered, CallEnded
from ivr.config import Secret, SpeechSettings, User
from ivr.testing.phones import AgentPhone, call_customer
from ivr.server import Service
from tests.e2e.conftest import sign_in
from tests.e2e.test_coaching import sip, speech_file
from tests.integration.conftest import CallLog

pytestmark = pytest.mark.pbx

AGENT = "1004"
GREETING = [1.0, "안녕하세요", 0.8, "에이스 텔레콤", 0.8, "김민수", 0.8, "말씀해 주세요", 3.0]
CUSTOMER = [6.0, "여보세요 요금이 너무 많이 나왔어요", 1.5, "바로 확인해 주실 수 있나요", 3.0]
ITEMS = ("greeted", "named_company", "gave_own_name")     # said by every agent, early


async def start_service(console_settings, mode: str) -> Service:
    scripts = Path(console_settings.scripts)
    ko = scripts / "acme-support-ko.yaml"
    ko.write_text(ko.read_text(encoding="utf-8").replace(
        "match:\n", "match:\n  - {project: acme-key-accounts, caller_prefix: \"82\"}\n", 1),
        encoding="utf-8")
    users = tuple(u for u in console_settings.users if u.login != AGENT) + (
        User(login=AGENT, name="김민수", operator_id="4", secret=Secret("kim-secret-1004")),)
    svc = Service(dataclasses.replace(console_settings, users=users,
                                      speech=SpeechSettings(mode=mode)))
    svc.calls_seen = CallLog()
    svc.bus.subscribe(svc.calls_seen)
    await svc.start()
    await svc.ami.wait_connected(15)
    assert svc.speech is not None
    return svc


async def place_calls(pbx, svc, tmp_path: Path, n: int, talk_ms: int) -> list[str]:
    agent = await AgentPhone(sip(pbx), AGENT, log_dir=tmp_path, ring_ms=300,
                             audio=speech_file(tmp_path / "agent.ulaw", *GREETING)).astart()
    try:
        run = call_customer(sip(pbx), "5550199", caller="821055500001", calls=n, rate=1,
                            limit=n, talk_ms=talk_ms, log_dir=tmp_path,
                            audio=speech_file(tmp_path / "customer.ulaw", *CUSTOMER))
        await svc.calls_seen.wait_for(lambda e: isinstance(e, AgentAnswered), 30, "answer")
        await run.wait_async(talk_ms / 1000 + 60)
        ended = set()
        deadline = time.monotonic() + 30
        while len(ended) < n and time.monotonic() < deadline:
            ended = {e.call.call_id for e in svc.calls_seen.events if isinstance(e, CallEnded)}
            await asyncio.sleep(0.5)
    finally:
        await agent.astop()
    assert len(ended) == n, f"{len(ended)} of {n} calls ended"
    return sorted(ended)


async def records(svc, call_ids: list[str]) -> list[dict]:
    from tests.e2e.test_coaching_trust import saved
    return [await saved(svc, call_id, timeout=30) for call_id in call_ids]


async def test_twelve_transcript_calls_keep_up(pbx, console_settings, tmp_path):
    svc = await start_service(console_settings, "transcript")
    try:
        call_ids = await place_calls(pbx, svc, tmp_path, 12, 35000)
        got = await records(svc, call_ids)
        stats = svc.speech.stats
    finally:
        await svc.stop()
    received, processed, shed = svc.speech.accounted()
    # Every second of audio is accounted for; how much a 2-core machine sheds at this
    # load is the benchmark's to measure (bench/live_load.py): here, next to nothing.
    assert processed == pytest.approx(received, rel=0.01)
    assert shed < 0.02 * received and stats.refused_seconds == 0, (received, processed, shed)
    assert received > 12 * 2 * 25          # both parties of every call were heard
    # What the stage must never do: say "not yet" about an item whose words it heard in
    # time (its own delay turned into a false "missed"). What the recognizer does not
    # hear at all is its accuracy, measured by the benchmarks (coaching_accuracy.py,
    # live_load.py): the short phrases said once in each call's first seconds, all
    # twelve calls greeting at once, are heard in time in 47-48 of 48 here (spotting
    # confidence 0.7-0.8 on "에이스" and "김민수"); each is heard by the greeting's next
    # run at the latest.
    missed = []
    for record in got:
        for p in record["prompts"]:
            if p["rule_id"].startswith("checklist."):
                item = record["checklist"][p["rule_id"].split(".", 1)[1]]
                heard_in_time = item["done"] and item["at"] <= item["within"]
                assert not heard_in_time, ("a prompt for words heard in time", p, item)
                missed.append((record["call_id"], item["id"], item["status"]))
        for item in ITEMS:
            assert record["checklist"][item]["status"] in ("done", "late"), record["checklist"]
        assert "spotting" in {t["source"] for t in record["transcript"]}
    assert len(missed) <= 2, missed                # of 12 calls x 4 items due in 20 s
    # Transcript mode: free decoding of both parties went into the records, unless the
    # stage had to give it up for capacity (then it said so: a degradation is counted).
    sources = {t["source"] for r in got for t in r["transcript"]}
    assert "transcript" in sources or stats.degradations > 0, sources


async def test_overload_degrades_with_a_notice_and_no_false_missed(
        pbx, console_settings, browser, tmp_path, artifacts):
    """Twenty transcript-mode calls while the service shares one core with two busy
    processes: far over capacity. Recognition must give up transcripts (and more),
    tell the agent, and leave every item done or "can't check", never "missed"."""
    cpu = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        for h in hogs:
            os.sched_setaffinity(h.pid, {cpu})
        os.sched_setaffinity(0, {cpu})           # this process: the service and its workers
        svc = await start_service(console_settings, "transcript")
        try:
            page = await sign_in(browser, svc, AGENT)
            call_ids = await place_calls(pbx, svc, tmp_path, 20, 35000)
            await page.screenshot(path=str(artifacts / "console-capacity.png"), full_page=True)
            notices = await page.locator("[data-role=notice]").all_inner_texts()
            got = await records(svc, call_ids)
            level_reached = svc.speech.stats.degradations
        finally:
            await svc.stop()
    finally:
        os.sched_setaffinity(0, before)
        for h in hogs:
            h.kill()
    assert level_reached > 0
    assert any("capacity" in n for n in notices), notices
    for record in got:
        statuses = {i: record["checklist"][i]["status"] for i in ITEMS}
        assert set(statuses.values()) <= {"done", "cant_check"}, statuses
        assert not any(p["rule_id"].startswith("checklist.") for p in record["prompts"]), \
            record["prompts"]
