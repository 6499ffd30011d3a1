"""How contact-centre screens hear of erasures without learning who else was erased.

Every alert a screen is sent carries ``customer_ref``, a keyed hash of the customer id
(:class:`CustomerRefs`), which names no one to whoever lacks the secret. When a customer
is erased, a screen that was sent alerts about them on this connection is told their id
and ref (it knows the id already); one that may still show their alerts from before it
resumed is told the ref alone, enough to drop the cards that carry it; any other screen
is told nothing (:class:`Screen`). A resumed screen is never told an id: what it says it
was shown before (its ``Last-Event-ID``) is its own word, which no process can check.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

# what the ref key is derived from the key-hashing secret with, so that a ref matches no
# other keyed hash of the same id (Redis key names, exports, logs)
REF_CONTEXT = b"moments: how contact-centre screens know a customer"


@dataclass(frozen=True, slots=True)
class Erased:
    """A customer was erased: screens drop the alerts about them."""

    customer_id: str
    customer_ref: str


class CustomerRefs:
    """The ``customer_ref`` of a customer id: 24 hex digits of a keyed hash, stable for
    one secret.

    >>> refs = CustomerRefs(b"a secret")
    >>> refs("cust-1") == refs("cust-1") != refs("cust-2"), len(refs("cust-1"))
    (True, 24)
    """

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the key-hashing secret must not be empty")
        self._key = hmac.new(secret, REF_CONTEXT, hashlib.blake2b).digest()

    def __call__(self, customer_id: str) -> str:
        return hmac.new(self._key, customer_id.encode(), hashlib.blake2b).digest()[:12].hex()


def with_customer_ref(raw: bytes, customer_ref: str) -> bytes:
    """An alert's JSON object with ``customer_ref`` added as its last member (so that it
    wins over any the record had).

    >>> with_customer_ref(b'{"intervention_id": "iv-1"}\\n', "ab12")
    b'{"intervention_id": "iv-1","customer_ref":"ab12"}'
    """
    body = raw.rstrip()
    if not body.endswith(b"}"):
        raise ValueError("an alert is a JSON object")
    return body[:-1] + b',"customer_ref":"' + customer_ref.encode() + b'"}'


class Screen:
    """Whom one connected screen may be showing, so that it hears only of the erasures
    that concern it, and learns no customer id from them.

    >>> screen = Screen(resumed=False)
    >>> screen.sent("c1")
    >>> screen.erasure(Erased("c1", "ref-1"))
    {'customer_id': 'c1', 'customer_ref': 'ref-1'}
    >>> screen.erasure(Erased("c2", "ref-2")) is None  # never shown: never told
    True
    >>> Screen(resumed=True).erasure(Erased("c2", "ref-2"))  # it may show them from before
    {'customer_ref': 'ref-2'}
    """

    def __init__(self, resumed: bool, limit: int = 10_000) -> None:
        self._may_show_others = resumed  # alerts from its last connection, about anyone
        self._limit = limit
        self._customers: set[str] = set()

    def sent(self, customer_id: str) -> None:
        """The screen was sent an alert about ``customer_id``. Past ``limit`` customers it
        is taken to show anyone (its memory of them stays bounded)."""
        if len(self._customers) < self._limit or customer_id in self._customers:
            self._customers.add(customer_id)
        else:
            self._may_show_others = True

    def erasure(self, erased: Erased) -> dict[str, str] | None:
        """What to tell the screen of ``erased``: id and ref when it was sent alerts
        about them (then the id is forgotten here); the ref alone when it may show them
        from before; otherwise nothing."""
        if erased.customer_id in self._customers:
            self._customers.discard(erased.customer_id)
            return {"customer_id": erased.customer_id, "customer_ref": erased.customer_ref}
        if self._may_show_others:
            return {"customer_ref": erased.customer_ref}
        return None


class RecentErasures:
    """The customers erased lately, with when (wall-clock seconds): the newest ``limit``
    of the last ``keep_s`` seconds (the ids stay in memory only, never in a log).

    >>> recent = RecentErasures(limit=2)
    >>> for customer_id in ("c1", "c2", "c3"): recent.add(customer_id, "ref-" + customer_id)
    >>> "c1" in recent, recent.customers(), recent.erasures()[0]
    (False, ['c2', 'c3'], Erased(customer_id='c2', customer_ref='ref-c2'))
    """

    def __init__(
        self, limit: int = 10_000, keep_s: float = 86_400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self._limit, self._keep_s, self._clock = limit, keep_s, clock
        self._when: dict[str, tuple[float, str]] = {}  # id -> (when, ref), oldest first
        self._changes = 0

    @property
    def keep_s(self) -> float:
        return self._keep_s

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def version(self) -> int:
        """A number that changes whenever the erasures held do (one added, or one let go
        of as too old or past the limit): what is built of them is built again then.

        >>> recent = RecentErasures(limit=1)
        >>> before = recent.version; recent.add("c1", "r1"); recent.version != before
        True
        """
        self._trim()
        return self._changes

    def add(self, customer_id: str, customer_ref: str, at: float | None = None) -> None:
        """The customer was erased ``at`` (default: now; never later than now). Older
        erasures are added first (a process that starts reads them in that order). The
        ref is kept too: a screen that resumes is told of every one by it."""
        now = self._clock()
        self._when.pop(customer_id, None)
        self._when[customer_id] = (now if at is None else min(at, now), customer_ref)
        self._changes += 1
        self._trim()

    def __contains__(self, customer_id: object) -> bool:
        self._trim()
        return customer_id in self._when

    def customers(self) -> list[str]:
        """The customers erased lately, oldest first."""
        self._trim()
        return list(self._when)

    def erasures(self) -> list[Erased]:
        """The erasures made lately, oldest first."""
        self._trim()
        return [Erased(customer_id, ref) for customer_id, (_, ref) in self._when.items()]

    def _trim(self) -> None:
        oldest = self._clock() - self._keep_s
        while self._when:
            first = next(iter(self._when))
            if len(self._when) <= self._limit and self._when[first][0] >= oldest:
                return
            del self._when[first]
            self._changes += 1
