"""Which dead letters may go back to their source topic (``moments dead-letters
--redrive``), once what rejected them is fixed (pure).

Each original record goes back once, only to the topics Moments reads, only while
Moments still remembers which events it applied (the dedupe horizon, counted from the
first time the record was dead-lettered: sending it back and applying it again does not
make Moments remember it longer), so that a letter whose event was half applied before
its decision failed is not applied twice; never for an erased customer, whose data must
not be written anew; and not again once an earlier run sent it (the re-drive records say
so). An original record is told by where it was read and what its letters hold of it (a
digest of its value): a new record Kafka wrote at a place it gave again (a partition that
lost its tail, a topic made again) is another original, sent back in its turn. A re-drive
record written before they carried the digest tells its original by place alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from schemas import LetterRedriven, place
from streams.dead_letters import DeadLetter


class RedrivePlan:
    """Decides, letter by letter, whether it goes back to its source topic. The dedupe
    horizon applies to when its record was first dead-lettered: Moments remembers an
    event from its first apply, which a duplicate sent back later does not renew.

    >>> from datetime import UTC, datetime
    >>> plan = RedrivePlan(frozenset({"touchpoints"}), remembered_from_ms=5_000,
    ...                    erased={"gone"})
    >>> def letter(offset, written_ms, source="touchpoints", origin=1, key=b"c"):
    ...     return DeadLetter("dlq", 0, offset, written_ms, key, b"{}", source, 0, origin, "x")
    >>> plan.remember(letter(5, 9_000, origin=5).redriven_at(datetime.now(UTC)))
    >>> [plan.take(letter(0, 9_000)), plan.take(letter(1, 9_500)),  # the same original twice
    ...  plan.take(letter(2, 1_000, origin=2)), plan.take(letter(3, 9_000, "elsewhere", 3)),
    ...  plan.take(letter(4, 9_000, origin=4, key=b"gone")), plan.take(letter(5, 9_000, origin=5))]
    ['redriven', 'repeated', 'too_old', 'unknown_source', 'erased', 'sent_before']
    """

    def __init__(
        self,
        sources: frozenset[str],
        remembered_from_ms: int,
        erased: set[str] | None = None,
        again: bool = False,
    ) -> None:
        self._sources = sources
        self._remembered_from_ms = remembered_from_ms
        self._erased = erased if erased is not None else set()  # customer ids
        self._again = again  # send letters back even if an earlier run did
        self._taken: set[tuple[tuple[str, int, int], str]] = set()  # original records
        # when the records of the letters read were first dead-lettered, by letter (only
        # those within the horizon)
        self._first_ms: dict[str, int] = {}
        self._sent_letters: set[tuple[str, int, int]] = set()
        self._sent_records: set[tuple[tuple[str, int, int], str]] = set()  # place and digest
        self._sent_places: set[tuple[str, int, int]] = set()  # recorded without a digest
        self.outcomes: Counter[str] = Counter()

    def erased_unknown(self, letters: Iterable[DeadLetter]) -> list[str]:
        """The customers ``letters`` name not yet known to be erased, sorted: those whose
        tombstones to look at before the letters are taken.

        >>> plan = RedrivePlan(frozenset({"touchpoints"}), remembered_from_ms=0, erased={"b"})
        >>> def letter(key):
        ...     return DeadLetter("dlq", 0, 0, 0, key, b"{}", "touchpoints", 0, 0, "x")
        >>> plan.erased_unknown([letter(b"c"), letter(b"b"), letter(b"a"), letter(b"c")])
        ['a', 'c']
        """
        named: set[str] = set().union(*(letter.customers for letter in letters))
        return sorted(named - self._erased)

    def erase(self, customers: Iterable[str]) -> None:
        """``customers`` were erased (found since the run started): their letters are not
        taken."""
        self._erased.update(customers)

    def remember(self, sent: LetterRedriven) -> None:
        """An earlier run sent ``sent.letter`` back."""
        self._sent_letters.add(sent.letter_place)
        if (origin := sent.origin_place) is None:
            return
        if sent.digest is None:  # recorded before records said: its place alone
            self._sent_places.add(origin)
        else:
            self._sent_records.add((origin, sent.digest))

    def track(self, letter: DeadLetter) -> None:
        """Note a letter read, matching or not: a later letter of its record, sent back
        from it and dead-lettered again, is as old as it is."""
        first = self.first_lettered(letter)
        if first is not None and first >= self._remembered_from_ms:
            self._first_ms[place(*letter.place)] = first

    def first_lettered(self, letter: DeadLetter) -> int | None:
        """When the letter's record was first dead-lettered: the letter's own time, or for
        a record sent back that failed again, the time its header carries or that of the
        letter it was sent back from, if tracked; None when it cannot be told within the
        horizon (that letter is gone, or older).

        >>> plan = RedrivePlan(frozenset({"touchpoints"}), remembered_from_ms=5_000)
        >>> first = DeadLetter("dlq", 0, 1, 6_000, b"c", b"{}", "touchpoints", 0, 1, "x")
        >>> again = DeadLetter("dlq", 0, 2, 9_000, b"c", b"{}", "touchpoints", 0, 7, "x",
        ...                    redriven_from="dlq:0:1")
        >>> plan.first_lettered(again) is None
        True
        >>> plan.track(first)
        >>> plan.first_lettered(again)
        6000
        """
        own = letter.taken_ms
        if letter.first_lettered_ms is not None:
            return min(letter.first_lettered_ms, own)
        if not letter.redriven:
            return own
        earlier = self._first_ms.get(letter.redriven_from)
        return None if earlier is None else min(earlier, own)

    def sent_before(self, letter: DeadLetter) -> bool:
        """Whether an earlier run sent this letter, or another of its original, back."""
        return (letter.place in self._sent_letters or letter.record in self._sent_records
                or letter.origin in self._sent_places)  # fmt: skip

    def take(self, letter: DeadLetter) -> str:
        """``redriven`` (send it back), or why not: ``repeated`` (its original was taken
        already in this run), ``too_old`` (its record was first dead-lettered before the
        dedupe horizon, or when that cannot be told: its event might be applied twice),
        ``unknown_source`` (not a topic Moments reads), ``unknown_origin`` (its headers do
        not tell its original's partition and offset: whether it went back before, or
        another letter of it, cannot be told, and its record of a re-drive could not name
        it),
        ``erased`` (the record's key or its ``customer_id`` names a customer who asked
        to be erased),
        ``truncated`` (the letter keeps only the start of a record too large to write
        again) or ``sent_before`` (an earlier run sent its original back; unless
        ``again``)."""
        if letter.source_topic not in self._sources:
            verdict = "unknown_source"
        elif letter.source_partition < 0 or letter.source_offset < 0:
            verdict = "unknown_origin"
        elif not self._erased.isdisjoint(letter.customers):
            verdict = "erased"
        elif (first := self.first_lettered(letter)) is None or first < self._remembered_from_ms:
            verdict = "too_old"
        elif letter.truncated:
            verdict = "truncated"
        elif not self._again and self.sent_before(letter):
            verdict = "sent_before"
        elif letter.record in self._taken:
            verdict = "repeated"
        else:
            self._taken.add(letter.record)
            verdict = "redriven"
        self.outcomes[verdict] += 1
        return verdict
