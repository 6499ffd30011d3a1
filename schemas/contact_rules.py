"""The catalogue's contact policy: fatigue caps per channel and across the outbound
channels, quiet hours, and the channels where offers need the customer's consent given."""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated

import msgspec

from schemas.timezones import is_timezone, zone

DAILY_CAPS: dict[str, int] = {"web": 20, "email": 1, "sms": 1, "call": 2}
WEEKLY_CAPS: dict[str, int] = {"web": 60, "email": 3, "sms": 2, "call": 5}
OUTBOUND = ("email", "sms", "call")  # where Moments reaches out, rather than answers
Cap = Annotated[int, msgspec.Meta(ge=0)]


class ContactRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Contact fatigue caps: how many decisions with offers one customer may get on a
    channel per day and per seven days (today and the six before it), the customer's own
    days: from their local midnight, in their timezone when a touchpoint told it, else
    in the catalogue's ``timezone`` (:mod:`feature_store.contact_days`). Channels
    not named keep the default caps (:data:`DAILY_CAPS`, :data:`WEEKLY_CAPS`); 0 makes no
    offers on that channel. A daily cap set above the channel's weekly one is refused as
    a slip; a weekly cap set below the default daily one simply binds
    (``weekly_caps = { email = 0 }`` closes email).
    Outbound caps (optional) bound the :data:`OUTBOUND` channels together, so that a
    customer gets at most so many emails, texts and calls with offers in all, however
    each channel's own cap reads. Quiet hours: local times when a channel makes no offers
    at all, such as no sales calls in the evening; a span may cross midnight. They are
    read in the customer's own timezone when a touchpoint told it, else in the
    catalogue's ``timezone``. Consent is assumed on a channel until the customer
    withdraws it (opt-out), but on the channels of ``consent_required`` (opt-in), where
    an offer needs consent the customer granted.

    >>> rules = ContactRules(daily_caps={"email": 2}, quiet_hours={"call": "20:00-09:00"},
    ...                      timezone="Europe/London")
    >>> rules.daily_cap("email"), rules.daily_cap("web"), rules.weekly_cap("email")
    (2, 20, 3)
    >>> from datetime import UTC, datetime
    >>> [rules.quiet_at("call", datetime(2026, 7, 1, h, tzinfo=UTC)) for h in (7, 8, 18, 19)]
    [True, False, False, True]
    >>> ContactRules(outbound_daily_cap=2).outbound_caps()
    (2, 1000000000)
    >>> noon = datetime(2026, 7, 1, 12, tzinfo=UTC)  # 13:00 in London, 21:00 in Tokyo
    >>> rules.quiet_at("call", noon), rules.quiet_at("call", noon, "Asia/Tokyo")
    (False, True)
    >>> opt_in = ContactRules(consent_required=["email", "sms"])
    >>> opt_in.needs_grant("email"), opt_in.needs_grant("web")
    (True, False)
    """

    daily_caps: dict[str, Cap] = msgspec.field(default_factory=dict)
    weekly_caps: dict[str, Cap] = msgspec.field(default_factory=dict)
    quiet_hours: dict[str, str] = msgspec.field(default_factory=dict)  # "HH:MM-HH:MM"
    # the business's (IANA): of the quiet hours and the fatigue caps' days when the
    # customer's is not known, and the day of the daily offer budgets
    timezone: str = "UTC"
    outbound_daily_cap: Cap | None = None  # email, sms and call together, per day
    outbound_weekly_cap: Cap | None = None  # and per seven days
    consent_required: list[str] = msgspec.field(default_factory=list)  # opt-in channels

    def __post_init__(self) -> None:
        named = (("daily_caps", self.daily_caps), ("weekly_caps", self.weekly_caps),
                 ("quiet_hours", self.quiet_hours),
                 ("consent_required", dict.fromkeys(self.consent_required)))  # fmt: skip
        for name, by_channel in named:
            unknown = sorted(set(by_channel) - set(DAILY_CAPS))
            if unknown:
                raise ValueError(f"{name} names unknown channels {unknown}")
        if not is_timezone(self.timezone):
            raise ValueError(f"unknown timezone {self.timezone!r}")
        for channel, text in self.quiet_hours.items():
            _span(channel, text)
        # Only a daily cap set here can be a slip (a default one yields to a weekly cap
        # set lower), and a weekly cap of 0 closes the channel whatever the daily one.
        for channel in self.daily_caps:
            day, week = self.daily_cap(channel), self.weekly_cap(channel)
            if day > week > 0:
                raise ValueError(
                    f"the daily cap of {channel} ({day}) is above its weekly cap ({week})"
                )
        per_day, per_week = self.outbound_daily_cap, self.outbound_weekly_cap
        if per_day is not None and per_week is not None and per_day > per_week > 0:
            raise ValueError(
                f"the outbound daily cap ({per_day}) is above the weekly one ({per_week})"
            )

    def daily_cap(self, channel: str) -> int:
        return self.daily_caps.get(channel, DAILY_CAPS.get(channel, 10**9))

    def weekly_cap(self, channel: str) -> int:
        return self.weekly_caps.get(channel, WEEKLY_CAPS.get(channel, 10**9))

    def needs_grant(self, channel: str) -> bool:
        """Whether an offer on ``channel`` needs consent the customer granted (opt-in)."""
        return channel in self.consent_required

    def outbound_caps(self) -> tuple[int, int]:
        """The caps on the outbound channels together: per day, per seven days."""
        day, week = self.outbound_daily_cap, self.outbound_weekly_cap
        return (10**9 if day is None else day), (10**9 if week is None else week)

    def closed(self, channel: str) -> str | None:
        """The reason no offer is ever made on ``channel`` (a cap of 0 on it, or on the
        outbound channels together), as the contact policy gives it; None if open.

        >>> ContactRules(daily_caps={"sms": 0}).closed("sms")
        'suppressed:fatigue:sms:day'
        >>> ContactRules(outbound_daily_cap=0).closed("email"), ContactRules().closed("web")
        ('suppressed:fatigue:outbound:day', None)
        """
        if self.daily_cap(channel) <= 0:
            return f"suppressed:fatigue:{channel}:day"
        if self.weekly_cap(channel) <= 0:
            return f"suppressed:fatigue:{channel}:week"
        day, week = self.outbound_caps()
        if channel in OUTBOUND and min(day, week) <= 0:
            return f"suppressed:fatigue:outbound:{'day' if day <= 0 else 'week'}"
        return None

    def quiet_at(self, channel: str, now: datetime, customer_timezone: str | None = None) -> bool:
        """Whether ``now`` falls in the channel's quiet hours: in the customer's own
        timezone when it is known, else in the catalogue's."""
        return self.quiet_until(channel, now, customer_timezone) is not None

    def quiet_until(
        self, channel: str, now: datetime, customer_timezone: str | None = None
    ) -> str | None:
        """When the channel's quiet hours that ``now`` falls in end, local time
        (``"HH:MM"``, read as :meth:`quiet_at` reads them); ``None`` out of them.

        >>> from datetime import UTC, datetime
        >>> rules = ContactRules(quiet_hours={"call": "20:00-09:00"})
        >>> at = datetime(2026, 12, 7, 16, 30, tzinfo=UTC)  # 03:30 the next day in Sydney
        >>> rules.quiet_until("call", at, "Australia/Sydney"), rules.quiet_until("call", at)
        ('09:00', None)

        A span that ends in the hour the clocks skip that day ends at the first local
        time after it (when :meth:`quiet_at` no longer finds the channel quiet): London
        has no 01:30 on the last Sunday of March, so quiet hours until 01:30 end at 02:00.

        >>> spring = ContactRules(quiet_hours={"call": "20:00-01:30"}, timezone="Europe/London")
        >>> evening = datetime(2026, 3, 28, 21, tzinfo=UTC)
        >>> night = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 00:30 there, before the jump
        >>> spring.quiet_until("call", evening), spring.quiet_until("call", night)
        ('02:00', '02:00')
        >>> spring.quiet_until("call", datetime(2026, 3, 27, 21, tzinfo=UTC))  # the night before
        '01:30'

        Quiet hours in force when the clocks go back hold through the time lived twice:
        from 01:30, they hold on after 02:00 BST, when London's clocks read 01:00 again.

        >>> autumn = ContactRules(quiet_hours={"call": "01:30-05:00"}, timezone="Europe/London")
        >>> autumn.quiet_until("call", datetime(2026, 10, 25, 1, 0, tzinfo=UTC))  # 01:00 GMT
        '05:00'
        """
        text = self.quiet_hours.get(channel)
        if text is None:
            return None
        known = customer_timezone is not None and is_timezone(customer_timezone)
        name = customer_timezone if known else self.timezone
        local = now.astimezone(zone(name))
        minute, (start, end) = local.hour * 60 + local.minute, _span(channel, text)
        if not _within(minute, start, end):
            # the time the clocks go back over is lived twice: quiet hours in force when
            # they went back hold on, though the clock reads a time before their start
            went_back = _first_pass_end(local)
            if went_back is None or not _within(went_back, start, end):
                return None
            minute = went_back
        # the day the span ends: tomorrow when it crosses midnight and began today
        ends_on = local.date() + timedelta(days=1 if end < start <= minute else 0)
        ends = first_existing(name, ends_on, end)
        # clocks that jumped over the end and the next start too: quiet to the next end
        for _ in range(2):
            if not _within(ends.hour * 60 + ends.minute, start, end):
                break
            ends_on += timedelta(days=1)
            ends = first_existing(name, ends_on, end)
        return f"{ends:%H:%M}"


