#!/usr/bin/env python3
"""The benchmark of record for live coaching: real calls through the sandbox Asterisk.

    python bench/live_load.py [--calls 12 30] [--mode spotting transcript] [--seconds 60]
                              [--variants 4] [--keep]

Per run (one mode, N concurrent calls):

* the sandbox Asterisk 22 (its own instance and ports), with the project's
  dialplans plus, in a copy, ``--variants`` bench agents (2001...) and a DID per
  agent (55520NN: Dial(PJSIP/20NN), PROJECT=acme-support) so one SIPp phone per
  agent takes its calls;
* the real service, ``python -m ivr serve``, in its own process (its CPU and
  memory measured from /proc), SQLite store, speech on, ``speech.mode`` = the
  run's mode; the callers' numbers start with 82, so the support project pops
  the Korean support script (scripts/acme-support-ko.yaml);
* N calls at once (started over a few seconds), each ``--seconds`` long, both
  parties talking: labelled dialogues from bench/corpus/ko.yaml (two corpus
  calls back to back), espeak-ng Korean through a phone line with noise, played
  by SIPp as RTP, both ways.

It reports per run: the service's CPU (and Asterisk's), the service's RSS
before / peak / 15 s after the calls, audio received by the taps vs sent by the
phones per stream, recognition lag p50/p95 (audio arrival -> recognised, from
the service's /metrics histogram), audio shed, the capacity level reached,
prompts and ticks against the labels of each call's dialogue (precision,
recall, false critical cards), and calls recorded.
"""

from __future__ import annotations

import argparse
import audioop
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import yaml  # noqa: E402
from coaching_accuracy import Score, expectations, score_call  # noqa: E402
from coaching_accuracy import report as accuracy_report
from harness import scrape  # noqa: E402
from live_coaching_sim import CallResult  # noqa: E402
from speech_corpus import Corpus, LabelledCall, Said, generate, render  # noqa: E402

from ivr.coaching.rules import RuleLibrary  # noqa: E402
from ivr.config import AmiSettings, PbxSettings, Settings  # noqa: E402
from ivr.pbx.sandbox import Sandbox  # noqa: E402
from ivr.secret import Secret  # noqa: E402
from ivr.testing.phones import AgentPhone, call_customer, free_port  # noqa: E402

AGENT_NAME = "김민수"
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the PBX and its bench agents
BENCH_PJSIP = """
; ---- bench agents (bench/live_load.py): one SIPp phone each, many calls at once
[{ext}](agent-endpoint)
auth = {ext}
aors = {ext}
callerid = "Bench {ext}" <{ext}>
[{ext}](agent-auth)
username = {ext}
password = agent{ext}
[{ext}](agent-aor)
"""
BENCH_DID = """
; ---- bench DIDs (bench/live_load.py): 55520NN rings bench agent 20NN
exten => _55520XX,1,NoOp(Bench call for agent 20${{EXTEN:5}})
 same => n,Set(__CALL_DIRECTION=inbound)
 same => n,Set(__DID=${{EXTEN}})
 same => n,Set(__PROJECT=acme-support)
 same => n,Dial(PJSIP/20${{EXTEN:5}},30)
 same => n,Hangup()
"""


def bench_dialplans(dest: Path, agents: list[str]) -> Path:
    shutil.copytree(ROOT / "dialplans", dest)
    with open(dest / "pjsip.conf", "a") as f:
        for ext in agents:
            f.write(BENCH_PJSIP.format(ext=ext))
    ext = (dest / "extensions.conf").read_text()
    # In the carrier's own context: an included one would lose to its catch-all _X.
    ext = ext.replace("[from-trunk]\n", "[from-trunk]\n" + BENCH_DID.format(), 1)
    (dest / "extensions.conf").write_text(ext)
    return dest


