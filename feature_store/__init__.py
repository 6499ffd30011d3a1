"""Everything Moments keeps in Redis, behind a handful of async methods."""

from feature_store.features import CustomerFeatures, RecentTouchpoint
from feature_store.store import (
    ApplyStatus,
    ErasureReceipt,
    FeatureStore,
    StoreConfig,
    StoreUnavailable,
)

__all__ = [
    "ApplyStatus",
    "CustomerFeatures",
    "ErasureReceipt",
    "FeatureStore",
    "RecentTouchpoint",
    "StoreConfig",
    "StoreUnavailable",
]
