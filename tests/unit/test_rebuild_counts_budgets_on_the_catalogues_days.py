"""``moments rebuild`` counts the offer budgets the decisions spent on the days of the
catalogue's timezone, as the live API and workers count them, and keeps those of the
last ``KEPT_DAYS`` of those days (plain data: a stand-in store records what it is given).

A business far from UTC whose budgets were rebuilt onto UTC's days would find today's
counts gone after a rebuild: its daily limits would start again from 0.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from agents.offer_budget import budget_day
from feature_store import ApplyStatus, BudgetSpend
from feature_store.budgets import KEPT_DAYS
from schemas import NextBestOffer, OfferScore, encode_decision
from streams.rebuild_replay import Replay
from streams.settings import Settings

CATALOGUE = """
version = "rebuild-zone"
default_offers = ["newsletter"]

[contact_policy]
timezone = "{zone}"

[[offers]]
offer_id = "voucher"
title = "EUR 20 voucher"
channels = ["web"]
daily_limit = 3

[[offers]]
offer_id = "newsletter"
title = "Weekly picks"
channels = ["web"]
"""


class Recording:
    """The store calls the replay of decisions makes; budgets as given."""

    def __init__(self) -> None:
        self.spent: list[BudgetSpend] = []
        self.budgets = SimpleNamespace(add=self._add)
        self.decisions = SimpleNamespace(record=self._record)

    async def _add(self, spends: list[BudgetSpend]) -> int:
        self.spent += spends
        return len(spends)

    async def _record(self, records: list[Any], faults: Any = None) -> list[bool]:
        return [True] * len(records)

    async def apply_facts(self, facts: list[Any], ran: Any = None) -> list[ApplyStatus]:
        return [ApplyStatus.APPLIED] * len(facts)


def decided(decision_id: str, ts: datetime) -> SimpleNamespace:
    shown = [OfferScore(offer_id="voucher", score=1.0, propensity=1.0)]
    decision = NextBestOffer(decision_id=decision_id, customer_id=f"c-{decision_id}",
                             channel="web", ts=ts, trigger_event_id=None, model_version="m",
                             offers=shown)  # fmt: skip
    return SimpleNamespace(value=encode_decision(decision), partition=0, offset=0, timestamp=0)


async def test_the_rebuild_counts_the_budgets_on_the_catalogues_days(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    zone = "Pacific/Kiritimati" if now.hour >= 10 else "Pacific/Pago_Pago"  # not UTC's date
    today = budget_day(now, zone)
    assert today != now.date()
    path = tmp_path / "offers.toml"
    path.write_text(CATALOGUE.replace("{zone}", zone))
    store = Recording()
    run = Replay(Settings.from_env({"MOMENTS_CATALOGUE_PATH": str(path)}), store, 500)  # type: ignore[arg-type]

    oldest_kept = today - timedelta(days=KEPT_DAYS - 1)
    # whole days before now: each on another date in the zone than in UTC (no DST there)
    await run._next_best_offers([
        decided("today", now),
        decided("oldest", now - timedelta(days=KEPT_DAYS - 1)),
        decided("gone", now - timedelta(days=KEPT_DAYS)),
    ])  # fmt: skip
    assert {s.decision_id: s.day for s in store.spent} == {"today": today, "oldest": oldest_kept}
