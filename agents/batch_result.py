"""What handling a batch of touchpoints gives back: decisions and alerts to send, churn-risk
bookkeeping, dead letters, and each record's result."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

from agents.letter_customers import customers_named
from agents.letters import SourceRecord
from agents.moments import DecisionMoment
from agents.offer_budget import BudgetLedger, offers_spent
from feature_store.facts import Fact
from feature_store.features import RecentTouchpoint
from feature_store.records import BudgetSpend
from schemas import Intervention, NextBestOffer, OfferCatalogue, TouchpointEvent
from schemas.risk import RiskExample

# A touchpoint as a batch tells it from others: (customer id, event id). The store
# dedupes each customer's event ids on their own, so two customers' events may share one.
EventKey = tuple[str, str]


def event_key(event: TouchpointEvent) -> EventKey:
    """``event``'s key in a batch: whose it is, and its id."""
    return (event.customer_id, event.event_id)


class BatchMemory(Counter[EventKey]):
    """What a batch's attempts keep from one to the next: the events they applied, by
    :data:`EventKey` (counted: a retry finds them applied, yet they are not duplicates), and each
    customer's newest touchpoint before the batch, as the first attempt to read it found
    (a retry's read finds the same: the store kept it beside the customer's first
    touchpoint of the batch when it applied it)."""

    def __init__(self) -> None:
        super().__init__()
        self.newest_before: dict[str, RecentTouchpoint | None] = {}


@dataclass(frozen=True, slots=True)
class FailedRecord:
    """A record to dead-letter, with the reason (:mod:`streams.dead_letters` reads the
    letters back)."""

    record: SourceRecord
    error: str
    # the index of its record's result in the batch's results (None: not there), which
    # says "erased" when the letter is left out for its customer's erasure
    result: int | None = None

    @property
    def customers(self) -> frozenset[str]:
        """The customers its record names (:mod:`agents.letter_customers`)."""
        return customers_named(self.record.key, self.record.value)


