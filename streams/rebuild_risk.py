"""The churn-risk state ``moments rebuild`` takes again (:mod:`streams.rebuild`): the
model to score with, and each customer's risk band and pending snapshot as of their
last scored touchpoint.

The features are read as of that touchpoint, once everything is replayed; but the store
keeps only the newest buckets of each window, counted back from the customer's newest
fact (:mod:`feature_store.as_of`), and touchpoints that are not scored (a survey, an
email clicked) move it too. A customer whose last scored touchpoint a later fact would
cut the windows of is read as of it during the replay, just before that fact is applied
(:func:`due_before`, :func:`run_end`), and the figures kept (:class:`RiskView`) until
the bands are stored: their 30-day figures are those live scored them with."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from aiokafka import ConsumerRecord

from agents.decision_plan import worth_watching
from agents.risk import ChurnRisk
from agents.risk_features import learnable_example, risk_features_at
from agents.risk_labels import LAPSE_DAYS
from agents.risk_scorer import RiskScorer
from agents.risk_watch import held_at, pending_snapshot, risk_band
from feature_store import (
    ApplyStatus,
    CustomerFeatures,
    Fact,
    FeatureStore,
    StoreUnavailable,
    risk_fact,
)
from feature_store.as_of import window_cut
from feature_store.facts import DAY_MS, ts_ms
from feature_store.models import SnapshotDamaged
from schemas import TouchpointEvent
from schemas.risk import RiskExample, decode_risk_example
from streams.erased_examples import erased_examples
from streams.model_snapshots import RISK, risk_state
from streams.settings import Settings
from streams.topic_replay import replay
from streams.topics import RISK_EXAMPLES

log = logging.getLogger(__name__)


async def risk_model(settings: Settings, store: FeatureStore, batch: int) -> ChurnRisk:
    """The churn-risk model to score the bands with: the one published in the target
    Redis (merging with ``--force``), or else the one the risk learner will learn again
    there, from ``risk-examples`` (each example once, in the topic's order); with fewer
    examples than its warm-up, that is the baseline, as it was live. A published one
    that is damaged (:class:`SnapshotDamaged`) is dropped, as no process can use it, and
    the model learned again. The examples of customers erased (the target Redis holds
    their tombstones: the erasures are replayed first) are not learned."""
    try:
        found = await store.models.load(RISK)
    except SnapshotDamaged:
        log.warning("the churn-risk model's snapshot in the target Redis is damaged (not the "
                    "one published): dropped, and learned again from risk-examples")  # fmt: skip
        await store.models.discard(RISK)
        found = None
    if found is not None:
        return ChurnRisk.from_dict(risk_state(found[1]))
    model = ChurnRisk()
    learned: set[str] = set()
    erased = 0

    async def examples(records: list[ConsumerRecord]) -> None:
        nonlocal erased
        found = readable_examples([record.value or b"" for record in records])
        # the erasures were replayed first: an erased customer's examples teach nothing,
        # as the live risk learner learns none after the erasure
        gone = await erased_examples(store, [example.example_id for example in found])
        erased += sum(gone)
        learn_risk_examples(model, learned, [e for e, g in zip(found, gone, strict=True) if not g])

    await replay(settings, settings.topic(RISK_EXAMPLES), examples, batch)
    if erased:  # by count alone: no id, nor keyed hash
        log.info("%d churn-risk examples of erased customers were not learned", erased)
    return model


def readable_examples(values: list[bytes]) -> list[RiskExample]:
    """The risk examples among ``values`` (those that do not decode are left out, as the
    risk learner leaves them)."""
    found = []
    for value in values:
        try:
            found.append(decode_risk_example(value))
        except msgspec.DecodeError:
            continue
    return found


def learn_risk_examples(model: ChurnRisk, learned: set[str], examples: list[RiskExample]) -> None:
    """Teach ``model`` the risk ``examples`` as the risk learner does: each example once
    (``learned``: the ids seen), none whose figures would poison it (not finite, or far out
    of range)."""
    for example in examples:
        if example.example_id not in learned:  # a copy teaches nothing more
            learned.add(example.example_id)
            if learnable_example(example.x):
                model.learn_one(example.x, example.y)


@dataclass(frozen=True, slots=True)
class RiskView:
    """A customer's churn-risk figures as of their scored touchpoint at ``at`` (ms), and
    what a snapshot taken there names: that touchpoint, and those just before it."""

    at: int
    x: dict[str, float]
    taken_at: str
    held: list[str]


def risk_view(features: CustomerFeatures, at: int) -> RiskView:
    """The figures of ``features`` (read as of ``at``) as watch_risk takes them there."""
    when = datetime.fromtimestamp(at / 1000, UTC)
    x = risk_features_at(features, when)  # as watch_risk: the spell it ended
    near = [(r.event_id, r.ts) for r in features.recent]
    taken_at = next((i for i, ts in near if ts_ms(ts) == at), "")
    return RiskView(at, x, taken_at, held_at(near, when, taken_at))


async def risk_views(
    store: FeatureStore, wanted: Sequence[tuple[str, int]], failed: set[str]
) -> dict[str, RiskView]:
    """Each customer of ``wanted`` read as of their moment (ms), in one round trip: those
    erased are left out, and so are those whose keys cannot be read (added to ``failed``).
    Redis unavailable raises."""
    views = await asyncio.gather(*(store.read(c, now=at / 1000) for c, at in wanted),
                                 return_exceptions=True)  # fmt: skip
    found = {}
    for (customer, at), features in zip(wanted, views, strict=True):
        if isinstance(features, StoreUnavailable):
            raise features
        if isinstance(features, BaseException):  # their keys: counted in ``failed``
            failed.add(customer)
        elif features is not None:  # (None: erased meanwhile)
            found[customer] = risk_view(features, at)
    return found


def due_before(
    events: Sequence[TouchpointEvent], last_seen: Mapping[str, int], taken: Mapping[str, RiskView]
) -> list[tuple[str, int]]:
    """The customers (with their last scored touchpoint so far, ms) whose figures as of
    it are not taken yet and one of ``events`` would cut (:func:`window_cut`) before
    another of theirs is scored: to be read before ``events`` are applied."""
    due: dict[str, int] = {}
    settled: set[str] = set()
    for event in events:
        customer = event.customer_id
        if customer in settled:
            continue
        ts, at = ts_ms(event.ts), last_seen.get(customer)
        view = taken.get(customer)
        if worth_watching(event) and (at is None or ts >= at):
            settled.add(customer)  # scored anew (once applied): its own moment is watched
        elif at is not None and (view is None or view.at != at) and window_cut(at, ts):
            due[customer] = at
            settled.add(customer)
    return list(due.items())


def run_end(events: Sequence[TouchpointEvent], start: int, last_seen: Mapping[str, int]) -> int:
    """Where the run of ``events`` to apply at once from ``start`` ends: before the
    first that would cut the windows of a touchpoint of the run scored before it (its
    customer is then read as of that one first), or at the end."""
    moved: dict[str, int] = {}
    for i in range(start, len(events)):
        event = events[i]
        customer, ts = event.customer_id, ts_ms(event.ts)
        at = moved.get(customer)
        if at is not None and window_cut(at, ts):
            return i
        if worth_watching(event) and ts >= max(last_seen.get(customer, ts), at or ts):
            moved[customer] = ts  # its last scored touchpoint, if applied
    return len(events)


async def retake_risk_state(
    store: FeatureStore,
    last_seen: dict[str, int],
    batch: int,
    model: RiskScorer,
    threshold: float,
    failed: set[str],
    apply: Callable[[list[Fact]], Awaitable[list[ApplyStatus | None]]],
    taken: Mapping[str, RiskView] | None = None,
) -> tuple[int, int]:
    """For every customer scored, the risk band as of their last scored touchpoint, and
    for those seen within the lapse period a pending churn-risk snapshot too; returns how
    many snapshots and bands were stored. The figures of a customer in ``taken`` as of
    that touchpoint (read during the replay) are those; the others are read now."""
    taken = taken or {}
    since = int(time.time() * 1000) - LAPSE_DAYS * DAY_MS
    scored = list(last_seen.items())
    snapshots = bands = 0
    for i in range(0, len(scored), batch):
        chunk = scored[i : i + batch]
        ready = {c: v for c, at in chunk if (v := taken.get(c)) is not None and v.at == at}
        # one read each, as of its own moment; concurrent reads share round trips
        views = ready | await risk_views(store, [(c, at) for c, at in chunk if c not in ready],
                                         failed)  # fmt: skip
        facts = []
        for customer, at in chunk:
            view = views.get(customer)
            if view is None:  # erased meanwhile, or their keys failed
                continue
            band = risk_band(model.predict_one(view.x), threshold)  # as watch_risk, anew
            snapshot = None
            if at > since:  # taken at that touchpoint, as live (a copy of it, or of those
                # just before it, replayed to the workers after the switch, labels nothing)
                snapshot = pending_snapshot(view.x, at, view.taken_at, view.held)
            when = datetime.fromtimestamp(at / 1000, UTC)
            facts.append(risk_fact(f"rebuild:{at}", customer, when, snapshot, band))
        statuses = await apply(facts)
        for fact, status in zip(facts, statuses, strict=True):
            if status is ApplyStatus.APPLIED:
                bands += 1
                snapshots += any(key == "risk_snapshot" for _, key, _ in fact.updates)
    return snapshots, bands
