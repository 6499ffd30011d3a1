"""Dead letters Kafka has taken (or that were given up for good), remembered so that a
batch learned again does not write or count them twice.

The offer learner retries a batch by starting again from its snapshot and building the
batch's letters anew: a letter written (whole or reduced) before another letter of the
same batch met a Kafka outage went again, and a reduced one was counted again in
``moments_dead_letters_refused_total``. A letter is known by a digest of where its
record was read, its record and its reason (not by the object, which is new each time),
so that a record at an offset a log that lost its tail gave again is not mistaken for
one already written. At most :data:`KEPT` are remembered, the oldest forgotten first;
they live in this process only (a letter written before a restart may go again).

>>> from agents.letters import SourceRecord
>>> a = FailedRecord(SourceRecord("offer-outcomes", 0, 1, b"c-1", b"{}"), "invalid: x")
>>> b = FailedRecord(SourceRecord("offer-outcomes", 0, 2, b"c-2", b"{}"), "invalid: x")
>>> sent = SentLetters()
>>> sent.note([a, b], delivered={id(a): a})
>>> again = FailedRecord(a.record, a.error)  # the same letter, built anew
>>> [f.record.offset for f in sent.unsent([again, b])]
[2]
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from agents.batch_result import FailedRecord

KEPT = 100_000  # letters remembered at most (16 bytes each, and the dict's own)


def letter_id(failed: FailedRecord) -> bytes:
    """A digest of ``failed``'s letter: its record's place, key, value and the reason."""
    record, digest = failed.record, hashlib.blake2b(digest_size=16)
    for part in (record.topic.encode(), str(record.partition).encode(),
                 str(record.offset).encode(), record.key or b"", record.value or b"",
                 failed.error.encode()):  # fmt: skip
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


class SentLetters:
    """The letters written or given up, by :func:`letter_id`."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._ids: dict[bytes, None] = {}

    def unsent(self, letters: Sequence[FailedRecord]) -> list[FailedRecord]:
        """The ``letters`` not written (nor given up) yet."""
        return [f for f in letters if letter_id(f) not in self._ids]

    def note(self, letters: Sequence[FailedRecord], delivered: Mapping[int, object]) -> None:
        """Remember those of ``letters`` that ``delivered`` holds (by identity, as
        :func:`agents.letter_sends.send_letters` fills it)."""
        for failed in letters:
            if id(failed) in delivered:
                self._ids[letter_id(failed)] = None
        while len(self._ids) > self._kept:  # the oldest go
            del self._ids[next(iter(self._ids))]
