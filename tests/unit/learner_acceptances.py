"""A stand-in for ``store.acceptances`` in the learners' unit tests: keeps the newest
time each customer accepted each offer, as ``lua/accepted.lua`` does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from feature_store.acceptances import Recorded


class Acceptances:
    def __init__(self, erased: frozenset[str] = frozenset()) -> None:
        self.erased = erased
        self.kept: dict[tuple[str, str], datetime] = {}
        self.asked: list[tuple[str, str, datetime]] = []

    async def record(
        self, accepted: Sequence[tuple[str, str, datetime]], first_only: bool = False
    ) -> list[Recorded]:
        found: list[Recorded] = []
        for customer_id, offer_id, at in accepted:
            self.asked.append((customer_id, offer_id, at))
            if customer_id in self.erased:
                found.append("erased")
                continue
            held = self.kept.get((customer_id, offer_id))
            if held is not None and (first_only or held >= at):
                found.append("held")
                continue
            self.kept[(customer_id, offer_id)] = at
            found.append("recorded")
        return found
