"""The touchpoint agent's shell: every batch Faust hands it is handled or dead-lettered
before Faust acks it, what it sends goes out once, and its letters fit Kafka's limits.

The app, stream and topics here stand in for Faust's: the stream acks each batch once the
agent is done with it, whatever happened, as ``take_batches`` does on Faust's stream (its messages
count their readers, as Faust's do), and the topics refuse a record above the
producer's limit, as aiokafka does. The handler answers what
each test prepares. The agent on real Kafka and Redis is in ``tests/integration``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from faust.exceptions import ProducerSendError

from agents.batch_result import BatchResult, EventKey, FailedRecord
from agents.batch_retries import BatchRetries
from agents.letters import SourceRecord
from agents.reserved_contacts import Refusals
from agents.touchpoint_agent import Outlets, register_touchpoint_agent
from feature_store import StoreUnavailable
from schemas import NextBestOffer, OfferScore
from tests.unit.factories import T0

PRODUCER_LIMIT = 1_000_000  # Faust's default producer_max_request_size


@dataclass
class Topic:
    """Takes records as a Faust topic does, refusing one above the producer's limit."""

    sent: list[tuple[bytes | None, bytes | None, Any]] = field(default_factory=list)

    async def send(self, key: bytes | None, value: bytes | None, headers: Any = None) -> Any:
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers or [])
        if size > PRODUCER_LIMIT:
            refused = MessageSizeTooLargeError(f"The message is {size} bytes")
            raise ProducerSendError(f"Error while sending: {refused!r}") from refused
        self.sent.append((key, value, headers))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@dataclass
class Stream:
    """Hands out batches and acks each once the agent is done with it, as Faust does."""

    batches: list[list[Any]]
    acked: list[Any] = field(default_factory=list)

    async def take(self, max_: int, within: float) -> AsyncGenerator[list[Any], None]:
        for batch in self.batches:
            try:
                yield batch
            finally:
                self.acked.extend(batch)
                for done in batch:
                    ack = getattr(done.message, "ack", None)
                    if ack is not None:
                        ack()


def batches_of(stream: Stream, max_: int, within: float) -> AsyncGenerator[list[Any], None]:
    return stream.take(max_, within)


@dataclass
class Observer:
    seen: list[tuple[str, Any]] = field(default_factory=list)
    results: list[tuple[str, str]] = field(default_factory=list)  # of the batches handled

    def batch_handled(self, result: BatchResult) -> None:
        self.seen.append(("batch_handled", len(result.results)))
        self.results.extend(result.results)

    def decision_sent(self, decision: NextBestOffer) -> None:
        self.seen.append(("decision_sent", decision.decision_id))

    def intervention_sent(self, intervention: Any) -> None:
        self.seen.append(("intervention_sent", intervention))

    def intervention_held_out(self, intervention: Any) -> None:
        self.seen.append(("intervention_held_out", intervention))

    def dead_lettered(self, count: int) -> None:
        self.seen.append(("dead_lettered", count))

    def contacts_refused(self, count: int) -> None:
        self.seen.append(("contacts_refused", count))

    def budgets_refused(self, count: int) -> None:
        self.seen.append(("budgets_refused", count))

    def retrying(self, reason: str) -> None:
        self.seen.append(("retrying", reason))

    def letter_refused(self, outcome: str) -> None:
        self.seen.append(("letter_refused", outcome))

    def count(self, what: str) -> int:
        return sum(1 for name, _ in self.seen if name == what)


@dataclass
class Handler:
    """Answers each batch with ``answer(records)``; ``confirm`` fails with the queued
    errors first."""

    answer: Callable[[list[SourceRecord]], BatchResult]
    confirm_errors: list[Exception] = field(default_factory=list)
    handled: list[SourceRecord] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)  # customers erased
    reserved: list[list[Any]] = field(default_factory=list)  # the decisions of each reserve
    refusals: Refusals = field(default_factory=Refusals)  # what each reserve says

    async def handle(self, records: list[SourceRecord], applied: Counter[EventKey]) -> BatchResult:
        self.handled.extend(records)
        return self.answer(records)

    async def confirm(self, result: BatchResult) -> None:
        if self.confirm_errors:
            raise self.confirm_errors.pop(0)

    async def without_erased(self, result: BatchResult) -> None:
        result.decisions = [d for d in result.decisions if d.customer_id not in self.gone]
        result.leave_out_letters([f.customers for f in result.dead_letters], self.gone)

    async def reserve(self, result: BatchResult) -> Refusals:
        self.reserved.append(list(result.decisions))
        return self.refusals


