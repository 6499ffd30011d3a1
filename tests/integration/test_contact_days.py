"""The fatigue caps count the customer's own day in Redis: the features a decision reads
and the ceilings apply.lua checks where a contact is recorded (a Redis of the test's own).

A customer in Sydney (UTC+11 in December) with an email cap of one a day, mailed at
09:00 their time, is not mailed again at 11:00: UTC's midnight fell between the two.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from agents.contact_ceilings import offers_shown_within
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from feature_store import (
    ApplyStatus,
    ContactCeilings,
    Fact,
    FeatureStore,
    StoreConfig,
    offers_shown_fact,
)
from feature_store.facts import DAY_MS, ts_ms
from feature_store.reference import CustomerState
from schemas import (
    ContactRules,
    NextBestOffer,
    Offer,
    OfferCatalogue,
    OfferScore,
    WebClick,
)
from streams.services.local_redis import LocalRedis

pytestmark = pytest.mark.integration

SYDNEY = "Australia/Sydney"
NINE_SYDNEY = datetime(2026, 12, 5, 22, tzinfo=UTC)  # 09:00 on the 6th in Sydney
ELEVEN_SYDNEY = datetime(2026, 12, 6, 0, tzinfo=UTC)  # 11:00: UTC's midnight between
TIPS = Offer(offer_id="tips", title="Tips", channels=["web", "email"])
ONE_EMAIL_A_DAY = ContactRules(daily_caps={"email": 1})
CATALOGUE = OfferCatalogue(version="v1", offers=[TIPS], contact_policy=ONE_EMAIL_A_DAY)
POLICY = ContactPolicy(ControlGroup("salt", 0.0))


class Clocked:
    """A store on the test's Redis whose clock the test sets."""

    def __init__(self, redis: LocalRedis, prefix: str) -> None:
        self.now = NINE_SYDNEY
        config = StoreConfig(secret=b"contact-days-secret", prefix=prefix)
        self.store = FeatureStore.from_url(redis.url, config, clock=lambda: self.now.timestamp())

    async def visit(self, customer: str, timezone: str | None) -> None:
        """The customer clicked a page (telling their timezone, if given) a day ago."""
        click = WebClick(
            event_id=f"{customer}-click",
            customer_id=customer,
            ts=NINE_SYDNEY - timedelta(days=1),
            page="/",
            timezone=timezone,
        )
        assert await self.store.apply([click]) == [ApplyStatus.APPLIED]

    async def emailed(self, customer: str, at: datetime, decision_id: str) -> ApplyStatus:
        """A decision at ``at`` showed the customer an email, recorded within its caps."""
        self.now = at
        features = await self.store.read(customer)
        made = email_decision(customer, at, decision_id)
        timezones = {customer: features.timezone if features else None}
        contacts = offers_shown_within([(made, False)], CATALOGUE, timezones)
        (status,) = await self.store.apply_facts(contacts)
        return status


def email_decision(customer: str, at: datetime, decision_id: str) -> NextBestOffer:
    return NextBestOffer(
        decision_id=decision_id,
        customer_id=customer,
        ts=at,
        channel="email",
        trigger_event_id=None,
        model_version="m",
        offers=[OfferScore(offer_id="tips", score=1.0, propensity=1.0)],
    )


def run(redis: LocalRedis, scenario: Callable[[Clocked], Awaitable[None]]) -> None:
    """Run ``scenario`` with a store of its own on the test's Redis."""

    async def main() -> None:
        clocked = Clocked(redis, "days")
        try:
            await scenario(clocked)
        finally:
            await clocked.store.close()

    asyncio.run(main())


def screen(features: object, at: datetime) -> list[str]:
    verdict = POLICY.screen("c", "email", features, [TIPS], at, rules=ONE_EMAIL_A_DAY)  # type: ignore[arg-type]
    return verdict.reasons if not verdict.allowed else ["allowed"]


