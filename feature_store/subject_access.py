"""Everything Moments keeps in Redis about one customer, as stored, for the customer's
right of access: the profile, rolling windows, contact history, recent touchpoints, the
withdrawals kept apart, the events applied, the outcomes claimed, the ids of the decisions
listed and every decision whose context is still kept.

Two round trips: the customer's keys, then the decisions' contexts. Nothing is
interpreted here; :class:`CustomerRecord` keeps the stored values as they are, but for
the customer's id, put back in each context (Redis keeps them without it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from feature_store.connection import StoreConnection, hash_reply
from feature_store.decision_contexts import restored
from feature_store.keys import CustomerKeys


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

    @property
    def holds_anything(self) -> bool:
        return self.erased_at_ms is not None or any(
            (self.profile, self.windows, self.contacts, self.recent, self.applied,
             self.outcomes, self.decisions, self.optouts, self.decision_ids)
        )  # fmt: skip


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
    (
        tomb,
        profile,
        windows,
        contacts,
        outcomes,
        optouts,
        recent,
        seen,
        newest,
        indexed,
        claimed_at,
        kept,
    ) = await conn.execute("export", pipe)
    contexts: list[str] = []
    listed = {str(member): int(score) for member, score in reversed(indexed)}
    listed.update((str(member), int(score)) for member, score in newest)  # decided at
    ids = list(dict.fromkeys([*(str(m) for m, _ in newest), *(str(m) for m, _ in indexed)]))
    if ids:
        pipe = conn.pipeline()
        for decision_id in ids:
            pipe.get(k.context(decision_id))
        found = await conn.execute("export", pipe)
        contexts = [restored(str(c), customer_id) for c in found if c is not None]
    return CustomerRecord(
        subject=k.tag,
        erased_at_ms=None if tomb is None else int(tomb),
        profile=hash_reply(profile),
        windows=hash_reply(windows),
        contacts=hash_reply(contacts),
        recent=[str(entry) for entry in recent],
        applied=[(str(member), int(score)) for member, score in seen],
        outcomes=hash_reply(outcomes),
        decisions=contexts,
        optouts=hash_reply(optouts),
        outcome_times={str(member): int(score) for member, score in claimed_at},
        decision_ids=sorted(listed.items(), key=lambda item: (-item[1], item[0])),
        withdrawals_kept=sorted(str(name) for name in kept),
    )
