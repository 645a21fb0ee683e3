"""The per-call coaching engine: utterances and voice activity in, prompts and
checklist ticks out. Synchronous, no I/O, no clock of its own: every input
carries its time (Utterance/VoiceActivity on the call's time line, ``now``
as unix time for ``tick``/``manual_tick``/``end_call``), so a test drives it
with a fake clock and gets the same prompts every run.

Who counts for what (never crossed):
  * AGENT speech: checklist items, required_phrase rules, forbidden_phrase
    rules, the agent's closing phrases, monologue and speaking rate;
  * CUSTOMER speech: customer_phrase rules, the `after:` trigger of a
    required_phrase rule (e.g. a decline the agent must apologise for) and
    the customer's closing phrases.
Only final utterances are matched (partials change while the person talks);
a partial or an open VoiceActivity only tells the engine someone is talking,
so a deadline that falls while the agent is mid-sentence waits up to
``final_grace`` seconds for that sentence's final result before prompting.

Deadlines (checklist `within`, rule `within`, closing `wait`), dead air,
monologues and live talk-over are checked by ``tick(now)``, which the service
calls a few times a second. A rule fires at most once per call unless it has
``repeat_after`` (then again after that many seconds, while still true).

Wiring (one engine for the service, driven from the event loop only):
  * on answer: ``start_call(call_id, card.script, call.direction, call.answered_at)``
    and ``SpeechStage.set_origin(call_id, call.answered_at)``: the same time zero;
  * phrase-spotting mode: ``RecognitionMode.spotting(engine.spotting_phrases(script))``;
  * SpeechStage(on_utterance=engine.utterance, on_activity=engine.activity);
  * on_tick -> ``ScriptPop.mark_item(login, call_id, tick.item_id, True, by="speech")``;
    a tick the agent makes on the console -> ``manual_tick`` (not echoed to on_tick);
  * on hang-up: ``end_call(call_id, now).to_dict()`` is saved with the outcome.
"""

from __future__ import annotations

import logging
import string
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from ..logs import about
from .matcher import Hit, PhraseSet, phrase_key, prepare
from .model import (
    AGENT,
    CHECKLIST_KIND,
    CHECKLIST_RULE_PREFIX,
    CUSTOMER,
    SPEAKERS,
    CallCoaching,
    CantCheck,
    Prompt,
    Rule,
    RuleSet,
    Tick,
    empty_ruleset,
    round_time,
    show_number,
)
from .score import CANT_CHECK, adherence, item_status
from .types import TYPES, RuleType, rule_phrases
from .types.base import UNHEARABLE, Hears, none_heard

log = logging.getLogger(__name__)

RulesetFor = Callable[[str, str], RuleSet]

BEHIND = "speech recognition was behind at the deadline"
NO_AUDIO = "no audio of the agent reached speech recognition"

SPAN_MEMORY = 60.0  # seconds of past speech kept (talk-over looks back)
MAX_PAUSE = 2.0  # turn-taking when no rule asks otherwise (see monologue)
BACKCHANNEL = 1.5


