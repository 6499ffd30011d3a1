"""The budget gauges (``moments_offer_budget_spent``) follow the days of the catalogue's
timezone: they restart at its midnight, not UTC's, and a reload that moves the
timezone without changing the date keeps the counts already shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from agents.offer_budget import BudgetLedger
from schemas import Offer, OfferCatalogue
from streams.metrics import Metrics

VOUCHER = Offer(offer_id="voucher", title="V", channels=["web"], daily_limit=5)
CATALOGUE = OfferCatalogue(version="z", offers=[VOUCHER])
NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SPENT = 'moments_offer_budget_spent{offer="voucher"}'


def in_zone(timezone: str) -> OfferCatalogue:
    rules = msgspec.structs.replace(CATALOGUE.contact_policy, timezone=timezone)
    return msgspec.structs.replace(CATALOGUE, version=timezone, contact_policy=rules)


def shown(metrics: Metrics, at: datetime) -> str:
    return next(
        (line for line in metrics.exposition(at).decode().splitlines() if line.startswith(SPENT)),
        "",
    )


def counted(timezone: str, spent: int) -> tuple[Metrics, BudgetLedger]:
    metrics = Metrics()
    metrics.catalogue_in_use(in_zone(timezone), now=NOON)
    ledger = BudgetLedger.for_day(NOON, {"voucher": 5}, {"voucher": spent}, timezone=timezone)
    metrics.budgets_counted(ledger)
    return metrics, ledger


def test_a_quiet_process_restarts_the_gauges_at_the_catalogues_midnight() -> None:
    """Los Angeles (-8 h): at 01:00 UTC on the 2nd it is 17:00 on the 1st there, so the
    3 shown today are still today's, not a false 0; Kiritimati (+14 h): at 10:30 UTC on
    the 2nd it is 00:30 on the 3rd there, a new day with nothing spent yet."""
    metrics, _ = counted("America/Los_Angeles", 3)
    assert shown(metrics, NOON) == f"{SPENT} 3.0"
    assert shown(metrics, datetime(2026, 12, 2, 1, 0, tzinfo=UTC)) == f"{SPENT} 3.0"
    assert shown(metrics, datetime(2026, 12, 2, 8, 30, tzinfo=UTC)) == f"{SPENT} 0.0"

    metrics, _ = counted("Pacific/Kiritimati", 3)  # noon UTC: 02:00 on the 2nd there
    assert shown(metrics, NOON + timedelta(hours=21)) == f"{SPENT} 3.0"  # 23:00 there
    assert shown(metrics, datetime(2026, 12, 2, 10, 30, tzinfo=UTC)) == f"{SPENT} 0.0"


def test_a_reload_to_a_zone_on_the_same_date_keeps_the_counts_shown() -> None:
    """Berlin to Paris (both 13:00 on the 1st at noon UTC): the same day, the same
    counts; the gauge must not drop to a false 0 until the next batch."""
    metrics, _ = counted("Europe/Berlin", 4)
    metrics.catalogue_in_use(in_zone("Europe/Paris"), "ok", now=NOON)
    assert shown(metrics, NOON) == f"{SPENT} 4.0"
