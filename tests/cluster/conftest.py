"""Several service instances and PBXs on this machine, as real processes.

- `pbx` (the session's sandbox Asterisk) is PBX "east"; `pbx_west` a second
  sandbox instance with its own ports and carrier port: PBX "west".
- Each service instance is `python -m ivr serve` in its own process, on the
  test's PostgreSQL database, with the two PBXs in its config; killed with
  SIGKILL where a test says so.
- Agents' consoles are WebSocket clients signed in as the console is.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from ivr.cluster.lease import NS_PBX, lock_key
from ivr.config import PbxSettings, Settings
from ivr.pbx.sandbox import Sandbox, SandboxError
from tests.conftest import ARTIFACTS, REPO, free_port
from tests.integration.conftest import wait_until as _wait_until
from tests.nats import NatsServer, NatsUnavailable
from tests.store_fixtures import postgres_cluster  # noqa: F401,F811

AGENTS = {"1001": "Anna Kovacs", "1002": "Bela Nagy", "1003": "Csilla Toth",
          "1004": "Dora Varga"}
# Which agent phone is on which PBX (each PBX's dialers call only its agents).
EAST_AGENTS, WEST_AGENTS = ["1001", "1003"], ["1002"]


@pytest.fixture(scope="session")
def pbx_west(pbx, pbx_settings: Settings):
    """A second sandbox Asterisk: same dialplans, its own ports and carrier port."""
    settings = dataclasses.replace(
        pbx_settings,
        ami=dataclasses.replace(pbx_settings.ami, port=free_port()),
        pbx=dataclasses.replace(
            pbx_settings.pbx, instance=f"{pbx_settings.pbx.instance}-west",
            system_name="west",        # its call ids never clash with east's
            sip_port=free_port(socket.SOCK_DGRAM),
            trunk_peer=f"127.0.0.2:{free_port(socket.SOCK_DGRAM, '127.0.0.2')}"))
    sandbox = Sandbox.from_settings(settings)
    try:
        sandbox.install()
        sandbox.start(timeout=60)
    except SandboxError as exc:
        pytest.fail(f"the second sandbox PBX is required but {exc}")
    yield sandbox
    sandbox.stop()


def sip(sandbox) -> str:
    return f"{sandbox.sip_host}:{sandbox.sip_port}"


def carrier_port(sandbox) -> int:
    return int(sandbox.trunk_peer.rsplit(":", 1)[1])


class ServiceProcess:
    """`python -m ivr serve` with a config written here; log in test-artifacts."""

    def __init__(self, name: str, config: dict[str, Any], workdir: Path):
        self.name = name
        self.config = config
        self.path = workdir / f"{name}.yaml"
        self.path.write_text(yaml.safe_dump(config))
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"cluster-{name}.log"
        self.proc: subprocess.Popen | None = None
        self.base = f"http://127.0.0.1:{config['web']['port']}"

    def start(self) -> "ServiceProcess":
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("IVR_CONFIG", None)
        self._log = open(self.log_path, "ab")
        self._log.write(f"---- start {time.strftime('%H:%M:%S')}\n".encode())
        self._log.flush()
        self.start_offset = len(self.log())       # earlier runs' lines are not this run's
        self.proc = subprocess.Popen([sys.executable, "-m", "ivr", "serve", "-c", str(self.path)],
                                     cwd=REPO, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_log(self, pattern: str, timeout: float = 20.0) -> re.Match:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.log(), self.start_offset)
            if m:
                return m
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n"
                                     + self.log()[-3000:])
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no /{pattern}/ within {timeout} s:\n"
                                     + self.log()[-3000:])
            await asyncio.sleep(0.1)

    async def wait_web(self, timeout: float = 30.0) -> None:
        await self.wait_log(r"console listening on", timeout)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None:
            self._log.close()


class Cluster:
    """Builds the instances' configs: both PBXs, one PostgreSQL store."""

    def __init__(self, east: Sandbox, west: Sandbox, dsn: str, tmp_path: Path):
        self.east, self.west, self.dsn, self.tmp_path = east, west, dsn, tmp_path
        self.secrets = {login: secrets.token_urlsafe(12) for login in [*AGENTS, "boss"]}
        self.instances: list[ServiceProcess] = []

    def pbx_section(self, sandbox: Sandbox, name: str, agents: list[str]) -> dict[str, Any]:
        return {"name": name, "host": sandbox.ami_host, "port": sandbox.ami_port,
                "username": sandbox.ami_user, "secret": str(sandbox.ami_secret),
                "reconnect_min": 0.2, "reconnect_max": 1.0, "agents": agents}

    def instance(self, name: str, prefer: list[str] | None = None, **extra: Any
                 ) -> ServiceProcess:
        users = {login: {"name": n, "secret": self.secrets[login]} for login, n in AGENTS.items()}
        users["boss"] = {"name": "Sara Supervisor", "role": "supervisor", "phone": "1099",
                         "secret": self.secrets["boss"]}
        config = {
            "ami": [self.pbx_section(self.east, "east", EAST_AGENTS),
                    self.pbx_section(self.west, "west", WEST_AGENTS)],
            "store": {"url": self.dsn},
            "web": {"host": "127.0.0.1", "port": free_port()},
            "speech": {"enabled": False},
            "cluster": {"instance": name, "prefer": prefer or [], "lease_poll": 0.5,
                        **extra.pop("cluster", {})},
            "scripts": str(REPO / "scripts"),
            "customers": str(REPO / "scripts" / "customers.csv"),
            "users": users,
            # Agents sign in to their groups' queues from the console; the dialers
            # offer a project's calls to ready agents of its groups.
            "groups": {
                "sales": {"projects": ["acme-telesales", "acme-sales"], "queues": ["sales"],
                          "agents": ["1001", "1002", "1003"]},
                "support": {"projects": ["acme-support"], "queues": ["support"],
                            "agents": ["1003"]},
                "key-accounts": {"projects": ["acme-key-accounts"], "queues": ["key-accounts"],
                                 "agents": ["1004"]},
            },
            "shift": {"wrapup_seconds": 2.0},
            **extra,
        }
        svc = ServiceProcess(name, config, self.tmp_path)
        self.instances.append(svc)
        return svc

    async def console(self, svc: ServiceProcess, login: str) -> "Console":
        return await Console.open(svc.base, login, self.secrets[login])

    def stop(self) -> None:
        for svc in self.instances:
            svc.stop()


