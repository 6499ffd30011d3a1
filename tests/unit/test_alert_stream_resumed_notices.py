"""Resumed alert streams are told every erasure of the last day by ref: the notices were
built and encoded anew for each stream (up to 10,000, some 660 KB), so that 20 screens
resuming at once held the API's event loop for 389 ms, and one key's burst for seconds.
They are now built once per change of the erasures, and every resumed stream writes the
same bytes as before."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.api.alerts import AlertHub
from streams.api.resume_notices import ResumeNotices
from streams.api.screen_erasures import Erased, RecentErasures, Screen
from tests.unit.api_app import api_app
from tests.unit.test_alert_stream_resume import AUTH, REFS, alert, nobody_erased

START = b"retry: 2000\n\n"


def told_by_ref(customers: list[str]) -> bytes:
    """What a resumed screen is told of these erasures, oldest first, as it always was."""
    return b"".join(b'event: erasure\ndata: {"customer_ref":"' + REFS(c).encode() + b'"}\n\n'
                    for c in customers)  # fmt: skip


async def resume(client: TestClient, length: int) -> bytes:  # type: ignore[type-arg]
    reply = await client.get("/v1/alerts/stream", headers={**AUTH, "Last-Event-ID": "0-0"})
    read = await asyncio.wait_for(reply.content.readexactly(length), 10)
    reply.close()
    return read


async def test_resumed_streams_share_one_build_of_the_erasure_notices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS)
    hub.ready.set()
    hub.publish([alert(1, "c-1")])
    gone = [f"gone-{n}" for n in range(2_000)]  # some 120 KB: several writes each
    for customer in gone:
        hub.forget(customer)
    listed = []
    erasures = RecentErasures.erasures

    def counted(recent: RecentErasures) -> list[Erased]:
        listed.append(recent)
        return erasures(recent)

    monkeypatch.setattr(RecentErasures, "erasures", counted)
    expected = START + told_by_ref(gone)
    async with TestClient(TestServer(api_app(alerts=hub))) as client:
        streams = await asyncio.gather(*(resume(client, len(expected)) for _ in range(8)))
        assert streams == [expected] * 8  # as every resumed screen was told before
        assert len(listed) == 1  # built once for the eight
        hub.forget("gone-late")  # the erasures changed: built again, once
        again = START + told_by_ref([*gone, "gone-late"])
        streams = await asyncio.gather(*(resume(client, len(again)) for _ in range(4)))
        assert streams == [again] * 4 and len(listed) == 2
        hub.close_all()


def per_screen(recent: RecentErasures, chunk_bytes: int) -> list[bytes]:
    """The writes each resumed stream made of its own before (streams/api/alert_stream.py's
    ``_tell_erasures`` with a screen resumed and sent nothing yet)."""
    screen, chunks, chunk = Screen(resumed=True), [], bytearray()
    for erased in recent.erasures():
        told = screen.erasure(erased)
        assert told is not None
        chunk += b"event: erasure\ndata: " + b'{"customer_ref":"' + told["customer_ref"].encode()
        chunk += b'"}\n\n'
        if len(chunk) >= chunk_bytes:
            chunks.append(bytes(chunk))
            chunk.clear()
    return [*chunks, bytes(chunk)] if chunk else chunks


@pytest.mark.parametrize("count", [0, 1, 272, 273, 1_000])
@pytest.mark.parametrize("chunk_bytes", [60, 4_096, 16_384])
def test_the_shared_writes_are_those_each_stream_made(count: int, chunk_bytes: int) -> None:
    now = [1_000.0]
    recent = RecentErasures(limit=800, keep_s=100.0, clock=lambda: now[0])
    notices = ResumeNotices(recent)
    for n in range(count):
        recent.add(f"c-{n}", REFS(f"c-{n}"))
    assert list(notices.chunks(chunk_bytes)) == per_screen(recent, chunk_bytes)
    now[0] += 101  # a day later: they are let go of, and the notices with them
    assert notices.chunks(chunk_bytes) == ()
