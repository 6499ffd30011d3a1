"""``moments dead-letters``: the report, and sending letters back once the fault is fixed.

Real Kafka, Redis and workers. A worker configured with too tight a clock-skew limit
dead-letters good events dated a few minutes ahead; with the limit fixed, a re-drive
applies them, once however often they are sent, and records that are really malformed
come back to the dead-letter topic. A later re-drive sends only letters no earlier run
sent back.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration import forked_starts
from tests.integration.conftest import Pipeline, consume_all
from tests.integration.test_api_support import DEV_AUTH, call, eventually, iso, read_to_end
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration


def click(n: int, minutes_ahead: float) -> dict[str, Any]:
    ts = datetime.now(UTC) + timedelta(minutes=minutes_ahead)
    return {"type": "web_click", "event_id": f"dl-{n}", "customer_id": f"dl-cust-{n}",
            "ts": iso(ts), "page": "/p"}  # fmt: skip


def dead_letters(pipeline: Pipeline, *args: str) -> dict[str, Any]:
    """``moments dead-letters`` as an operator runs it, at the default log level (the
    pipeline's warning level would hide the info lines from the no-customer-id check)."""
    env = {**pipeline.env(0), "MOMENTS_LOG_LEVEL": "info"}  # the default
    result = forked_starts.run(["dead-letters", *args], env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "dl-cust-" not in result.stdout + result.stderr  # no customer id shown
    report: dict[str, Any] = json.loads(result.stdout)
    return report


async def test_letters_are_reported_and_go_back_once_the_fault_is_fixed(
    pipeline: Pipeline,
) -> None:
    bootstrap = pipeline.services.kafka_bootstrap
    touchpoints = pipeline.topic("touchpoints")
    misconfigured = pipeline.start_worker(MOMENTS_MAX_FUTURE_SKEW_S="1")
    early = [click(n, minutes_ahead=5) for n in range(6)]  # a producer's clock a bit fast
    on_time = [click(n, minutes_ahead=-1) for n in range(6, 10)]
    malformed = [(b"dl-cust-90", b'{"type": "web_click", "event_id"'),
                 (b"dl-cust-91", b'{"type": "fax", "event_id": "x"}')]  # fmt: skip
    records = [(e["customer_id"].encode(), json.dumps(e).encode()) for e in early + on_time]
    await produce(bootstrap, touchpoints, records + malformed)
    dlq = pipeline.topic("touchpoints-dlq")
    letters = await consume_all(bootstrap, dlq, len(early) + len(malformed))
    assert len(letters) == len(early) + len(malformed)

    report = dead_letters(pipeline)
    found = report["matching"][touchpoints]
    assert found["letters"] == found["distinct_records"] == len(letters)
    assert found["stages"] == {"invalid": len(letters)}
    assert found["sent_back_already"] == 0
    skew = [r for r in found["top_reasons"] if "in the future" in r["reason"]]
    assert [r["letters"] for r in skew] == [1] * len(early)  # each names its own ts
    only_skew = dead_letters(pipeline, "--reason", "in the future", "--source", "touchpoints")
    assert only_skew["matching"][touchpoints]["letters"] == len(early)
    assert "redrive" not in only_skew  # a report sends nothing back, but says what it would
    assert only_skew["would_redrive"]["redriven"] == len(early)

    # The limit is fixed; the early events go back and are applied, once, except the
    # one of a customer erased meanwhile, whose data is not written anew.
    misconfigured.stop()
    pipeline.start_worker()
    api = pipeline.start_api()
    gone = early.pop()
    erased = await call("DELETE", f"{api.url}/v1/customers/{gone['customer_id']}",
                        headers=DEV_AUTH)  # fmt: skip
    assert erased.status == 200, erased
    would = dead_letters(pipeline, "--reason", "in the future")  # the erased one stays
    sent = dead_letters(pipeline, "--redrive", "--reason", "in the future")
    assert would["would_redrive"] == sent["redrive"]
    assert sent["redrive"] == {"redriven": len(early), "repeated": 0, "too_old": 0,
                               "unknown_source": 0, "unknown_origin": 0, "erased": 1,
                               "sent_before": 0, "truncated": 0}  # fmt: skip
    redrives = await read_to_end(bootstrap, pipeline.topic("dead-letter-redrives"))
    assert len(redrives) == len(early)
    named = {json.loads(r.value)["letter"] for r in redrives}  # type: ignore[attr-defined]
    early_values = {json.dumps(e).encode() for e in early}  # the erased one popped
    assert named == {f"{dlq}:{r.partition}:{r.offset}" for r in letters  # type: ignore[attr-defined]
                     if r.value in early_values}  # fmt: skip
    store = pipeline.store()
    try:

        async def all_applied() -> bool:
            views = [await store.read(e["customer_id"]) for e in early]
            return all(v is not None and v.events == 1 for v in views)

        await eventually(all_applied, "the re-driven events applied")
        # A run sends only what no run sent back yet: the malformed records.
        before = dead_letters(pipeline)["matching"][touchpoints]
        assert before["sent_back_already"] == len(early)
        # Everything again: the early ones are duplicates now, the malformed fail again.
        again = dead_letters(pipeline, "--redrive", "--again")
        assert again["redrive"]["redriven"] == len(letters) - 1  # not the erased one
        assert again["redrive"]["erased"] == 1
        back = await consume_all(bootstrap, dlq, len(letters) + len(malformed))
        assert len(back) == len(letters) + len(malformed)
        copies = Counter(r.value for r in back)  # type: ignore[attr-defined]
        assert all(copies[v] == 2 for _, v in malformed), copies  # dead-lettered again
        assert all(copies[json.dumps(e).encode()] == 1 for e in early), copies
        for event in early + on_time:
            view = await store.read(event["customer_id"])
            assert view is not None and view.events == 1, event["event_id"]
        assert await store.read(gone["customer_id"]) is None
        resent = [r for r in await read_to_end(bootstrap, touchpoints)
                  if r.key == gone["customer_id"].encode()]  # fmt: skip
        assert len(resent) == 1  # only the original: never sent again
        redriven_from = 0  # those that failed again name the letter they came back from
        for record in back:
            headers = dict(record.headers)  # type: ignore[attr-defined]
            if "redriven-from" in headers:
                assert record.value in {v for _, v in malformed}  # type: ignore[attr-defined]
                assert headers["redriven-from"].decode().startswith(f"{dlq}:")
                redriven_from += 1
        assert redriven_from == len(malformed)
        final = dead_letters(pipeline)["matching"][touchpoints]
        assert final["letters"] == len(letters) + len(malformed)
        assert final["distinct_records"] == len(letters)
        assert final["failed_again_after_redrive"] == len(malformed)
        assert final["sent_back_already"] == len(letters) - 1
        # Without --again, only the letters written since are new: those that failed again.
        cutoff = iso(datetime.now(UTC))
        newest = dead_letters(pipeline, "--redrive")
        assert newest["redrive"] == {"redriven": len(malformed), "repeated": 0, "too_old": 0,
                                     "unknown_source": 0, "unknown_origin": 0, "erased": 1,
                                     "sent_before": len(letters) - 1, "truncated": 0}  # fmt: skip
        nothing = dead_letters(pipeline, "--redrive", "--until", cutoff)
        assert nothing["redrive"]["redriven"] == 0  # all of them went back before
    finally:
        await store.close()


async def test_a_redrive_is_refused_when_erasure_records_were_lost(pipeline: Pipeline) -> None:
    """Retention deleted erasure records: who was erased then is unknown, so their letters
    could go back. A dry run still reports; a re-drive needs --accept-lost-erasures."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
    from aiokafka.errors import LeaderNotAvailableError, NotLeaderForPartitionError

    from schemas import CustomerErasure, encode_erasure
    from streams.settings import Settings
    from streams.topics import ensure_topics

    await ensure_topics(Settings.from_env(pipeline.env(0)))
    erasures = pipeline.topic("customer-erasures")
    now = datetime.now(UTC)
    records = [
        (f"gone-{n}".encode(), encode_erasure(CustomerErasure(customer_id=f"gone-{n}",
                                                              subject="s", ts=now)))
        for n in range(2)
    ]  # fmt: skip
    await produce(pipeline.services.kafka_bootstrap, erasures, records)
    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.services.kafka_bootstrap)
    await admin.start()
    try:
        partitions = await admin.describe_topics([erasures])
        for p in partitions[0]["partitions"]:
            tp = TopicPartition(erasures, p["partition"])
            for attempt in range(20):  # a topic just made: its broker may not lead it yet
                try:
                    await admin.delete_records({tp: RecordsToDelete(-1)}, 10_000)  # all of it
                    break
                except (LeaderNotAvailableError, NotLeaderForPartitionError):
                    if attempt == 19:
                        raise
                    await asyncio.sleep(0.5)
    finally:
        await admin.close()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return forked_starts.run(["dead-letters", *args], pipeline.env(0), timeout=300)

    refused = run("--redrive")
    assert refused.returncode == 2, refused.stderr
    assert "lost records to retention" in refused.stderr and "nothing was sent" in refused.stderr
    assert run().returncode == 0  # a dry run reports all the same
    accepted = run("--redrive", "--accept-lost-erasures")
    assert accepted.returncode == 0, accepted.stderr


async def test_a_batch_given_up_after_its_decisions_went_out_sends_them_once(
    pipeline: Pipeline,
) -> None:
    """Kafka refuses every alert for good (the topic's max.message.bytes set too low): the
    batches are given up, their records dead-lettered, though Kafka took their decisions.
    Re-driven once the limit is mended, those decisions are not sent a second time."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from tests.integration.test_scale_out import spread
    from tests.integration.test_service_restarts import all_handled, send
    from tests.integration.test_touchpoints_pipeline import good_events, is_moment

    async def alerts_limited_to(max_bytes: str) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.services.kafka_bootstrap)
        await admin.start()
        try:
            topic = pipeline.topic("interventions")
            config = {"max.message.bytes": max_bytes}
            await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, configs=config)]
            )
        finally:
            await admin.close()

    async def sent_per_trigger(at_least: int) -> Counter[str]:
        topic = pipeline.topic("next-best-offers")
        decisions = await consume_all(pipeline.services.kafka_bootstrap, topic, at_least, 20)
        return Counter(json.loads(r.value)["trigger_event_id"] for r in decisions)

    pipeline.start_worker(MOMENTS_BATCH_SIZE="100")
    await alerts_limited_to("200")  # every alert is refused for good
    events = spread(good_events(600, seed=91), seed=92)
    await send(pipeline, events)
    await all_handled(pipeline, 180)
    moments = {e["event_id"] for e in events if is_moment(e)}
    before = await sent_per_trigger(len(moments))
    letters = await read_to_end(
        pipeline.services.kafka_bootstrap, pipeline.topic("touchpoints-dlq")
    )
    lettered = {json.loads(r.value)["event_id"] for r in letters}
    assert lettered & set(before), "no batch was given up after its decisions went out"
    await alerts_limited_to("1048588")
    assert dead_letters(pipeline, "--redrive")["redrive"]["redriven"] == len(letters)
    await all_handled(pipeline, 120)
    topic = pipeline.topic("next-best-offers")
    after = Counter(
        json.loads(r.value)["trigger_event_id"]
        for r in await read_to_end(pipeline.services.kafka_bootstrap, topic)
    )
    assert {t: n for t, n in after.items() if n > 1} == {}
    assert set(after) == set(before)
