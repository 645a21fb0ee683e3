"""Speech workers and a controller's pool of them (ivr/cluster/speech_worker.py,
speech_pool.py), in one process: two real SpeechWorkers (the Korean model, real
AudioSocket servers) and the pool on an in-process bus, the TapManager placing taps
through the pool and tests.unit.test_tap_manager's fake Asterisk connecting them.
The same with real processes, NATS, Asterisk and SIPp: tests/cluster/test_speech_workers.py.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from ivr.bus import LocalBus, subjects
from ivr.calls.events import AgentAnswered, CallEnded
from ivr.cluster.speech_pool import SpeechPool
from ivr.cluster.speech_worker import DEAD_AFTER, SpeechWorker
from ivr.config import ClusterSettings, Settings, TapSettings
from ivr.speech.recognizer import RecognitionMode, Utterance
from ivr.speech.stage import CapacityNotice
from ivr.tap.server import TapTarget, TapUnplaced
from ivr.tap.taps import OK, RETRYING, TapManager, TapStatus
from tests.unit.test_tap_manager import AGENT_LEG, CUSTOMER_LEG, FakeAsterisk, make_call


class FakeLive:
    """What the pool tells live coaching."""

    def __init__(self) -> None:
        self.got: list[tuple[str, object]] = []

    def modes_for(self, call_id: str) -> dict[str, RecognitionMode]:
        mode = RecognitionMode.spotting(["안녕하세요"])
        return {"agent": mode, "customer": mode}

    def on_utterance(self, u):
        self.got.append(("utterance", u))

    def on_activity(self, a):
        self.got.append(("activity", a))

    def on_heard(self, h):
        self.got.append(("heard", h))

    def on_gap(self, *args):
        self.got.append(("gap", args))

    def on_capacity(self, notice, calls=None):
        self.got.append(("capacity", (notice, calls)))


class Muted:
    """A dead process's bus: nothing it says arrives."""

    def publish(self, subject, data) -> None:
        pass


def worker_settings(name: str) -> Settings:
    return dataclasses.replace(Settings(), cluster=ClusterSettings(instance=name),
                               tap=TapSettings(host="127.0.0.1", port=0))


class Pool:
    def __init__(self) -> None:
        self.bus = LocalBus()
        self.ast = FakeAsterisk()
        self.live = FakeLive()
        self.statuses: list[TapStatus] = []
        self.pool = SpeechPool(self.bus, "ctl", self.live)
        self.taps = TapManager(self.ast, self.pool, on_status=self.statuses.append,
                               retry_min=0.05, drop_grace=0.05, connect_timeout=2.0)
        self.workers: dict[str, SpeechWorker] = {}

    async def start(self, *names: str) -> "Pool":
        await self.pool.start()
        for name in names:
            worker = self.workers[name] = SpeechWorker(worker_settings(name), bus=self.bus)
            await worker.start()
        await until(lambda: set(self.pool.workers) == set(names), 3, "heartbeats")
        return self

    def ok_on(self, worker: str, since: float = 0.0) -> dict[str, float]:
        return {s.speaker: s.at for s in self.statuses
                if s.state == OK and s.at >= since and f"speech worker {worker}" in s.reason}

    async def close(self) -> None:
        await self.taps.close()
        for leg in list(self.ast.taps):
            self.ast.hangup(leg)
        for worker in self.workers.values():
            if worker._beat is not None and not worker._beat.done():
                await worker.stop()
        await self.pool.close()


async def until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        await asyncio.sleep(0.02)


def answer(env: Pool):
    call = make_call()
    env.ast.alive.update({CUSTOMER_LEG: "PJSIP/trunk-00000001", AGENT_LEG: "PJSIP/1004-00000002"})
    event = AgentAnswered(call=call, at=call.answered_at, agent="1004",
                          leg=call.legs[AGENT_LEG])
    env.pool.on_call_event(event)
    env.taps.on_call_event(event)
    return call


