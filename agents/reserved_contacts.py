"""A worker's decisions, recorded with their contacts and budget spending before they are
sent (thin shell over the store).

A worker decides a batch from the counts one read showed; an API process or another
worker deciding for the same customer, or spending the same daily offer budget, at the
same moment read the same counts. Before the batch's decisions go to Kafka, the budget
spending of those that show offers is counted, in order, within the limits the batch
read; then the decisions are recorded with their contacts, each contact checked by the
store against the caps and cool-downs it was decided within
(:mod:`agents.contact_ceilings`). A decision the store refuses (over a budget, or its
contact over a cap) is decided again from a new read of its customer and of the
budgets, which shows what the other processes did; after ``MAX_ROUNDS`` refusals it
shows nothing. A decision whose contact was refused gives its budget spending back.

Recorded here, a decision's trigger is marked recorded; the confirmation after delivery
records it again, which counts nothing twice, and marks it decided. A worker that stops
in between leaves the mark: the next one sends the recorded decision again, as it was
(:mod:`agents.touchpoint_decisions`), rather than deciding anew. A batch given up after
this (dead-lettered) leaves its decisions recorded though nothing was sent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from agents.batch_result import BatchResult, FailedRecord, failure_reason, fault_kinds
from agents.batch_retries import outage
from agents.budget_reads import spent_today
from agents.contact_ceilings import MAX_ROUNDS, contended, offers_shown_within
from agents.contact_ledger import contacted
from agents.contact_policy import FIRST_CONTACT
from agents.decision_owners import keep_owned
from agents.decision_records import decision_record
from agents.offer_budget import BudgetLedger
from agents.offer_policy import OfferPolicy
from feature_store import BudgetSpend, FeatureStore
from schemas import NextBestOffer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Refusals:
    """How many of a batch's decisions the store refused, and why."""

    contacts: int = 0  # over a contact cap or cool-down
    budgets: int = 0  # over a daily offer budget