def test_a_sydney_customer_mailed_at_nine_gets_no_second_email_at_eleven(
    private_redis: LocalRedis,
) -> None:
    async def scenario(clocked: Clocked) -> None:
        await clocked.visit("sydney", SYDNEY)
        assert await clocked.emailed("sydney", NINE_SYDNEY, "d1") == ApplyStatus.APPLIED
        clocked.now = ELEVEN_SYDNEY
        ((_, features),) = await clocked.store.read_for_decisions(["sydney"])
        assert features is not None and features.contact.shown_today == {"email": 1}
        assert screen(features, ELEVEN_SYDNEY) == ["suppressed:fatigue:email:day"]
        # a process that read before the first email was recorded: refused in Redis
        assert await clocked.emailed("sydney", ELEVEN_SYDNEY, "d2") == ApplyStatus.OVER_CEILING
        # the next morning in Sydney, the day's cap is open again
        tomorrow = NINE_SYDNEY + timedelta(days=1)
        clocked.now = tomorrow
        ((_, features),) = await clocked.store.read_for_decisions(["sydney"])
        assert features is not None and screen(features, tomorrow) == ["allowed"]
        assert await clocked.emailed("sydney", tomorrow, "d3") == ApplyStatus.APPLIED

    run(private_redis, scenario)


def test_a_customer_with_no_timezone_counts_the_catalogues_day(private_redis: LocalRedis) -> None:
    tokyo = ContactRules(daily_caps={"email": 1}, timezone="Asia/Tokyo")  # +9
    in_tokyo = OfferCatalogue(version="v2", offers=[TIPS], contact_policy=tokyo)

    async def scenario(clocked: Clocked) -> None:
        await clocked.visit("nozone", None)
        assert await clocked.emailed("nozone", NINE_SYDNEY, "d1") == ApplyStatus.APPLIED
        later = datetime(2026, 12, 6, 1, tzinfo=UTC)  # 10:00 in Tokyo; 07:00 was the email
        clocked.now = later
        ((_, features),) = await clocked.store.read_for_decisions(
            ["nozone"], home_timezone="Asia/Tokyo"
        )
        assert features is not None and features.contact.shown_today == {"email": 1}
        ((_, in_utc),) = await clocked.store.read_for_decisions(["nozone"])
        assert in_utc is not None and in_utc.contact.shown_today == {}  # a UTC catalogue's day
        made = email_decision("nozone", later, "d2")
        refused = offers_shown_within([(made, False)], in_tokyo, {"nozone": None})
        assert await clocked.store.apply_facts(refused) == [ApplyStatus.OVER_CEILING]
        allowed = offers_shown_within([(made, False)], CATALOGUE, {"nozone": None})  # UTC's
        assert await clocked.store.apply_facts(allowed) == [ApplyStatus.APPLIED]

    run(private_redis, scenario)


def test_a_contact_recorded_by_the_previous_version_still_counts(
    private_redis: LocalRedis,
) -> None:
    """The previous version kept a contact in its daily UTC bucket alone (no quarter-hour
    bucket): the caps count it with its whole day, before or after the local midnight."""

    async def scenario(clocked: Clocked) -> None:
        await clocked.visit("old", SYDNEY)
        contact = offers_shown_fact("d1", "old", "email", ["tips"], NINE_SYDNEY)
        old_style = contact.updates
        # as the previous version wrote it: without its quarter-hour updates
        legacy = Fact(
            contact.fact_id,
            contact.customer_id,
            contact.ts_ms,
            (*(u for u in old_style if u[0] != "wq"), ("wk", "shown:email", "1")),
            contact=True,
        )
        clocked.now = NINE_SYDNEY
        assert await clocked.store.apply_facts([legacy]) == [ApplyStatus.APPLIED]
        raw = await clocked.store.raw("old")
        day = ts_ms(NINE_SYDNEY) // DAY_MS
        assert raw["contacts"][f"d{day}|shown:email"] == "1"
        assert not any(f.startswith("q") for f in raw["contacts"])
        clocked.now = ELEVEN_SYDNEY
        ((_, features),) = await clocked.store.read_for_decisions(["old"])
        assert features is not None and screen(features, ELEVEN_SYDNEY) == [
            "suppressed:fatigue:email:day"
        ]
        assert await clocked.emailed("old", ELEVEN_SYDNEY, "d2") == ApplyStatus.OVER_CEILING
        assert any(f.startswith("k") for f in (await clocked.store.raw("old"))["contacts"])
        # the next day's contact prunes: the weekly bucket, which nothing reads, goes
        next_day = NINE_SYDNEY + timedelta(days=1)
        clocked.now = next_day
        assert await clocked.emailed("old", next_day, "d3") == ApplyStatus.APPLIED
        assert not any(f.startswith("k") for f in (await clocked.store.raw("old"))["contacts"])

    run(private_redis, scenario)


