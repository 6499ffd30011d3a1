"""`moments bench` started from a deployment's shell keeps to keys and topics of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.bench import contenders
from streams.services import Services
from streams.settings import Settings


def test_the_bench_worker_writes_none_of_the_callers_keys_or_topics(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Started with a live deployment's settings, the bench's worker used that
    deployment's Redis prefix: it spent its daily offer budgets and left simulated
    customers among its own."""
    for name, value in {"MOMENTS_REDIS_PREFIX": "prod", "MOMENTS_TOPIC_PREFIX": "prod-",
                        "MOMENTS_APP_ID": "prod-moments"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    svc = Services("127.0.0.1:9092", "redis://127.0.0.1:6379/0", "environment")
    pipeline = next(c for c in contenders(svc, tmp_path) if c.name == "pipeline")
    settings = Settings.from_env(pipeline.env)
    assert settings.redis_prefix.startswith("bench-") and settings.redis_prefix != "prod"
    assert settings.topic_prefix.startswith("bench-")
    assert settings.app_id.startswith("bench-")
    again = next(c for c in contenders(svc, tmp_path) if c.name == "pipeline")
    assert Settings.from_env(again.env).redis_prefix != settings.redis_prefix  # per run
