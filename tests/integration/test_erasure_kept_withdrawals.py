"""The withdrawals an erasure keeps (feature_store/lua/erase.lua,
apply.lua), on real Redis; and a fact for the erased only (a rebuild's withdrawals,
``Fact.erased_only``): kept beside the tombstone of a customer erased, and of one not
erased (their block ran out while the rebuild replayed) nothing is written, and without
an error (which the rebuild reports as a customer whose keys could not be written)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from feature_store import ApplyStatus, FeatureStore, StoreConfig
from feature_store.facts import Fact, ts_ms
from schemas import Consent, Purchase
from streams.services import LocalRedis

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(private_redis: LocalRedis) -> AsyncIterator[FeatureStore]:
    config = StoreConfig(secret=b"kept-gaps", prefix=f"kg{uuid.uuid4().hex[:8]}")
    store = FeatureStore.from_url(private_redis.url, config)
    yield store
    await store.close()


async def test_an_erasure_retried_tells_the_withdrawals_the_first_kept(store: FeatureStore) -> None:
    """The retry of an erasure whose record could not be written writes the record the
    rebuild reads: it must name the withdrawals the first attempt kept (their opt-outs
    hash is gone by then)."""
    at = datetime.now(UTC)
    await store.apply([Consent(event_id="w", customer_id="c1", ts=at, channel="sms",
                               granted=False)])  # fmt: skip
    assert (await store.erase("c1")).withdrawals_kept == ["consent:sms"]
    assert (await store.erase("c1")).withdrawals_kept == ["consent:sms"]


async def test_a_replayed_erasure_keeps_the_withdrawals_its_record_names(
    store: FeatureStore,
) -> None:
    """moments rebuild into an empty Redis: the record's names are all there is."""
    at_ms = int(datetime.now(UTC).timestamp() * 1000) - 60_000
    receipt = await store.erase("c2", erased_at_ms=at_ms, withdrawals=["consent:call", "bogus"])
    assert receipt.withdrawals_kept == ["consent:call"]
    assert await store.withdrawals_kept("c2") == ["consent:call"]


async def test_a_grant_kept_in_the_opt_outs_hash_is_not_kept_as_a_withdrawal(
    store: FeatureStore,
) -> None:
    at = datetime.now(UTC) - timedelta(minutes=5)
    await store.apply([Consent(event_id="g", customer_id="c3", ts=at, channel="email",
                               granted=True),
                       Purchase(event_id="p", customer_id="c3", ts=at, order_id="o",
                                amount=1.0, currency="EUR")])  # fmt: skip
    assert (await store.erase("c3")).withdrawals_kept == []
    late = [Consent(event_id="g2", customer_id="c3", ts=datetime.now(UTC), channel="sms",
                    granted=True)]  # fmt: skip
    assert await store.apply(late) == [ApplyStatus.ERASED]
    assert await store.withdrawals_kept("c3") == []


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
