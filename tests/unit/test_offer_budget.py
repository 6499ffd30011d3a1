"""Daily offer budgets: the catalogue field, the ledger, and decisions that spend it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import msgspec
import pytest

from agents.bandit import LinUCBOffers
from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.context import DIMENSION
from agents.control_group import ControlGroup
from agents.learned_policy import LearnedOfferPolicy, ModelHolder
from agents.moments import request_moment
from agents.offer_budget import BudgetLedger, budget_spending, offers_spent
from agents.offer_policy import OfferPolicy
from agents.offer_rules import RuleBasedOfferPolicy
from feature_store import BudgetSpend, CustomerFeatures
from schemas import NextBestOffer, Offer, OfferCatalogue, OfferScore
from streams.metrics import Metrics

NOW = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)
VOUCHER = Offer(offer_id="voucher", title="EUR 20 voucher", channels=["web"], value=20.0,
                priority=5.0, daily_limit=2)  # fmt: skip
NEWSLETTER = Offer(offer_id="newsletter", title="Weekly picks", channels=["web"])
CATALOGUE = OfferCatalogue(
    version="b1", offers=[VOUCHER, NEWSLETTER], default_offers=["newsletter"]
)
CONTACT = ContactPolicy(ControlGroup("salt", 0.0))
KNOWN = CustomerFeatures(events=4, purchases=1, spend=60.0, segment="growth")


def policies() -> list[OfferPolicy]:
    holder = CatalogueHolder(CATALOGUE)
    learned = LinUCBOffers(DIMENSION, epsilon=0.0)
    return [
        RuleBasedOfferPolicy(holder, CONTACT),
        LearnedOfferPolicy(holder, CONTACT, ModelHolder(learned)),
    ]


def test_a_daily_limit_must_be_positive_and_not_on_a_default_offer() -> None:
    with pytest.raises(msgspec.ValidationError, match="daily_limit"):
        msgspec.convert(
            {"offer_id": "x", "title": "X", "channels": ["web"], "daily_limit": 0}, Offer
        )
    with pytest.raises(
        ValueError, match=r"default offers cannot have a daily_limit: \['voucher'\]"
    ):
        OfferCatalogue(version="1", offers=[VOUCHER], default_offers=["voucher"])
    assert CATALOGUE.daily_limits() == {"voucher": 2}


def test_the_ledger_opens_on_the_utc_day_with_the_counts_read() -> None:
    late_in_new_york = datetime(2026, 12, 1, 22, 0, tzinfo=timezone(timedelta(hours=-5)))
    ledger = BudgetLedger.for_day(late_in_new_york, {"voucher": 2}, {"voucher": 1, "old": 9})
    assert ledger.day == date(2026, 12, 2)
    assert ledger.spent == {"voucher": 1}  # only limited offers are tracked
    assert not ledger.exhausted("voucher")
    ledger.spend(["voucher", "newsletter"])
    assert ledger.exhausted("voucher") and not ledger.exhausted("newsletter")
    assert ledger.spent == {"voucher": 2}


def test_the_ledger_and_the_spending_count_the_catalogues_day() -> None:
    """A business in Sydney or Los Angeles has its budgets restart at its own midnight:
    the ledger opens on the catalogue's day, and a decision spends on its day there."""
    evening_utc = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)  # 07:00 on the 2nd in Sydney
    for zone, day in (("UTC", 1), ("Australia/Sydney", 2), ("America/Los_Angeles", 1)):
        ledger = BudgetLedger.for_day(evening_utc, {"voucher": 2}, {"voucher": 1},
                                      date(2026, 12, day), zone)  # fmt: skip
        assert (ledger.day, ledger.timezone) == (date(2026, 12, day), zone)
        assert ledger.spent == {"voucher": 1}  # read for that same day: kept
    early_utc = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)  # 19:00 on the 1st in Los Angeles
    shown = [_shown("d1", early_utc, "voucher"), _shown("d2", evening_utc, "voucher")]
    days = {
        zone: [s.day.day for s in offers_spent(shown, {"voucher": 2}, zone)]
        for zone in ("UTC", "Australia/Sydney", "America/Los_Angeles")
    }
    assert days == {"UTC": [2, 1], "Australia/Sydney": [2, 2], "America/Los_Angeles": [1, 1]}
    # a ledger for the catalogue's day does not take counts read for the UTC day
    stale = BudgetLedger.for_day(evening_utc, {"voucher": 2}, {"voucher": 2},
                                 evening_utc.date(), "Australia/Sydney")  # fmt: skip
    assert stale.spent == {"voucher": 0}


