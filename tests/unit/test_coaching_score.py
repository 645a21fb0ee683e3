"""Adherence: weighted checklist, items done in time / all weights."""
from __future__ import annotations

from ivr.coaching.score import adherence, item_status


def item(id, weight=1.0, done=False, at=None, within=None):
    return {"id": id, "weight": weight, "done": done, "at": at, "within": within}


def test_weighted_in_time_over_total():
    got = adherence([item("company", 2, True, 5.0, 10), item("help", 2, True, 12.0, 10),
                     item("name", 1, False, None, 10), item("thanks", 3, True, 80.0)])
    # company (2) in time, thanks (3) has no deadline; help late; name missed
    assert got == {"score": 63, "earned": 5.0, "total": 8.0, "in_time": ["company", "thanks"],
                   "late": ["help"], "missed": ["name"], "cant_check": []}


def test_at_the_deadline_is_in_time_and_rounding_is_half_up():
    assert item_status(True, 10.0, 10.0) == "done"
    assert item_status(True, 10.01, 10.0) == "late"
    assert item_status(False, None, None) == "missed"
    assert adherence([item("a", 1, True, 1), item("b", 1)])["score"] == 50
    assert adherence([item("a", 1, True, 1), item("b", 7)])["score"] == 13     # 12.5 -> 13


def test_all_none_and_no_checklist():
    assert adherence([item("a", 1, True, 1.0, 5)])["score"] == 100
    assert adherence([item("a", 1), item("b", 2)])["score"] == 0
    assert adherence([])["score"] is None                # no script: not scored
    assert adherence([item("a", 0, True, 1.0)])["score"] is None
