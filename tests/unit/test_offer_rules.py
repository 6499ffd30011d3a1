"""RuleBasedOfferPolicy on the real catalogue: ranking, limits, reasons and the decision record.

Eligibility and suppression rules live in the contact policy and are tested one by one in
``test_contact_policy.py``; here they are checked through ``decide``. The segment is derived
on read (``CustomerFeatures.segment``); how is tested in ``test_derived.py`` and
``test_features.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.moments import DecisionMoment, decision_id_for, moment_for, request_moment
from agents.offer_rules import RuleBasedOfferPolicy
from feature_store import CustomerFeatures
from feature_store.features import ContactHistory
from schemas import (
    NextBestOffer,
    Offer,
    OfferCatalogue,
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


def policy(
    group: ControlGroup = NOBODY, catalogue: OfferCatalogue = CATALOGUE, **kw: str
) -> RuleBasedOfferPolicy:
    return RuleBasedOfferPolicy(
        catalogue=CatalogueHolder(catalogue), contact_policy=ContactPolicy(group), **kw
    )


def click(
    category: str | None = None, event_id: str = "evt-1", customer_id: str = "cust-1"
) -> WebClick:
    return WebClick(event_id=event_id, customer_id=customer_id, ts=T0, page="/p", category=category)


def moment(
    category: str | None = None,
    channel: str = "web",
    limit: int = 3,
    event_id: str = "evt-1",
    customer_id: str = "cust-1",
) -> DecisionMoment:
    """A decision moment as ``moment_for`` builds it, on any channel and with any limit."""
    return DecisionMoment(
        decision_id=decision_id_for(event_id, channel, customer_id),
        customer_id=customer_id,
        channel=channel,
        trigger_event_id=event_id,
        trigger_ts=T0,
        category=category,
        limit=limit,
    )


def moment_of(event: WebClick) -> DecisionMoment:
    """The moment the stream builds from a click."""
    built = moment_for(event)
    assert built is not None
    return built


ALL = 100  # a limit above the catalogue size: every allowed offer


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


def test_moment_helper_matches_moment_for() -> None:
    """The tests' moments are the ones the stream builds from a click."""
    assert moment("books") == moment_for(click("books"))
    assert moment() == moment_for(click())


# --------------------------------------------------------------------------------------
# Segments: the policy uses the segment it is given
# --------------------------------------------------------------------------------------


def test_new_customer_without_features_or_with_defaults() -> None:
    assert CustomerFeatures().segment == "new"
    assert policy().decide(moment(), None, NOW).reasons == ["segment:new"]
    assert policy().decide(moment(), CustomerFeatures(), NOW).reasons == ["segment:new"]


@pytest.mark.parametrize("segment", ["model", "growth", "at_risk", "dangling", "new"])
def test_the_segment_comes_from_the_features(segment: str) -> None:
    """Same figures, different segment: only the segment decides segment-bound offers."""
    features = CustomerFeatures(events=12, purchases=3, spend=900.0, survey=0.9, segment=segment)
    decision = policy().decide(moment(limit=ALL), features, NOW)
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
    decision = policy().decide(moment(channel=channel, limit=ALL), features, NOW)
    purchases = features.purchases if features else 0
    assert set(ids(decision)) == eligible_ids(channel, segment, purchases)
    assert decision.channel == channel
    for offer_id in ids(decision):
        offer = CATALOGUE.by_id(offer_id)
        assert offer is not None
        assert channel in offer.channels


def test_sms_only_gets_sms_offers() -> None:
    decision = policy().decide(moment(channel="sms", limit=ALL), GROWTH, NOW)
    assert ids(decision) == ["fashion-new-season"]


def test_call_moment_gets_call_offers() -> None:
    decision = policy().decide(moment(channel="call", limit=ALL), MODEL, NOW)
    assert set(ids(decision)) == {"travel-insurance", "loyalty-upgrade"}
    assert ids(decision)[0] == "loyalty-upgrade"  # 1.3 * 120 * 0.6 beats 1.1 * 45 * 0.5


