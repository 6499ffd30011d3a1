"""Next-best offer by a contextual bandit that learns from outcomes.

Pure: the contact policy screens, the bandit ranks the allowed offers by estimated
acceptance x value x business priority, and the decision records the context vector,
the propensity of each listed offer and the model version, so that it can be learned
from and evaluated off-policy later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from agents.bandit import LinUCBOffers
from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy, segment_of
from agents.context import DEFAULT_VALUE_SCALE, DIMENSION, context_vector
from agents.moments import DecisionMoment
from agents.offer_budget import BudgetLedger
from feature_store import CustomerFeatures
from schemas import NextBestOffer, OfferCatalogue, OfferScore


@dataclass
class ModelHolder:
    """The snapshot a process scores with; replaced whole when a newer one is loaded."""

    model: LinUCBOffers = field(default_factory=lambda: LinUCBOffers(DIMENSION))
    version: int = 0


@dataclass(frozen=True, slots=True)
class LearnedOfferPolicy:
    catalogue: CatalogueHolder
    contact_policy: ContactPolicy
    holder: ModelHolder
    value_scale: float = DEFAULT_VALUE_SCALE  # see agents.context.value_scale

    @property
    def model_version(self) -> str:
        return f"linucb-v{self.holder.version}"

    def decide(
        self,
        moment: DecisionMoment,
        features: CustomerFeatures | None,
        now: datetime,
        budgets: BudgetLedger | None = None,
        catalogue: OfferCatalogue | None = None,
    ) -> NextBestOffer:
        """The decision at ``moment``; it spends the ``budgets`` of the offers it shows.
        A batch passes the ``catalogue`` its budgets were read for (else: the current)."""
        catalogue = catalogue or self.catalogue.current
        verdict = self.contact_policy.screen(
            moment.customer_id, moment.channel, features, catalogue.offers, now, budgets,
            catalogue.contact_policy, inbound=moment.inbound,
        )  # fmt: skip
        reasons = verdict.opening_reasons(features)
        x = context_vector(features, moment.channel, moment.category, self.value_scale)
        worth = {o.offer_id: o.worth for o in verdict.allowed}
        ranked = self.holder.model.rank(
            x, [o.offer_id for o in verdict.allowed], worth, moment.decision_id, moment.limit
        )
        offers = [
            OfferScore(offer_id=r.arm, score=r.score, propensity=r.propensity) for r in ranked
        ]
        if ranked:
            reasons.append(f"estimate:{ranked[0].arm}:{ranked[0].estimate:.3f}")
            if ranked[0].explored:
                reasons.append("exploration")
        elif verdict.nothing_left(offers):
            reasons.append("no_eligible_offer")
        if budgets is not None:
            budgets.spend(o.offer_id for o in offers)
        return moment.answer(now, offers, self.model_version, reasons, verdict.control, x,
                             catalogue.version, segment_of(features))  # fmt: skip
