"""``moments simulate`` and ``moments demo``: touchpoints from simulated customers, to the
configured Kafka or to a demo's own, once their numbers are checked."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from streams.cli_arguments import (
    MAX_SIMULATED_CUSTOMERS,
    MAX_SIMULATED_RATE,
    MIN_SIMULATED_RATE,
    SIMULATED_CUSTOMERS,
    SIMULATED_RATES,
)
from streams.settings import Settings
from streams.stop_line import stopped

log = logging.getLogger("moments")


def _simulation_fault(args: argparse.Namespace) -> str | None:
    """What is wrong with ``simulate`` or ``demo``'s numbers, if anything.

    >>> _simulation_fault(argparse.Namespace(rate=float("nan"), customers=10))
    '--rate must be from 0.001 to 100,000 events a second'
    >>> _simulation_fault(argparse.Namespace(rate=5.0, customers=0, count=None, duration=None))
    '--customers must be from 1 to 10,000,000'
    """
    count, duration = getattr(args, "count", None), getattr(args, "duration", None)
    faults = (
        (not MIN_SIMULATED_RATE <= args.rate <= MAX_SIMULATED_RATE,
         f"--rate must be {SIMULATED_RATES} events a second"),
        (not 1 <= args.customers <= MAX_SIMULATED_CUSTOMERS,
         f"--customers must be {SIMULATED_CUSTOMERS}"),
        (count is not None and count < 1, "--count must be at least 1"),
        (duration is not None and not 0 < duration < float("inf"),
         "--duration must be a number of seconds above 0"),
    )  # fmt: skip
    return next((said for bad, said in faults if bad), None)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from schemas import load_catalogue
    from streams.simulation.producer import simulate, simulate_closed_loop
    from streams.topics import NEXT_BEST_OFFERS, OFFER_OUTCOMES, TOUCHPOINTS, ensure_topics

    fault = _simulation_fault(args)
    if fault is not None:  # before any topic is made
        stopped(fault, settings, "moments simulate")
        return 2
    currency = settings.money.currency or "EUR"  # spend counts in the configured one

    # the simulated customers and their pace, alike with or without their answers
    stream: dict[str, Any] = {"customers": args.customers, "seed": args.seed,
                              "rate": args.rate, "count": args.count,
                              "duration_s": args.duration, "currency": currency}  # fmt: skip

    async def run() -> None:
        await ensure_topics(settings)
        if args.respond:
            sent, answered = await simulate_closed_loop(
                settings.kafka_bootstrap,
                settings.topic(TOUCHPOINTS),
                settings.topic(NEXT_BEST_OFFERS),
                settings.topic(OFFER_OUTCOMES),
                load_catalogue(settings.catalogue_path),
                **stream,
            )
            log.info(
                "sent %d touchpoints in %.1fs; answered %d of %d decisions (%d outcomes, "
                "%d orders after them)",
                sent.sent,
                sent.seconds,
                answered.answered,
                answered.decisions,
                answered.outcomes,
                answered.orders,
            )
            return
        result = await simulate(
            settings.kafka_bootstrap,
            settings.topic(TOUCHPOINTS),
            **stream,
        )
        log.info("sent %d touchpoints in %.1fs", result.sent, result.seconds)

    asyncio.run(run())
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from streams.demo import run_demo

    fault = _simulation_fault(args)
    if fault is not None:  # before any service is started
        stopped(fault, settings, "moments demo")
        return 2
    return run_demo(duration_s=args.duration, rate=args.rate, customers=args.customers)
