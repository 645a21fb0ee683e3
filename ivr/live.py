"""Live coaching of calls: tap audio -> speech -> coaching rules -> prompts.

This stage connects, per call: the speech stage's utterances, voice activity and
progress to the coaching engine; the engine's prompts, checklist ticks and
"can't check" verdicts to the agent's console (at once) and to the call's record;
the taps' health and the speech stage's capacity notices to the console. It
decides what each party's recognition listens for (``mode_for_call``). It holds
no audio and no rules itself.

What each party listens for, and why the two differ: every recognition error
should fall on the side of silence (a false prompt is worse than a missing
one). The agent's grammar is the script's and the agent rules' phrases only: a
misheard word then at worst ticks an item the agent did not say (a prompt is
missed). The customer's grammar adds the model's frequent words as garbage
(vocabulary.py): a misheard word then lands on a common word instead of
raising a card. bench/coaching_accuracy.py measures both choices.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Protocol

from .calls.events import AgentAnswered, CallEnded, CallEvent, CustomerAnswered
from .calls.model import Call, Direction
from .coaching.engine import CoachingEngine
from .coaching.matcher import phrase_key
from .coaching.model import AGENT, CUSTOMER, CallCoaching, CantCheck, Prompt, Tick
from .coaching.rules import RuleLibrary
from .logs import about
from .pop import ScriptPop
from .speech.recognizer import (
    SPOTTING,
    Heard,
    RecognitionMode,
    SpeechModel,
    Utterance,
    VoiceActivity,
)
from .speech.stage import NO_PARTIALS, NO_TRANSCRIPT, NORMAL, PAUSED, CapacityNotice
from .speech.vocabulary import frequent_words, garbage_words
from .tap.taps import TapStatus

log = logging.getLogger(__name__)

# save(call_id, checklist, score, prompts, transcript, cant_check): queued, retried, durable
Save = Callable[..., None]


class CoachingConsole(Protocol):
    """The agents' consoles, as live coaching tells them about a call (web/view.py
    keeps it per call and pushes it to the agents on the call)."""

    def transcript(self, u: Utterance, text: str) -> None:
        """A line of the call's transcript: what `u` heard, shown as `text`."""

    def prompt(self, prompt: Prompt) -> None: ...

    def cant_check(self, c: CantCheck) -> None: ...

    def tap(self, status: TapStatus, keep: bool) -> None: ...

    def capacity(self, call_id: str, level: int, notice: str, keep: bool) -> None: ...

    def coached(self, result: CallCoaching) -> None:
        """The call ended: its adherence score and checklist results."""

    def restored(self, call_id: str, live: dict[str, Any]) -> None: ...


# What an agent's console says when the speech stage changes level for every call.
AGENT_NOTICES = {
    NORMAL: "speech recognition back to normal",
    NO_TRANSCRIPT: "transcripts reduced: capacity",
    NO_PARTIALS: "prompts may come a little later: capacity",
    PAUSED: "coaching paused for new calls: capacity",
}

CUSTOMER_GARBAGE_WORDS = 1000  # bench/coaching_accuracy.py: the choice is measured there


