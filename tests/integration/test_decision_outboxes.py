"""feature_store.outbox on a real Redis: retiring an outbox is the lease holder's alone
(a process back from a stall keeps its lease, its new decisions and its registry
entry), and an API's outbox keys do not make an empty store look as if it held
customers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.offer_rules import RuleBasedOfferPolicy
from feature_store import ContactCeilings, DecisionRecord, FeatureStore, StoreConfig
from feature_store.contact_facts import offers_shown_fact
from feature_store.pipelining import Command
from schemas import ContactRules, NextBestOffer, Offer, OfferCatalogue
from streams.api import decision_outbox
from streams.api.decision_outbox import DecisionOutbox
from streams.api.outbox_sweeper import OutboxSweeper
from streams.api.recommender import Recommender
from streams.services import LocalRedis

pytestmark = pytest.mark.integration


def decision(decision_id: str, customer_id: str) -> bytes:
    return f'{{"decision_id":"{decision_id}","customer_id":"{customer_id}"}}'.encode()


def record(decision_id: str, raw: bytes) -> DecisionRecord:
    customer_id = json.loads(raw)["customer_id"]
    return DecisionRecord(
        customer_id=customer_id, decision_id=decision_id, ts_ms=int(time.time() * 1000), context=raw
    )


class Publisher:
    """Kafka that acknowledges at once."""

    def __init__(self) -> None:
        self.published: list[tuple[bytes, bytes]] = []

    def publish(
        self, topic: str, records: list[tuple[bytes, bytes]], linger: bool = True
    ) -> asyncio.Future[None]:
        self.published += records
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def all_publishable(pairs: Sequence[tuple[str, str]], shown: Sequence[bool]) -> list[bool]:
    return [True] * len(pairs)


class Redis:
    """A feature store and its Redis client (to look at its keys and write for it)."""

    def __init__(self, url: str) -> None:
        self.client = aioredis.Redis.from_url(url)
        self.store = FeatureStore(self.client, StoreConfig(secret=b"x", prefix="m"))
        self.boxes = self.store.outboxes

    async def write(self, commands: Sequence[Command]) -> None:
        """What rides the round trip recording decisions."""
        for command in commands:
            await self.client.execute_command(*command)

    async def keys(self, process: str) -> tuple[object, list[bytes], set[bytes]]:
        """The lease's holder, the outbox's decision ids and the registry."""
        boxes, client = self.boxes, self.client
        holder = await client.get(boxes.lease(process))
        held = sorted(await client.hkeys(boxes.box(process)))
        return holder, held, await client.smembers(boxes.registry)


@pytest.fixture
async def redis(private_redis: LocalRedis) -> AsyncIterator[Redis]:
    found = Redis(private_redis.url)
    try:
        yield found
    finally:
        await found.store.close()


async def test_a_process_back_before_its_sweeper_retires_keeps_its_lease_and_decision(
    redis: Redis,
) -> None:
    """Stalled past its lease, a process comes back (its lease renewed, a new decision
    held) just as its sweeper retires the outbox it emptied: all of it stays, and a
    sweep after the process is killed publishes that decision."""
    boxes = redis.boxes
    stalled = DecisionOutbox(boxes, "p")
    await boxes.renew("p", 200, 3600)
    await redis.write(stalled.hold([("d1", decision("d1", "c1"))]))
    await asyncio.sleep(0.3)  # stalled: its lease expired
    retire = boxes.retire

    async def back_first(process: str, holder: str) -> int | None:
        await boxes.renew("p", 5000, 3600)
        await redis.write(stalled.hold([("d2", decision("d2", "c2"))]))
        return await retire(process, holder)

    boxes.retire = back_first  # type: ignore[method-assign]
    publisher = Publisher()
    sweeper = OutboxSweeper(boxes, "s", all_publishable, publisher, "nbo", lambda n: None)
    assert await sweeper.sweep() == 1
    assert await redis.keys("p") == (b"p", [b"d2"], {b"p"})
    boxes.retire = retire  # type: ignore[method-assign]
    # killed now, before its next renewal: once its lease expires, d2 is published
    await redis.client.pexpire(boxes.lease("p"), 1)
    await asyncio.sleep(0.05)
    assert await sweeper.sweep() == 1
    assert [value for _, value in publisher.published] == [
        decision("d1", "c1"),
        decision("d2", "c2"),
    ]
    assert await redis.keys("p") == (None, [], set())


async def test_only_the_lease_holder_retires_and_an_outbox_holding_decisions_stays(
    redis: Redis,
) -> None:
    boxes = redis.boxes
    await boxes.renew("p", 5000, 3600)
    await redis.write(boxes.hold("p", [("d1", decision("d1", "c1"))], ttl_s=60))
    assert await boxes.retire("p", "s") is None  # the process's: nothing done
    assert await redis.keys("p") == (b"p", [b"d1"], {b"p"})
    assert await boxes.retire("p", "p") == 1  # its stop, Kafka away: the lease alone goes
    assert await redis.keys("p") == (None, [b"d1"], {b"p"})
    await boxes.release("p", ["d1"])
    assert await boxes.claim(["p"], "s", 5000) == ["p"]
    assert await boxes.retire("p", "s") == 0
    assert await redis.keys("p") == (None, [], set())


async def test_an_outbox_and_its_lease_share_a_slot_and_name_no_customer(
    redis: Redis,
) -> None:
    """The lease, the outbox and its marks of decisions shown go together in one script
    (one slot); with them there, a store holding no customer says so (to a rebuild and
    to the start check)."""
    boxes = redis.boxes
    await boxes.renew("p", 5000, 3600)
    await redis.write(boxes.hold("p", [("d1", decision("d1", "c1"))], ttl_s=60))
    await boxes.keep_shown("p", ["d1"], [], ttl_s=60)
    assert key_slot(boxes.box("p").encode()) == key_slot(boxes.lease("p").encode())
    assert key_slot(boxes.shown("p").encode()) == key_slot(boxes.lease("p").encode())
    assert key_slot(boxes.box("p").encode()) != key_slot(boxes.registry.encode())
    assert await redis.client.exists(boxes.box("p"), boxes.lease("p"), boxes.shown("p")) == 3
    assert not await redis.store.has_any_customer()


async def recorded_with(
    redis: Redis,
    made: Sequence[tuple[str, bytes]],
    held: Sequence[Command],
    heard: Callable[[list[Any]], None],
) -> list[bool]:
    """Record ``made`` (decision id, JSON), keeping them in an outbox (``held``)."""
    records = [record(d, raw) for d, raw in made]
    return await redis.store.decisions.record(records, outbox=held, outbox_heard=heard)


async def test_a_failed_outbox_write_fails_no_decision_and_is_counted_once_said(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The outbox's write fails (here its key holds another type; on a Redis Cluster,
    the node of its slot away): the decisions are recorded all the same, the failure
    counted by decision as they are published and logged once until a write succeeds
    again."""
    counted: list[int] = []
    outbox = DecisionOutbox(redis.boxes, "p", unwritten=counted.append)
    await redis.client.set(redis.boxes.box("p"), "not an outbox")
    for n in (0, 2):
        made = [(f"d{i}", decision(f"d{i}", f"c{i}")) for i in range(n, n + 2)]
        kept = await outbox.recording(made, partial(recorded_with, redis, made))
        assert kept == [True, True]
        outbox.publishing([(b"", raw) for _, raw in made], None)
    assert counted == [2, 2]
    assert caplog.text.count("could not keep 2 decisions in the outbox (recorded;") == 1
    assert "ResponseError" in caplog.text and "c0" not in caplog.text
    await redis.client.delete(redis.boxes.box("p"))
    made = [("d9", decision("d9", "c9"))]
    await outbox.recording(made, partial(recorded_with, redis, made))
    outbox.publishing([(b"", raw) for _, raw in made], None)
    assert counted == [2, 2] and "decisions are kept in the outbox again" in caplog.text
    assert await redis.client.hkeys(redis.boxes.box("p")) == [b"d9"]


