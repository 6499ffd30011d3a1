"""The model-snapshot part of ``moments bench``: how long a process takes to restore the
bandit's snapshot, which every worker and API process does each time the learner
publishes one (every 2 s while outcomes come), answering nothing meanwhile.

The snapshot as Moments writes it (figures packed, :mod:`agents.packed_figures`) against
the same snapshot with its figures as JSON lists (as Moments wrote them before, and
still reads them), for catalogues of 10, 50 and 200 learned offers; each restore timed
as the median of several, both in the same process.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import msgspec

from agents.bandit import LinUCBOffers
from agents.context import DIMENSION
from streams.model_snapshots import Snapshot, restore

OFFERS = (10, 50, 200)


def _trained(offers: int, seed: int = 5) -> LinUCBOffers:
    rng = random.Random(seed)
    model = LinUCBOffers(DIMENSION)
    for i in range(offers * 20):
        x = [rng.random() for _ in range(DIMENSION)]
        model.learn_one(x, f"offer-{i % offers}", float(rng.random() < 0.1), at=1.7e9)
    return model


def _as_lists(state: dict[str, Any], model: LinUCBOffers) -> dict[str, Any]:
    arms = {
        name: state["arms"][name]
        | {"a": arm.a.tolist(), "a_inv": arm.a_inv.tolist(), "b": arm.b.tolist()}
        for name, arm in model.arms.items()
    }
    return state | {"arms": arms}


def _restore_ms(payload: str, times: int) -> float:
    taken = []
    for _ in range(times):
        began = time.perf_counter()
        restore(payload)
        taken.append(time.perf_counter() - began)
    return round(statistics.median(taken) * 1000, 3)


def bench_snapshots(times: int = 7) -> dict[str, Any]:
    """Per catalogue size: bytes and restore time of each form, and their ratios."""
    report: dict[str, Any] = {"dimension": DIMENSION}
    now = datetime.now(UTC)
    for offers in OFFERS:
        model = _trained(offers)
        state = model.to_dict()
        packed, lists = (
            msgspec.json.encode(Snapshot(model=s, offsets={"0": 1}, updated_at=now)).decode()
            for s in (state, _as_lists(state, model))
        )
        if restore(lists)[0].to_dict() != state:
            raise RuntimeError("the snapshot as lists restored another model")
        packed_ms, lists_ms = _restore_ms(packed, times), _restore_ms(lists, times)
        report[f"offers_{offers}"] = {
            "packed_bytes": len(packed),
            "lists_bytes": len(lists),
            "restore_ms_packed": packed_ms,
            "restore_ms_lists": lists_ms,
            "restore_lists_over_packed": round(lists_ms / packed_ms, 2),
        }
    return report
