"""``moments rebuild`` keeps again the offers customers accepted, joining each ``accepted``
outcome to its decision on ``next-best-offers`` as the ``nbo`` learner joined it to the
stored context: the rebuilt store held none, and every customer was offered again what
they had taken (plain data: a stand-in store records what it is asked)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from agents.learning import CLOCK_SKEW
from feature_store.acceptances import Recorded
from feature_store.facts import DAY_MS, ts_ms
from schemas import (
    CustomerErasure,
    NextBestOffer,
    OfferScore,
    Outcome,
    encode_erasure,
    encode_outcome,
)
from schemas.outcomes import OutcomeKind
from streams.rebuild_acceptances import AcceptanceJoin, Kept, keep_again
from streams.rebuild_replay import Replay
from streams.settings import Settings

AT = datetime(2026, 12, 1, 10, tzinfo=UTC)
WEEK_MS = 7 * DAY_MS


def decision(decision_id: str, customer_id: str, *offers: str, at: datetime = AT) -> NextBestOffer:
    return NextBestOffer(
        decision_id=decision_id, customer_id=customer_id, ts=at, channel="web",
        trigger_event_id=None,
        offers=[OfferScore(offer_id=o, score=1.0, propensity=1.0) for o in offers],
    )  # fmt: skip


def outcome(
    decision_id: str,
    customer_id: str,
    offer_id: str,
    minutes: float = 1,
    kind: OutcomeKind = "accepted",
) -> Outcome:
    return Outcome(decision_id=decision_id, customer_id=customer_id, offer_id=offer_id,
                   outcome=kind, ts=AT + timedelta(minutes=minutes))  # fmt: skip


def joined(outcomes: list[Outcome], decisions: list[NextBestOffer]) -> list[Kept]:
    join = AcceptanceJoin()
    for o in outcomes:
        join.wait(o)
    for d in decisions:
        join.join(d)
    return join.kept(WEEK_MS)


def at(minutes: float) -> datetime:
    return AT + timedelta(minutes=minutes)


def test_only_an_offer_the_customers_own_decision_made_is_kept() -> None:
    kept = joined(
        [outcome("d1", "c1", "gold"),
         outcome("d1", "c1", "silver"),  # not an offer d1 made
         outcome("d1", "c2", "gold"),  # d1 is c1's decision: c2's context has no d1
         outcome("d9", "c1", "gold"),  # no such decision on the topic
         outcome("d1", "c1", "gold", kind="clicked")],  # not accepted
        [decision("d1", "c1", "gold", "bronze"), decision("d2", "c2", "silver")],
    )  # fmt: skip
    assert kept == [(False, ("c1", "gold", at(1)))]


def test_a_copy_read_later_is_kept_only_where_no_time_is_held() -> None:
    """Live, a copy is claimed as ``skip``: written with ``first_only``, so that one sent
    again later does not start the hold-back again; the first keeps the newest time."""
    kept = joined(
        [outcome("d1", "c1", "gold", 5), outcome("d1", "c1", "gold", 90),
         outcome("d2", "c1", "gold", 30)],
        [decision("d1", "c1", "gold"), decision("d2", "c1", "gold")],
    )  # fmt: skip
    assert kept == [(False, ("c1", "gold", at(5))), (True, ("c1", "gold", at(90))),
                    (False, ("c1", "gold", at(30)))]  # fmt: skip


def test_one_dated_before_its_decision_is_not_kept_but_makes_the_next_one_a_copy() -> None:
    skew = CLOCK_SKEW.total_seconds() / 60
    kept = joined(
        [outcome("d1", "c1", "gold", -skew - 1),  # of something else: claimed, not kept
         outcome("d1", "c1", "gold", 3),
         outcome("d2", "c1", "gold", -skew + 1)],  # within the clock skew: kept
        [decision("d1", "c1", "gold"), decision("d2", "c1", "gold")],
    )  # fmt: skip
    assert kept == [(True, ("c1", "gold", at(3))), (False, ("c1", "gold", at(-skew + 1)))]


def test_kept_in_the_order_the_outcomes_were_read_whatever_the_decisions_order() -> None:
    """Live, a copy claimed first keeps its time against a later first outcome dated
    earlier: the order the learner read them in decides, not the decisions'."""
    kept = joined(
        [outcome("d2", "c1", "gold", 50), outcome("d1", "c1", "gold", 10)],
        [decision("d1", "c1", "gold"), decision("d2", "c1", "gold")],
    )  # fmt: skip
    assert [when for _, (_, _, when) in kept] == [at(50), at(10)]


def test_a_decision_id_sent_twice_joins_by_its_first_record() -> None:
    """Live, the first context stored under the id is kept (``SET NX``)."""
    kept = joined(
        [outcome("d1", "c1", "silver"), outcome("d1", "c1", "gold")],
        [decision("d1", "c1", "gold"), decision("d1", "c1", "silver")],
    )  # fmt: skip
    assert kept == [(False, ("c1", "gold", at(1)))]


