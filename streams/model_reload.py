"""Every worker and API process scores with the newest published model snapshots: it
checks for them every two seconds. A snapshot that cannot be read now (Redis
unavailable) is tried again next round; one that cannot be restored (say, written by a
newer version during a rolling upgrade) is counted as a retry and logged once per kind of
error, and the process scores on with the model it holds."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol

from agents.learned_policy import ModelHolder
from agents.risk_watch import RiskHolder
from feature_store import FeatureStore, StoreUnavailable
from streams.learner import MODEL, RISK, reload_if_newer, reload_risk_if_newer
from streams.metrics import Metrics

log = logging.getLogger(__name__)


class HeldModels(Protocol):
    """Where a process keeps the models it scores with."""

    @property
    def store(self) -> FeatureStore: ...

    @property
    def holder(self) -> ModelHolder: ...

    @property
    def risk(self) -> RiskHolder: ...

    @property
    def metrics(self) -> Metrics: ...


@dataclass
class ModelReloads:
    """Reloads of one process's models, remembering the errors already logged."""

    held: HeldModels
    refused: dict[str, str] = field(default_factory=dict)  # model -> error type logged

    async def check(self) -> None:
        """Swap in the newest published snapshots of the offer and churn-risk models."""
        held = self.held
        await self._reload(MODEL, reload_if_newer(held.store, held.holder))
        await self._reload(RISK, reload_risk_if_newer(held.store, held.risk))
        held.metrics.model_version.labels(MODEL).set(held.holder.version)
        held.metrics.model_version.labels(RISK).set(held.risk.version)

    async def _reload(self, name: str, reloading: Awaitable[bool]) -> None:
        try:
            await reloading
        except StoreUnavailable:
            return
        except Exception as exc:  # the snapshot, not this process: keep scoring
            self.held.metrics.retrying(f"model_reload:{name}")
            error = type(exc).__name__  # not its text: a snapshot's content stays out of logs
            if self.refused.get(name) != error:
                self.refused[name] = error
                log.error("the %s model snapshot could not be loaded (%s); scoring on with the "
                          "one held", name, error)  # fmt: skip
            return
        self.refused.pop(name, None)
