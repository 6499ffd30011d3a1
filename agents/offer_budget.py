"""Daily offer budgets: an offer the business can make only so many times a day, across
all customers (vouchers in limited stock, call-backs the contact centre can staff).

Pure: a batch of decisions opens a :class:`BudgetLedger` with the day's counts as read
from the store, each decision taken with it spends what it shows, and
:func:`offers_spent` says what to add to the store's counts once the decisions went out.

>>> from datetime import UTC, datetime
>>> ledger = BudgetLedger(datetime(2026, 12, 1, 9, tzinfo=UTC).date(), {"voucher": 2},
...                       {"voucher": 1})
>>> ledger.exhausted("voucher"), ledger.exhausted("newsletter")
(False, False)
>>> ledger.spend(["voucher", "newsletter"])
>>> ledger.exhausted("voucher")
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from feature_store import BudgetSpend
from schemas import NextBestOffer, OfferCatalogue
from schemas.timezones import zone


def budget_day(instant: datetime, timezone: str = "UTC") -> date:
    """The day whose budgets ``instant`` counts against: the calendar day in the
    catalogue's ``timezone`` (an IANA name), so that a business's budgets restart at its
    own midnight.

    >>> from datetime import UTC
    >>> evening = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    >>> budget_day(evening).isoformat(), budget_day(evening, "Europe/Berlin").isoformat()
    ('2026-12-01', '2026-12-02')
    """
    return instant.astimezone(zone(timezone)).date()


@dataclass(slots=True)
class BudgetLedger:
    """The day's budgets as one batch of decisions sees them: the counts read at its
    start plus what the batch itself has spent so far."""

    day: date  # in ``timezone``
    limits: Mapping[str, int]  # offer id -> daily limit; offers not named are unlimited
    spent: dict[str, int] = field(default_factory=dict)
    timezone: str = "UTC"  # the catalogue's, whose days the budgets count

    @classmethod
    def for_day(
        cls,
        now: datetime,
        limits: Mapping[str, int],
        spent: Mapping[str, int],
        counted_on: date | None = None,
        timezone: str = "UTC",
    ) -> BudgetLedger:
        """The ledger of ``now``'s day (in the catalogue's ``timezone``) with the counts
        ``spent``, which were read for the day ``counted_on`` (default: that day). Counts
        read just before midnight are not the new day's: it starts from none.

        >>> from datetime import UTC
        >>> before = datetime(2026, 12, 1, 23, 59, tzinfo=UTC)
        >>> after = datetime(2026, 12, 2, tzinfo=UTC)
        >>> BudgetLedger.for_day(after, {"voucher": 5}, {"voucher": 5}, before.date()).spent
        {'voucher': 0}
        >>> BudgetLedger.for_day(before, {"voucher": 5}, {"voucher": 5}, before.date()).spent
        {'voucher': 5}
        """
        day = budget_day(now, timezone)
        if counted_on is not None and counted_on != day:
            spent = {}
        return cls(day, limits, {o: spent.get(o, 0) for o in limits}, timezone)

    def exhausted(self, offer_id: str) -> bool:
        limit = self.limits.get(offer_id)
        return limit is not None and self.spent.get(offer_id, 0) >= limit

    def spend(self, offer_ids: Iterable[str]) -> None:
        """Count offers shown by a decision taken with this ledger."""
        for offer_id in offer_ids:
            if offer_id in self.limits:
                self.spent[offer_id] = self.spent.get(offer_id, 0) + 1


def offers_spent(
    decisions: Iterable[NextBestOffer], limits: Mapping[str, int], timezone: str = "UTC"
) -> list[BudgetSpend]:
    """What decisions that went out spent of the budgets: the limited offers each one
    showed, on the decision's day in the catalogue's ``timezone`` (the store counts each
    decision once).

    >>> from datetime import UTC, datetime
    >>> from schemas import OfferScore
    >>> def shown(decision_id: str, *offers: str) -> NextBestOffer:
    ...     return NextBestOffer(decision_id=decision_id, customer_id="c", channel="web",
    ...         ts=datetime(2026, 12, 1, 23, 59, tzinfo=UTC), trigger_event_id=None,
    ...         model_version="m", offers=[OfferScore(offer_id=o, score=1.0, propensity=1.0)
    ...                                    for o in offers])
    >>> spent = offers_spent([shown("d1", "voucher", "news"), shown("d2", "news")],
    ...                      {"voucher": 5})
    >>> [(s.day.isoformat(), s.decision_id, s.offer_ids) for s in spent]
    [('2026-12-01', 'd1', ('voucher',))]
    """
    spent = []
    for decision in decisions:
        limited = tuple(o.offer_id for o in decision.offers if o.offer_id in limits)
        if limited:
            day = budget_day(decision.ts, timezone)
            shown = tuple(o.offer_id for o in decision.offers)
            spent.append(BudgetSpend(day, decision.decision_id, limited, shown))
    return spent


def budget_spending(
    decisions: Iterable[NextBestOffer], catalogue: OfferCatalogue
) -> list[BudgetSpend]:
    """:func:`offers_spent` under ``catalogue``'s daily limits, on its days."""
    limits = catalogue.daily_limits()
    if not limits:
        return []
    return offers_spent(decisions, limits, catalogue.contact_policy.timezone)
