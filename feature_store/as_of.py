"""Whether a read as of a past moment still finds every bucket its windows count.

Each resolution keeps only its newest buckets, counted back from the customer's newest
fact (``apply.lua``'s prune): once facts dated far enough after a moment are applied, a
read as of that moment misses the oldest buckets of its windows. ``moments rebuild``
reads each customer's risk features as of their last scored touchpoint, so it reads
them before such a fact is applied (:mod:`streams.rebuild_risk`). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable

from feature_store.derived import WINDOWS
from feature_store.facts import TOUCHPOINT_RESOLUTIONS

KEEP = {r.name: (r.size_ms, r.keep) for r in TOUCHPOINT_RESOLUTIONS}
# the windows the churn-risk figures count: daily (7 d, 30 d, and the decayed experience
# and affinity, which count the 30 d's days) and weekly (365 d)
RISK_WINDOWS = ("7d", "30d", "365d")


def window_cut(at_ms: int, newest_ms: int, windows: Iterable[str] = RISK_WINDOWS) -> bool:
    """Whether a read as of ``at_ms`` misses buckets of ``windows`` once a fact dated
    ``newest_ms`` was applied: the prune keeps the ``keep`` buckets ending with the
    newest one's, the window counts ``count`` ending with the moment's.

    >>> day = 86_400_000
    >>> at = 20_000 * day + 3_600_000  # 01:00
    >>> window_cut(at, at + day), window_cut(at, 20_002 * day - 1), window_cut(at, 20_002 * day)
    (False, False, True)
    >>> window_cut(at, at + 3 * 3_600_000, ("24h",)), window_cut(at, at - 40 * day)
    (True, False)
    """
    for name in windows:
        resolution, count = WINDOWS[name]
        size, keep = KEEP[resolution]
        first_counted = at_ms // size - count + 1
        if newest_ms // size - keep >= first_counted:  # pruned: up to newest - keep
            return True
    return False
