"""The offer catalogue refuses figures that are not finite or far past any sensible value:
each would break every decision that ranks or cools the offer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas import CatalogueError, load_catalogue
from schemas.catalogue import MAX_COOLDOWN_S
from streams.cli import main

OFFER = '[[offers]]\noffer_id = "a"\ntitle = "A"\nchannels = ["web"]\n'


def catalogue(tmp_path: Path, line: str, name: str = "offers.toml") -> Path:
    path = tmp_path / name
    path.write_text('version = "v"\n' + OFFER + line + "\n")
    return path


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ("value = inf", "$.offers[0].value"),
        ("value = nan", "$.offers[0].value"),
        ("value = 1e300", "$.offers[0].value"),
        ("priority = inf", "$.offers[0].priority"),
        ("priority = nan", "$.offers[0].priority"),
        ("cooldown_s = 100000000000000", "$.offers[0].cooldown_s"),
        (f"cooldown_s = {MAX_COOLDOWN_S + 1}", "$.offers[0].cooldown_s"),
    ],
)
def test_check_catalogue_refuses_figures_past_any_sensible_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, where: str
) -> None:
    path = catalogue(tmp_path, line)
    with pytest.raises(CatalogueError, match="invalid offer catalogue"):
        load_catalogue(path)
    assert main(["check-catalogue", str(path)]) == 2
    assert where in capsys.readouterr().err


def test_a_json_catalogue_cannot_sneak_in_an_infinite_value(tmp_path: Path) -> None:
    path = tmp_path / "offers.json"
    path.write_text('{"version": "v", "offers": [{"offer_id": "a", "title": "A", '
                    '"channels": ["web"], "value": 1e400}]}')  # fmt: skip
    with pytest.raises(CatalogueError, match=r"\$\.offers\[0\]\.value"):
        load_catalogue(path)


def test_the_longest_cooldown_allowed_still_cools_an_offer(tmp_path: Path) -> None:
    (offer,) = load_catalogue(catalogue(tmp_path, f"cooldown_s = {MAX_COOLDOWN_S}")).offers
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert now - (now - timedelta(days=1)) < timedelta(seconds=offer.cooldown_s)
    loaded = load_catalogue(catalogue(tmp_path, "value = 250.0\npriority = 2.5"))
    assert (loaded.offers[0].value, loaded.offers[0].priority) == (250.0, 2.5)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('version = "v"\n' + OFFER + "daily_limt = 5\n", "daily_limt"),
        ('version = "v"\n' + OFFER + 'available_untill = "2026-12-31T00:00:00Z"\n',
         "available_untill"),
        ('version = "v"\ndefault_offer = ["a"]\n' + OFFER, "default_offer"),
        ('version = "v"\n' + OFFER + "[contact_policy]\nweekly_cap = { email = 0 }\n",
         "weekly_cap"),
    ],
)  # fmt: skip
def test_a_misspelt_key_is_refused_naming_it(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "offers.toml"
    path.write_text(text)
    with pytest.raises(CatalogueError, match=f"unknown field `{named}`"):
        load_catalogue(path)


def test_a_default_offer_named_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "offers.toml"
    path.write_text('version = "v"\ndefault_offers = ["a", "a"]\n' + OFFER)
    with pytest.raises(CatalogueError, match="more than once"):
        load_catalogue(path)
