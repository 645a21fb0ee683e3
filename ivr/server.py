"""The service's lifecycle: build each stage, wire them, start and stop them.

Data path: AMI events -> call tracker -> call event bus -> {script pop, outcome
recorder, web console board, log}. Each stage only knows the bus or the small
callbacks given here; none knows the others.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path

from aiohttp import web

from .calls.bus import CallEventBus
from .calls.events import CallEnded, CallEvent
from .calls.model import Call
from .bus import create_bus
from .cluster import AmiRouter, ClaimSettler, Controller, PbxLink, create_leases, new_instance_id
from .cluster.roles import ControllerRole, WebRole
from .config import Settings
from .coaching.rules import RuleLibrary
from .dialer import (AgentPool, CallbackDialer, CampaignDialer, NumberGuard, busy_agents,
                     dnc_on_wrapup)
from .outcomes.recorder import OutcomeRecorder
from .outcomes.store.auto import create_store
from .live import LiveCoaching
from .pop import ScriptPop
from .scripts.customers import CustomerDirectory
from .scripts.library import ScriptLibrary
from .scripts.source import LibraryScriptSource
from .web.app import ConsoleApp, WebContext
from .web.auth import Auth
from .web.guard import make_site
from .web.hub import ConsoleHub
from .web.policy import is_loopback, refuse_weak_exposure

log = logging.getLogger(__name__)


def describe(event: CallEvent) -> str:
    """One log line per call event, in call-centre terms."""
    c = event.call
    parts = [f"call {c.call_id}", event.kind, c.direction.value, f"state={c.state.value}"]
    for label, value in (("did", c.did), ("dialled", c.dialled), ("customer", c.customer_num),
                         ("ivr", c.ivr_choice), ("queue", c.queue), ("project", c.project),
                         ("campaign", c.campaign), ("agent", getattr(event, "agent", None) or c.agent)):
        if value:
            parts.append(f"{label}={value}")
    if isinstance(event, CallEnded):
        parts.append(f"result={c.result.value if c.result else '?'}")
        parts.append(f"cause={c.cause}({c.cause_txt})")
        if c.talk_seconds is not None:
            parts.append(f"talk={c.talk_seconds:.1f}s")
    return " ".join(parts)


class Service:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.bus = CallEventBus()
        # Each PBX: its AMI client and tracker, followed while this instance
        # holds its lease (ivr/cluster; one machine: always). `ami` and
        # `tracker` are the first PBX's; `pbx_ami` routes actions by call.
        self.instance = settings.cluster.instance or new_instance_id()
        self.leases = create_leases(settings.store.url, self.instance)
        self.links = [PbxLink(p, self.bus.publish, on_synced=self._pbx_synced)
                      for p in settings.all_pbxs]
        for link in self.links:
            link.several = len(self.links) > 1
        self.tracker, self.ami = self.links[0].tracker, self.links[0].ami
        self.pbx_ami = AmiRouter(self.links) if len(self.links) > 1 else self.ami
        self.controller = Controller(self.links, self.leases, poll=settings.cluster.lease_poll,
                                     prefer=settings.cluster.prefer,
                                     on_let_go=self._stop_dialers)
        base = settings.source and settings.path(".")
        self.store = create_store(settings.store.url, base_dir=base)
        # Reports read through a second store instance (SQLite: its own connection,
        # reading beside the writer in WAL), so a long report never holds up a wrap-up.
        self.report_store = create_store(settings.store.url, base_dir=base)
        self.library = ScriptLibrary(settings.path(settings.scripts))
        customers = CustomerDirectory.load(
            settings.path(settings.customers) if settings.customers else None)
        self.scripts = LibraryScriptSource(self.library, customers)
        users = {u.login: u for u in settings.users}
        self.console: ConsoleApp | None = None
        self.pop = ScriptPop(self.scripts, users, on_card=self._card_changed)
        self.recorder = OutcomeRecorder(self.store, script_of=self._script_of)
        self.hub = ConsoleHub()
        # Dialers: one agent pool and one number guard for both, so an agent gets
        # one dialer call at a time and a number is never called twice at once
        # (across instances: claims and numbers held in the store). One pair per
        # PBX, placing calls for that PBX's agents, run while it is followed.
        agent_logins = [u.login for u in settings.users if not u.is_supervisor]
        self.agent_pool = AgentPool(lambda project: agent_logins, self._agent_busy)
        self.numbers = NumberGuard(lambda: [c.customer_num for c in self.live_calls()])
        self.dialers: dict[str, tuple[CallbackDialer, CampaignDialer]] = {}
        for link in self.links:
            pool = self.agent_pool if not link.agents else AgentPool(
                lambda project, mine=link.agents: [a for a in agent_logins if a in mine],
                self._agent_busy)
            kw = dict(agents=pool, guard=self.numbers, owner=self.instance, pbx=link.name)
            self.dialers[link.name] = (CallbackDialer(self.store, link.ami, **kw),
                                       CampaignDialer(self.store, link.ami, **kw))
        self.callback_dialer, self.campaign_dialer = self.dialers[self.links[0].name]
        self.settlers = {name: ClaimSettler(self.store, self.instance, callbacks=cb,
                                            campaigns=camp)
                         for name, (cb, camp) in self.dialers.items()}
        self.console = ConsoleApp(WebContext(
            auth=Auth(settings.users, self.store, settings.web), hub=self.hub, pop=self.pop,
            live_calls=self.live_calls,
            save_wrapup=dnc_on_wrapup(self.store, number_of=self._number_of),
            transfer=self.transfer,
            departments=self.departments, problems=self.script_problems,
            store=self.report_store, on_campaigns_changed=self._wake_campaigns,
            web=settings.web))
        # Live coaching: taps -> speech -> coaching rules -> prompts on the console.
        self.rules = RuleLibrary(settings.path(settings.scripts) / "rules")
        self.live = LiveCoaching(self.pop, self.rules, push=self.hub.to_login,
                                 save=self.store.save_coaching, mode=settings.speech.mode)
        self.speech = self.tap_server = self.taps = None
        if settings.speech.enabled:
            from .speech.stage import SpeechStage
            from .tap.server import TapServer
            from .tap.taps import TapManager
            self.speech = SpeechStage(settings.speech.model, on_utterance=self.live.on_utterance,
                                      on_activity=self.live.on_activity,
                                      mode_for_call=self.live.mode_for_call)
            self.tap_server = TapServer(settings.tap.host, settings.tap.port,
                                        sink_factory=self.speech.sink)
            self.taps = TapManager(self.pbx_ami, self.tap_server,
                                   connect_host=settings.tap.connect_host or settings.tap.host,
                                   on_status=self.live.on_tap_status)
        # Order matters: the pop decides the script before the others use it.
        self.bus.subscribe(self.pop.on_call_event)
        if self.speech is not None:
            self.bus.subscribe(self.live.on_call_event)
            self.bus.subscribe(self.speech.on_call_event)
            self.bus.subscribe(self.taps.on_call_event)
        self.bus.subscribe(self.recorder)
        self.bus.subscribe(self.console.call_event)
        self.bus.subscribe(self._log_event)
        # Roles (ivr/cluster/roles.py): with a bus, this instance is a controller
        # or a web front; without one it is both, in one process, as always.
        self.roles = set(settings.cluster.roles) or {"controller", "web"}
        self.bus_link = self.role = None
        if settings.bus.url:
            self.bus_link = create_bus(settings.bus.url, f"ivr {self.instance}")
            if "web" in self.roles:
                self.role = WebRole(self.bus_link, self)
                # A web front's pop is a replica fed by the controllers' call
                # events: it records, dials and coaches nothing itself.
                for stage in (self.recorder, *(d.on_call_event for pair in self.dialers.values()
                                               for d in pair)):
                    self.bus.unsubscribe(stage)
                if self.speech is not None:
                    for stage in (self.live.on_call_event, self.speech.on_call_event,
                                  self.taps.on_call_event):
                        self.bus.unsubscribe(stage)
                    self.speech = self.tap_server = self.taps = None
            else:
                self.role = ControllerRole(self.bus_link, self)
        for callbacks, campaigns in self.dialers.values():
            self.bus.subscribe(callbacks.on_call_event)
            self.bus.subscribe(campaigns.on_call_event)
        self._runner: web.AppRunner | None = None
        self._site = None
        self._watch: asyncio.Task | None = None
        self._departments: tuple[float, list[str]] = (-1e9, [])
        self._departments_asking: asyncio.Future | None = None
        self._stopped = False
        self._started = False

    # ------------------------------------------------------------ wiring helpers
    @staticmethod
    def _log_event(event: CallEvent) -> None:
        if log.isEnabledFor(logging.INFO):
            log.info("%s", describe(event))

    def _card_changed(self, login, call_id, card) -> None:
        if self.console is not None:
            self.console.card_changed(login, call_id, card)

    def _script_of(self, call_id: str) -> tuple[str, str] | None:
        for (_, cid), card in self.pop.cards.items():
            if cid == call_id and card.script:
                return card.script["id"], str(card.script["version"])
        return None

    def live_calls(self) -> list[Call]:
        """Calls in progress on every PBX this instance follows."""
        return [c for link in self.links for c in link.tracker.calls.values()]

    def _wake_campaigns(self) -> None:
        for _, campaigns in self.dialers.values():
            campaigns.wake()

    def _agent_busy(self, login: str) -> bool:
        """Not free for a dialer call: not signed in to the console, on a call,
        or a call still on their console (ringing, live, wrap-up not saved)."""
        return (not self.console_connected(login) or bool(self.pop.cards_for(login))
                or login in busy_agents(self.live_calls()))

    def _number_of(self, call_id: str) -> str | None:
        """The customer's number of a call on a console (for a wrap-up's DNC)."""
        return next((c.call.customer_num for (_, cid), c in self.pop.cards.items()
                     if cid == call_id), None)

    def script_problems(self) -> list[str]:
        return [str(p) for p in [*self.library.problems(), *self.rules.problems()]]

    def console_connected(self, login: str) -> bool:
        if isinstance(self.role, ControllerRole):       # consoles are on the web fronts
            return self.role.console_connected(login)
        return any(c.login == login for c in self.hub.clients)

    @property
    def web_url(self) -> str:
        """An address to open the console at (on this machine)."""
        host = self.settings.web.host
        host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        port = self._site.bound[0][1] if self._site and self._site.bound \
            else self.settings.web.port
        scheme = "https" if self.settings.web.tls.enabled else "http"
        return f"{scheme}://{host}:{port}"

    # ------------------------------------------------------------ PBX actions
    async def _pbx_synced(self, link: PbxLink, first: bool) -> None:
        """After every resync of a PBX (login, reconnect, takeover). The first
        since this instance took it: close its calls that ended unseen, settle
        the dialler claims a dead owner left on it (from the PBX), then start
        its dialers."""
        if first:
            await self._pbx_taken(link)

    async def _pbx_taken(self, link: PbxLink) -> None:
        if self.leases.kind != "local":
            gone = set(await self.store.live_call_ids(link.name)) - set(link.tracker.calls)
            closed = await self.store.close_interrupted_on(link.name, gone)
            if closed:
                log.warning("PBX %s: %d calls ended while no instance followed it; closed as "
                            "interrupted", link.name, closed)
                if self._started:
                    await self._restore_wrapups()
        await self.settlers[link.name].settle(link, await self.leases.alive())
        if isinstance(self.role, ControllerRole):
            self.role.announce()         # web fronts: the calls of the PBX taken (over)
        if self._started:
            await self._start_dialers(link)

    async def _start_dialers(self, link: PbxLink) -> None:
        for dialer in self.dialers[link.name]:
            await dialer.start()

    async def _stop_dialers(self, link: PbxLink) -> None:
        for dialer in self.dialers[link.name]:
            await dialer.stop(timeout=2)

    async def departments(self) -> list[str]:
        """The PBX's queues (AMI QueueSummary), cached for a minute; consoles that
        connect together share one request."""
        at, names = self._departments
        if time.monotonic() - at < (60 if names else 5):
            return names
        if self._departments_asking is None or self._departments_asking.done():
            self._departments_asking = asyncio.ensure_future(self._ask_departments())
        return await asyncio.shield(self._departments_asking)

    async def _ask_departments(self) -> list[str]:
        # as_list=None: a refused action resolves at once instead of timing out.
        replies = await self.pbx_ami.send({"Action": "QueueSummary"}, as_list=None)
        if not isinstance(replies, list):
            replies = [replies]
        names = sorted({r.get("Queue") for r in replies if r.get("Event") == "QueueSummary"
                        and r.get("Queue")})
        self._departments = (time.monotonic(), names)
        return names

    async def transfer(self, call: Call, department: str) -> None:
        """Send the customer into another department's queue (AMI Redirect)."""
        customer = call.customer_leg()
        if customer is None or customer.ended_at is not None:
            raise web.HTTPConflict(text="the customer is no longer on the line")
        reply = await self.pbx_ami.send({"Action": "Redirect", "Channel": customer.channel,
                                     "Context": "to-queue", "Exten": department, "Priority": "1"})
        if reply.get("Response") != "Success":
            raise web.HTTPBadGateway(text=f"the PBX refused the transfer: {reply.get('Message')}")

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        refuse_weak_exposure(self.settings)
        await self.store.open()
        await self.report_store.open()
        await self.console.ctx.auth.start()
        self.library.reload()
        self.rules.reload()
        self._watch = asyncio.ensure_future(self.library.watch(on_change=self._scripts_changed))
        if self.bus_link is not None:
            await self.bus_link.start()
        if "controller" in self.roles:
            await self._start_controller()
        if self.role is not None:
            await self.role.start()
        if "web" in self.roles:
            await self._restore_wrapups()
            await self._start_web()
        self._started = True
        for link in self.links:
            if link.following and link.synced.is_set():
                await self._start_dialers(link)

    async def _start_controller(self) -> None:
        await self.leases.start(roles=",".join(sorted(self.roles)))
        if self.leases.kind == "local":
            # One machine: every call still 'live' is this service's from before.
            # Dialler claims are settled from the PBX once it is followed.
            closed = await self.store.close_interrupted(time.time(), callbacks=False)
            if closed:
                log.warning("%d calls were live when the service last stopped; closed as "
                            "interrupted", closed)
        await self._start_speech()
        self.live.start()
        await self.controller.start()
        try:
            # Know which calls are still live before owing wrap-ups for them.
            await asyncio.wait_for(asyncio.gather(*(
                link.synced.wait() for link in self.links if link.following)), 5.0)
        except asyncio.TimeoutError:
            log.warning("no AMI resync yet; the console starts without the live calls")

    async def _start_web(self) -> None:
        app = self.console.build()
        # keepalive_timeout is also how long a client may take to send a request's
        # headers: a connection that never completes one is closed (slowloris).
        self._runner = web.AppRunner(app, access_log=None,
                                     keepalive_timeout=self.settings.web.header_timeout)
        await self._runner.setup()
        base = Path(self.settings.source).parent if self.settings.source else None
        self._site = make_site(self._runner, self.settings.web, base)
        await self._site.start()
        scheme = "https" if self.settings.web.tls.enabled else "http"
        log.info("console listening on %s (%s); open %s", ", ".join(
            f"{scheme}://{h if ':' not in h else f'[{h}]'}:{p}" for h, p in self._site.bound),
            "this machine only" if is_loopback(self.settings.web.host) else "reachable from the network",
            self.web_url)

    async def _start_speech(self) -> None:
        if self.speech is None:
            log.info("speech is off (speech.enabled: false): no taps, no coaching")
            return
        try:
            await self.speech.start()
        except Exception as exc:     # no model: the console still pops and records calls
            log.error("speech recognition unavailable, calls are not coached: %s "
                      "(see `ivr models`)", exc)
            self.bus.unsubscribe(self.live.on_call_event)
            self.bus.unsubscribe(self.speech.on_call_event)
            self.bus.unsubscribe(self.taps.on_call_event)
            self.speech = self.tap_server = self.taps = None
            return
        await self.tap_server.start()

    def _scripts_changed(self, report) -> None:
        self.rules.reload()    # rule files live beside the scripts
        self.console.scripts_changed(self.script_problems())

    async def _restore_wrapups(self) -> None:
        """Wrap-ups still owed from before a restart come back to the agents' consoles."""
        live = {c.call_id for c in self.console.ctx.live_calls()}
        for user in self.settings.users:
            for record in await self.store.calls_needing_wrapup(user.login):
                if record["call_id"] in live:
                    continue          # still live: the pop follows it as usual
                call = self.recorder.call_from_record(record)
                script, reason = self.scripts.pop(call, user)
                self.pop.restore_wrapup(user.login, call, script, reason)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for link in self.links:
            await self._stop_dialers(link)
        for settler in self.settlers.values():
            await settler.close()
        await self.controller.close()
        await self.leases.close()
        if self.role is not None:
            await self.role.close()
        if self.bus_link is not None:
            await self.bus_link.close()
        if self.taps is not None:
            await self.taps.close()
            await self.tap_server.close()
            await self.speech.close()
        await self.live.close()
        if self._watch:
            self._watch.cancel()
        if self._runner:
            await self._runner.cleanup()
        await self.recorder.close(timeout=10)   # logs any outcome it could not write
        await self.report_store.close()
        await self.store.close()

    async def run_forever(self) -> None:
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Ctrl-C, a process manager's TERM, a closed terminal's HUP: a clean stop.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await self.stop()
