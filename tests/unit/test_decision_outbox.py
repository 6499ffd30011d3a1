"""streams.api.decision_outbox and streams.api.outbox_sweeper on an outbox store kept in
memory: decisions leave the outbox once settled, in one removal; a clean stop leaves
nothing, or the lease alone gone when Kafka did not take everything; the sweeper
publishes a dead process's outbox once, skipping the decisions not to publish."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from redis.exceptions import ResponseError

from agents.contact_ceilings import CONTENDED, MAX_ROUNDS
from feature_store import BudgetSpend, StoreFull, StoreUnavailable
from feature_store.pipelining import Command
from schemas import NextBestOffer
from streams.api import decision_outbox, outbox_sweeper
from streams.api.decision_delivery import DecisionDelivery
from streams.api.decision_outbox import DecisionOutbox, decision_id_of
from streams.api.outbox_sweeper import OutboxSweeper, customer_of
from streams.api.publisher import PublisherFull, Record
from tests.unit.test_recommender_ceilings import publishing
from tests.unit.test_recommender_overlap import KNOWN, SlowStore, _Decisions


def decision(decision_id: str, customer_id: str) -> bytes:
    return json.dumps({"decision_id": decision_id, "customer_id": customer_id}).encode()


class Outboxes:
    """DecisionOutboxes in memory: boxes, leases (no expiry: dropped by hand), registry."""

    def __init__(self) -> None:
        self.boxes: dict[str, dict[str, bytes]] = {}
        self.leases: dict[str, str] = {}
        self.registry: set[str] = set()
        self.removals: list[list[str]] = []
        self.shown: dict[str, set[str]] = {}  # marks of decisions shown, by process

    def hold(self, process: str, entries: Sequence[tuple[str, bytes]], ttl_s: int) -> list[Command]:
        # what the round trip would do, done at once
        self.boxes.setdefault(process, {}).update(entries)
        return [("HSET", process, *[p for e in entries for p in e])]

    async def keep_shown(
        self,
        process: str,
        decision_ids: Sequence[str],
        entries: Sequence[tuple[str, bytes]],
        ttl_s: int,
    ) -> None:
        self.hold(process, entries, ttl_s)
        self.shown.setdefault(process, set()).update([*decision_ids, *(d for d, _ in entries)])

    async def are_shown(self, process: str, decision_ids: Sequence[str]) -> list[bool]:
        return [d in self.shown.get(process, set()) for d in decision_ids]

    def removal(
        self, process: str, decision_ids: Sequence[str], shown: Sequence[str] = ()
    ) -> list[Command]:
        return []  # (what rides a round trip: none here, whose writes are done at once)

    def removed(
        self, process: str, commands: Sequence[Command], replies: Sequence[Any]
    ) -> tuple[list[str], list[str]]:
        return [], []

    async def release(
        self, process: str, decision_ids: Sequence[str], shown: Sequence[str] = ()
    ) -> None:
        self.removals.append(list(decision_ids))
        for d in decision_ids:
            self.boxes.get(process, {}).pop(d, None)
        self.shown.get(process, set()).difference_update(shown)

    async def renew(self, process: str, lease_ms: int, ttl_s: int) -> None:
        self.leases[process] = process
        self.registry.add(process)

    async def processes(self) -> list[str]:
        return sorted(self.registry)

    async def claim(self, processes: Sequence[str], sweeper: str, lease_ms: int) -> list[str]:
        won = [p for p in processes if p not in self.leases]
        self.leases.update((p, sweeper) for p in won)
        return won

    async def keep_claim(self, process: str, sweeper: str, lease_ms: int) -> bool:
        return self.leases.get(process) == sweeper

    async def scan(
        self, process: str, cursor: int, count: int
    ) -> tuple[int, list[tuple[str, bytes]]]:
        entries = sorted(self.boxes.get(process, {}).items())
        part = entries[cursor : cursor + count]
        after = cursor + count if cursor + count < len(entries) else 0
        return after, part

    async def size(self, process: str) -> int:
        return len(self.boxes.get(process, {}))

    async def retire(self, process: str, holder: str) -> int | None:
        # as feature_store/lua/outbox_retire.lua: only the lease's holder retires
        if self.leases.get(process) != holder:
            return None
        del self.leases[process]
        left = len(self.boxes.get(process, {}))
        if not left:
            self.boxes.pop(process, None)
            self.shown.pop(process, None)
            self.registry.discard(process)
        return left


class Publisher:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail
        self.published: list[Record] = []

    def publish(
        self, topic: str, records: Sequence[Record], linger: bool = True
    ) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail is None:
            self.published.extend(records)
            done.set_result(None)
        else:
            done.set_exception(self.fail)
        return done


def test_a_decisions_id_and_customer_are_read_from_its_json() -> None:
    raw = decision("d-1", "c-1")
    assert decision_id_of(raw) == "d-1"
    assert customer_of(raw) == "c-1"
    assert customer_of(b"not json") is None
    assert customer_of(b'{"customer_id": 3}') is None


async def test_settled_decisions_leave_the_outbox_in_one_removal() -> None:
    boxes = Outboxes()
    outbox = DecisionOutbox(boxes, "p1")  # type: ignore[arg-type]
    outbox.hold([("d1", decision("d1", "c1")), ("d2", decision("d2", "c2"))])
    outbox.hold([("d3", decision("d3", "c3"))])
    outbox.release(["d1"])
    outbox.release_records([(b"c2", decision("d2", "c2"))])
    outbox.release(["never-held"])  # not written by this process: no removal of it
    assert boxes.removals == []  # not yet: together, within RELEASE_EVERY_S
    await asyncio.sleep(decision_outbox.RELEASE_EVERY_S * 2)
    assert boxes.removals == [["d1", "d2"]]
    assert list(boxes.boxes["p1"]) == ["d3"] and len(outbox) == 1


async def test_a_clean_stop_removes_an_empty_outbox_and_its_lease() -> None:
    boxes = Outboxes()
    outbox = DecisionOutbox(boxes, "p1")  # type: ignore[arg-type]
    outbox.start()
    await asyncio.sleep(0)
    assert boxes.registry == {"p1"} and "p1" in boxes.leases
    outbox.hold([("d1", decision("d1", "c1"))])
    outbox.release(["d1"])  # acknowledged just before the stop: removed by the stop
    await outbox.stop()
    assert boxes.boxes == {} and boxes.leases == {} and boxes.registry == set()


async def test_a_stop_with_decisions_kafka_did_not_take_leaves_them_for_another_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    boxes = Outboxes()
    outbox = DecisionOutbox(boxes, "p1")  # type: ignore[arg-type]
    outbox.start()
    await asyncio.sleep(0)
    outbox.hold([("d1", decision("d1", "c1")), ("d2", decision("d2", "c2"))])
    outbox.release(["d1"])
    await outbox.stop()
    assert list(boxes.boxes["p1"]) == ["d2"]
    assert boxes.leases == {} and boxes.registry == {"p1"}  # swept at once by another
    assert "1 decisions Kafka did not acknowledge are left in the outbox" in caplog.text


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("failure", "stopping", "settled"),
    [
        (None, False, True),  # acknowledged
        (PublisherFull("full"), False, True),  # given up for good: counted, not kept
        (KafkaTimeoutError(), True, False),  # Kafka away as the API stops: kept
    ],
)
async def test_delivery_tells_what_is_settled(
    failure: BaseException | None, stopping: bool, settled: bool
) -> None:
    heard: list[tuple[Sequence[Record], Sequence[str] | None]] = []

    def settled_(records: Sequence[Record], ids: Sequence[str] | None) -> None:
        heard.append((records, ids))

    delivery = DecisionDelivery(Publisher(failure), "nbo", lambda n: None, settled=settled_)  # type: ignore[arg-type]
    if stopping:
        delivery.stop()
    records = [(b"c1", decision("d1", "c1"))]
    delivery.send(records, ["d1"])
    delivery.send(records)  # (a fallback's: its id read from its JSON by the outbox)
    await settle()
    assert heard == ([(records, ["d1"]), (records, None)] if settled else [])


async def test_a_batchs_decisions_leave_the_outbox_by_the_ids_they_were_sent_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Acknowledged, a batch's decisions are released by the ids sent with them: their
    JSON is not decoded again (a microsecond a decision, on the hot path)."""
    store = SlowStore({"c1": KNOWN, "c2": KNOWN}, spent={"voucher": 0})
    boxes = Outboxes()
    outbox = DecisionOutbox(boxes, "p")  # type: ignore[arg-type]
    rec, _ = publishing(store)
    rec._delivery._settled = outbox.settled
    rec._decisions._outbox = outbox

    def not_decoded(raw: bytes) -> str:
        raise AssertionError("a decision's JSON decoded again")

    monkeypatch.setattr(decision_outbox, "decision_id_of", not_decoded)
    answers = await asyncio.gather(rec.recommend("c1", "web", 3), rec.recommend("c2", "web", 3))
    await rec.drain()
    await asyncio.sleep(decision_outbox.RELEASE_EVERY_S * 2)
    assert sorted(d for part in boxes.removals for d in part) == sorted(
        a.decision_id for a in answers if a
    )
    assert boxes.boxes["p"] == {} and len(outbox) == 0


