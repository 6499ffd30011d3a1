"""Calls made from alert cards count against the customer's call caps, through a real
worker on real Kafka and Redis: once however often their touchpoint comes, and only
when the outbound call names the card it was made from."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.integration.conftest import Pipeline, consume_all
from tests.integration.test_api_support import eventually
from tests.integration.test_dead_letter_redrive import dead_letters
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


CALLED = NOW - timedelta(minutes=10)  # when the outbound calls were made
# The calls' day, whatever the clock says when the test reads the counts (past a midnight)
AS_OF_THE_CALLS = CALLED.timestamp()


def outbound(customer: str, event_id: str, **fields: Any) -> dict[str, Any]:
    return event("call", customer, CALLED, event_id, status="started",
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
        shown = {c: p.contact.shown_today if (p := await store.read(c, AS_OF_THE_CALLS)) else None
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


async def test_a_card_call_whose_contact_redis_refuses_is_counted_once_sent_back(
    pipeline: Pipeline,
) -> None:
    """The customer's count of the day's calls holds no number (mangled by hand; no
    touchpoint's apply touches it): the card call's touchpoint is applied, its contact
    refused, and its record dead-lettered with the reason. Once the count is mended,
    the record sent back is counted, once."""
    pipeline.start_worker()
    customer = "dl-cust-mangled"  # dead_letters() checks no "dl-cust-" is shown
    store = pipeline.store()
    admin = aioredis.Redis.from_url(pipeline.services.redis_url)
    try:
        call = outbound(customer, "mangled-call", intervention_id="a-card")
        contacts = store._keys.for_customer(customer).contacts
        day = int(AS_OF_THE_CALLS // 86400)
        await admin.hset(contacts, f"d{day}|shown:call", "not a count")
        await send(pipeline, [call])
        dlq = pipeline.topic("touchpoints-dlq")
        (letter,) = await consume_all(pipeline.services.kafka_bootstrap, dlq, 1)
        error = dict(letter.headers)["error"].decode()  # type: ignore[attr-defined]
        assert error.startswith("call contact failed: ResponseError: "), error
        await admin.hdel(contacts, f"d{day}|shown:call")  # mended
        features = await store.read(customer, AS_OF_THE_CALLS)
        assert features is not None and features.events == 1  # the touchpoint stands
        assert features.contact.shown_today == {}  # its call is not counted yet
        sent = dead_letters(pipeline, "--redrive")
        assert sent["redrive"]["redriven"] == 1, sent

        async def counted() -> dict[str, int] | None:
            read = await store.read(customer, AS_OF_THE_CALLS)
            return read.contact.shown_today if read is not None else None

        assert await eventually(counted, "the call sent back counted", 60) == {"call": 1}
        await all_handled(pipeline)
        read = await store.read(customer, AS_OF_THE_CALLS)
        assert read is not None and read.events == 1 and read.contact.shown_today == {"call": 1}
    finally:
        await admin.aclose()
        await store.close()
