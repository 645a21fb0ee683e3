"""Run one call's two audio streams through the service's speech and coaching code
on the call's audio clock (no threads, no sockets): the benchmarks' model of
what ivr.live + ivr.speech do for a live call, deterministic and fast.

The live service feeds a stream's audio to its decoder as it arrives and ticks
the engine on the wall clock; here both streams advance together in
``chunk_s`` steps and the engine's clock is the audio clock, so a prompt's
decision time is how much audio had to be heard before it fired. The choices
of what each party listens for are the service's own (ivr.live).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ivr.coaching.engine import CoachingEngine
from ivr.coaching.rules import RuleLibrary
from ivr.live import CUSTOMER_GARBAGE_WORDS, hearing, recognition_modes
from ivr.speech.recognizer import Heard, SpeechModel, StreamDecoder, Utterance
from ivr.speech.vocabulary import frequent_words, garbage_words

RATE = 8000
ANSWERED_AT = 1_000_000.0


@dataclass
class CallResult:
    record: dict[str, Any]
    fired_at: dict[str, float] = field(default_factory=dict)  # rule id -> audio time fired
    cant_check: list[str] = field(default_factory=list)
    rule_ids: list[str] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)
    decode_cpu: float = 0.0


def simulate(
    model: SpeechModel,
    script: dict,
    rules: RuleLibrary,
    audio: dict[str, bytes],
    *,
    mode: str = "auto",
    chunk_s: float = 0.1,
    garbage: int = CUSTOMER_GARBAGE_WORDS,
    critical_confidence: float = 0.9,
) -> CallResult:
    now = {"t": 0.0}
    fired: dict[str, float] = {}

    def on_prompt(p) -> None:
        fired.setdefault(p.rule_id, now["t"])

    engine = CoachingEngine(
        rules.ruleset_for, on_prompt, lambda tick: None, critical_confidence=critical_confidence
    )
    fillers = (
        garbage_words(frequent_words(model.path), garbage, min_chars=1, max_chars=2)
        if garbage
        else ()
    )
    modes = recognition_modes(engine, script, mode, model, fillers)
    engine.start_call(
        "sim", script, script.get("direction"), ANSWERED_AT, hears=hearing(model, modes)
    )
    decoders = {
        sp: StreamDecoder(model, call_id="sim", speaker=sp, mode=modes[sp])
        for sp in ("agent", "customer")
    }
    heard: list[str] = []

    def deliver(items: list) -> None:
        for it in items:
            if isinstance(it, Heard):
                engine.progress(it.call_id, it.speaker, it.until)
            elif isinstance(it, Utterance):
                if it.final:
                    heard.append(
                        f"{it.start:5.1f}-{it.end:5.1f} {it.speaker:<8} {it.source[:5]} "
                        f"{it.text} {list(it.phrases)}"
                    )
                engine.utterance(it)
            else:
                engine.activity(it)

    step = int(chunk_s * RATE) * 2
    n = max(len(a) for a in audio.values())
    for pos in range(0, n, step):
        now["t"] = (pos + step) / 2 / RATE
        for sp, dec in decoders.items():
            chunk = audio[sp][pos : pos + step]
            if chunk:
                deliver(dec.process(chunk))
        engine.tick(ANSWERED_AT + now["t"])
    cpu = sum(d.stats.decode_cpu + d.stats.gate_cpu for d in decoders.values())
    for dec in decoders.values():
        deliver(dec.finish())
    engine.tick(ANSWERED_AT + now["t"] + 0.01)
    live = engine.calls["sim"]
    rule_ids = [rs.rule.id for rs in live.rules] + [f"checklist.{i}" for i in live.items]
    record = engine.end_call("sim", ANSWERED_AT + now["t"]).to_dict()
    cant = [
        ("checklist." + x["id"]) if x["kind"] == "item" else x["id"] for x in record["cant_check"]
    ]
    return CallResult(record, fired, cant, rule_ids, heard, cpu)