async def test_the_sweeper_publishes_a_dead_process_outbox_once_without_those_withheld(
    caplog: pytest.LogCaptureFixture,
) -> None:
    boxes = Outboxes()
    dead = DecisionOutbox(boxes, "dead")  # type: ignore[arg-type]
    dead.start()
    await asyncio.sleep(0)
    dead.hold([(f"d{i}", decision(f"d{i}", f"cust-{i}")) for i in range(5)])
    boxes.boxes["dead"]["junk"] = b"not a decision"
    dead._renewing.cancel()  # type: ignore[union-attr]  # killed outright: its lease expires
    boxes.leases.clear()
    republished: list[int] = []

    async def publishable(pairs: Sequence[tuple[str, str]], shown: Sequence[bool]) -> list[bool]:
        return [c != "cust-3" for c, _ in pairs]  # erased, or not recorded

    publisher = Publisher()
    sweepers = [
        OutboxSweeper(boxes, name, publishable, publisher, "nbo", republished.append)  # type: ignore[arg-type]
        for name in ("a", "b")
    ]
    boxes.registry.update({"a", "b"})
    boxes.leases.update({"a": "a", "b": "b"})
    first, second = await asyncio.gather(*(s.sweep() for s in sweepers))
    assert sorted((first, second)) == [0, 4]  # one winner
    assert sorted(key for key, _ in publisher.published) == [
        b"cust-0", b"cust-1", b"cust-2", b"cust-4"
    ]  # fmt: skip
    assert sum(republished) == 4
    assert "dead" not in boxes.boxes and "dead" not in boxes.leases
    assert boxes.registry == {"a", "b"}
    assert "cust-" not in caplog.text


