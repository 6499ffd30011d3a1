"""The learner: one logical next-best-offer model, learned from outcomes, shared by all.

The Faust leader runs it. It reads ``offer-outcomes`` with its own consumer whose
positions are saved inside each snapshot, so a restarted (or new) learner resumes
from the last snapshot plus the outcomes after it: nothing is learned twice or lost.
Each (decision, outcome) is claimed in Redis first, so a redelivered outcome teaches
once. Snapshots are JSON (they cannot run code when loaded) and versioned; every
worker and API process reloads the newest one within a couple of seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from river import metrics as river_metrics

from agents.bandit import LinUCBOffers
from agents.context import DIMENSION
from agents.learned_policy import ModelHolder
from agents.learning import Example, example_for
from feature_store import FeatureStore
from schemas import InvalidEvent, decode_outcome
from streams.metrics import Metrics
from streams.topics import topic_partitions

log = logging.getLogger(__name__)
MODEL = "nbo"


class Snapshot(msgspec.Struct):
    model: dict[str, Any]
    offsets: dict[str, int]  # partition -> next offset to read
    updated_at: datetime


def restore(payload: str) -> tuple[LinUCBOffers, dict[int, int]]:
    snap = msgspec.json.decode(payload, type=Snapshot)
    return LinUCBOffers.from_dict(snap.model), {int(p): o for p, o in snap.offsets.items()}


async def reload_if_newer(store: FeatureStore, holder: ModelHolder) -> bool:
    """Swap in the newest published snapshot; True when it changed."""
    if await store.model_version(MODEL) <= holder.version:
        return False
    found = await store.load_model(MODEL)
    if found is None:
        return False
    version, payload = found
    model, _ = restore(payload)
    holder.model, holder.version = model, version
    return True


class Learner:
    def __init__(
        self,
        store: FeatureStore,
        holder: ModelHolder,
        metrics: Metrics,
        bootstrap: str,
        topic: str,
        publish_every_s: float = 2.0,
    ) -> None:
        self._store = store
        self._holder = holder
        self._metrics = metrics
        self._bootstrap = bootstrap
        self._topic = topic
        self._publish_every_s = publish_every_s
        self._logloss = river_metrics.LogLoss()  # type: ignore[no-untyped-call]

    async def run(self, still_leader: Callable[[], bool]) -> None:
        """Learn while ``still_leader()``; returns when leadership is lost."""
        partitions = await topic_partitions(self._bootstrap, self._topic)
        if not partitions:
            log.warning("topic %s has no partitions yet; the learner waits", self._topic)
            return
        found = await self._store.load_model(MODEL)
        version, model = 0, LinUCBOffers(DIMENSION)
        offsets: dict[int, int] = {}
        if found is not None:
            version = found[0]
            model, offsets = restore(found[1])
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self._topic, p) for p in partitions]
            consumer.assign(tps)
            for tp in tps:
                if tp.partition in offsets:
                    consumer.seek(tp, offsets[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            self._holder.model, self._holder.version = model, version
            log.info("learner started at model version %d", version)
            last_publish, pending = time.monotonic(), 0
            while still_leader():
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                for tp, records in batches.items():
                    pending += await self._learn(model, tp.partition, records)
                    offsets[tp.partition] = records[-1].offset + 1
                if pending and time.monotonic() - last_publish >= self._publish_every_s:
                    snap = Snapshot(model.to_dict(), {str(p): o for p, o in offsets.items()},
                                    datetime.now(UTC))  # fmt: skip
                    new = await self._store.publish_model(
                        MODEL, version, msgspec.json.encode(snap).decode()
                    )
                    if new is None:
                        log.warning("another learner published first; restarting from it")
                        return
                    version, pending, last_publish = new, 0, time.monotonic()
                    self._holder.model, self._holder.version = model, version
        finally:
            await consumer.stop()

    async def _learn(self, model: LinUCBOffers, partition: int, records: list[Any]) -> int:
        outcomes = []
        for record in records:
            try:
                outcome = decode_outcome(record.value or b"")
            except InvalidEvent:
                self._metrics.learning.labels("invalid").inc()
                continue
            self._metrics.outcomes.labels(outcome.outcome).inc()
            outcomes.append((outcome, f"{partition}:{record.offset}"))
        claims = await self._store.claim_outcomes(
            [(o.customer_id, f"{o.decision_id}:{o.outcome}", src) for o, src in outcomes]
        )
        fresh = [o for (o, _), ok in zip(outcomes, claims, strict=True) if ok]
        self._metrics.learning.labels("duplicate").inc(len(outcomes) - len(fresh))
        contexts = await self._store.decision_contexts(
            [(o.customer_id, o.decision_id) for o in fresh]
        )
        learned = 0
        for outcome, context in zip(fresh, contexts, strict=True):
            example = example_for(outcome, context)
            if not isinstance(example, Example):
                self._metrics.learning.labels(example).inc()
                continue
            predicted = model.predict_one(example.x, example.arm)
            self._logloss.update(example.reward >= 1.0, min(max(predicted, 1e-6), 1 - 1e-6))
            model.learn_one(example.x, example.arm, example.reward)
            learned += 1
        self._metrics.learning.labels("learned").inc(learned)
        loss = float(self._logloss.get())  # type: ignore[no-untyped-call]
        self._metrics.model_logloss.labels(MODEL).set(loss)
        return learned


async def learn_while_leader(learner: Learner, is_leader: Callable[[], bool]) -> None:
    """The learner's life in a worker: run whenever this worker is the leader."""
    while True:
        if is_leader():
            try:
                await learner.run(is_leader)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("learner failed; restarting from the last snapshot")
        await asyncio.sleep(1.0)
