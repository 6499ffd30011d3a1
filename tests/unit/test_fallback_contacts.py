"""The fallbacks' contacts (agents/fallback_contacts.py): fallback answers, which read
nothing from Redis, keep the fatigue caps, the offers' cool-downs and their weekly caps by
what the fallbacks of the same process showed the customer; the ledger stays bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, note, settings
from hypothesis import strategies as st

from agents.fallback_contacts import FallbackContacts
from agents.fallback_offers import fallback_decision
from schemas import ContactRules, NextBestOffer, Offer, OfferCatalogue
from schemas.timezones import zone
from tests.unit.decision_strategies import NOBODY, catalogues, instants

QUICK = settings(max_examples=60, deadline=None)
STEPS_S = [0, 0, 1, 600, 3600, 6 * 3600, 86400, 3 * 86400]  # between two fallbacks
NOON = datetime(2026, 12, 1, 18, tzinfo=UTC)  # noon in Chicago
TIPS = Offer(offer_id="tips", title="Tips", channels=["web"], cooldown_s=86400, max_per_week=2)
CLUB = Offer(offer_id="club", title="Club", channels=["web"])
TIGHT = OfferCatalogue(
    version="tight",
    offers=[TIPS, CLUB],
    default_offers=["tips", "club"],
    contact_policy=ContactRules(
        daily_caps={"web": 2}, weekly_caps={"web": 3}, timezone="America/Chicago"
    ),
)


def answer(ledger: FallbackContacts, catalogue: OfferCatalogue, at: datetime, limit: int = 1,
           customer: str = "c1") -> NextBestOffer:  # fmt: skip
    """A web fallback for ``customer`` at ``at``, screened by the ledger and recorded."""
    shown = ledger.history(customer, at, catalogue.contact_policy.timezone)
    decision = fallback_decision(customer, "web", limit, "latency_budget", catalogue, NOBODY,
                                 at, shown)  # fmt: skip
    ledger.record(decision)
    return decision


def shown(decision: NextBestOffer) -> list[str]:
    return [o.offer_id for o in decision.offers]


def test_a_burst_of_fallbacks_stops_at_the_daily_cap_and_keeps_the_cool_down() -> None:
    """The soak's burst: many fallbacks for one customer at once. The first shows tips,
    which then cools down for a day and gives its place to club; the web's daily cap of 2
    stops every other one, with the contact policy's reasons."""
    ledger = FallbackContacts()
    burst = [answer(ledger, TIGHT, NOON + timedelta(milliseconds=n)) for n in range(20)]
    assert [shown(d) for d in burst[:2]] == [["tips"], ["club"]]
    assert burst[1].reasons == ["fallback:latency_budget", "suppressed:cooldown:tips"]
    assert all(d.offers == [] for d in burst[2:])
    assert {tuple(d.reasons) for d in burst[2:]} == {
        ("fallback:latency_budget", "suppressed:fatigue:web:day")
    }


def test_the_day_and_week_are_the_catalogues_timezone_and_the_weekly_caps_hold() -> None:
    """A new day in Chicago (not in UTC) opens the daily cap again; tips, out of its
    cool-down, shows once more; the web's weekly cap of 3 then holds for the week, and
    tips's max_per_week of 2 once tips is out of its cool-down again."""
    ledger = FallbackContacts()
    answer(ledger, TIGHT, NOON)
    answer(ledger, TIGHT, NOON)
    before_midnight = datetime(2026, 12, 2, 5, 59, tzinfo=UTC)  # 23:59 in Chicago
    assert answer(ledger, TIGHT, before_midnight).reasons[1:] == ["suppressed:fatigue:web:day"]
    next_day = NOON + timedelta(days=1)
    assert shown(answer(ledger, TIGHT, next_day)) == ["tips"]
    assert answer(ledger, TIGHT, next_day).reasons[1:] == ["suppressed:fatigue:web:week"]
    looser = OfferCatalogue(version="looser", offers=[TIPS, CLUB], default_offers=["tips"],
                            contact_policy=ContactRules(timezone="America/Chicago"))  # fmt: skip
    third = answer(ledger, looser, NOON + timedelta(days=2, hours=1))
    assert third.offers == [] and third.reasons[1:] == ["suppressed:cap:tips"]
    assert shown(answer(ledger, looser, NOON + timedelta(days=8))) == ["tips"]  # a new week


def test_the_ledger_keeps_the_newest_customers_and_forgets_the_erased() -> None:
    ledger = FallbackContacts(answers=2)
    for customer in ("c1", "c2", "c3"):
        answer(ledger, TIGHT, NOON, customer=customer)
    assert len(ledger) == 2
    assert ledger.history("c1", NOON, "UTC").shown_today == {}  # the oldest, dropped
    assert shown(answer(ledger, TIGHT, NOON, customer="c1")) == ["tips"]
    assert ledger.history("c2", NOON, "UTC").shown_today == {}
    ledger.forget("c3")
    assert len(ledger) == 1 and ledger.history("c3", NOON, "UTC").shown_today == {}


