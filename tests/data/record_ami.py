"""Re-record the AMI captures in this folder from a real sandbox Asterisk.

    python -m tests.data.record_ami            (as root; every capture, a few minutes)
    python -m tests.data.record_ami NAME ...   (only these captures)

Each scenario places real SIP calls (SIPp phones from ivr/testing/phones.py) and
saves every AMI event Asterisk sent meanwhile to <scenario>.ami. The unit
tests of the tracker and the replay benchmark read these files.
"""
from __future__ import annotations

import asyncio
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from ivr.ami.capture import record
from ivr.ami.client import AmiClient
from ivr.config import AmiSettings, PbxSettings, Secret, Settings
from ivr.outbound import OutboundCall, place_call
from ivr.pbx.sandbox import Sandbox
from tests.conftest import free_port
from ivr.testing.phones import AgentPhone, CustomerPhone, abandon_call, call_customer

HERE = Path(__file__).parent


def ami_action(settings: Settings, action: dict[str, str]) -> str:
    """One AMI action on its own connection (log in, send, read the reply)."""
    with socket.create_connection(("127.0.0.1", settings.ami.port), timeout=5) as s:
        s.sendall(f"Action: Login\r\nUsername: ivr\r\nSecret: {settings.ami.secret}\r\n\r\n"
                  .encode())
        lines = "".join(f"{k}: {v}\r\n" for k, v in action.items())
        s.sendall(f"{lines}ActionID: rec\r\n\r\n".encode())
        buf = b""
        while b"ActionID: rec" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        s.sendall(b"Action: Logoff\r\n\r\n")
    return buf.decode(errors="replace")


def agent_channel(pbx: Sandbox, ext: str) -> tuple[str, str]:
    """(channel, uniqueid) of the agent's live channel, from the CLI."""
    for line in pbx.cli("core show channels concise").splitlines():
        if line.startswith(f"PJSIP/{ext}-"):
            parts = line.split("!")
            return parts[0], parts[13]
    raise RuntimeError(f"agent {ext} has no live channel")


def main(only: list[str] | None = None) -> None:
    carrier_port = free_port(socket.SOCK_DGRAM, "127.0.0.2")
    settings = Settings(
        ami=AmiSettings(port=free_port(), secret=Secret("record")),
        pbx=PbxSettings(instance="record", sip_port=free_port(socket.SOCK_DGRAM),
                        trunk_peer=f"127.0.0.2:{carrier_port}",
                        dialplans=str(HERE.parents[1] / "dialplans")))
    pbx = Sandbox.from_settings(settings)
    pbx.ensure_root()
    pbx.install()
    pbx.start()
    # Queue members are dynamic (the service signs agents in): add them as it would.
    for queue, agent in (("support", "1003"), ("support", "1001"), ("sales", "1001"),
                         ("sales", "1002")):
        pbx.cli(f"queue add member PJSIP/{agent} to {queue}")
    sip = f"127.0.0.1:{settings.pbx.sip_port}"
    logs = Path(tempfile.mkdtemp(prefix="record-ami-"))

    def capture(name: str, seconds: float, action) -> None:
        if only and name not in only:
            return
        out = open(HERE / f"{name}.ami", "w", encoding="utf-8")
        t = threading.Thread(target=record, args=("127.0.0.1", settings.ami.port, "ivr",
                                                  "record", out, seconds))
        t.start()
        time.sleep(0.5)
        action()
        t.join()
        out.close()
        print(f"{name}: {len(list((HERE / f'{name}.ami').read_text().split(chr(10) * 2)))} events")

    try:
        with AgentPhone(sip, "1003", log_dir=logs, ring_ms=1000) as agent:
            capture("inbound_ivr_support_answered", 14, lambda: call_customer(
                sip, "5550100", digit="2", talk_ms=5000, log_dir=logs).wait(30))
        capture("inbound_abandoned_in_queue", 8, lambda: abandon_call(
            sip, "5550111", patience_ms=4000, log_dir=logs).wait(30))

        def outbound() -> None:
            async def go() -> None:
                ami = AmiClient(settings.ami, on_event=lambda e: None)
                await ami.start()
                await ami.wait_connected(5)
                await place_call(ami, OutboundCall(agent="1002", number="5551234",
                                                   project="acme-telesales", campaign="spring"))
                await asyncio.sleep(6)
                await ami.close()
            asyncio.run(go())
        with AgentPhone(sip, "1002", log_dir=logs, ring_ms=800), \
                CustomerPhone(log_dir=logs, local_port=carrier_port, talk_ms=3000):
            capture("outbound_campaign_answered", 12, outbound)
        with AgentPhone(sip, "1004", log_dir=logs, ring_ms=500, talk_ms=2000):
            capture("inbound_direct_agent_hangs_up", 8, lambda: call_customer(
                sip, "5550199", talk_ms=10000, log_dir=logs).wait(30))
        record_call_features(pbx, settings, sip, logs, capture)
    finally:
        pbx.stop()