class LiveCoaching:
    def __init__(
        self,
        pop: ScriptPop,
        rules: RuleLibrary,
        console: CoachingConsole,
        save: Save,
        mode: str = "auto",
        model: Callable[[], SpeechModel | None] = lambda: None,
        garbage_words: int = CUSTOMER_GARBAGE_WORDS,
        critical_confidence: float = 0.9,
    ):
        self.pop = pop
        self.rules = rules
        self.engine = CoachingEngine(
            rules.ruleset_for,
            self.on_prompt,
            self.on_tick,
            on_cant_check=self.on_cant_check,
            critical_confidence=critical_confidence,
        )
        self.console = console
        self.save = save
        self.mode = mode
        self.model = model
        self.garbage_words = garbage_words
        self._live: dict[str, float] = {}  # call_id -> answered at
        self._modes: dict[str, dict[str, RecognitionMode]] = {}
        self._fillers: tuple[str, ...] | None = None
        self.prompt_counts: dict[tuple[str, str], int] = {}  # (rule, severity) -> raised
        # Coaching of calls that were live when the service last stopped (checkpoints):
        # given back to the engine when the resync replays those calls' answers.
        self.restored: dict[str, dict[str, Any]] = {}
        self._checkpoints: dict[str, tuple[int, int, int]] = {}  # call -> what was saved
        self._ticker: asyncio.Task | None = None
        self._lost: set[tuple[str, str]] = set()  # (call, speaker) whose tap is retrying

    # ------------------------------------------------------------ what each party listens for
    def modes_for(self, call_id: str) -> dict[str, RecognitionMode]:
        """Each party's recognition mode for a call (decided once, at its answer)."""
        modes = self._modes.get(call_id)
        if modes is None:
            modes = self._modes[call_id] = self._decide(self.pop.script_of(call_id))
        return modes

    def mode_for_call(self, call: Call, speaker: str) -> RecognitionMode:
        return self.modes_for(call.call_id)[speaker]

    def _decide(self, script: dict | None) -> dict[str, RecognitionMode]:
        model = self.model()
        return recognition_modes(self.engine, script, self.mode, model, self._garbage(model))

    def prepare(self) -> None:
        """At start, in a thread: read the model's word frequencies once (a second or two
        the first time), not on the event loop when the first call is answered."""
        self._garbage(self.model())

    def _garbage(self, model: SpeechModel | None) -> tuple[str, ...]:
        if self._fillers is None:
            if model is None or not self.garbage_words:
                return ()
            self._fillers = garbage_words(
                frequent_words(model.path), self.garbage_words, min_chars=1, max_chars=2
            )
        return self._fillers

    def _hears(self, call_id: str) -> Callable[[str, str], bool] | None:
        model = self.model()
        return hearing(model, self.modes_for(call_id)) if model is not None else None

    # ------------------------------------------------------------ call events
    def on_call_event(self, event: CallEvent) -> None:
        call = event.call
        connected = (
            isinstance(event, AgentAnswered) and call.direction is not Direction.OUTBOUND
        ) or isinstance(event, CustomerAnswered)
        if connected and call.call_id not in self._live:
            answered = call.answered_at or event.at
            self._live[call.call_id] = answered
            self.engine.start_call(
                call.call_id,
                self.pop.script_of(call.call_id),
                call.direction.value,
                answered,
                hears=self._hears(call.call_id),
            )
            saved = self.restored.pop(call.call_id, None)
            if saved is not None:
                self.engine.restore(call.call_id, saved, time.time())
                # Nothing is heard until the taps are back: the gap runs until then.
                self._lost.update({(call.call_id, AGENT), (call.call_id, CUSTOMER)})
                live = self.engine.live(call.call_id) or {}
                self.console.restored(call.call_id, live)
                for item in live.get("checklist", ()):
                    if item["done"]:
                        for login in self.pop.owners(call.call_id):
                            self.pop.mark_item(
                                login, call.call_id, item["id"], True, by=item["by"] or "speech"
                            )
        elif isinstance(event, CallEnded) and self._live.pop(call.call_id, None) is not None:
            result = self.engine.end_call(call.call_id, event.at)
            self._modes.pop(call.call_id, None)
            self._checkpoints.pop(call.call_id, None)
            if result is None:
                return
            self.console.coached(result)
            self.save(
                call.call_id,
                result.checklist_by_id,
                result.score,
                result.prompts,
                result.transcript,
                result.cant_check,
            )
        elif isinstance(event, CallEnded):
            self._modes.pop(call.call_id, None)

    # ------------------------------------------------------------ speech in
    def on_utterance(self, u: Utterance) -> None:
        with about(u.call_id):
            self._utterance(u)

    def _utterance(self, u: Utterance) -> None:
        text = u.text
        if u.source == SPOTTING:
            # Spotting hears only its phrases: show what was spotted, not the words the
            # grammar forced the rest of the speech onto.
            text = " · ".join(u.phrases)
        if text:
            self.console.transcript(u, text)
        if u.call_id in self._live:
            self.engine.utterance(u)

    def on_activity(self, a: VoiceActivity) -> None:
        if a.call_id in self._live:
            self.engine.activity(a)

    def on_heard(self, h: Heard) -> None:
        if h.call_id in self._live:
            self.engine.progress(h.call_id, h.speaker, h.until)

    def on_gap(self, call_id: str, speaker: str, start: float, end: float, reason: str) -> None:
        if call_id in self._live:
            self.engine.gap(call_id, speaker, start, end, reason)

    def on_tap_status(self, status: TapStatus) -> None:
        self.console.tap(status, keep=status.call_id in self._live or status.state != "ended")
        key = (status.call_id, status.speaker)
        if status.state == "retrying":
            self._lost.add(key)
        elif status.state == "ok" and key in self._lost:
            # The tap came back (a drop, or its speech worker died): what that party said
            # between the last audio recognised and now was never heard. It is a gap,
            # so a deadline in it is "can't check", never a false "missed".
            self._lost.discard(key)
            c = self.engine.calls.get(status.call_id)
            if c is not None and status.speaker in c.heard_until:
                start = c.heard_until[status.speaker]
                self.engine.gap(
                    status.call_id, status.speaker, start, c.t(status.at), "tap reconnected"
                )
        elif status.state in ("ended", "failed"):
            self._lost.discard(key)

    def on_capacity(self, notice: CapacityNotice, calls: list[str] | None = None) -> None:
        """The speech stage gave something up: tell the consoles of the calls it affects
        (a change for all calls in the agent's words, not the stage's). ``calls``: the
        calls a change for all concerns (a speech worker's), default every live call."""
        if notice.call_id:
            calls = [notice.call_id]
        elif calls is None:
            calls = list(self._live)
        else:
            calls = [c for c in calls if c in self._live]
        text = notice.description if notice.call_id else AGENT_NOTICES.get(notice.level, "")
        for call_id in calls:
            self.console.capacity(call_id, notice.level, text, keep=bool(notice.call_id))

    # ------------------------------------------------------------ coaching out
    def on_prompt(self, prompt: Prompt) -> None:
        key = (prompt.rule_id, prompt.severity)
        self.prompt_counts[key] = self.prompt_counts.get(key, 0) + 1
        self.console.prompt(prompt)

    def on_tick(self, tick: Tick) -> None:
        for login in self.pop.owners(tick.call_id):
            self.pop.mark_item(login, tick.call_id, tick.item_id, True, by="speech")

    def on_cant_check(self, c: CantCheck) -> None:
        self.console.cant_check(c)

    def item_marked(self, login: str, call_id: str, item: str, done: bool, by: str) -> None:
        """An agent ticked (or unticked) an item by hand (ScriptPop.subscribe_marks;
        speech's own ticks come from the engine)."""
        if by == "speech":
            return
        if call_id in self._live:
            self.engine.manual_tick(call_id, item, done, time.time())

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._ticker = asyncio.ensure_future(self._tick_forever())

    async def _tick_forever(self) -> None:
        # Deadlines, dead air and monologues are noticed on this beat; every 2 s what
        # changed of a live call's coaching is checkpointed (a restart loses nothing).
        beat = 0
        while True:
            await asyncio.sleep(0.25)
            beat += 1
            try:
                self.engine.tick(time.time())
                if beat % 8 == 0:
                    self._checkpoint()
            except Exception:
                log.exception("coaching tick failed; the next one goes on")

    def _checkpoint(self) -> None:
        for call_id in list(self._live):
            c = self.engine.calls.get(call_id)
            if c is None:
                continue
            mark = (len(c.prompts), sum(i.done for i in c.items.values()), len(c.transcript))
            if mark == self._checkpoints.get(call_id) or mark == (0, 0, 0):
                continue
            self._checkpoints[call_id] = mark
            live = self.engine.live(call_id)
            if live is None:
                continue
            self.save(
                call_id,
                {i["id"]: i for i in live["checklist"]},
                None,
                live["prompts"],
                live["transcript"],
                live["cant_check"],
            )

    async def close(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        # The service stops mid-call: what each live call's coaching has so far goes to
        # the store now (the recorder writes it before it closes), not 2 s later.
        self._checkpoint()


def recognition_modes(
    engine: CoachingEngine,
    script: dict | None,
    setting: str,
    model: SpeechModel | None,
    fillers: tuple[str, ...],
) -> dict[str, RecognitionMode]:
    """Each party's recognition for a call with this script.

    setting: speech.mode: "spotting" (phrases only), "transcript" (phrases and a
    full transcript), "auto" (spotting for strict scripts, transcript for flexible
    ones). The agent spots the script's and the agent rules' phrases, the customer
    the customer rules' phrases with garbage words (``fillers``), see the module
    docstring. A party with nothing to spot, or a model without grammars, gets
    a transcript only."""
    transcript = setting == "transcript" or (
        setting == "auto" and (script is None or script.get("kind") != "strict")
    )
    modes = {}
    for speaker in (AGENT, CUSTOMER):
        phrases = (
            engine.spotting_phrases(script, (script or {}).get("language"), speaker)
            if script is not None
            else []
        )
        if not phrases or (model is not None and not model.grammar_capable):
            modes[speaker] = RecognitionMode.transcript_only()
            continue
        modes[speaker] = RecognitionMode.spotting(
            phrases, fillers if speaker == CUSTOMER else (), transcript=transcript
        )
    return modes


def hearing(model: SpeechModel, modes: dict[str, RecognitionMode]) -> Callable[[str, str], bool]:
    """hears(speaker, phrase): can that party's recognition produce the phrase at all."""
    spotted = {sp: {phrase_key(p) for p in m.phrases} for sp, m in modes.items()}

    def hears(speaker: str, phrase: str) -> bool:
        if not model.can_hear(phrase):
            return False
        mode = modes[speaker]
        return mode.transcript or phrase_key(phrase) in spotted[speaker]

    return hears
