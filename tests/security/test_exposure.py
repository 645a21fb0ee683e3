"""Finding: `web.host: 0.0.0.0` with `change-me-boss` started and signed in,
and the log said `console on http://127.0.0.1:...`.

Now: off loopback the service refuses to start with an empty, example or
short console or AMI secret (hashed secrets from `ivr hash-secret` are
accepted), and the log names the address it really listens on.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
import subprocess
import sys

import pytest

from ivr.config import Secret, WebSettings, load_settings
from ivr.server import Service
from ivr.yamlfile import YamlError
from tests.conftest import REPO, free_port
from tests.security.conftest import Client


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def on_all_interfaces(settings, **users):
    port = free_port()
    new = tuple(dataclasses.replace(u, secret=Secret(users[u.login])) if u.login in users else u
                for u in settings.users)
    return dataclasses.replace(settings, users=new,
                               web=WebSettings(host="0.0.0.0", port=port)), port


@pytest.mark.parametrize("secret, why", [("change-me-boss", "a default or example secret"),
                                         ("pick-one", "a default or example secret"),
                                         ("boss2026", "shorter than 12 characters")])
async def test_default_or_short_secrets_are_refused_off_loopback(sec_settings, secret, why):
    settings, port = on_all_interfaces(sec_settings, boss=secret)
    svc = Service(settings)
    with pytest.raises(YamlError) as err:
        await svc.start()
    [problem] = err.value.problems
    assert problem.field == "users.boss.secret" and why in problem.reason
    assert "0.0.0.0" in problem.reason
    assert not listening(port)
    await svc.stop()
    # On loopback the same secret is fine (a demo, a test on this machine).
    local = dataclasses.replace(settings, web=WebSettings(host="127.0.0.1", port=port))
    svc = Service(local)
    await svc.start()
    try:
        async with Client(svc) as c:
            assert (await c.sign_in(svc, "boss", secret)).status == 200
    finally:
        await svc.stop()


async def test_a_weak_ami_secret_is_refused_off_loopback(sec_settings):
    settings, port = on_all_interfaces(sec_settings)
    settings = dataclasses.replace(settings, ami=dataclasses.replace(settings.ami,
                                                                     secret=Secret("ivr123")))
    with pytest.raises(YamlError) as err:
        await Service(settings).start()
    assert [p.field for p in err.value.problems] == ["ami.secret"]
    assert not listening(port)


async def test_strong_secrets_start_and_the_log_names_the_real_bind_address(sec_settings,
                                                                            caplog):
    caplog.set_level(logging.INFO, "ivr.server")
    settings, port = on_all_interfaces(sec_settings)
    svc = Service(settings)
    await svc.start()
    try:
        lines = [r.getMessage() for r in caplog.records if "console" in r.getMessage()]
        assert any(f"listening on http://0.0.0.0:{port}" in line
                   and "reachable from the network" in line for line in lines), lines
        assert not any(line.startswith(f"console on http://127.0.0.1:{port}") for line in lines)
        async with Client(svc) as c:
            assert (await c.sign_in(svc, "1001")).status == 200
    finally:
        await svc.stop()


def run_ivr(*args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ivr", *args], input=stdin, text=True,
                          capture_output=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


async def test_hashed_secrets_from_ivr_hash_secret_sign_in_on_a_public_address(sec_settings,
                                                                              tmp_path):
    assert run_ivr("hash-secret", "--stdin", stdin="change-me-boss\n").returncode == 2
    assert run_ivr("hash-secret", "--stdin", stdin="short\n").returncode == 2
    plain = "correct horse battery staple"
    made = run_ivr("hash-secret", "--stdin", stdin=plain + "\n")
    assert made.returncode == 0, made.stderr
    hashed = made.stdout.strip()
    assert hashed.startswith("$scrypt$n=32768,r=8,p=1$") and plain not in hashed
    port = free_port()
    config = tmp_path / "ivr.yaml"
    s = sec_settings
    config.write_text(
        f"ami: {{host: {s.ami.host}, port: {s.ami.port}}}\n"
        f"web: {{host: 0.0.0.0, port: {port}}}\n"
        f"store: {{url: 'sqlite:///{tmp_path}/hashed.db'}}\n"
        f"speech: {{enabled: false}}\n"
        f"scripts: {s.scripts}\n"
        f"users:\n  boss: {{name: Boss, role: supervisor, secret: '{hashed}'}}\n")
    settings = load_settings(config, env={"IVR_AMI_SECRET": str(s.ami.secret)})
    assert "scrypt" not in repr(settings)
    svc = Service(settings)
    await svc.start()
    try:
        async with Client(svc) as c:
            assert (await c.sign_in(svc, "boss", hashed)).status == 401   # the hash is no password
            assert (await c.sign_in(svc, "boss", plain)).status == 200
    finally:
        await svc.stop()
    # `ivr serve` with an example secret on 0.0.0.0 says why and exits at once.
    config.write_text(config.read_text().replace(f"'{hashed}'", "change-me-boss"))
    served = run_ivr("serve", "-c", str(config), env={"IVR_AMI_SECRET": str(s.ami.secret)})
    assert served.returncode == 2
    assert "users.boss.secret: a default or example secret: refusing to serve the console " \
           "on 0.0.0.0" in served.stderr
