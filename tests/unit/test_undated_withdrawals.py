"""The worker applies the withdrawal of a touchpoint dated a placeholder time (the "zero"
time of a producer that left it unset, the epoch) stamped with when it was received: the
record's Kafka time, no later than its clock allows, no later than its first letter for
one sent back; nothing for a grant so dated, nor for a withdrawal with any other time,
however old (ranked by its own time, as any)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from agents.letters import SourceRecord
from feature_store.facts import ts_ms
from schemas import Consent, encode_touchpoint
from tests.unit.test_touchpoint_handler import NOW, RecordingStore, handler

ZERO = datetime(1, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def consent(event_id: str, ts: datetime, granted: bool = False) -> Consent:
    return Consent(event_id=event_id, customer_id="cust-1", ts=ts, channel="email",
                   granted=granted)  # fmt: skip


def sent(event: Consent, at: datetime | None, offset: int) -> SourceRecord:
    produced = None if at is None else ts_ms(at)
    return SourceRecord("touchpoints", 0, offset, b"cust-1", encode_touchpoint(event),
                        produced_ms=produced, taken_ms=ts_ms(NOW))  # fmt: skip


async def test_a_withdrawal_dated_a_placeholder_time_is_stamped_when_sent() -> None:
    store = RecordingStore()
    h = handler(store)
    ten_ago = NOW - timedelta(minutes=10)
    await h.handle([
        sent(consent("zero", ZERO), ten_ago, 0),
        sent(consent("epoch", EPOCH), ten_ago, 1),
        sent(consent("old", NOW - timedelta(days=730)), ten_ago, 2),  # ranked by its own
        sent(consent("grant", ZERO, granted=True), ten_ago, 3),  # expired, as before
        sent(consent("unsent", ZERO), None, 4),  # no record time: when the worker took it
        sent(consent("fast", ZERO), NOW + timedelta(days=1), 5),  # no later than it allows
    ])  # fmt: skip
    (facts,) = store.facts
    assert [(f.fact_id, f.ts_ms) for f in facts] == [
        ("w:zero", ts_ms(ten_ago)),
        ("w:epoch", ts_ms(ten_ago)),
        ("w:unsent", ts_ms(NOW)),
        ("w:fast", ts_ms(NOW + timedelta(minutes=15))),
    ]
    assert all(f.updates == (("latest", "consent:email", "0"),) for f in facts)


async def test_a_record_timed_zero_is_stamped_when_the_worker_took_it() -> None:
    store = RecordingStore()
    record = replace(sent(consent("zero", ZERO), None, 0), produced_ms=0)
    await handler(store).handle([record])
    assert [(f.fact_id, f.ts_ms) for fs in store.facts for f in fs] == [("w:zero", ts_ms(NOW))]


async def test_one_sent_back_counts_from_its_first_letter() -> None:
    store, first = RecordingStore(), NOW - timedelta(days=3)
    record = replace(sent(consent("zero", ZERO), NOW, 0), redriven_from=b"touchpoints-dlq:0:7",
                     first_lettered=str(ts_ms(first)).encode())  # fmt: skip
    await handler(store).handle([record])
    assert [(f.fact_id, f.ts_ms) for fs in store.facts for f in fs] == [("w:zero", ts_ms(first))]
