"""A dead letter the dead-letter topic refuses for good (its ``max.message.bytes`` below
the letter's size): the batch's decisions are confirmed as usual, the letter is written
again reduced, with its own reason, or dropped (logged, counted) when even that is
refused; no good record is dead-lettered, and nothing waits on it for ever.

The rig (Faust's app, stream and topics stood in for) is the touchpoint agent's own."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from faust.exceptions import ProducerSendError

from agents.batch_result import BatchResult, FailedRecord
from agents.letters import SourceRecord
from agents.touchpoint_agent import Outlets
from tests.unit.test_touchpoint_agent import Handler, Rig, Topic, decided, event

POISON = b'{"type": "web_click", "customer_id": "c-secret", "page": "' + b"x" * 10_000


@dataclass
class Limited(Topic):
    """Refuses a record above ``limit`` bytes: as the producer does, before it is queued
    (``at_send``), or as the broker does, in its delivery; refuses ``away`` sends first as
    a broker that is down does."""

    limit: int = 4_000
    at_send: bool = False
    away: int = 0
    refused: list[int] = field(default_factory=list)  # the sizes refused

    async def send(self, key: bytes | None, value: bytes | None, headers: Any = None) -> Any:
        if self.away:
            self.away -= 1
            raise KafkaConnectionError("broker unreachable")
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers or [])
        if size <= self.limit:
            return await super().send(key, value, headers)
        self.refused.append(size)
        refusal = MessageSizeTooLargeError(f"{size} bytes")
        if self.at_send:
            raise ProducerSendError(f"Error while sending: {refusal!r}") from refusal
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivery.set_exception(refusal)
        return delivery


@dataclass
class Confirming(Handler):
    confirmed: list[BatchResult] = field(default_factory=list)

    async def confirm(self, result: BatchResult) -> None:
        await super().confirm(result)
        self.confirmed.append(result)


def with_poison(records: list[SourceRecord]) -> BatchResult:
    """One decision (the first record's), and the last record (malformed) to letter."""
    result = decided(records)
    result.dead_letters[-1] = FailedRecord(records[-1], "invalid: malformed JSON")
    return result


def poisoned() -> list[Any]:
    return [event(1), event(2, key=b"c-secret", value=POISON)]


@pytest.mark.parametrize("at_send", [False, True], ids=["by-broker", "by-producer"])
async def test_a_letter_too_large_for_the_topic_is_written_reduced_and_the_batch_confirmed(
    at_send: bool,
) -> None:
    letters = Limited(at_send=at_send)
    handler = Confirming(with_poison)
    rig = Rig(handler, outlets=Outlets(Topic(), Topic(), Topic(), letters, Topic()))
    stream = await rig.run(poisoned())
    assert len(stream.acked) == 2 and len(handler.handled) == 2  # handled once, not given up
    assert [len(r.decisions) for r in handler.confirmed] == [1]  # confirmed as usual
    assert len(rig.outlets.decisions.sent) == 1  # type: ignore[attr-defined]
    [(key, value, headers)] = letters.sent  # the poison's alone: no good record lettered
    found = dict(headers)
    assert found["error"] == b"invalid: malformed JSON"  # its own reason
    assert found["source-offset"] == b"2" and found["letter-refused"] == b"MessageSizeTooLargeError"
    assert found["value-truncated-from"] == str(len(POISON)).encode()
    assert key == b"c-secret" and value == POISON[:1024]
    assert [o for what, o in rig.observer.seen if what == "letter_refused"] == ["reduced"]
    assert [n for what, n in rig.observer.seen if what == "dead_lettered"] == [1]
    assert rig.observer.count("retrying") == 0
    assert rig.observer.results == [("web_click", "ok")] * 2


async def test_a_letter_refused_even_reduced_is_logged_without_its_customer_and_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    letters = Limited(limit=50)  # less than any letter's headers
    handler = Confirming(with_poison)
    rig = Rig(handler, outlets=Outlets(Topic(), Topic(), Topic(), letters, Topic()))
    with caplog.at_level(logging.ERROR):
        stream = await rig.run(poisoned())
    assert len(stream.acked) == 2 and [len(r.decisions) for r in handler.confirmed] == [1]
    assert letters.sent == [] and len(letters.refused) == 3  # whole, its start, no value
    assert [o for what, o in rig.observer.seen if what == "letter_refused"] == ["dropped"]
    assert rig.observer.count("dead_lettered") == 0 and rig.observer.count("retrying") == 0
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert "touchpoints[0] at offset 2" in said and "'invalid'" in said
    assert "c-secret" not in said


async def test_a_reduced_letter_kafka_cannot_take_now_waits_like_any_outage() -> None:
    letters = Limited()
    handler = Confirming(with_poison)
    rig = Rig(handler, outlets=Outlets(Topic(), Topic(), Topic(), letters, Topic()))
    real_send = letters.send
    calls = Counter[str]()

    async def flaky(key: bytes | None, value: bytes | None, headers: Any = None) -> Any:
        calls["sent"] += 1
        if calls["sent"] == 2:  # the first reduced letter: the broker went away
            raise KafkaConnectionError("broker unreachable")
        return await real_send(key, value, headers)

    letters.send = flaky  # type: ignore[method-assign]
    await rig.run(poisoned())
    [(_, _, headers)] = letters.sent
    assert dict(headers)["error"] == b"invalid: malformed JSON"
    assert len(rig.outlets.decisions.sent) == 1  # type: ignore[attr-defined]
    assert [len(r.decisions) for r in handler.confirmed] == [1]
    assert rig.observer.count("retrying") == 1
