"""The LinUCB bandit: learning, exploration with logged propensities, snapshot restore."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest

from agents.bandit import REANCHOR_EVERY, SCORE_ALL_UP_TO, LinUCBOffers


def trained(seed: int = 1) -> LinUCBOffers:
    rng = random.Random(seed)
    model = LinUCBOffers(dimension=4, alpha=0.3, epsilon=0.1)
    for _ in range(400):
        x = [1.0, rng.random(), rng.random(), rng.random()]
        arm = rng.choice(["a", "b", "c"])
        p = {"a": x[1], "b": x[2], "c": 0.1}[arm]
        model.learn_one(x, arm, 1.0 if rng.random() < p else 0.0)
    return model


def test_learns_which_arm_suits_which_context() -> None:
    model = trained()
    assert model.predict_one([1.0, 0.9, 0.1, 0.5], "a") > model.predict_one(
        [1.0, 0.9, 0.1, 0.5], "b"
    )
    assert model.predict_one([1.0, 0.1, 0.9, 0.5], "b") > model.predict_one(
        [1.0, 0.1, 0.9, 0.5], "a"
    )


def test_snapshot_restores_identical_predictions_through_json() -> None:
    model = trained()
    restored = LinUCBOffers.from_dict(json.loads(json.dumps(model.to_dict())))
    rng = random.Random(9)
    for _ in range(50):
        x = [1.0, rng.random(), rng.random(), rng.random()]
        for arm in ("a", "b", "c", "never-seen"):
            assert restored.predict_one(x, arm) == model.predict_one(x, arm)
        assert restored.rank(x, ["a", "b", "c"], {}, "seed") == model.rank(
            x, ["a", "b", "c"], {}, "seed"
        )
    assert restored.updates == model.updates == 400


def test_snapshot_of_another_kind_or_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="LinUCB"):
        LinUCBOffers.from_dict({"kind": "pickle"})
    state = trained().to_dict()
    state["arms"]["a"]["a_inv"] = [[1.0]]
    with pytest.raises(ValueError, match="shape"):
        LinUCBOffers.from_dict(state)
    state = trained().to_dict()
    state["arms"]["a"]["b"] = [1.0]
    with pytest.raises(ValueError, match="shape"):
        LinUCBOffers.from_dict(state)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("ridge", 0.0, "ridge"), ("ridge", -1.0, "ridge"), ("alpha", float("inf"), "alpha"),
     ("epsilon", 1.5, "epsilon"), ("prior", -0.1, "prior"), ("dimension", 20_000, "dimension"),
     ("dimension", 0, "dimension")],
)  # fmt: skip
def test_a_snapshot_with_settings_that_cannot_score_is_refused(
    field: str, value: float, words: str
) -> None:
    """A ridge of 0 or less scored every new offer NaN; a corrupt dimension had each
    process ask for gigabytes of matrices before the shapes were checked."""
    state = trained().to_dict() | {field: value}
    with pytest.raises(ValueError, match=words):
        LinUCBOffers.from_dict(state)


def as_lists(state: dict[str, Any]) -> dict[str, Any]:
    """A snapshot as Moments wrote it before its figures were packed: JSON lists."""
    model = LinUCBOffers.from_dict(state)
    arms = {
        name: state["arms"][name]
        | {"a": arm.a.tolist(), "a_inv": arm.a_inv.tolist(), "b": arm.b.tolist()}
        for name, arm in model.arms.items()
    }
    return json.loads(json.dumps(state | {"arms": arms}))


def test_a_snapshot_from_before_figures_were_packed_restores_the_same_model() -> None:
    model = trained()
    state = as_lists(model.to_dict())
    assert isinstance(state["arms"]["a"]["a_inv"], list)
    restored = LinUCBOffers.from_dict(state)
    for name, arm in model.arms.items():
        for kept in ("a", "a_inv", "b"):
            assert np.array_equal(getattr(restored.arms[name], kept), getattr(arm, kept))
    assert restored.to_dict() == model.to_dict()


def test_a_snapshot_written_with_lists_is_as_moments_wrote_it_before_packing() -> None:
    """During a rolling upgrade (MOMENTS_MODEL_SNAPSHOT_FIGURES=lists) the learner writes
    what a Moments from before packed figures reads: its figures as JSON lists."""
    model = trained()
    lists = json.loads(json.dumps(model.to_dict(packed=False)))
    assert lists == as_lists(model.to_dict())
    assert LinUCBOffers.from_dict(lists).to_dict() == model.to_dict()


def test_a_snapshot_holding_figures_that_are_not_finite_is_refused() -> None:
    """A poisoned model's NaN is written to JSON as null, which numpy reads back as NaN;
    packed figures carry it as it is."""
    state = as_lists(trained().to_dict())
    state["arms"]["a"]["a_inv"][0][0] = None
    with pytest.raises(ValueError, match="not finite"):
        LinUCBOffers.from_dict(state)
    model = trained()
    model.arms["a"].b[2] = float("nan")
    with pytest.raises(ValueError, match="'a' holds figures that are not finite"):
        LinUCBOffers.from_dict(json.loads(json.dumps(model.to_dict())))


@pytest.mark.parametrize(
    ("kept", "words"),
    [("not base64!", "not base64"), ("AAAAAAAA8D8=", "wrong shape"), ("", "wrong shape"),
     ([[1.0, 2.0], [3.0]], "wrong shape"), ([["one"] * 4] * 4, "wrong shape"), (7, "wrong shape")],
)  # fmt: skip
def test_an_arm_whose_figures_cannot_be_read_is_refused(kept: object, words: str) -> None:
    state = trained().to_dict()
    state["arms"]["b"]["a_inv"] = kept
    with pytest.raises(ValueError, match=f"arm 'b' .*{words}"):
        LinUCBOffers.from_dict(state)


def test_propensities_are_the_chance_of_being_put_first() -> None:
    model = trained()
    x = [1.0, 0.9, 0.1, 0.5]
    firsts: dict[str, int] = {}
    logged: dict[str, float] = {}
    for i in range(4000):
        top = model.rank(x, ["a", "b", "c"], {}, f"decision-{i}")[0]
        firsts[top.arm] = firsts.get(top.arm, 0) + 1
        logged[top.arm] = top.propensity
    for arm, count in firsts.items():
        assert count / 4000 == pytest.approx(logged[arm], abs=0.02)
    greedy = max(firsts, key=firsts.__getitem__)
    assert logged[greedy] == pytest.approx(1 - 0.1 + 0.1 / 3)


def test_ranking_is_deterministic_per_decision_and_weighs_worth() -> None:
    model = trained()
    x = [1.0, 0.9, 0.1, 0.5]
    assert model.rank(x, ["a", "b"], {}, "d1") == model.rank(x, ["a", "b"], {}, "d1")
    quiet = LinUCBOffers(dimension=4, epsilon=0.0)
    ranked = quiet.rank(x, ["cheap", "dear"], {"cheap": 1.0, "dear": 50.0}, "d")
    assert [r.arm for r in ranked] == ["dear", "cheap"]
    assert quiet.rank(x, [], {}, "d") == []


def _one_at_a_time(model: LinUCBOffers, x: list[float], name: str) -> tuple[float, float]:
    """An arm's clipped estimate and upper confidence bound, worked out for that arm alone."""
    v = np.asarray(x)
    arm = model.arms.get(name)
    if arm is None or arm.n == 0:
        mean, bonus = model.prior, model.alpha * float(np.sqrt(v @ v / model.ridge))
    else:
        mean = float((arm.a_inv @ arm.b) @ v)
        bonus = model.alpha * float(np.sqrt(v @ arm.a_inv @ v))
    return min(max(mean, 0.0), 1.0), min(max(mean + bonus, 0.0), 1.0)