def test_the_catalogue_says_whose_day_its_budgets_count() -> None:
    sydney = msgspec.structs.replace(
        CATALOGUE, contact_policy=msgspec.structs.replace(
            CATALOGUE.contact_policy, timezone="Australia/Sydney"))  # fmt: skip
    evening_utc = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
    decision = _shown("d1", evening_utc, "voucher", "newsletter")
    assert [s.day for s in budget_spending([decision], sydney)] == [date(2026, 12, 2)]
    assert [s.day for s in budget_spending([decision], CATALOGUE)] == [date(2026, 12, 1)]
    unlimited = OfferCatalogue(version="u", offers=[NEWSLETTER], default_offers=["newsletter"])
    assert budget_spending([decision], unlimited) == []


def _shown(decision_id: str, ts: datetime, *offer_ids: str) -> NextBestOffer:
    return NextBestOffer(decision_id=decision_id, customer_id="c", channel="web", ts=ts,
                         trigger_event_id=None, model_version="m",
                         offers=[OfferScore(offer_id=o, score=1.0, propensity=1.0)
                                 for o in offer_ids])  # fmt: skip


@pytest.mark.parametrize("features", [KNOWN, None], ids=["known", "first_contact"])
def test_an_exhausted_offer_is_suppressed_with_its_reason(
    features: CustomerFeatures | None,
) -> None:
    ledger = BudgetLedger.for_day(NOW, {"voucher": 2}, {"voucher": 2})
    verdict = CONTACT.screen("c-1", "web", features, CATALOGUE.offers, NOW, ledger)
    assert [o.offer_id for o in verdict.allowed] == ["newsletter"]
    assert verdict.reasons == ["suppressed:budget:voucher"]
    open_ledger = BudgetLedger.for_day(NOW, {"voucher": 2}, {"voucher": 1})
    verdict = CONTACT.screen("c-1", "web", features, CATALOGUE.offers, NOW, open_ledger)
    assert {o.offer_id for o in verdict.allowed} == {"voucher", "newsletter"}
    assert verdict.reasons == []


@pytest.mark.parametrize("policy", policies(), ids=["rules", "learned"])
def test_decisions_of_one_batch_share_the_budget(
    policy: OfferPolicy,
) -> None:
    ledger = BudgetLedger.for_day(NOW, CATALOGUE.daily_limits(), {"voucher": 0})
    decisions = [
        policy.decide(request_moment(f"c-{i}", "web", 2), KNOWN, NOW, ledger) for i in range(5)
    ]
    with_voucher = [d for d in decisions if "voucher" in {o.offer_id for o in d.offers}]
    assert len(with_voucher) == 2
    assert decisions[:2] == with_voucher  # first come, first served
    for later in decisions[2:]:
        assert [o.offer_id for o in later.offers] == ["newsletter"]
        assert "suppressed:budget:voucher" in later.reasons
    assert ledger.spent == {"voucher": 2}
    spent = offers_spent(decisions, CATALOGUE.daily_limits())
    assert spent == [
        BudgetSpend(NOW.date(), d.decision_id, ("voucher",), tuple(o.offer_id for o in d.offers))
        for d in with_voucher
    ]


@pytest.mark.parametrize("policy", policies(), ids=["rules", "learned"])
def test_without_a_ledger_budgets_are_not_applied(
    policy: OfferPolicy,
) -> None:
    decisions = [policy.decide(request_moment(f"c-{i}", "web", 2), KNOWN, NOW) for i in range(3)]
    assert all("voucher" in {o.offer_id for o in d.offers} for d in decisions)


