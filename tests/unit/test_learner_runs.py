"""The learners' run loop, driven against an in-memory topic and store: a risk example
sent twice teaches once whichever process learns it, partitions added to a topic while
the learner runs are read, and outcomes are counted once however often they are read.

The stand-ins mirror what the learner relies on: aiokafka's manual assignment (a new
assignment forgets every position: a partition not sought again is read from its
beginning), ``publish.lua`` (compare and set of model and positions), ``claim.lua`` and
``claim_examples.lua`` (a claim remembers its source record). The scripts themselves are
checked on Redis in ``tests/integration/test_learning_storage.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

import streams.learner as learner_module
from agents.bandit import LinUCBOffers
from agents.context import DIMENSION
from agents.learned_policy import ModelHolder
from agents.risk import ChurnRisk
from agents.risk_watch import RiskHolder
from schemas import NextBestOffer, OfferScore, Outcome, encode_decision
from schemas.outcomes import encode_outcome
from schemas.risk import RiskExample, encode_risk_example
from streams.learner import SnapshotLearner
from streams.metrics import Metrics
from streams.model_snapshots import MODEL, RISK, Snapshot
from streams.offer_learner import OfferLearner
from streams.risk_learner import RiskLearner
from tests.unit.learner_acceptances import Acceptances

TS = datetime(2026, 12, 1, 12, tzinfo=UTC)


class Topic:
    """A topic's partitions, as lists of records."""

    def __init__(self, partitions: int = 1) -> None:
        self.logs: dict[int, list[SimpleNamespace]] = {p: [] for p in range(partitions)}

    def add_partition(self) -> None:
        self.logs[len(self.logs)] = []

    def append(self, partition: int, value: bytes) -> None:
        log = self.logs[partition]
        log.append(SimpleNamespace(offset=len(log), value=value, key=b"c1", headers=[],
                                   topic="t", partition=partition, timestamp=0))  # fmt: skip


class Consumer:
    """What the learner uses of ``AIOKafkaConsumer``, over a :class:`Topic`."""

    reads = 0  # calls of getmany, by every consumer

    def __init__(self, topic: Topic) -> None:
        self.topic = topic
        self.tps: list[TopicPartition] = []
        self.pos: dict[int, int] = {}

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def assign(self, tps: list[TopicPartition]) -> None:
        self.tps, self.pos = list(tps), {}  # as aiokafka: positions are forgotten

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.pos[tp.partition] = offset

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.pos[tp.partition] = 0

    async def getmany(self, timeout_ms: int = 0, max_records: int = 500) -> dict[Any, Any]:
        Consumer.reads += 1
        out = {}
        for tp in self.tps:
            log = self.topic.logs[tp.partition]
            at = self.pos.get(tp.partition, 0)  # no position: auto_offset_reset=earliest
            if at > len(log):  # past the end (the log lost its tail): so too
                at = 0
            records = log[at : at + max_records]
            if records:
                out[tp] = records
                self.pos[tp.partition] = at + len(records)
        await asyncio.sleep(0.01)
        return out

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.topic.logs[tp.partition])

    async def position(self, tp: TopicPartition) -> int:
        return self.pos.get(tp.partition, 0)


class Models:
    """``store.models``: publish.lua's compare and set, and claim_examples.lua."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.example_claims: dict[tuple[str, str], str] = {}

    async def load(self, name: str) -> tuple[int, str] | None:
        h = self.stored.get(name, {})
        return None if "version" not in h else (h["version"], h["payload"])

    async def version(self, name: str) -> int:
        return int(self.stored.get(name, {}).get("version", 0))

    async def positions(self, name: str, version: int) -> str | None:
        h = self.stored.get(name, {})
        if h.get("version", 0) != version or h.get("positions_at") != version:
            return None
        return str(h["positions"])

    async def publish(self, name: str, expected: int, payload: str) -> int | None:
        h = self.stored.setdefault(name, {})
        if h.get("version", 0) != expected:
            return None
        h.update(version=expected + 1, payload=payload)
        h.pop("positions", None)
        h.pop("positions_at", None)
        return expected + 1

    async def save_positions(self, name: str, version: int, positions: str) -> bool:
        h = self.stored.setdefault(name, {})
        if h.get("version", 0) != version:
            return False
        h.update(positions=positions, positions_at=version)
        return True

    async def claim_examples(self, name: str, claims: list[tuple[str, str]]) -> list[str]:
        found = []
        for example_id, source in claims:
            current = self.example_claims.get((name, example_id))
            if current is None:
                self.example_claims[(name, example_id)] = source
            found.append("new" if current is None else "again" if current == source else "copy")
        return found

    async def unclaim_examples(self, name: str, example_ids: list[str]) -> None:
        for example_id in example_ids:
            self.example_claims.pop((name, example_id), None)


class Decisions:
    """``store.decisions``: claim.lua and the stored decision contexts."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], str] = {}
        self.claims: dict[tuple[str, str], str] = {}

    async def claim_outcomes(
        self,
        claims: list[tuple[str, str, str, str]],
        faults: Any = None,
        ran: Any = None,
        **_: Any,
    ) -> list[str]:
        found = []
        for customer_id, decision_id, what, source in claims:
            current = self.claims.get((customer_id, what))  # as claim.lua: a claim first
            if current is None and (customer_id, decision_id) not in self.stored:
                found.append("no_context")
                continue
            if current is None:
                self.claims[(customer_id, what)] = source
            found.append("learn" if current is None else "relearn" if current == source
                         else "skip")  # fmt: skip
        return found

    async def contexts(self, pairs: list[tuple[str, str]], faults: Any = None) -> list[str | None]:
        return [self.stored.get(pair) for pair in pairs]


