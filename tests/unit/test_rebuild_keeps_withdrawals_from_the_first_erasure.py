"""``moments rebuild`` of a customer erased twice judges their withdrawals against the
first erasure, as the live worker did (its tombstone keeps the first erasure's time):
a withdrawal sent after the first erasure was kept beside the tombstone whatever grant
came before it, so the rebuild applies it again (plain data: a stand-in store).

Judged against the second erasure instead, the customer's opt-out would be lost in the
rebuilt store, taken back by a grant the first erasure had already weighed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import msgspec

from feature_store import ApplyStatus, Fact
from feature_store.facts import DAY_MS
from feature_store.records import ErasureReceipt
from schemas import Consent, CustomerErasure, encode_erasure
from streams.rebuild_replay import Replay
from streams.rebuild_withdrawals import LOG_APPEND_TIME
from streams.settings import Settings
from tests.unit.test_rebuild_blocks import Tombstones


class FirstErasure(Tombstones):
    """Erases as erase.lua does: a customer erased again keeps their first erasure's
    time (the tombstone's); records the facts applied."""

    def __init__(self, block_ms: int) -> None:
        super().__init__(block_ms)
        self.first: dict[str, int] = {}
        self.facts: list[Fact] = []

    async def erase(
        self, customer_id: str, erased_at_ms: int, withdrawals: Any = ()
    ) -> ErasureReceipt:
        first = self.first.setdefault(customer_id, erased_at_ms)
        receipt = await super().erase(customer_id, first, withdrawals)
        return receipt

    async def apply_facts(self, facts: list[Fact], ran: Any = None) -> list[ApplyStatus]:
        self.facts += facts
        return [ApplyStatus.ERASED] * len(facts)


BROKER = LOG_APPEND_TIME  # records stamped when appended: the rebuild can tell


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def test_a_withdrawal_sent_after_the_first_erasure_is_kept_when_erased_again() -> None:
    settings = Settings.from_env({})
    store = FirstErasure(settings.tombstone_days * DAY_MS)
    run = Replay(settings, store, 500)  # type: ignore[arg-type]
    now = datetime.now(UTC).replace(microsecond=0)
    first, second = now - timedelta(hours=2), now - timedelta(hours=1)
    await run._erasures([
        SimpleNamespace(value=encode_erasure(CustomerErasure(customer_id="c", subject="s", ts=at)),
                        topic="e", partition=0, offset=i)
        for i, at in enumerate((first, second))
    ])  # fmt: skip
    granted = Consent(event_id="g", customer_id="c", ts=first - timedelta(minutes=30),
                      channel="sms", granted=True)  # fmt: skip
    withdrew = Consent(event_id="w", customer_id="c", ts=first - timedelta(minutes=60),
                       channel="sms", granted=False)  # fmt: skip
    await run._touchpoints([
        # sent before the first erasure
        SimpleNamespace(value=msgspec.json.encode(granted), partition=0, offset=1,
                        timestamp=ms(first) - 29 * 60_000, timestamp_type=BROKER),
        # sent after it, before the second
        SimpleNamespace(value=msgspec.json.encode(withdrew), partition=0, offset=2,
                        timestamp=ms(first) + 10 * 60_000, timestamp_type=BROKER),
    ])  # fmt: skip
    await run.keep_withdrawals_of_the_erased()
    assert [(f.fact_id, f.updates, f.erased_only) for f in store.facts] == [
        ("t:w", (("latest", "consent:sms", "0"),), True)
    ]
    assert time.time() * 1000 < store.until["c"]  # (still blocked)
