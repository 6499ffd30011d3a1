"""GET /v1/alerts/stream: interventions from Kafka reach contact-centre screens over SSE.

Interventions are written by a plain aiokafka producer to the deployment's prefixed
``interventions`` topic, as any engine instance would; screens are real HTTP clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from streams.api.auth import hash_key
from streams.api.screen_erasures import CustomerRefs
from tests.integration.conftest import SECRET, Pipeline
from tests.integration.test_api_support import (
    DEV_AUTH,
    SseClient,
    SseEvent,
    assert_error,
    call,
    eventually,
    metric_total,
)
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration

REFS = CustomerRefs(SECRET.encode())  # the refs the deployment's screens know customers by
CUSTOMER = "alert-cust-1"  # one key: one partition, so the alerts keep their order


def intervention(n: int, queue: str | None, customer: str = CUSTOMER) -> dict[str, Any]:
    """An intervention as the contract describes it (DESIGN.md section 4)."""
    return {
        "intervention_id": f"iv-{n}",
        "customer_id": customer,
        "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "kind": "retention_call",
        "priority": 1,
        "queue": queue,
        "agent_id": None,
        "trigger_event_id": f"ev-{n}",
        "reasons": ["complaint_call"],
        "suggested_action": "Offer a goodwill credit.",
        "context": {"segment": "loyal", "risk": 0.8, "value": 900.0, "recent_touchpoints": []},
    }


async def send(pipeline: Pipeline, *alerts: dict[str, Any]) -> None:
    records = [(a["customer_id"].encode(), json.dumps(a).encode()) for a in alerts]
    await produce(pipeline.services.kafka_bootstrap, pipeline.topic("interventions"), records)


def ids(events: list[SseEvent]) -> list[str]:
    return [e.json["intervention_id"] for e in events]


async def receive(client: SseClient, n: int) -> list[SseEvent]:
    return [await client.next() for _ in range(n)]


async def test_alerts_reach_screens_filtered_by_queue_and_resume_after_last_event_id(
    pipeline: Pipeline,
) -> None:
    api = pipeline.start_api()
    stream = f"{api.url}/v1/alerts/stream"
    assert_error(await call("GET", stream), 401)

    async with (
        SseClient(stream, DEV_AUTH) as everything,
        SseClient(f"{stream}?queue=vip", DEV_AUTH) as vip,
    ):
        for client in (everything, vip):
            assert client.response is not None and client.response.status == 200
            assert client.response.headers["Content-Type"].startswith("text/event-stream")
            await client.subscribed()

        # An intervention produced to Kafka reaches a connected screen.
        await send(pipeline, intervention(1, "retention"))
        (first,) = await receive(everything, 1)
        assert first.event is None  # an unnamed event: EventSource's onmessage hears it
        # as produced, with the customer's ref added (by which erasures name them)
        ref = {"customer_ref": REFS(CUSTOMER)}
        assert first.json == intervention(1, "retention") | {"ts": first.json["ts"]} | ref
        assert first.id is not None and first.id.count("-") == 1, first.id
        assert everything.retry == "2000"

        # ?queue= keeps that queue's alerts and those for no queue in particular (in
        # order, none of the other queues').
        await send(
            pipeline,
            intervention(2, "billing"),
            intervention(3, "vip"),
            intervention(4, None),
            intervention(5, "VIP "),  # as a telephony system may write it: the same queue
        )
        rest = await receive(everything, 4)
        assert ids(rest) == ["iv-2", "iv-3", "iv-4", "iv-5"]
        assert ids(await receive(vip, 3)) == ["iv-3", "iv-4", "iv-5"]
        await vip.nothing_more(1.0)
        every_id = [first.id, *(e.id for e in rest)]
        assert len(set(every_id)) == 5

    # A screen that reconnects with Last-Event-ID gets only what came after it.
    after_3 = {**DEV_AUTH, "Last-Event-ID": every_id[2]}
    async with SseClient(stream, after_3) as resumed:
        assert ids(await receive(resumed, 2)) == ["iv-4", "iv-5"]
        await send(pipeline, intervention(6, "vip"))
        (live,) = await receive(resumed, 1)
        assert ids([live]) == ["iv-6"]
        await resumed.nothing_more(1.0)
    async with SseClient(f"{stream}?queue=vip", after_3) as resumed_vip:
        assert ids(await receive(resumed_vip, 3)) == ["iv-4", "iv-5", "iv-6"]
        await resumed_vip.nothing_more(1.0)


async def test_an_erased_customer_leaves_every_screen_and_buffer(pipeline: Pipeline) -> None:
    """Erased through one API process: screens on it and on another process are told to
    drop the customer's alerts, neither process hands them to a new screen, an alert
    about them that arrives later is not shown, and a screen that resumes on either
    process (it may have been away) is told of the erasure first."""
    gone, kept = "alert-gone", "alert-kept"
    first, second = pipeline.start_api(), pipeline.start_api()
    streams = [f"{api.url}/v1/alerts/stream" for api in (first, second)]
    last_ids = []
    async with SseClient(streams[0], DEV_AUTH) as one, SseClient(streams[1], DEV_AUTH) as two:
        for screen in (one, two):
            await screen.subscribed()
        await send(pipeline, intervention(1, "vip", gone), intervention(2, "vip", kept))
        for screen in (one, two):
            shown = await receive(screen, 2)
            assert sorted(ids(shown)) == ["iv-1", "iv-2"]
            refs = {alert.json["customer_id"]: alert.json["customer_ref"] for alert in shown}
            assert refs == {c: REFS(c) for c in (gone, kept)}  # the same on every process
        named = {"customer_id": gone, "customer_ref": REFS(gone)}

        erased = await call("DELETE", f"{first.url}/v1/customers/{gone}", headers=DEV_AUTH)
        assert erased.status == 200, erased
        for screen in (one, two):  # the second process learns it from the erasure record
            notice = await screen.next()
            assert (notice.event, notice.id, notice.json) == ("erasure", None, named)

        # late: decided before the erasure, delivered after it
        await send(pipeline, intervention(3, "vip", gone), intervention(4, "vip", kept))
        for screen in (one, two):
            later = await screen.next()
            while later.event == "erasure":  # the first process hears of it twice: from
                assert later.json == named  # itself, then from Kafka
                later = await screen.next()
            assert ids([later]) == ["iv-4"]
            last_ids.append(str(later.id))
            await screen.nothing_more(1.0)

    for stream in streams:  # a screen connecting now sees only the customer still here
        async with SseClient(stream, DEV_AUTH) as fresh:
            backlog = await receive(fresh, 2)
            assert ids(backlog) == ["iv-2", "iv-4"]
            await fresh.nothing_more(1.0)
    for stream, last_id in zip(streams, last_ids, strict=True):  # as the console asks
        by_ref = f"{stream}?erasures=ref"
        async with SseClient(by_ref, {**DEV_AUTH, "Last-Event-ID": last_id}) as resumed:
            notice = await resumed.next()  # by ref alone: it learns no one's id
            assert (notice.event, notice.json) == ("erasure", {"customer_ref": REFS(gone)})
            await resumed.nothing_more(1.0)
        # without asking for refs, and claiming to have seen everything: no id either
        # (what a resumed screen says it was shown cannot be checked)
        claims = {**DEV_AUTH, "Last-Event-ID": ".".join(f"{p}-999999999" for p in range(8))}
        async with SseClient(stream, claims) as resumed:
            notice = await resumed.next()
            assert (notice.event, notice.json) == ("erasure", {"customer_ref": REFS(gone)})


async def test_only_screens_that_may_show_a_customer_hear_of_their_erasure(
    pipeline: Pipeline,
) -> None:
    """A screen that was never sent an alert about the erased customer is not told of the
    erasure; one that resumed with Last-Event-ID is told by the customer's ref alone (it
    may still show their alerts from before, which carry the ref, but learns no id),
    whether or not it asked for refs."""
    gone, kept = "alert-private-gone", "alert-private-kept"
    api = pipeline.start_api()
    stream = f"{api.url}/v1/alerts/stream"
    async with (
        SseClient(f"{stream}?queue=vip", DEV_AUTH) as vip,
        SseClient(f"{stream}?queue=billing", DEV_AUTH) as billing,
    ):
        for screen in (vip, billing):
            await screen.subscribed()
        await send(pipeline, intervention(1, "vip", gone), intervention(2, "billing", kept))
        assert ids(await receive(vip, 1)) == ["iv-1"]
        (shown,) = await receive(billing, 1)
        assert ids([shown]) == ["iv-2"]
        after_2 = {**DEV_AUTH, "Last-Event-ID": str(shown.id)}
        async with SseClient(f"{stream}?queue=billing&erasures=ref", after_2) as resumed:
            await resumed.subscribed()
            erased = await call("DELETE", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH)
            assert erased.status == 200, erased
            notice = await vip.next()
            assert (notice.event, notice.json) == (
                "erasure", {"customer_id": gone, "customer_ref": REFS(gone)},
            )  # fmt: skip
            notice = await resumed.next()
            if notice.event == "position":  # past iv-1, a vip alert its backlog passed
                notice = await resumed.next()
            assert (notice.event, notice.json) == ("erasure", {"customer_ref": REFS(gone)})
            await send(pipeline, intervention(3, "billing", kept))
            later = await billing.next()  # the next thing this screen hears: no erasure
            assert (later.event, ids([later])) == (None, ["iv-3"])
            await billing.nothing_more(1.0)
        await vip.nothing_more(1.0)  # told once, though the process hears of it twice


async def test_a_screen_resumes_on_another_replica_without_a_gap_or_a_repeat(
    pipeline: Pipeline,
) -> None:
    """The event id is the stream's position in every partition, so a screen that leaves
    one API replica and resumes on another gets exactly the alerts it had not been sent,
    whatever order the partitions reached the second replica in."""
    first, second = pipeline.start_api(), pipeline.start_api()
    customers = [f"alert-replica-{n}" for n in range(8)]  # keys spread over the partitions
    async with SseClient(f"{first.url}/v1/alerts/stream", DEV_AUTH) as screen:
        await screen.subscribed()
        await send(pipeline, *(intervention(n, "vip", c) for n, c in enumerate(customers)))
        seen = await receive(screen, len(customers))
        assert sorted(ids(seen)) == sorted(f"iv-{n}" for n in range(len(customers)))
    last = seen[-1].id
    assert last is not None and "." in last, last  # several partitions in one id
    async with SseClient(f"{second.url}/v1/alerts/stream", DEV_AUTH) as other:
        await other.subscribed()
        await receive(other, len(customers))  # the second replica has read them all
    later = [intervention(10 + n, "vip", c) for n, c in enumerate(customers)]
    await send(pipeline, *later)
    async with SseClient(
        f"{second.url}/v1/alerts/stream", {**DEV_AUTH, "Last-Event-ID": last}
    ) as resumed:
        got = await receive(resumed, len(later))
        assert sorted(ids(got)) == sorted(a["intervention_id"] for a in later)
        await resumed.nothing_more(1.0)


async def test_one_keys_streams_leave_half_the_connections_to_others(pipeline: Pipeline) -> None:
    """A pod's memory-bounded cap (384 connections) was below the 500 streams a key may
    hold: one key's screens could take every connection, and recommendations got 503."""
    desk = "desk-secret"
    keys = f"desk:profile-read+recommend:{hash_key(desk)}"
    api = pipeline.start_api(MOMENTS_API_KEYS=keys, MOMENTS_API_MAX_CONNECTIONS="6")
    stream = f"{api.url}/v1/alerts/stream"
    as_desk = {"Authorization": f"Bearer {desk}"}
    async with contextlib.AsyncExitStack() as screens:
        for _ in range(3):
            screen = await screens.enter_async_context(SseClient(stream, as_desk))
            await screen.subscribed()
        body = assert_error(await call("GET", stream, headers=as_desk), 429, "too_many_streams")
        assert "3 alert streams" in body["message"]
        asked = await call("GET", f"{api.url}/v1/customers/c-1/recommendations", headers=as_desk)
        assert asked.status == 200, asked
    assert "not the 500 of MOMENTS_API_MAX_STREAMS_PER_KEY" in api.log_path.read_text()


