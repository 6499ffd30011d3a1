"""The synthetic population: deterministic, valid on the wire, and behaviourally plausible."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from schemas.touchpoints import (
    EVENT_TYPES,
    Call,
    Email,
    Purchase,
    SocialMention,
    Survey,
    TouchpointEvent,
    WebClick,
    decode_touchpoint,
    encode_touchpoint,
)
from streams.simulation.population import CATEGORIES, CustomerPopulation

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def stream(
    seed: int = 42, count: int = 5_000, size: int = 500, rate: float = 5.0
) -> list[TouchpointEvent]:
    return list(CustomerPopulation(size=size, seed=seed).touchpoints(count, START, rate))


@pytest.fixture(scope="module")
def events() -> list[TouchpointEvent]:
    return stream()


@pytest.fixture(scope="module")
def big() -> tuple[CustomerPopulation, list[TouchpointEvent]]:
    population = CustomerPopulation(size=2_000, seed=2026)
    return population, list(population.touchpoints(60_000, START, rate=5.0))


def test_population_is_deterministic_and_well_formed() -> None:
    a, b = CustomerPopulation(200, seed=1), CustomerPopulation(200, seed=1)
    assert a.customers == b.customers
    assert a.customers != CustomerPopulation(200, seed=2).customers
    assert len(a) == 200
    assert a.customers[42].customer_id == "cust-000042"
    assert a.customer("cust-000042") is a.customers[42]
    for customer in a.customers:
        assert customer.value > 0
        assert 0.0 <= customer.satisfaction <= 1.0
        assert 0.0 < customer.email_engagement < 1.0
        assert set(customer.category_tastes) == set(CATEGORIES)
        assert sum(customer.channel_habits.values()) == pytest.approx(1.0)
        assert sum(customer.category_tastes.values()) == pytest.approx(1.0)


def test_same_seed_same_stream_different_seed_different(events: list[TouchpointEvent]) -> None:
    assert stream() == events
    other = stream(seed=43)
    assert [encode_touchpoint(e) for e in other] != [encode_touchpoint(e) for e in events]


def test_repeated_calls_replay_and_shorter_counts_are_prefixes() -> None:
    population = CustomerPopulation(size=300, seed=5)
    first = list(population.touchpoints(1_000, START, 3.0))
    assert list(population.touchpoints(1_000, START, 3.0)) == first
    assert list(population.touchpoints(400, START, 3.0)) == first[:400]


def test_does_not_touch_global_random() -> None:
    random.seed(123)
    expected = random.random()
    random.seed(123)
    stream(count=200)
    assert random.random() == expected


def test_all_seven_types_appear(events: list[TouchpointEvent]) -> None:
    kinds = Counter(event.kind for event in events)
    assert set(kinds) == set(EVENT_TYPES)
    assert kinds["web_click"] > kinds["consent"]


def test_every_event_round_trips(events: list[TouchpointEvent]) -> None:
    for event in events:
        assert decode_touchpoint(encode_touchpoint(event)) == event


def test_ids_unique_and_deterministic(events: list[TouchpointEvent]) -> None:
    ids = [event.event_id for event in events]
    assert len(set(ids)) == len(ids)
    assert ids[0] == "sim-42-000000000"
    assert ids[-1] == f"sim-42-{len(ids) - 1:09d}"
    orders = [e.order_id for e in events if isinstance(e, Purchase)]
    assert len(set(orders)) == len(orders)


def test_arrivals_look_poisson(events: list[TouchpointEvent]) -> None:
    stamps = [event.ts for event in events]
    assert stamps[0] > START
    assert all(a <= b for a, b in pairwise(stamps))
    gaps = [(b - a).total_seconds() for a, b in pairwise([START, *stamps])]
    assert statistics.mean(gaps) == pytest.approx(1 / 5.0, rel=0.1)
    # Exponential gaps: standard deviation close to the mean.
    assert statistics.stdev(gaps) == pytest.approx(statistics.mean(gaps), rel=0.15)
    fast = stream(count=2_000, rate=200.0)
    assert fast[-1].ts - START == pytest.approx(timedelta(seconds=10), rel=0.15)


def test_rejects_bad_arguments() -> None:
    population = CustomerPopulation(10, seed=0)
    with pytest.raises(ValueError):
        CustomerPopulation(0, seed=0)
    with pytest.raises(ValueError):
        list(population.touchpoints(1, START, rate=0.0))
    with pytest.raises(ValueError):
        list(population.touchpoints(1, START.replace(tzinfo=None), rate=1.0))


def test_fields_are_realistic(events: list[TouchpointEvent]) -> None:
    pages = Counter(e.page for e in events if isinstance(e, WebClick))
    assert {"/offers", "/support", "/account/cancel"} <= set(pages)
    assert pages["/account/cancel"] < pages["/offers"]
    for e in events:
        if isinstance(e, WebClick) and e.page.startswith("/products/"):
            assert e.page == f"/products/{e.category}/{e.product_id}"
            assert e.category in CATEGORIES
        elif isinstance(e, Purchase):
            assert e.currency == "EUR" and e.amount > 0
            assert e.categories and set(e.categories) <= set(CATEGORIES)
        elif isinstance(e, Survey):
            assert e.score == int(e.score)
    queues = {e.queue for e in events if isinstance(e, Call)}
    assert {"retention", "support", "sales"} <= queues
    actions = Counter(e.action for e in events if isinstance(e, Email))
    assert actions["sent"] >= actions["delivered"] >= actions["opened"] >= actions["clicked"] > 0
    assert actions["bounced"] > 0 and actions["unsubscribed"] > 0


def test_calls_start_before_they_end(events: list[TouchpointEvent]) -> None:
    started: dict[tuple[str, str | None], datetime] = {}
    ended = 0
    for e in events:
        if not isinstance(e, Call):
            continue
        key = (e.customer_id, e.agent_id)
        if e.status == "started":
            assert e.duration_s is None and e.sentiment is None
            started[key] = e.ts
        else:
            assert e.duration_s is not None and e.sentiment is not None
            assert key in started and started[key] < e.ts
            ended += 1
    assert ended > 0


def test_unhappy_customers_complain_more(
    big: tuple[CustomerPopulation, list[TouchpointEvent]],
) -> None:
    population, events = big

    def rates(low: float, high: float) -> tuple[float, float, float]:
        people = {c.customer_id for c in population.customers if low <= c.satisfaction < high}
        calls = [e for e in events if isinstance(e, Call) and e.status == "started"]
        calls = [e for e in calls if e.direction == "inbound" and e.customer_id in people]
        mentions = [e for e in events if isinstance(e, SocialMention) and e.customer_id in people]
        assert len(calls) > 100 and len(mentions) > 100
        upset = sum(e.reason in ("complaint", "cancel") for e in calls) / len(calls)
        negative = sum(e.sentiment < 0 for e in mentions) / len(mentions)
        return upset, negative, statistics.mean(e.sentiment for e in mentions)

    unhappy, happy = rates(0.0, 0.4), rates(0.8, 1.01)
    assert unhappy[0] > happy[0] + 0.15
    assert unhappy[1] > happy[1] + 0.4
    assert unhappy[2] < 0 < happy[2]


def test_unhappy_customers_visit_cancel_and_score_low(
    big: tuple[CustomerPopulation, list[TouchpointEvent]],
) -> None:
    population, events = big
    unhappy = {c.customer_id for c in population.customers if c.satisfaction < 0.4}
    happy = {c.customer_id for c in population.customers if c.satisfaction > 0.8}

    def share_cancel(people: set[str]) -> float:
        clicks = [e for e in events if isinstance(e, WebClick) and e.customer_id in people]
        return sum(e.page == "/account/cancel" for e in clicks) / len(clicks)

    def csat(people: set[str]) -> float:
        scores = [
            e.score
            for e in events
            if isinstance(e, Survey) and e.scale == "csat5" and e.customer_id in people
        ]
        return statistics.mean(scores)

    assert share_cancel(unhappy) > 3 * share_cancel(happy)
    assert csat(unhappy) < csat(happy) - 1.0


def test_purchases_are_in_the_currency_asked_for() -> None:
    """Always in euros, a deployment counting in dollars kept every simulated purchase
    apart (no rate), and the demo showed no spend, no value and no high-value alert."""
    population = CustomerPopulation(size=50, seed=7, currency="USD")
    orders = [e for e in population.touchpoints(3000, START, rate=5.0) if isinstance(e, Purchase)]
    assert orders and {o.currency for o in orders} == {"USD"}
    euros = stream(seed=7, count=3000, size=50)
    assert {e.currency for e in euros if isinstance(e, Purchase)} == {"EUR"}  # by default
