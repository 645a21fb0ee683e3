"""TapManager against a fake Asterisk that connects to the real TapServer the
way chan_audiosocket does (UUID frame, then 20 ms frames of the spied leg)."""
from __future__ import annotations

import asyncio
import time

import pytest

from ivr.ami.client import AmiError
from ivr.calls.events import AgentAnswered, CallBridged, CallEnded, CustomerAnswered
from ivr.calls.model import Call, CallState, Direction, Leg, LegRole
from ivr.tap.frames import KIND_SLIN, encode_frame, encode_uuid
from ivr.tap.server import TapServer
from ivr.tap.taps import FAILED, OK, RETRYING, STARTING, ENDED, TapManager, TapStatus


class FakeAsterisk:
    """AMI stand-in: Originate of an AudioSocket channel running ChanSpy, and Status."""

    def __init__(self) -> None:
        self.actions: list[dict] = []
        self.alive: dict[str, str] = {}            # leg uniqueid -> channel name
        self.fail_next = 0                          # OriginateResponse Failure, Reason 8
        self.refuse_next = 0                        # AmiError (action refused)
        self.taps: dict[str, list] = {}             # leg -> [(uuid, writer, task)]
        self.tags: dict[str, int] = {}              # leg -> byte its audio is made of

    async def originate(self, **fields) -> dict:
        self.actions.append({"Action": "Originate", **fields})
        if self.refuse_next:
            self.refuse_next -= 1
            raise AmiError("Originate refused: Permission denied")
        if self.fail_next:
            self.fail_next -= 1
            return {"Event": "OriginateResponse", "Response": "Failure", "Reason": "8"}
        tech, _, rest = fields["Channel"].partition("/")
        assert tech == "AudioSocket"
        addr, _, uuid = rest.rpartition("/")
        host, _, port = addr.rpartition(":")
        leg = fields["Exten"]
        assert fields["Context"] == "ivr-tap" and "Application" not in fields
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except OSError:                        # as Asterisk: AudioSocket cannot connect
            return {"Event": "OriginateResponse", "Response": "Failure", "Reason": "8"}
        writer.write(encode_uuid(uuid))
        if leg not in self.alive:              # S: the spied leg is gone, ChanSpy ends at once
            writer.close()
            return {"Event": "OriginateResponse", "Response": "Success", "Reason": "4"}
        task = asyncio.create_task(self._stream(leg, writer))
        self.taps.setdefault(leg, []).append((uuid, writer, task))
        return {"Event": "OriginateResponse", "Response": "Success", "Reason": "4"}

    async def _stream(self, leg: str, writer: asyncio.StreamWriter) -> None:
        tag = self.tags.get(leg, 0)
        try:
            while True:
                writer.write(encode_frame(KIND_SLIN, bytes([tag]) * 320))
                await writer.drain()
                await asyncio.sleep(0.02)
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()

    async def send(self, action: dict, as_list=None, timeout: float = 10.0):
        self.actions.append(dict(action))
        if action["Action"] == "Status":
            channel = action["Channel"]
            for uid, name in self.alive.items():
                if name == channel:
                    return [{"Response": "Success", "Message": "Channel status will follow"},
                            {"Event": "Status", "Channel": name, "Uniqueid": uid},
                            {"Event": "StatusComplete"}]
            return {"Response": "Error", "Message": "No such channel"}
        raise AssertionError(f"unexpected action {action}")

    def hangup(self, leg: str) -> None:
        """The leg hangs up: E ends its taps."""
        self.alive.pop(leg, None)
        for _, _, task in self.taps.pop(leg, []):
            task.cancel()

    def live_taps(self, leg: str) -> int:
        return sum(not t.done() for _, _, t in self.taps.get(leg, []))


