"""The simulator's closed loop: simulated customers answer the offers Moments makes.

Reads ``next-best-offers`` and, for each decision that put offers in front of a known
simulated customer (not the control group), produces what the website would report to
``offer-outcomes``: ``shown`` for the first offer, then after a short delay what the
customer did with it (``accepted``, ``clicked``, ``dismissed`` or ``ignored``), drawn
from the customer's hidden preferences (:meth:`CustomerPopulation.acceptance`).

With a touchpoints topic, a customer who accepted (or only clicked) may then place an
order (:func:`purchase_after`): the effect of the offers that ``moments lift`` measures
against the control group, who get none.

The drawing is pure and seeded by the decision id, so a replayed decision gets the same
answer:

>>> outcome_for(0.3, 0.1), outcome_for(0.3, 0.99)
('accepted', 'ignored')
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.context import CATEGORIES as CONTEXT_CATEGORIES
from agents.context import DIMENSION, IN_VIEW
from schemas import (
    NextBestOffer,
    OfferCatalogue,
    Outcome,
    Purchase,
    decode_next_best_offer,
    encode_outcome,
    encode_touchpoint,
)
from schemas.outcomes import OutcomeKind
from streams.committed_reads import READ_COMMITTED
from streams.kafka_security import client_options
from streams.simulation.delivery import Deliveries
from streams.simulation.population import CustomerPopulation
from streams.topics import topic_partitions

log = logging.getLogger(__name__)

CLICK_SHARE = 0.5  # of those who do not accept, this x acceptance click through
DISMISS_SHARE = 0.35  # of the rest, the share who close the offer rather than ignore it
CLICK_REWARD = 0.3  # agents.learning.REWARDS["clicked"]; used for expected rewards only
BUYS_AFTER = {"accepted": 0.8, "clicked": 0.15}  # chance of an order after the outcome


_Due = tuple[float, int, str, bytes, bytes]  # due, tie-break, topic, key, value


def outcome_for(p_accept: float, u: float) -> OutcomeKind:
    """What a customer with acceptance chance ``p_accept`` does, for a uniform draw ``u``.

    Monotone: a ``u`` that accepts one offer accepts every offer with a higher chance, so
    policies compared on the same draws differ only by what they offered.
    """
    if u < p_accept:
        return "accepted"
    rest = (u - p_accept) / (1.0 - p_accept)  # uniform on 0..1 again
    clicked = CLICK_SHARE * p_accept
    if rest < clicked:
        return "clicked"
    return "dismissed" if rest < clicked + (1.0 - clicked) * DISMISS_SHARE else "ignored"


def expected_reward(p_accept: float, click_reward: float = CLICK_REWARD) -> float:
    """The mean reward (accepted 1, clicked ``click_reward``) of an offer accepted with
    chance ``p_accept``: the truth an off-policy estimate is checked against."""
    return p_accept + (1.0 - p_accept) * CLICK_SHARE * p_accept * click_reward


def in_view(context: list[float] | None) -> str | None:
    """The category the customer was looking at, read back from a decision's context."""
    if context is None or len(context) != DIMENSION:
        return None
    flags = context[IN_VIEW]
    return next((c for c, f in zip(CONTEXT_CATEGORIES, flags, strict=True) if f > 0.5), None)


def _uniforms(seed: int, decision_id: str) -> random.Random:
    digest = hashlib.blake2b(f"{seed}:{decision_id}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def respond(
    decision: NextBestOffer,
    population: CustomerPopulation,
    catalogue: OfferCatalogue,
    seed: int = 0,
) -> list[tuple[float, Outcome]]:
    """The outcomes a decision gets, each with its delay in seconds after the decision.

    Empty for the control group, a decision without offers, an unknown customer or an
    offer not in the catalogue.
    """
    if decision.control or not decision.offers:
        return []
    try:
        population.customer(decision.customer_id)
    except KeyError:
        return []
    first = decision.offers[0].offer_id
    offer = catalogue.by_id(first)
    if offer is None:
        return []
    p = population.acceptance(
        decision.customer_id, offer, decision.channel, in_view(decision.context)
    )
    rng = _uniforms(seed, decision.decision_id)
    kind = outcome_for(p, rng.random())
    seen_after = rng.uniform(0.05, 0.5)
    answered_after = seen_after + (rng.uniform(1.0, 5.0) if kind != "ignored" else 8.0)

    def outcome(what: OutcomeKind, delay: float) -> tuple[float, Outcome]:
        ts = decision.ts + timedelta(seconds=delay)
        return delay, Outcome(
            decision_id=decision.decision_id,
            customer_id=decision.customer_id,
            offer_id=first,
            outcome=what,
            ts=ts,
        )

    return [outcome("shown", seen_after), outcome(kind, answered_after)]


