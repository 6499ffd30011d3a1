"""A dead letter the dead-letter topic refused whole, made small enough to be written
(pure).

A topic whose ``max.message.bytes`` is below a letter's size refuses it for good, and
waiting changes nothing. Its reduced form keeps what finds the original record in its
source topic while it is retained: the reason it was set aside, where it was read
(topic, partition, offset), its Kafka timestamp (``source-timestamp``), its key (as
every letter keeps it) and Kafka's answer to the whole letter (``letter-refused``), with
as much of its value as :data:`REDUCED_KEEPS` allows, marked with the value's length
(``value-truncated-from``) when it is cut: such a letter is for reading, never sent back.
"""

from __future__ import annotations

from agents.letter_headers import (
    KEY_TRUNCATED_FROM,
    LETTER_REFUSED,
    SOURCE_TIMESTAMP,
    TRUNCATED_FROM,
)
from agents.letters import SourceRecord, dead_letter_headers, letter_key

# the bytes of its value a reduced letter keeps, each tried in turn while the topic refuses
# the letter: the start of a value (a malformed record's start tells what sent it), then none
REDUCED_KEEPS = (1024, 0)
REFUSAL_MAX = 100  # the longest name of Kafka's answer a letter gives


def reduced_letter(
    record: SourceRecord, error: str, refusal: str, keep: int
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The key, value and headers of the letter for ``record``, set aside for ``error``,
    whose whole letter Kafka refused with ``refusal``: at most ``keep`` bytes of its value.

    >>> record = SourceRecord("touchpoints", 3, 42, b"c-9", b"x" * 10_000, produced_ms=1_700)
    >>> key, value, headers = reduced_letter(record, "invalid: malformed JSON",
    ...                                      "MessageSizeTooLargeError", 1024)
    >>> key, len(value), dict(headers)["error"], headers[-3:]
    (b'c-9', 1024, b'invalid: malformed JSON', [('source-timestamp', b'1700'), \
('letter-refused', b'MessageSizeTooLargeError'), ('value-truncated-from', b'10000')])
    >>> reduced_letter(record, "invalid", "MessageSizeTooLargeError", 0)[1]
    b''

    A value that fits is kept whole, and not marked (such a letter may be sent back):

    >>> small = SourceRecord("touchpoints", 0, 1, None, b"{}")
    >>> _, value, headers = reduced_letter(small, "invalid", "InvalidMessageError", 1024)
    >>> value, [name for name, _ in headers if name == "value-truncated-from"]
    (b'{}', [])
    """
    headers = dead_letter_headers(record, error)
    key = letter_key(record.key)
    if key != record.key and record.key is not None:
        headers.append((KEY_TRUNCATED_FROM, str(len(record.key)).encode()))
    if record.produced_ms is not None:
        headers.append((SOURCE_TIMESTAMP, str(record.produced_ms).encode()))
    headers.append((LETTER_REFUSED, refusal[:REFUSAL_MAX].encode()))
    value = record.value
    if value is not None and len(value) > keep:
        headers.append((TRUNCATED_FROM, str(len(value)).encode()))
        value = value[:keep]
    return key, value, headers