# ---------------------------------------------------------------- dialogues
def dialogue(corpus: Corpus, index: int, seconds: float, seed: int) -> LabelledCall:
    """A labelled dialogue of ``seconds``: corpus calls back to back, cut where the call
    hangs up (lines that would not be over by then are left out, labels and all)."""
    parts = generate(corpus, 8, seed * 1000 + index)
    lines: list[Said] = []
    t = 0.0
    for part in parts:
        for s in part.lines:
            if s.end + t <= seconds - 1.0:
                lines.append(
                    Said(
                        s.speaker,
                        s.text,
                        s.says,
                        round(s.start + t, 3),
                        round(s.end + t, 3),
                        s.voice,
                        s.speed,
                    )
                )
        t += part.duration
        if t >= seconds:
            break
    first = parts[0]
    return LabelledCall(
        index,
        lines,
        first.voices,
        first.speeds,
        first.snr_db,
        first.seed,
        duration=round(seconds + 5, 3),
    )


def write_ulaw(pcm: bytes, path: Path) -> Path:
    path.write_bytes(audioop.lin2ulaw(pcm, 2))
    return path


# ---------------------------------------------------------------- measuring processes
def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def proc_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e6


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus-style: linear within the bucket that holds the q-th observation."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0
    if not total:
        return 0.0
    rank, prev_b, prev_c = q * total, 0.0, 0.0
    for b, c in buckets:
        if c >= rank:
            if b == float("inf"):
                return prev_b
            return prev_b + (b - prev_b) * (rank - prev_c) / max(c - prev_c, 1e-9)
        prev_b, prev_c = b, c
    return prev_b


@dataclass
class Run:
    mode: str
    calls: int
    cpu_service: float = 0.0
    cpu_asterisk: float = 0.0
    wall: float = 0.0
    rss: list[float] = field(default_factory=list)
    rss_before: float = 0.0
    rss_after: float = 0.0
    lines: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- one run
