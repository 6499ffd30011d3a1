"""One decision per touchpoint, however many workers it reaches: the first worker to
claim a touchpoint's decision sends it; another, handed a copy of the touchpoint at the
same time (produced again to another partition, under another key), sends nothing.

A decision id is derived from its touchpoint, so two workers deciding one touchpoint at
once would send one id with two offer sets, and count the contacts and budget units of
both. A worker's fresh decisions are claimed (:meth:`feature_store.DecisionLog.own`)
before their budgets or contacts are counted; those another worker claimed first leave
the batch. Their owner is the record that brought the touchpoint: read again (a worker
stopped, a batch retried), it owns its decision still. A decision sent again as it was
recorded (:mod:`agents.touchpoint_decisions`) claims nothing: it is the one decision.
"""

from __future__ import annotations

import logging

from agents.batch_result import BatchResult
from agents.letters import SourceRecord
from feature_store import FeatureStore

log = logging.getLogger(__name__)

Claim = tuple[str, str, str]  # customer id, trigger event id, owner


def owner_of(record: SourceRecord) -> str:
    """The owner a decision on ``record``'s touchpoint is claimed for: the record's place.

    >>> owner_of(SourceRecord("touchpoints", 3, 1042, None, None))
    'touchpoints/3/1042'
    """
    return f"{record.topic}/{record.partition}/{record.offset}"


def claims_of(result: BatchResult) -> tuple[list[str], list[Claim]]:
    """The ids of ``result``'s decisions to claim, and their claims (a decision with no
    trigger or owner claims nothing)."""
    ids: list[str] = []
    claims: list[Claim] = []
    for decision in result.decisions:
        owner = result.owners.get(decision.decision_id)
        if owner is None or decision.trigger_event_id is None:
            continue
        ids.append(decision.decision_id)
        claims.append((decision.customer_id, decision.trigger_event_id, owner))
    return ids, claims


def leave_unowned(result: BatchResult, unowned: set[str]) -> None:
    """Take the decisions ``unowned`` (by id) out of ``result``: another worker sends
    them."""
    result.decisions = [d for d in result.decisions if d.decision_id not in unowned]
    for decision_id in unowned:
        result.moments.pop(decision_id, None)
        result.owners.pop(decision_id, None)


async def keep_owned(store: FeatureStore, result: BatchResult) -> int:
    """Claim ``result``'s fresh decisions; leave out those another worker owns. Returns
    how many were left out. A customer whose keys fail the claim keeps their decision
    (its record fails the same way, and says why)."""
    ids, claims = claims_of(result)
    if not claims:
        return 0
    owned = await store.decisions.own(claims, faults={})
    unowned = {i for i, mine in zip(ids, owned, strict=True) if not mine}
    if unowned:
        leave_unowned(result, unowned)
        log.info("%d decisions left to the worker that claimed them first (their "
                 "touchpoints came twice, on two partitions)", len(unowned))  # fmt: skip
    result.owners.clear()  # claimed: a retry of the batch needs no claim again
    return len(unowned)
