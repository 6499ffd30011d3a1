"""The line ``moments rebuild`` ends with accounts for every touchpoint it read, once:
it said "831 touchpoints (830 applied, 0 expired, 0 invalid skipped)", the erased
customer's touchpoint, duplicates and contacts over a ceiling left out."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from feature_store import ApplyStatus
from feature_store.facts import DAY_MS
from feature_store.records import ErasureReceipt
from schemas import CustomerErasure, WebClick, encode_erasure
from streams.rebuild_replay import Replay
from streams.rebuild_report import RebuildReport
from streams.settings import Settings

NOW = datetime.now(UTC)
# the customer each click is of, and what the store answers for it
ANSWERS = {f"c-{status.name.lower()}": status for status in ApplyStatus}


class Store:
    """Answers each customer's touchpoint with their status; ``c-broken``'s keys cannot
    be written (the rest of its batch is applied, as a script per customer is)."""

    async def erase(self, customer_id: str, erased_at_ms: int, withdrawals: Any = ()) -> Any:
        blocked = customer_id == "c-erased-now"
        return ErasureReceipt(subject="s", keys_removed=0, kinds=[], blocked=blocked,
                              erased_at_ms=erased_at_ms)  # fmt: skip

    async def apply(self, events: list[Any], ran: dict[int, ApplyStatus]) -> list[ApplyStatus]:
        for i, event in enumerate(events):
            if event.customer_id != "c-broken":
                ran[i] = ANSWERS[event.customer_id]
        if len(ran) < len(events):
            raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind")
        return [ran[i] for i in range(len(events))]

    async def apply_facts(self, facts: list[Any], ran: Any = None) -> list[ApplyStatus]:
        return [ApplyStatus.APPLIED for _ in facts]


def _record(value: bytes, offset: int, sent: datetime = NOW) -> SimpleNamespace:
    return SimpleNamespace(value=value, partition=0, offset=offset,
                           timestamp=int(sent.timestamp() * 1000), timestamp_type=0)  # fmt: skip


def _click(customer_id: str, offset: int, at: datetime = NOW) -> SimpleNamespace:
    event = WebClick(event_id=f"e{offset}", customer_id=customer_id, ts=at, page="/")
    return _record(msgspec.json.encode(event), offset, at)


async def test_every_touchpoint_read_is_in_one_count_of_the_line() -> None:
    settings = Settings.from_env({})
    run = Replay(settings, Store(), 500)  # type: ignore[arg-type]
    block_ms = settings.tombstone_days * DAY_MS
    lapsed_at = NOW - timedelta(milliseconds=block_ms + DAY_MS)  # its block ended a day ago
    await run._erasures([
        SimpleNamespace(value=encode_erasure(CustomerErasure(customer_id=who, subject="s",
                        ts=at)), topic="e", partition=0, offset=n)
        for n, (who, at) in enumerate([("c-erased-now", NOW - timedelta(days=1)),
                                       ("c-lapsed", lapsed_at)])
    ])  # fmt: skip
    ahead = NOW + timedelta(seconds=settings.max_future_skew_s + 3600)
    records = [_click(who, n) for n, who in enumerate(ANSWERS)]
    records += [
        _click("c-erased-now", 100, NOW - timedelta(hours=1)),  # held out: erased
        _click("c-lapsed", 101, lapsed_at + timedelta(hours=1)),  # before its block ended
        _click("c-broken", 102),  # their keys cannot be written
        _record(b"{not a touchpoint", 103),  # invalid
        _click("c-applied", 104, ahead),  # dated too far ahead: refused live
    ]
    run.total = len(records)
    await run._touchpoints(records)
    report = run.report(0, 0)
    line = report.summary()
    parts = re.fullmatch(r"rebuilt from (\d+) touchpoints \(([^)]*)\).*", line)
    assert parts is not None, line
    counts = [int(part.split()[0]) for part in parts[2].split(", ")]
    assert sum(counts) == int(parts[1]) == len(records), line
    assert (report.applied, report.duplicates, report.expired, report.over_ceiling) == (
        1, 3, 1, 1)  # fmt: skip
    # the store's ERASED and the held-out click of the customer kept erased; a fact for
    # the erased only (no touchpoint is one) and the broken customer's: not written
    assert (report.of_erased, report.not_written) == (2, 2)
    assert (report.before_lapsed_erasure, report.skipped_invalid) == (1, 2)
    assert "2 of erased customers, 3 there already" in line


def test_a_part_of_none_is_left_out_of_the_line() -> None:
    line = RebuildReport(830, 0, 10, 830, 1.0).summary()
    assert line.startswith("rebuilt from 830 touchpoints (830 applied) and 10 decisions")
