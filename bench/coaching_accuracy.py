#!/usr/bin/env python3
"""Coaching accuracy on labelled calls: precision and recall of ticks and prompts.

    python bench/coaching_accuracy.py [--calls 120] [--seed 1] [--mode auto|spotting|transcript]
                                      [--show-errors] [--model PATH]

Calls come from bench/corpus/ko.yaml (see bench/speech_corpus.py): both
parties' lines, labelled with what they really contain, spoken by espeak-ng
in several voices and speeds, through a telephone channel with line noise.
Each call's two streams go through the service's own code, as the live
service runs it, on the call's audio clock:

    PCM (100 ms chunks) -> SpeechDecoder (VAD, Vosk: the call's plan per party)
      -> CoachingEngine (script checklist + rule set of the call) -> ticks, prompts, record

What is scored, against the labels (a line's time is when it was said):

* ticks: a checklist item ticked vs the agent having said it;
* prompts: every rule and every checklist deadline; a prompt is expected when the
  label says so (a customer's abuse, a forbidden phrase, an item not said by its
  deadline, no apology within 20 s of a decline, no thanks 5 s after the goodbye);
* "can't check": items and rules the engine says it cannot judge are left out of
  precision and recall and counted apart (coverage);
* false critical cards per 100 calls; adherence error against the labelled score;
  prompt latency: how much later than the moment it became true a prompt came,
  on the audio clock (decoding time is measured by bench/live_load.py).

Deadlines are ambiguous when the line that satisfies them ends within
``--margin`` seconds of the deadline (the label cannot say on which side it
fell): those are left out and counted.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from live_coaching_sim import CallResult, simulate  # noqa: E402
from speech_corpus import Corpus, LabelledCall, describe, generate, render  # noqa: E402

from ivr.calls.model import Call, Direction  # noqa: E402
from ivr.coaching.model import CRITICAL  # noqa: E402
from ivr.coaching.rules import RuleLibrary  # noqa: E402
from ivr.scripts.customers import CustomerDirectory  # noqa: E402
from ivr.scripts.fill import fill  # noqa: E402
from ivr.scripts.library import ScriptLibrary  # noqa: E402
from ivr.speech.recognizer import SpeechModel  # noqa: E402
from ivr.users import User  # noqa: E402

CHUNK_S = 0.1
DEADLINE_RULES = ("apology_after_decline", "close_thanks")


# ---------------------------------------------------------------- expectations
@dataclass
class Expect:
    """What the labels say should happen on one call."""

    said: dict[str, float] = field(default_factory=dict)  # item -> first said (end)
    prompts: dict[str, float] = field(default_factory=dict)  # rule id -> when due
    ambiguous: set[str] = field(default_factory=set)  # rule ids left out
    adherence: int | None = None


def expectations(call: LabelledCall, script: dict, ruleset, margin: float) -> Expect:
    e = Expect()
    items = {it["id"]: it for it in script["checklist"]}
    for s in call.lines:
        if s.speaker != "agent":
            continue
        for label in s.says:
            if label in items and label not in e.said:
                e.said[label] = s.end
    # checklist deadlines
    total = earned = 0.0
    for item_id, it in items.items():
        weight = float(it.get("weight", 1.0))
        total += weight
        at = e.said.get(item_id)
        within = it.get("within")
        if within is None:
            earned += weight if at is not None else 0
            continue
        rid = f"checklist.{item_id}"
        first = next((s for s in call.lines if s.speaker == "agent" and item_id in s.says), None)
        if first is not None and first.start - margin <= within <= first.end + margin:
            e.ambiguous.add(rid)
        if at is None or first.start > within:
            e.prompts[rid] = float(within)
        else:
            earned += weight
    e.adherence = math.floor(100 * earned / total + 0.5) if total else None
    # rules
    for r in ruleset.rules:
        if r.type == "customer_phrase":
            hits = call.said(r.id, "customer")
            if hits:
                e.prompts[r.id] = hits[0].end
        elif r.type == "forbidden_phrase":
            hits = call.said(r.id, "agent")
            if hits:
                e.prompts[r.id] = hits[0].end
        elif r.id == "apology_after_decline":
            decline = call.said("decline", "customer")
            if decline:
                due = decline[0].end + float(r.param("within"))
                answer = [s for s in call.said("apology", "agent") if s.start >= decline[0].start]
                if not answer or answer[0].end > due:
                    e.prompts[r.id] = due
                if answer and abs(answer[0].end - due) <= margin:
                    e.ambiguous.add(r.id)
        elif r.id == "close_thanks":
            bye = call.said("closing", "customer")
            if bye:
                due = bye[0].end + float((r.param("closing") or {}).get("wait", 5.0))
                thanks = [s for s in call.said("thanked", "agent")]
                if not thanks:
                    e.prompts[r.id] = due
    return e


# ---------------------------------------------------------------- scoring
@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    cant: int = 0  # expected or not, the engine said it cannot check
    ambiguous: int = 0

    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None


def pct(x: float | None) -> str:
    return "   -  " if x is None else f"{100 * x:5.1f}%"


@dataclass
class Score:
    ticks: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    prompts: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    false_critical: int = 0
    false_critical_calls: list[int] = field(default_factory=list)
    adherence_err: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)  # customer cards, forbidden
    deadline_latency: list[float] = field(default_factory=list)  # deadline prompts
    severity: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    calls: int = 0


def score_call(call: LabelledCall, e: Expect, r: CallResult, s: Score) -> None:
    s.calls += 1
    record = r.record
    for item in record["checklist"]:
        t = s.ticks[item["id"]]
        said = item["id"] in e.said
        if item.get("status") == "cant_check":
            t.cant += 1
            continue
        if item["done"] and said:
            t.tp += 1
        elif item["done"]:
            t.fp += 1
            s.errors.append(
                f"call {call.index}: false tick {item['id']} ({item.get('phrase')!r} "
                f"at {item.get('at')})"
            )
        elif said:
            t.fn += 1
            s.errors.append(f"call {call.index}: missed tick {item['id']}")
    fired: dict[str, dict] = {}
    for p in record["prompts"]:
        fired.setdefault(p["rule_id"], p)
        s.severity[p["rule_id"]] = p["severity"]
    cant = set(r.cant_check)
    rule_ids = set(r.rule_ids) | set(e.prompts) | set(fired)
    for rid in sorted(rule_ids):
        t = s.prompts[rid]
        if rid in e.ambiguous:
            t.ambiguous += 1
            continue
        if rid in cant and rid not in fired:
            t.cant += 1
            continue
        expected = rid in e.prompts
        p = fired.get(rid)
        if p and expected:
            t.tp += 1
            late = max(0.0, r.fired_at[rid] - e.prompts[rid])
            (
                s.deadline_latency
                if rid.startswith("checklist.") or rid in DEADLINE_RULES
                else s.latency
            ).append(late)
        elif p:
            t.fp += 1
            s.errors.append(
                f"call {call.index}: false prompt {rid} at {p['at']} ({p['evidence']!r})"
            )
            if p["severity"] == CRITICAL:
                s.false_critical += 1
                s.false_critical_calls.append(call.index)
        elif expected:
            t.fn += 1
            s.errors.append(f"call {call.index}: missed prompt {rid} (due {e.prompts[rid]:.1f})")
    got = record["adherence"].get("score")
    if got is not None and e.adherence is not None:
        s.adherence_err.append(abs(got - e.adherence))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]


def report(s: Score, seconds: float, audio_s: float, cpu: float) -> list[str]:
    out = [
        f"calls: {s.calls}, audio {audio_s:.0f} s (both parties), run {seconds:.0f} s, "
        f"CPU {cpu:.0f} s ({cpu / max(audio_s, 1e-9):.3f} CPU s per audio s)",
        "",
        "ticks (checklist item said by the agent -> ticked)",
        f"  {'item':<22}{'precision':>10}{'recall':>9}{'tp':>5}{'fp':>5}{'fn':>5}{'cant':>6}",
    ]
    tot = Tally()
    for name, t in sorted(s.ticks.items()):
        out.append(
            f"  {name:<22}{pct(t.precision()):>10}{pct(t.recall()):>9}{t.tp:>5}{t.fp:>5}"
            f"{t.fn:>5}{t.cant:>6}"
        )
        tot.tp += t.tp
        tot.fp += t.fp
        tot.fn += t.fn
        tot.cant += t.cant
    out.append(
        f"  {'all':<22}{pct(tot.precision()):>10}{pct(tot.recall()):>9}{tot.tp:>5}"
        f"{tot.fp:>5}{tot.fn:>5}{tot.cant:>6}"
    )
    out += [
        "",
        "prompts (expected by the labels -> fired)",
        f"  {'rule':<32}{'sev':>9}{'precision':>10}{'recall':>9}{'tp':>5}{'fp':>5}{'fn':>5}"
        f"{'cant':>6}{'ambig':>6}",
    ]
    tot = Tally()
    for name, t in sorted(s.prompts.items()):
        if not (t.tp or t.fp or t.fn or t.cant):
            continue
        out.append(
            f"  {name:<32}{s.severity.get(name, ''):>9}{pct(t.precision()):>10}"
            f"{pct(t.recall()):>9}{t.tp:>5}{t.fp:>5}{t.fn:>5}{t.cant:>6}{t.ambiguous:>6}"
        )
        for k in ("tp", "fp", "fn", "cant"):
            setattr(tot, k, getattr(tot, k) + getattr(t, k))
    out.append(
        f"  {'all':<32}{'':>9}{pct(tot.precision()):>10}{pct(tot.recall()):>9}{tot.tp:>5}"
        f"{tot.fp:>5}{tot.fn:>5}{tot.cant:>6}"
    )
    per100 = 100 * s.false_critical / max(1, s.calls)
    err = s.adherence_err
    out += [
        "",
        f"false critical cards: {s.false_critical} in {s.calls} calls = {per100:.1f} per "
        f"100 calls (calls {s.false_critical_calls[:12]})",
        f"adherence error: mean {sum(err) / max(1, len(err)):.1f}, p95 "
        f"{percentile(err, 0.95) or 0:.0f}, max {max(err, default=0):.0f} points "
        f"({len(err)} calls scored)",
        f"card latency, after the words that fired it (audio clock): p50 "
        f"{percentile(s.latency, 0.5) or 0:.2f} s, p95 {percentile(s.latency, 0.95) or 0:.2f} s, "
        f"max {max(s.latency, default=0):.2f} s ({len(s.latency)} cards)",
        f"deadline prompt latency, after the deadline (audio clock; a sentence begun "
        f"before it is heard out, up to 2 s): p50 {percentile(s.deadline_latency, 0.5) or 0:.2f} "
        f"s, p95 {percentile(s.deadline_latency, 0.95) or 0:.2f} s "
        f"({len(s.deadline_latency)} prompts)",
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--calls", type=int, default=120)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--language", default="ko")
    ap.add_argument("--mode", default="auto", choices=("auto", "spotting", "transcript"))
    ap.add_argument("--model", default="auto")
    ap.add_argument("--beam", type=float, help="decoder beam (default: the model's)")
    ap.add_argument("--max-active", type=int, help="decoder max active states")
    ap.add_argument("--margin", type=float, default=1.0)
    ap.add_argument("--show-errors", action="store_true")
    ap.add_argument("--show-calls", action="store_true")
    a = ap.parse_args(argv)

    corpus = Corpus.load(a.language)
    model = SpeechModel.load(a.model, beam=a.beam, max_active=a.max_active)
    library = ScriptLibrary(ROOT / "scripts")
    library.reload()
    rules = RuleLibrary(ROOT / "scripts" / "rules")
    rules.reload()
    script = next(s for s in library.scripts() if s.id == corpus.script)
    user = User(login="1001", name=corpus.agent_name, operator_id="17")
    call = Call(
        call_id="bench",
        started_at=0.0,
        direction=Direction.INBOUND,
        customer_num=corpus.customer_number,
        project=corpus.project,
    )
    filled = fill(script, call, user, CustomerDirectory())
    ruleset = rules.ruleset_for(corpus.project, corpus.language)
    print(
        f"model {model.path.name} (beam {a.beam or 'default'}, max-active "
        f"{a.max_active or 'default'}), script {script.id} ({script.kind.value}), rule set "
        f"{ruleset.id}, mode {a.mode}, {a.calls} calls, seed {a.seed}"
    )
    calls = generate(corpus, a.calls, a.seed)
    s = Score()
    t0, c0 = time.monotonic(), time.process_time()
    audio = 0.0
    for lc in calls:
        render(lc)
        audio += sum(len(x) for x in lc.audio.values()) / 2 / 8000
        result = simulate(model, filled, rules, lc.audio, mode=a.mode, chunk_s=CHUNK_S)
        e = expectations(lc, filled, ruleset, a.margin)
        before = len(s.errors)
        score_call(lc, e, result, s)
        if a.show_calls or (a.show_errors and len(s.errors) > before):
            print(describe(lc))
            for u in result.heard:
                print(f"      heard {u}")
            for line in s.errors[before:]:
                print(f"   !! {line}")
    lines = report(s, time.monotonic() - t0, audio, time.process_time() - c0)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("VOSK_LOG_LEVEL", "-1")
    sys.exit(main())
