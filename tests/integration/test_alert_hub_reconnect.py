"""The alert fan-out of an API process, on real Kafka and Redis: when it reconnects, it
hears of the erasures made while it was away (through another process), drops their
buffered alerts and tells the screens; and the alerts made meanwhile, or read when it
failed, reach the screens once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from feature_store import FeatureStore, StoreConfig, StoreUnavailable
from schemas import CustomerErasure, encode_erasure
from streams.api.alert_buffer import ErasedCheck
from streams.api.alerts import AlertHub
from streams.api.screen_erasures import CustomerRefs, Erased, RecentErasures
from streams.api.screen_feed import StreamPosition
from streams.services import Services
from streams.settings import Settings
from streams.topics import CUSTOMER_ERASURES, INTERVENTIONS, ensure_topics
from tests.integration.test_api_support import eventually

pytestmark = pytest.mark.integration

REFS = CustomerRefs(b"integration-test-secret")


def intervention(customer: str) -> bytes:
    return json.dumps({
        "intervention_id": f"iv-{customer}", "customer_id": customer,
        "ts": "2026-12-01T10:00:00Z", "kind": "retention_call", "priority": 1,
        "queue": "vip", "trigger_event_id": None, "reasons": [],
        "suggested_action": "Call them.",
    }).encode()  # fmt: skip


@dataclass
class FanOut:
    """An alert hub on topics of its own, started, with a producer and a store."""

    hub: AlertHub
    producer: AIOKafkaProducer
    store: FeatureStore
    alerts_topic: str
    erasures_topic: str

    async def send(self, customers: Sequence[str]) -> None:
        for customer in customers:
            await self.producer.send(self.alerts_topic, intervention(customer),
                                     key=customer.encode())  # fmt: skip
        await self.producer.flush()

    async def holds(self, wanted: set[str]) -> bool:
        held = {a.intervention.customer_id for a in self.hub.since(StreamPosition(), None)}
        return held == wanted

    async def restart(self) -> None:
        self.hub.ready.clear()
        await self.hub.start()
        await asyncio.wait_for(self.hub.ready.wait(), 30)


@contextlib.asynccontextmanager
async def fan_out(
    kafka_redis: Services,
    erased: ErasedCheck | None = None,
    backlog: int = 10,
    held_warn_s: float = 10.0,
    partitions_every_s: float = 30.0,
) -> AsyncIterator[FanOut]:
    bootstrap = kafka_redis.kafka_bootstrap
    prefix = f"ah{uuid.uuid4().hex[:8]}"
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"{prefix}-")
    await ensure_topics(settings, partitions=2)
    alerts_topic, erasures_topic = settings.topic(INTERVENTIONS), settings.topic(CUSTOMER_ERASURES)
    store = FeatureStore.from_url(kafka_redis.redis_url, StoreConfig(prefix.encode(), prefix))
    hub = AlertHub(bootstrap, alerts_topic, erasures_topic, erased or store.erased, REFS,
                   backlog=backlog, held_warn_s=held_warn_s,
                   partitions_every_s=partitions_every_s)  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await hub.start()
        await asyncio.wait_for(hub.ready.wait(), 30)
        yield FanOut(hub, producer, store, alerts_topic, erasures_topic)
    finally:
        await hub.stop()
        await producer.stop()
        await store.close()


async def test_erasures_made_while_the_fan_out_was_away_are_heard_after_it_reconnects(
    kafka_redis: Services,
) -> None:
    async with fan_out(kafka_redis) as rig:
        await rig.send(["stays", "goes"])
        await eventually(lambda: rig.holds({"stays", "goes"}), "both alerts buffered")
        screen = rig.hub.subscribe()  # a connected screen, which was sent both

        await rig.hub.stop()  # away: another API process erases a customer meanwhile
        receipt = await rig.store.erase("goes")
        erased = CustomerErasure(customer_id="goes", subject=receipt.subject, ts=datetime.now(UTC))
        await rig.producer.send_and_wait(rig.erasures_topic, encode_erasure(erased), key=b"goes")
        await rig.restart()
        await eventually(lambda: rig.holds({"stays"}), "the erased customer's alert dropped")
        told = await asyncio.wait_for(screen.get(), 10)
        assert told == Erased("goes", REFS("goes"))


async def test_alerts_made_while_the_fan_out_was_away_reach_the_screens_once(
    kafka_redis: Services,
) -> None:
    """It used to start again a little before the end (the backlog's worth): alerts beyond
    that were never fanned out, and those already sent were buffered twice."""
    async with fan_out(kafka_redis) as rig:
        await rig.send(["before"])
        await eventually(lambda: rig.holds({"before"}), "the first alert buffered")
        screen = rig.hub.subscribe()
        await rig.hub.stop()
        away = [f"away-{n}" for n in range(30)]  # three backlogs' worth
        await rig.send(away)
        await rig.restart()
        heard: list[str] = []
        while len(heard) < len(away):
            notice = await asyncio.wait_for(screen.get(), 20)
            assert notice is not None and not isinstance(notice, Erased)
            heard.append(notice.intervention.customer_id)
        assert sorted(heard) == sorted(away)
        assert len(rig.hub.since(StreamPosition(), None)) == 10  # the newest, each once


async def test_alerts_read_when_the_fan_out_failed_are_read_again(kafka_redis: Services) -> None:
    """The position moved on before the alerts were handed on: when checking them failed
    (a Redis reply that is not an outage), the reconnection read past them."""
    failures = [RuntimeError("NOPERM this user has no permissions")]

    async def erased_once_failing(customer_ids: Sequence[str]) -> list[bool]:
        if customer_ids and failures:
            raise failures.pop()
        return [False] * len(customer_ids)

    async with fan_out(kafka_redis, erased_once_failing) as rig:
        sent = [f"retry-{n}" for n in range(4)]
        await rig.send(sent)
        await eventually(lambda: rig.holds(set(sent)), "every alert, after the failure")
        assert not failures  # it did fail once


async def test_a_process_that_starts_hears_of_the_last_days_erasures_before_it_is_ready(
    kafka_redis: Services,
) -> None:
    """A screen that resumes on a process started after an erasure is told of it: the
    process reads the last day's erasures (the newest it remembers) before it is ready."""
    async with fan_out(kafka_redis) as rig:
        now = datetime.now(UTC)
        for customer, hours_ago in [("old", 30), ("b", 5), ("c", 4), ("d", 3), ("e", 2)]:
            when = now - timedelta(hours=hours_ago)
            erased = CustomerErasure(customer_id=customer, subject="s", ts=when)
            await rig.producer.send_and_wait(rig.erasures_topic, encode_erasure(erased),
                                             key=customer.encode(),
                                             timestamp_ms=int(when.timestamp() * 1000))  # fmt: skip
        bootstrap = kafka_redis.kafka_bootstrap
        started = AlertHub(bootstrap, rig.alerts_topic, rig.erasures_topic, rig.store.erased, REFS)
        started.erased_lately = RecentErasures(limit=3)
        await started.start()
        try:
            await asyncio.wait_for(started.ready.wait(), 30)
            assert started.erased_lately.customers() == ["c", "d", "e"]  # the newest 3
        finally:
            await started.stop()
        fresh = AlertHub(bootstrap, rig.alerts_topic, rig.erasures_topic, rig.store.erased, REFS)
        await fresh.start()
        try:
            await asyncio.wait_for(fresh.ready.wait(), 30)
            assert fresh.erased_lately.customers() == ["b", "c", "d", "e"]  # not the day-old
        finally:
            await fresh.stop()


async def test_alerts_kept_after_retention_and_in_partitions_added_reach_the_buffer(
    kafka_redis: Services,
) -> None:
    """A partition whose older alerts retention deleted: its newest are buffered, and a
    screen that passed fewer is told of a gap. A partition added while the process runs:
    its alerts are read from its first, and the others are not read again."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, RecordsToDelete

    alerts, erasures = await own_topics(kafka_redis, partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_redis.kafka_bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_redis.kafka_bootstrap)
    await producer.start()
    await admin.start()
    hub = AlertHub(kafka_redis.kafka_bootstrap, alerts, erasures, nobody_erased, REFS,
                   partitions_every_s=1.0)  # fmt: skip
    try:
        for n in range(10):
            await producer.send_and_wait(alerts, intervention(f"kept-{n}"), partition=0)
        await admin.delete_records({TopicPartition(alerts, 0): RecordsToDelete(8)}, 10_000)
        await hub.start()
        await asyncio.wait_for(hub.ready.wait(), 30)

        def held() -> list[str]:
            return [a.id for a in hub.since(StreamPosition(), None)]

        await eventually(lambda: _true(held() == ["0-8", "0-9"]), "the alerts kept buffered")
        assert hub.behind(await hub.position("0-3"), "vip") == [(0, 3, 8, True)]  # 4 to 7
        assert hub.behind(await hub.position("0-7"), None) == []

        await admin.create_partitions({alerts: NewPartitions(total_count=2)})
        added = AIOKafkaProducer(bootstrap_servers=kafka_redis.kafka_bootstrap)
        await added.start()
        try:
            for n in range(3):
                await added.send_and_wait(alerts, intervention(f"added-{n}"), partition=1)
        finally:
            await added.stop()
        everything = ["0-8", "0-9", "1-0", "1-1", "1-2"]
        await eventually(lambda: _true(sorted(held()) == everything), "the added partition's")
        await asyncio.sleep(1.5)  # another metadata refresh: nothing is read twice
        assert sorted(held()) == everything
    finally:
        await hub.stop()
        await producer.stop()
        await admin.close()


async def _true(value: bool) -> bool:
    return value


async def nobody_erased(customer_ids: Sequence[str]) -> list[bool]:
    return [False] * len(customer_ids)


async def own_topics(kafka_redis: Services, partitions: int) -> tuple[str, str]:
    """``interventions`` and ``customer-erasures`` of a prefix of the test's own."""
    settings = Settings(kafka_bootstrap=kafka_redis.kafka_bootstrap,
                        topic_prefix=f"ah{uuid.uuid4().hex[:6]}-")  # fmt: skip
    await ensure_topics(settings, partitions=partitions)
    return settings.topic(INTERVENTIONS), settings.topic(CUSTOMER_ERASURES)


@pytest.mark.parametrize("away", [False, True], ids=["running", "away"])
async def test_alerts_of_a_topic_made_again_reach_the_buffer(
    kafka_redis: Services, away: bool
) -> None:
    """``interventions`` deleted and made again, its offsets starting over, while the
    fan-out runs or while it is away: it used to skip the new topic's alerts until their
    offsets passed the old ones (seeking forward again and again meanwhile). A screen
    that saw the old topic to its end starts over in the new one, and is told of the new
    alerts that left the buffer before it came back. A running fan-out learns of the
    topic made again from the metadata it reads every ``partitions_every_s`` (30 s by
    default; a second here), having learned of the deletion at once, from its fetch."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    async with fan_out(kafka_redis, partitions_every_s=1.0) as rig:
        for n in range(20):
            await rig.producer.send(rig.alerts_topic, intervention(f"old-{n}"), partition=0)
        await rig.producer.flush()
        await eventually(lambda: _true("0-19" in {a.id for a in rig.hub.since(StreamPosition(),
                                                                                None)}),
                         "the old topic read")  # fmt: skip
        if away:
            await rig.hub.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_redis.kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([rig.alerts_topic])
            for _ in range(100):  # the deletion completes in the background
                try:
                    await admin.create_topics([NewTopic(rig.alerts_topic, 2, 1)])
                    break
                except TopicAlreadyExistsError:
                    await asyncio.sleep(0.2)
        finally:
            await admin.close()
        for n in range(15):  # the buffer holds 10: the first 5 leave it
            await rig.producer.send_and_wait(rig.alerts_topic, intervention(f"new-{n}"),
                                             partition=0)  # fmt: skip
        if away:
            await rig.restart()

        def new() -> list[str]:
            return [a.id for a in rig.hub.since(StreamPosition(), None)
                    if a.intervention.customer_id.startswith("new-")]  # fmt: skip

        later = [f"0-{n}" for n in range(5, 15)]
        await eventually(lambda: _true(new() == later), "the new topic's alerts")
        assert all(a.intervention.customer_id.startswith("new-")
                   for a in rig.hub.since(StreamPosition(), None))  # fmt: skip
        resumed = await rig.hub.position("0-19")  # past the new end: partition 0 anew
        assert resumed.event_id() == ""
        assert rig.hub.behind(StreamPosition.parse("0-19"), "vip") == [(0, -1, 5, True)]


async def test_a_position_past_what_this_process_heard_of_is_checked_with_the_broker(
    kafka_redis: Services,
) -> None:
    """A screen resuming here with an alert another replica had just shown it, before
    this process had heard the partition reach it: the partition started over, and
    every alert of it buffered was sent again."""
    async with fan_out(kafka_redis) as rig:
        for n in range(3):
            await rig.producer.send(rig.alerts_topic, intervention(f"seen-{n}"), partition=0)
        await rig.producer.flush()
        await eventually(lambda: _true(len(rig.hub.since(StreamPosition(), None)) == 3),
                         "the alerts read")  # fmt: skip
        rig.hub._ends[0] = 2  # as though 0-2 had not reached this process yet
        position = await rig.hub.position("0-2")  # asked while the fan-out fetches
        assert position.event_id() == "0-2"
        assert rig.hub.since(position, None) == []
        assert (await rig.hub.position("0-3")).event_id() == ""  # past the end: over


async def test_alerts_deleted_while_the_fan_out_was_behind_are_told_as_a_gap(
    kafka_redis: Services,
) -> None:
    """Redis away, the fan-out holds what it read and fetches no further; retention
    deletes alerts it had not read. Its consumer goes on from the oldest kept: the
    alerts between were never read, and a screen from before them used to be sent the
    ones after without a word. Screens streaming then end, to be told as they resume."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

    redis_up = asyncio.Event()
    redis_up.set()

    async def erased(customer_ids: Sequence[str]) -> list[bool]:
        if not redis_up.is_set():
            raise StoreUnavailable("Redis is away (as the test has it)")
        return [False] * len(customer_ids)

    async with fan_out(kafka_redis, erased, backlog=500) as rig:
        partition = 0

        async def send(names: list[str], wait_s: float) -> None:
            for name in names:
                await rig.producer.send(rig.alerts_topic, intervention(name), partition=partition)
            await rig.producer.flush()
            await asyncio.sleep(wait_s)

        def held() -> set[str]:
            return {a.id for a in rig.hub.since(StreamPosition(), None)}

        await send([f"seen-{n}" for n in range(3)], 0)
        await eventually(lambda: _true(len(held()) == 3), "the first alerts")
        screen = rig.hub.subscribe("vip")  # a screen streaming all along
        left_at = f"{partition}-2"  # another that saw them, and went
        redis_up.clear()
        await send(["held"], 1.5)  # the fan-out holds it, waiting for Redis
        await send([f"fetched-{n}" for n in range(6)], 1.5)  # its consumer fetched these
        await send([f"later-{n}" for n in range(30)], 1.5)  # and waits to fetch these
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_redis.kafka_bootstrap)
        await admin.start()
        try:
            tp = TopicPartition(rig.alerts_topic, partition)
            await admin.delete_records({tp: RecordsToDelete(30)}, 10_000)
        finally:
            await admin.close()
        redis_up.set()
        await eventually(lambda: _true(f"{partition}-39" in held()), "the alerts kept")
        never_read = {f"{partition}-{n}" for n in range(3, 40)} - held()
        assert never_read, "the fan-out read every alert before they were deleted"
        assert screen.closed  # it resumes, and is told
        told = rig.hub.behind(StreamPosition.parse(left_at), "vip")
        assert told == [(partition, 2, 30, True)], (told, sorted(never_read))


