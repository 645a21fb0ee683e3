#!/usr/bin/env python3
"""Scale-out: the same load through one embedded process and through the distributed roles.

    python bench/scale_out.py [--pop-calls N] [--pop-window W] [--pop-rate EV_PER_S]
                              [--prompt-calls N] [--utterances U] [--skip-prompt] [--skip-pop]

Two modes, side by side, each with the service in its own process(es) as in
production (`python -m ivr serve`), on one PostgreSQL store (a throw-away
cluster, tests/postgres.py):

- embedded: one process, every stage, no bus (today's default);
- distributed: a controller (AMI, tracker, pop, recorder, taps, speech,
  coaching) and a web front (consoles) in two processes, over a NATS server
  (Debian nats-server, tests/nats.py);
- workers (prompt load only): the same with the speech on a speech worker
  of its own (`--role speech`): controller, speech worker and web front in
  three processes.

Two loads, from the existing benchmarks' fake Asterisks (each in its own
process; they stream to the service's AMI session when told "To: others"):

- pop: bench/pop_latency.py's replay of recorded calls (many calls in
  flight, one console per agent, wrap-ups saved): AMI event that rings the
  agent -> card on that agent's WebSocket;
- prompt: bench/prompt_latency.py's live calls with real-time audio on
  AudioSocket taps, the real Korean Vosk model: end of the customer's
  "바보" -> coaching prompt on the agent's WebSocket.

Reported per mode: p50 / p95 / max latency, CPU seconds of each service
process, and on the bus: NATS messages and bytes per call (from nats-server's
monitoring endpoint). Consoles and the fake Asterisk run in this process and
its child; every process shares this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _p in (ROOT, BENCH):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import pop_latency  # noqa: E402
import prompt_latency  # noqa: E402
from harness import (  # noqa: E402
    EOL,
    USERNAME,  # noqa: E402
    BenchError,
    agent_users,
    cpu_model,
    fake_asterisk,
    parse_action,
    percentile,
    wire,
)

from tests.nats import NatsServer  # noqa: E402
from tests.postgres import PostgresCluster  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------- the service's processes
class Proc:
    def __init__(self, name: str, config: dict, folder: Path, roles: tuple[str, ...] = ()):
        self.name = name
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        self.log = folder / f"{name}.log"
        cmd = [sys.executable, "-m", "ivr", "serve", "-c", str(path)]
        for role in roles:
            cmd += ["--role", role]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("IVR_CONFIG", None)
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for(self, needle: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited:\n{self.text()[-2000:]}")
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{self.name}: no {needle!r} within {timeout:.0f} s:\n{self.text()[-2000:]}"
                )
            await asyncio.sleep(0.1)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def base_config(
    ami_port: int, secret: str, users, dsn: str, scripts: Path, speech: bool, web_port: int
) -> dict:
    return {
        "ami": {
            "host": "127.0.0.1",
            "port": ami_port,
            "username": USERNAME,
            "secret": secret,
            "reconnect_min": 0.2,
            "reconnect_max": 2.0,
        },
        "web": {"host": "127.0.0.1", "port": web_port, "max_connections_per_address": 100000},
        "store": {"url": dsn},
        "tap": {"host": "127.0.0.1", "port": free_port()},
        "speech": {"enabled": speech},
        "scripts": str(scripts),
        "customers": str(ROOT / "scripts" / "customers.csv"),
        "users": {
            u.login: {
                "name": u.name,
                "secret": str(u.secret),
                "operator_id": u.operator_id,
                "position": u.position,
            }
            for u in users
        },
        "log_level": "INFO",  # both modes log alike (one line per call event)
    }


def measured_since(procs, cpu0: dict, monitor) -> tuple[dict, tuple[int, int]]:
    """CPU seconds of each process since ``cpu0``, and NATS counts now."""
    cpu = {p.name: p.cpu_seconds() - cpu0[p.name] for p in procs}
    return cpu, (nats_counts(monitor) if monitor else (0, 0))


async def start_service(
    mode: str, folder: Path, config: dict, nats: NatsServer | None
) -> list[Proc]:
    if mode == "embedded":
        procs = [Proc("embedded", config, folder)]
        await procs[0].wait_for("console listening on")
        return procs
    bus = {**config, "bus": {"url": nats.url}}
    procs = []
    if mode == "workers":
        worker_cfg = {**bus, "cluster": {"instance": "bench-speech"}}
        procs.append(Proc("speech", worker_cfg, folder, roles=("speech",)))
        await procs[0].wait_for("speech worker bench-speech: taps at")
    ctl = Proc(
        "controller",
        {**bus, "cluster": {"instance": "bench-controller"}},
        folder,
        roles=("controller",) if mode == "workers" else ("controller", "speech"),
    )
    web_cfg = {**bus, "cluster": {"instance": "bench-web"}}
    web = Proc("web", web_cfg, folder, roles=("web",))
    await ctl.wait_for("AMI resync:")
    if mode == "workers":
        await ctl.wait_for("speech worker bench-speech at")
    await web.wait_for("console listening on")
    return [*procs, ctl, web]


# --------------------------------------------------------------------- consoles
@dataclass
class Consoles:
    base: str
    wrapup_delay: float = 0.5
    # (call id, agent) -> arrival of that agent's first card of the call (ring-all
    # queues ring several agents: each ring is timed to its own agent's card)
    first_card: dict[tuple[str, str], float] = field(default_factory=dict)
    prompts: list[tuple[str, float]] = field(default_factory=list)  # (call id, arrival)
    hellos: int = 0
    wrapups: int = 0

    async def open(self, users) -> None:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.sockets = []
        self.tasks = []
        for u in users:
            jar = aiohttp.CookieJar(unsafe=True)
            http = aiohttp.ClientSession(
                self.base,
                cookie_jar=jar,
                headers={"Origin": self.base},
                connector=aiohttp.TCPConnector(limit=0),
            )
            r = await http.post("/api/login", json={"login": u.login, "secret": str(u.secret)})
            if r.status != 200:
                raise BenchError(f"sign-in of {u.login}: {r.status} {await r.text()}")
            ws = await http.ws_connect("/ws", max_msg_size=0)
            self.sockets.append((http, ws))
            self.tasks.append(asyncio.ensure_future(self._read(http, ws, u.login)))

    async def _read(self, http, ws, login: str) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.time()
            data = json.loads(msg.data)
            kind = data.get("type")
            if kind == "hello":
                self.hellos += 1
            elif kind == "card" and data.get("card"):
                card = data["card"]
                self.first_card.setdefault((card["call_id"], login), now)
                if card["phase"] == "wrapup":
                    self.tasks.append(asyncio.ensure_future(self._wrap_up(http, card)))
            elif kind == "prompt":
                self.prompts.append((data.get("call_id", ""), now))

    async def _wrap_up(self, http, card: dict) -> None:
        await asyncio.sleep(self.wrapup_delay)
        plain = [
            d["id"]
            for d in (card.get("script") or {}).get("dispositions") or [{"id": "resolved"}]
            if not (d.get("needs_note") or d.get("needs_callback_time"))
        ]
        r = await http.post(f"/api/calls/{card['call_id']}/wrapup", json={"disposition": plain[0]})
        if r.status == 200:
            self.wrapups += 1

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for http, ws in self.sockets:
            await ws.close()
            await http.close()
        await self.session.close()


async def bench_start(port: int, secret: str, timeout: float) -> dict[str, str]:
    """Log in to the fake Asterisk and send BenchStart To: others (the service's session)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()
    writer.write(
        wire(("Action", "Login"), ("Username", USERNAME), ("Secret", secret), ("ActionID", "l"))
    )
    writer.write(wire(("Action", "BenchStart"), ("To", "others"), ("ActionID", "go")))
    await writer.drain()
    deadline = time.monotonic() + timeout
    try:
        while True:
            raw = await asyncio.wait_for(
                reader.readuntil((EOL + EOL).encode()), max(1.0, deadline - time.monotonic())
            )
            msg = parse_action(raw)
            if msg.get("actionid") == "go" and msg.get("response"):
                return msg
    finally:
        writer.close()


def nats_counts(monitor: int) -> tuple[int, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/varz", timeout=5) as r:
        v = json.load(r)
    return int(v["in_msgs"]), int(v["in_bytes"])


@dataclass
class Result:
    mode: str
    load: str
    latencies: list[float]
    expected: int
    cpu: dict[str, float]
    calls: int
    bus_msgs: int = 0
    bus_bytes: int = 0
    notes: list[str] = field(default_factory=list)


async def run_pop(
    mode: str, a, folder: Path, dsn: str, nats: NatsServer | None, monitor: int | None
) -> Result:
    users = agent_users(a.pop_agents, pop_latency.FIRST_AGENT)
    secret = secrets.token_urlsafe(16)
    paths = sorted((ROOT / "tests" / "data").glob("*.ami"))
    events = sum(len(pop_latency.Recording.load(p).capture.messages) for p in paths)
    timeout = 60 + a.pop_calls * events / len(paths) / a.pop_rate
    config = pop_latency.ServerConfig(
        captures=paths,
        secret=secret,
        calls=a.pop_calls,
        window=a.pop_window,
        logins=[u.login for u in users],
        rate=a.pop_rate,
        seed=1,
        max_seconds=timeout + 120,
    )
    with fake_asterisk(pop_latency.serve, config) as pbx:
        port, results = pbx.port, pbx.results
        web_port = free_port()
        cfg = base_config(port, secret, users, dsn, ROOT / "scripts", False, web_port)
        procs = await start_service(mode, folder / f"pop-{mode}", cfg, nats)
        consoles = Consoles(f"http://127.0.0.1:{web_port}")
        try:
            await consoles.open(users)
            await asyncio.sleep(2.0)  # hellos and presence settle
            cpu0 = {p.name: p.cpu_seconds() for p in procs}
            bus0 = nats_counts(monitor) if monitor else (0, 0)
            await bench_start(port, secret, timeout)
            sent = await asyncio.to_thread(lambda: results.recv() if results.poll(30) else ([],))
            rings = sent[0]  # (call id, login, time.time()) of each ringing event
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (
                sum((c, lg) in consoles.first_card for c, lg, _ in rings) < len(rings)
            ):
                await asyncio.sleep(0.05)
            cpu, bus1 = measured_since(procs, cpu0, monitor)
        finally:
            await consoles.close()
            for p in procs:
                p.stop()
    lat = [consoles.first_card[(c, lg)] - t for c, lg, t in rings if (c, lg) in consoles.first_card]
    return Result(
        mode, "pop", lat, len(rings), cpu, a.pop_calls, bus1[0] - bus0[0], bus1[1] - bus0[1]
    )


async def run_prompt(
    mode: str, a, folder: Path, dsn: str, nats: NatsServer | None, monitor: int | None
) -> Result:
    users = prompt_latency.korean_agents(a.prompt_calls)
    secret = secrets.token_urlsafe(16)
    customer_pcm, _, c_voice = prompt_latency.trimmed_speech(prompt_latency.CUSTOMER_PHRASE)
    period, lead, tail, spacing = 3.0, 3.0, 2.5, 0.05
    play = lead + a.prompt_calls * spacing + a.utterances * period + tail
    config = prompt_latency.PbxConfig(
        capture=prompt_latency.CAPTURE,
        secret=secret,
        logins=[u.login for u in users],
        customer_pcm=customer_pcm,
        agent_pcm=None,
        utterances=a.utterances,
        period=period,
        agent_offset=0.0,
        lead=lead,
        tail=tail,
        answer_spacing=spacing,
        max_seconds=play + 180,
    )
    with fake_asterisk(prompt_latency.serve, config) as pbx:
        port, results = pbx.port, pbx.results
        scripts = prompt_latency.prepare_scripts(folder / f"prompt-{mode}", 1.0)
        web_port = free_port()
        cfg = base_config(port, secret, users, dsn, scripts, True, web_port)
        procs = await start_service(mode, folder / f"prompt-{mode}", cfg, nats)
        consoles = Consoles(f"http://127.0.0.1:{web_port}")
        try:
            await consoles.open(users)
            await asyncio.sleep(2.0)
            cpu0 = {p.name: p.cpu_seconds() for p in procs}
            bus0 = nats_counts(monitor) if monitor else (0, 0)
            await bench_start(port, secret, play + 60)
            played = await asyncio.to_thread(lambda: results.recv() if results.poll(30) else {})
            await asyncio.sleep(2.0)
            cpu, bus1 = measured_since(procs, cpu0, monitor)
        finally:
            await consoles.close()
            for p in procs:
                p.stop()
    utterances = [u for u in played.get("utterances", []) if u["whole"]]
    lat = []
    for u in utterances:
        nxt = u["t_end"] + period - 0.2
        got = [t for c, t in consoles.prompts if c == u["call_id"] and u["t_end"] <= t < nxt]
        if got:
            lat.append(min(got) - u["t_end"])
    return Result(
        mode,
        "prompt",
        lat,
        len(utterances),
        cpu,
        a.prompt_calls,
        bus1[0] - bus0[0],
        bus1[1] - bus0[1],
    )


# --------------------------------------------------------------------- report
def line(r: Result) -> str:
    v = sorted(r.latencies)
    if not v:
        return f"  {r.load:<7}{r.mode:<12} no results"
    ms = [percentile(v, p) * 1e3 for p in (50, 95)] + [v[-1] * 1e3]
    cpu = ", ".join(f"{k} {s:.1f}" for k, s in r.cpu.items())
    bus = (
        f"{r.bus_msgs / r.calls:7.1f} msg/call {r.bus_bytes / r.calls / 1024:6.1f} KiB/call"
        if r.bus_msgs
        else "      -"
    )
    return (
        f"  {r.load:<7}{r.mode:<12}{len(v):>5}/{r.expected:<5}"
        + "".join(f"{x:9.1f}" for x in ms)
        + f"   cpu s: {cpu:<34}{bus}"
    )


async def main_async(a) -> int:
    pg = PostgresCluster.start_new()
    nats = None
    try:
        nats = NatsServer.start_new()
        monitor = free_port()
        # Restart the server with its monitoring port (message counts from /varz).
        nats.kill()
        nats.proc = subprocess.Popen(
            [nats.binary, "-a", "127.0.0.1", "-p", str(nats.port), "-m", str(monitor)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        await asyncio.sleep(0.5)
        results: list[Result] = []
        with tempfile.TemporaryDirectory(prefix="ivr-scale-") as tmp:
            folder = Path(tmp)
            for load in ("pop", "prompt"):
                if (load == "prompt" and a.skip_prompt) or (load == "pop" and a.skip_pop):
                    continue
                modes = ("embedded", "distributed") + (("workers",) if load == "prompt" else ())
                for mode in modes:
                    (folder / f"{load}-{mode}").mkdir()
                    dsn = pg.create_database()
                    run = run_pop if load == "pop" else run_prompt
                    r = await run(
                        mode,
                        a,
                        folder,
                        dsn,
                        nats if mode != "embedded" else None,
                        monitor if mode != "embedded" else None,
                    )
                    results.append(r)
                    print(line(r), flush=True)
        print()
        for load in ("pop", "prompt"):
            runs = [r for r in results if r.load == load and r.latencies]
            if len(runs) < 2 or runs[0].mode != "embedded":
                continue
            e = runs[0]
            p95e, cpu_e = percentile(sorted(e.latencies), 95), sum(e.cpu.values())
            for d in runs[1:]:
                p95d, cpu_d = percentile(sorted(d.latencies), 95), sum(d.cpu.values())
                print(
                    f"  {load}: p95 {p95e * 1e3:.1f} ms embedded, {p95d * 1e3:.1f} ms "
                    f"{d.mode} ({(p95d - p95e) * 1e3:+.1f} ms); service CPU "
                    f"{cpu_e:.1f} s vs {cpu_d:.1f} s (x{cpu_d / max(cpu_e, 0.01):.2f})"
                )
        missing = [r for r in results if len(r.latencies) < r.expected]
        return 1 if missing else 0
    finally:
        if nats is not None:
            nats.stop()
        pg.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    p.add_argument("--pop-calls", type=int, default=400)
    p.add_argument("--pop-window", type=int, default=100)
    p.add_argument("--pop-agents", type=int, default=150, help="more than --pop-window")
    p.add_argument("--pop-rate", type=float, default=500.0, help="AMI events per second")
    p.add_argument("--prompt-calls", type=int, default=8)
    p.add_argument("--utterances", type=int, default=6)
    p.add_argument("--skip-prompt", action="store_true")
    p.add_argument("--skip-pop", action="store_true")
    a = p.parse_args(argv)
    if a.pop_agents < a.pop_window:
        p.error("--pop-agents must be at least --pop-window")
    print(
        f"Python {platform.python_version()}, {cpu_model()} ({os.cpu_count()} logical CPUs), "
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"  {'load':<7}{'mode':<12}{'got':>5}/{'sent':<5}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    try:
        return asyncio.run(main_async(a))
    except BenchError as exc:
        print(f"the benchmark did not complete: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
