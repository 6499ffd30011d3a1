"""Calls made from alert cards count against the customer's call caps, through a real
worker on real Kafka and Redis: once however often their touchpoint comes, and only
when the outbound call names the card it was made from."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Pipeline
from tests.integration.test_interventions_pipeline import (
    NOW,
    event,
    save_desk_cards,
    send,
    settle,
    start_calling_once_a_day,
)
from tests.integration.test_service_restarts import all_handled

pytestmark = pytest.mark.integration


def outbound(customer: str, event_id: str, **fields: Any) -> dict[str, Any]:
    return event("call", customer, NOW - timedelta(minutes=10), event_id, status="started",
                 direction="outbound", reason="sales", queue="retention", **fields)  # fmt: skip


async def test_a_call_made_from_a_card_is_counted_against_the_call_caps(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """One call a day: a customer called from a card (the call's touchpoint sent twice)
    then visiting the cancellation page gets a save desk card that says not to call
    them today; one called with no card named (perhaps for one of Moments' own call
    offers, counted when decided), or with a blank one, gets a call to make."""
    start_calling_once_a_day(pipeline, tmp_path / "call-caps.toml")
    card_call = outbound("carded", "card-call", intervention_id="a-retention-card")
    calls = [card_call, outbound("plain", "plain-call"),
             outbound("blank", "blank-call", intervention_id=" ")]  # fmt: skip
    await send(pipeline, calls)
    await send(pipeline, [card_call])  # the telephony sent it again
    customers = {"carded", "plain", "blank"}
    await settle(pipeline, customers, 3)
    await all_handled(pipeline)
    store = pipeline.store()
    try:
        shown = {c: p.contact.shown_today if (p := await store.read(c)) else None
                 for c in sorted(customers)}  # fmt: skip
    finally:
        await store.close()
    assert shown == {"blank": {}, "carded": {"call": 1}, "plain": {}}
    pages = [event("web_click", c, NOW, f"page-{c}", page="/account/cancel") for c in customers]
    await send(pipeline, pages)
    cards = await save_desk_cards(pipeline, 3)
    assert cards["carded"]["reasons"] == ["visited:cancellation_page", "fatigue:call:day"]
    assert cards["carded"]["suggested_action"].startswith("Do not call them back before tomorrow")
    for customer in ("plain", "blank"):
        assert cards[customer]["reasons"] == ["visited:cancellation_page"]
        assert cards[customer]["suggested_action"].startswith("Route to the save desk")
