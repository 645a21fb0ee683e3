"""`ivr demo`: the whole product on one machine, in one command.

Starts the sandbox PBX, the service (call tracking, script pop, web console),
an agent's phone (SIPp, extension 1003) and then a customer who calls the main
number, picks "support" in the menu and talks. Prints the console URL and the
sign-in, and every call event as the service tracks it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import signal
import tempfile
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

from .calls.events import CallEnded, CallEvent, describe
from .config import AgentGroup, GroupMember, Settings, load_settings
from .pbx.sandbox import Sandbox
from .secret import Secret
from .server import Service
from .users import User

log = logging.getLogger(__name__)

AGENT = "1003"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class DemoCall:
    """What the demo's phones say, in the speech model's language.

    The agent forgets the company name (a prompt fires at the deadline) but
    greets and offers help (ticks); the customer turns rude (the calm card)."""

    agent_name: str
    caller: str  # the caller's number picks the script
    agent_lines: tuple[str | float, ...]
    customer_lines: tuple[str | float, ...]
    voice: str


ENGLISH = DemoCall(
    agent_name="Csilla Toth",
    caller="36201234567",
    voice="en",
    agent_lines=(
        1.0,
        "Good morning, support, this is Csilla Toth speaking.",
        1.0,
        "How can I help you?",
        8.0,
    ),
    customer_lines=(
        6.0,
        "I am calling about my invoice. It is too expensive. You are useless, this is ridiculous.",
        6.0,
    ),
)
KOREAN = DemoCall(
    agent_name="김민수",
    caller="821012345678",
    voice="ko",
    agent_lines=(1.0, "여보세요", 1.2, "김민수", 1.2, "말씀해 주세요", 6.0),
    customer_lines=(5.0, "바보", 5.0),
)


def demo_call_for(settings: Settings) -> DemoCall:
    """Korean lines when the speech model is Korean (as in CI), else English."""
    try:
        from .speech.models import installed_models, resolve_model

        path = resolve_model(settings.speech.model)
        lang = next((m.lang for m in installed_models() if m.path == path), "")
    except Exception:
        lang = ""
    return KOREAN if lang.startswith("ko") else ENGLISH


def speech_file(call: DemoCall, lines: tuple[str | float, ...], out: Path) -> Path:
    """The lines spoken by espeak-ng with pauses, as the u-law file SIPp plays."""
    from .testing.speech import lines_to_ulaw

    return lines_to_ulaw(lines, out, voice=call.voice)


def demo_settings(config: str | None) -> tuple[Settings, dict[str, str]]:
    """The user's settings, with what the demo needs filled in (printed, not stored)."""
    settings = load_settings(config)
    shown: dict[str, str] = {}
    ami = settings.ami
    if not ami.secret:
        ami = dataclasses.replace(ami, secret=Secret(secrets.token_urlsafe(12)))
    users = list(settings.users)
    if settings.user(AGENT) is None:
        users.append(
            User(
                login=AGENT,
                name=demo_call_for(settings).agent_name,
                operator_id="31",
                position="support specialist",
                secret=Secret(secrets.token_urlsafe(6)),
            )
        )
    if not any(u.is_supervisor for u in users):
        users.append(
            User(
                login="boss",
                name="Sara Supervisor",
                role="supervisor",
                secret=Secret(secrets.token_urlsafe(6)),
            )
        )
    for u in users:
        if u.login == AGENT or u.is_supervisor:
            shown[u.login] = str(u.secret)
    groups = settings.groups
    if not any(m.login == AGENT for g in groups for m in g.agents):
        groups = (
            *groups,
            AgentGroup(
                "demo-support",
                projects=("acme-support",),
                queues=("support",),
                agents=(GroupMember(AGENT),),
            ),
        )
    pbx = settings.pbx
    if pbx.instance == "default":
        pbx = dataclasses.replace(pbx, instance="demo")
    scripts = settings.scripts
    if settings.source is None:  # no config file: use the repo's folders
        repo = Path(__file__).resolve().parents[1]
        pbx = dataclasses.replace(pbx, dialplans=str(repo / "dialplans"))
        scripts = str(repo / "scripts")
    return dataclasses.replace(
        settings, ami=ami, pbx=pbx, users=tuple(users), groups=groups, scripts=scripts
    ), shown


