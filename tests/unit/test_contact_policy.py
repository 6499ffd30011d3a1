"""ContactPolicy.screen, one rule at a time.

Each test pins one rule: it fails when that rule is taken out of
``agents/contact_policy.py`` (or its boundary moved), and passes for every other rule.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from agents.contact_policy import ContactPolicy, Verdict
from agents.control_group import ControlGroup
from feature_store import CustomerFeatures
from feature_store.features import ContactHistory
from schemas import Offer, load_catalogue
from schemas.catalogue import OfferChannel
from schemas.contact_rules import DAILY_CAPS, WEEKLY_CAPS, ContactRules

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = load_catalogue(REPO_ROOT / "deploy" / "catalogue" / "offers.toml")
NOW = datetime(2026, 11, 23, 14, 5, tzinfo=UTC)
CHANNELS: tuple[OfferChannel, ...] = ("web", "email", "sms", "call")

NOBODY = ControlGroup(salt="test", percent=0.0)
EVERYBODY = ControlGroup(salt="test", percent=100.0)
POLICY = ContactPolicy(NOBODY)

# An offer for every channel and everyone: only the contact rules can hold it back.
ANY = Offer(offer_id="any", title="Any", channels=list(CHANNELS), value=1.0)
HOURLY = Offer(offer_id="hourly", title="H", channels=list(CHANNELS), value=1.0, cooldown_s=3600)
DAILY = Offer(offer_id="daily", title="D", channels=list(CHANNELS), value=1.0, cooldown_s=86400)
WEB_ONLY = Offer(offer_id="web-only", title="W", channels=["web"], value=1.0)
FOR_MODEL = Offer(offer_id="for-model", title="M", channels=["web"], segments=["model"])
FOR_NEW = Offer(offer_id="for-new", title="N", channels=["web"], segments=["new", "growth"])
TWO_PURCHASES = Offer(offer_id="two-purchases", title="P", channels=["web"], min_purchases=2)
OFFERS = [ANY, HOURLY, DAILY]

CUSTOMER = CustomerFeatures(events=10, purchases=2, segment="growth")


def features(**kw: object) -> CustomerFeatures:
    base: dict[str, object] = {"events": 10, "purchases": 2, "segment": "growth"}
    return CustomerFeatures(**{**base, **kw})  # type: ignore[arg-type]


def contact(**kw: object) -> CustomerFeatures:
    return features(contact=ContactHistory(**kw))  # type: ignore[arg-type]


def screen(
    feats: CustomerFeatures | None,
    channel: str = "web",
    offers: list[Offer] = OFFERS,
    now: datetime = NOW,
    policy: ContactPolicy = POLICY,
    customer_id: str = "c1",
    rules: ContactRules | None = None,
) -> Verdict:
    if rules is None:
        return policy.screen(customer_id, channel, feats, offers, now)
    return policy.screen(customer_id, channel, feats, offers, now, rules=rules)


def allowed(verdict: Verdict) -> list[str]:
    return [o.offer_id for o in verdict.allowed]


@pytest.mark.parametrize("channel", CHANNELS)
def test_baseline_everything_allowed(channel: str) -> None:
    """Without any reason to hold back, every offer for the channel is allowed."""
    verdict = screen(CUSTOMER, channel)
    assert verdict == Verdict(list(OFFERS), [], control=False)


# --------------------------------------------------------------------------------------
# Consent
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", CHANNELS)
def test_withdrawn_consent_suppresses_the_channel(channel: str) -> None:
    verdict = screen(features(consent={channel: False}), channel)
    assert verdict == Verdict([], [f"suppressed:consent:{channel}"])


@pytest.mark.parametrize("channel", CHANNELS)
def test_consent_is_per_channel_and_assumed_until_withdrawn(channel: str) -> None:
    others = {c: False for c in CHANNELS if c != channel}
    assert screen(features(consent=others), channel).allowed == OFFERS
    assert screen(features(consent={channel: True}), channel).allowed == OFFERS
    assert screen(features(consent={}), channel).allowed == OFFERS


OPT_IN = ContactRules(consent_required=["email", "sms", "call"])


@pytest.mark.parametrize("channel", ["email", "sms", "call"])
def test_on_an_opt_in_channel_only_consent_granted_counts(channel: str) -> None:
    unknown = Verdict([], [f"suppressed:consent_unknown:{channel}"])
    assert screen(features(consent={}), channel, rules=OPT_IN) == unknown
    assert screen(None, channel, rules=OPT_IN) == unknown  # a first contact, an erased id
    withdrawn = screen(features(consent={channel: False}), channel, rules=OPT_IN)
    assert withdrawn == Verdict([], [f"suppressed:consent:{channel}"])
    assert screen(features(consent={channel: True}), channel, rules=OPT_IN).allowed == OFFERS
    # the web is not opt-in here: assumed, as everywhere by default
    assert screen(features(consent={}), "web", rules=OPT_IN).allowed == OFFERS


def test_a_caller_on_the_line_needs_no_consent_granted_but_a_withdrawal_holds() -> None:
    def on_the_line(feats: CustomerFeatures | None) -> Verdict:
        return POLICY.screen("c1", "call", feats, OFFERS, NOW, rules=OPT_IN, inbound=True)

    assert on_the_line(None).allowed == OFFERS
    assert on_the_line(features(consent={})).allowed == OFFERS
    withdrawn = on_the_line(features(consent={"call": False}))
    assert withdrawn == Verdict([], ["suppressed:consent:call"])


def test_opt_in_names_known_channels_only() -> None:
    with pytest.raises(ValueError, match=r"consent_required names unknown channels \['fax'\]"):
        ContactRules(consent_required=["email", "fax"])


# --------------------------------------------------------------------------------------
# Channels the customer avoids
# --------------------------------------------------------------------------------------


def test_an_unsubscribe_ends_when_email_consent_is_granted_after_it() -> None:
    """An unsubscribe used to be for good: a lifetime count, whatever came after it."""
    gone = features(emails={"unsubscribed": 1}, email_subscribed=False)
    assert screen(gone, "email").reasons == ["suppressed:channel_avoided:email"]
    back = features(emails={"unsubscribed": 1}, email_subscribed=True)
    assert screen(back, "email").allowed
    again = features(emails={"unsubscribed": 1, "bounced": 2}, email_subscribed=True)
    assert not screen(again, "email").allowed  # bounces still count


def test_unsubscribed_customer_is_not_emailed() -> None:
    verdict = screen(features(emails={"unsubscribed": 1, "opened": 5}), "email")
    assert verdict == Verdict([], ["suppressed:channel_avoided:email"])


def test_two_bounces_avoid_email() -> None:
    verdict = screen(features(emails={"bounced": 2}), "email")
    assert verdict == Verdict([], ["suppressed:channel_avoided:email"])
    assert screen(features(emails={"bounced": 7}), "email").allowed == []


def test_one_bounce_is_fine() -> None:
    verdict = screen(features(emails={"bounced": 1, "opened": 3}), "email")
    assert verdict == Verdict(list(OFFERS), [])


@pytest.mark.parametrize("channel", ["web", "sms", "call"])
def test_avoiding_email_leaves_other_channels_open(channel: str) -> None:
    avoider = features(emails={"unsubscribed": 1, "bounced": 5})
    assert screen(avoider, channel) == Verdict(list(OFFERS), [])


def test_consent_is_checked_before_avoidance() -> None:
    verdict = screen(features(consent={"email": False}, emails={"unsubscribed": 1}), "email")
    assert verdict.reasons == ["suppressed:consent:email"]


# --------------------------------------------------------------------------------------
# Fatigue caps, per channel
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", CHANNELS)
def test_daily_cap_reached_suppresses(channel: str) -> None:
    cap = DAILY_CAPS[channel]
    verdict = screen(contact(shown_today={channel: cap}, shown_7d={channel: cap}), channel)
    assert verdict == Verdict([], [f"suppressed:fatigue:{channel}:day"])
    over = screen(contact(shown_today={channel: cap + 3}, shown_7d={channel: cap + 3}), channel)
    assert over.reasons == [f"suppressed:fatigue:{channel}:day"]


@pytest.mark.parametrize("channel", CHANNELS)
def test_one_below_daily_cap_is_allowed(channel: str) -> None:
    below = DAILY_CAPS[channel] - 1
    verdict = screen(contact(shown_today={channel: below}, shown_7d={channel: below}), channel)
    assert verdict == Verdict(list(OFFERS), [])


@pytest.mark.parametrize("channel", CHANNELS)
def test_weekly_cap_reached_suppresses(channel: str) -> None:
    cap = WEEKLY_CAPS[channel]
    verdict = screen(contact(shown_7d={channel: cap}), channel)  # nothing shown today
    assert verdict == Verdict([], [f"suppressed:fatigue:{channel}:week"])


@pytest.mark.parametrize("channel", CHANNELS)
def test_one_below_weekly_cap_is_allowed(channel: str) -> None:
    verdict = screen(contact(shown_7d={channel: WEEKLY_CAPS[channel] - 1}), channel)
    assert verdict == Verdict(list(OFFERS), [])


@pytest.mark.parametrize("channel", CHANNELS)
def test_caps_count_only_the_channel_itself(channel: str) -> None:
    """Every other channel far over its caps does not touch this one."""
    others = {c: 1000 for c in CHANNELS if c != channel}
    assert screen(contact(shown_today=others, shown_7d=others), channel).allowed == OFFERS


def test_default_caps() -> None:
    assert DAILY_CAPS == {"web": 20, "email": 1, "sms": 1, "call": 2}
    assert WEEKLY_CAPS == {"web": 60, "email": 3, "sms": 2, "call": 5}
    assert all(DAILY_CAPS[c] <= WEEKLY_CAPS[c] for c in CHANNELS)
    rules = ContactRules()  # what a catalogue without [contact_policy] has
    assert all(rules.daily_cap(c) == DAILY_CAPS[c] for c in CHANNELS)
    assert all(rules.weekly_cap(c) == WEEKLY_CAPS[c] for c in CHANNELS)


def test_the_catalogues_caps_are_used_and_other_channels_keep_the_defaults() -> None:
    strict = ContactRules(daily_caps={"web": 2, "sms": 0}, weekly_caps={"web": 4})
    assert screen(contact(shown_today={"web": 1}), rules=strict).allowed == OFFERS
    assert screen(contact(shown_today={"web": 2}), rules=strict).reasons == [
        "suppressed:fatigue:web:day"
    ]
    assert screen(contact(shown_7d={"web": 4}), rules=strict).reasons == [
        "suppressed:fatigue:web:week"
    ]
    # a cap of 0: no offers on that channel at all, to a customer Moments does not know too
    assert screen(CUSTOMER, "sms", rules=strict).reasons == ["suppressed:fatigue:sms:day"]
    assert screen(None, "sms", rules=strict).reasons == ["suppressed:fatigue:sms:day"]
    assert screen(None, "web", rules=strict).allowed == OFFERS  # a first contact
    nothing_outbound = ContactRules(outbound_daily_cap=0)
    assert screen(None, "email", rules=nothing_outbound).reasons == [
        "suppressed:fatigue:outbound:day"
    ]
    # email keeps its default caps (1 a day)
    assert screen(contact(shown_today={"email": 1}), "email", rules=strict).reasons == [
        "suppressed:fatigue:email:day"
    ]
    loose = ContactRules(daily_caps={"email": 3}, weekly_caps={"email": 10})
    assert screen(contact(shown_today={"email": 2}), "email", rules=loose).allowed


# Caps across the outbound channels (email, sms and call together), from the catalogue.
ROOMY = {"email": 5, "sms": 5, "call": 5}  # each channel's own caps out of the way
OUTBOUND_RULES = ContactRules(daily_caps=ROOMY, weekly_caps={c: 10 for c in ROOMY},
                              outbound_daily_cap=2, outbound_weekly_cap=3)  # fmt: skip


@pytest.mark.parametrize("channel", ["email", "sms", "call"])
def test_outbound_caps_count_email_sms_and_call_together(channel: str) -> None:
    today = contact(shown_today={"email": 1, "call": 1}, shown_7d={"email": 1, "call": 1})
    assert screen(today, channel, rules=OUTBOUND_RULES).reasons == [
        "suppressed:fatigue:outbound:day"
    ]
    one = contact(shown_today={"sms": 1}, shown_7d={"sms": 1})
    assert screen(one, channel, rules=OUTBOUND_RULES).allowed == OFFERS
    week = contact(shown_today={"sms": 1}, shown_7d={"email": 1, "sms": 2})
    assert screen(week, channel, rules=OUTBOUND_RULES).reasons == [
        "suppressed:fatigue:outbound:week"
    ]


def test_outbound_caps_leave_the_web_alone_and_count_no_web_contacts() -> None:
    busy = contact(shown_today={"email": 2, "web": 5}, shown_7d={"email": 2, "web": 5})
    assert screen(busy, "web", rules=OUTBOUND_RULES).allowed == OFFERS
    web_only = contact(shown_today={"web": 5}, shown_7d={"web": 9})
    assert screen(web_only, "email", rules=OUTBOUND_RULES).allowed == OFFERS


def test_without_outbound_caps_only_each_channels_own_cap_counts() -> None:
    each = ContactRules(daily_caps=ROOMY, weekly_caps={c: 10 for c in ROOMY})
    spread = contact(shown_today={"email": 4, "sms": 4, "call": 4})
    assert screen(spread, "call", rules=each).allowed == OFFERS
    assert each.outbound_caps() == (10**9, 10**9)


def test_a_channels_own_cap_is_named_before_the_outbound_one() -> None:
    tight = ContactRules(daily_caps={"sms": 1}, outbound_daily_cap=1)
    assert screen(contact(shown_today={"sms": 1}), "sms", rules=tight).reasons == [
        "suppressed:fatigue:sms:day"
    ]
    assert screen(contact(shown_today={"sms": 1}), "email", rules=tight).reasons == [
        "suppressed:fatigue:outbound:day"
    ]


@pytest.mark.parametrize(
    ("caps", "fault"),
    [
        ({"outbound_daily_cap": 3, "outbound_weekly_cap": 2}, r"cap \(3\) is above .* \(2\)"),
        ({"outbound_daily_cap": -1}, r">= 0 - at `\$.outbound_daily_cap`"),
    ],
)
def test_outbound_caps_are_validated(caps: dict[str, int], fault: str) -> None:
    with pytest.raises((ValueError, msgspec.ValidationError), match=fault):
        msgspec.convert(caps, ContactRules)


def test_quiet_hours_suppress_the_channel_for_everyone_but_the_control_group() -> None:
    evening = ContactRules(quiet_hours={"call": "13:00-15:00"})  # NOW is 14:05 UTC
    for feats in (CUSTOMER, None):  # known customers and first contacts alike
        verdict = screen(feats, "call", rules=evening)
        assert verdict == Verdict([], ["suppressed:quiet_hours:call"])
    assert screen(CUSTOMER, "web", rules=evening).allowed == OFFERS  # other channels
    later = screen(CUSTOMER, "call", now=NOW + timedelta(hours=1), rules=evening)
    assert later.allowed and "suppressed:quiet_hours:call" not in later.reasons
    held_out = ContactPolicy(EVERYBODY)
    assert screen(CUSTOMER, "call", policy=held_out, rules=evening).reasons == ["control_group"]


# --------------------------------------------------------------------------------------
# Per-offer cool-downs
# --------------------------------------------------------------------------------------


def test_inside_cooldown_suppresses_only_that_offer() -> None:
    verdict = screen(contact(last_shown={"hourly": NOW - timedelta(minutes=59)}))
    assert allowed(verdict) == ["any", "daily"]
    assert verdict.reasons == ["suppressed:cooldown:hourly"]
    assert verdict.control is False


def test_after_cooldown_is_allowed() -> None:
    verdict = screen(contact(last_shown={"hourly": NOW - timedelta(hours=1, seconds=1)}))
    assert verdict == Verdict(list(OFFERS), [])
    # exactly at the end of the cool-down the offer is back
    assert screen(contact(last_shown={"hourly": NOW - timedelta(hours=1)})).allowed == OFFERS


def test_each_offer_has_its_own_cooldown() -> None:
    two_hours_ago = NOW - timedelta(hours=2)
    verdict = screen(contact(last_shown={"hourly": two_hours_ago, "daily": two_hours_ago}))
    assert allowed(verdict) == ["any", "hourly"]
    assert verdict.reasons == ["suppressed:cooldown:daily"]
    both = screen(contact(last_shown={"hourly": NOW, "daily": NOW}))
    assert allowed(both) == ["any"]
    assert both.reasons == ["suppressed:cooldown:hourly", "suppressed:cooldown:daily"]


def test_offer_without_cooldown_may_be_shown_again_at_once() -> None:
    assert screen(contact(last_shown={"any": NOW})).allowed == OFFERS
    # even when recorded by a worker whose clock runs a little ahead
    ahead = contact(last_shown={"any": NOW + timedelta(seconds=2)})
    assert screen(ahead) == Verdict(list(OFFERS), [])


def test_cooldown_applies_on_every_channel() -> None:
    """The last time an offer was shown counts wherever it was shown."""
    recently = contact(last_shown={"daily": NOW - timedelta(hours=3)})
    for channel in CHANNELS:
        verdict = screen(recently, channel)
        assert allowed(verdict) == ["any", "hourly"]
        assert verdict.reasons == ["suppressed:cooldown:daily"]


def test_cooldown_reason_only_for_offers_eligible_on_the_channel() -> None:
    web_cooling = Offer(offer_id="web-cooling", title="W", channels=["web"], cooldown_s=3600)
    verdict = screen(contact(last_shown={"web-cooling": NOW}), "email", offers=[ANY, web_cooling])
    assert verdict == Verdict([ANY], [])


def test_real_catalogue_cooldowns() -> None:
    model = features(
        purchases=3,
        segment="model",
        contact=ContactHistory(last_shown={"loyalty-upgrade": NOW - timedelta(days=6)}),
    )
    verdict = screen(model, offers=CATALOGUE.offers)
    assert "loyalty-upgrade" not in allowed(verdict)
    assert verdict.reasons == ["suppressed:cooldown:loyalty-upgrade"]
    week_later = screen(model, offers=CATALOGUE.offers, now=NOW + timedelta(days=1))
    assert "loyalty-upgrade" in allowed(week_later)
    assert week_later.reasons == []


# --------------------------------------------------------------------------------------
# The control group
# --------------------------------------------------------------------------------------

CONTROL = Verdict([], ["control_group"], control=True)


@pytest.mark.parametrize(
    "feats",
    [None, CUSTOMER, features(consent={"web": False}), contact(shown_today={"web": 99})],
    ids=["no-features", "customer", "no-consent", "fatigued"],
)
def test_everybody_in_control_gets_nothing(feats: CustomerFeatures | None) -> None:
    """The hold-out comes first: no offers and only the control reason."""
    assert screen(feats, policy=ContactPolicy(EVERYBODY)) == CONTROL


@pytest.mark.parametrize("feats", [None, CUSTOMER], ids=["no-features", "customer"])
def test_nobody_in_control_at_zero_percent(feats: CustomerFeatures | None) -> None:
    verdict = screen(feats, policy=ContactPolicy(NOBODY))
    assert verdict.control is False
    assert verdict.allowed == OFFERS
    assert "control_group" not in verdict.reasons


def test_control_membership_is_deterministic_per_customer() -> None:
    group = ControlGroup(salt="mixed", percent=50.0)
    customers = [f"cust-{i}" for i in range(200)]

    def controlled(policy: ContactPolicy) -> set[str]:
        return {c for c in customers if screen(CUSTOMER, policy=policy, customer_id=c).control}

    members = controlled(ContactPolicy(group))
    assert 0 < len(members) < len(customers)
    assert members == {c for c in customers if group.contains(c)}
    # the same answer again, and from a fresh policy with the same salt
    assert controlled(ContactPolicy(group)) == members
    assert controlled(ContactPolicy(ControlGroup(salt="mixed", percent=50.0))) == members
    for c in customers:
        verdict = screen(CUSTOMER, policy=ContactPolicy(group), customer_id=c)
        assert verdict == (CONTROL if c in members else Verdict(list(OFFERS), []))


# --------------------------------------------------------------------------------------
# Eligibility: channel, segment, min_purchases
# --------------------------------------------------------------------------------------


def test_only_offers_for_the_channel() -> None:
    offers = [ANY, WEB_ONLY]
    assert allowed(screen(CUSTOMER, "web", offers)) == ["any", "web-only"]
    assert allowed(screen(CUSTOMER, "email", offers)) == ["any"]
    assert screen(CUSTOMER, "push", offers) == Verdict([], [])


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ("model", ["any", "for-model"]),
        ("growth", ["any", "for-new"]),
        ("new", ["any", "for-new"]),
        ("at_risk", ["any"]),
        ("dangling", ["any"]),
    ],
)
def test_segment_restricted_offers(segment: str, expected: list[str]) -> None:
    verdict = screen(features(segment=segment), offers=[ANY, FOR_MODEL, FOR_NEW])
    assert allowed(verdict) == expected
    assert verdict.reasons == []  # ineligible is not suppressed


@pytest.mark.parametrize(("purchases", "ok"), [(0, False), (1, False), (2, True), (9, True)])
def test_min_purchases(purchases: int, ok: bool) -> None:
    verdict = screen(features(purchases=purchases), offers=[ANY, TWO_PURCHASES])
    assert allowed(verdict) == (["any", "two-purchases"] if ok else ["any"])
    assert verdict.reasons == []


def test_real_catalogue_eligibility() -> None:
    model = screen(features(purchases=3, segment="model"), offers=CATALOGUE.offers)
    assert "loyalty-upgrade" in allowed(model)
    assert "newsletter-signup" not in allowed(model)
    two = screen(features(purchases=2, segment="model"), offers=CATALOGUE.offers)
    assert "loyalty-upgrade" not in allowed(two)
    at_risk = screen(features(purchases=4, segment="at_risk"), "call", CATALOGUE.offers)
    assert allowed(at_risk) == ["travel-insurance", "service-recovery-voucher"]


WINTER_SALE = Offer(
    offer_id="winter-sale", title="S", channels=["web"],
    available_from=NOW + timedelta(days=1), available_until=NOW + timedelta(days=8),
)  # fmt: skip


@pytest.mark.parametrize(
    ("at", "ok"),
    [
        (timedelta(0), False),  # before the campaign
        (timedelta(days=1) - timedelta(microseconds=1), False),
        (timedelta(days=1), True),  # its first moment
        (timedelta(days=4), True),
        (timedelta(days=8) - timedelta(microseconds=1), True),
        (timedelta(days=8), False),  # it has ended
    ],
)
@pytest.mark.parametrize("feats", [CUSTOMER, None], ids=["known", "first-contact"])
def test_offers_are_made_only_while_available(
    at: timedelta, ok: bool, feats: CustomerFeatures | None
) -> None:
    verdict = screen(feats, offers=[ANY, WINTER_SALE], now=NOW + at)
    assert allowed(verdict) == (["any", "winter-sale"] if ok else ["any"])
    assert verdict.reasons == []  # out of season is not suppressed


# --------------------------------------------------------------------------------------
# No features yet: a first contact
# --------------------------------------------------------------------------------------


def test_without_features_only_channel_segment_and_purchase_rules_apply() -> None:
    offers = [ANY, HOURLY, WEB_ONLY, FOR_MODEL, FOR_NEW, TWO_PURCHASES]
    verdict = screen(None, "web", offers)
    # treated as a "new" customer with no purchases; no history, so no cool-down
    assert verdict == Verdict([ANY, HOURLY, WEB_ONLY, FOR_NEW], [])
    assert screen(None, "email", offers) == Verdict([ANY, HOURLY], [])


@pytest.mark.parametrize("channel", CHANNELS)
def test_without_features_consent_is_assumed(channel: str) -> None:
    assert screen(None, channel).allowed == OFFERS


def test_without_features_on_the_real_catalogue() -> None:
    verdict = screen(None, "web", CATALOGUE.offers)
    ids = allowed(verdict)
    assert "newsletter-signup" in ids  # for new customers
    assert "loyalty-upgrade" not in ids  # model segment, 3 purchases
    assert "travel-insurance" not in ids  # 1 purchase
    assert "service-recovery-voucher" not in ids  # at_risk / dangling
    assert verdict.reasons == []
    assert verdict.control is False


def test_screen_is_pure() -> None:
    feats = contact(last_shown={"hourly": NOW}, shown_today={"web": 3})
    assert screen(feats) == screen(feats)
    assert feats.contact.shown_today == {"web": 3}


def test_per_offer_weekly_cap() -> None:
    """An offer shown max_per_week times in seven days is suppressed; others are not."""
    from datetime import UTC, datetime

    from agents.contact_policy import ContactPolicy
    from agents.control_group import ControlGroup
    from feature_store import ContactHistory, CustomerFeatures
    from schemas import Offer

    capped = Offer(offer_id="capped", title="C", channels=["web"], max_per_week=2)
    free = Offer(offer_id="free", title="F", channels=["web"])
    policy = ContactPolicy(ControlGroup("s", 0.0))
    now = datetime(2026, 11, 23, tzinfo=UTC)

    def screen(shown: int) -> list[str]:
        features = CustomerFeatures(
            events=3, segment="growth", contact=ContactHistory(offers_7d={"capped": shown})
        )
        verdict = policy.screen("c", "web", features, [capped, free], now)
        return [o.offer_id for o in verdict.allowed] + verdict.reasons

    assert screen(1) == ["capped", "free"]
    assert screen(2) == ["free", "suppressed:cap:capped"]


def test_a_customer_who_calls_in_is_not_screened_as_if_moments_called_them() -> None:
    """An inbound call is the customer's own timing: the quiet hours and the outbound
    caps, which keep Moments from reaching out, do not silence the agent's offer; the
    customer's consent and the channel's own cap still hold."""
    from agents.moments import moment_for
    from schemas import Call

    rules = ContactRules(quiet_hours={"call": "13:00-15:00"}, daily_caps=ROOMY,
                         weekly_caps={c: 10 for c in ROOMY}, outbound_daily_cap=1)  # fmt: skip
    emailed = contact(shown_today={"email": 1}, shown_7d={"email": 1})
    call = Call(event_id="e1", customer_id="c1", ts=NOW, status="started",
                direction="inbound", reason="sales")  # fmt: skip
    moment = moment_for(call)
    assert moment is not None and moment.inbound
    inbound = POLICY.screen("c1", "call", emailed, OFFERS, NOW, rules=rules, inbound=True)
    assert inbound.allowed == OFFERS
    # asked for over HTTP (a dialler, say): Moments would be the one calling
    assert screen(emailed, "call", rules=rules).reasons == ["suppressed:quiet_hours:call"]
    withdrawn = features(consent={"call": False})
    assert POLICY.screen("c1", "call", withdrawn, OFFERS, NOW, rules=rules,
                         inbound=True).reasons == ["suppressed:consent:call"]  # fmt: skip
    capped = contact(shown_today={"call": 5}, shown_7d={"call": 5})
    assert POLICY.screen("c1", "call", capped, OFFERS, NOW, rules=rules,
                         inbound=True).reasons == ["suppressed:fatigue:call:day"]  # fmt: skip
