"""Weekly and daily fatigue caps in the catalogue: a weekly cap of 0 closes a channel
on its own, and a weekly cap set below the default daily one binds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemas import CatalogueError, ContactRules, load_catalogue

OFFER = '[[offers]]\noffer_id = "a"\ntitle = "A"\nchannels = ["web", "email", "call"]\n'


def rules_of(tmp_path: Path, policy: str) -> ContactRules:
    path = tmp_path / "offers.toml"
    path.write_text('version = "v"\n' + OFFER + "[contact_policy]\n" + policy + "\n")
    return load_catalogue(path).contact_policy


def test_a_weekly_cap_of_zero_alone_closes_the_channel(tmp_path: Path) -> None:
    rules = rules_of(tmp_path, "weekly_caps = { email = 0 }")
    assert rules.closed("email") == "suppressed:fatigue:email:week"
    assert rules.closed("web") is None


def test_a_weekly_cap_below_the_default_daily_one_binds(tmp_path: Path) -> None:
    rules = rules_of(tmp_path, "weekly_caps = { call = 1 }")  # the default daily call cap is 2
    assert (rules.daily_cap("call"), rules.weekly_cap("call"), rules.closed("call")) == (2, 1, None)


def test_a_weekly_cap_of_zero_closes_the_channel_whatever_the_daily_cap(tmp_path: Path) -> None:
    rules = rules_of(tmp_path, "daily_caps = { email = 2 }\nweekly_caps = { email = 0 }")
    assert rules.closed("email") == "suppressed:fatigue:email:week"
    outbound = rules_of(tmp_path, "outbound_daily_cap = 1\noutbound_weekly_cap = 0")
    assert outbound.closed("sms") == "suppressed:fatigue:outbound:week"


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ("daily_caps = { email = 5 }\nweekly_caps = { email = 4 }", "daily cap of email (5)"),
        ("daily_caps = { email = 4 }", "weekly cap (3)"),  # above the default weekly cap
        ("outbound_daily_cap = 3\noutbound_weekly_cap = 2", "outbound daily cap (3)"),
    ],
)
def test_a_daily_cap_set_above_its_weekly_cap_is_still_a_slip(
    tmp_path: Path, policy: str, words: str
) -> None:
    with pytest.raises(CatalogueError, match=re.escape(words)):
        rules_of(tmp_path, policy)