def test_spending_is_counted_on_the_day_each_decision_was_taken() -> None:
    policy = policies()[0]
    before_midnight = NOW.replace(hour=23, minute=59, second=59)
    after_midnight = before_midnight + timedelta(seconds=2)
    decisions = [
        policy.decide(request_moment("c-1", "web", 2), KNOWN, before_midnight),
        policy.decide(request_moment("c-2", "web", 2), KNOWN, after_midnight),
        policy.decide(request_moment("c-3", "web", 2), KNOWN, after_midnight),
    ]
    spent = offers_spent(decisions, {"voucher": 2})
    assert [(s.day, s.offer_ids) for s in spent] == [
        (date(2026, 12, 1), ("voucher",)),
        (date(2026, 12, 2), ("voucher",)),
        (date(2026, 12, 2), ("voucher",)),
    ]
    assert [s.decision_id for s in spent] == [d.decision_id for d in decisions]
    assert offers_spent(decisions, {}) == []


def test_metrics_show_each_budget_and_forget_offers_no_longer_limited() -> None:
    metrics = Metrics()
    ledger = BudgetLedger.for_day(NOW, {"voucher": 2, "callback": 50}, {"callback": 7})
    ledger.spend(["voucher"])
    metrics.budgets_counted(ledger)
    text = metrics.exposition(NOW).decode()
    assert 'moments_offer_budget_spent{offer="voucher"} 1.0' in text
    assert 'moments_offer_budget_spent{offer="callback"} 7.0' in text
    assert 'moments_offer_budget_limit{offer="callback"} 50.0' in text
    metrics.budgets_counted(BudgetLedger.for_day(NOW, {"voucher": 3}, {"voucher": 2}))
    text = metrics.exposition(NOW).decode()
    assert 'moments_offer_budget_spent{offer="voucher"} 2.0' in text
    assert 'moments_offer_budget_limit{offer="voucher"} 3.0' in text
    assert "callback" not in text


def test_metrics_show_budgets_unspent_once_their_day_is_over() -> None:
    metrics = Metrics()
    metrics.budgets_counted(BudgetLedger.for_day(NOW, {"voucher": 5}, {"voucher": 4}))
    same_day = NOW.replace(hour=23, minute=59)
    assert (
        'moments_offer_budget_spent{offer="voucher"} 4.0' in metrics.exposition(same_day).decode()
    )
    next_day = NOW.replace(hour=0, minute=0) + timedelta(days=1)
    text = metrics.exposition(next_day).decode()
    assert 'moments_offer_budget_spent{offer="voucher"} 0.0' in text
    assert 'moments_offer_budget_limit{offer="voucher"} 5.0' in text
    # a batch of the new day counts again from what it read
    metrics.budgets_counted(BudgetLedger.for_day(next_day, {"voucher": 5}, {"voucher": 1}))
    assert (
        'moments_offer_budget_spent{offer="voucher"} 1.0' in metrics.exposition(next_day).decode()
    )


def test_a_batch_of_the_day_before_finishing_late_does_not_show_its_spending() -> None:
    metrics = Metrics()
    next_day = NOW + timedelta(days=1)
    metrics.budgets_counted(BudgetLedger.for_day(next_day, {"voucher": 5}, {"voucher": 1}))
    metrics.budgets_counted(BudgetLedger.for_day(NOW, {"voucher": 5}, {"voucher": 4}))
    text = metrics.exposition(next_day).decode()
    assert 'moments_offer_budget_spent{offer="voucher"} 1.0' in text


def test_metrics_drop_every_budget_when_a_catalogue_without_budgets_is_loaded() -> None:
    metrics = Metrics()
    metrics.budgets_counted(BudgetLedger.for_day(NOW, {"voucher": 5}, {"voucher": 5}))
    assert 'moments_offer_budget_spent{offer="voucher"} 5.0' in metrics.exposition(NOW).decode()
    unlimited = OfferCatalogue(version="v2", offers=[Offer(offer_id="voucher", title="V",
                                                           channels=["web"])])  # fmt: skip
    metrics.catalogue_in_use(unlimited, "ok")  # batches after it count no budgets at all
    assert "moments_offer_budget_" not in "\n".join(
        line for line in metrics.exposition(NOW).decode().splitlines() if not line.startswith("#")
    )


