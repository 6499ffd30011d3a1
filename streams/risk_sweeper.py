"""The periodic churn-risk sweep: on the leader, label the snapshots of customers who
have gone quiet (see :mod:`agents.risk_sweep`) and send them to the risk learner.

Each labelled snapshot's example is on Kafka before the snapshot is removed
(compare-and-delete), so a failed send loses no label: the next sweep finds the snapshot
again and sends the same example, with the same id, which the learner learns once. A
touchpoint arriving meanwhile labels the snapshot with that id too.

A round that Redis or Kafka fails is skipped (logged and counted); the next one does it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from agents.batch_retries import KAFKA_MODULES
from agents.risk_sweep import sweep_label
from feature_store import FeatureStore, StoreUnavailable
from schemas.risk import RiskExample

log = logging.getLogger(__name__)
SEND_MODULES = (*KAFKA_MODULES, "mode")  # where a failed send's error comes from
Send = Callable[[list[RiskExample]], Awaitable[None]]


@dataclass
class SweepResult:
    pending: int = 0  # snapshots found
    lapsed: int = 0  # labelled positive by the clock
    not_lapsed: int = 0  # labelled negative by the clock
    settled_elsewhere: int = 0  # a touchpoint got there first
    erased: int = 0  # the customer was erased after the page was read: nothing sent
    unreadable: int = (
        0  # customers whose keys could not be read so (left for their next touchpoint)
    )


async def sweep_risks(store: FeatureStore, send: Send, now: datetime) -> SweepResult:
    """One pass over every pending snapshot, as of ``now``."""
    result = SweepResult()

    def unreadable(count: int) -> None:
        result.unreadable += count

    async for page in store.risks.pending(unreadable=unreadable):
        result.pending += len(page)
        found = [(p, e) for p in page if (e := sweep_label(p, now)) is not None]
        if not found:
            continue
        # an erasure since the page was read: their features are not sent after it
        gone = await store.risks.erased([p for p, _ in found])
        result.erased += sum(gone)
        found = [f for f, erased in zip(found, gone, strict=True) if not erased]
        if not found:
            continue
        await send([e for _, e in found])  # delivered, before the snapshots go
        settled = await store.risks.settle([p for p, _ in found])
        examples = [e for (_, e), ok in zip(found, settled, strict=True) if ok]
        result.settled_elsewhere += len(found) - len(examples)
        result.lapsed += sum(e.y for e in examples)
        result.not_lapsed += sum(not e.y for e in examples)
    return result


async def sweep_round(
    store: FeatureStore, send: Send, now: datetime, skipped: Callable[[str], None]
) -> SweepResult | None:
    """One sweep; None when Redis or Kafka failed it (``skipped`` is told why: the
    error's type name), so that the timer running it never stops the worker."""
    try:
        return await sweep_risks(store, send, now)
    except StoreUnavailable as exc:
        log.warning("the churn-risk sweep could not reach Redis (%s); next time", exc)
        reason = StoreUnavailable.__name__  # a reply lost (RepliesUnknown) is one too
    except Exception as exc:
        if type(exc).__module__.split(".")[0] in SEND_MODULES:
            log.warning("the churn-risk sweep could not send its examples (%r); next time", exc)
        else:
            log.exception("the churn-risk sweep failed; next time")
        reason = type(exc).__name__
    skipped(reason)
    return None