async def test_a_key_holds_at_most_its_streams_and_a_closed_screen_frees_its_seat(
    pipeline: Pipeline,
) -> None:
    desk = "desk-secret"
    keys = f"desk:profile-read:{hash_key(desk)};wall:profile-read:{hash_key('wall-secret')}"
    api = pipeline.start_api(MOMENTS_API_KEYS=keys, MOMENTS_API_MAX_STREAMS_PER_KEY="2")
    stream = f"{api.url}/v1/alerts/stream"
    as_desk = {"Authorization": f"Bearer {desk}"}

    vip = f"{stream}?queue=vip"
    async with SseClient(vip, as_desk) as first, SseClient(vip, as_desk) as second:
        for client in (first, second):
            await client.subscribed()
        assert metric_total(api, "moments_alert_streams_open") == 2
        refused = await call("GET", stream, headers=as_desk)
        body = assert_error(refused, 429, "too_many_streams")
        assert "2 alert streams" in body["message"]
        assert refused.headers["Retry-After"] == "15"
        # the key in the query, as EventSource sends it, counts alike
        assert_error(await call("GET", f"{stream}?api_key={desk}"), 429, "too_many_streams")
        # another key has seats of its own
        async with SseClient(f"{stream}?api_key=wall-secret") as wall:
            await wall.subscribed()
            assert metric_total(api, "moments_alert_streams_open") == 3
        # the open streams still carry alerts
        await send(pipeline, intervention(1, None))
        assert ids(await receive(first, 1)) == ids(await receive(second, 1)) == ["iv-1"]

    # once the server sees a screen gone (at its next write: a keep-alive within 15 s,
    # though other queues' alerts, which these screens are not sent, keep coming), its
    # seat is the key's again
    async def other_queues() -> None:
        for n in itertools.count(2):
            await send(pipeline, intervention(n, "retention"))
            await asyncio.sleep(2)

    traffic = asyncio.create_task(other_queues())

    async def admitted() -> bool:
        async with SseClient(stream, as_desk) as again:
            assert again.response is not None
            if again.response.status == 429:
                return False
            await again.subscribed()
            return True

    try:
        await eventually(admitted, "a stream for the key once its screens closed", within=40)
        await eventually(
            lambda: _no_streams(api), "no stream open once every screen closed", within=40
        )
    finally:
        traffic.cancel()


