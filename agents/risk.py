"""Churn / lapse risk: an online logistic regression with delayed labels and drift fallback.

Pure (no I/O). A *snapshot* of a customer's features is kept as a :class:`PendingSnapshot`;
it becomes a positive example when the customer churns (cancel call, consent withdrawn for
``all``, email unsubscribe) or lapses (``lapse_days`` without any touchpoint, the quiet spell
starting within the horizon) and a negative one once the horizon has passed without either.
:func:`label_for` decides this from the touchpoints the caller sees; :func:`label_by_clock`
lets a periodic sweep settle the customers who never come back.

:class:`ChurnRisk` is a river ``StandardScaler`` followed by a river ``LogisticRegression``,
learned one example at a time. Quality is measured by progressive validation (each example
is scored *before* it is learned) with river ``LogLoss`` and ``ROCAUC``; the absolute error
of the model is fed to river ``ADWIN``. When ADWIN sees the error rise, the model is reset
and :func:`baseline_risk` answers (``reason == "drift_detected"``) until the new model has
learned ``warmup`` examples; the first ``warmup`` examples are answered the same way
(``reason == "warming_up"``). State checkpoints to plain JSON-able data (no pickle: a
snapshot cannot run code when it is loaded).

>>> model = ChurnRisk(warmup=2)
>>> model.reason, model.using_baseline
('warming_up', True)
>>> for _ in range(20):
...     model.learn_one({"experience": 0.1, "complaints_30d": 3.0}, True)
...     model.learn_one({"experience": 0.9, "complaints_30d": 0.0}, False)
>>> model.reason
'model'
>>> unhappy = model.predict_one({"experience": 0.1, "complaints_30d": 3.0})
>>> happy = model.predict_one({"experience": 0.9, "complaints_30d": 0.0})
>>> unhappy > 0.5 > happy
True
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from river import drift, linear_model, metrics, optim, preprocessing, utils

from agents.learning import QUALITY_WINDOW
from feature_store.features import CustomerFeatures
from schemas import Call, Consent, Email, TouchpointEvent

DAY_MS = 86_400_000
UNKNOWN_EXPERIENCE = 0.6  # assumed when there is no signal yet (as the segment thresholds do)
MAX_DAYS = 365.0  # recency features are capped here
MAX_RISK_FEATURE = 1e9  # far beyond any count, day or log the workers compute
LAPSE_DAYS = 45
HORIZON_DAYS = 30


# --- features and the baseline ------------------------------------------------------------


def _days_since(then: datetime | None, now: datetime, missing: float) -> float:
    if then is None:
        return missing
    return min(max((now - then).total_seconds() / 86_400, 0.0), MAX_DAYS)


def risk_features(features: CustomerFeatures, now: datetime) -> dict[str, float]:
    """The small numeric view of a customer the risk model learns from (always the same keys),
    as of ``now``: quiet since their last touchpoint (a profile looked at).

    >>> from datetime import UTC
    >>> x = risk_features(CustomerFeatures(), datetime(2026, 11, 23, tzinfo=UTC))
    >>> x["experience"], x["days_since_seen"], x["days_since_purchase"], x["unsubscribed"]
    (0.6, 0.0, 365.0, 0.0)
    """
    return _risk_features(features, now, features.last_seen)


def risk_features_at(
    features: CustomerFeatures, at: datetime, event_id: str = ""
) -> dict[str, float]:
    """:func:`risk_features` as of the touchpoint ``event_id`` at ``at``, which ``features``
    already hold: the days since the customer was seen are those before it, the quiet spell
    it ended (as of its own time, the figure is about the customer, not how late it was read).

    >>> from datetime import UTC
    >>> from feature_store.features import RecentTouchpoint
    >>> day = lambda d: datetime(2026, 11, d, tzinfo=UTC)
    >>> back = CustomerFeatures(last_seen=day(23), recent=[
    ...     RecentTouchpoint(day(23), "web_click", "e2"),
    ...     RecentTouchpoint(day(3), "web_click", "e1")])
    >>> risk_features_at(back, day(23), "e2")["days_since_seen"]
    20.0
    """
    before = (r.ts for r in features.recent if r.ts < at and r.event_id != event_id)
    return _risk_features(features, at, max(before, default=None))


def _risk_features(
    features: CustomerFeatures, now: datetime, last_seen: datetime | None
) -> dict[str, float]:
    month = features.activity.get("30d", {})
    week = features.activity.get("7d", {})
    withdrawn = sum(1 for granted in features.consent.values() if not granted)
    return {
        "experience": UNKNOWN_EXPERIENCE if features.experience is None else features.experience,
        "complaints_30d": float(features.complaints_30d),
        "negative_mentions_30d": float(features.negative_mentions_30d),
        "log_negative_reach_30d": math.log1p(max(features.negative_reach_30d, 0)),
        "days_since_seen": _days_since(last_seen, now, 0.0),
        "log_activity_30d": math.log1p(sum(month.values())),
        "log_activity_7d": math.log1p(sum(week.values())),
        "log_value": math.log1p(max(features.value, 0.0)),
        "purchases_365d": float(features.purchases_365d),
        "days_since_purchase": _days_since(features.last_purchase, now, MAX_DAYS),
        "unsubscribed": 1.0 if _unsubscribed(features) else 0.0,
        "cancel_calls": float(features.call_reasons.get("cancel", 0)),
        "consent_withdrawn": float(withdrawn),
    }


def _unsubscribed(features: CustomerFeatures) -> bool:
    """Unsubscribed from email now: a grant since lifts it (as the contact policy reads
    it); an unsubscribe from before Moments kept the flag counts while no grant came."""
    if features.email_subscribed is not None:
        return not features.email_subscribed
    return features.emails.get("unsubscribed", 0) > 0


def learnable_example(x: Mapping[str, float]) -> bool:
    """Whether the risk model may learn from ``x``: every figure finite and within
    ``MAX_RISK_FEATURE`` (one huge figure would make every weight NaN).

    >>> learnable_example({"complaints_30d": 2.0}), learnable_example({"complaints_30d": 1e200})
    (True, False)
    """
    return all(math.isfinite(v) and abs(v) <= MAX_RISK_FEATURE for v in x.values())


def baseline_risk(x: Mapping[str, float]) -> float:
    """A transparent additive heuristic, clipped to 0.01..0.99 (missing keys: neutral).

    Poor experience, recent complaints and negative mentions, going quiet, an unsubscribe, a
    cancel call and withdrawn consent add risk; purchases in the last year take some away.

    >>> baseline_risk({}) < baseline_risk({"experience": 0.1, "complaints_30d": 2.0})
    True
    """
    experience = min(max(x.get("experience", UNKNOWN_EXPERIENCE), 0.0), 1.0)
    risk = (
        0.05
        + 0.30 * (1.0 - experience)
        + 0.10 * min(x.get("complaints_30d", 0.0), 3.0)
        + 0.05 * min(x.get("negative_mentions_30d", 0.0), 3.0)
        + 0.25 * min(x.get("days_since_seen", 0.0) / LAPSE_DAYS, 1.0)
        + 0.30 * min(x.get("unsubscribed", 0.0), 1.0)
        + 0.30 * min(x.get("cancel_calls", 0.0), 1.0)
        + 0.05 * min(x.get("consent_withdrawn", 0.0), 4.0)
        - 0.02 * min(x.get("purchases_365d", 0.0), 5.0)
    )
    return min(max(risk, 0.01), 0.99)


# --- the model ----------------------------------------------------------------------------

KIND = "churn-risk-logreg"


def exact_rocauc(scored: Iterable[tuple[bool, float]]) -> float | None:
    """ROC AUC of (label, score) pairs: the chance that a positive scores above a
    negative, a tie counting a half (Mann-Whitney); None without both classes. Exact:
    binning the scores (as river's ROCAUC does, in 50 thresholds) takes the predictions
    of a rare churn, all within a few per cent, for ties.

    >>> exact_rocauc([(True, 0.3), (False, 0.3), (True, 0.8), (False, 0.1)])
    0.875
    >>> exact_rocauc([(True, 0.011), (True, 0.019), (False, 0.012), (False, 0.010)])
    0.75
    >>> exact_rocauc([(False, 0.2)]) is None
    True
    """
    ordered = sorted(scored, key=lambda pair: pair[1])
    positives = sum(label for label, _ in ordered)
    negatives = len(ordered) - positives
    if not positives or not negatives:
        return None
    rank_sum, first = 0.0, 0
    while first < len(ordered):  # a run of equal scores shares its average rank
        end = first
        while end < len(ordered) and ordered[end][1] == ordered[first][1]:
            end += 1
        rank_sum += (first + 1 + end) / 2 * sum(label for label, _ in ordered[first:end])
        first = end
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


class ChurnRisk:
    """Churn/lapse probability: river ``StandardScaler | LogisticRegression`` with a fallback.

    * ``predict_one(x)`` is the model's probability of churn/lapse, or :func:`baseline_risk`
      while the current model has learned fewer than ``warmup`` examples (at the start and
      after each drift).
    * ``learn_one(x, y)`` first scores ``x`` with what ``predict_one`` would have answered
      (progressive validation: ``logloss`` and ``rocauc`` are of the served prediction), then,
      if the model was serving, feeds its absolute error ``|y - p|`` (0..1) to ADWIN. A drift
      that *raises* the error resets scaler and regression (ADWIN also reports the error
      falling, e.g. as the model keeps learning; that is not a reason to fall back), counts
      ``drifts`` and serves the baseline again. Only then is the example learned.
    * ``to_dict`` / ``from_dict`` keep the configuration, the scaler's running statistics, the
      regression's weights, intercept and optimizer step count, and the counters: restored
      predictions are identical. ADWIN and the progressive-validation metrics restart empty
      on restore (they describe the stream since the process started); ``drifts``,
      ``examples`` and the warm-up progress are kept, so ``reason`` survives.
    """

    def __init__(
        self,
        warmup: int = 200,
        lr: float = 0.05,
        l2: float = 0.0,
        drift_delta: float = 0.002,
    ) -> None:
        self.warmup = warmup
        self.lr = lr
        self.l2 = l2
        self.drift_delta = drift_delta
        self.examples = 0  # learned in total
        self.learned = 0  # learned by the current model (since the start or the last drift)
        self.drifts = 0
        # river is only partly typed: its objects are held as Any
        # of the newest QUALITY_WINDOW examples (see agents.learning)
        self._quality_logloss: Any = utils.Rolling(metrics.LogLoss, window_size=QUALITY_WINDOW)
        # (label, served prediction): ``rocauc``'s, ranked exactly
        self._quality_scored: deque[tuple[bool, float]] = deque(maxlen=QUALITY_WINDOW)
        self._adwin: Any = drift.ADWIN(delta=drift_delta)  # type: ignore[no-untyped-call]
        self.scaler: Any = None
        self.regression: Any = None
        self._new_model()

    def _new_model(self) -> None:
        self.scaler = preprocessing.StandardScaler()
        self.regression = linear_model.LogisticRegression(
            optimizer=optim.SGD(self.lr), l2=self.l2, intercept_lr=self.lr
        )
        self.learned = 0

    # -- status

    @property
    def using_baseline(self) -> bool:
        return self.learned < self.warmup

    @property
    def reason(self) -> str:
        """``"warming_up"``, ``"drift_detected"`` (both: the baseline answers) or ``"model"``."""
        if not self.using_baseline:
            return "model"
        return "drift_detected" if self.drifts else "warming_up"

    @property
    def logloss(self) -> float:
        """Progressive-validation log loss of the served predictions (the newest
        QUALITY_WINDOW)."""
        return float(self._quality_logloss.get())

    @property
    def rocauc(self) -> float | None:
        """Progressive-validation ROC AUC of the served predictions (the newest
        QUALITY_WINDOW, ranked exactly); None unless both a positive and a negative
        example are among them."""
        return exact_rocauc(self._quality_scored)

    # -- predict / learn

    def _model_proba(self, x: Mapping[str, float]) -> float:
        scaled = self.scaler.transform_one(dict(x))
        proba = self.regression.predict_proba_one(scaled)
        return float(proba[True])

    def predict_one(self, x: Mapping[str, float]) -> float:
        if self.using_baseline:
            return baseline_risk(x)
        return self._model_proba(x)

    def learn_one(self, x: Mapping[str, float], y: bool) -> None:
        serving_model = not self.using_baseline
        p = self.predict_one(x)
        self._quality_logloss.update(y, p)
        self._quality_scored.append((bool(y), p))
        if serving_model:
            before = float(self._adwin.estimation)
            self._adwin.update(abs(float(y) - p))
            if self._adwin.drift_detected and float(self._adwin.estimation) > before:
                self.drifts += 1
                self._adwin = drift.ADWIN(delta=self.drift_delta)  # type: ignore[no-untyped-call]
                self._new_model()
        features = dict(x)
        self.scaler.learn_one(features)
        self.regression.learn_one(self.scaler.transform_one(features), bool(y))
        self.examples += 1
        self.learned += 1

    # -- checkpoints

    def to_dict(self) -> dict[str, Any]:
        counts = {str(k): int(v) for k, v in sorted(self.scaler.counts.items()) if v}
        return {
            "kind": KIND,
            "warmup": self.warmup,
            "lr": self.lr,
            "l2": self.l2,
            "drift_delta": self.drift_delta,
            "examples": self.examples,
            "learned": self.learned,
            "drifts": self.drifts,
            "scaler": {
                "counts": counts,
                "means": {k: float(self.scaler.means[k]) for k in counts},
                "vars": {k: float(self.scaler.vars[k]) for k in counts},
            },
            "regression": {
                "weights": {str(k): float(v) for k, v in sorted(self.regression.weights.items())},
                "intercept": float(self.regression.intercept),
                "steps": int(self.regression.optimizer.n_iterations),
            },
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> ChurnRisk:
        if state.get("kind") != KIND:
            raise ValueError(f"not a churn-risk snapshot: {state.get('kind')!r}")
        model = cls(
            warmup=int(state["warmup"]),
            lr=float(state["lr"]),
            l2=float(state["l2"]),
            drift_delta=float(state["drift_delta"]),
        )
        model.examples = int(state["examples"])
        model.learned = int(state["learned"])
        model.drifts = int(state["drifts"])
        scaler = state["scaler"]
        for key, count in scaler["counts"].items():
            model.scaler.counts[str(key)] = int(count)
            model.scaler.means[str(key)] = float(scaler["means"][key])
            model.scaler.vars[str(key)] = float(scaler["vars"][key])
        regression = state["regression"]
        weights = {str(k): float(v) for k, v in regression["weights"].items()}
        # GLM exposes its weights read-only; this is the one private attribute we set.
        model.regression._weights = utils.VectorDict(weights)
        if model.regression.weights != weights:
            raise ValueError("the regression weights could not be restored")
        model.regression.intercept = float(regression["intercept"])
        model.regression.optimizer.n_iterations = int(regression["steps"])
        figures = [*weights.values(), model.regression.intercept]
        figures += [*model.scaler.means.values(), *model.scaler.vars.values()]
        if not all(math.isfinite(v) for v in figures):
            raise ValueError("the snapshot holds figures that are not finite")
        return model


# --- delayed labels -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingSnapshot:
    """Features ``x`` as they were at ``ts_ms``, waiting for their label; ``event_id``:
    the touchpoint it was taken at (empty if unknown), which cannot label it."""

    x: dict[str, float]
    ts_ms: int
    event_id: str = ""


def churn_signal(event: TouchpointEvent) -> bool:
    """A call about cancelling (when it starts: its end is the same call, which must not
    count again, after the alert or the snapshot its start brought), consent withdrawn
    for ``all``, or an email unsubscribe."""
    match event:
        case Call(status="started", reason="cancel"):
            return True
        case Consent(channel="all", granted=False):
            return True
        case Email(action="unsubscribed"):
            return True
    return False


def _lapse_start(pending: PendingSnapshot, last_seen_ms: int | None) -> int:
    """Where the current quiet spell started, counted from the snapshot at the earliest."""
    return pending.ts_ms if last_seen_ms is None else max(last_seen_ms, pending.ts_ms)


def label_for(
    pending: PendingSnapshot,
    event_ts_ms: int,
    previous_last_seen_ms: int | None,
    *,
    churn: bool = False,
    churned_ms: Iterable[int] = (),
    horizon_days: float = HORIZON_DAYS,
    lapse_days: float = LAPSE_DAYS,
) -> bool | None:
    """The label a touchpoint at ``event_ts_ms`` gives ``pending``, or ``None`` if undecided.

    ``previous_last_seen_ms`` is the customer's last touchpoint before this one (the
    ``last_seen`` of the features read just before it), ``churn`` whether this touchpoint is a
    churn signal (see :func:`churn_signal`), ``churned_ms`` when the customer's other churn
    signals seen with it happened (their touchpoints in the same batch). Positive: a churn
    signal within the horizon after the snapshot, or a quiet spell of at least ``lapse_days``
    (from the previous touchpoint, or the snapshot if later, to this one) that started within
    the horizon. Negative: this touchpoint is past the horizon and neither happened. A
    touchpoint (or churn signal) older than the snapshot decides nothing.

    >>> day = 86_400_000
    >>> pending = PendingSnapshot({"experience": 0.4}, ts_ms=0)
    >>> label_for(pending, 3 * day, 2 * day, churn=True)  # cancel call on day 3
    True
    >>> label_for(pending, 10 * day, 9 * day) is None  # an ordinary touchpoint: wait
    True
    >>> label_for(pending, 10 * day, 9 * day, churned_ms=[9 * day])  # after an unsubscribe
    True
    >>> label_for(pending, 70 * day, 20 * day)  # quiet from day 20 to day 70: lapsed
    True
    >>> label_for(pending, 31 * day, 29 * day)  # still active after the horizon
    False
    """
    horizon_end = pending.ts_ms + round(horizon_days * DAY_MS)
    signals = [*churned_ms, *([event_ts_ms] if churn else [])]
    if any(pending.ts_ms <= at <= horizon_end for at in signals):
        return True
    if event_ts_ms < pending.ts_ms:
        return None
    start = _lapse_start(pending, previous_last_seen_ms)
    if start <= horizon_end and event_ts_ms - start >= lapse_days * DAY_MS:
        return True
    if event_ts_ms > horizon_end:
        return False
    return None


def label_by_clock(
    pending: PendingSnapshot,
    now_ms: int,
    last_seen_ms: int | None,
    *,
    horizon_days: float = HORIZON_DAYS,
    lapse_days: float = LAPSE_DAYS,
) -> bool | None:
    """For a periodic sweep with no touchpoint at ``now_ms``: settle the customers gone quiet.

    Positive once the quiet spell since ``last_seen_ms`` (or the snapshot) that started within
    the horizon has lasted ``lapse_days``; negative only if the customer was last seen after
    the horizon (the touchpoint then should have settled it); otherwise ``None``: the spell is
    still open and may yet become a lapse.

    >>> day = 86_400_000
    >>> pending = PendingSnapshot({}, ts_ms=0)
    >>> label_by_clock(pending, 40 * day, 10 * day) is None  # quiet for 30 days so far
    True
    >>> label_by_clock(pending, 56 * day, 10 * day)  # quiet for 46 days
    True
    """
    horizon_end = pending.ts_ms + round(horizon_days * DAY_MS)
    start = _lapse_start(pending, last_seen_ms)
    if start > horizon_end:
        return False
    if now_ms - start >= lapse_days * DAY_MS:
        return True
    return None
