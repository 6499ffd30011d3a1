"""How the callers of a batch of recommendations are answered, once its decisions were
taken and its write came back (or the latency budget ran out first).

A caller is answered once: with its decision, with ``None`` (its customer erased), or
with an error (its caller gets a fallback). A decision its caller was answered with was
shown and is published; one no caller was answered with was never shown, and what it
spent of the daily offer budgets goes back. Plain data and futures, no I/O: the
:class:`streams.api.batch_decisions.BatchDecisions` reads, decides, writes and publishes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from agents.moments import DecisionMoment
from schemas import NextBestOffer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class OfferRequest:
    """One caller's request for recommendations, waiting for its answer."""

    moment: DecisionMoment
    answer: asyncio.Future[NextBestOffer | None]
    decision: NextBestOffer | None = None  # once decided
    # its decision may be shown: it spends no daily offer budget, or its spending was
    # counted within the limits (or could not be counted: the limits are soft then)
    cleared: bool = False
    handed: bool = False  # its answered decision was handed over to be published
    # the customer's own timezone as the features decided on told it (None: not told):
    # whose days the caps its contact is recorded within count (agents.contact_ceilings)
    timezone: str | None = None


def shown_not_handed(batch: list[OfferRequest]) -> int:
    """The requests of ``batch`` answered with their decision (shown) that was not yet
    handed over to be published."""
    return sum(
        1
        for request in batch
        if request.decision is not None
        and not request.handed
        and answered_with(request.answer, request.decision)
    )


Decided = tuple[OfferRequest, NextBestOffer, bytes]  # a request, its decision, its JSON


def expire(batch: list[OfferRequest]) -> list[str]:
    """The latency budget ran out. Whoever is still waiting for features or a decision
    gets a fallback instead; a decision already taken is answered at once (it is being
    stored, and will be published: the customer sees these offers), unless its budget
    spending is still being counted (shown, it could take a budget past its limit).
    Returns the ids of the decisions answered so (shown before Redis said whether it
    recorded them)."""
    shown: list[str] = []
    for request in batch:
        if not request.answer.done():
            if request.decision is not None and request.cleared:
                request.answer.set_result(request.decision)
                shown.append(request.decision.decision_id)
            else:
                request.answer.set_exception(TimeoutError())
    return shown


def fail(request: OfferRequest, exc: Exception) -> None:
    """This request alone failed (its customer's keys or features): a fallback."""
    # by its kind alone: its message may quote what it failed on
    log.warning("a decision failed (its caller gets a fallback): %s", type(exc).__name__)
    request.answer.set_exception(exc)


def answered_with(answer: asyncio.Future[NextBestOffer | None], decision: NextBestOffer) -> bool:
    """Whether the caller was answered with ``decision`` (it was shown)."""
    return (
        answer.done()
        and not answer.cancelled()
        and answer.exception() is None
        and answer.result() is decision
    )


def sort_refused(
    decided: list[Decided], refused: AbstractSet[str]
) -> tuple[list[Decided], list[Decided]]:
    """Of the decisions whose contact broke a ceiling: those whose requests are to be
    decided again (their callers still waiting), and those their callers were answered
    with already (the latency budget ran out while they were stored), which were
    shown."""
    again: list[Decided] = []
    shown: list[Decided] = []
    for request, decision, raw in decided:
        if decision.decision_id not in refused:
            continue
        if answered_with(request.answer, decision):
            shown.append((request, decision, raw))
        elif not request.answer.done():
            request.decision = None  # the budget running out now gives a fallback
            again.append((request, decision, raw))
    return again, shown


def answer_stored(
    decided: list[Decided],
    kept: list[bool],
    faults: Mapping[str, Exception],
    failure: Exception | None,
    refused: AbstractSet[str],
) -> tuple[list[tuple[bytes, bytes]], set[str]]:
    """Answer the callers of the decisions taken, given what the write said of each
    (``kept``: stored; ``faults``: customers whose keys failed it; ``failure``: the whole
    write failed); returns the decisions to publish (those their callers were answered
    with, marked handed over: the caller publishes them at once) and the ids of those
    never shown, whose budget spending goes back. Refused decisions are left to
    :func:`sort_refused`."""
    answered = []
    unmade: set[str] = set()
    for (request, decision, raw), stored in zip(decided, kept, strict=True):
        if decision.decision_id in refused:
            if not answered_with(request.answer, decision):
                unmade.add(decision.decision_id)
            continue
        own = faults.get(decision.customer_id)  # their keys failed the write
        fault = own or failure
        if not stored and fault is None:  # erased since their features were read (or
            # its caller answered otherwise before it was recorded): nothing is sent
            if not request.answer.done():  # answered as anyone unknown (see
                request.answer.set_result(None)  # Recommender.recommend)
            if not answered_with(request.answer, decision):  # nor did its caller go
                unmade.add(decision.decision_id)  # with it when the budget ran out
            continue
        if not request.answer.done():
            if fault is None:
                request.answer.set_result(decision)
            elif own is not None:
                fail(request, own)
            else:
                request.answer.set_exception(fault)
        if answered_with(request.answer, decision):  # the customer sees it: publish it
            answered.append((decision.customer_id.encode(), raw))
            request.handed = True  # the caller hands ``answered`` over at once
        else:  # its caller got an error (a fallback): what it may have spent goes back
            unmade.add(decision.decision_id)
    return answered, unmade
