"""The recommender when a batch goes wrong: a decision that fails fails its own request
alone, a reply the batch cannot take is a fallback (never a 500), the latency budget is
checked between decisions, what a decision never shown spent goes back to the budgets,
and batches waiting on a slow Redis are bounded.

The store is :class:`tests.unit.test_recommender_overlap.SlowStore`, a test double, not
Redis; the Recommender against real Redis is in ``tests/integration/test_recommender.py``.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.exceptions import ResponseError

from agents.catalogue_holder import CatalogueHolder
from agents.fallback_contacts import FallbackContacts
from agents.moments import DecisionMoment
from agents.web_withdrawals import WebWithdrawals
from feature_store import StoreUnavailable
from schemas import NextBestOffer
from streams.api import recommender as recommender_module
from streams.api.recommender import Recommender
from tests.unit.api_app import api_app
from tests.unit.test_recommender_overlap import (
    BUDGETS,
    CONTACTS,
    KNOWN,
    SlowStore,
    _Decisions,
    recommender,
    until,
)


class Deciding:
    """The policy with another ``decide`` (the policy itself is frozen)."""

    def __init__(self, policy: Any, decide: Any) -> None:
        self.catalogue, self.contact_policy, self.decide = (
            policy.catalogue,
            policy.contact_policy,
            decide,
        )


class Broken(SlowStore):
    """A read that fails as a reply Redis sent could (a key of the wrong type)."""

    async def read_for_decisions(
        self, customer_ids: Any, faults: Any = None, home_timezone: str = "UTC"
    ) -> Any:
        await self.reply(self.read_s)
        raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")


async def test_a_reply_the_batch_cannot_take_is_answered_with_fallbacks_not_500s() -> None:
    rec = recommender(Broken({"c1": KNOWN}), CONTACTS)
    fallbacks: list[str] = []
    app = app_over(rec, CONTACTS, fallbacks)
    rec.publish_soon = lambda decision: None  # type: ignore[method-assign]
    async with TestClient(TestServer(app)) as client:
        answers = await asyncio.gather(*(
            client.get(f"/v1/customers/c{n}/recommendations",
                       headers={"Authorization": "Bearer backend-key"})
            for n in range(3)
        ))  # fmt: skip
        bodies = [await a.json() for a in answers]
    assert [a.status for a in answers] == [200, 200, 200], bodies
    assert all(b["fallback"] for b in bodies) and fallbacks == ["error"] * 3


async def test_a_decision_that_fails_fails_its_own_request_alone() -> None:
    rec = recommender(SlowStore({"c1": KNOWN, "bad": KNOWN, "c2": KNOWN}), CONTACTS)
    decide = rec._decisions._policy.decide

    def picky(moment: DecisionMoment, *rest: Any) -> NextBestOffer:
        if moment.customer_id == "bad":
            raise ValueError("features the policy cannot take")
        return decide(moment, *rest)

    rec._decisions._policy = Deciding(rec._policy, picky)  # type: ignore[assignment]
    answers = await asyncio.gather(*(rec.recommend(c, "web", 3) for c in ("c1", "bad", "c2")),
                                   return_exceptions=True)  # fmt: skip
    assert isinstance(answers[1], ValueError)
    assert all(isinstance(a, NextBestOffer) for a in (answers[0], answers[2]))


async def test_the_latency_budget_is_checked_between_the_decisions_of_a_batch() -> None:
    """A slow model: once the budget is gone, the rest of the batch gets fallbacks rather
    than decisions taken (and answered) late."""
    store = SlowStore({f"c{n}": KNOWN for n in range(20)})
    store.read_s = 0.001  # the budget is the model's to spend (a busy machine took a
    # 50 ms budget before the first decision, with a 10 ms read)
    rec = recommender(store, CONTACTS)
    rec.budget_s = 0.2
    decide = rec._decisions._policy.decide

    def slow(*args: Any) -> NextBestOffer:
        time.sleep(0.02)  # 20 of them: 0.4 s
        return decide(*args)

    rec._decisions._policy = Deciding(rec._policy, slow)  # type: ignore[assignment]
    answers = await asyncio.gather(*(rec.recommend(f"c{n}", "web", 3) for n in range(20)),
                                   return_exceptions=True)  # fmt: skip
    late = [a for a in answers if isinstance(a, TimeoutError)]
    assert late and len(late) < 20  # some decided in time, the rest fell back


class LostReply(_Decisions):
    """The decisions are recorded in Redis, and the reply is lost."""

    async def record(
        self, records: Any, shown: Any, faults: Any = None, refused: Any = None
    ) -> list[bool]:
        await super().record(records, shown, faults, refused)
        raise StoreUnavailable("the connection went after the scripts ran")


async def test_what_a_decision_never_shown_spent_goes_back_to_the_budgets() -> None:
    store = SlowStore({"c1": KNOWN}, spent={"voucher": 4})
    store.decisions = LostReply(store)
    rec = recommender(store, BUDGETS)
    with pytest.raises(StoreUnavailable):  # the caller gets a fallback
        await rec.recommend("c1", "web", 3)
    await rec.drain()
    assert store.budgets.counts["voucher"] == 4  # the last unit is still there


async def test_batches_waiting_on_a_slow_redis_are_bounded() -> None:
    """Redis answers one round trip every 20 ms and requests come faster: past
    MAX_BATCHES_IN_FLIGHT, batches are answered with fallbacks at once, and no read is
    sent for them."""
    store = SlowStore({})
    store.read_s = 0.02
    rec = recommender(store, CONTACTS)
    rec.budget_s = 0.05
    tasks = []
    for n in range(200):  # one or two a turn of the loop: a batch each, in a few ms (a
        # millisecond apart, a machine busy elsewhere let Redis keep up: 108 batches read)
        tasks.append(asyncio.create_task(rec.recommend(f"c{n}", "web", 3)))
        await asyncio.sleep(0)
        assert len(rec._running) <= recommender_module.MAX_BATCHES_IN_FLIGHT
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    assert len(store.reads) < 100 and sum(isinstance(a, TimeoutError) for a in answers) > 100
    await rec.drain()


class Erased(SlowStore):
    """Every customer read is erased; ``kept``: the withdrawals their erasure kept."""

    def __init__(self, *args: Any, kept: dict[str, list[str]] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.kept = kept or {}

    async def withdrawals_kept(self, customer_id: str) -> list[str]:
        await self.reply(self.read_s)
        return self.kept.get(customer_id, [])

    async def read_for_decisions(
        self, customer_ids: Any, faults: Any = None, home_timezone: str = "UTC"
    ) -> Any:
        await self.reply(self.read_s)
        return [(True, None) for _ in customer_ids]


def app_over(rec: Recommender, catalogue: Any, fallbacks: list[str]) -> Any:
    return api_app(
        recommender=rec,
        alerts=SimpleNamespace(erased_lately=set()),
        fallback_contacts=FallbackContacts(),
        web_withdrawals=WebWithdrawals(),
        policy=rec._policy,
        catalogue=CatalogueHolder(catalogue),
        metrics=SimpleNamespace(
            fell_back=lambda reason: SimpleNamespace(inc=lambda: fallbacks.append(reason)),
            decided=lambda *a: SimpleNamespace(inc=lambda: None),
            offers_in=lambda decision: None,
        ),
    )  # fmt: skip


async def test_an_erased_customers_answer_shows_no_offer_with_a_daily_budget() -> None:
    """Answered as anyone unknown, within today's budgets, but uncounted (nothing is spent
    about them): with one voucher left, every erased customer asking was shown it."""
    store = Erased({}, spent={"voucher": 4})  # of 5
    rec = recommender(store, BUDGETS)
    fallbacks: list[str] = []
    async with TestClient(TestServer(app_over(rec, BUDGETS, fallbacks))) as client:
        for n in range(3):
            reply = await client.get(f"/v1/customers/gone-{n}/recommendations",
                                     headers={"Authorization": "Bearer backend-key"})  # fmt: skip
            body = await reply.json()
            assert reply.status == 200 and body["fallback"] is False, body
            assert body["offers"] and "voucher" not in [o["offer_id"] for o in body["offers"]]
    assert fallbacks == []  # erased: nothing counted or sent about them
    assert store.budgets.counts["voucher"] == 4 and store.budgets.counted == set()


async def test_a_decision_whose_budget_count_refuses_it_after_time_ran_out_is_not_shown() -> None:
    """The latency budget ran out while the batch's budget count was under way: the caller
    was answered with the decision, the count then refused it (another process spent the
    last voucher meanwhile), and, shown, it was counted all the same: 6 of 5."""
    store = SlowStore({"c1": KNOWN}, spent={"voucher": 4})  # of 5
    store.take_s = 0.2
    rec = recommender(store, BUDGETS)
    rec.budget_s = 0.05
    asking = asyncio.create_task(rec.recommend("c1", "web", 3))
    await until(lambda: store.reads)  # read as 4 spent
    store.budgets.counts["voucher"] += 1  # another process spends the last one
    with pytest.raises(TimeoutError):  # a fallback
        await asking
    await rec.drain()
    assert store.budgets.counts["voucher"] == 5


async def test_a_decision_whose_caller_got_a_fallback_while_it_was_counted_is_not_kept() -> None:
    """The budget count took the rest of the latency budget: the caller got a fallback,
    and the decision, never shown, was recorded all the same when the count replied, its
    contact counting against the customer's caps and cool-downs."""
    store = SlowStore({"c1": KNOWN}, spent={"voucher": 0})
    store.take_s = 0.2
    rec = recommender(store, BUDGETS)
    rec.budget_s = 0.05
    with pytest.raises(TimeoutError):  # a fallback
        await rec.recommend("c1", "web", 3)
    await rec.drain()
    assert store.writes == []  # nothing of it recorded: no contact, no context
    assert store.budgets.counts["voucher"] == 0  # and its spending given back


