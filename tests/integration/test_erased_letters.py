"""No dead letter names a customer after their erasure: a producer that keeps sending for
an erased id gets none of its malformed or invalid records copied into
``touchpoints-dlq`` or ``offer-outcomes-dlq`` (payload and id as key, a fresh retention
clock). Those records count as erased; another customer's bad records are set aside as
ever.

Checked from outside: the erasure by real HTTP to a ``moments api``, the records
produced to Kafka for a real worker (and its offer learner), the dead-letter topics read
with a plain consumer.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import (
    DEV_AUTH,
    call,
    event,
    eventually,
    once_counted,
    read_to_end,
)
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration


def bad_touchpoints(customer_id: str) -> list[tuple[bytes, bytes]]:
    """Three records keyed by ``customer_id`` that the worker cannot take: cut short,
    an enum out of range, dated ten hours ahead."""
    key = customer_id.encode()
    return [
        (key, b'{"type": "web_click", "customer_id": "' + key + b'", "page": "/checkout?ca'),
        (key, json.dumps({**event("call", customer_id, "late-2"), "reason": "nope"}).encode()),
        (key, json.dumps(event("web_click", customer_id, "late-3", minutes_ago=-600)).encode()),
    ]


async def test_no_letter_names_a_customer_after_their_erasure(pipeline: Pipeline) -> None:
    gone, other = f"{pipeline.prefix}gone", f"{pipeline.prefix}other"
    worker = pipeline.start_worker()
    api = pipeline.start_api()
    bootstrap = pipeline.services.kafka_bootstrap
    erasure = await call("DELETE", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH)
    assert erasure.status == 200, erasure
    erased_at_ms = time.time() * 1000
    await produce(bootstrap, pipeline.topic("touchpoints"),
                  bad_touchpoints(gone) + bad_touchpoints(other))  # fmt: skip
    await produce(bootstrap, pipeline.topic("offer-outcomes"),
                  [(gone.encode(), b"{not json"), (other.encode(), b"{not json")])  # fmt: skip

    def counted() -> bool:
        events = worker.metric_sum("moments_events_total", result="erased")
        outcomes = worker.metric("moments_learning_outcomes_total", result="erased")
        return events >= 3 and outcomes >= 1

    written: dict[str, list[bytes | None]] = {}

    async def settled() -> bool:
        """The other customer's letters are written, and the erased one's records are
        counted as erased (or lettered, which fails below)."""
        for name in ("touchpoints-dlq", "offer-outcomes-dlq"):
            letters = await read_to_end(bootstrap, pipeline.topic(name))
            written[name] = [r.key for r in letters if r.timestamp >= erased_at_ms]
        named = {name: keys.count(other.encode()) for name, keys in written.items()}
        seen = named["touchpoints-dlq"] >= 3 and named["offer-outcomes-dlq"] >= 1
        return seen and (counted() or any(gone.encode() in keys for keys in written.values()))

    await eventually(settled, "the bad records handled", 90)
    assert written == {"touchpoints-dlq": [other.encode()] * 3,
                       "offer-outcomes-dlq": [other.encode()]}  # fmt: skip

    # each counted a moment after Kafka took its letter
    def invalid_events() -> float:
        return worker.metric_sum("moments_events_total", result="invalid")

    def invalid_outcomes() -> float:
        return worker.metric("moments_learning_outcomes_total", result="invalid")

    assert await once_counted(invalid_events, 3, "the invalid touchpoints counted") == 3
    assert await once_counted(invalid_outcomes, 1, "the invalid outcome counted") == 1


async def test_no_letter_names_a_customer_erased_in_an_arrays_later_item(
    pipeline: Pipeline,
) -> None:
    """A producer batching items into one record (a JSON array: invalid, so lettered):
    an erased customer's item after another's was copied into the letter, since only the
    first item's ``customer_id`` was looked up."""
    gone, other = f"{pipeline.prefix}gone", f"{pipeline.prefix}other"
    worker = pipeline.start_worker()
    api = pipeline.start_api()
    bootstrap = pipeline.services.kafka_bootstrap
    erasure = await call("DELETE", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH)
    assert erasure.status == 200, erasure
    erased_at_ms = time.time() * 1000
    items = [event("web_click", other, "arr-1"), event("web_click", gone, "arr-2")]
    both = json.dumps(items).encode()
    outcomes = json.dumps([{"customer_id": other}, {"customer_id": gone}]).encode()
    alone = json.dumps([event("web_click", other, "arr-3")]).encode()  # still lettered
    await produce(bootstrap, pipeline.topic("touchpoints"),
                  [(other.encode(), both), (other.encode(), alone)])  # fmt: skip
    await produce(bootstrap, pipeline.topic("offer-outcomes"),
                  [(other.encode(), outcomes), (other.encode(), b"[{not json")])  # fmt: skip
    written: dict[str, list[bytes | None]] = {}

    async def settled() -> bool:
        """The record naming no erased customer is lettered, and the other one counted
        as erased (or lettered, which fails below)."""
        for name in ("touchpoints-dlq", "offer-outcomes-dlq"):
            letters = await read_to_end(bootstrap, pipeline.topic(name))
            written[name] = [r.value for r in letters if r.timestamp >= erased_at_ms]
        events = worker.metric_sum("moments_events_total", result="erased")
        learned = worker.metric("moments_learning_outcomes_total", result="erased")
        lettered = len(written["touchpoints-dlq"]) >= 1 and len(written["offer-outcomes-dlq"]) >= 1
        return lettered and ((events >= 1 and learned >= 1) or
                             sum(map(len, written.values())) > 2)  # fmt: skip

    await eventually(settled, "the array records handled", 90)
    assert [gone.encode() in (v or b"") for v in written["touchpoints-dlq"]] == [False]
    assert [gone.encode() in (v or b"") for v in written["offer-outcomes-dlq"]] == [False]
