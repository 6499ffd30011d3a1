"""An offer the customer accepted is not made to them again for its ``after_accepted_s``
(for good when it is not set; 0: as soon as its cool-down allows): the catalogue's
setting, the contact policy's rule, the features that carry the acceptance, and which
outcomes the learner keeps it for."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.learned_policy import ModelHolder
from feature_store import CustomerFeatures
from feature_store.decision_log import Claim
from feature_store.facts import ts_ms
from feature_store.features import ContactHistory, build_features
from schemas import NextBestOffer, Offer, OfferScore, encode_decision
from schemas.catalogue import OfferCatalogue
from streams.metrics import Metrics
from streams.offer_learner import OfferLearner
from tests.unit.learner_acceptances import Acceptances

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
POLICY = ContactPolicy(ControlGroup(salt="test", percent=0.0))
UPGRADE = Offer(offer_id="premium-upgrade", title="Premium", channels=["web", "email"])
TIPS = Offer(offer_id="tips", title="Tips", channels=["web", "email"])


def took(offer_id: str, ago: timedelta) -> CustomerFeatures:
    return CustomerFeatures(contact=ContactHistory(accepted={offer_id: NOW - ago}))


def screened(
    features: CustomerFeatures, *offers: Offer, channel: str = "web"
) -> tuple[list[str], list[str]]:
    verdict = POLICY.screen("c1", channel, features, list(offers), NOW)
    return [o.offer_id for o in verdict.allowed], verdict.reasons


@pytest.mark.parametrize("channel", ["web", "email"])
def test_an_accepted_offer_is_not_made_again_by_default(channel: str) -> None:
    years = took("premium-upgrade", timedelta(days=700))
    assert screened(years, UPGRADE, TIPS, channel=channel) == (
        ["tips"],
        ["suppressed:accepted:premium-upgrade"],
    )


def test_another_customer_or_another_offer_is_not_held_back() -> None:
    assert screened(CustomerFeatures(), UPGRADE, TIPS) == (["premium-upgrade", "tips"], [])
    assert screened(took("tips", timedelta(days=1)), UPGRADE) == (["premium-upgrade"], [])


def test_an_offer_accepted_is_held_back_for_its_after_accepted_s_only() -> None:
    month = msgspec.structs.replace(UPGRADE, after_accepted_s=30 * 86_400)
    inside = took("premium-upgrade", timedelta(days=30) - timedelta(seconds=1))
    assert screened(inside, month) == ([], ["suppressed:accepted:premium-upgrade"])
    assert screened(took("premium-upgrade", timedelta(days=30)), month) == (["premium-upgrade"], [])


def test_zero_keeps_an_accepted_offer_to_its_cool_down_alone() -> None:
    again = msgspec.structs.replace(UPGRADE, after_accepted_s=0, cooldown_s=3600)
    just = took("premium-upgrade", timedelta(minutes=1))
    assert screened(just, again) == (["premium-upgrade"], [])
    shown = CustomerFeatures(contact=ContactHistory(
        accepted={"premium-upgrade": NOW}, last_shown={"premium-upgrade": NOW}
    ))  # fmt: skip
    assert screened(shown, again) == ([], ["suppressed:cooldown:premium-upgrade"])


def test_the_catalogue_takes_after_accepted_s_and_refuses_what_is_no_duration() -> None:
    def offer(**said: object) -> bytes:
        return msgspec.json.encode({"version": "v", "offers": [
            {"offer_id": "gold", "title": "Gold", "channels": ["web"], **said}
        ]})  # fmt: skip

    decode = msgspec.json.Decoder(OfferCatalogue).decode
    assert decode(offer()).offers[0].after_accepted_s is None
    assert decode(offer(after_accepted_s=0)).offers[0].after_accepted_s == 0
    for wrong in (-1, 367 * 86_400, "forever", 1.5):
        with pytest.raises(msgspec.ValidationError, match="after_accepted_s"):
            decode(offer(after_accepted_s=wrong))
    with pytest.raises(msgspec.ValidationError, match="after_acepted_s"):
        decode(offer(after_acepted_s=0))  # misspelt: refused, naming it


def test_the_features_carry_when_each_offer_was_accepted() -> None:
    at = NOW - timedelta(days=3)
    profile = {"n": "4", "accepted:premium-upgrade": str(ts_ms(at)), "last_shown:tips": "1"}
    built = build_features(profile, {}, [], ts_ms(NOW))
    assert built.contact.accepted == {"premium-upgrade": at}
    assert screened(built, UPGRADE)[1] == ["suppressed:accepted:premium-upgrade"]


class Claims:
    """The claims a learner gets, set per decision id (as ``claim.lua`` would answer)."""

    def __init__(self, answers: dict[str, Claim]) -> None:
        self.answers = answers

    async def claim_outcomes(self, claims: list[Any], *_: Any, **__: Any) -> list[Claim]:
        return [self.answers[decision] for _, decision, _, _ in claims]

    async def contexts(self, pairs: list[Any], faults: Any = None) -> list[str | None]:
        return [LATER if decision == "early" else None for _, decision in pairs]


# the decision of an outcome dated an hour before it: of something else than its offer
LATER = encode_decision(NextBestOffer(
    decision_id="early", customer_id="c-early", ts=datetime(2026, 12, 1, 11, tzinfo=UTC),
    channel="web", trigger_event_id=None,
    offers=[OfferScore(offer_id="premium-upgrade", score=1.0, propensity=1.0)],
)).decode()  # fmt: skip


def record(offset: int, decision: str, outcome: str, ts: str) -> SimpleNamespace:
    said = {"decision_id": decision, "customer_id": f"c-{decision}",
            "offer_id": "premium-upgrade", "outcome": outcome, "ts": ts}  # fmt: skip
    value = msgspec.json.encode(said)
    return SimpleNamespace(topic="offer-outcomes", partition=0, offset=offset,
                           key=f"c-{decision}".encode(), value=value, headers=[])  # fmt: skip


async def test_the_learner_keeps_only_accepted_outcomes_joined_to_their_decisions() -> None:
    answers: dict[str, Claim] = {
        "new": "learn", "again": "relearn", "copy": "skip", "stronger": "relabel",
        "made-up": "not_offered", "gone": "no_context", "erased": "erased",
        "clicked": "learn", "early": "learn",
    }  # fmt: skip
    acceptances = Acceptances()

    async def dead_letter(**letter: Any) -> Awaitable[None]:
        return asyncio.sleep(0)

    async def nobody_erased(customer_ids: list[str]) -> list[bool]:
        return [False for _ in customer_ids]

    store = SimpleNamespace(decisions=Claims(answers), erased=nobody_erased,
                            acceptances=acceptances)  # fmt: skip
    learner = OfferLearner(store, ModelHolder(), Metrics(), "", "offer-outcomes",  # type: ignore[arg-type]
                           dead_letter, clock=lambda: NOW)  # fmt: skip
    learner._start(None, 0)
    ts = "2026-12-01T10:00:00Z"
    records = [record(i, d, "clicked" if d == "clicked" else "accepted", ts)
               for i, d in enumerate(answers)]  # fmt: skip
    await learner._learn(0, records)
    at = datetime(2026, 12, 1, 10, tzinfo=UTC)
    kept = {("c-new", "premium-upgrade"): at, ("c-again", "premium-upgrade"): at,
            ("c-copy", "premium-upgrade"): at, ("c-stronger", "premium-upgrade"): at}  # fmt: skip
    assert acceptances.kept == kept
    await learner._learn(0, records)  # read again: asked again, nothing changes
    assert acceptances.kept == kept and len(acceptances.asked) == 8


async def test_a_copy_stamped_later_does_not_start_the_hold_back_again() -> None:
    """A copy of an outcome claimed before (claim ``skip``), sent again with a later
    time: the time held stays; a copy finds none held (claimed by an older version) and
    keeps its own."""
    acceptances = Acceptances()
    held = datetime(2026, 11, 25, 10, tzinfo=UTC)
    acceptances.kept[("c-copy", "premium-upgrade")] = held

    async def dead_letter(**letter: Any) -> Awaitable[None]:
        return asyncio.sleep(0)

    async def nobody_erased(customer_ids: list[str]) -> list[bool]:
        return [False for _ in customer_ids]

    claims = Claims({"copy": "skip", "older": "skip"})
    store = SimpleNamespace(decisions=claims, erased=nobody_erased, acceptances=acceptances)
    learner = OfferLearner(store, ModelHolder(), Metrics(), "", "offer-outcomes",  # type: ignore[arg-type]
                           dead_letter, clock=lambda: NOW)  # fmt: skip
    learner._start(None, 0)
    stamped = "2026-12-01T10:00:00Z"
    await learner._learn(0, [record(0, "copy", "accepted", stamped),
                             record(1, "older", "accepted", stamped)])  # fmt: skip
    own = datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert acceptances.kept == {("c-copy", "premium-upgrade"): held,
                                ("c-older", "premium-upgrade"): own}  # fmt: skip
