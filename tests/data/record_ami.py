"""Re-record the AMI captures in this folder from a real sandbox Asterisk.

    python -m tests.data.record_ami        (as root; takes about a minute)

Each scenario places real SIP calls (SIPp phones from ivr/testing/phones.py) and
saves every AMI event Asterisk sent meanwhile to <scenario>.ami. The unit
tests of the tracker and the replay benchmark read these files.
"""
from __future__ import annotations

import asyncio
import socket
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


def main() -> None:
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
    sip = f"127.0.0.1:{settings.pbx.sip_port}"
    logs = Path(tempfile.mkdtemp(prefix="record-ami-"))

    def capture(name: str, seconds: float, action) -> None:
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
    finally:
        pbx.stop()


if __name__ == "__main__":
    main()
