#!/usr/bin/env python3
"""Pop and wallboard latency: AMI event in -> script card out on the agent's
WebSocket, and agent state change or queue event in -> the supervisors' wallboard.

    python bench/pop_latency.py [--calls N] [--window W] [--agents A] [--rate EV_PER_S]
                                [--wrapup-delay S] [--seed N] [--supervisors S]
                                [--state-every N]

The whole service runs (``ivr.server.Service``: AMI client, call tracker, bus,
script pop with the repository's scripts/, outcome recorder on SQLite in a
temporary folder, web console; not the audio taps and speech, which need a real
Asterisk's audio). A fake Asterisk in its own process replays the
AMI traffic recorded from the sandbox PBX (tests/data/*.ami, as
bench/ami_replay.py does): each recording is copied into many distinct calls
(fresh Uniqueid/Linkedid, channel names, and the agent's extension 1002/1003/
1004 replaced by one of ``--agents`` agents, 2000, 2001, ...), ``--window``
calls in flight at once, events paced at ``--rate``; the next event is always
the next one of a call in flight picked at random (``--seed``), so calls drift
apart as on a real PBX. An agent's phone only gets a new call when it is free,
the one free longest first.

Every agent is a user of the service, signs in (POST /api/login) and holds one
WebSocket (/ws?token=...) from this process, like 200 open agent consoles. The
service and these clients share one asyncio loop (and CPU): the client side
only stamps, parses and counts what arrives.
When a call's card reaches the wrap-up phase, its agent saves a wrap-up
(POST /api/calls/{id}/wrapup) after ``--wrapup-delay`` seconds, as agents do,
so the pop's cards come and go as on a real site.

Latency of a pop: the fake Asterisk notes time.time() just before writing the
event that makes an agent's phone ring (DialBegin, or app_queue's AgentCalled,
whichever the tracker reports ringing on: found by replaying each recording
alone); the agent's client notes time.time() when the first card of that call
(phase "ringing") comes out of its WebSocket. Same machine, same clock. The
card itself carries timing.ami_received_at (the service got the AMI event),
timing.popped_at (the pop started building the card) and sent_at (the
console's writer task took it from the agent's outbox), which split the total.

Agent states and the wallboard run as on a real site: every agent is in the
queues "support" and "sales" (one group; the fake Asterisk answers
QueueStatus with them, ready), the recordings' QueueMemberStatus events move
their states (ringing, on a call), each call's end puts its agent in wrap-up
(the service sends QueuePause; the fake Asterisk answers with the
QueueMemberPause events app_queue sends) until the wrap-up is saved. Every
``--state-every`` events the fake Asterisk also pauses a random agent with a
reason of its own ("bench-N", as a break set in the CLI would) and resumes
them a while later. ``--supervisors`` supervisors hold the wallboard open.

Latency of the wallboard: a state change from the time.time() just before the
fake Asterisk writes the QueueMemberPause of "bench-N" to the first
"wallboard_agent" message naming that reason on a supervisor's socket; a
queue event from QueueCallerJoin/QueueCallerLeave (the events that change a
queue's waiting callers) to the matching "wallboard_queue" message (the k-th
of that queue after the stream started).

Checks: every ringing event sent gives exactly one ringing card, on the
socket of the agent it rang; every injected pause and every queue event
reaches every supervisor once; the call events are those of replaying each
recording alone times its copies; no call is left in the tracker, no card in
the pop, every wrap-up is saved. Exit status 1 if not.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import secrets
import statistics
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
from harness import (
    QUEUES,
    ROOT,
    BenchError,
    Capture,
    Consoles,
    FakeAsterisk,
    FakePbx,
    GcPauses,
    Replicator,
    agent_users,
    ami_recordings,
    checked,
    cpu_seconds,
    fake_asterisk,
    header,
    incomplete,
    list_start,  # noqa: E402 (it puts the checkout on sys.path)
    machine,
    replay_parser,
    results_of,
    row,
    service_settings,
    verdict,
    whole_words,
    wire,
)

from ivr.ami.message import AmiEvent  # noqa: E402
from ivr.calls.events import AgentRinging, CallEvent  # noqa: E402
from ivr.calls.tracker import CallTracker  # noqa: E402
from ivr.config import AgentGroup, GroupMember, ShiftSettings, SpeechSettings  # noqa: E402
from ivr.secret import Secret  # noqa: E402
from ivr.server import Service  # noqa: E402
from ivr.users import User  # noqa: E402

FIRST_AGENT = 2000
MEMBER_QUEUES = ("sales", "support")  # every agent's (one group)


# --------------------------------------------------------------------- workload
@dataclass(frozen=True)
class Ring:
    """An event of a recording that makes an agent's phone ring (an AgentRinging)."""

    index: int  # in Capture.messages
    agent: str  # the recording's extension, e.g. '1003'
    call_id: str  # the recording's Linkedid