class ContactReservations:
    """Records a batch's decisions with their contacts and budget spending, within their
    caps and limits, before they are sent; decides again those the store refuses."""

    def __init__(self, store: FeatureStore, policy: OfferPolicy) -> None:
        self._store = store
        self._policy = policy

    async def reserve(self, result: BatchResult) -> Refusals:
        """Count the daily offer budgets of ``result``'s decisions and record them with
        their contacts, within their limits and caps, before they are sent; those refused
        are replaced in ``result.decisions`` by a decision taken again. Returns how many
        were refused."""
        catalogue = result.catalogue
        await keep_owned(self._store, result)  # a copy's decision, another worker's: out
        pending = list(result.decisions)
        unchecked = [d for d in pending if d.decision_id not in result.moments]
        if unchecked:  # every decision on a touchpoint has its moment: a fault of Moments'
            log.error("%d decisions without their moment are sent without their contact "
                      "caps checked", len(unchecked))  # fmt: skip
            pending = [d for d in pending if d.decision_id in result.moments]
        if catalogue is None:
            return Refusals()
        contact_refusals = budget_refusals = 0
        round_ = 0
        while pending:  # the last round's decisions show nothing: recorded, never refused
            round_ += 1
            over, spending = await self._take_budgets([d for d in pending if d.offers], result)
            budget_refusals += len(over)
            within = [d for d in pending if d.decision_id not in over]
            decided = ((d, result.moments[d.decision_id].inbound) for d in within)
            contacts = offers_shown_within(decided, catalogue, result.timezones)
            refused_ids: set[str] = set()  # their contact over a ceiling: not recorded
            faults: dict[str, Exception] = {}  # customers whose keys failed the write
            records = [decision_record(d, sent=False) for d in within]
            kept = await self._store.decisions.record(
                records, contacts, faults=faults, refused=refused_ids
            )
            refused = [d for d in pending if d.decision_id in over]
            gone: set[str] = set(faults)  # customers: nothing more is sent about them
            for decision, stored in zip(within, kept, strict=True):
                if decision.decision_id in refused_ids:
                    refused.append(decision)
                elif not stored:  # erased since the batch was checked
                    gone.add(decision.customer_id)
            unmade = [s for s in spending if s.decision_id in refused_ids]
            await self._give_back(unmade, self._leave_out(result, gone, faults), result)
            refused = [d for d in refused if d.customer_id not in gone]
            contact_refusals += sum(1 for d in refused if d.decision_id not in over)
            if not refused:
                break
            pending = await self._decide_again(refused, result, last=round_ >= MAX_ROUNDS)
        return Refusals(contact_refusals, budget_refusals)

    @staticmethod
    def _leave_out(
        result: BatchResult,
        gone: set[str],
        faults: dict[str, Exception],
        stage: str = "decision record",
    ) -> list[NextBestOffer]:
        """Leave out of ``result`` everything about the ``gone`` customers (erased, or
        ``faults``: their keys failed the write, or their decision taken again failed:
        their touchpoints are dead-lettered with the reason, ``stage`` and the error, to
        be sent again once mended, those whose only outcome was an alert included). The
        decisions left out."""
        left = result.leave_out(gone)
        lettered = {id(failed.record) for failed in result.dead_letters}
        for customer, fault in faults.items():
            reason = failure_reason(stage, fault)
            for record, index in result.touchpoints_of.get(customer, []):
                if id(record) in lettered:  # its decision had failed already
                    continue
                lettered.add(id(record))
                result.dead_letters.append(FailedRecord(record, reason, index))
                if index < len(result.results):  # counted as failed, not ok
                    result.results[index] = (result.results[index][0], "failed")
        if faults:
            log.warning("%d customers' decisions could not be %s (%s): their touchpoints "
                        "are dead-lettered", len(faults),
                        "recorded" if stage == "decision record" else "taken again",
                        fault_kinds(faults))  # fmt: skip
        return left

    async def _give_back(
        self, unmade: list[BudgetSpend], left: list[NextBestOffer], result: BatchResult
    ) -> None:
        """Give back the budget ``unmade`` spent, and what the decisions ``left`` out of
        the batch took (in this round or an earlier one; none that took nothing)."""
        shown = result.delivered  # by an earlier attempt: their spending stays counted
        spending = unmade + result.spending(d for d in left if id(d) not in shown)
        if spending:
            await self._store.budgets.take_back(spending, for_good=False)

    async def _take_budgets(
        self, pending: list[NextBestOffer], result: BatchResult
    ) -> tuple[set[str], list[BudgetSpend]]:
        """Count the daily offer budgets the ``pending`` decisions spend, within their
        limits: the ids of those refused (other processes spent the budget since the
        batch read it), and the spending counted."""
        spending = result.spending(pending)
        if not spending or result.budgets is None:
            return set(), []
        over = await self._store.budgets.take(spending, result.budgets.limits)
        return over, [s for s in spending if s.decision_id not in over]

    async def _decide_again(
        self, refused: list[NextBestOffer], result: BatchResult, last: bool
    ) -> list[NextBestOffer]:
        """Decide the ``refused`` again from a new read (at their own time, with the same
        ids); the last round shows nothing. Returns the new decisions, to record. A
        customer whose decision fails to be taken again (for a reason other than an
        outage) is left out, their touchpoints dead-lettered, as in the deciding
        (:meth:`agents.touchpoint_decisions.TouchpointDecisions.decide`); the others go on."""
        again: dict[str, NextBestOffer] = {}
        erased_now: set[str] = set()  # customers erased meanwhile: left out
        failed: dict[str, Exception] = {}  # customers whose decision failed: left out
        if last:
            for old in refused:
                again[old.decision_id] = contended(old)
        else:
            customers = list(dict.fromkeys(d.customer_id for d in refused))
            unreadable: dict[str, Exception] = {}  # their keys fail the read: show nothing
            home = result.catalogue.contact_policy.timezone if result.catalogue else "UTC"
            reading = self._store.read_views(customers, faults=unreadable, home_timezone=home)
            ledger = result.budgets
            if ledger is not None:  # the budgets as counted now, this batch's spending in
                counting = spent_today(self._store, ledger.day, ledger.limits)
                found, spent = await asyncio.gather(reading, counting)
                now = {o: spent.get(o, 0) for o in ledger.limits}
                result.budgets = BudgetLedger(ledger.day, ledger.limits, now, ledger.timezone)
            else:
                found = await reading
            views = dict(zip(customers, found, strict=True))
            for old in refused:  # in order: a customer's later decision counts the earlier
                erased, features = views[old.customer_id]
                if old.customer_id in unreadable:
                    again[old.decision_id] = contended(old)
                    continue
                if erased:
                    erased_now.add(old.customer_id)
                    continue
                if old.customer_id in failed:
                    continue
                moment = result.moments[old.decision_id]
                try:
                    new = self._policy.decide(moment, features, old.ts, result.budgets,
                                              result.catalogue)  # fmt: skip
                    counted = contacted(features or FIRST_CONTACT, new)
                except Exception as exc:
                    if outage(exc):
                        raise
                    failed[old.customer_id] = exc
                    continue
                result.timezones[old.customer_id] = features.timezone if features else None
                views[old.customer_id] = (False, counted)
                again[old.decision_id] = new
        result.decisions = [again.get(d.decision_id, d) for d in result.decisions]
        left = result.leave_out(erased_now)
        if failed:
            left += self._leave_out(result, set(failed), failed, "decision")
        await self._give_back([], left, result)
        gone = erased_now | set(failed)
        return [d for d in again.values() if d.customer_id not in gone]