async def test_decisions_settled_leave_the_outbox_with_the_next_write(redis: Redis) -> None:
    """Decisions Kafka acknowledged ride the next round trip that records decisions out
    of the outbox (and their marks of shown with them), not waiting for a removal of
    their own: a process killed meanwhile would leave them to be published again."""
    outbox, boxes = DecisionOutbox(redis.boxes, "p"), redis.boxes

    async def recorded(*made: str) -> None:
        entries = [(d, decision(d, f"c-{d}")) for d in made]
        held = outbox.hold(entries)
        await redis.store.decisions.record(
            [record(d, raw) for d, raw in entries], outbox=held,
            outbox_heard=partial(outbox.written, held),
        )  # fmt: skip

    await recorded("d1", "d2")
    outbox.shown(["d2"])
    await asyncio.sleep(0.01)  # the mark's round trip
    assert await boxes.are_shown("p", ["d1", "d2"]) == [False, True]
    outbox.release(["d1", "d2"])  # Kafka acknowledged them
    await recorded("d3")  # well within RELEASE_EVERY_S
    assert await redis.client.hkeys(boxes.box("p")) == [b"d3"]
    assert await boxes.are_shown("p", ["d2"]) == [False]
    removals: list[Sequence[str]] = []
    release = boxes.release

    async def counted(process: str, ids: Sequence[str], shown: Sequence[str] = ()) -> None:
        removals.append(ids)
        await release(process, ids, shown)

    boxes.release = counted  # type: ignore[method-assign]
    await asyncio.sleep(decision_outbox.RELEASE_EVERY_S * 3)
    assert removals == []  # no removal of their own left to make
    outbox.release(["d3"])
    await asyncio.sleep(decision_outbox.RELEASE_EVERY_S * 3)  # no write comes: on its own
    assert removals == [["d3"]] and await redis.client.hkeys(boxes.box("p")) == []


