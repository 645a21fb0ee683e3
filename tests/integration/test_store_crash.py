"""kill -9 of the service while it writes: no confirmed wrap-up is lost.

A subprocess plays the service: four agents save wrap-ups as fast as they can
(concurrently, on one store) and print each one once save_wrapup returned,
i.e. once the agent's console would show "saved"; a few calls stay live.
It is killed with SIGKILL mid-stream; then a fresh store must hold every
confirmed wrap-up, be intact, and close the live calls as interrupted.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from ivr.outcomes.store import open_store
from tests.store_fixtures import make_call, postgres_cluster, store_url  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
CONFIRMED_BEFORE_KILL = 60
LIVE_CALLS = 3


async def write_until_killed(url: str) -> None:
    """The subprocess: runs until killed."""
    store = await open_store(url)
    for i in range(LIVE_CALLS):
        await store.upsert_call(make_call("answered", f"live-{i}", ended=False))
    print("live", flush=True)

    async def agent(n: int) -> None:
        login = f"10{n:02d}"
        for i in range(1_000_000):
            call_id = f"{login}-{i}"
            await store.upsert_call(make_call("answered", call_id, agent=login))
            await store.save_wrapup(call_id, login, "resolved", f"wrap-up {i}")
            print(f"saved {call_id}", flush=True)

    await asyncio.gather(*(agent(n) for n in range(4)))


def _run_and_kill(url: str) -> tuple[list[str], str]:
    code = ("import asyncio, sys\n"
            "from tests.integration.test_store_crash import write_until_killed\n"
            "asyncio.run(write_until_killed(sys.argv[1]))\n")
    proc = subprocess.Popen([sys.executable, "-c", code, url], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watchdog = threading.Timer(120, proc.kill)   # a hung writer fails the test, not the run
    watchdog.start()
    saved: list[str] = []
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "live", proc.stderr.read() if proc.stderr else ""
        while len(saved) < CONFIRMED_BEFORE_KILL:
            line = proc.stdout.readline()
            if not line:
                break
            saved.append(line.split()[1])
        os.kill(proc.pid, signal.SIGKILL)
        # Lines already printed were confirmed too, however late we read them.
        saved += [line.split()[1] for line in proc.stdout.read().splitlines()
                  if line.startswith("saved ")]
        proc.wait(30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    return saved, proc.stderr.read() if proc.stderr else ""


async def test_no_confirmed_wrapup_is_lost_when_the_service_is_killed(store_url):
    saved, stderr = await asyncio.to_thread(_run_and_kill, store_url)
    assert len(saved) >= CONFIRMED_BEFORE_KILL, f"the writer died early:\n{stderr}"

    store = await open_store(store_url)
    try:
        if store_url.startswith("sqlite"):
            async with store.transaction(readonly=True) as tx:
                assert await tx.fetch("PRAGMA integrity_check") == [{"integrity_check": "ok"}]
        missing = []
        for call_id in saved:
            rec = await store.get_call(call_id)
            if rec is None or rec["disposition"] != "resolved" or rec["wrapped_up_by"] is None:
                missing.append(call_id)
        assert not missing, f"{len(missing)} of {len(saved)} confirmed wrap-ups lost: {missing}"
        # The calls that were live when the service died are closed as such.
        assert await store.close_interrupted(1.0) == LIVE_CALLS
        interrupted = await store.list_calls(state="interrupted")
        assert sorted(c["call_id"] for c in interrupted) == [f"live-{i}" for i in range(LIVE_CALLS)]
    finally:
        await store.close()
