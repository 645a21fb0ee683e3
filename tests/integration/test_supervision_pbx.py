"""Listen, whisper and barge on the real stack.

Sandbox Asterisk, three SIPp phones each playing a tone of its own: the
customer 500 Hz, the agent 800 Hz, the supervisor 1300 Hz. The supervisor's
phone is rung by the service (ivr/supervision.py) and joins the agent's call
in each mode. Who hears the supervisor is read from the RTP the PBX sends to
each phone (ivr/testing/rtpcapture.py); what each party *says* is read from the
service's own per-party audio taps, which must never pick up the supervisor
(coaching would take the supervisor's words for the agent's).
"""
from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from ivr.calls.events import AgentAnswered, CallEnded, MonitorEnded, MonitorStarted
from ivr.config import Secret, User
from ivr.testing.phones import AgentPhone, call_customer, tone_ulaw
from ivr.testing.rtpcapture import RtpCapture, tone_level
from ivr.server import Service
from ivr.supervision import MonitorError
from ivr.tap.server import TapServer
from ivr.tap.taps import TapManager
from tests.integration.conftest import CallLog

pytestmark = pytest.mark.pbx

CUSTOMER_HZ, AGENT_HZ, SUPERVISOR_HZ = 500, 800, 1300
HEARD = 3000          # a tone plays at ~9800; one that is not there measures < 50


def sip(pbx) -> str:
    return f"{pbx.sip_host}:{pbx.sip_port}"


def boss(phone: str = "1099") -> User:
    return User(login="boss", name="Sara Supervisor", role="supervisor", phone=phone,
                secret=Secret(secrets.token_urlsafe(8)))


class PcmSink:
    """Tap sink keeping each stream's audio (16-bit little-endian, 8 kHz)."""

    def __init__(self, store: dict):
        self.store = store

    def __call__(self, stream):
        key = (stream.call_id, stream.speaker)
        parts = self.store.setdefault(key, [])

        class _Sink:
            def audio(self, pcm: bytes, rate: int) -> None:
                parts.append((time.time(), pcm))

            def end(self, reason: str) -> None:
                pass
        return _Sink()


def said(taps: dict, call_id: str, speaker: str, since: float, until: float) -> list[int]:
    pcm = b"".join(p for t, p in taps.get((call_id, speaker), []) if since <= t < until)
    return [int.from_bytes(pcm[i:i + 2], "little", signed=True) for i in range(0, len(pcm) - 1, 2)]


async def test_listen_whisper_barge_reach_exactly_the_right_parties(pbx, staffed, tmp_path):
    svc: Service = staffed
    calls: CallLog = svc.calls_seen
    tapped: dict = {}
    server = TapServer("127.0.0.1", 0, sink_factory=PcmSink(tapped))
    await server.start()
    taps = TapManager(svc.ami, server)
    unsubscribe = svc.bus.subscribe(taps.on_call_event)
    capture = RtpCapture().start()
    agent = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=300,
                             audio=tone_ulaw(AGENT_HZ)).astart()
    phone = await AgentPhone(sip(pbx), "1099", password="super1099", log_dir=tmp_path,
                             ring_ms=400, audio=tone_ulaw(SUPERVISOR_HZ)).astart()
    results = {}
    try:
        for mode in ("listen", "whisper", "barge"):
            customer = call_customer(sip(pbx), "5550111", talk_ms=13000, log_dir=tmp_path,
                                     audio=tone_ulaw(CUSTOMER_HZ), name=f"customer-{mode}")
            answered = await calls.wait_for(
                lambda e: isinstance(e, AgentAnswered) and e.agent == "1003"
                and e.call.call_id not in results, 20, "the agent answering")
            call_id = answered.call.call_id
            await asyncio.sleep(1.5)
            agent_rtp = agent.dialog().media
            customer_rtp = (await asyncio.to_thread(customer.dialogs))[-1].media
            for addr in (agent_rtp, customer_rtp):
                capture.watch(*addr)
            asked = time.time()
            await svc.supervision.start(call_id, boss(), mode)
            started = await calls.wait_for(
                lambda e: isinstance(e, MonitorStarted) and e.call.call_id == call_id, 15,
                f"the supervisor's phone joining ({mode})")
            assert started.at - asked < 5.0
            supervisor_rtp = phone.dialog().media
            capture.watch(*supervisor_rtp)
            await asyncio.sleep(4.0)
            t0, t1 = started.at + 0.5, time.time()
            heard = {who: {hz: capture.level(*addr, hz, t0, t1)
                           for hz in (CUSTOMER_HZ, AGENT_HZ, SUPERVISOR_HZ)}
                     for who, addr in (("agent", agent_rtp), ("customer", customer_rtp),
                                       ("supervisor", supervisor_rtp))}
            before = {who: capture.level(*addr, SUPERVISOR_HZ, asked - 1.5, asked)
                      for who, addr in (("agent", agent_rtp), ("customer", customer_rtp))}
            spoken = {who: {hz: tone_level(said(tapped, call_id, who, t0, t1), hz)
                            for hz in (CUSTOMER_HZ, AGENT_HZ, SUPERVISOR_HZ)}
                      for who in ("agent", "customer")}
            # The supervisor hangs up from the board: the monitor ends, the call goes on.
            assert await svc.supervision.stop(call_id, boss())
            stopped = await calls.wait_for(
                lambda e: isinstance(e, MonitorEnded) and e.call.call_id == call_id, 10,
                "the monitor ending")
            end = await calls.wait_for(
                lambda e: isinstance(e, CallEnded) and e.call.call_id == call_id, 20, "call end")
            (await customer.wait_async(20)).check()
            results[call_id] = (mode, heard, before, spoken, started, stopped, end.call)
    finally:
        unsubscribe()
        await taps.close()
        await server.close()
        capture.stop()
        await agent.astop()
        await phone.astop()

    for call_id, (mode, heard, before, spoken, started, stopped, call) in results.items():
        detail = f"{mode}: heard {heard}, spoken {spoken}"
        # The supervisor hears both sides in every mode.
        assert heard["supervisor"][CUSTOMER_HZ] > HEARD and heard["supervisor"][AGENT_HZ] > HEARD, detail
        # The parties hear each other as before.
        assert heard["agent"][CUSTOMER_HZ] > HEARD and heard["customer"][AGENT_HZ] > HEARD, detail
        # Who hears the supervisor: listen nobody, whisper the agent, barge both.
        assert (heard["agent"][SUPERVISOR_HZ] > HEARD) == (mode in ("whisper", "barge")), detail
        assert (heard["customer"][SUPERVISOR_HZ] > HEARD) == (mode == "barge"), detail
        if mode == "listen":     # listening adds nothing to what either party hears
            for who in ("agent", "customer"):
                assert heard[who][SUPERVISOR_HZ] < 100 and before[who] < 100, detail
        # What each party says (the coaching's taps) never carries the supervisor.
        assert spoken["agent"][AGENT_HZ] > HEARD and spoken["customer"][CUSTOMER_HZ] > HEARD, detail
        assert spoken["agent"][SUPERVISOR_HZ] < 100 and spoken["customer"][SUPERVISOR_HZ] < 100, detail
        # The monitoring is part of the call's record: who, how, when.
        [m] = call.monitors
        assert (m.supervisor, m.phone, m.mode, m.agent) == ("boss", "1099", mode, "1003"), detail
        assert (m.started_at, m.ended_at) == (started.at, stopped.at)
        assert call.agents_rung == ["1003"] and call.result.value == "answered"
        await staffed.recorder.drain()
        record = await staffed.store.get_call(call_id)
        assert [(r["supervisor"], r["mode"], r["agent"]) for r in record["monitors"]] == \
            [("boss", mode, "1003")]
        assert record["monitors"][0]["started_at"] == m.started_at
    assert [r[0] for r in results.values()] == ["listen", "whisper", "barge"]


