"""`ivr pbx apply` and `ivr pbx rollback` on a real running sandbox, mid-call.

An admin adds a DID and a queue member while a customer talks to an agent:
the live call goes on to its end, the new DID routes at once (to the new
member, the old one being busy); a broken file is refused and nothing
changes; rollback puts the previous set back.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import shutil
import socket

import pytest

from ivr.calls.events import AgentAnswered, CallEnded, CallQueued
from ivr.cli import main
from ivr.config import Settings
from ivr.testing.phones import AgentPhone, call_customer
from ivr.pbx.sandbox import Sandbox
from ivr.server import Service
from tests.conftest import REPO, free_port
from tests.integration.conftest import CallLog, sign_in_agents

pytestmark = pytest.mark.pbx

NEW_DID = """\
; Billing line (added on the running PBX by the apply test).
exten => 5550133,1,NoOp(Inbound call to the billing line)
 same => n,Set(__CALL_DIRECTION=inbound)
 same => n,Set(__DID=${EXTEN})
 same => n,Goto(to-queue,support,1)

; Any other number we receive"""


@pytest.fixture
def own_pbx(pbx, pbx_settings: Settings, tmp_path, monkeypatch):
    """A sandbox instance of this test's own, on a copy of dialplans/ it may edit."""
    dialplans = tmp_path / "dialplans"
    shutil.copytree(REPO / "dialplans", dialplans)
    settings = dataclasses.replace(
        pbx_settings,
        ami=dataclasses.replace(pbx_settings.ami, port=free_port()),
        pbx=dataclasses.replace(pbx_settings.pbx, instance=f"apply-{os.getpid()}",
                                sip_port=free_port(socket.SOCK_DGRAM),
                                dialplans=str(dialplans)),
        web=dataclasses.replace(pbx_settings.web, port=free_port()),
        speech=dataclasses.replace(pbx_settings.speech, enabled=False))
    config = tmp_path / "ivr.yaml"
    p = settings.pbx
    config.write_text(f"ami: {{port: {settings.ami.port}}}\n"
                      f"pbx: {{root: {p.root}, instance: {p.instance}, sip_port: {p.sip_port}, "
                      f"trunk_peer: '{p.trunk_peer}', dialplans: {dialplans}}}\n"
                      f"scripts: {REPO / 'scripts'}\n")
    monkeypatch.setenv("IVR_AMI_SECRET", str(settings.ami.secret))
    sandbox = Sandbox.from_settings(settings)
    sandbox.install()
    sandbox.start(timeout=60)
    yield sandbox, settings, config
    sandbox.stop()
    shutil.rmtree(sandbox.host_dir, ignore_errors=True)


def installed(sandbox: Sandbox) -> dict[str, str]:
    etc = sandbox.host_dir / "etc"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(etc.glob("*.conf"))}


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


async def test_apply_mid_call_then_refuse_a_broken_file_then_roll_back(own_pbx, tmp_path, capsys):
    sandbox, settings, config = own_pbx
    dialplans = settings.path(settings.pbx.dialplans)
    sip = f"{sandbox.sip_host}:{sandbox.sip_port}"
    service = Service(settings)
    calls = CallLog()
    service.bus.subscribe(calls)
    await service.start()
    await service.ami.wait_connected(15)
    csilla = await AgentPhone(sip, "1003", log_dir=tmp_path, ring_ms=300).astart()
    bela = await AgentPhone(sip, "1002", log_dir=tmp_path, ring_ms=300).astart()
    await sign_in_agents(service, "1003")        # 1003 joins the support queue (dynamic)
    try:
        # A customer on the support hotline talks to 1003 (the only free support member).
        live = call_customer(sip, "5550111", talk_ms=16000, log_dir=tmp_path, name="live")
        answered = await calls.wait_for(lambda e: isinstance(e, AgentAnswered), 20)
        assert answered.agent == "1003"
        live_id = answered.call.call_id

        # The admin adds DID 5550133 and agent 1002 to the support queue, and applies.
        edit(dialplans / "extensions.conf", "; Any other number we receive", NEW_DID)
        edit(dialplans / "queues.conf", "[support](department)\n",
             "[support](department)\nmember => PJSIP/1002,0,Agent Bela\n")
        code = await asyncio.to_thread(main, ["pbx", "apply", "-c", str(config)])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "+exten => 5550133,1,NoOp(Inbound call to the billing line)" in out
        assert "+member => PJSIP/1002,0,Agent Bela" in out
        assert "dialplan reload: Dialplan reloaded." in out
        assert "module reload app_queue.so: Module 'app_queue.so' reloaded successfully." in out
        assert "res_pjsip" not in out          # pjsip.conf did not change: not reloaded
        assert not [e for e in calls.of_call(live_id) if isinstance(e, CallEnded)], \
            "the live call ended with the apply"

        # The new DID routes at once: support queue, 1003 busy, so the new member answers.
        billing = call_customer(sip, "5550133", talk_ms=3000, log_dir=tmp_path, name="billing",
                                caller="36209998877")
        queued = await calls.wait_for(
            lambda e: isinstance(e, CallQueued) and e.call.did == "5550133", 15)
        assert queued.call.queue == "support"
        second = await calls.wait_for(
            lambda e: isinstance(e, AgentAnswered) and e.call.did == "5550133", 20)
        assert second.agent == "1002"
        (await billing.wait_async(30)).check()

        # The live call went on to its own end: the customer hung up after 16 s of talk.
        (await live.wait_async(40)).check()
        ended = await calls.wait_for(
            lambda e: isinstance(e, CallEnded) and e.call.call_id == live_id, 15)
        assert ended.call.result.value == "answered" and ended.call.talk_seconds >= 15, \
            ended.call

        # A broken file is refused; nothing changes in the running PBX.
        before = installed(sandbox)
        edit(dialplans / "extensions.conf", " same => n,Goto(to-queue,support,1)\n\n; Any",
             " same => n,Goto(to-queue,suport,1\n\n; Any")
        edit(dialplans / "pjsip.conf", "type = aor\nmax_contacts = 1",
             "type = aorr\nmax_contacts = 1")
        code = await asyncio.to_thread(main, ["pbx", "apply", "-c", str(config)])
        captured = capsys.readouterr()
        assert code == 1
        assert "pjsip.conf" in captured.out and "unknown type 'aorr'" in captured.out
        assert "No closing parenthesis" in captured.out
        assert "nothing was installed" in captured.err
        assert installed(sandbox) == before
        assert "'5550133' =>" in sandbox.cli("dialplan show 5550133@from-trunk")

        # Rollback: the set before the apply is back, and reloaded.
        code = await asyncio.to_thread(main, ["pbx", "rollback", "-c", str(config)])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "-exten => 5550133,1,NoOp(Inbound call to the billing line)" in out
        shown = sandbox.cli("dialplan show 5550133@from-trunk")
        assert "'5550133' =>" not in shown and "'_X.' =>" in shown, shown   # the catch-all only
        assert "PJSIP/1002" not in sandbox.cli("queue show support")
    finally:
        await csilla.astop()
        await bela.astop()
        await service.stop()