def test_ranking_all_arms_at_once_matches_each_arm_alone_and_follows_learning() -> None:
    rng = random.Random(11)
    model = LinUCBOffers(dimension=4, alpha=0.4, epsilon=0.0)
    model._arm("untaught")  # an arm that exists but has no data yet

    def check(arms: list[str]) -> None:
        for _ in range(20):
            x = [1.0] + [rng.random() for _ in range(3)]
            alone = {name: _one_at_a_time(model, x, name) for name in arms}
            unlearned = {name for name in arms if name not in model.arms or not model.arms[name].n}

            by_bound = sorted(arms, key=lambda a: (-alone[a][1], a))
            # by the estimate: unlearned ones last
            by_estimate = sorted(arms, key=lambda a: (a in unlearned, -alone[a][0], a))
            for share, order in ((1.0, by_bound), (0.0, by_estimate)):
                model.optimism = share
                ranked = model.rank(x, arms, {}, seed=str(rng.random()), limit=len(arms))
                assert {r.arm for r in ranked} == set(arms)
                for r in ranked:  # worth 1: the score is what it was ranked by
                    assert r.estimate == pytest.approx(alone[r.arm][0], abs=1e-6)
                    ranked_by = alone[r.arm][1] if share else alone[r.arm][0]
                    if not share and r.arm in unlearned:
                        ranked_by = 0.0  # no outcome: nothing to arbitrate by
                    assert r.score == pytest.approx(ranked_by, abs=1e-6)
                assert [r.arm for r in ranked] == order

    check(["a", "b", "untaught", "never-seen"])
    for i in range(300):
        x = [1.0] + [rng.random() for _ in range(3)]
        model.learn_one(x, "ab"[i % 2], float(x[1] > 0.5) if i % 2 else float(x[2] > 0.5))
        if i in (0, 1, 50, 299):  # stacked again after learning, never stale
            check(["a", "b", "untaught", "never-seen"])
    model.optimism = 0.2
    restored = LinUCBOffers.from_dict(model.to_dict())
    x = [1.0, 0.2, 0.9, 0.4]
    for seed in ("s", "t", "u", "v"):
        assert restored.rank(x, ["a", "b"], {}, seed) == model.rank(x, ["a", "b"], {}, seed)


