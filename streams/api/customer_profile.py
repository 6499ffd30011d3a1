"""The answer of ``GET /v1/customers/{id}``: what a contact-centre agent or analyst needs
of one customer (pure; the view reads the features and decisions and scores the risk).

>>> from feature_store import CustomerFeatures
>>> body = customer_profile("c1", CustomerFeatures(), [], 0.123456, 3, "warming_up", False,
...                         "EUR")
>>> body["segment"], body["risk"], body["risk_model"], body["currency"]
('new', 0.1235, {'version': 3, 'basis': 'warming_up'}, 'EUR')
>>> unsubscribed = CustomerFeatures(consent={"email": True, "sms": False},
...                                 email_subscribed=False)
>>> customer_profile("c1", unsubscribed, [], 0.1, 3, "model", False)["consent"]
{'email': False, 'sms': False}
"""

from __future__ import annotations

from typing import Any

import msgspec

from feature_store import CustomerFeatures


def customer_profile(
    customer_id: str,
    features: CustomerFeatures,
    decisions: list[Any],
    risk: float,
    risk_version: int,
    risk_basis: str,
    control_group: bool,
    currency: str | None = None,
) -> dict[str, Any]:
    """The profile of ``customer_id``: their features, the churn ``risk`` scored now (by
    the model of ``risk_version``, on ``risk_basis``), and their recent ``decisions``;
    ``currency``: what value and spend count in (None: not configured)."""
    body = msgspec.to_builtins(features)
    return {
        "customer_id": customer_id,
        "segment": features.segment,
        "value": features.value,
        "currency": currency,
        "risk": round(risk, 4),
        "risk_model": {"version": risk_version, "basis": risk_basis},
        "consent": consent_shown(features),
        "timezone": features.timezone,
        "control_group": control_group,
        "features": body,
        "recent_touchpoints": body["recent"],
        "recent_decisions": decisions,
    }


def consent_shown(features: CustomerFeatures) -> dict[str, bool]:
    """Consent per channel as it binds: an unsubscribe after an email grant withdraws
    email until the customer grants it again (the features keep both apart)."""
    consent = dict(features.consent)
    if features.email_subscribed is False:
        consent["email"] = False
    return consent