class _SafeDict(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fmt(template: str, values: dict[str, Any]) -> str:
    try:
        return string.Formatter().vformat(
            template, (), _SafeDict({k: show_number(v) for k, v in values.items()})
        )
    except (ValueError, IndexError, KeyError):
        return template


@dataclass
class Item:
    """A checklist item of the call's script, as this call has it so far."""

    id: str
    label: str
    weight: float
    within: float | None
    phrases: PhraseSet
    done: bool = False
    at: float | None = None
    by: str | None = None
    phrase: str | None = None
    cant_check: str | None = None  # why speech cannot judge it (None: it can)

    def to_dict(self) -> dict[str, Any]:
        status = item_status(self.done, self.at, self.within, self.cant_check)
        return {
            "id": self.id,
            "label": self.label,
            "weight": self.weight,
            "within": self.within,
            "done": self.done,
            "at": round_time(self.at) if self.at is not None else None,
            "by": self.by,
            "phrase": self.phrase,
            "in_time": status == "done" if self.done else False,
            "status": status,
            "missed": status == "missed",
            "cant_check": self.cant_check if status == CANT_CHECK else None,
        }


@dataclass
class Span:
    """A stretch of someone's speech (a VAD segment or a final result)."""

    start: float
    end: float


@dataclass
class LiveCall:
    """One call being coached: what rule types read (speech timing, the audio clock,
    the checklist) and what they may do (``fire``, ``tick_item``, ``judge``)."""

    call_id: str
    answered_at: float
    direction: str
    language: str
    project: str
    script_id: str | None
    ruleset: RuleSet
    items: dict[str, Item]
    engine: "CoachingEngine"
    rules: list[RuleType] = field(default_factory=list)
    fired: dict[str, float] = field(default_factory=dict)  # rule id -> last fired at
    prompts: list[Prompt] = field(default_factory=list)
    # How far recognition has got through each party's audio (call time line, s): a
    # deadline is judged on this clock, never on the wall clock alone.
    heard_until: dict[str, float] = field(default_factory=lambda: {AGENT: 0.0, CUSTOMER: 0.0})
    gaps: dict[str, list] = field(default_factory=lambda: {AGENT: [], CUSTOMER: []})
    # Keys named by the last partial result of each party (a card from a partial needs
    # two in a row), and those named by the one being looked at.
    stable: dict[str, set] = field(default_factory=lambda: {AGENT: set(), CUSTOMER: set()})
    named: set = field(default_factory=set)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    # who is talking
    open: dict[str, float] = field(default_factory=dict)  # speaker -> segment start
    partial: dict[str, float] = field(default_factory=dict)  # speaker -> partial's start
    spans: dict[str, deque] = field(
        default_factory=lambda: {AGENT: deque(maxlen=200), CUSTOMER: deque(maxlen=200)}
    )
    last_speech_end: float = 0.0
    spoke: bool = False
    # the agent's turn: from when they began talking, to their last speech in it
    turn_start: float | None = None
    turn_last: float | None = None
    max_pause: float = MAX_PAUSE  # a longer pause by the agent starts a new turn
    backchannel: float = BACKCHANNEL  # customer speech this long ends the agent's turn

    def t(self, now: float) -> float:
        return now - self.answered_at

    @property
    def heard(self) -> float:
        """Audio time both parties' recognition has reached."""
        return min(self.heard_until.values())

    @property
    def critical_confidence(self) -> float:
        return self.engine.critical_confidence

    # ------------------------------------------------------------ what rules may do
    def fire(
        self,
        rule: Rule,
        at: float,
        *,
        values: dict[str, Any] | None = None,
        evidence: str = "",
        phrase: str | None = None,
        item_id: str | None = None,
    ) -> bool:
        """Raise the rule's prompt (once, or again after ``repeat_after``)."""
        last = self.fired.get(rule.id)
        if last is not None and (rule.repeat_after is None or at - last < rule.repeat_after):
            return False
        self.fired[rule.id] = at
        values = values or {}
        prompt = Prompt(
            self.call_id,
            rule.id,
            rule.type,
            _fmt(rule.text, values),
            rule.severity,
            _fmt(rule.reason, values),
            round_time(at),
            evidence,
            phrase,
            item_id,
        )
        self.prompts.append(prompt)
        try:
            self.engine.on_prompt(prompt)
        except Exception:
            log.exception("coaching: on_prompt failed for %s", rule.id)
        return True

    def tick_item(self, item: Item, hit: Hit) -> None:
        item.done, item.at, item.by, item.phrase = True, round_time(hit.at), "speech", hit.phrase
        try:
            self.engine.on_tick(Tick(self.call_id, item.id, item.at, hit.phrase, "speech"))
        except Exception:
            log.exception("coaching: on_tick failed for %s", item.id)

    def named_before(self, key: str) -> bool:
        """Whether the party's previous partial result named ``key`` too (and note it)."""
        self.named.add(key)
        return key in self.stable[CUSTOMER]

    def judge(self, deadline: float, wall: float, obj: Item | RuleType, rule_id: str) -> bool:
        """Whether a deadline can be judged now, on the agent's audio clock.

        Judged once recognition has processed the agent's audio past the deadline
        (and the final of a sentence begun before it, up to ``final_grace``). If it
        has not got there ``max_lag`` seconds after the deadline, or the agent's
        audio before the deadline was not all recognised, the item or rule is
        "can't check": no prompt (a late or guessed "missed" is worse than none)."""
        if wall < deadline or obj.cant_check or rule_id in self.fired:
            return False
        lost = [g for g in self.gaps[AGENT] if g[0] < deadline]
        if lost:
            self.cant(obj, lost[0][2])
            return False
        heard = self.heard_until[AGENT]
        if heard >= deadline and not self._agent_busy(deadline, heard):
            return True
        if wall >= deadline + self.engine.max_lag:
            self.cant(
                obj,
                BEHIND
                if heard > 0 or self.open.get(AGENT) is not None or self.spans[AGENT]
                else NO_AUDIO,
            )
        return False

    def cant(self, obj: Item | RuleType, reason: str) -> None:
        """Speech cannot judge this item or rule on this call: say so, once."""
        if obj.cant_check:
            return
        obj.cant_check = reason
        if isinstance(obj, Item):
            event = CantCheck(self.call_id, obj.id, "item", reason)
        else:
            event = CantCheck(self.call_id, obj.rule.id, "rule", reason)
        if self.engine.on_cant_check is not None:
            try:
                self.engine.on_cant_check(event)
            except Exception:
                log.exception("coaching: on_cant_check failed for %s", event.id)

    def _agent_busy(self, deadline: float, t: float) -> bool:
        """The agent is mid-sentence since before the deadline: wait for its final."""
        if t >= deadline + self.engine.final_grace:
            return False
        started = [s for s in (self.open.get(AGENT), self.partial.get(AGENT)) if s is not None]
        return any(s <= deadline for s in started)


class CoachingEngine:
    """Coaching for every live call. See the module docstring.

    ruleset_for(project, language) -> RuleSet   (e.g. RuleLibrary.ruleset_for)
    on_prompt(Prompt), on_tick(Tick): called synchronously as things happen;
      an exception in them is logged, never raised into the engine's caller.
    """

    def __init__(
        self,
        ruleset_for: RulesetFor,
        on_prompt: Callable[[Prompt], None],
        on_tick: Callable[[Tick], None],
        *,
        default_language: str = "en",
        final_grace: float = 2.0,
        max_lag: float = 3.0,
        critical_confidence: float = 0.9,
        on_cant_check: Callable[[CantCheck], None] | None = None,
    ) -> None:
        self.ruleset_for = ruleset_for
        self.on_prompt = on_prompt
        self.on_tick = on_tick
        self.on_cant_check = on_cant_check
        self.default_language = default_language
        self.final_grace = final_grace
        # A deadline whose party recognition has not reached this long after it passed
        # (wall clock) is "can't check": a late "missed" would be wrong or too late.
        self.max_lag = max_lag
        # A critical card needs the words that fired it recognised at least this sure.
        self.critical_confidence = critical_confidence
        self.calls: dict[str, LiveCall] = {}

    # ------------------------------------------------------------ calls
    def start_call(
        self,
        call_id: str,
        script: dict | None,
        direction: Any,
        answered_at: float,
        *,
        language: str | None = None,
        project: str | None = None,
        hears: Hears | None = None,
    ) -> None:
        """A call was answered: coach it with its script's checklist and its rule set.

        ``hears(speaker, phrase)``: whether that party's speech recognition can hear
        the phrase at all (its words are in the model's vocabulary and, when
        spotting, in that party's grammar). Items and rules with no phrase it can
        hear are "can't check" from the start: never prompted, never scored."""
        direction = str(getattr(direction, "value", direction) or "")
        language = language or (script or {}).get("language") or self.default_language
        project = project or (script or {}).get("project") or ""
        ruleset = self._ruleset(project, language)
        items = {}
        for it in (script or {}).get("checklist") or []:
            phrases = (it.get("phrases") or {}).get(language) or []
            within = it.get("within")
            items[it["id"]] = Item(
                it["id"],
                it.get("label", it["id"]),
                float(it.get("weight", 1.0) or 0.0),
                float(within) if within is not None else None,
                PhraseSet(phrases),
            )
        c = self.calls[call_id] = LiveCall(
            call_id,
            float(answered_at),
            direction,
            language,
            project,
            (script or {}).get("id"),
            ruleset,
            items,
            self,
        )
        for r in ruleset.rules:
            kind = TYPES.get(r.type)
            if kind is None:
                log.warning("coaching: rule %s has an unknown type %r", r.id, r.type)
            elif r.applies_to(direction):
                c.rules.append(kind(r))
        turns = next((t for t in (rs.turns() for rs in c.rules) if t is not None), None)
        if turns is not None:
            c.max_pause, c.backchannel = turns
        if hears is not None:
            self._unhearable(c, hears)

    def end_call(self, call_id: str, now: float) -> CallCoaching | None:
        """The call ended: its coaching record (None for a call never started)."""
        c = self.calls.pop(call_id, None)
        if c is None:
            return None
        checklist = [i.to_dict() for i in c.items.values()]
        rules = [rec for rec in (rs.record() for rs in c.rules) if rec is not None]
        transcript = sorted(c.transcript, key=lambda e: (e["start"], e["end"]))
        return CallCoaching(
            call_id=c.call_id,
            project=c.project,
            language=c.language,
            direction=c.direction,
            script_id=c.script_id,
            answered_at=c.answered_at,
            duration=round_time(max(0.0, c.t(now))),
            checklist=checklist,
            adherence=adherence(checklist),
            rules=rules,
            prompts=[p.to_dict() for p in c.prompts],
            transcript=transcript,
            cant_check=self._cant_checks(c),
        )

    def restore(self, call_id: str, saved: dict[str, Any], now: float) -> None:
        """After a service restart: the coaching a call had so far (a checkpoint from
        ``live``), so nothing already prompted fires again and nothing ticked is lost.
        The audio between the checkpoint and now was never heard: a gap."""
        c = self.calls.get(call_id)
        if c is None:
            return
        for entry in (
            (saved.get("checklist") or {}).values()
            if isinstance(saved.get("checklist"), dict)
            else saved.get("checklist") or []
        ):
            item = c.items.get(entry.get("id"))
            if item is not None and entry.get("done"):
                item.done, item.at, item.by, item.phrase = (
                    True,
                    entry.get("at"),
                    entry.get("by"),
                    entry.get("phrase"),
                )
        for p in saved.get("prompts") or []:
            try:
                prompt = Prompt(**p)
            except TypeError:
                continue
            c.prompts.append(prompt)
            c.fired[prompt.rule_id] = max(c.fired.get(prompt.rule_id, prompt.at), prompt.at)
        c.transcript = list(saved.get("transcript") or []) + c.transcript
        for rs in c.rules:
            rs.items_changed(c)
        # What each party's recognition had reached is not saved; the end of their last
        # recognised words stands for it (a deadline in between is "can't check").
        for speaker in SPEAKERS:
            since = max(
                (float(e.get("end", 0.0)) for e in c.transcript if e.get("speaker") == speaker),
                default=0.0,
            )
            self._reached(c, speaker, since)  # heard up to there before the restart
            self.gap(call_id, speaker, since, c.t(now), "the service was restarted")

    def live(self, call_id: str) -> dict[str, Any] | None:
        """The call's coaching so far (e.g. for a console that reconnects)."""
        c = self.calls.get(call_id)
        if c is None:
            return None
        checklist = [i.to_dict() for i in c.items.values()]
        return {
            "call_id": call_id,
            "checklist": checklist,
            "adherence": adherence(checklist),
            "prompts": [p.to_dict() for p in c.prompts],
            "transcript": sorted(c.transcript, key=lambda e: (e["start"], e["end"])),
            "cant_check": self._cant_checks(c),
        }

    @staticmethod
    def _cant_checks(c: LiveCall) -> list[dict[str, str]]:
        """Items and rules speech cannot judge on this call, with why."""
        out = [
            {"id": i.id, "kind": "item", "reason": i.cant_check}
            for i in c.items.values()
            if i.cant_check and item_status(i.done, i.at, i.within, i.cant_check) == CANT_CHECK
        ]
        out += [
            {"id": rs.rule.id, "kind": "rule", "reason": rs.cant_check}
            for rs in c.rules
            if rs.cant_check and rs.satisfied_at is None
        ]
        return out

    # ------------------------------------------------------------ input
    def utterance(self, u) -> None:
        c = self.calls.get(u.call_id)
        if c is None or u.speaker not in SPEAKERS:
            return
        self._reached(c, u.speaker, float(u.end))
        if not u.final:
            if u.text:
                c.partial.setdefault(u.speaker, float(u.start))
                c.spoke = True
                if u.speaker != AGENT:
                    # A heads-up card may come from a partial result, ~0.5 s before the
                    # final: only a non-critical one, and only once two partials in a row
                    # name the phrase (a single partial is often a forced guess).
                    said = prepare(u)
                    c.named = set()
                    for rs in c.rules:
                        rs.customer_said(c, u, said, True)
                    c.stable[CUSTOMER] = c.named
            return
        c.partial.pop(u.speaker, None)
        c.stable[u.speaker] = set()
        if not u.text and not u.phrases:
            return
        c.spoke = True
        source = getattr(u, "source", "transcript")
        # A spotting pass hears only its phrases; the words it forced the rest onto are
        # not a transcript, so the record keeps what was spotted.
        shown = " · ".join(u.phrases) if source == "spotting" else u.text
        if shown:
            c.transcript.append(
                {
                    "speaker": u.speaker,
                    "text": shown,
                    "start": round_time(u.start),
                    "end": round_time(u.end),
                    "phrases": list(u.phrases),
                    "confidence": getattr(u, "confidence", None),
                    "source": source,
                }
            )
        self._speech(c, u.speaker, float(u.start), float(u.end))
        said = prepare(u)
        if u.speaker == AGENT:
            for item in c.items.values():
                if not item.done and item.phrases:
                    hits = item.phrases.in_said(said)
                    if hits:
                        c.tick_item(item, hits[0])
            for rs in c.rules:
                rs.agent_said(c, u, said)
            # an item ticked (by its own phrases) satisfies the rules that name it
            for rs in c.rules:
                rs.items_changed(c)
        else:
            for rs in c.rules:
                rs.customer_said(c, u, said, False)
        self._timing(c, c.heard)

    def activity(self, a) -> None:
        c = self.calls.get(a.call_id)
        if c is None or a.speaker not in SPEAKERS:
            return
        c.spoke = True
        self._reached(c, a.speaker, float(a.start if a.end is None else a.end))
        if a.end is None:
            c.open[a.speaker] = float(a.start)
            if a.speaker == AGENT:
                self._turn(c, float(a.start), float(a.start))
        else:
            c.open.pop(a.speaker, None)
            c.partial.pop(a.speaker, None)  # the segment is over (its final, if any, came)
            self._speech(c, a.speaker, float(a.start), float(a.end))
        self._timing(c, c.heard)

    def progress(self, call_id: str, speaker: str, heard_until: float) -> None:
        """Recognition has processed ``speaker``'s audio up to ``heard_until`` (call time
        line): every final result for speech before it has been delivered, except that
        of a segment still open (see ``activity``)."""
        c = self.calls.get(call_id)
        if c is not None and speaker in SPEAKERS:
            self._reached(c, speaker, float(heard_until))

    def gap(self, call_id: str, speaker: str, start: float, end: float, reason: str) -> None:
        """Audio of ``speaker`` from ``start`` to ``end`` was not recognised (shed under
        load, or lost): what should have been said then cannot be checked."""
        c = self.calls.get(call_id)
        if c is not None and speaker in SPEAKERS and end > start:
            c.gaps[speaker].append((float(start), float(end), reason))

    @staticmethod
    def _reached(c: LiveCall, speaker: str, t: float) -> None:
        if t > c.heard_until[speaker]:
            c.heard_until[speaker] = t

    def tick(self, now: float) -> None:
        for c in list(self.calls.values()):
            wall = c.t(now)
            if wall < 0:
                continue
            with about(c.call_id):
                self._deadlines(c, wall)
                t = c.heard  # dynamics: what both parties' audio has shown
                self._timing(c, t)
                self._customer_holds_floor(c, t)
                for rs in c.rules:
                    rs.clock(c, t)

    def manual_tick(self, call_id: str, item_id: str, done: bool, now: float) -> bool:
        """The agent ticked (or unticked) an item by hand on the console."""
        c = self.calls.get(call_id)
        item = c.items.get(item_id) if c else None
        if c is None or item is None:
            return False
        if done and item.done:
            return True  # already ticked: the first time it was done stands
        item.done = done
        item.at = round_time(c.t(now)) if done else None
        item.by = "agent" if done else None
        item.phrase = None
        for rs in c.rules:
            rs.items_changed(c)
        return True

    # ------------------------------------------------------------ phrases for grammars
    def spotting_phrases(
        self, script: Any, language: str | None = None, speaker: str | None = None
    ) -> list[str]:
        """Every phrase this call's coaching listens for: the checklist's (in ``language``)
        and the rule set's (rules with ``spot: false`` left out). For a phrase-spotting
        grammar: RecognitionMode.spotting(engine.spotting_phrases(script, lang)).

        ``script``: the filled script dict (phrases with values filled in), a
        ivr.scripts.model.Script (phrases with {variables} are left out), or None.
        """
        out: list[str] = []
        if isinstance(script, dict) or script is None:
            s = script or {}
            language = language or s.get("language") or self.default_language
            project, direction = s.get("project") or "", s.get("direction") or ""
            for it in s.get("checklist") or [] if speaker != CUSTOMER else []:
                out += list((it.get("phrases") or {}).get(language) or [])
        else:  # a Script dataclass
            language = language or script.language or self.default_language
            project = script.project
            direction = str(getattr(script.direction, "value", script.direction))
            for it in script.checklist if speaker != CUSTOMER else ():
                out += [p for p in it.phrases.get(language, ()) if "{" not in p]
        ruleset = self._ruleset(project, language or self.default_language)
        for r in ruleset.rules:
            if r.spot and r.type in TYPES and (not direction or r.applies_to(direction)):
                out += rule_phrases(r, speaker)
        seen: dict[str, str] = {}
        for p in out:
            key = phrase_key(p)
            if key and key not in seen:
                seen[key] = p
        return list(seen.values())

    # ------------------------------------------------------------ internals
    def _ruleset(self, project: str, language: str) -> RuleSet:
        try:
            return self.ruleset_for(project, language)
        except Exception:
            log.exception("coaching: no rule set for %s/%s", project, language)
            return empty_ruleset(language)

    # ---- the checklist's deadlines (rules judge their own: RuleType.deadline)
    def _deadlines(self, c: LiveCall, wall: float) -> None:
        for item in c.items.values():
            if item.done or item.within is None:
                continue
            rid = CHECKLIST_RULE_PREFIX + item.id
            if not c.judge(item.within, wall, item, rid):
                continue
            p = c.ruleset.item_prompt(item.id)
            values = {"label": item.label, "within": item.within, "item": item.id}
            rule = Rule(rid, CHECKLIST_KIND, p.text, p.severity, p.reason)
            c.fire(
                rule,
                max(item.within, c.heard_until[AGENT]),
                values=values,
                item_id=item.id,
                evidence=f"not said within {show_number(item.within)} s",
            )
        for rs in c.rules:
            rs.deadline(c, wall)

    def _unhearable(self, c: LiveCall, hears: Hears) -> None:
        """At the start: what no phrase the recognition can hear could ever satisfy."""
        for item in c.items.values():
            if item.phrases and none_heard(hears, item.phrases.texts, AGENT):
                c.cant(item, f"{UNHEARABLE} ({', '.join(item.phrases.texts)})")
        for rs in c.rules:
            reason = rs.unhearable(hears)
            if reason:
                c.cant(rs, reason)

    # ---- speech timing, which the dynamics rules read
    def _timing(self, c: LiveCall, t: float) -> None:
        """Who spoke when changed (or the clock moved): forget old speech, tell the rules."""
        for spans in c.spans.values():
            while spans and spans[0].end < t - SPAN_MEMORY:
                spans.popleft()
        for rs in c.rules:
            rs.speech(c, t)

    def _speech(self, c: LiveCall, speaker: str, start: float, end: float) -> None:
        """A stretch of speech (a finished VAD segment or a final utterance)."""
        c.spans[speaker].append(Span(start, end))
        c.last_speech_end = max(c.last_speech_end, end)
        if speaker == AGENT:
            self._turn(c, start, end)
        elif end - start >= c.backchannel:
            self._customer_turn(c, end)

    @staticmethod
    def _customer_turn(c: LiveCall, end: float) -> None:
        """The customer spoke (more than a backchannel): the agent's turn is over."""
        if c.turn_start is not None and end > c.turn_start:
            c.turn_start = c.turn_last = None

    def _customer_holds_floor(self, c: LiveCall, t: float) -> None:
        """The customer has been talking longer than a backchannel: the agent's turn is
        over even before their sentence ends."""
        started = c.open.get(CUSTOMER)
        if started is not None and t - started >= c.backchannel:
            self._customer_turn(c, t)

    def _turn(self, c: LiveCall, start: float, end: float) -> None:
        """The agent spoke from start to end: extend their turn, or begin a new one."""
        if c.turn_start is None or c.turn_last is None or start - c.turn_last > c.max_pause:
            c.turn_start = start
            c.turn_last = end
        else:
            c.turn_last = max(c.turn_last, end)
        self._customer_holds_floor(c, end)
        for rs in c.rules:
            rs.turn(c, end)
