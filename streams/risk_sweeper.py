"""The periodic churn-risk sweep: on the leader, label the snapshots of customers who
have gone quiet (see :mod:`agents.risk_sweep`) and send them to the risk learner.

Each labelled snapshot is removed (compare-and-delete) before its example is sent, so a
touchpoint arriving meanwhile and the sweep never both label the same snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from agents.risk_sweep import sweep_label
from feature_store import FeatureStore
from schemas.risk import RiskExample

log = logging.getLogger(__name__)
Send = Callable[[list[RiskExample]], Awaitable[None]]


@dataclass
class SweepResult:
    pending: int = 0  # snapshots found
    lapsed: int = 0  # labelled positive by the clock
    not_lapsed: int = 0  # labelled negative by the clock
    settled_elsewhere: int = 0  # a touchpoint got there first


async def sweep_risks(store: FeatureStore, send: Send, now: datetime) -> SweepResult:
    """One pass over every pending snapshot, as of ``now``."""
    result = SweepResult()
    async for page in store.risks.pending():
        result.pending += len(page)
        found = [(p, e) for p in page if (e := sweep_label(p, now)) is not None]
        if not found:
            continue
        settled = await store.risks.settle([p for p, _ in found])
        examples = [e for (_, e), ok in zip(found, settled, strict=True) if ok]
        result.settled_elsewhere += len(found) - len(examples)
        if examples:
            await send(examples)
        result.lapsed += sum(e.y for e in examples)
        result.not_lapsed += sum(not e.y for e in examples)
    return result
