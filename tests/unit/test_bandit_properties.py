"""Properties of the offer bandit (agents/bandit.py) on any learning history: a model
published as a snapshot and loaded by another process decides exactly as the learner's
did, and a ranking always lists eligible offers once each, with estimates, scores and
logged propensities that off-policy evaluation can trust."""

from __future__ import annotations

import math

import msgspec
from hypothesis import given, note, settings
from hypothesis import strategies as st

from agents.bandit import LinUCBOffers
from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.context import DIMENSION
from agents.learned_policy import LearnedOfferPolicy, ModelHolder
from agents.moments import DecisionMoment
from schemas import OfferCatalogue
from tests.unit.decision_strategies import (
    CHANNELS,
    NOBODY,
    catalogues,
    customer_features,
    instants,
    offer_models,
)

ARMS = tuple(f"o{i}" for i in range(6))
feature = st.floats(-3, 3)
QUICK = settings(max_examples=40, deadline=None)


def published(model: LinUCBOffers) -> LinUCBOffers:
    """The model as another process loads it from a snapshot the learner published: its
    state through JSON, the snapshot's ``model`` (streams/model_snapshots.py)."""
    return LinUCBOffers.from_dict(msgspec.json.decode(msgspec.json.encode(model.to_dict())))


@st.composite
def bandits(draw: st.DrawFn) -> LinUCBOffers:
    """A small bandit with any exploration, ridge and prior, after some outcomes."""
    d = draw(st.integers(1, 4))
    model = LinUCBOffers(
        d,
        alpha=draw(st.floats(0, 2)),
        epsilon=draw(st.sampled_from([0.0, 0.05, 1.0]) | st.floats(1e-6, 1)),
        ridge=draw(st.floats(0.1, 10)),
        prior=draw(st.floats(0, 1)),
        optimism=draw(st.sampled_from([0.0, 0.2, 1.0]) | st.floats(0, 1)),
    )
    for _ in range(draw(st.integers(0, 20))):
        x = draw(st.lists(feature, min_size=d, max_size=d))
        at = draw(st.none() | st.floats(0, 1e9))
        model.learn_one(x, draw(st.sampled_from(ARMS)), draw(st.sampled_from([0.0, 1.0])), at)
    return model


@st.composite
def rankings(
    draw: st.DrawFn, model: LinUCBOffers
) -> tuple[list[float], list[str], dict[str, float], str, int]:
    """What a decision asks the bandit: its context, the eligible offers (some never
    learned), their worth, the decision id (the seed) and how many to list."""
    x = draw(st.lists(feature, min_size=model.dimension, max_size=model.dimension))
    arms = draw(st.lists(st.sampled_from([*ARMS, "new1", "new2"]), unique=True, max_size=8))
    worth = {a: draw(st.floats(1, 1e6)) for a in arms if draw(st.booleans())}
    return x, arms, worth, draw(st.text(max_size=12)), draw(st.integers(1, 10))


@QUICK
@given(model=bandits(), data=st.data())
def test_a_published_snapshot_ranks_as_the_learner_did_and_learns_on_alike(
    model: LinUCBOffers, data: st.DataObject
) -> None:
    """The workers score with the snapshot the learner published: through its JSON it
    must give the same state, rankings and predictions, and stay the same after the
    same outcomes (so that a restarted learner carries on where the old one stopped)."""
    loaded = published(model)
    assert loaded.to_dict() == model.to_dict()
    for _ in range(2):
        x, arms, worth, seed, limit = data.draw(rankings(model))
        assert loaded.rank(x, arms, worth, seed, limit) == model.rank(x, arms, worth, seed, limit)
        assert [loaded.predict_one(x, a) for a in arms] == [model.predict_one(x, a) for a in arms]
        arm, reward = data.draw(st.sampled_from(ARMS)), data.draw(st.sampled_from([0.0, 1.0]))
        model.learn_one(x, arm, reward)
        loaded.learn_one(x, arm, reward)
    assert loaded.to_dict() == model.to_dict()


