"""Customers' features from the replies that read their keys: a view of each (tombstone,
profile, windows, contacts, recent, opt-outs)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from feature_store.connection import hash_reply
from feature_store.features import CustomerFeatures, build_features
from feature_store.records import StoreConfig


class FeatureViews:
    """(erased?, features) from views, as of a moment given or the clock's now."""

    def __init__(self, config: StoreConfig, clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock

    def features_apart(
        self,
        customer_ids: Sequence[str],
        views: Sequence[Sequence[Any]],
        failed: Sequence[Exception | None],
        now: float | None,
        full: bool,
        faults: dict[str, Exception],
        home_timezone: str,
    ) -> list[tuple[bool, CustomerFeatures | None]]:
        """:meth:`features` of each customer apart: one whose view failed (``failed``)
        or whose values cannot be read as features goes in ``faults`` under their id, with
        ``(False, None)``, and the others are read."""
        out: list[tuple[bool, CustomerFeatures | None]] = []
        for customer_id, view, fault in zip(customer_ids, views, failed, strict=True):
            if fault is None:
                try:
                    out += self.features([view], now, full, home_timezone)
                    continue
                except Exception as exc:  # this customer's values: the others are read
                    fault = exc
            faults[customer_id] = fault
            out.append((False, None))
        return out

    def features(
        self, views: Sequence[Sequence[Any]], now: float | None, full: bool, home_timezone: str
    ) -> list[tuple[bool, CustomerFeatures | None]]:
        """(erased?, features) from (tombstone, profile, windows, contacts, recent,
        opt-outs) replies. A customer whose profile expired, but who withdrew, is known
        by their withdrawals alone."""
        now_ms = int((self._clock() if now is None else now) * 1000)
        c = self._config
        # at the clock's now: as far ahead as events are accepted (a read as of a past
        # moment counts nothing after it)
        ahead_ms = int(c.future_skew_s * 1000) if now is None else 0
        out: list[tuple[bool, CustomerFeatures | None]] = []
        for erased, *raw in views:
            if int(erased) or not (raw[0] or raw[4]):
                out.append((bool(int(erased)), None))
                continue
            profile, windows, contacts, optouts = (hash_reply(raw[i]) for i in (0, 1, 2, 4))
            profile = optouts | profile  # equal where both are (apply.lua writes both)
            features = build_features(profile, windows, raw[3], now_ms, contacts,
                                      c.thresholds, c.half_life_days, full,
                                      ahead_ms=ahead_ms,
                                      home_timezone=home_timezone)  # fmt: skip
            out.append((False, features))
        return out
