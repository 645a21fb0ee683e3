"""What the shipped dialplans refuse (the PBX side of the security issue), on the sandbox.

- An agent's outbound call (0 + number) reaches Dial() with digits only: a
  dialled "0555&PJSIP/1002" would otherwise give Dial() a second destination.
- The carrier trunk, which has no password, is only the carrier's address: a
  request from elsewhere whose From says "trunk" is not let in.
"""
from __future__ import annotations

import asyncio

import pytest

from ivr.calls.events import CallEnded
from ivr.testing.phones import AgentPhone, CustomerPhone, SippError, abandon_call, call_customer

pytestmark = pytest.mark.pbx


def sip(pbx) -> str:
    return f"{pbx.sip_host}:{pbx.sip_port}"


async def finish(run, timeout: float) -> int:
    """The run's exit code; a run still going after ``timeout`` is stopped (-1)."""
    try:
        await run.wait_async(timeout)
    except SippError:
        await run.stop_async(grace=0.5)
        return -1
    return run.returncode


async def test_agent_dial_out_takes_digits_only(pbx, pbx_settings, service, tmp_path):
    host, port = pbx_settings.pbx.trunk_peer.split(":")
    carrier = await CustomerPhone(log_dir=tmp_path, local_ip=host, local_port=int(port),
                                  ring_ms=200, talk_ms=1500).astart()
    bela = await AgentPhone(sip(pbx), "1002", log_dir=tmp_path, answer=False).astart()
    try:
        injected = call_customer(sip(pbx), "0555&PJSIP/1002", caller="1001",
                                 password="agent1001", local_ip="127.0.0.1", talk_ms=2000,
                                 log_dir=tmp_path, name="injected")
        assert await finish(injected, 15) not in (0, -1), "the call was not refused"
        assert "SIP/2.0 404" in injected.messages(), injected.messages()[-1500:]
        await asyncio.sleep(1.0)
        assert "INVITE sip:" not in carrier.uas.messages(), "the carrier got a call"
        assert "INVITE sip:" not in bela.uas.messages(), "agent 1002 was rung"

        plain = call_customer(sip(pbx), "05551234", caller="1001", password="agent1001",
                              local_ip="127.0.0.1", talk_ms=1000, log_dir=tmp_path, name="plain")
        assert await finish(plain, 20) == 0, plain.diagnostics()
        assert "INVITE sip:5551234@" in carrier.uas.messages()
    finally:
        await bela.astop()
        await carrier.astop()


async def test_the_trunk_is_only_the_carriers_address(pbx, service, tmp_path):
    calls = service.calls_seen
    # Challenged, it answers with a guessed password: refused all the same.
    fake = call_customer(sip(pbx), "5550111", caller="trunk", local_ip="127.0.0.3",
                         password="guessed-password", talk_ms=2000, log_dir=tmp_path,
                         name="fake-trunk")
    await finish(fake, 4)        # sipp lingers after a refused call; its log tells
    log = fake.messages()
    assert log.count("SIP/2.0 401 Unauthorized") >= 2 and "SIP/2.0 200 OK" not in log, log
    await asyncio.sleep(1.0)
    assert not [e for e in calls.events if e.call.did == "5550111"], \
        [e.kind for e in calls.events]
    # From the carrier's address (127.0.0.2), the same call is the carrier's. Nobody
    # answers the queue: the caller gives up (CANCEL) rather than leave a call waiting
    # in the queue for the tests after this one.
    real = abandon_call(sip(pbx), "5550111", caller="36201112233", patience_ms=1500,
                        log_dir=tmp_path, name="carrier")
    await calls.wait_for(lambda e: e.call.did == "5550111", 10, "the carrier's call")
    assert await finish(real, 20) == 0, real.diagnostics()
    await calls.wait_for(lambda e: isinstance(e, CallEnded) and e.call.did == "5550111", 10)
