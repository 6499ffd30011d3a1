"""What a customer did with an offer, reported by websites and apps."""

from __future__ import annotations

from typing import Literal

import msgspec

from schemas.customer_ids import check_customer_id
from schemas.duplicate_keys import duplicate_key
from schemas.errors import InvalidEvent, decode_wire, describe
from schemas.touchpoints import LAST_YEAR, NonEmpty, Timestamp, check_ts, on_the_calendar

OutcomeKind = Literal["shown", "clicked", "accepted", "dismissed", "ignored"]


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    decision_id: NonEmpty
    customer_id: NonEmpty
    offer_id: NonEmpty
    outcome: OutcomeKind
    ts: Timestamp

    def __post_init__(self) -> None:
        check_customer_id(self.customer_id)
        check_ts(self.ts, LAST_YEAR)
        if (first := on_the_calendar(self.ts)) is not self.ts:
            msgspec.structs.force_setattr(self, "ts", first)


_decoder = msgspec.json.Decoder(Outcome)
_encoder = msgspec.json.Encoder()


def decode_outcome(raw: bytes | str) -> Outcome:
    """Decode one outcome; raises :class:`InvalidEvent` naming the field and problem,
    also for one naming a key twice (:mod:`schemas.duplicate_keys`)."""
    try:
        outcome = decode_wire(_decoder, raw)
    except msgspec.DecodeError as exc:
        raise InvalidEvent(describe(exc)) from exc
    twice = duplicate_key(raw)
    if twice is not None:
        raise InvalidEvent(twice)
    return outcome


def encode_outcome(outcome: Outcome) -> bytes:
    return _encoder.encode(outcome)
