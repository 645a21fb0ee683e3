"""Agent states on a small fake of Asterisk's queues: it answers QueueAdd,
QueueRemove and QueuePause with the QueueMember* events app_queue sends
(field names as captured from Asterisk 22, see tests/integration), so the
state logic is tested event for event; the real PBX tests are in
tests/integration/test_agent_states_pbx.py."""
from __future__ import annotations

import asyncio
import time

import pytest

from ivr.agents import AgentGroups, AgentState, AgentStates, StateError
from ivr.agents.states import parse_reason, pause_reason
from ivr.ami.actions import QueueMember, QueueStatus
from ivr.ami.message import AmiEvent
from ivr.calls.events import AgentAnswered, AgentRinging, CallEnded
from ivr.calls.model import Call, CallState, Leg, LegRole
from ivr.config import AgentGroup, GroupMember, ShiftSettings

GROUPS = (AgentGroup("sales", ("acme-sales",), ("sales",),
                     (GroupMember("1001"), GroupMember("1002"))),
          AgentGroup("support", ("acme-support",), ("support",),
                     (GroupMember("1003"), GroupMember("1001", 2))))


class FakeQueues:
    """Asterisk's app_queue as far as the service sees it."""

    def __init__(self) -> None:
        self.members: dict[tuple[str, str], dict[str, str]] = {}
        self.sink = None
        self.actions: list[tuple] = []
        self.down = False

    def _emit(self, name: str, m: dict[str, str]) -> None:
        if self.sink is not None:
            self.sink(AmiEvent(name=name, fields={"Event": name, **m}, received=time.time()))

    def _check(self) -> None:
        if self.down:
            from ivr.ami.actions import NotConnected
            raise NotConnected("AMI is not connected")

    async def queue_add(self, queue, interface, *, member_name="", penalty=0, paused=False,
                        reason=""):
        self._check()
        self.actions.append(("add", queue, interface, paused, reason))
        m = {"Queue": queue, "Interface": interface, "MemberName": member_name,
             "Penalty": str(penalty), "Paused": "1" if paused else "0",
             "PausedReason": reason if paused else "", "Status": "1", "InCall": "0",
             "LastPause": str(int(time.time())) if paused else "0",
             "LoginTime": str(int(time.time()))}
        self.members[(queue, interface)] = m
        self._emit("QueueMemberAdded", m)

    async def queue_remove(self, queue, interface):
        self._check()
        self.actions.append(("remove", queue, interface))
        m = self.members.pop((queue, interface))
        self._emit("QueueMemberRemoved", m)

    async def queue_pause(self, interface, paused, reason="", queue=None):
        self._check()
        self.actions.append(("pause", interface, paused, reason))
        for (q, i), m in self.members.items():
            if i == interface and (queue is None or q == queue):
                m.update(Paused="1" if paused else "0", PausedReason=reason if paused else "")
                if paused:
                    m["LastPause"] = str(int(time.time()))
                self._emit("QueueMemberPause", m)

    def device(self, interface: str, status: int) -> None:
        for (q, i), m in self.members.items():
            if i == interface:
                m["Status"] = str(status)
                self._emit("QueueMemberStatus", m)

    def status(self) -> QueueStatus:
        return QueueStatus(time.time(), ("sales", "support"),
                           tuple(QueueMember.from_fields(m) for m in self.members.values()), ())


def make(pbx: FakeQueues, **kw) -> tuple[AgentStates, list]:
    changes: list = []
    states = AgentStates(AgentGroups(GROUPS), pbx, ShiftSettings(**kw), on_change=changes.append)
    pbx.sink = states.on_ami_event
    return states, changes


def call_for(agent: str, call_id: str = "c1", project: str = "acme-support") -> Call:
    c = Call(call_id=call_id, started_at=time.time(), project=project, customer_num="3620111",
             queue="support", state=CallState.BRIDGED)
    c.legs["a"] = Leg("a", f"PJSIP/{agent}-1", call_id, agent, LegRole.AGENT, time.time())
    return c


def state(states: AgentStates, login: str) -> tuple[str, str, str]:
    s = states.status(login)
    return s.state.value, s.reason, s.then


def test_reason_round_trip():
    assert pause_reason(True, "lunch") == "wrap-up then lunch"
    assert parse_reason("wrap-up then lunch") == (True, "lunch")
    assert parse_reason("wrap-up") == (True, "")
    assert parse_reason("lunch") == (False, "lunch")
    assert "," not in pause_reason(True, "training")   # Asterisk's astdb cuts at commas


