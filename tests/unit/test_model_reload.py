"""Workers reload the published model snapshots every few seconds; one they cannot
restore (written by a newer version during a rolling upgrade, say) leaves them scoring
with the model they hold, counted and logged once, instead of crashing every worker.

The store here only holds snapshots, as the workers read them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from agents.bandit import LinUCBOffers
from agents.learned_policy import DIMENSION, ModelHolder
from agents.risk import ChurnRisk
from agents.risk_watch import RiskHolder
from feature_store import StoreUnavailable
from streams.metrics import Metrics
from streams.model_reload import ModelReloads
from streams.model_snapshots import MODEL, RISK, Snapshot


@dataclass
class Snapshots:
    """Published snapshots by model name: (version, payload), or an error to raise."""

    held: dict[str, tuple[int, str] | Exception] = field(default_factory=dict)

    def _found(self, name: str) -> tuple[int, str] | None:
        found = self.held.get(name)
        if isinstance(found, Exception):
            raise found
        return found

    async def version(self, name: str) -> int:
        found = self._found(name)
        return 0 if found is None else found[0]

    async def load(self, name: str) -> tuple[int, str] | None:
        return self._found(name)


def snapshot(model: dict[str, object]) -> str:
    payload = Snapshot(model=model, offsets={}, updated_at=datetime(2026, 11, 23, tzinfo=UTC))
    return msgspec.json.encode(payload).decode()


def worker(snapshots: Snapshots) -> Any:
    return SimpleNamespace(store=SimpleNamespace(models=snapshots), holder=ModelHolder(),
                           risk=RiskHolder(), metrics=Metrics())  # fmt: skip


def retries(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(
        "moments_batch_retries_total", {"reason": f"model_reload:{name}"}
    )
    return value or 0.0


async def test_a_snapshot_that_cannot_be_restored_leaves_the_held_model_scoring(
    caplog: pytest.LogCaptureFixture,
) -> None:
    newer = '{"model": {"format": 9, "arms": "kept elsewhere"}, "offsets": {}}'
    snapshots = Snapshots({MODEL: (7, newer), RISK: (3, snapshot(ChurnRisk().to_dict()))})
    moments = worker(snapshots)
    held = moments.holder.model
    reloads = ModelReloads(moments)
    with caplog.at_level(logging.ERROR, logger="streams.model_reload"):
        for _ in range(3):  # three rounds of the timer
            await reloads.check()
    assert moments.holder.model is held and moments.holder.version == 0
    assert moments.risk.version == 3  # the other model is reloaded all the same
    assert retries(moments.metrics, MODEL) == 3 and retries(moments.metrics, RISK) == 0
    logged = [r for r in caplog.records if "nbo model snapshot" in r.getMessage()]
    assert len(logged) == 1 and "kept elsewhere" not in logged[0].getMessage()

    snapshots.held[MODEL] = (8, snapshot(LinUCBOffers(DIMENSION).to_dict()))  # a readable one again
    await reloads.check()
    assert moments.holder.version == 8 and reloads.refused == {}


async def test_a_store_that_is_unavailable_is_tried_again_next_round() -> None:
    snapshots = Snapshots({MODEL: StoreUnavailable("TimeoutError"), RISK: (2, snapshot(
        ChurnRisk().to_dict()))})  # fmt: skip
    moments = worker(snapshots)
    await ModelReloads(moments).check()
    assert moments.holder.version == 0 and moments.risk.version == 2
    assert retries(moments.metrics, MODEL) == 0