async def test_monitoring_requests_that_cannot_be_served_say_why(pbx, staffed, tmp_path):
    svc: Service = staffed
    calls: CallLog = svc.calls_seen
    agent_user = User(login="1003", name="Csilla", secret=Secret("x"))
    with pytest.raises(MonitorError) as exc:
        await svc.supervision.start("nope", agent_user, "listen")
    assert exc.value.status == 403
    with pytest.raises(MonitorError) as exc:
        await svc.supervision.start("nope", boss(), "listen")
    assert exc.value.status == 404
    with pytest.raises(MonitorError) as exc:
        await svc.supervision.start("nope", boss(), "eavesdrop")
    assert exc.value.status == 400
    with pytest.raises(MonitorError) as exc:
        await svc.supervision.start("nope", boss(phone=""), "listen")
    assert exc.value.status == 409 and "phone" in str(exc.value)
    # A supervisor phone that is not registered: the board is told, nothing is recorded.
    told = []
    svc.supervision.push_supervisor = lambda login, msg: told.append((login, msg))
    agent = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=300).astart()
    try:
        customer = call_customer(sip(pbx), "5550111", talk_ms=6000, log_dir=tmp_path)
        answered = await calls.wait_for(lambda e: isinstance(e, AgentAnswered), 20, "answer")
        await svc.supervision.start(answered.call.call_id, boss(), "listen")
        deadline = time.monotonic() + 10
        while not told and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        end = await calls.wait_for(lambda e: isinstance(e, CallEnded), 20, "call end")
        (await customer.wait_async(20)).check()
    finally:
        await agent.astop()
    assert told and told[0][0] == "boss" and told[0][1]["type"] == "monitor_failed"
    assert "registered" in told[0][1]["reason"] or "answer" in told[0][1]["reason"]
    assert end.call.monitors == []


async def test_only_a_supervisors_phone_may_run_the_monitor_context(pbx, staffed, tmp_path):
    """[supervisor-monitor] checks IVR_SUPERVISOR (set on supervisors' endpoints):
    an agent's phone sent there (by a stolen AMI secret, say) spies on nobody."""
    svc: Service = staffed
    calls: CallLog = svc.calls_seen
    agent = await AgentPhone(sip(pbx), "1003", log_dir=tmp_path, ring_ms=300).astart()
    other = await AgentPhone(sip(pbx), "1002", log_dir=tmp_path, ring_ms=300).astart()
    try:
        customer = call_customer(sip(pbx), "5550111", talk_ms=9000, log_dir=tmp_path)
        answered = await calls.wait_for(lambda e: isinstance(e, AgentAnswered), 20, "answer")
        target = next(l for l in answered.call.legs.values() if l.endpoint == "1003")
        reply = await svc.ami.originate(
            Channel="PJSIP/1002", Context="supervisor-monitor", Exten="listen", Priority="1",
            ChannelId="monitor-intruder", Variable=[f"MONITOR_TARGET={target.uniqueid}"])
        assert reply.get("Response") == "Success"      # the phone was rung and answered ...
        end = await calls.wait_for(lambda e: isinstance(e, CallEnded), 20, "call end")
        (await customer.wait_async(20)).check()
    finally:
        await agent.astop()
        await other.astop()
    # ... but no spying started, and the call carries no monitor.
    assert not [e for e in calls.events if isinstance(e, MonitorStarted)]
    assert end.call.monitors == []
    log = (pbx.host_dir / "log" / "messages").read_text(errors="replace")
    assert "supervisor-monitor refused for PJSIP/1002" in log
