"""Learners across restarts: the risk learner learns again what its last snapshot did not
hold, and nothing sent twice, whichever process learned it first; it reports no ROC AUC
before it has seen both labels, and every process takes up a model series that started
again (Redis lost its data)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from aiokafka.errors import KafkaConnectionError
from prometheus_client import generate_latest

from agents.bandit import LinUCBOffers
from agents.context import DIMENSION
from agents.learned_policy import ModelHolder
from agents.risk import ChurnRisk
from agents.risk_watch import RiskHolder
from feature_store import StoreUnavailable
from schemas.risk import RiskExample, encode_risk_example
from streams.learner import learn_while_leader
from streams.metrics import Metrics
from streams.model_snapshots import Snapshot, reload_if_newer, reload_risk_if_newer
from streams.risk_learner import RiskLearner
from tests.unit.test_learner_runs import Models

TS = datetime(2026, 12, 1, 12, tzinfo=UTC)


def sent(example_id: str, offset: int, y: bool = True) -> SimpleNamespace:
    """A record of ``risk-examples`` at ``offset`` as the learner's consumer hands it over."""
    example = RiskExample(example_id=example_id, x={"experience": 0.3, "complaints_30d": 1.0},
                          y=y, snapshot_ts=TS, label_ts=TS)  # fmt: skip
    return SimpleNamespace(value=encode_risk_example(example), offset=offset)


def risk_learner(metrics: Metrics | None = None, models: Models | None = None) -> RiskLearner:
    store: Any = SimpleNamespace(models=models or Models())  # the claims in Redis
    return RiskLearner(store, RiskHolder(), metrics or Metrics(), "", "")


async def test_a_restarted_risk_learner_learns_the_examples_its_snapshot_lacks() -> None:
    learner = risk_learner()
    learner._start(None, 0)
    assert await learner._learn(0, [sent("a", 0), sent("b", 1)]) == 2
    learner._published(1)  # a and b are in snapshot 1
    assert await learner._learn(0, [sent("c", 2), sent("d", 3)]) == 2
    # the learner fails before publishing c and d, and starts again from snapshot 1 and
    # its positions: c and d are read again and must be learned again
    learner._start(learner._state(), 1)
    assert await learner._learn(0, [sent("c", 2), sent("d", 3)]) == 2
    assert await learner._learn(0, [sent("a", 4), sent("d", 5)]) == 0  # sent again: dropped


async def test_a_risk_learner_of_another_process_drops_what_was_sent_twice() -> None:
    models = Models()  # what every process shares: Redis
    learner = risk_learner(models=models)
    learner._start(None, 0)
    assert await learner._learn(0, [sent("a", 0)]) == 1
    learner._published(1)
    other = risk_learner(models=models)  # another worker leads now
    other._start(learner._state(), 1)
    assert await other._learn(0, [sent("a", 7)]) == 0  # a copy of a, sent again
    assert await other._learn(1, [sent("b", 0)]) == 1
    # that learner fails before it publishes b: the next reads b again and learns it
    third = risk_learner(models=models)
    third._start(learner._state(), 1)
    assert await third._learn(1, [sent("b", 0), sent("b", 1)]) == 1


def test_roc_auc_is_not_known_before_both_labels_are_seen() -> None:
    model = ChurnRisk(warmup=1)
    assert model.rocauc is None
    for _ in range(5):
        model.learn_one({"experience": 0.2}, True)
    assert model.rocauc is None  # river would say 0 here
    model.learn_one({"experience": 0.9}, False)
    assert model.rocauc is not None


async def test_no_roc_auc_is_reported_while_only_positives_arrive() -> None:
    metrics = Metrics()
    learner = risk_learner(metrics)
    learner._start(None, 0)
    await learner._learn(0, [sent(f"p{i}", i, True) for i in range(20)])
    text = generate_latest(metrics.registry).decode()
    assert 'moments_model_rocauc{model="risk"}' not in text
    assert 'moments_model_logloss{model="risk"}' in text
    await learner._learn(0, [sent("n1", 20, False), sent("p21", 21, True)])
    text = generate_latest(metrics.registry).decode()
    assert 'moments_model_rocauc{model="risk"}' in text


class StoredModels:
    """The ``models`` part of a store: one stored snapshot per name, reads counted."""

    def __init__(self) -> None:
        self.stored: dict[str, tuple[int, str]] = {}
        self.loads = 0

    async def version(self, name: str) -> int:
        return self.stored[name][0] if name in self.stored else 0

    async def load(self, name: str) -> tuple[int, str] | None:
        self.loads += 1
        return self.stored.get(name)


def snapshot(model: dict[str, Any]) -> str:
    return msgspec.json.encode(Snapshot(model, {}, TS)).decode()


async def test_a_reload_does_not_undo_what_this_processs_learner_published_meanwhile() -> None:
    """The reload read version 6; before its reply came, the learner here published 7
    into the same holder: the reload used to put 6 back until the next check."""
    models = StoredModels()
    models.stored["nbo"] = (6, snapshot(LinUCBOffers(DIMENSION).to_dict()))
    holder = ModelHolder()
    real_load = models.load

    async def slow_load(name: str) -> tuple[int, str] | None:
        found = await real_load(name)
        holder.model, holder.version = LinUCBOffers(DIMENSION), 7  # the learner published
        return found

    models.load = slow_load  # type: ignore[method-assign]
    store: Any = SimpleNamespace(models=models)
    assert not await reload_if_newer(store, holder)
    assert holder.version == 7