def one_run(
    a,
    mode: str,
    n: int,
    sandbox: Sandbox,
    pbx: Settings,
    work: Path,
    dialogues: list[LabelledCall],
    audio: list[tuple[Path, Path]],
    rules: RuleLibrary,
    filled: dict,
    ruleset,
) -> Run:
    run = Run(mode, n)
    rdir = work / f"{mode}-{n}"
    rdir.mkdir(parents=True)
    web_port = tcp_port()
    k = len(dialogues)
    agents = [f"20{i + 1:02d}" for i in range(k)]
    config = {
        "ami": {
            "host": "127.0.0.1",
            "port": pbx.ami.port,
            "username": "ivr",
            "reconnect_min": 0.2,
            "reconnect_max": 2,
        },
        "web": {"host": "127.0.0.1", "port": web_port},
        "store": {"url": f"sqlite:{rdir / 'ivr.db'}"},
        "tap": {"host": "127.0.0.1", "port": tcp_port()},
        "speech": {"model": a.model, "mode": mode},
        "scripts": str(ROOT / "scripts"),
        "log_level": "INFO",
        "users": {
            ext: {"name": AGENT_NAME, "operator_id": ext[-2:], "secret": "bench-" + ext}
            for ext in agents
        },
    }
    cfg = rdir / "ivr.yaml"
    cfg.write_text(yaml.safe_dump(config, allow_unicode=True))
    env = dict(os.environ, IVR_AMI_SECRET=str(pbx.ami.secret), PYTHONPATH=str(ROOT))
    log_path = rdir / "service.log"
    with open(log_path, "wb") as logf:
        svc = subprocess.Popen(
            [sys.executable, "-m", "ivr", "serve", "-c", str(cfg)],
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    phones: list[AgentPhone] = []
    customers = []
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{web_port}/api/health", timeout=2
                ) as r:
                    if json.loads(r.read()).get("ok"):
                        break
            except Exception:
                pass
            if svc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the service did not start; see {log_path}")
            time.sleep(0.3)
        time.sleep(2)
        run.rss_before = proc_rss_mb(svc.pid)
        sip = f"{pbx.pbx.sip_host}:{pbx.pbx.sip_port}"
        for ext, (agent_audio, _) in zip(agents, audio, strict=False):
            phones.append(
                AgentPhone(
                    sip,
                    ext,
                    log_dir=rdir,
                    ring_ms=200,
                    audio=agent_audio,
                    lifetime_s=a.seconds + 300,
                ).start()
            )
        per = [n // k + (1 if i < n % k else 0) for i in range(k)]
        c0s, c0a, t0 = proc_cpu(svc.pid), proc_cpu(sandbox.pid()), time.time()
        for i, count in enumerate(per):
            if not count:
                continue
            customers.append(
                call_customer(
                    sip,
                    f"55520{i + 1:02d}",
                    log_dir=rdir,
                    calls=count,
                    rate=max(1.0, count / 4),
                    limit=count,
                    talk_ms=int(a.seconds * 1000),
                    audio=audio[i][1],
                    caller=f"8210555{i:04d}",
                    name=f"customers-{i + 1}",
                    lifetime_s=a.seconds + 300,
                )
            )
        end_by = time.time() + a.seconds + 90
        while any(c.running for c in customers) and time.time() < end_by:
            run.rss.append(proc_rss_mb(svc.pid))
            time.sleep(1.0)
        run.wall = time.time() - t0
        run.cpu_service = proc_cpu(svc.pid) - c0s
        run.cpu_asterisk = proc_cpu(sandbox.pid()) - c0a
        for c in customers:
            c.stop()
        time.sleep(15)  # idle: what memory does the service keep?
        run.rss_after = proc_rss_mb(svc.pid)
        run.rss.append(run.rss_after)
        m = scrape(f"http://127.0.0.1:{web_port}/metrics")
    finally:
        for p in phones:
            p.stop()
        for c in customers:
            c.stop()
        if svc.poll() is None:
            svc.send_signal(signal.SIGTERM)
            try:
                svc.wait(30)
            except subprocess.TimeoutExpired:
                svc.kill()
    run.lines = summarise(a, run, m, log_path, rdir / "ivr.db", dialogues, filled, ruleset, per)
    return run


def summarise(
    a, run: Run, m, log_path: Path, db: Path, dialogues, filled, ruleset, per: list[int]
) -> list[str]:
    audio = {
        lab["fate"]: v
        for lab, v in m.get("ivr_speech_audio_seconds_total", m.get("ivr_speech_audio_seconds", []))
    }
    buckets = [
        (float("inf") if lab["le"] == "+Inf" else float(lab["le"]), v)
        for lab, v in m.get("ivr_speech_recognition_lag_seconds_bucket", [])
    ]
    level = max((v for _, v in m.get("ivr_speech_capacity_level", [])), default=0)
    # per stream: what each tap received (service log) vs what the phones sent (talk time)
    taps = re.findall(
        r"audio tap (?:\S+ )?ended: call (\S+) (agent|customer), ([\d.]+) s of audio",
        log_path.read_text(errors="replace"),
    )
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM calls")]
    con.close()
    talk = {r["call_id"]: r["talk_seconds"] or 0.0 for r in rows}
    ratios = sorted(float(sec) / talk[cid] for cid, _, sec in taps if talk.get(cid))
    recorded = [r for r in rows if r["state"] == "ended"]
    coached = [r for r in recorded if r["transcript"] is not None]
    # prompts and ticks against the labels of each call's dialogue
    score = Score()
    by_did = {f"55520{i + 1:02d}": d for i, d in enumerate(dialogues)}
    rule_ids = [r.id for r in ruleset.rules] + [f"checklist.{i['id']}" for i in filled["checklist"]]
    for r in coached:
        d = by_did.get(r["did"])
        if d is None:
            continue
        record = {
            "checklist": list(json.loads(r["checklist"] or "{}").values()),
            "prompts": json.loads(r["prompts"] or "[]"),
            "adherence": {"score": r["adherence_score"]},
            "cant_check": json.loads(r["cant_check"] or "[]"),
        }
        fired = {p["rule_id"]: p["at"] for p in record["prompts"]}
        cant = [
            ("checklist." + x["id"]) if x["kind"] == "item" else x["id"]
            for x in record["cant_check"]
        ]
        score_call(
            d,
            expectations(d, filled, ruleset, 1.0),
            CallResult(record, fired, cant, rule_ids),
            score,
        )
    received, processed = audio.get("received", 0.0), audio.get("processed", 0.0)
    out = [
        f"== {run.mode}, {run.calls} calls at once, {a.seconds:.0f} s each, both parties "
        f"talking ({', '.join(map(str, per))} calls per dialogue); machine load average "
        f"{os.getloadavg()[0]:.1f}",
        f"  service CPU        {100 * run.cpu_service / run.wall:5.0f} % of a core "
        f"(Asterisk {100 * run.cpu_asterisk / run.wall:.0f} %) over {run.wall:.0f} s",
        f"  service RSS        before {run.rss_before:.0f} MB, peak {max(run.rss):.0f} MB, "
        f"15 s after {run.rss_after:.0f} MB",
        f"  recognition lag    p50 {histogram_quantile(buckets, 0.5):.2f} s, p95 "
        f"{histogram_quantile(buckets, 0.95):.2f} s (audio arrival -> recognised)",
        f"  audio              received {received:.0f} s, recognised {processed:.0f} s, "
        f"shed {audio.get('shed', 0):.1f} s, refused {audio.get('refused', 0):.1f} s; "
        f"capacity level reached {level:.0f}",
        f"  per stream         received/sent: min {ratios[0] if ratios else 0:.3f}, median "
        f"{ratios[len(ratios) // 2] if ratios else 0:.3f} ({len(ratios)} streams)",
        f"  calls recorded     {len(recorded)} of {run.calls}, coaching saved for {len(coached)}",
    ]
    acc = accuracy_report(score, 0, 1, 0)
    keep = [ln for ln in acc if ln.startswith(("  all", "false critical", "adherence"))]
    out += ["  " + ln.strip() for ln in keep]
    # what went wrong, so a false card can be traced to its dialogue and words
    wrong = [e for e in score.errors if "false prompt" in e]
    out += [f"  {e}" for e in wrong[:12]]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--calls", type=int, nargs="+", default=[12, 30])
    ap.add_argument("--mode", nargs="+", default=["spotting", "transcript"])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--variants", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--model", default="auto")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("live_load: run as root (the sandbox Asterisk uses chroot)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="ivr-live-load-"))
    corpus = Corpus.load("ko")
    dialogues = [dialogue(corpus, i, a.seconds, a.seed) for i in range(a.variants)]
    audio = []
    for d in dialogues:
        pcm = render(d)
        audio.append(
            (
                write_ulaw(pcm["agent"], work / f"agent-{d.index}.ulaw"),
                write_ulaw(pcm["customer"], work / f"customer-{d.index}.ulaw"),
            )
        )
    agents = [f"20{i + 1:02d}" for i in range(a.variants)]
    pbx = Settings(
        ami=AmiSettings(
            host="127.0.0.1", port=tcp_port(), secret=Secret(secrets.token_urlsafe(16))
        ),
        pbx=PbxSettings(
            instance=f"bench-{os.getpid()}",
            sip_host="127.0.0.1",
            sip_port=free_port("udp"),
            trunk_peer=f"127.0.0.2:{free_port('udp', '127.0.0.2')}",
            dialplans=str(bench_dialplans(work / "dialplans", agents)),
        ),
    )
    sandbox = Sandbox.from_settings(pbx)
    sandbox.ensure_root()
    sandbox.install()
    sandbox.start(timeout=60)
    from ivr.calls.model import Call, Direction
    from ivr.scripts.customers import CustomerDirectory
    from ivr.scripts.fill import fill
    from ivr.scripts.library import ScriptLibrary
    from ivr.users import User

    library = ScriptLibrary(ROOT / "scripts")
    library.reload()
    rules = RuleLibrary(ROOT / "scripts" / "rules")
    rules.reload()
    script = next(s for s in library.scripts() if s.id == corpus.script)
    filled = fill(
        script,
        Call(call_id="x", started_at=0.0, direction=Direction.INBOUND, project=corpus.project),
        User(login="2001", name=AGENT_NAME),
        CustomerDirectory(),
    )
    ruleset = rules.ruleset_for(corpus.project, corpus.language)
    print(
        f"{os.cpu_count()} CPUs; model {a.model}; dialogues: {a.variants}, "
        f"{min(d.duration for d in dialogues):.0f}-{max(d.duration for d in dialogues):.0f} s "
        f"of labelled speech each; work folder {work}",
        flush=True,
    )
    try:
        for mode in a.mode:
            for n in a.calls:
                run = one_run(
                    a, mode, n, sandbox, pbx, work, dialogues, audio, rules, filled, ruleset
                )
                print("\n".join(run.lines), flush=True)
    finally:
        sandbox.stop()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