async def test_log_in_joins_every_queue_of_the_groups_with_penalty():
    pbx = FakeQueues()
    states, changes = make(pbx)
    assert state(states, "1001")[0] == "offline"
    await states.log_in("1001")
    assert {a[1] for a in pbx.actions if a[0] == "add"} == {"sales", "support"}
    assert state(states, "1001") == ("ready", "", "")
    entered = [c for c in changes if c.new_state][-1]
    assert entered.status.state is AgentState.READY and entered.by == "1001"
    # Signing in again keeps a break a break.
    await states.set_state("1001", "not_ready", "lunch")
    await states.log_in("1001")
    assert state(states, "1001") == ("not_ready", "lunch", "")


async def test_not_ready_needs_a_known_reason_and_offline_leaves_every_queue():
    pbx = FakeQueues()
    states, _ = make(pbx)
    await states.log_in("1003")
    with pytest.raises(StateError, match="choose a reason"):
        await states.set_state("1003", "not_ready", "nap")
    with pytest.raises(StateError, match="is not chosen"):
        await states.set_state("1003", "on_call")
    with pytest.raises(StateError) as e:
        await states.set_state("9999", "ready")
    assert e.value.kind == "unknown"
    await states.set_state("1003", "offline", by="boss")
    assert state(states, "1003")[0] == "offline" and not pbx.members


async def test_wrapup_after_an_answered_call_then_ready_when_saved():
    pbx = FakeQueues()
    states, changes = make(pbx, wrapup_seconds=60)
    await states.log_in("1003")
    call = call_for("1003")
    states.on_call_event(AgentRinging(call=call, at=time.time(), agent="1003", leg=call.legs["a"]))
    pbx.device("PJSIP/1003", 6)
    assert state(states, "1003")[0] == "ringing"
    assert states.ready_agents("acme-support") == []
    states.on_call_event(AgentAnswered(call=call, at=time.time(), agent="1003", leg=call.legs["a"]))
    pbx.device("PJSIP/1003", 2)
    s = states.status("1003")
    assert s.state is AgentState.ON_CALL and s.call.call_id == "c1" and s.call.customer_number
    states.on_call_event(CallEnded(call=call, at=time.time()))
    pbx.device("PJSIP/1003", 1)
    await asyncio.sleep(0.01)          # the pause is sent in a task
    assert state(states, "1003") == ("wrapup", "", "")
    assert ("pause", "PJSIP/1003", True, "wrap-up") in pbx.actions
    assert states.status("1003").wrapup_until == pytest.approx(time.time() + 60, abs=1)
    # Another call's wrap-up saved: not this one.
    await states.wrapup_saved("1003", "other")
    assert state(states, "1003")[0] == "wrapup"
    await states.wrapup_saved("1003", "c1")
    assert state(states, "1003") == ("ready", "", "")
    assert [c.status.state.value for c in changes if c.new_state] == \
        ["ready", "ringing", "on_call", "wrapup", "ready"]
    assert [c for c in changes if c.new_state][-1].by == "1003"


async def test_wrapup_ends_by_itself_after_the_projects_limit_into_the_chosen_break():
    pbx = FakeQueues()
    states, changes = make(pbx, wrapup_seconds=60, wrapup_by_project=(("acme-support", 0.3),))
    await states.log_in("1003")
    call = call_for("1003")
    states.on_call_event(AgentAnswered(call=call, at=time.time(), agent="1003", leg=call.legs["a"]))
    states.on_call_event(CallEnded(call=call, at=time.time()))
    await asyncio.sleep(0.01)
    # During the wrap-up the agent chooses a break to follow it.
    await states.set_state("1003", "not_ready", "break")
    assert state(states, "1003") == ("wrapup", "", "break")
    assert pbx.members[("support", "PJSIP/1003")]["PausedReason"] == "wrap-up then break"
    await asyncio.sleep(0.5)
    assert state(states, "1003") == ("not_ready", "break", "")
    assert [c for c in changes if c.new_state][-1].by == "service"    # the limit ended it


async def test_a_ringing_call_that_is_missed_leaves_no_wrapup():
    pbx = FakeQueues()
    states, _ = make(pbx)
    await states.log_in("1002")
    call = call_for("1002", project="acme-sales")
    states.on_call_event(AgentRinging(call=call, at=time.time(), agent="1002", leg=call.legs["a"]))
    states.on_call_event(CallEnded(call=call, at=time.time()))
    await asyncio.sleep(0.01)
    assert state(states, "1002")[0] == "ready"
    assert not any(a[0] == "pause" for a in pbx.actions)