@dataclass
class Rig:
    handler: Handler
    observer: Observer = field(default_factory=Observer)
    outlets: Outlets = field(
        default_factory=lambda: Outlets(Topic(), Topic(), Topic(), Topic(), Topic())
    )
    stopping: Callable[[], bool] = lambda: False  # the worker is told to stop
    unacked: set[Any] = field(default_factory=set)  # Faust's consumer's messages under way

    async def run(self, *batches: list[Any]) -> Stream:
        agents: list[Any] = []
        app = SimpleNamespace(agent=lambda source, name: lambda fn: agents.append(fn) or fn,
                              consumer=SimpleNamespace(unacked=self.unacked))  # fmt: skip
        register_touchpoint_agent(app, None, self.outlets, self.handler, self.observer,  # type: ignore[arg-type]
                                  retry_backoff_max=0.01, stopping=self.stopping,
                                  batches_of=batches_of)  # fmt: skip
        stream = Stream(list(batches))
        await asyncio.wait_for(agents[0](stream), 10)
        return stream


def event(offset: int, headers: Any = None, key: bytes = b"cust-1", value: bytes = b"{}") -> Any:
    message = SimpleNamespace(topic="touchpoints", partition=0, offset=offset, key=key,
                              value=value, headers=headers)  # fmt: skip
    return SimpleNamespace(message=message)


def all_ok(records: list[SourceRecord]) -> BatchResult:
    return BatchResult(results=[("web_click", "ok")] * len(records))


async def test_a_header_without_a_value_is_no_header_and_its_batch_is_handled() -> None:
    handler = Handler(all_ok)
    batch = [
        event(1, headers=[("redriven-from", None)]),  # Kafka allows a header without value
        event(2, headers=None),
        event(3, headers={"redriven-from": b"touchpoints-dlq:0:9"}),
        event(4, headers=[("redriven-from", "touchpoints-dlq:0:10")]),
    ]
    stream = await Rig(handler).run(batch)
    assert [r.offset for r in handler.handled] == [1, 2, 3, 4] and stream.acked == batch
    assert [r.redriven_from for r in handler.handled] == [
        None, None, b"touchpoints-dlq:0:9", b"touchpoints-dlq:0:10"
    ]  # fmt: skip


async def test_a_batch_that_fails_unexpectedly_is_dead_lettered_before_faust_acks_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: BatchRetries, records: list[SourceRecord]) -> None:
        raise RuntimeError("a fault in Moments")

    monkeypatch.setattr(BatchRetries, "run", broken)
    rig = Rig(Handler(all_ok))
    batch = [event(1), event(2)]
    stream = await rig.run(batch, [event(3)])
    letters = rig.outlets.dead_letters.sent  # type: ignore[attr-defined]
    assert [dict(h)["source-offset"] for _, _, h in letters] == [b"1", b"2", b"3"]
    assert all(dict(h)["error"] == b"batch failed: RuntimeError: a fault in Moments"
               for _, _, h in letters)  # fmt: skip
    assert len(stream.acked) == 3  # the agent carried on with the next batch


CLICK = (b'{"type": "web_click", "event_id": "e1", "customer_id": "cust-1",'
         b' "ts": "2026-01-01T00:00:00Z", "page": "/"}')  # fmt: skip


async def test_a_batch_set_aside_whole_counts_each_record_under_its_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """moments_events_total{result="failed"} of a batch that failed whole: a record that
    decodes under its touchpoint's type, one that does not under the type it claims (as
    its ``invalid`` count would), "unknown" when it claims none Moments knows."""

    async def broken(self: BatchRetries, records: list[SourceRecord]) -> None:
        raise RuntimeError("a fault in Moments")

    monkeypatch.setattr(BatchRetries, "run", broken)
    rig = Rig(Handler(all_ok))
    claims = b'{"type": "purchase", "ts": "yesterday"}'
    batch = [event(1, value=CLICK), event(2, value=claims), event(3, value=b"{"),
             event(4, value=b'{"type": "made-up"}')]  # fmt: skip
    await rig.run(batch)
    assert rig.observer.results == [
        ("web_click", "failed"), ("purchase", "failed"), ("unknown", "failed"),
        ("unknown", "failed"),
    ]  # fmt: skip


