"""Console secrets: hashing (scrypt), checking, and what counts as too weak.

A user's secret in the config (or IVR_SECRET_<login>) is either the secret
itself or its scrypt hash, made by `ivr hash-secret`:

    $scrypt$n=32768,r=8,p=1$<salt, base64>$<hash, base64>

scrypt is in Python's hashlib (OpenSSL): no extra dependency. Checking a hash
costs ~0.1 s of CPU and 32 MiB on purpose (that is what makes a leaked config
slow to crack), so the web app runs it in a thread, a few at a time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

PREFIX = "$scrypt$"
N, R, P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024
_FORMAT = re.compile(
    r"^\$scrypt\$n=(\d+),r=(\d+),p=(\d+)"
    r"\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$"
)

MIN_LENGTH = 12
# Secrets shipped in examples and docs (change-me-boss, pick-one, ...): never
# good enough for a console or AMI reachable from the network. The usual
# short guesses (password, agent1001) already fail the length rule.
_DEFAULTS = re.compile(r"^(change-?me|pick-one|set-by-installer)", re.I)


def is_hashed(secret: str) -> bool:
    return str(secret).startswith(PREFIX)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, *, n: int = N, r: int = R, p: int = P) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)
    return f"{PREFIX}n={n},r={r},p={p}${_b64(salt)}${_b64(digest)}"


def check_hash_format(stored: str) -> str | None:
    """Why `stored` is not a usable hash, or None."""
    m = _FORMAT.match(stored)
    if m is None:
        return "looks like a hash ($scrypt$...) but is not one `ivr hash-secret` makes"
    n, r, p = (int(x) for x in m.group(1, 2, 3))
    if n < 2**14 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16 or 128 * r * n > _MAXMEM:
        return "scrypt parameters out of range (n a power of two >= 16384, r 1-32, p 1-16)"
    return None


def verify(secret: str, stored: str) -> bool:
    """Does `secret` (as typed) match `stored` (a secret or its hash)? Constant time."""
    if not is_hashed(stored):
        return hmac.compare_digest(secret.encode(), str(stored).encode())
    m = _FORMAT.match(stored)
    if m is None:
        return False
    n, r, p = (int(x) for x in m.group(1, 2, 3))
    expected = _unb64(m.group(5))
    got = hashlib.scrypt(
        secret.encode(), salt=_unb64(m.group(4)), n=n, r=r, p=p, maxmem=_MAXMEM, dklen=len(expected)
    )
    return hmac.compare_digest(got, expected)


def weakness(secret: str) -> str | None:
    """Why a secret (not a hash) is too weak for a network-facing service, or None."""
    secret = str(secret)
    if not secret:
        return "empty"
    if is_hashed(secret):
        return None  # `ivr hash-secret` refuses weak ones before hashing
    if _DEFAULTS.match(secret):
        return "a default or example secret"
    if len(secret) < MIN_LENGTH:
        return f"shorter than {MIN_LENGTH} characters"
    return None
