"""A malformed record close to Kafka's size limit: its letter, which would exceed the
limit once headers are added, is written cut short, so the partition carries on, and a
re-drive never sends the cut-short letter back. A huge key counts as much as a value."""

from __future__ import annotations

import json

import pytest

from agents.letters import LETTER_MAX, letter_size
from tests.integration import forked_starts
from tests.integration.conftest import Pipeline, consume_all
from tests.integration.test_api_support import event, eventually
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration


async def test_a_huge_malformed_record_is_dead_lettered_cut_short_and_the_rest_applied(
    pipeline: Pipeline,
) -> None:
    worker = pipeline.start_worker()
    key = b"big-1"
    huge = b'{"type": "web_click", "page": "' + b"x" * 1_030_000  # unterminated, ~1 MB
    after = event("web_click", "big-1", "big-after", minutes_ago=1)
    await produce(pipeline.services.kafka_bootstrap, pipeline.topic("touchpoints"),
                  [(key, huge), (key, json.dumps(after).encode())])  # fmt: skip

    async def applied() -> bool:
        return worker.metric("moments_events_total", type="web_click", result="ok") >= 1

    await eventually(applied, "the event after the huge record applied")
    (letter,) = await consume_all(
        pipeline.services.kafka_bootstrap, pipeline.topic("touchpoints-dlq"), 1
    )
    headers = dict(letter.headers)  # type: ignore[attr-defined]
    assert headers["value-truncated-from"] == str(len(huge)).encode()
    assert huge.startswith(letter.value)  # type: ignore[attr-defined]
    size = letter_size(letter.key, letter.value, letter.headers)  # type: ignore[attr-defined]
    assert LETTER_MAX - 100 < size <= LETTER_MAX
    assert headers["error"].startswith(b"invalid: ")

    result = forked_starts.run(["dead-letters", "--redrive"], pipeline.env(0), timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["redrive"]["truncated"] == 1


async def test_the_letter_of_a_record_with_a_huge_key_is_written_and_the_rest_applied(
    pipeline: Pipeline,
) -> None:
    worker = pipeline.start_worker()
    key = b"k" * 150_000  # with its value, about 1 MB: the broker takes it
    malformed = b'{"type": "web_click", "page": "' + b"x" * 850_000
    after = event("web_click", "big-2", "big-key-after", minutes_ago=1)
    await produce(pipeline.services.kafka_bootstrap, pipeline.topic("touchpoints"),
                  [(key, malformed), (b"big-2", json.dumps(after).encode())])  # fmt: skip

    async def applied() -> bool:
        return worker.metric("moments_events_total", type="web_click", result="ok") >= 1

    await eventually(applied, "the event after the record with a huge key applied")
    (letter,) = await consume_all(
        pipeline.services.kafka_bootstrap, pipeline.topic("touchpoints-dlq"), 1
    )
    headers = dict(letter.headers)  # type: ignore[attr-defined]
    assert headers["key-truncated-from"] == b"150000"
    assert letter.key.startswith(b"sha256:")  # type: ignore[attr-defined]
    assert letter.value == malformed  # type: ignore[attr-defined]
    assert headers["error"].startswith(b"invalid: ")
