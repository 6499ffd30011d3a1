"""A churn-risk learning example on the ``risk-examples`` topic (no customer id)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from schemas.errors import decode_wire


class RiskExample(msgspec.Struct, frozen=True, kw_only=True):
    """A feature snapshot with its delayed label: did the customer churn or lapse?"""

    example_id: str
    x: dict[str, float]
    y: bool
    snapshot_ts: datetime
    label_ts: datetime


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RiskExample)


def encode_risk_example(example: RiskExample) -> bytes:
    return _encoder.encode(example)


def decode_risk_example(raw: bytes | str) -> RiskExample:
    return decode_wire(_decoder, raw)
