"""The demo's LIFT lines count what ``moments lift`` counts: an erased customer's
decisions are left out, as the CLI line the demo prints leaves them out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas import CustomerErasure, NextBestOffer, encode_decision, encode_erasure
from streams.control_lift import ControlLift, LiftPeriod
from streams.demo import LIFT_WINDOW, _take
from streams.settings import Settings
from streams.topics import CUSTOMER_ERASURES, INTERVENTIONS, NEXT_BEST_OFFERS

T0 = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)


def decided(customer_id: str, control: bool = False) -> bytes:
    return encode_decision(NextBestOffer(decision_id=f"d-{customer_id}", customer_id=customer_id,
                                         channel="web", ts=T0, trigger_event_id=None,
                                         offers=[], control=control))  # fmt: skip


def test_an_erased_customer_leaves_the_demos_lift(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings.from_env({})
    lift = ControlLift(LiftPeriod(T0, T0 + timedelta(days=1), LIFT_WINDOW), T0)
    shown = sum(_take(settings, settings.topic(NEXT_BEST_OFFERS), decided(c), lift)
                for c in ("who-1", "who-2", "who-3"))  # fmt: skip
    shown += _take(settings, settings.topic(NEXT_BEST_OFFERS), decided("who-4", True), lift)
    erasure = CustomerErasure(customer_id="who-2", subject="s", ts=T0 + timedelta(seconds=5),
                              keys_removed=4)  # fmt: skip
    shown += _take(settings, settings.topic(CUSTOMER_ERASURES), encode_erasure(erasure), lift)
    report = lift.report(T0 + timedelta(minutes=5))
    assert shown == 4
    assert (report["treated"]["customers"], report["control"]["customers"]) == (2, 1)
    assert report["left_out"]["erased"] == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].endswith("ERASED customer#" + lines[1].split("customer#")[1].split()[0])
    assert all("who" not in line for line in lines)  # named by a hash only (hex digits)


@pytest.mark.parametrize("topic", [CUSTOMER_ERASURES, NEXT_BEST_OFFERS, INTERVENTIONS])
@pytest.mark.parametrize("value", [b"not json", b"", b'{"customer_id": "who-9"}'])
def test_a_record_that_does_not_decode_is_skipped_not_the_end_of_the_demo(
    topic: str, value: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stray record on one of the demo's topics (a test message, an empty value) is
    said in a line naming no one, as ``moments lift`` skips it; it stopped the demo."""
    settings = Settings.from_env({})
    lift = ControlLift(LiftPeriod(T0, T0 + timedelta(days=1), LIFT_WINDOW), T0)
    assert _take(settings, settings.topic(topic), value, lift) == 0
    out = capsys.readouterr().out
    assert out.startswith("SKIPPED a record of ") and "who" not in out
