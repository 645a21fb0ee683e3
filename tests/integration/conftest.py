from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Callable

import pytest

from ivr.calls.events import CallEvent
from ivr.config import Settings, WebSettings
from ivr.server import Service
from tests.conftest import free_port, reset_queues


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


async def sign_in_agents(svc: Service, *logins: str) -> None:
    """Agents join their groups' queues, ready (as signing in to the console does)."""
    for login in logins or svc.groups.logins:
        await svc.agent_states.log_in(login, by="test")


@pytest.fixture
async def service(pbx, pbx_settings: Settings):
    # Call tracking alone: these tests wire their own taps and speech when they need them.
    reset_queues(pbx)
    svc = Service(dataclasses.replace(
        pbx_settings, speech=dataclasses.replace(pbx_settings.speech, enabled=False),
        web=WebSettings(host="127.0.0.1", port=free_port())))   # never a fixed port
    calls = CallLog()
    svc.bus.subscribe(calls)
    await svc.start()
    await svc.ami.wait_connected(15)
    await sign_in_agents(svc)
    svc.calls_seen = calls
    yield svc
    await svc.stop()


async def wait_until(check, timeout: float, what: str, every: float = 0.2):
    """Await check() until it gives something true (returned), or fail after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(every)


def with_ami_port(settings: Settings, host: str, port: int) -> Settings:
    ami = dataclasses.replace(settings.ami, host=host, port=port)
    return dataclasses.replace(settings, ami=ami,
                               web=WebSettings(host="127.0.0.1", port=free_port()))


STAFF = (("1001", "Anna Kovacs", "agent", ""), ("1002", "Bela Nagy", "agent", ""),
         ("1003", "Csilla Toth", "agent", ""),
         ("boss", "Sara Supervisor", "supervisor", "1099"))


def staff() -> tuple:
    """Console users: three agents and a supervisor with a phone (1099)."""
    from ivr.config import Secret, User
    return tuple(User(login=login, name=name, role=role, phone=phone,
                      secret=Secret(f"test-{login}")) for login, name, role, phone in STAFF)


@pytest.fixture
async def staffed(pbx, pbx_settings: Settings, tmp_path):
    """The service with agents (signed in, so in their groups' queues) and a supervisor
    with a phone, its store in tmp_path, no speech; wrap-up ends after 1 s so that
    back-to-back test calls are not held by the agents' wrap-up pause."""
    from ivr.config import StoreSettings
    reset_queues(pbx)
    svc = Service(dataclasses.replace(
        pbx_settings, speech=dataclasses.replace(pbx_settings.speech, enabled=False),
        store=StoreSettings(url=f"sqlite:///{tmp_path / 'ivr.db'}"), users=staff(),
        web=WebSettings(host="127.0.0.1", port=free_port()),
        shift=dataclasses.replace(pbx_settings.shift, wrapup_seconds=1.0)))
    calls = CallLog()
    svc.bus.subscribe(calls)
    await svc.start()
    await svc.ami.wait_connected(15)
    await sign_in_agents(svc, "1001", "1002", "1003")
    svc.calls_seen = calls
    yield svc
    await svc.stop()
