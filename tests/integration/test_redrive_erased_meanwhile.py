"""Customers erased while ``moments dead-letters --redrive`` runs: their letters are not
sent back (a new copy of their data on ``touchpoints``). One is erased through the API
(its erasure record on ``customer-erasures``), the other in Redis alone (an erasure whose
record Kafka has not taken yet): the tool catches up on the topic and reads the batch's
tombstones before each batch it sends."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

import pytest

from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, call, eventually, read_to_end
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration
FILLER = 6000  # a dozen batches: the erasures come while the first ones are sent


def broken(customer_id: str) -> bytes:
    return ('{"type": "web_click", "customer_id": "' + customer_id + '", "event_id"').encode()


async def test_customers_erased_during_a_redrive_get_no_letter_back(pipeline: Pipeline) -> None:
    boot = pipeline.services.kafka_bootstrap
    by_api, in_redis = (f"{kind}-{uuid.uuid4().hex[:6]}" for kind in ("api", "redis"))
    worker = pipeline.start_worker()
    api = pipeline.start_api()
    filler = [(f"fill{n}".encode(), b'{"type": "web_click", "event_id"') for n in range(FILLER)]
    await produce(boot, pipeline.topic("touchpoints"), filler)
    await produce(boot, pipeline.topic("touchpoints"),
                  [(c.encode(), broken(c)) for c in (by_api, in_redis)])  # fmt: skip

    async def lettered() -> bool:
        return worker.metric_sum("moments_dead_letters_total") >= FILLER + 2

    await eventually(lettered, "every record dead-lettered", 120)
    redrive = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streams.cli", "dead-letters", "--redrive",
        env=pipeline.env(0), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    for _ in range(600):  # once the first batch went back
        if await read_to_end(boot, pipeline.topic("dead-letter-redrives")):
            break
        await asyncio.sleep(0.05)
    store = pipeline.store()
    try:
        erased = await call("DELETE", f"{api.url}/v1/customers/{by_api}", headers=DEV_AUTH)
        await store.erase(in_redis)
    finally:
        await store.close()
    assert erased.status == 200, erased.body
    out, err = await redrive.communicate()
    assert redrive.returncode == 0, err
    verdicts = json.loads(out)["redrive"]
    assert (verdicts["redriven"], verdicts["erased"]) == (FILLER, 2), verdicts
    sent_back = [r.key for r in await read_to_end(boot, pipeline.topic("touchpoints"))
                 if r.headers and "redriven-from" in dict(r.headers)]  # fmt: skip
    assert len(sent_back) == FILLER
    assert {by_api.encode(), in_redis.encode()}.isdisjoint(sent_back)
