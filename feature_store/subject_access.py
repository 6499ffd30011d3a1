"""Everything Moments keeps in Redis about one customer, as stored, for the customer's
right of access: the profile, rolling windows, contact history, recent touchpoints, the
withdrawals kept apart, the events applied, the outcomes claimed, the ids of the decisions
listed and every decision whose context is still kept.

Two round trips: the customer's keys, then the decisions' contexts. Nothing is
interpreted here; :class:`CustomerRecord` keeps the stored values as they are, but for
the customer's id, put back in each context (Redis keeps them without it). A key Redis
cannot serve as it should be (one of another type, a tool's or a bug's) does not fail
the others: the part of the export it holds is named in ``unreadable`` and left empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from feature_store.connection import StoreConnection, hash_reply
from feature_store.decision_contexts import restored
from feature_store.keys import CustomerKeys

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """One customer's data in Redis. An erased customer has only ``erased_at_ms``: the
    tombstone that keeps them erased, under the keyed hash of their id, and beside it the
    names of the withdrawals their erasure kept (``withdrawals_kept``)."""

    subject: str  # the keyed hash their keys are named by
    erased_at_ms: int | None
    profile: dict[str, str]  # lifetime figures, consent, the latest facts
    windows: dict[str, str]  # activity per time bucket
    contacts: dict[str, str]  # what Moments did to them, per time bucket
    recent: list[str]  # the newest touchpoints, "<ms>|<type>|<event id>", newest first
    applied: list[tuple[str, int]]  # ids of facts applied (and decided), with when (ms)
    outcomes: dict[str, str]  # "<decision id>:<offer id>" claimed for learning: its outcomes
    decisions: list[str]  # the kept decisions' contexts (JSON, with the id), newest first
    optouts: dict[str, str] = field(default_factory=dict)  # withdrawals, kept without expiry
    outcome_times: dict[str, int] = field(default_factory=dict)  # when each was claimed (ms)
    # every decision id their lists hold, with its time (ms; when stored, for one only
    # the index holds), newest first: kept longer than contexts, which expire sooner
    decision_ids: list[tuple[str, int]] = field(default_factory=list)
    # the withdrawals an erasure kept beside the tombstone (their names), sorted
    withdrawals_kept: list[str] = field(default_factory=list)
    # the parts of the export (its field names, ``stored.<hash>`` for the stored values)
    # whose key Redis could not serve as it should be: left empty, in the export's order
    unreadable: list[str] = field(default_factory=list)

    @property
    def erased(self) -> bool:
        """Whether a tombstone is there (one holding no time is still one)."""
        return self.erased_at_ms is not None or "erased_at" in self.unreadable

    @property
    def holds_anything(self) -> bool:
        return self.erased or bool(self.unreadable) or any(
            (self.profile, self.windows, self.contacts, self.recent, self.applied,
             self.outcomes, self.decisions, self.optouts, self.decision_ids)
        )  # fmt: skip


# each reply of the first round trip: the part of the export its key holds
PARTS = ("erased_at", "stored.profile", "stored.windows", "stored.contacts", "outcomes",
         "stored.optouts", "stored.recent_touchpoints", "events_applied", "decision_ids",
         "decision_ids", "outcomes", "withdrawals_kept")  # fmt: skip


class _Reader:
    """The replies of one customer's keys, each read apart: one that is an error or
    cannot be read as its part names that part unreadable and reads as empty."""

    def __init__(self) -> None:
        self.unreadable: list[str] = []

    def read(self, part: str, reply: Any, convert: Callable[[Any], T], empty: T) -> T:
        if not isinstance(reply, Exception):
            try:
                return convert(reply)
            except (ValueError, TypeError, OverflowError):
                pass
        self.missing(part)
        return empty

    def missing(self, part: str) -> None:
        """Name ``part`` unreadable (once)."""
        if part not in self.unreadable:
            self.unreadable.append(part)

    def time(self, part: str, reply: Any) -> int | None:
        return self.read(part, reply, lambda t: None if t is None else int(t), None)

    def hash(self, part: str, reply: Any) -> dict[str, str]:
        empty: dict[str, str] = {}
        return self.read(part, reply, hash_reply, empty)

    def strings(self, part: str, reply: Any) -> list[str]:
        empty: list[str] = []
        return self.read(part, reply, lambda names: [str(n) for n in names], empty)

    def scored(self, part: str, reply: Any) -> list[tuple[str, int]]:
        empty: list[tuple[str, int]] = []
        return self.read(part, reply, lambda rs: [(str(m), int(s)) for m, s in rs], empty)


async def customer_record(
    conn: StoreConnection, keys: CustomerKeys, customer_id: str
) -> CustomerRecord:
    k = keys.for_customer(customer_id)
    pipe = conn.pipeline()
    pipe.get(k.tombstone)
    for hashed in (k.profile, k.windows, k.contacts, k.outcomes, k.optouts):
        pipe.hgetall(hashed)
    pipe.zrange(k.recent, 0, -1, desc=True)
    pipe.zrange(k.seen, 0, -1, withscores=True)
    pipe.zrange(k.decisions, 0, -1, desc=True, withscores=True)  # by decision time
    pipe.zrange(k.decision_index, 0, -1, desc=True, withscores=True)  # by when stored
    pipe.zrange(k.outcome_times, 0, -1, withscores=True)
    pipe.smembers(k.suppression)
    replies = await conn.execute("export", pipe, raise_on_error=False)
    r = _Reader()
    tomb = r.time(PARTS[0], replies[0])
    profile, windows, contacts, outcomes, optouts = (r.hash(PARTS[i], replies[i])
                                                     for i in range(1, 6))  # fmt: skip
    recent = r.strings(PARTS[6], replies[6])
    seen, newest, indexed, claimed_at = (r.scored(PARTS[i], replies[i]) for i in range(7, 11))
    kept = sorted(r.strings(PARTS[11], replies[11]))
    contexts: list[str] = []
    listed = dict(reversed(indexed))
    listed.update(newest)  # decided at
    ids = list(dict.fromkeys([*(m for m, _ in newest), *(m for m, _ in indexed)]))
    if ids:
        pipe = conn.pipeline()
        for decision_id in ids:
            pipe.get(k.context(decision_id))
        found = await conn.execute("export", pipe, raise_on_error=False)
        contexts = [restored(str(c), customer_id) for c in found
                    if c is not None and not isinstance(c, Exception)]  # fmt: skip
        if any(isinstance(c, Exception) for c in found):  # a context of another type
            r.missing("decisions")
    return CustomerRecord(
        subject=k.tag,
        erased_at_ms=tomb,
        profile=profile,
        windows=windows,
        contacts=contacts,
        recent=recent,
        applied=seen,
        outcomes=outcomes,
        decisions=contexts,
        optouts=optouts,
        outcome_times=dict(claimed_at),
        decision_ids=sorted(listed.items(), key=lambda item: (-item[1], item[0])),
        withdrawals_kept=kept,
        unreadable=r.unreadable,
    )