@dataclass(frozen=True)
class Recording:
    """A capture, and what replaying it alone into a tracker gives."""

    capture: Capture
    rings: tuple[Ring, ...]
    agents: tuple[str, ...]  # extensions rung, renamed per copy
    agent_tokens: re.Pattern | None  # any of them, whole
    kinds: Counter[str]  # call events

    @classmethod
    def load(cls, path: Path) -> "Recording":
        capture = Capture.load(path)
        tracker = CallTracker()
        rings, kinds = [], Counter()
        for i, message in enumerate(capture.messages):
            for e in tracker.feed(AmiEvent.parse(message)):
                kinds[e.kind] += 1
                if isinstance(e, AgentRinging):
                    rings.append(Ring(i, e.agent, e.call.call_id))
        agents = tuple(sorted({r.agent for r in rings}))
        return cls(capture, tuple(rings), agents, whole_words(agents) if agents else None, kinds)

    def copy(self, replicator: Replicator, agents: dict[str, str]) -> tuple[list[str], dict]:
        """A distinct copy, ringing ``agents`` (extension -> login) instead of the
        recording's: (messages, {message index: (call id, agent login)} of its rings)."""
        messages, new = replicator.copy(self.capture, agents)
        rings = {r.index: (new.get(r.call_id, r.call_id), agents[r.agent]) for r in self.rings}
        return messages, rings


@dataclass
class _Live:
    messages: list[str]
    rings: dict[int, tuple[str, str]]
    agents: list[str]
    pos: int = 0


@dataclass(frozen=True)
class Inject:
    """A pause (or resume) of an agent that the fake Asterisk makes itself."""

    login: str
    paused: bool
    reason: str


Item = tuple[bytes | Inject, tuple[str, str] | None, str | None]  # message, ring, queue event


def queue_of_event(message: str) -> str | None:
    """The queue whose waiting callers an event changes (QueueCallerJoin/Leave)."""
    if message.startswith(("Event: QueueCallerJoin\r\n", "Event: QueueCallerLeave\r\n")):
        m = re.search(r"^Queue: (.*?)\r$", message, re.M)
        return m.group(1) if m else None
    return None


def with_state_changes(
    stream: list[Item], logins: list[str], every: int, hold: int, seed: int
) -> tuple[list[Item], int]:
    """Every `every` events, pause a random agent (reason "bench-N"); resume
    them `hold` events later. Returns the stream and the number of pauses."""
    if every <= 0:
        return stream, 0
    rng = random.Random(seed + 1)
    out: list[Item] = []
    resumes: dict[int, list[Inject]] = {}
    paused: set[str] = set()
    n = 0
    for i, item in enumerate(stream):
        out.append(item)
        for inject in resumes.pop(i, []):
            out.append((inject, None, None))
            paused.discard(inject.login)
        if i % every == every - 1:
            free = [lg for lg in logins if lg not in paused]
            if free:
                login = rng.choice(free)
                paused.add(login)
                out.append((Inject(login, True, f"bench-{n}"), None, None))
                resumes.setdefault(i + hold, []).append(Inject(login, False, ""))
                n += 1
    for later in sorted(resumes):
        out.extend((inject, None, None) for inject in resumes[later])
    return out, n


def build_stream(
    recordings: list[Recording], calls: int, window: int, logins: list[str], seed: int
) -> list[Item]:
    """The events of ``calls`` calls, ``window`` of them in flight at once.

    Call k replays recording k mod len(recordings). Each next event is the next
    one of a call in flight chosen at random (seeded), so calls drift apart as on
    a real PBX; round robin (ami_replay.interleave) keeps copies in lockstep and
    makes their phones ring in bursts. A finished call makes room for the next.
    A call that rings an agent takes the agent free for the longest time, and
    frees it after its last event.
    """
    free = deque(logins)
    replicator = Replicator()

    def start(k: int) -> _Live:
        rec = recordings[k % len(recordings)]
        if len(free) < len(rec.agents):
            raise ValueError(f"no free agent for call {k}: use more --agents than --window")
        agents = {ext: free.popleft() for ext in rec.agents}
        messages, rings = rec.copy(replicator, agents)
        return _Live(messages, rings, list(agents.values()))

    rng = random.Random(seed)
    active = [start(k) for k in range(min(window, calls))]
    following = len(active)
    out: list[Item] = []
    while active:
        i = rng.randrange(len(active))
        call = active[i]
        message = call.messages[call.pos]
        out.append((message.encode(), call.rings.get(call.pos), queue_of_event(message)))
        call.pos += 1
        if call.pos == len(call.messages):
            free.extend(call.agents)
            if following < calls:
                active[i] = start(following)
                following += 1
            else:
                active[i] = active[-1]
                active.pop()
    return out


