"""The models' published snapshots: what one holds (the model, and how far its topic was
read), and how a process restores one and takes up a newer one. Snapshots are JSON
(they cannot run code when loaded) and versioned; the learners publish them
(:mod:`streams.learner`), and every worker and API process reloads the newest
(:mod:`streams.model_reload`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from agents.bandit import LinUCBOffers
from agents.context import DIMENSION
from agents.learned_policy import ModelHolder
from agents.risk_scorer import RiskScorer
from agents.risk_watch import RiskHolder
from feature_store import FeatureStore

MODEL = "nbo"  # the next-best-offer bandit
RISK = "risk"  # the churn-risk classifier


class Snapshot(msgspec.Struct, omit_defaults=True):
    model: dict[str, Any]
    offsets: dict[str, int]  # partition -> next offset to read
    updated_at: datetime
    # partition -> the position the model had learned up to, where the learner reads its
    # partition again below it (the log lost its tail): see SnapshotLearner._learned_before
    floors: dict[str, int] = msgspec.field(default_factory=dict)


def restore(payload: str) -> tuple[LinUCBOffers, dict[int, int]]:
    snap = msgspec.json.decode(payload, type=Snapshot)
    model = LinUCBOffers.from_dict(snap.model).widened(DIMENSION)  # features added since
    return model, {int(p): o for p, o in snap.offsets.items()}


def risk_state(payload: str) -> dict[str, Any]:
    """The churn-risk model a published snapshot holds, as plain data."""
    return msgspec.json.decode(payload, type=Snapshot).model


def restore_risk(payload: str) -> RiskScorer:
    """The churn-risk model a published snapshot holds, to score with."""
    return RiskScorer.from_state(risk_state(payload))


async def reload_if_newer(store: FeatureStore, holder: ModelHolder) -> bool:
    """Swap in the published bandit snapshot when it is not the one held (a newer one,
    or a series started again after Redis lost its data); True when it changed."""
    held = holder.version
    found = await _other_snapshot(store, MODEL, held)
    if found is None or holder.version != held:  # this process's learner published meanwhile
        return False
    model, _ = restore(found[1])
    holder.model, holder.version = model, found[0]
    return True


async def reload_risk_if_newer(store: FeatureStore, holder: RiskHolder) -> bool:
    """As :func:`reload_if_newer`, for the churn-risk model."""
    held = holder.version
    found = await _other_snapshot(store, RISK, held)
    if found is None or holder.version != held:  # this process's learner published meanwhile
        return False
    holder.model, holder.version = restore_risk(found[1]), found[0]
    return True


async def _other_snapshot(store: FeatureStore, name: str, held: int) -> tuple[int, str] | None:
    """The stored snapshot of ``name`` if its version is not ``held`` (one cheap read
    when it is)."""
    if await store.models.version(name) == held:
        return None
    found = await store.models.load(name)
    return None if found is None or found[0] == held else found
