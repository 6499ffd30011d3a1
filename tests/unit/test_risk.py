"""Churn/lapse risk: features, baseline, online model with drift fallback, delayed labels."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from scipy import stats

from agents.learning import QUALITY_WINDOW
from agents.risk import ChurnRisk, exact_rocauc
from agents.risk_features import baseline_risk, risk_features
from agents.risk_labels import DAY_MS, PendingSnapshot, churn_signal, label_by_clock, label_for
from feature_store.features import CustomerFeatures
from tests.unit.factories import call_ended, call_started, click, consent, email

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
Example = tuple[dict[str, float], bool]


def sample(rng: random.Random, flipped: bool = False) -> Example:
    """Risk rises with poor experience and complaints; ``noise`` carries no signal."""
    experience = rng.random()
    complaints = float(rng.choice([0, 0, 0, 1, 2, 3]))
    logit = 6 * (0.5 - experience) + 1.2 * complaints - 1.0
    y = rng.random() < 1 / (1 + math.exp(-logit))
    x = {"experience": experience, "complaints_30d": complaints, "noise": rng.gauss(0, 1)}
    return x, (not y) if flipped else y


def accuracy(model: ChurnRisk, examples: list[Example]) -> float:
    return sum((model.predict_one(x) > 0.5) == y for x, y in examples) / len(examples)


# --- features and baseline


def test_risk_features_of_an_empty_customer() -> None:
    x = risk_features(CustomerFeatures(), NOW)
    assert x == {
        "experience": 0.6,
        "complaints_30d": 0.0,
        "negative_mentions_30d": 0.0,
        "log_negative_reach_30d": 0.0,
        "days_since_seen": 0.0,
        "log_activity_30d": 0.0,
        "log_activity_7d": 0.0,
        "log_value": 0.0,
        "purchases_365d": 0.0,
        "days_since_purchase": 365.0,
        "unsubscribed": 0.0,
        "cancel_calls": 0.0,
        "consent_withdrawn": 0.0,
    }
    assert all(isinstance(v, float) for v in x.values())
    assert 0.0 < baseline_risk(x) < 1.0


def test_risk_features_of_an_unhappy_customer() -> None:
    features = CustomerFeatures(
        experience=0.2,
        complaints_30d=2,
        negative_mentions_30d=1,
        negative_reach_30d=99,
        last_seen=NOW - timedelta(days=10),
        last_purchase=NOW - timedelta(days=1000),
        activity={"30d": {"call": 3, "web_click": 4}, "7d": {"call": 1}},
        value=math.e - 1,
        purchases_365d=2,
        emails={"unsubscribed": 1},
        call_reasons={"cancel": 2, "support": 5},
        consent={"email": False, "sms": True},
    )
    x = risk_features(features, NOW)
    assert (x["experience"], x["complaints_30d"], x["negative_mentions_30d"]) == (0.2, 2.0, 1.0)
    assert x["log_negative_reach_30d"] == pytest.approx(math.log(100))
    assert x["days_since_seen"] == pytest.approx(10.0)
    assert x["days_since_purchase"] == 365.0  # capped
    assert x["log_activity_30d"] == pytest.approx(math.log(8))
    assert x["log_activity_7d"] == pytest.approx(math.log(2))
    assert x["log_value"] == pytest.approx(1.0)
    assert (x["unsubscribed"], x["cancel_calls"], x["consent_withdrawn"]) == (1.0, 2.0, 1.0)
    assert baseline_risk(x) > baseline_risk(risk_features(CustomerFeatures(), NOW))


def test_an_unsubscribe_lifted_by_a_later_grant_is_no_churn_sign() -> None:
    """The contact policy lets such a customer be emailed again; the risk model used to
    count the lifetime unsubscribe for as long as the profile lived."""
    gone = CustomerFeatures(emails={"unsubscribed": 1}, email_subscribed=False)
    back = CustomerFeatures(emails={"unsubscribed": 1}, email_subscribed=True)
    before_the_flag = CustomerFeatures(emails={"unsubscribed": 1})  # no grant since
    assert [risk_features(f, NOW)["unsubscribed"] for f in (gone, back, before_the_flag)] == [
        1.0, 0.0, 1.0,
    ]  # fmt: skip


def test_baseline_is_monotone_in_the_obvious_signals() -> None:
    calm = {"experience": 0.9}
    assert baseline_risk({"experience": 0.2}) > baseline_risk(calm)
    assert baseline_risk({**calm, "complaints_30d": 2.0}) > baseline_risk(calm)
    assert baseline_risk({**calm, "days_since_seen": 40.0}) > baseline_risk(calm)
    assert baseline_risk({**calm, "cancel_calls": 1.0}) > baseline_risk(calm)
    assert baseline_risk({**calm, "purchases_365d": 5.0}) < baseline_risk(calm)
    extremes = [
        {"experience": 0.0, "complaints_30d": 9.0, "unsubscribed": 1.0, "cancel_calls": 3.0},
        {"experience": 1.0, "purchases_365d": 50.0},
    ]
    assert all(0.0 < baseline_risk(x) < 1.0 for x in extremes)


# --- the model


def test_warm_up_serves_the_baseline_and_says_so() -> None:
    rng = random.Random(1)
    model = ChurnRisk(warmup=50)
    losses = []
    for _ in range(49):
        x, y = sample(rng)
        assert model.using_baseline and model.reason == "warming_up"
        assert model.predict_one(x) == baseline_risk(x)
        model.learn_one(x, y)
        p = baseline_risk(x)
        losses.append(-math.log(p if y else 1 - p))
    assert model.logloss == pytest.approx(sum(losses) / len(losses))  # of what was served
    while model.using_baseline:  # the 50th example on, until stays catch up with churns
        assert not warmed_up(model.learned, model.churned, 50)
        x, y = sample(rng)
        if y and model.learned >= 49:  # in this sample, churns are a little more common
            continue
        model.learn_one(x, y)
    assert warmed_up(model.learned, model.churned, 50) and model.reason == "model"
    x, _ = sample(rng)
    assert model.predict_one(x) != baseline_risk(x)


def warmed_up(learned: int, churned: int, warmup: int) -> bool:
    """The rule ChurnRisk serves by, apart from it."""
    each = warmup // 4
    return learned >= warmup and churned >= each and learned - churned >= max(each, churned)


def test_churns_alone_leave_the_model_on_the_baseline() -> None:
    """Churns are labelled as they happen, stays 30 days later: a new deployment's first
    month brings churns alone, and a model learned from them rated 1,000 customers of
    1,000 at risk (a flood of retention calls) once it had 200."""
    rng = random.Random(5)
    model = ChurnRisk()
    for _ in range(1000):
        x, _ = sample(rng)
        model.learn_one(x, True)
    assert model.using_baseline and model.reason == "warming_up"
    x, _ = sample(rng)
    assert model.predict_one(x) == baseline_risk(x)
    while model.using_baseline:  # stays are labelled at last
        assert model.learned - model.churned < model.churned == 1000
        x, _ = sample(rng)
        model.learn_one(x, False)
    assert model.learned == 2000 and model.reason == "model"


def test_learns_the_synthetic_problem_under_progressive_validation() -> None:
    rng = random.Random(7)
    model = ChurnRisk(warmup=100)
    for _ in range(2000):
        model.learn_one(*sample(rng))
    assert model.examples == 2000 and model.drifts == 0
    rocauc = model.rocauc
    assert rocauc is not None and rocauc > 0.75
    assert model.logloss < 0.55  # better than a constant prior on this problem (~0.69)
    bad = {"experience": 0.05, "complaints_30d": 3.0, "noise": 0.0}
    good = {"experience": 0.95, "complaints_30d": 0.0, "noise": 0.0}
    assert model.predict_one(bad) > 0.8 > 0.2 > model.predict_one(good)
    assert accuracy(model, [sample(rng) for _ in range(500)]) > 0.75


def test_a_model_getting_better_is_not_a_drift() -> None:
    rng = random.Random(5)
    model = ChurnRisk(warmup=0)  # ADWIN watches the errors fall from the very start
    for _ in range(3000):
        model.learn_one(*sample(rng))
    assert model.drifts == 0 and model.reason == "model"


def test_progressive_validation_scores_before_learning() -> None:
    model = ChurnRisk(warmup=0)
    x = {"experience": 0.3}
    model.learn_one(x, True)  # an untrained model answers 0.5 before it learns
    assert model.logloss == pytest.approx(math.log(2))
    assert model.predict_one(x) > 0.5  # and learned afterwards


def test_concept_drift_falls_back_to_the_baseline_then_recovers() -> None:
    rng = random.Random(3)
    model = ChurnRisk(warmup=100)
    for _ in range(1500):
        model.learn_one(*sample(rng))
    assert model.drifts == 0 and model.reason == "model"

    detected_after = None
    for i in range(1000):
        model.learn_one(*sample(rng, flipped=True))
        if model.drifts:
            detected_after = i + 1
            break
    assert detected_after is not None and detected_after < 300
    assert model.drifts == 1
    assert model.using_baseline and model.reason == "drift_detected"
    x, _ = sample(rng)
    assert model.predict_one(x) == baseline_risk(x)

    assert model.learned == 1  # the new model learned the example that revealed the drift
    for _ in range(98):  # both labels come at their own rates now: warmup examples only
        model.learn_one(*sample(rng, flipped=True))
    assert model.reason == "drift_detected"
    model.learn_one(*sample(rng, flipped=True))
    assert model.reason == "model"
    for _ in range(900):
        model.learn_one(*sample(rng, flipped=True))
    assert model.reason == "model" and not model.using_baseline
    assert model.drifts == 1  # the new model getting better is not a drift
    assert accuracy(model, [sample(rng, flipped=True) for _ in range(500)]) > 0.75


def test_snapshot_round_trip_gives_identical_predictions() -> None:
    rng = random.Random(11)
    model = ChurnRisk(warmup=20, lr=0.03, l2=0.001)
    for _ in range(300):
        model.learn_one(*sample(rng))
    state = json.loads(json.dumps(model.to_dict()))
    restored = ChurnRisk.from_dict(state)
    probes = [sample(rng)[0] for _ in range(200)] + [{"experience": 0.5, "unseen": 3.0}]
    for x in probes:
        assert abs(restored.predict_one(x) - model.predict_one(x)) <= 1e-12
    assert (restored.examples, restored.drifts, restored.reason) == (300, 0, "model")
    assert restored.to_dict() == model.to_dict()
    for _ in range(50):  # and they keep learning in step
        x, y = sample(rng)
        model.learn_one(x, y)
        restored.learn_one(x, y)
    for x in probes:
        assert abs(restored.predict_one(x) - model.predict_one(x)) <= 1e-12


def test_snapshot_keeps_the_fallback_state() -> None:
    model = ChurnRisk(warmup=10)
    model.drifts, model.learned, model.matured = 2, 3, True  # as after a drift, re-learning
    restored = ChurnRisk.from_dict(json.loads(json.dumps(model.to_dict())))
    assert restored.reason == "drift_detected" and restored.drifts == 2 and restored.matured


def test_snapshot_of_another_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="not a churn-risk snapshot"):
        ChurnRisk.from_dict({"kind": "linucb-disjoint"})


def test_a_snapshot_holding_figures_that_are_not_finite_is_refused() -> None:
    model = ChurnRisk(warmup=2)
    for n in range(4):
        model.learn_one({"experience": n / 4, "complaints_30d": float(n)}, n % 2 == 0)
    state = model.to_dict()
    state["regression"]["weights"]["experience"] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        ChurnRisk.from_dict(state)


# --- delayed labels

PENDING = PendingSnapshot({"experience": 0.4}, ts_ms=1_000 * DAY_MS)


def at(days: float) -> int:
    return PENDING.ts_ms + round(days * DAY_MS)


def test_churn_signal_within_the_horizon_is_a_positive() -> None:
    assert label_for(PENDING, at(3), at(2), churn=True) is True
    assert label_for(PENDING, at(30), at(29), churn=True) is True  # the horizon's last moment


def test_churn_signal_after_the_horizon_is_a_negative() -> None:
    assert label_for(PENDING, at(31), at(30.5), churn=True) is False


def test_ordinary_touchpoint_within_the_horizon_is_undecided() -> None:
    assert label_for(PENDING, at(10), at(9)) is None
    assert label_for(PENDING, at(10), None) is None


def test_active_after_the_horizon_is_a_negative() -> None:
    assert label_for(PENDING, at(31), at(29)) is False
    assert label_for(PENDING, at(31), at(29), horizon_days=60) is None


def test_lapse_starting_within_the_horizon_is_a_positive() -> None:
    assert label_for(PENDING, at(70), at(20)) is True  # quiet from day 20 to 70
    assert label_for(PENDING, at(45), at(-5)) is True  # quiet since before the snapshot
    assert label_for(PENDING, at(29), at(-5)) is None  # counted from the snapshot: 29 days
    assert label_for(PENDING, at(44), at(-5)) is False  # 44 days, touchpoint past the horizon
    assert label_for(PENDING, at(64), at(20)) is False  # 44 days quiet, past the horizon
    assert label_for(PENDING, at(90), at(31)) is False  # the quiet spell began too late
    assert label_for(PENDING, at(40), at(10), lapse_days=30) is True


def test_touchpoint_older_than_the_snapshot_decides_nothing() -> None:
    assert label_for(PENDING, at(-1), at(-2), churn=True) is None


def test_clock_settles_the_customers_who_never_come_back() -> None:
    assert label_by_clock(PENDING, at(40), at(10)) is None
    assert label_by_clock(PENDING, at(55), at(10)) is True
    assert label_by_clock(PENDING, at(45), None) is True
    assert label_by_clock(PENDING, at(80), at(31)) is False


def test_churn_signals() -> None:
    for direction in ("inbound", "outbound"):
        assert churn_signal(call_started("cancel", direction=direction))
        assert not churn_signal(call_started("support", direction=direction))
    # the end of that same call is no second signal: it would label the snapshot, or
    # count as churn after the alert, that the call's own start brought
    assert not churn_signal(call_ended(-0.5, reason="cancel"))
    assert churn_signal(consent("all", False, 0.0))
    assert not churn_signal(consent("email", False, 0.0))
    assert not churn_signal(consent("all", True, 0.0))
    assert churn_signal(email("unsubscribed"))
    assert not churn_signal(email("opened"))
    assert not churn_signal(click())


def test_the_quality_figures_are_of_the_newest_examples() -> None:
    """Averaged since the learner started, a model that went wrong after days moved the
    figures too little for the alerts on them to fire."""
    model = ChurnRisk()
    x = risk_features(CustomerFeatures(), datetime(2026, 12, 1, tzinfo=UTC))
    for _ in range(50):
        model.learn_one(x, False)
    model.learn_one(x, True)
    assert model.rocauc is not None  # both labels among the newest
    first = model.logloss
    for _ in range(QUALITY_WINDOW):
        model.learn_one(x, True)
    assert model.rocauc is None  # the negatives have left the window
    assert model.logloss != first


def test_the_auc_is_exact_over_random_scores_with_ties() -> None:
    rng = random.Random(8)
    for _ in range(200):
        n = rng.randint(2, 60)
        scored = [(rng.random() < 0.3, round(rng.random(), 1)) for _ in range(n)]
        positives = [p for y, p in scored if y]
        negatives = [p for y, p in scored if not y]
        if not positives or not negatives:
            assert exact_rocauc(scored) is None
            continue
        u = stats.mannwhitneyu(positives, negatives).statistic
        assert exact_rocauc(scored) == pytest.approx(u / (len(positives) * len(negatives)))


def test_a_rare_churn_is_ranked_exactly_though_its_predictions_bunch_together() -> None:
    """Predictions within a few per cent of each other: 50 thresholds took most of them
    for ties, and an alert on the AUC fired on a model that ranked them well."""
    model = ChurnRisk(warmup=10_000)  # the baseline answers: its predictions are known
    rng = random.Random(4)
    served = []
    for _ in range(1000):
        x = {"experience": 0.9 + rng.random() / 10, "complaints_30d": 0.0}
        churned = x["experience"] < 0.903  # a rare churn, and the riskiest
        served.append((churned, model.predict_one(x)))
        model.learn_one(x, churned)
    assert max(p for _, p in served) - min(p for _, p in served) < 0.05
    assert model.rocauc == pytest.approx(exact_rocauc(served))
    assert 0 < sum(y for y, _ in served) < 50
    assert model.rocauc == 1.0  # ranked perfectly (binned in 50 thresholds, it read 0.70)


def test_one_customers_absurd_count_leaves_the_model_able_to_read_counts() -> None:
    """A customer with a million cancel calls (a faulty producer) came first: the scaler's
    running variance took it, for good, and one cancel call then read as none (0.33 for
    both); the count is capped, so the model still tells them apart."""
    model, rng = ChurnRisk(), random.Random(3)

    def cancels(n: int) -> dict[str, float]:
        return risk_features(CustomerFeatures(call_reasons={"cancel": n}), NOW)

    model.learn_one(cancels(10**6), True)
    for _ in range(3_000):
        churned = rng.random() < 0.3
        model.learn_one(cancels(1 if churned else 0), churned)
    assert model.predict_one(cancels(1)) > 0.7 and model.predict_one(cancels(0)) < 0.2
    assert cancels(10**6)["cancel_calls"] == cancels(10**4)["cancel_calls"]


def test_an_uncapped_example_from_before_the_cap_is_learned_capped() -> None:
    """Examples on risk-examples from before counts were capped, relearned by a rebuild
    (or snapshots labelled after the upgrade), took the scaler's variance again."""
    model, rng = ChurnRisk(), random.Random(3)
    model.learn_one({"cancel_calls": 1e6, "experience": 0.6}, True)  # as written then
    for _ in range(3_000):
        churned = rng.random() < 0.3
        model.learn_one({"cancel_calls": 1.0 if churned else 0.0, "experience": 0.6}, churned)
    assert model.predict_one({"cancel_calls": 1.0, "experience": 0.6}) > 0.7
    assert model.predict_one({"cancel_calls": 0.0, "experience": 0.6}) < 0.2


def test_a_snapshot_from_before_labels_were_counted_warms_up_again() -> None:
    """It may have learned churns alone (a first month's): its weights are kept, and it
    serves again once it has learned churns and stays as a new model does."""
    rng = random.Random(9)
    model = ChurnRisk(warmup=20)
    for _ in range(200):
        model.learn_one(*sample(rng, flipped=True))
    assert model.reason == "model"
    state = model.to_dict()
    del state["churned"], state["serving"]
    old = ChurnRisk.from_dict(state)
    assert old.using_baseline and old.learned == 0 and old.examples == 200
    assert old.reason == "warming_up"
    assert old.regression.weights == model.regression.weights
    restored = ChurnRisk.from_dict(model.to_dict())
    assert restored.reason == "model" and restored.churned == model.churned
