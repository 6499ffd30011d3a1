"""What Moments emits: next-best offers and interventions."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from schemas.errors import decode_wire
from schemas.touchpoints import Timestamp, check_ts

Priority = Literal[1, 2, 3]


class OfferScore(msgspec.Struct, frozen=True, kw_only=True):
    offer_id: str
    score: float
    propensity: float


class NextBestOffer(msgspec.Struct, frozen=True, kw_only=True):
    """A decision: the ranked offers for one customer on one channel, best first."""

    decision_id: str
    customer_id: str
    ts: Timestamp
    channel: str
    trigger_event_id: str | None
    offers: list[OfferScore]
    control: bool = False
    model_version: str = "rules-v1"
    reasons: list[str] = msgspec.field(default_factory=list)
    # Extensions beyond the contract's required fields (defaults keep old readers happy).
    trigger_ts: datetime | None = None
    fallback: bool = False
    context: list[float] | None = None  # the model's input, for learning and evaluation
    catalogue_version: str | None = None  # the offer catalogue the offers came from
    segment: str | None = None  # the customer's segment when decided (the control group's too)

    def __post_init__(self) -> None:
        check_ts(self.ts)


class InterventionContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a contact-centre agent sees next to the alert."""

    segment: str | None = None
    risk: float | None = None
    value: float | None = None
    recent_touchpoints: list[str] = msgspec.field(default_factory=list)
    timezone: str | None = None  # the customer's own, where a touchpoint told it
    currency: str | None = None  # what value counts in (MOMENTS_CURRENCY); None: not set


class Intervention(msgspec.Struct, frozen=True, kw_only=True):
    intervention_id: str
    customer_id: str
    ts: Timestamp
    kind: str
    priority: Priority
    trigger_event_id: str | None
    reasons: list[str]
    suggested_action: str
    queue: str | None = None
    agent_id: str | None = None
    context: InterventionContext = msgspec.field(default_factory=InterventionContext)
    trigger_ts: datetime | None = None
    # the customer is in the interventions' hold-out group: this alert was raised for the
    # measurement only (on ``interventions-held-out``), and no agent saw it
    control: bool = False

    def __post_init__(self) -> None:
        check_ts(self.ts)


_encoder = msgspec.json.Encoder()
_nbo_decoder = msgspec.json.Decoder(NextBestOffer)
_intervention_decoder = msgspec.json.Decoder(Intervention)


def encode_decision(decision: NextBestOffer | Intervention) -> bytes:
    return _encoder.encode(decision)


def decode_next_best_offer(raw: bytes | str) -> NextBestOffer:
    return decode_wire(_nbo_decoder, raw)


def decode_intervention(raw: bytes | str) -> Intervention:
    return decode_wire(_intervention_decoder, raw)