def record_call_features(pbx: Sandbox, settings: Settings, sip: str, logs: Path, capture) -> None:
    """Holds, transfers, a supervisor listening in, a rejecting phone, the IVR's
    wrong and missing keys, a queue timeout."""
    # Members written in queues.conf, or added here if membership is dynamic.
    for member, queue in (("1003", "support"), ("1001", "sales"), ("1002", "sales")):
        pbx.cli(f"queue add member PJSIP/{member} to {queue}")

    def phone_hold_and_attended_transfer() -> None:
        # The agent's phone: hold 2 s, resume, consult 1002, transfer (REFER + Replaces).
        customer = call_customer(sip, "5550111", talk_ms=14000, log_dir=logs)
        time.sleep(2.5)
        anna.hold("sendonly")
        time.sleep(2.0)
        anna.resume()
        time.sleep(0.5)
        consult = anna.call("1002")
        time.sleep(2.5)
        anna.transfer_attended(consult)
        consult.wait(15)
        customer.wait(30)

    def console_atxfer(finish: str, queue: str = ""):
        def run() -> None:
            customer = call_customer(sip, "5550111", talk_ms=12000, log_dir=logs)
            time.sleep(2.5)
            channel, _ = agent_channel(pbx, "1003")
            if queue:      # a department: extension 00, the queue in CONSULT_QUEUE
                ami_action(settings, {"Action": "Setvar", "Channel": channel,
                                      "Variable": "__CONSULT_QUEUE", "Value": queue})
            ami_action(settings, {"Action": "Atxfer", "Channel": channel,
                                  "Exten": "00" if queue else "1002",
                                  "Context": "console-transfer"})
            time.sleep(3.5)
            if finish == "complete":
                ami_action(settings, {"Action": "Hangup", "Channel": channel})
            else:
                ami_action(settings, {"Action": "CancelAtxfer", "Channel": channel})
            customer.wait(30)
        return run

    def supervisor_whisper() -> None:
        customer = call_customer(sip, "5550111", talk_ms=9000, log_dir=logs)
        time.sleep(2.5)
        _, uniqueid = agent_channel(pbx, "1003")
        ami_action(settings, {"Action": "Originate", "Channel": "PJSIP/1099",
                              "Context": "supervisor-monitor", "Exten": "whisper",
                              "Priority": "1", "Async": "true", "ChannelId": "monitor-rec1",
                              "Variable": f"MONITOR_TARGET={uniqueid},MONITOR_BY=boss"})
        customer.wait(30)

    with AgentPhone(sip, "1003", log_dir=logs, ring_ms=500) as anna, \
            AgentPhone(sip, "1002", log_dir=logs, ring_ms=500), \
            AgentPhone(sip, "1099", password="super1099", log_dir=logs, ring_ms=300):
        capture("phone_hold_and_attended_transfer", 22, phone_hold_and_attended_transfer)
        capture("console_atxfer_completed", 18, console_atxfer("complete"))
        capture("console_atxfer_cancelled", 18, console_atxfer("cancel"))
        capture("console_atxfer_to_queue", 18, console_atxfer("complete", queue="sales"))
        capture("supervisor_whisper", 14, supervisor_whisper)
    with AgentPhone(sip, "1003", log_dir=logs, ring_ms=300, reject=486):
        capture("agent_rejects_busy", 9, lambda: abandon_call(
            sip, "5550111", patience_ms=5000, log_dir=logs).wait(30))
    pbx.cli("dialplan set global IVR_WAIT 1")
    pbx.cli("dialplan set global IVR_TRIES 2")
    pbx.cli("dialplan set global QUEUE_MAX_WAIT 3")
    try:
        capture("ivr_wrong_key_then_timeout", 30, lambda: call_customer(
            sip, "5550100", digit="7", dtmf_delay_ms=800, talk_ms=20000, log_dir=logs).wait(40))
        capture("ivr_no_key_queue_timeout", 30, lambda: call_customer(
            sip, "5550100", talk_ms=20000, log_dir=logs).wait(40))
    finally:
        pbx.cli("dialplan set global IVR_WAIT 6")
        pbx.cli("dialplan set global IVR_TRIES 3")
        pbx.cli("dialplan set global QUEUE_MAX_WAIT 300")


if __name__ == "__main__":
    main(sys.argv[1:])