class Tombstones:
    """``store.erased_subjects``: the customers erased, by their keyed hash."""

    def __init__(self) -> None:
        self.subjects: set[str] = set()
        self.asked: list[list[str]] = []  # each round trip's subjects

    async def __call__(self, subjects: list[str]) -> list[bool]:
        self.asked.append(list(subjects))
        return [s in self.subjects for s in subjects]


def store() -> Any:
    return SimpleNamespace(
        models=Models(),
        decisions=Decisions(),
        erased_subjects=Tombstones(),
        acceptances=Acceptances(),
    )


@pytest.fixture
def topic(monkeypatch: pytest.MonkeyPatch) -> Topic:
    """The topic every learner of the test reads."""
    topic = Topic()

    async def partitions(bootstrap: str, name: str) -> list[int]:
        return sorted(topic.logs)

    monkeypatch.setattr(learner_module, "topic_partitions", partitions)
    monkeypatch.setattr(learner_module, "AIOKafkaConsumer", lambda **_: Consumer(topic))
    monkeypatch.setattr(learner_module, "client_options", dict)
    return topic


async def read_on(times: int, at_most_s: float = 5.0) -> None:
    """Wait while the learners read on ``times`` more times."""
    until = Consumer.reads + times
    for _ in range(int(at_most_s / 0.01)):
        if Consumer.reads >= until:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the learner stopped reading")


async def run_until(
    learner: SnapshotLearner, done: Callable[[], bool], at_most_s: float = 5.0
) -> None:
    """Let ``learner`` lead until ``done()`` (then while it reads the topic's end ten times
    more: anything learned twice would show), or fail after ``at_most_s``."""
    lead = True
    task = asyncio.create_task(learner.run(lambda: lead))
    try:
        for _ in range(int(at_most_s / 0.02)):
            if done():
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the learner did not get there in time")
        await read_on(10)
    finally:
        lead = False
        await task


def example(example_id: str, y: bool = True) -> bytes:
    sent = RiskExample(example_id=example_id, x={"experience": 0.3, "complaints_30d": 1.0},
                       y=y, snapshot_ts=TS, label_ts=TS)  # fmt: skip
    return encode_risk_example(sent)


def published_examples(models: Models) -> int:
    """How many examples the published risk snapshot has learned."""
    found = models.stored[RISK]["payload"]
    return int(msgspec.json.decode(found, type=Snapshot).model["examples"])


def risk_learner(shared: Any, publish_every_s: float = 0.05) -> RiskLearner:
    return RiskLearner(shared, RiskHolder(), Metrics(), "", "risk-examples",
                       publish_every_s=publish_every_s)  # fmt: skip


# --- a risk example sent twice --------------------------------------------------------


async def test_a_risk_example_sent_again_after_the_learner_moved_teaches_once(
    topic: Topic,
) -> None:
    shared = store()
    topic.append(0, example("risk:abc:1"))
    first = risk_learner(shared)  # the leader's
    await run_until(first, lambda: "risk" in shared.models.stored)
    assert published_examples(shared.models) == 1
    # the same example again (a batch retried, a sweep sent again), read by the learner
    # of another worker, which now leads
    topic.append(0, example("risk:abc:1"))
    topic.append(0, example("risk:def:1"))
    second = risk_learner(shared)
    await run_until(second, lambda: published_examples(shared.models) >= 2)
    assert second.examples == 2 and published_examples(shared.models) == 2