def test_answers_without_offers_are_not_kept_and_old_ones_are_dropped() -> None:
    """A fallback that showed nothing adds no customer; answers older than eight days
    leave at the next one, but when an offer was last shown stays (a cool-down may be
    longer than a week)."""
    ledger = FallbackContacts()
    held = NextBestOffer(decision_id="d0", customer_id="c0", ts=NOON, channel="web",
                         trigger_event_id=None, offers=[], fallback=True)  # fmt: skip
    ledger.record(held)
    assert len(ledger) == 0
    month = Offer(offer_id="month", title="Month", channels=["web"], cooldown_s=30 * 86400)
    rare = OfferCatalogue(version="rare", offers=[month, CLUB], default_offers=["month", "club"])
    assert shown(answer(ledger, rare, NOON)) == ["month"]
    later = answer(ledger, rare, NOON + timedelta(days=9))
    assert shown(later) == ["club"] and later.reasons[1:] == ["suppressed:cooldown:month"]
    history = ledger.history("c1", NOON + timedelta(days=9), "UTC")
    assert history.shown_7d == {"web": 1} and history.last_shown["month"] == NOON
    assert shown(answer(ledger, rare, NOON + timedelta(days=30))) == ["month"]


def _local_day(at: datetime, timezone: str) -> int:
    return at.astimezone(zone(timezone)).date().toordinal()


@QUICK
@given(
    catalogue=catalogues(),
    start=instants(),
    steps=st.lists(st.sampled_from(STEPS_S), min_size=1, max_size=25),
    limit=st.integers(1, 3),
)
def test_fallbacks_through_the_ledger_keep_every_cap_and_cool_down(
    catalogue: OfferCatalogue, start: datetime, steps: list[int], limit: int
) -> None:
    """However the fallbacks for one customer fall in time, counted afresh over the
    customer's days in the catalogue's timezone, none shown goes past the web's daily or
    weekly cap, an offer's cool-down or its max_per_week; and the first is the catalogue's
    defaults as a fallback with nothing shown gives them."""
    rules, ledger = catalogue.contact_policy, FallbackContacts()
    at, given_ = start.astimezone(UTC), list[tuple[datetime, list[str]]]()
    for n, step in enumerate(steps):
        at += timedelta(seconds=step)
        decision = answer(ledger, catalogue, at, limit)
        note(f"{at.isoformat()} {shown(decision)} {decision.reasons}")
        if n == 0:
            first = fallback_decision("c1", "web", limit, "latency_budget", catalogue, NOBODY, at)
            assert shown(decision) == shown(first)
        if not decision.offers:
            continue
        today = _local_day(at, rules.timezone)
        local = [(_local_day(t, rules.timezone), t, offers) for t, offers in given_]
        assert sum(1 for d, _, _ in local if d == today) < rules.daily_cap("web")
        assert sum(1 for d, _, _ in local if today - 6 <= d <= today) < rules.weekly_cap("web")
        for offer_id in shown(decision):
            offer = catalogue.by_id(offer_id)
            assert offer is not None
            before = [(d, t) for d, t, offers in local if offer_id in offers]
            assert all(at - t >= timedelta(seconds=offer.cooldown_s) for _, t in before)
            if offer.max_per_week is not None:
                assert sum(1 for d, _ in before if today - 6 <= d <= today) < offer.max_per_week
        given_.append((at, shown(decision)))


def test_the_ledger_is_bounded_by_the_answers_it_holds_whatever_the_caps_allow() -> None:
    """Caps loose enough to show a customer many fallbacks: the ledger holds at most its
    ``answers`` (the customers shown one longest ago dropped first), never fewer than the
    newest customer's own."""
    loose = OfferCatalogue(version="loose", offers=[CLUB], default_offers=["club"],
                           contact_policy=ContactRules(daily_caps={"web": 100},
                                                       weekly_caps={"web": 700}))  # fmt: skip
    ledger = FallbackContacts(answers=50)
    for customer in ("c1", "c2", "c3"):
        for minute in range(30):
            answer(ledger, loose, NOON + timedelta(minutes=minute), customer=customer)
    assert ledger.held == 30 and len(ledger) == 1  # c3's 30: c1 and c2 dropped
    assert ledger.history("c3", NOON + timedelta(hours=1), "UTC").shown_today == {"web": 30}
    ledger.forget("c3")
    assert ledger.held == 0 and len(ledger) == 0
