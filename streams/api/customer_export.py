"""The answer to a customer's access request (``GET /v1/customers/{id}/export``): all
that Moments keeps about them in Redis, interpreted where it can be and as stored
everywhere, and where else Moments keeps records of them (pure).

>>> from datetime import UTC
>>> record = CustomerRecord(
...     subject="ab12", erased_at_ms=None, profile={"n": "2"}, windows={}, contacts={},
...     recent=["1764590400000|web_click|e1"], applied=[("t:e1", 1764590401000)],
...     outcomes={"d1:book-club": "0:7|clicked|0.3,0:9|accepted|1.0",
...               "d0:book-club:shown": "0:2"}, decisions=['{"decision_id": "d1"}'],
...     outcome_times={"d1:book-club": 1764590402000})
>>> body = export_body("c1", record, None, datetime(2026, 12, 1, tzinfo=UTC), {})
>>> body["decisions"]
[{'decision_id': 'd1'}]
>>> body["outcomes"]  # doctest: +NORMALIZE_WHITESPACE
[{'decision_id': 'd0', 'offer_id': 'book-club', 'outcome': 'shown', 'claimed_at': None},
 {'decision_id': 'd1', 'offer_id': 'book-club', 'outcome': 'clicked',
  'claimed_at': '2025-12-01T12:00:02Z'},
 {'decision_id': 'd1', 'offer_id': 'book-club', 'outcome': 'accepted',
  'claimed_at': '2025-12-01T12:00:02Z'}]
>>> body["events_applied"]
[{'id': 't:e1', 'applied_at': '2025-12-01T12:00:01Z'}]
>>> body["unreadable"]
[]
>>> cut = CustomerRecord(
...     subject="ab12", erased_at_ms=None, profile={}, windows={}, contacts={}, recent=[],
...     applied=[("t:e1", -10**20)], outcomes={}, decisions=['{"decision_id": "d1', '[1]'],
...     unreadable=["stored.windows"])
>>> body = export_body("c1", cut, None, datetime(2026, 12, 1, tzinfo=UTC), {})
>>> body["events_applied"], body["decisions"], body["unreadable"]
([{'id': 't:e1', 'applied_at': None}], [], ['stored.windows', 'decisions', 'events_applied'])
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from feature_store import CustomerRecord
from feature_store.features import stored_time

# What each topic holds about them, until its retention: keyed by the customer id, but
# for risk-examples, whose records name them by their keyed hash (the export's subject).
KEPT_IN_TOPICS = {
    "touchpoints": "their touchpoint events, as produced",
    "offer-outcomes": "what they did with offers, as reported",
    "next-best-offers": "the decisions made for them, with the features used",
    "interventions": "the contact-centre alerts raised about them",
    "interventions-held-out": "the alerts held out to measure interventions",
    "touchpoints-dlq": "their events that were set aside, with the reason",
    "offer-outcomes-dlq": "their outcomes that were set aside, with the reason",
    "customer-erasures": "the record of their erasure, once erased, with the channels they "
    "had withdrawn from, which Moments keeps honouring (kept for good)",
    "risk-examples": "snapshots of their churn-risk features with the label learned from "
    "them, named by their keyed hash (risk:<subject>:<time>), not their id; once they are "
    "erased, no model learns from them",
}


def kept_in_topics(topics: Mapping[str, str]) -> list[dict[str, str]]:
    """The topics that keep records of a customer until their retention, each as
    ``topics`` names it (their prefix), with what it holds: neither an export reads
    them nor an erasure reaches them."""
    return [{"topic": topics.get(name, name), "holds": holds}
            for name, holds in KEPT_IN_TOPICS.items()]  # fmt: skip


def _iso(ms: int) -> str:
    return stored_time(ms).isoformat().replace("+00:00", "Z")


class _Parts:
    """What the export could not read, by part: the record's, and those found here (a
    time no date can hold shows as null; a decision's context that does not decode is
    left out)."""

    def __init__(self, unreadable: list[str]) -> None:
        self.unreadable = list(unreadable)

    def missing(self, part: str) -> None:
        if part not in self.unreadable:
            self.unreadable.append(part)

    def iso(self, part: str, ms: int | None) -> str | None:
        try:
            return None if ms is None else _iso(ms)
        except ValueError:
            self.missing(part)
            return None

    def decoded(self, contexts: list[str]) -> list[Any]:
        decisions, unread = decoded_decisions(contexts)
        if unread:
            self.missing("decisions")
        return decisions


def decoded_decisions(contexts: list[str]) -> tuple[list[Any], int]:
    """The decisions' contexts that decode to a JSON object, and how many did not (cut
    short, or JSON but no decision's), as the profile and the export show them."""
    decisions = []
    for context in contexts:
        try:
            decision = msgspec.json.decode(context)
        except msgspec.DecodeError:
            continue
        if isinstance(decision, dict):
            decisions.append(decision)
    return decisions, len(contexts) - len(decisions)


