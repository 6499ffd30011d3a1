"""Redis key layout. Keys carry a keyed hash of the customer id, never the id itself.

Every key of one customer shares the ``{…}`` hash tag, so one customer lives in one
Redis Cluster slot and one Lua call can touch all of its keys.

>>> keys = CustomerKeys(b"secret", prefix="m")
>>> k = keys.for_customer("cust-1")
>>> k.profile.startswith("m:{") and "cust-1" not in k.profile
True
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeySet:
    tag: str
    profile: str  # lifetime figures, consent, contact history
    windows: str  # time buckets for rolling windows
    seen: str  # fact ids applied (idempotency) and decisions emitted
    recent: str  # the newest touchpoints
    contacts: str  # time buckets of contacts Moments made (offers shown, interventions)
    decisions: str  # the customer's recent decision ids
    tombstone: str  # present once the customer was erased
    outcomes: str  # outcomes claimed for learning, per shown offer (decision, offer)
    decision_index: str  # every decision whose context may still be kept, by when stored
    optouts: str  # the customer's withdrawals (consent, email): kept after the profile
    outcome_times: str  # when each outcome in ``outcomes`` was claimed (to drop old ones)
    erasure: str  # beside the tombstone: which keys the erasure removed (no data)
    # beside the tombstone: the withdrawals the erasure kept (their names alone), so that
    # an erased customer who had said "stop" is not contacted as a stranger
    suppression: str

    def all(self) -> tuple[str, ...]:
        """Every key that holds data about the customer (not the tombstone and what is
        kept beside it, ``erasure`` and ``suppression``, nor the decisions' contexts,
        which ``decisions`` and ``decision_index`` name)."""
        return (
            self.profile, self.windows, self.seen, self.recent, self.contacts, self.decisions,
            self.outcomes, self.decision_index, self.optouts, self.outcome_times,
        )  # fmt: skip

    def context(self, decision_id: str) -> str:
        """The key of one decision's context."""
        return f"{self.profile[:-2]}:ctx:{decision_id}"

    def claim(self, trigger: str) -> str:
        """The key of the claim on a touchpoint's decision (``trigger``: its fact id),
        while it is being decided (:meth:`feature_store.DecisionLog.own`)."""
        return f"{self.profile[:-2]}:own:{trigger}"


KEY_KINDS = (
    "profile", "windows", "seen", "recent", "contacts", "decisions", "outcomes", "decision_index",
    "optouts", "outcome_times",
)  # fmt: skip


class CustomerKeys:
    """Key names of customers. The keys of the customers asked for lately are kept in
    memory (a decision reads and then writes the same customer's keys: one keyed hash
    instead of several): at most ``remember`` of them, and none for longer than twice
    ``remember_s`` seconds, however often it is asked for (then its keyed hash is
    computed anew), so that a customer id does not linger in a process's memory after
    their erasure; :meth:`forget` drops one customer's at once. Under a running event
    loop a timer drops them on time even if no lookup follows.
    """

    def __init__(
        self,
        secret: bytes,
        prefix: str = "m",
        remember: int = 4096,
        remember_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not secret:
            raise ValueError("the key-hashing secret must not be empty")
        self._secret = secret
        self._prefix = prefix
        self._remember = remember
        self._remember_s = remember_s
        self._clock = clock
        self._renew_at = clock() + remember_s
        self._recent: dict[str, KeySet] = {}
        self._older: dict[str, KeySet] = {}  # those of the previous period, going next
        self._timer: asyncio.TimerHandle | None = None  # the next purge, while any are kept

    def pseudonym(self, customer_id: str) -> str:
        """A stable keyed hash of the customer id (safe for logs and key names)."""
        digest = hmac.new(self._secret, customer_id.encode(), hashlib.blake2b).digest()
        return digest[:12].hex()

    def for_customer(self, customer_id: str) -> KeySet:
        if self._clock() >= self._renew_at:
            self._purge()
        keys = self._recent.get(customer_id)
        if keys is None:
            # one of the previous period's stays there, to go at the next purge: a lookup
            # does not keep it longer
            keys = self._older.get(customer_id)
            if keys is not None:
                return keys
            keys = self.for_subject(self.pseudonym(customer_id))
            if len(self._recent) >= self._remember:  # the oldest goes first
                del self._recent[next(iter(self._recent))]
            self._recent[customer_id] = keys
            if self._timer is None:
                self._arm()
        return keys

    def _purge(self) -> None:
        """A new period (if one began): the older keys go, the recent ones become older;
        all go once a whole period has passed since the one due ended. Periods follow one
        another at fixed times (a late purge does not lengthen the next), so that keys
        kept in one period are gone within two."""
        now = self._clock()
        if now < self._renew_at:
            return
        if now >= self._renew_at + self._remember_s:
            self._recent, self._older = {}, {}
            self._renew_at = now + self._remember_s
        else:
            self._older, self._recent = self._recent, {}
            self._renew_at += self._remember_s

    def _arm(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: lookups purge
            return
        self._timer = loop.call_later(max(self._renew_at - self._clock(), 0.0), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._purge()
        if self._recent or self._older:
            self._arm()

    def forget(self, customer_id: str) -> None:
        """Keep nothing in memory about the customer (after an erasure)."""
        self._recent.pop(customer_id, None)
        self._older.pop(customer_id, None)

    def for_subject(self, tag: str) -> KeySet:
        """The keys of the customer whose pseudonym is ``tag``."""
        base = f"{self._prefix}:{{{tag}}}"
        return KeySet(
            tag,
            f"{base}:p",
            f"{base}:w",
            f"{base}:seen",
            f"{base}:recent",
            f"{base}:c",
            f"{base}:dec",
            f"{base}:erased",
            f"{base}:out",
            f"{base}:ctxidx",
            f"{base}:optout",
            f"{base}:outt",
            f"{base}:erasure",
            f"{base}:supp",
        )

    def probe_key(self) -> str:
        """A key named as a customer's (no customer's: their tags are hashes), on which
        the start check asks what the user may run; never written."""
        return f"{self._prefix}:{{permissions}}:p"

    def profile_pattern(self) -> str:
        """A SCAN pattern matching every customer's profile key."""
        return f"{self._prefix}:{{*}}:p"

    @staticmethod
    def is_profile(key: str) -> bool:
        """Whether a key :meth:`profile_pattern` matched is a customer's profile.

        >>> CustomerKeys.is_profile("m:{ab12}:p"), CustomerKeys.is_profile("m:{ab12}:ctx:p")
        (True, False)
        """
        return key.endswith("}:p")

    @staticmethod
    def subject_of(key: str) -> str:
        """The pseudonym in a customer key: ``m:{<tag>}:p`` -> ``<tag>``."""
        return key[key.index("{") + 1 : key.index("}")]
