"""What the feature store keeps of a decision, as the worker, the API and the rebuild all
keep it: the decision record (its context for learning, its place in the customer's
recent decisions) and, for a next-best offer that offered something, the contact it made
(for fatigue caps and per-offer cool-downs)."""

from __future__ import annotations

from collections.abc import Iterable

from feature_store import DecisionRecord, offers_shown_fact
from feature_store.facts import Fact, ts_ms
from schemas import Intervention, NextBestOffer, encode_decision


def decision_record(
    decision: NextBestOffer | Intervention, encoded: bytes | None = None, sent: bool = True
) -> DecisionRecord:
    """What the store keeps of a decision: the decision itself (its JSON, ``encoded`` if
    the caller has it already) is the learning context; a next-best offer that offered
    nothing (held out, or suppressed) is kept for the profile only, a shorter while.
    ``sent``: False for a worker's decision recorded before it is sent."""
    if isinstance(decision, NextBestOffer):
        decision_id, offered = decision.decision_id, bool(decision.offers)
    else:
        decision_id, offered = decision.intervention_id, True
    return DecisionRecord(
        customer_id=decision.customer_id,
        decision_id=decision_id,
        ts_ms=ts_ms(decision.ts),
        context=encoded if encoded is not None else encode_decision(decision),
        trigger_event_id=decision.trigger_event_id,
        offered=offered,
        sent=sent,
    )


def offers_shown(decisions: Iterable[NextBestOffer]) -> list[Fact]:
    """The contacts the decisions made: one per decision that offered something."""
    return [
        offers_shown_fact(d.decision_id, d.customer_id, d.channel,
                          [o.offer_id for o in d.offers], d.ts)
        for d in decisions if d.offers
    ]  # fmt: skip
