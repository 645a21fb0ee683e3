"""Pacing and calling hours of the dialers, on a fake clock."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from ivr.calls.model import Call, CallState, Leg, LegRole
from ivr.dialer.common import AgentPool, NumberGuard, busy_agents, outcome_of
from ivr.dialer.pacing import CallingHours, Pacer, parse_days

BUD = ZoneInfo("Europe/Budapest")


def at(*args, tz=BUD) -> float:
    return dt.datetime(*args, tzinfo=tz).timestamp()


class TestPacer:
    def test_calls_in_progress_are_capped(self):
        p = Pacer(max_in_progress=2)
        p.placed(0)
        p.placed(0)
        assert not p.can_place(0) and p.next_slot(0) is None
        with pytest.raises(RuntimeError):
            p.placed(0)
        p.finished()
        assert p.can_place(0) and p.in_progress == 1 and p.peak == 2

    def test_calls_per_minute_slide(self):
        p = Pacer(max_per_minute=3)
        for t in (0.0, 10.0, 20.0):
            assert p.can_place(t)
            p.placed(t)
            p.finished()
        assert not p.can_place(30.0)
        assert p.next_slot(30.0) == 60.0           # when the first leaves the window
        assert not p.can_place(59.9)
        assert p.can_place(60.0)
        p.placed(60.0)
        assert p.next_slot(60.0) == 70.0 and not p.can_place(69.0) and p.can_place(70.0)

    def test_both_limits_and_no_limit(self):
        p = Pacer(max_in_progress=1, max_per_minute=2)
        p.placed(0)
        assert not p.can_place(1)                  # one in progress
        p.finished()
        p.placed(1)
        p.finished()
        assert not p.can_place(2)                  # two this minute
        assert Pacer().can_place(0)
        with pytest.raises(RuntimeError):
            Pacer().finished()


class TestCallingHours:
    def test_weekday_window_in_local_time(self):
        h = CallingHours.parse("09:00", "17:30", "mon-fri", "Europe/Budapest")
        monday = (2024, 3, 4)
        assert not h.is_open(at(*monday, 8, 59, 59))
        assert h.is_open(at(*monday, 9, 0))
        assert h.is_open(at(*monday, 17, 29, 59))
        assert not h.is_open(at(*monday, 17, 30))
        assert h.next_open(at(*monday, 7, 0)) == at(*monday, 9, 0)
        assert h.next_open(at(*monday, 10, 0)) == at(*monday, 10, 0)
        assert h.closes_at(at(*monday, 10, 0)) == at(*monday, 17, 30)
        # Friday evening -> Monday morning.
        assert not h.is_open(at(2024, 3, 9, 12, 0))         # Saturday
        assert h.next_open(at(2024, 3, 8, 18, 0)) == at(2024, 3, 11, 9, 0)

    def test_overnight_window_belongs_to_the_day_it_starts(self):
        h = CallingHours.parse("20:00", "02:00", "fri", "Europe/Budapest")
        assert h.is_open(at(2024, 3, 8, 23, 0))             # Friday night
        assert h.is_open(at(2024, 3, 9, 1, 59))             # ... into Saturday
        assert not h.is_open(at(2024, 3, 9, 2, 0))
        assert not h.is_open(at(2024, 3, 9, 21, 0))         # Saturday evening: no
        assert h.next_open(at(2024, 3, 9, 3, 0)) == at(2024, 3, 15, 20, 0)

    def test_daylight_saving_days(self):
        h = CallingHours.parse("01:00", "04:00", "daily", "Europe/Budapest")
        # 31 March 2024: clocks go from 02:00 to 03:00; the window is 2 hours long.
        day = (2024, 3, 31)
        assert h.closes_at(at(*day, 1, 30)) - at(*day, 1, 0) == 2 * 3600
        assert h.is_open(at(*day, 3, 30)) and not h.is_open(at(*day, 4, 0))
        # A UTC instant is judged in the campaign's zone, not the server's.
        utc_evening = at(2024, 7, 1, 17, 30, tz=dt.timezone.utc)   # 19:30 in Budapest
        assert not CallingHours.parse("09:00", "19:00", "daily", "Europe/Budapest") \
            .is_open(utc_evening)
        assert CallingHours.parse("09:00", "19:00", "daily", "UTC").is_open(utc_evening)

    def test_whole_days_and_parsing(self):
        h = CallingHours.parse("00:00", "24:00", "sat,sun", "UTC")
        assert h.is_open(at(2024, 3, 9, 0, 0, tz=dt.timezone.utc))
        assert h.is_open(at(2024, 3, 10, 23, 59, 59, tz=dt.timezone.utc))
        assert not h.is_open(at(2024, 3, 11, 0, 0, tz=dt.timezone.utc))
        assert CallingHours.always().is_open(0)
        assert parse_days("sat-mon") == {5, 6, 0}
        assert parse_days("Mon, Wed") == {0, 2}
        assert parse_days("daily") == set(range(7))
        for bad in (("9", "17", "mon", "UTC"), ("09:00", "17:00", "someday", "UTC"),
                    ("09:00", "17:00", "mon", "Mars/Olympus"), ("24:00", "10:00", "mon", "UTC")):
            with pytest.raises(ValueError):
                CallingHours.parse(*bad)


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class TestAgentPool:
    def test_available_agents_longest_idle_first(self):
        clock = FakeClock()
        busy = {"1003"}
        pool = AgentPool(lambda p: {"acme": ["1001", "1002", "1003"]}.get(p, []),
                         lambda a: a in busy, after_call_gap=5, clock=clock)
        assert pool.pick("acme") == "1001"
        pool.reserve("1001")
        assert pool.pick("acme") == "1002"
        pool.reserve("1002")
        assert pool.pick("acme") is None and pool.pick("other") is None
        pool.release("1001")
        assert pool.pick("acme") is None                 # 5 s to wrap up
        clock.now += 5
        assert pool.pick("acme") == "1001"
        clock.now += 10
        pool.release("1002", penalty=60)                 # their phone did not answer
        assert pool.pick("acme") == "1001"
        clock.now += 60
        assert pool.pick("acme") == "1001"               # idle longer than 1002
        busy.clear()
        assert pool.pick("acme") == "1003"               # never had a dialer call
        assert pool.pick("acme", only="1002") == "1002"

    def test_a_broken_callback_never_hands_out_an_agent(self):
        def boom(_):
            raise RuntimeError("no")
        assert AgentPool(boom, lambda a: False).pick("acme") is None
        assert AgentPool(lambda p: ["1"], boom).pick("acme") is None


def test_number_guard_covers_live_calls_and_spellings():
    live = ["+36 20 123 4567"]
    guard = NumberGuard(lambda: live)
    assert guard.busy("0036201234567") and not guard.hold("36201234567")
    live.clear()
    assert guard.hold("36201234567")
    assert not guard.hold("+36201234567")            # the same number
    guard.release("36201234567")
    assert guard.hold("+36 20 123 4567")
    assert not guard.hold("anonymous")


def test_busy_agents_and_outcomes():
    call = Call(call_id="c", started_at=0, state=CallState.BRIDGED)
    call.legs["a"] = Leg("a", "PJSIP/1001-1", "c", "1001", LegRole.AGENT, 0)
    call.legs["b"] = Leg("b", "PJSIP/1002-1", "c", "1002", LegRole.AGENT, 0, ended_at=5)
    call.legs["t"] = Leg("t", "PJSIP/trunk-1", "c", "trunk", LegRole.CUSTOMER, 0)
    assert busy_agents([call]) == {"1001"}
    assert outcome_of(None, False).result == "agent_no_answer"
    assert outcome_of(None, True).result == "unknown"
    ended = Call(call_id="c", started_at=0, state=CallState.ENDED, ended_at=9)
    assert outcome_of(ended, True).result == "no_answer"
    ended.cause = 17
    assert outcome_of(ended, True).result == "busy"
    ended.answered_at = 3
    assert outcome_of(ended, True).customer_reached
