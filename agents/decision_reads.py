"""The one read a batch's decisions make of the feature store: the customers' features,
the day's offer budgets (when the catalogue limits any) and the decisions recorded for
touchpoints an earlier attempt may have decided, in one round trip.
:class:`agents.touchpoint_decisions.TouchpointDecisions` plans it and decides from it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import date

from agents.touchpoint_decisions import DecisionPlan, DecisionReads
from feature_store import FeatureStore
from feature_store.budgets import EVERY_OFFER

log = logging.getLogger(__name__)


async def spent_today(store: FeatureStore, day: date, limits: Mapping[str, int]) -> dict[str, int]:
    """The offer budgets spent on ``day``, by offer. An offer whose count cannot be read
    (written by a tool or another version: no integer, or no hash) reads as spent to its
    limit in ``limits``: it is not offered until its count is mended or the day ends, and
    the batch is decided with the others (it failed, every batch of the day)."""
    unreadable: set[str] = set()
    spent = await store.budgets.spent(day, unreadable)
    closed = [o for o in limits if EVERY_OFFER in unreadable or o in unreadable]
    for offer in closed:
        spent[offer] = max(spent.get(offer, 0), limits[offer])
    if closed:
        log.warning("the day's counts of %d offer budgets cannot be read: those offers are "
                    "not made until they are mended or the day ends", len(closed))  # fmt: skip
    return spent


async def read_for_decisions(store: FeatureStore, plan: DecisionPlan) -> DecisionReads:
    """What ``plan``'s decisions need, read together. A customer whose keys cannot be
    read as features fails alone (in ``unreadable``); an unreadable stored decision
    reads as none (the touchpoint is decided anew)."""
    unreadable: dict[str, Exception] = {}
    home = plan.catalogue.contact_policy.timezone  # the days of customers not told theirs
    reading = store.read_views(plan.customers, faults=unreadable, home_timezone=home)
    contexts = store.decisions.contexts(plan.asked, faults={})
    spent: dict[str, int] = {}
    if limits := plan.catalogue.daily_limits():
        views, spent, stored = await asyncio.gather(
            reading, spent_today(store, plan.today, limits), contexts
        )
    else:
        views, stored = await asyncio.gather(reading, contexts)
    return DecisionReads(views, spent, stored, unreadable)