def test_contacts_are_kept_by_the_quarter_hour_sparse_and_pruned(
    private_redis: LocalRedis,
) -> None:
    """Only quarters with contacts have fields, per channel (not per offer: an offer's
    cap is weekly, counted by whole UTC days); those older than three days before the
    newest contact go."""

    async def scenario(clocked: Clocked) -> None:
        await clocked.visit("kept", SYDNEY)
        first = NINE_SYDNEY - timedelta(days=3, minutes=1)
        clocked.now = first
        facts = [offers_shown_fact("d0", "kept", "web", ["tips"], first)]
        assert await clocked.store.apply_facts(facts) == [ApplyStatus.APPLIED]
        quarter = ts_ms(first) // 900_000
        raw = await clocked.store.raw("kept")
        assert {f for f in raw["contacts"] if f.startswith("q")} == {f"q{quarter}|shown:web"}
        clocked.now = NINE_SYDNEY
        facts = [offers_shown_fact("d1", "kept", "web", ["tips"], NINE_SYDNEY)]
        assert await clocked.store.apply_facts(facts) == [ApplyStatus.APPLIED]
        raw = await clocked.store.raw("kept")
        now_quarter = ts_ms(NINE_SYDNEY) // 900_000
        assert {f for f in raw["contacts"] if f.startswith("q")} == {f"q{now_quarter}|shown:web"}
        assert raw["contacts"]["max|q"] == str(now_quarter)

    run(private_redis, scenario)


def test_an_offers_daily_counts_are_kept_fifteen_days(private_redis: LocalRedis) -> None:
    """Only an offer's weekly cap reads how often it was shown a day: those counts go
    after 15 days (a late contact's week too), the channel's after 31 as before."""

    async def scenario(clocked: Clocked) -> None:
        first = NINE_SYDNEY - timedelta(days=15)
        clocked.now = first
        facts = [offers_shown_fact("d0", "kept", "web", ["tips"], first)]
        assert await clocked.store.apply_facts(facts) == [ApplyStatus.APPLIED]
        day = ts_ms(first) // 86_400_000
        fourteen_on = NINE_SYDNEY - timedelta(days=1)
        clocked.now = fourteen_on
        facts = [offers_shown_fact("d1", "kept", "web", ["tips"], fourteen_on)]
        assert await clocked.store.apply_facts(facts) == [ApplyStatus.APPLIED]
        raw = (await clocked.store.raw("kept"))["contacts"]
        assert f"d{day}|offer:tips" in raw  # fourteen days on: kept
        clocked.now = NINE_SYDNEY
        facts = [offers_shown_fact("d2", "kept", "web", ["tips"], NINE_SYDNEY)]
        assert await clocked.store.apply_facts(facts) == [ApplyStatus.APPLIED]
        raw = (await clocked.store.raw("kept"))["contacts"]
        assert f"d{day}|offer:tips" not in raw
        assert raw[f"d{day}|shown:web"] == "1"
        assert not any(f.startswith("k") for f in raw)  # no weekly buckets any more

    run(private_redis, scenario)


TOKYO = "Asia/Tokyo"  # +9: the email at 22:00 UTC was 07:00 on the 6th in Tokyo
LATER = datetime(2026, 12, 6, 1, tzinfo=UTC)  # 10:00 on the 6th in Tokyo, a new UTC day


async def _mailed_without_timezone(clocked: Clocked) -> None:
    await clocked.visit("nozone", None)
    assert await clocked.emailed("nozone", NINE_SYDNEY, "d1") == ApplyStatus.APPLIED
    clocked.now = LATER


