"""Everything Moments keeps in Redis, behind :class:`FeatureStore`'s async methods and
its narrow sub-interfaces: callers see no Redis key, command or script."""

from feature_store.card_calls import card_call_facts
from feature_store.contact_facts import contact_id, intervention_fact, offers_shown_fact
from feature_store.derived import SegmentThresholds
from feature_store.facts import ContactCeilings, Fact, risk_fact, touchpoint_fact
from feature_store.features import (
    ContactHistory,
    CustomerFeatures,
    RecentTouchpoint,
    recent_touchpoint_of,
)
from feature_store.layout import LAYOUT, UNMARKED, LayoutMismatch, SecretMismatch
from feature_store.records import (
    ApplyStatus,
    BudgetSpend,
    DecisionRecord,
    ErasureReceipt,
    ErasureUnknown,
    PendingRisk,
    RepliesUnknown,
    StoreConfig,
    StoreFull,
    StoreRefused,
    StoreUnavailable,
)
from feature_store.redis_errors import login_refused, no_such_database
from feature_store.redis_memory import RedisMemory, evicting_policy, fullest
from feature_store.redis_server import RedisDurability
from feature_store.store import FeatureStore
from feature_store.subject_access import CustomerRecord

__all__ = [
    "LAYOUT",
    "UNMARKED",
    "ApplyStatus",
    "BudgetSpend",
    "ContactCeilings",
    "ContactHistory",
    "CustomerFeatures",
    "CustomerRecord",
    "DecisionRecord",
    "ErasureReceipt",
    "ErasureUnknown",
    "Fact",
    "FeatureStore",
    "LayoutMismatch",
    "PendingRisk",
    "RecentTouchpoint",
    "RedisDurability",
    "RedisMemory",
    "RepliesUnknown",
    "SecretMismatch",
    "SegmentThresholds",
    "StoreConfig",
    "StoreFull",
    "StoreRefused",
    "StoreUnavailable",
    "card_call_facts",
    "contact_id",
    "evicting_policy",
    "fullest",
    "intervention_fact",
    "login_refused",
    "no_such_database",
    "offers_shown_fact",
    "recent_touchpoint_of",
    "risk_fact",
    "touchpoint_fact",
]