def limited(version: str, **limits: int) -> OfferCatalogue:
    offers = [
        Offer(offer_id=o, title=o, channels=["web"], daily_limit=n) for o, n in limits.items()
    ]
    return OfferCatalogue(version=version, offers=offers)


def test_a_reload_shows_its_limits_at_once_and_a_late_batch_of_the_old_one_changes_none() -> None:
    metrics = Metrics()
    metrics.catalogue_in_use(limited("v1", voucher=100, gift=5))
    metrics.budgets_counted(
        BudgetLedger.for_day(NOW, {"voucher": 100, "gift": 5}, {"gift": 5, "voucher": 90})
    )
    metrics.catalogue_in_use(limited("v2", voucher=1000, gift=5), "applied")  # raised tenfold
    text = metrics.exposition(NOW).decode()
    assert 'moments_offer_budget_limit{offer="voucher"} 1000.0' in text  # not 90 % used
    metrics.catalogue_in_use(limited("v3", voucher=1000), "applied")  # the gift's budget gone
    # a batch decided with v2 (the catalogue it started with) finishes after the reload
    metrics.budgets_counted(
        BudgetLedger.for_day(NOW, {"voucher": 100, "gift": 5}, {"gift": 5, "voucher": 95})
    )
    text = metrics.exposition(NOW).decode()
    assert "gift" not in text
    assert 'moments_offer_budget_limit{offer="voucher"} 1000.0' in text
    assert 'moments_offer_budget_spent{offer="voucher"} 95.0' in text


def test_a_reload_to_a_timezone_behind_shows_the_new_days_budgets_at_once() -> None:
    """A business moving its catalogue from Kiritimati (+14 h) to Los Angeles time goes
    back a day: the spent gauges show nothing until its batches count that day (it may be
    spent already), then its counts, not the old day's until the new zone's date catches
    up; a batch decided before the reload (the old zone's day) changes nothing."""
    metrics = Metrics()
    kiritimati, los_angeles = in_zone("Pacific/Kiritimati"), in_zone("America/Los_Angeles")
    noon = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # the 2nd in Kiritimati, the 1st in LA
    metrics.catalogue_in_use(kiritimati, now=noon)
    metrics.budgets_counted(
        BudgetLedger.for_day(noon, {"voucher": 2}, {"voucher": 1}, timezone="Pacific/Kiritimati")
    )
    assert 'moments_offer_budget_spent{offer="voucher"} 1.0' in metrics.exposition(noon).decode()
    metrics.catalogue_in_use(los_angeles, "ok", now=noon)  # its day may be spent: unknown
    assert 'moments_offer_budget_spent{offer="voucher"}' not in metrics.exposition(noon).decode()
    assert 'moments_offer_budget_limit{offer="voucher"} 2.0' in metrics.exposition(noon).decode()
    later = noon + timedelta(hours=1)
    metrics.budgets_counted(BudgetLedger.for_day(later, {"voucher": 2}, {"voucher": 2},
                                                 timezone="America/Los_Angeles"))  # fmt: skip
    metrics.budgets_counted(BudgetLedger.for_day(later, {"voucher": 2}, {"voucher": 1},
                                                 timezone="Pacific/Kiritimati"))  # fmt: skip
    assert 'moments_offer_budget_spent{offer="voucher"} 2.0' in metrics.exposition(later).decode()


def in_zone(timezone: str) -> OfferCatalogue:
    rules = msgspec.structs.replace(CATALOGUE.contact_policy, timezone=timezone)
    return msgspec.structs.replace(CATALOGUE, version=timezone, contact_policy=rules)


def test_a_reload_to_a_timezone_ahead_shows_its_new_day_unspent() -> None:
    metrics = Metrics()
    noon = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    metrics.catalogue_in_use(CATALOGUE, now=noon)
    metrics.budgets_counted(BudgetLedger.for_day(noon, {"voucher": 2}, {"voucher": 1}))
    metrics.catalogue_in_use(in_zone("Pacific/Kiritimati"), "ok", now=noon)  # the 2nd there
    assert 'moments_offer_budget_spent{offer="voucher"} 0.0' in metrics.exposition(noon).decode()
