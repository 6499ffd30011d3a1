"""The customer's own days, which the fatigue caps count their contacts over (pure).

"One email a day" means the customer's day: from their local midnight. A contact is
counted in its daily UTC bucket (kept 31 days) and, for the three days ending with the
customer's newest contact, in its quarter-hour bucket per channel too (:data:`QUARTER`:
sparse, only a quarter with contacts has fields; a quarter divides every UTC offset,
those of :30 and :45 included). A day's count from a local midnight sums the daily
buckets from the UTC day that midnight falls in, less what that day's quarter-hour
buckets hold before the midnight. A contact with no quarter-hour bucket (recorded by a
Moments from before them) is counted with its whole UTC day, as it was: a cap may count
it a day early, never forget it. A week's count (and a per-offer weekly cap's) sums
whole UTC days, from the one the week's first local midnight falls in
(:func:`counted_from_ms`): it may count up to a day more than the customer's week, never
less, and needs no quarter-hour bucket older than a day.

The first UTC day of a day's count is counted from the shorter side of the midnight: a
midnight late in the UTC day (Europe's, at 22:00 or 23:00 UTC) has up to 92 quarters
before it and 4 to 8 after. Summing the quarters from the midnight on is right only when
every contact of that UTC day has its quarter-hour bucket, which a per-day count of the
contacts recorded with one tells (:data:`QUARTERED`, :func:`quartered_days`); else (a
contact of an older Moments, one dated before the days whose count is kept, the day's
quarters pruned) the day is counted as before, from its quarters before the midnight.

The local midnights are found here, with the tz database (a day of a change of summer
time lasts 23 or 25 hours); ``lua/apply.lua`` is given them in UTC milliseconds and
needs no timezone of its own.

>>> sydney = "Australia/Sydney"  # UTC+11 in December
>>> at = ts_ms(datetime(2026, 12, 6, 0, tzinfo=UTC))  # 11:00 on the 6th in Sydney
>>> datetime.fromtimestamp(day_start_ms(at, sydney) / 1000, UTC).isoformat()
'2026-12-05T13:00:00+00:00'
>>> fifth = at // DAY_MS - 1  # the UTC day of the 5th: one email at 10:00, one at 23:00
>>> daily = {fifth: {"shown:email": 2}}
>>> quarters = {fifth * 96 + 40: {"shown:email": 1}, fifth * 96 + 92: {"shown:email": 1}}
>>> contacts_from(daily, quarters, day_start_ms(at, sydney), fifth + 1)  # 10:00 UTC: before
{'shown:email': 1}
>>> contacts_from(daily, {}, day_start_ms(at, sydney), fifth + 1)  # no quarters: both count
{'shown:email': 2}
>>> whole = quartered_days({f"{QUARTERED}{fifth}": "2", "max|q": str(fifth * 96 + 92)}, daily)
>>> fifth in whole, contacts_from(daily, quarters, day_start_ms(at, sydney), fifth + 1, whole)
(True, {'shown:email': 1})
"""

from __future__ import annotations

import functools
from collections.abc import Container, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from feature_store.facts import DAY_MS, EPOCH, MILLISECOND, MINUTE_MS, QUARTER, ts_ms
from schemas.timezones import is_timezone, zone

__all__ = [
    "QUARTER",
    "QUARTERED",
    "QUARTERED_METRICS",
    "STALE_QUARTERED_DAYS",
    "QuarteredDays",
    "contact_zone",
    "contacts_from",
    "counted_from_ms",
    "day_start_ms",
    "quartered_days",
    "week_start_ms",
]

QUARTERS_A_DAY = DAY_MS // QUARTER.size_ms
# The contacts' field counting, per UTC day (``in_quarters:<day>``), the contacts of
# QUARTERED_METRICS recorded with their quarter-hour bucket, for the day of the newest
# quarter and the one before it (older ones go when the quarters are pruned): a day whose
# count equals its daily buckets' (of those metrics) has every contact in its quarters.
# An older Moments, which writes no such count, leaves it short of them: its days are
# counted as before. (lua/apply.lua names the prefix and the metrics too.)
QUARTERED = "in_quarters:"
QUARTERED_METRICS = ("shown:web", "shown:email", "shown:sms", "shown:call")
# A day's first quartered count drops those of the week before the kept days (apply.lua:
# where an older Moments pruned the days' first contacts, they would otherwise pile up).
STALE_QUARTERED_DAYS = 7
WEEK_DAYS = 7  # a week's cap counts today and the six days before it


def contact_zone(customer: str | None, home: str) -> str:
    """Whose days the caps count: the customer's own timezone when a touchpoint told a
    valid one, else ``home`` (the catalogue's ``[contact_policy] timezone``).

    >>> contact_zone("Asia/Kolkata", "UTC"), contact_zone(None, "Europe/Paris")
    ('Asia/Kolkata', 'Europe/Paris')
    >>> contact_zone("Mars/Olympus", "UTC")
    'UTC'
    """
    return customer if customer is not None and is_timezone(customer) else home


