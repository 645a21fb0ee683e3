"""Who works with the service: the agents and supervisors who sign in to the console.

An agent's login is their phone extension (the PJSIP endpoint, e.g. 1001); their
name, operator number and position fill the call scripts. Users come from the
config's ``users:`` section (``users_from_config``), their secrets from it or,
winning, from the environment (``IVR_SECRET_<login>``), plain or as a scrypt hash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .secret import Secret
from .web import passwords
from .yamlfile import LineDict, Problem

_USER_FIELDS = {
    "name": str,
    "role": str,
    "secret": str,
    "operator_id": str,
    "position": str,
    "phone": str,
}
# A phone's PJSIP endpoint name (it goes into a dial string: PJSIP/<name>).
_ENDPOINT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")


@dataclass(frozen=True)
class User:
    """Someone who signs in to the web console.

    Agents sign in with their phone extension (the PJSIP endpoint, e.g. 1001)
    as login; supervisors with any login. The secret may be given here, or
    (winning) in the environment as IVR_SECRET_<LOGIN>, e.g. IVR_SECRET_1001.
    """

    login: str
    name: str
    role: str = "agent"  # agent | supervisor
    secret: Secret = field(default=Secret(""), repr=False)
    operator_id: str = ""  # what the agent says as "operator number ..."
    position: str = ""  # e.g. "customer adviser"
    phone: str = ""  # a supervisor's phone (PJSIP endpoint) for listening in

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"


def users_from_config(
    data: Any, file: str, line: int | None, env: Mapping[str, str], problems: list[Problem]
) -> tuple[User, ...]:
    if not isinstance(data, dict):
        problems.append(Problem(file, line, "users", "must map each login to its settings"))
        return ()
    users = []
    for login, value in data.items():
        where = f"users.{login}"
        uline = data.line_of(login) if isinstance(data, LineDict) else line
        if not isinstance(value, dict):
            problems.append(
                Problem(file, uline, where, "must be a mapping (name, role, secret...)")
            )
            continue
        kwargs: dict[str, Any] = {}
        for key, v in value.items():
            kline = value.line_of(key) if isinstance(value, LineDict) else uline
            if key not in _USER_FIELDS:
                problems.append(
                    Problem(
                        file,
                        kline,
                        f"{where}.{key}",
                        f"unknown setting (known: {', '.join(_USER_FIELDS)})",
                    )
                )
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                v = str(v)
            if not isinstance(v, str):
                problems.append(Problem(file, kline, f"{where}.{key}", "must be text"))
                continue
            kwargs[key] = v
        if kwargs.get("role", "agent") not in ("agent", "supervisor"):
            problems.append(
                Problem(
                    file,
                    value.line_of("role") if isinstance(value, LineDict) else uline,
                    f"{where}.role",
                    "must be agent or supervisor",
                )
            )
            continue
        if "name" not in kwargs:
            problems.append(Problem(file, uline, f"{where}.name", "missing"))
            continue
        if kwargs.get("phone") and not _ENDPOINT.fullmatch(kwargs["phone"]):
            problems.append(
                Problem(
                    file,
                    value.line_of("phone") if isinstance(value, LineDict) else uline,
                    f"{where}.phone",
                    "must be a PJSIP endpoint name, e.g. 1099",
                )
            )
            continue
        secret = env.get(f"IVR_SECRET_{login}") or kwargs.pop("secret", "")
        kwargs.pop("secret", None)
        if not secret:
            problems.append(
                Problem(file, uline, where, f"no secret: set secret here or IVR_SECRET_{login}")
            )
            continue
        if passwords.is_hashed(secret) and (bad := passwords.check_hash_format(secret)):
            problems.append(Problem(file, uline, f"{where}.secret", bad))
            continue
        users.append(User(login=str(login), secret=Secret(secret), **kwargs))
    return tuple(users)