async def test_a_transactions_markers_deleted_are_no_gap(kafka_redis: Services) -> None:
    """A transactional producer ends each transaction with a marker, an offset that holds
    no alert (and an aborted one's alerts are never shown). Retention deleting a quiet
    partition's whole log, its markers with it, used to be taken for alerts deleted
    unread: every stream ended, and every screen resumed to a banner of missed alerts,
    though it had them all. The same across a reconnection of the fan-out."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    async with fan_out(kafka_redis, backlog=500) as rig:
        transactional = AIOKafkaProducer(bootstrap_servers=kafka_redis.kafka_bootstrap,
                                         transactional_id=f"tx-{uuid.uuid4().hex[:8]}")  # fmt: skip
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_redis.kafka_bootstrap)
        await transactional.start()
        await admin.start()
        tp = TopicPartition(rig.alerts_topic, 0)

        async def send(name: str) -> None:
            async with transactional.transaction():
                await transactional.send(rig.alerts_topic, intervention(name), partition=0)

        def held() -> list[str]:
            return [a.intervention.customer_id for a in rig.hub.since(StreamPosition(), None)]

        try:
            for n in range(5):
                await send(f"tx-{n}")
            await transactional.begin_transaction()  # aborted: its alert is never shown
            await transactional.send_and_wait(rig.alerts_topic, intervention("aborted"),
                                              partition=0)  # fmt: skip
            await transactional.abort_transaction()
            await eventually(lambda: _true(len(held()) == 5), "the transactions' alerts")
            last = rig.hub.since(StreamPosition(), None)[-1].id  # a screen that had them all
            screen = rig.hub.subscribe("vip")
            await asyncio.sleep(1.5)  # quiet: the fan-out's consumer passes the last marker
            await expire_everything(admin, tp, kafka_redis)
            await send("after")
            await eventually(lambda: _true("after" in held()), "the next alert")
            assert "aborted" not in held()
            assert not screen.closed
            assert rig.hub.behind(StreamPosition.parse(last), "vip") == []

            await send("before-the-reconnection")
            await eventually(lambda: _true("before-the-reconnection" in held()), "it")
            last = rig.hub.since(StreamPosition(), None)[-1].id
            await asyncio.sleep(1.5)
            await rig.hub.stop()
            await expire_everything(admin, tp, kafka_redis)
            await rig.restart()
            screen = rig.hub.subscribe("vip")
            await send("after-the-reconnection")
            await eventually(lambda: _true("after-the-reconnection" in held()), "the last")
            assert not screen.closed
            assert rig.hub.behind(StreamPosition.parse(last), "vip") == []
        finally:
            await transactional.stop()
            await admin.close()


async def expire_everything(admin: Any, tp: Any, kafka_redis: Services) -> None:
    """Delete every record of ``tp``, as retention does to a quiet partition."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import RecordsToDelete

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_redis.kafka_bootstrap)
    await consumer.start()
    try:
        end = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    await admin.delete_records({tp: RecordsToDelete(end)}, 10_000)


