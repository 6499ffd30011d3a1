"""Properties of a batch of decisions taken together, before any is recorded: each one
counts those before it (``contacted``) and spends one ``BudgetLedger``, so that the
batch never goes past the fatigue caps, cool-downs, weekly caps per customer or daily
offer budgets one read allowed, and the store is told to count exactly what the
ledger counted."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, note, settings
from hypothesis import strategies as st

from agents.contact_ledger import contacted
from agents.contact_policy import FIRST_CONTACT
from agents.moments import DecisionMoment
from agents.offer_budget import BudgetLedger, offers_spent
from schemas import NextBestOffer
from schemas.contact_rules import OUTBOUND
from tests.unit.decision_strategies import (
    OFFER_IDS,
    budgeted_catalogues,
    channels,
    customer_features,
    instants,
    offer_policies,
)


@settings(max_examples=40, deadline=None)
@given(
    channel=channels,
    inbound=st.booleans(),
    seconds=st.lists(st.integers(0, 86_399), min_size=1, max_size=10).map(sorted),
    asks=st.lists(st.integers(1, 4), min_size=10, max_size=10),
    data=st.data(),
)
def test_a_batch_of_one_customers_decisions_keeps_every_cap_and_budget(
    channel: str, inbound: bool, seconds: list[int], asks: list[int], data: st.DataObject
) -> None:
    """A burst of moments for one customer in one batch (page views, a backlog) gets, in
    all, no more contacts than the caps left, no offer more often than its weekly cap
    per customer and its daily budget left, none within its cool-down; the ledger counts
    each show once and ``offers_spent`` tells the store exactly that, on the UTC day.
    (``seconds``: when each moment came, after midnight UTC; ``asks``: how many offers
    each one asks for.)"""
    catalogue = data.draw(budgeted_catalogues())
    policy = data.draw(offer_policies(catalogue))
    now = data.draw(instants())
    day_start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = data.draw(st.none() | customer_features(day_start))
    budgets = catalogue.daily_limits()
    spent0 = {o: data.draw(st.integers(0, limit)) for o, limit in budgets.items()}
    ledger = BudgetLedger.for_day(day_start, budgets, spent0)
    view, decisions = start, []
    for i, (s, ask) in enumerate(zip(seconds, asks, strict=False)):
        moment = DecisionMoment(f"d{i}", "c1", channel, limit=ask, inbound=inbound)
        decision = policy.decide(moment, view, day_start + timedelta(seconds=s), ledger, catalogue)
        decisions.append(decision)
        view = contacted(view or FIRST_CONTACT, decision)
    note("\n".join(f"{d.ts:%H:%M:%S} {[o.offer_id for o in d.offers]}" for d in decisions))
    before, rules = (start or FIRST_CONTACT).contact, catalogue.contact_policy
    contacts = sum(1 for d in decisions if d.offers)
    assert contacts <= max(0, rules.daily_cap(channel) - before.shown_today.get(channel, 0))
    assert contacts <= max(0, rules.weekly_cap(channel) - before.shown_7d.get(channel, 0))
    if channel in OUTBOUND and not inbound:
        day, week = rules.outbound_caps()
        assert contacts <= max(0, day - sum(before.shown_today.get(c, 0) for c in OUTBOUND))
        assert contacts <= max(0, week - sum(before.shown_7d.get(c, 0) for c in OUTBOUND))
    shown = Counter(o.offer_id for d in decisions for o in d.offers)
    for offer in catalogue.offers:
        times = [d.ts for d in decisions if offer.offer_id in {o.offer_id for o in d.offers}]
        if offer.max_per_week is not None:
            left = offer.max_per_week - before.offers_7d.get(offer.offer_id, 0)
            assert len(times) <= max(0, left)
        if offer.daily_limit is not None:
            assert shown[offer.offer_id] <= offer.daily_limit - spent0[offer.offer_id]
            assert ledger.spent[offer.offer_id] == spent0[offer.offer_id] + shown[offer.offer_id]
        last = before.last_shown.get(offer.offer_id)
        shows = ([] if last is None else [last]) + times
        for a, b in itertools.pairwise(shows):
            assert offer.cooldown_s == 0 or b - a >= timedelta(seconds=offer.cooldown_s)
    spends = offers_spent(decisions, budgets)
    assert {s.day for s in spends} <= {day_start.date()}
    assert Counter(o for s in spends for o in s.offer_ids) == +Counter(
        {o: ledger.spent[o] - spent0[o] for o in budgets}
    )


@settings(max_examples=60, deadline=None)
@given(
    now=instants(),
    limits=st.dictionaries(st.sampled_from(OFFER_IDS), st.integers(1, 5)),
    read=st.dictionaries(st.sampled_from(OFFER_IDS), st.integers(0, 9)),
    read_on=st.none() | st.dates(date(2024, 12, 30), date(2029, 1, 2)),
    shown=st.lists(st.sampled_from([*OFFER_IDS, "unbudgeted"]), max_size=12),
)
def test_the_budget_ledger_counts_each_show_once_on_its_utc_day(
    now: datetime,
    limits: dict[str, int],
    read: dict[str, int],
    read_on: date | None,
    shown: list[str],
) -> None:
    """A batch's ledger is the UTC day's (whatever offset ``now`` comes with): counts
    read for another day start from 0, each limited offer shown counts once, and an
    offer without a daily limit is never exhausted. A miscount here overspends a
    voucher stock or the contact centre's call-backs."""
    ledger = BudgetLedger.for_day(now, limits, read, read_on)
    assert ledger.day == now.astimezone(UTC).date()
    fresh = read_on is not None and read_on != ledger.day
    assert ledger.spent == {o: 0 if fresh else read.get(o, 0) for o in limits}
    before = dict(ledger.spent)
    ledger.spend(shown)
    assert ledger.spent == {o: before[o] + shown.count(o) for o in limits}
    for offer_id in {*OFFER_IDS, "unbudgeted"}:
        limit = limits.get(offer_id)
        assert ledger.exhausted(offer_id) == (limit is not None and ledger.spent[offer_id] >= limit)
    decision = NextBestOffer(
        decision_id="d",
        customer_id="c",
        ts=now,
        channel="web",
        trigger_event_id=None,
        model_version="m",
        offers=[],
    )
    assert offers_spent([decision], limits) == []  # showing nothing spends nothing