@QUICK
@given(
    catalogue=catalogues(),
    model=offer_models(),
    channel=st.sampled_from(CHANNELS),
    inbound=st.booleans(),
    category=st.none() | st.sampled_from(["books", "home", "travel"]),
    limit=st.integers(1, 5),
    data=st.data(),
)
def test_a_restored_offer_model_decides_every_moment_as_the_learners(
    catalogue: OfferCatalogue,
    model: LinUCBOffers,
    channel: str,
    inbound: bool,
    category: str | None,
    limit: int,
    data: st.DataObject,
) -> None:
    """The learned policy of a worker or API process that loaded the published snapshot
    takes the same decision as the learner's own model: the same offers in the same
    order, with the same scores and propensities (what off-policy evaluation reads)."""
    now = data.draw(instants())
    features = data.draw(st.none() | customer_features(now))
    restored = published(model).widened(DIMENSION)  # as model_snapshots.restore does

    def policy(m: LinUCBOffers) -> LearnedOfferPolicy:
        return LearnedOfferPolicy(CatalogueHolder(catalogue), ContactPolicy(NOBODY), ModelHolder(m))

    moment = DecisionMoment(
        data.draw(st.uuids().map(str)),
        "c1",
        channel,
        category=category,
        limit=limit,
        inbound=inbound,
    )
    assert policy(restored).decide(moment, features, now) == policy(model).decide(
        moment, features, now
    )


@QUICK
@given(model=bandits(), data=st.data())
def test_a_ranking_lists_eligible_offers_once_with_trustworthy_propensities(
    model: LinUCBOffers, data: st.DataObject
) -> None:
    """``rank`` lists ``min(limit, eligible)`` distinct eligible offers, the same for the
    same decision; estimates lie in 0..1, scores are finite and not negative, and each
    logged propensity is the chance of being put first: in 0..1, above 0 while
    exploring, summing to 1 over all eligible offers. After the first offer they are
    best first by the scores they were ranked by (all of them when epsilon is 0)."""
    x, arms, worth, seed, limit = data.draw(rankings(model))
    ranked = model.rank(x, arms, worth, seed, limit)
    note(repr(ranked))
    names = [r.arm for r in ranked]
    assert len(names) == len(set(names)) == min(limit, len(arms)) and set(names) <= set(arms)
    assert model.rank(x, arms, worth, seed, limit) == ranked
    for r in ranked:
        assert 0.0 <= r.estimate <= 1.0 and math.isfinite(r.score) and r.score >= 0.0
        assert 0.0 <= r.propensity <= 1.0
        assert model.epsilon == 0 or r.propensity > 0
    assert not any(r.explored for r in ranked[1:])  # said of the first offer alone
    scores = [r.score for r in ranked]
    assert scores[1:] == sorted(scores[1:], reverse=True)
    if model.epsilon == 0:
        assert scores == sorted(scores, reverse=True)
    if model.epsilon == 0 and ranked:  # first by one ranking, or by both
        shares = (1.0, model.optimism, 1 - model.optimism)
        assert any(math.isclose(ranked[0].propensity, s, rel_tol=1e-5) for s in shares)
    if arms:
        everything = model.rank(x, arms, worth, seed, len(arms))
        assert math.isclose(sum(r.propensity for r in everything), 1.0, abs_tol=1e-4)


extreme = st.floats(-1e3, 1e3) | st.sampled_from([0.0, 1e3, -1e3])


@QUICK
@given(
    d=st.integers(1, 4),
    outcomes=st.lists(
        st.tuples(
            st.lists(extreme, min_size=4, max_size=4),
            st.sampled_from(["a", "b"]),
            st.sampled_from([0.0, 0.3, 1.0]),
        ),
        min_size=1,
        max_size=40,
    ),
    x=st.lists(extreme, min_size=4, max_size=4),
)
def test_learning_within_the_feature_range_keeps_the_model_publishable(
    d: int, outcomes: list[tuple[list[float], str, float]], x: list[float]
) -> None:
    """Contexts the learner accepts (``agents.context.learnable``: every feature within
    ±1e3) keep the model's matrices finite: a snapshot holding a figure that is not
    finite is refused on load, which would leave every process on an old model."""
    model = LinUCBOffers(d)
    for context, arm, reward in outcomes:
        model.learn_one(context[:d], arm, reward)
    published(model)  # raises on a figure that is not finite
    for r in model.rank(x[:d], ["a", "b", "c"], {}, "s", 3):
        assert math.isfinite(r.score) and 0.0 <= r.estimate <= 1.0
