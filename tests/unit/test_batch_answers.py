"""How a batch's callers are answered from what its write said (streams.api.answers)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from agents.moments import request_moment
from schemas import NextBestOffer, OfferScore, encode_decision
from streams.api.answers import Decided, OfferRequest, answer_stored, expire, sort_refused

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def decided(customer: str, answer: asyncio.Future[NextBestOffer | None]) -> Decided:
    moment = request_moment(customer, "web", 3)
    decision = NextBestOffer(
        decision_id=moment.decision_id, customer_id=customer, ts=NOW, channel="web",
        trigger_event_id=None,
        offers=[OfferScore(offer_id="tips", score=0.5, propensity=0.5)],
    )  # fmt: skip
    request = OfferRequest(moment, answer, decision, cleared=True)
    return request, decision, encode_decision(decision)


async def test_stored_decisions_are_answered_and_published_the_others_go_back() -> None:
    loop = asyncio.get_running_loop()
    batch = [decided(c, loop.create_future()) for c in ("kept", "erased", "faulty", "left")]
    batch[3][0].answer.cancel()  # its caller went away
    fault = ValueError("WRONGTYPE")
    published, unmade = answer_stored(
        batch, [True, False, False, True], {"faulty": fault}, None, set()
    )
    kept, erased, faulty, left = batch
    assert kept[0].answer.result() is kept[1]
    assert erased[0].answer.result() is None  # answered as for anyone unknown
    assert faulty[0].answer.exception() is fault  # a fallback
    assert published == [(b"kept", kept[2])]
    assert unmade == {erased[1].decision_id, faulty[1].decision_id, left[1].decision_id}


async def test_a_decision_answered_when_the_budget_ran_out_was_shown() -> None:
    loop = asyncio.get_running_loop()
    batch = [decided("late", loop.create_future())]
    expire([batch[0][0]])  # its decision was taken: answered with it at once
    failure = ConnectionError("the write failed")
    published, unmade = answer_stored(batch, [True], {}, failure, set())
    assert batch[0][0].answer.result() is batch[0][1]
    assert published == [(b"late", batch[0][2])] and unmade == set()


async def test_a_decision_whose_budget_count_is_under_way_is_not_answered_when_time_runs_out() -> (
    None
):
    """That count may refuse it (another process spent the budget meanwhile): answered
    with it, it was shown and counted all the same, past the budget's limit."""
    loop = asyncio.get_running_loop()
    request, decision, raw = decided("counting", loop.create_future())
    request.cleared = False
    expire([request])
    with pytest.raises(TimeoutError):  # a fallback
        request.answer.result()
    published, unmade = answer_stored([(request, decision, raw)], [False], {}, None,
                                      {decision.decision_id})  # fmt: skip
    assert published == [] and unmade == {decision.decision_id}  # its spending goes back


async def test_refused_decisions_are_decided_again_unless_already_shown() -> None:
    loop = asyncio.get_running_loop()
    waiting, shown, other = (decided(c, loop.create_future()) for c in ("w", "s", "o"))
    shown[0].answer.set_result(shown[1])
    refused = {waiting[1].decision_id, shown[1].decision_id}
    again, answered = sort_refused([waiting, shown, other], refused)
    assert again == [waiting] and answered == [shown]
    assert waiting[0].decision is None  # the budget running out now gives a fallback
    published, unmade = answer_stored([waiting, shown, other], [False, False, True], {},
                                      None, refused)  # fmt: skip
    assert not waiting[0].answer.done()  # left to be decided again
    assert published == [(b"o", other[2])] and unmade == {waiting[1].decision_id}
    expire([waiting[0]])
    with pytest.raises(TimeoutError):
        waiting[0].answer.result()
