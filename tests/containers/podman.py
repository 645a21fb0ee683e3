"""Podman as the tests (and a tester without a Docker engine) drive docker/.

The steps are the ones docker/README.md gives for podman:

1. ``base_images()``: on a host without an image registry (like the project's
   machines), the Debian base images that docker/'s Dockerfiles start FROM
   are made locally: ``debian:sid-slim`` from the cached sid root and
   ``debian:bookworm-slim`` from the cached Debian 12 root (tests/debian.py),
   imported and slimmed. The snapshot mirror served here has an expired sid
   Release file, so these bases (and only these) get
   ``Acquire::Check-Valid-Until "false"``. A host with a registry skips this.
2. ``build_images()``: ``podman build`` of docker/Dockerfile (ivr-asterisk)
   and docker/Dockerfile.service (ivr-service). Without PyPI access inside
   the build, the service image installs from a wheelhouse made on the host.
3. ``Stack``: ``podman-compose -f docker/compose.yaml up -d`` with the
   secrets and ports in the environment, and ``down``.

On these machines podman needs tests/containers/containers.conf (runc,
cgroupfs, explicit ulimits) and chroot isolation for builds; ``ENV`` holds
that. Run ``python -m tests.containers.podman`` to do steps 1 and 2 by hand.
"""
from __future__ import annotations

import ipaddress
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.debian import REPO, bookworm_root, locked, wheelhouse

SID_ROOT = Path("/var/cache/ivr/sid-root")
HERE = Path(__file__).resolve().parent
ENV = {
    "CONTAINERS_CONF": str(HERE / "containers.conf"),
    "BUILDAH_ISOLATION": "chroot",   # crun/runc isolation of RUN steps fails here
    "BUILDAH_FORMAT": "docker",      # OCI images drop HEALTHCHECK
}
IMAGES = {"ivr-asterisk": "docker/Dockerfile", "ivr-service": "docker/Dockerfile.service"}
TOOLS = ("podman", "podman-compose", "runc")


class PodmanError(RuntimeError):
    pass