# --------------------------------------------------------------------- fake Asterisk
@dataclass(frozen=True)
class ServerConfig:
    captures: list[Path]
    secret: str
    calls: int
    window: int
    logins: list[str]
    rate: float
    seed: int
    max_seconds: float
    state_every: int = 0
    state_hold: int = 200


@dataclass
class SentTimes:
    """When the fake Asterisk wrote the events the client measures (time.time())."""

    rings: list[tuple[str, str, float]] = field(default_factory=list)  # call id, login
    pauses: dict[str, float] = field(default_factory=dict)  # reason -> sent
    queue_events: dict[str, list[float]] = field(default_factory=dict)  # queue -> in order
    queue_actions: Counter[str] = field(default_factory=Counter)  # the service's asks


class PopAsterisk(FakeAsterisk):
    """The harness's AMI plus QueueStatus, QueuePause and BenchStart.

    ``Action: BenchStart`` streams the calls, paced; its response comes after
    the last event. Then the send times go to the parent through the pipe
    (a SentTimes). Queue members are kept as app_queue keeps them: a
    QueuePause (from the service, or injected) changes them and is told with
    one QueueMemberPause event per queue.
    """

    def __init__(self, config: ServerConfig, results: Connection):
        super().__init__(config.secret, config.max_seconds, results)
        self.config = config
        recordings = [Recording.load(p) for p in config.captures]
        stream = build_stream(recordings, config.calls, config.window, config.logins, config.seed)
        self.stream, self.injected = with_state_changes(
            stream, config.logins, config.state_every, config.state_hold, config.seed
        )
        # (login, queue) -> [paused, reason]
        self.members = {(lg, q): [False, ""] for lg in config.logins for q in MEMBER_QUEUES}
        self.sent = SentTimes()

    def action(self, writer: asyncio.StreamWriter, name: str, action: dict[str, str]) -> bool:
        aid = action.get("actionid", "")
        if name == "queuestatus":  # the resync after login
            writer.write(list_start(aid, "Queue status will follow"))
            for queue in QUEUES:
                writer.write(
                    wire(
                        ("Event", "QueueParams"),
                        ("Queue", queue),
                        ("Max", 0),
                        ("Strategy", "rrmemory"),
                        ("Calls", 0),
                        ("ActionID", aid),
                    )
                )
            for login, queue in self.members:
                writer.write(self._member("QueueMember", login, queue, aid))
            writer.write(
                wire(
                    ("Event", "QueueStatusComplete"),
                    ("ActionID", aid),
                    ("EventList", "Complete"),
                    ("ListItems", len(QUEUES) + len(self.members)),
                )
            )
        elif name == "queuepause":  # wrap-up pauses and their ends
            login = action.get("interface", "").partition("/")[2]
            paused = action.get("paused", "").lower() in ("true", "1", "yes")
            reason = action.get("reason", "")
            kind = (
                "wrap-up"
                if reason.startswith("wrap-up")
                else ("other reason" if paused else "resume")
            )
            self.sent.queue_actions[f"QueuePause {kind}"] += 1
            if not any((login, q) in self.members for q in MEMBER_QUEUES):
                writer.write(
                    wire(
                        ("Response", "Error"), ("ActionID", aid), ("Message", "Interface not found")
                    )
                )
                return True
            writer.write(
                wire(
                    ("Response", "Success"),
                    ("ActionID", aid),
                    ("Message", "Interface paused successfully"),
                )
            )
            writer.write(self._pause(login, paused, action.get("reason", "")))
        elif name == "benchstart":
            self.spawn(self._stream(self.events_to(writer, action), aid, writer))
        else:
            return False
        return True

    def _member(self, event: str, login: str, queue: str, action_id: str = "") -> bytes:
        paused, reason = self.members[(login, queue)]
        headers = [
            ("Event", event),
            ("Privilege", "agent,all"),
            ("Queue", queue),
            ("MemberName", f"Agent {login}"),
            ("Interface", f"PJSIP/{login}"),
            ("StateInterface", f"PJSIP/{login}"),
            ("Membership", "dynamic"),
            ("Penalty", 0),
            ("CallsTaken", 0),
            ("LastCall", 0),
            ("LastPause", int(time.time()) if paused else 0),
            ("LoginTime", 1),
            ("InCall", 0),
            ("Status", 1),
            ("Paused", int(paused)),
            ("PausedReason", reason),
            ("Ringinuse", 0),
            ("Wrapuptime", 0),
        ]
        if action_id:
            headers.append(("ActionID", action_id))
        return wire(*headers)

    def _pause(self, login: str, paused: bool, reason: str) -> bytes:
        """Pause or resume an agent in every queue, with app_queue's events."""
        out = b""
        for queue in MEMBER_QUEUES:
            self.members[(login, queue)] = [paused, reason if paused else ""]
            out += self._member("QueueMemberPause", login, queue)
        return out

    async def _stream(
        self,
        writer: asyncio.StreamWriter,
        action_id: str,
        reply_to: asyncio.StreamWriter | None = None,
    ) -> None:
        sent = self.sent
        reply_to = reply_to or writer
        try:
            # Event i is due at start + i/rate; asyncio sleeps in ~1 ms ticks, so
            # events due within one tick go out together, like a burst from Asterisk.
            start, interval = time.monotonic(), 1.0 / self.config.rate
            for i, (message, ring, queue) in enumerate(self.stream):
                delay = start + i * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if isinstance(message, Inject):
                    data = self._pause(message.login, message.paused, message.reason)
                    if message.paused:
                        sent.pauses[message.reason] = time.time()
                    writer.write(data)
                    await writer.drain()
                    continue
                if ring is not None:
                    sent.rings.append((ring[0], ring[1], time.time()))
                if queue is not None:
                    sent.queue_events.setdefault(queue, []).append(time.time())
                writer.write(message + b"\r\n")
                await writer.drain()
            seconds = time.monotonic() - start
            reply_to.write(
                wire(
                    ("Response", "Success"),
                    ("ActionID", action_id),
                    ("Events", len(self.stream)),
                    ("Calls", self.config.calls),
                    ("Seconds", f"{seconds:.3f}"),
                    ("QueueSummaries", self.queue_summaries),
                )
            )
            await reply_to.drain()
        except ConnectionError:
            return
        # Plain values: the parent cannot unpickle this script's classes from a child.
        self.pipe.send((sent.rings, sent.pauses, sent.queue_events, dict(sent.queue_actions)))