def day_start_ms(at_ms: int, timezone: str, days_before: int = 0) -> int:
    """When the local day of ``at_ms`` in ``timezone`` began (UTC ms), or the day
    ``days_before`` days before it. A midnight that a change of summer time skipped
    begins the day at the change; one that came twice, at its first time.

    >>> at = ts_ms(datetime(2026, 3, 29, 12, tzinfo=UTC))  # Europe/Paris went +2 at 01:00
    >>> (at - day_start_ms(at, "Europe/Paris")) / 3_600_000  # 14:00 local
    13.0
    >>> (day_start_ms(at, "Europe/Paris") - day_start_ms(at, "Europe/Paris", 1)) / 3_600_000
    24.0
    >>> nepal = day_start_ms(at, "Asia/Kathmandu")  # +5:45
    >>> datetime.fromtimestamp(nepal / 1000, UTC).time().isoformat()
    '18:15:00'
    """
    return _day_start(timezone, at_ms // MINUTE_MS, days_before)


@functools.lru_cache(maxsize=4096)
def _day_start(timezone: str, minute: int, days_before: int) -> int:
    """:func:`day_start_ms` for any instant of one minute (a local date changes on a
    whole minute: every zone's offset has been whole minutes since 1972). Each contact
    and each decision's read asks for two or more, most within a minute of the last:
    worked out anew each time, they cost a recommendation about 10 µs."""
    tz = zone(timezone)
    local = (EPOCH + minute * MINUTE_MS * MILLISECOND).astimezone(tz)
    day = local.date() - timedelta(days=days_before)
    return ts_ms(datetime.combine(day, time(), tzinfo=tz).astimezone(UTC))


def counted_from_ms(at_ms: int, timezone: str, days: int = 1) -> int:
    """Where a count of the ``days`` days of ``timezone`` ending with ``at_ms``'s begins
    (UTC ms): a day's (1) at its local midnight; a longer one's at the start of the UTC
    day its first local midnight falls in (whole UTC days: the quarter-hour buckets of
    that day may be gone).

    >>> at = ts_ms(datetime(2026, 12, 6, 0, tzinfo=UTC))  # 11:00 on the 6th in Sydney
    >>> iso = lambda ms: datetime.fromtimestamp(ms / 1000, UTC).isoformat()
    >>> iso(counted_from_ms(at, "Australia/Sydney")), iso(week_start_ms(at, "Australia/Sydney"))
    ('2026-12-05T13:00:00+00:00', '2026-11-29T00:00:00+00:00')
    """
    start = day_start_ms(at_ms, timezone, days - 1)
    return start if days == 1 else start // DAY_MS * DAY_MS


def week_start_ms(at_ms: int, timezone: str) -> int:
    """Where a week's count begins: the start of the UTC day of the local midnight six
    days before today's (:func:`counted_from_ms`)."""
    return counted_from_ms(at_ms, timezone, WEEK_DAYS)


@dataclass(frozen=True, slots=True)
class QuarteredDays:
    """The UTC days whose every contact of :data:`QUARTERED_METRICS` is in its quarter-hour
    bucket, as the contacts hash (field -> value) tells, asked one day at a time (a read
    builds it for every decision: the hash is not scanned): the day's :data:`QUARTERED`
    count equals what its daily buckets (``daily``) hold of those metrics, and the day is
    the newest quarter's (``max|q``) or later, or the one before (its quarters are all
    kept: a prune takes only those three days before the newest). As apply.lua's
    ``whole``."""

    contacts: Mapping[str, str]
    daily: Mapping[int, Mapping[str, int]]

    def __contains__(self, day: object) -> bool:
        if not isinstance(day, int):
            return False
        newest, count = self.contacts.get("max|q"), self.contacts.get(f"{QUARTERED}{day}")
        if newest is None or count is None or not (_digits(newest) and _digits(count)):
            return False
        if day < int(newest) // QUARTERS_A_DAY - 1:
            return False
        counted = self.daily.get(day, {})
        return int(count) == sum(counted.get(m, 0) for m in QUARTERED_METRICS)


def quartered_days(
    contacts: Mapping[str, str], daily: Mapping[int, Mapping[str, int]]
) -> QuarteredDays:
    """The days of ``contacts`` whose every contact is in its quarter
    (:class:`QuarteredDays`), ``daily`` its daily buckets as parsed."""
    return QuarteredDays(contacts, daily)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def contacts_from(
    daily: Mapping[int, Mapping[str, int]],
    quarters: Mapping[int, Mapping[str, int]],
    from_ms: int,
    last_day: int,
    whole: Container[int] = (),
) -> dict[str, int]:
    """The contact counts from ``from_ms`` to the end of UTC day ``last_day``: the daily
    buckets (UTC day -> metric -> count) of the days from the one ``from_ms`` falls in,
    less, of the first, what its quarter-hour buckets (quarter -> metric -> count) hold
    before ``from_ms`` (never more than the day holds). The quarter ``from_ms`` falls in
    counts whole. When the first day is one of ``whole`` (:func:`quartered_days`) and
    fewer of its quarters follow ``from_ms`` than precede it, a metric of
    :data:`QUARTERED_METRICS` counts that day's quarters from ``from_ms`` on instead
    (never more than the day holds): the same count, as apply.lua reads it, from fewer
    fields."""
    first = from_ms // DAY_MS
    total: dict[str, int] = {}
    for day, metrics in daily.items():
        if first <= day <= last_day:
            for metric, value in metrics.items():
                total[metric] = total.get(metric, 0) + value
    head = daily.get(first)
    if not head:
        return total
    earlier: dict[str, int] = {}
    later: dict[str, int] = {}
    low, start = first * QUARTERS_A_DAY, from_ms // QUARTER.size_ms
    high = low + QUARTERS_A_DAY
    after = first in whole and high - start < start - low
    for quarter, metrics in quarters.items():
        if low <= quarter < high:
            side = earlier if quarter < start else later
            for metric, value in metrics.items():
                side[metric] = side.get(metric, 0) + value
    for metric in total.keys() & head.keys():
        counted = head[metric]
        if after and metric in QUARTERED_METRICS:
            total[metric] -= counted - min(later.get(metric, 0), counted)
        elif metric in earlier:
            total[metric] -= min(earlier[metric], counted)
    return total
