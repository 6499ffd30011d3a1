"""``contacted`` (agents/contact_ledger.py) against the store's plain-Python reference
(feature_store/reference.py): the contacts a batch counts before its decisions are
recorded are the ones the store will count once they are, so the caps and cool-downs of
a customer's later decisions in the batch hold as they would across batches."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, note, settings
from hypothesis import strategies as st

from agents.catalogue_holder import CatalogueHolder
from agents.contact_ceilings import offers_shown_within
from agents.contact_ledger import contacted
from agents.contact_policy import ContactPolicy
from agents.moments import DecisionMoment
from agents.offer_rules import RuleBasedOfferPolicy
from feature_store import offers_shown_fact
from feature_store.facts import ts_ms
from schemas import OfferCatalogue
from tests.unit.decision_strategies import CHANNELS, NOBODY, OFFER_IDS, catalogues, channels
from tests.unit.factories import T0, T0_MS, apply_all, consent, features_of

# what other decisions showed in the ten days before: channel, offers, how long ago (s)
earlier_contacts = st.lists(
    st.tuples(
        st.sampled_from(CHANNELS),
        st.lists(st.sampled_from(OFFER_IDS), min_size=1, max_size=3, unique=True),
        st.integers(0, 10 * 86_400),
    ),
    max_size=8,
)


@settings(max_examples=35, deadline=None)
@given(
    catalogue=catalogues(),
    earlier=earlier_contacts,
    channel=channels,
    inbound=st.booleans(),
    steps=st.lists(st.integers(0, 3 * 3600), min_size=1, max_size=6).map(sorted),
)
def test_contacts_counted_in_a_batch_read_as_the_store_will_read_them(
    catalogue: OfferCatalogue,
    earlier: list[tuple[str, list[str], int]],
    channel: str,
    inbound: bool,
    steps: list[int],
) -> None:
    """After each decision, ``contacted`` of the read it was taken on equals a new read
    of the store once its contact is recorded: contacts today and this week per
    channel, shows per offer this week, and when each offer and channel was last used.
    The store also takes every contact the policy allowed from that read."""
    state = apply_all([consent("all", True, T0 - timedelta(days=20))])  # opted in
    for i, (shown_on, offer_ids, ago) in enumerate(earlier):
        at = T0 - timedelta(seconds=ago)
        state.apply(offers_shown_fact(f"p{i}", "c1", shown_on, offer_ids, at), T0_MS)
    policy = RuleBasedOfferPolicy(CatalogueHolder(catalogue), ContactPolicy(NOBODY))
    zone = catalogue.contact_policy.timezone  # whose days the store reads, as a worker's
    for i, step in enumerate(steps):
        now = T0 + timedelta(seconds=step)
        read = features_of(state, ts_ms(now), home_timezone=zone)
        moment = DecisionMoment(f"d{i}", "c1", channel, limit=3, inbound=inbound)
        decision = policy.decide(moment, read, now, None, catalogue)
        for fact in offers_shown_within([(decision, inbound)], catalogue):
            assert state.apply(fact, ts_ms(now)) == 1  # applied, not over its ceilings
        ours = contacted(read, decision).contact
        stores = features_of(state, ts_ms(now), home_timezone=zone).contact
        note(f"counted {ours}\nstore   {stores}")
        assert ours.shown_today == stores.shown_today and ours.shown_7d == stores.shown_7d
        assert ours.offers_7d == stores.offers_7d and ours.last_shown == stores.last_shown
        assert ours.last_contact == stores.last_contact