def serve(config: ServerConfig, results: Connection) -> None:
    """Entry point of the fake Asterisk process."""
    asyncio.run(PopAsterisk(config, results).run())


# --------------------------------------------------------------------- agents' consoles
@dataclass
class Pop:
    arrived: float  # time.time() when the client had the message
    sent_at: float
    ami_received_at: float
    popped_at: float
    login: str


@dataclass
class PopConsoles(Consoles):
    """The agents' consoles: the first card of each call, and the wrap-ups they save."""

    wrapup_delay: float = 1.0
    pops: dict[tuple[str, str], Pop] = field(default_factory=dict)  # (call id, login)
    duplicate_pops: int = 0
    unpopped: int = 0  # first card of a call on a socket but not 'ringing'
    wrapups_saved: int = 0
    wrapups_pending: int = 0
    wrapup_errors: list[str] = field(default_factory=list)
    _seen: set[tuple[str, str]] = field(default_factory=set)
    _wrapping: set[tuple[str, str]] = field(default_factory=set)

    def on_message(self, login: str, arrived: float, data: dict) -> None:
        if data.get("type") != "card" or data.get("card") is None:
            return
        card = data["card"]
        key = (data["call_id"], login)
        if key not in self._seen:
            self._seen.add(key)
            if card["phase"] != "ringing":
                self.unpopped += 1
            elif key in self.pops:
                self.duplicate_pops += 1
            else:
                t = card["timing"]
                self.pops[key] = Pop(
                    arrived, data["sent_at"], t["ami_received_at"], t["popped_at"], login
                )
        if card["phase"] == "wrapup" and key not in self._wrapping:
            self._wrapping.add(key)
            self.wrapups_pending += 1
            self.spawn(self._wrap_up(login, card))

    async def _wrap_up(self, login: str, card: dict) -> None:
        try:
            await self._save_wrapup(login, card)
        finally:
            self.wrapups_pending -= 1

    async def _save_wrapup(self, login: str, card: dict) -> None:
        """What the agent does after the call: choose a disposition, save."""
        await asyncio.sleep(self.wrapup_delay)
        choices = (card.get("script") or {}).get("dispositions") or [{"id": "resolved"}]
        chosen = next(
            (d for d in choices if not d.get("needs_note") and not d.get("needs_callback_time")),
            choices[0],
        )
        body = {"disposition": chosen["id"], "notes": "bench" if chosen.get("needs_note") else ""}
        if chosen.get("needs_callback_time"):
            body["callback_at"] = time.time() + 3600
        try:
            async with self.session.post(
                f"{self.base}/api/calls/{card['call_id']}/wrapup",
                json=body,
                headers=self.headers(login),
            ) as r:
                if r.status == 200:
                    self.wrapups_saved += 1
                else:
                    self.wrapup_errors.append(
                        f"{login} {card['call_id']}: HTTP {r.status} {(await r.text())[:200]}"
                    )
        except aiohttp.ClientError as exc:
            self.wrapup_errors.append(f"{login} {card['call_id']}: {exc!r}")


