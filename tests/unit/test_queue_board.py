"""The wallboard's queue figures from queue events (as Asterisk 22 sends them:
DialEnd ANSWER of the caller's channel comes before QueueCallerLeave), the
QueueStatus resync and the day's seed from the store."""
from __future__ import annotations

from ivr.ami.actions import QueueCaller, QueueStatus
from ivr.ami.message import AmiEvent
from ivr.calls.queues import QueueBoard, day_start

T0 = day_start(1_800_000_000) + 10 * 3600      # 10:00 local on some day


def ev(name: str, at: float, **fields: str) -> AmiEvent:
    return AmiEvent(name=name, fields={"Event": name, **fields}, received=at)


def join(board, uid, queue, at):
    board.on_ami_event(ev("QueueCallerJoin", at, Uniqueid=uid, Queue=queue, Position="1"))


def answer(board, uid, at):
    board.on_ami_event(ev("DialEnd", at, Uniqueid=uid, DestUniqueid=uid + "1",
                          DialStatus="ANSWER"))


def leave(board, uid, queue, at):
    board.on_ami_event(ev("QueueCallerLeave", at, Uniqueid=uid, Queue=queue))


def test_waiting_longest_wait_answered_abandoned_timed_out_service_level_asa():
    changes = []
    board = QueueBoard(20.0, on_change=changes.append, clock=lambda: T0)
    join(board, "a", "support", T0)
    join(board, "b", "support", T0 + 3)
    join(board, "c", "support", T0 + 4)
    join(board, "d", "sales", T0 + 5)
    f = board.figures("support")
    assert (f.waiting, f.oldest_since, f.longest_wait(T0 + 10)) == (3, T0, 10)
    answer(board, "a", T0 + 12)                  # 12 s: within 20
    board.on_ami_event(ev("DialEnd", T0 + 13, Uniqueid="b", DialStatus="NOANSWER"))
    leave(board, "a", "support", T0 + 12)
    assert board.figures("support").oldest_since == T0 + 3
    answer(board, "b", T0 + 33)                  # 30 s: too slow
    leave(board, "b", "support", T0 + 33)
    board.on_ami_event(ev("QueueCallerAbandon", T0 + 40, Uniqueid="c", Queue="support"))
    leave(board, "c", "support", T0 + 40)
    leave(board, "d", "sales", T0 + 300)         # the queue's time ran out
    s, sales = board.figures("support"), board.figures("sales")
    assert (s.waiting, s.answered, s.abandoned, s.timed_out) == (0, 2, 1, 0)
    assert s.service_level == round(1 / 3, 4) and s.asa == 21.0
    assert (sales.answered, sales.timed_out, sales.service_level, sales.asa) == (0, 1, 0.0, None)
    assert [c.waiting for c in changes if c.queue == "support"] == [1, 2, 3, 2, 1, 0]
    # A leave for a caller never seen (before the service started) changes nothing.
    leave(board, "zz", "support", T0 + 50)
    assert board.figures("support").answered == 2


def test_resync_takes_the_waiting_callers_and_keeps_known_join_times():
    board = QueueBoard(20.0, clock=lambda: T0)
    join(board, "a", "support", T0 + 0.25)
    join(board, "gone", "support", T0 + 1)
    board.resync(QueueStatus(T0 + 9, ("support", "sales"), (), (
        QueueCaller("support", "a", "PJSIP/trunk-1", 1, T0),       # Asterisk: whole seconds
        QueueCaller("sales", "n", "PJSIP/trunk-2", 1, T0 + 2))))
    s, sales = board.figures("support"), board.figures("sales")
    assert (s.waiting, s.oldest_since) == (1, T0 + 0.25)
    assert (sales.waiting, sales.oldest_since) == (1, T0 + 2)


def test_seeded_counts_go_on_and_reset_at_midnight():
    now = [T0]
    board = QueueBoard(20.0, clock=lambda: now[0])
    board.seed([{"queue": "support", "answered": 10, "answered_in_time": 8, "wait_sum": 100.0,
                 "abandoned": 2, "timed_out": 0}], day=day_start(T0))
    join(board, "a", "support", T0)
    answer(board, "a", T0 + 5)
    leave(board, "a", "support", T0 + 5)
    f = board.figures("support")
    assert (f.answered, f.abandoned, f.service_level, f.asa) == (11, 2, round(9 / 13, 4), 9.5)
    now[0] = day_start(T0) + 86400 + 60          # the next day
    assert [q.answered for q in board.all()] == [0]
