"""A malformed record close to Kafka's size limit: its letter, which would exceed the
limit once headers are added, is written cut short, so the partition carries on, and a
re-drive never sends the cut-short letter back."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agents.touchpoint_agent import LETTER_VALUE_MAX
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
    assert letter.value == huge[:LETTER_VALUE_MAX]  # type: ignore[attr-defined]
    assert headers["error"].startswith(b"invalid: ")

    result = subprocess.run(  # noqa: ASYNC221 (the test waits for it on purpose)
        [sys.executable, "-m", "streams.cli", "dead-letters", "--redrive"],
        env=pipeline.env(0), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["redrive"]["truncated"] == 1
