"""A learner whose position is past the end of a partition (the log lost its tail but kept
its offsets: an unclean leader election, a Kafka restored from an older backup) reads it
again from its beginning: what its model learned already is skipped, records written
since are learned, and it is said once. Driven against the in-memory topic and store of
``test_learner_runs`` (whose consumer, as aiokafka with ``auto_offset_reset="earliest"``,
reads a partition from its beginning when its position is past the end)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from streams.metrics import Metrics
from streams.model_snapshots import MODEL, RISK, Snapshot
from tests.unit.test_learner_runs import (
    Topic,
    counted,
    decision,
    example,
    offer_learner,
    outcome,
    published_examples,
    risk_learner,
    run_until,
    store,
)
from tests.unit.test_learner_runs import topic as topic_fixture

topic = topic_fixture  # the in-memory topic every learner of a test reads


def rewinds(metrics: Metrics, model: str) -> float | None:
    return metrics.registry.get_sample_value("moments_learner_rewinds_total", {"model": model})


def published(shared: object, name: str) -> Snapshot:
    payload = shared.models.stored[name]["payload"]  # type: ignore[attr-defined]
    return msgspec.json.decode(payload, type=Snapshot)


async def test_examples_learned_before_the_log_lost_its_tail_are_not_learned_again(
    topic: Topic,
) -> None:
    shared, metrics = store(), Metrics()
    for n in range(5):
        topic.append(0, example(f"risk:e{n}:1"))
    first = risk_learner(shared)
    await run_until(first, lambda: RISK in shared.models.stored and (
        published_examples(shared.models) == 5))  # fmt: skip
    del topic.logs[0][3:]  # the log keeps its first three records, at the same offsets
    second = risk_learner(shared)
    second._metrics = metrics
    await run_until(second, lambda: rewinds(metrics, RISK) == 1)
    assert second.examples == 5
    topic.append(0, example("risk:new:1"))  # written after: at offset 3, learned
    await run_until(second, lambda: second.examples == 6)
    assert published_examples(shared.models) == 6 and rewinds(metrics, RISK) == 1
    assert published(shared, RISK).offsets == {"0": 4} and not published(shared, RISK).floors


async def test_a_topic_recreated_empty_loses_none_of_its_new_records(topic: Topic) -> None:
    shared, metrics = store(), Metrics()
    for n in range(5):
        topic.append(0, example(f"risk:old{n}:1"))
    first = risk_learner(shared)
    await run_until(first, lambda: RISK in shared.models.stored and (
        published_examples(shared.models) == 5))  # fmt: skip
    topic.logs[0].clear()
    for n in range(3):
        topic.append(0, example(f"risk:new{n}:1"))
    second = risk_learner(shared)
    second._metrics = metrics
    await run_until(second, lambda: published_examples(shared.models) == 8)
    assert second.examples == 8 and rewinds(metrics, RISK) == 1


async def test_the_floor_of_a_partition_read_again_is_kept_in_the_snapshot(topic: Topic) -> None:
    """A snapshot published while a partition is read again below its floor carries the
    floor, so that a learner restarted from it skips what the model holds as well."""
    topic.add_partition()
    shared = store()
    for n in range(5):
        topic.append(0, example(f"risk:e{n}:1"))
    first = risk_learner(shared)
    await run_until(first, lambda: RISK in shared.models.stored and (
        published_examples(shared.models) == 5))  # fmt: skip
    del topic.logs[0][3:]
    topic.append(1, example("risk:other:1"))  # partition 1 learns: a snapshot is published
    second = risk_learner(shared)
    await run_until(second, lambda: published_examples(shared.models) == 6)
    assert published(shared, RISK).offsets == {"0": 3, "1": 1}
    assert published(shared, RISK).floors == {"0": 5}
    # restarted from a snapshot whose position of partition 0 is still low: the records
    # below the floor that claim again are in the model
    snap = published(shared, RISK)
    low = Snapshot(snap.model, {"0": 1, "1": 1}, datetime.now(UTC), snap.floors)
    shared.models.stored[RISK]["payload"] = msgspec.json.encode(low).decode()
    third = risk_learner(shared)
    await run_until(third, lambda: third._floors.get(0) == 5)
    assert third.examples == 6


async def test_outcomes_learned_before_the_log_lost_its_tail_are_neither_learned_nor_counted(
    topic: Topic,
) -> None:
    shared, metrics = store(), Metrics()
    for n in range(4):
        shared.decisions.stored[("c1", f"d{n}")] = decision(f"d{n}")
        topic.append(0, outcome(f"d{n}"))
    first = offer_learner(shared, metrics)
    await run_until(first, lambda: MODEL in shared.models.stored and first._model.updates == 4)
    del topic.logs[0][2:]
    shared.decisions.stored[("c1", "d9")] = decision("d9")
    second = offer_learner(shared, metrics)
    await run_until(second, lambda: rewinds(metrics, MODEL) == 1)
    assert second._model.updates == 4 and counted(metrics) == (4.0, 4.0)
    topic.append(0, outcome("d9"))
    await run_until(second, lambda: second._model.updates == 5)
    assert counted(metrics) == (5.0, 5.0)
    before = metrics.registry.get_sample_value(
        "moments_learning_outcomes_total", {"result": "learned_before"}
    )
    assert before == 2


async def test_the_first_record_written_since_is_published_at_once(topic: Topic) -> None:
    """Read again, a record learned below the old floor claims "again" too: until a
    snapshot with the lower floor is published, a restarted learner would skip it."""
    shared = store()
    for n in range(5):
        topic.append(0, example(f"risk:e{n}:1"))
    first = risk_learner(shared)
    await run_until(first, lambda: RISK in shared.models.stored and (
        published_examples(shared.models) == 5))  # fmt: skip
    del topic.logs[0][3:]
    topic.append(0, example("risk:new:1"))
    second = risk_learner(shared, publish_every_s=60)
    await run_until(second, lambda: second.examples == 6)
    assert published_examples(shared.models) == 6  # (then stopped before its next snapshot)
    third = risk_learner(shared)
    await run_until(third, lambda: third.examples >= 6)
    assert third.examples == 6
