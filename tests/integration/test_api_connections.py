"""Connections that hold the API without asking anything of it (slowloris): one idle
between requests is closed after ``MOMENTS_API_IDLE_TIMEOUT_S``; one that has not sent a
whole head ``MOMENTS_API_HEAD_TIMEOUT_S`` after connecting, or after the first byte of a
later head, is closed then; a body trickled in is answered 408 after
``MOMENTS_API_BODY_TIMEOUT_S``. aiohttp's own idle limit is an hour, and it has none for
a body: an abuse drill held 400 connections for 15 minutes, and 1,200 idle ones took
every file descriptor the process had."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.api.auth import hash_key
from streams.services import Services
from tests.integration.conftest import Pipeline, Worker
from tests.integration.test_api_support import DEV_AUTH

pytestmark = pytest.mark.integration

IDLE_S = 5.0
HEAD_S = 1.0  # shorter than the idle timeout: heads are not given all of it
BODY_S = 1.5  # longer than the head timeout: a body is not cut off by it


async def closed_after(reader: asyncio.StreamReader, within_s: float) -> float:
    """Seconds until the server closes the connection (reading what it sends)."""
    started = time.monotonic()
    while await asyncio.wait_for(reader.read(65536), within_s):
        pass
    return time.monotonic() - started


async def response(reader: asyncio.StreamReader, within_s: float) -> tuple[bytes, bytes]:
    """One response's head and body (by its Content-Length)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), within_s)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await reader.readexactly(length)


