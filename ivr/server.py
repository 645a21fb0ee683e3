"""The service's lifecycle: build each stage, wire them, start and stop them.

Data path: AMI events -> {call tracker, agent states, queue board};
call tracker -> call event bus -> {script pop, live coaching, taps, speech, agent
states, outcome recorder, consoles' board, dialers, log}; script pop -> the
consoles' view (web/view.py) and live coaching; agent states and queue board ->
wallboard and the outcomes store. Each stage only knows the bus or the small
callbacks given here; none knows the others. What is asked of the PBX goes
through ami/actions.py; what a reconnect re-reads, resync.py; /api/health is
health.py, /metrics metrics.py. Each PBX is followed through a cluster.PbxLink
(its AMI client and tracker), while this instance holds its lease; with a bus
(bus.url) the instance runs as a controller or a web front (cluster/roles.py).
Nothing but building, wiring, starting and stopping happens here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from aiohttp import web

from . import health, metrics
from .agents import AgentGroups, AgentStates, StateChange
from .ami.actions import PbxActions
from .ami.message import AmiEvent
from .bus import create_bus
from .calls.bus import CallEventBus, log_event
from .calls.model import Call
from .calls.queues import QueueBoard, day_start
from .cluster import AmiRouter, ClaimSettler, Controller, PbxLink, create_leases, new_instance_id
from .cluster.pbx import ActionsRouter
from .cluster.roles import ControllerRole, WebRole
from .coaching.rules import RuleLibrary
from .config import ROLES, Settings
from .dialer import (
    AgentPool,
    CallbackDialer,
    CampaignDialer,
    NumberGuard,
    busy_unless,
    dnc_on_wrapup,
)
from .lifecycle import run_until_stopped
from .live import LiveCoaching
from .outcomes.agent_states import AgentStateRecorder
from .outcomes.recorder import OutcomeRecorder
from .outcomes.reports import queue_day
from .outcomes.store.auto import create_store
from .pop import ScriptPop
from .rejections import RejectPauses
from .resync import Resync
from .scripts.customers import CustomerDirectory
from .scripts.library import ScriptLibrary
from .scripts.source import LibraryScriptSource
from .supervision import Supervision
from .transfers import ConsoleTransfers
from .web.app import ConsoleApp, WebContext
from .web.auth import Auth
from .web.guard import GuardedSite, make_site
from .web.hub import ConsoleHub
from .web.policy import is_loopback, refuse_weak_exposure
from .web.shift import ShiftWeb
from .web.view import ConsoleView

if TYPE_CHECKING:  # imported when speech is on (Vosk is heavy)
    from .cluster.speech_pool import SpeechPool
    from .speech.stage import SpeechStage
    from .tap.server import TapServer
    from .tap.taps import TapManager

log = logging.getLogger(__name__)


class Service:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.bus = CallEventBus()
        # Each PBX: its AMI client and tracker, followed while this instance
        # holds its lease (ivr/cluster; one machine: always). `ami`, `tracker`
        # and `pbx` are the first PBX's; `pbx_ami` routes actions by call.
        self.instance = settings.cluster.instance or new_instance_id()
        self.leases = create_leases(settings.store.url, self.instance)
        self.links = [
            PbxLink(p, self.bus.publish, on_synced=self._pbx_synced, on_ami_event=self._ami_event)
            for p in settings.all_pbxs
        ]
        for link in self.links:
            link.several = len(self.links) > 1
        self.tracker, self.ami = self.links[0].tracker, self.links[0].ami
        self.pbx_ami: Any = AmiRouter(self.links) if len(self.links) > 1 else self.ami
        self.actions = {link.name: PbxActions(link.ami) for link in self.links}
        self.pbx: Any = (
            self.actions[self.links[0].name]
            if len(self.links) == 1
            else ActionsRouter(self.links, self.actions)
        )
        self.controller = Controller(
            self.links,
            self.leases,
            poll=settings.cluster.lease_poll,
            prefer=settings.cluster.prefer,
            on_let_go=self._stop_dialers,
            on_take=self._before_following,
        )
        base = settings.source and settings.path(".")
        self.store = create_store(settings.store.url, base_dir=base)
        # Reports read through a second store instance (SQLite: its own connection,
        # reading beside the writer in WAL), so a long report never holds up a wrap-up.
        self.report_store = create_store(settings.store.url, base_dir=base)
        self.library = ScriptLibrary(settings.path(settings.scripts))
        customers = CustomerDirectory.load(
            settings.path(settings.customers) if settings.customers else None
        )
        self.scripts = LibraryScriptSource(self.library, customers)
        users = {u.login: u for u in settings.users}
        self.pop = ScriptPop(self.scripts, users)
        self.recorder = OutcomeRecorder(self.store, script_of=self.pop.script_version_of)
        self.hub = ConsoleHub()
        self.view = ConsoleView(self.hub, self.pop)  # what the consoles show of each call
        self.pop.subscribe_cards(self.view.card_changed)
        # Agent states (owned by Asterisk's queues) and the queues' live figures:
        # both pushed to the wallboard; state changes recorded in the store.
        self.groups = AgentGroups(settings.groups)
        self.agent_log = AgentStateRecorder(self.store)
        self.agent_states = AgentStates(
            self.groups,
            self.pbx,
            settings.shift,
            names={u.login: u.name for u in settings.users},
            on_change=self._agent_changed,
        )
        self.queue_board = QueueBoard(
            settings.shift.service_level_seconds,
            on_change=lambda figures: self.shift.queue_changed(figures),
            queues=self.groups.queues,
        )
        self.shift = ShiftWeb(self.agent_states, self.queue_board, self.hub)
        # Dialers: one agent pool and one number guard for both, so an agent gets
        # one dialer call at a time and a number is never called twice at once;
        # only ready agents of the call's project's groups are offered calls.
        # Across instances, claims and numbers being dialled are held in the store;
        # one pair of dialers per PBX, for that PBX's agents, while it is followed.
        is_busy = busy_unless(self.console_connected, self.live_calls)
        self.agent_pool = AgentPool(
            self.agent_states.ready_agents, is_busy, penalty_of=self.agent_states.penalty
        )
        self.numbers = NumberGuard(lambda: [c.customer_num for c in self.live_calls()])
        self.dialers: dict[str, tuple[CallbackDialer, CampaignDialer]] = {}
        for link in self.links:
            pool = self.agent_pool
            if link.agents:
                pool = AgentPool(
                    self._ready_on(link.agents), is_busy, penalty_of=self.agent_states.penalty
                )
            kw: dict[str, Any] = dict(
                agents=pool, guard=self.numbers, owner=self.instance, pbx=link.name
            )
            self.dialers[link.name] = (
                CallbackDialer(self.store, link.ami, **kw),
                CampaignDialer(self.store, link.ami, **kw),
            )
        self.callback_dialer, self.campaign_dialer = self.dialers[self.links[0].name]
        self.settlers = {
            name: ClaimSettler(self.store, self.instance, callbacks=cb, campaigns=camp)
            for name, (cb, camp) in self.dialers.items()
        }
        # Supervisors listening in; agents' attended transfers from the console;
        # agents whose phone refuses queue calls paused for a while.
        self.supervision = Supervision(
            self.ami_for,
            settings.supervision,
            users,
            push_agent=self.hub.to_login,
            push_supervisor=self.hub.to_supervisor,
            live_call=self.live_call,
        )
        agent_logins = [u.login for u in settings.users if not u.is_supervisor]
        self.transfers = ConsoleTransfers(
            self.ami_for,
            self.live_call,
            agents=lambda: agent_logins,
            departments=self.pbx.departments,
            push=self.hub.to_login,
        )
        self.rejects = RejectPauses(
            self.ami_of_agent,
            settings.rejects.pause_seconds,
            every_ami=lambda: [link.ami for link in self.links if link.following],
        )
        self.rules = RuleLibrary(settings.path(settings.scripts) / "rules")
        self.console = ConsoleApp(
            WebContext(
                auth=Auth(settings.users, self.store, settings.web),
                hub=self.hub,
                pop=self.pop,
                view=self.view,
                live_calls=self.live_calls,
                # Durable first (and a do-not-call wish honoured), then the wrap-up pause ends.
                save_wrapup=dnc_on_wrapup(self.store, number_of=self.pop.customer_number),
                wrapup_saved=self.agent_states.wrapup_saved,
                transfer=self.pbx.transfer,
                departments=self.pbx.departments,
                problems=self.script_problems,
                health=lambda: health.components(self),
                metrics=lambda: metrics.render(self._metrics),
                store=self.report_store,
                on_campaigns_changed=self._wake_campaigns,
                web=settings.web,
                supervision=self.supervision,
                transfers=self.transfers,
                agents=lambda: [
                    {"login": u.login, "name": u.name}
                    for u in settings.users
                    if not u.is_supervisor
                ],
                shift=self.shift,
            )
        )
        # Roles (ivr/cluster/roles.py): with a bus, this instance is a controller
        # (decoding its calls itself, or on the speech workers) or a web front;
        # without one it is everything, in one process, as always.
        self.roles = set(settings.cluster.roles) or set(ROLES)
        self.bus_link: Any = (
            create_bus(settings.bus.url, f"ivr {self.instance}") if settings.bus.url else None
        )
        # Live coaching: taps -> speech -> coaching rules -> prompts on the console.
        self.speech: SpeechStage | None = None
        self.tap_server: TapServer | SpeechPool | None = None
        self.taps: TapManager | None = None
        self.speech_pool: SpeechPool | None = None
        self.vocabulary: Any = None  # with the speech workers: what the model can hear
        self.live = LiveCoaching(
            self.pop,
            self.rules,
            console=self.view,
            save=self.recorder.save_coaching,
            mode=settings.speech.mode,
            model=lambda: self.speech.model if self.speech else self.vocabulary,
        )
        self.pop.subscribe_marks(self.live.item_marked)
        if settings.speech.enabled and self.bus_link is not None and "speech" not in self.roles:
            if "controller" in self.roles:
                from .cluster.speech_pool import SpeechPool
                from .tap.taps import TapManager

                # Taps go to the speech workers (`--role speech`); results come back.
                workers = SpeechPool(self.bus_link, self.instance, self.live)
                self.speech_pool = self.tap_server = workers
                self.taps = TapManager(self.pbx_ami, workers, on_status=self.live.on_tap_status)
        elif settings.speech.enabled:
            from .speech.stage import SpeechStage
            from .tap.server import TapServer
            from .tap.taps import TapManager

            speech = SpeechStage(
                settings.speech.model,
                on_utterance=self.live.on_utterance,
                on_activity=self.live.on_activity,
                on_heard=self.live.on_heard,
                on_gap=self.live.on_gap,
                on_capacity=self.live.on_capacity,
                mode_for_call=self.live.mode_for_call,
                beam=settings.speech.beam,
                max_active=settings.speech.max_active,
                max_transcripts=settings.speech.max_transcripts,
            )
            tap_server = TapServer(settings.tap.host, settings.tap.port, sink_factory=speech.sink)
            taps = TapManager(
                self.pbx_ami,
                tap_server,
                connect_host=settings.tap.connect_host or settings.tap.host,
                on_status=self.live.on_tap_status,
            )
            self.speech, self.tap_server, self.taps = speech, tap_server, taps
        # Order matters: the pop decides the script before the others use it.
        self.bus.subscribe(self.pop.on_call_event)
        for stage in self._listening():
            self.bus.subscribe(stage.on_call_event)
        self.bus.subscribe(self.agent_states.on_call_event)
        self.bus.subscribe(self.recorder)
        self.bus.subscribe(self.supervision.on_call_event)
        self.bus.subscribe(self.transfers.on_call_event)
        self.bus.subscribe(self.rejects.on_call_event)
        self.bus.subscribe(self.view.call_event)
        self.bus.subscribe(log_event)
        for callbacks, campaigns in self.dialers.values():
            self.bus.subscribe(callbacks.on_call_event)
            self.bus.subscribe(campaigns.on_call_event)
        self.resync = Resync(self.pbx, self.queue_board, self.agent_states, self.rejects)
        self.role: ControllerRole | WebRole | None = None
        if self.bus_link is not None:
            if "web" in self.roles:
                self.role = WebRole(self.bus_link, self)
                # A web front's pop is a replica fed by the controllers' call
                # events: it records, dials, coaches and acts on no PBX itself.
                # Listen-ins and consult transfers are the web front's (its consoles'),
                # their AMI actions made by the controllers (cluster/roles.py BusAmi).
                for stage in (
                    self.recorder,
                    self.agent_states.on_call_event,
                    self.rejects.on_call_event,
                    *(d.on_call_event for pair in self.dialers.values() for d in pair),
                    *(stage.on_call_event for stage in self._listening()),
                ):
                    self.bus.unsubscribe(stage)
                self.speech = self.tap_server = self.taps = None
            else:
                self.role = ControllerRole(self.bus_link, self)
        self._metrics = metrics.registry_for(self)
        self._runner: web.AppRunner | None = None
        self._site: GuardedSite | None = None
        self._watch: asyncio.Task | None = None
        self._rules_watch: asyncio.Task | None = None
        self._stopped = False
        self._started = False

    # ------------------------------------------------------------ wiring helpers
    def _listening(self) -> list[Any]:
        """Live coaching, the speech stage (or the speech workers) and the taps, when
        speech is on."""
        stage = self.speech or self.speech_pool
        if stage is None or self.taps is None:
            return []
        return [self.live, stage, self.taps]

    def _ami_event(self, link: PbxLink, event: AmiEvent) -> None:
        # After the link's tracker: agent states and the queue board hear the
        # queues of every PBX this instance follows.
        self.agent_states.on_ami_event(event)
        self.queue_board.on_ami_event(event)

    def live_calls(self) -> list[Call]:
        """Calls in progress on every PBX this instance follows."""
        return [c for link in self.links for c in link.tracker.calls.values()]

    def live_call(self, call_id: str) -> Call | None:
        for link in self.links:
            call = link.tracker.calls.get(call_id)
            if call is not None:
                return call
        return None

    def ami_for(self, pbx: str) -> Any:
        """The AMI of a PBX by name (a call's ``pbx``; one PBX: its own)."""
        if len(self.links) == 1:
            return self.ami
        return next((link.ami for link in self.links if link.name == pbx), self.ami)

    def ami_of_agent(self, login: str) -> Any:
        """The AMI of the PBX an agent's phone is on (`agents:` of each PBX)."""
        if len(self.links) == 1:
            return self.ami
        return self.pbx.for_agent(f"PJSIP/{login}").ami

    def _ready_on(self, agents: tuple[str, ...]) -> Callable[[str], list[str]]:
        """Ready agents of a project among those whose phones are on one PBX."""
        return lambda project: [a for a in self.agent_states.ready_agents(project) if a in agents]

    def _wake_campaigns(self) -> None:
        for _, campaigns in self.dialers.values():
            campaigns.wake()

    def _agent_changed(self, change: StateChange) -> None:
        self.agent_log(change)
        self.shift.agent_changed(change)

    def script_problems(self) -> list[str]:
        return [str(p) for p in [*self.library.problems(), *self.rules.problems()]]

    def console_connected(self, login: str) -> bool:
        if isinstance(self.role, ControllerRole):  # consoles are on the web fronts
            return self.role.console_connected(login)
        return self.hub.connected(login)

    @property
    def web_url(self) -> str:
        """An address to open the console at (on this machine)."""
        host = self.settings.web.host
        host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        port = self._site.bound[0][1] if self._site and self._site.bound else self.settings.web.port
        scheme = "https" if self.settings.web.tls.enabled else "http"
        return f"{scheme}://{host}:{port}"

    # ------------------------------------------------------------ PBXs followed
    async def _pbx_synced(self, link: PbxLink, first: bool) -> None:
        """After every resync of a PBX (login, reconnect, takeover; the calls are
        reconciled by the link): the queues of the PBXs followed give the agent
        states. The first resync since this instance took a PBX: close its calls
        that ended unseen, settle the dialler claims a dead owner left on it
        (from the PBX), then start its dialers."""
        await self.resync()
        if self.taps is not None:
            self.taps.resync(link.tracker.calls.values())
        if first:
            await self._pbx_taken(link)

    async def _before_following(self, link: PbxLink) -> None:
        """A PBX taken over from a dead instance: its calls' coaching so far (the
        checkpoints it saved) comes back when the resync replays their answers."""
        if self.leases.kind != "local" and self._started:
            on_pbx = set(await self.store.live_call_ids(link.name))
            saved = await self.store.live_coaching()
            self.live.restored.update({k: v for k, v in saved.items() if k in on_pbx})

    async def _pbx_taken(self, link: PbxLink) -> None:
        if self.leases.kind != "local":
            gone = set(await self.store.live_call_ids(link.name)) - set(link.tracker.calls)
            closed = await self.store.close_interrupted_on(link.name, gone)
            if closed:
                log.warning(
                    "PBX %s: %d calls ended while no instance followed it; closed as interrupted",
                    link.name,
                    closed,
                )
                if self._started and "web" in self.roles:
                    await self._restore_wrapups()
        await self.settlers[link.name].settle(link, await self.leases.alive())
        if isinstance(self.role, ControllerRole):
            self.role.announce()  # web fronts: the calls of the PBX taken (over)
        if self._started:
            await self._start_dialers(link)

    async def _start_dialers(self, link: PbxLink) -> None:
        for dialer in self.dialers[link.name]:
            await dialer.start()

    async def _stop_dialers(self, link: PbxLink) -> None:
        for dialer in self.dialers[link.name]:
            await dialer.stop(timeout=2)

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        refuse_weak_exposure(self.settings)
        await self.store.open()
        await self.report_store.open()
        await self.console.ctx.auth.start()
        # Where each agent was when last seen, and today's queue figures so far.
        recorded = await self.store.last_agent_states()
        self.agent_states.restore(recorded)
        self.agent_log.seed(recorded)
        self.queue_board.seed(
            await queue_day(
                self.store, day_start(time.time()), self.settings.shift.service_level_seconds
            )
        )
        self.library.reload()
        self.rules.reload()
        self._watch = asyncio.ensure_future(self.library.watch(on_change=self._scripts_changed))
        self._rules_watch = asyncio.ensure_future(
            self.rules.watch(
                on_change=lambda problems: self.console.scripts_changed(self.script_problems())
            )
        )
        if self.bus_link is not None:
            await self.bus_link.start()
        if self.role is not None:
            # Before any PBX is followed: a controller publishes every call event.
            await self.role.start()
        if "controller" in self.roles:
            await self._start_controller()
        if "web" in self.roles:
            await self._restore_wrapups()
            await self._start_web()
        self._started = True
        for link in self.links:
            if link.following and link.synced.is_set():
                await self._start_dialers(link)

    async def _start_controller(self) -> None:
        await self.leases.start(roles=",".join(sorted(self.roles)))
        # Coaching checkpoints of calls live at the last stop, before they are closed:
        # the calls Asterisk still has come back with their prompts and ticks.
        self.live.restored = await self.store.live_coaching()
        if self.leases.kind == "local":
            # One machine: every call still 'live' is this service's from before.
            # Dialler claims are settled from the PBX once it is followed.
            closed = await self.store.close_interrupted(time.time(), callbacks=False)
            if closed:
                log.warning(
                    "%d calls were live when the service last stopped; closed as interrupted",
                    closed,
                )
        await self._start_speech()
        self.live.start()
        await self.controller.start()
        try:
            # Know which calls are still live before owing wrap-ups for them.
            await asyncio.wait_for(
                asyncio.gather(*(link.synced.wait() for link in self.links if link.following)), 5.0
            )
        except asyncio.TimeoutError:
            log.warning("no AMI resync yet; the console starts without the live calls")

    async def _start_web(self) -> None:
        app = self.console.build()
        # keepalive_timeout is also how long a client may take to send a request's
        # headers: a connection that never completes one is closed (slowloris).
        self._runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=self.settings.web.header_timeout
        )
        await self._runner.setup()
        base = Path(self.settings.source).parent if self.settings.source else None
        site = self._site = make_site(self._runner, self.settings.web, base)
        await site.start()
        scheme = "https" if self.settings.web.tls.enabled else "http"
        log.info(
            "console listening on %s (%s); open %s",
            ", ".join(f"{scheme}://{h if ':' not in h else f'[{h}]'}:{p}" for h, p in site.bound),
            "this machine only"
            if is_loopback(self.settings.web.host)
            else "reachable from the network",
            self.web_url,
        )

    async def _start_speech(self) -> None:
        if self.speech_pool is not None:
            # The workers decode; this instance only decides what each party listens
            # for, from the model's word list (not the model: some hundred MB).
            from .speech.vocabulary import ModelVocabulary

            try:
                self.vocabulary = await asyncio.to_thread(
                    ModelVocabulary.load, self.settings.speech.model
                )
            except Exception as exc:
                log.error("no speech model here to read its vocabulary: %s", exc)
            await asyncio.to_thread(self.live.prepare)
            await self.speech_pool.start()
            log.info("speech: taps go to the speech workers on the bus")
            return
        if self.speech is None:
            log.info("speech is off (speech.enabled: false): no taps, no coaching")
            return
        try:
            await self.speech.start()
        except Exception as exc:  # no model: the console still pops and records calls
            log.error(
                "speech recognition unavailable, calls are not coached: %s (see `ivr models`)", exc
            )
            for stage in self._listening():
                self.bus.unsubscribe(stage.on_call_event)
            self.speech = self.tap_server = self.taps = None
            return
        await asyncio.to_thread(self.live.prepare)
        if self.tap_server is not None:
            await self.tap_server.start()

    def _scripts_changed(self, report) -> None:
        self.console.scripts_changed(self.script_problems())

    async def _restore_wrapups(self) -> None:
        """Wrap-ups still owed from before a restart come back to the agents' consoles
        (calls still live are followed by the pop as usual)."""
        live = {c.call_id for c in self.console.ctx.live_calls()}
        for user in self.settings.users:
            for record in await self.store.calls_needing_wrapup(user.login):
                if record["call_id"] not in live:
                    self.pop.restore_wrapup(user.login, self.recorder.call_from_record(record))

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for link in self.links:
            await self._stop_dialers(link)
        for settler in self.settlers.values():
            await settler.close()
        await self.supervision.close()
        await self.rejects.close()
        await self.agent_states.close()
        await self.controller.close()
        await self.leases.close()
        if self.role is not None:
            await self.role.close()
        if self.bus_link is not None:
            await self.bus_link.close()
        if self.taps is not None:
            await self.taps.close()
        if self.tap_server is not None:
            await self.tap_server.close()
        if self.speech is not None:
            await self.speech.close()
        await self.live.close()
        if self._watch:
            self._watch.cancel()
        if self._rules_watch:
            self._rules_watch.cancel()
        if self._runner:
            await self._runner.cleanup()
        await self.recorder.close(timeout=10)  # logs any outcome it could not write
        await self.agent_log.close(timeout=10)
        await self.report_store.close()
        await self.store.close()

    async def run_forever(self) -> None:
        await run_until_stopped(self.start, self.stop)
