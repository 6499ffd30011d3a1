"""Alert ids: the name an alert is raised under, so that a replay, a retry or a worker
started again raises it under the same id, and one customer's are never another's.

An alert is named by its kind, its customer's keyed hash and the touchpoint that raised
it; a churn-risk crossing's own retention call by the crossing, whatever touchpoint it
is raised at. Pure.
"""

from __future__ import annotations

import uuid

from feature_store import CustomerFeatures
from feature_store.facts import ts_ms

NAMESPACE = uuid.UUID("2b0c5b8e-0f4e-4d55-b0a8-8f5f3c1d9e21")  # of the ids before (by event)
# the ids named per customer (a name of this namespace is never one of the older form's)
CUSTOMER_NAMESPACE = uuid.uuid5(NAMESPACE, "per-customer")


def intervention_id_for(kind: str, trigger_event_id: str, subject: str) -> str:
    """Deterministic, so a replayed event raises its alert under the same id; one per
    customer (``subject``: whose, by their keyed hash), as decision ids are
    (:func:`agents.moments.decision_id_for`).

    >>> intervention_id_for("save_desk", "e-1", "ab12") == intervention_id_for(
    ...     "save_desk", "e-1", "cd34")
    False
    """
    name = f"{kind}:{len(subject)}:{subject}:{trigger_event_id}"
    return str(uuid.uuid5(CUSTOMER_NAMESPACE, name))


def crossing_id_for(subject: str, features: CustomerFeatures) -> str:
    """The id of the retention call a churn-risk crossing raises of its own: named after
    the crossing, not the touchpoint it is raised at, so that a batch read again before it
    was confirmed (a worker stopped after Kafka took its alerts), ending at another
    touchpoint, raises it under the same id. A crossing is named by when the customer's
    risk band was last stored (it stores the band anew: the next crossing is named
    otherwise), or, for a customer with no band yet, by when they were first seen.

    >>> from datetime import UTC, datetime
    >>> import msgspec
    >>> low = CustomerFeatures(risk_band="low", risk_band_ms=1_700_000_000_000)
    >>> crossing_id_for("ab12", low) == crossing_id_for("ab12", low)
    True
    >>> later = msgspec.structs.replace(low, risk_band_ms=1_700_000_060_000)
    >>> crossing_id_for("ab12", low) == crossing_id_for("ab12", later)
    False
    >>> first = CustomerFeatures(first_seen=datetime(2026, 11, 23, tzinfo=UTC))
    >>> crossing_id_for("ab12", first) == crossing_id_for("cd34", first)
    False
    """
    if features.risk_band_ms is not None:
        since = f"band:{features.risk_band_ms}"
    elif features.first_seen is not None:
        since = f"first:{ts_ms(features.first_seen)}"
    else:
        since = "first"
    # never one of intervention_id_for's names: those have the subject's length here
    name = f"retention_call:crossing:{len(subject)}:{subject}:{since}"
    return str(uuid.uuid5(CUSTOMER_NAMESPACE, name))