def test_one_sent_after_its_decisions_context_expired_is_not_joined() -> None:
    """Live, it found no context (``no_context``): not kept, and not claimed, so the next
    copy read in time is the first."""
    join = AcceptanceJoin()
    late = ts_ms(AT) + WEEK_MS
    join.wait(outcome("d1", "c1", "gold", 2), sent_ms=late)
    join.wait(outcome("d1", "c1", "gold", 3), sent_ms=late - 1)
    join.join(decision("d1", "c1", "gold"))
    assert join.kept(WEEK_MS) == [(False, ("c1", "gold", at(3)))]


class Acceptances:
    """Records what it is asked, in order; ``c-broken``'s profile is no hash."""

    def __init__(self) -> None:
        self.asked: list[tuple[bool, list[Any]]] = []

    async def record(self, accepted: list[Any], first_only: bool = False) -> list[Recorded]:
        self.asked.append((first_only, list(accepted)))
        return ["corrupt" if c == "c-broken" else "recorded" for c, _, _ in accepted]


async def test_the_store_is_asked_in_order_in_runs_of_one_kind() -> None:
    store, failed = Acceptances(), set[str]()
    kept: list[Kept] = [(False, ("c1", "gold", AT)), (False, ("c-broken", "gold", AT)),
                        (True, ("c1", "gold", at(9))), (False, ("c2", "gold", AT)),
                        (False, ("c3", "gold", AT))]  # fmt: skip
    written = await keep_again(store, kept, 2, failed)  # type: ignore[arg-type]
    assert written == 4 and failed == {"c-broken"}
    assert [(copy, [c for c, _, _ in asked]) for copy, asked in store.asked] == [
        (False, ["c1", "c-broken"]), (True, ["c1"]), (False, ["c2", "c3"])
    ]  # fmt: skip


class Store:
    """Erases as a stand-in (every erasure blocks), and keeps acceptances."""

    def __init__(self) -> None:
        self.acceptances = Acceptances()
        self.context_ttl_s = 7 * 86_400

    async def erase(self, customer_id: str, erased_at_ms: int, withdrawals: Any = ()) -> Any:
        return SimpleNamespace(blocked=True, erased_at_ms=erased_at_ms)

    async def apply_facts(self, facts: list[Any], ran: Any = None) -> list[Any]:
        return [None for _ in facts]


def _record(value: bytes, offset: int, sent: datetime | None = None) -> SimpleNamespace:
    sent_ms = int((sent or datetime.now(UTC)).timestamp() * 1000)
    return SimpleNamespace(value=value, partition=0, offset=offset, topic="t", headers=(),
                           timestamp=sent_ms)  # fmt: skip


async def test_the_rebuild_joins_the_outcomes_read_and_counts_those_it_skips() -> None:
    settings = Settings.from_env({})
    store = Store()
    run = Replay(settings, store, 500)  # type: ignore[arg-type]
    now = datetime.now(UTC).replace(microsecond=0)
    gone = CustomerErasure(customer_id="c-gone", subject="s", ts=now - timedelta(hours=1))
    await run._erasures([_record(encode_erasure(gone), 0)])
    ahead = now + timedelta(seconds=settings.max_future_skew_s + 3600)

    def sent(customer: str, when: datetime, decision_id: str = "d1") -> bytes:
        return encode_outcome(Outcome(decision_id=decision_id, customer_id=customer,
                                      offer_id="gold", outcome="accepted", ts=when))  # fmt: skip

    records = [
        sent("c1", now),
        sent("c-gone", now - timedelta(hours=2), "d2"),
        sent("c1", ahead),
        b"{not an outcome",
        sent("c1", now)[:-1] + b',"ts":1}',
    ]
    # dated an hour ahead of when it was sent, two hours ago: refused live then, though
    # its ts is past by the time of the rebuild
    early = sent("c1", now - timedelta(hours=1))
    run.outcomes = len(records) + 1
    await run._outcomes([_record(value, n) for n, value in enumerate(records)]
                        + [_record(early, 9, sent=now - timedelta(hours=2))])  # fmt: skip
    for d in (
        decision("d1", "c1", "gold", at=now - timedelta(minutes=1)),
        decision("d2", "c-gone", "gold", at=now - timedelta(hours=3)),
    ):
        run.accepted.join(d)
    await run.keep_acceptances()
    # the erased customer's outcome (and decision) is held out, as the ones dated ahead
    # and malformed (a key named twice, too) are, counted
    assert store.acceptances.asked == [(False, [("c1", "gold", now)])]
    report = run.report(0, 0)
    assert (report.outcomes, report.acceptances, report.skipped_outcomes) == (6, 1, 4)
    assert "6 outcomes (1 acceptances kept, 4 invalid skipped)" in report.summary()
