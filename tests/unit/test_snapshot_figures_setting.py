"""MOMENTS_MODEL_SNAPSHOT_FIGURES reaches the offer learner
(streams/app.py _register_learning)."""

from __future__ import annotations

from typing import Any

import pytest

from streams import app as worker_app
from streams.offer_learner import OfferLearner
from streams.settings import Settings


@pytest.mark.parametrize(("figures", "packed"), [("lists", False), ("packed", True)])
def test_the_offer_learner_writes_its_snapshot_figures_as_configured(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, figures: str, packed: bool
) -> None:
    seen: dict[str, Any] = {}

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return OfferLearner(*args, **kwargs)

    monkeypatch.setattr("streams.app.OfferLearner", recording)
    env = {"MOMENTS_DATA_DIR": str(tmp_path), "MOMENTS_MODEL_SNAPSHOT_FIGURES": figures}
    worker_app.create_app(Settings.from_env(env))
    assert seen["packed"] is packed