def make_call(direction=Direction.INBOUND) -> Call:
    now = time.time()
    call = Call(call_id="1700000000.1", started_at=now, direction=direction)
    call.legs["1700000000.1"] = Leg("1700000000.1", "PJSIP/trunk-00000001", "1700000000.1",
                                    "trunk", LegRole.CUSTOMER, now, state="Up")
    call.legs["1700000000.2"] = Leg("1700000000.2", "PJSIP/1004-00000002", "1700000000.1",
                                    "1004", LegRole.AGENT, now, state="Up", dial_status="ANSWER",
                                    answered_at=now)
    call.answered_at = now
    call.state = CallState.ANSWERED
    return call


CUSTOMER_LEG, AGENT_LEG = "1700000000.1", "1700000000.2"


class Env:
    def __init__(self) -> None:
        self.ast = FakeAsterisk()
        self.audio: dict[tuple[str, str], bytearray] = {}
        self.statuses: list[TapStatus] = []
        self.server = TapServer("127.0.0.1", 0, sink_factory=self._sink)
        self.taps: TapManager | None = None

    def _sink(self, stream):
        buf = self.audio.setdefault((stream.call_id, stream.speaker), bytearray())

        class S:
            def audio(self, pcm, rate):
                buf.extend(pcm)

            def end(self, reason):
                pass
        return S()

    async def start(self, **kw) -> "Env":
        await self.server.start()
        opts = dict(retry_min=0.05, retry_max=0.2, drop_grace=0.05, connect_timeout=1.0)
        opts.update(kw)
        self.taps = TapManager(self.ast, self.server, on_status=self.statuses.append, **opts)
        return self

    async def close(self) -> None:
        await self.taps.close()
        for leg in list(self.ast.taps):
            self.ast.hangup(leg)
        await self.server.close()

    def states(self, speaker: str) -> list[str]:
        return [s.state for s in self.statuses if s.speaker == speaker]

    async def until(self, cond, timeout: float = 5.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; statuses: "
                                     f"{[(s.speaker, s.state, s.reason) for s in self.statuses]}")
            await asyncio.sleep(0.01)

    def never_touched_the_call(self) -> None:
        for a in self.ast.actions:
            assert a["Action"] in ("Originate", "Status"), a
            if a["Action"] == "Originate":
                assert a["Channel"].startswith("AudioSocket/") and a["Context"] == "ivr-tap"


@pytest.fixture
async def env():
    e = Env()
    e.ast.alive = {CUSTOMER_LEG: "PJSIP/trunk-00000001", AGENT_LEG: "PJSIP/1004-00000002"}
    e.ast.tags = {CUSTOMER_LEG: 0xC1, AGENT_LEG: 0xA9}
    await e.start()
    yield e
    await e.close()


async def test_inbound_answer_taps_both_parties_each_with_its_own_voice(env: Env):
    call = make_call()
    env.taps.on_call_event(AgentAnswered(call=call.snapshot(), at=time.time(), agent="1004",
                                         leg=call.legs[AGENT_LEG]))
    await env.until(lambda: env.states("agent")[-1:] == [OK] and env.states("customer")[-1:] == [OK],
                    what="both taps ok")
    originates = [a for a in env.ast.actions if a["Action"] == "Originate"]
    assert sorted(a["Exten"] for a in originates) == sorted([CUSTOMER_LEG, AGENT_LEG])
    assert all(a["Channel"].startswith(f"AudioSocket/127.0.0.1:{env.server.port}/")
               for a in originates)
    uuids = {a["Channel"].rsplit("/", 1)[1] for a in originates}
    assert len(uuids) == 2
    await env.until(lambda: all(len(env.audio.get((call.call_id, s), b"")) >= 1600
                                for s in ("agent", "customer")), what="audio")
    assert set(env.audio[(call.call_id, "agent")]) == {0xA9}
    assert set(env.audio[(call.call_id, "customer")]) == {0xC1}
    # A later CallBridged starts nothing new.
    env.taps.on_call_event(CallBridged(call=call.snapshot(), at=time.time()))
    await asyncio.sleep(0.1)
    assert len([a for a in env.ast.actions if a["Action"] == "Originate"]) == 2
    # The call ends: the legs hang up, E closes the taps, nothing is retried.
    env.ast.hangup(AGENT_LEG)
    env.ast.hangup(CUSTOMER_LEG)
    call.state = CallState.ENDED
    env.taps.on_call_event(CallEnded(call=call.snapshot(), at=time.time()))
    await asyncio.sleep(0.3)
    assert env.states("agent") == [STARTING, OK, ENDED]
    assert env.states("customer") == [STARTING, OK, ENDED]
    assert len([a for a in env.ast.actions if a["Action"] == "Originate"]) == 2
    assert env.server.streams == {} and len(env.server.registry) == 0
    assert env.taps.first_audio_latencies and max(env.taps.first_audio_latencies) < 1.0
    env.never_touched_the_call()


