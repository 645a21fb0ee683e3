"""Findings: the AMI user could Originate into anything (Application=ChanSpy ->
Success: eavesdropping and toll fraud if its secret leaks), and the service
itself originated straight into ChanSpy; tap UUIDs were in the INFO log and
every rejected tap connection was a WARNING (anyone reaching the tap port
could flood the log).

Now the service originates only into dedicated dialplan contexts ([ivr-tap]
for taps, [outbound-campaign] for campaign calls and callbacks); [ivr-tap]
spies only for AudioSocket channels; the AMI user has no system, command or
config rights. What Asterisk cannot prevent (an Originate straight into an
application by whoever holds the AMI secret) is documented in
dialplans/manager.conf. Tap UUIDs are logged at DEBUG only; rejected tap
connections are counted and logged at most once a minute per address.
All on the real sandbox Asterisk, with real SIPp calls.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid

import pytest

from ivr.ami.client import AmiClient
from ivr.calls.events import AgentAnswered, CallEnded
from ivr.outbound import OutboundCall, place_call
from ivr.testing.phones import AgentPhone, CustomerPhone, call_customer
from ivr.server import Service
from ivr.tap.taps import OK
from tests.integration.conftest import CallLog

pytestmark = pytest.mark.pbx


def sip(pbx) -> str:
    return f"{pbx.sip_host}:{pbx.sip_port}"


async def until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        await asyncio.sleep(0.05)


@pytest.fixture
async def ami(pbx, pbx_settings):
    """A connection as the service's own AMI user, recording every event."""
    events: list = []
    client = AmiClient(pbx_settings.ami, on_event=events.append)
    await client.start()
    await client.wait_connected(15)
    client.events = events
    yield client
    await client.close()


async def test_the_ami_user_cannot_run_commands_configs_or_system_apps(ami):
    replies = {
        "system": await ami.send({"Action": "Originate", "Channel": "Local/9196@agents",
                                  "Application": "System", "Data": "touch /tmp/ivr-pwned"}),
        "exec": await ami.send({"Action": "Originate", "Channel": "Local/9196@agents",
                                "Application": "Exec", "Data": "System(id)"}),
        "command": await ami.send({"Action": "Command", "Command": "core show version"}),
        "config": await ami.send({"Action": "GetConfig", "Filename": "manager.conf"}),
        "update": await ami.send({"Action": "UpdateConfig", "SrcFilename": "extensions.conf",
                                  "DstFilename": "extensions.conf", "Action-000000": "NewCat",
                                  "Cat-000000": "evil"}),
    }
    for what, reply in replies.items():
        assert reply.get("Response") == "Error", (what, dict(reply.items()))
    assert "blacklisted" in replies["system"].get("Message", "")
    assert "blacklisted" in replies["exec"].get("Message", "")
    assert "Permission denied" in replies["command"].get("Message", "")