@dataclass
class Wallboards(Consoles):
    """Supervisors' consoles: when each state change and queue event arrived."""

    # Per supervisor: reason -> (arrived, sent_at); queue -> [(arrived, sent_at)].
    pauses: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    queues: dict[str, dict[str, list[tuple[float, float]]]] = field(default_factory=dict)
    counting: bool = False

    def on_message(self, login: str, arrived: float, data: dict) -> None:
        kind = data.get("type")
        if kind == "wallboard_agent":
            agent = data["agent"]
            pauses = self.pauses.setdefault(login, {})
            for reason in (agent["reason"], agent["then"]):
                if reason.startswith("bench-") and reason not in pauses:
                    pauses[reason] = (arrived, data["sent_at"])
        elif kind == "wallboard_queue" and self.counting:
            self.queues.setdefault(login, {}).setdefault(data["queue"]["queue"], []).append(
                (arrived, data["sent_at"])
            )


# --------------------------------------------------------------------- the run
@dataclass
class Observer:
    """A bus subscriber (subscribed last): call events, calls in flight."""

    service: Service
    kinds: Counter[str] = field(default_factory=Counter)
    peak_calls: int = 0
    calls_at_ring: list[int] = field(default_factory=list)

    def __call__(self, event: CallEvent) -> None:
        self.kinds[event.kind] += 1
        live = len(self.service.tracker.calls)
        self.peak_calls = max(self.peak_calls, live)
        if isinstance(event, AgentRinging):
            self.calls_at_ring.append(live)


@dataclass
class RunResult:
    web_url: str
    connect_seconds: float
    reply: dict
    rings: list[tuple[str, str, float]]
    sent: SentTimes
    consoles: PopConsoles
    boards: Wallboards
    observer: Observer
    cpu_seconds: float
    wall_seconds: float
    gc: GcPauses
    live_calls_after: int
    cards_after: int
    pending_writes_at_end: int
    drain_seconds: float
    settle_seconds: float


def supervisor_users(n: int) -> tuple[User, ...]:
    return tuple(
        User(
            login=f"boss{i}",
            name=f"Supervisor {i}",
            role="supervisor",
            secret=Secret(secrets.token_urlsafe(12)),
        )
        for i in range(n)
    )


