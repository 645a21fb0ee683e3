from __future__ import annotations

import asyncio
import dataclasses
from typing import Callable

import pytest

from ivr.calls.events import CallEvent
from ivr.config import Settings
from ivr.server import Service


class CallLog:
    """Every call event the service published, with waiting on a condition."""

    def __init__(self) -> None:
        self.events: list[CallEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: CallEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[CallEvent], bool], timeout: float = 20.0,
                       what: str = "call event") -> CallEvent:
        deadline = asyncio.get_running_loop().time() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                kinds = [f"{e.kind}({e.call.call_id})" for e in self.events]
                raise AssertionError(f"no {what} within {timeout} s; saw {kinds}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    def of_call(self, call_id: str) -> list[CallEvent]:
        return [e for e in self.events if e.call.call_id == call_id]

    def kinds(self, call_id: str) -> list[str]:
        return [e.kind for e in self.of_call(call_id)]


@pytest.fixture
async def service(pbx, pbx_settings: Settings):
    # Call tracking alone: these tests wire their own taps and speech when they need them.
    svc = Service(dataclasses.replace(
        pbx_settings, speech=dataclasses.replace(pbx_settings.speech, enabled=False)))
    calls = CallLog()
    svc.bus.subscribe(calls)
    await svc.start()
    await svc.ami.wait_connected(15)
    svc.calls_seen = calls
    yield svc
    await svc.stop()


def with_ami_port(settings: Settings, host: str, port: int) -> Settings:
    return dataclasses.replace(settings, ami=dataclasses.replace(settings.ami, host=host, port=port))


STAFF = (("1001", "Anna Kovacs", "agent", ""), ("1002", "Bela Nagy", "agent", ""),
         ("1003", "Csilla Toth", "agent", ""),
         ("boss", "Sara Supervisor", "supervisor", "1099"))


def staff() -> tuple:
    """Console users: three agents and a supervisor with a phone (1099)."""
    from ivr.config import Secret, User
    return tuple(User(login=login, name=name, role=role, phone=phone,
                      secret=Secret(f"test-{login}")) for login, name, role, phone in STAFF)


# Queue members these tests need (queues.conf may list them, or membership is dynamic).
MEMBERS = {"support": ("1003", "1001"), "sales": ("1001", "1002")}


def ensure_members(pbx) -> None:
    for queue, agents in MEMBERS.items():
        for agent in agents:
            # Named, as the service's own QueueAdd names them ("already there" is fine).
            pbx.cli(f"queue add member PJSIP/{agent} to {queue} penalty 0 as {agent}")
            pbx.cli(f"queue unpause member PJSIP/{agent} queue {queue}")


@pytest.fixture
async def staffed(pbx, pbx_settings: Settings, tmp_path):
    """The service with agents and a supervisor, its store in tmp_path, no speech."""
    from ivr.config import StoreSettings, WebSettings
    from tests.conftest import free_port
    ensure_members(pbx)
    svc = Service(dataclasses.replace(
        pbx_settings, speech=dataclasses.replace(pbx_settings.speech, enabled=False),
        store=StoreSettings(url=f"sqlite:///{tmp_path / 'ivr.db'}"), users=staff(),
        web=WebSettings(host="127.0.0.1", port=free_port())))
    calls = CallLog()
    svc.bus.subscribe(calls)
    await svc.start()
    await svc.ami.wait_connected(15)
    svc.calls_seen = calls
    yield svc
    await svc.stop()