def test_ranking_a_few_of_many_learned_arms_scores_them_as_ranking_all_does() -> None:
    """Retired offers keep their arms: only the eligible arms' rows are scored, with the
    same estimates, whichever order or repeats the eligible list has."""
    rng = random.Random(5)
    model = LinUCBOffers(dimension=4, alpha=0.4, epsilon=0.0)
    for i in range(2_000):
        x = [1.0] + [rng.random() for _ in range(3)]
        model.learn_one(x, f"arm-{i % 100}", float(x[1 + i % 3] > 0.5))
    assert len(model.arms) > SCORE_ALL_UP_TO
    for eligible in (["arm-3", "arm-17", "new-offer"], ["arm-39", "arm-3", "arm-39"], ["x"]):
        x = [1.0] + [rng.random() for _ in range(3)]
        few = model.rank(x, eligible, {}, seed="s", limit=10)
        for r in few:
            assert r.estimate == pytest.approx(_one_at_a_time(model, x, r.arm)[0], abs=1e-6)
        every = model.rank(x, [f"arm-{i}" for i in range(100)] + ["new-offer", "x"], {}, "s", 200)
        estimates = {r.arm: r.estimate for r in every}
        assert all(r.estimate == estimates[r.arm] for r in few)


def test_exploration_leads_with_a_random_offer_at_epsilons_rate() -> None:
    """Seeds stand for decisions: about epsilon of them explore, and what leads them is
    drawn evenly from every eligible offer (the greedy one included)."""
    model = LinUCBOffers(dimension=2, epsilon=0.2)
    for arm, reward in (("a", 1.0), ("b", 0.5), ("c", 0.0), ("d", 0.0)):
        for _ in range(20):
            model.learn_one([1.0, 0.0], arm, reward)
    model.epsilon = 0.0  # every arm learned as much: their bonuses are equal, one order
    greedy_order = [r.arm for r in model.rank([1.0, 0.0], list("abcd"), {}, seed="s", limit=4)]
    model.epsilon = 0.2
    assert greedy_order == ["a", "b", "c", "d"]
    leads: dict[str, int] = {}
    explored = 0
    for i in range(20000):
        ranked = [r.arm for r in model.rank([1.0, 0.0], list("abcd"), {}, f"d{i}", 4)]
        if ranked != greedy_order:
            explored += 1
        leads[ranked[0]] = leads.get(ranked[0], 0) + 1
    # explorations that drew the greedy offer leave the order as it was: 0.2 * 3/4
    assert 0.14 < explored / 20000 < 0.16
    for arm in "bcd":  # 0.2 / 4 each
        assert 0.04 < leads[arm] / 20000 < 0.06
    again = [r.arm for r in model.rank([1.0, 0.0], list("abcd"), {}, "d7", 4)]
    assert again == [r.arm for r in model.rank([1.0, 0.0], list("abcd"), {}, "d7", 4)]


def test_each_arm_is_reanchored_on_its_design_matrix() -> None:
    """Sherman-Morrison updates of the inverse alone carry their rounding for good (into
    every snapshot): over hundreds of millions of outcomes a busy offer's estimate drifted
    off. Every REANCHOR_EVERY outcomes the inverse is worked out from the design matrix,
    which is kept (and checkpointed) beside it; here an inverse already off is set right.
    At the re-anchor the evidence is discounted, the ridge prior kept whole:
    A = rI + kept (A - rI), b = kept b."""
    rng = random.Random(3)
    model = LinUCBOffers(dimension=4, alpha=0.0, kept=0.9)
    evidence, rewarded = np.zeros((4, 4)), np.zeros(4)  # worked out apart from the model
    for n in range(1, REANCHOR_EVERY + 1):
        x = [1.0, rng.random(), rng.random(), float(n % 2)]
        reward = 1.0 if rng.random() < 0.1 else 0.0
        model.learn_one(x, "busy", reward)
        evidence += np.outer(x, x)
        rewarded += reward * np.asarray(x)
        if n == REANCHOR_EVERY - 1:
            model.arms["busy"].a_inv *= 1.05  # as if rounding had added up
    arm = model.arms["busy"]
    design = np.eye(4) + 0.9 * evidence
    assert np.allclose(arm.a, design, rtol=1e-12)
    assert np.allclose(arm.b, 0.9 * rewarded, rtol=1e-12)
    assert np.allclose(arm.a_inv @ design, np.eye(4), atol=1e-9)
    restored = LinUCBOffers.from_dict(json.loads(json.dumps(model.to_dict())))
    assert np.array_equal(restored.arms["busy"].a, arm.a)


