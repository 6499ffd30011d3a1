"""The worker's consumer lag (``moments_consumer_lag``): what it has still to read of the
partitions it holds, as the broker's ends give it, and no series for partitions it no
longer holds."""

from __future__ import annotations

import asyncio
from typing import Any

from streams import topics
from streams.metrics import Metrics
from streams.settings import Settings


def lag_of(highwater: int, committed: int | None) -> int:
    """Records not yet done: Faust's committed offset is the next one to read, as Kafka's
    is (it used to be taken for the last one done, one short per partition).

    >>> lag_of(100, 100), lag_of(100, 60), lag_of(100, None)
    (0, 40, 100)
    """
    return max(highwater - (committed or 0), 0)


def _lag_series(metrics: Metrics) -> list[tuple[str, str]]:
    """The (topic, partition) label pairs the lag gauge currently reports."""
    return [
        (sample.labels["topic"], sample.labels["partition"])
        for family in metrics.consumer_lag.collect()
        for sample in family.samples
    ]


def stale_lag_series(
    series: list[tuple[str, str]], assigned: set[tuple[str, int]], learners: set[str]
) -> list[tuple[str, str]]:
    """The lag series the worker reports no longer: of partitions not assigned to it now
    (revoked; the leader's own topic too, once another worker leads). The learners'
    topics are left alone: each learner reports its own, and drops them when it stops.

    >>> stale_lag_series([("touchpoints", "0"), ("touchpoints", "1"), ("m-__leader", "0"),
    ...                   ("offer-outcomes", "0")], {("touchpoints", 0)}, {"offer-outcomes"})
    [('touchpoints', '1'), ('m-__leader', '0')]
    """
    return [(topic, partition) for topic, partition in series
            if topic not in learners and (topic, int(partition)) not in assigned]  # fmt: skip


def register_lag_timer(app: Any, metrics: Metrics, settings: Settings) -> None:
    """Report the worker's lag per assigned partition every 2 s, from the broker's ends."""

    @app.timer(2.0)  # type: ignore[untyped-decorator]
    async def report_lag() -> None:
        consumer = app.consumer
        committed = getattr(consumer, "_committed_offset", {})  # Faust keeps no public view
        assigned = consumer.assignment()
        learners = {settings.topic(t) for t in (topics.OFFER_OUTCOMES, topics.RISK_EXAMPLES)}
        held = {(tp.topic, tp.partition) for tp in assigned}
        for series in stale_lag_series(_lag_series(metrics), held, learners):
            metrics.consumer_lag.remove(*series)
        # the ends as the broker knows them now: the ends of the last fetch stand still
        # while the worker is stalled (its buffer full, it fetches nothing), as its lag grows
        ends: dict[Any, int] = {}
        if assigned:
            try:
                # within the timer's interval: one that overran it was logged by mode
                # as "overlapping", which reads as slow code while Kafka is down
                ends = dict(await asyncio.wait_for(consumer.highwaters(*assigned), 1.5))
            except Exception:  # the broker cannot say now: the last fetch's ends will do
                ends = {}
        for tp in assigned:
            done = committed.get(tp)
            highwater = ends.get(tp)
            if highwater is None:
                try:
                    highwater = consumer.highwater(tp)
                except Exception:
                    continue
            if highwater is None:
                continue
            lag = lag_of(highwater, done)
            metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