class CorruptKeys(SlowStore):
    """Customers in ``unreadable`` fail the read, those in ``unwritable`` the write, as
    the store says of a customer whose key holds another type (in ``faults``)."""

    unreadable = frozenset({"bad-read"})
    unwritable = frozenset({"bad-write"})

    async def read_for_decisions(
        self, customer_ids: Any, faults: Any = None, home_timezone: str = "UTC"
    ) -> Any:
        views = await super().read_for_decisions(customer_ids, faults, home_timezone)
        for customer_id in self.unreadable.intersection(customer_ids):
            faults[customer_id] = ResponseError("WRONGTYPE the profile is not a hash")
        return [(False, None) if c in self.unreadable else v
                for c, v in zip(customer_ids, views, strict=True)]  # fmt: skip


class CorruptDecisions(_Decisions):
    async def record(
        self, records: Any, shown: Any, faults: Any = None, refused: Any = None
    ) -> list[bool]:
        kept = await super().record(records, shown, faults, refused)
        for record in records:
            if record.customer_id in CorruptKeys.unwritable:
                faults[record.customer_id] = ResponseError("WRONGTYPE key 2 of the decision")
        return [k and r.customer_id not in faults for k, r in zip(kept, records, strict=True)]


async def test_a_customer_whose_keys_fail_fails_alone_and_spends_nothing() -> None:
    store = CorruptKeys({c: KNOWN for c in ("c1", "bad-read", "bad-write", "c2")},
                        spent={"voucher": 0})  # fmt: skip
    store.decisions = CorruptDecisions(store)
    rec = recommender(store, BUDGETS)
    asked = ("c1", "bad-read", "bad-write", "bad-read", "c2")
    answers = await asyncio.gather(*(rec.recommend(c, "web", 3) for c in asked),
                                   return_exceptions=True)  # fmt: skip
    await rec.drain()
    assert [type(a).__name__ for a in answers] == [
        "NextBestOffer", "ResponseError", "ResponseError", "ResponseError", "NextBestOffer",
    ]  # fmt: skip
    assert store.writes == [["c1", "bad-write", "c2"]]  # the unreadable one decided nothing
    decided = [a for a in answers if isinstance(a, NextBestOffer)]
    spent = sum(o.offer_id == "voucher" for d in decided for o in d.offers)
    assert store.budgets.counts["voucher"] == spent  # bad-write's spending went back