async def run(
    a: argparse.Namespace,
    pbx: FakePbx,
    users: tuple[User, ...],
    stream_timeout: float,
    store_dir: str,
    bosses: tuple[User, ...] = (),
) -> RunResult:
    settings = service_settings(
        pbx,
        store_dir,
        # No audio taps and speech: the fake Asterisk has no AudioSocket to give them.
        speech=SpeechSettings(enabled=False),
        scripts=str(ROOT / "scripts"),
        customers=str(ROOT / "scripts" / "customers.csv"),
        users=users + bosses,
        # Every agent serves every project of the recordings, in both queues; a
        # wrap-up lasts until the agent saves it (--wrapup-delay), as in a shift.
        groups=(
            AgentGroup(
                "everyone",
                ("acme-support", "acme-sales", "acme-telesales", "acme-key-accounts"),
                MEMBER_QUEUES,
                tuple(GroupMember(u.login) for u in users),
            ),
        ),
        shift=ShiftSettings(wrapup_seconds=600),
    )
    service = Service(settings)
    observer = Observer(service)
    service.bus.subscribe(observer)
    consoles = None
    boards = None
    try:
        await service.start()
        try:
            await service.ami.wait_connected(10)
        except asyncio.TimeoutError:
            raise BenchError(
                "the service did not log in to the fake Asterisk within 10 s"
            ) from None
        consoles = PopConsoles.open(service, wrapup_delay=a.wrapup_delay)
        boards = Wallboards.open(service)
        t0 = time.monotonic()
        await asyncio.gather(consoles.sign_in_all(users), boards.sign_in_all(bosses))
        connect_seconds = time.monotonic() - t0

        with GcPauses() as gc_pauses:
            cpu, wall = cpu_seconds(), time.monotonic()
            boards.counting = True
            # The reply comes after the last event: awaiting it awaits the whole stream.
            try:
                reply = await service.ami.send({"Action": "BenchStart"}, timeout=stream_timeout)
            except asyncio.TimeoutError:
                raise BenchError(f"the stream took over {stream_timeout:.0f} s") from None
            rings, pauses, queue_events, queue_actions = await results_of(pbx.results, "send times")
            sent = SentTimes(rings, pauses, queue_events, Counter(queue_actions))
            # Let the last pops arrive and the last wrap-ups be saved (bounded).
            t_settle = time.monotonic()
            deadline = t_settle + a.wrapup_delay + 15
            while time.monotonic() < deadline and (
                len(consoles.pops) < len(rings)
                or service.pop.cards
                or service.tracker.calls
                or consoles.wrapups_pending
                or any(len(boards.pauses.get(b.login, {})) < len(sent.pauses) for b in bosses)
            ):
                await asyncio.sleep(0.02)
            settle_seconds = time.monotonic() - t_settle
            cpu, wall = cpu_seconds() - cpu, time.monotonic() - wall
        pending = service.recorder.pending
        t_drain = time.monotonic()
        try:
            await asyncio.wait_for(service.recorder.drain(), 30)
        except asyncio.TimeoutError:
            pass
        drain_seconds = time.monotonic() - t_drain
        return RunResult(
            web_url=service.web_url,
            connect_seconds=connect_seconds,
            reply=dict(reply),
            rings=rings,
            sent=sent,
            consoles=consoles,
            boards=boards,
            observer=observer,
            cpu_seconds=cpu,
            wall_seconds=wall,
            gc=gc_pauses,
            live_calls_after=len(service.tracker.calls),
            cards_after=len(service.pop.cards),
            pending_writes_at_end=pending,
            drain_seconds=drain_seconds,
            settle_seconds=settle_seconds,
        )
    finally:
        # Whatever happened, stop the service: its SQLite thread would keep the process alive.
        try:
            if consoles is not None:
                await asyncio.wait_for(consoles.close(), 15)
            if boards is not None:
                await asyncio.wait_for(boards.close(), 15)
        finally:
            await asyncio.wait_for(service.stop(), 30)


# --------------------------------------------------------------------- report
def check(r: RunResult, expected: Counter[str], calls: int) -> list[str]:
    problems = []
    c = r.consoles
    sent = {(call_id, login) for call_id, login, _ in r.rings}
    if len(sent) != len(r.rings):
        problems.append(f"{len(r.rings) - len(sent)} ringing events repeat a (call, agent)")
    missing = sent - c.pops.keys()
    extra = c.pops.keys() - sent
    if missing:
        problems.append(
            f"{len(missing)} ringing events gave no ringing card on the agent's "
            f"socket, e.g. {sorted(missing)[:3]}"
        )
    if extra:
        problems.append(
            f"{len(extra)} ringing cards without a ringing event for that agent, "
            f"e.g. {sorted(extra)[:3]}"
        )
    if c.duplicate_pops or c.unpopped:
        problems.append(
            f"{c.duplicate_pops} repeated pops, {c.unpopped} calls whose first "
            "card was not 'ringing'"
        )
    if r.observer.kinds["CallEnded"] != calls:
        problems.append(f"{r.observer.kinds['CallEnded']} CallEnded for {calls} calls")
    for kind in sorted(expected | r.observer.kinds):
        if r.observer.kinds[kind] != expected[kind]:
            problems.append(
                f"{r.observer.kinds[kind]} {kind}, replaying alone gives {expected[kind]}"
            )
    if r.live_calls_after:
        problems.append(f"{r.live_calls_after} calls still live in the tracker")
    if r.cards_after:
        problems.append(f"{r.cards_after} cards still in the pop (wrap-ups not saved)")
    if c.wrapups_saved != len(sent):
        problems.append(f"{c.wrapups_saved} wrap-ups saved for {len(sent)} calls popped")
    problems += [f"wrap-up failed: {e}" for e in c.wrapup_errors[:5]]
    problems += [f"a console closed early: {e}" for e in c.problems[:5]]
    if int(r.reply.get("Events", -1)) < 0:
        problems.append(f"odd BenchStart reply {r.reply}")
    for i in r.boards.sockets:
        pauses, queues = r.boards.pauses.get(i, {}), r.boards.queues.get(i, {})
        missing_pauses = set(r.sent.pauses) - set(pauses)
        if missing_pauses:
            problems.append(
                f"supervisor {i}: {len(missing_pauses)} state changes never shown, "
                f"e.g. {sorted(missing_pauses)[:3]}"
            )
        for queue, times in r.sent.queue_events.items():
            if len(queues.get(queue, [])) != len(times):
                problems.append(
                    f"supervisor {i}: {len(queues.get(queue, []))} updates of queue "
                    f"{queue} for {len(times)} queue events"
                )
    problems += [f"a wallboard closed early: {e}" for e in r.boards.problems[:5]]
    answered = r.observer.kinds["AgentAnswered"]
    if r.sent.queue_actions["QueuePause wrap-up"] != answered:
        problems.append(
            f"{r.sent.queue_actions['QueuePause wrap-up']} wrap-up pauses for "
            f"{answered} answered calls"
        )
    return problems


