"""The ``risk`` learner: the churn/lapse classifier, from ``risk-examples`` (feature
snapshots that got their delayed label; :class:`streams.learner.SnapshotLearner` reads
the topic and publishes the snapshots). Each example id is claimed, so an example sent
twice (a retried batch, a sweep sent again, a touchpoint and the sweep labelling one
snapshot) teaches once. An example of a customer erased (its id names them by their keyed
hash, as their tombstone's key does) teaches nothing and is not claimed, however late it
comes or often it is read again (the tombstones are read before the claim and again
after it: one erased in between is not learned, and its claim is dropped); what became
of each example is counted in ``moments_risk_examples_total{result}`` (``erased`` for
those). The model it learns on is river's (:class:`agents.risk.ChurnRisk`), made from the
published snapshot once the first examples are read: until then the learner holds the
snapshot as it was published, so that a worker that never reads an example (most, in a
deployment that labels few) never imports river and scipy, about 1.5 s of CPU.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import msgspec

from agents.risk_features import learnable_example, unknown_features
from agents.risk_scorer import RiskScorer
from agents.risk_watch import RiskHolder
from feature_store import FeatureStore
from schemas.risk import decode_risk_example
from streams.erased_examples import erased_examples, erased_while_claimed
from streams.learner import PARTITIONS_EVERY_S, SnapshotLearner
from streams.metrics import Metrics
from streams.model_snapshots import RISK

if TYPE_CHECKING:
    from agents.risk import ChurnRisk

log = logging.getLogger(__name__)


def _river_model() -> type[ChurnRisk]:
    from agents.risk import ChurnRisk

    return ChurnRisk


class RiskLearner(SnapshotLearner):
    """The churn/lapse risk classifier, from labelled feature snapshots."""

    name = RISK

    def __init__(self, store: FeatureStore, holder: RiskHolder, metrics: Metrics,
                 bootstrap: str, topic: str, publish_every_s: float = 2.0,
                 partitions_every_s: float = PARTITIONS_EVERY_S) -> None:  # fmt: skip
        super().__init__(store, metrics, bootstrap, topic, publish_every_s, partitions_every_s)
        self._holder = holder
        self._started: dict[str, Any] | None = None  # the snapshot it started from
        self._scorer = RiskScorer()  # that snapshot's, for what it says of the model
        self._model: ChurnRisk | None = None  # made once examples are read

    def _start(self, state: dict[str, Any] | None, version: int) -> None:
        # checked now (ValueError), as river's model would check it
        self._scorer = RiskScorer.from_state(state) if state else RiskScorer()
        self._started, self._model = state, None
        self._published(version)
        self._show_state()  # from the start: an alert on the baseline needs no example

    async def _loaded(self) -> ChurnRisk:
        """The model to learn on: river's, made from the snapshot it started from (river
        imported beside the event loop, the first time)."""
        if self._model is None:
            churn_risk = await asyncio.to_thread(_river_model)
            state = self._started
            self._model = churn_risk.from_dict(state) if state else churn_risk()
        return self._model

    @property
    def examples(self) -> int:
        """The examples the model learned in total."""
        return self._scorer.examples if self._model is None else self._model.examples

    def _show_state(self) -> None:
        """Whether the model answers with its baseline and why, the drifts it saw, and
        the examples it learned."""
        m = self._metrics
        now = self._scorer if self._model is None else self._model
        m.model_drifts.labels(RISK).set(now.drifts)
        m.model_on_baseline(RISK, now.reason, now.examples)

    def _state(self) -> dict[str, Any]:
        if self._model is not None:
            return self._model.to_dict()
        if self._started is not None:  # as it was published: nothing learned since
            return self._started
        return _river_model()().to_dict()  # a learner publishes after examples: not met

    def _published(self, version: int) -> None:
        # as published, to score (the learner goes on with its own)
        model = self._model
        self._holder.model = (
            self._scorer if model is None else RiskScorer.from_state(model.to_dict())
        )
        self._holder.version = version

    async def _learn(self, partition: int, records: list[Any]) -> int:
        model = await self._loaded()
        examples, unreadable = [], 0
        for record in records:
            try:
                example = decode_risk_example(record.value or b"")
            except msgspec.DecodeError:  # not written by Moments (only it writes here)
                unreadable += 1
                continue
            examples.append((example, record.offset))
        if unreadable:
            log.warning("%d records of %s[%d] are not risk examples; skipped", unreadable,
                        self._topic, partition)  # fmt: skip
        # An erased customer's examples teach nothing after the erasure, however late they
        # come or often they are read again, and are not claimed (nothing naming them is
        # written after it): their tombstones are read by the keyed hash the ids hold.
        gone = await erased_examples(self._store, [e.example_id for e, _ in examples])
        erased = sum(gone)
        if erased:  # a claim a run before this one made after the erasure (its check after
            # the claim met an outage, and the learner restarted) is dropped now
            await self._store.models.unclaim_examples(
                RISK, [e.example_id for (e, _), g in zip(examples, gone, strict=True) if g]
            )
        examples = [item for item, erased_now in zip(examples, gone, strict=True) if not erased_now]
        # A worker that retries or replays a batch whose decisions it never confirmed
        # sends its examples again, and so does a sweep sent again after it failed to
        # settle: the claims (in Redis, so whichever process learns) let one copy teach.
        claims = await self._store.models.claim_examples(
            RISK, [(example.example_id, f"{partition}:{offset}") for example, offset in examples]
        )
        # and again once claimed: an erasure made between the two teaches nothing either
        since = await erased_while_claimed(
            self._store, RISK, [example.example_id for example, _ in examples], claims
        )
        erased += sum(since)
        counts: Counter[str] = Counter(unreadable=unreadable, erased=erased)
        unknown = 0  # examples learned with figures the model does not know, left out
        for (example, offset), claim, erased_now in zip(examples, claims, since, strict=True):
            if erased_now:  # erased while it was claimed (its new claim dropped)
                continue
            if claim == "copy":  # learned (or to be learned) from the record that claimed it
                counts["duplicate"] += 1
                continue
            if self._learned_before(partition, offset, again=claim == "again"):
                counts["learned_before"] += 1
                continue
            if not learnable_example(example.x):  # it would poison the model
                counts["unusable"] += 1
                continue
            model.learn_one(example.x, example.y)
            counts["learned" if claim == "new" else "relearned"] += 1
            unknown += unknown_features(example.x) > 0
        if counts["unusable"]:
            log.warning("%d risk examples skipped: a figure not finite or out of range",
                        counts["unusable"])  # fmt: skip
        if unknown:  # by count alone: the names are a foreign writer's, and may say anything
            log.warning("%d risk examples held figures the model does not know: learned "
                        "without them", unknown)  # fmt: skip
        if counts["learned_before"]:
            log.info("%d risk examples read again skipped: the model learned them already",
                     counts["learned_before"])  # fmt: skip
        if erased:  # by count alone: no id, nor keyed hash
            log.info("%d risk examples of erased customers skipped", erased)
        m = self._metrics
        for result, n in counts.items():
            if n:
                m.risk_learning.labels(result).inc(n)
        m.model_figure(m.model_logloss, RISK, model.logloss)
        m.model_figure(m.model_rocauc, RISK, model.rocauc)
        self._show_state()
        return counts["learned"] + counts["relearned"]
