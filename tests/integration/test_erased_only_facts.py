"""A fact for the erased only (a rebuild's withdrawals, ``Fact.erased_only``) on real
Redis: kept beside the tombstone of a customer erased, and of one not erased (their
block ran out while the rebuild replayed) nothing is written, with or without
ceilings, and without an error (which the rebuild reports as a customer whose keys
could not be written)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from feature_store import ApplyStatus, FeatureStore, StoreConfig
from feature_store.facts import Fact, ts_ms
from streams.services import LocalRedis

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(private_redis: LocalRedis) -> AsyncIterator[FeatureStore]:
    config = StoreConfig(secret=b"erased-only", prefix=f"eo{uuid.uuid4().hex[:8]}")
    store = FeatureStore.from_url(private_redis.url, config)
    yield store
    await store.close()


def withdrawal(customer_id: str) -> Fact:
    return Fact(f"t:w-{customer_id}", customer_id, ts_ms(datetime.now(UTC)),
                (("latest", "consent:sms", "0"),), erased_only=True)  # fmt: skip


async def test_of_a_customer_not_erased_nothing_is_written(store: FeatureStore) -> None:
    assert await store.apply_facts([withdrawal("back")]) == [ApplyStatus.NOT_ERASED]
    assert await store.withdrawals_kept("back") == []
    [(erased, features)] = await store.read_views(["back"])
    assert not erased and features is None  # no profile made


async def test_of_a_customer_erased_the_withdrawal_is_kept(store: FeatureStore) -> None:
    await store.erase("gone")
    assert await store.apply_facts([withdrawal("gone")]) == [ApplyStatus.ERASED]
    assert await store.withdrawals_kept("gone") == ["consent:sms"]