async def test_a_failed_batch_letters_no_record_naming_an_erased_customer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: BatchRetries, records: list[SourceRecord]) -> None:
        raise RuntimeError("a fault in Moments")

    monkeypatch.setattr(BatchRetries, "run", broken)
    rig = Rig(Handler(all_ok, gone={"cust-1"}))
    await rig.run(
        [event(1), event(2, key=b"cust-2"), event(3, key=b"k-3", value=b'{"customer_id": "cust-1"')]
    )
    letters = rig.outlets.dead_letters.sent  # type: ignore[attr-defined]
    assert [key for key, _, _ in letters] == [b"cust-2"]
    assert rig.observer.results == [("unknown", "erased"), ("unknown", "failed"),
                                    ("unknown", "erased")]  # fmt: skip
    assert [n for what, n in rig.observer.seen if what == "dead_lettered"] == [1]


@dataclass
class Refusing(Topic):
    """Refuses the first ``refusals`` sends, as a broker that is down does."""

    refusals: int = 0

    async def send(self, key: bytes | None, value: bytes | None, headers: Any = None) -> Any:
        if self.refusals:
            self.refusals -= 1
            raise KafkaConnectionError("broker unreachable")
        return await super().send(key, value, headers)


async def test_a_failed_batch_the_dead_letter_topic_refuses_is_counted_as_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: BatchRetries, records: list[SourceRecord]) -> None:
        raise RuntimeError("a fault in Moments")

    monkeypatch.setattr(BatchRetries, "run", broken)
    letters = Refusing(refusals=2)
    rig = Rig(Handler(all_ok), outlets=Outlets(Topic(), Topic(), Topic(), letters, Topic()))
    await rig.run([event(1)])
    assert len(letters.sent) == 1  # set aside once the topic took it
    assert [r for what, r in rig.observer.seen if what == "retrying"] == ["dead_letter"] * 2


def decided(records: list[SourceRecord]) -> BatchResult:
    offer = NextBestOffer(decision_id="d-1", customer_id="cust-1", ts=T0, channel="web",
                          trigger_event_id="e-1", offers=[OfferScore(offer_id="any", score=1.0,
                          propensity=0.5)], trigger_ts=T0 - timedelta(seconds=1))  # fmt: skip
    result = BatchResult(decisions=[offer], results=[("web_click", "ok")] * len(records))
    result.dead_letters.append(FailedRecord(records[-1], "invalid: malformed JSON"))
    return result


async def test_once_sent_decisions_and_letters_are_not_sent_or_counted_again() -> None:
    handler = Handler(decided, confirm_errors=[StoreUnavailable("ConnectionError")] * 3)
    rig = Rig(handler)
    await rig.run([event(1), event(2)])
    assert len(rig.outlets.decisions.sent) == 1  # type: ignore[attr-defined]
    assert len(rig.outlets.dead_letters.sent) == 1  # type: ignore[attr-defined]
    assert rig.observer.count("decision_sent") == 1
    assert [n for what, n in rig.observer.seen if what == "dead_lettered"] == [1]
    assert rig.observer.count("retrying") == 3 and rig.observer.count("batch_handled") == 1


@dataclass
class DownOnce(Topic):
    """Unreachable on the first send: meanwhile, ``meanwhile`` runs (an erasure)."""

    meanwhile: Callable[[], None] = lambda: None
    failed: bool = False

    async def send(self, key: bytes | None, value: bytes | None, headers: Any = None) -> Any:
        if not self.failed:
            self.failed = True
            self.meanwhile()
            raise KafkaConnectionError("broker unreachable")
        return await super().send(key, value, headers)


async def test_a_customer_erased_while_their_batch_waits_for_kafka_is_not_sent() -> None:
    handler = Handler(decided)
    down = DownOnce(meanwhile=lambda: handler.gone.add("cust-1"))
    rig = Rig(handler, outlets=Outlets(down, Topic(), Topic(), Topic(), Topic()))
    await rig.run([event(1), event(2)])
    assert down.sent == []  # the decision was never sent, before or after the outage
    assert rig.observer.count("decision_sent") == 0
    assert rig.outlets.dead_letters.sent == []  # type: ignore[attr-defined]  # nor its letter
    assert rig.observer.count("retrying") == 1 and rig.observer.count("batch_handled") == 1