async def test_a_sweep_kafka_does_not_take_leaves_the_outbox_for_the_next() -> None:
    boxes = Outboxes()
    boxes.registry.add("dead")
    boxes.boxes["dead"] = {"d1": decision("d1", "c1")}

    async def all_publishable(
        pairs: Sequence[tuple[str, str]], shown: Sequence[bool]
    ) -> list[bool]:
        return [True] * len(pairs)

    counted: list[int] = []
    failing = OutboxSweeper(
        boxes, "a", all_publishable, Publisher(KafkaTimeoutError()), "nbo", counted.append
    )  # type: ignore[arg-type]
    with pytest.raises(KafkaTimeoutError):
        await failing.sweep()
    assert boxes.boxes["dead"] and counted == []
    boxes.leases.clear()  # its claim expired
    publisher = Publisher()
    assert (
        await OutboxSweeper(boxes, "b", all_publishable, publisher, "nbo", counted.append).sweep()
        == 1
    )  # type: ignore[arg-type]
    assert publisher.published == [(b"c1", decision("d1", "c1"))] and counted == [1]


async def test_a_process_back_before_its_sweeper_retires_keeps_its_lease_and_decision() -> None:
    """Stalled past its lease, the process comes back between the sweeper's last part
    and its retiring: its lease, its new decision and its registry entry stay."""
    boxes = Outboxes()
    stalled = DecisionOutbox(boxes, "p")  # type: ignore[arg-type]
    await boxes.renew("p", 5000, 3600)
    stalled.hold([("d1", decision("d1", "c1"))])
    boxes.leases.clear()  # stalled: its lease expired
    retire = boxes.retire

    async def back_first(process: str, holder: str) -> int | None:
        await boxes.renew("p", 5000, 3600)
        stalled.hold([("d2", decision("d2", "c2"))])
        return await retire(process, holder)

    boxes.retire = back_first  # type: ignore[method-assign]

    async def all_publishable(
        pairs: Sequence[tuple[str, str]], shown: Sequence[bool]
    ) -> list[bool]:
        return [True] * len(pairs)

    publisher = Publisher()
    assert (
        await OutboxSweeper(boxes, "s", all_publishable, publisher, "nbo", lambda n: None).sweep()
        == 1
    )  # type: ignore[arg-type]
    assert boxes.leases == {"p": "p"} and list(boxes.boxes["p"]) == ["d2"]
    assert boxes.registry == {"p"}