async def test_processes_take_up_a_model_series_that_started_again() -> None:
    models = StoredModels()
    store: Any = SimpleNamespace(models=models)
    holder = ModelHolder()
    models.stored["nbo"] = (9, snapshot(LinUCBOffers(DIMENSION).to_dict()))
    assert await reload_if_newer(store, holder) and holder.version == 9
    assert not await reload_if_newer(store, holder)  # the same version: not loaded again
    loads = models.loads
    # Redis lost its data: the learner publishes version 1 of a new series
    models.stored["nbo"] = (1, snapshot(LinUCBOffers(DIMENSION).to_dict()))
    assert await reload_if_newer(store, holder) and holder.version == 1
    assert not await reload_if_newer(store, holder) and models.loads == loads + 1
    del models.stored["nbo"]  # nothing published yet: keep scoring with what is held
    assert not await reload_if_newer(store, holder) and holder.version == 1


async def test_processes_take_up_a_risk_model_series_that_started_again() -> None:
    models = StoredModels()
    store: Any = SimpleNamespace(models=models)
    holder = RiskHolder()
    models.stored["risk"] = (5, snapshot(ChurnRisk().to_dict()))
    assert await reload_risk_if_newer(store, holder) and holder.version == 5
    assert holder.model.reason == "warming_up"
    models.stored["risk"] = (2, snapshot(ChurnRisk(warmup=0).to_dict()))  # serves at once
    assert await reload_risk_if_newer(store, holder) and holder.version == 2
    assert holder.model.reason == "model"
    assert not await reload_risk_if_newer(store, holder)


class StandIn:
    """A learner's part that these runs do not look at."""

    def forget_figures(self) -> None:
        pass


async def test_a_learner_redis_cannot_serve_restarts_after_longer_pauses_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A full Redis failed the learner's checkpoint every round: it restarted each second
    and logged a traceback each time."""
    runs: list[int] = []

    class Failing(StandIn):
        name = "nbo"

        async def run(self, still_leader: Any) -> None:
            runs.append(1)
            if len(runs) == 6:
                return  # leadership lost: the next run comes after the short pause
            if len(runs) == 3:  # Kafka away
                raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9092)]")
            raise StoreUnavailable("OOM command not allowed when used memory > 'maxmemory'")

    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 8:
            raise asyncio.CancelledError

    with caplog.at_level(logging.WARNING), pytest.raises(asyncio.CancelledError):
        await learn_while_leader(Failing(), lambda: True, (1.0, 8.0), sleep)  # type: ignore[arg-type]
    assert pauses == [1.0, 2.0, 4.0, 8.0, 8.0, 1.0, 1.0, 2.0]
    said = [r.getMessage() for r in caplog.records if r.exc_info is None]
    assert len(said) == 7 and "KafkaConnectionError" in said[2], said
    assert all("OOM" in line for line in said[:2] + said[3:]), said
    assert len(caplog.records) == 7  # runs 1-5, 7 and 8


async def test_a_learner_that_keeps_failing_otherwise_backs_off_and_is_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A fault it meets again at each restart (a snapshot it cannot restore) restarted it
    every second, a traceback each time, and nothing counted it."""

    class Broken(StandIn):
        name = "risk"

        async def run(self, still_leader: Any) -> None:
            raise KeyError("a bug")

    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:
            raise asyncio.CancelledError

    counted: list[str] = []
    with caplog.at_level(logging.WARNING), pytest.raises(asyncio.CancelledError):
        await learn_while_leader(Broken(), lambda: True, (1.0, 8.0), sleep, counted.append)  # type: ignore[arg-type]
    assert pauses == [1.0, 2.0, 4.0]
    assert [r.exc_info is not None for r in caplog.records] == [True, False, False]
    assert counted == ["learner:risk:KeyError"] * 3


async def test_a_learner_that_ran_a_while_before_failing_restarts_after_the_short_pause() -> None:
    """The pause went back to its shortest only when a run ended without failing (the
    worker no longer led): after a first outage, every later blip, however long the
    learner had run well in between, cost the longest pause."""
    now = 0.0
    runs: list[float] = []  # how long each run lasts before it fails

    class Flaky(StandIn):
        name = "nbo"

        async def run(self, still_leader: Any) -> None:
            nonlocal now
            now += runs[len(pauses)]
            raise StoreUnavailable("Connection refused")

    runs.extend([0.0] * 5 + [600.0, 0.0, 0.0, 29.0])
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        nonlocal now
        pauses.append(seconds)
        now += seconds
        if len(pauses) == len(runs):
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await learn_while_leader(Flaky(), lambda: True, (1.0, 30.0), sleep, clock=lambda: now)  # type: ignore[arg-type]
    # five quick failures, ten minutes of learning, two quick ones, then one after 29 s
    assert pauses == [1.0, 2.0, 4.0, 8.0, 16.0, 1.0, 2.0, 4.0, 8.0]
