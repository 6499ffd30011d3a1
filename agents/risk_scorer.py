"""Scoring churn risk with a published model, without river (pure).

The API and the workers only score: :class:`RiskScorer` keeps what a snapshot of
:class:`agents.risk.ChurnRisk` holds for that (the scaler's means and variances, the
regression's weights and intercept, and whether the model serves yet, and why not) and
answers the probability the model itself answers, bit for bit. It does river's float
operations in river's order: ``StandardScaler.transform_one`` (``(x - mean) / var ** 0.5``,
0 for a feature of no variance), the regression's dot product (over the scaled features,
in their order, a feature without a weight weighing 0), the intercept, and the logistic
function river clamps beyond -30 and 30. Learning stays with river, in the learner; a
process that only scores does not import it (river imports scipy: about 1.5 s of CPU at
every start of a worker or API process). The snapshot checks here are the learner's too.

>>> scorer = RiskScorer.from_state({
...     "kind": "churn-risk-logreg", "warmup": 2, "lr": 0.05, "l2": 0.0,
...     "drift_delta": 0.002, "examples": 2, "learned": 2, "churned": 1, "drifts": 0,
...     "serving": True, "matured": True,
...     "scaler": {"counts": {"complaints_30d": 2}, "means": {"complaints_30d": 1.0},
...                "vars": {"complaints_30d": 1.0}},
...     "regression": {"weights": {"complaints_30d": 2.0}, "intercept": -1.0, "steps": 2}})
>>> scorer.reason, round(scorer.predict_one({"complaints_30d": 2.0}), 4)
('model', 0.7311)
>>> RiskScorer().reason, RiskScorer().predict_one({}) == baseline_risk({})
('warming_up', True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agents.learning import QUALITY_WINDOW
from agents.risk_features import FEATURES, baseline_risk, capped

KIND = "churn-risk-logreg"  # a snapshot of agents.risk.ChurnRisk
LOGIT_CLAMP = 30.0  # river's sigmoid answers 0 below -30 and 1 above 30


def warmed_up(learned: int, churned: int, warmup: int, matured: bool) -> bool:
    """Whether a model that learned ``learned`` examples (``churned`` of them churns) may
    serve: ``warmup`` examples learned; for the first model (not ``matured``), at least
    ``warmup // 4`` of each label and no more churns than stays too (until stays are
    labelled, 30 days after their snapshots, the churns' share is the labels' delay, not
    the customers').

    >>> warmed_up(200, 150, 200, matured=False), warmed_up(200, 150, 200, matured=True)
    (False, True)
    """
    if learned < warmup:
        return False
    if matured:
        return True
    stayed, each = learned - churned, warmup // 4
    return churned >= each and stayed >= max(each, churned)


def reason_for(serving: bool, drifts: int, matured: bool) -> str:
    """Why a model answers as it does: ``"model"`` when it serves, else (its baseline
    answers) ``"drift_detected"`` after a drift of a model that had served, or
    ``"warming_up"``."""
    if serving:
        return "model"
    return "drift_detected" if drifts and matured else "warming_up"


def check_snapshot(state: Mapping[str, Any]) -> None:
    """ValueError unless ``state`` is a churn-risk snapshot a model learning as
    :class:`agents.risk.ChurnRisk` does could hold: counters and settings a model can
    have, a scaler that knows each feature whole (a count of at least one, a mean and a
    variance not negative), the figures of the features it knows all finite, and the
    drift errors and scored predictions it keeps (the newest ``QUALITY_WINDOW`` are
    replayed) within 0..1, each scored with a label true or false."""
    if state.get("kind") != KIND:
        raise ValueError(f"not a churn-risk snapshot: {state.get('kind')!r}")
    counters = [state["examples"], state["learned"], state.get("churned", 0), state["drifts"]]
    if any(int(n) < 0 for n in counters) or int(state["warmup"]) < 0:
        raise ValueError("the snapshot holds a negative count")
    lr, l2, delta = float(state["lr"]), float(state["l2"]), float(state["drift_delta"])
    if not (math.isfinite(lr) and lr > 0 and math.isfinite(l2) and l2 >= 0 and 0 < delta < 1):
        raise ValueError("the snapshot holds settings no model learns with")
    scaler = state["scaler"]
    counts, means, variances = scaler["counts"], scaler["means"], scaler["vars"]
    if not set(counts) == set(means) == set(variances):
        raise ValueError("the snapshot's scaler knows some features only in part")
    if any(int(n) < 1 for n in counts.values()):
        raise ValueError("the snapshot's scaler holds a count below one")
    if any(not float(v) >= 0 for v in variances.values()):  # NaN too
        raise ValueError("the snapshot's scaler holds a negative variance")
    regression = state["regression"]
    if int(regression["steps"]) < 0:
        raise ValueError("the snapshot holds a negative count")
    known = [k for k in counts if str(k) in FEATURES]  # the others are left out
    figures = [float(v) for k, v in regression["weights"].items() if str(k) in FEATURES]
    figures += [float(regression["intercept"])]
    figures += [float(means[k]) for k in known] + [float(variances[k]) for k in known]
    if not all(math.isfinite(v) for v in figures):
        raise ValueError("the snapshot holds figures that are not finite")
    errors, scored = state.get("errors", []), state.get("scored", [])
    if not isinstance(errors, list) or not isinstance(scored, list):
        raise ValueError("the snapshot's errors or scored predictions are not lists")
    if any(not 0.0 <= float(error) <= 1.0 for error in errors[-QUALITY_WINDOW:]):  # NaN too
        raise ValueError("the snapshot holds a drift error outside 0..1")
    for pair in scored[-QUALITY_WINDOW:]:
        label, p = pair
        if not isinstance(label, bool) or not 0.0 <= float(p) <= 1.0:
            raise ValueError("the snapshot holds a scored prediction outside 0..1")


@dataclass(frozen=True, slots=True)
class RiskScorer:
    """A churn-risk model to score with: the model's probability of churn/lapse when it
    serves, :func:`agents.risk_features.baseline_risk` while it does not (``reason``
    says why). ``RiskScorer()`` is a model that learned nothing: it warms up."""

    serving: bool = False
    reason: str = "warming_up"
    examples: int = 0  # learned in total
    drifts: int = 0
    means: Mapping[str, float] = field(default_factory=dict)
    variances: Mapping[str, float] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=dict)
    intercept: float = 0.0

    @property
    def using_baseline(self) -> bool:
        return not self.serving

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RiskScorer:
        """The scorer of the model a churn-risk snapshot holds; ValueError for one that is
        not such a snapshot (:func:`check_snapshot`) or whose model cannot score (it would
        fail every score). A figure of a feature the model does not know (learned before
        such figures were left out) scores nothing, and is left out."""
        check_snapshot(state)
        warmup, matured = int(state["warmup"]), bool(state.get("matured", False))
        # from before labels were counted, a model may have learned churns alone: it warms
        # up again (keeping what it learned)
        learned = int(state["learned"]) if "churned" in state else 0
        serving = bool(state.get("serving", False)) or warmed_up(
            learned, int(state.get("churned", 0)), warmup, matured
        )
        scaler, regression = state["scaler"], state["regression"]
        known = [str(k) for k in scaler["counts"] if str(k) in FEATURES]
        scorer = cls(
            serving=serving,
            reason=reason_for(serving, int(state["drifts"]), matured or serving),
            examples=int(state["examples"]),
            drifts=int(state["drifts"]),
            means={k: float(scaler["means"][k]) for k in known},
            variances={k: float(scaler["vars"][k]) for k in known},
            weights={
                str(k): float(v) for k, v in regression["weights"].items() if str(k) in FEATURES
            },
            intercept=float(regression["intercept"]),
        )
        scorer._probe()
        return scorer

    def predict_one(self, x: Mapping[str, float]) -> float:
        if not self.serving:
            return baseline_risk(x)
        return self.model_proba(x)

    def model_proba(self, x: Mapping[str, float]) -> float:
        """The regression's probability for ``x``, whether or not the model serves yet."""
        means, variances, weights = self.means, self.variances, self.weights
        logit: float = 0  # river's dot product starts from the integer 0
        for k, xk in capped(x).items():
            v = variances.get(k, 0.0)
            scaled = (xk - means.get(k, 0.0)) / v**0.5 if v else 0.0
            logit += scaled * weights.get(k, 0.0)  # no weight: 0, as river reads it
        logit += self.intercept
        if logit < -LOGIT_CLAMP:
            return 0.0
        if logit > LOGIT_CLAMP:
            return 1.0
        return 1 / (1 + math.exp(-logit))

    def _probe(self) -> None:
        probe(self.model_proba, self.means)


def probe(score: Callable[[Mapping[str, float]], float], means: Mapping[str, float]) -> None:
    """Score one example, a step from the scaler's ``means``, with a restored model's
    ``score`` (whether or not it serves yet): ValueError unless a probability comes."""
    x = {str(k): float(m) + 1.0 for k, m in means.items()}
    try:
        p = score(x)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"the snapshot's model cannot score ({type(exc).__name__})") from exc
    if not 0.0 <= p <= 1.0:
        raise ValueError("the snapshot's model scores outside 0..1")
