"""The fallback offers one API process answered, per customer: what its fallback answers,
which read nothing from Redis, count the fatigue caps, cool-downs and per-offer weekly
caps by (:func:`agents.fallback_offers.fallback_decision`).

Pure and bounded: the ``customers`` customers most lately given a fallback with offers
(the one shown one longest ago is dropped first), each with the answers of their last eight
days and, older, the last that showed each offer (a cool-down may be longer than a
week). A customer's answers stop at their weekly cap, so they stay few: about 300 bytes
a customer shown one, 30 MB for 100,000. The counts are the customer's days as the normal
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

from datetime import datetime

from feature_store import ContactHistory
from feature_store.contact_days import day_start_ms, week_start_ms
from feature_store.facts import DAY_MS, ts_ms
from schemas import NextBestOffer

CUSTOMERS = 100_000  # customers remembered per process
KEPT_MS = 8 * DAY_MS  # a week's count reaches back seven days and some hours, never eight

# one fallback answer that showed offers: when, on which channel, which
Answer = tuple[datetime, str, tuple[str, ...]]


class FallbackContacts:
    """The offers this process's fallback answers showed, per customer (LRU-bounded)."""

    def __init__(self, customers: int = CUSTOMERS) -> None:
        self._customers = customers
        # customer -> their answers, oldest first; the customer last shown one, last
        self._shown: dict[str, tuple[Answer, ...]] = {}

    def __len__(self) -> int:
        return len(self._shown)

    def record(self, decision: NextBestOffer) -> None:
        """Count ``decision`` as answered: its offers shown (nothing if it has none)."""
        if not decision.offers:
            return
        offers = tuple(o.offer_id for o in decision.offers)
        answers = self._shown.pop(decision.customer_id, ())
        self._shown[decision.customer_id] = (
            *_kept(answers, decision.ts),
            (decision.ts, decision.channel, offers),
        )
        if len(self._shown) > self._customers:
            del self._shown[next(iter(self._shown))]  # the one shown a fallback longest ago

    def history(self, customer_id: str, now: datetime, timezone: str) -> ContactHistory:
        """What the customer was shown by this process's fallbacks, counted over their
        day and week at ``now`` in ``timezone``, as a decision's contact history."""
        answers = self._shown.get(customer_id)
        if answers is None:
            return ContactHistory()
        at = ts_ms(now)
        day_from, week_from = day_start_ms(at, timezone), week_start_ms(at, timezone)
        today: dict[str, int] = {}
        week: dict[str, int] = {}
        offers: dict[str, int] = {}
        last: dict[str, datetime] = {}
        for ts, channel, offer_ids in answers:
            ms = ts_ms(ts)
            if ms >= day_from:
                today[channel] = today.get(channel, 0) + 1
            if ms >= week_from:
                week[channel] = week.get(channel, 0) + 1
                for offer_id in offer_ids:
                    offers[offer_id] = offers.get(offer_id, 0) + 1
            for offer_id in offer_ids:
                last[offer_id] = max(ts, last.get(offer_id, ts))
        return ContactHistory(shown_today=today, shown_7d=week, offers_7d=offers, last_shown=last)

    def forget(self, customer_id: str) -> None:
        """The customer was erased: drop what was shown to them."""
        self._shown.pop(customer_id, None)


def _kept(answers: tuple[Answer, ...], now: datetime) -> tuple[Answer, ...]:
    """The answers a week's count may still need at ``now`` (of the last eight days), and
    of the older ones the newest to show each offer (its cool-down may be longer)."""
    since, shown, kept = ts_ms(now) - KEPT_MS, set[str](), list[Answer]()
    for answer in reversed(answers):
        ts, _, offer_ids = answer
        if ts_ms(ts) > since or not shown.issuperset(offer_ids):
            kept.append(answer)
        shown.update(offer_ids)
    return tuple(reversed(kept))
