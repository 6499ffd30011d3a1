"""An erasure sent while Redis is frozen (SIGSTOP) past the API's Redis timeout: its
script runs once Redis answers again, so the API errs on the side of erasing. It says
that the erasure may have been applied, and writes the erasure record all the same, so
that a rebuild keeps the customer erased though the client never retries; a retry
answers the receipt of the one erasure."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import pytest

from streams.services import LocalRedis
from tests.integration import forked_starts
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import (
    DEV_AUTH,
    assert_error,
    call,
    event,
    eventually,
    keys_tagged,
    left_by_erasure,
    read_to_end,
)

pytestmark = pytest.mark.integration


async def test_an_erasure_redis_did_not_answer_is_recorded_and_kept_by_a_rebuild(
    private_pipeline: Pipeline, tmp_path: Path
) -> None:
    p = private_pipeline
    gone = f"frozen-{uuid.uuid4().hex[:6]}"
    p.start_worker()
    api = p.start_api(MOMENTS_CONTROL_PERCENT="0")
    await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH,
               body=[event("web_click", gone, uuid.uuid4().hex)])  # fmt: skip

    async def applied() -> bool:
        return (await call("GET", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH)).status == 200

    await eventually(applied, "the click applied", 60)
    pid = p.services.redis.process.proc.pid
    os.kill(pid, signal.SIGSTOP)  # the script is sent; nothing answers
    try:
        unknown = await call("DELETE", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH,
                             within=60)  # fmt: skip
    finally:
        os.kill(pid, signal.SIGCONT)
    body = assert_error(unknown, 503, "store_unavailable")
    assert "may have been applied" in body["message"], body
    assert "erasure record was written" in body["message"], body
    erasures = await read_to_end(p.services.kafka_bootstrap, p.topic("customer-erasures"))
    assert [r.key for r in erasures] == [gone.encode()]

    # nobody retries: a rebuild into an empty Redis keeps the customer erased
    store = p.store()
    tag = store.pseudonym(gone)
    tombstone = f"{p.prefix.rstrip('-')}:{{{tag}}}:erased"
    await store.close()
    target = LocalRedis(tmp_path / "rebuilt-redis", appendonly=False)
    await asyncio.to_thread(target.start)
    try:
        rebuilt = await asyncio.to_thread(
            forked_starts.run, ["rebuild", "--redis-url", target.url], p.env(0), 300
        )
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "1 customers kept erased" in rebuilt.stdout, rebuilt.stdout
        assert await keys_tagged(target.url, tag) == left_by_erasure(tombstone)
    finally:
        await asyncio.to_thread(target.stop)

    # the script ran once Redis answered; a retry answers its receipt, twice the same
    first = await call("DELETE", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH)
    again = await call("DELETE", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH)
    assert first.status == again.status == 200, (first.body, again.body)
    same = ("subject", "erased_at", "keys_removed", "erased")
    assert {k: first.json[k] for k in same} == {k: again.json[k] for k in same}
    assert first.json["keys_removed"] > 0 and first.json["subject"] == tag
