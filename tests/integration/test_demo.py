"""The README's demo command works as written: `ivr demo` on the real stack.

It also stops cleanly when told to by a process manager (SIGTERM) or a closed
terminal (SIGHUP), as on Ctrl-C: its sandbox PBX goes down with it. And a PBX
left running by a demo that was killed outright (SIGKILL: no clean-up
possible) is restarted with the next demo's settings (its new AMI secret),
not reused.
"""
from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ivr.config import load_settings
from ivr.pbx.sandbox import Sandbox
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.pbx


class Demo:
    """`ivr demo` as a process of its own, its output read as it comes."""

    def __init__(self, config: Path, *args: str):
        env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
        self.proc = subprocess.Popen([sys.executable, "-m", "ivr", "demo", "-c", str(config),
                                      *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env, cwd=config.parent,
                                     start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.out: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_line(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.out):
            try:
                self.out.append(self.lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                pass
            if time.monotonic() > deadline or (self.proc.poll() is not None and
                                               self.lines.empty()):
                raise AssertionError(f"no {text!r} from the demo:\n{self.text()[-3000:]}")

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        time.sleep(0.2)
        while not self.lines.empty():
            self.out.append(self.lines.get())
        return code

    def text(self) -> str:
        return "".join(self.out)


@pytest.fixture
def demo_config(tmp_path, pbx) -> Path:
    # pbx: the sandbox root is built; the demo runs its own instance on its own ports.
    config = tmp_path / "ivr.yaml"
    config.write_text(f"""
ami: {{port: {free_port()}}}
web: {{port: {free_port()}}}
tap: {{port: {free_port()}}}
store: {{url: "sqlite:///{tmp_path}/demo.db"}}
pbx: {{instance: demo-test-{os.getpid()}, sip_port: {free_port(socket.SOCK_DGRAM)},
       dialplans: {REPO / 'dialplans'}}}
scripts: {REPO / 'scripts'}
customers: {REPO / 'scripts' / 'customers.csv'}
""")
    yield config
    sandbox = demo_sandbox(config)
    sandbox.stop()


def demo_sandbox(config: Path) -> Sandbox:
    settings = load_settings(config, env={"IVR_AMI_SECRET": "unused"})
    return Sandbox.from_settings(settings)


def test_ivr_demo_stops_on_term_and_hup_and_restarts_a_pbx_left_by_a_killed_demo(demo_config):
    sandbox = demo_sandbox(demo_config)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        demo = Demo(demo_config, "--wait", "300")     # waits for a console: no call yet
        demo.wait_line("Agent console:", 90)
        assert sandbox.pid() is not None
        demo.proc.send_signal(sig)
        assert demo.wait(30) == 0, demo.text()[-3000:]
        assert "Stopped" in demo.text()
        assert sandbox.pid() is None, f"the sandbox PBX outlived the demo ({sig.name})"

    # Killed outright (the whole process group): its PBX, in a session of its own, stays.
    demo = Demo(demo_config, "--wait", "300")
    demo.wait_line("Agent console:", 90)
    stale = sandbox.pid()
    os.killpg(demo.proc.pid, signal.SIGKILL)
    demo.wait(30)
    assert stale is not None and sandbox.pid() == stale

    # The README's command, run next: the stale PBX (old AMI secret) is replaced.
    demo = Demo(demo_config, "--exit", "--wait", "0")
    code = demo.wait(180)
    text = demo.text()
    assert code == 0, text[-4000:]
    assert "with other settings" in text and "restarting it" in text
    assert "Agent console:" in text and "sign in as 1003 /" in text
    assert "AgentRinging" in text and "project=acme-support" in text
    assert "CallEnded" in text and "result=answered" in text
    # The call speaks (in the model's language): checklist ticks and prompts appear.
    assert "ticked at" in text and "prompt at" in text
    assert sandbox.pid() is None