async def test_a_resync_taps_the_party_an_adopted_answer_missed(env: Env):
    """After a reconnect or a takeover, Asterisk lists the channels one by one: the
    agent's answer may be replayed before the customer's leg is known. The resync's
    end taps what is still missing (and nothing twice)."""
    call = make_call()
    partial = call.snapshot()
    del partial.legs[CUSTOMER_LEG]                      # not adopted yet
    env.taps.on_call_event(AgentAnswered(call=partial, at=time.time(), agent="1004",
                                         leg=partial.legs[AGENT_LEG]))
    await env.until(lambda: env.states("agent")[-1:] == [OK], what="the agent's tap")
    assert env.states("customer") == []
    env.taps.resync([call])
    await env.until(lambda: env.states("customer")[-1:] == [OK], what="the customer's tap")
    env.taps.resync([call])
    await asyncio.sleep(0.2)
    originates = [a["Exten"] for a in env.ast.actions if a["Action"] == "Originate"]
    assert sorted(originates) == sorted([CUSTOMER_LEG, AGENT_LEG])


async def test_outbound_waits_for_the_customer(env: Env):
    call = make_call(Direction.OUTBOUND)
    call.answered_at = None
    env.taps.on_call_event(AgentAnswered(call=call.snapshot(), at=time.time(), agent="1004",
                                         leg=call.legs[AGENT_LEG]))
    await asyncio.sleep(0.1)
    assert env.ast.actions == []
    call.answered_at = time.time()
    env.taps.on_call_event(CustomerAnswered(call=call.snapshot(), at=time.time(),
                                            leg=call.legs[CUSTOMER_LEG]))
    await env.until(lambda: env.states("agent")[-1:] == [OK] and env.states("customer")[-1:] == [OK])


async def test_failed_originate_is_retried_with_backoff_until_it_works(env: Env):
    env.ast.fail_next = 2
    env.ast.alive.pop(CUSTOMER_LEG)          # only the agent's tap here
    call = make_call()
    del call.legs[CUSTOMER_LEG]
    env.taps.on_call_event(AgentAnswered(call=call.snapshot(), at=time.time(), agent="1004",
                                         leg=call.legs[AGENT_LEG]))
    await env.until(lambda: env.states("agent")[-1:] == [OK], what="tap ok after retries")
    assert env.states("agent") == [STARTING, RETRYING, RETRYING, OK]
    retry = [s for s in env.statuses if s.state == RETRYING]
    assert "reason 8" in retry[0].reason and "congestion" in retry[0].reason
    assert [s.retry_in for s in retry] == [0.05, 0.1]
    assert [s.attempt for s in env.statuses] == [1, 1, 2, 3]
    uuids = [a["Channel"] for a in env.ast.actions if a["Action"] == "Originate"]
    assert len(set(uuids)) == 3                # a fresh UUID per attempt
    assert len(env.server.registry) == 1       # only the live one is still expected
    env.never_touched_the_call()


async def test_refused_originate_is_reported_and_retried(env: Env):
    env.ast.refuse_next = 1
    call = make_call()
    env.taps.on_call_event(AgentAnswered(call=call.snapshot(), at=time.time(), agent="1004",
                                         leg=call.legs[AGENT_LEG]))
    await env.until(lambda: env.states("agent")[-1:] == [OK] and env.states("customer")[-1:] == [OK])
    refused = [s for s in env.statuses if s.state == RETRYING]
    assert len(refused) == 1 and "Permission denied" in refused[0].reason