async def _no_streams(api: Any) -> bool:
    return metric_total(api, "moments_alert_streams_open") == 0


async def test_a_screen_that_leaves_while_its_backlog_is_written_ends_quietly(
    pipeline: Pipeline,
) -> None:
    """A screen whose connection goes while the stream is writing to it (the replayed
    backlog fills its small receive buffer; it reads a little, then closes) ends its
    stream as any screen that left: no 500, no error logged with a traceback. aiohttp
    says so with a plain ConnectionError ("Connection lost"), which the stream let
    through to the catch-all."""
    import socket
    import time

    api = pipeline.start_api()
    big = [intervention(n, None) for n in range(120)]
    for alert in big:  # more than the kernel's buffers on the way take: the writer waits
        alert["suggested_action"] = "Call back. " * 6000  # about 60 KB each
    await send(pipeline, *big)
    async with SseClient(f"{api.url}/v1/alerts/stream", DEV_AUTH) as screen:
        assert len(await receive(screen, len(big))) == len(big)  # all buffered

    def leave_early() -> None:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", api.port))
            auth = DEV_AUTH["Authorization"].encode()
            sock.sendall(b"GET /v1/alerts/stream HTTP/1.1\r\nHost: moments\r\n"
                         b"Authorization: " + auth + b"\r\n\r\n")  # fmt: skip
            sock.recv(100)
            time.sleep(0.2)  # the server writes on, into the full buffers

    for _ in range(5):
        await asyncio.to_thread(leave_early)
    await eventually(lambda: _no_streams(api), "every stream ended", within=20)
    errors = metric_total(api, "moments_http_request_seconds_count", status="500")
    assert errors == 0, api.log_path.read_text()[-3000:]
    assert "unexpected error" not in api.log_path.read_text()


