"""Live coaching of calls: tap audio -> speech -> coaching rules -> prompts.

This stage connects, per call: the speech stage's utterances and voice
activity to the coaching engine; the engine's prompts and checklist ticks to
the agent's console (at once) and to the call's record; the taps' health to
the console. It decides each call's recognition mode from its script. It
holds no audio and no rules itself.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from .calls.events import AgentAnswered, CallEnded, CallEvent, CustomerAnswered
from .calls.model import Call, Direction
from .coaching.engine import CoachingEngine
from .coaching.model import Prompt, Tick
from .coaching.rules import RuleLibrary
from .pop import ScriptPop
from .speech.recognizer import RecognitionMode, Utterance, VoiceActivity
from .tap.taps import TapStatus

log = logging.getLogger(__name__)

Push = Callable[[str, dict[str, Any]], None]          # (login, message) to a console


class LiveCoaching:
    def __init__(self, pop: ScriptPop, rules: RuleLibrary, push: Push,
                 save: Callable[..., Awaitable[None]], mode: str = "auto"):
        self.pop = pop
        self.rules = rules
        self.engine = CoachingEngine(rules.ruleset_for, self.on_prompt, self.on_tick)
        self.push = push
        self.save = save
        self.mode = mode
        self._live: dict[str, float] = {}              # call_id -> answered at
        self._ticker: asyncio.Task | None = None
        self._writes: set[asyncio.Task] = set()
        pop.on_mark = self._marked

    # ------------------------------------------------------------ recognition mode
    def mode_for_call(self, call: Call) -> RecognitionMode:
        script = self.pop.script_of(call.call_id)
        spotting = self.mode == "spotting" or (
            self.mode == "auto" and script is not None and script.get("kind") == "strict")
        if spotting and script is not None:
            phrases = self.engine.spotting_phrases(script, script.get("language", ""))
            if phrases:
                return RecognitionMode.spotting(phrases)
        return RecognitionMode.transcript()

    # ------------------------------------------------------------ call events
    def on_call_event(self, event: CallEvent) -> None:
        call = event.call
        connected = (isinstance(event, AgentAnswered) and call.direction is not Direction.OUTBOUND) \
            or isinstance(event, CustomerAnswered)
        if connected and call.call_id not in self._live:
            answered = call.answered_at or event.at
            self._live[call.call_id] = answered
            self.engine.start_call(call.call_id, self.pop.script_of(call.call_id),
                                   call.direction.value, answered)
        elif isinstance(event, CallEnded) and self._live.pop(call.call_id, None) is not None:
            result = self.engine.end_call(call.call_id, event.at)
            if result is None:
                return
            score = result.score
            checklist = {item["id"]: item for item in result.checklist}
            for login in self.pop.owners(call.call_id):
                self.push(login, {"type": "coaching", "call_id": call.call_id,
                                  "adherence": score, "checklist": checklist})
            self._write(self.save(call.call_id, checklist, score, result.prompts,
                                  result.transcript))

    # ------------------------------------------------------------ speech in
    def on_utterance(self, u: Utterance) -> None:
        message = {"type": "transcript", "call_id": u.call_id, "speaker": u.speaker,
                   "utterance_id": f"{u.start:.2f}", "text": u.text, "final": u.final,
                   "start": u.start, "end": u.end}
        for login in self.pop.owners(u.call_id):
            self.push(login, message)
        if u.call_id in self._live:
            self.engine.utterance(u)

    def on_activity(self, a: VoiceActivity) -> None:
        if a.call_id in self._live:
            self.engine.activity(a)

    def on_tap_status(self, status: TapStatus) -> None:
        for login in self.pop.owners(status.call_id):
            self.push(login, {"type": "tap", "call_id": status.call_id,
                              "speaker": status.speaker, "state": status.state,
                              "reason": status.reason})

    # ------------------------------------------------------------ coaching out
    def on_prompt(self, prompt: Prompt) -> None:
        message = {"type": "prompt", **prompt.to_dict()}
        for login in self.pop.owners(prompt.call_id):
            self.push(login, message)

    def on_tick(self, tick: Tick) -> None:
        for login in self.pop.owners(tick.call_id):
            self.pop.mark_item(login, tick.call_id, tick.item_id, True, by="speech")

    def _marked(self, login: str, call_id: str, item: str, done: bool, by: str) -> None:
        if call_id in self._live:
            self.engine.manual_tick(call_id, item, done, time.time())

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._ticker = asyncio.ensure_future(self._tick_forever())

    async def _tick_forever(self) -> None:
        # Deadlines, dead air and monologues are noticed on this beat.
        while True:
            await asyncio.sleep(0.25)
            try:
                self.engine.tick(time.time())
            except Exception:
                log.exception("coaching tick failed; the next one goes on")

    def _write(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._writes.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("coaching result not saved: %s", task.exception())

    async def close(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        if self._writes:
            await asyncio.wait(self._writes, timeout=10)
