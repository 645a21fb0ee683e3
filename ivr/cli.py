"""The `ivr` command: serve, pbx up|down|status|cli|apply|rollback, check, call, demo,
hash-secret, test."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from . import logs
from .config import Settings, load_settings
from .yamlfile import YamlError


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, roles=getattr(args, "role", None))


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    logs.setup(settings.log_level, settings.log_format)
    if set(settings.cluster.roles) == {"speech"}:
        from .cluster.speech_worker import SpeechWorker

        asyncio.run(SpeechWorker(settings).run_forever())
        return 0
    from .server import Service

    asyncio.run(Service(settings).run_forever())
    return 0


def cmd_pbx(args: argparse.Namespace) -> int:
    from .pbx.sandbox import Sandbox

    settings = _settings(args)
    if args.action == "build":
        from .pbx.sandbox import build_root

        root = build_root(settings.pbx.root)
        print(f"sandbox root ready: {root}")
        return 0
    if args.action in ("apply", "rollback"):
        return _apply(args, settings)
    sandbox = Sandbox.from_settings(settings)
    if args.action == "up":
        sandbox.ensure_root()
        sandbox.install()
        started = sandbox.start()
        print(f"sandbox PBX '{sandbox.instance}' runs (pid {started})")
        print(f"  AMI  {sandbox.ami_host}:{sandbox.ami_port} user {sandbox.ami_user}")
        from .web.policy import is_loopback

        passwords = (
            "password agent100N), test customer 'customer'/'customer'"
            if is_loopback(sandbox.sip_host)
            else "passwords from $SIP_PASSWORD_<user>), test customer 'customer'"
        )
        print(f"  SIP  udp {sandbox.sip_host}:{sandbox.sip_port}  agents 1001-1004 ({passwords}")
        print(
            "  DIDs 5550100 menu (1 sales, 2 support), 5550111 support, 5550122 sales, "
            "5550199 key accounts"
        )
        print(f"  logs {sandbox.host_dir / 'log'}")
        return 0
    if args.action == "down":
        stopped = sandbox.stop()
        print(f"sandbox PBX '{sandbox.instance}' " + ("stopped" if stopped else "was not running"))
        return 0
    if args.action == "status":
        pid = sandbox.pid()
        if pid is None:
            print(f"sandbox PBX '{sandbox.instance}' is not running")
            return 3
        print(
            f"sandbox PBX '{sandbox.instance}' runs (pid {pid}); "
            f"AMI {sandbox.ami_host}:{sandbox.ami_port}, SIP {sandbox.sip_host}:{sandbox.sip_port}"
        )
        print(sandbox.cli("core show channels count").strip())
        return 0
    if args.action == "cli":
        print(sandbox.cli(" ".join(args.command)), end="")
        return 0
    return 2


def _apply(args: argparse.Namespace, settings: Settings) -> int:
    """`ivr pbx apply|rollback`: see ivr/pbx/apply.py."""
    from .check import check_dialplans, check_references
    from .pbx.apply import ApplyError, apply, folder_target, rollback, sandbox_target
    from .pbx.sandbox import Sandbox, SandboxError

    if args.etc:
        target = folder_target(Path(args.etc), args.cli)
    else:
        sandbox = Sandbox.from_settings(settings)
        if sandbox.pid() is None:
            raise SandboxError(
                f"sandbox PBX '{sandbox.instance}' is not running "
                "(`ivr pbx up` installs dialplans/ as it starts); "
                "for another PBX give --etc and --cli"
            )
        target = sandbox_target(sandbox)
    dialplans = settings.path(settings.pbx.dialplans)
    try:
        if args.action == "rollback":
            change = rollback(target, dry_run=args.dry_run)
        else:
            change = apply(
                dialplans,
                target,
                dry_run=args.dry_run,
                check=lambda d: check_references(settings, d) + check_dialplans(settings, d),
            )
    except ApplyError as exc:
        for p in exc.problems:
            print(p)
        print(f"ivr pbx {args.action}: {exc}", file=sys.stderr)
        return 1
    if not change.changed:
        print(f"{target.label}: already up to date, nothing to {args.action}")
        return 0
    print(change.diff)
    if args.dry_run:
        print(
            f"(dry run) would change {', '.join(change.changed)} and run: "
            + "; ".join(change.reloads)
        )
        return 0
    for command, output in change.outputs.items():
        print(f"{command}: {output or 'ok'}")
    for note in change.notes:
        print(f"note: {note}")
    print(
        f"{target.label}: {', '.join(change.changed)} installed; the previous set is kept "
        + (
            "(`ivr pbx rollback` puts it back)"
            if args.action == "apply"
            else "(run `ivr pbx rollback` again to re-apply)"
        )
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import check_dialplans, check_references

    settings = _settings(args)  # config problems raise YamlError, printed by main()
    print(f"config: ok ({settings.source or 'built-in defaults'})")
    from .scripts.check import check_folder
    from .scripts.customers import check_customers

    failed = False
    scripts_dir = settings.path(settings.scripts)
    problems = check_folder(scripts_dir)
    if settings.customers:
        problems += check_customers(settings.path(settings.customers))
    from .coaching.rules import check_rules

    problems += check_rules(scripts_dir / "rules")
    for p in problems:
        print(p)
    print(f"scripts: {'ok' if not problems else f'{len(problems)} problem(s)'} ({scripts_dir})")
    failed |= bool(problems)
    _check_speech(settings, scripts_dir)
    # Cross-references need no PBX; loading into the sandbox does (--no-pbx skips it).
    problems = check_references(settings)
    if not args.no_pbx:
        problems += check_dialplans(settings)
    for p in problems:
        print(p)
    print(
        f"dialplans: {'ok' if not problems else f'{len(problems)} problem(s)'} "
        f"({settings.path(settings.pbx.dialplans)})"
    )
    failed |= bool(problems)
    return 1 if failed else 0


def _check_speech(settings, scripts_dir) -> None:
    """What the speech model can hear of each script: a summary, not a failure (calls
    still pop and record; what cannot be heard shows as "can't check")."""
    if not settings.speech.enabled:
        print("speech: off (speech.enabled: false)")
        return
    from .speech.check import check_hearing
    from .speech.models import ModelError
    from .speech.recognizer import SpeechModel

    try:
        model = SpeechModel.load(settings.speech.model)
    except ModelError as exc:
        print(f"speech: no model, calls are not coached: {exc}")
        return
    reports = check_hearing(scripts_dir, model)
    for r in reports:
        print(f"speech: {r}")
    short = [r for r in reports if r.unheard]
    verdict = (
        "every script phrase can be heard"
        if not short
        else f"{len(short)} of {len(reports)} scripts have phrases it cannot hear "
        '(their items and rules show "can\'t check" on calls)'
    )
    print(f"speech: model {model.path}: {verdict}")


def cmd_call(args: argparse.Namespace) -> int:
    from .ami.client import AmiClient
    from .outbound import OutboundCall, place_call

    settings = _settings(args)

    async def run() -> int:
        ami = AmiClient(settings.ami, on_event=lambda e: None)
        await ami.start()
        await ami.wait_connected(10)
        placed = await place_call(
            ami,
            OutboundCall(
                agent=args.agent, number=args.number, project=args.project, campaign=args.campaign
            ),
        )
        await ami.close()
        print(f"call {placed.call_id}: {placed.reason}")
        return 0 if placed.answered_by_agent else 1

    return asyncio.run(run())


def cmd_hash_secret(args: argparse.Namespace) -> int:
    """Print the scrypt hash of a console secret, for `secret:` in the config or
    IVR_SECRET_<login>. The secret is read from stdin (one line) or asked for."""
    import getpass

    from .web.passwords import hash_secret, weakness

    if args.stdin or not sys.stdin.isatty():
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = getpass.getpass("secret: ")
        if getpass.getpass("again: ") != secret:
            print("ivr: the two secrets differ", file=sys.stderr)
            return 2
    why = weakness(secret)
    if why:
        print(f"ivr: refusing to hash this secret: {why}", file=sys.stderr)
        return 2
    print(hash_secret(secret))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.config, wait=args.wait, exit_after=args.exit)


# What `ivr test` checks before the tests (settings in pyproject.toml): lint, format, types.
LINT = (("ruff", "check", "ivr", "bench"), ("ruff", "format", "--check", "ivr", "bench"), ("mypy",))


def lint(checkout: Path) -> list[str]:
    """Run the code checks in ``checkout``; the commands that failed (their output shown)."""
    import subprocess

    failed = []
    for cmd in LINT:
        print(f"ivr test: {' '.join(cmd)}", flush=True)
        if subprocess.run([sys.executable, "-m", *cmd], cwd=checkout).returncode != 0:
            failed.append(" ".join(cmd))
    return failed


def run_tests(pytest_args: list[str]) -> int:
    """`ivr test [PYTEST ARGS]`: the test suite of the checkout this ivr is installed
    from (bash .ci/setup installs it editable), run by pytest in the same Python.
    Without arguments (the whole suite, as CI runs it) the code checks (``LINT``)
    come first, and a failed one fails the run."""
    checkout = Path(__file__).resolve().parents[1]
    if not (checkout / "tests").is_dir() or not (checkout / "pyproject.toml").exists():
        print(
            f"ivr test: this ivr is installed from {checkout}, which holds no tests; "
            "run `bash .ci/setup` in a checkout of the repository, then `ivr test` there",
            file=sys.stderr,
        )
        return 2
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() and (folder / "ivr" / "cli.py").exists():
            if folder != checkout:
                print(
                    f"ivr test: this ivr is installed from {checkout}, not from {folder}; "
                    f"run `bash .ci/setup` in {folder} first",
                    file=sys.stderr,
                )
                return 2
            break
    os.chdir(checkout)
    if not pytest_args:
        failed = lint(checkout)
        if failed:
            print(
                f"ivr test: the code checks failed ({'; '.join(failed)}); fix them first "
                "(`ruff format ivr bench` fixes the format)",
                file=sys.stderr,
            )
            return 1
    os.execv(sys.executable, [sys.executable, "-m", "pytest", *pytest_args])
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    # -c/-v work before or after the subcommand: `ivr -c x serve` = `ivr serve -c x`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        default=argparse.SUPPRESS,
        help="settings file (default: $IVR_CONFIG or ./ivr.yaml)",
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
    )
    p = argparse.ArgumentParser(prog="ivr", description=__doc__, parents=[common])
    sub = p.add_subparsers(dest="cmd", required=True)
    _add_parser = sub.add_parser
    # Every subcommand takes the common options too (-c, -v), before or after it.
    sub.add_parser = lambda *a, **kw: _add_parser(*a, parents=[common], **kw)  # type: ignore[method-assign]
    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument(
        "--role",
        choices=["controller", "web", "speech"],
        action="append",
        help="with a bus (bus.url): run only this role (see README, Scaling)",
    )
    serve.set_defaults(func=cmd_serve)
    pbx = sub.add_parser("pbx", help="the sandbox Asterisk (tests, demo, softphone testers)")
    pbx.add_argument(
        "action",
        choices=["build", "up", "down", "status", "cli", "apply", "rollback"],
        help="apply: check dialplans/, install them into the running PBX and "
        "reload what changed; rollback: put the previous set back",
    )
    pbx.add_argument("command", nargs="*", help="with cli: an Asterisk CLI command")
    pbx.add_argument(
        "--etc",
        help="apply/rollback: the running PBX's configuration folder "
        "(default: the sandbox's), e.g. /etc/asterisk or a "
        "container's volume",
    )
    pbx.add_argument(
        "--cli",
        default="asterisk -rx",
        help="apply/rollback with --etc: the command that runs an Asterisk CLI "
        "command there (default: asterisk -rx)",
    )
    pbx.add_argument(
        "--dry-run",
        action="store_true",
        help="apply/rollback: check and show the diff, change nothing",
    )
    pbx.set_defaults(func=cmd_pbx)
    chk = sub.add_parser("check", help="validate config and dialplans (and scripts)")
    chk.add_argument("--no-pbx", action="store_true", help="skip loading dialplans into Asterisk")
    chk.set_defaults(func=cmd_check)
    call = sub.add_parser("call", help="place an outbound call: agent first, then customer")
    call.add_argument("agent")
    call.add_argument("number")
    call.add_argument("--project", required=True)
    call.add_argument("--campaign", default="")
    call.set_defaults(func=cmd_call)
    from .speech.models import add_models_parser

    add_models_parser(sub)
    hs = sub.add_parser("hash-secret", help="hash a console secret for the config (scrypt)")
    hs.add_argument(
        "--stdin", action="store_true", help="read the secret from standard input instead of asking"
    )
    hs.set_defaults(func=cmd_hash_secret)
    demo = sub.add_parser("demo", help="sandbox PBX + service + a demo call")
    demo.add_argument(
        "--wait",
        type=float,
        default=30.0,
        help="seconds to wait for the agent console before calling (default 30)",
    )
    demo.add_argument(
        "--exit",
        action="store_true",
        help="stop after the demo call instead of serving until Ctrl-C",
    )
    demo.set_defaults(func=cmd_demo)
    # Handled in main() before parsing: every argument after `test` goes to pytest.
    sub.add_parser(
        "test",
        help="run the test suite (pytest) of this checkout; "
        "arguments go to pytest, e.g. ivr test -x tests/unit",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["test"]:
        return run_tests(argv[1:])
    args = build_parser().parse_args(argv)
    args.config = getattr(args, "config", None)
    args.verbose = getattr(args, "verbose", False)
    logs.setup(logging.DEBUG if args.verbose else logging.INFO)
    from .pbx.sandbox import SandboxError

    try:
        return args.func(args)
    except YamlError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 2
    except SandboxError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
