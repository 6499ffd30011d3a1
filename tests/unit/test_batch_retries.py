"""agents.batch_retries: a batch is decided once and its sending and confirming retried
(once sent, only confirming); outages wait without end, other failures, and Kafka's
refusal of a record for good, give the batch up after a few attempts; a worker told to
stop waits no longer, and leaves the batch not done."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass, field

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from agents.batch_result import BatchResult, EventKey
from agents.batch_retries import BatchRetries
from agents.letters import SourceRecord
from feature_store import StoreUnavailable
from tests.unit.logged import said_by

RECORDS = [SourceRecord("touchpoints", 0, n, b"c", b"{}") for n in range(3)]


@dataclass
class Script:
    """What each step does on each call, in turn (an exception to raise, or None)."""

    handle: list[Exception | None] = field(default_factory=list)
    emit: list[Exception | None] = field(default_factory=list)
    confirm: list[Exception | None] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    results: list[BatchResult] = field(default_factory=list)
    emitted: list[BatchResult] = field(default_factory=list)
    given_up: list[Exception] = field(default_factory=list)
    handled: list[BatchResult] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    applied: list[Counter[EventKey]] = field(default_factory=list)  # given to each handle call
    paused: list[float] = field(default_factory=list)  # the waits once told to stop
    confirmed: list[BatchResult] = field(default_factory=list)

    def _step(self, name: str) -> None:
        self.calls.append(name)
        planned = getattr(self, name)
        failure = planned.pop(0) if planned else None
        if failure is not None:
            raise failure

    async def do_handle(
        self, records: list[SourceRecord], applied: Counter[EventKey]
    ) -> BatchResult:
        self.applied.append(applied)
        applied[("c-1", "e-1")] += 1  # what the handler does for each event it applies
        self._step("handle")
        result = BatchResult(results=[("web_click", "ok")] * len(records))
        self.results.append(result)
        return result

    async def do_emit(self, result: BatchResult) -> None:
        self._step("emit")
        self.emitted.append(result)

    async def do_confirm(self, result: BatchResult) -> None:
        self._step("confirm")
        self.confirmed.append(result)

    async def do_give_up(self, records: list[SourceRecord], exc: Exception) -> bool:
        self.given_up.append(exc)
        return True

    def runner(self, stop_after_sleeps: int | None = None, stop_after: str = "") -> BatchRetries:
        """Retries without waiting; the worker is told to stop during the sleep numbered
        ``stop_after_sleeps`` (from 1), or once the step ``stop_after`` was called."""
        slept: list[float] = []

        async def no_wait(delay: float) -> None:
            slept.append(delay)

        def stopping() -> bool:
            if stop_after:
                return stop_after in self.calls
            return stop_after_sleeps is not None and len(slept) >= stop_after_sleeps

        now = [0.0]

        async def paused(delay: float) -> None:  # the waits of a stopping worker
            self.paused.append(delay)
            now[0] += delay

        return BatchRetries(self.do_handle, self.do_emit, self.do_confirm, self.do_give_up,
                            self.handled.append, self.retried.append, max_attempts=3,
                            sleep=no_wait, stopping=stopping, clock=lambda: now[0],
                            pause=paused)  # fmt: skip


async def test_a_batch_decided_once_is_sent_and_confirmed_again_not_decided_again() -> None:
    script = Script(emit=[StoreUnavailable("x")], confirm=[StoreUnavailable("y")])
    await script.runner().run(RECORDS)
    assert script.calls == ["handle", "emit", "emit", "confirm", "confirm"]
    assert len(script.results) == 1  # one decision per event, sent each time as it was
    assert all(sent is script.results[0] for sent in script.emitted)
    assert script.handled == [script.results[0]] and script.retried == ["StoreUnavailable"] * 2


async def test_once_sent_only_confirming_is_tried_again_through_a_long_outage() -> None:
    script = Script(confirm=[StoreUnavailable("down")] * 120)  # ten minutes at 5 s
    assert await script.runner().run(RECORDS) is True
    assert script.calls.count("emit") == 1 and script.calls.count("confirm") == 121
    assert len(script.emitted) == 1 and len(script.handled) == 1


async def test_a_batch_whose_handling_failed_is_handled_again() -> None:
    script = Script(handle=[StoreUnavailable("down"), None])
    await script.runner().run(RECORDS)
    assert script.calls == ["handle", "handle", "emit", "confirm"]
    # both attempts share what the batch applied, so the second knows about the first's
    first, second = script.applied
    assert first is second and first == Counter({("c-1", "e-1"): 2})
    other = Script()
    await other.runner().run(RECORDS)  # another batch starts afresh
    assert other.applied[0] == Counter({("c-1", "e-1"): 1})


async def test_outages_wait_without_end_and_other_failures_give_up_after_three() -> None:
    outages = Script(emit=[StoreUnavailable("x")] * 10 + [OSError("y")] * 5)
    await outages.runner().run(RECORDS)
    assert outages.given_up == [] and len(outages.handled) == 1

    broken = RuntimeError("a bug")
    failing = Script(confirm=[broken] * 5)
    await failing.runner().run(RECORDS)
    assert failing.given_up == [broken] and failing.handled == []
    assert failing.calls.count("handle") == 1 and failing.calls.count("confirm") == 3


def refusal(wrapped: bool) -> Exception:
    too_large = MessageSizeTooLargeError("the message is 1000311 bytes")
    if not wrapped:
        return too_large
    sending = ProducerSendError(f"Error while sending: {too_large!r}")  # as Faust raises it
    sending.__cause__ = too_large
    return sending


@pytest.mark.parametrize("wrapped", [False, True], ids=["aiokafka", "faust"])
async def test_a_record_kafka_refuses_for_good_gives_the_batch_up_not_waits(
    wrapped: bool,
) -> None:
    refused = refusal(wrapped)
    script = Script(emit=[refused] * 10)
    await script.runner().run(RECORDS)
    assert script.given_up == [refused] and script.calls.count("emit") == 3


async def test_a_batch_is_seen_through_when_reporting_it_fails() -> None:
    script = Script(emit=[StoreUnavailable("down")])

    def broken(_: object) -> None:
        raise ValueError("a metric cannot be counted")

    retries = script.runner()
    retries = BatchRetries(retries.handle, retries.emit, retries.confirm, retries.give_up,
                           broken, broken, sleep=retries.sleep)  # fmt: skip
    await retries.run(RECORDS)
    assert script.calls == ["handle", "emit", "emit", "confirm"] and script.given_up == []


@pytest.mark.parametrize("module", ["aiokafka.errors", "faust.exceptions"])
async def test_kafka_client_errors_are_outages(module: str) -> None:
    kafka_error = type("KafkaTimeout", (Exception,), {"__module__": module})("no broker")
    script = Script(emit=[kafka_error] * 6)
    await script.runner().run(RECORDS)
    assert script.given_up == [] and script.retried == ["KafkaTimeout"] * 6


async def test_a_worker_told_to_stop_during_an_outage_leaves_the_batch_not_done() -> None:
    """Faust waits for the batch under way before it stops anything: waiting out the
    outage would keep the worker from stopping until it is killed."""
    script = Script(handle=[StoreUnavailable("down")] * 100)
    assert await script.runner(stop_after_sleeps=3).run(RECORDS) is False
    assert script.calls == ["handle"] * 3  # none after the wait the stop ended
    assert script.handled == [] and script.given_up == [] and script.emitted == []
    assert script.retried == ["StoreUnavailable"] * 3

    sent = Script(confirm=[StoreUnavailable("down")] * 100)  # decisions sent, not recorded
    assert await sent.runner(stop_after_sleeps=1).run(RECORDS) is False
    # confirmed for the grace period more (the next worker would decide them again)
    assert sent.calls[:2] == ["handle", "emit"] and set(sent.calls[2:]) == {"confirm"}
    assert sent.calls.count("confirm") == 1 + len(sent.paused)
    assert 4.0 <= sum(sent.paused) <= 5.0 and sent.handled == []


async def test_a_batch_sent_is_confirmed_once_its_outage_ends_while_the_worker_stops() -> None:
    sent = Script(confirm=[StoreUnavailable("down")] * 4)  # back after four tries
    assert await sent.runner(stop_after_sleeps=1).run(RECORDS) is True
    assert sent.calls == ["handle", "emit"] + ["confirm"] * 5
    assert len(sent.handled) == 1 and sent.given_up == []


async def test_a_worker_that_stops_starts_no_batch_and_waits_for_nothing() -> None:
    later = Script()  # a batch that comes once the worker is stopping is not started
    assert await later.runner(stop_after_sleeps=0).run(RECORDS) is False
    assert later.calls == [] and later.handled == []
    failing = Script(confirm=[RuntimeError("a bug")] * 5)  # not dead-lettered on the way out
    assert await failing.runner(stop_after_sleeps=1).run(RECORDS) is False
    assert failing.given_up == [] and failing.calls == ["handle", "emit", "confirm"]
    healthy = Script()  # a batch under way that goes through is done, stopping or not
    assert await healthy.runner(stop_after="handle").run(RECORDS) is True
    assert healthy.calls == ["handle", "emit", "confirm"] and len(healthy.handled) == 1


async def test_an_outage_is_logged_when_it_starts_once_a_minute_and_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = Script(confirm=[StoreUnavailable("down")] * 120)  # ten minutes at 5 s
    now = [0.0]

    async def five_seconds(delay: float) -> None:
        now[0] += 5.0

    retries = dataclasses.replace(script.runner(), sleep=five_seconds, clock=lambda: now[0])
    # every level: a line per retry at info or debug would fill the log all the same
    with caplog.at_level(logging.DEBUG, logger="agents.batch_retries"):
        assert await retries.run(RECORDS) is True
    lines = [r.getMessage() for r in said_by(caplog, "agents.batch_retries")]
    assert lines[0] == "batch of 3 events not done (StoreUnavailable: down); retrying"
    assert (
        lines[1]
        == "batch of 3 events still not done after 60 s, 13 attempts (StoreUnavailable: down)"
    )
    assert len(lines) == 1 + 9 + 1  # started, each minute of the ten, over
    assert lines[-1] == "batch of 3 events done after 600 s and 120 retries"


async def test_a_batch_given_up_records_what_kafka_took_so_its_re_drive_sends_it_no_more() -> None:
    from feature_store import risk_fact
    from tests.unit.test_touchpoint_handler import NOW, alert, offer_decision

    sent, unsent = offer_decision("d1", ["shop"]), offer_decision("d2", ["shop"])
    crossed = alert("i1", "retention_call")  # taken
    refused = alert("i2", "save_desk")  # refused: too large, say (both are cust-2's)
    bands = [risk_fact(f"e-{c}", c, NOW, None, "high") for c in ("cust-1", "cust-2")]
    script = Script(emit=[refusal(False)] * 3)

    async def takes_some(result: BatchResult) -> None:
        result.decisions, result.interventions = [sent, unsent], [crossed, refused]
        result.risk_facts = bands
        result.delivered.update({id(sent): sent, id(crossed): crossed})
        await Script.do_emit(script, result)

    retries = dataclasses.replace(script.runner(), emit=takes_some)
    assert await retries.run(RECORDS) is True and len(script.given_up) == 1
    (part,) = script.confirmed  # once, as the batch is given up
    assert part.decisions == [sent] and part.interventions == [crossed]
    # cust-2's band is not recorded: their refused alert's crossing is crossed again
    assert part.risk_facts == bands[:1]
