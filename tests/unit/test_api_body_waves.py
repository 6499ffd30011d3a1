"""Costly bodies sent together: each request is admitted by the token it takes on
arrival, before any body's cost is known, so every body of a wave was split (135 ms of
the event loop for a 1 MiB list) while its key paid one burst at most for all of them."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestServer

from streams.api.server import API_KEY
from streams.settings import Settings
from tests.unit.api_app import KEYS, SHOP, VISITOR, api_app

BURST, WAVE = 10, 4
BODY = b"[" + b"{}," * 2_000 + b"{}]"  # 2,001 items: 20 tokens past its request's


def _head(length: int) -> bytes:
    return (f"POST /v1/outcomes HTTP/1.1\r\nHost: api\r\nX-API-Key: page-key\r\n"
            f"Origin: {SHOP}\r\nContent-Type: application/json\r\nConnection: close\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()  # fmt: skip


async def test_a_wave_of_costly_bodies_has_one_split_and_the_rest_refused() -> None:
    app = api_app(Settings(api_keys=KEYS, api_cors_origins=SHOP, api_visitor_rate_per_s=0.001,
                           api_visitor_burst=BURST))  # fmt: skip
    limiter = app[API_KEY].limiter.visitors  # a page key: its visitor's (the test's) bucket
    async with TestServer(app) as server:
        links = [await asyncio.open_connection(server.host, server.port) for _ in range(WAVE)]
        for _, writer in links:  # every head first: each request takes its token
            writer.write(_head(len(BODY)))
            await writer.drain()
        for _ in range(200):
            await asyncio.sleep(0.01)
            if (
                VISITOR in limiter._buckets
                and limiter._buckets[VISITOR].tokens < BURST - WAVE + 0.5
            ):
                break
        else:
            pytest.fail("the requests were not all admitted")
        for _, writer in links:  # then every body, together
            writer.write(BODY)
        replies = await asyncio.gather(
            *(asyncio.wait_for(reader.read(), 10) for reader, _ in links)
        )
        for _, writer in links:
            writer.close()
    statuses = sorted(int(reply.split(b" ", 2)[1]) for reply in replies)
    # one split (refused as too many items), the others refused before their split
    assert statuses == [413] + [429] * (WAVE - 1), replies
    refused = [r for r in replies if r.startswith(b"HTTP/1.1 429")]
    assert all(b'"rate_limited"' in r for r in refused)
    # told to come back once a token is there again: 15 tokens at 0.001 a second
    waits = [int(r.split(b"Retry-After: ")[1].split(b"\r\n")[0]) for r in refused]
    assert all(14_900 <= wait <= 15_000 for wait in waits), waits
    # and the one split paid its 20 tokens, past the one burst the debt once stopped at
    left = limiter._buckets[VISITOR].tokens
    assert left == pytest.approx(BURST - WAVE - 20, abs=0.1)