async def test_partitions_added_while_the_fan_out_catches_up_on_erasures_do_not_hold_it(
    kafka_redis: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partitions added give the consumer a new assignment, every partition without a
    position. One named at a time, the others' positions were waited for without end:
    a process starting then never got ready, and after a reconnection no alert reached a
    screen again. Every partition is placed back at once."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

    alerts, erasures = await own_topics(kafka_redis, partitions=2)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_redis.kafka_bootstrap)
    await admin.start()
    getmany = AIOKafkaConsumer.getmany
    added = False

    async def fetch(consumer: AIOKafkaConsumer, *partitions: Any, **kw: Any) -> Any:
        nonlocal added
        if partitions and not added:  # the erasures' catch-up, before the process is ready
            added = True
            await admin.create_partitions({alerts: NewPartitions(total_count=3)})
            await eventually(lambda: _true(TopicPartition(alerts, 2) in consumer.assignment()),
                             "the new assignment")  # fmt: skip
        return await getmany(consumer, *partitions, **kw)

    monkeypatch.setattr(AIOKafkaConsumer, "getmany", fetch)
    hub = AlertHub(kafka_redis.kafka_bootstrap, alerts, erasures, nobody_erased, REFS,
                   partitions_every_s=1.0)  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=kafka_redis.kafka_bootstrap)
    await producer.start()
    try:
        await hub.start()
        await asyncio.wait_for(hub.ready.wait(), 30)
        assert added
        for partition in range(3):
            await producer.send_and_wait(alerts, intervention(f"after-{partition}"),
                                         partition=partition)  # fmt: skip
        await eventually(lambda: _true(len(hub.since(StreamPosition(), None)) == 3),
                         "an alert of each partition")  # fmt: skip
    finally:
        await hub.stop()
        await producer.stop()
        await admin.close()


