"""What the feature store takes and gives back, as plain data, and its settings."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

import msgspec

from feature_store.derived import SegmentThresholds
from feature_store.money import ONE_CURRENCY, Money


class StoreUnavailable(RuntimeError):
    """Redis could not be reached or timed out; the caller should retry later."""


class StoreRefused(StoreUnavailable):
    """Redis refuses a command the store needs: its user lacks the permission (an ACL
    without ``+@scripting``, say) or the command was renamed away. Its operator must
    fix that; meanwhile it is waited out as an outage, not taken for bad input."""


class StoreFull(StoreUnavailable):
    """Redis answers but takes no writes: it is full (``maxmemory`` reached under
    ``noeviction``) or a read-only replica. Reads still answer (who is erased, say)."""


class RepliesUnknown(StoreUnavailable):
    """The connection went before the replies to some calls came: Redis may have run
    them. ``unanswered``: their indices in the round trip."""

    def __init__(self, message: str, unanswered: Sequence[int]) -> None:
        super().__init__(message)
        self.unanswered = tuple(unanswered)


class ErasureUnknown(StoreUnavailable):
    """An erasure's script was sent, and Redis did not answer in time (or the connection
    went before its reply): it may have run, or may yet run once Redis answers.
    ``subject``: the customer's keyed hash, as an erasure record names them."""

    def __init__(self, message: str, subject: str) -> None:
        super().__init__(message)
        self.subject = subject


class ApplyStatus(enum.IntEnum):
    DUPLICATE = 0
    APPLIED = 1
    DUPLICATE_DECIDED = 2  # seen before, and its decision was already emitted
    ERASED = 3  # the customer was erased: nothing is kept but a withdrawal (see erase.lua)
    # dated the store's TTL or longer ago: not applied (its profile would have expired),
    # only a withdrawal or grant it carries is kept; remembered like an applied fact
    EXPIRED = 4
    # a contact that would break one of its ceilings (a cap, a cool-down): not applied
    OVER_CEILING = 5
    # seen before, and its decision recorded but not known to be sent (a worker stopped in
    # between): the recorded decision is sent again, not decided again
    DUPLICATE_RECORDED = 6
    # a fact for the erased only (Fact.erased_only) whose customer is not erased: nothing
    # is written
    NOT_ERASED = 7


# A fact dated at most this long before it is applied counts as happening when it is
# applied (a live event, dated a little early by a lagging worker or a skewed clock):
# its keys live the whole TTL from then. An older one (a replay, `moments rebuild`)
# counts from its own time, so that the keys expire the TTL after the customer's newest
# activity. (lua/apply.lua, reference.py)
LIVE_LAG_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A decision to remember: its context for learning, and the touchpoint it answered."""

    customer_id: str
    decision_id: str
    ts_ms: int
    context: bytes  # the decision as JSON (kept without its customer_id), else opaque
    trigger_event_id: str | None = None
    offered: bool = True  # False: it offered nothing, its context is kept a day
    # False: recorded before it is sent (a worker's): its trigger is marked recorded, and
    # marked decided once it was sent (recorded again, sent)
    sent: bool = True


@dataclass(frozen=True, slots=True)
class BudgetSpend:
    """Offers with a daily budget that one decision showed, on its day (the catalogue's)."""

    day: date
    decision_id: str
    offer_ids: tuple[str, ...]
    # every offer the decision showed, limited or not (empty: ``offer_ids``): with the
    # decision id, what it is counted under (feature_store.budgets.counted_id)
    shown: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PendingRisk:
    """A churn-risk snapshot waiting for its label, as a sweep finds it."""

    subject: str  # the customer's pseudonym: a sweep never needs the id itself
    snapshot: str  # JSON, as stored
    last_seen_ms: int | None
    seen_ms: tuple[int, ...] = ()  # when their touchpoints the store lists happened


class ErasureReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """What an erasure removed; names the customer only by its keyed hash."""

    subject: str
    keys_removed: int
    kinds: list[str]
    blocked: bool = False
    erased_at_ms: int | None = None  # when the customer was first erased (when blocked)
    replicas_confirmed: int | None = None  # replicas that confirmed it (when waited for)
    # the withdrawals kept beside the tombstone, by name (facts.WITHDRAWAL_FIELDS)
    withdrawals_kept: list[str] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StoreConfig:
    secret: bytes
    prefix: str = "m"
    ttl_s: int = 400 * 86400  # keys expire after this long without the customer's activity
    # ...or this long after the latest offer shown or email sent, for one with no activity
    # of their own (someone only mailed): above the weekly caps and cool-downs
    contact_only_ttl_s: int = 30 * 86400
    # ...or this long, for a stranger, whom Moments knows only by its own decisions (an
    # id a recommendation was asked for, that no touchpoint named: feature_store.strangers)
    stranger_ttl_s: int = 86400
    dedupe_horizon_s: int = 8 * 86400  # keep above the touchpoints topic's retention
    recent_len: int = 20
    decisions_kept: int = 20
    context_ttl_s: int = 7 * 86400  # how long an outcome can still be joined to its decision
    # a decision that offered nothing (no outcome can teach from it): only for the profile
    unoffered_context_ttl_s: int = 86400
    # how long an erased customer stays blocked: at least the dedupe horizon, and above
    # the topics' retention (MOMENTS_TOMBSTONE_DAYS)
    tombstone_ttl_s: int = 400 * 86400
    thresholds: SegmentThresholds = field(default_factory=SegmentThresholds)
    half_life_days: float = 14.0
    money: Money = ONE_CURRENCY  # what purchases are counted in
    # how far ahead of the clock an event may be dated (MOMENTS_MAX_FUTURE_SKEW_S): reads
    # at the clock's now count buckets that far ahead as current
    future_skew_s: float = 900.0

    @property
    def contact_only_life_s(self) -> int:
        """The contact-only TTL, never beyond the store's."""
        return min(self.contact_only_ttl_s, self.ttl_s)

    @property
    def stranger_life_s(self) -> int:
        """The stranger TTL, never beyond the contact-only one."""
        return min(self.stranger_ttl_s, self.contact_only_life_s)


Observer = Callable[[str, float], None]