async def test_a_clean_stop_leaves_a_lease_a_sweeper_took_to_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    boxes = Outboxes()
    outbox = DecisionOutbox(boxes, "p")  # type: ignore[arg-type]
    outbox.start()
    await asyncio.sleep(0)
    outbox.hold([("d1", decision("d1", "c1"))])
    boxes.leases["p"] = "s"  # stalled past its lease: a sweeper took it
    await outbox.stop()
    assert boxes.leases == {"p": "s"} and list(boxes.boxes["p"]) == ["d1"]
    assert "another API process holds the outbox's lease" in caplog.text


async def test_an_outbox_holds_its_most_and_then_nothing_more_until_it_has_room(
    caplog: pytest.LogCaptureFixture,
) -> None:
    boxes = Outboxes()
    outbox = DecisionOutbox(boxes, "p1", most=3)  # type: ignore[arg-type]
    outbox.hold([(f"d{i}", decision(f"d{i}", "c")) for i in range(2)])
    outbox.hold([(f"d{i}", decision(f"d{i}", "c")) for i in range(2, 5)])
    assert sorted(boxes.boxes["p1"]) == ["d0", "d1", "d2"] and len(outbox) == 3
    assert "the outbox holds 2 decisions, its most" in caplog.text
    outbox.release(["d0", "d1", "d2"])
    outbox.hold([("d5", decision("d5", "c"))])
    assert "the outbox has room again" in caplog.text and len(outbox) == 1


async def test_a_refused_decision_leaves_the_outbox_before_its_spending_goes_back() -> None:
    """Its release is queued before the budget's take-back round trip, so that it may be
    published unseen only within RELEASE_EVERY_S of its write's reply (known limits)."""
    store = SlowStore({"c1": KNOWN}, spent={"voucher": 0})
    store.refuse["c1"] = 1  # refused over a ceiling once: decided again, under a new id
    boxes = Outboxes()
    outbox = DecisionOutbox(boxes, "p")  # type: ignore[arg-type]
    rec, _ = publishing(store)
    rec._outbox = outbox
    rec._decisions._outbox = outbox
    releasing: list[list[str]] = []
    take_back = store.budgets.take_back

    async def taking_back(spends: Sequence[BudgetSpend], *, for_good: bool) -> int:
        releasing.append(list(outbox._releasing))
        return await take_back(spends, for_good=for_good)

    store.budgets.take_back = taking_back  # type: ignore[method-assign]
    answer = await rec.recommend("c1", "web", 3)
    await rec.drain()
    assert answer is not None and store.refused_ids
    assert releasing == [store.refused_ids[:1]]