def test_web_excludes_offers_without_web() -> None:
    catalogue = OfferCatalogue(
        version="t",
        offers=[
            Offer(offer_id="web-one", title="W", channels=["web"], value=1.0),
            Offer(offer_id="email-only", title="E", channels=["email"], value=100.0),
            Offer(offer_id="call-sms", title="C", channels=["call", "sms"], value=100.0),
        ],
    )
    rules = policy(catalogue=catalogue)
    assert ids(rules.decide(moment(limit=10), GROWTH, NOW)) == ["web-one"]
    assert ids(rules.decide(moment(channel="email", limit=10), GROWTH, NOW)) == ["email-only"]


def test_no_eligible_offer_reason() -> None:
    decision = policy().decide(moment(channel="push"), GROWTH, NOW)
    assert decision.offers == []
    assert decision.control is False
    assert decision.reasons == ["segment:growth", "no_eligible_offer"]


# --------------------------------------------------------------------------------------
# Control group, consent and the other contact rules, through decide
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("features", [None, MODEL, AT_RISK])
def test_control_group_gets_no_offers(features: CustomerFeatures | None) -> None:
    decision = policy(group=EVERYBODY).decide(moment(), features, NOW)
    assert decision.control is True
    assert decision.offers == []
    assert decision.reasons == ["control_group"]  # no segment, no "no_eligible_offer"
    # the segment is recorded all the same, so the lift can be measured per segment
    assert decision.segment == (features.segment if features is not None else "new")
    # still a full, traceable decision
    assert decision.customer_id == "cust-1"
    assert decision.trigger_event_id == "evt-1"
    assert decision.trigger_ts == T0
    assert decision.decision_id == decision_id_for("evt-1", "web", "cust-1")


@pytest.mark.parametrize("features", [None, MODEL, AT_RISK])
def test_outside_control_group_gets_offers(features: CustomerFeatures | None) -> None:
    decision = policy(group=NOBODY).decide(moment(), features, NOW)
    assert decision.control is False
    assert decision.offers
    assert "control_group" not in decision.reasons


def test_control_group_decision_follows_membership() -> None:
    group = ControlGroup(salt="mixed", percent=50.0)
    rules = policy(group=group)
    customers = [f"cust-{i}" for i in range(200)]
    decisions = {c: rules.decide(moment(customer_id=c), MODEL, NOW) for c in customers}
    members = {c for c in customers if group.contains(c)}
    assert 0 < len(members) < len(customers)
    assert {c for c, d in decisions.items() if d.control} == members
    assert all(bool(d.offers) != d.control for d in decisions.values())


def test_withdrawn_web_consent_suppresses_offers() -> None:
    features = CustomerFeatures(
        events=12, purchases=3, spend=900.0, survey=0.9, segment="model", consent={"web": False}
    )
    decision = policy().decide(moment("electronics"), features, NOW)
    assert decision.offers == []
    assert decision.control is False
    assert decision.reasons == ["segment:model", "suppressed:consent:web"]


def test_other_channel_consent_does_not_suppress_web() -> None:
    features = CustomerFeatures(
        events=12,
        purchases=3,
        spend=900.0,
        survey=0.9,
        segment="model",
        consent={"email": False, "web": True},
    )
    assert policy().decide(moment(), features, NOW).offers
    email = policy().decide(moment(channel="email"), features, NOW)
    assert email.offers == []
    assert email.reasons == ["segment:model", "suppressed:consent:email"]


def test_fatigue_suppresses_the_whole_decision() -> None:
    tired = CustomerFeatures(
        purchases=1, segment="growth", contact=ContactHistory(shown_today={"email": 1})
    )
    decision = policy().decide(moment(channel="email"), tired, NOW)
    assert decision.offers == []
    assert decision.control is False
    assert decision.reasons == ["segment:growth", "suppressed:fatigue:email:day"]
    # the cap is per channel: web is still open
    assert policy().decide(moment(), tired, NOW).offers


def test_unsubscribed_customer_gets_no_email_offers() -> None:
    features = CustomerFeatures(purchases=1, segment="growth", emails={"unsubscribed": 1})
    decision = policy().decide(moment(channel="email"), features, NOW)
    assert decision.offers == []
    assert decision.reasons == ["segment:growth", "suppressed:channel_avoided:email"]
    assert policy().decide(moment(), features, NOW).offers


