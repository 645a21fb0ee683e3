"""Sign-in throttling: exponential delay, then a lockout window, per key.

The console keeps one Throttle per login and one per client address. After
`free` failed sign-ins in a row, each further failure makes the key wait
base_delay, 2x, 4x ... (at most max_delay) before its next attempt is even
checked; at `lockout_after` failures the key is locked for `lockout_seconds`.
Attempts made while a key waits are refused without looking at the secret,
so the right secret does not get through during a lockout either. A success
clears the key; a key with no failure for `forget_after` seconds starts over.

What happens is logged at WARNING, at most once a minute per key (with the
count of refused attempts since the last line), so a brute force cannot
flood the log. In memory, per service instance.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

LOG_EVERY = 60.0


@dataclass
class _Key:
    failures: int = 0
    last_failure: float = 0.0
    blocked_until: float = 0.0
    refused: int = 0  # attempts refused while blocked, not yet logged
    logged_at: float = -math.inf


class Throttle:
    def __init__(
        self,
        what: str,
        *,
        free: int,
        lockout_after: int,
        lockout_seconds: float,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        forget_after: float | None = None,
        max_keys: int = 20000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.what = what  # "login" | "address": for the log
        self.free, self.lockout_after = free, lockout_after
        self.lockout_seconds = lockout_seconds
        self.base_delay, self.max_delay = base_delay, max_delay
        self.forget_after = forget_after if forget_after is not None else 2 * lockout_seconds
        self.max_keys = max_keys
        self.clock = clock
        self._keys: dict[str, _Key] = {}

    def _get(self, key: str) -> _Key | None:
        k = self._keys.get(key)
        if (
            k is not None
            and self.clock() - k.last_failure > self.forget_after
            and self.clock() >= k.blocked_until
        ):
            del self._keys[key]
            return None
        return k

    def wait(self, key: str) -> float:
        """Seconds before an attempt for `key` may be checked (0: now). A positive
        answer counts as a refused attempt."""
        k = self._get(key)
        if k is None:
            return 0.0
        left = k.blocked_until - self.clock()
        if left <= 0:
            return 0.0
        k.refused += 1
        self._log(key, k, f"refused while it waits {left:.0f} s more")
        return left

    def failed(self, key: str) -> float:
        """Count a failed attempt; returns the wait before the next one."""
        now = self.clock()
        k = self._get(key)
        if k is None:
            while len(self._keys) >= self.max_keys:  # bounded memory: oldest goes
                del self._keys[next(iter(self._keys))]
            k = self._keys[key] = _Key()
        k.failures += 1
        k.last_failure = now
        if k.failures >= self.lockout_after:
            delay = self.lockout_seconds
            k.blocked_until = now + delay
            k.logged_at = -math.inf  # a lockout is always logged
            self._log(key, k, f"locked out for {delay:.0f} s")
        elif k.failures > self.free:
            delay = min(self.base_delay * 2 ** (k.failures - self.free - 1), self.max_delay)
            k.blocked_until = now + delay
            self._log(key, k, f"next attempt in {delay:g} s")
        else:
            delay = 0.0
        return delay

    def succeeded(self, key: str) -> None:
        self._keys.pop(key, None)

    def _log(self, key: str, k: _Key, what: str) -> None:
        now = self.clock()
        if now - k.logged_at < LOG_EVERY:
            return
        k.logged_at = now
        refused = f", {k.refused} attempts refused meanwhile" if k.refused else ""
        k.refused = 0
        log.warning(
            "console sign-in: %s %r: %d failed in a row%s; %s",
            self.what,
            key,
            k.failures,
            refused,
            what,
        )
