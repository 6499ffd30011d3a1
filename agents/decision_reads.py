"""The one read a batch's decisions make of the feature store: the customers' features,
the day's offer budgets (when the catalogue limits any) and the decisions recorded for
touchpoints an earlier attempt may have decided, in one round trip.
:class:`agents.touchpoint_decisions.TouchpointDecisions` plans it and decides from it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from agents.budget_reads import spent_today
from agents.decision_plan import DecisionPlan
from feature_store import CustomerFeatures, FeatureStore


@dataclass
class DecisionReads:
    """What was read for a :class:`DecisionPlan`, in one round trip."""

    views: list[tuple[bool, CustomerFeatures | None]]  # per customer: (erased?, features)
    spent: dict[str, int]  # the day's offer budgets spent (empty: none are limited)
    contexts: list[str | None]  # per asked decision: its stored context, if any
    unreadable: dict[str, Exception]  # customer -> why their keys cannot be read

    def of(self, at: int, spent: dict[str, int]) -> DecisionReads:
        """What was read for the plan's ``at``-th customer alone, the budgets ``spent``
        so far (the decided contexts are told apart by customer: all are kept)."""
        return replace(self, views=[self.views[at]], spent=spent)


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
