"""What the recommendations view answers, with the Recommender replaced by a stand-in
that returns a decision taken just before a catalogue reload."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from aiohttp.test_utils import TestClient, TestServer

from agents.catalogue_holder import CatalogueHolder
from schemas import NextBestOffer, Offer, OfferCatalogue, OfferScore
from tests.unit.api_app import api_app

OLD = OfferCatalogue(version="1", offers=[Offer(offer_id="shop", title="Winter sale",
                                                channels=["web"])])  # fmt: skip
NEW = OfferCatalogue(version="2", offers=[Offer(offer_id="shop", title="Spring sale",
                                                channels=["web"])])  # fmt: skip


class DecidedBeforeTheReload:
    """Decides with the catalogue of version 1; the reload lands while it stores it."""

    def __init__(self, holder: CatalogueHolder) -> None:
        self.holder = holder

    async def recommend(self, customer_id: str, channel: str, limit: int) -> NextBestOffer:
        self.holder.current = NEW
        shop = OfferScore(offer_id="shop", score=1.0, propensity=1.0)
        return NextBestOffer(
            decision_id="d-1",
            customer_id=customer_id,
            ts=datetime(2026, 12, 2, tzinfo=UTC),
            channel=channel,
            trigger_event_id=None,
            catalogue_version="1",
            offers=[shop],
        )


async def test_titles_come_from_the_catalogue_the_offers_were_decided_with() -> None:
    holder = CatalogueHolder(OLD)
    metrics = SimpleNamespace(
        decided=lambda *a: SimpleNamespace(inc=lambda: None), offers_in=lambda decision: None
    )
    app = api_app(catalogue=holder, recommender=DecidedBeforeTheReload(holder), metrics=metrics)
    async with TestClient(TestServer(app)) as client:
        reply = await client.get(
            "/v1/customers/c1/recommendations", headers={"X-API-Key": "backend-key"}
        )
        body = await reply.json()
    assert reply.status == 200, body
    assert body["catalogue_version"] == "1"
    assert [o["title"] for o in body["offers"]] == ["Winter sale"]  # not version 2's
