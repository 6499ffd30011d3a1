"""agents.learning: what an outcome teaches, and which offer and channel it is about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import generate_latest

from agents.context import DIMENSION
from agents.learning import Example, Judged, judged
from schemas import NextBestOffer, OfferScore, Outcome, encode_decision
from schemas.outcomes import OutcomeKind
from streams.metrics import Metrics

TS = datetime(2026, 12, 1, 12, tzinfo=UTC)
X = [0.5] * DIMENSION
OFFERS = (
    OfferScore(offer_id="book-club", score=0.9, propensity=0.8),
    OfferScore(offer_id="free-shipping", score=0.5, propensity=0.1),
)


def decision(context: list[float] | None = None, channel: str = "email") -> str:
    made = NextBestOffer(
        decision_id="d1", customer_id="c1", ts=TS, channel=channel, trigger_event_id="e1",
        offers=[OFFERS[0], OFFERS[1]],
        control=False, model_version="m1", reasons=[], context=context,
    )  # fmt: skip
    return encode_decision(made).decode()


def outcome(
    offer: str = "book-club", verdict: OutcomeKind = "accepted", ts: datetime = TS
) -> Outcome:
    return Outcome(decision_id="d1", customer_id="c1", offer_id=offer, outcome=verdict, ts=ts)


@pytest.mark.parametrize(
    ("got", "context", "example", "channel"),
    [
        (outcome(), decision(X), Example(X, "book-club", 1.0), "email"),
        # a newer version's context: its added features (at the end) are not learned
        (outcome(), decision([*X, 7.0]), Example(X, "book-club", 1.0), "email"),
        (outcome(), decision([1.0, 0.0]), "bad_context", "email"),  # no layout is that short
        (outcome(), decision([1e200, *X[1:]]), "bad_context", "email"),  # it would poison
        (outcome(verdict="shown"), decision([1.0]), "no_reward", "email"),  # counted, not learned
        (outcome(), decision(None), "no_model_context", "email"),  # rules' or a fallback's
        (outcome(), None, "no_context", None),  # no stored decision: the id is the client's
        (outcome("never-offered"), decision([1.0]), "offer_not_in_decision", None),
        (outcome("never-offered", "shown"), decision([1.0]), "no_reward", None),
        # the second offer, looked at less: learned as if first, it biased the model
        (outcome("free-shipping"), decision(X), "not_first_offer", "email"),
        (outcome("free-shipping", "ignored"), decision(X), "not_first_offer", "email"),
        (outcome("free-shipping", "shown"), decision(X), "no_reward", "email"),
        # dated before its decision, past the clocks' skew: of something else
        (outcome(ts=TS - timedelta(minutes=6)), decision(X), "dated_before_decision", "email"),
        (outcome(ts=TS - timedelta(minutes=4)), decision(X), Example(X, "book-club", 1.0), "email"),
    ],
)
def test_an_outcome_is_attributed_only_to_an_offer_its_decision_made(
    got: Outcome, context: str | None, example: Example | str, channel: str | None
) -> None:
    verdict = judged(got, context)
    assert verdict.example == example
    assert verdict.channel == channel


def test_offers_made_and_their_outcomes_are_counted_by_offer_and_channel() -> None:
    metrics = Metrics()
    made = NextBestOffer(
        decision_id="d1", customer_id="c1", ts=TS, channel="web", trigger_event_id="e1",
        offers=[OFFERS[0], OFFERS[1]],
        control=False, model_version="m1", reasons=[],
    )  # fmt: skip
    for _ in range(3):
        metrics.decision_sent(made)
    metrics.offer_outcome("book-club", "web", "clicked")
    text = generate_latest(metrics.registry).decode()
    assert 'moments_offers_made_total{channel="web",offer="book-club"} 3.0' in text
    assert 'moments_offers_made_total{channel="web",offer="free-shipping"} 3.0' in text
    assert (
        'moments_offer_outcomes_total{channel="web",offer="book-club",outcome="clicked"} 1.0'
        in text
    )
    assert "c1" not in text  # no customer id in any label


@pytest.mark.parametrize("outcome_kind", ["accepted", "shown"])
def test_an_outcome_naming_an_intervention_teaches_nothing_and_raises_nothing(
    outcome_kind: OutcomeKind,
) -> None:
    from schemas import Intervention

    alert = Intervention(
        intervention_id="d1", customer_id="c1", ts=TS, kind="save_desk", priority=1,
        trigger_event_id="e1", reasons=["cancel_call"], suggested_action="Offer a pause",
    )  # fmt: skip
    verdict = judged(outcome(verdict=outcome_kind), encode_decision(alert).decode())
    assert verdict == Judged("not_an_offer_decision", None)


async def test_the_risk_learner_drops_an_example_sent_twice() -> None:
    from types import SimpleNamespace
    from typing import Any

    from agents.risk_watch import RiskHolder
    from schemas.risk import RiskExample, encode_risk_example
    from streams.risk_learner import RiskLearner
    from tests.unit.test_learner_runs import Models

    def sent(example_id: str, y: bool, offset: int) -> SimpleNamespace:
        example = RiskExample(example_id=example_id, x={"bias": 1.0, "days_quiet": 3.0}, y=y,
                              snapshot_ts=TS, label_ts=TS)  # fmt: skip
        return SimpleNamespace(value=encode_risk_example(example), offset=offset)

    store: Any = SimpleNamespace(models=Models())
    learner = RiskLearner(store, RiskHolder(), Metrics(), "127.0.0.1:9", "risk-examples")
    first = [sent("e1:1", True, 0), sent("e2:1", False, 1)]
    assert await learner._learn(0, first) == 2
    again = [sent("e1:1", True, 2), sent("e3:1", True, 3)]
    assert await learner._learn(0, again) == 1  # e1 again


def test_a_learner_that_stops_drops_its_quality_figures() -> None:
    metrics = Metrics()
    metrics.model_logloss.labels("nbo").set(0.4)
    metrics.model_fallback.labels("risk").set(1.0)
    metrics.forget_model_quality("risk")
    text = generate_latest(metrics.registry).decode()
    assert 'moments_model_logloss{model="nbo"} 0.4' in text
    assert 'moments_model_fallback{model="risk"}' not in text
    metrics.forget_model_quality("risk")  # twice: nothing to drop, no error
