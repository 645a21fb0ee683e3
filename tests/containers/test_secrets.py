"""The containers take their secrets only from the environment, and refuse bad ones.

The Asterisk image's entrypoint is run for real (podman run of ivr-asterisk)
with a missing, short or sample secret: the container must stop before
Asterisk starts, saying which variable to set. Its per-run edits of the admin
files (passwords, trunk address) are checked on copies, on this host.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess

import pytest

from tests.conftest import REPO
from tests.containers.podman import ENV, Stack, podman

SIP_USERS = ("1001", "1002", "1003", "1004", "1099", "customer")


def good_env() -> dict[str, str]:
    env = {"IVR_AMI_SECRET": secrets.token_hex(16)}
    env.update({f"SIP_PASSWORD_{u}": secrets.token_hex(16) for u in SIP_USERS})
    return env


def run_asterisk_image(env: dict[str, str]) -> subprocess.CompletedProcess:
    """The entrypoint, then `true` instead of Asterisk: exit 0 only if it accepted the env."""
    args = [a for name, value in env.items() for a in ("-e", f"{name}={value}")]
    return podman("run", "--rm", "--network", "none", *args, "ivr-asterisk", "true",
                  check=False, timeout=60)


@pytest.mark.parametrize("change, says", [
    ({"IVR_AMI_SECRET": None}, "IVR_AMI_SECRET is not set"),
    ({"IVR_AMI_SECRET": ""}, "IVR_AMI_SECRET is not set"),
    ({"IVR_AMI_SECRET": "short"}, "IVR_AMI_SECRET is too short"),
    ({"IVR_AMI_SECRET": "change-me-please-now"}, "IVR_AMI_SECRET is a sample value"),
    ({"SIP_PASSWORD_1001": "agent1001"}, "SIP_PASSWORD_1001 is too short"),
    ({"SIP_PASSWORD_customer": None}, "no SIP password for: SIP_PASSWORD_customer"),
    ({"SIP_PASSWORD_1003": "pick-one-pick-one"}, "SIP_PASSWORD_1003 is a sample value"),
])
def test_asterisk_container_refuses_missing_short_or_sample_secrets(images, change, says):
    env = good_env()
    for name, value in change.items():
        if value is None:
            del env[name]
        else:
            env[name] = value
    proc = run_asterisk_image(env)
    assert proc.returncode != 0, proc.stdout
    assert says in proc.stderr, proc.stderr


def test_asterisk_container_starts_with_generated_secrets(images):
    proc = run_asterisk_image(good_env())
    assert proc.returncode == 0, proc.stderr


def test_compose_refuses_to_start_without_the_secrets(images, tmp_path):
    stack = Stack(project=f"ivrnosecret{os.getpid()}", env={})
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IVR_", "SIP_PASSWORD_"))}
    proc = subprocess.run(["podman-compose", "-p", stack.project, "-f", str(stack.compose_file),
                           "up", "-d"], capture_output=True, text=True, timeout=120,
                          env={**env, **ENV}, cwd=tmp_path)
    try:
        assert proc.returncode != 0
        assert "set IVR_AMI_SECRET" in proc.stdout + proc.stderr
        running = podman("ps", "-a", "--format", "{{.Names}}").stdout
        assert stack.project not in running, running
    finally:
        stack.remove()


def entrypoint(tmp_path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """docker/entrypoint.sh on this host, on copies of dialplans/ (image set and volume)."""
    image_set = tmp_path / "image-set"
    etc = tmp_path / "etc"
    if not image_set.exists():
        shutil.copytree(REPO / "dialplans", image_set, ignore=shutil.ignore_patterns("prompts"))
        (image_set / ".image-set").write_text("v1\n")
        etc.mkdir()
    return subprocess.run(["sh", str(REPO / "docker" / "entrypoint.sh"), "true"],
                          capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ["PATH"], "ASTERISK_ETC": str(etc),
                               "IVR_IMAGE_DIALPLANS": str(image_set), **env})


def section(text: str, name: str, kind: str) -> str:
    """The body of the [name] section whose type is ``kind`` (templates resolved by name)."""
    for m in re.finditer(rf"^\[{re.escape(name)}\](\([^)]*\))?\n(.*?)(?=^\[|\Z)", text, re.M | re.S):
        body = m.group(2)
        template = m.group(1) or ""
        if f"type = {kind}" in body or kind in template:
            return body
    raise AssertionError(f"no [{name}] {kind} section")


def test_entrypoint_writes_each_password_the_trunk_peer_and_keeps_an_applied_set(tmp_path):
    env = good_env()
    env["TRUNK_PEER"] = "198.51.100.7:5060"
    proc = entrypoint(tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    pjsip = (tmp_path / "etc" / "pjsip.conf").read_text()
    for user in SIP_USERS:
        assert f"password = {env[f'SIP_PASSWORD_{user}']}" in section(pjsip, user, "auth")
    assert "agent100" not in pjsip and "password = customer" not in pjsip
    assert "match = 198.51.100.7" in section(pjsip, "trunk-identify", "identify")
    manager = (tmp_path / "etc" / "manager.conf").read_text()
    assert f"secret = {env['IVR_AMI_SECRET']}" in manager
    assert "TRUNK_PEER = 198.51.100.7:5060" in (tmp_path / "etc" / "extensions.conf").read_text()
    # An admin applies a change to the running PBX's volume: a restart keeps it ...
    ext = tmp_path / "etc" / "extensions.conf"
    ext.write_text(ext.read_text() + "\n; applied by an admin\n")
    assert entrypoint(tmp_path, env).returncode == 0
    assert "; applied by an admin" in ext.read_text()
    # ... until the image is rebuilt from other files: then the image's set is installed.
    (tmp_path / "image-set" / ".image-set").write_text("v2\n")
    assert entrypoint(tmp_path, env).returncode == 0
    assert "; applied by an admin" not in ext.read_text()
    # New secrets on the next start replace the old ones, not add to them.
    env2 = {**env, "SIP_PASSWORD_1002": secrets.token_hex(16)}
    assert entrypoint(tmp_path, env2).returncode == 0
    pjsip = (tmp_path / "etc" / "pjsip.conf").read_text()
    assert env2["SIP_PASSWORD_1002"] in pjsip and env["SIP_PASSWORD_1002"] not in pjsip


def test_service_container_refuses_a_weak_console_secret(images):
    """The service listens on the container's network (not loopback): a short console
    secret stops it before it serves anything, naming the user."""
    env = {"IVR_AMI_SECRET": secrets.token_hex(16)}
    env.update({f"IVR_SECRET_{u}": secrets.token_hex(16)
                for u in ("1001", "1002", "1003", "1004", "boss")})
    env["IVR_SECRET_boss"] = "boss1234"
    args = [a for name, value in env.items() for a in ("-e", f"{name}={value}")]
    proc = podman("run", "--rm", "--network", "none", *args,
                  "-v", f"{REPO / 'docker' / 'ivr.docker.yaml'}:/etc/ivr/ivr.yaml:ro",
                  "-v", f"{REPO / 'scripts'}:/etc/ivr/scripts:ro",
                  "ivr-service", check=False, timeout=120)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "users.boss.secret" in proc.stderr and "IVR_SECRET_boss" in proc.stderr, \
        proc.stderr[-2000:]
    assert env["IVR_SECRET_boss"] not in proc.stdout + proc.stderr     # never logged
