"""A worker's decisions are written once when the broker's acknowledgment of them is lost.

The broker writes a ProduceRequest and the connection drops before its reply arrives (a
broker restarting, a network cut): aiokafka sends the batch again by itself. The worker's
producer is idempotent, so the broker knows the batch and writes it no second time (with
Faust's plain producer, one click's decision reached ``next-best-offers`` twice). The
lost reply is injected in the worker's aiokafka connection by
``tests/integration/faults/sitecustomize.py``."""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.conftest import Pipeline, consume_all, loads
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration

FAULTS_PATH = str(Path(__file__).parent / "faults")


async def test_decisions_whose_acknowledgment_was_lost_are_written_once(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    marker = tmp_path / "lost"
    path = os.pathsep.join(p for p in (FAULTS_PATH, os.environ.get("PYTHONPATH", "")) if p)
    pipeline.start_worker(
        PYTHONPATH=path,
        MOMENTS_TEST_LOSE_PRODUCE_REPLY="next-best-offers",
        MOMENTS_TEST_LOSE_PRODUCE_REPLY_MARKER=str(marker),
    )
    bootstrap = pipeline.services.kafka_bootstrap
    ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    clicks = [{"type": "web_click", "event_id": f"lost-reply-{n}", "customer_id": f"cust-{n}",
               "ts": ts, "page": "/offers"} for n in range(3)]  # fmt: skip
    records = [(str(c["customer_id"]).encode(), json.dumps(c).encode()) for c in clicks]
    await produce(bootstrap, pipeline.topic("touchpoints"), records)
    topic = pipeline.topic("next-best-offers")
    assert len(await consume_all(bootstrap, topic, 3, wait_s=60)) >= 3
    assert marker.exists(), "no reply was lost: the fault was not injected"
    written = await consume_all(bootstrap, topic, 4, wait_s=5)  # time for a batch sent again
    ids = Counter(str(loads(r.value)["decision_id"]) for r in written)  # type: ignore[attr-defined]
    assert len(ids) == 3 and set(ids.values()) == {1}, f"a decision written twice: {dict(ids)}"