def test_every_read_counts_the_catalogues_day_for_a_customer_with_no_timezone(
    private_redis: LocalRedis,
) -> None:
    """The decisions read with ``faults`` (as agents/decision_reads.py and the API's
    batches do), the reserved contacts with read_views(faults=...), the customer view
    with read(): each counts the catalogue's day, not UTC's."""

    async def scenario(clocked: Clocked) -> None:
        await _mailed_without_timezone(clocked)
        store = clocked.store
        faults: dict[str, Exception] = {}
        ((_, decided),) = await store.read_for_decisions(["nozone"], faults=faults,
                                                         home_timezone=TOKYO)  # fmt: skip
        assert not faults and decided is not None
        assert decided.contact.shown_today == {"email": 1}
        ((_, viewed),) = await store.read_views(["nozone"], faults={}, home_timezone=TOKYO)
        assert viewed is not None and viewed.contact.shown_today == {"email": 1}
        ((_, whole),) = await store.read_views(["nozone"], home_timezone=TOKYO)
        assert whole is not None and whole.contact.shown_today == {"email": 1}
        one = await store.read("nozone", home_timezone=TOKYO)
        assert one is not None and one.contact.shown_today == {"email": 1}
        # in UTC's day the email was yesterday's
        utc_view = await store.read("nozone")
        assert utc_view is not None and utc_view.contact.shown_today == {}

    run(private_redis, scenario)


def test_quarters_are_pruned_only_when_the_newest_contact_moves_to_another_utc_day(
    private_redis: LocalRedis,
) -> None:
    """Quarter-hour buckets are pruned once a UTC day (Resolution.prune_every=96, as the
    reference does): a second contact in the same UTC day prunes nothing, so a quarter
    that fell out of the 288 newest only then is still there."""
    day = ts_ms(NINE_SYDNEY) // DAY_MS - 3
    at = [datetime.fromtimestamp((day * DAY_MS + m * 60_000) / 1000, UTC)
          for m in (20, 3 * 1440 + 10, 3 * 1440 + 35)]  # fmt: skip

    async def scenario(clocked: Clocked) -> None:
        for i, when in enumerate(at):
            clocked.now = when
            facts = [offers_shown_fact(f"d{i}", "kept", "web", ["tips"], when)]
            assert await clocked.store.apply_facts(facts) == [ApplyStatus.APPLIED]
        raw = (await clocked.store.raw("kept"))["contacts"]
        quarters = {f for f in raw if f.startswith("q")}
        assert quarters == {f"q{day * 96 + 1}|shown:web", f"q{(day + 3) * 96}|shown:web",
                            f"q{(day + 3) * 96 + 2}|shown:web"}  # fmt: skip

    run(private_redis, scenario)


def _utc(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        # 23:00 on the 5th, then 01:00 on the 6th in Sydney: the UTC day of both holds one
        # email, at the cap, but the quarters take the first away (the gate `total < cap`)
        (_utc(5, 12, 0), _utc(5, 14, 0), ApplyStatus.APPLIED),
        # 11:05 on the 5th (00:05 UTC, the UTC day's first quarter), then 01:00 on the 6th
        (_utc(5, 0, 5), _utc(5, 14, 0), ApplyStatus.APPLIED),
        # 00:05 on the 6th (the quarter of the midnight), then 01:00 on the 6th: same day
        (_utc(5, 13, 5), _utc(5, 14, 0), ApplyStatus.OVER_CEILING),
    ],
)
def test_the_stores_ceiling_counts_the_quarters_before_the_local_midnight(
    private_redis: LocalRedis, first: datetime, second: datetime, expected: ApplyStatus
) -> None:
    """apply.lua's daily count from a Sydney midnight that falls within a UTC day: what
    that day's quarters hold before the midnight is taken away, from the UTC day's first
    quarter up to the midnight's, which counts whole."""

    async def scenario(clocked: Clocked) -> None:
        await clocked.visit("edges", "Australia/Sydney")
        assert await clocked.emailed("edges", first, "d1") == ApplyStatus.APPLIED
        assert await clocked.emailed("edges", second, "d2") == expected

    run(private_redis, scenario)


