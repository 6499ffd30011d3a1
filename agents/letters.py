"""Dead letters: a record set aside, unchanged, with where it came from and why.

What the worker and the learner write to the dead-letter topics, and what they read of a
record sent back from one (``moments dead-letters --redrive``). The header names are in
:mod:`agents.letter_headers`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agents.letter_headers import (
    ERROR,
    FIRST_HANDLED,
    FIRST_LETTERED,
    KEY_TRUNCATED_FROM,
    LETTER_NAME_MAX,
    REDRIVEN_FROM,
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    SOURCE_TOPIC,
    TRUNCATED_FROM,
    error_text,
)
from agents.received import record_time_ms

# the partition Kafka's default partitioner gives a key on a topic (None: not known yet)
PartitionOf = Callable[[str, bytes], int | None]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    redriven_from: bytes | None = None  # the dead letter it was sent back from, if any
    first_lettered: bytes | None = None  # when its record was first dead-lettered (ms)
    taken_ms: int | None = None  # when this process took it to handle (its events' apply)
    produced_ms: int | None = None  # the record's Kafka timestamp (when it was sent)
    # the partition Kafka's default partitioner (murmur2 of the key) gives its key, where
    # known: a record elsewhere was sent by a producer partitioning otherwise
    keyed_partition: int | None = None


def _as_bytes(value: Any) -> bytes | None:
    """Bytes as they are, text as UTF-8; anything else (None) is nothing."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return value.encode() if isinstance(value, str) else None


def redriven_from(headers: Any) -> bytes | None:
    """The ``redriven-from`` header of a record (Kafka headers as pairs or a mapping); a
    header without a value, or headers that cannot be read, are no header.

    >>> redriven_from([("redriven-from", None), ("redriven-from", b"touchpoints-dlq:0:7")])
    b'touchpoints-dlq:0:7'
    >>> redriven_from([(b"redriven-from", None)]), redriven_from(42)
    (None, None)
    """
    named = _header(headers, REDRIVEN_FROM)
    return named[:LETTER_NAME_MAX] if named else None


def first_lettered(headers: Any) -> bytes | None:
    """The ``first-dead-lettered`` header of a record sent back, if it is a time.

    >>> first_lettered([("first-dead-lettered", b"1700000000000")])
    b'1700000000000'
    >>> first_lettered([("first-dead-lettered", b"soon")]), first_lettered(None)
    (None, None)
    """
    when = _header(headers, FIRST_LETTERED)
    return when if when and len(when) <= 20 and when.isdigit() else None


def _header(headers: Any, wanted: str) -> bytes | None:
    try:
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers or ())
        for name, value in pairs:
            found = _as_bytes(value) if _as_bytes(name) == wanted.encode() else None
            if found:
                return found
    except (TypeError, ValueError):  # not pairs
        return None
    return None


def source_record(
    message: Any, taken_ms: int | None = None, partition_of: PartitionOf | None = None
) -> SourceRecord:
    """What the handler needs of a Kafka message; a key or value that is not bytes reads
    as none (a record without a value is dead-lettered), an unreadable header as none.
    ``taken_ms``: when the worker took it to handle it; ``partition_of``: the partition
    Kafka's default partitioner gives a key on a topic (``None`` while not known).

    >>> from types import SimpleNamespace as Message
    >>> m = Message(topic="touchpoints", partition=1, offset=7, key=b"c-1", value=b"{}")
    >>> source_record(m, partition_of=lambda topic, key: 2).keyed_partition
    2
    """
    key = _as_bytes(message.key)
    topic = str(message.topic)
    return SourceRecord(
        topic=topic,
        partition=int(message.partition),
        offset=int(message.offset),
        key=key,
        value=_as_bytes(message.value),
        redriven_from=redriven_from(getattr(message, "headers", None)),
        first_lettered=first_lettered(getattr(message, "headers", None)),
        taken_ms=taken_ms,
        produced_ms=_produced_ms(message),
        keyed_partition=None if partition_of is None or key is None else partition_of(topic, key),
    )


