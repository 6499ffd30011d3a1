"""Send a simulated population's touchpoints to Kafka, paced in real time; optionally
close the loop with customers who answer the offers (:mod:`.responder`)."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from schemas import OfferCatalogue, encode_touchpoint
from streams.kafka_security import client_options
from streams.simulation.delivery import Deliveries
from streams.simulation.population import CustomerPopulation
from streams.simulation.responder import ResponderRun, run_responder


@dataclass(frozen=True, slots=True)
class SimulationRun:
    sent: int
    seconds: float


async def simulate(
    bootstrap: str,
    topic: str,
    *,
    customers: int = 1000,
    seed: int = 7,
    rate: float = 50.0,
    count: int | None = None,
    duration_s: float | None = None,
    currency: str = "EUR",
) -> SimulationRun:
    """Produce events at ``rate``/s (Poisson), stamped with the time they are sent:
    ``count`` of them, or for ``duration_s``, or (neither) until cancelled. Each run names
    its events afresh (its start time is in their ids), so that a second run against the
    same Redis is not taken for a replay of the first. Purchases are in ``currency``.

    Events Kafka does not take (away longer than the producer waits) are sent again until
    it takes them (:mod:`.delivery`); ``sent`` counts those it acknowledged."""
    population = CustomerPopulation(customers, seed, currency)
    total = count if count is not None else sys.maxsize  # the duration, or cancelling, ends it
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, **client_options()
    )
    await producer.start()
    deliveries = Deliveries(producer, "touchpoints")
    started_wall = time.monotonic()
    start = datetime.now(UTC)
    try:
        run = start.strftime("%Y%m%dT%H%M%S%f")
        for event in population.touchpoints(total, start, rate, run):
            due = (event.ts - start).total_seconds()
            wait = due - (time.monotonic() - started_wall)
            if duration_s is not None and due > duration_s:
                break
            if wait > 0:
                await asyncio.sleep(wait)
            await deliveries.send(topic, encode_touchpoint(event), event.customer_id.encode())
        await deliveries.settle()
    finally:
        await producer.stop()
    return SimulationRun(deliveries.sent, time.monotonic() - started_wall)


async def simulate_closed_loop(
    bootstrap: str,
    topic: str,
    decisions_topic: str,
    outcomes_topic: str,
    catalogue: OfferCatalogue,
    *,
    customers: int = 1000,
    seed: int = 7,
    rate: float = 50.0,
    count: int | None = None,
    duration_s: float | None = None,
    grace_s: float = 5.0,
    currency: str = "EUR",
) -> tuple[SimulationRun, ResponderRun]:
    """:func:`simulate`, with the same customers answering the offers made to them."""
    population = CustomerPopulation(customers, seed, currency)
    stop, ready = asyncio.Event(), asyncio.Event()

    async def produce() -> SimulationRun:
        try:
            await ready.wait()  # the responder sits at the end of the decisions
            return await simulate(
                bootstrap,
                topic,
                customers=customers,
                seed=seed,
                rate=rate,
                count=count,
                duration_s=duration_s,
                currency=currency,
            )
        finally:
            stop.set()

    respond = run_responder(
        bootstrap,
        decisions_topic,
        outcomes_topic,
        population,
        catalogue,
        stop=stop,
        ready=ready,
        seed=seed,
        grace_s=grace_s,
        touchpoints_topic=topic,
    )
    run, answered = await asyncio.gather(produce(), respond)
    return run, answered
