"""The learners: one logical model each, learned from a topic, shared by every process.

The Faust leader runs them. Each reads its topic with its own consumer whose positions
are saved inside each snapshot (or beside it, when the records read since taught
nothing), so a restarted (or new) learner resumes from the last snapshot plus the records
after it: nothing is learned twice or lost, nor counted twice. It looks for partitions
added to its topic while it runs (every ``partitions_every_s``) and reads them from their
beginning, as a restarted learner would. Every worker and API process reloads the
newest snapshot within a couple of seconds (:mod:`streams.model_snapshots`).

What a learner learns is claimed in Redis first, with the record it came from: a record
read again (the learner restarted, here or in another process, from a snapshot that
lacks it) claims again and is learned again, a copy sent in another record is not.

- ``nbo``: the next-best-offer bandit, from ``offer-outcomes``. Each (decision, outcome)
  is claimed, so a redelivered outcome teaches once, and is counted
  (``moments_outcomes_total``, ``moments_offer_outcomes_total``) when it is claimed
  first. An outcome that does not decode, or whose decision is not stored
  (``no_context``: sent back once it is, it is learned then), goes to
  ``offer-outcomes-dlq`` unchanged, with the reason (before the learner moves past it).
  A claim whose reply the connection lost may have been made: read again, it answers
  that this record claimed it before, and is counted then, as the new outcome it was.
- ``risk``: the churn/lapse classifier, from ``risk-examples`` (feature snapshots that
  got their delayed label). Each example id is claimed, so an example sent twice (a
  retried batch, a sweep sent again, a touchpoint and the sweep labelling one snapshot)
  teaches once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from agents.bandit import LinUCBOffers
from agents.batch_retries import outage
from agents.context import DIMENSION
from agents.learned_policy import ModelHolder
from agents.learning import Example, RewardLogLoss, claimed, judged, reward_of
from agents.letters import letter, source_record
from agents.risk import ChurnRisk
from agents.risk_features import learnable_example
from agents.risk_watch import RiskHolder
from feature_store import FeatureStore, RepliesUnknown
from feature_store.decision_log import Claim
from schemas import InvalidEvent, Outcome, decode_outcome
from schemas.risk import decode_risk_example
from streams.kafka_security import client_options
from streams.metrics import Metrics
from streams.model_snapshots import MODEL, RISK, Snapshot
from streams.topics import topic_partitions

log = logging.getLogger(__name__)
NO_CONTEXT = "its decision is not stored (expired, unknown, or not recorded yet)"
PARTITIONS_EVERY_S = 30.0  # how often a learner looks for partitions added to its topic
# an offer gone from the catalogue whose arm has learned nothing this long leaves the model
# (its decisions' contexts, which outcomes need, are kept 7 days)
ARM_IDLE_S = 30 * 86_400
UNHEARD_KEPT = 100_000  # claims that may have been made unheard, remembered at most
# sends one record (key, value, headers) to the dead-letter topic; the awaited call gives
# the delivery to wait for (a Faust topic's ``send``)
DeadLetterSend = Callable[..., Awaitable[Awaitable[Any]]]


_decode_positions = msgspec.json.Decoder(dict[str, int]).decode


class SnapshotLearner:
    """Learn one model from one topic; offsets travel inside the model's snapshots."""

    name = ""

    def __init__(self, store: FeatureStore, metrics: Metrics, bootstrap: str, topic: str,
                 publish_every_s: float = 2.0,
                 partitions_every_s: float = PARTITIONS_EVERY_S) -> None:  # fmt: skip
        self._store = store
        self._metrics = metrics
        self._bootstrap = bootstrap
        self._topic = topic
        self._publish_every_s = publish_every_s
        self._partitions_every_s = partitions_every_s

    # what a model kind provides
    def _start(self, state: dict[str, Any] | None, version: int) -> None:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _published(self, version: int) -> None:
        raise NotImplementedError

    async def _learn(self, partition: int, records: list[Any]) -> int:
        raise NotImplementedError

    async def run(self, still_leader: Callable[[], bool]) -> None:
        """Learn while ``still_leader()``; returns when leadership is lost."""
        partitions = await topic_partitions(self._bootstrap, self._topic)
        if not partitions:
            log.warning("topic %s has no partitions yet; the learner waits", self._topic)
            return
        found = await self._store.models.load(self.name)
        version, offsets = 0, {}
        if found is not None:
            snap = msgspec.json.decode(found[1], type=Snapshot)
            version, offsets = found[0], {int(p): o for p, o in snap.offsets.items()}
            self._start(snap.model, version)
        else:
            self._start(None, 0)
        saved = await self._store.models.positions(self.name, version)
        if saved is not None:  # read on past records that taught nothing
            offsets |= {int(p): o for p, o in _decode_positions(saved).items()}
        consumer = AIOKafkaConsumer(
            **client_options(),
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        tps = [TopicPartition(self._topic, p) for p in partitions]
        await consumer.start()
        try:
            await self._assign(consumer, tps, offsets)
            log.info("%s learner started at version %d", self.name, version)
            last_publish, pending, moved = time.monotonic(), 0, False
            look_again_at = time.monotonic() + self._partitions_every_s
            while still_leader():
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                for tp, records in batches.items():
                    pending += await self._learn(tp.partition, records)
                    offsets[tp.partition] = records[-1].offset + 1
                    moved = True
                if time.monotonic() >= look_again_at:
                    tps = await self._added_partitions(consumer, tps, offsets)
                    look_again_at = time.monotonic() + self._partitions_every_s
                await self._report_lag(consumer, tps)
                if (pending or moved) and time.monotonic() - last_publish >= self._publish_every_s:
                    new = await self._checkpoint(version, offsets, learned=pending > 0)
                    if new is None:
                        log.warning("another %s learner published first; restarting", self.name)
                        return
                    version, pending, moved, last_publish = new, 0, False, time.monotonic()
            log.info("%s learner stopped: this worker no longer leads the group (the new "
                     "leader learns on from version %d)", self.name, version)  # fmt: skip
        finally:
            await consumer.stop()
            # No longer learning here: this process's quality figures would go stale,
            # and keep alerts on them firing; the new leader's are the ones to read.
            self._metrics.forget_model_quality(self.name)
            for tp in tps:
                with contextlib.suppress(KeyError):
                    self._metrics.consumer_lag.remove(tp.topic, str(tp.partition))

    @staticmethod
    async def _assign(
        consumer: AIOKafkaConsumer, tps: list[TopicPartition], offsets: dict[int, int]
    ) -> None:
        """Read ``tps``: each from its position in ``offsets``, or from its beginning
        when nothing of it was read yet."""
        consumer.assign(tps)
        for tp in tps:
            if tp.partition in offsets:
                consumer.seek(tp, offsets[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)

    async def _added_partitions(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], offsets: dict[int, int]
    ) -> list[TopicPartition]:
        """The partitions to read now: ``tps``, plus any added to the topic since (read
        from their beginning, as a restarted learner would; the others go on from where
        they are, since a new assignment forgets positions)."""
        try:
            found = await topic_partitions(self._bootstrap, self._topic)
        except (KafkaError, OSError) as exc:  # looked for again next time
            log.warning("%s learner could not list the partitions of %s: %s",
                        self.name, self._topic, exc)  # fmt: skip
            return tps
        added = sorted(set(found) - {tp.partition for tp in tps})
        if not added:
            return tps
        log.info("%s learner reads partitions %s, added to %s", self.name, added, self._topic)
        grown = [*tps, *(TopicPartition(self._topic, p) for p in added)]
        await self._assign(consumer, grown, offsets)
        return grown

    async def _checkpoint(self, version: int, offsets: dict[int, int], learned: bool) -> int | None:
        """Save how far the topic is read: with a new model version if something was
        learned since ``version``, else beside it (no process needs to reload the same
        model). The version now, or None if another learner published first."""
        positions = {str(p): o for p, o in offsets.items()}
        models = self._store.models
        if not learned:
            encoded = msgspec.json.encode(positions).decode()
            return version if await models.save_positions(self.name, version, encoded) else None
        snap = Snapshot(self._state(), positions, datetime.now(UTC))
        new = await models.publish(self.name, version, msgspec.json.encode(snap).decode())
        if new is not None:
            self._published(new)
        return new

    async def _report_lag(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        """What the learner has still to read, per partition (``moments_consumer_lag``, as
        the workers report the touchpoints'), so that a stalled learner is noticed."""
        for tp in tps:
            highwater = consumer.highwater(tp)
            if highwater is not None:
                position = await consumer.position(tp)
                lag = max(highwater - position, 0)
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)


class OfferLearner(SnapshotLearner):
    """The next-best-offer bandit, from outcomes."""

    name = MODEL

    def __init__(self, store: FeatureStore, holder: ModelHolder, metrics: Metrics,
                 bootstrap: str, topic: str, dead_letter: DeadLetterSend,
                 publish_every_s: float = 2.0,
                 partitions_every_s: float = PARTITIONS_EVERY_S,
                 offered: Callable[[], Collection[str]] | None = None) -> None:  # fmt: skip
        super().__init__(store, metrics, bootstrap, topic, publish_every_s, partitions_every_s)
        self._holder = holder
        self._dead_letter = dead_letter
        # the offer ids of the catalogue in use: the arms of others that have learned
        # nothing for ARM_IDLE_S leave the model when it is published (None: none do)
        self._offered = offered
        self._model = LinUCBOffers(DIMENSION)
        self._logloss = RewardLogLoss()
        # claims ("<decision>:<offer>:<outcome>", source record) that may have been made
        # without this learner hearing so (the connection went first): not counted yet
        self._unheard: dict[tuple[str, str], None] = {}

    def _start(self, state: dict[str, Any] | None, version: int) -> None:
        self._model = (
            LinUCBOffers.from_dict(state).widened(DIMENSION) if state else LinUCBOffers(DIMENSION)
        )
        # this term's figure: outcomes of an earlier one, or read again, are not counted twice
        self._logloss = RewardLogLoss()
        self._published(version)

    def _state(self) -> dict[str, Any]:
        if self._offered is not None:
            gone = self._model.retire(self._offered(), ARM_IDLE_S, time.time())
            if gone:
                log.info("%d offers no longer in the catalogue left the model (no outcome "
                         "for %d days)", len(gone), ARM_IDLE_S // 86_400)  # fmt: skip
        return self._model.to_dict()

    def _published(self, version: int) -> None:
        # a copy: the model learns on, and this process must score with what it published
        self._holder.model = LinUCBOffers.from_dict(self._model.to_dict())
        self._holder.version = version

    async def _letter(self, record: Any, reason: str) -> Awaitable[Any]:
        """Send ``record`` to the dead-letter topic with ``reason``: the delivery."""
        key, value, headers = letter(source_record(record), reason)
        return await self._dead_letter(key=key, value=value, headers=headers)

    async def _learn(self, partition: int, records: list[Any]) -> int:
        outcomes, dead = [], []
        for record in records:
            try:
                outcome = decode_outcome(record.value or b"")
            except InvalidEvent as exc:
                dead.append(await self._letter(record, f"invalid: {exc.reason}"))
                continue
            outcomes.append((outcome, record))
        # a customer whose keys Redis cannot serve as they should be (a key of another
        # type): their outcome is set aside, and the others are learned
        faults: dict[int, Exception] = {}
        asked = [(o.customer_id, o.decision_id, claimed(o), f"{partition}:{r.offset}")
                 for o, r in outcomes]  # fmt: skip
        claims = await self._claim(asked, faults)
        try:
            fresh, contexts, unreadable = await self._set_aside(outcomes, claims, faults, dead)
        except BaseException:
            # the new claims are counted once their contexts are read: read again after
            # this, they answer "relearn", and must count then (see _claim)
            self._not_heard([asked[i][2:] for i, c in enumerate(claims) if c == "learn"])
            raise
        learned = 0
        for i, ((outcome, new), context) in enumerate(zip(fresh, contexts, strict=True)):
            if new:  # a new outcome: counted, once
                self._metrics.outcomes.labels(outcome.outcome).inc()
            if i in unreadable:  # claimed, so not sent back: it teaches nothing
                self._metrics.learning.labels("bad_context").inc()
                continue
            verdict = judged(outcome, context)
            if new and verdict.channel is not None:  # an offer Moments made: a catalogue id
                self._metrics.offer_outcome(outcome.offer_id, verdict.channel, outcome.outcome)
            example = verdict.example
            if not isinstance(example, Example):
                self._metrics.learning.labels(example).inc()
                continue
            predicted = self._model.predict_one(example.x, example.arm)
            self._logloss.update(example.reward, predicted)
            self._model.learn_one(example.x, example.arm, example.reward, at=time.time())
            learned += 1
        self._metrics.learning.labels("learned").inc(learned)
        self._metrics.model_figure(self._metrics.model_logloss, MODEL, self._logloss.get())
        return learned

    async def _set_aside(
        self,
        outcomes: list[tuple[Outcome, Any]],
        claims: list[Claim],
        faults: dict[int, Exception],
        dead: list[Awaitable[Any]],
    ) -> tuple[list[tuple[Outcome, bool]], list[str | None], dict[int, Exception]]:
        """Count what is not learned, and send to the dead-letter topic what is to be
        set aside; the outcomes to learn (whether each is new), their decisions' contexts,
        and which of those could not be read."""
        invalid, fresh, unknown = len(dead), [], 0
        for i, ((outcome, record), claim) in enumerate(zip(outcomes, claims, strict=True)):
            if claim == "corrupt":
                self._metrics.learning.labels("corrupt_keys").inc()
                fault = faults[i]
                dead.append(await self._letter(
                    record, f"corrupt_keys: {type(fault).__name__}: {fault}"
                ))  # fmt: skip
            elif claim == "learn":  # a new outcome: counted once learned (see _learn)
                fresh.append((outcome, True))
            elif claim == "relearn":  # read again: counted when it was claimed
                fresh.append((outcome, False))
            elif claim == "skip":
                self._metrics.learning.labels("duplicate").inc()
            elif claim == "erased":  # nothing of theirs is learned after the erasure
                self._metrics.learning.labels("erased").inc()
            elif claim == "not_offered":  # not claimed: made-up offers would pile up
                self._metrics.learning.labels("offer_not_in_decision").inc()
            elif claim == "not_an_offer":  # an intervention's id
                self._metrics.learning.labels("not_an_offer_decision").inc()
            elif claim == "bad_context":  # its context key holds no string
                self._metrics.learning.labels("bad_context").inc()
            elif reward_of(outcome.outcome) is None:  # nothing to learn from it anyway
                self._metrics.learning.labels("no_reward").inc()
            else:  # its decision may be stored later (or was long ago): set it aside
                unknown += 1
                dead.append(await self._letter(record, f"no_context: {NO_CONTEXT}"))
        if dead:  # on Kafka before the learner's offsets move past them
            await asyncio.gather(*dead)
            self._metrics.learning.labels("invalid").inc(invalid)
            self._metrics.learning.labels("no_context").inc(unknown)
        unreadable: dict[int, Exception] = {}  # a context key of another type
        contexts = await self._store.decisions.contexts(
            [(o.customer_id, o.decision_id) for o, _ in fresh], unreadable
        )
        return fresh, contexts, unreadable

    def _not_heard(self, claims: list[tuple[str, str]]) -> None:
        """Claims made but not counted yet: read again, each counts as new."""
        for heard in claims:
            self._unheard[heard] = None
        while len(self._unheard) > UNHEARD_KEPT:  # the oldest go
            del self._unheard[next(iter(self._unheard))]

    async def _claim(
        self, asked: list[tuple[str, str, str, str]], faults: dict[int, Exception]
    ) -> list[Claim]:
        """The claims of ``asked``; one made earlier whose reply was not heard (counted
        nowhere yet) reads ``"learn"`` again."""
        ran: dict[int, Claim] = {}
        try:
            claims = await self._store.decisions.claim_outcomes(asked, faults, ran)
        except RepliesUnknown as exc:
            made = [i for i, claim in ran.items() if claim == "learn"]
            self._not_heard([asked[i][2:] for i in (*made, *exc.unanswered)])
            raise
        if self._unheard:
            for i, claim in enumerate(claims):
                heard = asked[i][2:]
                if heard in self._unheard:
                    del self._unheard[heard]
                    if claim == "relearn":
                        claims[i] = "learn"
        return claims


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
        """Whether the model answers with its baseline, and the drifts it saw."""
        m = self._metrics
        m.model_drifts.labels(RISK).set(self._model.drifts)
        m.model_fallback.labels(RISK).set(1.0 if self._model.using_baseline else 0.0)

    def _state(self) -> dict[str, Any]:
        return self._model.to_dict()

    def _published(self, version: int) -> None:
        self._holder.model = ChurnRisk.from_dict(self._model.to_dict())  # as published
        self._holder.version = version

    async def _learn(self, partition: int, records: list[Any]) -> int:
        examples, unreadable = [], 0
        for record in records:
            try:
                example = decode_risk_example(record.value or b"")
            except msgspec.DecodeError:  # not written by Moments (only it writes here)
                unreadable += 1
                continue
            examples.append((example, f"{partition}:{record.offset}"))
        if unreadable:
            log.warning("%d records of %s[%d] are not risk examples; skipped", unreadable,
                        self._topic, partition)  # fmt: skip
        # A worker that retries or replays a batch whose decisions it never confirmed
        # sends its examples again, and so does a sweep sent again after it failed to
        # settle: the claims (in Redis, so whichever process learns) let one copy teach.
        claims = await self._store.models.claim_examples(
            RISK, [(example.example_id, source) for example, source in examples]
        )
        learned = unusable = 0
        for (example, _), claim in zip(examples, claims, strict=True):
            if claim == "copy":  # learned (or to be learned) from the record that claimed it
                continue
            if not learnable_example(example.x):  # it would poison the model
                unusable += 1
                continue
            self._model.learn_one(example.x, example.y)
            learned += 1
        if unusable:
            log.warning("%d risk examples skipped: a figure not finite or out of range", unusable)
        m = self._metrics
        m.model_figure(m.model_logloss, RISK, self._model.logloss)
        m.model_figure(m.model_rocauc, RISK, self._model.rocauc)
        self._show_state()
        return learned


async def learn_while_leader(
    learner: SnapshotLearner,
    is_leader: Callable[[], bool],
    pauses: tuple[float, float] = (1.0, 30.0),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    restarted: Callable[[str], None] = lambda reason: None,
) -> None:
    """A learner's life in a worker: run whenever this worker is the leader. A learner
    that fails starts again from its snapshot after a pause that doubles, from
    ``pauses[0]`` to ``pauses[1]``, while it keeps failing, each restart counted
    (``restarted("learner:<name>:<error>")``, as ``moments_batch_retries_total``'s
    reason): an outage (Redis down, full or read-only; Kafka away) logs one line each
    time; any other fault (one it would meet again: a snapshot it cannot restore) logs
    its traceback the first time, then one line."""
    first, longest = pauses
    pause, failing = first, ""
    while True:
        if is_leader():
            try:
                await learner.run(is_leader)
                pause, failing = first, ""
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                kind = type(exc).__name__
                restarted(f"learner:{learner.name}:{kind}")
                if outage(exc):
                    log.warning("%s learner stopped, Redis or Kafka cannot serve it (%s: "
                                "%s); restarting from its snapshot in %.0f s", learner.name,
                                kind, exc, pause)  # fmt: skip
                elif failing != kind:
                    log.exception("%s learner failed; restarting from its snapshot in %.0f s",
                                  learner.name, pause)  # fmt: skip
                else:
                    log.warning("%s learner failed again (%s: %s); restarting from its "
                                "snapshot in %.0f s", learner.name, kind, exc, pause)  # fmt: skip
                failing = "" if outage(exc) else kind
                await sleep(pause)
                pause = min(pause * 2, longest)
                continue
        await sleep(first)
