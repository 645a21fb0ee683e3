"""Finding: no header-read timeout (1,500 partial requests held open 90 s,
never closed).

Now a connection that has not sent a whole request's headers within
web.header_timeout (15 s by default) is closed, a JSON body that trickles in
longer than web.body_timeout gets a 408, and one client address may hold at
most web.max_connections_per_address connections (others still get in).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import aiohttp

from ivr.server import Service
from tests.security.conftest import Client

PARTIAL = 200


async def open_partial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")   # never finished
    await writer.drain()
    return reader, writer


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), timeout) is not None
    except (asyncio.TimeoutError, ConnectionError):
        return False


async def test_partial_requests_are_closed_after_the_header_timeout(service):
    """With the default settings: 15 s."""
    port = int(service.web_url.rsplit(":", 1)[1])
    t0 = time.monotonic()
    conns = [await open_partial(port) for _ in range(PARTIAL)]
    # One more byte every few seconds does not keep a connection alive either.
    trickle = conns[0][1]
    for _ in range(3):
        await asyncio.sleep(4)
        trickle.write(b"x")
        await trickle.drain()
        async with aiohttp.ClientSession() as s:              # meanwhile: still served
            async with s.get(service.web_url + "/api/health") as r:
                assert r.status == 200
    done = await asyncio.gather(*(closed_by_server(r, 20) for r, _ in conns))
    elapsed = time.monotonic() - t0
    for _, w in conns:
        w.close()
    assert all(done), f"{done.count(False)} of {PARTIAL} partial requests still open"
    assert 14 < elapsed < 25, elapsed
    assert service.settings.web.header_timeout == 15.0


async def test_a_body_that_trickles_in_gets_408(sec_settings):
    svc = Service(dataclasses.replace(sec_settings, web=dataclasses.replace(
        sec_settings.web, body_timeout=1.0)))
    await svc.start()
    try:
        port = int(svc.web_url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     b"Origin: %s\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{" % (port, svc.web_url.encode()))
        await writer.drain()
        t0 = time.monotonic()
        status = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert status.startswith(b"HTTP/1.1 408"), status
        assert time.monotonic() - t0 < 3
    finally:
        await svc.stop()


async def test_one_address_cannot_hold_every_connection(service, caplog):
    """With the default settings: 256 connections per address."""
    caplog.set_level(logging.WARNING, "ivr.web.guard")
    svc = service
    conns = []
    try:
        port = int(svc.web_url.rsplit(":", 1)[1])
        conns = [await open_partial(port) for _ in range(256)]
        extra = []
        for _ in range(15):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            extra.append(writer)
            line = await asyncio.wait_for(reader.readline(), 5)
            assert line.startswith(b"HTTP/1.1 503"), line
        for w in extra:
            w.close()
        # Another address is served at once.
        conn = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with Client(svc, connector=conn) as colleague:
            assert (await colleague.sign_in(svc, "1002")).status == 200
        for _, w in conns:
            w.close()
        await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as s:                 # freed again
            async with s.get(svc.web_url + "/api/health") as r:
                assert r.status == 200
    finally:
        for _, w in conns:
            w.close()
    lines = [r.getMessage() for r in caplog.records
             if "max_connections_per_address" in r.getMessage()]
    assert len(lines) == 1 and "127.0.0.1" in lines[0], lines    # 15 refusals, one line