def missing_tools() -> list[str]:
    """What the container tests need that is not installed (bash .ci/setup installs it)."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not Path("/usr/lib/cni/dnsname").exists():   # containers find each other by name
        missing.append("golang-github-containernetworking-plugin-dnsname")
    return missing


def podman(*args: str, check: bool = True, timeout: float = 600,
           input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **ENV}, input=input)
    if check and proc.returncode != 0:
        raise PodmanError(f"podman {' '.join(args[:3])} ... failed ({proc.returncode}):\n"
                          f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc


def _image_label(tag: str, label: str) -> str | None:
    proc = podman("image", "inspect", "--format", f'{{{{index .Labels "{label}"}}}}', tag,
                  check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


# Slimming: what debian:*-slim leaves out. For sid, the root also holds
# Asterisk (the sandbox's): every package but the required ones is marked
# automatic, so autoremove drops Asterisk and its dependencies.
_SLIM = """\
FROM {source}
LABEL ivr.base-of={stamp}
RUN printf 'Acquire::Check-Valid-Until "false";\\n' >/etc/apt/apt.conf.d/99ivr-snapshot \\
 && apt-mark auto $(dpkg-query -W -f '${{Package}}\\n') >/dev/null \\
 && apt-mark manual $(dpkg-query -W -f '${{Package}} ${{Priority}}\\n' \\
        | awk '$2 == "required" {{print $1}}') >/dev/null \\
 && DEBIAN_FRONTEND=noninteractive apt-get purge -y --auto-remove >/dev/null \\
 && apt-get clean \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* \\
           /usr/share/locale/* /var/log/*.log
"""


def base_images() -> None:
    """debian:sid-slim and debian:bookworm-slim, made from the cached roots (once)."""
    if not (SID_ROOT / ".ivr-sandbox-ready").exists():
        raise PodmanError(f"{SID_ROOT} is missing: `ivr pbx build` (bash .ci/setup) makes it")
    roots = {"localhost/debian:sid-slim": SID_ROOT,
             "localhost/debian:bookworm-slim": bookworm_root()}
    with locked("base-images"):
        for tag, root in roots.items():
            marks = sorted(root.glob(".ivr-*ready"))
            stamp = f"{root.name}-{int(marks[0].stat().st_mtime) if marks else 0}"
            if _image_label(tag, "ivr.base-of") == stamp:
                continue
            source = f"localhost/ivr-import-{root.name}"
            tar = subprocess.Popen(
                ["tar", "-C", str(root), "--exclude=./srv/ivr", "--exclude=./.ivr-*",
                 "--exclude=./var/cache/apt/archives/*.deb", "--exclude=./var/lib/apt/lists/*",
                 "-c", "."], stdout=subprocess.PIPE)
            proc = subprocess.run(["podman", "import", "-", source], stdin=tar.stdout,
                                  capture_output=True, text=True, env={**os.environ, **ENV})
            tar.wait()
            if proc.returncode != 0 or tar.returncode != 0:
                raise PodmanError(f"podman import of {root} failed: {proc.stderr[-2000:]}")
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "Containerfile").write_text(_SLIM.format(source=source, stamp=stamp))
                podman("build", "--network", "host", "--squash-all", "-t", tag, tmp)
            podman("rmi", source, check=False)


def build_images() -> dict[str, int]:
    """Build both images (podman's layer cache makes a rebuild quick); -> sizes in bytes."""
    wheels = wheelhouse()
    with locked("images"):
        # As docker/README.md: --format docker keeps the HEALTHCHECK (OCI images have none).
        podman("build", "--format", "docker", "--network", "host",
               "-f", IMAGES["ivr-asterisk"], "-t", "ivr-asterisk", str(REPO))
        podman("build", "--format", "docker", "--network", "host",
               "--volume", f"{wheels}:/wheels:ro",
               "--build-arg", "PIP_FLAGS=--no-index --find-links /wheels",
               "-f", IMAGES["ivr-service"], "-t", "ivr-service", str(REPO))
        # Old build stages pile up with every change of the code; recent ones are the cache.
        podman("image", "prune", "-f", "--filter", "until=72h", check=False)
    return {tag: int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
            for tag in IMAGES}


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 inside 172.16.0.0/12 (manager.conf's AMI ACL) that nothing here uses."""
    used: list[ipaddress.IPv4Network] = []
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    for line in routes.splitlines():
        try:
            used.append(ipaddress.ip_network(line.split()[0], strict=False))
        except ValueError:
            pass
    for name in podman("network", "ls", "--format", "{{.Name}}").stdout.split():
        info = json.loads(podman("network", "inspect", name).stdout or "[]")
        for net in info:
            for sub in net.get("subnets") or []:
                used.append(ipaddress.ip_network(sub["subnet"], strict=False))
            for plugin in (net.get("plugins") or []):
                for rng in (plugin.get("ipam", {}).get("ranges") or []):
                    for r in rng:
                        used.append(ipaddress.ip_network(r["subnet"], strict=False))
    for third in random.sample(range(100, 250), 150):
        candidate = ipaddress.ip_network(f"172.31.{third}.0/24")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise PodmanError("no free /24 in 172.31.100-249.0/24 for the compose network")


@dataclass
class Stack:
    """One compose project of docker/compose.yaml, on its own ports and network."""

    project: str
    env: dict[str, str]                      # secrets and settings, as docker/.env gives
    subnet: ipaddress.IPv4Network = field(default_factory=free_subnet)
    compose_file: Path = REPO / "docker" / "compose.yaml"

    @property
    def network(self) -> str:
        return f"{self.project}_default"

    @property
    def gateway(self) -> str:
        """The host's address on the compose network (where published traffic comes from)."""
        return str(self.subnet.network_address + 1)

    def compose(self, *args: str, check: bool = True,
                timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["podman-compose", "-p", self.project, "-f", str(self.compose_file), *args],
            capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **ENV, **self.env})
        if check and proc.returncode != 0:
            raise PodmanError(f"podman-compose {' '.join(args)} failed ({proc.returncode}):\n"
                              + self.masked(proc.stdout[-3000:] + proc.stderr[-3000:]))
        return proc

    def masked(self, text: str) -> str:
        """podman-compose echoes every `podman run -e NAME=value`: hide the secrets."""
        for name, value in self.env.items():
            if ("SECRET" in name or "PASSWORD" in name) and value:
                text = text.replace(value, "***")
        return text

    def up(self) -> None:
        # podman-compose 1.0 ignores compose.yaml's ipam subnet: make the network first.
        if podman("network", "exists", self.network, check=False).returncode != 0:
            podman("network", "create", "--subnet", str(self.subnet),
                   "--label", f"io.podman.compose.project={self.project}", self.network)
        self.compose("up", "-d")

    def down(self) -> None:
        self.compose("down", check=False)

    def remove(self) -> None:
        """down, then the volumes and the network too."""
        self.down()
        for volume in podman("volume", "ls", "--format", "{{.Name}}",
                             "--filter", f"label=io.podman.compose.project={self.project}",
                             check=False).stdout.split():
            podman("volume", "rm", "-f", volume, check=False)
        podman("network", "rm", "-f", self.network, check=False)

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def logs(self, service: str) -> str:
        proc = podman("logs", self.container(service), check=False)
        return self.masked(proc.stdout + proc.stderr)

    def exec(self, service: str, *cmd: str) -> str:
        return podman("exec", self.container(service), *cmd).stdout

    def volume(self, name: str) -> Path:
        """Where a named volume of the project lies on the host."""
        return Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}",
                           f"{self.project}_{name}").stdout.strip())

    def healthy(self, service: str) -> bool:
        """The image's HEALTHCHECK, run now (podman runs none by itself without systemd)."""
        return podman("healthcheck", "run", self.container(service), check=False).returncode == 0

    def wait_healthy(self, service: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy(service):
            if time.monotonic() > deadline:
                raise PodmanError(f"{service} not healthy within {timeout:.0f} s:\n"
                                  + self.logs(service)[-3000:])
            time.sleep(1)


if __name__ == "__main__":
    base_images()
    sizes = build_images()
    for tag, size in sizes.items():
        print(f"{tag}: {size / 1e6:.0f} MB")
    sys.exit(0)