def _first_pass_end(local: datetime) -> int | None:
    """In the second pass of the time the clocks went back over (``local.fold`` 1), the
    minute of the day its first pass ended on, the last before they went back; ``None``
    at any other time.

    >>> london = zone("Europe/London")  # back from 02:00 to 01:00 on 25 October 2026
    >>> _first_pass_end(datetime(2026, 10, 25, 1, 10, tzinfo=UTC).astimezone(london))
    119
    >>> _first_pass_end(datetime(2026, 10, 25, 0, 10, tzinfo=UTC).astimezone(london))
    """
    if not local.fold:
        return None
    wall = local.replace(tzinfo=None, second=0, microsecond=0, fold=0)
    return _went_back_from(local.tzinfo, wall)


@functools.lru_cache(maxsize=1024)
def _went_back_from(tz: tzinfo | None, wall: datetime) -> int | None:
    """:func:`_first_pass_end` of the local time ``wall`` (naive, to the minute, in its
    second pass in ``tz``): worked out once per zone and minute, as every decision of
    that hour asks."""
    for _ in range(24 * 60):  # the time lived twice: an hour, or half of one
        wall += timedelta(minutes=1)
        if wall.replace(tzinfo=tz).utcoffset() == wall.replace(tzinfo=tz, fold=1).utcoffset():
            last = wall - timedelta(minutes=1)  # the time lived twice ends before ``wall``
            return last.hour * 60 + last.minute
    return None


