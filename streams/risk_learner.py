"""The ``risk`` learner: the churn/lapse classifier, from ``risk-examples`` (feature
snapshots that got their delayed label; :class:`streams.learner.SnapshotLearner` reads
the topic and publishes the snapshots). Each example id is claimed, so an example sent
twice (a retried batch, a sweep sent again, a touchpoint and the sweep labelling one
snapshot) teaches once. An example of a customer erased (its id names them by their keyed
hash, as their tombstone's key does) teaches nothing and is not claimed, however late it
comes or often it is read again (the tombstones are read before the claim and again
after it: one erased in between is not learned, and its claim is dropped); what became
of each example is counted in ``moments_risk_examples_total{result}`` (``erased`` for
those).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import msgspec

from agents.risk import ChurnRisk
from agents.risk_features import learnable_example, unknown_features
from agents.risk_scorer import RiskScorer
from agents.risk_watch import RiskHolder
from feature_store import FeatureStore
from schemas.risk import decode_risk_example
from streams.erased_examples import erased_examples, erased_while_claimed
from streams.learner import PARTITIONS_EVERY_S, SnapshotLearner
from streams.metrics import Metrics
from streams.model_snapshots import RISK

log = logging.getLogger(__name__)


class RiskLearner(SnapshotLearner):
    """The churn/lapse risk classifier, from labelled feature snapshots."""

    name = RISK

    def __init__(self, store: FeatureStore, holder: RiskHolder, metrics: Metrics,
                 bootstrap: str, topic: str, publish_every_s: float = 2.0,
                 partitions_every_s: float = PARTITIONS_EVERY_S) -> None:  # fmt: skip
        super().__init__(store, metrics, bootstrap, topic, publish_every_s, partitions_every_s)
        self._holder = holder
        self._model = ChurnRisk()

    def _start(self, state: dict[str, Any] | None, version: int) -> None:
        self._model = ChurnRisk.from_dict(state) if state else ChurnRisk()
        self._published(version)
        self._show_state()  # from the start: an alert on the baseline needs no example

    def _show_state(self) -> None:
        """Whether the model answers with its baseline and why, the drifts it saw, and
        the examples it learned."""
        m = self._metrics
        m.model_drifts.labels(RISK).set(self._model.drifts)
        m.model_on_baseline(RISK, self._model.reason, self._model.examples)

    def _state(self) -> dict[str, Any]:
        return self._model.to_dict()

    def _published(self, version: int) -> None:
        # as published, to score (the learner goes on with its own)
        self._holder.model = RiskScorer.from_state(self._model.to_dict())
        self._holder.version = version

    async def _learn(self, partition: int, records: list[Any]) -> int:
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
            self._model.learn_one(example.x, example.y)
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
        m.model_figure(m.model_logloss, RISK, self._model.logloss)
        m.model_figure(m.model_rocauc, RISK, self._model.rocauc)
        self._show_state()
        return counts["learned"] + counts["relearned"]
