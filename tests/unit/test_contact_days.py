"""The fatigue caps count the customer's own day (feature_store/contact_days.py, the
features' contact history, the reference's ceilings): pure logic.

A customer in Sydney with an email cap of one a day, mailed at 09:00 their time, is not
mailed again at 11:00: UTC's midnight fell between the two, and the caps counted UTC
days before.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents.contact_ceilings import ceilings_of
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from feature_store import ContactCeilings, Fact, offers_shown_fact, touchpoint_fact
from feature_store.contact_days import (
    contact_zone,
    contacts_from,
    counted_from_ms,
    day_start_ms,
    week_start_ms,
)
from feature_store.facts import DAY_MS, QUARTER, ts_ms
from feature_store.features import CustomerFeatures, build_features
from feature_store.reference import CustomerState
from schemas import ContactRules, NextBestOffer, Offer, OfferCatalogue, OfferScore, WebClick

SYDNEY = "Australia/Sydney"  # UTC+11 in December (summer time)
HOUR_MS = 3_600_000
TIPS = Offer(offer_id="tips", title="Tips", channels=["web", "email"])
ONE_EMAIL_A_DAY = ContactRules(daily_caps={"email": 1})
POLICY = ContactPolicy(ControlGroup("salt", 0.0))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


# -- the local day's bounds -------------------------------------------------------------


def test_the_day_begins_at_the_local_midnight() -> None:
    at = ts_ms(utc(2026, 12, 6, 0, 0))  # 11:00 on the 6th in Sydney
    assert iso(day_start_ms(at, SYDNEY)) == "2026-12-05T13:00:00+00:00"
    assert iso(day_start_ms(at, "UTC")) == "2026-12-06T00:00:00+00:00"
    assert (
        iso(day_start_ms(at, "America/New_York")) == "2026-12-05T05:00:00+00:00"
    )  # 19:00 on the 5th
    # the week: today and the six days before it, from the start of the UTC day its
    # first local midnight (13:00 UTC on the 29th) falls in
    assert iso(day_start_ms(at, SYDNEY, 6)) == "2026-11-29T13:00:00+00:00"
    assert iso(week_start_ms(at, SYDNEY)) == "2026-11-29T00:00:00+00:00"
    assert iso(counted_from_ms(at, SYDNEY, 1)) == iso(day_start_ms(at, SYDNEY))


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Asia/Kathmandu", "2026-12-05T18:15:00+00:00"),  # +5:45
        ("Australia/Eucla", "2026-12-05T15:15:00+00:00"),  # +8:45
        ("Pacific/Chatham", "2026-12-05T10:15:00+00:00"),  # +13:45 in its summer
        ("Asia/Kolkata", "2026-12-05T18:30:00+00:00"),  # +5:30
    ],
)
def test_a_quarter_hour_offset_begins_its_day_on_a_quarter(zone: str, expected: str) -> None:
    at = ts_ms(utc(2026, 12, 6, 9, 0))
    start = day_start_ms(at, zone)
    assert iso(start) == expected
    assert start % QUARTER.size_ms == 0  # a quarter-hour bucket boundary: counted exactly


def test_a_day_of_a_change_of_summer_time_lasts_23_or_25_hours() -> None:
    paris = "Europe/Paris"
    spring = ts_ms(utc(2026, 3, 29, 12))  # clocks went 02:00 -> 03:00 that morning
    autumn = ts_ms(utc(2026, 10, 25, 12))  # 03:00 -> 02:00
    assert day_start_ms(spring + DAY_MS, paris) - day_start_ms(spring, paris) == 23 * HOUR_MS
    assert day_start_ms(autumn + DAY_MS, paris) - day_start_ms(autumn, paris) == 25 * HOUR_MS
    assert iso(day_start_ms(spring, paris)) == "2026-03-28T23:00:00+00:00"  # still +1
    assert iso(day_start_ms(autumn, paris)) == "2026-10-24T22:00:00+00:00"  # still +2
    # a week across the change: seven local days, one of them 23 hours
    after = ts_ms(utc(2026, 4, 1, 12))
    assert day_start_ms(after, paris) - day_start_ms(after, paris, 6) == (6 * 24 - 1) * HOUR_MS


def test_a_midnight_summer_time_skipped_begins_the_day_at_the_change() -> None:
    # Chile: on 2026-09-06 clocks went from 00:00 (-4) to 01:00 (-3)
    at = ts_ms(utc(2026, 9, 6, 15))
    assert iso(day_start_ms(at, "America/Santiago")) == "2026-09-06T04:00:00+00:00"


def test_the_customers_zone_else_the_catalogues() -> None:
    assert contact_zone(SYDNEY, "Europe/Paris") == SYDNEY
    assert contact_zone(None, "Europe/Paris") == "Europe/Paris"
    assert contact_zone("Not/AZone", "Europe/Paris") == "Europe/Paris"


# -- counting from a local midnight -----------------------------------------------------


def test_counts_leave_out_the_first_days_quarters_before_the_midnight() -> None:
    day = 20_000
    daily = {day: {"shown:email": 3, "offer:tips": 1}, day + 1: {"shown:email": 1}}
    quarters = {day * 96 + 10: {"shown:email": 2, "offer:tips": 1},
                day * 96 + 60: {"shown:email": 1}}  # fmt: skip
    start = day * DAY_MS + 40 * QUARTER.size_ms  # 10:00 UTC
    assert contacts_from(daily, quarters, start, day + 1) == {"shown:email": 2, "offer:tips": 0}
    assert contacts_from(daily, quarters, start, day) == {"shown:email": 1, "offer:tips": 0}


def test_a_contact_with_no_quarter_counts_with_its_whole_utc_day() -> None:
    """Recorded by a Moments from before the quarter-hour buckets: not forgotten."""
    day = 20_000
    start = day * DAY_MS + 13 * HOUR_MS  # Sydney's midnight
    old_style = {day: {"shown:email": 1}}  # 09:00 UTC, before the midnight: counted all the same
    assert contacts_from(old_style, {}, start, day + 1) == {"shown:email": 1}
    # one of two with its quarter (a rolling upgrade): the other still counts
    mixed = {day: {"shown:email": 2}}
    assert contacts_from(mixed, {day * 96 + 4: {"shown:email": 1}}, start, day + 1) == {
        "shown:email": 1
    }


def test_quarters_never_take_away_more_than_the_day_holds() -> None:
    day = 20_000
    start = day * DAY_MS + 13 * HOUR_MS
    daily = {day: {"shown:email": 1}, day + 1: {"shown:email": 2}}
    quarters = {day * 96 + 4: {"shown:email": 5}}  # corrupt, or the day pruned apart
    assert contacts_from(daily, quarters, start, day + 1) == {"shown:email": 2}


# -- the features' contact history and the policy ---------------------------------------


def sydney_history(contacts: dict[str, str], now: datetime, home: str = "UTC",
                   timezone: str | None = SYDNEY) -> CustomerFeatures:  # fmt: skip
    profile = {"n": "1"} | ({"timezone": timezone} if timezone else {})
    return build_features(profile, {}, [], ts_ms(now), contacts, full=False, home_timezone=home)


def emailed(at: datetime) -> dict[str, str]:
    """The contacts hash after one email with an offer at ``at``."""
    state = CustomerState()
    state.apply(offers_shown_fact("d1", "c1", "email", ["tips"], at), ts_ms(at))
    return state.contacts


NINE_SYDNEY = utc(2026, 12, 5, 22)  # 09:00 on the 6th in Sydney
ELEVEN_SYDNEY = utc(2026, 12, 6, 0)  # 11:00 on the 6th: UTC's midnight fell between


def test_a_sydney_customer_mailed_at_nine_has_had_todays_email_at_eleven() -> None:
    features = sydney_history(emailed(NINE_SYDNEY), ELEVEN_SYDNEY)
    assert features.contact.shown_today == {"email": 1}
    assert features.contact.shown_7d == {"email": 1}
    assert features.contact.offers_7d == {"tips": 1}
    verdict = POLICY.screen("c1", "email", features, [TIPS], ELEVEN_SYDNEY, rules=ONE_EMAIL_A_DAY)
    assert verdict.allowed == [] and verdict.reasons == ["suppressed:fatigue:email:day"]


def test_the_next_local_day_counts_afresh() -> None:
    next_morning = NINE_SYDNEY + timedelta(hours=24)
    features = sydney_history(emailed(NINE_SYDNEY), next_morning)
    assert features.contact.shown_today == {} and features.contact.shown_7d == {"email": 1}
    verdict = POLICY.screen("c1", "email", features, [TIPS], next_morning, rules=ONE_EMAIL_A_DAY)
    assert [o.offer_id for o in verdict.allowed] == ["tips"]


def test_the_week_counts_whole_utc_days_from_its_first_local_midnight() -> None:
    # mailed at 23:30 local on the 29th (12:30 UTC): before the week of the 6th, which
    # begins at 13:00 UTC on the 29th, but on that UTC day: counted, a day early at most
    contacts = emailed(utc(2026, 11, 29, 12, 30))
    on_the_5th = utc(2026, 12, 5, 12, 0)  # 23:00 on the 5th in Sydney
    on_the_6th = utc(2026, 12, 5, 14, 0)  # 01:00 on the 6th
    on_the_7th = utc(2026, 12, 6, 14, 0)  # 01:00 on the 7th: its week from the 30th's UTC day
    assert sydney_history(contacts, on_the_5th).contact.shown_7d == {"email": 1}
    assert sydney_history(contacts, on_the_6th).contact.shown_7d == {"email": 1}
    assert sydney_history(contacts, on_the_7th).contact.shown_7d == {}
    # never less than the week: one at 00:30 on the 30th counts to the 6th's last hour
    inside = emailed(utc(2026, 11, 29, 13, 30))
    assert sydney_history(inside, utc(2026, 12, 6, 12, 59)).contact.shown_7d == {"email": 1}


def test_a_customer_with_no_timezone_counts_the_catalogues_day() -> None:
    tokyo = "Asia/Tokyo"  # +9: 07:00 and 10:00 on the 6th in Tokyo
    contacts = emailed(NINE_SYDNEY)
    later = utc(2026, 12, 6, 1)
    assert sydney_history(contacts, later, home=tokyo, timezone=None).contact.shown_today == {
        "email": 1
    }
    assert sydney_history(contacts, later, timezone=None).contact.shown_today == {}  # UTC
    # a timezone no tz database knows: the catalogue's too
    assert sydney_history(
        contacts, later, home=tokyo, timezone="Mars/Olympus"
    ).contact.shown_today == {"email": 1}


def test_an_old_style_daily_bucket_still_counts() -> None:
    """A contact the previous version recorded (its daily UTC bucket alone)."""
    day = ts_ms(NINE_SYDNEY) // DAY_MS
    old = {f"d{day}|shown:email": "1", f"d{day}|offer:tips": "1", "max|d": str(day)}
    features = sydney_history(old, ELEVEN_SYDNEY)
    assert features.contact.shown_today == {"email": 1}
    assert features.contact.offers_7d == {"tips": 1}


# -- the ceilings, as the reference (and apply.lua) checks them --------------------------


def contact_at(at: datetime, decision_id: str, ceilings: ContactCeilings | None = None) -> Fact:
    return offers_shown_fact(decision_id, "c1", "email", ["tips"], at, ceilings=ceilings)


def test_the_ceiling_refuses_a_second_email_in_the_customers_day() -> None:
    catalogue = OfferCatalogue(version="v1", offers=[TIPS], contact_policy=ONE_EMAIL_A_DAY)
    second = NextBestOffer(
        decision_id="d2",
        customer_id="c1",
        ts=ELEVEN_SYDNEY,
        channel="email",
        trigger_event_id=None,
        model_version="m",
        offers=[OfferScore(offer_id="tips", score=1.0, propensity=1.0)],
    )
    state = CustomerState()
    state.apply(
        touchpoint_fact(
            WebClick(event_id="e1", customer_id="c1", ts=NINE_SYDNEY, page="/", timezone=SYDNEY)
        ),
        ts_ms(NINE_SYDNEY),
    )
    assert state.apply(contact_at(NINE_SYDNEY, "d1"), ts_ms(NINE_SYDNEY)) == 1
    in_sydney = ceilings_of(second, catalogue, timezone=SYDNEY)
    in_utc = ceilings_of(second, catalogue)  # the customer's timezone not known
    assert state.over(in_sydney, ts_ms(ELEVEN_SYDNEY))
    assert not state.over(in_utc, ts_ms(ELEVEN_SYDNEY))
    fact = contact_at(ELEVEN_SYDNEY, "d2", in_sydney)
    assert state.apply(fact, ts_ms(ELEVEN_SYDNEY)) == 5  # refused: nothing written


def test_quarters_are_pruned_once_a_utc_day() -> None:
    """Past the three days kept, a quarter lingers until the newest contact's UTC day
    moves on: a prune reads every field of the hash, once a day rather than at each new
    quarter."""
    day = ts_ms(utc(2026, 12, 1)) // DAY_MS
    state = CustomerState()

    def shown(decision_id: str, at: datetime) -> set[str]:
        state.apply(offers_shown_fact(decision_id, "c1", "web", ["tips"], at), ts_ms(at))
        return {f.partition("|")[0] for f in state.contacts if f.startswith("q")}

    noon = f"q{day * 96 + 48}"
    assert noon in shown("d1", utc(2026, 12, 1, 12))
    assert noon in shown("d2", utc(2026, 12, 4, 0))  # a new day: pruned up to 00:00 on the 1st
    assert noon in shown("d3", utc(2026, 12, 4, 13))  # three days and an hour on: lingers
    assert noon not in shown("d4", utc(2026, 12, 5, 0, 5))  # the next day's first contact


def test_an_offers_daily_counts_go_after_fifteen_days() -> None:
    state = CustomerState()
    day = ts_ms(utc(2026, 12, 1)) // DAY_MS
    for n, at in enumerate((utc(2026, 12, 1, 12), utc(2026, 12, 15, 12), utc(2026, 12, 16, 12))):
        state.apply(offers_shown_fact(f"d{n}", "c1", "web", ["tips"], at), ts_ms(at))
        kept = f"d{day}|offer:tips" in state.contacts
        assert kept == (n < 2), n  # kept through the 15th, gone on the 16th
    assert state.contacts[f"d{day}|shown:web"] == "1"  # the channel's: 31 days


def test_a_late_contacts_offer_week_still_counts() -> None:
    """A contact dated a week before the customer's newest (a late one) is checked
    against the offer's weekly cap over its own week, whose first days must still be
    kept (with eight days kept they were gone, and it went past the cap)."""
    zone = "Pacific/Auckland"  # +13 in November: its week reaches back eight UTC days
    state = CustomerState()
    first, newest, late = utc(2026, 11, 16, 23), utc(2026, 11, 24, 2), utc(2026, 11, 17, 11)
    for n, at in enumerate((first, newest)):
        state.apply(offers_shown_fact(f"d{n}", "c1", "web", ["tips"], at), ts_ms(at))
    once_a_week = ContactCeilings(((("offer:tips",), 7, 1),), (), zone)
    assert state.over(once_a_week, ts_ms(late))  # the first is in the late one's week


def test_weekly_contact_buckets_of_older_versions_go_at_the_next_prune() -> None:
    """Versions before 2026-12-06 counted contacts by the week too; nothing read them."""
    state = CustomerState()
    at = utc(2026, 12, 1, 12)
    state.apply(offers_shown_fact("d0", "c1", "web", ["tips"], at), ts_ms(at))
    state.contacts["k2900|shown:web"] = "3"  # as an older version left it
    later = at + timedelta(hours=1)  # the same day: nothing pruned
    state.apply(offers_shown_fact("d1", "c1", "web", ["tips"], later), ts_ms(later))
    assert "k2900|shown:web" in state.contacts
    next_day = at + timedelta(days=1)
    state.apply(offers_shown_fact("d2", "c1", "web", ["tips"], next_day), ts_ms(next_day))
    assert not any(f.startswith("k") for f in state.contacts)


def test_a_contact_in_the_quarter_of_the_local_midnight_counts_for_the_new_day() -> None:
    """The quarter ``from_ms`` falls in counts whole: an email at 00:05 local (the quarter
    that begins at the midnight) is today's, not yesterday's (kills ``quarter <= high``)."""
    day = 20_000
    midnight = day * DAY_MS + 13 * HOUR_MS  # Sydney's midnight, 13:00 UTC
    quarter = midnight // QUARTER.size_ms
    daily = {day: {"shown:email": 1}}
    assert contacts_from(daily, {quarter: {"shown:email": 1}}, midnight, day + 1) == {
        "shown:email": 1
    }
    # and through the features: mailed at 00:05 Sydney, asked at 10:00 Sydney
    at = utc(2026, 12, 5, 13, 5)
    assert day_start_ms(ts_ms(at), SYDNEY) == ts_ms(utc(2026, 12, 5, 13))
    features = build_features({"n": "1", "timezone": SYDNEY}, {}, [], ts_ms(utc(2026, 12, 5, 23)),
                              emailed(at), full=False)  # fmt: skip
    assert features.contact.shown_today == {"email": 1}


def test_a_contact_in_the_first_quarter_of_the_utc_day_is_yesterdays_locally() -> None:
    """Mailed at 00:05 UTC (11:05 on the 5th in Sydney): at 11:00 on the 6th it is not
    today's (kills the first quarter of the UTC day left out of the subtraction)."""
    day = 20_000
    midnight = day * DAY_MS + 13 * HOUR_MS
    daily = {day: {"shown:email": 1}}
    assert contacts_from(daily, {day * 96: {"shown:email": 1}}, midnight, day + 1) == {
        "shown:email": 0
    }
    features = build_features({"n": "1", "timezone": SYDNEY}, {}, [], ts_ms(utc(2026, 12, 6, 0)),
                              emailed(utc(2026, 12, 5, 0, 5)), full=False)  # fmt: skip
    assert features.contact.shown_today == {}
    assert features.contact.shown_7d == {"email": 1}


def test_a_contact_dated_ahead_past_the_utc_midnight_counts_today() -> None:
    """A contact another process's clock, running ahead, dated past UTC midnight is
    today's at a read at the clock's now (ahead_ms), as the store's check counts it
    (kills ``last = now_ms // DAY_MS``)."""
    now = utc(2026, 12, 5, 23, 59, 50)  # UTC customer
    ahead = emailed(utc(2026, 12, 6, 0, 0, 5))  # 15 s ahead of now
    features = build_features({"n": "1"}, {}, [], ts_ms(now), ahead, full=False, ahead_ms=30_000)
    assert features.contact.shown_today == {"email": 1}
    assert features.contact.shown_7d == {"email": 1}
