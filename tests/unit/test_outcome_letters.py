"""Offer outcomes that do not decode are dead-lettered as touchpoints are: under a key
that fits a letter, keeping when a record sent back was first set aside."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from agents.learned_policy import ModelHolder
from agents.letter_headers import FIRST_LETTERED, REDRIVEN_FROM
from agents.letters import LETTER_KEY_MAX
from streams.metrics import Metrics
from streams.offer_learner import OfferLearner
from tests.unit.learner_acceptances import Acceptances


class Tombstones:
    """The store's ``erased``: whether each customer is in ``gone``; each call recorded."""

    def __init__(self, gone: set[str]) -> None:
        self.gone, self.asked = gone, list[list[str]]()

    async def __call__(self, customer_ids: list[str]) -> list[bool]:
        self.asked.append(list(customer_ids))
        return [c in self.gone for c in customer_ids]


class Decisions:
    def __init__(self, claim: str = "learn") -> None:
        self.claim = claim

    async def claim_outcomes(
        self, claims: list[Any], faults: Any = None, ran: Any = None, **_: Any
    ) -> list[str]:
        return [self.claim for _ in claims]

    async def contexts(self, pairs: list[Any], faults: Any = None) -> list[str | None]:
        return [None for _ in pairs]


async def letters_of(
    records: list[SimpleNamespace],
    claim: str = "learn",
    metrics: Metrics | None = None,
    erased: Tombstones | None = None,
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def dead_letter(**letter: Any) -> Awaitable[None]:
        sent.append(letter)
        return asyncio.sleep(0)  # delivered

    store = SimpleNamespace(
        decisions=Decisions(claim), erased=erased or Tombstones(set()), acceptances=Acceptances()
    )
    learner = OfferLearner(store, ModelHolder(), metrics or Metrics(), "",  # type: ignore[arg-type]
                           "offer-outcomes", dead_letter)  # fmt: skip
    learner._start(None, 0)
    await learner._learn(0, records)
    return sent


async def test_an_outcome_with_a_huge_key_is_dead_lettered_under_its_digest() -> None:
    record = SimpleNamespace(topic="offer-outcomes", partition=0, offset=4,
                             key=b"k" * 200_000, value=b"{not json", headers=[])  # fmt: skip
    (letter,) = await letters_of([record])
    assert letter["key"].startswith(b"sha256:") and len(letter["key"]) <= LETTER_KEY_MAX
    assert ("key-truncated-from", b"200000") in letter["headers"]


async def test_an_outcome_sent_back_that_fails_again_keeps_its_first_letters_time() -> None:
    headers = [(REDRIVEN_FROM, b"offer-outcomes-dlq:0:7"), (FIRST_LETTERED, b"1700000000000")]
    record = SimpleNamespace(topic="offer-outcomes", partition=0, offset=9, key=b"c-1",
                             value=b"{not json", headers=headers)  # fmt: skip
    (letter,) = await letters_of([record])
    assert letter["key"] == b"c-1"
    assert (FIRST_LETTERED, b"1700000000000") in letter["headers"]
    assert (REDRIVEN_FROM, b"offer-outcomes-dlq:0:7") in letter["headers"]


async def test_an_outcome_record_without_a_value_is_lettered_as_a_touchpoints_is() -> None:
    """Its reason says what is wrong, as a touchpoint's does, for `--reason` to find."""
    record = SimpleNamespace(topic="offer-outcomes", partition=0, offset=5, key=b"c-1",
                             value=None, headers=[])  # fmt: skip
    (letter,) = await letters_of([record])
    assert ("error", b"invalid: empty record (no value)") in letter["headers"]


def _outcome(offset: int, outcome: str) -> SimpleNamespace:
    value = (f'{{"decision_id": "d-{offset}", "customer_id": "c-1", "offer_id": "book-club", '
             f'"outcome": "{outcome}", "ts": "2026-12-01T10:00:00Z"}}').encode()  # fmt: skip
    return SimpleNamespace(topic="offer-outcomes", partition=0, offset=offset, key=b"c-1",
                           value=value, headers=[])  # fmt: skip


async def test_an_outcome_whose_decision_is_not_stored_is_set_aside_to_be_sent_back() -> None:
    metrics = Metrics()
    records = [_outcome(1, "accepted"), _outcome(2, "shown"), _outcome(3, "clicked")]
    letters = await letters_of(records, claim="no_context", metrics=metrics)
    assert [dict(letter["headers"])["source-offset"] for letter in letters] == [b"1", b"3"]
    assert all(dict(letter["headers"])["error"].startswith(b"no_context: its decision")
               for letter in letters)  # fmt: skip
    assert [letter["value"] for letter in letters] == [records[0].value, records[2].value]
    learning = "moments_learning_outcomes_total"
    count = metrics.registry.get_sample_value
    assert count(learning, {"result": "no_context"}) == 2
    assert count(learning, {"result": "no_reward"}) == 1  # shown: counted only


async def test_a_copy_of_an_outcome_already_claimed_is_not_set_aside() -> None:
    assert await letters_of([_outcome(1, "accepted")], claim="skip") == []


async def test_an_erased_customers_outcome_is_counted_as_such_not_as_a_copy() -> None:
    """It was counted as a duplicate, so erasures inflated the duplicates."""
    metrics = Metrics()
    assert await letters_of([_outcome(1, "accepted")], claim="erased", metrics=metrics) == []
    count = metrics.registry.get_sample_value
    assert count("moments_learning_outcomes_total", {"result": "erased"}) == 1
    assert count("moments_learning_outcomes_total", {"result": "duplicate"}) is None


async def test_no_invalid_outcome_naming_an_erased_customer_is_dead_lettered() -> None:
    """Nothing naming a customer is written after their erasure: an unreadable outcome keyed
    by an erased id, or naming one in its text, is not copied into the dead-letter topic
    (its payload, the id as its key); it counts as erased. One tombstone read a batch."""
    metrics, tombstones = Metrics(), Tombstones({"c-gone"})
    records = [
        SimpleNamespace(topic="offer-outcomes", partition=0, offset=offset, key=key,
                        value=value, headers=[])
        for offset, key, value in [
            (1, b"c-gone", b"{not json"),
            (2, b"c-1", b'{"decision_id": "d-2", "customer_id": "c-gone", "outc'),
            (3, b"c-2", b"{not json"),
            (4, None, b'{"customer_id": "c-gone"}'),  # no decision_id: invalid
        ]
    ]  # fmt: skip
    letters = await letters_of(records, metrics=metrics, erased=tombstones)
    assert [letter["key"] for letter in letters] == [b"c-2"]
    assert tombstones.asked == [["c-gone", "c-1", "c-2"]]
    count = metrics.registry.get_sample_value
    assert count("moments_learning_outcomes_total", {"result": "erased"}) == 3
    assert count("moments_learning_outcomes_total", {"result": "invalid"}) == 1


async def test_a_batch_whose_invalid_outcomes_name_no_one_reads_no_tombstones() -> None:
    tombstones = Tombstones(set())
    record = SimpleNamespace(topic="offer-outcomes", partition=0, offset=1, key=None,
                             value=b"{not json", headers=[])  # fmt: skip
    assert len(await letters_of([record], erased=tombstones)) == 1
    # (a copy: one claimed now whose context is found gone reads its tombstone, below)
    assert len(await letters_of([_outcome(2, "accepted")], "skip", erased=tombstones)) == 0
    assert tombstones.asked == []


async def test_a_claimed_outcome_whose_context_went_otherwise_is_still_no_context() -> None:
    """(Its context was not found, the customer not erased: the claim, made after the
    contexts are read, would have found their tombstone.)"""
    metrics = Metrics()
    assert await letters_of([_outcome(1, "accepted")], claim="learn", metrics=metrics) == []
    count = metrics.registry.get_sample_value
    assert count("moments_learning_outcomes_total", {"result": "no_context"}) == 1
    assert count("moments_learning_outcomes_total", {"result": "erased"}) is None
    assert count("moments_outcomes_total", {"outcome": "accepted"}) == 1


async def refused_over(limit: int, letter: dict[str, Any]) -> None:
    """A delivery to a topic whose ``max.message.bytes`` is ``limit``: refused when the
    letter's key, value and headers exceed it, as Kafka does."""
    size = len(letter["key"] or b"") + len(letter["value"] or b"")
    size += sum(len(name) + len(value) for name, value in letter["headers"])
    if size > limit:
        raise MessageSizeTooLargeError()


@pytest.mark.parametrize(("limit", "outcome", "kept"), [(4000, "reduced", [1024]),
                                                          (200, "dropped", [1024, 0])])  # fmt: skip
async def test_an_outcomes_letter_the_topic_refuses_goes_again_reduced_or_is_dropped(
    limit: int, outcome: str, kept: list[int]
) -> None:
    """The learner raised on the refusal, restarted from its snapshot, met the same record
    and raised again, for ever (see tests/integration/test_refused_outcome_letters.py)."""
    metrics, sent = Metrics(), list[dict[str, Any]]()

    async def dead_letter(**letter: Any) -> Awaitable[None]:
        sent.append(letter)
        return refused_over(limit, letter)

    store = SimpleNamespace(
        decisions=Decisions(), erased=Tombstones(set()), acceptances=Acceptances()
    )
    learner = OfferLearner(store, ModelHolder(), metrics, "",  # type: ignore[arg-type]
                           "offer-outcomes", dead_letter)  # fmt: skip
    learner._start(None, 0)
    value = b"{not json" + b"x" * 10_000
    record = SimpleNamespace(topic="offer-outcomes", partition=0, offset=3, key=b"c-1",
                             value=value, headers=[])  # fmt: skip
    await learner._learn(0, [record])  # does not raise: the learner moves past it
    count = metrics.registry.get_sample_value
    assert count("moments_dead_letters_refused_total", {"outcome": outcome}) == 1
    assert count("moments_learning_outcomes_total", {"result": "invalid"}) == 1
    whole, *reduced = sent
    assert whole["value"] == value and [len(r["value"]) for r in reduced] == kept
    assert all(dict(r["headers"])["value-truncated-from"] == b"10009" for r in reduced)


async def test_a_batch_learned_again_after_an_outage_writes_and_counts_its_letters_once() -> None:
    """Two letters in a batch: one too large for the topic (written again reduced), one
    meeting a broker away. The batch raised, the learner learned it again from its
    snapshot, and the reduced letter was written and counted a second time."""
    from aiokafka.errors import KafkaTimeoutError

    metrics, sent, away = Metrics(), list[dict[str, Any]](), [True]

    async def dead_letter(**letter: Any) -> Awaitable[None]:
        if letter["key"] == b"c-2" and away[0]:
            raise KafkaTimeoutError()
        sent.append(letter)
        return refused_over(4000, letter)

    store = SimpleNamespace(
        decisions=Decisions(), erased=Tombstones(set()), acceptances=Acceptances()
    )
    learner = OfferLearner(store, ModelHolder(), metrics, "",  # type: ignore[arg-type]
                           "offer-outcomes", dead_letter)  # fmt: skip
    learner._start(None, 0)

    def batch() -> list[SimpleNamespace]:  # read again: records made anew
        kept = [(1, b"c-1", b"{not json" + b"x" * 10_000), (2, b"c-2", b"{not json")]
        return [
            SimpleNamespace(
                topic="offer-outcomes", partition=0, offset=o, key=k, value=v, headers=[]
            )
            for o, k, v in kept
        ]

    with pytest.raises(KafkaTimeoutError):
        await learner._learn(0, batch())
    away[0] = False
    await learner._learn(0, batch())
    count = metrics.registry.get_sample_value
    assert count("moments_dead_letters_refused_total", {"outcome": "reduced"}) == 1
    assert count("moments_learning_outcomes_total", {"result": "invalid"}) == 2
    written = [(s["key"], len(s["value"])) for s in sent if len(s["value"]) <= 4000]
    assert written == [(b"c-1", 1024), (b"c-2", 9)], written
