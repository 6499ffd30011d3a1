"""What a dead letter holds of its record's bytes, to tell that record from another (pure).

A letter names its record by where it was read: topic, partition and offset. Kafka may
give those offsets again (a partition that lost its tail: an unclean leader election, a
broker or disk lost with a replication factor of 1, a restore from an older backup; or
the topic deleted and made again while its dead-letter topic is kept). So a record is
known by its place and by what its letter holds of it: a digest of its value, or, for a
letter that keeps only the start of a value too large (``value-truncated-from``), a
digest of that start, with the start's length and the whole value's.

>>> held = Held.of(b'{"type": "web_click"}')
>>> held.matches(b'{"type": "web_click"}'), held.matches(b'{"type": "email_open"}')
(True, False)
>>> cut = Held.of(b'{"type": "web', cut_from=21)
>>> cut.matches(b'{"type": "web_click"}'), cut.matches(b'{"type": "web_click"}  ')
(True, False)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

DIGEST_BYTES = 16  # blake2b-128: no two records told apart by chance
# Of a letter cut short, the start that is digested: every such letter keeps at least
# this much (agents.letters.LETTER_MAX, 900,000 bytes, less its key and headers, a few KB
# at most), and each keeps a start of its own length (the error text's length counts), so
# that two letters of one record (read again after a restart, or given up with another
# error) are told by the same start.
CUT_START = 800_000


def value_digest(value: bytes | None) -> bytes:
    """The digest of a record's value (no value reads as an empty one)."""
    return hashlib.blake2b(value or b"", digest_size=DIGEST_BYTES).digest()


@dataclass(frozen=True, slots=True)
class Held:
    """What a letter holds of its record's value."""

    digest: bytes  # of the value, or of the start a letter cut short keeps
    kept: int | None = None  # that start's length (None: the letter holds it whole)
    whole: int | None = None  # the value's length, as a letter cut short says (if it does)

    @classmethod
    def of(cls, value: bytes | None, cut_from: int | None = None) -> Held:
        """What a letter whose value is ``value`` holds; ``cut_from``: the value's length
        before it was cut short (its ``value-truncated-from`` header; negative: the header
        is there but unreadable), None when it was not."""
        if cut_from is None:
            return cls(value_digest(value))
        start = (value or b"")[:CUT_START]
        return cls(value_digest(start), len(start), cut_from if cut_from >= 0 else None)

    def matches(self, value: bytes | None) -> bool:
        """Whether ``value``, a record's, is the one a letter holding this holds."""
        read = value or b""
        if self.kept is None:
            return value_digest(read) == self.digest
        if self.whole is not None and len(read) != self.whole:
            return False
        return len(read) >= self.kept and value_digest(read[: self.kept]) == self.digest
