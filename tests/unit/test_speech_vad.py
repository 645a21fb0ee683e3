"""Voice-activity gating on espeak-ng speech and on silence/noise."""
from __future__ import annotations

import random

import pytest

from ivr.testing.speech import SynthError, silence, synth
from ivr.speech.vad import VadGate, VadSettings

RATE = 8000


@pytest.fixture(scope="module")
def speech() -> bytes:
    try:
        return synth("너무 비싸요", voice="ko", speed=150)
    except SynthError as exc:
        pytest.fail(f"espeak-ng/sox needed: {exc}")


def run(gate: VadGate, pcm: bytes, chunk: int = 320) -> list:
    events = []
    for i in range(0, len(pcm), chunk):
        events += gate.push(pcm[i:i + chunk])
    events += gate.flush()
    return events


def segments(events) -> list[tuple[int, int, int]]:
    """(start sample, end sample, samples of audio passed) per segment."""
    out, start, n = [], None, 0
    for kind, value in events:
        if kind == "start":
            start, n = value, 0
        elif kind == "audio":
            n += len(value) // 2
        elif kind == "end":
            out.append((start, value, n))
    return out


def onset_and_offset(pcm: bytes, threshold: int = 300) -> tuple[int, int]:
    import array
    a = array.array("h", pcm)
    loud = [i for i, v in enumerate(a) if abs(v) > threshold]
    return loud[0], loud[-1]


def test_silence_and_faint_noise_are_not_decoded():
    gate = VadGate(RATE)
    assert run(gate, silence(3)) == []
    assert gate.passed_samples == 0 and gate.frames == 150
    # Line noise: webrtcvad needs a moment to learn the noise floor, then passes nothing.
    rnd = random.Random(1)
    noise = b"".join(rnd.randint(-40, 40).to_bytes(2, "little", signed=True)
                     for _ in range(RATE * 10))
    gate = VadGate(RATE)
    segs = segments(run(gate, noise))
    assert all(end <= RATE * 1.5 for _, end, _ in segs), segs
    assert gate.passed_samples < RATE * 1.5


def test_one_phrase_is_one_padded_segment(speech):
    pcm = silence(1.0) + speech + silence(1.5)
    s = VadSettings()
    gate = VadGate(RATE, s)
    segs = segments(run(gate, pcm))
    assert len(segs) == 1
    start, end, passed = segs[0]
    on, off = onset_and_offset(pcm)
    # Starts before the first sound (pre-roll), no earlier than pre-roll + the start window.
    assert on - (s.pre_roll_ms + s.start_window_ms) * RATE // 1000 <= start <= on
    # Ends after the last sound plus (most of) the hangover: the tail is padding.
    assert end >= off + (s.hangover_ms - 100) * RATE // 1000
    assert end <= off + (s.hangover_ms + 400) * RATE // 1000
    assert passed == end - start                 # every sample of the segment is passed on
    assert gate.passed_samples < len(pcm) // 2 - RATE   # the silence around it is not


def test_pause_splits_segments_but_a_short_gap_does_not(speech):
    two = silence(0.5) + speech + silence(1.5) + speech + silence(1.0)
    assert len(segments(run(VadGate(RATE), two))) == 2
    one = silence(0.5) + speech + silence(0.2) + speech + silence(1.0)
    assert len(segments(run(VadGate(RATE), one))) == 1


def test_chunking_does_not_change_the_result(speech):
    pcm = silence(0.7) + speech + silence(1.0) + speech + silence(0.8)
    ref = run(VadGate(RATE), pcm, chunk=len(pcm))
    for chunk in (2, 78, 320, 1000, 4096):
        ev = run(VadGate(RATE), pcm, chunk=chunk)
        assert segments(ev) == segments(ref), chunk
        assert b"".join(v for k, v in ev if k == "audio") == b"".join(v for k, v in ref if k == "audio")


def test_open_segment_is_closed_by_flush(speech):
    gate = VadGate(RATE)
    events = gate.push(silence(0.5) + speech)
    assert events[0][0] == "start" and gate.in_speech
    tail = gate.flush()
    assert tail == [("end", gate.offset)] and not gate.in_speech


def test_long_speech_is_cut_at_max_segment(speech):
    gate = VadGate(RATE, VadSettings(max_segment_s=1.0, hangover_ms=2000))
    segs = segments(run(gate, speech * 3))
    assert len(segs) >= 2
    assert all(e - s <= RATE * 1.0 + 160 for s, e, _ in segs[:-1])


def test_disabled_gate_passes_everything(speech):
    pcm = silence(1) + speech + silence(1)
    gate = VadGate(RATE, VadSettings(enabled=False))
    ev = run(gate, pcm, chunk=333)
    assert segments(ev) == [(0, len(pcm) // 2, len(pcm) // 2)]
    assert gate.passed_samples == len(pcm) // 2


def test_unsupported_rate_falls_back_to_passthrough():
    assert VadGate(12000).passthrough and not VadGate(16000).passthrough
