"""How fast and when the dialers may call: pure logic on a given clock.

`Pacer`: at most `max_in_progress` calls at once and `max_per_minute` calls
placed in any 60 s window. `CallingHours`: a local-time window on chosen
weekdays in a time zone (DST handled by zoneinfo); a window whose end is not
after its start runs overnight (20:00-02:00 belongs to the day it starts).
Neither reads the clock itself: every method takes `now`, so the tests drive
them with a fake one.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WINDOW = 60.0  # seconds of the per-minute limit


class Pacer:
    """Admission control for one campaign (or the callback dialer)."""

    def __init__(self, max_in_progress: int | None = None, max_per_minute: int | None = None):
        self.max_in_progress = max_in_progress
        self.max_per_minute = max_per_minute
        self.in_progress = 0
        self._placed: deque[float] = deque()  # times of placements in the last WINDOW
        self.peak = 0  # most calls in progress at once, ever

    def _forget(self, now: float) -> None:
        while self._placed and self._placed[0] <= now - WINDOW:
            self._placed.popleft()

    def placed_last_minute(self, now: float) -> int:
        self._forget(now)
        return len(self._placed)

    def can_place(self, now: float) -> bool:
        if self.max_in_progress is not None and self.in_progress >= self.max_in_progress:
            return False
        if self.max_per_minute is not None and self.placed_last_minute(now) >= self.max_per_minute:
            return False
        return True

    def next_slot(self, now: float) -> float | None:
        """When the per-minute limit lets the next call go (None: waits for a call to end)."""
        if self.max_in_progress is not None and self.in_progress >= self.max_in_progress:
            return None
        if self.max_per_minute is not None and self.placed_last_minute(now) >= self.max_per_minute:
            return self._placed[-self.max_per_minute] + WINDOW
        return now

    def placed(self, now: float) -> None:
        """A call is being placed now (counted in progress until finished())."""
        if not self.can_place(now):
            raise RuntimeError("pacing limit: this call may not be placed now")
        self._placed.append(now)
        self.in_progress += 1
        self.peak = max(self.peak, self.in_progress)

    def finished(self) -> None:
        if self.in_progress <= 0:
            raise RuntimeError("finished() without a call in progress")
        self.in_progress -= 1


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_days(text: str) -> frozenset[int]:
    """'mon-fri', 'mon,wed,sat', 'sat-mon', 'daily' / '*' -> weekday numbers (Monday 0)."""
    text = text.strip().lower()
    if text in ("daily", "*", "all", "every day"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        first, sep, last = part.partition("-")
        try:
            a = _DAYS.index(first[:3])
            b = _DAYS.index(last[:3]) if sep else a
        except ValueError:
            raise ValueError(f"days {text!r}: use e.g. mon-fri, mon,wed,fri or daily") from None
        i = a
        while True:
            days.add(i)
            if i == b:
                break
            i = (i + 1) % 7
    if not days:
        raise ValueError(f"days {text!r}: no day given")
    return frozenset(days)


def _hhmm(text: str) -> dt.time | None:
    """'09:30' -> 09:30; '24:00' -> None (the end of the day)."""
    if text == "24:00":
        return None
    try:
        h, m = text.split(":")
        return dt.time(int(h), int(m))
    except ValueError:
        raise ValueError(f"time {text!r}: use HH:MM") from None


@dataclass(frozen=True)
class CallingHours:
    start: dt.time
    end: dt.time | None  # None: midnight at the end of the day
    days: frozenset[int]
    tz: dt.tzinfo

    @classmethod
    def parse(
        cls, start: str = "09:00", end: str = "20:00", days: str = "mon-fri", timezone: str = "UTC"
    ) -> "CallingHours":
        s = _hhmm(start)
        if s is None:
            raise ValueError("calling hours cannot start at 24:00")
        try:
            tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone!r} (use e.g. Europe/Budapest)") from None
        return cls(s, _hhmm(end), parse_days(days), tz)

    @classmethod
    def always(cls) -> "CallingHours":
        return cls(dt.time(0, 0), None, frozenset(range(7)), dt.timezone.utc)

    def _window(self, day: dt.date) -> tuple[float, float]:
        """The window that starts on `day` (local), as timestamps."""
        start = dt.datetime.combine(day, self.start, tzinfo=self.tz)
        if self.end is None:
            end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), tzinfo=self.tz)
        elif self.end > self.start:
            end = dt.datetime.combine(day, self.end, tzinfo=self.tz)
        else:  # overnight
            end = dt.datetime.combine(day + dt.timedelta(days=1), self.end, tzinfo=self.tz)
        return start.timestamp(), end.timestamp()

    def _windows_around(self, now: float, days_ahead: int):
        today = dt.datetime.fromtimestamp(now, self.tz).date()
        for offset in range(-1, days_ahead + 1):
            day = today + dt.timedelta(days=offset)
            if day.weekday() in self.days:
                yield self._window(day)

    def is_open(self, now: float) -> bool:
        return any(a <= now < b for a, b in self._windows_around(now, 0))

    def next_open(self, now: float) -> float:
        """`now` if open, else when the next window opens."""
        best = None
        for a, b in self._windows_around(now, 8):
            if a <= now < b:
                return now
            if a > now and (best is None or a < best):
                best = a
        assert best is not None  # parse_days never gives an empty set
        return best

    def closes_at(self, now: float) -> float | None:
        """When the open window containing `now` closes (None: closed now)."""
        return next((b for a, b in self._windows_around(now, 0) if a <= now < b), None)
