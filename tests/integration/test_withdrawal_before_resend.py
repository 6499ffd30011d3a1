"""A decision recorded before it was sent, and sent only later, respects a consent
withdrawn in between (real Redis).

A worker records each decision (with its contacts) before it sends the batch; a worker
that stopped in between, or a batch Kafka refused and that is re-driven from the dead
letters days later, sends that recorded decision when its touchpoint is read again. It
goes out under its own decision id, but without its offers once the customer has
withdrawn their consent to its channel (or turned away from it) since.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.letters import SourceRecord
from agents.offer_rules import RuleBasedOfferPolicy
from agents.touchpoint_handler import TouchpointHandler
from feature_store import FeatureStore, StoreConfig
from schemas import Offer, OfferCatalogue
from streams.services import Services

pytestmark = pytest.mark.integration

TIPS = Offer(offer_id="tips", title="Tips", channels=["web", "email"])
POLICY = RuleBasedOfferPolicy(
    CatalogueHolder(OfferCatalogue(version="v1", offers=[TIPS])),
    ContactPolicy(ControlGroup("resend-salt", 0.0)),
)


def record(offset: int, event: dict[str, Any], redriven: bool = False) -> SourceRecord:
    return SourceRecord(
        "touchpoints", 0, offset, event["customer_id"].encode(), json.dumps(event).encode(),
        redriven_from=b"touchpoints-dlq:0:0" if redriven else None,
    )  # fmt: skip


def email_opened(customer: str, at: datetime) -> dict[str, Any]:
    return {"type": "email", "event_id": f"{customer}-open", "customer_id": customer,
            "ts": at.isoformat(), "action": "opened"}  # fmt: skip


def withdrawal(customer: str, channel: str, at: datetime) -> dict[str, Any]:
    return {"type": "consent", "event_id": f"{customer}-withdraws", "customer_id": customer,
            "ts": at.isoformat(), "channel": channel, "granted": False}  # fmt: skip


@pytest.fixture
async def store(kafka_redis: Services) -> AsyncIterator[FeatureStore]:
    config = StoreConfig(secret=b"resend-secret", prefix=f"rs{uuid.uuid4().hex[:8]}")
    store = FeatureStore.from_url(kafka_redis.redis_url, config)
    yield store
    await store.close()


async def recorded_not_sent(store: FeatureStore, event: dict[str, Any]) -> str:
    """A worker decides on ``event`` and records its decision, then stops before sending
    it; the decision's id."""
    worker = TouchpointHandler(store, POLICY)
    result = await worker.handle([record(0, event)], Counter())
    (decision,) = result.decisions
    assert [o.offer_id for o in decision.offers] == ["tips"]
    await worker.without_erased(result)
    await worker.reserve(result)
    return decision.decision_id


async def test_a_worker_started_again_sends_no_offer_on_a_channel_withdrawn_since(
    store: FeatureStore,
) -> None:
    now = datetime.now(UTC)
    opened = email_opened("withdraws-email", now - timedelta(minutes=10))
    decision_id = await recorded_not_sent(store, opened)
    # the next worker reads the partition again: the email opened, then the withdrawal
    withdrawn = withdrawal("withdraws-email", "email", now - timedelta(minutes=5))
    result = await TouchpointHandler(store, POLICY).handle(
        [record(0, opened), record(1, withdrawn)], Counter()
    )
    (sent,) = result.decisions
    assert sent.decision_id == decision_id  # the recorded decision, not a new one
    assert sent.offers == [] and sent.reasons[-1] == "suppressed:consent:email"


async def test_a_redriven_letter_sends_no_offer_after_a_withdrawal_of_all(
    store: FeatureStore,
) -> None:
    now = datetime.now(UTC)
    opened = email_opened("withdraws-all", now - timedelta(minutes=10))
    decision_id = await recorded_not_sent(store, opened)  # then Kafka refused the batch
    worker = TouchpointHandler(store, POLICY)
    withdrawn = withdrawal("withdraws-all", "all", now - timedelta(minutes=5))
    await worker.handle([record(1, withdrawn)], Counter())
    result = await worker.handle([record(0, opened, redriven=True)], Counter())
    (sent,) = result.decisions
    assert sent.decision_id == decision_id
    assert sent.offers == [] and sent.reasons[-1] == "suppressed:consent:email"


async def test_a_recorded_decision_still_allowed_is_sent_as_it_was(
    store: FeatureStore,
) -> None:
    opened = email_opened("stays", datetime.now(UTC) - timedelta(minutes=10))
    decision_id = await recorded_not_sent(store, opened)
    result = await TouchpointHandler(store, POLICY).handle([record(0, opened)], Counter())
    (sent,) = result.decisions
    assert sent.decision_id == decision_id and [o.offer_id for o in sent.offers] == ["tips"]