def _within(minute: int, start: int, end: int) -> bool:
    """Whether the minute of the day falls in the span from ``start`` to ``end``."""
    return start <= minute < end if start < end else minute >= start or minute < end


@functools.lru_cache(maxsize=256)
def first_existing(timezone: str, day: date, minute: int) -> datetime:
    """The local time ``minute`` (of the day) on ``day`` in ``timezone`` (naive, to the
    minute), or, when the clocks skip it that day (a spring-forward gap), the first local
    time after it that exists: the one the clocks jumped to.

    >>> f"{first_existing('America/New_York', date(2026, 3, 8), 2 * 60 + 30):%H:%M}"
    '03:00'
    >>> f"{first_existing('America/New_York', date(2026, 3, 9), 2 * 60 + 30):%H:%M}"
    '02:30'
    """
    tz, wall = zone(timezone), datetime.combine(day, time(minute // 60, minute % 60))
    # in a gap, fold 1 reads the wall time with the offset after the jump (an instant
    # before it) and fold 0 with the one before (an instant after it); else the same
    earlier = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    later = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if earlier >= later:
        return wall  # it exists (once, or twice)
    after = later.astimezone(tz).utcoffset()
    lo, hi = earlier, later  # lo before the jump, hi after it: halve, to the minute
    while hi - lo > timedelta(minutes=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return hi.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0, fold=0)


_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)\Z")


@functools.lru_cache(maxsize=256)
def _span(channel: str, text: str) -> tuple[int, int]:
    """``"21:00-08:00"`` as minutes of the day (start, end)."""
    found = _HOURS.match(text.strip())
    if found is None:
        raise ValueError(f"quiet_hours of {channel}: {text!r} is not HH:MM-HH:MM")
    hh1, mm1, hh2, mm2 = (int(g) for g in found.groups())
    start, end = hh1 * 60 + mm1, hh2 * 60 + mm2
    if start == end:
        raise ValueError(f"quiet_hours of {channel}: {text!r} starts where it ends")
    return start, end