async def test_the_sweeper_publishes_only_decisions_recorded_for_customers_not_erased(
    redis: Redis,
) -> None:
    """A batch keeps its decisions in the outbox in the round trip that records them,
    before Redis says which contacts broke a cap: a process killed before it removed the
    refused ones leaves them in its outbox. The sweeper publishes the decision recorded
    (d1), not the one refused over its cap (d2: published, it would take the customer
    past the cap), nor one never recorded (d3), nor one whose customer was erased since
    (d4); and empties the outbox."""
    store, boxes = redis.store, redis.boxes
    now = datetime.now(UTC)
    raws = {d: decision(d, c) for d, c in [("d1", "c1"), ("d2", "c2"), ("d3", "c3"), ("d4", "c4")]}
    shut = ContactCeilings(((("shown:email",), 1, 0),), (), "UTC")  # a cap of 0: always over
    contacts = [offers_shown_fact("d2", "c2", "email", ["tips"], now, ceilings=shut)]
    records = [record(d, raws[d]) for d in ("d1", "d2", "d4")]
    refused: set[str] = set()
    process = DecisionOutbox(boxes, "p")
    held = process.hold(list(raws.items()))
    assert await store.decisions.record(records, contacts, refused=refused, outbox=held) == [
        True,
        False,
        True,
    ]
    assert refused == {"d2"}
    await store.erase("c4")
    publisher = Publisher()
    sweeper = OutboxSweeper(boxes, "s", store.decisions.publishable, publisher, "nbo", print)
    assert await boxes.claim(["p"], "s", 5000) == ["p"]
    assert await sweeper._sweep("p") == 1
    assert publisher.published == [(b"c1", raws["d1"])]
    assert await redis.keys("p") == (None, [], set())


async def test_a_customer_whose_index_is_of_another_type_holds_up_no_other_decision(
    redis: Redis,
) -> None:
    """A customer's index of decisions of another type (written by something else): their
    decision is told by their tombstone alone, as before the index was asked, and the
    others' by the index; the sweep publishes both, not failing on that customer."""
    store, boxes = redis.store, redis.boxes
    raws = {"d1": decision("d1", "c1"), "d2": decision("d2", "c2")}
    process = DecisionOutbox(boxes, "p")
    held = process.hold(list(raws.items()))
    assert await store.decisions.record([record("d2", raws["d2"])], outbox=held) == [True]
    index = store._keys.for_customer("c1").decision_index
    await redis.client.set(index, "not an index")
    assert await store.decisions.publishable([("c1", "d1"), ("c2", "d2"), ("c2", "d9")]) == [
        True,
        True,
        False,
    ]
    publisher = Publisher()
    sweeper = OutboxSweeper(boxes, "s", store.decisions.publishable, publisher, "nbo", print)
    assert await boxes.claim(["p"], "s", 5000) == ["p"]
    assert await sweeper._sweep("p") == 2
    assert sorted(publisher.published) == [(b"c1", raws["d1"]), (b"c2", raws["d2"])]


WEB_ONCE_A_DAY = OfferCatalogue(
    version="once", offers=[Offer(offer_id="tips", title="Tips", channels=["web"])],
    contact_policy=ContactRules(daily_caps={"web": 1}),
)  # fmt: skip