async def _demo(settings: Settings, shown: dict[str, str], wait: float, exit_after: bool) -> int:
    from .testing.phones import AgentPhone, call_customer

    talk = demo_call_for(settings)
    sandbox = Sandbox.from_settings(settings)
    sandbox.ensure_root()
    sandbox.install()
    agent = None
    service = None
    try:
        # Blocking on purpose: a stop signal is acted on once it has started, so the
        # clean-up below always finds it. A PBX left running by a demo that was killed
        # is restarted with these settings.
        sandbox.start()
        sip = f"{sandbox.sip_host}:{sandbox.sip_port}"
        service = Service(settings)
        done = asyncio.Event()

        def show(event: CallEvent) -> None:
            print("  " + describe(event), flush=True)
            if isinstance(event, CallEnded):
                done.set()

        service.bus.subscribe(show)
        # Prompts and checklist ticks, as the agent's console shows them.
        coached = service.live
        on_prompt, on_tick = coached.on_prompt, coached.on_tick

        def prompt(p) -> None:
            print(f"  prompt at {p.at:4.1f}s [{p.severity}] {p.text}", flush=True)
            on_prompt(p)

        def tick(t) -> None:
            print(f"  ticked at {t.at:4.1f}s: {t.item_id} (heard {t.phrase!r})", flush=True)
            on_tick(t)

        coached.engine.on_prompt, coached.engine.on_tick = prompt, tick
        await service.start()
        await service.ami.wait_connected(15)
        logs = Path(tempfile.mkdtemp(prefix="ivr-demo-"))
        agent = AgentPhone(
            sip,
            AGENT,
            log_dir=logs,
            ring_ms=2000,
            audio=speech_file(talk, talk.agent_lines, logs / "agent.ulaw"),
        )
        await agent.astart()
        # Signed in to the support queue afresh, ready (as signing in to the console
        # does; Asterisk may remember a break or wrap-up from an earlier demo).
        await service.agent_states.set_state(AGENT, "offline", by="demo")
        await service.agent_states.log_in(AGENT, by="demo")
        print()
        print(f"Agent console:      {service.web_url}/  sign in as {AGENT} / {shown[AGENT]}")
        for login, secret in shown.items():
            if login != AGENT:
                print(f"Supervisor board:   {service.web_url}/  sign in as {login} / {secret}")
        print(f"Sandbox PBX:        SIP udp {sip}, AMI {sandbox.ami_host}:{sandbox.ami_port}")
        print(flush=True)
        if wait > 0:
            print(f"Placing the demo call once the agent console is open (or in {wait:.0f} s)...")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while loop.time() < deadline and not service.console_connected(AGENT):
                await asyncio.sleep(0.2)
        print(f"A customer ({talk.caller}) calls 5550100 and presses 2 (support):", flush=True)
        customer = call_customer(
            sip,
            "5550100",
            digit="2",
            talk_ms=30000,
            log_dir=logs,
            caller=talk.caller,
            audio=speech_file(talk, talk.customer_lines, logs / "customer.ulaw"),
        )
        try:
            await asyncio.wait_for(done.wait(), 60)
            await customer.wait_async(30)
        finally:
            if customer.running:
                await customer.stop_async(grace=1)
        print("\nThe call is over; its wrap-up waits in the agent console.")
        if not exit_after:
            print("Press Ctrl-C to stop the demo (PBX, phones and service).", flush=True)
            await asyncio.Event().wait()
    finally:
        # Also on Ctrl-C, SIGTERM or SIGHUP (the task is cancelled): nothing is left running.
        if agent is not None:
            await agent.astop()
        if service is not None:
            await service.stop()
        await asyncio.to_thread(sandbox.stop)
    return 0


async def _until_stopped(main: Awaitable[int]) -> int:
    """Run ``main``; SIGINT, SIGTERM and SIGHUP (Ctrl-C, a process manager, a closed
    terminal) cancel it, so that its clean-up runs, and the command ends with 0."""
    task = asyncio.ensure_future(main)
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        print("\nStopped: the PBX, the phones and the service are down.", flush=True)
        return 0
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def run_demo(config: str | None, wait: float = 30.0, exit_after: bool = False) -> int:
    settings, shown = demo_settings(config)
    # The demo prints each call event itself; the service's own log line would repeat it.
    logging.getLogger("ivr.calls.bus").setLevel(logging.WARNING)
    return asyncio.run(_until_stopped(_demo(settings, shown, wait, exit_after)))
