"""MOMENTS_OFFER_MODEL_KEPT_PER_1000 (the share of an offer's evidence the offer model
keeps at each 1,000 outcomes of the offer) is checked at start and reaches the offer
learner, which learns with it from a fresh model and from its snapshot alike (the
processes that only score have no use for it)."""

from __future__ import annotations

from typing import Any

import pytest

from agents.bandit import LinUCBOffers
from agents.context import DIMENSION
from agents.learned_policy import ModelHolder
from streams import app as worker_app
from streams.offer_learner import OfferLearner
from streams.settings import Settings, SettingsError


def test_the_default_is_a_memory_of_about_20000_outcomes() -> None:
    kept = Settings().offer_model_kept_per_1000
    assert kept == 0.95 and 1000 / (1 - kept) == pytest.approx(20_000)


@pytest.mark.parametrize("value", ["0.4", "1.01", "nan", "-1", "0"])
def test_a_share_outside_a_half_to_whole_is_refused_at_start(value: str) -> None:
    with pytest.raises(
        SettingsError, match=r"MOMENTS_OFFER_MODEL_KEPT_PER_1000 must be from 0\.5 to 1"
    ):
        Settings.from_env({"MOMENTS_OFFER_MODEL_KEPT_PER_1000": value})


@pytest.mark.parametrize("value", ["0.5", "0.99", "1"])
def test_a_share_from_a_half_to_whole_is_taken(value: str) -> None:
    settings = Settings.from_env({"MOMENTS_OFFER_MODEL_KEPT_PER_1000": value})
    assert settings.offer_model_kept_per_1000 == float(value)


def test_the_setting_reaches_the_offer_learner(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return OfferLearner(*args, **kwargs)

    monkeypatch.setattr("streams.app.OfferLearner", recording)
    env = {"MOMENTS_DATA_DIR": str(tmp_path), "MOMENTS_OFFER_MODEL_KEPT_PER_1000": "0.8"}
    worker_app.create_app(Settings.from_env(env))
    assert seen["kept"] == 0.8


def test_the_learner_learns_with_it_from_its_snapshot_and_from_nothing() -> None:
    learner = OfferLearner(None, ModelHolder(), None, "", "", None, kept=0.8)  # type: ignore[arg-type]
    learner._start(None, 0)
    assert learner._model.kept == 0.8
    learner._start(LinUCBOffers(DIMENSION - 1, kept=0.99).to_dict(), 3)  # widened on restore
    assert learner._model.kept == 0.8 and learner._model.dimension == DIMENSION
