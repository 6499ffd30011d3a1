"""The difference of two proportions with a 95 % interval that stays honest for small
groups and rates of 0 or 1 (Newcombe's hybrid score interval), and its p-value.

Used by ``moments lift`` (:mod:`streams.control_lift`) over customers, and by
``moments evaluate`` (:mod:`streams.estimators`) over decision moments weighed by how
much a customer's moments tell apart.
"""

from __future__ import annotations

import math

Z95 = 1.959964


def wilson(k: float, n: float) -> tuple[float, float]:
    """The 95 % Wilson score interval of the proportion ``k/n``: never of zero width, and
    within [0, 1], however small ``n`` or extreme the rate (``k`` and ``n`` may be
    effective counts, not whole numbers)."""
    p, z2 = k / n, Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(max(p * (1 - p), 0.0) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def difference(kt: float, nt: float, kc: float, nc: float) -> tuple[float, list[float], float]:
    """Two proportions ``kt/nt - kc/nc``: the difference, its 95 % interval (Newcombe's
    hybrid score interval, from the two Wilson intervals: sound for small groups and
    rates of 0 or 1, where the normal approximation's collapses to a point) and the
    two-sided p-value (the pooled score test).

    >>> difference(3, 3, 3, 3)  # all converted in both: a wide interval, not [0, 0]
    (0.0, [-0.5615, 0.5615], 1.0)
    >>> difference(56, 70, 48, 80)[1]  # Newcombe (1998), Statistics in Medicine 17: 873
    [0.05243, 0.33387]
    """
    pt, pc = kt / nt, kc / nc
    (lt, ut), (lc, uc) = wilson(kt, nt), wilson(kc, nc)
    diff = pt - pc
    low = diff - math.sqrt((pt - lt) ** 2 + (uc - pc) ** 2)
    high = diff + math.sqrt((ut - pt) ** 2 + (pc - lc) ** 2)
    pooled = (kt + kc) / (nt + nc)
    se0 = math.sqrt(max(pooled * (1 - pooled), 0.0) * (1 / nt + 1 / nc))
    p_value = math.erfc(abs(diff) / se0 / math.sqrt(2)) if se0 > 0 else 1.0
    return diff, [round(low, 5), round(high, 5)], p_value
