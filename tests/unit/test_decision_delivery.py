"""streams.api.decision_delivery: answered decisions are sent again while Kafka is away,
and given up (counted) only when there is no room left, Kafka refuses them for good, or
the API stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from streams.api import decision_delivery
from streams.api.decision_delivery import DecisionDelivery
from streams.api.publisher import PublisherFull, Record

RECORDS = [(b"cust-1", b"{}"), (b"cust-2", b"{}")]


class Publisher:
    """Fails each publication with the next of ``failures`` (None: Kafka takes it)."""

    def __init__(self, *failures: BaseException | None) -> None:
        self.failures = list(failures)
        self.published: list[Sequence[Record]] = []

    def publish(self, topic: str, records: Sequence[Record]) -> asyncio.Future[None]:
        self.published.append(records)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        failure = self.failures.pop(0) if self.failures else None
        if failure is None:
            done.set_result(None)
        else:
            done.set_exception(failure)
        return done


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_decisions_kafka_gave_up_waiting_for_are_sent_again_until_it_takes_them() -> None:
    failed: list[int] = []
    publisher = Publisher(KafkaTimeoutError(), KafkaTimeoutError(), None)
    delivery = DecisionDelivery(publisher, "nbo", failed.append, retry_after_s=0.01)  # type: ignore[arg-type]
    delivery.send(RECORDS)
    await settle()
    assert publisher.published == [RECORDS] * 3 and failed == []


async def test_no_room_left_or_a_refusal_for_good_gives_them_up_counted() -> None:
    for failure in (PublisherFull("full"), MessageSizeTooLargeError("too large")):
        failed: list[int] = []
        publisher = Publisher(failure)
        delivery = DecisionDelivery(publisher, "nbo", failed.append, retry_after_s=0.01)  # type: ignore[arg-type]
        delivery.send(RECORDS)
        await settle()
        assert publisher.published == [RECORDS] and failed == [2]


async def test_at_stop_a_waiting_retry_goes_at_once_and_a_failure_then_is_counted() -> None:
    failed: list[int] = []
    publisher = Publisher(KafkaTimeoutError(), ConnectionError("the API stopped"))
    delivery = DecisionDelivery(publisher, "nbo", failed.append, retry_after_s=60.0)  # type: ignore[arg-type]
    delivery.send(RECORDS)
    await settle()
    assert len(publisher.published) == 1 and failed == []  # its retry waits a minute
    delivery.stop()
    await settle()
    assert len(publisher.published) == 2 and failed == [2]


async def test_decisions_given_up_at_a_stop_are_told_in_one_line_per_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An API stopped in an outage wrote one line per batch answered (223 of its 231
    lines in one stop; up to some 150,000 batches can wait). The rest of the first line
    comes when the drain ends (say_given_up), not after a wait the process does not
    live to see."""
    failed: list[int] = []
    stopped = ConnectionError("the API stopped before Kafka acknowledged")
    publisher = Publisher(*[stopped] * 300)
    delivery = DecisionDelivery(publisher, "nbo", failed.append)  # type: ignore[arg-type]
    delivery.stop()
    with caplog.at_level(logging.WARNING, logger="streams.api.decision_delivery"):
        for _ in range(150):
            delivery.send(RECORDS)
        await settle()  # failing over the drain's seconds
        assert len(caplog.records) == 1
        delivery.say_given_up()  # the drain's end
    lines = [r.getMessage() for r in caplog.records]
    assert sum(failed) == 300
    assert len(lines) == 2, lines  # the first at once, the rest with it
    assert lines[0].startswith("2 decisions were not delivered to Kafka: ConnectionError(")
    assert lines[1].startswith("298 decisions were not delivered to Kafka")


async def test_decisions_given_up_while_running_are_told_every_few_seconds(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No room left for records waiting: each batch answered fails at request rate. A
    line a period at most while it lasts (one given up just after a period's line was
    told at once: two lines a period)."""
    monkeypatch.setattr(decision_delivery, "GIVEN_UP_EVERY_S", 0.5)
    failed: list[int] = []
    publisher = Publisher(*[PublisherFull("full")] * 300)
    delivery = DecisionDelivery(publisher, "nbo", failed.append)  # type: ignore[arg-type]

    def said() -> list[str]:
        return [r.getMessage().split(" ", 1)[0] for r in caplog.records]

    with caplog.at_level(logging.WARNING, logger="streams.api.decision_delivery"):
        for _ in range(100):
            delivery.send(RECORDS)
        await asyncio.sleep(0)
        assert said() == ["2"]  # the rest waits
        await asyncio.sleep(0.6)  # the rest told at 0.5 s: a period starts again
        assert said() == ["2", "198"]
        delivery.send(RECORDS)
        await asyncio.sleep(0)
        assert said() == ["2", "198"]  # told at the period's end, not at once
        await asyncio.sleep(1.1)  # told at 1 s; the period after it is quiet
        delivery.send(RECORDS)
        await asyncio.sleep(0)
    assert said() == ["2", "198", "2", "2"] and sum(failed) == 204, said()


async def test_a_decision_waiting_through_an_outage_is_not_sent_once_its_customer_is_erased(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An API process that erased a customer published the decisions it had answered for
    them through a Kafka outage when Kafka came back, 77 s after the erasure: nothing
    naming a customer is made after their erasure. Withheld, they are counted apart
    from failures, and leave the outbox (settled)."""
    failed: list[int] = []
    withheld: list[int] = []
    settled: list[tuple[Sequence[Record], Sequence[str] | None]] = []
    erased: set[str] = set()
    publisher = Publisher(KafkaTimeoutError(), KafkaTimeoutError(), None)
    delivery = DecisionDelivery(publisher, "nbo", failed.append, retry_after_s=0.01,  # type: ignore[arg-type]
                                settled=lambda r, i: settled.append((r, i)), erased=erased,
                                withheld=withheld.append)  # fmt: skip
    delivery.send(RECORDS, ["d-1", "d-2"])
    await asyncio.sleep(0)
    erased.add("cust-1")  # this process erased them while Kafka was away
    with caplog.at_level(logging.WARNING, logger="streams.api.decision_delivery"):
        await settle()
    assert publisher.published == [RECORDS, RECORDS[1:], RECORDS[1:]]
    assert withheld == [1] and failed == []
    assert settled == [([RECORDS[0]], ["d-1"]), ([RECORDS[1]], ["d-2"])]
    said = [r.getMessage() for r in caplog.records]
    assert said[1] == ("1 decisions were not delivered to Kafka: their customer was erased "
                       "meanwhile (not sent)")  # fmt: skip


async def test_a_decision_for_a_customer_erased_before_it_went_out_is_never_sent() -> None:
    withheld: list[int] = []
    publisher = Publisher()
    delivery = DecisionDelivery(publisher, "nbo", lambda n: None, erased={"cust-1", "cust-2"},  # type: ignore[arg-type]
                                withheld=withheld.append)  # fmt: skip
    delivery.send(RECORDS)
    await settle()
    assert publisher.published == [] and withheld == [2]