def wallboard_latencies(
    r: RunResult,
) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]]]:
    """(sent, sent_at, arrived) of every state change and queue event, per supervisor."""
    states, queues = [], []
    pauses = r.sent.pauses
    for shown in r.boards.pauses.values():
        states += [(pauses[k], *reversed(v)) for k, v in shown.items() if k in pauses]
    for shown in r.boards.queues.values():
        for queue, times in r.sent.queue_events.items():
            queues += [
                (t, sent_at, arrived)
                for t, (arrived, sent_at) in zip(times, shown.get(queue, []), strict=False)
            ]
    return states, queues


def report(a: argparse.Namespace, r: RunResult, expected: Counter[str]) -> list[str]:
    print()
    c = r.consoles
    sent_at = {(call_id, login): t for call_id, login, t in r.rings}
    pops = [(sent_at[k], p) for k, p in c.pops.items() if k in sent_at]
    events, seconds = int(r.reply["Events"]), float(r.reply["Seconds"])
    print(
        f"service: ivr.server.Service, web console on {r.web_url}, SQLite store in "
        f"a temporary folder, {len(list((ROOT / 'scripts').glob('*.yaml')))} scripts "
        f"from scripts/, speech and audio taps off"
    )
    print(
        f"consoles: {a.agents} agents signed in (POST /api/login), one WebSocket each, "
        f"all connected in {r.connect_seconds:.2f} s "
        f"({r.reply.get('QueueSummaries', '?')} AMI QueueSummary for their hellos)"
    )
    print(
        f"load: {a.calls} calls, {events} AMI events paced at {a.rate:,.0f} events/s "
        f"(sent in {seconds:.1f} s), {min(a.window, a.calls)} calls in flight, "
        f"wrap-up {a.wrapup_delay:g} s after each call"
    )
    print(
        f"  calls in the tracker      peak {r.observer.peak_calls}, at each ring: median "
        f"{statistics.median(r.observer.calls_at_ring or [0]):.0f}, "
        f"min {min(r.observer.calls_at_ring or [0])}"
    )
    print(
        "  call events               "
        + ", ".join(f"{kind} {n}" for kind, n in sorted(r.observer.kinds.items()))
    )
    print(
        "  WebSocket messages in     "
        + ", ".join(
            f"{kind} {n} (mean {c.kind_bytes[kind] / n / 1e3:.1f} kB)"
            for kind, n in sorted(c.kinds.items())
        )
    )
    print(
        f"  CPU of this process       {r.cpu_seconds:.2f} s user+sys in {r.wall_seconds:.1f} s "
        f"({r.cpu_seconds / r.wall_seconds:.0%} of one CPU; the service and the "
        f"{a.agents} clients; stream and settling)"
    )
    print(f"  GC pauses in this process {r.gc.line()}")
    print(
        f"  settling                  last pops and wrap-ups {r.settle_seconds:.2f} s after "
        f"the last event"
    )
    print(
        f"  wrap-ups saved            {c.wrapups_saved}; outcome writes then waiting "
        f"{r.pending_writes_at_end}, all written {r.drain_seconds:.2f} s later"
    )
    print()
    print(
        f"pop latency: {len(pops)} pops (first card of a call, phase 'ringing', "
        f"one per ringing event sent)"
    )
    if pops:
        print(header())
        print(row("AMI event sent -> WebSocket message in", [p.arrived - t for t, p in pops]))
        print(
            row(
                "server: ami_received_at -> sent_at",
                [p.sent_at - p.ami_received_at for _, p in pops],
            )
        )
        print("  parts:")
        print(row("  AMI: sent -> ami_received_at", [p.ami_received_at - t for t, p in pops]))
        print(
            row("  tracker, bus: -> popped_at", [p.popped_at - p.ami_received_at for _, p in pops])
        )
        print(row("  pop, bus, outbox: -> sent_at", [p.sent_at - p.popped_at for _, p in pops]))
        print(row("  WebSocket: sent_at -> client", [p.arrived - p.sent_at for _, p in pops]))
    states, queues = wallboard_latencies(r)
    print()
    print(
        f"wallboard latency: {len(r.boards.sockets)} supervisors; {len(r.sent.pauses)} state "
        f"changes (an agent paused, reason bench-N), "
        f"{sum(len(v) for v in r.sent.queue_events.values())} queue events (callers joining "
        f"and leaving {', '.join(sorted(r.sent.queue_events))}); the service's own asks: "
        + ", ".join(f"{k} {n}" for k, n in sorted(r.sent.queue_actions.items()))
    )
    print(
        "  WebSocket messages in     "
        + ", ".join(f"{kind} {n}" for kind, n in sorted(r.boards.kinds.items()))
    )
    if states or queues:
        print(header())
    if states:
        print(row("state change sent -> wallboard in", [a - t for t, _, a in states]))
        print(row("  AMI sent -> service sent_at", [s - t for t, s, _ in states]))
    if queues:
        print(row("queue event sent -> wallboard in", [a - t for t, _, a in queues]))
        print(row("  AMI sent -> service sent_at", [s - t for t, s, _ in queues]))
    return checked(
        check(r, expected, a.calls),
        "one ringing card per ringing event, on that agent's socket; call events as "
        "replaying each capture alone; no call, card or wrap-up left; every state change "
        "and queue event on every wallboard; one wrap-up pause per answered call",
    )