async def test_a_sweeper_whose_claim_expired_stops_and_says_so(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its claim expired mid-sweep (a long wait for Kafka) and another sweeper took it:
    it stops, without saying the process was alive."""
    monkeypatch.setattr(outbox_sweeper, "SWEEP_AT_ONCE", 1)
    boxes = Outboxes()
    boxes.registry.add("dead")
    boxes.boxes["dead"] = {f"d{i}": decision(f"d{i}", f"c{i}") for i in range(3)}
    release = boxes.release

    async def expiring(process: str, decision_ids: Sequence[str], shown: Sequence[str]) -> None:
        await release(process, decision_ids, shown)
        boxes.leases["dead"] = "t"  # expired, and taken by another sweeper

    boxes.release = expiring  # type: ignore[method-assign]

    async def all_publishable(
        pairs: Sequence[tuple[str, str]], shown: Sequence[bool]
    ) -> list[bool]:
        return [True] * len(pairs)

    sweeper = OutboxSweeper(boxes, "s", all_publishable, Publisher(), "nbo", lambda n: None)  # type: ignore[arg-type]
    assert await sweeper.sweep() == 1
    assert "no longer this process's to publish" in caplog.text
    assert "its process was alive" not in caplog.text
    assert boxes.leases == {"dead": "t"} and len(boxes.boxes["dead"]) == 2


async def test_decisions_shown_are_marked_and_their_marks_leave_with_them() -> None:
    """Marked shown: a decision its batch's write holds (by id), and one held with its
    mark (answered outside its batch's write), within ``most``; past it, neither. The
    marks leave the outbox with their decisions."""
    boxes = Outboxes()
    outbox = DecisionOutbox(boxes, "p1", most=2)  # type: ignore[arg-type]
    outbox.hold([("d1", decision("d1", "c1"))])
    outbox.shown(["d1"])
    outbox.shown([], [("d2", decision("d2", "c2")), ("d3", decision("d3", "c3"))])
    outbox.shown(["d1"])  # marked already: no round trip
    await settle()
    assert sorted(boxes.boxes["p1"]) == ["d1", "d2"] and boxes.shown["p1"] == {"d1", "d2"}
    assert not outbox._marking
    outbox.release(["d1", "d2", "d3"])
    await asyncio.sleep(decision_outbox.RELEASE_EVERY_S * 2)
    assert boxes.boxes["p1"] == {} and boxes.shown["p1"] == set()
    assert boxes.removals == [["d1", "d2"]] and not outbox._shown


async def test_a_decision_answered_stripped_is_kept_shown_before_its_write() -> None:
    """Refused round after round, the caller is answered with the decision stripped of
    its offers, recorded in a write of its own after the budgets' give-back: a process
    killed before that write leaves it in the outbox, marked shown, and the sweeper
    publishes it though it was never recorded."""
    store = SlowStore({"c1": KNOWN}, spent={"voucher": 0})
    store.refuse["c1"] = 99
    boxes = Outboxes()
    outbox = DecisionOutbox(boxes, "p")  # type: ignore[arg-type]
    rec, _ = publishing(store)
    rec._outbox = rec._decisions._outbox = outbox
    killed = asyncio.Event()
    record = store.decisions.record

    async def killed_before_the_last(*args: Any, **kwargs: Any) -> list[bool]:
        if len(store.writes) == MAX_ROUNDS:  # the write of the decision answered
            killed.set()
            await asyncio.Event().wait()
        return await record(*args, **kwargs)

    store.decisions.record = killed_before_the_last  # type: ignore[method-assign]
    answer = await rec.recommend("c1", "web", 3)
    await asyncio.wait_for(killed.wait(), 5)
    assert isinstance(answer, NextBestOffer) and answer.reasons[-1] == CONTENDED
    await settle()
    assert boxes.shown["p"] == {answer.decision_id}

    async def shown_alone(pairs: Sequence[tuple[str, str]], shown: Sequence[bool]) -> list[bool]:
        return list(shown)  # none recorded, no customer erased

    publisher = Publisher()
    sweeper = OutboxSweeper(boxes, "s", shown_alone, publisher, "nbo", lambda n: None)  # type: ignore[arg-type]
    boxes.registry.add("p")  # its lease expired
    assert await sweeper.sweep() == 1
    assert [decision_id_of(raw) for _, raw in publisher.published] == [answer.decision_id]
    for task in list(rec._running):  # the dead process's hung write
        task.cancel()


class AwayOutboxes(Outboxes):
    """Outboxes whose removals fail while ``away`` (Redis down); ``tried`` is set once
    ten have failed."""

    def __init__(self) -> None:
        super().__init__()
        self.away = True
        self.tries = 0
        self.tried = asyncio.Event()

    async def release(
        self, process: str, decision_ids: Sequence[str], shown: Sequence[str] = ()
    ) -> None:
        self.tries += 1
        if self.tries >= 10:
            self.tried.set()
        if self.away:
            raise StoreUnavailable("ConnectionError: cannot connect to Redis")
        await super().release(process, decision_ids, shown)


async def test_removals_failing_through_an_outage_are_said_when_it_begins_and_ends(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a soak's 50 s Redis outage wrote this warning once a second, 46 lines of 74
    monkeypatch.setattr(decision_outbox, "RENEW_EVERY_S", 0.001)
    boxes = AwayOutboxes()
    outbox = DecisionOutbox(boxes, "p1")  # type: ignore[arg-type]
    outbox.hold([("d1", decision("d1", "c1"))])
    outbox.release(["d1"])
    await boxes.tried.wait()
    boxes.away = False
    outbox.hold([("d2", decision("d2", "c2"))])
    outbox.release(["d2"])
    await asyncio.sleep(decision_outbox.RELEASE_EVERY_S * 3)
    assert boxes.boxes["p1"] == {} and len(outbox) == 0
    said = [r.getMessage() for r in caplog.records if r.name == decision_outbox.__name__]
    assert said == [
        "could not remove 1 published decisions from the outbox (tried again every second): "
        "ConnectionError: cannot connect to Redis",
        "published decisions leave the outbox again, after 0 s",
    ]


async def test_only_decisions_published_unkept_are_counted_each_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A decision whose outbox write failed is counted once it goes to Kafka without a
    copy in the outbox, however many of its writes failed; not one kept at last, nor one
    never published. Each failed write counted its decisions again: a full Redis's 150
    recommendations counted 1,644."""
    counted: list[int] = []
    outbox = DecisionOutbox(Outboxes(), "p", unwritten=counted.append)  # type: ignore[arg-type]
    oom = ResponseError("OOM command not allowed when used memory > 'maxmemory'.")
    made = {d: decision(d, f"c-{d}") for d in ("d1", "d2", "d3")}
    held = outbox.hold(list(made.items()))
    outbox.written(held, [oom], recorded=False)
    for d in ("d1", "d1", "d2"):  # tried again (a fallback's check, say), failing
        outbox.written(outbox.hold([(d, made[d])]), [oom], recorded=False)
    outbox.written(outbox.hold([("d2", made["d2"])]), [1])  # kept at last
    outbox.release(["d3"])  # not to be published (its caller was answered otherwise)
    outbox.publishing([(b"c-d1", made["d1"]), (b"c-d2", made["d2"])], None)
    assert counted == [1]
    said = [r.getMessage() for r in caplog.records if r.name == decision_outbox.__name__]
    assert said[0].startswith(
        "could not keep 3 decisions in the outbox (their record failed "
        "too; those published wait for Kafka in this process alone"
    )
    assert said[1:] == ["decisions are kept in the outbox again"]


class UnkeptDecisions(_Decisions):
    """The store's decisions, whose outbox commands fail (a full Redis refuses them)."""

    async def record(self, *args: Any, **kwargs: Any) -> list[bool]:
        heard, outbox = kwargs.get("outbox_heard"), kwargs.get("outbox", ())
        if heard is not None and outbox:
            heard([ResponseError("OOM command not allowed") for _ in outbox])
        return await super().record(*args, **kwargs)


async def test_a_fallback_whose_check_is_tried_again_is_counted_once() -> None:
    """Redis refuses the batch's write and the outbox's: its decision, never shown, is not
    counted; the fallback answered instead, its check tried again while Redis cannot
    say who is erased, then published unrecorded (Redis full), is counted once. Each
    write counted them again: the batch's decision, then the fallback at every try."""
    store = SlowStore({"c1": KNOWN}, write_error=StoreUnavailable("BUSY Redis is busy"))
    store.decisions = UnkeptDecisions(store)
    counted: list[int] = []
    outbox = DecisionOutbox(Outboxes(), "p", unwritten=counted.append)  # type: ignore[arg-type]
    rec, sent = publishing(store)
    rec._outbox = rec._decisions._outbox = outbox
    rec._fallbacks._retry_s = 0.001
    with pytest.raises(StoreUnavailable):
        await rec.recommend("c1", "web", 3)
    fallback = rec.as_if_unknown("c1", "web", 3)  # (as the API answers it)
    rec.publish_soon(fallback)
    for _ in range(500):  # its check tried three times
        if len(store.writes) >= 4:
            break
        await asyncio.sleep(0.002)
    store.write_error = StoreFull("OOM command not allowed when used memory > 'maxmemory'.")
    assert await rec.drain(within_s=5)
    assert sent.sent == [fallback.decision_id]
    assert len(store.writes) >= 5 and sum(counted) == 1
