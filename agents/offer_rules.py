"""Next-best offer by plain eligibility rules (a learning policy replaces the ranking later).

Pure: customer features and the catalogue in, a :class:`NextBestOffer` out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from agents.control_group import ControlGroup
from feature_store import CustomerFeatures
from schemas import NextBestOffer, Offer, OfferCatalogue, OfferScore, TouchpointEvent, WebClick

DECISION_NAMESPACE = uuid.UUID("6f1d0c2e-5b7a-4c1e-9a51-3d7c2b8e4f10")
DECISION_MOMENTS = {"web_click": "web"}


def decision_id_for(trigger_event_id: str, channel: str) -> str:
    """Deterministic, so a replayed event yields the same decision id."""
    return str(uuid.uuid5(DECISION_NAMESPACE, f"nbo:{channel}:{trigger_event_id}"))


def decision_channel(event: TouchpointEvent) -> str | None:
    """The channel an event is a decision moment on, or ``None``."""
    return DECISION_MOMENTS.get(event.kind)


@dataclass(frozen=True, slots=True)
class RuleBasedOfferPolicy:
    catalogue: OfferCatalogue
    control_group: ControlGroup
    limit: int = 3
    model_version: str = "rules-v1"

    def _score(
        self, offer: Offer, features: CustomerFeatures | None, category: str | None
    ) -> float:
        affinity = 1.0
        if features is not None and offer.categories and features.categories:
            total = sum(features.categories.values())
            liked = sum(features.categories.get(c, 0) for c in offer.categories)
            affinity += liked / total
        if category is not None and category in offer.categories:
            affinity *= 1.5
        worth = offer.value * (offer.margin or 1.0) if offer.value else 1.0
        return offer.priority * worth * affinity

    def decide(
        self,
        event: TouchpointEvent,
        features: CustomerFeatures | None,
        channel: str,
        now: datetime,
    ) -> NextBestOffer:

        def decision(
            offers: list[OfferScore], reasons: list[str], control: bool = False
        ) -> NextBestOffer:
            return NextBestOffer(
                decision_id=decision_id_for(event.event_id, channel),
                customer_id=event.customer_id,
                ts=now,
                channel=channel,
                trigger_event_id=event.event_id,
                offers=offers,
                control=control,
                model_version=self.model_version,
                reasons=reasons,
                trigger_ts=event.ts,
            )

        if self.control_group.contains(event.customer_id):
            return decision([], ["control_group"], control=True)
        if features is not None and not features.consents_to(channel):
            return decision([], [f"suppressed:consent:{channel}"])
        segment = features.segment if features is not None else "new"
        category = event.category if isinstance(event, WebClick) else None
        purchases = features.purchases if features is not None else 0
        reasons = [f"segment:{segment}"]
        scored: list[tuple[float, Offer]] = []
        for offer in self.catalogue.offers:
            if channel not in offer.channels:
                continue
            if offer.segments and segment not in offer.segments:
                continue
            if purchases < offer.min_purchases:
                continue
            scored.append((self._score(offer, features, category), offer))
        scored.sort(key=lambda pair: (-pair[0], pair[1].offer_id))
        top = scored[: self.limit]
        total = sum(score for score, _ in scored) or 1.0
        offers = [
            OfferScore(offer_id=o.offer_id, score=round(s, 6), propensity=round(s / total, 6))
            for s, o in top
        ]
        if category is not None and any(category in o.categories for _, o in top):
            reasons.append(f"context:category:{category}")
        if not offers:
            reasons.append("no_eligible_offer")
        return decision(offers, reasons)
