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
from feature_store import ApplyStatus, Fact, FeatureStore, StoreConfig, offers_shown_fact
from feature_store.facts import DAY_MS, ts_ms
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