async def test_contacts_are_recorded_within_their_caps_before_anything_is_sent() -> None:
    """Each attempt to send a batch records its decisions' budget spending and contacts
    first, and what the store refused is counted, by why."""
    handler = Handler(decided, refusals=Refusals(contacts=1, budgets=2))
    down = DownOnce()  # the first send fails: that attempt recorded them before it
    rig = Rig(handler, outlets=Outlets(down, Topic(), Topic(), Topic(), Topic()))
    await rig.run([event(1), event(2)])
    assert len(handler.reserved) == 2  # once per attempt, the outage's and the next
    assert [d.decision_id for d in handler.reserved[1]] == ["d-1"]
    assert rig.observer.seen.count(("contacts_refused", 1)) == 2
    assert rig.observer.seen.count(("budgets_refused", 2)) == 2


async def test_a_batch_given_up_after_it_was_sent_letters_each_record_once() -> None:
    """Its decisions and its one invalid record's letter went out; then recording them
    failed again and again (not an outage): the batch is given up, and its other records
    are dead-lettered, but not the invalid one a second time."""
    handler = Handler(decided, confirm_errors=[ValueError("a fault in Moments")] * 3)
    rig = Rig(handler)
    await rig.run([event(1), event(2)])
    letters = rig.outlets.dead_letters.sent  # type: ignore[attr-defined]
    offsets = [dict(h)["source-offset"] for _, _, h in letters]
    assert sorted(offsets) == [b"1", b"2"], offsets  # 2 (invalid) once, 1 given up
    assert [n for what, n in rig.observer.seen if what == "dead_lettered"] == [1, 1]


@dataclass
class Delivering(Topic):
    """Takes records at once, and confirms each delivery only when the test says, as a
    producer's future does once the broker has the record."""

    deliveries: list[asyncio.Future[None]] = field(default_factory=list)

    async def send(self, key: bytes | None, value: bytes | None, headers: Any = None) -> Any:
        await super().send(key, value, headers)
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return delivery


async def delivery_asked(topic: Delivering, count: int) -> None:
    for _ in range(500):
        if len(topic.deliveries) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} deliveries were not asked for")


async def test_a_batch_is_acked_only_once_kafka_has_what_it_sent() -> None:
    decisions = Delivering()
    rig = Rig(Handler(decided), outlets=Outlets(decisions, Topic(), Topic(), Topic(), Topic()))
    run = asyncio.create_task(rig.run([event(1), event(2)]))
    await delivery_asked(decisions, 1)
    await asyncio.sleep(0.05)  # time enough to ack, were it not waiting
    assert not run.done() and rig.observer.count("decision_sent") == 0
    decisions.deliveries[0].set_result(None)
    stream = await run
    assert len(stream.acked) == 2 and rig.observer.count("decision_sent") == 1


async def test_a_delivery_kafka_fails_is_sent_again_before_the_batch_is_acked() -> None:
    decisions = Delivering()
    rig = Rig(Handler(decided), outlets=Outlets(decisions, Topic(), Topic(), Topic(), Topic()))
    run = asyncio.create_task(rig.run([event(1), event(2)]))
    await delivery_asked(decisions, 1)
    decisions.deliveries[0].set_exception(KafkaConnectionError("the broker went away"))
    await delivery_asked(decisions, 2)  # sent again
    assert not run.done()
    decisions.deliveries[1].set_result(None)
    stream = await run
    assert len(decisions.sent) == 2 and len(stream.acked) == 2
    assert rig.observer.count("decision_sent") == 1 and rig.observer.count("retrying") == 1


def two_customers_decided(records: list[SourceRecord]) -> BatchResult:
    offers = [OfferScore(offer_id="any", score=1.0, propensity=0.5)]
    decisions = [NextBestOffer(decision_id=f"d-{n}", customer_id=f"cust-{n}", ts=T0,
                               channel="web", trigger_event_id=f"e-{n}", offers=offers)
                 for n in (1, 2)]  # fmt: skip
    return BatchResult(decisions=decisions, results=[("web_click", "ok")] * len(records))


async def test_a_retry_sends_only_what_kafka_did_not_take() -> None:
    """One decision delivered, the other's partition's broker away: the retry sends the
    second alone (a consumer of next-best-offers saw the first twice)."""
    decisions = Delivering()
    rig = Rig(Handler(two_customers_decided),
              outlets=Outlets(decisions, Topic(), Topic(), Topic(), Topic()))  # fmt: skip
    run = asyncio.create_task(rig.run([event(1, key=b"cust-1"), event(2, key=b"cust-2")]))
    await delivery_asked(decisions, 2)
    decisions.deliveries[0].set_result(None)
    decisions.deliveries[1].set_exception(KafkaConnectionError("the broker went away"))
    await delivery_asked(decisions, 3)
    decisions.deliveries[2].set_result(None)
    await run
    assert [key for key, _, _ in decisions.sent] == [b"cust-1", b"cust-2", b"cust-2"]
    assert rig.observer.count("decision_sent") == 2 and rig.observer.count("retrying") == 1


