"""RuleBasedOfferPolicy on the real catalogue, the segment it is given and the control group.

The segment is derived on read (``CustomerFeatures.segment``); how is tested in
``test_derived.py`` and ``test_features.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.control_group import ControlGroup
from agents.offer_rules import RuleBasedOfferPolicy, decision_channel, decision_id_for
from feature_store import CustomerFeatures
from schemas import (
    Call,
    NextBestOffer,
    Offer,
    OfferCatalogue,
    Purchase,
    WebClick,
    load_catalogue,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = load_catalogue(REPO_ROOT / "deploy" / "catalogue" / "offers.toml")
T0 = datetime(2026, 11, 23, 14, 5, tzinfo=UTC)
NOW = T0 + timedelta(milliseconds=40)

NOBODY = ControlGroup(salt="test", percent=0.0)
EVERYBODY = ControlGroup(salt="test", percent=100.0)

MODEL = CustomerFeatures(events=12, purchases=3, spend=900.0, survey=0.9, segment="model")
MODEL_TWO_PURCHASES = CustomerFeatures(
    events=12, purchases=2, spend=900.0, survey=0.9, segment="model"
)
GROWTH = CustomerFeatures(events=5, purchases=1, spend=50.0, survey=0.8, segment="growth")
GROWTH_NO_PURCHASE = CustomerFeatures(events=5, purchases=0, spend=0.0, segment="growth")
AT_RISK = CustomerFeatures(events=9, purchases=4, spend=900.0, sentiment=-0.6, segment="at_risk")
DANGLING = CustomerFeatures(events=4, purchases=1, spend=20.0, sentiment=-0.8, segment="dangling")


def policy(limit: int = 3, group: ControlGroup = NOBODY, **kw: object) -> RuleBasedOfferPolicy:
    return RuleBasedOfferPolicy(catalogue=CATALOGUE, control_group=group, limit=limit, **kw)


def click(
    category: str | None = None, event_id: str = "evt-1", customer_id: str = "cust-1"
) -> WebClick:
    return WebClick(event_id=event_id, customer_id=customer_id, ts=T0, page="/p", category=category)


def segment_of(features: CustomerFeatures | None) -> str:
    return "new" if features is None else features.segment


def ids(decision: NextBestOffer) -> list[str]:
    return [o.offer_id for o in decision.offers]


def eligible_ids(channel: str, segment: str, purchases: int) -> set[str]:
    return {
        o.offer_id
        for o in CATALOGUE.offers
        if channel in o.channels
        and (not o.segments or segment in o.segments)
        and purchases >= o.min_purchases
    }


# --------------------------------------------------------------------------------------
# Segments: the policy uses the segment it is given
# --------------------------------------------------------------------------------------


def test_new_customer_without_features_or_with_defaults() -> None:
    assert CustomerFeatures().segment == "new"
    assert policy().decide(click(), None, "web", NOW).reasons == ["segment:new"]
    assert policy().decide(click(), CustomerFeatures(), "web", NOW).reasons == ["segment:new"]


@pytest.mark.parametrize("segment", ["model", "growth", "at_risk", "dangling", "new"])
def test_the_segment_comes_from_the_features(segment: str) -> None:
    """Same figures, different segment: only the segment decides segment-bound offers."""
    features = CustomerFeatures(events=12, purchases=3, spend=900.0, survey=0.9, segment=segment)
    decision = policy(limit=100).decide(click(), features, "web", NOW)
    assert decision.reasons[0] == f"segment:{segment}"
    assert set(ids(decision)) == eligible_ids("web", segment, 3)
    assert ("loyalty-upgrade" in ids(decision)) == (segment == "model")
    assert ("service-recovery-voucher" in ids(decision)) == (segment in ("at_risk", "dangling"))


# --------------------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["web", "email", "sms", "call"])
@pytest.mark.parametrize(
    ("features", "segment"),
    [(None, "new"), (MODEL, "model"), (GROWTH, "growth"), (AT_RISK, "at_risk")],
    ids=["new", "model", "growth", "at_risk"],
)
def test_only_offers_for_the_channel(
    channel: str, features: CustomerFeatures | None, segment: str
) -> None:
    decision = policy(limit=100).decide(click(), features, channel, NOW)
    purchases = features.purchases if features else 0
    assert set(ids(decision)) == eligible_ids(channel, segment, purchases)
    for offer_id in ids(decision):
        offer = CATALOGUE.by_id(offer_id)
        assert offer is not None
        assert channel in offer.channels


def test_sms_only_gets_sms_offers() -> None:
    decision = policy(limit=100).decide(click(), GROWTH, "sms", NOW)
    assert ids(decision) == ["fashion-new-season"]


def test_web_excludes_offers_without_web() -> None:
    catalogue = OfferCatalogue(
        version="t",
        offers=[
            Offer(offer_id="web-one", title="W", channels=["web"], value=1.0),
            Offer(offer_id="email-only", title="E", channels=["email"], value=100.0),
            Offer(offer_id="call-sms", title="C", channels=["call", "sms"], value=100.0),
        ],
    )
    rules = RuleBasedOfferPolicy(catalogue=catalogue, control_group=NOBODY, limit=10)
    decision = rules.decide(click(), GROWTH, "web", NOW)
    assert ids(decision) == ["web-one"]
    assert ids(rules.decide(click(), GROWTH, "email", NOW)) == ["email-only"]


def test_no_eligible_offer_reason() -> None:
    decision = policy().decide(click(), GROWTH, "push", NOW)
    assert decision.offers == []
    assert decision.control is False
    assert decision.reasons == ["segment:growth", "no_eligible_offer"]


# --------------------------------------------------------------------------------------
# Control group and consent
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("features", [None, MODEL, AT_RISK])
def test_control_group_gets_no_offers(features: CustomerFeatures | None) -> None:
    decision = policy(group=EVERYBODY).decide(click(), features, "web", NOW)
    assert decision.control is True
    assert decision.offers == []
    assert decision.reasons == ["control_group"]
    # still a full, traceable decision
    assert decision.customer_id == "cust-1"
    assert decision.trigger_event_id == "evt-1"
    assert decision.decision_id == decision_id_for("evt-1", "web")


@pytest.mark.parametrize("features", [None, MODEL, AT_RISK])
def test_outside_control_group_gets_offers(features: CustomerFeatures | None) -> None:
    decision = policy(group=NOBODY).decide(click(), features, "web", NOW)
    assert decision.control is False
    assert decision.offers
    assert "control_group" not in decision.reasons


def test_control_group_decision_follows_membership() -> None:
    group = ControlGroup(salt="mixed", percent=50.0)
    rules = policy(group=group)
    customers = [f"cust-{i}" for i in range(200)]
    decisions = {c: rules.decide(click(customer_id=c), MODEL, "web", NOW) for c in customers}
    assert {c for c, d in decisions.items() if d.control} == {
        c for c in customers if group.contains(c)
    }
    assert all(bool(d.offers) != d.control for d in decisions.values())


def test_withdrawn_web_consent_suppresses_offers() -> None:
    features = CustomerFeatures(
        events=12, purchases=3, spend=900.0, survey=0.9, segment="model", consent={"web": False}
    )
    decision = policy().decide(click("electronics"), features, "web", NOW)
    assert decision.offers == []
    assert decision.control is False
    assert decision.reasons == ["suppressed:consent:web"]


def test_other_channel_consent_does_not_suppress_web() -> None:
    features = CustomerFeatures(
        events=12,
        purchases=3,
        spend=900.0,
        survey=0.9,
        segment="model",
        consent={"email": False, "web": True},
    )
    assert policy().decide(click(), features, "web", NOW).offers
    email = policy().decide(click(), features, "email", NOW)
    assert email.offers == []
    assert email.reasons == ["suppressed:consent:email"]


# --------------------------------------------------------------------------------------
# Segment restrictions and min_purchases
# --------------------------------------------------------------------------------------


def test_loyalty_upgrade_only_for_model_customers_with_three_purchases() -> None:
    loyalty = CATALOGUE.by_id("loyalty-upgrade")
    assert loyalty is not None
    assert loyalty.segments == ["model"] and loyalty.min_purchases == 3
    rules = policy(limit=100)
    assert "loyalty-upgrade" in ids(rules.decide(click(), MODEL, "web", NOW))
    for features in (MODEL_TWO_PURCHASES, AT_RISK, GROWTH, DANGLING, None):
        assert "loyalty-upgrade" not in ids(rules.decide(click(), features, "web", NOW))
    # AT_RISK has 4 purchases and high spend: the segment, not the count, excludes it
    assert AT_RISK.purchases >= 3
    assert segment_of(AT_RISK) == "at_risk"


def test_loyalty_upgrade_is_top_offer_for_model_customer() -> None:
    decision = policy().decide(click(), MODEL, "web", NOW)
    assert ids(decision)[0] == "loyalty-upgrade"
    assert decision.reasons[0] == "segment:model"


def test_min_purchases_respected() -> None:
    travel = CATALOGUE.by_id("travel-insurance")
    assert travel is not None and travel.min_purchases == 1 and not travel.segments
    rules = policy(limit=100)
    assert segment_of(GROWTH_NO_PURCHASE) == segment_of(GROWTH) == "growth"
    assert "travel-insurance" not in ids(rules.decide(click(), GROWTH_NO_PURCHASE, "web", NOW))
    assert "travel-insurance" not in ids(rules.decide(click(), None, "web", NOW))
    assert "travel-insurance" in ids(rules.decide(click(), GROWTH, "web", NOW))


def test_segment_restricted_offers() -> None:
    rules = policy(limit=100)
    recovery = "service-recovery-voucher"
    assert recovery in ids(rules.decide(click(), AT_RISK, "web", NOW))
    assert recovery in ids(rules.decide(click(), DANGLING, "web", NOW))
    assert recovery not in ids(rules.decide(click(), MODEL, "web", NOW))
    assert recovery not in ids(rules.decide(click(), GROWTH, "web", NOW))
    newsletter = "newsletter-signup"
    assert newsletter in ids(rules.decide(click(), None, "web", NOW))
    assert newsletter in ids(rules.decide(click(), GROWTH, "web", NOW))
    assert newsletter not in ids(rules.decide(click(), MODEL, "web", NOW))
    assert newsletter not in ids(rules.decide(click(), AT_RISK, "web", NOW))


# --------------------------------------------------------------------------------------
# Ranking, context, limits, propensities
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("features", "rank"),
    [
        (None, 0),
        (CustomerFeatures(events=3, purchases=0, segment="growth"), 0),
        (GROWTH, 1),
        (MODEL, 2),
    ],
    ids=["new", "no-purchase", "growth", "model"],
)
def test_click_in_category_ranks_matching_offer_near_top(
    features: CustomerFeatures | None, rank: int
) -> None:
    """First, unless a high-value offer (travel cover, loyalty upgrade) outranks it."""
    without = policy().decide(click(), features, "web", NOW)
    decision = policy().decide(click("electronics"), features, "web", NOW)
    assert ids(decision).index("electronics-bundle") == rank
    assert ids(without).index("electronics-bundle") >= rank
    assert "context:category:electronics" in decision.reasons
    assert decision.reasons[0] == f"segment:{segment_of(features)}"


def test_category_click_boosts_the_matching_offer() -> None:
    rules = policy(limit=100)
    plain = {o.offer_id: o.score for o in rules.decide(click(), GROWTH, "web", NOW).offers}
    boosted = {
        o.offer_id: o.score for o in rules.decide(click("electronics"), GROWTH, "web", NOW).offers
    }
    assert boosted["electronics-bundle"] == pytest.approx(plain["electronics-bundle"] * 1.5)
    for offer_id, score in plain.items():
        if offer_id != "electronics-bundle":
            assert boosted[offer_id] == score


def test_no_context_reason_without_category_or_matching_top_offer() -> None:
    assert not any(
        r.startswith("context:") for r in policy().decide(click(), GROWTH, "web", NOW).reasons
    )
    # "travel" has only travel-insurance, which needs a purchase: no matching offer in top
    decision = policy().decide(click("travel"), GROWTH_NO_PURCHASE, "web", NOW)
    assert "context:category:travel" not in decision.reasons
    assert "travel-insurance" not in ids(decision)
    # an unknown category matches nothing
    assert (
        "context:category:garden"
        not in policy().decide(click("garden"), GROWTH, "web", NOW).reasons
    )


def test_category_history_raises_affinity() -> None:
    rules = policy(limit=100)
    base = {o.offer_id: o.score for o in rules.decide(click(), GROWTH, "web", NOW).offers}
    bookish = CustomerFeatures(
        events=5,
        purchases=1,
        spend=50.0,
        survey=0.8,
        categories={"books": 3, "home": 1},
        segment="growth",
    )
    scores = {o.offer_id: o.score for o in rules.decide(click(), bookish, "web", NOW).offers}
    assert scores["book-club"] == pytest.approx(base["book-club"] * (1 + 3 / 4))
    assert scores["home-refresh"] == pytest.approx(base["home-refresh"] * (1 + 1 / 4))
    assert scores["free-shipping"] == base["free-shipping"]  # no categories: unchanged


@pytest.mark.parametrize("limit", [1, 2, 3, 5])
@pytest.mark.parametrize("features", [None, MODEL, GROWTH, AT_RISK, DANGLING])
def test_at_most_limit_offers_sorted_by_score(
    limit: int, features: CustomerFeatures | None
) -> None:
    decision = policy(limit=limit).decide(click("home"), features, "web", NOW)
    segment = segment_of(features)
    purchases = features.purchases if features else 0
    assert len(decision.offers) == min(limit, len(eligible_ids("web", segment, purchases)))
    scores = [o.score for o in decision.offers]
    assert scores == sorted(scores, reverse=True)
    assert len(set(ids(decision))) == len(decision.offers)
    for offer in decision.offers:
        assert 0.0 <= offer.propensity <= 1.0
        assert offer.score > 0
    # the top `limit` are the best `limit` of all eligible offers
    everything = policy(limit=100).decide(click("home"), features, "web", NOW)
    assert decision.offers == everything.offers[:limit]


@pytest.mark.parametrize("features", [None, MODEL, GROWTH, AT_RISK, DANGLING])
def test_propensities_of_all_eligible_offers_sum_to_one(
    features: CustomerFeatures | None,
) -> None:
    decision = policy(limit=100).decide(click("fashion"), features, "web", NOW)
    assert sum(o.propensity for o in decision.offers) == pytest.approx(1.0, abs=1e-5)
    # propensity is proportional to score
    first = decision.offers[0]
    for offer in decision.offers:
        expected = offer.score / first.score * first.propensity
        assert offer.propensity == pytest.approx(expected, abs=1e-5)


def test_known_scores_for_new_customer() -> None:
    decision = policy().decide(click(), None, "web", NOW)
    # priority * value * margin: 1.2*40*0.3, 1.0*30*0.45, 1.0*35*0.35
    assert [(o.offer_id, o.score) for o in decision.offers] == [
        ("electronics-bundle", 14.4),
        ("fashion-new-season", 13.5),
        ("home-refresh", 12.25),
    ]
    assert decision.reasons == ["segment:new"]


# --------------------------------------------------------------------------------------
# The decision record
# --------------------------------------------------------------------------------------


def test_decision_fields() -> None:
    decision = policy(model_version="rules-test").decide(click(), GROWTH, "web", NOW)
    assert decision.customer_id == "cust-1"
    assert decision.trigger_event_id == "evt-1"
    assert decision.channel == "web"
    assert decision.ts == NOW
    assert decision.trigger_ts == T0
    assert decision.model_version == "rules-test"
    assert decision.control is False


def test_decision_id_is_deterministic() -> None:
    a = policy().decide(click(event_id="evt-7"), GROWTH, "web", NOW)
    b = policy().decide(click(event_id="evt-7"), MODEL, "web", NOW + timedelta(hours=1))
    assert a.decision_id == b.decision_id == decision_id_for("evt-7", "web")
    other = policy().decide(click(event_id="evt-8"), GROWTH, "web", NOW)
    assert other.decision_id != a.decision_id
    assert policy().decide(click(event_id="evt-7"), GROWTH, "email", NOW).decision_id != (
        a.decision_id
    )
    # a stable value: replay after a restart must give the same id
    assert decision_id_for("evt-7", "web") == decision_id_for("evt-7", "web")
    assert len({decision_id_for(f"evt-{i}", "web") for i in range(1000)}) == 1000


def test_decide_is_pure() -> None:
    rules = policy()
    first = rules.decide(click("books"), MODEL, "web", NOW)
    second = rules.decide(click("books"), MODEL, "web", NOW)
    assert first == second


def test_decision_channel() -> None:
    assert decision_channel(click()) == "web"
    purchase = Purchase(
        event_id="e", customer_id="c", ts=T0, order_id="o", amount=1.0, currency="EUR"
    )
    assert decision_channel(purchase) is None
    call = Call(
        event_id="e", customer_id="c", ts=T0, status="started", direction="inbound", reason="sales"
    )
    assert decision_channel(call) is None


# --------------------------------------------------------------------------------------
# ControlGroup
# --------------------------------------------------------------------------------------

IDS = [f"cust-{i:06d}" for i in range(20_000)]


def test_control_group_share_is_about_the_percent() -> None:
    group = ControlGroup(salt="moments-control-v1", percent=5.0)
    share = sum(group.contains(c) for c in IDS) / len(IDS)
    assert 0.043 <= share <= 0.057


@pytest.mark.parametrize("percent", [1.0, 20.0, 50.0])
def test_control_group_share_other_percents(percent: float) -> None:
    group = ControlGroup(salt="s", percent=percent)
    share = 100 * sum(group.contains(c) for c in IDS) / len(IDS)
    assert abs(share - percent) < 1.5


def test_control_group_is_deterministic() -> None:
    a = ControlGroup(salt="s1", percent=5.0)
    b = ControlGroup(salt="s1", percent=5.0)
    members = [c for c in IDS if a.contains(c)]
    assert members == [c for c in IDS if b.contains(c)]
    assert members == [c for c in IDS if a.contains(c)]


def test_salt_changes_membership() -> None:
    a = {c for c in IDS if ControlGroup(salt="s1", percent=5.0).contains(c)}
    b = {c for c in IDS if ControlGroup(salt="s2", percent=5.0).contains(c)}
    assert a and b
    # independent draws overlap in about 5% of members, not most of them
    assert len(a & b) < 0.2 * min(len(a), len(b))


def test_control_group_is_nested_as_percent_grows() -> None:
    small = {c for c in IDS if ControlGroup(salt="s", percent=5.0).contains(c)}
    large = {c for c in IDS if ControlGroup(salt="s", percent=10.0).contains(c)}
    assert small < large


def test_control_group_extremes() -> None:
    assert all(ControlGroup(salt="s", percent=100.0).contains(c) for c in IDS[:2000])
    assert not any(ControlGroup(salt="s", percent=0.0).contains(c) for c in IDS[:2000])
