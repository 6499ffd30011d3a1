"""Every worker and API process scores with the newest published model snapshots: it
checks for them as it starts and every two seconds after. It decides nothing before that
first check has finished (:meth:`ModelReloads.first_tried`), but waits for it
:data:`FIRST_LOAD_WAIT_S` at most, so that a Redis that hangs cannot hold decisions up;
it then decides with the models it holds until a check succeeds. A snapshot that cannot
be read now (Redis unavailable) is tried again next round; one that cannot be restored
(say, written by a newer version during a rolling upgrade) is counted as a retry and
logged once per kind of error, and the process scores on with the model it holds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol

from agents.learned_policy import ModelHolder
from agents.risk_watch import RiskHolder
from feature_store import FeatureStore, StoreUnavailable
from streams.metrics import Metrics
from streams.model_snapshots import MODEL, RISK, reload_if_newer, reload_risk_if_newer

log = logging.getLogger(__name__)
RELOAD_EVERY_S = 2.0
FIRST_LOAD_WAIT_S = 5.0  # the longest a process waits for its first check before deciding


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
    # set once the first check has finished, whatever it found (or could not read)
    tried: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    async def check(self) -> None:
        """Swap in the newest published snapshots of the offer and churn-risk models."""
        held = self.held
        try:
            await self._reload(MODEL, reload_if_newer(held.store, held.holder))
            await self._reload(RISK, reload_risk_if_newer(held.store, held.risk))
            held.metrics.model_version.labels(MODEL).set(held.holder.version)
            held.metrics.model_version.labels(RISK).set(held.risk.version)
        finally:
            self.tried.set()

    async def keep_fresh(self, every_s: float = RELOAD_EVERY_S) -> None:
        """Check at once, then every ``every_s`` seconds, for as long as the process runs."""
        while True:
            await self.check()
            await asyncio.sleep(every_s)

    async def first_tried(self, within_s: float | None = None) -> bool:
        """Wait until the first check has finished, ``within_s`` seconds at most
        (:data:`FIRST_LOAD_WAIT_S`); whether it has. A process calls this before its first
        decision, so that it does not decide with the empty models it started with while
        snapshots are published."""
        within_s = FIRST_LOAD_WAIT_S if within_s is None else within_s
        if not self.tried.is_set():
            try:
                await asyncio.wait_for(self.tried.wait(), within_s)
            except TimeoutError:
                log.warning("the model snapshots could not be loaded within %g s; deciding "
                            "with the models held until they are", within_s)  # fmt: skip
                return False
        return True

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