async def test_a_new_leader_learns_again_exactly_what_the_snapshot_lacks(topic: Topic) -> None:
    shared = store()
    topic.append(0, example("risk:a:1"))
    first = risk_learner(shared)
    await run_until(first, lambda: "risk" in shared.models.stored)
    # the leader reads two more and fails before publishing them
    topic.append(0, example("risk:b:1"))
    topic.append(0, example("risk:a:1"))  # a copy of one it published
    lost = risk_learner(shared, publish_every_s=60)
    await run_until(lost, lambda: lost.examples == 2)
    assert published_examples(shared.models) == 1
    # another worker leads: b, read again, is learned again; a's copy is not
    topic.append(0, example("risk:b:1"))  # and a copy of b, sent after
    second = risk_learner(shared)
    await run_until(second, lambda: published_examples(shared.models) >= 2)
    assert second.examples == 2 and published_examples(shared.models) == 2


# --- partitions added while the learner runs ------------------------------------------


def decision(decision_id: str, context: list[float] | None = None) -> str:
    promo = OfferScore(offer_id="promo", score=1.0, propensity=1.0)
    made = NextBestOffer(decision_id=decision_id, customer_id="c1", ts=TS, channel="web",
                         trigger_event_id=None, context=context or [0.5] * DIMENSION,
                         offers=[promo])  # fmt: skip
    return encode_decision(made).decode()


def outcome(decision_id: str) -> bytes:
    return encode_outcome(Outcome(decision_id=decision_id, customer_id="c1", offer_id="promo",
                                  outcome="accepted", ts=TS))  # fmt: skip


async def no_letters(**_: Any) -> Awaitable[None]:
    raise AssertionError("nothing here is dead-lettered")


def offer_learner(shared: Any, metrics: Metrics, publish_every_s: float = 0.05) -> OfferLearner:
    return OfferLearner(shared, ModelHolder(), metrics, "", "offer-outcomes", no_letters,
                   publish_every_s=publish_every_s, partitions_every_s=0.1)  # fmt: skip


def lag(metrics: Metrics, partition: int) -> float | None:
    labels = {"topic": "offer-outcomes", "partition": str(partition)}
    return metrics.registry.get_sample_value("moments_consumer_lag", labels)


async def test_a_partition_added_while_the_learner_runs_is_read_from_its_beginning(
    topic: Topic,
) -> None:
    shared, metrics = store(), Metrics()
    for d in ("d1", "d2", "d3"):
        shared.decisions.stored[("c1", d)] = decision(d)
    topic.append(0, outcome("d1"))
    learner = offer_learner(shared, metrics)
    lead = True
    task = asyncio.create_task(learner.run(lambda: lead))
    try:
        for _ in range(100):
            await asyncio.sleep(0.02)
            if learner._model.updates == 1:
                break
        topic.add_partition()  # an operator grows the topic
        topic.append(1, outcome("d2"))
        topic.append(1, outcome("d3"))
        for _ in range(100):  # the learner looks again every 0.1 s here
            await asyncio.sleep(0.02)
            if learner._model.updates == 3:
                break
        await read_on(10)
        # every outcome, once: partition 0 went on from where it was
        assert learner._model.updates == 3
        assert lag(metrics, 0) == 0 and lag(metrics, 1) == 0  # its lag is reported too
        assert metrics.registry.get_sample_value("moments_outcomes_total",
                                                 {"outcome": "accepted"}) == 3  # fmt: skip
    finally:
        lead = False
        await task
    assert lag(metrics, 1) is None  # dropped with the others when it stops leading
    stored = msgspec.json.decode(shared.models.stored["nbo"]["payload"], type=Snapshot)
    assert stored.offsets == {"0": 1, "1": 2}