def _claimed(field: str, value: str) -> list[tuple[str, str, str]]:
    """(decision id, offer id, outcome) of the outcomes in one claim: a shown offer's
    ("<decision>:<offer>" -> "<source>|<outcome>|<reward>,..."), or one outcome's, as an
    older Moments claimed them ("<decision>:<offer>:<outcome>" -> source)."""
    decision_id, _, rest = field.partition(":")
    if "|" not in value:
        offer_id, _, outcome = rest.rpartition(":")
        return [(decision_id, offer_id, outcome)]
    entries = [entry.split("|") for entry in value.split(",")]
    # an entry in no form Moments writes (a tool's) names no outcome
    return [(decision_id, rest, entry[1]) for entry in entries if len(entry) >= 3]


def export_body(
    customer_id: str,
    record: CustomerRecord,
    profile: dict[str, Any] | None,
    exported_at: datetime,
    topics: dict[str, str],
) -> dict[str, Any]:
    """``profile``: the profile as ``GET /v1/customers/{id}`` shows it (None: none);
    ``topics``: contract topic name -> the deployment's name for it. What could not be
    read is named in ``unreadable`` (the record's parts, and times no date can hold,
    shown as null, and decisions' contexts that do not decode, left out)."""
    parts = _Parts(record.unreadable)
    outcomes = []
    for claimed, sources in sorted(record.outcomes.items()):
        at = record.outcome_times.get(claimed)
        for decision_id, offer_id, outcome in _claimed(claimed, sources):
            outcomes.append({"decision_id": decision_id, "offer_id": offer_id or None,
                             "outcome": outcome,
                             "claimed_at": parts.iso("outcomes", at)})  # fmt: skip
    body = {
        "customer_id": customer_id,
        "subject": record.subject,
        "exported_at": exported_at,
        "erased_at": parts.iso("erased_at", record.erased_at_ms),
        # an erased customer's withdrawals, kept by name beside the tombstone (honoured)
        "withdrawals_kept": record.withdrawals_kept,
        "profile": profile,
        "decisions": parts.decoded(record.decisions),
        # every decision listed, also those whose context has expired
        "decision_ids": [
            {"decision_id": d, "at": parts.iso("decision_ids", at)} for d, at in record.decision_ids
        ],
        "outcomes": outcomes,
        "events_applied": [
            {"id": fact, "applied_at": parts.iso("events_applied", at)}
            for fact, at in record.applied
        ],
        "stored": {
            "profile": record.profile,
            "windows": record.windows,
            "contacts": record.contacts,
            "recent_touchpoints": record.recent,
            "optouts": record.optouts,
        },
        "kept_in_topics": kept_in_topics(topics),
    }
    if profile is not None and profile.get("unreadable"):
        parts.missing("profile")
    # the parts Redis held in a form that could not be read (empty: all was read)
    body["unreadable"] = parts.unreadable
    return body
