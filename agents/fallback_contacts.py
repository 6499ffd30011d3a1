"""The fallback offers one API process answered, per customer: what its fallback answers,
which read nothing from Redis, count the fatigue caps, cool-downs and per-offer weekly
caps by (:func:`agents.fallback_offers.fallback_decision`).

Pure and bounded: the ``customers`` customers most lately given a fallback with offers
(the one given none longest is dropped first), each with the answers of their last eight
days and when each offer was last shown to them. A customer's answers stop at their
weekly cap, so they stay few. The counts are the customer's days as the normal
decisions' (:mod:`feature_store.contact_days`), in the timezone the caller names: a
fallback knows no customer's own, so the catalogue's. The ids stay in memory only.

>>> from datetime import UTC, datetime
>>> from schemas import OfferScore
>>> ledger = FallbackContacts(customers=2)
>>> at = datetime(2026, 12, 1, 22, 30, tzinfo=UTC)  # 16:30 in Chicago, 23:30 in Paris
>>> shown = [OfferScore(offer_id="tips", score=0.0, propensity=1.0)]
>>> ledger.record(NextBestOffer(decision_id="d1", customer_id="c1", ts=at, channel="web",
...                             trigger_event_id=None, offers=shown, fallback=True))
>>> later = datetime(2026, 12, 2, 1, tzinfo=UTC)  # 19:00 in Chicago, the 2nd in Paris
>>> chicago = ledger.history("c1", later, "America/Chicago")
>>> chicago.shown_today, chicago.shown_7d, chicago.offers_7d, chicago.last_shown["tips"] == at
({'web': 1}, {'web': 1}, {'tips': 1}, True)
>>> ledger.history("c1", later, "Europe/Paris").shown_today  # a day of Paris begun since
{}
>>> ledger.history("c2", later, "UTC") == ContactHistory()
True
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from feature_store import ContactHistory
from feature_store.contact_days import day_start_ms, week_start_ms
from feature_store.facts import DAY_MS, ts_ms
from schemas import NextBestOffer

CUSTOMERS = 100_000  # customers remembered per process
KEPT_MS = 8 * DAY_MS  # a week's count reaches back seven days and some hours, never eight


@dataclass(slots=True)
class _Shown:
    """One customer's fallback answers with offers: (UTC ms, channel, offer ids), oldest
    first, and when each offer was last shown (cool-downs may be longer than a week)."""

    answers: list[tuple[int, str, tuple[str, ...]]] = field(default_factory=list)
    last: dict[str, datetime] = field(default_factory=dict)


class FallbackContacts:
    """The offers this process's fallback answers showed, per customer (LRU-bounded)."""

    def __init__(self, customers: int = CUSTOMERS) -> None:
        self._customers = customers
        self._shown: OrderedDict[str, _Shown] = OrderedDict()

    def __len__(self) -> int:
        return len(self._shown)

    def record(self, decision: NextBestOffer) -> None:
        """Count ``decision`` as answered: its offers shown (nothing if it has none)."""
        if not decision.offers:
            return
        at = ts_ms(decision.ts)
        shown = self._shown.pop(decision.customer_id, None) or _Shown()
        offers = tuple(o.offer_id for o in decision.offers)
        shown.answers = [a for a in shown.answers if a[0] > at - KEPT_MS]
        shown.answers.append((at, decision.channel, offers))
        for offer_id in offers:
            shown.last[offer_id] = max(decision.ts, shown.last.get(offer_id, decision.ts))
        self._shown[decision.customer_id] = shown  # the newest
        while len(self._shown) > self._customers:
            self._shown.popitem(last=False)

    def history(self, customer_id: str, now: datetime, timezone: str) -> ContactHistory:
        """What the customer was shown by this process's fallbacks, counted over their
        day and week at ``now`` in ``timezone``, as a decision's contact history."""
        shown = self._shown.get(customer_id)
        if shown is None:
            return ContactHistory()
        at = ts_ms(now)
        day_from, week_from = day_start_ms(at, timezone), week_start_ms(at, timezone)
        today: dict[str, int] = {}
        week: dict[str, int] = {}
        offers: dict[str, int] = {}
        for ms, channel, offer_ids in shown.answers:
            if ms >= day_from:
                today[channel] = today.get(channel, 0) + 1
            if ms >= week_from:
                week[channel] = week.get(channel, 0) + 1
                for offer_id in offer_ids:
                    offers[offer_id] = offers.get(offer_id, 0) + 1
        return ContactHistory(
            shown_today=today, shown_7d=week, offers_7d=offers, last_shown=dict(shown.last)
        )

    def forget(self, customer_id: str) -> None:
        """The customer was erased: drop what was shown to them."""
        self._shown.pop(customer_id, None)
