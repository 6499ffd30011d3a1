"""The fallback offers one API process answered, per customer: what its fallback answers,
which read nothing from Redis, count the fatigue caps, cool-downs and per-offer weekly
caps by (:func:`agents.fallback_offers.fallback_decision`).

Pure and bounded by the answers it holds (``answers``, 100,000 by default): the customers
most lately given a fallback with offers (those shown one longest ago are dropped first
once it holds more), each with the answers of their last eight days and, older, the
last that showed each offer (a cool-down may be longer than a week). An answer held
takes about 180 bytes, a customer's own entry some 100 more: some 18 to 30 MB at the
bound, whatever the caps let a customer be shown. The counts are the customer's days as the normal
decisions' (:mod:`feature_store.contact_days`), in the timezone the caller names: a
fallback knows no customer's own, so the catalogue's. The ids stay in memory only.

>>> from datetime import UTC, datetime
>>> from schemas import OfferScore
>>> ledger = FallbackContacts(answers=2)
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
from feature_store.facts import DAY_MS, EPOCH, MILLISECOND, ts_ms
from schemas import NextBestOffer

ANSWERS = 100_000  # answers held per process, over every customer
KEPT_MS = 8 * DAY_MS  # a week's count reaches back seven days and some hours, never eight

# one fallback answer that showed offers: when (UTC ms), on which channel, which
Answer = tuple[int, str, tuple[str, ...]]


class FallbackContacts:
    """The offers this process's fallback answers showed, per customer (bounded by the
    answers held, dropping the customers shown one longest ago)."""

    def __init__(self, answers: int = ANSWERS) -> None:
        self._most = answers
        self._held = 0  # answers held, over every customer
        # customer -> their answers, oldest first; the customer last shown one, last
        self._shown: dict[str, tuple[Answer, ...]] = {}

    def __len__(self) -> int:
        return len(self._shown)

    @property
    def held(self) -> int:
        """The answers held, over every customer."""
        return self._held

    def record(self, decision: NextBestOffer) -> None:
        """Count ``decision`` as answered: its offers shown (nothing if it has none)."""
        if not decision.offers:
            return
        offers = tuple(o.offer_id for o in decision.offers)
        at = ts_ms(decision.ts)
        before = self._shown.pop(decision.customer_id, ())
        answers = (*_kept(before, at), (at, decision.channel, offers))
        self._shown[decision.customer_id] = answers
        self._held += len(answers) - len(before)
        while self._held > self._most and len(self._shown) > 1:
            oldest = next(iter(self._shown))  # the customer shown a fallback longest ago
            self._held -= len(self._shown.pop(oldest))

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
        last: dict[str, int] = {}
        for ms, channel, offer_ids in answers:
            if ms >= day_from:
                today[channel] = today.get(channel, 0) + 1
            if ms >= week_from:
                week[channel] = week.get(channel, 0) + 1
                for offer_id in offer_ids:
                    offers[offer_id] = offers.get(offer_id, 0) + 1
            for offer_id in offer_ids:
                last[offer_id] = max(ms, last.get(offer_id, ms))
        when = {offer_id: EPOCH + ms * MILLISECOND for offer_id, ms in last.items()}
        return ContactHistory(shown_today=today, shown_7d=week, offers_7d=offers, last_shown=when)

    def forget(self, customer_id: str) -> None:
        """The customer was erased: drop what was shown to them."""
        self._held -= len(self._shown.pop(customer_id, ()))


def _kept(answers: tuple[Answer, ...], now_ms: int) -> tuple[Answer, ...]:
    """The answers a week's count may still need at ``now_ms`` (of the last eight days),
    and of the older ones the newest to show each offer (its cool-down may be longer)."""
    since, shown, kept = now_ms - KEPT_MS, set[str](), list[Answer]()
    for answer in reversed(answers):
        ms, _, offer_ids = answer
        if ms > since or not shown.issuperset(offer_ids):
            kept.append(answer)
        shown.update(offer_ids)
    return tuple(reversed(kept))
