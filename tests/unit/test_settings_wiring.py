"""Settings reach what they configure: the store, the worker's handler and agent, the
API's recommender (``test_settings`` checks that each ``MOMENTS_*`` variable reaches its
field; here, that each field reaches its use)."""

from __future__ import annotations

from typing import Any

import pytest

from agents.catalogue_holder import CatalogueHolder
from agents.learned_policy import ModelHolder
from feature_store.derived import SegmentThresholds
from schemas import load_catalogue
from streams import app as worker_app
from streams.api.server import build_recommender
from streams.app import build_policy, build_store
from streams.metrics import Metrics
from streams.settings import Settings

NOT_DEFAULTS = {
    "MOMENTS_KEY_SECRET": "wiring-secret",
    "MOMENTS_REDIS_PREFIX": "wired",
    "MOMENTS_REDIS_TIMEOUT_S": "2.5",
    "MOMENTS_STORE_TTL_DAYS": "90",
    "MOMENTS_CONTACT_ONLY_TTL_DAYS": "9",
    "MOMENTS_STRANGER_TTL_DAYS": "2",
    "MOMENTS_DEDUPE_HORIZON_DAYS": "3",
    "MOMENTS_TOMBSTONE_DAYS": "120",
    "MOMENTS_HIGH_VALUE": "1234",
    "MOMENTS_GOOD_EXPERIENCE": "0.35",
    "MOMENTS_EXPERIENCE_HALF_LIFE_DAYS": "21",
    "MOMENTS_CURRENCY": "EUR",
    "MOMENTS_EXCHANGE_RATES": "USD=0.92",
    "MOMENTS_MAX_ATTEMPTS": "5",
    "MOMENTS_BATCH_SIZE": "77",
    "MOMENTS_OFFER_MAX_AGE_S": "600",
    "MOMENTS_INTERVENTION_MAX_AGE_S": "700",
    "MOMENTS_MAX_FUTURE_SKEW_S": "120",
    "MOMENTS_API_BUDGET_MS": "40",
    "MOMENTS_API_GATHER_MS": "3",
    "MOMENTS_API_MAX_BATCH": "12",
}


def settings(tmp_path: Any) -> Settings:
    return Settings.from_env({**NOT_DEFAULTS, "MOMENTS_DATA_DIR": str(tmp_path)})


def test_the_store_is_built_as_configured(tmp_path: Any) -> None:
    store = build_store(settings(tmp_path), redis_url="redis://127.0.0.1:9/0")
    config = store._config
    assert (config.secret, config.prefix) == (b"wiring-secret", "wired")
    assert (config.ttl_s, config.contact_only_ttl_s) == (90 * 86400, 9 * 86400)
    assert config.stranger_ttl_s == 2 * 86400
    assert (config.dedupe_horizon_s, config.tombstone_ttl_s) == (3 * 86400, 120 * 86400)
    assert config.thresholds == SegmentThresholds(high_value=1234.0, good_experience=0.35)
    assert config.half_life_days == 21.0
    assert (config.money.currency, dict(config.money.rates)) == ("EUR", {"USD": 0.92})
    options = store._conn.client.connection_pool.connection_kwargs  # type: ignore[union-attr]
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 2.5
    pipe = store._conn._pipe  # the batched calls' own connection
    assert pipe is not None and pipe._connect_timeout_s == pipe._request_timeout_s == 2.5


def test_the_worker_handles_and_takes_batches_as_configured(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, dict[str, Any]] = {}

    def recording(name: str, real: Any) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            seen[name] = kwargs
            return real(*args, **kwargs)

        return record

    monkeypatch.setattr(worker_app, "TouchpointHandler",
                        recording("handler", worker_app.TouchpointHandler))  # fmt: skip
    monkeypatch.setattr(worker_app, "register_touchpoint_agent",
                        recording("agent", worker_app.register_touchpoint_agent))  # fmt: skip
    worker_app.create_app(settings(tmp_path))
    handler, agent = seen["handler"], seen["agent"]
    assert handler["max_attempts"] == agent["max_attempts"] == 5
    assert handler["offer_max_age_s"] == 600
    assert handler["max_future"].total_seconds() == 120
    assert (handler["rules"].high_value, handler["rules"].max_age_s) == (1234.0, 700)
    assert agent["batch_size"] == 77


def test_the_api_decides_within_its_budget_and_batches_as_configured(tmp_path: Any) -> None:
    configured = settings(tmp_path)
    store = build_store(configured, redis_url="redis://127.0.0.1:9/0")
    catalogue = CatalogueHolder(load_catalogue(configured.catalogue_path))
    policy = build_policy(configured, catalogue, ModelHolder())
    recommender = build_recommender(configured, store, policy, None, Metrics())  # type: ignore[arg-type]
    assert recommender.budget_s == 0.04
    assert (recommender._gather_s, recommender._max_batch) == (0.003, 12)


async def test_the_apis_decisions_are_not_sent_for_the_customers_it_knows_erased(
    tmp_path: Any,
) -> None:
    """The process's set of customers erased lately (the alert hub's) reaches the
    delivery: a decision it answered before an erasure is not sent after it, and counted."""
    configured, metrics = settings(tmp_path), Metrics()
    store = build_store(configured, redis_url="redis://127.0.0.1:9/0")
    catalogue = CatalogueHolder(load_catalogue(configured.catalogue_path))
    policy = build_policy(configured, catalogue, ModelHolder())
    recommender = build_recommender(configured, store, policy, None, metrics, erased={"c-1"})  # type: ignore[arg-type]
    recommender._publish([(b"c-1", b"{}")])
    count = metrics.registry.get_sample_value
    topic = configured.topic("next-best-offers")
    assert count("moments_publish_erased_total", {"topic": topic}) == 1
    assert count("moments_publish_failures_total", {"topic": topic}) == 0