class LostThenErased(_Decisions):
    """The batch's write fails (its reply lost: it may have run); the check after it
    finds the customer erased (the store refuses their decision), or not."""

    def __init__(self, store: SlowStore, erased: bool) -> None:
        super().__init__(store)
        self.erased = erased
        self.calls = 0

    async def record(self, records: Any, shown: Any = (), faults: Any = None,
                     refused: Any = None) -> list[bool]:  # fmt: skip
        self.calls += 1
        await self._store.reply(self._store.write_s)
        if self.calls == 1:
            raise StoreUnavailable("the connection dropped after the scripts ran")
        return [not self.erased for _ in records]


@pytest.mark.parametrize("erased", [True, False])
async def test_a_decision_shown_whose_write_failed_is_published_only_if_not_erased(
    erased: bool,
) -> None:
    """The latency budget ran out while the write was in flight: the caller was shown
    the decision; then the write failed, so whether the store refused it (the customer
    erased meanwhile) is not known. It is published once Redis says they are not."""
    store = SlowStore({"c1": KNOWN})
    store.decisions = LostThenErased(store, erased)  # type: ignore[assignment]
    store.read_s, store.write_s = 0.001, 0.5
    rec = recommender(store, CONTACTS)
    rec.budget_s = 0.25  # runs out while the write is in flight (20 ms, against a read
    # of 10 ms, ran out before the write began on a machine busy elsewhere)
    sent: list[bytes] = []

    def publish(topic: str, records: Any) -> asyncio.Future[None]:
        sent.extend(key for key, _ in records)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    rec._publisher = SimpleNamespace(publish=publish, drain=rec._publisher.drain)  # type: ignore[assignment]
    rec._delivery._publisher = rec._publisher  # type: ignore[assignment]
    answer = await rec.recommend("c1", "email", 3)
    await rec.drain()
    assert isinstance(answer, NextBestOffer) and answer.offers  # shown
    assert store.decisions.calls == 2  # the write, then the check
    assert sent == ([] if erased else [b"c1"])


