"""A worker's contacts, recorded before its decisions are sent (thin shell over the store).

A worker decides a batch from the counts one read showed; an API process or another
worker deciding for the same customer at the same moment read the same counts. Before
the batch's decisions go to Kafka, the contacts of those that show offers are recorded,
each checked by the store against the caps and cool-downs it was decided within
(:mod:`agents.contact_ceilings`). A decision whose contact the store refuses is decided
again from a new read of its customer, which shows the other contact; after
``MAX_ROUNDS`` refusals it shows nothing. The contact recorded here is found by the
confirmation after delivery, which counts it once.

The contacts count from when they are recorded: a batch given up after that, or decided
again by a worker that stopped before Kafka took it, finds them counted (README, Contact
policy, says what that leaves).
"""

from __future__ import annotations

import logging

from agents.batch_result import BatchResult
from agents.contact_ceilings import MAX_ROUNDS, contended, offers_shown_within
from agents.contact_ledger import contacted
from agents.contact_policy import FIRST_CONTACT
from agents.learned_policy import LearnedOfferPolicy
from agents.offer_rules import RuleBasedOfferPolicy
from feature_store import ApplyStatus, FeatureStore
from schemas import NextBestOffer

log = logging.getLogger(__name__)


class ContactReservations:
    """Records a batch's contacts within their ceilings, deciding again those refused."""

    def __init__(
        self, store: FeatureStore, policy: RuleBasedOfferPolicy | LearnedOfferPolicy
    ) -> None:
        self._store = store
        self._policy = policy

    async def reserve(self, result: BatchResult) -> int:
        """Record the contacts of ``result``'s decisions that show offers; those refused
        are replaced in ``result.decisions`` by a decision taken again. Returns how many
        contacts were refused."""
        catalogue = result.catalogue
        pending = [d for d in result.decisions if d.offers]
        unchecked = [d for d in pending if d.decision_id not in result.moments]
        if unchecked:  # every decision on a touchpoint has its moment: a fault of Moments'
            log.error("%d decisions without their moment are sent without their contact "
                      "caps checked", len(unchecked))  # fmt: skip
            pending = [d for d in pending if d.decision_id in result.moments]
        if catalogue is None or not pending:
            return 0
        refusals = 0
        for round_ in range(1, MAX_ROUNDS + 1):
            if not pending:
                break
            decided = ((d, result.moments[d.decision_id].inbound) for d in pending)
            statuses = await self._store.apply_facts(offers_shown_within(decided, catalogue))
            refused: list[NextBestOffer] = []
            erased: set[str] = set()
            for decision, status in zip(pending, statuses, strict=True):
                if status == ApplyStatus.OVER_CEILING:
                    refused.append(decision)
                elif status == ApplyStatus.ERASED:
                    erased.add(decision.decision_id)
            if erased:  # erased since the batch was checked: nothing is sent about them
                result.decisions = [d for d in result.decisions if d.decision_id not in erased]
            refusals += len(refused)
            if not refused:
                break
            pending = await self._decide_again(refused, result, last=round_ == MAX_ROUNDS)
        return refusals

    async def _decide_again(
        self, refused: list[NextBestOffer], result: BatchResult, last: bool
    ) -> list[NextBestOffer]:
        """Decide the ``refused`` again from a new read (at their own time, with the same
        ids); the last round shows nothing. Returns the new decisions that show offers."""
        again: dict[str, NextBestOffer | None] = {}  # None: erased meanwhile, left out
        if last:
            for old in refused:
                again[old.decision_id] = contended(old)
        else:
            customers = list(dict.fromkeys(d.customer_id for d in refused))
            views = dict(zip(customers, await self._store.read_views(customers), strict=True))
            if result.budgets is not None:  # their offers were not shown
                for old in refused:
                    result.budgets.give_back(o.offer_id for o in old.offers)
            for old in refused:  # in order: a customer's later decision counts the earlier
                erased, features = views[old.customer_id]
                if erased:
                    again[old.decision_id] = None
                    continue
                moment = result.moments[old.decision_id]
                new = self._policy.decide(moment, features, old.ts, result.budgets,
                                          result.catalogue)  # fmt: skip
                views[old.customer_id] = (False, contacted(features or FIRST_CONTACT, new))
                again[old.decision_id] = new
        decisions = [again.get(d.decision_id, d) for d in result.decisions]
        result.decisions = [d for d in decisions if d is not None]
        return [d for d in again.values() if d is not None and d.offers]
