"""``moments rebuild`` holds an erased customer's records out by their erasure's block,
not by their tombstone alone (plain data: a stand-in store keeps the tombstones)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import msgspec

from feature_store import ApplyStatus
from feature_store.facts import DAY_MS
from feature_store.records import ErasureReceipt
from schemas import CustomerErasure, WebClick, encode_erasure
from streams.rebuild_replay import Replay
from streams.settings import Settings


class Tombstones:
    """Erases as erase.lua does as far as the block goes (a tombstone for what is left
    of it), and applies a touchpoint unless its customer's tombstone is there."""

    def __init__(self, block_ms: int) -> None:
        self.block_ms = block_ms
        self.until: dict[str, float] = {}
        self.applied: list[str] = []

    async def erase(
        self, customer_id: str, erased_at_ms: int, withdrawals: Any = ()
    ) -> ErasureReceipt:
        left = self.block_ms - (time.time() * 1000 - erased_at_ms)
        if left > 0:
            self.until[customer_id] = time.time() * 1000 + left
        return ErasureReceipt(subject="s", keys_removed=0, kinds=[], blocked=left > 0,
                              erased_at_ms=erased_at_ms)  # fmt: skip

    async def apply(self, events: list[Any], ran: Any = None) -> list[ApplyStatus]:
        now = time.time() * 1000
        out = []
        for e in events:
            blocked = self.until.get(e.customer_id, 0) > now
            if not blocked:
                self.applied.append(e.event_id)
            out.append(ApplyStatus.ERASED if blocked else ApplyStatus.APPLIED)
        return out


async def test_an_erasure_whose_tombstone_runs_out_during_the_rebuild_still_holds() -> None:
    """Erased a block ago less a moment: their tombstone runs out while the rebuild
    replays, and their clicks dated within the block (refused live) stayed out only
    while it lasted."""
    settings = Settings.from_env({})
    block_ms = settings.tombstone_days * DAY_MS
    store = Tombstones(block_ms)
    run = Replay(settings, store, 500)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    erased = CustomerErasure(customer_id="c-gone", subject="s",
                             ts=now - timedelta(milliseconds=block_ms - 50))  # fmt: skip
    await run._erasures([SimpleNamespace(value=encode_erasure(erased), topic="e",
                                         partition=0, offset=0)])  # fmt: skip
    store.until["c-gone"] = 0  # the tombstone has run out since
    click = WebClick(event_id="e1", customer_id="c-gone", ts=now - timedelta(days=3), page="/")
    sent_ms = int(click.ts.timestamp() * 1000)  # when it happened
    await run._touchpoints([SimpleNamespace(value=msgspec.json.encode(click), partition=0,
                                            offset=5, timestamp=sent_ms,
                                            timestamp_type=0)])  # fmt: skip
    assert store.applied == [] and run.parts["applied"] == 0
    assert run.skipped_lapsed == 0  # blocked when it was erased again: not a lapsed one


async def test_a_lapsed_block_holds_out_to_its_last_millisecond_and_no_further() -> None:
    """Erased longer ago than a block: a click dated (and sent) a millisecond before the
    block ended was refused live, one dated as it ended was applied; and one sent after
    it ended was applied live whatever its date (the tombstone had gone)."""
    settings = Settings.from_env({})
    block_ms = settings.tombstone_days * DAY_MS
    store = Tombstones(block_ms)
    run = Replay(settings, store, 500)  # type: ignore[arg-type]
    erased_ms = int(time.time() * 1000) - block_ms - DAY_MS  # the block ended a day ago
    erased = CustomerErasure(customer_id="c-back", subject="s",
                             ts=datetime.fromtimestamp(erased_ms / 1000, UTC))  # fmt: skip
    await run._erasures([SimpleNamespace(value=encode_erasure(erased), topic="e",
                                         partition=0, offset=0)])  # fmt: skip
    ends = erased_ms + block_ms

    def click(event_id: str, at_ms: int, sent_ms: int, offset: int) -> SimpleNamespace:
        event = WebClick(event_id=event_id, customer_id="c-back", page="/",
                         ts=datetime.fromtimestamp(at_ms / 1000, UTC))  # fmt: skip
        return SimpleNamespace(value=msgspec.json.encode(event), partition=0, offset=offset,
                               timestamp=sent_ms, timestamp_type=0)  # fmt: skip

    await run._touchpoints([
        click("in-block", ends - 1, ends - 1, 1),
        click("at-end", ends, ends, 2),
        click("late", ends - 60_000, ends + 5_000, 3),  # dated within, sent after
    ])  # fmt: skip
    assert store.applied == ["at-end", "late"]
    assert run.skipped_lapsed == 1


async def test_a_touchpoint_still_dated_past_the_skew_is_not_replayed() -> None:
    """Dated further ahead than a worker takes, with no letter found for it (written
    after the letters were read): a worker refused it, so the rebuild does too."""
    settings = Settings.from_env({})
    store = Tombstones(settings.tombstone_days * DAY_MS)
    run = Replay(settings, store, 500)  # type: ignore[arg-type]
    now_ms = int(time.time() * 1000)
    skew_ms = int(settings.max_future_skew_s * 1000)

    def ahead(event_id: str, by_ms: int, offset: int) -> SimpleNamespace:
        event = WebClick(event_id=event_id, customer_id="c-1", page="/",
                         ts=datetime.fromtimestamp((now_ms + by_ms) / 1000, UTC))  # fmt: skip
        return SimpleNamespace(value=msgspec.json.encode(event), partition=0, offset=offset,
                               timestamp=now_ms, timestamp_type=0)  # fmt: skip

    await run._touchpoints([ahead("within", skew_ms - 60_000, 1),
                            ahead("past", skew_ms + 60_000, 2)])  # fmt: skip
    assert store.applied == ["within"] and run.invalid == 1