def test_cooldown_removes_only_that_offer_and_the_next_best_moves_up() -> None:
    before = policy().decide(moment(), MODEL, NOW)
    assert ids(before)[0] == "loyalty-upgrade"
    shown = CustomerFeatures(
        events=12,
        purchases=3,
        spend=900.0,
        survey=0.9,
        segment="model",
        contact=ContactHistory(last_shown={"loyalty-upgrade": NOW - timedelta(days=1)}),
    )
    after = policy().decide(moment(), shown, NOW)
    assert "loyalty-upgrade" not in ids(after)
    assert ids(after) == ids(policy().decide(moment(limit=4), MODEL, NOW))[1:]
    assert after.reasons == ["segment:model", "suppressed:cooldown:loyalty-upgrade"]
    # no "no_eligible_offer" when everything eligible was suppressed by a reason
    assert "no_eligible_offer" not in after.reasons
    # seven days on, the cool-down is over
    later = policy().decide(moment(), shown, NOW + timedelta(days=6))
    assert ids(later)[0] == "loyalty-upgrade"
    assert later.reasons == ["segment:model"]


def test_every_offer_cooling_down_gives_no_offers_and_no_no_eligible_reason() -> None:
    catalogue = OfferCatalogue(
        version="t",
        offers=[Offer(offer_id="only", title="O", channels=["web"], value=1.0, cooldown_s=3600)],
    )
    features = CustomerFeatures(
        segment="growth", contact=ContactHistory(last_shown={"only": NOW - timedelta(minutes=5)})
    )
    decision = policy(catalogue=catalogue).decide(moment(), features, NOW)
    assert decision.offers == []
    assert decision.reasons == ["segment:growth", "suppressed:cooldown:only"]


# --------------------------------------------------------------------------------------
# Segment restrictions and min_purchases
# --------------------------------------------------------------------------------------


def test_loyalty_upgrade_only_for_model_customers_with_three_purchases() -> None:
    loyalty = CATALOGUE.by_id("loyalty-upgrade")
    assert loyalty is not None
    assert loyalty.segments == ["model"] and loyalty.min_purchases == 3
    rules = policy()
    assert "loyalty-upgrade" in ids(rules.decide(moment(limit=ALL), MODEL, NOW))
    for features in (MODEL_TWO_PURCHASES, AT_RISK, GROWTH, DANGLING, None):
        assert "loyalty-upgrade" not in ids(rules.decide(moment(limit=ALL), features, NOW))
    # AT_RISK has 4 purchases and high spend: the segment, not the count, excludes it
    assert AT_RISK.purchases >= 3
    assert segment_of(AT_RISK) == "at_risk"


def test_loyalty_upgrade_is_top_offer_for_model_customer() -> None:
    decision = policy().decide(moment(), MODEL, NOW)
    assert ids(decision)[0] == "loyalty-upgrade"
    assert decision.reasons[0] == "segment:model"


def test_min_purchases_respected() -> None:
    travel = CATALOGUE.by_id("travel-insurance")
    assert travel is not None and travel.min_purchases == 1 and not travel.segments
    rules = policy()
    assert segment_of(GROWTH_NO_PURCHASE) == segment_of(GROWTH) == "growth"
    assert "travel-insurance" not in ids(rules.decide(moment(limit=ALL), GROWTH_NO_PURCHASE, NOW))
    assert "travel-insurance" not in ids(rules.decide(moment(limit=ALL), None, NOW))
    assert "travel-insurance" in ids(rules.decide(moment(limit=ALL), GROWTH, NOW))


def test_segment_restricted_offers() -> None:
    rules = policy()

    def offered(features: CustomerFeatures | None) -> list[str]:
        return ids(rules.decide(moment(limit=ALL), features, NOW))

    recovery = "service-recovery-voucher"
    assert recovery in offered(AT_RISK)
    assert recovery in offered(DANGLING)
    assert recovery not in offered(MODEL)
    assert recovery not in offered(GROWTH)
    newsletter = "newsletter-signup"
    assert newsletter in offered(None)
    assert newsletter in offered(GROWTH)
    assert newsletter not in offered(MODEL)
    assert newsletter not in offered(AT_RISK)


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
    without = policy().decide(moment(), features, NOW)
    decision = policy().decide(moment("electronics"), features, NOW)
    assert ids(decision).index("electronics-bundle") == rank
    assert ids(without).index("electronics-bundle") >= rank
    assert "context:category:electronics" in decision.reasons
    assert decision.reasons[0] == f"segment:{segment_of(features)}"


