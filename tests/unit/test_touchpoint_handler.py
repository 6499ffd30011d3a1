"""TouchpointHandler: decoding, dead letters, retries, duplicates and confirm().

The store here is :class:`RecordingStore`, a test double with the four async methods the
handler calls (``apply``, ``apply_facts``, ``read_views``, ``decisions.record``). It is not
Redis and computes no features: each test says what the store answers, or which error it
raises, so the failure paths real Redis cannot produce on demand (a poison event, an error
that keeps coming back, a duplicate whose decision never went out) can be driven. The
store itself is tested against real Redis in ``tests/integration``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

import msgspec
import pytest
from redis.exceptions import ResponseError

from agents.alert_ids import intervention_id_for
from agents.batch_result import BatchMemory, BatchResult, EventKey
from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.decision_records import decision_record
from agents.letters import SourceRecord
from agents.moments import DecisionMoment, decision_id_for, legacy_decision_id
from agents.offer_budget import BudgetLedger
from agents.offer_rules import RuleBasedOfferPolicy
from agents.risk_watch import pending_snapshot
from agents.touchpoint_handler import TouchpointHandler
from feature_store import (
    ApplyStatus,
    CustomerFeatures,
    Fact,
    RecentTouchpoint,
    RepliesUnknown,
    StoreUnavailable,
    contact_id,
    intervention_fact,
    offers_shown_fact,
    recent_touchpoint_of,
)
from feature_store.facts import ts_ms
from feature_store.records import DecisionRecord
from feature_store.store import FeatureStore, StoreConfig
from schemas import (
    Call,
    Intervention,
    NextBestOffer,
    Offer,
    OfferCatalogue,
    OfferScore,
    Survey,
    TouchpointEvent,
    WebClick,
    decode_intervention,
    decode_next_best_offer,
    encode_decision,
    encode_touchpoint,
)
from streams.metrics import Metrics
from tests.unit.factories import T0

NOW = T0 + timedelta(milliseconds=40)
MAX_ATTEMPTS = 3

CATALOGUE = OfferCatalogue(
    version="test",
    offers=[Offer(offer_id="any", title="Any", channels=["web", "email", "call"], value=1.0)],
)
POLICY = RuleBasedOfferPolicy(CatalogueHolder(CATALOGUE), ContactPolicy(ControlGroup("test", 0.0)))
KNOWN = CustomerFeatures(events=5, purchases=1, spend=50.0, value=50.0, segment="growth")


class RecordingStore:
    """Test double for the FeatureStore methods the handler uses; not Redis.

    ``apply`` answers APPLIED for an event id it has not seen for its customer and
    DUPLICATE for one it has (as Redis, which dedupes each customer's own), unless
    ``statuses`` says otherwise; it raises the next of ``errors`` first if any are
    queued, and ``PoisonError`` for any batch holding an id in ``poison``.
    ``read_views`` returns ``features`` per customer (None when absent; erased when in
    ``gone``), ``erased`` whether each is in ``gone``; ``pseudonym`` a
    readable stand-in for the keyed hash. Every call is recorded. ``apply`` tells
    ``newest_before`` each customer's entry of ``before`` (None when absent).
    """

    def __init__(
        self,
        features: dict[str, CustomerFeatures] | None = None,
        statuses: dict[str, ApplyStatus] | None = None,
        poison: Sequence[str] = (),
        outage: Sequence[str] = (),
        errors: Sequence[Exception] = (),
        read_error: Exception | None = None,
        replies_lost: int = 0,
        replies_came: int = 0,
        lost_ran: bool = True,
    ) -> None:
        # the next ``replies_lost`` calls lose their replies after the first
        # ``replies_came`` came; the unanswered ones ran if ``lost_ran``
        self.replies_lost, self.replies_came, self.lost_ran = (
            replies_lost,
            replies_came,
            lost_ran,
        )
        self.features = dict(features or {})
        self.gone: set[str] = set()  # erased
        # customer -> a stored value their features cannot be read with (a corrupt count)
        self.unreadable: dict[str, str] = {}
        self.corrupt: set[str] = set()  # customers whose decision keys fail the write
        self.refused_facts: set[str] = set()  # the ids of facts Redis refuses
        self.statuses = dict(statuses or {})
        self.poison = set(poison)
        self.outage = set(outage)
        self.errors = list(errors)
        self.read_error = read_error
        self.apply_calls: list[list[str]] = []
        self.applied: list[str] = []
        self.applied_keys: set[tuple[str, str]] = set()  # (customer, event id)
        self.reads: list[list[str]] = []
        self.zones_read: list[str] = []  # the home timezone each read of features was given
        self.facts: list[list[Fact]] = []
        self.records: list[list[DecisionRecord]] = []
        self.contexts: dict[tuple[str, str], str] = {}  # (customer, decision id) -> context
        self.decisions = RecordedDecisions(self)
        self.before: dict[str, RecentTouchpoint] = {}

    async def apply(
        self,
        events: Sequence[TouchpointEvent],
        ran: dict[int, ApplyStatus] | None = None,
        newest_before: dict[str, RecentTouchpoint | None] | None = None,
    ) -> list[ApplyStatus]:
        """As Redis runs a batch's scripts: a poison event fails, the others are applied
        (and told in ``ran``), then the first failure is raised."""
        ids = [e.event_id for e in events]
        self.apply_calls.append(ids)
        if newest_before is not None:
            newest_before.update((e.customer_id, self.before.get(e.customer_id)) for e in events)
        if self.errors:
            raise self.errors.pop(0)
        lost = self.replies_lost > 0
        statuses = []
        for i, (event_id, event) in enumerate(zip(ids, events, strict=True)):
            if lost and i >= self.replies_came and not self.lost_ran:
                break  # the connection went before these were sent
            if event_id in self.poison or event_id in self.outage:
                continue
            seen = (event.customer_id, event_id) in self.applied_keys
            self.applied.append(event_id)
            self.applied_keys.add((event.customer_id, event_id))
            fallback = ApplyStatus.DUPLICATE if seen else ApplyStatus.APPLIED
            statuses.append(self.statuses.get(event_id, fallback))
            if ran is not None:
                ran[i] = statuses[-1]
        if lost:  # the connection went: the replies after the first few never came
            self.replies_lost -= 1
            if ran is not None:
                for i in range(self.replies_came, len(ids)):
                    ran.pop(i, None)
            raise RepliesUnknown("TimeoutError: no reply", range(self.replies_came, len(ids)))
        if self.outage.intersection(ids):
            raise StoreUnavailable(f"OutOfMemoryError applying {sorted(self.outage)}")
        if self.poison.intersection(ids):
            raise PoisonError(f"cannot apply {sorted(self.poison.intersection(ids))}")
        return statuses

    async def apply_facts(
        self, facts: Sequence[Fact], ran: dict[int, ApplyStatus] | None = None
    ) -> list[ApplyStatus]:
        """As Redis runs facts: those in ``refused_facts`` (by id) fail, the others are
        applied (and told in ``ran``), then the failure is raised."""
        self.facts.append([f for f in facts if f.fact_id not in self.refused_facts])
        if ran is not None:
            ran.update((i, ApplyStatus.APPLIED) for i, f in enumerate(facts)
                       if f.fact_id not in self.refused_facts)  # fmt: skip
        if self.refused_facts.intersection(f.fact_id for f in facts):
            raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind")
        return [ApplyStatus.APPLIED for _ in facts]

    def pseudonym(self, customer_id: str) -> str:
        return f"p-{customer_id}"

    async def read_views(
        self,
        customer_ids: Sequence[str],
        faults: dict[str, Exception] | None = None,
        home_timezone: str = "UTC",
    ) -> list[tuple[bool, CustomerFeatures | None]]:
        self.reads.append(list(customer_ids))
        self.zones_read.append(home_timezone)
        if self.read_error is not None:
            raise self.read_error
        bad = [c for c in customer_ids if c in self.unreadable]
        if bad and faults is None:
            raise ValueError(f"invalid literal for int() with base 10: {self.unreadable[bad[0]]!r}")
        for c in bad:
            assert faults is not None
            faults[c] = ValueError(f"invalid literal for int(): {self.unreadable[c]!r}")
        return [(c in self.gone, None if c in self.gone or c in bad else self.features.get(c))
                for c in customer_ids]  # fmt: skip

    async def erased(self, customer_ids: Sequence[str]) -> list[bool]:
        self.reads.append(list(customer_ids))
        return [c in self.gone for c in customer_ids]


class RecordedDecisions:
    """RecordingStore's ``decisions``: keeps what ``record`` is given on the store."""

    def __init__(self, store: RecordingStore) -> None:
        self._store = store

    async def record(
        self,
        records: Sequence[DecisionRecord],
        contacts: Sequence[Fact] = (),
        faults: dict[str, Exception] | None = None,
        refused: set[str] | None = None,
    ) -> list[bool]:
        corrupt = {r.customer_id for r in records} & self._store.corrupt
        if corrupt and faults is None:
            raise ResponseError("WRONGTYPE key 2 of the decision holds a string")
        for customer in corrupt:
            assert faults is not None
            faults[customer] = ResponseError("WRONGTYPE key 2 of the decision holds a string")
        records = [r for r in records if r.customer_id not in corrupt]
        self._store.records.append(list(records))
        self._store.facts.append(list(contacts))
        for r in records:
            self._store.contexts.setdefault((r.customer_id, r.decision_id), r.context.decode())
        return [True] * len(records)

    async def contexts(
        self, pairs: Sequence[tuple[str, str]], faults: dict[int, Exception] | None = None
    ) -> list[str | None]:
        return [self._store.contexts.get(pair) for pair in pairs]

    async def own(
        self, claims: Sequence[tuple[str, str, str]], faults: dict[str, Exception] | None = None
    ) -> list[bool]:
        """Every decision the worker's own: no other worker decides at once."""
        return [True] * len(claims)


class PoisonError(ValueError):
    """What RecordingStore raises for a poison event (any non-transient error)."""


class BrokenPolicy:
    """A policy whose ``decide`` raises: always for ``broken`` trigger events, and on
    the first ``flaky`` calls for the others; otherwise it decides as POLICY does."""

    def __init__(self, broken: Sequence[str] = (), flaky: int = 0) -> None:
        self.broken = set(broken)
        self.flaky = flaky
        self.calls: list[str | None] = []
        self.catalogue = POLICY.catalogue
        self.contact_policy = POLICY.contact_policy

    def decide(
        self,
        moment: DecisionMoment,
        features: CustomerFeatures | None,
        now: datetime,
        budgets: BudgetLedger | None = None,
        catalogue: OfferCatalogue | None = None,
    ) -> NextBestOffer:
        self.calls.append(moment.trigger_event_id)
        if moment.trigger_event_id in self.broken:
            raise RuntimeError("policy broke")
        if self.flaky:
            self.flaky -= 1
            raise RuntimeError("policy hiccup")
        return POLICY.decide(moment, features, now, budgets, catalogue)


def handler(
    store: RecordingStore, policy: RuleBasedOfferPolicy | BrokenPolicy = POLICY, **kw: object
) -> TouchpointHandler:
    return TouchpointHandler(
        store,  # type: ignore[arg-type]
        policy,  # type: ignore[arg-type]
        max_attempts=MAX_ATTEMPTS,
        clock=lambda: NOW,
        **kw,  # type: ignore[arg-type]
    )


def click(
    event_id: str = "click-1",
    page: str = "/offers",
    customer: str = "cust-1",
    ts: datetime = T0,
) -> WebClick:
    return WebClick(event_id=event_id, customer_id=customer, ts=ts, page=page)


def record(item: TouchpointEvent | bytes | None, offset: int = 0) -> SourceRecord:
    value = encode_touchpoint(item) if isinstance(item, WebClick | Call | Survey) else item
    return SourceRecord("touchpoints", 0, offset, b"cust-1", value)


def records(*items: TouchpointEvent | bytes | None) -> list[SourceRecord]:
    return [record(item, offset) for offset, item in enumerate(items)]


def triggers(result: BatchResult) -> list[str | None]:
    return [d.trigger_event_id for d in result.decisions]


# --------------------------------------------------------------------------------------
# Records that cannot be decoded
# --------------------------------------------------------------------------------------


async def test_invalid_json_is_dead_lettered_and_the_rest_handled() -> None:
    store = RecordingStore()
    batch = records(b"{not json", click("click-1"))
    result = await handler(store).handle(batch)
    assert [d.record for d in result.dead_letters] == [batch[0]]
    assert result.dead_letters[0].error.startswith("invalid: malformed JSON")
    assert result.results == [("unknown", "invalid"), ("web_click", "ok")]
    assert store.applied == ["click-1"]
    assert triggers(result) == ["click-1"]


async def test_a_record_failing_the_schema_is_dead_lettered_naming_the_field() -> None:
    bad = msgspec.json.encode({"type": "web_click", "event_id": "e1", "customer_id": "c1"})
    result = await handler(RecordingStore()).handle(records(bad))
    assert len(result.dead_letters) == 1
    error = result.dead_letters[0].error
    assert error.startswith("invalid: ") and "`ts`" in error
    assert result.results == [("web_click", "invalid")]  # the type it claims, a known one


async def test_an_invalid_record_of_a_type_moments_does_not_know_counts_as_unknown() -> None:
    made_up = msgspec.json.encode({"type": "customer-4711-fax", "event_id": "e1"})
    not_a_string = msgspec.json.encode({"type": 7, "event_id": "e1"})
    result = await handler(RecordingStore()).handle(records(made_up, not_a_string))
    assert len(result.dead_letters) == 2
    assert result.results == [("unknown", "invalid")] * 2


async def test_an_empty_record_is_dead_lettered() -> None:
    result = await handler(RecordingStore()).handle(records(None))
    assert [d.error for d in result.dead_letters] == ["invalid: empty record (no value)"]
    assert result.results == [("unknown", "invalid")]


async def test_a_batch_of_only_invalid_records_never_reaches_the_store() -> None:
    store = RecordingStore()
    result = await handler(store).handle(records(b"", b"[]", None))
    assert len(result.dead_letters) == 3
    assert store.apply_calls == [] and store.reads == []


async def test_a_future_dated_event_is_dead_lettered_naming_ts() -> None:
    store = RecordingStore()
    too_late = click("from-the-future", ts=NOW + timedelta(minutes=15, milliseconds=1))
    just_in = click("just-in-time", ts=NOW + timedelta(minutes=15))
    batch = records(too_late, just_in)
    result = await handler(store).handle(batch)
    assert [d.record for d in result.dead_letters] == [batch[0]]
    error = result.dead_letters[0].error
    assert error.startswith("invalid: ts ") and error.endswith("at `$.ts`")
    assert result.results == [("web_click", "invalid"), ("web_click", "ok")]
    assert store.applied == ["just-in-time"]


async def test_max_future_is_configurable() -> None:
    store = RecordingStore()
    event = click(ts=NOW + timedelta(seconds=1))
    result = await handler(store, max_future=timedelta(0)).handle(records(event))
    assert len(result.dead_letters) == 1 and store.applied == []


# --------------------------------------------------------------------------------------
# Feature updates: retries, poison events, outages
# --------------------------------------------------------------------------------------


async def test_a_failing_update_is_retried_and_then_succeeds() -> None:
    store = RecordingStore(errors=[PoisonError("hiccup")] * (MAX_ATTEMPTS - 1))
    result = await handler(store).handle(records(click("a"), click("b")))
    assert store.apply_calls == [["a", "b"]] * MAX_ATTEMPTS
    assert result.dead_letters == []
    assert result.results == [("web_click", "ok")] * 2
    assert triggers(result) == ["a", "b"]


async def test_a_poison_event_is_isolated_and_only_it_is_dead_lettered() -> None:
    store = RecordingStore(poison=["poison"])
    batch = records(click("a"), click("poison"), click("b"))
    result = await handler(store).handle(batch)
    assert store.apply_calls == (
        [["a", "poison", "b"]] * MAX_ATTEMPTS  # the batch, retried
        + [["a"]]
        + [["poison"]] * MAX_ATTEMPTS  # then one by one
        + [["b"]]
    )
    # Redis applied the others in each failed attempt: they count as applied, not as
    # duplicates (only the batch's own attempts applied them)
    assert store.applied == ["a", "b"] * (MAX_ATTEMPTS + 1)
    assert [d.record for d in result.dead_letters] == [batch[1]]
    assert result.dead_letters[0].error.startswith("feature update failed: PoisonError: ")
    assert result.results == [("web_click", "ok"), ("web_click", "failed"), ("web_click", "ok")]
    assert triggers(result) == ["a", "b"]


async def test_store_unavailable_propagates_without_retry_or_dead_letter() -> None:
    store = RecordingStore(errors=[StoreUnavailable("ConnectionError: refused")])
    with pytest.raises(StoreUnavailable):
        await handler(store).handle(records(click("a")))
    assert store.apply_calls == [["a"]]  # the caller retries the whole batch later


async def test_store_unavailable_while_isolating_a_poison_event_propagates() -> None:
    errors: list[Exception] = [PoisonError("bad")] * MAX_ATTEMPTS
    store = RecordingStore(errors=[*errors, StoreUnavailable("TimeoutError")])
    with pytest.raises(StoreUnavailable):
        await handler(store).handle(records(click("a"), click("b")))
    assert store.apply_calls == [["a", "b"]] * MAX_ATTEMPTS + [["a"]]


async def test_store_unavailable_on_reading_features_propagates() -> None:
    store = RecordingStore(read_error=StoreUnavailable("ConnectionError"))
    with pytest.raises(StoreUnavailable):
        await handler(store).handle(records(click("a")))


async def test_a_retried_batch_counts_what_its_first_attempt_applied_as_applied() -> None:
    """Redis failed after the batch's events were applied: the retry finds them applied.
    They are counted once, as applied; a copy of one in the same batch stays a duplicate."""
    store = RecordingStore(read_error=StoreUnavailable("ConnectionError"))
    batch = records(click("a"), click("b"), click("a"))
    applied: Counter[EventKey] = Counter()
    with pytest.raises(StoreUnavailable):
        await handler(store).handle(batch, applied)
    assert applied == Counter({("cust-1", "a"): 1, ("cust-1", "b"): 1})
    store.read_error = None
    result = await handler(store).handle(batch, applied)
    assert [r for _, r in result.results] == ["ok", "ok", "duplicate"]
    assert triggers(result) == ["a", "b"]
    # without what the first attempt applied, the same retry counts them as duplicates
    again = await handler(store).handle(batch)
    assert [r for _, r in again.results] == ["duplicate"] * 3


async def test_the_events_a_batch_applied_beside_an_outage_count_as_applied_on_retry() -> None:
    """Redis refused one event's script (out of memory) and ran the others."""
    store = RecordingStore(outage=["b"])
    batch = records(click("a"), click("b"), click("c"))
    applied: Counter[EventKey] = Counter()
    with pytest.raises(StoreUnavailable):
        await handler(store).handle(batch, applied)
    assert store.apply_calls == [["a", "b", "c"]]
    assert applied == Counter({("cust-1", "a"): 1, ("cust-1", "c"): 1})
    store.outage.clear()
    result = await handler(store).handle(batch, applied)
    assert [r for _, r in result.results] == ["ok", "ok", "ok"]
    assert triggers(result) == ["a", "b", "c"]


async def test_events_whose_replies_were_lost_count_as_applied_when_the_retry_finds_them() -> None:
    """Redis ran the batch, and the connection went before its replies came (a timeout):
    the retry finds the events applied, and counts them once, as applied; a copy of one
    in the same batch stays a duplicate."""
    store = RecordingStore(replies_lost=1)
    batch = records(click("a"), click("b"), click("a"))
    applied: Counter[EventKey] = Counter()
    with pytest.raises(StoreUnavailable):
        await handler(store).handle(batch, applied)
    assert store.applied == ["a", "b", "a"]
    result = await handler(store).handle(batch, applied)
    assert [r for _, r in result.results] == ["ok", "ok", "duplicate"]
    assert triggers(result) == ["a", "b"]


async def test_events_whose_calls_were_lost_unsent_count_once_and_copies_as_duplicates() -> None:
    """The connection went before the batch reached Redis: its retry applies the events
    (the credit for a call that may have run is spent), and a copy is a duplicate."""
    store = RecordingStore(replies_lost=1, lost_ran=False)
    batch = records(click("a"), click("b"), click("a"))
    applied: Counter[EventKey] = Counter()
    with pytest.raises(StoreUnavailable):
        await handler(store).handle(batch, applied)
    assert store.applied == []
    result = await handler(store).handle(batch, applied)
    assert [r for _, r in result.results] == ["ok", "ok", "duplicate"]


async def test_a_duplicate_whose_reply_came_before_the_connection_went_stays_one() -> None:
    """x was applied by an earlier batch; this batch holds it twice, and the first reply
    (duplicate) came before the connection went: both copies are duplicates."""
    store = RecordingStore(replies_lost=1, replies_came=1)
    store.applied.append("x")
    store.applied_keys.add(("cust-1", "x"))
    batch = records(click("x"), click("x"))
    applied: Counter[EventKey] = Counter()
    with pytest.raises(StoreUnavailable):
        await handler(store).handle(batch, applied)
    result = await handler(store).handle(batch, applied)
    assert [r for _, r in result.results] == ["duplicate", "duplicate"]


async def test_events_applied_one_by_one_before_an_outage_count_as_applied_on_retry() -> None:
    errors: list[Exception] = [PoisonError("bad")] * MAX_ATTEMPTS
    store = RecordingStore(errors=errors, read_error=StoreUnavailable("ConnectionError"))
    batch = records(click("a"), click("b"))
    applied: Counter[EventKey] = Counter()
    with pytest.raises(StoreUnavailable):  # isolated, both applied, then reading fails
        await handler(store).handle(batch, applied)
    assert applied == Counter({("cust-1", "a"): 1, ("cust-1", "b"): 1})
    store.read_error = None
    result = await handler(store).handle(batch, applied)
    assert [r for _, r in result.results] == ["ok", "ok"]


# --------------------------------------------------------------------------------------
# Decisions: failures, duplicates, erasure
# --------------------------------------------------------------------------------------


async def test_a_policy_that_keeps_failing_dead_letters_the_event_after_max_attempts() -> None:
    policy = BrokenPolicy(broken=["bad"])
    store = RecordingStore(features={"cust-1": KNOWN})
    batch = records(click("good-1"), click("bad", page="/cancel"), click("good-2"))
    result = await handler(store, policy).handle(batch)
    assert policy.calls.count("bad") == MAX_ATTEMPTS
    assert [d.record for d in result.dead_letters] == [batch[1]]
    assert result.dead_letters[0].error == "decision failed: RuntimeError: policy broke"
    assert ("web_click", "failed") in result.results
    assert triggers(result) == ["good-1", "good-2"]
    assert result.interventions == []  # no half-made decision for the failed event
    assert store.applied == ["good-1", "bad", "good-2"]  # its features were updated


async def test_a_customer_whose_features_cannot_be_read_is_dead_lettered_alone() -> None:
    """One customer's stored count is not a number (their event applied all the same):
    their touchpoint is dead-lettered, as applied, and the batch's others are decided
    (the whole batch was retried, then dead-lettered, again with every later batch)."""
    store = RecordingStore(features={"cust-1": KNOWN, "cust-3": KNOWN})
    store.unreadable["cust-2"] = "x"
    batch = [
        SourceRecord("touchpoints", 0, n, customer.encode(),
                     encode_touchpoint(click(f"e{n}", page="/cancel", customer=customer)))
        for n, customer in enumerate(["cust-1", "cust-2", "cust-3"])
    ]  # fmt: skip
    result = await handler(store).handle(batch)
    assert [d.record for d in result.dead_letters] == [batch[1]]
    assert result.dead_letters[0].error.startswith("decision read failed: ValueError")
    assert result.results == [("web_click", "ok"), ("web_click", "failed"), ("web_click", "ok")]
    assert triggers(result) == ["e0", "e2"]
    assert store.applied == ["e0", "e1", "e2"]  # their features were updated


async def test_confirming_a_batch_sent_does_not_fail_it_for_one_customers_corrupt_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An alert went out for a customer whose decision keys are corrupt (no offer
    decision of theirs found it before sending): confirming the batch records the rest,
    and says so, where it failed three times and dead-lettered the whole batch, sent."""
    store = RecordingStore(features={"cust-1": KNOWN})
    alert = Intervention(intervention_id="iv-1", customer_id="cust-2", ts=T0,
                         kind="service_recovery", priority=2, trigger_event_id="m1",
                         reasons=[], suggested_action="Reach out.")  # fmt: skip
    result = await handler(store).handle(records(click("a", page="/cancel")))
    result.interventions.append(alert)
    store.corrupt = {"cust-2"}
    await handler(store).confirm(result)
    assert {r.customer_id for r in store.records[-1]} == {"cust-1"}
    assert "1 customers' alerts or decisions were sent but could not be recorded" in caplog.text
    assert "cust-2" not in caplog.text


async def test_a_decision_failure_gives_one_result_for_its_record() -> None:
    result = await handler(RecordingStore(), BrokenPolicy(broken=["bad"])).handle(
        records(click("bad"))
    )
    assert result.results == [("web_click", "failed")]


async def test_a_failing_decision_is_retried_and_then_succeeds() -> None:
    policy = BrokenPolicy(flaky=MAX_ATTEMPTS - 1)
    result = await handler(RecordingStore(), policy).handle(records(click("a")))
    assert policy.calls == ["a"] * MAX_ATTEMPTS
    assert result.dead_letters == [] and triggers(result) == ["a"]


async def test_a_duplicate_whose_decision_never_went_out_is_decided_again() -> None:
    store = RecordingStore(features={"cust-1": KNOWN}, statuses={"a": ApplyStatus.DUPLICATE})
    result = await handler(store).handle(records(click("a", page="/cancel")))
    assert result.results == [("web_click", "duplicate")]
    assert triggers(result) == ["a"]
    assert [i.kind for i in result.interventions] == ["save_desk"]


async def test_a_duplicate_already_decided_is_not_decided_again() -> None:
    store = RecordingStore(
        features={"cust-1": KNOWN}, statuses={"a": ApplyStatus.DUPLICATE_DECIDED}
    )
    result = await handler(store).handle(records(click("a", page="/cancel")))
    assert result.results == [("web_click", "duplicate")]
    assert result.decisions == [] and result.interventions == []
    assert store.reads == []


async def test_a_decision_keeps_the_customers_timezone_for_its_contacts_caps() -> None:
    """The days its contact's caps count (agents.contact_ceilings): the customer's, as the
    features told them; the read is given the catalogue's, for customers not told theirs."""
    sydney = msgspec.structs.replace(KNOWN, timezone="Australia/Sydney")
    store = RecordingStore(features={"cust-1": sydney})
    result = await handler(store).handle(records(click("a"), click("b", customer="cust-2")))
    assert [d.customer_id for d in result.decisions if d.offers] == ["cust-1", "cust-2"]
    assert result.timezones == {"cust-1": "Australia/Sydney", "cust-2": None}
    assert store.zones_read == ["UTC"]


async def test_a_duplicate_whose_decision_was_recorded_sends_that_decision_again() -> None:
    """A worker recorded the decision and stopped before it was marked sent: the replay
    sends the decision as it was recorded (its offers, its contact counted already), not
    one decided anew from features that now count it; its alerts are raised again."""
    first = await handler(RecordingStore(features={"cust-1": KNOWN})).handle(
        records(click("a", page="/cancel"))
    )
    (recorded,) = first.decisions
    assert recorded.offers
    store = RecordingStore(
        features={"cust-1": KNOWN}, statuses={"a": ApplyStatus.DUPLICATE_RECORDED}
    )
    store.contexts[("cust-1", recorded.decision_id)] = encode_decision(recorded).decode()
    policy = BrokenPolicy(broken=["a"])  # would fail, were it asked
    result = await handler(store, policy).handle(records(click("a", page="/cancel")))
    assert result.results == [("web_click", "duplicate")]
    assert result.decisions == [recorded] and policy.calls == []
    assert result.moments[recorded.decision_id].trigger_event_id == "a"
    assert [i.kind for i in result.interventions] == ["save_desk"]
    # its record gone (expired): decided anew
    gone = RecordingStore(features={"cust-1": KNOWN},
                          statuses={"a": ApplyStatus.DUPLICATE_RECORDED})  # fmt: skip
    again = await handler(gone).handle(records(click("a", page="/cancel")))
    assert triggers(again) == ["a"]


async def test_a_copy_of_a_moment_long_over_is_not_counted_too_late_again() -> None:
    """Sent three times, an hour-old click was counted three times too late (the copies
    come back as duplicates whose decision was never recorded, and are looked at again)."""
    stale = click("stale", ts=NOW - timedelta(hours=2))
    call = Call(event_id="call-stale", customer_id="cust-1", ts=NOW - timedelta(hours=2),
                status="started", direction="inbound", reason="cancel")  # fmt: skip
    for status, counted in ((ApplyStatus.APPLIED, True), (ApplyStatus.DUPLICATE, False)):
        store = RecordingStore(features={"cust-1": KNOWN},
                               statuses={"stale": status, "call-stale": status})  # fmt: skip
        result = await handler(store, offer_max_age_s=3600.0).handle(records(stale, call))
        assert result.moments_passed == (["web", "call"] if counted else [])
        assert [i.kind for i in result.too_late] == (["save_desk"] if counted else [])
        assert result.decisions == [] and result.interventions == []  # either way


async def test_a_moment_long_over_is_not_decided_but_a_recorded_decision_is_still_sent() -> None:
    """A backlog or a re-drive decided offers for clicks hours old: they spent the
    customer's caps and the day's budgets on a visit long over."""
    hour = 3600.0
    stale = click("stale", ts=NOW - timedelta(hours=2))
    fresh = click("fresh", ts=NOW - timedelta(minutes=5))
    metrics = Metrics()
    result = await handler(RecordingStore(features={"cust-1": KNOWN}),
                           offer_max_age_s=hour).handle(records(stale, fresh))  # fmt: skip
    metrics.batch_handled(result)
    assert triggers(result) == ["fresh"] and result.moments_passed == ["web"]
    assert result.results == [("web_click", "ok"), ("web_click", "ok")]  # applied all the same
    count = metrics.registry.get_sample_value
    assert count("moments_decisions_too_late_total", {"channel": "web"}) == 1
    # reached Kafka a minute ago (a source whose clock is behind): decided
    sent_late = SourceRecord(
        "touchpoints",
        0,
        0,
        b"cust-1",
        encode_touchpoint(stale),
        produced_ms=int((NOW - timedelta(minutes=1)).timestamp() * 1000),
    )
    again = await handler(RecordingStore(features={"cust-1": KNOWN}),
                          offer_max_age_s=hour).handle([sent_late])  # fmt: skip
    assert triggers(again) == ["stale"]
    # without a limit (the default of the handler): decided however old
    every = await handler(RecordingStore(features={"cust-1": KNOWN})).handle(records(stale))
    assert triggers(every) == ["stale"]
    # decided and recorded before the worker stopped: sent again as it was, however old
    store = RecordingStore(features={"cust-1": KNOWN},
                           statuses={"stale": ApplyStatus.DUPLICATE_RECORDED})  # fmt: skip
    (recorded,) = every.decisions
    store.contexts[("cust-1", recorded.decision_id)] = encode_decision(recorded).decode()
    replayed = await handler(store, offer_max_age_s=hour).handle(records(stale))
    assert replayed.decisions == [recorded] and replayed.moments_passed == []


async def test_the_same_event_twice_in_a_batch_is_decided_once() -> None:
    store = RecordingStore(features={"cust-1": KNOWN})
    event = click("a", page="/cancel")
    result = await handler(store).handle(records(event, event))
    assert store.apply_calls == [["a", "a"]]
    assert result.results == [("web_click", "ok"), ("web_click", "duplicate")]
    assert triggers(result) == ["a"]
    assert [i.kind for i in result.interventions] == ["save_desk"]


async def test_two_customers_events_that_share_an_id_are_each_decided() -> None:
    """Producers that number events per source send one event id for two customers; the
    store applies both (it dedupes each customer's own): each is decided, under ids of
    its own (consumers drop a decision id seen before), and raises its alert."""
    store = RecordingStore(features={"ann": KNOWN, "ben": KNOWN})
    batch = records(click("click-0001", page="/cancel", customer="ann"),
                    click("click-0001", page="/cancel", customer="ben"))  # fmt: skip
    result = await handler(store).handle(batch)
    assert result.results == [("web_click", "ok")] * 2
    assert [d.customer_id for d in result.decisions] == ["ann", "ben"]
    ann, ben = result.decisions
    assert ann.decision_id == decision_id_for("click-0001", "web", "p-ann")  # keyed hash
    assert ben.decision_id == decision_id_for("click-0001", "web", "p-ben")
    assert result.moments[ben.decision_id].customer_id == "ben"
    alerts = result.interventions
    assert [(i.customer_id, i.kind) for i in alerts] == [("ann", "save_desk"), ("ben", "save_desk")]
    assert alerts[1].intervention_id == intervention_id_for("save_desk", "click-0001", "p-ben")
    assert alerts[0].intervention_id != alerts[1].intervention_id


async def test_a_retried_batch_tells_two_customers_events_that_share_an_id_apart() -> None:
    """What the first attempt applied counts per customer: ann's copy stays a duplicate,
    ben's event is applied, and decided."""
    store = RecordingStore(read_error=StoreUnavailable("ConnectionError"))
    batch = records(click("x", customer="ann"), click("x", customer="ann"),
                    click("x", customer="ben"))  # fmt: skip
    applied: Counter[EventKey] = Counter()
    with pytest.raises(StoreUnavailable):
        await handler(store).handle(batch, applied)
    assert applied == Counter({("ann", "x"): 1, ("ben", "x"): 1})
    store.read_error = None
    result = await handler(store).handle(batch, applied)
    assert [r for _, r in result.results] == ["ok", "duplicate", "ok"]
    assert [d.customer_id for d in result.decisions] == ["ann", "ben"]


async def test_a_decision_recorded_under_the_older_id_is_sent_again_under_it() -> None:
    """A worker of a Moments before per-customer ids recorded the decision (under the id
    it gave it, from the event id alone) and stopped before it was marked sent: the
    replay sends it again under that id, not a second decision under a new one; and
    decides it again under that id should its contact be refused."""
    first = await handler(RecordingStore(features={"cust-1": KNOWN})).handle(records(click("a")))
    older = legacy_decision_id("a", "web")
    recorded = msgspec.structs.replace(first.decisions[0], decision_id=older)
    store = RecordingStore(
        features={"cust-1": KNOWN}, statuses={"a": ApplyStatus.DUPLICATE_RECORDED}
    )
    store.contexts[("cust-1", older)] = encode_decision(recorded).decode()
    policy = BrokenPolicy(broken=["a"])  # would fail, were it asked
    result = await handler(store, policy).handle(records(click("a")))
    assert result.decisions == [recorded] and policy.calls == []
    assert result.moments[older].decision_id == older
    # one recorded under its own id too (an older worker's replay decided it again): that one
    again = msgspec.structs.replace(recorded, decision_id=first.decisions[0].decision_id)
    store.contexts[("cust-1", again.decision_id)] = encode_decision(again).decode()
    assert (await handler(store, policy).handle(records(click("a")))).decisions == [again]


async def test_an_erased_customer_gets_no_decision() -> None:
    store = RecordingStore(features={"cust-1": KNOWN}, statuses={"a": ApplyStatus.ERASED})
    result = await handler(store).handle(records(click("a", page="/cancel")))
    assert result.results == [("web_click", "erased")]
    assert result.decisions == [] and result.interventions == [] and result.dead_letters == []
    assert store.reads == []


async def test_an_event_older_than_the_store_keeps_gets_no_decision() -> None:
    """The store keeps a profile the store TTL after its newest activity: an event older
    than that (a producer's backlog) is not applied, nor decided on."""
    store = RecordingStore(features={"cust-1": KNOWN}, statuses={"a": ApplyStatus.EXPIRED})
    result = await handler(store).handle(records(click("a", page="/cancel")))
    assert result.results == [("web_click", "expired")]
    assert result.decisions == [] and result.interventions == [] and store.reads == []


async def test_only_decision_moments_and_possible_interventions_are_decided() -> None:
    ended = Call(
        event_id="ended",
        customer_id="cust-1",
        ts=T0,
        status="ended",
        direction="inbound",
        reason="support",
    )
    rated = Survey(event_id="rated", customer_id="cust-1", ts=T0, score=5, scale="csat5")
    store = RecordingStore(features={"cust-1": KNOWN})
    result = await handler(store).handle(records(ended, rated))
    assert result.results == [("call", "ok"), ("survey", "ok")]
    assert result.decisions == [] and result.interventions == []
    assert store.reads == []


async def test_a_customer_in_the_offers_control_group_is_offered_nothing_by_hand_either() -> None:
    at_risk = msgspec.structs.replace(KNOWN, segment="at_risk")
    inbound = Call(event_id="in", customer_id="cust-1", ts=T0, status="started",
                   direction="inbound", reason="support")  # fmt: skip
    everyone = RuleBasedOfferPolicy(
        CatalogueHolder(CATALOGUE), ContactPolicy(ControlGroup("test", 100.0))
    )
    for policy, offered in ((POLICY, True), (everyone, False)):
        result = await handler(RecordingStore(features={"cust-1": at_risk}), policy).handle(
            records(inbound)
        )
        (alert,) = result.interventions
        assert alert.kind == "retention_call"
        assert ("voucher" in alert.suggested_action) is offered, alert.suggested_action


async def test_a_customer_erased_after_their_touchpoints_were_applied_is_not_decided() -> None:
    store = RecordingStore(features={"cust-1": KNOWN, "cust-2": KNOWN})
    store.gone.add("cust-2")  # erased between the batch's apply and its read
    batch = records(click("a", page="/cancel"), click("b", customer="cust-2", page="/cancel"))
    result = await handler(store).handle(batch)
    assert triggers(result) == ["a"]
    assert [i.customer_id for i in result.interventions] == ["cust-1"]


async def test_a_customer_erased_after_their_batch_was_decided_is_left_out_of_what_it_sends() -> (
    None
):
    store = RecordingStore(features={"cust-1": KNOWN, "cust-2": KNOWN})
    batch = records(click("a", page="/cancel"), click("b", customer="cust-2", page="/cancel"))
    h = handler(store)
    result = await h.handle(batch)
    assert {d.customer_id for d in result.decisions} == {"cust-1", "cust-2"}
    store.gone.add("cust-2")  # erased while the batch waited for Kafka, say
    await h.without_erased(result)
    assert store.reads[-1] == ["cust-1", "cust-2"]  # read once, in one call
    assert [d.customer_id for d in result.decisions] == ["cust-1"]
    assert [i.customer_id for i in result.interventions] == ["cust-1"]
    assert result.results == [("web_click", "ok"), ("web_click", "ok")]  # both were applied


async def test_a_batch_that_sends_nothing_naming_a_customer_reads_no_tombstones() -> None:
    store = RecordingStore()
    h = handler(store)
    unkeyed = dataclasses.replace(record(b"{not json"), key=None)
    result = await h.handle([unkeyed])
    await h.without_erased(result)
    assert store.reads == [] and len(result.dead_letters) == 1


async def test_a_batch_of_letters_alone_reads_their_customers_tombstones_in_one_call() -> None:
    store = RecordingStore()
    h = handler(store)
    result = await h.handle(records(b"{not json", b'{"customer_id": "cust-2", "ty'))
    await h.without_erased(result)
    assert store.reads == [["cust-1", "cust-2"]]  # the keys, and the ids the records name
    assert len(result.dead_letters) == 2  # nobody erased: both are written


async def test_the_letters_of_records_naming_an_erased_customer_are_not_written() -> None:
    """Nothing naming a customer is written after their erasure, dead letters included:
    a producer that keeps sending for an erased id would have each bad record copied into
    the dead-letter topic, with its payload and the id as its key. Its record counts as
    erased, not invalid."""
    store = RecordingStore(features={"cust-1": KNOWN, "cust-3": KNOWN})
    store.gone.update({"cust-1", "cust-2"})
    named = dataclasses.replace(record(b'{"type": "web_click", "customer_id": "cust-2", '
                                       b'"page": "/ch', 1), key=b"someone-else")  # fmt: skip
    ahead = record(click("ahead", ts=NOW + timedelta(hours=10)), 2)
    other = dataclasses.replace(record(b"{not json", 3), key=b"cust-3")
    h = handler(store)
    result = await h.handle([record(b"{not json", 0), named, ahead, other])
    assert len(result.dead_letters) == 4
    await h.without_erased(result)
    assert [f.record.offset for f in result.dead_letters] == [3]  # cust-3's only
    assert result.results == [("unknown", "erased"), ("unknown", "erased"),
                              ("web_click", "erased"), ("unknown", "invalid")]  # fmt: skip


async def test_a_letter_kafka_took_before_the_erasure_stays_counted_as_written() -> None:
    store = RecordingStore()
    h = handler(store)
    result = await h.handle(records(b"{not json"))
    (taken,) = result.dead_letters
    result.delivered[id(taken)] = taken  # an earlier attempt to send the batch wrote it
    store.gone.add("cust-1")
    await h.without_erased(result)
    assert result.dead_letters == [taken] and result.results == [("unknown", "invalid")]


async def test_the_letter_of_an_event_whose_update_kept_failing_counts_as_erased_when_left_out(
) -> None:  # fmt: skip
    store = RecordingStore(features={"cust-1": KNOWN}, poison=["bad"])
    h = handler(store)
    result = await h.handle(records(b"{not json", click("ok", customer="cust-2"), click("bad")))
    assert [f.record.offset for f in result.dead_letters] == [0, 2]
    store.gone.add("cust-1")
    await h.without_erased(result)
    assert result.dead_letters == []
    assert result.results == [("unknown", "erased"), ("web_click", "ok"), ("web_click", "erased")]


async def test_features_are_read_once_per_customer_and_decided_on() -> None:
    store = RecordingStore(features={"cust-1": KNOWN})  # cust-2 is unknown to the store
    batch = records(
        click("a", page="/cancel"), click("b", customer="cust-2", page="/cancel"), click("c")
    )
    result = await handler(store).handle(batch)
    assert store.reads == [["cust-1", "cust-2"]]
    assert triggers(result) == ["a", "b", "c"]
    assert all(d.ts == NOW for d in result.decisions)
    # no features, no intervention: only cust-1's visit to the cancellation page alerts
    assert [(i.customer_id, i.kind) for i in result.interventions] == [("cust-1", "save_desk")]
    (alert,) = result.interventions
    assert alert.intervention_id == intervention_id_for("save_desk", "a", "p-cust-1")


async def test_one_customer_gets_one_alert_of_a_kind_per_batch() -> None:
    store = RecordingStore(features={"cust-1": KNOWN})
    batch = records(
        click("a", page="/account/cancel"),
        click("b", page="/account/cancel/confirm", ts=T0 + timedelta(seconds=5)),
    )
    result = await handler(store).handle(batch)
    assert [i.kind for i in result.interventions] == ["save_desk"]


async def test_the_hold_out_groups_alerts_are_kept_apart_and_never_shown() -> None:
    store = RecordingStore(features={"cust-1": KNOWN})
    everyone = ControlGroup("held", 100.0)
    result = await handler(store, holdout=everyone).handle(records(click("a", "/account/cancel")))
    assert result.interventions == []
    [kept] = result.held_out
    assert kept.kind == "save_desk" and kept.control is True
    assert kept.reasons[-1] == "control_group"
    assert kept.intervention_id == intervention_id_for("save_desk", "a", "p-cust-1")  # as if raised
    assert result.decisions  # offers are the offers' control group's business
    nobody = await handler(store, holdout=ControlGroup("held", 0.0)).handle(
        records(click("b", "/account/cancel"))
    )
    assert [i.control for i in nobody.interventions] == [False] and nobody.held_out == []


async def test_confirm_starts_the_cool_down_of_a_held_out_alert_and_counts_it_apart() -> None:
    kept = msgspec.structs.replace(alert("i9", "retention_call"), control=True)
    store = RecordingStore()
    await handler(store).confirm(BatchResult(held_out=[kept]))
    fact = intervention_fact("i9", "cust-2", "retention_call", NOW, held_out=True)
    assert store.facts == [[fact]] and store.records == [[decision_record(kept)]]
    assert ("max", "last_intervention:retention_call", str(ts_ms(NOW))) in fact.updates
    assert ("incr", "held_out:retention_call", "1") in fact.updates
    assert not [u for u in fact.updates if u[1].startswith("interventions")]


# --------------------------------------------------------------------------------------
# confirm(): the contacts made and the decisions kept
# --------------------------------------------------------------------------------------


def offer_decision(decision_id: str, offers: list[str], control: bool = False) -> NextBestOffer:
    return NextBestOffer(
        decision_id=decision_id,
        customer_id="cust-1",
        ts=NOW,
        channel="web",
        trigger_event_id=f"trigger-{decision_id}",
        offers=[OfferScore(offer_id=o, score=1.0, propensity=1.0) for o in offers],
        control=control,
    )


def alert(intervention_id: str, kind: str) -> Intervention:
    return Intervention(
        intervention_id=intervention_id,
        customer_id="cust-2",
        ts=NOW,
        kind=kind,
        priority=1,
        trigger_event_id=f"trigger-{intervention_id}",
        reasons=[],
        suggested_action="call them",
    )


async def test_confirm_records_contacts_and_decisions() -> None:
    shown = offer_decision("d1", ["any", "other"])
    held_back = offer_decision("d2", [], control=True)
    raised = alert("i1", "save_desk")
    result = BatchResult(decisions=[shown, held_back], interventions=[raised])
    store = RecordingStore()
    await handler(store).confirm(result)
    # contacts: the decision that showed offers and the intervention, not the empty one
    assert store.facts == [
        [
            offers_shown_fact("d1", "cust-1", "web", ["any", "other"], NOW),
            intervention_fact("i1", "cust-2", "save_desk", NOW),
        ]
    ]
    # decision records: every decision and every intervention (so replays skip them)
    assert store.records == [
        [decision_record(shown), decision_record(held_back), decision_record(raised)]
    ]
    first = store.records[0][0]
    assert (first.customer_id, first.decision_id, first.trigger_event_id) == (
        "cust-1",
        "d1",
        "trigger-d1",
    )
    assert first.ts_ms == ts_ms(NOW)
    assert decode_next_best_offer(first.context) == shown
    # only what offered something is kept the whole week an outcome may come in
    assert [r.offered for r in store.records[0]] == [True, False, True]
    last = store.records[0][2]
    assert (last.customer_id, last.decision_id, last.trigger_event_id) == (
        "cust-2",
        "i1",
        "trigger-i1",
    )
    assert decode_intervention(last.context) == raised


async def test_confirm_after_handle_records_what_was_decided() -> None:
    store = RecordingStore(features={"cust-1": KNOWN})
    h = handler(store)
    result = await h.handle(records(click("a", page="/cancel")))
    await h.confirm(result)
    decision_id = decision_id_for("a", "web", "p-cust-1")
    intervention_id = intervention_id_for("save_desk", "a", "p-cust-1")
    # the contacts made, then the first churn-risk snapshot taken for the customer
    offered = [o.offer_id for o in result.decisions[0].offers]
    assert [f.fact_id for f in store.facts[0]] == [
        contact_id(decision_id, offered),
        f"i:{intervention_id}",
        "r:a",
    ]
    assert [(r.decision_id, r.trigger_event_id) for r in store.records[0]] == [
        (decision_id, "a"),
        (intervention_id, "a"),
    ]


async def test_confirm_of_an_empty_batch_records_nothing() -> None:
    store = RecordingStore()
    await handler(store).confirm(BatchResult())
    assert store.facts == [[]] and store.records == [[]]


async def test_a_decision_tried_again_keeps_one_risk_fact_for_its_event() -> None:
    policy = BrokenPolicy(flaky=MAX_ATTEMPTS - 1)
    store = RecordingStore(features={"cust-1": KNOWN})
    result = await handler(store, policy).handle(records(click("a")))
    assert triggers(result) == ["a"]
    assert [f.fact_id for f in result.risk_facts] == ["r:a"]


async def test_a_duplicate_whose_batch_never_confirmed_is_watched_for_risk_again() -> None:
    store = RecordingStore(features={"cust-1": KNOWN}, statuses={"a": ApplyStatus.DUPLICATE})
    result = await handler(store).handle(records(click("a")))
    assert [f.fact_id for f in result.risk_facts] == ["r:a"]  # applied once by the store
    decided = RecordingStore(features={"cust-1": KNOWN},
                             statuses={"a": ApplyStatus.DUPLICATE_DECIDED})  # fmt: skip
    assert (await handler(decided).handle(records(click("a")))).risk_facts == []


async def test_a_dead_lettered_touchpoint_leaves_no_risk_fact_so_its_re_drive_crosses() -> None:
    from agents.interventions import RISK_CROSSED

    unhappy = msgspec.structs.replace(
        KNOWN, experience=0.1, complaints_30d=3, email_subscribed=False, risk_band="low"
    )
    store = RecordingStore(features={"cust-1": unhappy})
    failed = await handler(store, BrokenPolicy(broken=["bad"])).handle(records(click("bad")))
    assert len(failed.dead_letters) == 1 and failed.interventions == []
    assert failed.risk_facts == [] and failed.risk_examples == []  # its band is not "high"
    store.statuses["bad"] = ApplyStatus.DUPLICATE  # re-driven, the policy mended
    again = await handler(store).handle(records(click("bad")))
    assert [f.fact_id for f in again.risk_facts] == ["r:bad"]
    crossed = [a for a in again.interventions if any(r.startswith(RISK_CROSSED) for r in a.reasons)]
    assert [a.kind for a in crossed] == ["retention_call"]


async def test_risk_is_watched_at_the_customers_newest_touchpoint_not_the_last_read() -> None:
    late_call = Call(event_id="call-1", customer_id="cust-1", ts=T0 - timedelta(hours=1),
                     direction="inbound", status="started", reason="billing")  # fmt: skip
    store = RecordingStore(features={"cust-1": KNOWN})
    result = await handler(store).handle(records(click("a"), late_call))
    assert [f.fact_id for f in result.risk_facts] == ["r:a"]


def burst(clicks: int) -> list[WebClick]:
    """A customer's clicks, a second apart, ending just before T0: one batch's."""
    start = T0 - timedelta(seconds=clicks)
    return [click(f"c{n}", ts=start + timedelta(seconds=n)) for n in range(clicks)]


def kept_recent(
    clicks: list[WebClick], *older: RecentTouchpoint, kept: int = 20
) -> list[RecentTouchpoint]:
    """The recent touchpoints the store holds once the batch is applied: the newest few."""
    entries = [*(recent_touchpoint_of(c) for c in clicks), *older]
    return sorted(entries, key=lambda r: r.ts, reverse=True)[:kept]  # type: ignore[union-attr]


@pytest.mark.parametrize("clicks", [5, 25])  # 25: the burst pushes the purchase out of recent
async def test_a_valuable_customer_back_with_a_burst_gets_their_win_back(clicks: int) -> None:
    bought = RecentTouchpoint(T0 - timedelta(days=120), "purchase", "p")
    batch = burst(clicks)
    valued = msgspec.structs.replace(
        KNOWN, purchases=3, spend=2000.0, value=2000.0, segment="model",
        recent=kept_recent(batch, bought),
    )  # fmt: skip
    store = RecordingStore(features={"cust-1": valued})
    store.before["cust-1"] = bought  # what the store read before applying the batch
    result = await handler(store).handle(records(*batch))
    assert [a.kind for a in result.interventions] == ["win_back"]


async def test_a_retried_burst_keeps_the_touchpoint_before_it_that_its_first_attempt_read() -> None:
    """Redis failed after the batch was applied (reading the features): the retry's read of
    the newest touchpoint would find the batch's own, the one before it pushed out."""
    bought = RecentTouchpoint(T0 - timedelta(days=120), "purchase", "p")
    batch = burst(25)
    valued = msgspec.structs.replace(
        KNOWN, purchases=3, spend=2000.0, value=2000.0, segment="model",
        recent=kept_recent(batch, bought),
    )  # fmt: skip
    store = RecordingStore(features={"cust-1": valued}, read_error=StoreUnavailable("blip"))
    store.before["cust-1"] = bought
    memory = BatchMemory()  # kept across the batch's attempts, as BatchRetries keeps it
    with pytest.raises(StoreUnavailable):
        await handler(store).handle(records(*batch), memory)
    store.read_error = None
    store.before["cust-1"] = recent_touchpoint_of(batch[-1])  # what Redis holds now
    result = await handler(store).handle(records(*batch), memory)
    assert [a.kind for a in result.interventions] == ["win_back"]


@pytest.mark.parametrize("clicks", [5, 25])
async def test_a_burst_after_an_active_month_does_not_label_the_snapshot_a_lapse(
    clicks: int,
) -> None:
    taken, active = T0 - timedelta(days=50), T0 - timedelta(days=30)
    snapshot = pending_snapshot({"experience": 0.5}, ts_ms(taken), "snap")
    between = RecentTouchpoint(active, "web_click", "mid")
    batch = burst(clicks)
    pending = msgspec.structs.replace(
        KNOWN, risk_snapshot=snapshot, risk_band="low",
        recent=kept_recent(batch, between, RecentTouchpoint(taken, "web_click", "snap")),
    )  # fmt: skip
    store = RecordingStore(features={"cust-1": pending})
    store.before["cust-1"] = between
    result = await handler(store).handle(records(*batch))
    assert [e.y for e in result.risk_examples] == [False]  # 30 days quiet: no lapse


async def test_several_moments_of_one_customer_in_a_batch_count_against_the_caps() -> None:
    from schemas import Email

    opened = [
        Email(event_id=f"open-{n}", customer_id="cust-1", ts=T0, action="opened") for n in range(4)
    ]
    store = RecordingStore(features={"cust-1": KNOWN})
    result = await handler(store).handle(records(*[encode_touchpoint(e) for e in opened]))
    email = [d for d in result.decisions if d.channel == "email"]
    assert len(email) == 4
    assert [bool(d.offers) for d in email] == [True, False, False, False]  # daily cap: 1
    assert all("suppressed:fatigue:email:day" in d.reasons for d in email[1:])


def test_a_contact_counts_against_every_cap_and_cool_down() -> None:
    from agents.contact_ledger import contacted

    made = POLICY.decide(DecisionMoment("d1", "c", "web", "e1", T0), KNOWN, NOW)
    assert made.offers
    after = contacted(KNOWN, made)
    offer = made.offers[0].offer_id
    assert after.contact.shown_today["web"] == KNOWN.contact.shown_today.get("web", 0) + 1
    assert after.contact.shown_7d["web"] == KNOWN.contact.shown_7d.get("web", 0) + 1
    assert after.contact.offers_7d[offer] == 1 and after.contact.last_shown[offer] == made.ts
    assert after.contact.last_contact["web"] == made.ts
    assert contacted(after, msgspec.structs.replace(made, offers=[])) is after  # none shown
    assert KNOWN.contact.shown_today == {}  # the features read stay as they were


async def test_touchpoints_on_another_partition_than_their_key_gives_are_counted() -> None:
    """Keyed by the customer, but partitioned otherwise (a librdkafka producer's CRC32
    default): the customer's events still spread over partitions, out of order."""
    records = [
        SourceRecord("touchpoints", 1, 0, b"cust-1", encode_touchpoint(click("p1")),
                     keyed_partition=1),
        SourceRecord("touchpoints", 2, 0, b"cust-1", encode_touchpoint(click("p2")),
                     keyed_partition=1),
        SourceRecord("touchpoints", 2, 1, b"cust-1", encode_touchpoint(click("p3"))),
    ]  # fmt: skip
    store = RecordingStore()
    result = await handler(store).handle(records)
    assert result.misrouted == 1  # the second; the third's partition is not known
    assert store.applied == ["p1", "p2", "p3"]  # applied all the same


async def test_touchpoints_not_keyed_by_their_customer_are_counted() -> None:
    """Applied all the same (dedupe is by event id), but counted: a producer that keys
    them so spreads a customer's events over partitions, and their order is lost."""
    keyed = [
        SourceRecord("touchpoints", 0, 0, b"cust-1", encode_touchpoint(click("k1"))),
        SourceRecord("touchpoints", 0, 1, b"cust-2", encode_touchpoint(click("k2"))),
        SourceRecord("touchpoints", 0, 2, None, encode_touchpoint(click("k3"))),
        SourceRecord("touchpoints", 0, 3, b"other", b"{not json"),  # invalid: not counted
    ]
    store = RecordingStore()
    result = await handler(store).handle(keyed)
    assert result.misrouted == 2
    assert store.applied == ["k1", "k2", "k3"]
    metrics = Metrics()
    metrics.batch_handled(result)
    assert metrics.registry.get_sample_value("moments_events_misrouted_total") == 2


async def test_a_decision_that_fails_after_deciding_leaves_nothing_in_the_batch() -> None:
    """A failure after the decision was taken (here its record's Kafka time, which no
    date can hold) is tried again from scratch: the attempts that failed left no decision
    in the batch, so none is sent twice, or at all once it keeps failing."""
    broken = dataclasses.replace(record(click("late-stamp")), produced_ms=1_795_424_400_000_000)
    result = await handler(RecordingStore(features={"cust-1": KNOWN})).handle([broken])
    assert result.decisions == [] and result.moments == {}
    (letter,) = result.dead_letters
    assert letter.error.startswith("decision failed") and result.results == [
        ("web_click", "failed")
    ]


async def test_a_record_naming_no_possible_customer_is_still_dead_lettered() -> None:
    """A lone surrogate is a legal JSON escape, and no customer's id (the store's keys
    hash an id's UTF-8): read as the customer a letter names, its tombstone look failed
    on every attempt, and one such record held its partition for good."""
    keys = FeatureStore(None, StoreConfig(secret=b"x" * 32))  # type: ignore[arg-type]

    class HashingStore(RecordingStore):
        async def erased(self, customer_ids: Sequence[str]) -> list[bool]:
            for customer_id in customer_ids:
                keys.pseudonym(customer_id)  # as the store names their keys
            return await super().erased(customer_ids)

    lone = b'{"type": "web_click", "customer_id": "\\ud800", "event_id": "e1"}'
    h = handler(HashingStore())
    result = await h.handle([record(lone)])
    await h.without_erased(result)
    assert len(result.dead_letters) == 1