def test_quarters_never_take_away_more_than_the_day_holds_in_redis(
    private_redis: LocalRedis,
) -> None:
    """apply.lua, like contacts_from: a metric's quarters before the midnight take away
    at most what its first UTC day holds (quarters out of step with the day: written
    apart, or corrupt), so they cannot cancel another metric's contacts of the day."""
    before, after = _utc(5, 12, 0), _utc(5, 13, 30)  # 23:00 on the 5th, 00:30 on the 6th
    outbound_daily = ContactCeilings(((("shown:email", "shown:sms"), 1, 1),), (),
                                     "Australia/Sydney")  # fmt: skip

    async def scenario(clocked: Clocked) -> None:
        clocked.now = after
        email = offers_shown_fact("d1", "c", "email", ["tips"], before)
        stray = Fact("q1", "c", ts_ms(before), (("wq", "shown:email", "2"),), contact=True)
        sms = offers_shown_fact("d2", "c", "sms", ["tips"], after)
        assert await clocked.store.apply_facts([email, stray, sms]) == [ApplyStatus.APPLIED] * 3
        again = offers_shown_fact("d3", "c", "email", ["tips"], _utc(5, 14, 0),
                                  ceilings=outbound_daily)  # fmt: skip
        # the 6th in Sydney already has its outbound contact (the sms at 00:30)
        assert await clocked.store.apply_facts([again]) == [ApplyStatus.OVER_CEILING]

    run(private_redis, scenario)


PARIS = "Europe/Paris"  # +1: the midnight at 23:00 UTC has 92 quarters before it, 4 after


@pytest.mark.parametrize(("whole", "stale"), [(True, False), (False, False), (True, True)])
def test_the_stores_ceiling_reads_a_whole_day_from_the_shorter_side_of_the_midnight(
    private_redis: LocalRedis, whole: bool, stale: bool
) -> None:
    """apply.lua reads a Paris day's first UTC day from its quarters after the midnight
    when the day's quartered count says every contact of it is in its quarter, else
    before it, as the reference does. Told apart on a state where the quarter of an
    email before the midnight is gone (taken out by the test): read after the midnight,
    the day holds no email; read before it (the count short of the day's, as an older
    Moments leaves it; or the count of a day two before the newest quarter's, which an
    older Moments's prune may have left beside quarters it took), the email counts
    (strict)."""
    email_at, asked = _utc(5, 22, 0), _utc(6, 8, 0)  # 23:00 on the 5th, 09:00 on the 6th
    once = ContactCeilings(((("shown:email",), 1, 1),), (), PARIS)

    async def scenario(clocked: Clocked) -> None:
        clocked.now = email_at
        sent = offers_shown_fact("d1", "c", "email", ["tips"], email_at)
        assert await clocked.store.apply_facts([sent]) == [ApplyStatus.APPLIED]
        keys = clocked.store._keys.for_customer("c")
        day = ts_ms(email_at) // DAY_MS
        client = clocked.store._conn.client
        assert await client.hget(keys.contacts, f"in_quarters:{day}") == "1"
        await client.hdel(keys.contacts, f"q{ts_ms(email_at) // 900_000}|shown:email")
        if not whole:
            await client.hdel(keys.contacts, f"in_quarters:{day}")
        if stale:  # the newest quarter two days on
            await client.hset(keys.contacts, "max|q", str((day + 2) * 96 + 36))
        reference = CustomerState(contacts=(await clocked.store.raw("c"))["contacts"])
        clocked.now = asked
        again = offers_shown_fact("d2", "c", "email", ["tips"], asked, ceilings=once)
        expected = ApplyStatus.APPLIED if whole and not stale else ApplyStatus.OVER_CEILING
        assert reference.apply(again, ts_ms(asked)) == expected
        assert await clocked.store.apply_facts([again]) == [expected]

    run(private_redis, scenario)


