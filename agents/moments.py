"""Decision moments: when and where Moments decides a next-best offer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from schemas import Call, Email, NextBestOffer, OfferScore, TouchpointEvent, WebClick

DECISION_NAMESPACE = uuid.UUID("6f1d0c2e-5b7a-4c1e-9a51-3d7c2b8e4f10")
# the ids named per customer (a name of this namespace is never one of the older form's)
CUSTOMER_DECISION_NAMESPACE = uuid.uuid5(DECISION_NAMESPACE, "per-customer")


def decision_id_for(trigger_event_id: str, channel: str, subject: str) -> str:
    """Deterministic, so a replayed event yields the same decision id; one per customer
    (``subject``: whose, as the store names them, by their keyed hash), so that two
    customers' touchpoints that share an event id never share a decision id.

    >>> decision_id_for("e-1", "web", "ab12") == decision_id_for("e-1", "web", "ab12")
    True
    >>> decision_id_for("e-1", "web", "ab12") == decision_id_for("e-1", "web", "cd34")
    False
    """
    name = f"nbo:{channel}:{len(subject)}:{subject}:{trigger_event_id}"
    return str(uuid.uuid5(CUSTOMER_DECISION_NAMESPACE, name))


def legacy_decision_id(trigger_event_id: str, channel: str) -> str:
    """The id a Moments before per-customer ids gave the decision on a touchpoint (from
    its event id alone): the id a decision it recorded, not known to be sent, is stored
    under, so that a replay sends it again under that id."""
    return str(uuid.uuid5(DECISION_NAMESPACE, f"nbo:{channel}:{trigger_event_id}"))


@dataclass(frozen=True, slots=True)
class DecisionMoment:
    """A customer on a channel, now: what to offer them?"""

    decision_id: str
    customer_id: str
    channel: str
    trigger_event_id: str | None = None  # None for an HTTP request
    trigger_ts: datetime | None = None
    category: str | None = None  # what the customer is looking at, if known
    limit: int = 3
    inbound: bool = False  # the customer reached out (an inbound call): the timing is theirs

    def answer(
        self,
        now: datetime,
        offers: list[OfferScore],
        model_version: str,
        reasons: list[str],
        control: bool = False,
        context: list[float] | None = None,
        catalogue_version: str | None = None,
        segment: str | None = None,
    ) -> NextBestOffer:
        """The decision taken at this moment."""
        return NextBestOffer(
            decision_id=self.decision_id,
            customer_id=self.customer_id,
            ts=now,
            channel=self.channel,
            trigger_event_id=self.trigger_event_id,
            offers=offers,
            control=control,
            model_version=model_version,
            reasons=reasons,
            trigger_ts=self.trigger_ts,
            context=context,
            catalogue_version=catalogue_version,
            segment=segment,
        )


def moment_for(event: TouchpointEvent, subject: str | None = None) -> DecisionMoment | None:
    """A web click, an inbound call that starts, or an email opened; else ``None``.
    ``subject``: the customer as their decision id names them (a worker's: their keyed
    hash, see :func:`decision_id_for`); ``None``, by their id (a simulation's)."""
    inbound = False
    match event:
        case WebClick(category=category):
            channel, context = "web", category
        case Call(status="started", direction="inbound"):
            channel, context, inbound = "call", None, True
        case Email(action="opened"):
            channel, context = "email", None
        case _:
            return None
    return DecisionMoment(
        decision_id=decision_id_for(
            event.event_id, channel, event.customer_id if subject is None else subject
        ),
        customer_id=event.customer_id,
        channel=channel,
        trigger_event_id=event.event_id,
        trigger_ts=event.ts,
        category=context,
        inbound=inbound,
    )


def moment_passed(
    moment: DecisionMoment, now: datetime, max_age_s: float, sent: datetime | None = None
) -> bool:
    """Whether the customer has long left ``moment``: its touchpoint happened more than
    ``max_age_s`` before ``now`` (re-driven from the dead letters, or read by a worker
    catching up after an outage), so that offers decided now would spend their caps and
    budgets on a visit, a call or an email open long over. With ``sent`` (when the
    touchpoint reached Kafka, for one not re-driven), the later of the two times counts,
    as for alerts. ``max_age_s`` 0, or a request (no touchpoint): never passed.

    >>> from datetime import UTC, timedelta
    >>> at = datetime(2026, 12, 4, 9, tzinfo=UTC)
    >>> click = DecisionMoment("d", "c", "web", "e-1", trigger_ts=at)
    >>> later = at + timedelta(hours=2)
    >>> moment_passed(click, later, 3600), moment_passed(click, later, 3 * 3600)
    (True, False)
    >>> moment_passed(click, later, 3600, sent=later - timedelta(minutes=5))  # a clock behind
    False
    >>> moment_passed(click, later, 0), moment_passed(request_moment("c", "web", 3), later, 1)
    (False, False)
    >>> moment_passed(click, later, 1e14)  # past what a timedelta holds: never passed
    False
    """
    if max_age_s <= 0 or moment.trigger_ts is None:
        return False
    began = moment.trigger_ts if sent is None else max(moment.trigger_ts, sent)
    return (now - began).total_seconds() > max_age_s  # any age: 1e14 s is "never"


def request_moment(customer_id: str, channel: str, limit: int) -> DecisionMoment:
    """A recommendation asked for over HTTP: a fresh decision id."""
    return DecisionMoment(str(uuid.uuid4()), customer_id, channel, limit=limit)