async def test_a_learner_that_cannot_list_partitions_reads_on(
    topic: Topic, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared, metrics = store(), Metrics()
    shared.decisions.stored[("c1", "d1")] = decision("d1")
    learner = offer_learner(shared, metrics)
    calls: list[str] = []

    async def flaky(bootstrap: str, name: str) -> list[int]:
        calls.append(name)
        if len(calls) > 1:  # Kafka fails when the learner looks again
            raise KafkaConnectionError("no broker")
        return sorted(topic.logs)

    monkeypatch.setattr(learner_module, "topic_partitions", flaky)
    topic.append(0, outcome("d1"))
    await run_until(learner, lambda: learner._model.updates == 1 and len(calls) > 2)
    # no restart: what it read since its start is not read again
    assert learner._model.updates == 1


# --- outcomes counted once ------------------------------------------------------------


def counted(metrics: Metrics) -> tuple[float | None, float | None]:
    sample = metrics.registry.get_sample_value
    offer = {"offer": "promo", "channel": "web", "outcome": "accepted"}
    return (sample("moments_outcomes_total", {"outcome": "accepted"}),
            sample("moments_offer_outcomes_total", offer))  # fmt: skip


async def test_outcomes_read_again_after_a_restart_are_counted_once(topic: Topic) -> None:
    shared, metrics = store(), Metrics()
    shared.decisions.stored[("c1", "d1")] = decision("d1")
    topic.append(0, outcome("d1"))
    topic.append(0, outcome("d1"))  # a redelivered copy
    learner = offer_learner(shared, metrics, publish_every_s=60)
    await run_until(learner, lambda: learner._model.updates == 1)
    assert counted(metrics) == (1.0, 1.0)
    # leadership lost before the snapshot was published, then won again: the outcome is
    # read and learned again (the snapshot lacks it), but it is the same outcome
    again = offer_learner(shared, metrics, publish_every_s=60)
    await run_until(again, lambda: again._model.updates == 1)
    assert counted(metrics) == (1.0, 1.0)


async def test_the_log_loss_of_a_term_counts_the_outcomes_it_learned_once(topic: Topic) -> None:
    """One learner leads, loses leadership before publishing, and leads again: the ten
    outcomes it learns again are scored once, not added to its first term's (the figure
    counted them twice before)."""
    shared, metrics = store(), Metrics()
    for n in range(10):
        shared.decisions.stored[("c1", f"d{n}")] = decision(f"d{n}")
        topic.append(0, outcome(f"d{n}"))
    learner = offer_learner(shared, metrics, publish_every_s=60)
    await run_until(learner, lambda: learner._model.updates == 10)
    first = learner._logloss.get()
    await run_until(learner, lambda: learner._model.updates == 10)  # the same object again
    assert learner._logloss.n == 10 and learner._logloss.get() == first


# --- contexts and examples the models cannot learn from --------------------------------


async def test_contexts_no_layout_explains_are_counted_and_the_learner_learns_on(
    topic: Topic,
) -> None:
    """A figure far out of range would poison the model; a context too short for any
    layout would not fit it. A newer version's context (features added at its end) is
    learned without the features this one does not know."""
    shared, metrics = store(), Metrics()
    contexts = {"huge": [1e200] * DIMENSION, "short": [0.5] * 3,
                "newer": [0.5] * (DIMENSION + 1), "plain": [0.5] * DIMENSION}  # fmt: skip
    for name, context in contexts.items():
        shared.decisions.stored[("c1", name)] = decision(name, context)
        topic.append(0, outcome(name))
    learner = offer_learner(shared, metrics)
    await run_until(learner, lambda: MODEL in shared.models.stored)
    assert learner._model.updates == 2  # the newer one, and the plain one
    bad = metrics.registry.get_sample_value(
        "moments_learning_outcomes_total", {"result": "bad_context"}
    )
    assert bad == 2
    published = msgspec.json.decode(shared.models.stored[MODEL]["payload"], type=Snapshot)
    restored = LinUCBOffers.from_dict(published.model)
    assert restored.predict_one([0.5] * DIMENSION, "promo") == pytest.approx(
        learner._model.predict_one([0.5] * DIMENSION, "promo")
    )


async def test_a_risk_example_with_a_figure_out_of_range_is_skipped(topic: Topic) -> None:
    shared = store()
    poison = RiskExample(example_id="risk:p:1", x={"experience": 0.3, "complaints_30d": 1e200},
                         y=True, snapshot_ts=TS, label_ts=TS)  # fmt: skip
    topic.append(0, encode_risk_example(poison))
    for n in range(3):
        topic.append(0, example(f"risk:ok:{n}", y=n % 2 == 0))
    learner = risk_learner(shared)
    await run_until(learner, lambda: "risk" in shared.models.stored and (
        published_examples(shared.models) == 3))  # fmt: skip
    restored = ChurnRisk.from_dict(
        msgspec.json.decode(shared.models.stored[RISK]["payload"], type=Snapshot).model
    )
    assert restored.examples == 3
    assert 0.0 <= restored.predict_one({"experience": 0.3, "complaints_30d": 1.0}) <= 1.0


async def test_a_record_that_is_not_a_risk_example_is_skipped_and_said(
    topic: Topic, caplog: pytest.LogCaptureFixture
) -> None:
    shared = store()
    topic.append(0, b'{"not": "an example"}')
    topic.append(0, example("risk:ok:1"))
    learner = risk_learner(shared)
    with caplog.at_level("WARNING", logger="streams.risk_learner"):
        await run_until(learner, lambda: "risk" in shared.models.stored and (
            published_examples(shared.models) == 1))  # fmt: skip
    assert any("are not risk examples" in r.getMessage() for r in caplog.records)
