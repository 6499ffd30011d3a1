"""When each customer accepted each offer, kept in their profile for the contact policy
(an offer they accepted is not made to them again for its ``after_accepted_s``).

Written by the ``nbo`` learner (:mod:`streams.offer_learner`) for each ``accepted``
outcome it joined to the decision that made the offer (``lua/accepted.lua``): the newest
time is kept, so an outcome read twice changes nothing; an erased customer's outcome
writes nothing, nor does one of a customer with no profile. The field goes with the
profile (its lifetime, an erasure, an export), and is read with it
(:attr:`feature_store.ContactHistory.accepted`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from feature_store.connection import StoreConnection
from feature_store.facts import ts_ms
from feature_store.keys import CustomerKeys

# what recording one acceptance did: written; held already (the same time or a later
# one: an outcome read again); the customer erased; no profile to keep it in; or their
# profile is of another type (nothing written)
Recorded = Literal["recorded", "held", "erased", "no_profile", "corrupt"]
_REPLIES: dict[int, Recorded] = {1: "recorded", 0: "held", 2: "erased", 3: "no_profile"}


def recorded(reply: object) -> Recorded:
    """``accepted.lua``'s reply, by name.

    >>> recorded(1), recorded("0"), recorded(2), recorded(3)
    ('recorded', 'held', 'erased', 'no_profile')
    """
    return _REPLIES[int(str(reply))]


class OfferAcceptances:
    """The offers each customer accepted, and when (the newest time of each)."""

    def __init__(self, conn: StoreConnection, keys: CustomerKeys) -> None:
        self._conn = conn
        self._keys = keys

    async def record(
        self, accepted: Sequence[tuple[str, str, datetime]], first_only: bool = False
    ) -> list[Recorded]:
        """Record (customer id, offer id, when they accepted it) in one round trip, each
        atomically: the newest time per offer is kept; with ``first_only`` (copies of
        outcomes claimed before), only where none is held, so that a copy stamped later
        (sent again with its sending time) does not start the hold-back again. A customer
        whose profile Redis cannot serve as one (a key of another type) is ``"corrupt"``,
        and the others are recorded; raises
        :class:`~feature_store.records.StoreUnavailable` while Redis cannot serve
        (recording again is safe)."""
        if not accepted:
            return []
        calls = []
        for customer_id, offer_id, at in accepted:
            k = self._keys.for_customer(customer_id)
            args = (offer_id, ts_ms(at), "1" if first_only else "")
            calls.append(("accepted", (k.profile, k.tombstone), args))
        faults: dict[int, Exception] = {}
        replies = await self._conn.eval_mixed("accepted", calls, faults=faults)
        return ["corrupt" if i in faults else recorded(r) for i, r in enumerate(replies)]
