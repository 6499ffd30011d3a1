"""streams.api.inflight: what other batches count of the decisions being written."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from schemas import NextBestOffer, OfferScore
from streams.api.inflight import InFlightDecisions

AT = datetime(2026, 12, 1, 9, tzinfo=UTC)


def shown(decision_id: str, channel: str) -> NextBestOffer:
    offers = [OfferScore(offer_id="voucher", score=1.0, propensity=1.0)]
    return NextBestOffer(decision_id=decision_id, customer_id="c1", channel=channel, ts=AT,
                         trigger_event_id=None, model_version="m", offers=offers)  # fmt: skip


async def test_a_decision_refused_over_a_budget_is_no_longer_counted_as_a_contact() -> None:
    """Refused once its budget count replied, a round trip before its record: it will
    make no contact, and a batch deciding for the same customer meanwhile counted it all
    the same, suppressing their offers on another channel."""
    held = InFlightDecisions()
    release = asyncio.Event()
    writing = asyncio.create_task(
        held.store([shown("d-email", "email"), shown("d-web", "web")], [], release.wait())
    )
    await asyncio.sleep(0)  # the write is under way
    unseen, _ = await held.read(asyncio.sleep(0))
    before = unseen.contacted("c1", None)
    assert before is not None and before.contact.shown_today == {"email": 1, "web": 1}
    held.refused({"d-email"})
    after = unseen.contacted("c1", None)
    assert after is not None and after.contact.shown_today == {"web": 1}
    held.refused({"d-web"})
    assert unseen.contacted("c1", None) is None  # nothing of theirs is held any more
    release.set()
    await writing