@pytest.fixture
async def env():
    e = Pool()
    yield e
    await e.close()


async def test_taps_go_to_the_least_loaded_worker_and_move_when_it_dies(env):
    await env.start("w1", "w2")
    env.pool.workers["w2"].streams = 5                # w2 is busy: both taps go to w1
    call = answer(env)
    await until(lambda: len(env.ok_on("w1")) == 2, 5, "both taps on w1")
    assert env.workers["w1"].stage.open_streams == 2
    # w1 dies as with kill -9: silent on the bus, its connections cut. Both taps move
    # to w2 at once when it is counted dead, without the backoff of a dropped tap.
    w1 = env.workers["w1"]
    w1._beat.cancel()
    w1.bus = Muted()
    died = time.time()
    await w1.server.close()
    await until(lambda: len(env.ok_on("w2", since=died)) == 2, 5, "both taps on w2")
    took = max(env.ok_on("w2", since=died).values()) - died
    assert took < DEAD_AFTER + 0.6, took
    retrying = [s for s in env.statuses if s.state == RETRYING and s.at >= died]
    assert retrying and all(s.retry_in == 0.0 for s in retrying), retrying
    assert env.pool.moved >= 2 and "w1" not in env.pool.workers
    # What w1 still says about the call (it was only slow) no longer counts.
    env.live.got.clear()
    stale = Utterance(call.call_id, "agent", "안녕하세요", 1.0, 2.0, True)
    env.bus.publish(subjects.speech_results("ctl"),
                    {"worker": "w1", "kind": "utterance", "data": dataclasses.asdict(stale)})
    env.bus.publish(subjects.speech_results("ctl"),
                    {"worker": "w2", "kind": "utterance", "data": dataclasses.asdict(stale)})
    await asyncio.sleep(0.05)
    assert [k for k, _ in env.live.got] == ["utterance"]
    # The call ends: w2 ends its streams.
    env.pool.on_call_event(CallEnded(call=call, at=time.time()))
    await until(lambda: env.workers["w2"].stage.open_streams == 0, 5, "w2's streams ended")


async def test_a_worker_that_stops_hands_its_taps_over_at_once(env):
    await env.start("w1", "w2")
    env.pool.workers["w2"].streams = 5
    answer(env)
    await until(lambda: len(env.ok_on("w1")) == 2, 5, "both taps on w1")
    stopped = time.time()
    await env.workers["w1"].stop()                   # says it leaves: no wait for silence
    await until(lambda: len(env.ok_on("w2", since=stopped)) == 2, 5, "both taps on w2")
    assert max(env.ok_on("w2", since=stopped).values()) - stopped < DEAD_AFTER


async def test_no_worker_up_is_a_clear_tap_failure_and_retried(env):
    await env.pool.start()
    target = TapTarget("c1", "agent", "leg")
    with pytest.raises(TapUnplaced, match="no speech worker is up"):
        await env.pool.place("u1", target)
    answer(env)
    await until(lambda: any(s.state == RETRYING for s in env.statuses), 3, "a retry")
    assert "no speech worker is up" in env.statuses[-1].reason
    # A worker comes up: the retried taps land on it.
    worker = env.workers["w1"] = SpeechWorker(worker_settings("w1"), bus=env.bus)
    await worker.start()
    await until(lambda: len(env.ok_on("w1")) == 2, 15, "both taps on the new worker")


async def test_a_worker_s_capacity_change_reaches_only_its_calls(env):
    await env.start("w1")
    call = answer(env)
    await until(lambda: len(env.ok_on("w1")) == 2, 5, "both taps on w1")
    env.bus.publish(subjects.speech_results("ctl"), {
        "worker": "w1", "kind": "capacity",
        "data": dataclasses.asdict(CapacityNotice(2, "partials off"))})
    await asyncio.sleep(0.05)
    [(notice, calls)] = [v for k, v in env.live.got if k == "capacity"]
    assert notice.level == 2 and calls == [call.call_id]
