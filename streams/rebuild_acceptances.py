"""The offers customers accepted, that ``moments rebuild`` (:mod:`streams.rebuild`) keeps
again in their profiles (:mod:`feature_store.acceptances`), as the ``nbo`` learner kept
them live (:mod:`streams.offer_learner`).

Live, an ``accepted`` outcome counts when the learner joins it to its decision's stored
context: a decision of that customer (the context is under their keys) that made that
offer, read before the context expired (``context_ttl_s`` after the decision). The
rebuild joins it to the decision on ``next-best-offers`` instead: the contexts it
restores are only those still within their lifetime, but live kept the acceptance for
good. The accepted outcomes are read first and wait for their decisions, which are
replayed after them: memory grows with the offers taken (a few among the decisions
made), not with every decision. A decision id joins by its first record (live, the first
context stored is kept).

Of the outcomes joined, in the order they were read (as the learner read them), the
first of each (decision, offer) keeps the newest time; a later copy is kept only where
no time is held (``first_only``), so that one sent again later does not move it. One
dated more than :data:`~agents.learning.CLOCK_SKEW` before its decision is not kept (of
something else), but it is the first all the same: live, it was claimed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from agents.learning import CLOCK_SKEW
from feature_store.acceptances import OfferAcceptances
from feature_store.facts import ts_ms
from schemas import NextBestOffer, Outcome

# (customer id, offer id, when accepted), as OfferAcceptances.record takes it
Asked = tuple[str, str, datetime]
Kept = tuple[bool, Asked]  # an acceptance to keep: whether only where no time is held (a copy)


@dataclass(frozen=True, slots=True)
class Acceptance:
    """An ``accepted`` outcome read, the ``order``-th, waiting for its decision."""

    order: int
    customer_id: str
    decision_id: str
    offer_id: str
    at: datetime  # the outcome's ts
    read_ms: int  # when the live learner could read it at the earliest: when it was sent


class AcceptanceJoin:
    """The accepted outcomes read, joined to the decisions that made their offers.

    >>> from datetime import UTC, timedelta
    >>> from schemas import OfferScore
    >>> at = datetime(2026, 12, 1, 10, tzinfo=UTC)
    >>> def accepted(offer, customer="c1", minutes=1):
    ...     return Outcome(decision_id="d1", customer_id=customer, offer_id=offer,
    ...                    outcome="accepted", ts=at + timedelta(minutes=minutes))
    >>> join = AcceptanceJoin()
    >>> for outcome in (accepted("gold"), accepted("gold", minutes=9), accepted("silver"),
    ...                 accepted("gold", customer="c2")):
    ...     join.wait(outcome)
    >>> gold = OfferScore(offer_id="gold", score=1.0, propensity=1.0)
    >>> join.join(NextBestOffer(decision_id="d1", customer_id="c1", ts=at, channel="web",
    ...                         trigger_event_id=None, offers=[gold]))
    >>> [(copy, offer, when.minute) for copy, (_, offer, when) in join.kept(86_400_000)]
    [(False, 'gold', 1), (True, 'gold', 9)]
    """

    def __init__(self) -> None:
        # (customer id, decision id) -> the accepted outcomes naming that decision
        self._waiting: dict[tuple[str, str], list[Acceptance]] = {}
        self._joined: list[tuple[Acceptance, datetime]] = []  # with their decision's ts
        self._read = 0

    def wait(self, outcome: Outcome, sent_ms: int = 0) -> None:
        """Keep ``outcome`` (sent to Kafka at ``sent_ms``; 0: unknown, its ts counts)
        for its decision, if it says the offer was accepted."""
        if outcome.outcome != "accepted":
            return
        acceptance = Acceptance(
            self._read, outcome.customer_id, outcome.decision_id, outcome.offer_id,
            outcome.ts, sent_ms or ts_ms(outcome.ts),
        )  # fmt: skip
        self._read += 1
        self._waiting.setdefault((outcome.customer_id, outcome.decision_id), []).append(acceptance)

    def join(self, decision: NextBestOffer) -> None:
        """Join the outcomes waiting for ``decision`` (of its customer) that name an offer
        it made; they wait no more (a later record of its id joins none)."""
        waiting = self._waiting.pop((decision.customer_id, decision.decision_id), ())
        offered = {offer.offer_id for offer in decision.offers}
        self._joined += [(a, decision.ts) for a in waiting if a.offer_id in offered]

    def kept(self, lifetime_ms: int) -> list[Kept]:
        """The acceptances to keep, in the order their outcomes were read: of those joined
        to their decision within its context's lifetime (``lifetime_ms`` from it), all
        but those dated before it; the first of each (decision, offer) keeps the newest
        time, the later ones (copies) only where none is held.

        >>> from datetime import UTC, timedelta
        >>> at = datetime(2026, 12, 1, 10, tzinfo=UTC)
        >>> def joined(order, decided, minutes, read_ms=None):
        ...     when = at + timedelta(minutes=minutes)
        ...     acceptance = Acceptance(order, "c1", "d1", "gold", when,
        ...                             ts_ms(when) if read_ms is None else read_ms)
        ...     return acceptance, decided
        >>> join = AcceptanceJoin()
        >>> join._joined = [joined(1, at, 30), joined(0, at, -60)]  # dated an hour before
        >>> [(copy, when.minute) for copy, (_, _, when) in join.kept(3_600_000)]
        [(True, 30)]

        (the first is not kept, and the one after it is a copy all the same)

        >>> join._joined = [joined(0, at, 30, read_ms=ts_ms(at) + 3_600_000)]  # sent late
        >>> join.kept(3_600_000)  # live, the context had expired when it was read
        []
        """
        claimed: set[tuple[str, str, str]] = set()
        kept: list[Kept] = []
        for acceptance, decided in sorted(self._joined, key=lambda j: j[0].order):
            if acceptance.read_ms >= ts_ms(decided) + lifetime_ms:
                continue  # not joined live: not claimed either
            impression = (acceptance.customer_id, acceptance.decision_id, acceptance.offer_id)
            copy = impression in claimed
            claimed.add(impression)
            if acceptance.at >= decided - CLOCK_SKEW:
                kept.append((copy, (acceptance.customer_id, acceptance.offer_id, acceptance.at)))
        return kept


def runs(kept: Sequence[Kept], batch: int) -> Iterator[tuple[bool, list[Asked]]]:
    """``kept`` in order, in runs of copies or not, of at most ``batch`` each.

    >>> at = datetime(2026, 12, 1)
    >>> [(copy, len(run)) for copy, run in runs(
    ...     [(False, ("c", "a", at))] * 3 + [(True, ("c", "a", at))] + [(False, ("c", "b", at))],
    ...     batch=2)]
    [(False, 2), (False, 1), (True, 1), (False, 1)]
    """
    for copies, items in groupby(kept, key=lambda k: k[0]):
        asked = [item for _, item in items]
        for start in range(0, len(asked), batch):
            yield copies, asked[start : start + batch]


async def keep_again(
    acceptances: OfferAcceptances, kept: Sequence[Kept], batch: int, failed: set[str]
) -> int:
    """Record ``kept`` in the store, in order (a round trip a run); the number written.
    A customer whose profile Redis cannot serve as one (a key of another type) is added
    to ``failed``, and the others are recorded."""
    written = 0
    for copies, asked in runs(kept, batch):
        found = await acceptances.record(asked, first_only=copies)
        written += found.count("recorded")
        failed.update(c for (c, _, _), f in zip(asked, found, strict=True) if f == "corrupt")
    return written
