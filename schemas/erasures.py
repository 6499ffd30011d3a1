"""The record of a customer's erasure, on the ``customer-erasures`` topic: downstream
systems act on it, and ``moments rebuild`` replays it first so that the erased stay
erased. It names the withdrawals the erasure kept (``consent:<channel>``,
``subscribed:email``), so that a rebuild keeps them again: no date, no other data.

>>> from datetime import UTC, datetime
>>> sent = CustomerErasure(customer_id="c1", subject="ab12", ts=datetime(2026, 1, 2, tzinfo=UTC),
...                        keys_removed=5)
>>> encode_erasure(sent)
b'{"customer_id":"c1","subject":"ab12","ts":"2026-01-02T00:00:00Z","keys_removed":5,"withdrawals":[]}'
>>> decode_erasure(encode_erasure(sent)) == sent
True
"""

from __future__ import annotations

import msgspec

from schemas.errors import InvalidEvent, decode_wire, describe
from schemas.touchpoints import NonEmpty, Timestamp


class CustomerErasure(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: NonEmpty
    subject: str  # the keyed hash Moments knows the customer by
    ts: Timestamp  # when the erasure was made
    keys_removed: int = 0
    # the customer's withdrawals kept beside the tombstone (feature_store.facts
    # WITHDRAWAL_FIELDS), replayed by `moments rebuild`; none in records from before it
    withdrawals: tuple[str, ...] = ()


_decoder = msgspec.json.Decoder(CustomerErasure)
_encoder = msgspec.json.Encoder()


def decode_erasure(raw: bytes | str) -> CustomerErasure:
    """Decode one erasure record; raises :class:`InvalidEvent` naming the problem."""
    try:
        return decode_wire(_decoder, raw)
    except msgspec.DecodeError as exc:
        raise InvalidEvent(describe(exc)) from exc


def encode_erasure(erasure: CustomerErasure) -> bytes:
    return _encoder.encode(erasure)