async def test_tap_killed_mid_call_is_reestablished(env: Env):
    call = make_call()
    env.taps.on_call_event(AgentAnswered(call=call.snapshot(), at=time.time(), agent="1004",
                                         leg=call.legs[AGENT_LEG]))
    await env.until(lambda: env.states("customer")[-1:] == [OK])
    first = env.server.find(call.call_id, "customer")[0].uuid
    assert env.server.kill(call.call_id, "customer") == 1
    await env.until(lambda: env.states("customer")[-1:] == [OK] and
                    len(env.server.find(call.call_id, "customer")) == 1 and
                    env.server.find(call.call_id, "customer")[0].uuid != first, what="re-tap")
    assert env.states("customer") == [STARTING, OK, RETRYING, OK]
    assert "closed by the service" in [s for s in env.statuses if s.state == RETRYING][0].reason
    before = len(env.audio[(call.call_id, "customer")])
    await asyncio.sleep(0.2)
    assert len(env.audio[(call.call_id, "customer")]) > before      # audio flows again
    assert env.states("agent") == [STARTING, OK]                    # the other tap never noticed
    env.never_touched_the_call()


async def test_tap_of_a_leg_that_hung_up_is_not_retried(env: Env):
    """E.g. the agent left after a transfer: the call goes on, that tap ends for good."""
    call = make_call()
    env.taps.on_call_event(AgentAnswered(call=call.snapshot(), at=time.time(), agent="1004",
                                         leg=call.legs[AGENT_LEG]))
    await env.until(lambda: env.states("agent")[-1:] == [OK] and env.states("customer")[-1:] == [OK])
    env.ast.hangup(AGENT_LEG)
    await env.until(lambda: env.states("agent")[-1:] == [ENDED], what="agent tap ended")
    assert "leg is gone" in env.statuses[-1].reason
    await asyncio.sleep(0.2)
    assert len([a for a in env.ast.actions if a["Action"] == "Originate"]) == 2
    assert env.states("customer") == [STARTING, OK]


async def test_call_that_ends_before_any_tap_worked_reports_failed(env: Env):
    env.ast.fail_next = 100
    call = make_call()
    env.taps.on_call_event(AgentAnswered(call=call.snapshot(), at=time.time(), agent="1004",
                                         leg=call.legs[AGENT_LEG]))
    await env.until(lambda: RETRYING in env.states("agent"))
    call.state = CallState.ENDED
    env.taps.on_call_event(CallEnded(call=call.snapshot(), at=time.time()))
    await asyncio.sleep(0.3)
    assert env.states("agent")[-1] == FAILED
    assert "before the tap worked" in [s for s in env.statuses if s.speaker == "agent"][-1].reason
    n = len(env.ast.actions)
    await asyncio.sleep(0.3)
    assert len(env.ast.actions) == n            # no retries after the end
    assert len(env.server.registry) == 0


async def test_unreachable_tap_server_reports_no_connection():
    """Originate 'succeeds' but nothing connects (e.g. wrong connect_host)."""
    e = Env()

    class NoConnect(FakeAsterisk):
        async def originate(self, **fields):
            self.actions.append({"Action": "Originate", **fields})
            return {"Response": "Success"}
    e.ast = NoConnect()
    e.ast.alive = {AGENT_LEG: "PJSIP/1004-00000002"}
    await e.start(connect_timeout=0.1)
    try:
        call = make_call()
        del call.legs[CUSTOMER_LEG]
        e.taps.on_call_event(AgentAnswered(call=call.snapshot(), at=time.time(), agent="1004",
                                           leg=call.legs[AGENT_LEG]))
        await e.until(lambda: RETRYING in e.states("agent"))
        assert "did not connect to the tap server" in e.statuses[-1].reason
    finally:
        await e.close()