def test_category_click_boosts_the_matching_offer() -> None:
    rules = policy()
    plain = {o.offer_id: o.score for o in rules.decide(moment(limit=ALL), GROWTH, NOW).offers}
    boosted = {
        o.offer_id: o.score
        for o in rules.decide(moment("electronics", limit=ALL), GROWTH, NOW).offers
    }
    assert boosted["electronics-bundle"] == pytest.approx(plain["electronics-bundle"] * 1.5)
    for offer_id, score in plain.items():
        if offer_id != "electronics-bundle":
            assert boosted[offer_id] == score


def test_no_context_reason_without_category_or_matching_top_offer() -> None:
    assert not any(r.startswith("context:") for r in policy().decide(moment(), GROWTH, NOW).reasons)
    # "travel" has only travel-insurance, which needs a purchase: no matching offer in top
    decision = policy().decide(moment("travel"), GROWTH_NO_PURCHASE, NOW)
    assert "context:category:travel" not in decision.reasons
    assert "travel-insurance" not in ids(decision)
    # an unknown category matches nothing
    assert "context:category:garden" not in policy().decide(moment("garden"), GROWTH, NOW).reasons


def test_context_reason_only_when_a_matching_offer_makes_the_top() -> None:
    # books: book-club is eligible but ranks below the top 1 even with the 1.5 boost
    top_one = policy().decide(moment("books", limit=1), GROWTH, NOW)
    assert "book-club" not in ids(top_one)
    assert "context:category:books" not in top_one.reasons
    everything = policy().decide(moment("books", limit=ALL), GROWTH, NOW)
    assert "book-club" in ids(everything)
    assert "context:category:books" in everything.reasons


def test_category_history_raises_affinity() -> None:
    rules = policy()
    base = {o.offer_id: o.score for o in rules.decide(moment(limit=ALL), GROWTH, NOW).offers}
    bookish = CustomerFeatures(
        events=5,
        purchases=1,
        spend=50.0,
        survey=0.8,
        categories={"books": 3, "home": 1},
        segment="growth",
    )
    scores = {o.offer_id: o.score for o in rules.decide(moment(limit=ALL), bookish, NOW).offers}
    assert scores["book-club"] == pytest.approx(base["book-club"] * (1 + 3 / 4))
    assert scores["home-refresh"] == pytest.approx(base["home-refresh"] * (1 + 1 / 4))
    assert scores["free-shipping"] == base["free-shipping"]  # no categories: unchanged


@pytest.mark.parametrize("limit", [1, 2, 3, 5])
@pytest.mark.parametrize("features", [None, MODEL, GROWTH, AT_RISK, DANGLING])
def test_at_most_limit_offers_sorted_by_score(
    limit: int, features: CustomerFeatures | None
) -> None:
    """The limit comes from the decision moment."""
    decision = policy().decide(moment("home", limit=limit), features, NOW)
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
    everything = policy().decide(moment("home", limit=ALL), features, NOW)
    assert decision.offers == everything.offers[:limit]


def test_default_moment_limit_is_three() -> None:
    assert len(policy().decide(moment_of(click()), GROWTH, NOW).offers) == 3


@pytest.mark.parametrize("features", [None, MODEL, GROWTH, AT_RISK, DANGLING])
def test_propensities_say_the_deterministic_policy_puts_its_best_offer_first(
    features: CustomerFeatures | None,
) -> None:
    """The probability of being put first, as off-policy estimates read it: one for the
    best offer, none for the others (not their share of the scores)."""
    decision = policy().decide(moment("fashion", limit=ALL), features, NOW)
    assert len(decision.offers) > 1
    assert [o.propensity for o in decision.offers] == [1.0] + [0.0] * (len(decision.offers) - 1)


