"""The record of a dead letter sent back to its source topic, on ``dead-letter-redrives``:
``moments dead-letters --redrive`` writes one per letter it sends, once the record is
delivered, and reads them all first, so that a later run does not send the same record
again. No customer id: only where the letter and its original record are, and a digest of
the original's value (Kafka may give a place again: a partition that lost its tail, a
topic made again; see :mod:`streams.letter_identity`).

>>> from datetime import UTC, datetime
>>> sent = LetterRedriven(letter="touchpoints-dlq:0:7", origin="touchpoints:3:99",
...                       digest="0" * 32, ts=datetime(2026, 1, 2, tzinfo=UTC))
>>> encode_redrive(sent)[:95]
b'{"letter":"touchpoints-dlq:0:7","origin":"touchpoints:3:99","digest":"0000000000000000000000000'
>>> decode_redrive(encode_redrive(sent)).origin_place
('touchpoints', 3, 99)

A record written before they carried the digest still decodes (its original is told by
its place alone):

>>> decode_redrive(b'{"letter": "dlq:0:7", "origin": "t:0:1", "ts": "2026-01-02T00:00:00Z"}'
...                ).digest is None
True
>>> decode_redrive(b'{"letter": "dlq:0:x", "origin": "t:0:1", "ts": "2026-01-02T00:00:00Z"}')
Traceback (most recent call last):
...
schemas.errors.InvalidEvent: Expected `str` matching regex '^.+:[0-9]+:[0-9]+$' - at `$.letter`
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from schemas.errors import InvalidEvent, decode_wire, describe
from schemas.touchpoints import Timestamp

# A record's place in Kafka: "<topic>:<partition>:<offset>" (topic names have no colon).
Place = Annotated[str, msgspec.Meta(pattern=r"^.+:[0-9]+:[0-9]+$")]
# The original's place may read "<topic>:-1:-1": earlier versions of Moments sent back letters
# whose headers did not tell it, and recorded them so; such a record still names its letter.
OriginPlace = Annotated[str, msgspec.Meta(pattern=r"^.+:(-1|[0-9]+):(-1|[0-9]+)$")]
# The digest of the original's value (blake2b-128, in hex), as its letter held it.
Digest = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$")]


def place(topic: str, partition: int, offset: int) -> str:
    """A record's place, as re-drive records and the ``redriven-from`` header name it.

    >>> place("touchpoints-dlq", 0, 7)
    'touchpoints-dlq:0:7'
    """
    return f"{topic}:{partition}:{offset}"


def _parsed(text: str) -> tuple[str, int, int]:
    topic, partition, offset = text.rsplit(":", 2)
    return topic, int(partition), int(offset)


class LetterRedriven(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    letter: Place  # the dead letter sent back
    origin: OriginPlace  # its original record, which was sent again
    # what the letter held of it (None: recorded before records said, told by place alone)
    digest: Digest | None = None
    ts: Timestamp  # when it was sent back

    @property
    def letter_place(self) -> tuple[str, int, int]:
        return _parsed(self.letter)

    @property
    def origin_place(self) -> tuple[str, int, int] | None:
        """The original's place; None when the record could not tell it."""
        topic, partition, offset = _parsed(self.origin)
        return None if partition < 0 or offset < 0 else (topic, partition, offset)


_decoder = msgspec.json.Decoder(LetterRedriven)
_encoder = msgspec.json.Encoder()


def decode_redrive(raw: bytes | str) -> LetterRedriven:
    """Decode one re-drive record; raises :class:`InvalidEvent` naming the problem."""
    try:
        return decode_wire(_decoder, raw)
    except msgspec.DecodeError as exc:
        raise InvalidEvent(describe(exc)) from exc


def encode_redrive(redrive: LetterRedriven) -> bytes:
    return _encoder.encode(redrive)