async def test_a_quiet_queue_is_told_of_a_gap_only_when_its_own_alerts_left_the_buffer(
    pipeline: Pipeline,
) -> None:
    """Every queue's alerts share the API's buffer (500). A screen on a quiet queue that
    resumes after a busy queue pushed alerts out of it missed none of its own: it is not
    told of a gap (agents would look for customers who need nothing). A screen on every
    queue, or on the busy one, is."""
    api = pipeline.start_api()
    stream = f"{api.url}/v1/alerts/stream"
    async with SseClient(f"{stream}?queue=vip", DEV_AUTH) as vip:
        await vip.subscribed()
        await send(pipeline, intervention(1, "vip"))
        (seen,) = await receive(vip, 1)
    assert seen.id is not None
    resume = {**DEV_AUTH, "Last-Event-ID": seen.id}
    await send(pipeline, *(intervention(100 + n, "billing") for n in range(600)))
    async with SseClient(f"{stream}?queue=billing", DEV_AUTH) as billing:
        await billing.subscribed()
        got = await receive(billing, 500)  # the buffer's, then those read since
        while got[-1].json["intervention_id"] != "iv-699":  # the API has read them all
            got.append(await billing.next())
    async with SseClient(f"{stream}?queue=VIP", resume) as quiet:
        await quiet.subscribed()
        await send(pipeline, intervention(2, "vip"))
        told = [await quiet.next()]
        while told[-1].event is not None:  # positions past billing's alerts
            told.append(await quiet.next())
        assert {e.event for e in told[:-1]} <= {"position"}, told  # no gap
        assert told[-1].json["intervention_id"] == "iv-2", told
    for told in ("", "?queue=billing"):
        async with SseClient(f"{stream}{told}", resume) as busy:
            await busy.subscribed()
            gap = await busy.next()
            assert gap.event == "gap" and gap.json["missed"], gap
