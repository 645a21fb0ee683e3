"""Shared fixtures: a real sandbox Asterisk per test session, and the service.

A PBX that cannot start is a failure, never a skip: these tests prove the
product on the real stack, and a missing piece must be seen.
"""
from __future__ import annotations

import os
import re
import secrets
import socket
from pathlib import Path

import pytest

from ivr.config import (AgentGroup, AmiSettings, GroupMember, PbxSettings, Secret, Settings,
                        TapSettings, WebSettings)
from ivr.pbx.sandbox import Sandbox, SandboxError

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port the OS says is free now: two test runs never pick the same one."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _unavailable(reason: str):
    pytest.fail(f"the sandbox PBX is required (run `bash .ci/setup` as root) but {reason}")


# The groups of ivr.example.yaml (without penalties): the queues' members as
# the static queues.conf had them before membership became dynamic.
TEST_GROUPS = (
    AgentGroup("sales", ("acme-sales", "acme-telesales"), ("sales",),
               (GroupMember("1001"), GroupMember("1002"))),
    AgentGroup("support", ("acme-support",), ("support",),
               (GroupMember("1003"), GroupMember("1001"))),
    AgentGroup("key-accounts", ("acme-key-accounts",), ("key-accounts",),
               (GroupMember("1004"),)),
)


def reset_queues(sandbox: Sandbox) -> None:
    """Every queue empty again: members are dynamic, and a test's sign-ins and
    pauses would otherwise outlive it in the session's PBX."""
    queue = None
    for line in sandbox.cli("queue show").splitlines():
        m = re.match(r"^(\S+) has \d+ calls", line)
        if m:
            queue = m.group(1)
            continue
        m = re.search(r"\((PJSIP/[^\s)]+)", line)
        if m and queue is not None:
            sandbox.cli(f"queue remove member {m.group(1)} from {queue}")


@pytest.fixture(scope="session")
def pbx_settings() -> Settings:
    """Settings for this test run's own PBX instance: fresh ports and password."""
    return Settings(
        ami=AmiSettings(host="127.0.0.1", port=free_port(),
                        secret=Secret(secrets.token_urlsafe(16)),
                        reconnect_min=0.2, reconnect_max=2.0),
        tap=TapSettings(host="127.0.0.1", port=free_port()),
        # Never the default 8080: another test run (or the demo) may hold it.
        web=WebSettings(host="127.0.0.1", port=free_port()),
        pbx=PbxSettings(instance=f"test-{os.getpid()}", sip_host="127.0.0.1",
                        sip_port=free_port(socket.SOCK_DGRAM),
                        trunk_peer=f"127.0.0.2:{free_port(socket.SOCK_DGRAM, '127.0.0.2')}",
                        dialplans=str(REPO / "dialplans")),
        groups=TEST_GROUPS,
    )


@pytest.fixture(scope="session")
def pbx(pbx_settings: Settings):
    if os.geteuid() != 0:
        _unavailable("the tests are not running as root")
    sandbox = Sandbox.from_settings(pbx_settings)
    try:
        sandbox.ensure_root()
        sandbox.install()
        sandbox.start(timeout=60)
    except SandboxError as exc:
        _unavailable(str(exc))
    yield sandbox
    sandbox.stop()
    log = sandbox.host_dir / "log" / "messages"
    if log.exists():
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "asterisk-messages.log").write_text(log.read_text(errors="replace"))


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