# --------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = replay_parser(__doc__, 800, "calls replayed", 1000, "AMI events per second")
    p.add_argument(
        "--agents",
        type=int,
        default=None,
        help="agents, each signed in with one WebSocket (default and least: --window times "
        "the most agents one recorded call rings)",
    )
    p.add_argument(
        "--wrapup-delay",
        type=float,
        default=1.0,
        help="seconds from a card's wrap-up phase to the agent saving the wrap-up",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the order of the calls' events")
    p.add_argument("--supervisors", type=int, default=2, help="wallboards open")
    p.add_argument(
        "--state-every", type=int, default=20, help="pause a random agent every N events (0: never)"
    )
    p.add_argument(
        "--state-hold", type=int, default=2000, help="resume a paused agent N events later"
    )
    a = p.parse_args(argv)
    if min(a.calls, a.window) < 1 or a.rate <= 0 or a.wrapup_delay < 0:
        p.error("--calls, --window and --rate must be positive")
    paths = ami_recordings(a.captures, p)
    recordings = [Recording.load(path) for path in paths]
    # A recorded call may ring several agents (transfers, a queue ringing two): every
    # call in flight needs that many free agents.
    need = a.window * max(len(r.agents) for r in recordings)
    if a.agents is None:
        a.agents = need
    if a.agents < need:
        p.error(f"--agents must be at least {need} (--window times the most agents one call rings)")
    expected: Counter[str] = Counter()
    for i, rec in enumerate(recordings):
        copies = len(range(i, a.calls, len(recordings)))
        expected.update({k: v * copies for k, v in rec.kinds.items()})
    events_per_set = sum(len(r.capture.messages) for r in recordings)
    print(machine("aiohttp", "panoramisk"))
    rung = sorted({ext for r in recordings for ext in r.agents})
    names = ", ".join(r.capture.path.stem for r in recordings)
    print(
        f"input: {len(recordings)} captures ({names}), {events_per_set} events for "
        f"{len(recordings)} calls; extensions {', '.join(rung)} become agents "
        f"{FIRST_AGENT}-{FIRST_AGENT + a.agents - 1}"
    )

    users = agent_users(a.agents, FIRST_AGENT)
    stream_timeout = 60 + a.calls * events_per_set / len(recordings) / a.rate
    ami_secret = secrets.token_urlsafe(24)
    config = ServerConfig(
        captures=paths,
        secret=ami_secret,
        calls=a.calls,
        window=a.window,
        logins=[u.login for u in users],
        rate=a.rate,
        seed=a.seed,
        max_seconds=stream_timeout + 120,
        state_every=a.state_every,
        state_hold=a.state_hold,
    )
    try:
        with (
            fake_asterisk(serve, config) as pbx,
            tempfile.TemporaryDirectory(prefix="ivr-bench-") as store_dir,
        ):
            result = asyncio.run(
                run(a, pbx, users, stream_timeout, store_dir, supervisor_users(a.supervisors))
            )
    except BenchError as e:
        return incomplete(e)
    return verdict(report(a, result, expected))


if __name__ == "__main__":
    raise SystemExit(main())