async def test_the_tap_context_spies_only_for_audiosocket_channels(ami):
    """A phone (here a Local channel) sent into [ivr-tap] hears nothing; the
    service's own kind of tap, an AudioSocket channel, does."""
    got: list[bytes] = []

    async def tap_server(reader, writer):
        got.append(await reader.read(19))
        await asyncio.sleep(0.5)
        writer.close()
    server = await asyncio.start_server(tap_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    leg = f"sec-leg-{uuid.uuid4().hex[:8]}"
    try:
        # Something to listen to: an echo call whose first leg has a known Uniqueid.
        await ami.send({"Action": "Originate", "Channel": "Local/9196@agents/n",
                        "ChannelId": leg, "Application": "Echo", "Async": "true"})
        await asyncio.sleep(0.5)

        def spies() -> list:
            return [e for e in ami.events if e.get("Event") == "ChanSpyStart"
                    and e.get("SpyeeUniqueid") == leg]
        reply = await ami.originate(Channel="Local/9196@agents", Context="ivr-tap", Exten=leg,
                                    Priority="1")
        await asyncio.sleep(1.5)
        assert spies() == [], "a non-AudioSocket channel spied through [ivr-tap]"
        tap_id = uuid.uuid4()
        reply = await ami.originate(Channel=f"AudioSocket/127.0.0.1:{port}/{tap_id}",
                                    Context="ivr-tap", Exten=leg, Priority="1")
        assert reply.get("Response") == "Success", dict(reply.items())
        await until(lambda: spies() and got, 5, "ChanSpy for the AudioSocket tap")
        assert got[0][3:] == tap_id.bytes               # the AudioSocket UUID frame
    finally:
        await ami.send({"Action": "Hangup", "Channel": "/^Local\\/9196@agents-.*$/"})
        server.close()


@pytest.fixture
async def coached(pbx, sec_settings):
    """The whole service with speech on (the real Korean model, taps on calls)."""
    svc = Service(dataclasses.replace(sec_settings, speech=dataclasses.replace(
        sec_settings.speech, enabled=True)))
    svc.calls_seen = CallLog()
    svc.bus.subscribe(svc.calls_seen)
    await svc.start()
    await svc.ami.wait_connected(15)
    assert svc.taps is not None, "speech (and taps) must be running"
    yield svc
    await svc.stop()


async def test_taps_and_outbound_calls_go_through_dedicated_contexts_and_logs_stay_quiet(
        pbx, coached, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, "ivr.tap")
    svc, calls = coached, coached.calls_seen
    originates: list[dict] = []
    real = svc.ami.originate

    async def recorded(**fields):
        originates.append(fields)
        return await real(**fields)
    svc.ami.originate = recorded
    statuses: list = []
    on_status = svc.taps.on_status
    svc.taps.on_status = lambda s: (statuses.append(s), on_status(s))
    uuids: set[str] = set()
    on_connected = svc.tap_server.registry.expect

    def expect(uid, target):
        uuids.add(str(uid))
        on_connected(uid, target)
    svc.tap_server.registry.expect = expect

    # An inbound call to agent 1004: both parties are tapped, through [ivr-tap].
    agent = await AgentPhone(sip(pbx), "1004", log_dir=tmp_path, ring_ms=300).astart()
    try:
        caller = call_customer(sip(pbx), "5550199", talk_ms=6000, log_dir=tmp_path)
        answered = await calls.wait_for(lambda e: isinstance(e, AgentAnswered), 20, "answer")
        call_id = answered.call.call_id
        await until(lambda: {s.speaker for s in statuses if s.call_id == call_id
                             and s.state == OK} == {"agent", "customer"}, 10, "both taps up")
        streams = svc.tap_server.find(call_id)
        await until(lambda: all(s.frames > 10 for s in streams), 5, "audio on both taps")
        await calls.wait_for(lambda e: isinstance(e, CallEnded) and e.call.call_id == call_id,
                             20, "the end of the call")
        (await caller.wait_async(20)).check()
    finally:
        await agent.astop()

    # An outbound call (as the dialers place them): agent first, then the customer.
    carrier_port = int(pbx.trunk_peer.rsplit(":", 1)[1])
    agent = await AgentPhone(sip(pbx), "1002", log_dir=tmp_path, ring_ms=300).astart()
    customer = await CustomerPhone(log_dir=tmp_path, local_port=carrier_port, ring_ms=300,
                                   talk_ms=3000).astart()
    try:
        placed = await place_call(svc.ami, OutboundCall(agent="1002", number="5551234",
                                                        project="acme-telesales"))
        assert placed.answered_by_agent, placed.reason
        await calls.wait_for(lambda e: isinstance(e, CallEnded)
                             and e.call.call_id == placed.call_id, 20, "the outbound call's end")
    finally:
        await customer.astop()
        await agent.astop()

    assert len(originates) >= 3
    for fields in originates:
        assert "Application" not in fields and "Data" not in fields, fields
        assert fields["Context"] in ("ivr-tap", "outbound-campaign"), fields
    assert {f["Context"] for f in originates} == {"ivr-tap", "outbound-campaign"}

    # Tap UUIDs never above DEBUG; and a flood of bad tap connections is one line.
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert uuids and not [m for m in loud if any(u in m for u in uuids)], loud
    before = svc.tap_server.rejected
    caplog.clear()
    for i in range(150):
        reader, writer = await asyncio.open_connection("127.0.0.1", svc.tap_server.port)
        writer.write(b"\x01\x00\x10" + uuid.uuid4().bytes if i % 2 else b"\x99\x00\x01x")
        await writer.drain()
        await reader.read()                       # the server closes it
        writer.close()
    await until(lambda: svc.tap_server.rejected - before == 150, 5, "150 rejections counted")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "127.0.0.1" in warnings[0], warnings
