"""Publishing the outboxes of API processes that died (:mod:`streams.api.decision_outbox`).

Every API process looks every ``SWEEP_EVERY_S`` (give or take a second) for processes
whose lease expired, and takes the lease of each (one winner per outbox: Redis's SET NX).
The winner publishes that outbox's decisions to ``next-best-offers`` a part at a time,
each once Kafka acknowledged it removed, then the outbox and its lease: a winner that
dies in turn leaves the rest to the next. A decision whose customer was erased (their
tombstone) is removed unpublished, and so is one that was not recorded: a batch keeps its
decisions in the outbox in the round trip that records them, before Redis says which
contacts broke a cap (those decisions are not made: published, they would take the
customer past it). But a decision marked shown (its caller was answered with it before
Redis said whether it recorded it: the latency budget ran out) is published recorded or
not, its customer's tombstone alone keeping it back: refused over a cap, it was
recorded again without the caps, and a process killed before that second write
leaves it unrecorded. A decision may go out twice (its process died after
Kafka took it and before its removal, or the process was stalled, not dead, past its
lease): consumers take a decision id seen before for the same decision.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec

from feature_store.outbox import DecisionOutboxes
from streams.api.decision_outbox import why
from streams.api.publisher import KeyedPublisher

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 3.0
SWEEP_AT_ONCE = 500  # decisions read, checked and published per part
PUBLISH_WITHIN_S = 30.0  # Kafka has this long to acknowledge a part (then: next sweep)
# A sweeper holds a dead process's lease this long past each part (a wait for Kafka
# within it): one that dies leaves the outbox to the next sweeper after that.
CLAIM_S = PUBLISH_WITHIN_S + 10.0


class PublishableCheck(Protocol):
    """Whether each (customer id, decision id) was recorded, or ``shown`` (true at its
    index), and its customer is not erased (``DecisionLog.publishable``)."""

    async def __call__(
        self, pairs: Sequence[tuple[str, str]], shown: Sequence[bool], /
    ) -> list[bool]: ...


class _Owned(msgspec.Struct):
    customer_id: str


_owned = msgspec.json.Decoder(_Owned)


def customer_of(raw: bytes) -> str | None:
    """The customer a decision's JSON is about; ``None`` when it is no decision."""
    try:
        return _owned.decode(raw).customer_id
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None


class OutboxSweeper:
    """Publishes the outboxes of dead API processes, as ``sweeper`` (this process)."""

    def __init__(
        self,
        outboxes: DecisionOutboxes,
        sweeper: str,
        publishable: PublishableCheck,
        publisher: KeyedPublisher,
        topic: str,
        republished: Callable[[int], None],
    ) -> None:
        self._outboxes = outboxes
        self._sweeper = sweeper
        self._publishable = publishable
        self._publisher = publisher
        self._topic = topic
        self._republished = republished  # counts the decisions published again
        self._failing = False

    async def keep_sweeping(self) -> None:
        """Sweep every ``SWEEP_EVERY_S``, give or take a second, until cancelled; an
        outage (Redis or Kafka away) is said once, and its end."""
        while True:
            await asyncio.sleep(SWEEP_EVERY_S + random.uniform(-1.0, 1.0))
            try:
                await self.sweep()
                if self._failing:
                    log.warning("the outboxes of stopped API processes are swept again")
                self._failing = False
            except Exception as exc:  # Redis or Kafka away: the next sweep tries again
                if not self._failing:
                    log.warning("could not sweep the outboxes of stopped API processes: %s",
                                why(exc))  # fmt: skip
                self._failing = True

    async def sweep(self) -> int:
        """Publish the outbox of every process whose lease expired, if this one wins it;
        how many decisions were published."""
        others = [p for p in await self._outboxes.processes() if p != self._sweeper]
        published = 0
        for process in await self._outboxes.claim(others, self._sweeper, _lease_ms()):
            published += await self._sweep(process)
        return published

    async def _sweep(self, process: str) -> int:
        """Publish the outbox of ``process`` (its lease ours), part by part."""
        cursor, published, withheld, skipped = 0, 0, 0, 0
        while True:
            cursor, entries = await self._outboxes.scan(process, cursor, SWEEP_AT_ONCE)
            if entries:
                ids = [d for d, _ in entries]
                marked = await self._outboxes.are_shown(process, ids)
                owners = [(d, raw, customer_of(raw), shown)
                          for (d, raw), shown in zip(entries, marked, strict=True)]  # fmt: skip
                named = [(d, raw, c, shown) for d, raw, c, shown in owners if c is not None]
                skipped += len(owners) - len(named)
                pairs = [(c, d) for d, _, c, _ in named]
                kept = await self._publishable(pairs, [s for *_, s in named]) if named else []
                withheld += len(named) - sum(kept)
                chosen = zip(named, kept, strict=True)
                records = [(c.encode(), raw) for (_, raw, c, _), ok in chosen if ok]
                if records:
                    delivery = self._publisher.publish(self._topic, records, linger=False)
                    await asyncio.wait_for(delivery, PUBLISH_WITHIN_S)
                    self._republished(len(records))
                    published += len(records)
                await self._outboxes.release(
                    process, ids, [d for d, shown in zip(ids, marked, strict=True) if shown]
                )
                if not await self._outboxes.keep_claim(process, self._sweeper, _lease_ms()):
                    log.warning("an outbox being published is no longer this process's to "
                                "publish (its process came back, or the claim expired); %d "
                                "decisions published from it", published)  # fmt: skip
                    return published
            if cursor == 0:
                break
        # only while the lease is still ours, and the outbox empty: a process that came
        # back meanwhile keeps its lease, its outbox and its place in the registry
        await self._outboxes.retire(process, self._sweeper)
        if skipped:
            log.warning("%d entries of an outbox were no decisions; removed", skipped)
        if published or withheld:
            log.warning("published %d decisions from the outbox of an API process that "
                        "stopped (removed %d not recorded or of erased customers)",
                        published, withheld)  # fmt: skip
        return published


def _lease_ms() -> int:
    return int(CLAIM_S * 1000)
