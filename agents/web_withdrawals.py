"""The customers one API process saw withdraw their consent to the web (pure, bounded).

A fallback answer reads nothing from Redis, so it cannot know the customer's consent,
and it shows the web's default offers to anyone, a customer who withdrew consent to the
web (or to ``all``) included. This remembers, for the fallbacks of the process that
took them, the web withdrawals (and grants) posted to its own ``POST /v1/events``: a
customer it saw withdraw is answered ``suppressed:consent:web`` by its fallbacks. A
withdrawal sent straight to Kafka, or to another API process, or before this process
started, is not known here.

Customers are named by their keyed hash (``FeatureStore.pseudonym``), never their id.
Bounded by ``most`` customers (100,000 by default, some 15 MB): past that, those whose
withdrawal was seen longest ago are forgotten first. A grant lifts a remembered
withdrawal only when dated more than the grant lead (15 minutes) after it, as in Redis.

>>> from datetime import UTC, datetime
>>> from schemas import Consent
>>> at = datetime(2026, 12, 6, 12, tzinfo=UTC)
>>> seen = WebWithdrawals(most=2)
>>> seen.saw("s1", Consent(event_id="e", customer_id="c1", ts=at, channel="all",
...                        granted=False))
>>> seen.withdrawn("s1"), seen.withdrawn("s2")
(True, False)
>>> seen.saw("s1", Consent(event_id="g", customer_id="c1", ts=at, channel="web",
...                        granted=True))  # within 15 minutes of it: still withdrawn
>>> seen.withdrawn("s1")
True
"""

from __future__ import annotations

from feature_store.facts import GRANT_LEAD_MS, touchpoint_updates, ts_ms
from schemas import TouchpointEvent

CUSTOMERS = 100_000  # customers held per process
WEB = "consent:web"


def web_consent(event: TouchpointEvent) -> str | None:
    """``"0"`` when ``event`` withdraws consent to the web (itself or ``all``), ``"1"``
    when it grants it, else ``None``."""
    for op, field, value in touchpoint_updates(event):
        if op == "latest" and field == WEB:
            return value
    return None


class WebWithdrawals:
    """Keyed hashes of customers seen withdrawing web consent, with when (ms)."""

    def __init__(self, most: int = CUSTOMERS) -> None:
        self._most = most
        self._at: dict[str, int] = {}  # subject -> the withdrawal's time; newest seen last

    def __len__(self) -> int:
        return len(self._at)

    def saw(self, subject: str, event: TouchpointEvent) -> None:
        """Take ``event`` of the customer named ``subject`` (their keyed hash) into
        account: a web withdrawal is remembered, a grant dated far enough after it lifts it."""
        value = web_consent(event)
        at = ts_ms(event.ts)
        if value == "0":
            before = self._at.pop(subject, at)
            self._at[subject] = max(at, before)
            while len(self._at) > self._most:
                del self._at[next(iter(self._at))]  # the one seen longest ago
        elif value == "1" and at - GRANT_LEAD_MS > self._at.get(subject, at):
            del self._at[subject]

    def withdrawn(self, subject: str) -> bool:
        """Whether the customer named ``subject`` was seen withdrawing web consent."""
        return subject in self._at
