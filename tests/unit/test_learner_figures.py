"""What a learner reports (its topic's lag, its model's figures) stays while it fails and
restarts, and goes once its worker no longer leads. They went at every failure: a learner
that kept failing showed its lag only between restarts (never, failing on the records it
fetched), and ``MomentsModelOnBaseline``'s hour began again at each restart."""

from __future__ import annotations

import asyncio
from typing import Any

from agents.risk_watch import RiskHolder
from feature_store import StoreUnavailable
from streams.learner import learn_while_leader
from streams.metrics import Metrics
from streams.risk_learner import RiskLearner
from tests.unit.test_learner_runs import Topic, example, store
from tests.unit.test_learner_runs import topic as topic_fixture

topic = topic_fixture  # the in-memory topic every learner of a test reads


def figures(metrics: Metrics) -> tuple[float | None, float | None]:
    """The risk learner's lag on partition 0, and whether its model is on its baseline."""
    sample = metrics.registry.get_sample_value
    return (sample("moments_consumer_lag", {"topic": "risk-examples", "partition": "0"}),
            sample("moments_model_fallback", {"model": "risk"}))  # fmt: skip


async def eventually(done: Any, at_most_s: float = 5.0) -> None:
    for _ in range(int(at_most_s / 0.01)):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not in time")


async def test_a_learner_that_keeps_failing_reports_until_its_worker_no_longer_leads(
    topic: Topic,
) -> None:
    shared, metrics = store(), Metrics()

    async def redis_away(name: str, claims: list[tuple[str, str]]) -> list[str]:
        raise StoreUnavailable("Redis cannot be reached")

    shared.models.claim_examples = redis_away  # every batch fails, from the first
    for n in range(600):  # a fetch takes 500 of them
        topic.append(0, example(f"risk:{n}:1"))
    learner = RiskLearner(shared, RiskHolder(), metrics, "", "risk-examples")
    seen: list[tuple[str, float | None, float | None]] = []  # as each failure is counted
    lead = True

    def restarted(reason: str) -> None:
        seen.append((reason, *figures(metrics)))

    task = asyncio.create_task(
        learn_while_leader(learner, lambda: lead, pauses=(0.01, 0.02), restarted=restarted)
    )
    try:
        await eventually(lambda: len(seen) >= 3)
        # all 600 wait: the 500 it fetched, and failed on, count too
        assert seen[:3] == [("learner:risk:StoreUnavailable", 600.0, 1.0)] * 3
        for n in range(50):  # outcomes pile up while it fails: its lag says so
            topic.append(0, example(f"risk:more-{n}:1"))
        await eventually(lambda: seen[-1][1] == 650.0)
        lead = False  # another worker leads now: its figures are the ones to read
        await eventually(lambda: figures(metrics) == (None, None))
    finally:
        task.cancel()
