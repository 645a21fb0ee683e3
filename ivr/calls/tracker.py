"""AMI events in, calls and typed call events out.

``CallTracker.feed`` is plain synchronous logic with no I/O, so it can be unit
tested on event sequences captured from a real Asterisk and benchmarked by
replaying them. It tolerates missing fields, unknown channels (it builds the
leg from whatever event names it first) and events for calls it never saw.
After an AMI reconnect, ``resync`` reconciles the live channel list: calls in
progress are kept or adopted, legs that vanished while we were away are ended
(at the moment the connection was lost, which the caller passes in).

Besides the parties of a call it follows what happens to them: holds (Hold,
Unhold), transfers (a phone's REFER with Replaces joins the consultation call
to the customer's call; the console's AMI Atxfer consults within the call),
supervisors listening in (ChanSpyStart/Stop of the service's monitoring
channels, named MONITOR_CHANNEL_PREFIX...) and phones that refuse a call.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from typing import Callable, Iterable

from ..ami.message import AmiEvent
from .events import (
    AgentAnswered,
    AgentLeft,
    AgentMissed,
    AgentMoved,
    AgentRejected,
    AgentRinging,
    CallBridged,
    CallEnded,
    CallEvent,
    CallHeld,
    CallQueued,
    CallResumed,
    CallStarted,
    CallTransferred,
    CallUpdated,
    CustomerAnswered,
    MonitorEnded,
    MonitorStarted,
)
from .model import (
    MONITOR_CHANNEL_PREFIX,
    MONITOR_MODES,
    Call,
    CallState,
    Direction,
    Leg,
    LegRole,
    Monitor,
    Transfer,
)

log = logging.getLogger(__name__)

# Channels the service itself creates (audio taps) or that carry no party.
IGNORED_CHANNEL_PREFIXES = ("AudioSocket/", "Snoop/", "WebSocket/", "Message/")
# Channels with these Uniqueids (chosen by the service) are no party either.
IGNORED_UNIQUEID_PREFIXES = (MONITOR_CHANNEL_PREFIX,)

# Hangup causes of a phone that refused a call: 17 user busy (486), 21 call
# rejected (603 Decline).
REJECT_CAUSES = frozenset({17, 21})

# Channel variables (manager.conf channelvars) -> Call attributes.
VARIABLE_FIELDS = {
    "DID": "did",
    "DIALLED": "dialled",
    "IVR_CHOICE": "ivr_choice",
    "IVR_KEYS": "ivr_keys",
    "IVR_EXIT": "ivr_exit",
    "QUEUE_RESULT": "queue_result",
    "DEPARTMENT": "department",
    "PROJECT": "project",
    "CAMPAIGN": "campaign",
}

_GONE_MEMORY = 20000  # uniqueids of ended legs remembered, to drop late events


def endpoint_of(channel: str) -> str:
    """'PJSIP/1001-0000002a' -> '1001'; 'Local/100@agents-0001;1' -> '100@agents'."""
    _, _, rest = channel.partition("/")
    name, sep, _suffix = rest.rpartition("-")
    return name if sep else rest


class CallTracker:
    def __init__(
        self,
        customer_endpoints: Iterable[str] = ("trunk", "customer"),
        on_event: Callable[[CallEvent], None] | None = None,
        pbx: str = "",
    ):
        self.pbx = pbx  # set on every call (several PBXs)
        self.customer_endpoints = frozenset(customer_endpoints)
        self.calls: dict[str, Call] = {}
        self._leg_call: dict[str, str] = {}  # uniqueid -> call_id
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._ignored: OrderedDict[str, None] = OrderedDict()
        self._announced_ring: set[str] = set()  # agent legs already reported ringing
        self._touched: dict[str, int] = {}  # uniqueid -> resync generation
        self._monitor_call: dict[str, str] = {}  # supervisor channel uniqueid -> call_id
        self._monitors_seen: dict[str, AmiEvent] = {}  # monitoring channels in the last resync
        # Lines that joined while an agent consults (console attended transfer):
        # their variables (another queue, project ...) wait for the transfer.
        self._consult_vars: dict[str, dict[str, str]] = {}
        # After such a transfer only the consulted lines (and later ones) speak
        # for the call's variables: the customer's line still says the old queue.
        self._var_legs: dict[str, set[str]] = {}  # call_id -> uniqueids
        self._generation = 0
        self._out: list[CallEvent] = []
        self._on_event = on_event
        self.handlers = {
            "Newchannel": self._on_newchannel,
            "Newstate": self._on_channel,
            "Newexten": self._on_channel,
            "NewCallerid": self._on_channel,
            "NewConnectedLine": self._on_channel,
            "DialBegin": self._on_dial_begin,
            "DialEnd": self._on_dial_end,
            "BridgeEnter": self._on_bridge_enter,
            "BridgeLeave": self._on_bridge_leave,
            "Hold": self._on_hold,
            "Unhold": self._on_unhold,
            "QueueCallerJoin": self._on_queue_join,
            "QueueCallerAbandon": self._on_queue_abandon,
            "AgentCalled": self._on_agent_called,
            "ChanSpyStart": self._on_chanspy_start,
            "ChanSpyStop": self._on_chanspy_stop,
            "BlindTransfer": self._on_blind_transfer,
            "AttendedTransfer": self._on_attended_transfer,
            "Hangup": self._on_hangup,
        }

    # ------------------------------------------------------------ entry points
    def feed(self, ev: AmiEvent) -> list[CallEvent]:
        """Apply one AMI event; return the call events it caused (also sent to on_event)."""
        handler = self.handlers.get(ev.name)
        if handler is None:
            return []
        self._out = []
        handler(ev)
        out, self._out = self._out, []
        if self._on_event:
            for e in out:
                self._on_event(e)
        return out

    def resync_begin(self) -> None:
        """Called right after (re)login, before asking Asterisk for its channel list."""
        self._generation += 1
        self._monitors_seen = {}

    def resync_channel(self, ev: AmiEvent) -> list[CallEvent]:
        """One CoreShowChannel entry: adopt or refresh that leg."""
        self._out = []
        if ev.get("Uniqueid").startswith(MONITOR_CHANNEL_PREFIX):
            self._monitors_seen[ev.get("Uniqueid")] = ev  # settled in resync_end
            return []
        leg, call = self._leg(ev, "", create=True)
        if leg is not None and call is not None:
            if ev.get("BridgeId"):
                leg.bridge = ev.get("BridgeId")
            self._adopt_state(call, leg, ev)
        out, self._out = self._out, []
        if self._on_event:
            for e in out:
                self._on_event(e)
        return out

    def resync_end(
        self, at: float, why: str = "ended while AMI was disconnected", now: float | None = None
    ) -> list[CallEvent]:
        """End every leg Asterisk no longer has: it hung up while we were away.

        ``at``: when those legs are taken to have ended, i.e. when the AMI
        connection was lost (a PBX that crashed took its calls down with it
        then; the reconnect time would add the outage to every call's talk
        time). ``why`` becomes their hangup cause text."""
        self._out = []
        now = at if now is None else now
        self._resync_monitors(at, now)
        for call in list(self.calls.values()):
            for leg in list(call.legs.values()):
                if leg.ended_at is None and self._touched.get(leg.uniqueid, 0) < self._generation:
                    log.info("call %s: leg %s %s", call.call_id, leg.channel, why)
                    self._end_leg(call, leg, at, None, why)
        out, self._out = self._out, []
        if self._on_event:
            for e in out:
                self._on_event(e)
        return out

    # ------------------------------------------------------------ legs and calls
    def _emit(self, cls: type, call: Call, at: float, **kw) -> None:
        self._out.append(cls(call=call.snapshot(), at=at, **kw))

    def _leg(
        self, ev: AmiEvent, prefix: str, create: bool = True
    ) -> tuple[Leg | None, Call | None]:
        uniqueid = ev.get(prefix + "Uniqueid")
        channel = ev.get(prefix + "Channel")
        if not uniqueid or uniqueid in self._gone or uniqueid in self._ignored:
            return None, None
        if channel.startswith(IGNORED_CHANNEL_PREFIXES) or uniqueid.startswith(
            IGNORED_UNIQUEID_PREFIXES
        ):
            self._remember(self._ignored, uniqueid)
            return None, None
        call_id = self._leg_call.get(uniqueid)
        if call_id is not None:
            self._touched[uniqueid] = self._generation
            call = self.calls[call_id]
            leg = call.legs[uniqueid]
            self._refresh(call, leg, ev, prefix)
            return leg, call
        if not create or not channel:
            return None, None
        linkedid = ev.get(prefix + "Linkedid") or uniqueid
        at = ev.received
        known = self.calls.get(linkedid)
        new_call = known is None
        if known is not None:
            call = known
        else:
            call = Call(call_id=linkedid, started_at=at, pbx=self.pbx)
            self.calls[linkedid] = call
        endpoint = endpoint_of(channel)
        if not channel.startswith(("PJSIP/", "SIP/", "IAX2/")):
            role = LegRole.OTHER
        elif endpoint in self.customer_endpoints:
            role = LegRole.CUSTOMER
        else:
            role = LegRole.AGENT
        leg = Leg(
            uniqueid=uniqueid,
            channel=channel,
            linkedid=linkedid,
            endpoint=endpoint,
            role=role,
            created_at=at,
        )
        call.legs[uniqueid] = leg
        self._leg_call[uniqueid] = linkedid
        self._touched[uniqueid] = self._generation
        if call.state is CallState.ON_HOLD and role is not LegRole.CUSTOMER:
            self._consult_vars[uniqueid] = {}
        elif linkedid in self._var_legs and role is not LegRole.CUSTOMER:
            self._var_legs[linkedid].add(uniqueid)
        self._refresh(call, leg, ev, prefix, quiet=True)
        if uniqueid == linkedid and role is LegRole.CUSTOMER and not call.did:
            # An inbound SIP channel is created on the number the caller dialled.
            call.did = ev.get(prefix + "Exten")
        if uniqueid not in self._consult_vars:
            self._update_call_fields(call, ev.vars_of(prefix), at, quiet=True)
        if new_call:
            self._emit(CallStarted, call, at)
        return leg, call

    def _refresh(
        self, call: Call, leg: Leg, ev: AmiEvent, prefix: str, quiet: bool = False
    ) -> None:
        g = ev.get
        leg.state = g(prefix + "ChannelStateDesc") or leg.state
        leg.context = g(prefix + "Context") or leg.context
        leg.exten = g(prefix + "Exten") or leg.exten
        num, name = g(prefix + "CallerIDNum"), g(prefix + "CallerIDName")
        if num and num != "<unknown>":
            leg.caller_num = num
        if name and name != "<unknown>":
            leg.caller_name = name
        if leg.state == "Up" and leg.answered_at is None:
            leg.answered_at = ev.received
        if leg.role is LegRole.CUSTOMER and call.direction is not Direction.OUTBOUND:
            call.customer_num = call.customer_num or leg.caller_num
            call.customer_name = call.customer_name or leg.caller_name
        if leg.uniqueid in self._consult_vars:
            self._consult_vars[leg.uniqueid].update(ev.vars_of(prefix))
        # A line that joined from another call (a phone's attended transfer)
        # carries that call's variables: they say nothing about this one.
        elif (
            not quiet
            and not leg.moved_from
            and leg.uniqueid in self._var_legs.get(call.call_id, (leg.uniqueid,))
        ):
            self._update_call_fields(call, ev.vars_of(prefix), ev.received)

    def _update_call_fields(self, call: Call, variables, at: float, quiet: bool = False) -> None:
        changed = False
        for name, value in variables.items():
            if call.variables.get(name) == value:
                continue
            call.variables[name] = value
            attr = VARIABLE_FIELDS.get(name)
            if attr and value and getattr(call, attr) != value:
                setattr(call, attr, value)
                changed = True
                if attr == "queue_result":
                    # Asterisk reports a queue timeout as QueueCallerAbandon too;
                    # the dialplan's QUEUE_RESULT says the caller did not give up.
                    call.abandoned = False
            elif name == "CALL_DIRECTION" and value:
                try:
                    direction = Direction(value.lower())
                except ValueError:
                    log.warning("call %s: unknown CALL_DIRECTION %r", call.call_id, value)
                    continue
                if direction is not call.direction:
                    call.direction = direction
                    changed = True
        if self._decide_direction(call):
            changed = True
        if call.direction is Direction.OUTBOUND and call.dialled:
            call.customer_num = call.dialled
        if changed and not quiet:
            self._emit(CallUpdated, call, at)

    def _decide_direction(self, call: Call) -> bool:
        """Without a CALL_DIRECTION variable, infer it from who started the call."""
        if "CALL_DIRECTION" in call.variables and call.direction is not Direction.UNKNOWN:
            return False
        first = call.legs.get(call.call_id)
        if first is None:
            return False
        roles = {leg.role for leg in call.legs.values() if leg is not first}
        if first.role is LegRole.CUSTOMER:
            new = Direction.INBOUND
        elif first.role is LegRole.AGENT and LegRole.CUSTOMER in roles:
            new = Direction.OUTBOUND
        elif first.role is LegRole.AGENT and LegRole.AGENT in roles:
            new = Direction.INTERNAL
        else:
            return False
        if new is call.direction:
            return False
        call.direction = new
        return True

    def _remember(self, memory: OrderedDict, uniqueid: str) -> None:
        memory[uniqueid] = None
        if len(memory) > _GONE_MEMORY:
            memory.popitem(last=False)

    # ------------------------------------------------------------ handlers
    def _on_newchannel(self, ev: AmiEvent) -> None:
        self._leg(ev, "")

    def _on_channel(self, ev: AmiEvent) -> None:
        self._leg(ev, "")

    def _on_dial_begin(self, ev: AmiEvent) -> None:
        self._leg(ev, "")  # absent for channels placed by Originate
        dest, call = self._leg(ev, "Dest")
        if dest is None or call is None:
            return
        self._ringing(call, dest, ev.received)

    def _on_agent_called(self, ev: AmiEvent) -> None:
        # app_queue also sends DialBegin for members; whichever comes first counts.
        dest, call = self._leg(ev, "Dest")
        if dest is not None and call is not None:
            self._ringing(call, dest, ev.received)

    def _ringing(self, call: Call, dest: Leg, at: float) -> None:
        if dest.role is LegRole.AGENT:
            if dest.uniqueid in self._announced_ring:
                return
            self._announced_ring.add(dest.uniqueid)
            if dest.endpoint not in call.agents_rung:
                call.agents_rung.append(dest.endpoint)
            if call.agent_ring_at is None:
                call.agent_ring_at = at
            if call.state in (CallState.DIALPLAN, CallState.QUEUED, CallState.TRANSFERRED):
                call.state = CallState.RINGING
            self._emit(AgentRinging, call, at, agent=dest.endpoint, leg=dest)
        elif dest.role is LegRole.CUSTOMER and call.answered_at is None:
            call.state = CallState.RINGING
            self._decide_direction(call)

    def _on_dial_end(self, ev: AmiEvent) -> None:
        self._leg(ev, "")
        dest, call = self._leg(ev, "Dest")
        if dest is None or call is None:
            return
        status = ev.get("DialStatus")
        at = ev.received
        if not status or dest.dial_status:
            return  # app_queue may report one dial's end twice
        dest.dial_status = status
        if status == "ANSWER":
            dest.answered_at = dest.answered_at or at
            if dest.role is LegRole.AGENT:
                call.agent = dest.endpoint
                call.agent_answered_at = call.agent_answered_at or at
                if call.direction is not Direction.OUTBOUND and call.answered_at is None:
                    call.answered_at = at
                if call.state not in (CallState.BRIDGED, CallState.ON_HOLD):
                    call.state = CallState.ANSWERED
                last = call.transfers[-1] if call.transfers else None
                if last is not None and last.to_agent is None and last.by_agent != dest.endpoint:
                    last.to_agent = dest.endpoint  # took the call after a blind/queue transfer
                self._emit(AgentAnswered, call, at, agent=dest.endpoint, leg=dest)
            elif dest.role is LegRole.CUSTOMER:
                if call.answered_at is None:
                    call.answered_at = at
                if call.state not in (CallState.BRIDGED, CallState.ON_HOLD):
                    call.state = CallState.ANSWERED
                self._emit(CustomerAnswered, call, at, leg=dest)
        elif dest.role is LegRole.AGENT:
            if call.state is CallState.RINGING and call.answered_at is None:
                call.state = CallState.QUEUED if call.queued_at else CallState.DIALPLAN
            self._emit(AgentMissed, call, at, agent=dest.endpoint, status=status)

    def _on_bridge_enter(self, ev: AmiEvent) -> None:
        leg, call = self._leg(ev, "")
        if leg is None or call is None:
            return
        leg.bridge = ev.get("BridgeUniqueid")
        parties = [
            lg
            for lg in call.legs.values()
            if lg.bridge == leg.bridge and lg.ended_at is None and lg.role is not LegRole.OTHER
        ]
        if len(parties) >= 2 and call.state not in (CallState.BRIDGED, CallState.ON_HOLD):
            call.state = CallState.BRIDGED
            call.answered_at = call.answered_at or ev.received
            self._emit(CallBridged, call, ev.received)

    def _on_bridge_leave(self, ev: AmiEvent) -> None:
        leg, _ = self._leg(ev, "", create=False)
        if leg is not None:
            leg.bridge = ""

    def _on_hold(self, ev: AmiEvent) -> None:
        # Raised on the line that asked for the hold: the agent's hold button
        # (a re-INVITE sendonly/inactive) or the console's consultation.
        leg, call = self._leg(ev, "")
        if leg is None or call is None or call.state is CallState.ON_HOLD:
            return
        call.state = CallState.ON_HOLD
        call.hold_started_at = ev.received
        call.hold_by = leg.uniqueid
        self._emit(CallHeld, call, ev.received)

    def _on_unhold(self, ev: AmiEvent) -> None:
        leg, call = self._leg(ev, "")
        if call is None or call.state is not CallState.ON_HOLD:
            return
        self._end_hold(call, ev.received)

    def _end_hold(self, call: Call, at: float, emit: bool = True) -> None:
        if call.hold_started_at is not None:
            call.hold_seconds += max(0.0, at - call.hold_started_at)
        call.hold_started_at = None
        call.hold_by = ""
        if call.state is CallState.ON_HOLD:
            call.state = CallState.BRIDGED
            if emit:
                self._emit(CallResumed, call, at)

    def _on_queue_join(self, ev: AmiEvent) -> None:
        leg, call = self._leg(ev, "")
        if leg is None or call is None:
            return
        queue = ev.get("Queue")
        at = ev.received
        leg.queue = queue
        if call.agent_answered_at is not None and leg.role is not LegRole.CUSTOMER:
            # An agent consults a queue (console attended transfer): the agent's
            # line waits there, not the customer. AttendedTransfer records it.
            return
        if call.agent_answered_at is not None:
            # Back in a queue after an agent had it: the agent transferred the call.
            self._var_legs.pop(call.call_id, None)  # the customer's line speaks again
            already = call.transfers and call.transfers[-1].at >= at - 2.0
            call.queue = queue
            call.state = CallState.TRANSFERRED
            if not already:
                call.transfers.append(
                    Transfer(at=at, kind="queue", by_agent=call.agent, target=queue)
                )
                self._emit(CallTransferred, call, at, how="queue", target=queue)
            return
        call.queue = queue
        call.queued_at = call.queued_at or at
        call.state = CallState.QUEUED
        self._emit(CallQueued, call, at, queue=queue)

    def _on_queue_abandon(self, ev: AmiEvent) -> None:
        _, call = self._leg(ev, "")
        if call is not None and call.answered_at is None:
            call.abandoned = True

    def _on_blind_transfer(self, ev: AmiEvent) -> None:
        self._transfer(
            ev,
            "blind",
            ev.get("Extension") or ev.get("TransfereeChannel"),
            ("Transferee", "Transferer"),
        )

    def _on_attended_transfer(self, ev: AmiEvent) -> None:
        if ev.get("Result") not in ("", "Success"):
            return
        at = ev.received
        transferee, call = self._leg(ev, "Transferee")
        orig, orig_call = self._leg(ev, "OrigTransferer")
        second, _ = self._leg(ev, "SecondTransferer")
        target, target_call = self._leg(ev, "TransferTarget")
        call = call or orig_call
        if call is None:
            return
        by_agent = next(
            (lg.endpoint for lg in (orig, second) if lg is not None and lg.role is LegRole.AGENT),
            None,
        )
        consult = None
        if target is not None and target_call is not None and target_call is not call:
            # A phone's consultation call has a Linkedid of its own: the target's
            # line now talks to the customer, so it becomes part of this call.
            consult = target_call.call_id
            self._move_leg(target_call, target, call, at)
        # The console consulted within the call: its lines now belong to the call.
        consulted = [lg for lg in call.legs.values() if lg.uniqueid in self._consult_vars]
        queue_leg = next((lg for lg in consulted if lg.queue and lg.ended_at is None), None)
        if queue_leg is not None:
            name = queue_leg.queue
        elif target is not None and target.channel.startswith("Local/"):
            name = ev.get("TransferTargetExten") or endpoint_of(target.channel).split("@")[0]
        elif target is not None:
            name = target.endpoint
        else:
            name = next(
                (lg.endpoint for lg in consulted if lg.role is LegRole.AGENT),
                ev.get("TransferTargetChannel") or ev.get("DestApp") or "",
            )
        if queue_leg is not None:
            call.queue = call.department = name  # transferred into that queue
        for leg in consulted:
            saved = self._consult_vars.pop(leg.uniqueid, {})
            if leg is queue_leg:
                self._update_call_fields(call, saved, at)  # the queue's project from now on
        if queue_leg is not None:
            # The queue's line and the agents it rang carry the new queue's
            # variables; the customer's and the consulting half of the Local
            # channel still carry the old ones.
            self._var_legs[call.call_id] = {queue_leg.uniqueid} | {
                lg.uniqueid for lg in consulted if lg.role is LegRole.AGENT
            }
        to_agent = (
            target.endpoint
            if target is not None
            and target.role is LegRole.AGENT
            and target.answered_at is not None
            else self._answered_agent(call, besides=by_agent)
        )
        call.transfers.append(
            Transfer(
                at=at,
                kind="attended",
                by_agent=by_agent,
                target=name,
                to_agent=to_agent,
                consult_call=consult,
            )
        )
        self._end_hold(call, at, emit=False)
        if to_agent is not None:
            call.agent = to_agent
            call.state = CallState.BRIDGED
        else:
            call.state = CallState.TRANSFERRED
        self._emit(CallTransferred, call, at, how="attended", target=name)
        if (
            consult is not None
            and target is not None
            and target.role is LegRole.AGENT
            and target.answered_at is not None
        ):
            # The second agent's console takes the customer's call (script, coaching).
            self._emit(AgentAnswered, call, at, agent=target.endpoint, leg=target)

    def _answered_agent(self, call: Call, besides: str | None = None) -> str | None:
        """The agent whose line is up in the call (the latest to answer), if any."""
        legs = [
            lg
            for lg in call.agent_legs()
            if lg.ended_at is None and lg.answered_at is not None and lg.endpoint != besides
        ]
        return max(legs, key=lambda lg: lg.answered_at or 0.0).endpoint if legs else None

    def _move_leg(self, src: Call, leg: Leg, dst: Call, at: float) -> None:
        src.legs.pop(leg.uniqueid, None)
        dst.legs[leg.uniqueid] = leg
        self._leg_call[leg.uniqueid] = dst.call_id
        leg.moved_from = src.call_id
        if leg.role is LegRole.AGENT:
            if leg.endpoint not in dst.agents_rung:
                dst.agents_rung.append(leg.endpoint)
            if src.agent == leg.endpoint:
                src.agent = self._answered_agent(src) or src.agent
            self._emit(AgentMoved, src, at, agent=leg.endpoint, leg=leg, to_call=dst.call_id)
        if all(lg.ended_at is not None for lg in src.legs.values()):
            self._finish(src, at, leg)

    def _transfer(self, ev: AmiEvent, kind: str, target: str, prefixes: tuple[str, ...]) -> None:
        if ev.get("Result") not in ("", "Success"):
            return
        call = None
        by_agent = None
        for prefix in prefixes:
            leg, c = self._leg(ev, prefix)
            if c is not None:
                call = call or c
                if leg is not None and leg.role is LegRole.AGENT and by_agent is None:
                    by_agent = leg.endpoint
        if call is None:
            return
        call.transfers.append(Transfer(at=ev.received, kind=kind, by_agent=by_agent, target=target))
        call.state = CallState.TRANSFERRED
        self._emit(CallTransferred, call, ev.received, how=kind, target=target)

    def _on_hangup(self, ev: AmiEvent) -> None:
        leg, call = self._leg(ev, "", create=False)
        if leg is None or call is None:
            return
        cause = ev.get("Cause")
        self._end_leg(
            call, leg, ev.received, int(cause) if cause.isdigit() else None, ev.get("Cause-txt")
        )

    def _end_leg(self, call: Call, leg: Leg, at: float, cause: int | None, cause_txt: str) -> None:
        leg.ended_at = at
        leg.cause, leg.cause_txt = cause, cause_txt
        self._leg_call.pop(leg.uniqueid, None)
        self._touched.pop(leg.uniqueid, None)
        self._announced_ring.discard(leg.uniqueid)
        self._consult_vars.pop(leg.uniqueid, None)
        self._remember(self._gone, leg.uniqueid)
        if leg.role is LegRole.AGENT and leg.answered_at is None and cause in REJECT_CAUSES:
            self._emit(AgentRejected, call, at, agent=leg.endpoint, leg=leg, cause=cause)
        if any(lg.ended_at is None for lg in call.legs.values()):
            if call.hold_by == leg.uniqueid:
                self._end_hold(call, at)  # who held the call is gone
            if (
                leg.role is LegRole.AGENT
                and leg.answered_at is not None
                and leg.dial_status in ("ANSWER", "")
            ):
                if call.agent == leg.endpoint:  # e.g. a cancelled consultation's target
                    call.agent = self._answered_agent(call) or call.agent
                self._emit(AgentLeft, call, at, agent=leg.endpoint, leg=leg)
            return
        self._finish(call, at, leg)

    def _finish(self, call: Call, at: float, last: Leg) -> None:
        """Last leg gone: the call is over. Its cause is the customer's line's."""
        customer = call.customer_leg() or call.legs.get(call.call_id) or last
        call.cause, call.cause_txt = customer.cause, customer.cause_txt
        if call.hold_started_at is not None:
            call.hold_seconds += max(0.0, at - call.hold_started_at)
            call.hold_started_at = None
        for m in call.monitors:
            if m.ended_at is None:
                m.ended_at = at
                self._monitor_call.pop(m.spyer, None)
        call.ended_at = at
        call.state = CallState.ENDED
        self.calls.pop(call.call_id, None)
        self._var_legs.pop(call.call_id, None)
        self._emit(CallEnded, call, at)

    # ------------------------------------------------------------ supervisors
    def _on_chanspy_start(self, ev: AmiEvent) -> None:
        spyer = ev.get("SpyerUniqueid")
        if not spyer.startswith(MONITOR_CHANNEL_PREFIX):
            return  # the service's own audio taps spy too
        leg, call = self._leg(ev, "Spyee", create=False)
        if leg is None or call is None:
            return
        mode = ev.get("SpyerExten")
        self._start_monitor(
            call,
            leg,
            spyer,
            endpoint_of(ev.get("SpyerChannel")),
            ev.vars_of("Spyer").get("MONITOR_BY", ""),
            mode if mode in MONITOR_MODES else "listen",
            ev.received,
        )

    def _start_monitor(
        self, call: Call, leg: Leg, spyer: str, phone: str, by: str, mode: str, at: float
    ) -> None:
        if spyer in self._monitor_call:
            return
        m = Monitor(
            supervisor=by or phone,
            phone=phone,
            mode=mode,
            agent=leg.endpoint if leg.role is LegRole.AGENT else None,
            started_at=at,
            spyer=spyer,
        )
        call.monitors.append(m)
        self._monitor_call[spyer] = call.call_id
        self._emit(MonitorStarted, call, at, monitor=dataclasses.replace(m))

    def _on_chanspy_stop(self, ev: AmiEvent) -> None:
        self._end_monitor(ev.get("SpyerUniqueid"), ev.received)

    def _end_monitor(self, spyer: str, at: float) -> None:
        call = self.calls.get(self._monitor_call.pop(spyer, ""))
        if call is None:
            return
        for m in call.monitors:
            if m.spyer == spyer and m.ended_at is None:
                m.ended_at = at
                self._emit(MonitorEnded, call, at, monitor=dataclasses.replace(m))

    def _resync_monitors(self, at: float, now: float) -> None:
        """Monitoring channels after a reconnect: end those gone, adopt those we never saw."""
        for spyer in list(self._monitor_call):
            if spyer not in self._monitors_seen:
                self._end_monitor(spyer, at)
        for spyer, ev in self._monitors_seen.items():
            if spyer in self._monitor_call or ev.get("Application") != "ChanSpy":
                continue
            target = ev.get("ApplicationData").split(",")[0]
            call = self.calls.get(self._leg_call.get(target, ""))
            if call is None:
                continue
            mode = ev.get("Exten")
            self._start_monitor(
                call,
                call.legs[target],
                spyer,
                endpoint_of(ev.get("Channel")),
                ev.chan_vars.get("MONITOR_BY", ""),
                mode if mode in MONITOR_MODES else "listen",
                now - _duration(ev.get("Duration")),
            )

    def _adopt_state(self, call: Call, leg: Leg, ev: AmiEvent) -> None:
        """A leg seen in the channel list after a reconnect: catch up on its state."""
        at = ev.received
        if leg.role is LegRole.AGENT:
            if leg.state == "Up" and call.agent != leg.endpoint:
                call.agent = leg.endpoint
                call.agent_answered_at = call.agent_answered_at or leg.answered_at or at
                if leg.endpoint not in call.agents_rung:
                    call.agents_rung.append(leg.endpoint)
                if call.direction is not Direction.OUTBOUND:
                    call.answered_at = call.answered_at or at
                call.state = CallState.BRIDGED if leg.bridge else CallState.ANSWERED
                self._emit(AgentAnswered, call, at, agent=leg.endpoint, leg=leg)
            elif leg.state in ("Ringing", "Ring") and leg.uniqueid not in self._announced_ring:
                self._ringing(call, leg, at)
        elif (
            leg.role is LegRole.CUSTOMER
            and leg.state == "Up"
            and call.direction is Direction.OUTBOUND
        ):
            call.answered_at = call.answered_at or at
        self._update_call_fields(call, ev.chan_vars, at)


def _duration(text: str) -> float:
    """CoreShowChannel's Duration '01:02:03' -> seconds (0 if unreadable)."""
    try:
        h, m, s = (int(x) for x in text.split(":"))
    except ValueError:
        return 0.0
    return float(h * 3600 + m * 60 + s)
