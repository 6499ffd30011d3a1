"""The alert hub's bookkeeping: erased customers leave the buffer and the screens (and
are remembered a while), alerts wait while Redis cannot say who is erased, and what left
the buffer is known."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from feature_store import StoreUnavailable
from schemas import decode_intervention
from streams.api import alerts as alerts_module
from streams.api.alerts import AlertHub
from streams.api.screen_erasures import CustomerRefs, Erased, RecentErasures
from streams.api.screen_feed import Alert, StreamPosition
from tests.unit.logged import said_by

REFS = CustomerRefs(b"unit-test-secret")


def alert(n: int, customer: str, partition: int = 0, queue: str | None = "vip") -> Alert:
    raw = json.dumps({
        "intervention_id": f"iv-{partition}-{n}", "customer_id": customer,
        "ts": "2026-11-23T10:00:00Z",
        "kind": "retention_call", "priority": 1, "queue": queue, "agent_id": None,
        "trigger_event_id": None, "reasons": [], "suggested_action": "Call them.",
        "context": {},
    }).encode()  # fmt: skip
    return Alert(f"{partition}-{n}", decode_intervention(raw), raw)


async def nobody_erased(customer_ids: Sequence[str]) -> list[bool]:
    return [False] * len(customer_ids)


def hub(erased: object = nobody_erased) -> AlertHub:
    return AlertHub("127.0.0.1:9", "interventions", "customer-erasures", erased, REFS,
                    backlog=3, retry_s=0.01)  # type: ignore[arg-type]  # fmt: skip


def test_forget_drops_the_customers_alerts_and_tells_every_subscriber() -> None:
    alerts = hub()
    screen = alerts.subscribe()
    alerts.publish([alert(1, "a"), alert(2, "b"), alert(3, "a")])
    alerts.forget("a")
    assert [a.id for a in alerts.since(StreamPosition(), None)] == ["0-2"]
    assert [a.id for a in alerts.since(StreamPosition.parse("0-1"), None)] == [
        "0-2"
    ]  # an id no longer there
    received = [screen.get_nowait() for _ in range(4)]
    assert received[-1] == Erased("a", REFS("a"))
    alerts.publish([alert(4, "c"), alert(5, "d"), alert(6, "e")])  # the backlog still holds 3
    assert [a.id for a in alerts.since(StreamPosition(), None)] == ["0-4", "0-5", "0-6"]


def test_forget_has_the_fallbacks_contacts_forget_the_erased_customer() -> None:
    """Every erasure the process hears of (its own, the erasures topic's) also drops what
    its fallback answers showed the customer: their id is kept nowhere after it."""
    from datetime import UTC, datetime

    from agents.fallback_contacts import FallbackContacts
    from schemas import NextBestOffer, OfferScore

    alerts, ledger = hub(), FallbackContacts()
    alerts.also_forget.append(ledger.forget)
    tips = [OfferScore(offer_id="tips", score=0.0, propensity=1.0)]
    for customer in ("a", "b"):
        ledger.record(NextBestOffer(decision_id=customer, customer_id=customer,
                                    ts=datetime(2026, 12, 1, tzinfo=UTC), channel="web",
                                    trigger_event_id=None, fallback=True, offers=tips))  # fmt: skip
    alerts.forget("a")
    assert len(ledger) == 1
    assert ledger.history("a", datetime(2026, 12, 1, tzinfo=UTC), "UTC").shown_today == {}


def test_an_alert_sent_again_under_another_offset_reaches_the_screens_once() -> None:
    """A worker that cannot know Kafka took its alerts (the broker answered too late, a
    batch taken over) sends them again: screens got the same alert twice."""
    alerts = hub()
    screen = alerts.subscribe()
    first, again = alert(1, "a"), alert(1, "a", partition=0)
    again = Alert("0-2", again.intervention, again.raw)  # the same intervention, next offset
    alerts.publish([first])
    alerts.publish([again, alert(3, "b")])
    assert [a.id for a in alerts.since(StreamPosition(), None)] == ["0-1", "0-3"]
    assert [screen.get_nowait().id for _ in range(2)] == ["0-1", "0-3"]  # type: ignore[union-attr]
    assert screen.empty()


async def test_erased_customers_alerts_are_dropped() -> None:
    async def a_is_erased(customer_ids: Sequence[str]) -> list[bool]:
        return [c == "a" for c in customer_ids]

    kept = await hub(a_is_erased).unless_erased([alert(1, "a"), alert(2, "b")])
    assert [a.id for a in kept] == ["0-2"]


async def test_alerts_wait_until_redis_can_say_who_is_erased(
    caplog: pytest.LogCaptureFixture,
) -> None:
    asked = []
    erased, kept_id = "cust-erased-x1", "cust-kept-y2"  # found in the log however written

    async def flaky(customer_ids: Sequence[str]) -> list[bool]:
        asked.append(list(customer_ids))
        if len(asked) < 3:
            raise StoreUnavailable("connection refused")
        return [c == erased for c in customer_ids]

    caplog.set_level(logging.DEBUG)  # every level: no customer id at info or debug either
    kept = await hub(flaky).unless_erased([alert(1, erased), alert(2, kept_id)])
    assert [a.id for a in kept] == ["0-2"] and len(asked) == 3
    assert "holding 2 alerts until Redis can say who is erased" in caplog.text
    assert erased not in caplog.text and kept_id not in caplog.text  # no customer id logged


async def test_after_a_reconnection_buffered_alerts_of_customers_erased_meanwhile_go() -> None:
    erased: set[str] = set()

    async def tombstones(customer_ids: Sequence[str]) -> list[bool]:
        return [c in erased for c in customer_ids]

    alerts = hub(tombstones)
    alerts.publish([alert(1, "a"), alert(2, "b")])
    screen = alerts.subscribe()
    await alerts.recheck()  # nobody erased: nothing changes, nobody is told
    assert [a.id for a in alerts.since(StreamPosition(), None)] == ["0-1", "0-2"] and screen.empty()
    erased.add("a")  # erased through another process while this one was not listening
    await alerts.recheck()
    assert [a.id for a in alerts.since(StreamPosition(), None)] == ["0-2"]
    assert screen.get_nowait() == Erased("a", REFS("a")) and screen.empty()


def test_a_screen_too_far_behind_is_closed_so_that_it_resumes() -> None:
    alerts = hub()
    slow, other = alerts.subscribe(), alerts.subscribe()
    alerts.publish([alert(n, "a") for n in range(1000)])  # the slow screen's inbox is full
    assert not slow.closed
    other.get_nowait()  # the other screen keeps up
    alerts.publish([alert(1000, "a")])
    assert slow.closed and not other.closed  # its stream ends once it read what it has
    assert slow.qsize() == 1000  # nothing more is put in
    alerts.close_all()  # the process stops: every stream is told
    assert other.closed and other.get_nowait() is not None


def test_a_burst_of_erasures_ends_no_stream_and_takes_no_alerts_room() -> None:
    """A bulk erasure of 1,001 customers (none of them on the screens) used to fill every
    inbox, so that every stream ended at once and every console reconnected together."""
    alerts = hub()
    screen = alerts.subscribe()
    for n in range(1001):
        alerts.forget(f"gone-{n}")
    assert not screen.closed and screen.qsize() == 1001
    alerts.publish([alert(n, "a") for n in range(999)])  # the alerts still have their room
    assert not screen.closed
    while not screen.empty():  # read: the counts come down with it
        screen.get_nowait()
    assert screen.waiting == {"alerts": 0, "passed": 0, "erasures": 0}
    for n in range(10_001):  # as many as are remembered, and one more: too far behind
        alerts.forget(f"again-{n}")
    assert screen.closed


def test_a_burst_for_other_queues_ends_no_filtered_stream() -> None:
    """A screen following one queue passes the others' alerts without a write; a burst
    of 1,001 of them used to count as 1,001 alerts it was behind, and ended its stream."""
    alerts = hub()
    billing, everything = alerts.subscribe("billing"), alerts.subscribe()
    alerts.publish([alert(n, "a", queue="vip") for n in range(1001)])
    assert not billing.closed and billing.qsize() == 1001  # passed, each moving it on
    assert everything.closed  # the same burst is 1,001 alerts for a screen of every queue
    alerts.publish([alert(1001 + n, "b", queue="billing") for n in range(1000)])
    assert not billing.closed  # its own alerts still have their room
    alerts.publish([alert(2001, "b", queue="billing")])
    assert billing.closed  # and no more
    late = alerts.subscribe("billing")
    alerts.publish([alert(3000 + n, "a", queue="vip") for n in range(20_001)])
    assert late.closed  # what it passes is bounded too


async def test_closing_wakes_a_waiting_stream() -> None:
    alerts = hub()
    inbox = alerts.subscribe()
    alerts.close_all()
    assert inbox.closed and await inbox.get() is None


def test_a_screen_resumed_on_a_replica_that_read_the_partitions_in_another_order_misses_none() -> (
    None
):
    """Replica one had read partition 1's alert and not yet partition 0's when the screen
    left it; replica two read them the other way round. Resuming after the id of the last
    alert sent, in replica two's order, skipped partition 0's alert."""
    one, two = hub(), hub()
    one.publish([alert(5, "a", partition=1)])
    position = StreamPosition()
    for sent in one.since(position, None):
        position.advance(sent)
    two.publish(
        [alert(7, "b", partition=0), alert(5, "a", partition=1), alert(6, "c", partition=1)]
    )
    resumed = two.since(StreamPosition.parse(position.event_id()), None)
    assert [a.id for a in resumed] == ["0-7", "1-6"]


def test_a_stream_position_is_per_partition_and_survives_its_event_id() -> None:
    position = StreamPosition.parse("1-4")  # an id of the older form
    assert position.passed(alert(4, "a", partition=1)) and not position.passed(alert(4, "a"))
    position.advance(alert(9, "a"))
    position.advance(alert(3, "a", partition=1))  # behind: changes nothing
    assert position.event_id() == "0-9.1-4"
    again = StreamPosition.parse(position.event_id())
    assert again.event_id() == "0-9.1-4" and again.passed(alert(9, "a"))
    for junk in ("", "1", "a-1", "1-", "1-2.x", "-1-2", "1-2..3-4"):
        assert StreamPosition.parse(junk).event_id() == "", junk


def test_queue_filtered_alerts_are_left_out_of_a_resumed_backlog() -> None:
    alerts = hub()
    alerts.publish([alert(1, "a", queue="vip"), alert(2, "b", queue="billing")])
    assert [a.id for a in alerts.since(StreamPosition(), "billing")] == ["0-2"]
    assert alerts.since(StreamPosition.parse("0-2"), "billing") == []


def test_an_alert_for_no_queue_reaches_every_screen() -> None:
    """Win-backs and calls that named no queue were shown as "Any queue" but reached only
    the screens that followed no queue."""
    alerts = hub()
    alerts.publish(
        [alert(1, "a", queue="vip"), alert(2, "b", queue=None), alert(3, "c", queue="x")]
    )
    assert [a.id for a in alerts.since(StreamPosition(), "vip")] == ["0-1", "0-2"]
    assert [a.id for a in alerts.since(StreamPosition(), None)] == ["0-1", "0-2", "0-3"]


async def test_a_position_beyond_the_end_of_a_partition_starts_that_partition_over() -> None:
    """A screen kept its position while the topic was recreated: every new alert looked
    passed already, and it was shown none."""
    alerts = hub()
    alerts._ends = {0: 3, 1: 2}
    alerts.publish([alert(1, "a"), alert(2, "b"), alert(1, "c", partition=1)])
    position = await alerts.position("0-500.1-1")  # partition 1: as far as the end
    assert [a.id for a in alerts.since(position, None)] == ["0-1", "0-2"]


async def test_an_alert_checked_before_its_customer_was_erased_is_not_published() -> None:
    """The tombstone check of an alert was under way when the customer was erased: the
    alert came out of it unerased, and reached the screens after forget() had run."""
    asked, answer = asyncio.Event(), asyncio.Event()

    async def slow_redis(customer_ids: Sequence[str]) -> list[bool]:
        asked.set()
        await answer.wait()
        return [False] * len(customer_ids)  # read before the tombstone was written

    alerts = hub(slow_redis)
    screen = alerts.subscribe()
    checking = asyncio.create_task(alerts.unless_erased([alert(1, "a"), alert(2, "b")]))
    await asked.wait()
    alerts.forget("a")  # erased meanwhile
    answer.set()
    alerts.publish(await checking)
    assert [a.id for a in alerts.since(StreamPosition(), None)] == ["0-2"]
    assert [screen.get_nowait() for _ in range(screen.qsize())] == [
        Erased("a", REFS("a")),
        alert(2, "b"),
    ]


def test_recent_erasures_keep_the_newest_for_a_day() -> None:
    now = [0.0]
    recent = RecentErasures(limit=3, clock=lambda: now[0])
    for n, customer in enumerate("abcd"):
        now[0] = n * 3600.0
        recent.add(customer, REFS(customer))
    assert recent.customers() == ["b", "c", "d"] and "a" not in recent  # at most 3
    assert recent.erasures() == [Erased(c, REFS(c)) for c in "bcd"]  # each with its ref
    now[0] = 3600.0 * 26.5  # b (erased at 1 h) and c (2 h) are over a day old now
    assert recent.customers() == ["d"] and "b" not in recent
    recent.add("d", REFS("d"))  # erased again: remembered from now
    now[0] = 3600.0 * 30
    assert "d" in recent


def missed(hub: AlertHub, position: StreamPosition, queue: str | None) -> list[tuple[int, ...]]:
    """(partition, offset passed, offset the buffer is whole from) where a screen at
    ``position`` following ``queue`` may have missed alerts."""
    return [(b.partition, b.passed, b.kept_from) for b in hub.behind(position, queue) if b.missed]


def test_alerts_that_left_the_buffer_after_a_position_are_reported_missed() -> None:
    alerts = hub()  # the buffer holds 3
    alerts.publish([alert(n, "a") for n in range(1, 7)] + [alert(1, "b", partition=1)])
    # partition 0 holds 5 and 6 now (4 was pushed out by partition 1's alert)
    assert missed(alerts, StreamPosition.parse("0-2.1-0"), None) == [(0, 2, 5)]
    assert missed(alerts, StreamPosition.parse("0-2.1-0"), " Vip") == [(0, 2, 5)]
    assert missed(alerts, StreamPosition.parse("0-2.1-0"), "billing") == []  # none of its own
    assert missed(alerts, StreamPosition.parse("0-4.1-0"), None) == []  # 5 on: all still here
    # a partition a position does not name had no alert when it was taken: 0 to 4 of
    # partition 0 came after it, and have left (screens were never told of them)
    assert missed(alerts, StreamPosition.parse("1-0"), None) == [(0, -1, 5)]
    assert missed(alerts, StreamPosition(), None) == []
    alerts.forget("a")  # erased, not missed
    assert missed(alerts, StreamPosition.parse("0-4"), None) == []


def test_a_screen_is_told_of_a_gap_where_alerts_of_its_own_queue_or_every_queue_left() -> None:
    """One buffer holds every queue's alerts: a quiet queue's screen missed nothing when
    only a busy queue's alerts left it; an alert for every queue is any screen's."""
    alerts = hub()  # the buffer holds 3
    alerts.publish([alert(1, "a", queue="vip")])
    alerts.publish([alert(n, "b", queue="billing") for n in range(2, 8)])
    assert [a.id for a in alerts.since(StreamPosition(), None)] == ["0-5", "0-6", "0-7"]
    assert missed(alerts, StreamPosition.parse("0-1"), "vip") == []  # 2 to 4: billing's
    assert missed(alerts, StreamPosition.parse("0-0"), "vip") == [(0, 0, 5)]  # 1 was its own
    assert missed(alerts, StreamPosition.parse("0-1"), "billing") == [(0, 1, 5)]
    alerts.publish([alert(8, "c", queue=None)])  # for every queue: it pushes 5 out
    alerts.publish([alert(n, "b", queue="billing") for n in range(9, 12)])
    assert missed(alerts, StreamPosition.parse("0-7"), "vip") == [(0, 7, 9)]


def test_a_partition_added_after_a_position_is_told_as_missed_from_its_start() -> None:
    """A screen positioned before partition 1 was added names no offset there: the alerts
    of partition 1 that left the buffer are reported from its first offset (they were
    sent nowhere it could resume from)."""
    alerts = hub()  # the buffer holds 3
    alerts.publish([alert(n, "a") for n in range(2)])
    alerts._gaps.never_read(1, before=0)  # as the fan-out reads a partition added meanwhile
    alerts._added_from[1] = 0
    alerts.publish([alert(n, "b", partition=1) for n in range(4)])
    assert [a.id for a in alerts.since(StreamPosition(), None)] == ["1-1", "1-2", "1-3"]
    assert missed(alerts, StreamPosition.parse("0-1"), None) == [(1, -1, 1)]
    assert missed(alerts, StreamPosition.parse("0-1.1-0"), None) == []  # it had passed 1-0
    assert missed(alerts, StreamPosition(), None) == []  # no position: it resumes nothing


def test_an_erasure_heard_twice_is_told_to_the_screens_once() -> None:
    """The erasing API process forgets the customer at once, and again when the record
    comes back from the erasures topic: screens were sent two identical notices."""
    alerts = hub()
    screen = alerts.subscribe()
    alerts.forget("a")
    alerts.forget("a")
    assert [screen.get_nowait() for _ in range(screen.qsize())] == [Erased("a", REFS("a"))]


async def test_a_partition_that_starts_over_ends_the_streams_under_way() -> None:
    """The topic was made again: a screen streaming had passed 0-2 of the old log, took
    the new log's 0-0, 0-1, ... for passed, and was shown none of them."""
    from aiokafka import TopicPartition

    alerts = hub()
    alerts.publish([alert(1, "a"), alert(2, "b")])
    screen = alerts.subscribe()
    alerts._started_over(TopicPartition("interventions", 0), 0)
    assert screen.closed and screen.get_nowait() is None  # its stream ends, and resumes
    assert alerts.since(StreamPosition(), None) == []  # the old log's alerts are gone
    assert (await alerts.position("0-2")).event_id() == ""  # past the new end: starts over


async def test_a_position_keeps_only_the_partitions_the_topic_has_once_known() -> None:
    """An id naming a partition the topic lacks kept it: were it added later, its first
    alerts would have been taken as passed."""
    alerts = hub()
    assert (await alerts.position("0-2.7-40")).event_id() == "0-2.7-40"  # not connected yet
    alerts._ends = {0: 10, 1: 4}
    assert (await alerts.position("0-2.7-40")).event_id() == "0-2"


class EndsLookup:
    """The hub's consumer, as far as asking a partition's end goes."""

    def __init__(self, ends: dict[int, int] | None = None, hang: bool = False) -> None:
        self.ends, self.hang, self.asked = ends or {}, hang, 0

    async def end_offsets(self, tps: list[Any]) -> dict[Any, int]:
        self.asked += 1
        if self.hang:
            await asyncio.sleep(60)
        if not self.ends:
            raise KafkaConnectionError("no broker")
        return {tp: self.ends[tp.partition] for tp in tps}


async def test_a_position_at_this_process_s_end_is_checked_with_the_broker() -> None:
    """A screen resumed here with the alert another replica had just shown it, before
    this process had read it: the partition was taken as past its end, started over,
    and every buffered alert of it was sent again."""
    alerts = hub()
    alerts._ends = {0: 3}
    alerts.publish([alert(1, "a"), alert(2, "b")])
    alerts._consumer = EndsLookup({0: 4})  # type: ignore[assignment]
    position = await alerts.position("0-3")  # 0-3 was read by another replica
    assert position.event_id() == "0-3" and alerts.since(position, None) == []
    lookup = alerts._consumer
    assert await alerts.position("0-1") and lookup.asked == 1  # within the end: not asked


@pytest.mark.parametrize("lookup", [EndsLookup(), EndsLookup({0: 9}, hang=True)])
async def test_a_position_past_the_end_when_the_broker_cannot_say_starts_over(
    lookup: EndsLookup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alerts_module, "END_LOOKUP_S", 0.05)
    alerts = hub()
    alerts._ends = {0: 3}
    alerts.publish([alert(1, "a"), alert(2, "b")])
    alerts._consumer = lookup  # type: ignore[assignment]
    position = await alerts.position("0-7")
    assert position.event_id() == "" and lookup.asked == 1


def test_records_that_are_no_intervention_are_said_not_silently_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An alert with a null context (a producer of its own) reached no screen, and nothing
    said so: not a log line, at any level."""
    good = alert(1, "a").raw
    null_context = json.dumps({**json.loads(good), "context": None}).encode()
    records = [SimpleNamespace(offset=n, value=v) for n, v in enumerate([good, null_context])]
    with caplog.at_level(logging.WARNING, logger="streams.api.alerts"):
        kept = alerts_module._alerts(0, records, REFS)  # type: ignore[arg-type]
    assert [a.id for a in kept] == ["0-0"]
    (line,) = [r.getMessage() for r in said_by(caplog, "streams.api.alerts")]
    assert "1 records of partition 0" in line and "$.context" in line and '"a"' not in line


def test_past_the_queues_kept_the_oldest_is_taken_for_every_queues(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Queue names are many where a telephony system names one per agent: a partition
    remembers QUEUES_KEPT of them, and takes what left of the oldest as every queue's
    (a gap told to more screens, to none fewer)."""
    from streams.api import alert_gaps
    from streams.api.alert_gaps import AlertGaps, Behind

    monkeypatch.setattr(alert_gaps, "QUEUES_KEPT", 2)
    gaps = AlertGaps()
    gaps.never_read(0, before=0)
    for n, queue in enumerate(["desk-1", "desk-2", "desk-3"]):
        gaps.left(alert(n, f"c-{n}", queue=queue))
    assert len(gaps._left[0]) == 3  # two queues, and every queue's
    assert gaps.behind({0: -1}, "desk-9") == [Behind(0, -1, 3, True)]  # desk-1's, folded
    assert gaps.behind({0: 0}, "desk-9") == [Behind(0, 0, 3, False)]
    assert gaps.behind({0: 0}, "desk-2") == [Behind(0, 0, 3, True)]  # its own, kept apart
