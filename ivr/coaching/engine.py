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
from typing import Any, Callable, Iterable

from .matcher import Hit, PhraseSet, normalize, phrase_key, prepare, syllables
from .model import (AGENT, CHECKLIST_RULE_PREFIX, CRITICAL, CUSTOMER, CUSTOMER_PHRASE, DEAD_AIR,
                    FORBIDDEN_PHRASE, MONOLOGUE, REQUIRED_PHRASE, SPEAKERS, SPEAKING_RATE,
                    TALK_OVER, CallCoaching, CantCheck, Prompt, Rule, RuleSet, Tick,
                    empty_ruleset)
from .score import CANT_CHECK, adherence, item_status

log = logging.getLogger(__name__)

RulesetFor = Callable[[str, str], RuleSet]
Hears = Callable[[str, str], bool]          # (speaker, phrase) -> can recognition hear it

UNHEARABLE = "the speech model cannot hear its phrases"
BEHIND = "speech recognition was behind at the deadline"
NO_AUDIO = "no audio of the agent reached speech recognition"


class _SafeDict(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fmt(template: str, values: dict[str, Any]) -> str:
    try:
        return string.Formatter().vformat(template, (), _SafeDict(
            {k: _show(v) for k, v in values.items()}))
    except (ValueError, IndexError, KeyError):
        return template


def _show(v: Any) -> Any:
    if isinstance(v, float):
        return int(v) if v == int(v) else round(v, 1)
    return v


def _r(t: float) -> float:
    return round(float(t), 3)


@dataclass
class _Item:
    id: str
    label: str
    weight: float
    within: float | None
    phrases: PhraseSet
    done: bool = False
    at: float | None = None
    by: str | None = None
    phrase: str | None = None
    cant_check: str | None = None          # why speech cannot judge it (None: it can)

    def to_dict(self) -> dict[str, Any]:
        status = item_status(self.done, self.at, self.within, self.cant_check)
        return {"id": self.id, "label": self.label, "weight": self.weight,
                "within": self.within, "done": self.done,
                "at": _r(self.at) if self.at is not None else None, "by": self.by,
                "phrase": self.phrase, "in_time": status == "done" if self.done else False,
                "status": status, "missed": status == "missed",
                "cant_check": self.cant_check if status == CANT_CHECK else None}


@dataclass
class _RuleState:
    rule: Rule
    phrases: PhraseSet = field(default_factory=lambda: PhraseSet(()))
    after: PhraseSet | None = None
    closing_agent: PhraseSet | None = None
    closing_customer: PhraseSet | None = None
    extra: dict[str, dict[str, str]] = field(default_factory=dict)  # phrase key -> values
    satisfied_at: float | None = None
    phrase: str | None = None
    via_item: bool = False                 # satisfied because its checklist item was done
    triggered_at: float | None = None
    trigger: str = ""
    closing_at: float | None = None
    cant_check: str | None = None          # why speech cannot judge it (None: it can)


@dataclass
class _Span:
    start: float
    end: float
    judged: bool = False         # (agent spans) checked for talk-over for good

SPAN_MEMORY = 60.0               # seconds of past speech kept for talk-over
SETTLE = 5.0                     # an agent span is judged for good this long after its end


@dataclass
class _Live:
    call_id: str
    answered_at: float
    direction: str
    language: str
    project: str
    script_id: str | None
    ruleset: RuleSet
    items: dict[str, _Item]
    rules: list[_RuleState]
    fired: dict[str, float] = field(default_factory=dict)       # rule id -> last fired at
    prompts: list[Prompt] = field(default_factory=list)
    # How far recognition has got through each party's audio (call time line, s): a
    # deadline is judged on this clock, never on the wall clock alone.
    heard_until: dict[str, float] = field(default_factory=lambda: {AGENT: 0.0, CUSTOMER: 0.0})
    gaps: dict[str, list] = field(default_factory=lambda: {AGENT: [], CUSTOMER: []})
    stable: dict[str, set] = field(default_factory=lambda: {AGENT: set(), CUSTOMER: set()})
    transcript: list[dict[str, Any]] = field(default_factory=list)
    # who is talking
    open: dict[str, float] = field(default_factory=dict)        # speaker -> segment start
    partial: dict[str, float] = field(default_factory=dict)     # speaker -> partial's start
    spans: dict[str, deque] = field(default_factory=lambda: {AGENT: deque(maxlen=200),
                                                             CUSTOMER: deque(maxlen=200)})
    last_speech_end: float = 0.0
    spoke: bool = False
    dead_air_judged: float | None = None                        # last_speech_end judged
    talk_over_judged: set = field(default_factory=set)          # agent span starts that fired
    turn_start: float | None = None                             # agent's monologue turn
    turn_last: float | None = None                              # agent's last speech in it
    rate_window: deque = field(default_factory=lambda: deque(maxlen=500))

    def t(self, now: float) -> float:
        return now - self.answered_at

    @property
    def heard(self) -> float:
        """Audio time both parties' recognition has reached."""
        return min(self.heard_until.values())


class CoachingEngine:
    """Coaching for every live call. See the module docstring.

    ruleset_for(project, language) -> RuleSet   (e.g. RuleLibrary.ruleset_for)
    on_prompt(Prompt), on_tick(Tick): called synchronously as things happen;
      an exception in them is logged, never raised into the engine's caller.
    """

    def __init__(self, ruleset_for: RulesetFor, on_prompt: Callable[[Prompt], None],
                 on_tick: Callable[[Tick], None], *, default_language: str = "en",
                 final_grace: float = 2.0, max_lag: float = 3.0,
                 critical_confidence: float = 0.9,
                 on_cant_check: Callable[[CantCheck], None] | None = None) -> None:
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
        self.calls: dict[str, _Live] = {}

    # ------------------------------------------------------------ calls
    def start_call(self, call_id: str, script: dict | None, direction: Any, answered_at: float,
                   *, language: str | None = None, project: str | None = None,
                   hears: Hears | None = None) -> None:
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
            items[it["id"]] = _Item(it["id"], it.get("label", it["id"]),
                                    float(it.get("weight", 1.0) or 0.0),
                                    float(within) if within is not None else None,
                                    PhraseSet(phrases))
        rules = [self._compile(r) for r in ruleset.rules if r.applies_to(direction)]
        c = self.calls[call_id] = _Live(call_id, float(answered_at), direction, language,
                                        project, (script or {}).get("id"), ruleset, items, rules)
        if hears is not None:
            self._unhearable(c, hears)

    def end_call(self, call_id: str, now: float) -> CallCoaching | None:
        """The call ended: its coaching record (None for a call never started)."""
        c = self.calls.pop(call_id, None)
        if c is None:
            return None
        checklist = [i.to_dict() for i in c.items.values()]
        rules = []
        for rs in c.rules:
            r = rs.rule
            if r.type != REQUIRED_PHRASE:
                continue
            if rs.satisfied_at is not None:
                status = "done"
            elif rs.cant_check:
                status = CANT_CHECK
            elif r.param("after") and rs.triggered_at is None:
                status = "not_triggered"
            else:
                status = "missed"
            rules.append({"id": r.id, "type": r.type, "status": status,
                          "at": _r(rs.satisfied_at) if rs.satisfied_at is not None else None,
                          "phrase": rs.phrase, "item": r.param("item"),
                          "cant_check": rs.cant_check if status == CANT_CHECK else None})
        transcript = sorted(c.transcript, key=lambda e: (e["start"], e["end"]))
        return CallCoaching(
            call_id=c.call_id, project=c.project, language=c.language, direction=c.direction,
            script_id=c.script_id, answered_at=c.answered_at,
            duration=_r(max(0.0, c.t(now))), checklist=checklist,
            adherence=adherence(checklist), rules=rules,
            prompts=[p.to_dict() for p in c.prompts], transcript=transcript,
            cant_check=self._cant_checks(c))

    def restore(self, call_id: str, saved: dict[str, Any], now: float) -> None:
        """After a service restart: the coaching a call had so far (a checkpoint from
        ``live``), so nothing already prompted fires again and nothing ticked is lost.
        The audio between the checkpoint and now was never heard: a gap."""
        c = self.calls.get(call_id)
        if c is None:
            return
        for entry in (saved.get("checklist") or {}).values() if isinstance(
                saved.get("checklist"), dict) else saved.get("checklist") or []:
            item = c.items.get(entry.get("id"))
            if item is not None and entry.get("done"):
                item.done, item.at, item.by, item.phrase = (True, entry.get("at"),
                                                            entry.get("by"), entry.get("phrase"))
        for p in saved.get("prompts") or []:
            try:
                prompt = Prompt(**p)
            except TypeError:
                continue
            c.prompts.append(prompt)
            c.fired[prompt.rule_id] = max(c.fired.get(prompt.rule_id, prompt.at), prompt.at)
        c.transcript = list(saved.get("transcript") or []) + c.transcript
        for rs in c.rules:
            item = c.items.get(rs.rule.param("item") or "")
            if item is not None and item.done and rs.rule.type == REQUIRED_PHRASE \
                    and not rs.rule.param("after"):
                rs.satisfied_at, rs.phrase, rs.via_item = item.at, item.phrase, True
        # What each party's recognition had reached is not saved; the end of their last
        # recognised words stands for it (a deadline in between is "can't check").
        for speaker in SPEAKERS:
            since = max((float(e.get("end", 0.0)) for e in c.transcript
                         if e.get("speaker") == speaker), default=0.0)
            self.gap(call_id, speaker, since, c.t(now), "the service was restarted")

    def live(self, call_id: str) -> dict[str, Any] | None:
        """The call's coaching so far (e.g. for a console that reconnects)."""
        c = self.calls.get(call_id)
        if c is None:
            return None
        checklist = [i.to_dict() for i in c.items.values()]
        return {"call_id": call_id, "checklist": checklist, "adherence": adherence(checklist),
                "prompts": [p.to_dict() for p in c.prompts],
                "transcript": sorted(c.transcript, key=lambda e: (e["start"], e["end"])),
                "cant_check": self._cant_checks(c)}

    @staticmethod
    def _cant_checks(c: _Live) -> list[dict[str, str]]:
        """Items and rules speech cannot judge on this call, with why."""
        out = [{"id": i.id, "kind": "item", "reason": i.cant_check}
               for i in c.items.values() if i.cant_check
               and item_status(i.done, i.at, i.within, i.cant_check) == CANT_CHECK]
        out += [{"id": rs.rule.id, "kind": "rule", "reason": rs.cant_check}
                for rs in c.rules if rs.cant_check and rs.satisfied_at is None]
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
                    self._customer_cards(c, u, prepare(u), partial=True)
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
            c.transcript.append({"speaker": u.speaker, "text": shown, "start": _r(u.start),
                                 "end": _r(u.end), "phrases": list(u.phrases),
                                 "confidence": getattr(u, "confidence", None),
                                 "source": source})
        self._speech(c, u.speaker, float(u.start), float(u.end))
        if u.speaker == AGENT:
            self._agent_said(c, u)
        else:
            self._customer_said(c, u)
        self._talk_over(c, c.heard)

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
            self._talk_over(c, c.heard)
        else:
            c.open.pop(a.speaker, None)
            c.partial.pop(a.speaker, None)     # the segment is over (its final, if any, came)
            self._speech(c, a.speaker, float(a.start), float(a.end))
            self._talk_over(c, c.heard)

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
    def _reached(c: _Live, speaker: str, t: float) -> None:
        if t > c.heard_until[speaker]:
            c.heard_until[speaker] = t

    def tick(self, now: float) -> None:
        for c in list(self.calls.values()):
            wall = c.t(now)
            if wall < 0:
                continue
            self._deadlines(c, wall)
            t = c.heard                    # dynamics: what both parties' audio has shown
            self._talk_over(c, t)
            for rs in c.rules:
                if rs.rule.type == DEAD_AIR:
                    self._dead_air(c, rs, t)
                elif rs.rule.type == MONOLOGUE:
                    self._monologue(c, rs, t)

    def manual_tick(self, call_id: str, item_id: str, done: bool, now: float) -> bool:
        """The agent ticked (or unticked) an item by hand on the console."""
        c = self.calls.get(call_id)
        item = c.items.get(item_id) if c else None
        if item is None:
            return False
        if done and item.done:
            return True             # already ticked: the first time it was done stands
        item.done = done
        item.at = _r(c.t(now)) if done else None
        item.by = "agent" if done else None
        item.phrase = None
        for rs in c.rules:
            if rs.rule.type != REQUIRED_PHRASE or rs.rule.param("item") != item_id \
                    or rs.rule.param("after"):
                continue
            if done and rs.satisfied_at is None:
                rs.satisfied_at, rs.phrase, rs.via_item = item.at, None, True
            elif not done and rs.via_item:
                rs.satisfied_at, rs.phrase, rs.via_item = None, None, False
        return True

    # ------------------------------------------------------------ phrases for grammars
    def spotting_phrases(self, script: Any, language: str | None = None,
                         speaker: str | None = None) -> list[str]:
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
        else:                                   # a Script dataclass
            language = language or script.language or self.default_language
            project = script.project
            direction = str(getattr(script.direction, "value", script.direction))
            for it in script.checklist if speaker != CUSTOMER else ():
                out += [p for p in it.phrases.get(language, ()) if "{" not in p]
        ruleset = self._ruleset(project, language)
        for r in ruleset.rules:
            if r.spot and (not direction or r.applies_to(direction)):
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

    @staticmethod
    def _compile(r: Rule) -> _RuleState:
        rs = _RuleState(r)
        if r.type == REQUIRED_PHRASE:
            rs.phrases = PhraseSet(r.param("phrases", ()))
            if r.param("after"):
                rs.after = PhraseSet(r.param("after"))
            closing = r.param("closing")
            if closing:
                rs.closing_agent = PhraseSet(closing.get("agent", ()))
                rs.closing_customer = PhraseSet(closing.get("customer", ()))
        elif r.type == FORBIDDEN_PHRASE:
            phrases: list[str] = list(r.param("phrases", ()))
            for word, preferred in (r.param("replace") or {}).items():
                phrases.append(word)
                rs.extra[phrase_key(word)] = {"preferred": preferred}
            for name in r.param("names", ()):
                for pat in r.param("patterns") or ("{name}",):
                    p = pat.replace("{name}", name)
                    phrases.append(p)
                    rs.extra.setdefault(phrase_key(p), {})["name"] = name
            rs.phrases = PhraseSet(phrases)
        elif r.type == CUSTOMER_PHRASE:
            rs.phrases = PhraseSet(r.param("phrases", ()))
        return rs

    def _fire(self, c: _Live, rule: Rule, at: float, *, text: str | None = None,
              severity: str | None = None, reason: str | None = None, rule_id: str | None = None,
              values: dict[str, Any] | None = None, evidence: str = "",
              phrase: str | None = None, item_id: str | None = None,
              repeat_after: float | None = None) -> bool:
        rid = rule_id or rule.id
        repeat = repeat_after if rule_id else rule.repeat_after
        last = c.fired.get(rid)
        if last is not None and (repeat is None or at - last < repeat):
            return False
        c.fired[rid] = at
        values = values or {}
        prompt = Prompt(c.call_id, rid, rule.type, _fmt(text or rule.text, values),
                        severity or rule.severity, _fmt(rule.reason if reason is None else reason,
                                                        values),
                        _r(at), evidence, phrase, item_id)
        c.prompts.append(prompt)
        try:
            self.on_prompt(prompt)
        except Exception:
            log.exception("coaching: on_prompt failed for %s", rid)
        return True

    def _tick_item(self, c: _Live, item: _Item, hit: Hit) -> None:
        item.done, item.at, item.by, item.phrase = True, _r(hit.at), "speech", hit.phrase
        try:
            self.on_tick(Tick(c.call_id, item.id, item.at, hit.phrase, "speech"))
        except Exception:
            log.exception("coaching: on_tick failed for %s", item.id)

    # ---- speech timing
    @staticmethod
    def _mono(c: _Live, name: str, default: float) -> float:
        for rs in c.rules:
            if rs.rule.type == MONOLOGUE:
                return rs.rule.param(name, default)
        return default

    def _speech(self, c: _Live, speaker: str, start: float, end: float) -> None:
        """A stretch of speech (a finished VAD segment or a final utterance)."""
        c.spans[speaker].append(_Span(start, end))
        c.last_speech_end = max(c.last_speech_end, end)
        if speaker == AGENT:
            self._turn(c, start, end)
        elif end - start >= self._mono(c, "backchannel", 1.5):
            self._customer_turn(c, end)

    @staticmethod
    def _customer_turn(c: _Live, end: float) -> None:
        """The customer spoke (more than a backchannel): the agent's turn is over."""
        if c.turn_start is not None and end > c.turn_start:
            c.turn_start = c.turn_last = None

    def _turn(self, c: _Live, start: float, end: float) -> None:
        """The agent spoke from start to end: extend their turn, or begin a new one."""
        if c.turn_start is None or c.turn_last is None or \
                start - c.turn_last > self._mono(c, "max_pause", 2.0):
            c.turn_start = start
            c.turn_last = end
        else:
            c.turn_last = max(c.turn_last, end)
        for rs in c.rules:
            if rs.rule.type == MONOLOGUE:
                self._monologue(c, rs, end)

    def _agent_busy(self, c: _Live, deadline: float, t: float) -> bool:
        """The agent is mid-sentence since before the deadline: wait for its final."""
        if t >= deadline + self.final_grace:
            return False
        started = [s for s in (c.open.get(AGENT), c.partial.get(AGENT)) if s is not None]
        return any(s <= deadline for s in started)

    # ---- what the agent said
    def _agent_said(self, c: _Live, u) -> None:
        said = prepare(u)
        if u.end > u.start and u.text:
            c.rate_window.append((float(u.start), float(u.end), len(normalize(u.text)),
                                  syllables(u.text)))
        for item in c.items.values():
            if not item.done and item.phrases:
                hits = item.phrases.in_said(said)
                if hits:
                    self._tick_item(c, item, hits[0])
        for rs in c.rules:
            r = rs.rule
            if r.type == REQUIRED_PHRASE:
                self._required_heard(c, rs, said)
                if rs.closing_agent and rs.closing_at is None:
                    hits = rs.closing_agent.in_said(said)
                    if hits:
                        rs.closing_at = hits[0].at
            elif r.type == FORBIDDEN_PHRASE:
                hits = rs.phrases.in_said(said)
                if hits:
                    h = hits[0]
                    values = {"phrase": h.phrase, "preferred": "", "name": "",
                              **rs.extra.get(phrase_key(h.phrase), {})}
                    self._fire(c, r, h.at, values=values, evidence=u.text, phrase=h.phrase)
            elif r.type == SPEAKING_RATE:
                self._rate(c, rs, u)
        # an item ticked (by its own phrases) satisfies the rules that name it
        for rs in c.rules:
            item = c.items.get(rs.rule.param("item") or "")
            if item is not None and item.done and rs.satisfied_at is None \
                    and rs.rule.type == REQUIRED_PHRASE and not rs.rule.param("after"):
                rs.satisfied_at, rs.phrase, rs.via_item = item.at, item.phrase, True

    def _required_heard(self, c: _Live, rs: _RuleState, said) -> None:
        if rs.satisfied_at is not None:
            return
        if rs.after is not None and rs.triggered_at is None:
            return                      # an answer to nothing yet
        for h in rs.phrases.in_said(said):
            if rs.after is not None and h.at < rs.triggered_at:
                continue                # said before the customer's trigger
            rs.satisfied_at, rs.phrase = h.at, h.phrase
            item = c.items.get(rs.rule.param("item") or "")
            if item is not None and not item.done:
                self._tick_item(c, item, h)     # the rule ticks its checklist item
            return

    # ---- what the customer said
    def _customer_cards(self, c: _Live, u, said, partial: bool = False) -> None:
        seen: set[str] = set()
        for rs in c.rules:
            r = rs.rule
            if r.type != CUSTOMER_PHRASE:
                continue
            hits = rs.phrases.in_said(said)
            if not hits:
                continue
            h = hits[0]
            key = f"{r.id}\0{h.phrase}"
            seen.add(key)
            if partial and (r.severity == CRITICAL or key not in c.stable[CUSTOMER]):
                continue
            if r.severity == CRITICAL and h.confidence is not None \
                    and h.confidence < self.critical_confidence:
                continue
            self._fire(c, r, h.at, values={"phrase": h.phrase,
                                           "department": r.param("department", "")},
                       evidence=u.text, phrase=h.phrase)
        if partial:
            c.stable[CUSTOMER] = seen

    def _customer_said(self, c: _Live, u) -> None:
        said = prepare(u)
        self._customer_cards(c, u, said)
        for rs in c.rules:
            r = rs.rule
            if r.type == REQUIRED_PHRASE:
                if rs.after is not None and rs.triggered_at is None:
                    hits = rs.after.in_said(said)
                    if hits:
                        rs.triggered_at, rs.trigger = hits[0].at, u.text
                if rs.closing_customer and rs.closing_at is None:
                    hits = rs.closing_customer.in_said(said)
                    if hits:
                        rs.closing_at = hits[0].at

    # ---- deadlines
    def _judge(self, c: _Live, deadline: float, wall: float, obj: _Item | _RuleState,
               rule_id: str) -> bool:
        """Whether a deadline can be judged now, on the agent's audio clock.

        Judged once recognition has processed the agent's audio past the deadline
        (and the final of a sentence begun before it, up to ``final_grace``). If it
        has not got there ``max_lag`` seconds after the deadline, or the agent's
        audio before the deadline was not all recognised, the item or rule is
        "can't check": no prompt (a late or guessed "missed" is worse than none)."""
        if wall < deadline or obj.cant_check or rule_id in c.fired:
            return False
        lost = [g for g in c.gaps[AGENT] if g[0] < deadline]
        if lost:
            self._cant(c, obj, lost[0][2])
            return False
        heard = c.heard_until[AGENT]
        if heard >= deadline and not self._agent_busy(c, deadline, heard):
            return True
        if wall >= deadline + self.max_lag:
            self._cant(c, obj, BEHIND if heard > 0 or c.open.get(AGENT) is not None
                       or c.spans[AGENT] else NO_AUDIO)
        return False

    def _deadlines(self, c: _Live, wall: float) -> None:
        for item in c.items.values():
            if item.done or item.within is None:
                continue
            rid = CHECKLIST_RULE_PREFIX + item.id
            if not self._judge(c, item.within, wall, item, rid):
                continue
            p = c.ruleset.item_prompt(item.id)
            values = {"label": item.label, "within": item.within, "item": item.id}
            rule = Rule(rid, REQUIRED_PHRASE, p.text, p.severity, p.reason)
            self._fire(c, rule, max(item.within, c.heard_until[AGENT]), rule_id=rid,
                       values=values, item_id=item.id,
                       evidence=f"not said within {_show(item.within)} s")
        for rs in c.rules:
            r = rs.rule
            if r.type != REQUIRED_PHRASE or rs.satisfied_at is not None:
                continue
            item_id = r.param("item")
            if item_id and item_id in c.items and c.items[item_id].done:
                continue
            deadline = None
            within = r.param("within")
            if rs.after is not None:
                if rs.triggered_at is not None:
                    deadline = rs.triggered_at + within
            elif within is not None:
                deadline = within
            if rs.closing_at is not None:
                closing = rs.closing_at + r.param("closing", {}).get("wait", 5.0)
                deadline = closing if deadline is None else min(deadline, closing)
            if deadline is None or not self._judge(c, deadline, wall, rs, r.id):
                continue
            phrases = r.param("phrases", ())
            if rs.after is not None:
                evidence = rs.trigger
            elif rs.closing_at is not None and (within is None or deadline < within):
                evidence = "the call is closing"
            else:
                evidence = f"not said within {_show(within)} s"
            self._fire(c, r, max(deadline, c.heard_until[AGENT]),
                       values={"phrase": phrases[0] if phrases else "", "within": within},
                       evidence=evidence, item_id=item_id if item_id in c.items else None)

    def _cant(self, c: _Live, obj: _Item | _RuleState, reason: str) -> None:
        if obj.cant_check:
            return
        obj.cant_check = reason
        if isinstance(obj, _Item):
            event = CantCheck(c.call_id, obj.id, "item", reason)
        else:
            event = CantCheck(c.call_id, obj.rule.id, "rule", reason)
        if self.on_cant_check is not None:
            try:
                self.on_cant_check(event)
            except Exception:
                log.exception("coaching: on_cant_check failed for %s", event.id)

    def _unhearable(self, c: _Live, hears: Hears) -> None:
        """At the start: what no phrase the recognition can hear could ever satisfy."""
        def none(phrases, speaker: str) -> bool:
            return not any(hears(speaker, p) for p in phrases)

        for item in c.items.values():
            if item.phrases and none(item.phrases.texts, AGENT):
                self._cant(c, item, f"{UNHEARABLE} ({', '.join(item.phrases.texts)})")
        for rs in c.rules:
            r = rs.rule
            if r.type in (REQUIRED_PHRASE, FORBIDDEN_PHRASE) and rs.phrases \
                    and none(rs.phrases.texts, AGENT):
                self._cant(c, rs, f"{UNHEARABLE} ({', '.join(rs.phrases.texts)})")
            elif r.type == REQUIRED_PHRASE and rs.after is not None \
                    and none(rs.after.texts, CUSTOMER):
                self._cant(c, rs, f"{UNHEARABLE}: the customer's {', '.join(rs.after.texts)}")
            elif r.type == REQUIRED_PHRASE and rs.after is None and r.param("within") is None \
                    and (rs.closing_agent or rs.closing_customer) \
                    and none(rs.closing_agent.texts if rs.closing_agent else (), AGENT) \
                    and none(rs.closing_customer.texts if rs.closing_customer else (), CUSTOMER):
                # Timed only from the call's closing, which can never be heard.
                closing = [*(rs.closing_agent.texts if rs.closing_agent else ()),
                           *(rs.closing_customer.texts if rs.closing_customer else ())]
                self._cant(c, rs, f"{UNHEARABLE}: the closing ({', '.join(closing)})")
            elif r.type == CUSTOMER_PHRASE and none(rs.phrases.texts, CUSTOMER):
                self._cant(c, rs, f"{UNHEARABLE} ({', '.join(rs.phrases.texts)})")

    # ---- dynamics
    def _talk_over(self, c: _Live, t: float) -> None:
        """Did the agent start talking while the customer was talking, for long enough?"""
        rules = [rs for rs in c.rules if rs.rule.type == TALK_OVER]
        if not rules:
            return
        for spans in c.spans.values():             # forget old speech
            while spans and spans[0].end < t - SPAN_MEMORY:
                spans.popleft()
        agent: list[tuple[float, float | None, _Span | None]] = \
            [(s.start, s.end, s) for s in c.spans[AGENT] if not s.judged]
        if AGENT in c.open:
            agent.append((c.open[AGENT], None, None))
        if not agent:
            return
        customer = [(s.start, s.end) for s in c.spans[CUSTOMER]]
        if CUSTOMER in c.open:
            customer.append((c.open[CUSTOMER], None))
        for rs in rules:
            need = rs.rule.param("overlap", 1.0)
            for a_start, a_end, span in agent:
                key = round(a_start, 2)
                if key in c.talk_over_judged:
                    if span is not None:
                        span.judged = True
                    continue
                a_stop = t if a_end is None else min(a_end, t)
                for c_start, c_end in customer:
                    c_stop = t if c_end is None else min(c_end, t)
                    # the agent started while the customer was already talking
                    if not (c_start < a_start < c_stop):
                        continue
                    overlap = min(a_stop, c_stop) - a_start
                    if overlap > need:
                        c.talk_over_judged.add(key)
                        self._fire(c, rs.rule, a_start + need,
                                   values={"overlap": round(overlap, 1)},
                                   evidence=f"agent started at {a_start:.1f} s while the "
                                            f"customer was speaking ({overlap:.1f} s over)")
                        break
                if span is not None and a_end is not None and a_end + SETTLE <= t and \
                        not any(c_end is None for _, c_end in customer):
                    span.judged = True    # over, and late finals had time to come: done

    def _dead_air(self, c: _Live, rs: _RuleState, t: float) -> None:
        if not c.spoke or c.open or c.partial:
            return
        seconds = rs.rule.param("seconds", 8.0)
        if t - c.last_speech_end <= seconds or c.dead_air_judged == c.last_speech_end:
            return
        if self._fire(c, rs.rule, c.last_speech_end + seconds, values={"seconds": seconds},
                      evidence=f"silence since {c.last_speech_end:.1f} s"):
            c.dead_air_judged = c.last_speech_end

    def _monologue(self, c: _Live, rs: _RuleState, t: float) -> None:
        started = c.open.get(CUSTOMER)
        if started is not None and t - started >= rs.rule.param("backchannel", 1.5):
            self._customer_turn(c, t)
        if c.turn_start is None:
            return
        talking_now = AGENT in c.open or AGENT in c.partial
        end = max(t, c.turn_last or t) if talking_now else (c.turn_last or c.turn_start)
        seconds = rs.rule.param("seconds", 45.0)
        if end - c.turn_start > seconds:
            self._fire(c, rs.rule, c.turn_start + seconds, values={"seconds": seconds},
                       evidence=f"agent talking since {c.turn_start:.1f} s without the "
                                f"customer speaking")

    def _rate(self, c: _Live, rs: _RuleState, u) -> None:
        unit = rs.rule.param("unit", "words")
        window = rs.rule.param("window", 30.0)
        col = 3 if unit == "syllables" else 2
        while c.rate_window and c.rate_window[0][1] < float(u.end) - max(window, 120.0):
            c.rate_window.popleft()
        recent = [w for w in c.rate_window if w[1] > float(u.end) - window]
        total = sum(w[col] for w in recent)
        talk = sum(w[1] - w[0] for w in recent)
        if total < rs.rule.param("min_count", 12) or talk <= 0:
            return
        rate = total / talk * 60.0
        limit = rs.rule.param("max")
        if limit is not None and rate > limit:
            self._fire(c, rs.rule, float(u.end),
                       values={"rate": round(rate), "max": limit, "unit": unit},
                       evidence=f"{round(rate)} {unit}/min over the last {total} {unit}")


def rule_phrases(r: Rule, speaker: str | None = None) -> list[str]:
    """Every phrase a rule listens for in ``speaker``'s speech (either side if None)."""
    agent: list[str] = []
    customer: list[str] = []
    if r.type in (REQUIRED_PHRASE, FORBIDDEN_PHRASE):
        agent += list(r.param("phrases", ()))
    if r.type == CUSTOMER_PHRASE:
        customer += list(r.param("phrases", ()))
    if r.type == REQUIRED_PHRASE:
        customer += list(r.param("after", ()) or ())
        closing = r.param("closing") or {}
        agent += list(closing.get("agent", ()))
        customer += list(closing.get("customer", ()))
    if r.type == FORBIDDEN_PHRASE:
        agent += list((r.param("replace") or {}).keys())
        for name in r.param("names", ()):
            agent += [p.replace("{name}", name) for p in (r.param("patterns") or ("{name}",))]
    if speaker == AGENT:
        return agent
    if speaker == CUSTOMER:
        return customer
    return agent + customer


def phrases_of(rules: Iterable[Rule]) -> list[str]:
    out: list[str] = []
    for r in rules:
        out += rule_phrases(r)
    return out
