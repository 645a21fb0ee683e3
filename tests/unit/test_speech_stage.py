"""The speech stage under overload: bounded lag, nothing lost silently, degradation in
order. A fake recognizer that is slower than real time stands in for Vosk (pure
logic: the real model is in tests/integration and bench/live_load.py)."""
from __future__ import annotations

import asyncio
import json
import math
import struct
import time

from ivr.speech.grammar import build_grammar
from ivr.speech.recognizer import SPOTTING, TRANSCRIPT, Heard, RecognitionMode
from ivr.speech.stage import NO_PARTIALS, NO_TRANSCRIPT, PAUSED, SpeechStage

RATE = 8000


class SlowRecognizer:
    """Decodes at ``cost`` seconds of wall time per second of audio."""

    def __init__(self, cost: float) -> None:
        self.cost = cost

    def SetWords(self, on):
        pass

    def AcceptWaveform(self, pcm: bytes) -> bool:
        time.sleep(len(pcm) / 2 / RATE * self.cost)
        return False

    def PartialResult(self) -> str:
        return json.dumps({"partial": "음"})

    def Result(self) -> str:
        return json.dumps({"text": ""})

    FinalResult = Result


class FakeModel:
    grammar_capable = True
    path = "fake"

    def __init__(self, spotting_cost: float, transcript_cost: float) -> None:
        self.costs = {True: spotting_cost, False: transcript_cost}

    def has_word(self, w: str) -> bool:
        return True

    def can_hear(self, phrase: str) -> bool:
        return True

    def grammar(self, phrases, fillers=()):
        return build_grammar(phrases, self.has_word, fillers=fillers)

    def recognizer(self, rate, grammar=None):
        return SlowRecognizer(self.costs[grammar is not None])


def speech(seconds: float) -> bytes:
    """A loud tone: the voice-activity gate passes it all (worst case for the decoder)."""
    n = int(seconds * RATE)
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / RATE)))
                    for i in range(n))


async def feed_realtime(stage: SpeechStage, streams: list[tuple[str, str]], seconds: float,
                        speedup: float = 1.0) -> None:
    frame = speech(0.02)
    for _ in range(int(seconds / 0.02)):
        for call_id, speaker in streams:
            stage.feed(call_id, speaker, frame)
        await asyncio.sleep(0.02 / speedup)


async def test_overload_sheds_counted_audio_and_degrades_in_order():
    gaps, notices, heard = [], [], []
    model = FakeModel(spotting_cost=0.05, transcript_cost=0.6)
    stage = SpeechStage(model, workers=1, max_backlog=1.0, chunk=0.1, degrade_at=0.4,
                        recover_after=60, on_gap=lambda *g: gaps.append(g),
                        on_capacity=notices.append, on_heard=heard.append,
                        mode=RecognitionMode.spotting(["안녕하세요"], transcript=True))
    await stage.start()
    streams = [(f"c{i}", sp) for i in range(3) for sp in ("agent", "customer")]
    for call_id, _ in streams:
        stage.set_origin(call_id, time.time())
    # Six streams of 0.65x-real-time decoding on one worker: 3.9x over capacity.
    await feed_realtime(stage, streams, 4.0)
    # 1. the transcripts went first ...
    assert stage.level >= NO_TRANSCRIPT
    assert any(n.description == "transcript off: capacity" and n.call_id for n in notices)
    await feed_realtime(stage, streams, 3.0)
    # ... the lag never passed the bound: the oldest audio was shed instead, and said
    assert max(stage.stats.lags) <= 1.0 + 0.5
    await stage.close(timeout=10)
    s = stage.stats
    assert math.isclose(s.audio_seconds, 6 * 7.0, rel_tol=0.05)
    # every second received is either processed (decoded) or deliberately shed
    assert math.isclose(s.processed_seconds, s.audio_seconds, rel_tol=0.01)
    assert s.shed_seconds > 0 and gaps
    assert math.isclose(sum(g[3] - g[2] for g in gaps), s.shed_seconds, rel_tol=0.01)
    assert all("shed" in g[4] for g in gaps)
    # progress is reported per stream, in order
    last = {}
    for h in heard:
        assert isinstance(h, Heard) and h.until >= last.get((h.call_id, h.speaker), 0)
        last[(h.call_id, h.speaker)] = h.until


async def test_when_spotting_alone_is_too_slow_partials_go_then_new_streams_wait():
    notices = []
    model = FakeModel(spotting_cost=0.8, transcript_cost=0.8)
    stage = SpeechStage(model, workers=1, max_backlog=1.0, chunk=0.1, degrade_at=0.3,
                        recover_after=60, on_capacity=notices.append,
                        mode=RecognitionMode.spotting(["안녕하세요"]))
    await stage.start()
    streams = [(f"c{i}", "agent") for i in range(4)]
    await feed_realtime(stage, streams, 4.0)
    assert stage.level >= NO_PARTIALS
    await feed_realtime(stage, streams, 2.0)
    assert stage.level == PAUSED
    levels = [n.level for n in notices if n.call_id is None]
    assert levels == sorted(levels)                       # one step at a time, upwards

    class Tap:
        call_id, speaker, opened_at = "new", "agent", time.time()

    sink = stage.sink(Tap())
    sink.audio(speech(0.5), RATE)
    assert ("new", "agent") not in stage._streams
    assert stage.stats.refused_streams == 1 and stage.stats.refused_seconds > 0.4
    assert any(n.description == "coaching paused: capacity" and n.call_id == "new"
               for n in notices)
    await stage.close(timeout=10)


async def test_a_stream_dropping_its_transcript_keeps_spotting():
    model = FakeModel(0.01, 0.01)
    got = []
    stage = SpeechStage(model, workers=1, on_utterance=got.append, chunk=0.1,
                        mode=RecognitionMode.spotting(["안녕하세요"], transcript=True))
    await stage.start()
    stage.feed("c", "agent", speech(0.5))
    await asyncio.sleep(0.3)
    stream = stage._streams[("c", "agent")]
    assert [p.source for p in stream.decoder.passes] == [SPOTTING, TRANSCRIPT]
    assert stream.decoder.transcript_off()
    stage.feed("c", "agent", b"\0\0" * 8000 + speech(0.5))     # a pause, a new sentence
    await asyncio.sleep(0.5)
    assert [p.source for p in stream.decoder.passes] == [SPOTTING]
    assert not stream.decoder.transcript_off()                  # nothing left to give up
    await stage.close()