class KilledBetweenTheWrites:
    """A Recommender whose latency budget runs out while its decision is recorded (the
    caller answered with it), whose contact Redis refuses over the web cap (another
    process showed the customer an offer since the read), and whose process is killed
    before the second write, which records it without the caps (or, ``at_reply``,
    before it even read the reply of the first)."""

    def __init__(self, redis: Redis, process: str, at_reply: bool = False) -> None:
        self.redis = redis
        self.at_reply = at_reply
        self.outbox = DecisionOutbox(redis.boxes, process)
        self.killed = asyncio.Event()
        policy = RuleBasedOfferPolicy(
            CatalogueHolder(WEB_ONCE_A_DAY), ContactPolicy(ControlGroup("salt", 0.0))
        )
        self.recommender = Recommender(
            redis.store,
            policy,
            Publisher(),
            "nbo",
            budget_s=0.5,  # the read and the decision well within it, on a busy machine too
            outbox=self.outbox,  # type: ignore[arg-type]
        )
        self._record = redis.store.decisions.record
        self._writes = 0
        redis.store.decisions.record = self.record  # type: ignore[method-assign]

    async def record(self, records: Any, contacts: Any = (), **kwargs: Any) -> list[bool]:
        self._writes += 1
        if self._writes > 1:  # the second write: the process is killed first
            self.killed.set()
            await asyncio.Event().wait()
        await asyncio.sleep(1.0)  # the latency budget runs out: the caller is answered
        customer = records[0].customer_id
        elsewhere = offers_shown_fact("elsewhere", customer, "web", ["tips"], datetime.now(UTC))
        await self._record([], [elsewhere])  # another process takes the cap to its limit
        kept = await self._record(records, contacts, **kwargs)
        if self.at_reply:
            self._writes += 1
            return await self.record(records, contacts, **kwargs)
        return kept

    async def shown(self, customer: str) -> NextBestOffer | None:
        """The decision the caller is answered with; the process killed after it."""
        answer = await self.recommender.recommend(customer, "web", 1)
        await asyncio.wait_for(self.killed.wait(), 5)
        return answer

    async def sweep(self) -> list[tuple[bytes, bytes]]:
        """What another API process publishes of the dead one's outbox."""
        publisher = Publisher()
        store, boxes = self.redis.store, self.redis.boxes
        sweeper = OutboxSweeper(boxes, "s", store.decisions.publishable, publisher, "nbo", print)
        assert await boxes.claim([self.outbox.process], "s", 5000) == [self.outbox.process]
        await sweeper._sweep(self.outbox.process)
        for task in list(self.recommender._running):  # the dead process's hung write
            task.cancel()
        return publisher.published


@pytest.mark.parametrize("at_reply", [False, True])
async def test_a_decision_shown_then_refused_over_a_cap_is_published_by_the_sweeper(
    redis: Redis, at_reply: bool
) -> None:
    """The caller was answered with the decision when the latency budget ran out; Redis
    then refused its contact over the web cap, and the process was killed before it
    recorded the decision again without the caps (or before it read Redis's reply):
    never recorded, it was shown all the same, so the sweeper publishes it (it used to
    remove it unpublished). Its mark goes as the caller is answered."""
    dead = KilledBetweenTheWrites(redis, "p", at_reply)
    shown = await dead.shown("c1")
    assert shown is not None and shown.offers
    assert await redis.store.decisions.publishable([("c1", shown.decision_id)]) == [False]
    assert await redis.client.hkeys(redis.boxes.box("p")) == [shown.decision_id.encode()]
    published = await dead.sweep()
    assert [(key, json.loads(raw)["decision_id"]) for key, raw in published] == [
        (b"c1", shown.decision_id)
    ]
    assert await redis.keys("p") == (None, [], set())
    assert not await redis.client.exists(redis.boxes.shown("p"))  # its mark gone with it


async def test_a_shown_decision_of_a_customer_erased_since_is_not_published(
    redis: Redis,
) -> None:
    """As above, but the customer was erased before the sweep: their tombstone still
    keeps their decision off the topic, shown or not."""
    dead = KilledBetweenTheWrites(redis, "p")
    shown = await dead.shown("c2")
    assert shown is not None and shown.offers
    await redis.store.erase("c2")
    assert await dead.sweep() == []
    assert await redis.keys("p") == (None, [], set())


async def test_a_decision_answered_stripped_is_kept_as_answered(redis: Redis) -> None:
    """A decision whose contact a cap refused, answered stripped of its offers (after
    its rounds ran out), is marked shown: the outbox kept the JSON its batch's write
    held, with the refused offers, and a sweep after a kill published those offers."""
    box = DecisionOutbox(redis.boxes, "p")
    refused = b'{"decision_id":"d1","customer_id":"c1","offers":[{"offer_id":"tips"}]}'
    stripped = b'{"decision_id":"d1","customer_id":"c1","offers":[]}'
    await redis.write(box.hold([("d1", refused)]))  # the batch's write (its contact refused)
    box.shown([], [("d1", stripped)])  # answered stripped
    await asyncio.gather(*box._marking)
    assert await redis.client.hget(redis.boxes.box("p"), "d1") == stripped
    assert await redis.boxes.are_shown("p", ["d1"]) == [True]
    publisher = Publisher()
    sweeper = OutboxSweeper(redis.boxes, "s", all_publishable, publisher, "nbo", print)
    assert await redis.boxes.claim(["p"], "s", 5000) == ["p"]
    assert await sweeper._sweep("p") == 1
    assert publisher.published == [(b"c1", stripped)]
