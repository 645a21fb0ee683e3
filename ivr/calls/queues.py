"""Live figures of each queue, for the supervisor's wallboard.

From Asterisk's queue events: QueueCallerJoin (a caller waits), DialEnd
ANSWER of a waiting caller's channel (an agent took it: app_queue reports
that before the caller leaves the queue), QueueCallerAbandon (they hung up),
QueueCallerLeave (out of the queue: answered, abandoned, or sent away when
the queue's time ran out). Counts cover today (local time) and are seeded at
start from the outcomes store; the callers waiting now come from QueueStatus
after every AMI (re)login, so a restart of the service shows the same board.

    service level = answered within the threshold / callers who left the
                    queue (answered + abandoned + timed out)
    ASA (average speed of answer) = mean wait of the answered callers
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from ..ami.actions import QueueStatus
from ..ami.message import AmiEvent

log = logging.getLogger(__name__)


@dataclass
class QueueCounts:
    """Today's callers who left a queue, and how."""

    answered: int = 0
    answered_in_time: int = 0  # within the service-level threshold
    wait_sum: float = 0.0  # of the answered: for the ASA
    abandoned: int = 0
    timed_out: int = 0  # sent on when the queue's time ran out (or left otherwise)


@dataclass(frozen=True)
class QueueFigures:
    queue: str
    waiting: int
    oldest_since: float | None  # when the caller waiting longest joined (epoch s)
    answered: int
    abandoned: int
    timed_out: int
    service_level: float | None  # 0-1; None before any caller left the queue today
    asa: float | None  # s
    threshold: float

    def longest_wait(self, now: float) -> float:
        return 0.0 if self.oldest_since is None else max(0.0, now - self.oldest_since)

    def to_json(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "waiting": self.waiting,
            "oldest_since": self.oldest_since,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "timed_out": self.timed_out,
            "service_level": self.service_level,
            "asa": self.asa,
            "threshold": self.threshold,
        }


@dataclass
class _Caller:
    queue: str
    joined_at: float
    answered_at: float | None = None
    abandoned: bool = False


def day_start(now: float) -> float:
    """Local midnight before `now`."""
    d = dt.datetime.fromtimestamp(now).astimezone()
    return d.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


class QueueBoard:
    def __init__(
        self,
        service_level_seconds: float,
        on_change: Callable[[QueueFigures], None] | None = None,
        queues: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ):
        self.threshold = service_level_seconds
        self.on_change = on_change
        self.clock = clock
        self._day = day_start(clock())
        self._counts: dict[str, QueueCounts] = {q: QueueCounts() for q in queues}
        self._waiting: dict[str, _Caller] = {}  # caller's Uniqueid -> caller
        self.handlers = {
            "QueueCallerJoin": self._on_join,
            "DialEnd": self._on_dial_end,
            "QueueCallerAbandon": self._on_abandon,
            "QueueCallerLeave": self._on_leave,
        }

    # ------------------------------------------------------------ state in
    def seed(self, rows: Iterable[Mapping[str, Any]], day: float | None = None) -> None:
        """Today's counts so far, per queue, from the outcomes store
        (ivr.outcomes.reports.queue_day)."""
        self._day = day if day is not None else self._day
        for r in rows:
            c = self._counts.setdefault(str(r["queue"]), QueueCounts())
            c.answered = int(r.get("answered") or 0)
            c.answered_in_time = int(r.get("answered_in_time") or 0)
            c.wait_sum = float(r.get("wait_sum") or 0.0)
            c.abandoned = int(r.get("abandoned") or 0)
            c.timed_out = int(r.get("timed_out") or 0)

    def resync(self, status: QueueStatus) -> None:
        """After every AMI (re)login: the callers waiting now, as Asterisk has them."""
        before = {c.queue for c in self._waiting.values()}
        for q in status.queues:
            self._counts.setdefault(q, QueueCounts())
        known = self._waiting
        self._waiting = {}
        for c in status.callers:
            old = known.get(c.uniqueid)
            # Our own join time is to the millisecond; Asterisk's wait to the second.
            joined = old.joined_at if old is not None and old.queue == c.queue else c.joined_at
            self._waiting[c.uniqueid] = _Caller(c.queue, joined)
        for q in sorted(before | set(status.queues)):
            self._changed(q)

    def on_ami_event(self, ev: AmiEvent) -> None:
        handler = self.handlers.get(ev.name)
        if handler is not None:
            self._roll_day(ev.received)
            handler(ev)

    def _on_join(self, ev: AmiEvent) -> None:
        queue = ev.get("Queue")
        self._counts.setdefault(queue, QueueCounts())
        self._waiting[ev.get("Uniqueid")] = _Caller(queue, ev.received)
        self._changed(queue)

    def _on_dial_end(self, ev: AmiEvent) -> None:
        caller = self._waiting.get(ev.get("Uniqueid"))
        if caller is not None and ev.get("DialStatus") == "ANSWER" and caller.answered_at is None:
            caller.answered_at = ev.received

    def _on_abandon(self, ev: AmiEvent) -> None:
        caller = self._waiting.get(ev.get("Uniqueid"))
        if caller is not None:
            caller.abandoned = True

    def _on_leave(self, ev: AmiEvent) -> None:
        caller = self._waiting.pop(ev.get("Uniqueid"), None)
        if caller is None:
            return
        c = self._counts.setdefault(caller.queue, QueueCounts())
        if caller.answered_at is not None:
            wait = caller.answered_at - caller.joined_at
            c.answered += 1
            c.wait_sum += wait
            c.answered_in_time += wait <= self.threshold
        elif caller.abandoned:
            c.abandoned += 1
        else:
            c.timed_out += 1
        self._changed(caller.queue)

    def _roll_day(self, now: float) -> None:
        if now - self._day >= 86400 and day_start(now) > self._day:
            self._day = day_start(now)
            for q in self._counts:
                self._counts[q] = QueueCounts()
                self._changed(q)

    # ------------------------------------------------------------ figures out
    def figures(self, queue: str) -> QueueFigures:
        c = self._counts.get(queue) or QueueCounts()
        waiting = [w.joined_at for w in self._waiting.values() if w.queue == queue]
        left = c.answered + c.abandoned + c.timed_out
        return QueueFigures(
            queue=queue,
            waiting=len(waiting),
            oldest_since=min(waiting, default=None),
            answered=c.answered,
            abandoned=c.abandoned,
            timed_out=c.timed_out,
            service_level=round(c.answered_in_time / left, 4) if left else None,
            asa=round(c.wait_sum / c.answered, 1) if c.answered else None,
            threshold=self.threshold,
        )

    def all(self) -> list[QueueFigures]:
        self._roll_day(self.clock())
        return [self.figures(q) for q in sorted(self._counts)]

    def _changed(self, queue: str) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(self.figures(queue))
        except Exception:
            log.exception("queue %s: a wallboard listener failed", queue)


__all__ = ["QueueBoard", "QueueCounts", "QueueFigures", "day_start"]