class Console:
    """An agent's console: signed in, WebSocket open, messages kept."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self.http, self.ws = http, ws
        self.messages: list[dict] = []
        self.wrapped: list[tuple[str, int]] = []
        self._wrapping: set[str] = set()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, base: str, login: str, secret: str) -> "Console":
        http = aiohttp.ClientSession(base, headers={"Origin": base},
                                     cookie_jar=aiohttp.CookieJar(unsafe=True))
        r = await http.post("/api/login", json={"login": login, "secret": secret})
        assert r.status == 200, await r.text()
        ws = await http.ws_connect("/ws", heartbeat=5)
        return cls(http, ws)

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = msg.json()
                data["_at"] = time.monotonic()  # when it arrived (what the agent saw, when)
                self.messages.append(data)
                card = data.get("card") if data.get("type") == "card" else None
                if card and card.get("phase") == "wrapup" and data["call_id"] not in self._wrapping:
                    # The agent wraps up at once (a dialer waits for that), once per call
                    # as the page does: the card is sent again while in wrap-up (the
                    # agent's leg ends, then the call), and a second wrap-up is a 404.
                    self._wrapping.add(data["call_id"])
                    asyncio.ensure_future(self._wrap_up(data["call_id"], card))

    async def _wrap_up(self, call_id: str, card: dict) -> None:
        plain = [d for d in ((card.get("script") or {}).get("dispositions") or [{"id": "resolved"}])
                 if not (d.get("needs_note") or d.get("needs_callback_time"))]
        r = await self.http.post(f"/api/calls/{call_id}/wrapup",
                                 json={"disposition": plain[0]["id"]})
        self.wrapped.append((call_id, r.status))

    async def close(self) -> None:
        self._reader.cancel()
        await self.ws.close()
        await self.http.close()


@pytest.fixture(scope="session")
def nats_server():
    try:
        server = NatsServer.start_new()
    except NatsUnavailable as exc:
        pytest.fail(f"a NATS server is required (run `bash .ci/setup` as root) but {exc}")
    yield server
    server.stop()


@pytest.fixture
async def cluster(pbx, pbx_west, postgres_cluster, tmp_path):  # noqa: F811
    c = Cluster(pbx, pbx_west, postgres_cluster.create_database(), tmp_path)
    yield c
    await asyncio.to_thread(c.stop)


def lease_holder(postgres_cluster, dsn: str, pbx: str) -> str:
    """The instance holding a PBX's lease now ('' : nobody), as PostgreSQL sees it."""
    database = dsn.rsplit("/", 1)[1]
    out = postgres_cluster.psql(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        f"WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = {NS_PBX} "
        f"AND l.objid::bigint = {lock_key(pbx)}", database=database).strip()
    return out.removeprefix("ivr lease ")


async def wait_until(check, timeout: float, what: str, every: float = 0.1):
    """tests.integration's wait_until, polling faster (takeovers are timed here)."""
    return await _wait_until(check, timeout, what, every)


__all__ = ["Cluster", "Console", "EAST_AGENTS", "WEST_AGENTS", "carrier_port", "lease_holder",
           "sip", "wait_until", "PbxSettings"]