@dataclass(slots=True)
class BatchResult:
    """What one batch gave; the worker sends it, then confirms it to the store."""

    decisions: list[NextBestOffer] = field(default_factory=list)
    interventions: list[Intervention] = field(default_factory=list)
    held_out: list[Intervention] = field(default_factory=list)  # the hold-out group's
    too_late: list[Intervention] = field(default_factory=list)  # not raised: too late
    # the channels of moments not decided: their touchpoints were too old (moment_passed)
    moments_passed: list[str] = field(default_factory=list)
    risk_examples: list[RiskExample] = field(default_factory=list)
    example_customers: dict[str, str] = field(default_factory=dict)  # example id -> customer
    risk_facts: list[Fact] = field(default_factory=list)
    dead_letters: list[FailedRecord] = field(default_factory=list)
    # (event type, result) per record; result is ok, duplicate, invalid, erased, expired
    # or failed (in a batch set aside whole, a record that cannot be decoded is counted
    # under the type it claims, as when it is refused as invalid: "unknown" if none)
    results: list[tuple[str, str]] = field(default_factory=list)
    budgets: BudgetLedger | None = None  # the day's offer budgets, after the batch
    catalogue: OfferCatalogue | None = None  # the catalogue the batch was decided with
    moments: dict[str, DecisionMoment] = field(default_factory=dict)  # decision id -> its moment
    # decision id -> the owner it is claimed for (agents.decision_owners), while unclaimed
    owners: dict[str, str] = field(default_factory=dict)
    # customer -> their own timezone as the features decided on told it (None: not told),
    # whose days their contacts' caps count (agents.contact_ceilings)
    timezones: dict[str, str | None] = field(default_factory=dict)
    # customer -> the records of their touchpoints the batch decided on, with the index
    # of each one's result (dead-lettered when their decisions cannot be recorded)
    touchpoints_of: dict[str, list[tuple[SourceRecord, int]]] = field(default_factory=dict)
    # what Kafka took of the batch's outputs (decisions, alerts, examples, letters), by
    # identity: an attempt after a failed delivery sends only the others
    delivered: dict[int, object] = field(default_factory=dict)
    # decoded touchpoints whose Kafka key is not their customer id (none, or another's):
    # a producer keying them so spreads a customer's events over partitions, out of order
    misrouted: int = 0
    # letters the dead-letter topic refused whole and reduced: given up (logged, counted)
    letters_dropped: int = 0

    def set_aside(self, record: SourceRecord, reason: str, index: int) -> None:
        """Dead-letter ``record`` for ``reason``, its result (at ``index``) counted as
        failed; once (a record set aside already keeps its first letter).

        >>> result = BatchResult(results=[("web_click", "ok")])
        >>> record = None  # a SourceRecord
        >>> result.set_aside(record, "decision failed: ValueError", 0)  # type: ignore[arg-type]
        >>> result.set_aside(record, "decision read failed: X", 0)  # type: ignore[arg-type]
        >>> result.results, [letter.error for letter in result.dead_letters]
        ([('web_click', 'failed')], ['decision failed: ValueError'])
        """
        if all(letter.record is not record for letter in self.dead_letters):
            self.dead_letters.append(FailedRecord(record, reason, index))
        self.results[index] = (self.results[index][0], "failed")

    def snapshot(self) -> BatchResult:
        """What the batch holds so far, as :meth:`restore` puts it back: its lists and
        maps copied (and the budgets ledger), their items shared (none is changed)."""
        saved = replace(self)
        saved.restore(self)  # copied
        return saved

    def restore(self, saved: BatchResult) -> None:
        """Put back what :meth:`snapshot` saved: whatever was added or changed since
        (a failed attempt to decide some touchpoints) is gone.

        >>> result = BatchResult(results=[("web_click", "ok")])
        >>> saved = result.snapshot()
        >>> result.results[0] = ("web_click", "failed")
        >>> result.misrouted += 1
        >>> result.restore(saved)
        >>> result.results, result.misrouted
        ([('web_click', 'ok')], 0)
        """
        for f in fields(self):
            setattr(self, f.name, _copied(getattr(saved, f.name)))

    def spending(self, decisions: Iterable[NextBestOffer]) -> list[BudgetSpend]:
        """What ``decisions`` of this batch spend of the daily offer budgets it was
        decided with (nothing when it had none)."""
        if self.budgets is None:
            return []
        return offers_spent(decisions, self.budgets.limits, self.budgets.timezone)

    def delivered_part(self) -> BatchResult:
        """The decisions and alerts Kafka took (``delivered``), to confirm when the batch
        is given up after some went out: a re-drive of its letters must not send them
        again. The churn-risk facts of customers with an alert not taken are left out:
        the band such an alert crossed is not recorded, so it is crossed again."""
        taken = self.delivered
        interventions = [i for i in self.interventions if id(i) in taken]
        held_out = [i for i in self.held_out if id(i) in taken]
        missed = {i.customer_id for i in (*self.interventions, *self.held_out)
                  if id(i) not in taken}  # fmt: skip
        return BatchResult(
            decisions=[d for d in self.decisions if id(d) in taken],
            interventions=interventions,
            held_out=held_out,
            risk_facts=[f for f in self.risk_facts if f.customer_id not in missed],
            budgets=self.budgets,
            catalogue=self.catalogue,
            delivered=dict(taken),
        )

    def leave_out(self, customers: set[str]) -> list[NextBestOffer]:
        """Leave out the decisions, alerts and churn-risk examples of ``customers``
        (erased since the batch read their features): nothing more is sent about them.
        Returns the decisions left out (what they spent of the budgets goes back)."""
        if not customers:
            return []
        left = [d for d in self.decisions if d.customer_id in customers]
        self.decisions = [d for d in self.decisions if d.customer_id not in customers]
        self.interventions = [i for i in self.interventions if i.customer_id not in customers]
        self.held_out = [i for i in self.held_out if i.customer_id not in customers]
        examples = self.example_customers
        self.risk_examples = [
            e for e in self.risk_examples if examples.get(e.example_id) not in customers
        ]
        return left

    def leave_out_letters(self, named: Sequence[frozenset[str]], customers: set[str]) -> None:
        """Leave out the dead letters naming any of ``customers`` (erased: nothing naming
        them is written after their erasure), their records' results said ``erased``;
        ``named``: the customers each letter names, in order. A letter Kafka took already
        stays: it was written."""
        if not customers:
            return
        kept = []
        for failed, names in zip(self.dead_letters, named, strict=True):
            if id(failed) in self.delivered or names.isdisjoint(customers):
                kept.append(failed)
            elif failed.result is not None and failed.result < len(self.results):
                self.results[failed.result] = (self.results[failed.result][0], "erased")
        self.dead_letters = kept


def _copied(value: object) -> object:
    """A copy of one of :class:`BatchResult`'s fields, as :meth:`~BatchResult.snapshot`
    keeps it."""
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, BudgetLedger):
        return replace(value, spent=dict(value.spent))
    return value


def failure_reason(stage: str, exc: BaseException) -> str:
    """The reason a dead letter gives for a record whose handling kept failing.

    >>> failure_reason("decision", ValueError("no offer"))
    'decision failed: ValueError: no offer'
    """
    return f"{stage} failed: {type(exc).__name__}: {exc}"


def fault_kinds(faults: Mapping[str, Exception]) -> str:
    """The kinds of errors customers' keys failed with, for a log line (by their kind
    alone: a message may quote what it failed on).

    >>> fault_kinds({"c1": KeyError("c1"), "c2": ValueError(), "c3": KeyError()})
    'KeyError, ValueError'
    """
    return ", ".join(sorted({type(e).__name__ for e in faults.values()}))