def test_a_snapshot_from_before_design_matrices_were_kept_loads() -> None:
    model = LinUCBOffers(dimension=2)
    model.learn_one([1.0, 0.5], "a", 1.0)
    state = model.to_dict()
    del state["arms"]["a"]["a"]  # as an older Moments wrote it
    restored = LinUCBOffers.from_dict(state)
    assert np.allclose(restored.arms["a"].a, model.arms["a"].a)
    assert restored.predict_one([1.0, 0.5], "a") == model.predict_one([1.0, 0.5], "a")


def _learned_two_offers() -> tuple[LinUCBOffers, list[list[float]]]:
    """Offers a (takes 0.3) and b (0.1), learned from many outcomes in varied contexts;
    and some contexts to decide in."""
    rng = random.Random(8)
    model = LinUCBOffers(dimension=4)
    contexts = [[1.0, rng.random(), rng.random(), float(rng.random() < 0.5)] for _ in range(50)]
    for i in range(6_000):
        x = contexts[i % len(contexts)]
        arm, rate = ("a", 0.3) if i % 2 else ("b", 0.1)
        model.learn_one(x, arm, float(rng.random() < rate))
    return model, contexts


@pytest.mark.parametrize("worth", [1.0, 8.0])
def test_a_new_offer_leads_only_the_optimistic_share_while_its_outcomes_are_awaited(
    worth: float,
) -> None:
    """An offer with no outcomes has the largest bonus. Outcomes come late, so the same
    snapshot decides many customers before the new offer's first is learned: ranked by
    the bound alone, it led about 96 % of them. It leads about the optimistic share,
    however much it is worth (its prior times a high worth is no estimate to rank it
    first by), and says so: its estimate is the prior, and its lead is exploration."""
    model, contexts = _learned_two_offers()
    led = 0
    decisions = 6_000
    for i in range(decisions):
        x = contexts[i % len(contexts)]
        first = model.rank(x, ["a", "b", "new"], {"new": worth}, f"d{i}")[0]
        if first.arm == "new":
            led += 1
            assert first.estimate == model.prior
            assert first.explored and first.propensity < 0.5
        else:
            assert first.explored == (first.arm != "a")  # a is the estimate's first
    expected = model.optimism * (1 - model.epsilon) + model.epsilon / 3
    assert expected - 0.02 < led / decisions < expected + 0.02


def test_each_logged_propensity_is_how_often_its_offer_leads() -> None:
    """Off-policy estimates weigh each decision by its first offer's logged propensity:
    over many decisions in one context, each offer leads as often as it says."""
    model, contexts = _learned_two_offers()
    model.epsilon = 0.1
    x, arms = contexts[3], ["a", "b", "new", "other-new"]
    led: dict[str, int] = {}
    said: dict[str, float] = {}
    decisions = 40_000
    for i in range(decisions):
        first = model.rank(x, arms, {"b": 2.0}, f"s{i}")[0]
        led[first.arm] = led.get(first.arm, 0) + 1
        assert said.setdefault(first.arm, first.propensity) == first.propensity
    assert sum(said.values()) == pytest.approx(1.0, abs=1e-5)
    for arm, n in led.items():
        assert n / decisions == pytest.approx(said[arm], abs=0.01)


def test_the_optimistic_share_is_kept_in_the_snapshot_and_checked() -> None:
    model, _ = _learned_two_offers()
    model.optimism = 0.35
    state = json.loads(json.dumps(model.to_dict()))
    assert LinUCBOffers.from_dict(state).optimism == 0.35
    older = {k: v for k, v in state.items() if k != "optimism"}  # published before it was kept
    assert LinUCBOffers.from_dict(older).optimism == LinUCBOffers(4).optimism
    with pytest.raises(ValueError, match=r"optimism 1\.5"):
        LinUCBOffers.from_dict(state | {"optimism": 1.5})
