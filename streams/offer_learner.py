"""The ``nbo`` learner: the next-best-offer bandit, from ``offer-outcomes``
(:class:`streams.learner.SnapshotLearner` reads the topic and publishes the snapshots).

Each (decision, offer, outcome) is claimed, so a redelivered outcome teaches once, and is
counted (``moments_outcomes_total``, ``moments_offer_outcomes_total``,
``moments_learning_outcomes_total``) when it is claimed first; read again by a learner
restarted from a snapshot that lacks it, it is learned again, counted only as
``moments_learning_outcomes_total{result="relearned"}``. One shown offer (decision,
offer) is one example: a later outcome of it with a higher reward (``clicked``, then
``accepted``) relabels the example learned (``result="relabelled"``), one with a lower
or equal reward teaches nothing (``result="superseded"``). An outcome that does not
decode, or whose decision is not stored (``no_context``: sent back once it is, it is
learned then), goes to ``offer-outcomes-dlq`` unchanged, with the reason (before the
learner moves past it), as does one dated more than ``max_future`` ahead
(:mod:`schemas.ahead`, as touchpoints are); not one naming an erased customer (by key
or ``customer_id``): nothing naming them is written after their erasure, and it counts
as ``erased``, as does one whose customer is erased after its decision's context was
read (the claim, made after that read, finds their tombstone). A claim whose reply the
connection lost may have been made: read again, it answers that this record claimed it
before, and is counted then, as the new outcome it was.

An ``accepted`` outcome joined to its decision is also kept in the customer's profile
(:mod:`feature_store.acceptances`): the contact policy does not make that offer to them
again for its ``after_accepted_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from agents.bandit import KEPT_PER_REANCHOR, LinUCBOffers
from agents.batch_result import FailedRecord
from agents.context import DIMENSION
from agents.learned_policy import ModelHolder
from agents.learning import (
    REWARDS,
    Example,
    Judged,
    RewardLogLoss,
    claimed,
    impression,
    judged,
    reward_of,
)
from agents.letter_customers import customers_named
from agents.letter_sends import Send, send_letters
from agents.letters import source_record
from agents.sent_letters import SentLetters
from feature_store import FeatureStore, RepliesUnknown
from feature_store.acceptances import Recorded
from feature_store.decision_log import Claim
from schemas import InvalidEvent, Outcome, decode_outcome
from schemas.ahead import not_ahead
from schemas.errors import record_value
from streams.learner import PARTITIONS_EVERY_S, SnapshotLearner
from streams.metrics import Metrics
from streams.model_snapshots import MODEL

log = logging.getLogger(__name__)
NO_CONTEXT = "its decision is not stored (expired, unknown, or not recorded yet)"
# an offer gone from the catalogue whose arm has learned nothing this long leaves the model
# (its decisions' contexts, which outcomes need, are kept 7 days)
ARM_IDLE_S = 30 * 86_400
UNHEARD_KEPT = 100_000  # claims that may have been made unheard, remembered at most
# a claim read again by the record that made it -> what it was when that claimed it
WHEN_NEW: dict[Claim, Claim] = {"relearn": "learn", "relabel_again": "relabel",
                                "superseded_again": "superseded"}  # fmt: skip
NEW = frozenset(WHEN_NEW.values())  # a new outcome's claims
TEACHES = NEW | set(WHEN_NEW)  # claims whose outcome is judged against its decision
# claims whose outcome joined the decision that made its offer (now, or when a copy of
# it was claimed first)
JOINED = TEACHES | {"skip"}
# an outcome to learn (its index in the batch): its claim, and for a relabel the reward
# its impression had taught
Fresh = tuple[int, Claim, float | None]
# sends one record (key, value, headers) to the dead-letter topic; the awaited call gives
# the delivery to wait for (a Faust topic's ``send``)
DeadLetterSend = Send


class OfferLearner(SnapshotLearner):
    """The next-best-offer bandit, from outcomes."""

    name = MODEL

    def __init__(self, store: FeatureStore, holder: ModelHolder, metrics: Metrics,
                 bootstrap: str, topic: str, dead_letter: DeadLetterSend,
                 publish_every_s: float = 2.0,
                 partitions_every_s: float = PARTITIONS_EVERY_S,
                 offered: Callable[[], Collection[str]] | None = None,
                 packed: bool = True,
                 max_future: timedelta = timedelta(minutes=15),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 kept: float = KEPT_PER_REANCHOR) -> None:  # fmt: skip
        super().__init__(store, metrics, bootstrap, topic, publish_every_s, partitions_every_s)
        self._max_future, self._clock = max_future, clock  # outcomes further ahead: letters
        self._packed = packed  # the snapshot's matrices as base64 (else as lists)
        self._kept = kept  # the share of each arm's evidence kept at its re-anchors
        self._holder = holder
        self._dead_letter = dead_letter
        # the offer ids of the catalogue in use: the arms of others that have learned
        # nothing for ARM_IDLE_S leave the model when it is published (None: none do)
        self._offered = offered
        self._model = LinUCBOffers(DIMENSION, kept=kept)
        self._logloss = RewardLogLoss()
        # claims ("<decision>:<offer>:<outcome>", source record) that may have been made
        # without this learner hearing so (the connection went first): not counted yet
        self._unheard: dict[tuple[str, str], None] = {}
        self._sent_letters = SentLetters()  # dead letters written: not again on a retry

    def _start(self, state: dict[str, Any] | None, version: int) -> None:
        self._model = (
            LinUCBOffers.from_dict(state, kept=self._kept).widened(DIMENSION)
            if state
            else LinUCBOffers(DIMENSION, kept=self._kept)
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
        return self._model.to_dict(packed=self._packed)

    def _published(self, version: int) -> None:
        # a copy: the model learns on, and this process must score with what it published
        self._holder.model = LinUCBOffers.from_dict(self._model.to_dict())
        self._holder.version = version

    def _letter(self, record: Any, reason: str) -> FailedRecord:
        """The letter of ``record``, set aside for ``reason`` (sent by :meth:`_set_aside`)."""
        return FailedRecord(source_record(record), reason)

    async def _not_erased(self, invalid: list[tuple[Any, str]]) -> list[tuple[Any, str]]:
        """The invalid outcomes (with their reasons) to dead-letter: those naming no
        erased customer (one round trip for the batch; none when none names anyone).
        The others count as ``erased``."""
        read = (source_record(record) for record, _ in invalid)  # key and value as bytes
        named = [customers_named(r.key, r.value) for r in read]
        customers = list(dict.fromkeys(c for names in named for c in names))
        if not customers:
            return invalid
        found = await self._store.erased(customers)
        gone = {c for c, erased in zip(customers, found, strict=True) if erased}
        kept = [item for item, names in zip(invalid, named, strict=True) if names.isdisjoint(gone)]
        if len(kept) < len(invalid):
            self._metrics.learning.labels("erased").inc(len(invalid) - len(kept))
        return kept

    async def _learn(self, partition: int, records: list[Any]) -> int:
        outcomes, invalid, dead = [], [], []
        latest = self._clock() + self._max_future
        for record in records:
            try:
                outcome = decode_outcome(record_value(record.value))
                not_ahead(outcome, latest, self._max_future)
            except InvalidEvent as exc:
                invalid.append((record, f"invalid: {exc.reason}"))
                continue
            outcomes.append((outcome, record))
        for record, reason in await self._not_erased(invalid):
            dead.append(self._letter(record, reason))
        # the decisions' contexts first: an outcome that cannot teach (dated before its
        # decision, of a rules decision, ...) is claimed without a reward, so that a later
        # outcome of its shown offer is the impression's first example, not a relabel
        unreadable: dict[int, Exception] = {}  # a context key of another type
        contexts = await self._store.decisions.contexts(
            [(o.customer_id, o.decision_id) for o, _ in outcomes], unreadable
        )
        verdicts = [judged(o, c) for (o, _), c in zip(outcomes, contexts, strict=True)]
        teaches = [v.example.reward if isinstance(v.example, Example) else None
                   for v in verdicts]  # fmt: skip
        unread = {i for i, c in enumerate(contexts) if c is None and i not in unreadable}
        # a customer whose keys Redis cannot serve as they should be (a key of another
        # type): their outcome is set aside, and the others are learned
        faults: dict[int, Exception] = {}
        asked = [(o.customer_id, o.decision_id, claimed(o), f"{partition}:{r.offset}")
                 for o, r in outcomes]  # fmt: skip
        before: dict[int, float] = {}  # a relabel's reward learned before, by index
        claims = await self._claim(asked, faults, before, teaches, unread)
        try:
            fresh = await self._set_aside(outcomes, claims, before, faults, dead)
            await self._note_acceptances(outcomes, claims, verdicts)
        except BaseException:
            # the new claims are counted once they are learned: read again after this,
            # they answer "relearn" (or "relabel_again"...), and must count then
            self._not_heard([asked[i][2:] for i, c in enumerate(claims) if c in NEW])
            raise
        learned = relearned = relabelled = 0
        for i, claim, old in fresh:
            # a new outcome is counted, once; one read again (the learner restarted from
            # a snapshot that lacks it) was counted when it was claimed
            outcome, new = outcomes[i][0], claim in NEW
            if new:
                self._metrics.outcomes.labels(outcome.outcome).inc()
            if i in unreadable:  # claimed, so not sent back: it teaches nothing
                if new:
                    self._metrics.learning.labels("bad_context").inc()
                continue
            verdict = verdicts[i]
            if new and verdict.channel is not None:  # an offer Moments made: a catalogue id
                self._metrics.offer_outcome(outcome.offer_id, verdict.channel, outcome.outcome)
            example = verdict.example
            if not isinstance(example, Example):
                if new:
                    self._metrics.learning.labels(example).inc()
                continue
            if claim in ("superseded", "superseded_again"):  # its impression learned more
                if new:
                    self._metrics.learning.labels("superseded").inc()
                continue
            if old is None:  # the impression's first example
                predicted = self._model.predict_one(example.x, example.arm)
                self._logloss.update(example.reward, predicted, impression(outcome))
                self._model.learn_one(example.x, example.arm, example.reward, at=time.time())
            else:  # a stronger outcome of an impression learned: its example's reward
                self._logloss.relabel(impression(outcome), example.reward)
                self._model.relabel(example.x, example.arm, old, example.reward, time.time())
            if not new:  # again: the model it was learned into was never published
                relearned += 1
            elif old is None:
                learned += 1
            else:
                relabelled += 1
        self._metrics.learning.labels("learned").inc(learned)
        if relearned:
            self._metrics.learning.labels("relearned").inc(relearned)
        if relabelled:
            self._metrics.learning.labels("relabelled").inc(relabelled)
        self._metrics.model_figure(self._metrics.model_logloss, MODEL, self._logloss.get())
        return learned + relearned + relabelled

    async def _set_aside(
        self,
        outcomes: list[tuple[Outcome, Any]],
        claims: list[Claim],
        before: dict[int, float],
        faults: dict[int, Exception],
        dead: list[FailedRecord],
    ) -> list[Fresh]:
        """Count what is not learned, and send to the dead-letter topic what is to be
        set aside; the outcomes to learn (by index, with their claims, and for a relabel
        the reward learned before)."""
        invalid, unknown = len(dead), 0
        fresh: list[Fresh] = []
        for i, ((outcome, record), claim) in enumerate(zip(outcomes, claims, strict=True)):
            if claim == "corrupt":
                self._metrics.learning.labels("corrupt_keys").inc()
                fault = faults[i]
                dead.append(self._letter(
                    record, f"corrupt_keys: {type(fault).__name__}: {fault}"
                ))  # fmt: skip
            elif claim in TEACHES and self._learned_before(
                record.partition, record.offset, again=claim not in NEW
            ):  # read again after the log lost its tail: in the model already
                self._metrics.learning.labels("learned_before").inc()
            elif claim in TEACHES:  # a new one is counted once learned (see _learn); one
                # read again was counted when it was claimed
                fresh.append((i, claim, before.get(i)))
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
                dead.append(self._letter(record, f"no_context: {NO_CONTEXT}"))
        if dead:  # on Kafka before the learner's offsets move past them; one the topic
            # refuses for good goes again reduced, or is dropped (the learner goes on).
            # Those written by an attempt that failed (another letter met an outage) are
            # not sent, nor counted, again when the batch is learned again
            letters = self._sent_letters.unsent(dead)
            delivered: dict[int, object] = {}
            try:
                await send_letters(letters, self._dead_letter, self._metrics,
                                   delivered=delivered)  # fmt: skip
            finally:
                self._sent_letters.note(letters, delivered)
            self._metrics.learning.labels("invalid").inc(invalid)
            self._metrics.learning.labels("no_context").inc(unknown)
        return fresh

    async def _note_acceptances(
        self, outcomes: list[tuple[Outcome, Any]], claims: list[Claim], verdicts: list[Judged]
    ) -> None:
        """Keep in each customer's profile when they accepted each offer, for the contact
        policy: from the ``accepted`` outcomes joined to the decision that made the offer
        (claimed now or before, by this record or another: the newest time is kept, so
        one read again changes nothing; a copy of one claimed before is kept only where
        no time is, so that one stamped later does not move it). Not from one the claim
        refused (its decision not stored, no such offer in it, the customer erased:
        nothing is written for an erased customer), nor from one dated before its
        decision (of something else).
        Before the learner moves past them: a failure reads them again."""
        accepted = [
            (claim == "skip", (o.customer_id, o.offer_id, o.ts))
            for (o, _), claim, verdict in zip(outcomes, claims, verdicts, strict=True)
            if o.outcome == "accepted" and claim in JOINED
            and verdict.example != "dated_before_decision"
        ]  # fmt: skip
        found: list[Recorded] = []
        for copies in (False, True):
            asked = [item for copy, item in accepted if copy is copies]
            if asked:
                found += await self._store.acceptances.record(asked, first_only=copies)
        corrupt = found.count("corrupt")
        if corrupt:  # a profile of another type: the acceptance is not kept
            log.warning("%d accepted offers not kept for the contact policy: their "
                        "customers' profiles are no hash", corrupt)  # fmt: skip

    def _not_heard(self, claims: list[tuple[str, str]]) -> None:
        """Claims made but not counted yet: read again, each counts as new."""
        for heard in claims:
            self._unheard[heard] = None
        while len(self._unheard) > UNHEARD_KEPT:  # the oldest go
            del self._unheard[next(iter(self._unheard))]

    async def _claim(
        self,
        asked: list[tuple[str, str, str, str]],
        faults: dict[int, Exception],
        before: dict[int, float],
        teaches: list[float | None],
        unread: set[int],
    ) -> list[Claim]:
        """The claims of ``asked``, each with the reward it ``teaches`` (``unread``: its
        context was not found), a relabel's reward learned before in ``before``; one
        made earlier whose reply was not heard (counted nowhere yet) reads as new again
        (``"learn"``, ``"relabel"`` or ``"superseded"``)."""
        ran: dict[int, Claim] = {}
        try:
            claims = await self._store.decisions.claim_outcomes(
                asked, faults, ran, rewards=REWARDS, before=before, teaches=teaches,
                unread=unread,
            )  # fmt: skip
        except RepliesUnknown as exc:
            made = [i for i, claim in ran.items() if claim in NEW]
            self._not_heard([asked[i][2:] for i in (*made, *exc.unanswered)])
            raise
        if self._unheard:
            for i, claim in enumerate(claims):
                heard = asked[i][2:]
                if heard in self._unheard:
                    del self._unheard[heard]
                    claims[i] = WHEN_NEW.get(claim, claim)
        return claims