def purchase_after(
    decision: NextBestOffer,
    answers: list[tuple[float, Outcome]],
    population: CustomerPopulation,
    catalogue: OfferCatalogue,
    seed: int = 0,
) -> tuple[float, Purchase] | None:
    """The order a customer places after what they did with the offer (``answers``, from
    :func:`respond`), with its delay in seconds after the decision; ``None`` if none.

    The basket is the customer's usual one, in the offer's categories; the event id is
    derived from the decision, so a replayed decision orders once.
    """
    if not answers:
        return None
    delay, last = answers[-1]
    rng = _uniforms(seed, f"order:{decision.decision_id}")
    if rng.random() >= BUYS_AFTER.get(last.outcome, 0.0):
        return None
    customer = population.customer(decision.customer_id)
    offer = catalogue.by_id(last.offer_id)
    after = delay + rng.uniform(2.0, 20.0)
    order = Purchase(
        event_id=f"sim-order-{decision.decision_id}",
        customer_id=decision.customer_id,
        ts=decision.ts + timedelta(seconds=after),
        order_id=f"ord-{decision.decision_id}",
        amount=round(max(1.0, customer.value / 6.0 * rng.lognormvariate(0.0, 0.5)), 2),
        currency=population.currency,
        categories=list(offer.categories) if offer is not None else [],
    )
    return after, order


@dataclass(frozen=True, slots=True)
class ResponderRun:
    decisions: int  # decisions read
    answered: int  # decisions that got outcomes
    outcomes: int  # outcome records Kafka acknowledged
    orders: int = 0  # purchases after outcomes Kafka acknowledged


async def run_responder(
    bootstrap: str,
    decisions_topic: str,
    outcomes_topic: str,
    population: CustomerPopulation,
    catalogue: OfferCatalogue,
    *,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
    seed: int = 0,
    grace_s: float = 5.0,
    touchpoints_topic: str | None = None,
) -> ResponderRun:
    """Answer decisions from the end of ``decisions_topic`` until ``stop`` is set, then
    keep answering for ``grace_s`` (the decisions on the last events) and send the rest.
    With ``touchpoints_topic``, the orders that follow go there.

    ``ready`` is set once the consumer sits at the end of every partition, so nothing
    produced after it is missed.
    """
    partitions = [
        TopicPartition(decisions_topic, p)
        for p in await topic_partitions(bootstrap, decisions_topic)
    ]
    consumer = AIOKafkaConsumer(
        **client_options(),
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level=READ_COMMITTED,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, **client_options()
    )
    await consumer.start()
    await producer.start()
    deliveries = Deliveries(producer, "outcomes and orders")
    decisions = answered = 0
    pending: list[_Due] = []  # by due time on the monotonic clock
    tie = itertools.count()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the end offsets now, not at the first fetch
            await consumer.position(tp)
        if ready is not None:
            ready.set()
        deadline: float | None = None
        while True:
            now = time.monotonic()
            if deadline is None and stop.is_set():
                deadline = now + grace_s
            if deadline is not None and now >= deadline:
                break
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            arrived = time.monotonic()
            for records in batches.values():
                for record in records:
                    decisions += 1
                    try:
                        decision = decode_next_best_offer(record.value or b"")
                    except Exception:  # not ours to judge: skip what we cannot read
                        log.warning("skipping an unreadable decision at offset %d", record.offset)
                        continue
                    answers = respond(decision, population, catalogue, seed)
                    answered += bool(answers)
                    key = decision.customer_id.encode()
                    for delay, outcome in answers:
                        due = (arrived + delay, next(tie), outcomes_topic, key)
                        heapq.heappush(pending, (*due, encode_outcome(outcome)))
                    order = purchase_after(decision, answers, population, catalogue, seed)
                    if touchpoints_topic is not None and order is not None:
                        due = (arrived + order[0], next(tie), touchpoints_topic, key)
                        heapq.heappush(pending, (*due, encode_touchpoint(order[1])))
            await _send_due(deliveries, pending, time.monotonic())
        while pending:  # what is still scheduled goes out when due
            await asyncio.sleep(max(0.0, pending[0][0] - time.monotonic()))
            await _send_due(deliveries, pending, time.monotonic())
        await deliveries.settle()
    finally:
        await consumer.stop()
        await producer.stop()
    orders = deliveries.acknowledged[touchpoints_topic] if touchpoints_topic is not None else 0
    return ResponderRun(decisions, answered, deliveries.acknowledged[outcomes_topic], orders)


async def _send_due(deliveries: Deliveries, pending: list[_Due], now: float) -> None:
    while pending and pending[0][0] <= now:
        _, _, topic, key, value = heapq.heappop(pending)
        await deliveries.send(topic, value, key)