@pytest.fixture(scope="module")
def api(kafka_redis: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """One API for the module: these tests only hold connections to it."""
    deployment = Pipeline(kafka_redis, tmp_path_factory.mktemp("connections"))
    try:
        yield deployment.start_api(
            MOMENTS_API_IDLE_TIMEOUT_S=str(IDLE_S),
            MOMENTS_API_BODY_TIMEOUT_S=str(BODY_S),
            MOMENTS_API_HEAD_TIMEOUT_S=str(HEAD_S),
        )
    finally:
        deployment.stop()


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: moments\r\nX-Sl"])
async def test_a_connection_that_sends_no_whole_request_is_closed(api: Worker, sent: bytes) -> None:
    """It was held for the whole idle timeout (75 s by default): a client with no key
    opening 5 connections a second held every connection an API pod may hold."""
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    try:
        writer.write(sent)
        await writer.drain()
        took = await closed_after(reader, IDLE_S + 10)
        assert HEAD_S * 0.8 <= took < HEAD_S + 1.5 < IDLE_S, took  # at the head's deadline
    finally:
        writer.close()


async def test_a_head_trickled_in_is_closed_at_its_deadline_on_a_kept_alive_connection(
    api: Worker,
) -> None:
    """Between requests the idle timeout applies; a later head is due within the head
    timeout of its first byte, however its bytes trickle in."""
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: moments\r\n\r\n")
        await writer.drain()
        head, _ = await response(reader, 5)
        assert head.startswith(b"HTTP/1.1 200"), head
        await asyncio.sleep(HEAD_S * 1.5)  # idle, not sending a head: kept
        started = time.monotonic()
        with contextlib.suppress(ConnectionError):  # (closed while it trickled)
            for byte in b"GET /healthz HTTP/1.1\r\nHost: moments\r\nX-Slow: yes":  # 5 s
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(HEAD_S / 10)
                if reader.at_eof():
                    break
        await closed_after(reader, IDLE_S + 10)
        took = time.monotonic() - started
        assert HEAD_S * 0.8 <= took < HEAD_S + 1.5, took
    finally:
        writer.close()


async def test_a_head_of_more_than_32_lines_is_refused_and_one_of_32_is_served(
    api: Worker,
) -> None:
    """aiohttp's own limit is 128 lines of 8 KB: heads that never end held some 2 MiB
    each, and 300 of them, no key needed, took an API past its pod's memory."""
    cookie = b"Cookie: " + b"c" * 8000 + b"\r\n"  # a long line: a shop's cookies
    for lines, status in ((40, b"400"), (32, b"200")):
        extra = [b"X-Pad-%d: x\r\n" % i for i in range(lines - 2)]  # Host, Cookie: 2 more
        head = b"GET /healthz HTTP/1.1\r\nHost: moments\r\n" + cookie + b"".join(extra)
        reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
        try:
            writer.write(head + b"\r\n")
            await writer.drain()
            answer, body = await response(reader, 5)
            assert answer.split(b" ")[1] == status, (lines, answer)
            if status == b"400":
                assert json.loads(body)["error"] == "bad_request", body
                assert b"X-Pad" not in body, body  # the request is not quoted
        finally:
            writer.close()


async def test_a_kept_alive_connection_is_closed_once_idle_and_served_until_then(
    api: Worker,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    try:
        for _ in range(3):  # requests within the limit keep it open
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: moments\r\n\r\n")
            await writer.drain()
            head, _ = await response(reader, 5)
            assert head.startswith(b"HTTP/1.1 200"), head
            await asyncio.sleep(IDLE_S / 2)
        took = await closed_after(reader, IDLE_S + 10)  # idle IDLE_S / 2 already
        assert IDLE_S * 0.3 <= took < IDLE_S + 3, took
    finally:
        writer.close()


async def test_a_body_that_does_not_arrive_in_time_is_a_408(api: Worker) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    try:
        writer.write(
            b"POST /v1/events HTTP/1.1\r\nHost: moments\r\nContent-Type: application/json\r\n"
            b"Authorization: " + DEV_AUTH["Authorization"].encode() + b"\r\n"
            b"Content-Length: 100000\r\n\r\n[{"
        )
        await writer.drain()
        started = time.monotonic()
        for _ in range(3):  # a byte now and then: still not the whole body in time
            await asyncio.sleep(BODY_S / 2)
            writer.write(b" ")
            await writer.drain()
        head, body = await response(reader, BODY_S + 10)
        assert time.monotonic() - started < BODY_S + 3
        assert head.startswith(b"HTTP/1.1 408"), head
        assert json.loads(body)["error"] == "body_timeout", body
    finally:
        writer.close()


async def test_a_connection_past_the_cap_is_answered_503_and_closed(
    kafka_redis: Services, tmp_path: Path
) -> None:
    """Three connections held, with MOMENTS_API_MAX_CONNECTIONS=3: a fourth is answered
    a JSON 503 as it opens, without a request, and closed; once one of the three goes,
    the next is served. (The process's file descriptors, shared with its Redis and Kafka
    connections, are never all taken by clients.)"""
    deployment = Pipeline(kafka_redis, tmp_path)
    try:
        api = deployment.start_api(MOMENTS_API_MAX_CONNECTIONS="3")
        held = [await asyncio.open_connection("127.0.0.1", api.port) for _ in range(3)]
        for reader, writer in held:  # each one served, and kept alive
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: moments\r\n\r\n")
            await writer.drain()
            head, _ = await response(reader, 5)
            assert head.startswith(b"HTTP/1.1 200"), head
        reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
        head, body = await response(reader, 5)
        assert head.startswith(b"HTTP/1.1 503"), head
        assert b"Retry-After: 1" in head and b"Connection: close" in head, head
        assert json.loads(body)["error"] == "too_many_connections", body
        assert await closed_after(reader, 5) < 1
        writer.close()
        held.pop()[1].close()  # one of the three goes: room for the next
        for _ in range(50):
            reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: moments\r\n\r\n")
                await writer.drain()
                head, _ = await response(reader, 5)
            except ConnectionResetError:  # still full: refused and closed as it opened,
                head = b"reset"  # the request sent after the close is answered a reset
            writer.close()
            if head.startswith(b"HTTP/1.1 200"):  # once the server saw the other close
                break
            await asyncio.sleep(0.1)
        assert head.startswith(b"HTTP/1.1 200"), head
        for _, other in held:
            other.close()
        await asyncio.sleep(0.2)
        refused = api.metric("moments_http_connections_refused_total")
        assert refused >= 1, refused
    finally:
        deployment.stop()


async def held_upload(port: int, key: str, size: int) -> asyncio.StreamWriter:
    """An outcome upload announcing ``size`` bytes, of which one is sent."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/outcomes HTTP/1.1\r\nHost: moments\r\nContent-Type: application/json\r\n"
        b"X-API-Key: " + key.encode() + b"\r\nContent-Length: %d\r\n\r\n[" % size
    )
    await writer.drain()
    return writer


async def test_uploads_past_the_body_budget_or_their_keys_share_of_it_are_a_503(
    kafka_redis: Services, tmp_path: Path
) -> None:
    """Bodies being received at once are held in memory: 250 unfinished uploads of 1 MiB,
    with the key web pages use, took an API from 173 to 620 MiB. With a budget of 4,000
    bytes, a key may hold 1,000 (a quarter), or one body of any size when it holds none;
    past either, a JSON 503 too_many_uploads; a body that has come gives its bytes back."""
    keys = {"web": "web-key-0123456789", "other": "other-key-0123456789",
            "ingest": "ingest-key-0123456789"}  # fmt: skip
    entries = [f"{name}:outcomes:{hash_key(key)}" for name, key in keys.items()]
    deployment = Pipeline(kafka_redis, tmp_path)
    try:
        api = deployment.start_api(
            MOMENTS_API_BODY_BUDGET_BYTES="4000", MOMENTS_API_KEYS=";".join(entries)
        )

        async def post(key: str, body: bytes) -> tuple[bytes, bytes]:
            reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
            try:
                writer.write(
                    b"POST /v1/outcomes HTTP/1.1\r\nHost: moments\r\n"
                    b"Content-Type: application/json\r\nX-API-Key: " + key.encode() + b"\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(body) + body
                )
                await writer.drain()
                return await response(reader, 5)
            finally:
                writer.close()

        web = await held_upload(api.port, keys["web"], 900)
        await asyncio.sleep(0.3)  # its head read: the 900 bytes are counted
        head, body = await post(keys["web"], b"[" + b" " * 198 + b"]")  # 1,100 for the key
        assert head.startswith(b"HTTP/1.1 503"), head
        assert b"Retry-After: 1" in head, head
        assert json.loads(body)["error"] == "too_many_uploads", body
        ingest = await held_upload(api.port, keys["ingest"], 3000)  # alone: taken
        await asyncio.sleep(0.3)
        head, body = await post(keys["other"], b"[" + b" " * 198 + b"]")  # 4,100 in all
        assert head.startswith(b"HTTP/1.1 503"), head
        assert json.loads(body)["error"] == "too_many_uploads", body
        web.write(b" " * 898 + b"]")  # the web page's body whole: its 900 bytes come back
        await web.drain()
        await asyncio.sleep(0.3)
        for key in ("web", "other"):
            head, body = await post(keys[key], b"[" + b" " * 198 + b"]")
            assert head.startswith(b"HTTP/1.1 4"), (key, head)  # read, and judged
            assert json.loads(body)["error"] != "too_many_uploads", body
        web.close()
        ingest.close()
    finally:
        deployment.stop()