async def test_erasures_made_again_during_the_catch_up_do_not_hold_the_fan_out(
    kafka_redis: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fan-out reads customer-erasures to the ends it asked for at its start: the
    topic deleted and made again meanwhile, the new log never reached them, and the
    process never got ready (after a reconnection: no alert reached a screen again)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    alerts, erasures = await own_topics(kafka_redis, partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_redis.kafka_bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_redis.kafka_bootstrap)
    await producer.start()
    await admin.start()
    for n in range(10_000):  # more than one fetch takes, so the catch-up fetches again
        erasure = CustomerErasure(customer_id=f"gone-{n}", subject="s" * 400,
                                  ts=datetime.now(UTC))  # fmt: skip
        await producer.send(erasures, encode_erasure(erasure), partition=n % 2)
    await producer.flush()
    getmany = AIOKafkaConsumer.getmany
    made_again = False

    async def fetch(consumer: AIOKafkaConsumer, *partitions: Any, **kw: Any) -> Any:
        nonlocal made_again
        found = await getmany(consumer, *partitions, **kw)
        if partitions and not made_again:  # the catch-up's first fetch
            made_again = True
            await admin.delete_topics([erasures])
            for _ in range(100):
                try:
                    await admin.create_topics([NewTopic(erasures, 2, 1)])
                    break
                except TopicAlreadyExistsError:
                    await asyncio.sleep(0.1)
        return found

    monkeypatch.setattr(AIOKafkaConsumer, "getmany", fetch)
    hub = AlertHub(kafka_redis.kafka_bootstrap, alerts, erasures, nobody_erased, REFS)
    try:
        await hub.start()
        await asyncio.wait_for(hub.ready.wait(), 30)
        assert made_again
        await producer.client.force_metadata_update()
        erased_now = CustomerErasure(customer_id="gone-now", subject="s", ts=datetime.now(UTC))
        await producer.send_and_wait(erasures, encode_erasure(erased_now), partition=0)
        await eventually(
            lambda: _true("gone-now" in hub.erased_lately), "an erasure of the new log"
        )
    finally:
        await hub.stop()
        await producer.stop()
        await admin.close()
