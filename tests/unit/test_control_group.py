"""Who is in the hold-out control group is fixed by the documented rule: the customer's
bucket is the first 8 bytes (big-endian) of SHA-256 over "<salt>:<customer id>", as a
fraction of 2**64; the customer is held out when that fraction, in percent, is below the
configured percent. A change that reshuffled the group would mix customers who were held
out with those who were not, and spoil the lift measured so far."""

from __future__ import annotations

import hashlib

import pytest

from agents.control_group import ControlGroup
from streams.app import intervention_holdout
from streams.settings import Settings

CUSTOMERS = [f"cust-{i:06d}" for i in range(2000)] + ["alice@example.com", "ÄÖÜ-unicode", "4711"]


def held_out_by_the_rule(salt: str, percent: float, customers: list[str]) -> set[str]:
    """The members, worked out here from the rule alone."""
    members = set()
    for customer in customers:
        digest = hashlib.sha256(salt.encode() + b":" + customer.encode()).digest()
        if int.from_bytes(digest[:8], "big") * 100 < percent * 2**64:
            members.add(customer)
    return members


def test_the_default_offers_control_group_follows_the_documented_rule() -> None:
    settings = Settings.from_env({})
    members = held_out_by_the_rule(settings.control_salt, settings.control_percent, CUSTOMERS)
    # about the configured share of customers: the pinned set is a real sample
    assert 0.5 * settings.control_percent < 100 * len(members) / len(CUSTOMERS)
    assert 100 * len(members) / len(CUSTOMERS) < 1.5 * settings.control_percent
    group = ControlGroup(settings.control_salt, settings.control_percent)
    assert {c for c in CUSTOMERS if group.contains(c)} == members


@pytest.mark.parametrize("percent", [1.0, 12.5, 50.0])
def test_the_interventions_hold_out_follows_the_rule_with_its_own_salt(percent: float) -> None:
    settings = Settings.from_env({"MOMENTS_INTERVENTION_CONTROL_PERCENT": str(percent)})
    holdout = intervention_holdout(settings)
    members = held_out_by_the_rule(f"{settings.control_salt}:interventions", percent, CUSTOMERS)
    assert 0 < len(members) < len(CUSTOMERS)
    assert {c for c in CUSTOMERS if holdout.contains(c)} == members
    # drawn apart from the offers' control group at the same share
    assert members != held_out_by_the_rule(settings.control_salt, percent, CUSTOMERS)


def test_a_larger_share_keeps_every_customer_already_held_out() -> None:
    """Raising the percent only adds customers: none held out so far is treated."""
    salt = Settings.from_env({}).control_salt
    smaller, larger = ControlGroup(salt, 5.0), ControlGroup(salt, 20.0)
    held = {c for c in CUSTOMERS if smaller.contains(c)}
    more = {c for c in CUSTOMERS if larger.contains(c)}
    assert held < more
    assert more == held_out_by_the_rule(salt, 20.0, CUSTOMERS)