def _produced_ms(message: Any) -> int | None:
    """The record's Kafka timestamp in milliseconds (Faust gives seconds), if it has one
    that is a time (:func:`agents.received.record_time_ms`): after the epoch (0 or -1 is
    none), not one past the year 9999 (a producer that stamps its records in
    microseconds), which no date can hold.

    >>> from types import SimpleNamespace
    >>> _produced_ms(SimpleNamespace(timestamp=1795392000.25)), _produced_ms(SimpleNamespace())
    (1795392000250, None)
    >>> _produced_ms(SimpleNamespace(timestamp=1795392000250.0)) is None
    True
    """
    stamp = getattr(message, "timestamp", None)
    return record_time_ms(stamp * 1000) if isinstance(stamp, int | float) else None


# The most a letter holds, key, value and headers together (as Kafka counts a record):
# it stays below the producers' and brokers' default limits (about 1 MB), which a record
# just below the broker's limit would pass once headers are added; a letter that cannot
# be written would hold its partition up.
LETTER_MAX = 900_000
# The longest key a letter keeps (a customer id is at most 256 characters); a longer
# one is replaced by its SHA-256 digest, so that a letter of any record fits.
LETTER_KEY_MAX = 1024


def dead_letter_headers(record: SourceRecord, error: str) -> list[tuple[str, bytes]]:
    """Where the record came from and why it is set aside; a record sent back from the
    dead-letter topic before keeps naming that letter, so repeated failures show."""
    headers = [
        (SOURCE_TOPIC, record.topic.encode()),
        (SOURCE_PARTITION, str(record.partition).encode()),
        (SOURCE_OFFSET, str(record.offset).encode()),
        (ERROR, error_text(error).encode()),
    ]
    if record.redriven_from:
        headers.append((REDRIVEN_FROM, record.redriven_from[:LETTER_NAME_MAX]))
    if record.first_lettered:
        headers.append((FIRST_LETTERED, record.first_lettered))
    if record.taken_ms is not None:
        headers.append((FIRST_HANDLED, str(record.taken_ms).encode()))
    return headers


def letter_key(key: bytes | None) -> bytes | None:
    """The key of a record's letter: the record's own, or one longer than
    :data:`LETTER_KEY_MAX` as ``sha256:`` and its hex digest (the same key, the same
    digest).

    >>> letter_key(b"cust-1"), letter_key(b"k" * 5000)[:15]
    (b'cust-1', b'sha256:622b8b1d')
    """
    if key is None or len(key) <= LETTER_KEY_MAX:
        return key
    return b"sha256:" + hashlib.sha256(key).hexdigest().encode()


def letter_size(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> int:
    """A letter's bytes as Kafka counts them against its limits (less a few of framing)."""
    named = sum(len(name.encode()) + len(content) for name, content in headers)
    return len(key or b"") + len(value or b"") + named


def dead_letter(record: SourceRecord, error: str) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The value and headers of the letter for ``record`` (its key is :func:`letter_key`,
    with a ``key-truncated-from`` header when that is not the record's own): the record
    unchanged, within :data:`LETTER_MAX` in all, key and headers included. A value that
    does not fit is cut short, with a ``value-truncated-from`` header: such a letter is
    for reading, and never sent back.

    >>> big = SourceRecord("touchpoints", 0, 7, b"c", b"x" * LETTER_MAX)
    >>> value, headers = dead_letter(big, "invalid: too long")
    >>> headers[-1], letter_size(big.key, value, headers) == LETTER_MAX
    (('value-truncated-from', b'900000'), True)
    >>> long_key = SourceRecord("touchpoints", 0, 8, b"c" * 150_000, b"x" * 850_000)
    >>> value, headers = dead_letter(long_key, "invalid: too long")
    >>> headers[-1], len(letter_key(long_key.key)), len(value)
    (('key-truncated-from', b'150000'), 71, 850000)
    """
    headers = dead_letter_headers(record, error)
    key, value = letter_key(record.key), record.value
    if key != record.key and record.key is not None:
        headers.append((KEY_TRUNCATED_FROM, str(len(record.key)).encode()))
    if value is not None and letter_size(key, value, headers) > LETTER_MAX:
        headers.append((TRUNCATED_FROM, str(len(value)).encode()))
        value = value[: max(LETTER_MAX - letter_size(key, None, headers), 0)]
    return value, headers


def letter(record: SourceRecord, error: str) -> tuple[bytes | None, bytes | None, list[Any]]:
    """The letter for ``record``, whole: its key (:func:`letter_key`), value and headers
    (:func:`dead_letter`)."""
    value, headers = dead_letter(record, error)
    return letter_key(record.key), value, headers
