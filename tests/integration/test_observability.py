"""What an operator watches, on the real stack while a call runs: /metrics scraped
mid-call (calls by state, pops and their latency, AMI state, reconnects and
events, taps, speech streams and decoding, prompts, the recorder, console
sockets), and the log in JSON with the call and agent on every line about them,
no secrets and no tap UUIDs."""
from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import re
import time

import aiohttp
import pytest

from ivr.calls.events import AgentAnswered, CallEnded
from ivr.config import Secret, Settings, StoreSettings, User, WebSettings
from ivr.logs import ContextFilter, JsonFormatter
from ivr.server import Service
from ivr.testing.phones import AgentPhone, call_customer
from ivr.testing.speech import lines_to_ulaw
from tests.conftest import REPO, free_port
from tests.integration.conftest import CallLog

pytestmark = pytest.mark.pbx

AGENT = User(login="1001", name="김민수", operator_id="7", position="상담원",
             secret=Secret("kim-secret-for-metrics"))
TALK_MS = 22000


def parse(text: str) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value} (labels as written)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def value(metrics: dict[str, float], name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    key = f"{name}{{{want}}}" if want else name
    return metrics.get(key, 0.0)


async def until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        await asyncio.sleep(0.1)


async def test_metrics_scraped_mid_call_and_logs_name_the_call(pbx, pbx_settings: Settings,
                                                                tmp_path):
    settings = dataclasses.replace(
        pbx_settings, web=WebSettings(host="127.0.0.1", port=free_port()),
        store=StoreSettings(url=f"sqlite:///{tmp_path / 'ivr.db'}"),
        scripts=str(REPO / "scripts"), customers=str(REPO / "scripts" / "customers.csv"),
        users=(AGENT,), log_format="json")
    log_text = io.StringIO()
    handler = logging.StreamHandler(log_text)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    svc = Service(settings)
    calls = CallLog()
    svc.bus.subscribe(calls)
    tap_uuids: set[str] = set()
    agent = None
    try:
        await svc.start()
        await svc.ami.wait_connected(15)
        assert svc.speech is not None, "speech must be running (Korean model)"
        base = svc.web_url
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.post(f"{base}/api/login", headers={"Origin": base},
                                 json={"login": "1001", "secret": str(AGENT.secret)}) as r:
                assert r.status == 200
            ws = await http.ws_connect(f"{base}/ws", headers={"Origin": base})
            assert (await ws.receive_json())["type"] == "hello"
            seen: list[dict] = []

            async def read() -> None:
                async for msg in ws:
                    seen.append(json.loads(msg.data))
            reader = asyncio.ensure_future(read())

            async def scrape() -> dict[str, float]:
                async with http.get(f"{base}/metrics") as r:
                    assert r.status == 200
                    return parse(await r.text())

            before = await scrape()
            agent = await AgentPhone(f"{pbx.sip_host}:{pbx.sip_port}", "1001", log_dir=tmp_path,
                                     ring_ms=500).astart()
            customer = call_customer(
                f"{pbx.sip_host}:{pbx.sip_port}", "5550111", caller="821012345678",
                talk_ms=TALK_MS, log_dir=tmp_path,
                audio=lines_to_ulaw([0.5, "여보세요", 1.0, "너무 비싸요", 2.0], tmp_path / "c.ulaw",
                                    voice="ko"))
            answered = await calls.wait_for(lambda e: isinstance(e, AgentAnswered), 20, "answer")
            call_id = answered.call.call_id
            await until(lambda: len(svc.tap_server.streams) == 2, 10, "both taps")
            tap_uuids |= set(svc.tap_server.streams)
            await asyncio.sleep(3)                           # audio flowing, speech decoding
            mid = await scrape()

            # mid-call: what is going on right now
            assert sum(v for k, v in mid.items() if k.startswith("ivr_calls{")) >= 1
            assert value(mid, "ivr_calls", state="bridged") == 1, mid
            assert value(mid, "ivr_pops_total") >= 1
            assert value(mid, "ivr_pop_latency_seconds_count") >= 1
            assert 0 < value(mid, "ivr_pop_latency_seconds_sum") < 5
            assert value(mid, "ivr_ami_connected") == 1
            assert value(mid, "ivr_ami_state", state="connected") == 1
            assert value(mid, "ivr_ami_logins_total") >= 1
            assert value(mid, "ivr_ami_events_total") > value(before, "ivr_ami_events_total")
            assert value(mid, "ivr_taps_connected") == 2
            assert value(mid, "ivr_tap_states_total", state="ok") >= 2
            assert value(mid, "ivr_speech_streams") == 2
            assert value(mid, "ivr_speech_decode_cpu_seconds_total") > 0
            assert value(mid, "ivr_speech_audio_seconds_total", fate="received") > 2
            assert value(mid, "ivr_speech_recognition_lag_seconds_count") > 0
            assert value(mid, "ivr_console_clients") == 1
            assert "ivr_recorder_pending_writes" in mid
            assert "ivr_recorder_write_failures_total" in mid

            await calls.wait_for(lambda e: isinstance(e, CallEnded), TALK_MS / 1000 + 15, "end")
            (await customer.wait_async(20)).check()
            await until(lambda: svc.speech.open_streams == 0, 10, "the streams to close")
            after = await scrape()
            await ws.close()
            await reader
    finally:
        if agent is not None:
            await agent.astop()
        await svc.stop()
        root.removeHandler(handler)
        root.setLevel(old_level)

    # after the call: nothing live, and what it did is counted
    assert not any(v for k, v in after.items() if k.startswith("ivr_calls{"))
    assert value(after, "ivr_taps_connected") == 0 and value(after, "ivr_speech_streams") == 0
    assert value(after, "ivr_tap_states_total", state="ended") >= 2
    # the agent said nothing: checklist prompts, counted by rule as the console got them
    shown: dict[str, int] = {}
    for m in seen:
        if m["type"] == "prompt":
            key = f'ivr_prompts_total{{rule="{m["rule_id"]}",severity="{m["severity"]}"}}'
            shown[key] = shown.get(key, 0) + 1
    counted = {k: v for k, v in after.items() if k.startswith("ivr_prompts_total{")}
    assert shown and counted == shown, (counted, shown)

    # the log: one JSON object a line; the call's lines say which call (and agent)
    lines = [json.loads(line) for line in log_text.getvalue().splitlines()]
    about = [x for x in lines if x.get("call_id") == call_id]
    loggers = {x["logger"] for x in about}
    assert {"ivr.calls.bus", "ivr.tap.taps", "ivr.tap.server"} <= loggers, loggers
    assert any(x.get("agent") == "1001" for x in about)
    text = log_text.getvalue()
    for secret in (str(settings.ami.secret), str(AGENT.secret)):
        assert secret not in text
    assert tap_uuids and not any(u in text for u in tap_uuids)
    assert not re.search(r"AudioSocket/[^\s\"]*/[0-9a-f-]{36}", text)