def test_known_scores_for_new_customer() -> None:
    decision = policy().decide(moment(), None, NOW)
    # priority * value * margin: 1.2*40*0.3, 1.0*30*0.45, 1.0*35*0.35
    assert [(o.offer_id, o.score) for o in decision.offers] == [
        ("electronics-bundle", 14.4),
        ("fashion-new-season", 13.5),
        ("home-refresh", 12.25),
    ]
    assert decision.reasons == ["segment:new"]


def test_ties_are_broken_by_offer_id() -> None:
    catalogue = OfferCatalogue(
        version="t",
        offers=[Offer(offer_id=name, title=name, channels=["web"], value=5.0) for name in "cab"],
    )
    decision = policy(catalogue=catalogue).decide(moment(limit=ALL), GROWTH, NOW)
    assert ids(decision) == ["a", "b", "c"]


# --------------------------------------------------------------------------------------
# The decision record
# --------------------------------------------------------------------------------------


def test_decision_fields() -> None:
    decision = policy(model_version="rules-test").decide(moment(), GROWTH, NOW)
    assert decision.customer_id == "cust-1"
    assert decision.trigger_event_id == "evt-1"
    assert decision.channel == "web"
    assert decision.ts == NOW
    assert decision.trigger_ts == T0
    assert decision.model_version == "rules-test"
    assert decision.control is False
    assert decision.fallback is False
    assert policy().decide(moment(), GROWTH, NOW).model_version == "rules-v1"


def test_decision_id_comes_from_the_moment() -> None:
    a = policy().decide(moment_of(click(event_id="evt-7")), GROWTH, NOW)
    b = policy().decide(moment_of(click(event_id="evt-7")), MODEL, NOW + timedelta(hours=1))
    assert a.decision_id == b.decision_id == decision_id_for("evt-7", "web", "cust-1")
    other = policy().decide(moment_of(click(event_id="evt-8")), GROWTH, NOW)
    assert other.decision_id != a.decision_id
    email = policy().decide(moment(channel="email", event_id="evt-7"), GROWTH, NOW)
    assert email.decision_id != a.decision_id


def test_requested_decision_has_no_trigger() -> None:
    requested = request_moment("cust-9", "email", limit=2)
    decision = policy().decide(requested, GROWTH, NOW)
    assert decision.decision_id == requested.decision_id
    assert decision.customer_id == "cust-9"
    assert decision.channel == "email"
    assert decision.trigger_event_id is None
    assert decision.trigger_ts is None
    assert len(decision.offers) == 2
    assert not any(r.startswith("context:") for r in decision.reasons)


def test_decide_is_pure() -> None:
    rules = policy()
    first = rules.decide(moment("books"), MODEL, NOW)
    second = rules.decide(moment("books"), MODEL, NOW)
    assert first == second


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


def test_an_offer_worth_nothing_never_outranks_one_worth_something() -> None:
    """Worth was 1 for an offer of no value, but 0.5 for one of value 0.5."""
    catalogue = OfferCatalogue(version="w", default_offers=["free"], offers=[
        Offer(offer_id="free", title="F", channels=["web"], value=0.0),
        Offer(offer_id="premium", title="P", channels=["web"], value=200.0, margin=0.5),
        Offer(offer_id="coupon", title="C", channels=["web"], value=0.5),
    ])  # fmt: skip
    decision = policy(catalogue=catalogue).decide(moment(), GROWTH, NOW)
    assert ids(decision)[0] == "premium"
    scores = {o.offer_id: o.score for o in decision.offers}
    assert scores["free"] <= scores["coupon"] < scores["premium"]


def test_an_offer_with_no_margin_ranks_below_one_with_some() -> None:
    """A margin of 0 read as unset: a break-even offer ranked as if the business kept all
    its value, ten times above one with a margin of 10 %."""
    catalogue = OfferCatalogue(version="m", default_offers=["tenth"], offers=[
        Offer(offer_id="break-even", title="B", channels=["web"], value=100.0, margin=0.0),
        Offer(offer_id="tenth", title="T", channels=["web"], value=100.0, margin=0.1),
        Offer(offer_id="unset", title="U", channels=["web"], value=100.0),
    ])  # fmt: skip
    decision = policy(catalogue=catalogue).decide(moment(), GROWTH, NOW)
    assert ids(decision) == ["unset", "tenth", "break-even"]
