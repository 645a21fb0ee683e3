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
import tempfile
from pathlib import Path

from .calls.events import CallEnded, CallEvent
from .config import Secret, Settings, User, load_settings
from .pbx.sandbox import Sandbox
from .server import Service, describe

log = logging.getLogger(__name__)

AGENT = "1003"
AGENT_SAYS = ("Good morning, Acme Telecom support, this is Csilla speaking. "
              "How can I help you today?")
CUSTOMER_SAYS = ("Hello, I am calling about my last invoice. It seems too high to me. "
                 "Could you check it please?")


def demo_settings(config: str | None) -> tuple[Settings, dict[str, str]]:
    """The user's settings, with what the demo needs filled in (printed, not stored)."""
    settings = load_settings(config)
    shown: dict[str, str] = {}
    ami = settings.ami
    if not ami.secret:
        ami = dataclasses.replace(ami, secret=Secret(secrets.token_urlsafe(12)))
    users = list(settings.users)
    if settings.user(AGENT) is None:
        users.append(User(login=AGENT, name="Csilla Toth", operator_id="31",
                          position="support specialist", secret=Secret(secrets.token_urlsafe(6))))
    if not any(u.is_supervisor for u in users):
        users.append(User(login="boss", name="Sara Supervisor", role="supervisor",
                          secret=Secret(secrets.token_urlsafe(6))))
    for u in users:
        if u.login == AGENT or u.is_supervisor:
            shown[u.login] = str(u.secret)
    pbx = settings.pbx
    if pbx.instance == "default":
        pbx = dataclasses.replace(pbx, instance="demo")
    scripts = settings.scripts
    if settings.source is None:   # no config file: use the repo's folders
        repo = Path(__file__).resolve().parents[1]
        pbx = dataclasses.replace(pbx, dialplans=str(repo / "dialplans"))
        scripts = str(repo / "scripts")
    return dataclasses.replace(settings, ami=ami, pbx=pbx, users=tuple(users),
                               scripts=scripts), shown


async def _demo(settings: Settings, shown: dict[str, str], wait: float, exit_after: bool) -> int:
    from .pbx.phones import AgentPhone, call_customer, speech_ulaw
    sandbox = Sandbox.from_settings(settings)
    sandbox.ensure_root()
    sandbox.install()
    sandbox.start()
    sip = f"{sandbox.sip_host}:{sandbox.sip_port}"
    service = Service(settings)
    done = asyncio.Event()

    def show(event: CallEvent) -> None:
        print("  " + describe(event), flush=True)
        if isinstance(event, CallEnded):
            done.set()
    service.bus.subscribe(show)
    await service.start()
    await service.ami.wait_connected(15)
    logs = Path(tempfile.mkdtemp(prefix="ivr-demo-"))
    agent = AgentPhone(sip, AGENT, log_dir=logs, ring_ms=2000,
                       audio=speech_ulaw(AGENT_SAYS))
    await agent.astart()
    print()
    print(f"Agent console:      {service.web_url}/  sign in as {AGENT} / {shown[AGENT]}")
    for login, secret in shown.items():
        if login != AGENT:
            print(f"Supervisor board:   {service.web_url}/  sign in as {login} / {secret}")
    print(f"Sandbox PBX:        SIP udp {sip}, AMI {sandbox.ami_host}:{sandbox.ami_port}")
    print()
    try:
        if wait > 0:
            print(f"Placing the demo call once the agent console is open (or in {wait:.0f} s)...")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while loop.time() < deadline and not service.console_connected(AGENT):
                await asyncio.sleep(0.2)
        print("A customer calls 5550100 and presses 2 (support):", flush=True)
        customer = call_customer(sip, "5550100", digit="2", talk_ms=25000, log_dir=logs,
                                 audio=speech_ulaw(CUSTOMER_SAYS))
        await asyncio.wait_for(done.wait(), 60)
        await customer.wait_async(30)
        print("\nThe call is over; its wrap-up waits in the agent console.")
        if not exit_after:
            print("Press Ctrl-C to stop the demo (PBX, phones and service).")
            await asyncio.Event().wait()
    finally:
        await agent.astop()
        await service.stop()
        sandbox.stop()
    return 0


def run_demo(config: str | None, wait: float = 30.0, exit_after: bool = False) -> int:
    settings, shown = demo_settings(config)
    # The demo prints each call event itself; the service's own log line would repeat it.
    logging.getLogger("ivr.server").setLevel(logging.WARNING)
    try:
        return asyncio.run(_demo(settings, shown, wait, exit_after))
    except KeyboardInterrupt:
        return 0