def test_a_contact_of_an_older_moments_keeps_its_paris_day_counted_strictly(
    private_redis: LocalRedis,
) -> None:
    """An email an older Moments recorded at 22:30 UTC (its day alone) and one this
    version recorded at 23:30 (00:30 on the 6th in Paris): the 6th holds one email, and
    apply.lua, reading the UTC day from before the midnight (the day is not whole), counts
    both, strictly: a second email on the 6th is refused, and the features say so."""
    once = ContactCeilings(((("shown:email",), 1, 1),), (), PARIS)

    async def scenario(clocked: Clocked) -> None:
        await clocked.visit("c", PARIS)
        old, new = _utc(5, 22, 30), _utc(5, 23, 30)
        contact = offers_shown_fact("d1", "c", "email", ["tips"], old)
        legacy = Fact(contact.fact_id, "c", contact.ts_ms,
                      tuple(u for u in contact.updates if u[0] != "wq"), contact=True)  # fmt: skip
        clocked.now = new
        recorded = offers_shown_fact("d2", "c", "email", ["tips"], new)
        assert await clocked.store.apply_facts([legacy, recorded]) == [ApplyStatus.APPLIED] * 2
        raw = (await clocked.store.raw("c"))["contacts"]
        day = ts_ms(old) // DAY_MS
        assert raw[f"d{day}|shown:email"] == "2" and raw[f"in_quarters:{day}"] == "1"
        clocked.now = _utc(6, 8, 0)
        ((_, features),) = await clocked.store.read_for_decisions(["c"])
        assert features is not None and features.contact.shown_today == {"email": 2}
        late = offers_shown_fact("d3", "c", "email", ["tips"], clocked.now, ceilings=once)
        assert await clocked.store.apply_facts([late]) == [ApplyStatus.OVER_CEILING]

    run(private_redis, scenario)


def test_quartered_counts_are_kept_for_the_newest_quarters_day_and_the_one_before(
    private_redis: LocalRedis,
) -> None:
    """As the reference: each contact counts in its UTC day's quartered count; the next
    day's first contact prunes those before the day before it; a contact two days late
    is counted in no count."""
    days = [_utc(3, 12, 0), _utc(4, 9, 0), _utc(5, 9, 0)]

    async def scenario(clocked: Clocked) -> None:
        reference = CustomerState()
        late = offers_shown_fact("late", "c", "web", ["tips"], _utc(3, 10, 0))
        # a quarter written alone (no fact of Moments does): not in the count
        stray = Fact("q1", "c", ts_ms(days[2]), (("wq", "shown:email", "1"),), contact=True)
        for i, when in enumerate(days):
            clocked.now = when
            fact = offers_shown_fact(f"d{i}", "c", "web", ["tips"], when)
            facts = [fact, late, stray] if i == 2 else [fact]
            assert [reference.apply(f, ts_ms(when)) for f in facts] == [1] * len(facts)
            assert await clocked.store.apply_facts(facts) == [ApplyStatus.APPLIED] * len(facts)
        raw = (await clocked.store.raw("c"))["contacts"]
        assert raw == reference.contacts
        first = ts_ms(days[0]) // DAY_MS
        assert {f for f in raw if f.startswith("in_quarters:")} == {
            f"in_quarters:{first + 1}",
            f"in_quarters:{first + 2}",
        }

    run(private_redis, scenario)


def test_a_days_first_quartered_count_drops_the_stale_ones_of_the_week_before(
    private_redis: LocalRedis,
) -> None:
    """Counts an older Moments's prunes left (it prunes none): a day's first count drops
    those of the seven days before the kept two, as the reference does; one older than
    those stays until this version's next prune; a later count of the same day drops none."""
    when = _utc(10, 9, 0)

    async def scenario(clocked: Clocked) -> None:
        keys = clocked.store._keys.for_customer("c")
        client = clocked.store._conn.client
        today = ts_ms(when) // DAY_MS
        stale = {f"in_quarters:{d}": "1" for d in range(today - 9, today - 1)}
        # the newest quarter already today (an older Moments's contact moved it): no prune
        await client.hset(keys.contacts, mapping={**stale, "max|q": str(today * 96 + 1)})
        reference = CustomerState(contacts=(await clocked.store.raw("c"))["contacts"])
        for i, minutes in enumerate((0, 30)):
            at = clocked.now = when + timedelta(minutes=minutes)
            fact = offers_shown_fact(f"d{i}", "c", "web", ["tips"], at)
            assert reference.apply(fact, ts_ms(at)) == 1
            assert await clocked.store.apply_facts([fact]) == [ApplyStatus.APPLIED]
            raw = (await clocked.store.raw("c"))["contacts"]
            assert raw == reference.contacts
            assert {f: v for f, v in raw.items() if f.startswith("in_quarters:")} == {
                f"in_quarters:{today - 9}": "1",  # beyond the week: the next prune's
                f"in_quarters:{today}": str(i + 1),
            }

    run(private_redis, scenario)
