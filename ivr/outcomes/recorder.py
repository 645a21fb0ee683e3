"""Writes every call's outcome from the call event bus into the store.

Bus subscribers are synchronous, the store is async: each event queues a
write on its call's own queue, drained by one task per call, so one call's
writes never reorder while different calls write concurrently. A failing
write is logged and retried with backoff until it succeeds (or the recorder
is closed); it only delays its own call. Successive snapshots of a call
coalesce: each is complete, so only the newest waiting one needs writing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from ..calls.events import (
    AgentAnswered,
    AgentRinging,
    CallEnded,
    CallEvent,
    CallQueued,
    CallStarted,
    CallTransferred,
    CallUpdated,
    CustomerAnswered,
)
from ..calls.model import Call, CallResult
from .callbacks import CallbackRequest, callbacks_for, diallable
from .store import Store
from .store.records import call_of

log = logging.getLogger(__name__)

# Events that change what the record holds. Bridge/hold/missed-agent events
# change nothing the next write (at the latest CallEnded) will not carry.
RECORDED = (
    CallStarted,
    CallUpdated,
    CallQueued,
    AgentRinging,
    AgentAnswered,
    CustomerAnswered,
    CallTransferred,
    CallEnded,
)

_KEEP_ENDED = 1000  # ended calls remembered, for a script reported after the end


@dataclass
class _Upsert:
    call: Call


@dataclass
class _Write:
    """Any other write: a callback to add, callbacks to resolve."""

    what: str
    run: Callable[[Store], Awaitable[object]]


_Op = _Upsert | _Write


@dataclass
class _CallQueue:
    call_id: str
    snapshot: Call | None
    script: tuple[str | None, str | None] = (None, None)
    ops: deque[_Op] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    ended: bool = False


class OutcomeRecorder:
    def __init__(
        self,
        store: Store,
        *,
        script_of: Callable[[str], tuple[str, str] | None] | None = None,
        callback_delay: float = 0.0,
        retry_delays: Sequence[float] = (0.2, 1.0, 2.0, 5.0, 10.0, 30.0),
    ):
        """script_of(call_id) -> (script id, version) asks the pop stage which
        script a call got (subscribe the pop first); set_script is the push way."""
        self.store = store
        self.script_of = script_of
        self.callback_delay = callback_delay
        self.retry_delays = tuple(retry_delays)
        self.failures = 0  # failed write attempts, for health checks
        self._failing: set[str] = set()  # calls whose current write keeps failing
        self._calls: dict[str, _CallQueue] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()  # written ended calls, oldest first
        self._closed = False

    # -- bus side (sync) -------------------------------------------------------
    def __call__(self, event: CallEvent) -> None:
        if not isinstance(event, RECORDED):
            return
        if self._closed:
            log.warning(
                "outcome of call %s after the recorder closed: not recorded (%s)",
                event.call.call_id,
                event.kind,
            )
            return
        call = event.call
        q = self._queue(call)
        q.snapshot = call
        if self.script_of is not None:
            # Asked now, not at write time: the pop forgets a call after its wrap-up.
            try:
                script = self.script_of(call.call_id)
            except Exception:  # a pop bug must not cost the call its record
                log.exception("call %s: asking for its script failed", call.call_id)
                script = None
            if script is not None:
                q.script = (script[0], script[1])
        self._push(q, _Upsert(call))
        q.ended = isinstance(event, CallEnded)
        if q.ended:
            for request in callbacks_for(call, self.callback_delay):
                self._push(q, _Write(f"callback ({request.reason})", _adder(request)))
            if call.result is CallResult.ANSWERED and diallable(call.customer_num):
                self._push(q, _Write("resolve callbacks", _resolver(call)))

    def save_coaching(
        self,
        call_id: str,
        checklist: dict[str, Any] | None,
        score: float | None,
        prompts: list[Any],
        transcript: list[Any],
        cant_check: list[Any] | None = None,
    ) -> None:
        """A call's coaching result: written after its record, retried like it."""
        if self._closed:
            log.error("coaching result of call %s after the recorder closed: not saved", call_id)
            return
        q = self._calls.get(call_id)
        if q is None:
            q = self._calls[call_id] = _CallQueue(call_id, None, ended=True)

        def run(store: Store) -> Awaitable[object]:
            return store.save_coaching(call_id, checklist, score, prompts, transcript, cant_check)

        self._push(q, _Write("coaching result", run))

    @property
    def failing(self) -> bool:
        """Some write keeps failing (the store is down or unwritable): for /api/health."""
        return bool(self._failing)

    def set_script(self, call_id: str, script_id: str | None, script_version: str | None) -> None:
        """The pop stage chose this call's script: record it with the call."""
        q = self._calls.get(call_id)
        if q is None or self._closed:
            log.warning(
                "script %s for call %s, which the recorder never saw: not recorded",
                script_id,
                call_id,
            )
            return
        q.script = (script_id, script_version)
        if q.snapshot is not None:
            self._push(q, _Upsert(q.snapshot))

    @staticmethod
    def call_from_record(record: dict) -> Call:
        """A stored call back as a Call (e.g. a wrap-up still owed after a restart)."""
        return call_of(record)

    @property
    def pending(self) -> int:
        """Writes waiting (or being retried)."""
        return sum(len(q.ops) for q in self._calls.values())

    # -- loop side ---------------------------------------------------------------
    async def drain(self) -> None:
        """Wait until every queued write is in the store."""
        # asyncio.wait, not gather: a cancelled drain must not cancel the writes.
        while tasks := [q.task for q in self._calls.values() if q.task is not None]:
            await asyncio.wait(tasks)

    async def close(self, timeout: float = 10.0) -> None:
        """Stop taking events, give queued writes `timeout` s, then give up loudly."""
        self._closed = True
        try:
            await asyncio.wait_for(self.drain(), timeout)
        except asyncio.TimeoutError:
            lost = {
                q.call_id: [op.what if isinstance(op, _Write) else "call record" for op in q.ops]
                for q in self._calls.values()
                if q.ops
            }
            log.error(
                "outcome recorder closing with unwritten outcomes of %d calls: %s", len(lost), lost
            )
            for q in self._calls.values():
                if q.task is not None:
                    q.task.cancel()
            await asyncio.gather(
                *(q.task for q in self._calls.values() if q.task), return_exceptions=True
            )

    def _queue(self, call: Call) -> _CallQueue:
        q = self._calls.get(call.call_id)
        if q is None:
            q = self._calls[call.call_id] = _CallQueue(call.call_id, call)
        return q

    def _push(self, q: _CallQueue, op: _Op) -> None:
        q.ops.append(op)
        if q.task is None:
            q.task = asyncio.get_running_loop().create_task(
                self._run(q), name=f"outcomes-{q.call_id}"
            )

    async def _run(self, q: _CallQueue) -> None:
        try:
            while q.ops:
                op = q.ops[0]
                if not _superseded(q):
                    await self._write(q, op)
                q.ops.popleft()
        finally:
            q.task = None
            if q.ended and not q.ops:
                self._retire(q)

    async def _write(self, q: _CallQueue, op: _Op) -> None:
        attempt = 0
        while True:
            try:
                if isinstance(op, _Upsert):
                    await self.store.upsert_call(op.call, *q.script)
                else:
                    await op.run(self.store)
                if attempt:
                    log.info(
                        "call %s: outcome written after %d failed attempts", q.call_id, attempt
                    )
                self._failing.discard(q.call_id)
                return
            except Exception:
                attempt += 1
                self.failures += 1
                self._failing.add(q.call_id)
                what = "call record" if isinstance(op, _Upsert) else op.what
                if attempt == 1:
                    log.exception("call %s: writing %s failed; retrying", q.call_id, what)
                elif attempt <= 3 or attempt % 10 == 0:
                    log.warning(
                        "call %s: writing %s failed again (attempt %d)", q.call_id, what, attempt
                    )
            await asyncio.sleep(self.retry_delays[min(attempt, len(self.retry_delays)) - 1])
            if _superseded(q):  # a newer snapshot queued while we waited
                return

    def _retire(self, q: _CallQueue) -> None:
        """Forget ended, fully written calls, but keep the last few around."""
        self._ended[q.call_id] = None
        self._ended.move_to_end(q.call_id)
        while len(self._ended) > _KEEP_ENDED:
            call_id, _ = self._ended.popitem(last=False)
            old = self._calls.get(call_id)
            if old is not None and old.ended and old.task is None and not old.ops:
                del self._calls[call_id]


def _superseded(q: _CallQueue) -> bool:
    """The head snapshot need not be written: the next op is a newer snapshot."""
    return len(q.ops) > 1 and isinstance(q.ops[0], _Upsert) and isinstance(q.ops[1], _Upsert)


def _adder(request: CallbackRequest) -> Callable[[Store], Awaitable[object]]:
    def run(store: Store) -> Awaitable[object]:
        return store.add_callback(
            request.call_id,
            request.number,
            request.project,
            request.due_at,
            request.agent,
            request.reason,
        )

    return run


def _resolver(call: Call) -> Callable[[Store], Awaitable[object]]:
    result = f"{call.direction.value}_answered"

    def run(store: Store) -> Awaitable[object]:
        return store.resolve_callbacks(
            call.customer_num.strip(), call.project, result, call.ended_at
        )

    return run
