"""The withdrawals of an erased customer that ``moments rebuild`` (:mod:`streams.rebuild`)
applies again, as the live worker kept them beside the tombstone after the erasure.

The rebuild holds out the touchpoints of a customer erased; live, the worker refused
them too, but for a withdrawal (consent withdrawn on a channel, an email unsubscribe):
one it applied after the erasure joined the names kept beside the tombstone, for as long,
if dated no earlier than the live lag before the first erasure (lua/apply.lua). So each
withdrawal held out goes to the store again, alone, where that script judges it as live,
for the erased only (a block that ran out while the rebuild replayed leaves nothing to
keep it beside: then nothing is written, as live keeps nothing of them once it ends).
But not one the erasure may have weighed and found taken back: where a grant on the same
field outranks it (dated more than ``GRANT_LEAD_MS`` after it) and both were appended to
Kafka before the first erasure, the worker may have applied both before it, and the erasure
kept nothing of that field. (A worker behind that read the withdrawal only after the
erasure kept it all the same: when the worker read them, nothing in the topics tells.)
When a record was appended is known only where the topic stamps its records with the
broker's time (``message.timestamp.type=LogAppendTime``). Kafka's default stamps the
producer's (CreateTime), which a producer may set to the event's own time (Kafka
Connect, Debezium) or take from a clock behind, so that a record sent after the erasure
looks sent before it: such a time tells nothing, so the withdrawal goes again and no
grant takes it back, erring towards keeping it (live kept it if the worker applied it
after the erasure; where it applied it and the grant before, the rebuild keeps one live
did not).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from feature_store import Fact
from feature_store.facts import GRANT_LEAD_MS, WITHDRAWAL_FIELDS

# aiokafka's ``ConsumerRecord.timestamp_type`` of a record stamped by the broker
LOG_APPEND_TIME = 1


def appended_ms(timestamp: int | None, timestamp_type: int) -> int:
    """When a record was appended to Kafka (ms) by its timestamp, if the broker stamped
    it (a topic with ``message.timestamp.type=LogAppendTime``); else ``0``, unknown: the
    producer's time (CreateTime) may be the event's own, or from a clock behind.

    >>> appended_ms(1_000, LOG_APPEND_TIME), appended_ms(1_000, 0), appended_ms(None, 1)
    (1000, 0, 0)
    """
    return (timestamp or 0) if timestamp_type == LOG_APPEND_TIME else 0


def withdrawals_again(held_out: Sequence[tuple[Fact, int]], first_ms: int) -> list[Fact]:
    """Of an erased customer's touchpoint facts held out, each with when it was appended
    to Kafka (ms, :func:`appended_ms`; 0 unknown), the withdrawals to apply again, each
    fact with its withdrawals alone; ``first_ms``: when the customer was first erased.

    >>> def consent(fact_id, ts, value):
    ...     return Fact(fact_id, "c", ts, (("latest", "consent:sms", value),))
    >>> withdrew, granted = consent("t:w", 0, "0"), consent("t:g", GRANT_LEAD_MS + 1, "1")
    >>> erased = 10 * GRANT_LEAD_MS
    >>> withdrawals_again([(withdrew, 1), (granted, 2)], erased)  # both weighed
    []
    >>> [f.fact_id for f in withdrawals_again([(withdrew, erased), (granted, 2)], erased)]
    ['t:w']
    >>> [f.fact_id for f in withdrawals_again([(withdrew, 0), (granted, 2)], erased)]
    ['t:w']
    """

    def before(sent_ms: int) -> bool:  # known to be appended before the first erasure
        return 0 < sent_ms < first_ms

    # per field, the highest rank of a grant the worker may have applied before the erasure
    granted: dict[str, int] = {}
    for fact, sent_ms in held_out:
        for op, field, value in fact.updates if before(sent_ms) else ():
            if op == "latest" and field in WITHDRAWAL_FIELDS and value == "1":
                rank = fact.ts_ms - GRANT_LEAD_MS
                granted[field] = max(granted.get(field, rank), rank)
    again = []
    for fact, sent_ms in held_out:
        weighed = before(sent_ms)
        kept = tuple(
            (op, field, value) for op, field, value in fact.updates
            if op == "latest" and field in WITHDRAWAL_FIELDS and value == "0"
            and not (weighed and granted.get(field, fact.ts_ms) > fact.ts_ms)
        )  # fmt: skip
        if kept:
            again.append(replace(fact, updates=kept, recent=None, erased_only=True))
    return again
