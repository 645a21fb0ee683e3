"""Pristine Debian 12 for the install and container tests, cached like the sid root.

- ``bookworm_root()``: ``debootstrap --variant=minbase bookworm`` once (about
  30 s), kept in /var/cache/ivr/bookworm-root and never changed afterwards:
  tests copy it. It is a stock Debian 12 without even python3.
- ``wheelhouse()``: the project's Python dependencies as wheels, built on this
  host with ``pip wheel`` (the host reaches PyPI), so that a root or an image
  build installs them offline. Keyed by pyproject.toml.

Several test runs (CI and developers) may share the machine: building is done
under a lock, into a temporary folder renamed when complete.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

CACHE = Path("/var/cache/ivr")
BOOKWORM_ROOT = CACHE / "bookworm-root"
READY = ".ivr-root-ready"
REPO = Path(__file__).resolve().parents[1]


class DebianError(RuntimeError):
    """The cached root or the wheelhouse could not be made; the message says why."""


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """An exclusive lock shared by every process on this machine (flock(2))."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def bookworm_root() -> Path:
    """The cached stock Debian 12 root (built once)."""
    if (BOOKWORM_ROOT / READY).exists():
        return BOOKWORM_ROOT
    with locked("bookworm-root"):
        if (BOOKWORM_ROOT / READY).exists():
            return BOOKWORM_ROOT
        if shutil.which("debootstrap") is None:
            raise DebianError("debootstrap is not installed (bash .ci/setup installs it)")
        tmp = BOOKWORM_ROOT.with_name(BOOKWORM_ROOT.name + ".building")
        shutil.rmtree(tmp, ignore_errors=True)
        proc = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(tmp)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.splitlines()[-15:])
            raise DebianError(f"debootstrap bookworm failed ({proc.returncode}):\n{tail}")
        (tmp / READY).write_text("debootstrap --variant=minbase bookworm\n")
        shutil.rmtree(BOOKWORM_ROOT, ignore_errors=True)
        tmp.rename(BOOKWORM_ROOT)
    return BOOKWORM_ROOT


def wheelhouse() -> Path:
    """Wheels of every dependency (extras test and postgres), for offline installs."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    target = CACHE / f"wheelhouse-{key}"
    if (target / READY).exists():
        return target
    with locked("wheelhouse"):
        if (target / READY).exists():
            return target
        tmp = target.with_name(target.name + ".building")
        shutil.rmtree(tmp, ignore_errors=True)
        # setuptools and wheel: building the project itself (pip install -e) offline.
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
             "-w", str(tmp), f"{REPO}[test,postgres]", "setuptools>=68", "wheel"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise DebianError(f"pip wheel failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
        for own in tmp.glob("ivr-*.whl"):     # the project is installed from its checkout
            own.unlink()
        (tmp / READY).write_text(key + "\n")
        for old in CACHE.glob("wheelhouse-*"):
            if old != tmp:
                shutil.rmtree(old, ignore_errors=True)
        tmp.rename(target)
    return target
