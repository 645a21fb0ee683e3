"""Finding: no rate limit or lockout on sign-in (200 wrong passwords for boss
at ~1,700/s, all 401, then the right one worked).

Now: after 3 failures each wrong secret makes the login wait exponentially
longer before its next attempt is even checked, 10 lock it for 15 minutes;
attempts while it waits are refused (429 + Retry-After) without looking at
the secret, the right one included. The same per client address, which a
spoofed X-Forwarded-For does not escape. Logged, at most once a minute per key.
"""
from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from tests.security.conftest import Client


def quicker(throttle, **kw) -> None:
    """The same rule with shorter waits, so the test takes seconds, not 15 minutes."""
    for k, v in kw.items():
        setattr(throttle, k, v)


async def wait_out(throttle, key: str) -> None:
    """Sleep until `key` may try again (as a patient attacker would)."""
    k = throttle._keys.get(key)
    if k is not None:
        await asyncio.sleep(max(0.0, k.blocked_until - time.monotonic()) + 0.02)


async def test_brute_force_is_slowed_then_locked_out_even_for_the_right_secret(service, caplog):
    caplog.set_level(logging.INFO)
    auth = service.console.ctx.auth
    async with Client(service) as attacker:
        # The production rule: 3 free failures, then a wait of 1 s, doubling.
        statuses = [(await attacker.sign_in(service, "boss", f"guess-{i}")).status
                    for i in range(3)]
        assert statuses == [401, 401, 401]
        r = await attacker.sign_in(service, "boss", "guess-3")
        assert r.status == 429 and r.headers["Retry-After"] == "1"
        assert (await attacker.sign_in(service, "boss")).status == 429   # right, but too soon
        # Hammering while the login waits: refused at once, never checked.
        t0, burst = time.monotonic(), []
        while time.monotonic() - t0 < 0.5 and len(burst) < 200:
            burst.append((await attacker.sign_in(service, "boss", f"burst-{len(burst)}")).status)
        assert set(burst) == {429} and len(burst) > 20
        assert auth.by_login._keys["boss"].failures == 4            # none of the burst counted
        assert (auth.by_login.lockout_after, auth.by_login.lockout_seconds) == (10, 900)
        quicker(auth.by_login, base_delay=0.05, lockout_seconds=3.0)  # the rest, scaled down

        # Each further failure doubles the wait, up to the lockout at 10.
        waits = []
        while auth.by_login._keys["boss"].failures < 10:
            await wait_out(auth.by_login, "boss")
            r = await attacker.sign_in(service, "boss", "still-wrong")
            assert r.status == 429, await r.text()
            k = auth.by_login._keys["boss"]
            waits.append(round(k.blocked_until - k.last_failure, 3))
        assert waits == [0.1, 0.2, 0.4, 0.8, 1.6, 3.0], waits     # doubling, then locked
        assert "try again in 3 s" in await r.text()                # locked out
        # The right secret during the lockout: refused, and still refused until it ends.
        assert (await attacker.sign_in(service, "boss")).status == 429
        await asyncio.sleep(1.0)
        assert (await attacker.sign_in(service, "boss")).status == 429
        await wait_out(auth.by_login, "boss")
        assert (await attacker.sign_in(service, "boss")).status == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
                and "console sign-in: login 'boss'" in r.getMessage()]
    # 200+ refused attempts, a handful of lines: the first delay and the lockout.
    assert 1 <= len(warnings) <= 3, warnings
    assert any("locked out for 3 s" in w for w in warnings), warnings
    assert any("attempts refused meanwhile" in w or "failed in a row" in w for w in warnings)


async def test_password_spraying_from_one_address_is_locked_out_per_address(service, caplog):
    caplog.set_level(logging.WARNING)
    auth = service.console.ctx.auth
    async with Client(service) as attacker:
        # The production rule: 10 free failures per address, whatever the logins.
        for i in range(10):
            r = await attacker.http.post("/api/login", json={"login": f"spray{i}",
                                                             "secret": "Summer2026!"})
            assert r.status == 401
        r = await attacker.http.post("/api/login", json={"login": "spray10",
                                                         "secret": "Summer2026!"})
        assert r.status == 429 and r.headers["Retry-After"] == "1"
        assert (await attacker.sign_in(service, "1002")).status == 429   # a real user waits too
    quicker(auth.by_address, free=5, lockout_after=12, base_delay=0.05, lockout_seconds=30.0)
    auth.by_address._keys.clear()
    quicker(auth.by_login, free=100, lockout_after=1000)   # isolate the per-address rule
    async with Client(service) as attacker:
        statuses = []
        for i in range(40):
            # A different login each time, and a forged X-Forwarded-For: neither helps.
            await wait_out(auth.by_address, "127.0.0.1")
            r = await attacker.http.post("/api/login", json={"login": f"user{i}",
                                                             "secret": "Summer2026!"},
                                         headers={"X-Forwarded-For": f"10.9.8.{i}"})
            statuses.append(r.status)
            if auth.by_address._keys["127.0.0.1"].failures >= 12:
                break
        assert statuses[:5] == [401] * 5 and statuses[-1] == 429
        # Locked: a real user's right secret from that address waits too ...
        assert (await attacker.sign_in(service, "1002")).status == 429
    # ... while the same user from another address signs in at once.
    conn = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with Client(service, connector=conn) as colleague:
        assert (await colleague.sign_in(service, "1002")).status == 200
    assert any("address '127.0.0.1'" in r.getMessage() and "locked out" in r.getMessage()
               for r in caplog.records)
    assert not any("10.9.8." in r.getMessage() for r in caplog.records)
