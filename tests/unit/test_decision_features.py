"""Decision-only features (``build_features(..., full=False)``) decide exactly as full ones.

The batched recommender reads a lighter view of each customer (``lua/view.lua`` with
``decision``: no recent touchpoints, no 5-minute or hourly buckets) and builds only what
offer decisions read. Here a realistic population's raw state is built with the pure
reference (:class:`feature_store.reference.CustomerState`), and both offer policies must
take the same decision from either view, for every customer, channel and ``now``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.bandit import LinUCBOffers
from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.context import CATEGORIES, DIMENSION, context_vector
from agents.control_group import ControlGroup
from agents.learned_policy import LearnedOfferPolicy, ModelHolder
from agents.moments import DecisionMoment
from agents.offer_rules import RuleBasedOfferPolicy
from feature_store import offers_shown_fact, touchpoint_fact
from feature_store.facts import DAY_MS, ts_ms
from feature_store.features import CustomerFeatures, build_features
from feature_store.reference import CustomerState
from schemas import NextBestOffer, load_catalogue
from streams.simulation.population import CustomerPopulation

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = load_catalogue(REPO_ROOT / "deploy" / "catalogue" / "offers.toml")
CONTACT_POLICY = ContactPolicy(ControlGroup("salt", 0.0))
CHANNELS = ("web", "email", "call", "sms")
START = datetime(2026, 10, 14, 9, 0, tzinfo=UTC)
SPAN_S = 40 * 86400
TOUCHPOINTS = 4000
CONTACTS = 900
DECISION_ID = "0f7c2a52-3d8e-4b61-a2f4-5c9b1e7d3a10"

# what offer decisions read of the features (see build_features' docstring)
DECISION_FIELDS = (
    "segment",
    "value",
    "experience",
    "consent",
    "contact",
    "category_affinity",
    "categories",
    "purchases",
    "emails",
    "last_seen",
    "last_purchase",
)


@dataclass(frozen=True)
class World:
    states: dict[str, CustomerState]
    end: datetime  # the newest fact


def _build_world() -> World:
    population = CustomerPopulation(size=200, seed=11)
    events = list(population.touchpoints(TOUCHPOINTS, START, rate=TOUCHPOINTS / SPAN_S))
    states: dict[str, CustomerState] = {}
    for event in events:
        fact = touchpoint_fact(event)
        states.setdefault(fact.customer_id, CustomerState()).apply(fact, fact.ts_ms)
    end = max(e.ts for e in events)
    # contacts Moments made over the last ten days: fatigue caps, cool-downs, weekly caps
    rng = random.Random(3)
    customers = sorted(states)
    for i in range(CONTACTS):
        customer = rng.choice(customers[:120])  # some customers are contacted a lot
        channel = rng.choice(CHANNELS)
        offers = [o.offer_id for o in CATALOGUE.offers if channel in o.channels]
        shown = rng.sample(offers, k=min(len(offers), rng.randint(1, 3))) if offers else []
        ts = end - timedelta(seconds=rng.uniform(0, 10 * 86400))
        fact = offers_shown_fact(f"contact-{i}", customer, channel, shown, ts)
        states[customer].apply(fact, fact.ts_ms)
    return World(states, end)


WORLD = _build_world()
# several readers' clocks: right after the last fact, later that day, days later
NOWS = {
    "just_after": WORLD.end + timedelta(minutes=1),
    "hours_later": WORLD.end + timedelta(hours=5, minutes=17),
    "next_days": WORLD.end + timedelta(days=2, hours=3),
    "week_later": WORLD.end + timedelta(days=8, hours=11),
}


def full_features(state: CustomerState, now_ms: int) -> CustomerFeatures:
    return build_features(
        dict(state.profile), dict(state.windows), list(state.recent), now_ms, dict(state.contacts)
    )


def decision_features(state: CustomerState, now_ms: int, kinds: str = "dk") -> CustomerFeatures:
    """What ``view.lua`` returns for a decision: only the daily and weekly buckets."""
    windows = {k: v for k, v in state.windows.items() if k[:1] in kinds}
    return build_features(
        dict(state.profile), windows, [], now_ms, dict(state.contacts), full=False
    )


def decision_view(f: CustomerFeatures) -> dict[str, object]:
    return {name: getattr(f, name) for name in DECISION_FIELDS}


def _trained_model() -> LinUCBOffers:
    """A bandit that has learned from a few hundred outcomes, with distinct tastes per offer."""
    rng = random.Random(7)
    model = LinUCBOffers(DIMENSION)
    offers = [o.offer_id for o in CATALOGUE.offers]
    appeal = {offer: rng.uniform(0.02, 0.6) for offer in offers}
    now_ms = ts_ms(WORLD.end)
    customers = sorted(WORLD.states)
    for _ in range(400):
        features = full_features(WORLD.states[rng.choice(customers)], now_ms)
        category = rng.choice((None, *CATEGORIES))
        x = context_vector(features, rng.choice(("web", "email", "call")), category)
        offer = rng.choice(offers)
        in_view = category is not None and features.top_categories(1) == [category]
        liked = appeal[offer] + (0.3 if in_view else 0.0)
        model.learn_one(x, offer, 1.0 if rng.random() < liked else 0.0)
    return model


RULES = RuleBasedOfferPolicy(CatalogueHolder(CATALOGUE), CONTACT_POLICY)
LEARNED = LearnedOfferPolicy(
    CatalogueHolder(CATALOGUE), CONTACT_POLICY, ModelHolder(_trained_model(), version=4)
)


def moments(customer_id: str, index: int) -> Iterator[DecisionMoment]:
    """Every channel, plus web moments with a category in view for some customers."""
    for channel in CHANNELS:
        yield DecisionMoment(DECISION_ID, customer_id, channel, limit=4)
    if index % 2 == 0:
        category = CATEGORIES[index % len(CATEGORIES)]
        yield DecisionMoment(DECISION_ID, customer_id, "web", category=category, limit=4)


def test_the_population_is_rich_enough_for_the_comparison_to_mean_something() -> None:
    now_ms = ts_ms(NOWS["just_after"])
    features = [decision_features(s, now_ms) for s in WORLD.states.values()]
    assert len(features) >= 150
    assert sum(f.experience is not None for f in features) >= 20
    assert sum(bool(f.category_affinity) for f in features) >= 50
    assert sum(f.value > 0 for f in features) >= 20
    assert sum(f.complaints_30d + f.negative_mentions_30d > 0 for f in features) >= 3
    assert sum(bool(f.contact.shown_today) for f in features) >= 10
    assert sum(bool(f.contact.shown_7d) for f in features) >= 50
    assert sum(bool(f.contact.offers_7d) for f in features) >= 50
    assert sum(bool(f.contact.last_shown) for f in features) >= 50
    assert sum(any(not v for v in f.consent.values()) for f in features) >= 1
    assert len({f.segment for f in features}) >= 3
    assert LEARNED.holder.model.updates == 400
    assert len(LEARNED.holder.model.arms) == len(CATALOGUE.offers)


@pytest.mark.parametrize("when", list(NOWS))
def test_decision_fields_equal_the_full_build(when: str) -> None:
    now_ms = ts_ms(NOWS[when])
    for customer_id, state in WORLD.states.items():
        full = full_features(state, now_ms)
        lean = decision_features(state, now_ms)
        assert decision_view(lean) == decision_view(full), customer_id
        # and the rest is indeed left out of the lean build
        assert lean.recent == [] and lean.activity == {} and lean.channel_mix == {}


@pytest.mark.parametrize("when", list(NOWS))
def test_both_policies_decide_the_same_from_either_build(when: str) -> None:
    now = NOWS[when]
    now_ms = ts_ms(now)
    decided: dict[str, list[NextBestOffer]] = {"rules": [], "learned": []}
    for index, (customer_id, state) in enumerate(sorted(WORLD.states.items())):
        full = full_features(state, now_ms)
        lean = decision_features(state, now_ms)
        for moment in moments(customer_id, index):
            for name, policy in (("rules", RULES), ("learned", LEARNED)):
                want = policy.decide(moment, full, now)
                got = policy.decide(moment, lean, now)
                assert got == want, (name, customer_id, moment.channel, moment.category)
                decided[name].append(want)
    # the decisions compared are varied: offers, suppressions and empty answers
    for name, decisions in decided.items():
        firsts = {d.offers[0].offer_id for d in decisions if d.offers}
        assert len(firsts) >= 3, name
        assert any(not d.offers for d in decisions), name
        assert any(any(r.startswith("suppressed:") for r in d.reasons) for d in decisions), name
    assert all(d.context is not None for d in decided["learned"])


def test_leaving_out_the_daily_buckets_would_change_decisions() -> None:
    """The equality above is not vacuous: the daily ('d') buckets feed experience and
    tastes, the weekly ('k') ones value, and without them decisions differ."""
    now = NOWS["just_after"]
    now_ms = ts_ms(now)
    fields_differ = {"d": 0, "k": 0}
    decisions_differ = {"d": 0, "k": 0}
    for index, (customer_id, state) in enumerate(sorted(WORLD.states.items())):
        full = full_features(state, now_ms)
        for dropped, kept in (("d", "k"), ("k", "d")):
            partial = decision_features(state, now_ms, kinds=kept)
            fields_differ[dropped] += decision_view(partial) != decision_view(full)
            for moment in moments(customer_id, index):
                for policy in (RULES, LEARNED):
                    differ = policy.decide(moment, partial, now) != policy.decide(moment, full, now)
                    decisions_differ[dropped] += differ
    assert fields_differ["d"] >= 50 and fields_differ["k"] >= 10, fields_differ
    assert decisions_differ["d"] >= 20 and decisions_differ["k"] >= 5, decisions_differ


def test_daily_buckets_age_out_between_the_readers_clocks() -> None:
    """The clocks compared are far enough apart for windows to move: the same state
    reads differently a week later (so every ``now`` is a distinct case)."""
    early, late = ts_ms(NOWS["just_after"]), ts_ms(NOWS["week_later"])
    assert late - early > 7 * DAY_MS
    changed = sum(
        decision_view(decision_features(s, early)) != decision_view(decision_features(s, late))
        for s in WORLD.states.values()
    )
    assert changed >= 100
