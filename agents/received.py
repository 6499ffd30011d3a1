"""When Moments received a touchpoint's Kafka record (pure): one rule for the worker and
``moments rebuild``, so that a withdrawal stamped with it ranks alike in both.

A record's Kafka timestamp is when it was sent, if it is a time: 0 or less (a producer
that sets 0, or none: -1) and one past the year 9999 (microseconds) are none, and then
the reader's own time stands in (the worker's when it took it, the rebuild's clock). A
record sent back from the dead letters (``moments dead-letters --redrive``) is stamped
when it was sent back; Moments first received it no later than when it was first
dead-lettered, so the earlier of the two counts. Either is no later than ``latest_ms``
(the reader's clock plus the skew allowed: a producer's clock ahead).

>>> received_ms(1_000, None, fallback_ms=5_000, latest_ms=9_000)
1000
>>> received_ms(0, None, fallback_ms=5_000, latest_ms=9_000)
5000
>>> received_ms(8_000, b"3000", fallback_ms=5_000, latest_ms=9_000)
3000
>>> received_ms(20_000, None, fallback_ms=5_000, latest_ms=9_000)
9000
"""

from __future__ import annotations

LAST_STAMP_MS = 253_402_300_799_000  # 9999-12-31 23:59:59 UTC


def record_time_ms(stamp_ms: float | None) -> int | None:
    """A Kafka record's timestamp (ms) if it is a time: after the epoch, before 10000.

    >>> record_time_ms(1795392000250.0), record_time_ms(0), record_time_ms(-1)
    (1795392000250, None, None)
    >>> record_time_ms(1795392000250000), record_time_ms(None)
    (None, None)
    """
    if isinstance(stamp_ms, int | float) and 0 < stamp_ms < LAST_STAMP_MS:
        return int(stamp_ms)
    return None


def received_ms(
    sent_ms: float | None, first_lettered: bytes | None, fallback_ms: int, latest_ms: int
) -> int:
    """When Moments received a record timestamped ``sent_ms`` (ms; ``fallback_ms`` if
    that is no time, :func:`record_time_ms`), with ``first_lettered`` the
    ``first-dead-lettered`` header of one sent back (ms, digits), no later than
    ``latest_ms``."""
    sent = record_time_ms(sent_ms)
    at = fallback_ms if sent is None else sent
    if first_lettered and first_lettered.isdigit() and int(first_lettered) > 0:
        at = min(at, int(first_lettered))
    return min(at, latest_ms)
