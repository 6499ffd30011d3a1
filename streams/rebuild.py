"""``moments rebuild``: replay the topics into an empty Redis.

Erasures come first: every customer erased is erased again, blocked for what is left of
the tombstone's lifetime counted from the erasure, so that replaying their old
touchpoints and decisions cannot bring them back; and last again, for those erased
while the rebuild ran. An erasure whose block has run out is not made again (the id may
have come back as a new customer since, as live): of that customer, only what is dated
after the block ended is replayed, as live it was all that was applied. Of a customer
blocked, the withdrawals held out go to the store again, which keeps those the live
worker kept beside the tombstone after the erasure (:mod:`streams.rebuild_withdrawals`).
Touchpoints rebuild the features, less those the live pipeline dead-lettered without
applying them (found by their source offsets in the dead-letter topic and the bytes each
letter holds, so that a letter naming an offset Kafka gave again since holds out no other
record; an event whose decision failed, or whose batch was given up after repeated
failures, had been applied, and is replayed).
The emitted next-best offers and interventions (those held out too) rebuild the contact
history, the decision contexts (each kept for what is left of its lifetime, counted from
the decision) and the marks that stop a replayed event from being decided twice. A
decision record that cannot be decoded is counted and skipped. The ``accepted`` outcomes
joined to those decisions keep again when each customer accepted each offer, as the
``nbo`` learner kept it (:mod:`streams.rebuild_acceptances`; those ``offer-outcomes``
still holds, by its retention); an outcome record that cannot be decoded, or dated too
far ahead (refused live), is counted and skipped. Because every update is idempotent
and bucketed by the event's own ts, and keys expire the store's TTL after the customer's
newest activity by its ts (a fact dated the TTL or longer ago is not applied, but for
its withdrawals), the result equals what the live pipeline built.

The churn-risk snapshots waiting for their labels are in no topic. Each customer scored
within the lapse period gets one again, taken as of the last touchpoint the live
pipeline scores: without it, a customer who never comes back would never be labelled.
(One scored longer ago may already have been labelled by the sweep, so gets none: it
would be learned twice.) The risk band ("low"/"high", which a crossing starts from) is in
no topic either: every customer scored gets it again, as the live pipeline stored it at
their last scored touchpoint, scored by the churn-risk model published in the target
Redis, or, when there is none (an empty Redis), by the model the risk learner would
learn again from ``risk-examples``.
"""

from __future__ import annotations

import logging

from redis.exceptions import ResponseError

from agents.risk_scorer import RiskScorer
from feature_store import UNMARKED, FeatureStore, StoreRefused, StoreUnavailable, login_refused
from streams.rebuild_replay import Replay, each_own
from streams.rebuild_report import RebuildError, RebuildReport, TargetUnreachable
from streams.rebuild_risk import retake_risk_state, risk_model
from streams.settings import Settings
from streams.topic_checks import warn_about_event_topics
from streams.topic_replay import TopicMissing, first_offsets
from streams.topics import (
    CUSTOMER_ERASURES,
    INTERVENTIONS,
    INTERVENTIONS_HELD_OUT,
    NEXT_BEST_OFFERS,
    OFFER_OUTCOMES,
    RISK_EXAMPLES,
    TOUCHPOINTS,
    TOUCHPOINTS_DLQ,
    topic_names,
)

log = logging.getLogger(__name__)
REPLAYED = (CUSTOMER_ERASURES, TOUCHPOINTS_DLQ, TOUCHPOINTS, INTERVENTIONS,
            INTERVENTIONS_HELD_OUT, OFFER_OUTCOMES, NEXT_BEST_OFFERS, RISK_EXAMPLES)  # fmt: skip


async def rebuild(
    settings: Settings,
    store: FeatureStore,
    force: bool = False,
    batch: int = 500,
    accept_lost_erasures: bool = False,
) -> RebuildReport:
    """Replay the topics into the target Redis, as the module says; what was rebuilt."""
    holds_keys = await _check_target(store, force)
    await _check_topics(settings)
    await warn_about_event_topics(settings)  # a compacted one: only newest records replayed
    await _check_erasures_kept(settings, accept_lost_erasures)
    if not holds_keys:  # before the first write: run again with --force, it is marked
        await store.layout.mark()
    run = Replay(settings, store, batch)
    await run.erase_again()
    await run.read_dead_letters()
    await run.replay_touchpoints()
    await run.keep_withdrawals_of_the_erased()
    await run.replay_decisions()
    await run.keep_acceptances()  # into the profiles the replay rebuilt
    model = RiskScorer.from_state((await risk_model(settings, store, batch)).to_dict())
    snapshots, bands = await retake_risk_state(
        store, run.last_seen, batch, model, settings.risk_threshold, run.failed,
        lambda facts: each_own(run.failed, facts, store.apply_facts), run.taken,
    )  # fmt: skip
    await run.erase_those_erased_meanwhile()  # last: after every write of the rebuild
    return run.report(snapshots, bands)


async def _check_target(store: FeatureStore, force: bool) -> bool:
    """Whether the target Redis holds Moments keys already (refused without ``force``)."""
    try:
        marked = await store.layout.check()  # nothing is merged into another layout
        holds_keys = await store.has_any_customer()
        refused = await store.refused_commands()  # that it can write, with the scripts
    except StoreRefused as exc:  # its user, or renamed commands: running again won't do
        raise RebuildError(f"the target Redis refuses a command the rebuild needs: {exc}") from exc
    except StoreUnavailable as exc:  # nothing written yet: it cannot start
        if login_refused(exc):  # up, and it refused the URL's user and password
            raise RebuildError(f"the target Redis refuses the login: {exc}") from exc
        raise TargetUnreachable(f"the target Redis cannot be reached: {exc}") from exc
    except ResponseError as exc:  # a database it does not have, say
        raise RebuildError(f"the target Redis refuses the rebuild: {exc}") from exc
    if refused:
        raise RebuildError(f"the target Redis refuses its user {', '.join(refused)}")
    if holds_keys and not force:
        raise RebuildError("the target Redis already holds Moments keys; use --force to merge")
    if holds_keys and not marked:
        log.warning("the target Redis %s: merging into it all the same (--force); it stays "
                    "unmarked", UNMARKED)  # fmt: skip
    return holds_keys


async def _check_topics(settings: Settings) -> None:
    """Every topic replayed is there (else ``TopicMissing``)."""
    present = await topic_names(settings.kafka_bootstrap)
    for name in REPLAYED:  # every one there, before anything is written
        if settings.topic(name) not in present:
            raise TopicMissing(settings.topic(name))


async def _check_erasures_kept(settings: Settings, accept_lost_erasures: bool) -> None:
    """The erasures topic still holds its oldest records (or ``accept_lost_erasures``)."""
    erasures_topic = settings.topic(CUSTOMER_ERASURES)
    lost = {p: o for p, o in (await first_offsets(settings, erasures_topic)).items() if o}
    if lost:
        where = ", ".join(f"partition {p} from offset {o}" for p, o in sorted(lost.items()))
        said = (f"{erasures_topic} no longer holds its oldest records ({where}): customers "
                "erased then could come back with their touchpoints")  # fmt: skip
        if not accept_lost_erasures:
            raise RebuildError(
                f"{said}. Keep the topic for good (retention.ms=-1 and retention.bytes=-1, "
                "as Moments creates it), or pass --accept-lost-erasures"
            )
        log.warning("%s; rebuilding all the same (--accept-lost-erasures)", said)
