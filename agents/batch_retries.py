"""How the touchpoint agent sees a batch through: handle it (apply, decide), send what it
decided, confirm it (record the decisions), with retries.

A batch is decided once. When sending or confirming fails, the same decisions are sent
and confirmed again: deciding again would read features, budgets and contact history
that the first attempt may have changed already (a voucher's last unit counted, and then
a decision made without it under the same id). While Redis or Kafka is unavailable the
batch waits and retries without end; any other failure counts, and after
``max_attempts`` the batch is given up (dead-lettered).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agents.touchpoint_handler import BatchResult, SourceRecord
from feature_store import StoreUnavailable

log = logging.getLogger(__name__)

OUTAGES = (TimeoutError, StoreUnavailable, OSError)
KAFKA_MODULES = ("aiokafka", "kafka", "faust")  # their errors are outages too


@dataclass(frozen=True, slots=True)
class BatchRetries:
    handle: Callable[[list[SourceRecord]], Awaitable[BatchResult]]
    emit: Callable[[BatchResult], Awaitable[None]]
    confirm: Callable[[BatchResult], Awaitable[None]]
    give_up: Callable[[list[SourceRecord], Exception], Awaitable[None]]
    handled: Callable[[BatchResult], None]
    retrying: Callable[[str], None]
    max_attempts: int = 3
    backoff_max: float = 5.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def run(self, records: list[SourceRecord]) -> None:
        delay = 0.1
        failures = 0
        result: BatchResult | None = None
        while True:
            try:
                if result is None:
                    result = await self.handle(records)
                await self.emit(result)
                await self.confirm(result)
                self.handled(result)
                return
            except OUTAGES as exc:
                reason = type(exc).__name__
            except Exception as exc:
                if type(exc).__module__.split(".")[0] not in KAFKA_MODULES:
                    failures += 1
                    log.exception("batch of %d events failed (attempt %d)", len(records), failures)
                    if failures >= self.max_attempts:
                        await self.give_up(records, exc)
                        return
                reason = type(exc).__name__
            self.retrying(reason)
            log.warning(
                "batch of %d events not done (%s); retrying in %.1fs", len(records), reason, delay
            )
            await self.sleep(delay)
            delay = min(delay * 2, self.backoff_max)