async def test_a_letter_the_topic_takes_is_not_written_again_while_another_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: BatchRetries, records: list[SourceRecord]) -> None:
        raise RuntimeError("a fault in Moments")

    monkeypatch.setattr(BatchRetries, "run", broken)
    letters = Delivering()
    rig = Rig(Handler(all_ok), outlets=Outlets(Topic(), Topic(), Topic(), letters, Topic()))
    run = asyncio.create_task(rig.run([event(1), event(2)]))
    for attempt in range(3):  # the second letter fails twice; the first is taken at once
        await delivery_asked(letters, 2 + attempt)
        if attempt == 0:
            letters.deliveries[0].set_result(None)
        outcome = letters.deliveries[-1]
        if attempt < 2:
            outcome.set_exception(KafkaConnectionError("the broker went away"))
        else:
            outcome.set_result(None)
    await run
    assert [dict(h)["source-offset"] for _, _, h in letters.sent] == [b"1", b"2", b"2", b"2"]
    assert [n for what, n in rig.observer.seen if what == "dead_lettered"] == [2]


async def test_a_batch_given_up_while_sending_letters_again_only_what_was_not_lettered() -> None:
    """Kafka refuses its decision for good (not an outage) while its invalid record's
    letter was taken the first time: given up, the batch letters the other record, and
    the invalid one once."""
    decisions = Delivering()
    rig = Rig(Handler(decided), outlets=Outlets(decisions, Topic(), Topic(), Topic(), Topic()))
    run = asyncio.create_task(rig.run([event(1), event(2)]))
    for attempt in range(3):
        await delivery_asked(decisions, attempt + 1)
        decisions.deliveries[attempt].set_exception(MessageSizeTooLargeError("too large"))
    await run
    letters = rig.outlets.dead_letters.sent  # type: ignore[attr-defined]
    assert [dict(h)["source-offset"] for _, _, h in letters] == [b"2", b"1"]
    assert dict(letters[1][2])["error"].startswith(b"batch failed 3 times: MessageSize")


def huge_key_letter(records: list[SourceRecord]) -> BatchResult:
    result = BatchResult(results=[("unknown", "invalid")] * len(records))
    result.dead_letters.extend(FailedRecord(r, "invalid: malformed JSON") for r in records)
    return result


async def test_the_letter_of_a_record_with_a_huge_key_fits_kafkas_limit() -> None:
    key, value = b"k" * 150_000, b"{" * 850_000  # the broker took it (its limit is 1 MiB)
    rig = Rig(Handler(huge_key_letter))
    stream = await rig.run([event(1, key=key, value=value)])  # not held up for ever
    ((sent_key, sent_value, headers),) = rig.outlets.dead_letters.sent  # type: ignore[attr-defined]
    found = dict(headers)
    assert sent_key is not None and sent_key.startswith(b"sha256:") and sent_value == value
    assert found["key-truncated-from"] == b"150000" and found["source-offset"] == b"1"
    assert len(stream.acked) == 1


async def test_the_letter_of_a_record_at_the_limit_is_cut_to_fit_with_its_key() -> None:
    key, value = b"c" * 1000, b"{" * 998_000
    rig = Rig(Handler(huge_key_letter))
    await rig.run([event(1, key=key, value=value)])
    ((sent_key, sent_value, headers),) = rig.outlets.dead_letters.sent  # type: ignore[attr-defined]
    assert sent_key == key and sent_value is not None and value.startswith(sent_value)
    assert dict(headers)["value-truncated-from"] == b"998000"


