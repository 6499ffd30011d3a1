"""Counters that alerts watch with ``increase()`` or ``rate()`` show each label value an
alert needs at 0 from a process's start. A series born at its first event starts at 1, and
``increase()`` takes a series' first sample as its base: MomentsDeadLettersRefused never
fired for the first reduced or dropped letter of a worker's life (after each restart or
rollout, every letter spaced out across restarts)."""

from __future__ import annotations

from streams.metrics import Metrics


def test_a_new_process_shows_its_refused_dead_letters_at_zero() -> None:
    value = Metrics().registry.get_sample_value
    for outcome in ("reduced", "dropped"):
        assert value("moments_dead_letters_refused_total", {"outcome": outcome}) == 0.0


def test_a_first_refusal_counts_from_zero() -> None:
    metrics = Metrics()
    metrics.letter_refused("dropped")
    value = metrics.registry.get_sample_value
    assert value("moments_dead_letters_refused_total", {"outcome": "dropped"}) == 1.0
    assert value("moments_dead_letters_refused_total", {"outcome": "reduced"}) == 0.0


def test_a_new_process_shows_the_learners_set_aside_results_at_zero() -> None:
    """MomentsOutcomesSetAside and MomentsRiskExamplesRefused: a learner counts a batch's
    set-aside outcomes or refused examples at once (hundreds), so a series born at its
    first batch hid that whole batch from increase() and rate()."""
    value = Metrics().registry.get_sample_value
    for result in ("invalid", "no_context", "corrupt_keys"):
        assert value("moments_learning_outcomes_total", {"result": result}) == 0.0
    for result in ("unusable", "unreadable"):
        assert value("moments_risk_examples_total", {"result": result}) == 0.0
