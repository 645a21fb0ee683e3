"""docker/compose.yaml for real: podman builds both images and runs the stack.

A carrier call (SIPp on this host, coming in through the published SIP port)
goes through the containerised Asterisk's IVR to a SIPp agent registered with
its generated password. The containerised service must track it, pop the
script on the agent's WebSocket, tap both parties into Vosk (the Korean model,
mounted as the models volume) and record the outcome and the speech in the
SQLite database of its volume; `down` and `up` again keep that record.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest

from ivr.demo import KOREAN
from ivr.testing.phones import AgentPhone, call_customer
from ivr.testing.speech import lines_to_ulaw
from tests.containers.podman import podman

pytestmark = pytest.mark.pbx

KOREAN_CALLER = "821012345678"   # the support line pops the Korean script for 82...
AGENT = "1003"


def web(stack) -> str:
    return f"http://127.0.0.1:{stack.env['WEB_PORT']}"


def sip(stack) -> str:
    return f"127.0.0.1:{stack.env['SIP_PORT']}"


async def signed_in(stack, login: str) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(web(stack), cookie_jar=aiohttp.CookieJar(unsafe=True),
                                    headers={"Origin": web(stack)})
    r = await session.post("/api/login", json={"login": login,
                                               "secret": stack.env[f"IVR_SECRET_{login}"]})
    assert r.status == 200, await r.text()
    return session


def db_row(stack, call_id: str) -> dict | None:
    """The call's row in the SQLite file of the service's volume (read-only)."""
    path = stack.volume("ivr-data") / "ivr.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()
    return dict(row) if row else None


async def wait_for(what: str, check, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s")
        await asyncio.sleep(0.5)


async def place_call(stack, tmp: Path) -> dict:
    agent_audio = lines_to_ulaw(KOREAN.agent_lines, tmp / "agent.ulaw", voice="ko")
    customer_audio = lines_to_ulaw(KOREAN.customer_lines, tmp / "customer.ulaw", voice="ko")
    session = await signed_in(stack, AGENT)
    messages: list[dict] = []
    try:
        ws = await session.ws_connect("/ws")
        hello = await ws.receive_json(timeout=10)
        assert hello["type"] == "hello" and hello["user"]["login"] == AGENT

        async def listen() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    messages.append(json.loads(msg.data))
        listener = asyncio.ensure_future(listen())
        agent = await AgentPhone(sip(stack), AGENT, stack.env[f"SIP_PASSWORD_{AGENT}"],
                                 log_dir=tmp, ring_ms=1000, audio=agent_audio).astart()
        try:
            # From this host's SIPp, through the published port: the container sees the
            # carrier's address (TRUNK_PEER) and takes it as an inbound carrier call.
            customer = call_customer(sip(stack), "5550100", digit="2", talk_ms=22000,
                                     log_dir=tmp, caller=KOREAN_CALLER, local_ip="127.0.0.1",
                                     audio=customer_audio)
            await customer.wait_async(90)
            customer.check()
        finally:
            await agent.astop()
        agent.uas.check()
        card = next((m for m in messages if m.get("type") == "card"), None)
        assert card is not None, f"no script popped on the agent's WebSocket: {messages[:5]}"
        call_id = card["call_id"]
        row = await wait_for("ended call with speech in the record",
                             lambda: (r := db_row(stack, call_id)) and r["transcript"] and r,
                             30)
        # The agent wraps up from the console: the outcome goes into the volume too.
        script = card.get("card", card).get("script") or {}
        disposition = (script.get("dispositions") or [{"id": "resolved"}])[0]["id"]
        r = await session.post(f"/api/calls/{call_id}/wrapup",
                               json={"disposition": disposition, "notes": "container test"})
        assert r.status == 200, await r.text()
        row = await wait_for("wrap-up in the record",
                             lambda: (r := db_row(stack, call_id)) and r["disposition"] and r,
                             10)
        listener.cancel()
        await ws.close()
    finally:
        await session.close()
    return {"call_id": call_id, "card": card, "messages": messages, "row": row,
            "disposition": disposition}


@pytest.fixture(scope="module")
def first_call(stack, tmp_path_factory) -> dict:
    return asyncio.run(place_call(stack, tmp_path_factory.mktemp("call")))


def test_images_are_small_run_as_non_root_and_asterisk_has_a_health_check(images):
    for tag, user in (("ivr-asterisk", "asterisk"), ("ivr-service", "ivr")):
        config = json.loads(podman("image", "inspect", tag).stdout)[0]["Config"]
        assert config.get("User") == user, f"{tag} runs as {config.get('User')!r}"
    health = json.loads(podman("image", "inspect", "ivr-asterisk").stdout)[0]["Healthcheck"]
    assert "core waitfullybooted" in " ".join(health["Test"]), health
    # Debian's Asterisk with its dependencies, and Python with the venv; figures in the README.
    assert images["ivr-asterisk"] < 400e6 and images["ivr-service"] < 250e6, images


def test_published_ports_listen_on_loopback_only(stack):
    for service in ("asterisk", "ivr"):
        ports = podman("port", stack.container(service)).stdout.split("\n")
        bound = [p.split("->")[1].strip() for p in ports if "->" in p]
        assert bound and all(b.startswith("127.0.0.1:") for b in bound), ports


def test_inbound_call_through_the_ivr_is_tracked_popped_tapped_and_recorded(stack, first_call):
    row = first_call["row"]
    assert row["direction"] == "inbound" and row["result"] == "answered", row
    assert row["did"] == "5550100" and row["ivr_choice"] == "2" and row["queue"] == "support"
    assert row["agent"] == AGENT and row["customer_num"] == KOREAN_CALLER
    assert row["project"] == "acme-support" and row["script_id"] == "acme-support-ko"
    assert row["disposition"] == first_call["disposition"] and row["notes"] == "container test"
    # Both parties tapped: the console heard each side, and each side's speech is recorded.
    taps = {(m["speaker"], m["state"]) for m in first_call["messages"] if m.get("type") == "tap"}
    assert ("agent", "ok") in taps and ("customer", "ok") in taps, taps
    transcript = json.loads(row["transcript"])
    speakers = {u["speaker"] for u in transcript}
    assert speakers == {"agent", "customer"}, transcript
    assert any("바보" in u["text"] for u in transcript if u["speaker"] == "customer"), transcript
    assert json.loads(row["prompts"]), "no coaching prompt recorded"
    # The service reports it too (supervisor API).
    async def listed() -> list[dict]:
        session = await signed_in(stack, "boss")
        try:
            r = await session.get("/api/calls", params={"since": str(int(time.time()) - 3600),
                                                        "until": str(int(time.time()) + 60)})
            return (await r.json())["calls"]
        finally:
            await session.close()
    calls = asyncio.run(listed())
    assert any(c["call_id"] == first_call["call_id"] and c["agent"] == AGENT for c in calls)


def test_down_and_up_keeps_the_recorded_calls(stack, first_call, tmp_path):
    stack.down()
    stack.up()
    stack.wait_healthy("asterisk", 60)
    stack.wait_healthy("ivr", 60)
    row = db_row(stack, first_call["call_id"])
    assert row is not None and row["disposition"] == first_call["disposition"], row
    assert json.loads(row["transcript"]), "the transcript was lost"
    # The restarted PBX kept its configuration volume and still takes the phones.
    phone = AgentPhone(sip(stack), AGENT, stack.env[f"SIP_PASSWORD_{AGENT}"],
                       log_dir=tmp_path)
    phone.register()
    phone.unregister()


def test_pbx_apply_installs_into_the_containers_config_volume(stack, tmp_path, monkeypatch):
    """An admin's `ivr pbx apply --etc VOLUME --cli "... exec asterisk asterisk -rx"`:
    the new DID is live in the container at once; the generated secrets stay."""
    from ivr.cli import main
    from tests.conftest import REPO
    from tests.containers.podman import ENV
    dialplans = tmp_path / "dialplans"
    shutil.copytree(REPO / "dialplans", dialplans)
    ext = dialplans / "extensions.conf"
    ext.write_text(ext.read_text().replace("; Any other number we receive", (
        "exten => 5550133,1,NoOp(Inbound call to the new line)\n"
        " same => n,Set(__CALL_DIRECTION=inbound)\n"
        " same => n,Set(__DID=${EXTEN})\n"
        " same => n,Goto(to-queue,sales,1)\n\n; Any other number we receive"), 1))
    config = tmp_path / "ivr.yaml"
    config.write_text(f"pbx: {{dialplans: {dialplans}}}\nscripts: {REPO / 'scripts'}\n")
    monkeypatch.setenv("IVR_AMI_SECRET", "x" * 16)
    etc = stack.volume("asterisk-etc")
    cli = (f"env CONTAINERS_CONF={ENV['CONTAINERS_CONF']} podman exec "
           f"{stack.container('asterisk')} asterisk -rx")
    assert main(["pbx", "apply", "-c", str(config), "--etc", str(etc), "--cli", cli]) == 0
    shown = stack.exec("asterisk", "asterisk", "-rx", "dialplan show 5550133@from-trunk")
    assert "'5550133' =>" in shown, shown
    # The secrets the entrypoint wrote were carried over, not replaced by the samples.
    pjsip = (etc / "pjsip.conf").read_text()
    assert f"password = {stack.env['SIP_PASSWORD_1001']}" in pjsip and "agent1001" not in pjsip
    assert f"secret = {stack.env['IVR_AMI_SECRET']}" in (etc / "manager.conf").read_text()
    assert f"TRUNK_PEER = {stack.env['TRUNK_PEER']}" in (etc / "extensions.conf").read_text()
    # and the phones still register with them.
    phone = AgentPhone(sip(stack), AGENT, stack.env[f"SIP_PASSWORD_{AGENT}"], log_dir=tmp_path)
    phone.register()
    phone.unregister()