async def test_an_erased_customer_who_withdrew_is_offered_nothing_there() -> None:
    """The withdrawals the erasure kept hold in the answer as a stranger's: nothing on the
    channels withdrawn from (an unsubscribe too), with the reasons a known customer's
    answer gives; the other channels as anyone unknown is offered. Nothing is sent."""
    store = Erased({}, spent={"voucher": 4}, kept={"gone": ["consent:sms", "subscribed:email"]})
    rec = recommender(store, BUDGETS)
    fallbacks: list[str] = []
    answers = {}
    async with TestClient(TestServer(app_over(rec, BUDGETS, fallbacks))) as client:
        for channel in ("sms", "email", "web"):
            reply = await client.get(f"/v1/customers/gone/recommendations?channel={channel}",
                                     headers={"Authorization": "Bearer backend-key"})  # fmt: skip
            assert reply.status == 200
            answers[channel] = await reply.json()
    assert answers["sms"]["offers"] == [] and answers["sms"]["fallback"] is False
    assert answers["sms"]["reasons"] == ["segment:new", "suppressed:consent:sms"]
    assert answers["email"]["offers"] == []
    assert answers["email"]["reasons"] == ["segment:new", "suppressed:channel_avoided:email"]
    assert answers["web"]["offers"] and answers["web"]["segment"] == "new"
    stranger = rec.as_if_unknown("gone", "web", 3)  # as anyone unknown, bar the ids
    assert answers["web"]["context"] == stranger.context
    assert fallbacks == [] and store.budgets.counted == set()


async def test_an_erased_customers_answer_falls_back_when_redis_is_slow_to_say() -> None:
    """The withdrawals kept are read within the latency budget: past it, the default
    offers (none on the channels that reach out), and nothing sent about them."""
    store = Erased({}, spent={}, kept={"gone": ["consent:sms"]})
    rec = recommender(store, BUDGETS)
    rec.budget_s = 0.05
    store.read_s = 0.03  # the erased read, then the withdrawals: past the budget
    fallbacks: list[str] = []
    async with TestClient(TestServer(app_over(rec, BUDGETS, fallbacks))) as client:
        reply = await client.get("/v1/customers/gone/recommendations?channel=sms",
                                 headers={"Authorization": "Bearer backend-key"})  # fmt: skip
        body = await reply.json()
    assert reply.status == 200 and body["fallback"] is True and body["offers"] == []
    assert fallbacks == []  # erased: not counted as a fallback, nor published
