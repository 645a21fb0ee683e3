"""Refuse to start exposed with weak secrets.

On a loopback address only this machine reaches the console, and a demo or a
test may use short throw-away secrets. Anywhere else (0.0.0.0, a LAN address,
a container's interface) every console user's secret and the AMI secret must
be strong: not empty, not an example value, at least 12 characters (or given
hashed, see `ivr hash-secret`). The AMI secret must be strong too whenever AMI
itself is reached over the network.
"""

from __future__ import annotations

import ipaddress
import socket

from ..config import Settings
from ..yamlfile import Problem, YamlError
from .passwords import weakness


def is_loopback(host: str) -> bool:
    """Does `host` (an address or a name) only ever mean this machine?"""
    if host in ("", "0.0.0.0", "::", "*"):
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def exposure_problems(settings: Settings) -> list[Problem]:
    where = settings.source or "the config"
    problems = []
    web_exposed = not is_loopback(settings.web.host)
    if web_exposed:
        for user in settings.users:
            why = weakness(user.secret)
            if why:
                problems.append(
                    Problem(
                        where,
                        None,
                        f"users.{user.login}.secret",
                        f"{why}: refusing to serve the console on {settings.web.host or '*'} "
                        f"(not loopback); set a strong IVR_SECRET_{user.login} "
                        f"or a hash from `ivr hash-secret`",
                    )
                )
    if web_exposed or not is_loopback(settings.ami.host):
        why = weakness(settings.ami.secret)
        if why:
            problems.append(
                Problem(
                    where,
                    None,
                    "ami.secret",
                    f"{why}: refusing to run with this AMI password while the console or AMI "
                    f"is reachable from the network; set a strong IVR_AMI_SECRET "
                    f"(e.g. openssl rand -hex 16)",
                )
            )
    return problems


def refuse_weak_exposure(settings: Settings) -> None:
    problems = exposure_problems(settings)
    if problems:
        raise YamlError(problems)