async def test_a_record_nested_too_deeply_is_dead_lettered_alone_and_its_batch_applied() -> None:
    """msgspec cannot follow JSON nested about a thousand levels (here in a field the
    contract ignores): such a record used to fail its whole batch, whose good events
    were then dead-lettered unapplied."""
    from schemas import encode_touchpoint
    from tests.unit.test_touchpoint_handler import RecordingStore, click, handler

    good = [encode_touchpoint(click(event_id=f"good-{i}", customer=f"c-{i}")) for i in range(3)]
    deep = (b'{"type":"web_click","event_id":"bad","customer_id":"c9",'
            b'"ts":"2026-01-01T00:00:00Z","page":"/","extra":'
            + b"[" * 2000 + b"]" * 2000 + b"}")  # fmt: skip
    store = RecordingStore()
    rig = Rig(handler(store))
    batch = [event(0, value=good[0]), event(1, value=good[1]), event(2, value=deep),
             event(3, value=good[2])]  # fmt: skip
    stream = await rig.run(batch)
    assert store.applied == ["good-0", "good-1", "good-2"] and stream.acked == batch
    letters = rig.outlets.dead_letters.sent  # type: ignore[attr-defined]
    assert [dict(h)["source-offset"] for _, _, h in letters] == [b"2"]
    assert dict(letters[0][2])["error"] == b"invalid: malformed JSON: JSON is nested too deeply"
    taken = int(dict(letters[0][2])["first-handled"])  # when the worker took it
    assert abs(taken - time.time() * 1000) < 60_000


@dataclass(eq=False)
class Message:
    """A Faust message as its acks go: done (its offset to be committed) once every
    reader it was delivered to has acked it."""

    offset: int
    refcount: int = 1  # one stream reads it
    acked: bool = False
    topic: str = "touchpoints"
    partition: int = 0
    key: bytes = b"cust-1"
    value: bytes = b"{}"
    headers: Any = None

    def incref(self) -> None:
        self.refcount += 1

    def ack(self) -> None:
        self.refcount -= 1
        self.acked = self.acked or self.refcount == 0


def tracked(*offsets: int) -> list[Any]:
    return [SimpleNamespace(message=Message(offset)) for offset in offsets]


async def test_a_worker_stopping_during_an_outage_holds_its_batch_faust_acks_no_offset() -> None:
    """SIGTERM while Redis is down: the batch under way, and those after it, are held (not
    done, and out of what Faust waits for before it stops), never taken as done."""
    stop = asyncio.Event()

    def answer(records: list[SourceRecord]) -> BatchResult:
        if records[0].offset >= 2:
            stop.set()  # the worker is told to stop while this batch waits for Redis
            raise StoreUnavailable("ConnectionError: Redis is down")
        return all_ok(records)

    handler = Handler(answer)
    done, waiting, later = tracked(0, 1), tracked(2, 3), tracked(4)
    rig = Rig(handler, stopping=stop.is_set)
    rig.unacked.update(e.message for e in done + waiting + later)
    await rig.run(done, waiting, later)
    assert all(e.message.acked for e in done)
    assert not any(e.message.acked for e in waiting + later)  # their offsets never commit
    assert rig.unacked == {e.message for e in done}  # Faust waits for none of them
    assert [r.offset for r in handler.handled] == [0, 1, 2, 3]  # the last one not started
    assert rig.observer.count("batch_handled") == 1 and rig.observer.count("retrying") == 0


@dataclass
class Down(Topic):
    async def send(self, key: bytes | None, value: bytes | None, headers: Any = None) -> Any:
        raise OSError("Kafka cannot be reached")


async def test_a_batch_a_stopping_worker_cannot_dead_letter_is_held_not_retried_for_ever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: BatchRetries, records: list[SourceRecord]) -> bool:
        raise RuntimeError("a fault in Moments")

    monkeypatch.setattr(BatchRetries, "run", broken)
    rig = Rig(Handler(all_ok), stopping=lambda: True)
    rig.outlets = Outlets(Topic(), Topic(), Topic(), Down(), Topic())
    batch = tracked(7)
    await rig.run(batch)
    assert not batch[0].message.acked and batch[0].message.refcount == 1


async def test_a_worker_told_to_stop_while_kafka_holds_its_decisions_holds_the_batch() -> None:
    """Kafka away: the producer would give the decisions up only after its request
    timeout. Told to stop meanwhile, the worker waits no longer, and holds the batch."""
    stop = asyncio.Event()
    decisions = Delivering()
    rig = Rig(Handler(decided), outlets=Outlets(decisions, Topic(), Topic(), Topic(), Topic()),
              stopping=stop.is_set)  # fmt: skip
    batch = tracked(1, 2)
    rig.unacked.update(e.message for e in batch)
    run = asyncio.create_task(rig.run(batch))
    await delivery_asked(decisions, 1)
    stop.set()  # the delivery never ends
    await asyncio.wait_for(run, 5)
    assert not any(e.message.acked for e in batch) and rig.unacked == set()
    assert rig.observer.count("decision_sent") == 0 and rig.observer.count("batch_handled") == 0