async def test_ready_agents_follow_groups_penalty_and_reachability():
    pbx = FakeQueues()
    states, _ = make(pbx)
    for a in ("1001", "1002", "1003"):
        await states.log_in(a)
    assert states.ready_agents("acme-support") == ["1003", "1001"]     # penalty 0 before 2
    assert states.ready_agents("acme-sales") == ["1001", "1002"]
    assert states.ready_agents(queue="support") == ["1003", "1001"]
    await states.set_state("1003", "not_ready", "training")
    assert states.ready_agents("acme-support") == ["1001"]
    pbx.device("PJSIP/1001", 5)                  # phone not registered
    assert states.ready_agents("acme-support") == []
    assert states.status("1001").state is AgentState.READY and not states.status("1001").reachable
    # A project no group names may go to any ready agent.
    assert states.ready_agents("acme-unknown") == ["1002"]


async def test_resync_after_a_restart_keeps_asterisks_states_and_times():
    pbx = FakeQueues()
    first, _ = make(pbx)
    await first.log_in("1001")
    await first.log_in("1003")
    await first.set_state("1001", "not_ready", "lunch")
    lunch_since = first.status("1001").since
    pbx.device("PJSIP/1003", 2)                  # 1003 is mid-call
    # A new service: it knows nothing but the record and Asterisk.
    second, changes = make(pbx)
    second.restore({"1001": {"state": "not_ready", "reason": "lunch", "started_at": lunch_since}})
    pbx.actions.clear()
    await second.resync(pbx.status())
    assert state(second, "1001") == ("not_ready", "lunch", "")
    assert second.status("1001").since == lunch_since
    assert state(second, "1003")[0] == "on_call"
    assert pbx.actions == []                     # nothing paused or unpaused by mistake
    assert {c.status.login for c in changes} == {"1001", "1003", "1002"}


async def test_resync_restores_a_running_wrapup_and_ends_one_that_ran_out():
    pbx = FakeQueues()
    first, _ = make(pbx, wrapup_seconds=30)
    await first.log_in("1003")
    await first.log_in("1002")
    await pbx.queue_pause("PJSIP/1003", True, "wrap-up then lunch")
    await pbx.queue_pause("PJSIP/1002", True, "wrap-up")
    now = time.time()
    second, _ = make(pbx, wrapup_seconds=30)
    second.restore({"1003": {"state": "wrapup", "reason": "", "started_at": now - 10,
                             "call_id": "c9", "project": "acme-support"},
                    "1002": {"state": "wrapup", "reason": "", "started_at": now - 100,
                             "call_id": "c8", "project": "acme-sales"}})
    pbx.actions.clear()
    await second.resync(pbx.status())
    s = second.status("1003")
    assert (s.state, s.then) == (AgentState.WRAPUP, "lunch")
    assert s.wrapup_until == pytest.approx(now + 20, abs=1)
    assert state(second, "1002") == ("ready", "", "")        # its 30 s were over
    assert pbx.actions == [("pause", "PJSIP/1002", False, "")]
    await second.wrapup_saved("1003", "c9")
    assert state(second, "1003") == ("not_ready", "lunch", "")


async def test_resync_adds_a_missing_group_queue_with_the_same_pause():
    pbx = FakeQueues()
    await pbx.queue_add("sales", "PJSIP/1001", paused=True, reason="meeting")
    states, _ = make(pbx)
    await states.resync(pbx.status())
    assert ("add", "support", "PJSIP/1001", True, "meeting") in pbx.actions
    assert state(states, "1001") == ("not_ready", "meeting", "")


async def test_a_wrapup_pause_lost_while_ami_was_down_is_sent_on_reconnect():
    pbx = FakeQueues()
    states, _ = make(pbx, wrapup_seconds=60)
    await states.resync(pbx.status())
    await states.log_in("1003")
    call = call_for("1003")
    states.on_call_event(AgentAnswered(call=call, at=time.time(), agent="1003", leg=call.legs["a"]))
    pbx.down = True
    states.on_call_event(CallEnded(call=call, at=time.time()))
    await asyncio.sleep(0.01)
    assert state(states, "1003")[0] == "wrapup"              # the service's own view
    assert pbx.members[("support", "PJSIP/1003")]["Paused"] == "0"
    pbx.down = False
    await states.resync(pbx.status())
    assert pbx.members[("support", "PJSIP/1003")]["PausedReason"] == "wrap-up"
    assert state(states, "1003")[0] == "wrapup"
