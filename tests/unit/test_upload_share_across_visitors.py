"""A page key's visitor holds a share of the key's part of the body budget (bodies being
received at once): one visitor announcing bodies it never sends held the whole key's
part, and every other visitor of the shop was answered 503 too_many_uploads."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from streams.settings import Settings
from tests.unit.api_app import KEYS, SHOP, api_app


async def test_one_visitor_cannot_deny_a_page_keys_uploads_to_the_others() -> None:
    settings = Settings(api_keys=KEYS, api_cors_origins=SHOP, api_trusted_proxies="127.0.0.1")
    async with TestClient(TestServer(api_app(settings))) as client:
        host, port = client.server.host, client.server.port
        held = []
        for _ in range(16):  # 16 x 1 MiB announced = the key's 16 MiB share (64 MiB / 4)
            _reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                (
                    "POST /v1/outcomes HTTP/1.1\r\nHost: x\r\nX-API-Key: page-key\r\n"
                    f"Origin: {SHOP}\r\nX-Forwarded-For: 198.51.100.66\r\n"
                    "Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n["
                ).encode()
            )
            await writer.drain()
            held.append(writer)
        await asyncio.sleep(0.3)
        # another visitor of the shop, a small body
        reply = await client.post(
            "/v1/outcomes",
            data=b"[]",
            headers={
                "X-API-Key": "page-key",
                "Origin": SHOP,
                "X-Forwarded-For": "203.0.113.7",
                "Content-Type": "application/json",
            },
        )
        body = await reply.text()
        for w in held:
            w.close()
        assert reply.status != 503, (reply.status, body)
