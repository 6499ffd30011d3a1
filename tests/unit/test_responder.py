"""The simulator's closed loop, without Kafka: which outcomes a decision gets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.context import context_vector
from agents.learning import REWARDS
from feature_store import CustomerFeatures
from schemas import (
    NextBestOffer,
    OfferScore,
    Purchase,
    decode_outcome,
    decode_touchpoint,
    encode_outcome,
    encode_touchpoint,
    load_catalogue,
)
from streams.settings import Settings
from streams.simulation.population import CustomerPopulation
from streams.simulation.responder import (
    BUYS_AFTER,
    CLICK_REWARD,
    expected_reward,
    in_view,
    outcome_for,
    purchase_after,
    respond,
)

TS = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CATALOGUE = load_catalogue(Settings().catalogue_path)
POPULATION = CustomerPopulation(50, seed=3)
CUSTOMER = POPULATION.customers[0].customer_id


def decision(
    customer_id: str = CUSTOMER,
    offers: tuple[str, ...] = ("book-club", "free-shipping"),
    control: bool = False,
    decision_id: str = "d-1",
    category: str | None = "books",
) -> NextBestOffer:
    return NextBestOffer(
        decision_id=decision_id,
        customer_id=customer_id,
        ts=TS,
        channel="web",
        trigger_event_id="e-1",
        offers=[OfferScore(offer_id=o, score=1.0, propensity=0.9) for o in offers],
        control=control,
        context=context_vector(CustomerFeatures(segment="growth"), "web", category),
    )


def test_outcome_draw_follows_the_acceptance_chance() -> None:
    grid = [(i + 0.5) / 10_000 for i in range(10_000)]
    for p in (0.0, 0.05, 0.3, 0.9):
        kinds = [outcome_for(p, u) for u in grid]
        assert kinds.count("accepted") / len(grid) == pytest.approx(p, abs=1e-3)
        assert set(kinds) <= {"accepted", "clicked", "dismissed", "ignored"}
        mean = sum(REWARDS[k] for k in kinds) / len(grid)
        assert mean == pytest.approx(expected_reward(p), abs=1e-3)
    assert REWARDS["clicked"] == CLICK_REWARD


def test_outcome_draw_is_monotone_in_the_acceptance_chance() -> None:
    # the same draw that accepts a weaker offer accepts every stronger one
    for u in (0.01, 0.2, 0.5, 0.93):
        accepted = [outcome_for(p / 20, u) == "accepted" for p in range(20)]
        assert accepted == sorted(accepted)


def test_a_decision_gets_shown_then_an_answer_for_its_first_offer() -> None:
    answers = respond(decision(), POPULATION, CATALOGUE, seed=1)
    assert len(answers) == 2
    assert answers[0][1].outcome == "shown"
    assert answers[1][1].outcome in {"accepted", "clicked", "dismissed", "ignored"}
    delays = [d for d, _ in answers]
    assert 0 < delays[0] < delays[1] < 30
    for delay, outcome in answers:
        assert outcome.decision_id == "d-1"
        assert outcome.customer_id == CUSTOMER
        assert outcome.offer_id == "book-club"
        assert (outcome.ts - TS).total_seconds() == pytest.approx(delay)
        assert decode_outcome(encode_outcome(outcome)) == outcome  # well-formed on the wire


def test_answers_are_deterministic_per_decision() -> None:
    assert respond(decision(), POPULATION, CATALOGUE, 1) == respond(
        decision(), POPULATION, CATALOGUE, 1
    )
    kinds = {
        respond(decision(decision_id=f"d-{i}"), POPULATION, CATALOGUE, 1)[1][1].outcome
        for i in range(200)
    }
    assert len(kinds) > 1  # but not constant across decisions


@pytest.mark.parametrize(
    "unanswered",
    [
        decision(control=True, offers=()),
        decision(control=True),
        decision(offers=()),
        decision(customer_id="not-simulated"),
        decision(offers=("no-such-offer",)),
    ],
)
def test_no_answer_for_control_empty_unknown(unanswered: NextBestOffer) -> None:
    assert respond(unanswered, POPULATION, CATALOGUE) == []


def test_in_view_reads_the_category_from_the_context() -> None:
    assert in_view(decision(category="travel").context) == "travel"
    assert in_view(decision(category=None).context) is None
    assert in_view(None) is None
    assert in_view([1.0, 0.0]) is None


def test_some_customers_order_after_accepting_and_fewer_after_clicking() -> None:
    ordered: dict[str, list[bool]] = {}
    for i in range(2_000):
        made = decision(decision_id=f"d-{i}")
        answers = respond(made, POPULATION, CATALOGUE, 1)
        order = purchase_after(made, answers, POPULATION, CATALOGUE, 1)
        ordered.setdefault(answers[-1][1].outcome, []).append(order is not None)
        if order is None:
            continue
        delay, purchase = order
        assert isinstance(purchase, Purchase) and purchase.customer_id == CUSTOMER
        assert delay > answers[-1][0]  # after the answer
        assert (purchase.ts - TS).total_seconds() == pytest.approx(delay)
        assert purchase.categories == ["books"]  # book-club's
        assert purchase.amount >= 1.0 and purchase.event_id == f"sim-order-d-{i}"
        assert decode_touchpoint(encode_touchpoint(purchase)) == purchase
        assert order == purchase_after(made, answers, POPULATION, CATALOGUE, 1)  # replayed
    for outcome, chance in BUYS_AFTER.items():
        share = sum(ordered[outcome]) / len(ordered[outcome])
        assert share == pytest.approx(chance, abs=0.1), (outcome, len(ordered[outcome]))
    assert not any(ordered["dismissed"] + ordered["ignored"])


def test_no_order_without_an_answer() -> None:
    held_out = decision(control=True)
    assert purchase_after(held_out, [], POPULATION, CATALOGUE) is None
