"""Churn / lapse risk: an online logistic regression with drift fallback (pure, no I/O).

:class:`ChurnRisk` is a river ``StandardScaler`` followed by a river ``LogisticRegression``,
learned one example at a time from the features of :mod:`agents.risk_features`, labelled
late (:mod:`agents.risk_labels`). Quality is measured by progressive validation (each example
is scored *before* it is learned) with river ``LogLoss`` and an exact ROC AUC
(:func:`exact_rocauc`); the absolute error of the model is fed to river ``ADWIN``. When ADWIN
sees the error rise, the model is reset and :func:`agents.risk_features.baseline_risk`
answers (``reason == "drift_detected"``) until the new model has learned ``warmup``
examples; the first ``warmup`` examples are answered the same way
(``reason == "warming_up"``). Labels come late, and unevenly: a churn is labelled as it
happens, a stay only once its 30 days have passed, so a new deployment's first month
brings churns alone, and a model learned from them rates nearly everyone at risk (a
flood of retention calls). The first model serves only once it has learned at least
``warmup // 4`` examples of each label and no more churns than stays; until then the
baseline answers, as while warming up. After a drift, both labels already come at
their own rates: the new model serves after ``warmup`` examples. State checkpoints to
plain JSON-able data (no pickle: a snapshot cannot run code when it is loaded).

>>> model = ChurnRisk(warmup=2)
>>> model.reason, model.using_baseline
('warming_up', True)
>>> for _ in range(5):  # churns alone: the labels of stays have not come yet
...     model.learn_one({"experience": 0.1, "complaints_30d": 3.0}, True)
>>> model.reason
'warming_up'
>>> for _ in range(20):
...     model.learn_one({"experience": 0.1, "complaints_30d": 3.0}, True)
...     model.learn_one({"experience": 0.9, "complaints_30d": 0.0}, False)
>>> model.reason  # as many churns as stays: 25 and 20
'warming_up'
>>> for _ in range(5):
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
from typing import Any

from river import drift, linear_model, optim, preprocessing, utils

from agents.learning import QUALITY_WINDOW
from agents.risk_features import FEATURES, baseline_risk, capped
from agents.risk_scorer import KIND, check_snapshot, probe, reason_for, warmed_up


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
      predictions are identical. The snapshot also keeps the errors fed to ADWIN since it
      was last reset (the newest ``QUALITY_WINDOW``), replayed into a fresh ADWIN on
      restore, and the (label, served prediction) pairs of the quality window: a restored
      model tells a drift from its baseline as the one before the restart did (an ADWIN
      started empty took whatever error regime came next for the baseline, and a drift
      starting within hundreds of examples of a restart went unseen for good), and its
      log loss and ROC AUC do not go blank. ``drifts``, ``examples`` and the warm-up
      progress are kept, so ``reason`` survives.
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
        self.churned = 0  # of them, churns
        self.serving = False  # the current model answers, its warm-up done
        self.matured = False  # a model has served: both labels come at their own rates
        self.drifts = 0
        # river is only partly typed: its objects are held as Any
        # (label, served prediction) of the newest QUALITY_WINDOW examples (see
        # agents.learning): ``logloss``'s, and ``rocauc``'s, ranked exactly
        self._quality_scored: deque[tuple[bool, float]] = deque(maxlen=QUALITY_WINDOW)
        self._adwin: Any = drift.ADWIN(delta=drift_delta)  # type: ignore[no-untyped-call]
        # the errors fed to ADWIN since it was last reset (the newest QUALITY_WINDOW): kept
        # in the snapshot, so that a restored ADWIN knows the regime before the restart
        self._errors: deque[float] = deque(maxlen=QUALITY_WINDOW)
        self.scaler: Any = None
        self.regression: Any = None
        self._new_model()

    def _new_model(self) -> None:
        self.scaler = preprocessing.StandardScaler()
        self.regression = linear_model.LogisticRegression(
            optimizer=optim.SGD(self.lr), l2=self.l2, intercept_lr=self.lr
        )
        self.learned = self.churned = 0
        self.serving = self._warmed_up()
        self.matured = self.matured or self.serving

    def _warmed_up(self) -> bool:
        return warmed_up(self.learned, self.churned, self.warmup, self.matured)

    # -- status

    @property
    def using_baseline(self) -> bool:
        return not self.serving

    @property
    def reason(self) -> str:
        """``"warming_up"``, ``"drift_detected"`` (both: the baseline answers) or ``"model"``."""
        return reason_for(self.serving, self.drifts, self.matured)

    @property
    def logloss(self) -> float | None:
        """Progressive-validation log loss of the served predictions (the newest
        QUALITY_WINDOW); None while none was scored (0 would read as a perfect model)."""
        scored = self._quality_scored
        return math.fsum(_log_loss(y, p) for y, p in scored) / len(scored) if scored else None

    @property
    def rocauc(self) -> float | None:
        """Progressive-validation ROC AUC of the served predictions (the newest
        QUALITY_WINDOW, ranked exactly); None unless both a positive and a negative
        example are among them."""
        return exact_rocauc(self._quality_scored)

    # -- predict / learn

    def _model_proba(self, x: Mapping[str, float]) -> float:
        scaled = self.scaler.transform_one(capped(x))
        proba = self.regression.predict_proba_one(scaled)
        return float(proba[True])

    def predict_one(self, x: Mapping[str, float]) -> float:
        if self.using_baseline:
            return baseline_risk(x)
        return self._model_proba(x)

    def learn_one(self, x: Mapping[str, float], y: bool) -> None:
        serving_model = not self.using_baseline
        p = self.predict_one(x)
        self._scored(bool(y), p)
        if serving_model:
            before = float(self._adwin.estimation)
            self._watch(abs(float(y) - p))
            if self._adwin.drift_detected and float(self._adwin.estimation) > before:
                self.drifts += 1
                self._adwin = drift.ADWIN(delta=self.drift_delta)  # type: ignore[no-untyped-call]
                self._errors.clear()
                self._new_model()
        features = capped(x)
        self.scaler.learn_one(features)
        self.regression.learn_one(self.scaler.transform_one(features), bool(y))
        self.examples += 1
        self.learned += 1
        self.churned += bool(y)
        if not self.serving and self._warmed_up():
            self.serving = self.matured = True

    def _scored(self, y: bool, p: float) -> None:
        """Count a served prediction ``p`` of label ``y`` in the quality figures."""
        self._quality_scored.append((y, p))

    def _watch(self, error: float) -> None:
        """Feed ADWIN one absolute error, and keep it for the snapshot."""
        self._adwin.update(error)
        self._errors.append(error)

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
            "churned": self.churned,
            "serving": self.serving,
            "matured": self.matured,
            "drifts": self.drifts,
            # what ADWIN and the quality figures saw (a Moments from before they were
            # kept ignores them: ADWIN and the figures start empty there, as they did)
            "errors": list(self._errors),
            "scored": [[y, p] for y, p in self._quality_scored],
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
        """The model ``state`` holds, to learn on from; ValueError for one that is not a
        churn-risk model's, or that no model learning as this one does could hold
        (:func:`agents.risk_scorer.check_snapshot`), or with which it cannot score: it
        would fail every score, or every example learned. A process that only scores
        restores an :class:`agents.risk_scorer.RiskScorer` instead."""
        check_snapshot(state)
        model = cls(
            warmup=int(state["warmup"]),
            lr=float(state["lr"]),
            l2=float(state["l2"]),
            drift_delta=float(state["drift_delta"]),
        )
        model.examples = int(state["examples"])
        model.learned = int(state["learned"])
        model.churned = int(state.get("churned", 0))
        if "churned" not in state:  # from before labels were counted: it may have learned
            # churns alone, so it warms up again (keeping what it learned)
            model.learned = 0
        model.matured = bool(state.get("matured", False))
        model.serving = bool(state.get("serving", False)) or model._warmed_up()
        model.matured = model.matured or model.serving
        model.drifts = int(state["drifts"])
        _replay(model, state)
        scaler = state["scaler"]
        # a figure the model does not know, learned before such figures were left out
        # (agents.risk_features.capped), scores nothing: it goes, and the snapshot shrinks
        for key, count in scaler["counts"].items():
            if str(key) in FEATURES:
                model.scaler.counts[str(key)] = int(count)
                model.scaler.means[str(key)] = float(scaler["means"][key])
                model.scaler.vars[str(key)] = float(scaler["vars"][key])
        regression = state["regression"]
        weights = {str(k): float(v) for k, v in regression["weights"].items() if str(k) in FEATURES}
        # GLM exposes its weights read-only; this is the one private attribute we set.
        model.regression._weights = utils.VectorDict(weights)
        if model.regression.weights != weights:
            raise ValueError("the regression weights could not be restored")
        model.regression.intercept = float(regression["intercept"])
        model.regression.optimizer.n_iterations = int(regression["steps"])
        model._probe()
        return model

    def _probe(self) -> None:
        probe(self._model_proba, self.scaler.means)


def _log_loss(y: bool, p: float) -> float:
    """The log loss of predicting ``p`` for label ``y``, ``p`` clamped as river's
    ``LogLoss`` clamps it (a prediction of exactly 0 or 1 costs about 34.5, not infinity)."""
    p = min(max(p, 1e-15), 1 - 1e-15)
    return -math.log(p if y else 1 - p)


def _replay(model: ChurnRisk, state: Mapping[str, Any]) -> None:
    """Feed ``model`` the errors its ADWIN saw and the predictions its quality figures
    scored, as ``state`` keeps them (the newest ``QUALITY_WINDOW`` of each, checked by
    :func:`agents.risk_scorer.check_snapshot`; a snapshot from before they were kept
    holds none: they start empty)."""
    for error in state.get("errors", [])[-QUALITY_WINDOW:]:
        model._watch(float(error))
    for label, p in state.get("scored", [])[-QUALITY_WINDOW:]:
        model._scored(label, float(p))
