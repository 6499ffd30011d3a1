"""The context a decision is made in, as a fixed-length vector for the online models.

Features added after the first layout go at the end (``ADDED``), so that a model learned
on the shorter vector, and the contexts stored with older decisions, widen to this one
by zeros: see :meth:`agents.bandit.LinUCBOffers.widened` and :func:`widened`.

>>> from feature_store import CustomerFeatures
>>> x = context_vector(CustomerFeatures(segment="growth"), "web", "books")
>>> len(x) == DIMENSION, x[0], x[-1]
(True, 1.0, 0.0)
>>> context_vector(CustomerFeatures(), "sms", None)[-1]
1.0
"""

from __future__ import annotations

import math

from feature_store import CustomerFeatures

SEGMENTS = ("new", "model", "growth", "at_risk", "dangling")
CHANNELS = ("web", "email", "call")
CATEGORIES = ("electronics", "home", "fashion", "sports", "beauty", "books", "grocery", "travel")
ADDED = ("channel:sms",)  # since the first layout, in the order they were added
DEFAULT_VALUE_SCALE = 1000.0  # the customer value the context reads as 1 (capped at 3)
FIRST_LAYOUT = 1 + len(SEGMENTS) + len(CHANNELS) + 3 + 2 * len(CATEGORIES)
DIMENSION = FIRST_LAYOUT + len(ADDED)
IN_VIEW = slice(FIRST_LAYOUT - len(CATEGORIES), FIRST_LAYOUT)  # the category in view, one-hot


def value_scale(high_value: float) -> float:
    """The customer value the context reads as 1: twice the high-value line
    (``MOMENTS_HIGH_VALUE``), so that it means as much in yen as in euros.

    >>> value_scale(500.0), value_scale(50_000.0), value_scale(0.0)
    (1000.0, 100000.0, 1000.0)
    """
    return 2 * high_value if high_value > 0 else DEFAULT_VALUE_SCALE


def context_vector(
    features: CustomerFeatures | None,
    channel: str,
    category: str | None,
    value_scale: float = DEFAULT_VALUE_SCALE,
) -> list[float]:
    """Bias, segment, channel, value (over ``value_scale``, at most 3), experience,
    recency, tastes, and what is in view."""
    f = features or CustomerFeatures()
    x = [1.0]
    x += [1.0 if f.segment == s else 0.0 for s in SEGMENTS]
    x += [1.0 if channel == c else 0.0 for c in CHANNELS]
    x.append(min(f.value / value_scale, 3.0))
    x.append(0.6 if f.experience is None else f.experience)
    if f.last_purchase is None or f.last_seen is None:
        x.append(1.0)
    else:
        x.append(min(max((f.last_seen - f.last_purchase).days, 0) / 365.0, 1.0))
    tastes = f.category_affinity or {k: float(v) for k, v in f.categories.items()}
    total = sum(tastes.values()) or 1.0
    x += [tastes.get(c, 0.0) / total for c in CATEGORIES]
    x += [1.0 if category == c else 0.0 for c in CATEGORIES]
    x.append(1.0 if channel == "sms" else 0.0)
    return x


MAX_FEATURE = 1e3  # every feature of a context lies within a few units of 0


def learnable(x: list[float]) -> list[float] | None:
    """A stored context as this layout learns it: an older, shorter one widened by
    zeros, a newer one's added features dropped (they are at its end: the model learns
    from what it decides on); ``None`` for one no layout explains, or with a value that
    is not finite or beyond ``MAX_FEATURE`` (one would poison the model's matrices).

    >>> learnable([1.0] * (DIMENSION + 1)) == [1.0] * DIMENSION
    True
    >>> learnable([1.0, 0.0]), learnable([float("nan")] * DIMENSION), learnable([1e200] * DIMENSION)
    (None, None, None)
    """
    if len(x) < FIRST_LAYOUT:
        return None
    fitted = widened(x)[:DIMENSION]
    if not all(math.isfinite(v) and abs(v) <= MAX_FEATURE for v in fitted):
        return None
    return fitted


def widened(x: list[float]) -> list[float]:
    """A context stored before features were added, with zeros for them (a decision of
    that time was not made on those features).

    >>> len(widened([1.0] * FIRST_LAYOUT)) == DIMENSION, widened([1.0, 0.0])
    (True, [1.0, 0.0])
    """
    return x + [0.0] * (DIMENSION - len(x)) if FIRST_LAYOUT <= len(x) < DIMENSION else x
