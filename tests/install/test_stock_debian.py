"""The README's demo command on a stock Debian 12, as a new user runs it.

A copy of a pristine `debootstrap bookworm` root gets python3 and git (a stock
Debian 12's python3: no pip, PEP 668), then this checkout; inside it, as root,
`bash .ci/setup` must install everything and `ivr demo --exit --wait 0` must
run the demo call to its end. Debian packages come from Debian as on any
machine (their .debs cached between runs); Python packages come from a
wheelhouse built on the host (the root has no PyPI certificate here), offline.

The root runs in namespaces of its own: mounts (private /proc, /dev, a
copy-on-write view of the cached sid root) and processes, so it never sees
or touches anything of the host's; the demo also gets its own network (only
loopback), so its default ports are free whatever runs here.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS, REPO
from tests.debian import CACHE, bookworm_root, locked, wheelhouse

pytestmark = pytest.mark.pbx

SID_ROOT = Path("/var/cache/ivr/sid-root")
DEBS = CACHE / "bookworm-debs"          # apt's downloads, kept between runs

# Runs inside `unshare --mount --pid --fork [--net]`: the mounts vanish with it.
ENTER = r"""
set -eu
root=$1; shift
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --bind "$DEBS" "$root/var/cache/apt/archives"
mount --bind "$WHEELS" "$root/wheelhouse"
# The cached sid root, copy-on-write: the demo's instance never reaches the cache.
mkdir -p "$root/var/cache/ivr/sid-root" "$UPPER/up" "$UPPER/work"
mount -t overlay overlay -o "lowerdir=$SID,upperdir=$UPPER/up,workdir=$UPPER/work" \
    "$root/var/cache/ivr/sid-root"
if [ "${NET_LO:-}" = 1 ]; then ip link set lo up; fi
exec chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheelhouse "$@"
"""


def copy_checkout(dest: Path) -> None:
    """The files of this checkout as git sees them (tracked and new, not ignored)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def run_inside(root: Path, upper: Path, script: str, *, network: bool, timeout: float,
               log: Path) -> subprocess.CompletedProcess:
    wrapper = root.parent / "enter.sh"
    wrapper.write_text(ENTER)
    unshare = ["unshare", "--mount", "--pid", "--fork"] + ([] if network else ["--net"])
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBS": str(DEBS), "SID": str(SID_ROOT),
           "WHEELS": str(wheelhouse()), "UPPER": str(upper), "NET_LO": "" if network else "1"}
    proc = subprocess.run([*unshare, "sh", str(wrapper), str(root), "bash", "-c", script],
                          capture_output=True, text=True, timeout=timeout, env=env)
    log.write_text(f"$ {script}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}\n")
    return proc


def test_setup_then_demo_on_a_stock_debian_12(tmp_path):
    if not (SID_ROOT / ".ivr-sandbox-ready").exists():
        pytest.fail(f"{SID_ROOT} is missing: `ivr pbx build` (bash .ci/setup) makes it")
    ARTIFACTS.mkdir(exist_ok=True)
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", str(bookworm_root()), str(root)], check=True)
    (root / ".ivr-root-ready").unlink()
    for path in ("etc/hosts", "etc/resolv.conf"):
        shutil.copy(f"/{path}", root / path)
    # As in any chroot or container: installing a package does not start its
    # service (postgresql); the tests start what they need themselves.
    (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
    (root / "usr/sbin/policy-rc.d").chmod(0o755)
    (root / "wheelhouse").mkdir()
    DEBS.mkdir(parents=True, exist_ok=True)
    copy_checkout(root / "root/ivr")
    upper = tmp_path / "sid-upper"

    with locked("bookworm-debs"):         # one apt at a time on the shared .deb cache
        # A stock Debian 12: python3 (without pip) and git.
        stock = run_inside(root, upper, "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
                           "apt-get install -y -qq --no-install-recommends python3 git "
                           ">/dev/null && ! python3 -m pip --version",
                           network=True, timeout=600, log=ARTIFACTS / "stock-debian-base.log")
        assert stock.returncode == 0, stock.stdout[-2000:] + stock.stderr[-3000:]
        setup = run_inside(root, upper, "cd /root/ivr && bash .ci/setup", network=True,
                           timeout=1500, log=ARTIFACTS / "stock-debian-setup.log")
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    assert (root / "usr/local/bin/ivr").is_symlink()

    demo = run_inside(root, upper, "cd /root/ivr && ivr demo --exit --wait 0", network=False,
                      timeout=300, log=ARTIFACTS / "stock-debian-demo.log")
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    text = demo.stdout
    assert "Agent console:" in text and "sign in as 1003 /" in text, text[-2000:]
    assert "AgentRinging" in text and "project=acme-support" in text, text[-2000:]
    assert "CallEnded" in text and "result=answered" in text, text[-2000:]
    assert "ticked at" in text and "prompt at" in text, text[-2000:]
