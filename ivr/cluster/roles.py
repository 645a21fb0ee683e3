"""Roles of one program over a bus: controllers and web fronts.

Without a bus, `ivr serve` runs every stage in one process (today's default).
With `bus.url` (NATS), an instance runs one role:

- **controller** (`ControllerRole`): follows PBXs (leases), tracks calls,
  pops scripts, records outcomes, runs the dialers, taps and coaches. It
  publishes every call event (`ivr.call.<pbx>.<call>`) and the coaching it
  pushes to a console (`ivr.agent.<login>.console`); it hears which
  consoles are open where (`ivr.presence`), checklist marks and wrap-ups
  made on any web front, and answers the web fronts' requests (live calls,
  transfers, departments).
- **web** (`WebRole`): serves the consoles and the APIs. Its script pop is
  a replica fed by the call events of every PBX, so an agent signed in on
  any web front sees their calls from any PBX; wrap-ups go to the shared
  store; coaching arrives from the controllers. After a (re)connect to the
  bus it asks the controllers for their live calls: calls it missed are
  adopted, calls that ended meanwhile are closed.

Both pops run the same code on the same events; the checklist marks that are
not (ticks from speech on the controller, clicks on a console) are sent
across, tagged with their origin so nobody applies their own twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

from ..ami.actions import ActionError, CallGone, NotConnected, QueueStatus, Refused
from ..ami.client import AmiError
from ..ami.message import AmiEvent
from ..bus import BusError, subjects
from ..bus.codec import decode, decode_call, decode_event, encode, encode_event
from ..calls.events import AgentAnswered, AgentRinging, CallEnded, CallEvent, CallStarted
from ..calls.model import MONITOR_CHANNEL_PREFIX, Call, CallState, LegRole
from ..supervision import MONITOR_CONTEXT

log = logging.getLogger(__name__)

PRESENCE_EVERY = 1.0  # s between a web front's presence messages
# What a web front may have a controller do on its PBX (listen in, consult
# transfers): these AMI actions, on a live call's channel or a listening line.
CALL_ACTIONS = ("Setvar", "Atxfer", "CancelAtxfer", "Hangup")
PRESENCE_TTL = 4.0  # s after which a silent web front's consoles count as closed


def publish_mark(
    bus: Any, instance: str, login: str, call_id: str, item: str, done: bool, by: str
) -> None:
    """A checklist mark made here, for the other instances (marked with its origin, so
    that it is not applied twice here)."""
    fields = {"login": login, "call_id": call_id, "item": item, "done": done, "by": by}
    bus.publish(subjects.agent(login, "mark"), {**fields, "origin": instance})


class _MarkHook:
    """Checklist marks across instances (a ScriptPop mark listener): marks of one
    origin (speech on controllers, clicks on web fronts) are sent across; marks
    applied from across are not sent back."""

    def __init__(self, pop: Any, send: Any, wanted: Any):
        self.pop, self.send, self.wanted = pop, send, wanted
        self.applying = False
        pop.subscribe_marks(self.marked)

    def marked(self, login: str, call_id: str, item: str, done: bool, by: str) -> None:
        if not self.applying and self.wanted(by):
            self.send(login, call_id, item, done, by)

    def apply(self, data: dict[str, Any]) -> None:
        self.applying = True
        try:
            self.pop.mark_item(
                str(data["login"]),
                str(data["call_id"]),
                str(data["item"]),
                bool(data["done"]),
                by=str(data.get("by", "agent")),
            )
        except Exception:
            log.debug("mark for %s/%s not applied", data.get("login"), data.get("call_id"))
        finally:
            self.applying = False


class ControllerRole:
    def __init__(self, bus: Any, service: Any):
        self.bus = bus
        self.service = service
        self.instance = service.instance
        self._presence: dict[str, tuple[frozenset[str], float]] = {}
        self._marks = _MarkHook(service.pop, self._send_mark, lambda by: by == "speech")

    async def start(self) -> None:
        svc = self.service
        svc.bus.subscribe(self._publish_event)  # after the pop: cards first
        svc.view.subscribe_coaching(self._send_coaching)
        await self.bus.subscribe(subjects.PRESENCE, self._on_presence)
        await self.bus.subscribe(subjects.AGENTS_MARK, self._on_mark)
        await self.bus.subscribe(subjects.AGENTS_WRAPPED, self._on_wrapped)
        await self.bus.serve(subjects.LIVE_CALLS, self._live_calls)
        # After a bus outage the web fronts may have missed call events: tell
        # them what is live (they also ask, but this instance may come back last).
        self.bus.on_reconnect.append(self.announce)
        await self.bus.serve(subjects.DEPARTMENTS, self._departments)
        for pbx in svc.settings.all_pbxs:
            await self.bus.serve(subjects.transfer(pbx.name), self._transfer)
            await self.bus.serve(subjects.pbx_action(pbx.name), self._pbx_action)
            await self.bus.serve(subjects.queue_action(pbx.name), self._queue_action)
        await self.bus.serve(subjects.QUEUE_STATUS, self._queue_status)
        # Queue and member events feed the web fronts' agent states and wallboard.
        self._queue_events = set(svc.agent_states.handlers) | set(svc.queue_board.handlers)
        for link in svc.links:
            link.on_ami_event = self._and_publish(link.on_ami_event)

    # -- out ---------------------------------------------------------------------
    def _and_publish(self, handler: Any) -> Any:
        def on_ami_event(link: Any, event: AmiEvent) -> None:
            if handler is not None:
                handler(link, event)
            if event.name in self._queue_events:
                self.bus.publish(subjects.pbx_ami(link.name), encode(event))

        return on_ami_event

    def _publish_event(self, event: CallEvent) -> None:
        self.bus.publish(subjects.call(event.call.pbx, event.call.call_id), encode_event(event))

    def _send_coaching(self, call_id: str, message: dict[str, Any], keep: bool) -> None:
        # Once per call (the web fronts' views push it to every agent on it);
        # nobody on the call: nobody to show it to.
        owners = self.service.pop.owners(call_id)
        if owners:
            self.bus.publish(
                subjects.agent(owners[0], "console"),
                {"login": owners[0], "call_id": call_id, "message": message, "keep": keep},
            )

    def _send_mark(self, login: str, call_id: str, item: str, done: bool, by: str) -> None:
        publish_mark(self.bus, self.instance, login, call_id, item, done, by)

    # -- in ----------------------------------------------------------------------
    def _on_presence(self, subject: str, data: dict[str, Any]) -> None:
        self._presence[str(data.get("instance"))] = (
            frozenset(data.get("logins") or ()),
            time.monotonic(),
        )

    def console_connected(self, login: str) -> bool:
        """Is the agent's console open on some web front (heard lately)?"""
        now = time.monotonic()
        return any(
            login in logins and now - at < PRESENCE_TTL for logins, at in self._presence.values()
        )

    def _on_mark(self, subject: str, data: dict[str, Any]) -> None:
        if data.get("origin") != self.instance:
            self._marks.apply(data)

    def _on_wrapped(self, subject: str, data: dict[str, Any]) -> None:
        self.service.pop.wrapped_up(str(data["login"]), str(data["call_id"]))

    def snapshot(self) -> dict[str, Any]:
        svc = self.service
        return {
            "instance": self.instance,
            "pbxs": svc.controller.followed,
            "calls": [encode(c) for c in svc.live_calls()],
        }

    async def _live_calls(self, subject: str, data: dict[str, Any]) -> dict[str, Any]:
        return self.snapshot()

    def announce(self) -> None:
        """Publish this controller's live calls (after a reconnect or a takeover)."""
        self.bus.publish(subjects.SNAPSHOTS, self.snapshot())

    async def _departments(self, subject: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"departments": await self.service.pbx.departments()}

    async def _transfer(self, subject: str, data: dict[str, Any]) -> dict[str, Any] | None:
        pbx = subject.split(".")[2]
        if pbx not in self.service.controller.followed:
            return None  # not ours now: the controller following it answers
        call = next(
            (c for c in self.service.live_calls() if c.call_id == data.get("call_id")), None
        )
        customer = call.customer_leg() if call is not None else None
        if customer is None or customer.ended_at is not None:
            return {"status": 409, "error": "the customer is no longer on the line"}
        try:
            await self.service.actions[pbx].transfer(
                customer.channel, str(data.get("department", ""))
            )
        except CallGone as exc:
            return {"status": 409, "error": str(exc)}
        except ActionError as exc:
            return {"status": 502, "error": str(exc)}
        return {"status": 200}

    async def _pbx_action(self, subject: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """A web front's listen-in or consult transfer step, on the PBX followed here:
        only the actions those need (an AMI proxy for anything else would hand the
        PBX to whoever reaches the bus)."""
        pbx = subject.split(".")[2]
        if pbx not in self.service.controller.followed:
            return None
        kind, fields = data.get("kind"), data.get("fields")
        if not isinstance(fields, dict):
            return {"error": "no action"}
        why = self._refused(pbx, str(kind), fields)
        if why:
            log.warning("bus: refused %s %s on PBX %s: %s", kind, fields.get("Action"), pbx, why)
            return {"error": f"refused: {why}"}
        ami = self.service.ami_for(pbx)
        try:
            reply = await (ami.originate(**fields) if kind == "originate" else ami.send(fields))
        except (AmiError, asyncio.TimeoutError, OSError) as exc:
            return {"error": str(exc) or type(exc).__name__}
        return {"reply": {str(k): str(v) for k, v in dict(reply).items()}}

    def _refused(self, pbx: str, kind: str, fields: dict[str, Any]) -> str:
        channel = str(fields.get("Channel", ""))
        if kind == "originate":
            if fields.get("Context") != MONITOR_CONTEXT:
                return "only a supervisor's listening line may be originated"
            if not str(fields.get("ChannelId", "")).startswith(MONITOR_CHANNEL_PREFIX):
                return "a listening line needs its channel id"
            return ""
        if kind != "send" or fields.get("Action") not in CALL_ACTIONS:
            return f"action {fields.get('Action')!r} is not one a console asks for"
        if fields.get("Action") == "Hangup" and channel.startswith(MONITOR_CHANNEL_PREFIX):
            return ""
        legs = {
            leg.channel
            for link in self.service.links
            if link.name == pbx
            for call in link.tracker.calls.values()
            for leg in call.legs.values()
            if leg.ended_at is None
        }
        return "" if channel in legs else "not a channel of a live call"

    async def _queue_action(self, subject: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """A web front's console sign-in or state change, on the agent's PBX."""
        pbx = subject.split(".")[2]
        if pbx not in self.service.controller.followed:
            return None
        op = str(data.get("op"))
        if op not in ("queue_add", "queue_remove", "queue_pause"):
            return {"status": 400, "error": f"unknown queue action {op!r}"}
        try:
            await getattr(self.service.actions[pbx], op)(
                *data.get("args", ()), **data.get("kw", {})
            )
        except ActionError as exc:
            return {"status": 502, "error": str(exc)}
        return {"status": 200}

    async def _queue_status(self, subject: str, data: dict[str, Any]) -> dict[str, Any] | None:
        if not self.service.controller.followed:
            return None
        return {"status": encode(await self.service.pbx.queue_status())}

    async def close(self) -> None:
        pass


class BusQueueActions:
    """A web front's agent states act on the PBX through the controller that
    follows the agent's PBX (queue sign-in, pauses); see ControllerRole."""

    def __init__(self, bus: Any, settings: Any):
        self.bus = bus
        self.pbxs = settings.all_pbxs

    def _pbx_of(self, interface: str) -> str:
        login = interface.partition("/")[2] or interface
        return next((p.name for p in self.pbxs if login in p.agents), self.pbxs[0].name)

    async def _ask(self, op: str, interface: str, *args: Any, **kw: Any) -> None:
        try:
            reply = await self.bus.request(
                subjects.queue_action(self._pbx_of(interface)),
                {"op": op, "args": list(args), "kw": kw},
                timeout=10.0,
            )
        except BusError:
            raise NotConnected("no controller follows that agent's PBX now") from None
        if reply.get("status") != 200:
            raise Refused(reply.get("error") or "refused")

    async def queue_add(self, queue: str, interface: str, **kw: Any) -> None:
        await self._ask("queue_add", interface, queue, interface, **kw)

    async def queue_remove(self, queue: str, interface: str) -> None:
        await self._ask("queue_remove", interface, queue, interface)

    async def queue_pause(
        self, interface: str, paused: bool, reason: str = "", queue: str | None = None
    ) -> None:
        await self._ask("queue_pause", interface, interface, paused, reason, queue)


class BusAmi:
    """A PBX's AMI as a web front's listen-ins and consult transfers use it: each
    action is made by the controller following that PBX (ControllerRole._pbx_action)."""

    def __init__(self, bus: Any, pbx: str, timeout: float = 60.0):
        self.bus, self.pbx, self.timeout = bus, pbx, timeout

    async def originate(self, **fields: Any) -> dict[str, Any]:
        return await self._ask("originate", fields, self.timeout)  # rings the phone: long

    async def send(self, action: dict, as_list: bool | None = None, timeout: float = 10.0) -> Any:
        return await self._ask("send", action, min(timeout, self.timeout))

    async def _ask(self, kind: str, fields: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            reply = await self.bus.request(
                subjects.pbx_action(self.pbx), {"kind": kind, "fields": fields}, timeout
            )
        except (BusError, asyncio.TimeoutError):
            raise AmiError(f"no controller follows PBX {self.pbx} now") from None
        if "error" in reply:
            raise AmiError(str(reply["error"]))
        return dict(reply.get("reply") or {})


class WebRole:
    def __init__(self, bus: Any, service: Any):
        self.bus = bus
        self.service = service
        self.instance = service.instance
        self.calls: dict[str, Call] = {}  # live calls of every PBX, from the bus
        self._marks = _MarkHook(service.pop, self._send_mark, lambda by: by != "speech")
        self._presence_task: asyncio.Task | None = None
        self._resync_task: asyncio.Task | None = None

    async def start(self) -> None:
        svc = self.service
        ctx = svc.console.ctx
        ctx.live_calls = lambda: list(self.calls.values())
        ctx.transfer = self.transfer
        ctx.departments = svc.departments = self.departments
        ctx.save_wrapup = self._wrapped_after(ctx.save_wrapup)
        svc.agent_states.pbx = BusQueueActions(self.bus, svc.settings)
        # Listen-ins and consult transfers: on the calls of every PBX (this front's
        # replica), their AMI actions made by the PBX's controller.
        default = svc.settings.all_pbxs[0].name
        for stage in (svc.supervision, svc.transfers):
            stage.ami_for = lambda pbx: BusAmi(self.bus, pbx or default)
            stage.live_call = self.calls.get
        svc.transfers.departments = self.departments
        await self.bus.subscribe(subjects.PBX_AMI, self._on_queue_event)
        await self.bus.subscribe(subjects.CALLS, self._on_call_event)
        await self.bus.subscribe(subjects.AGENTS_CONSOLE, self._on_console)
        await self.bus.subscribe(subjects.AGENTS_MARK, self._on_mark)
        await self.bus.subscribe(subjects.SNAPSHOTS, lambda s, data: self.apply_snapshot(data))
        self.bus.on_reconnect.append(self.resync_soon)
        self._presence_task = asyncio.ensure_future(self._announce())
        await self.resync()

    # -- calls -------------------------------------------------------------------
    def _on_call_event(self, subject: str, data: dict[str, Any]) -> None:
        event = decode_event(data)
        self._apply(event)

    def _apply(self, event: CallEvent) -> None:
        if isinstance(event, CallEnded):
            self.calls.pop(event.call.call_id, None)
        else:
            self.calls[event.call.call_id] = event.call
        self.service.bus.publish(event)

    def resync_soon(self) -> None:
        if self._resync_task is None or self._resync_task.done():
            self._resync_task = asyncio.ensure_future(self.resync())

    async def resync(self) -> None:
        """Catch up with the controllers' live calls (after a start or a bus outage)."""
        try:
            replies = await self.bus.gather(subjects.LIVE_CALLS, {}, window=0.5)
        except Exception as exc:
            log.warning("web: could not ask the controllers for live calls: %s", exc)
            return
        for reply in replies:
            self.apply_snapshot(reply)
        await self._queues_resync()
        log.info(
            "web: resynced from %d controllers (PBXs %s): %d live calls",
            len(replies),
            sorted(p for r in replies for p in r.get("pbxs", ())),
            len(self.calls),
        )

    def apply_snapshot(self, snapshot: dict[str, Any]) -> None:
        """One controller's live calls: adopt those we missed, end those of its
        PBXs that are gone."""
        now = time.time()
        followed = set(snapshot.get("pbxs", ()))
        seen: set[str] = set()
        for data in snapshot.get("calls", ()):
            call = decode_call(data)
            seen.add(call.call_id)
            if call.call_id not in self.calls:
                for event in _adopted(call, now):
                    self._apply(event)
        for call_id, call in list(self.calls.items()):
            if call_id not in seen and call.pbx in followed:
                ended = dataclasses.replace(call.snapshot(), state=CallState.ENDED, ended_at=now)
                self._apply(CallEnded(call=ended, at=now))

    def _on_queue_event(self, subject: str, data: dict[str, Any]) -> None:
        event = decode(AmiEvent, data)
        self.service.agent_states.on_ami_event(event)
        self.service.queue_board.on_ami_event(event)

    async def _queues_resync(self) -> None:
        """Agent states and queue figures as the controllers' PBXs have them now."""
        try:
            replies = await self.bus.gather(subjects.QUEUE_STATUS, {}, window=0.5)
        except Exception as exc:
            log.warning("web: could not ask the controllers for queue status: %s", exc)
            return
        parts = [decode(QueueStatus, r["status"]) for r in replies if "status" in r]
        if not parts:
            return
        status = QueueStatus(
            max(p.at for p in parts),
            tuple(dict.fromkeys(q for p in parts for q in p.queues)),
            tuple(m for p in parts for m in p.members),
            tuple(c for p in parts for c in p.callers),
        )
        self.service.queue_board.resync(status)
        await self.service.agent_states.resync(status)

    # -- consoles ----------------------------------------------------------------
    def _on_console(self, subject: str, data: dict[str, Any]) -> None:
        # Into this front's view: kept for a console that reloads, pushed to the
        # agents on the call whose console is open here.
        self.service.view.coaching_message(
            str(data["call_id"]), data["message"], bool(data.get("keep", True))
        )

    def _on_mark(self, subject: str, data: dict[str, Any]) -> None:
        if data.get("origin") != self.instance:
            self._marks.apply(data)

    def _send_mark(self, login: str, call_id: str, item: str, done: bool, by: str) -> None:
        publish_mark(self.bus, self.instance, login, call_id, item, done, by)

    def _wrapped_after(self, save: Any) -> Any:
        async def save_and_tell(**wrapup: Any) -> None:
            await save(**wrapup)
            agent, call_id = wrapup["agent"], wrapup["call_id"]
            self.bus.publish(subjects.agent(agent, "wrapped"), {"login": agent, "call_id": call_id})

        return save_and_tell

    async def _announce(self) -> None:
        while True:
            logins = sorted({c.login for c in self.service.hub.clients})
            self.bus.publish(subjects.PRESENCE, {"instance": self.instance, "logins": logins})
            await asyncio.sleep(PRESENCE_EVERY)

    async def transfer(self, channel: str | None, department: str) -> None:
        call = next(
            (
                c
                for c in self.calls.values()
                if channel and any(leg.channel == channel for leg in c.legs.values())
            ),
            None,
        )
        if call is None:
            raise CallGone("the customer is no longer on the line")
        try:
            reply = await self.bus.request(
                subjects.transfer(call.pbx),
                {"call_id": call.call_id, "department": department},
                timeout=10.0,
            )
        except BusError:
            raise NotConnected("no controller follows that call's PBX now") from None
        if reply.get("status") == 409:
            raise CallGone(reply.get("error") or "the call is no longer live")
        if reply.get("status") != 200:
            raise Refused(reply.get("error") or "refused")

    async def departments(self) -> list[str]:
        try:
            reply = await self.bus.request(subjects.DEPARTMENTS, {}, timeout=5.0)
        except BusError:
            return []
        return list(reply.get("departments") or ())

    async def close(self) -> None:
        for task in (self._presence_task, self._resync_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


def _adopted(call: Call, now: float) -> list[CallEvent]:
    """Events that bring a replica up to a live call it never heard of."""
    events: list[CallEvent] = [CallStarted(call=call, at=now)]
    for leg in call.legs.values():
        if leg.role is not LegRole.AGENT or leg.ended_at is not None:
            continue
        if leg.state == "Up":
            events.append(AgentAnswered(call=call, at=now, agent=leg.endpoint, leg=leg))
        elif leg.state in ("Ring", "Ringing"):
            events.append(AgentRinging(call=call, at=now, agent=leg.endpoint, leg=leg))
    return events
