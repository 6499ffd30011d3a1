"""``moments lift``: the lift over the control group, from what the topics hold.

Reads the erasures (all of them), then the next-best-offer decisions (or, with
``interventions``, the interventions raised and held out) and the touchpoints written
since the period began, and hands them to :class:`streams.control_lift.ControlLift`.
Only purchases and possible churn signals are decoded; the report holds counts and rates,
never a customer id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec
from aiokafka import ConsumerRecord

from agents.risk_labels import churn_signal
from schemas import (
    InvalidEvent,
    Purchase,
    decode_erasure,
    decode_intervention,
    decode_next_best_offer,
    decode_touchpoint,
)
from streams.control_lift import ControlLift, LiftPeriod
from streams.settings import Settings
from streams.topic_replay import Handler, kept_from, replay
from streams.topics import (
    CUSTOMER_ERASURES,
    INTERVENTIONS,
    INTERVENTIONS_HELD_OUT,
    NEXT_BEST_OFFERS,
    TOUCHPOINTS,
)

# Records are read from a day before the period: a touchpoint can reach Kafka before the
# moment its producer stamped on it (clocks differ), and must not be missed.
EARLY_S = 86_400
DEFAULT_DAYS = 28.0  # of first decisions, when the command is not told
T = TypeVar("T")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration(text: str) -> timedelta:
    """``"7d"``, ``"36h"``, ``"90m"`` or ``"30s"``.

    >>> duration("7d"), duration("1.5h")
    (datetime.timedelta(days=7), datetime.timedelta(seconds=5400))
    """
    found = _DURATION.match(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a duration such as 7d, 36h, 90m or 30s")
    return timedelta(seconds=float(found[1]) * _UNITS[found[2]])


def instant(text: str) -> datetime:
    """An ISO date or date and time; without an offset, UTC.

    >>> instant("2026-11-02").isoformat(), instant("2026-11-02T09:30+01:00").isoformat()
    ('2026-11-02T00:00:00+00:00', '2026-11-02T09:30:00+01:00')
    """
    try:
        found = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO date or date and time") from None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


# what a purchase or a churn signal's JSON must contain, unless it writes a letter as an
# escape (``"purchas\u0065"``, which the pipeline reads as any): other records are not
# decoded
_OUTCOME_MARKS = (b"purchase", b"cancel", b"unsubscribed", b"consent", b"\\u")


def count_outcome(lift: ControlLift, value: bytes) -> bool:
    """Hand a touchpoint record to ``lift`` if it is a purchase or a churn signal;
    ``False`` when it cannot be decoded (the pipeline dead-letters it as well)."""
    if not any(mark in value for mark in _OUTCOME_MARKS):
        return True
    try:
        event = decode_touchpoint(value)
    except InvalidEvent:
        return False
    if not lift.exposed(event.customer_id):
        return True
    if isinstance(event, Purchase):
        lift.purchase(event.event_id, event.customer_id, event.ts, event.amount, event.currency)
    elif churn_signal(event):
        lift.churned(event.customer_id, event.ts)
    return True


def chosen_period(
    now: datetime,
    window: timedelta,
    days: float | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> LiftPeriod:
    """The period ``moments lift`` measures: ``days`` (default :data:`DEFAULT_DAYS`) up to
    ``until``, or from ``since``; from ``since`` to ``until``; by default up to ``now``
    less the window, and from ``since`` never past it (later windows are still open).

    >>> from datetime import UTC, datetime, timedelta
    >>> now, week = datetime(2026, 12, 31, tzinfo=UTC), timedelta(days=7)
    >>> def shown(period):
    ...     return period.since.date().isoformat(), period.until.date().isoformat()
    >>> shown(chosen_period(now, week, since=datetime(2026, 12, 1, tzinfo=UTC), days=7))
    ('2026-12-01', '2026-12-08')
    >>> shown(chosen_period(now, week, since=datetime(2026, 12, 1, tzinfo=UTC)))
    ('2026-12-01', '2026-12-24')
    >>> shown(chosen_period(now, week, since=datetime(2026, 12, 20, tzinfo=UTC), days=30))
    ('2026-12-20', '2026-12-24')
    >>> shown(chosen_period(now, week, until=datetime(2026, 12, 11, tzinfo=UTC), days=10))
    ('2026-12-01', '2026-12-11')
    """
    if days is not None and not 0 < days < float("inf"):
        raise ValueError("--days must be a number of days above 0")
    if since is not None and until is not None:
        if days is not None:
            raise ValueError("give --days with --since or --until, not with both")
        return LiftPeriod(since, until, window)
    closed = now - window  # the last moment whose window has closed by now
    span = timedelta(days=DEFAULT_DAYS if days is None else days)
    if since is not None:
        return LiftPeriod(since, closed if days is None else min(since + span, closed), window)
    end = closed if until is None else until
    return LiftPeriod(end - span, end, window)


async def measure_lift(
    settings: Settings,
    period: LiftPeriod,
    as_of: datetime,
    batch: int = 1000,
    interventions: bool = False,
) -> dict[str, Any]:
    lift = ControlLift(period, as_of, by="kind" if interventions else "channel")
    skipped = 0

    def each(decode: Callable[[bytes], T], take: Callable[[T], None]) -> Handler:
        """A handler that decodes each record and hands it on; those that do not
        decode are counted as skipped."""

        async def handle(records: list[ConsumerRecord]) -> None:
            nonlocal skipped
            for record in records:
                try:
                    item = decode(record.value or b"")
                except (InvalidEvent, msgspec.DecodeError):
                    skipped += 1
                    continue
                take(item)

        return handle

    erasures = each(decode_erasure, lambda e: lift.erased(e.customer_id))
    decisions = each(
        decode_next_best_offer,
        lambda d: lift.decision(d.customer_id, d.ts, d.control, d.channel, d.segment),
    )
    alerts = each(
        decode_intervention,
        lambda i: lift.decision(i.customer_id, i.ts, i.control, i.kind, i.context.segment),
    )

    async def purchases(records: list[ConsumerRecord]) -> None:
        nonlocal skipped
        for record in records:
            skipped += not count_outcome(lift, record.value or b"")

    from_ms = max(0, int(period.since.timestamp() * 1000) - EARLY_S * 1000)
    await replay(settings, settings.topic(CUSTOMER_ERASURES), erasures, batch)
    if interventions:
        read = await replay(settings, settings.topic(INTERVENTIONS), alerts, batch, from_ms)
        held = settings.topic(INTERVENTIONS_HELD_OUT)
        read += await replay(settings, held, alerts, batch, from_ms)
    else:
        read = await replay(settings, settings.topic(NEXT_BEST_OFFERS), decisions, batch, from_ms)
    seen = await replay(settings, settings.topic(TOUCHPOINTS), purchases, batch, from_ms)
    read_topics = [INTERVENTIONS, INTERVENTIONS_HELD_OUT] if interventions else [NEXT_BEST_OFFERS]
    return {
        **lift.report(),
        "read": {"decisions": read, "touchpoints": seen, "skipped": skipped},
        "cut_by_retention": await cut_by_retention(settings, [*read_topics, TOUCHPOINTS], period),
    }


async def cut_by_retention(
    settings: Settings, topics: list[str], period: LiftPeriod
) -> dict[str, str]:
    """The topics that retention may have cut after the period began, each with the
    moment from which it is whole: decisions and purchases before then may be missing from
    the report (a partition's deleted records are not there to say when they were
    written; its first one kept is later than the period's start)."""
    since_ms = int(period.since.timestamp() * 1000)
    cut = {}
    for topic in topics:
        whole_from = await kept_from(settings, settings.topic(topic), since_ms)
        if whole_from is not None and whole_from > since_ms:
            cut[topic] = datetime.fromtimestamp(whole_from / 1000, UTC).isoformat()
    return cut
