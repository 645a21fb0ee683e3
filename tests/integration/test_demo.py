"""The README's demo command works as written: `ivr demo` on the real stack."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO, free_port

pytestmark = pytest.mark.pbx


def test_ivr_demo_places_a_call_that_is_tracked_and_popped(tmp_path, pbx):
    # pbx: the sandbox root is built; the demo runs its own instance on its own ports.
    config = tmp_path / "ivr.yaml"
    config.write_text(f"""
ami: {{port: {free_port()}}}
web: {{port: {free_port()}}}
store: {{url: "sqlite:///{tmp_path}/demo.db"}}
pbx: {{instance: demo-test-{os.getpid()}, sip_port: {free_port(socket.SOCK_DGRAM)},
       dialplans: {REPO / 'dialplans'}}}
scripts: {REPO / 'scripts'}
customers: {REPO / 'scripts' / 'customers.csv'}
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    out = subprocess.run([sys.executable, "-m", "ivr", "demo", "-c", str(config), "--exit",
                          "--wait", "0"], capture_output=True, text=True, timeout=150, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    text = out.stdout
    assert "Agent console:" in text and "sign in as 1003 /" in text
    assert "AgentRinging" in text and "project=acme-support" in text
    assert "CallEnded" in text and "result=answered" in text
    # The call speaks (in the model's language): checklist ticks and prompts appear.
    assert "ticked at" in text and "prompt at" in text
