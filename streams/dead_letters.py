"""What the dead-letter topics hold (pure).

Every dead letter is the original record (key and bytes) with headers naming where it
came from and why it was set aside. :class:`DeadLetterSummary` counts them by source
topic, stage and reason; :mod:`streams.redrive_plan` picks those to send back.

Reasons are shown with the record's own key (the customer id) masked.

>>> letter = DeadLetter.of("touchpoints-dlq", 0, 7, 1_000, b"c-42", b"{}", [
...     (b"source-topic", b"touchpoints"), (b"source-partition", b"3"),
...     (b"source-offset", b"99"), (b"error", b"decision failed: KeyError: 'c-42'")])
>>> letter.stage, letter.reason, letter.origin
('decision failed', "decision failed: KeyError: '<customer>'", ('touchpoints', 3, 99))
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agents.letter_customers import customers_named
from agents.letter_headers import (
    CUT,
    ERROR,
    FIRST_HANDLED,
    FIRST_LETTERED,
    KEY_TRUNCATED_FROM,
    REDRIVEN_FROM,
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    SOURCE_TOPIC,
    TRUNCATED_FROM,
    UNMARKED_CUTS,
)
from schemas import LetterRedriven, place
from streams.letter_identity import Held

TOP_REASONS = 10
# The moment (ms since the epoch) a record sent back was first dead-lettered: a re-drive
# sets it, and a record that fails again keeps it in its new letter.


# the stages of letters set aside before their event was applied ("unknown": no reason)
NOT_APPLIED_STAGES = frozenset({"invalid", "feature update failed", "unknown"})


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str  # the dead-letter topic, and where in it
    partition: int
    offset: int
    written_ms: int  # when it was dead-lettered (the record's Kafka timestamp)
    key: bytes | None
    value: bytes | None
    source_topic: str
    source_partition: int
    source_offset: int
    error: str
    redriven_from: str = ""  # the letter its record had been sent back from (it failed again)
    truncated: bool = False  # the record was too large: the letter keeps only its start
    first_lettered_ms: int | None = None  # when a record sent back was first dead-lettered
    handled_ms: int | None = None  # when the worker took the record, before applying it
    # the record's value was cut short: its length before (-1: the header is unreadable)
    cut_from: int | None = None

    @classmethod
    def of(
        cls,
        topic: str,
        partition: int,
        offset: int,
        written_ms: int,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[Any, bytes]],
    ) -> DeadLetter:
        """From a dead-letter record; a missing or garbled header reads as unknown."""
        found = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in headers}

        def text(name: str) -> str:  # a header may come without a value
            return (found.get(name) or b"").decode("utf-8", "replace")

        def number(name: str) -> int:
            value = text(name)
            return int(value) if value.isascii() and value.isdigit() else -1  # not "²"

        first, handled = number(FIRST_LETTERED), number(FIRST_HANDLED)
        cut_from = number(TRUNCATED_FROM) if TRUNCATED_FROM in found else None
        return cls(topic, partition, offset, written_ms, key, value,
                   text(SOURCE_TOPIC) or "unknown", number(SOURCE_PARTITION),
                   number(SOURCE_OFFSET), text(ERROR) or "unknown",
                   redriven_from=text(REDRIVEN_FROM) if REDRIVEN_FROM in found else "",
                   truncated=TRUNCATED_FROM in found or KEY_TRUNCATED_FROM in found,
                   first_lettered_ms=first if first >= 0 else None,
                   handled_ms=handled if handled >= 0 else None,
                   cut_from=cut_from)  # fmt: skip

    @property
    def redriven(self) -> bool:
        """Its record had been sent back once already (and failed again)."""
        return bool(self.redriven_from)

    @property
    def origin(self) -> tuple[str, int, int]:
        """The original record: topic, partition, offset."""
        return self.source_topic, self.source_partition, self.source_offset

    @property
    def place(self) -> tuple[str, int, int]:
        """The letter itself: dead-letter topic, partition, offset."""
        return self.topic, self.partition, self.offset

    @property
    def held(self) -> Held:
        """What it holds of its record's value, to tell that record from another Kafka
        wrote at the same place since (see :mod:`streams.letter_identity`)."""
        return Held.of(self.value, self.cut_from)

    @property
    def record(self) -> tuple[tuple[str, int, int], str]:
        """Its original record: where it was read, and the digest (hex) of what the
        letter holds of its value."""
        return self.origin, self.held.digest.hex()

    def redriven_at(self, ts: datetime) -> LetterRedriven:
        """The record of sending this letter back."""
        return LetterRedriven(letter=place(*self.place), origin=place(*self.origin),
                              digest=self.held.digest.hex(), ts=ts)  # fmt: skip

    def redrive_headers(self, first_lettered_ms: int | None) -> list[tuple[str, bytes]]:
        """The headers of its record sent back: the letter it comes from, and when the
        record was first dead-lettered (if known).

        >>> DeadLetter("dlq", 0, 7, 9_000, b"c", b"{}", "touchpoints", 3, 99,
        ...            "x").redrive_headers(1_000)
        [('redriven-from', b'dlq:0:7'), ('first-dead-lettered', b'1000')]
        """
        headers = [(REDRIVEN_FROM, place(*self.place).encode())]
        if first_lettered_ms is not None:
            headers.append((FIRST_LETTERED, str(first_lettered_ms).encode()))
        return headers

    @property
    def taken_ms(self) -> int:
        """When the worker took the record to handle it (its events may have been
        applied then), or, for letters written before they said so, when it was written;
        never later than it was written."""
        own = self.written_ms if self.handled_ms is None else self.handled_ms
        return min(own, self.written_ms)

    @property
    def stage(self) -> str:
        """What set it aside: ``invalid``, ``feature update failed``, ``decision failed``,
        ``decision record failed``, ``call contact failed``, ``batch failed N times``
        (``unknown``: it does not say)."""
        return self.error.partition(":")[0]

    @property
    def given_up(self) -> bool:
        """Whether its whole batch was dead-lettered after failing again and again."""
        return self.stage.startswith("batch failed")

    @property
    def applied_live(self) -> bool:
        """Whether the live pipeline had applied the record's event when it set it aside:
        a record that could not be decoded (or was dated too far ahead) and one whose
        feature update failed were not; every later stage (a decision, its record, a
        batch given up once its events were applied) comes after the update. A letter
        that does not say why (no ``error`` header) is taken as not applied."""
        return self.stage not in NOT_APPLIED_STAGES

    @property
    def customers(self) -> frozenset[str]:
        """The customer ids the letter names: its key, and the ``customer_id`` of its
        record (a producer may key a record by something else, or not at all), read from
        its text when the record does not decode.

        >>> DeadLetter("dlq", 0, 1, 0, None, b'{"customer_id": "c-7", "ts": 1}', "t", 0, 1,
        ...            "x").customers
        frozenset({'c-7'})
        """
        return customers_named(self.key, self.value)

    @property
    def reason(self) -> str:
        """The error, with the customer ids the letter names masked."""
        return masked(self.error, self.customers)


def masked(text: str, customers: Iterable[str]) -> str:
    r"""``text`` with each of ``customers`` replaced by ``<customer>`` (longest first), as
    written and as an error would quote it (Python's ``repr`` and JSON escape a
    backslash, a quote, a tab or a line break in it), where it stands on its own: not
    within a longer word (a customer ``e`` is no part of ``Expected``), in one pass (not
    in the ``<customer>`` another id left).

    >>> masked("KeyError: 'c-42' after c-4", {"c-4", "c-42"})
    "KeyError: '<customer>' after <customer>"
    >>> masked(repr(KeyError("DOMAIN\\jsmith")), {"DOMAIN\\jsmith"})
    "KeyError('<customer>')"
    >>> masked("invalid: Expected `str`, got `int` - at `$.customer_id`", {"e", "t", " "})
    'invalid: Expected `str`, got `int` - at `$.customer_id`'

    A reason cut short where its letter was written may end part way through a
    customer id; that part is masked too:

    >>> masked("no profile for c-42 nor c-4…", {"c-42"})
    'no profile for <customer> nor <customer>…'
    """
    return masker(customers)(text)


def masker(customers: Iterable[str]) -> Callable[[str], str]:
    """:func:`masked` for ``customers``, its pattern made once for many texts (a report's
    reasons, every letter's ids masked in each)."""
    forms = sorted({form for customer in customers if customer.strip()  # (blank: no one)
                    for form in _quoted(customer)}, key=len, reverse=True)  # fmt: skip
    alone = re.compile(rf"(?<!\w)(?:{'|'.join(map(re.escape, forms))})(?!\w)")

    def mask(text: str) -> str:
        if not forms:
            return text
        cut = text.endswith(CUT) or len(text) in UNMARKED_CUTS
        body = text.removesuffix(CUT)
        tail = text[len(body) :]
        if cut:  # the part of an id the cut left, where it starts a word
            part = max((n for form in forms for n in range(1, len(form))
                        if body.endswith(form[:n]) and not _within_word(body, len(body) - n)),
                       default=0)  # fmt: skip
            if part:
                return alone.sub("<customer>", body[:-part]) + "<customer>" + tail
        return alone.sub("<customer>", body) + tail

    return mask


def _within_word(text: str, at: int) -> bool:
    """Whether ``text[at:]`` starts within a word (a letter, digit or ``_`` before it)."""
    return at > 0 and (text[at - 1].isalnum() or text[at - 1] == "_")


def _quoted(customer: str) -> tuple[str, ...]:
    r"""The ways a reason may hold ``customer``: as it is; as ``repr`` quotes it alone, and
    within a text that holds a ``"`` too (its ``'`` escaped: a KeyError's message); as JSON
    escapes it, non-ASCII kept (msgspec, Moments' own encoder) or not.

    >>> _quoted("o'brien")
    ("o'brien", "o'brien", "o\\'brien", "o'brien", "o'brien")
    """
    return (
        customer,
        repr(customer)[1:-1],
        repr(customer + '"')[1:-2],
        json.dumps(customer)[1:-1],
        json.dumps(customer, ensure_ascii=False)[1:-1],
    )


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """Which letters a command looks at: by source topic, a reason's words, and when."""

    sources: frozenset[str] = frozenset()  # empty: all
    reason_contains: str = ""
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, letter: DeadLetter) -> bool:
        return (
            (not self.sources or letter.source_topic in self.sources)
            and self.reason_contains.lower() in letter.reason.lower()
            and (self.since_ms is None or letter.written_ms >= self.since_ms)
            and (self.until_ms is None or letter.written_ms < self.until_ms)
        )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


MAX_SENT_BACK = 1_000  # times one record is followed back through re-drives


def _record(letter: DeadLetter) -> object:
    """What tells the original record of a letter not sent back: where it was read and
    what the letter holds of its value (Kafka may write another record at that place
    since), or (a letter that does not say where) a digest of its key and value."""
    if letter.source_partition >= 0 and letter.source_offset >= 0:
        return letter.record
    digest = hashlib.blake2b(digest_size=16)
    for part in (letter.key or b"", letter.value or b""):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.digest()


@dataclass
class _Source:
    letters: int = 0
    after_redrive: int = 0
    sent_back: int = 0
    records: set[object] = field(default_factory=set)  # the original records lettered
    sent_back_from: list[str] = field(default_factory=list)  # letters of records sent back
    stages: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)  # by error as written
    first_ms: int | None = None
    last_ms: int | None = None


class DeadLetterSummary:
    """Counts per source topic: letters, distinct records, stages, the commonest reasons,
    and when the first and last were written. No key or value is kept.

    A record is told by where it was read (its letters' source partition and offset)
    and what its letters hold of its value (a digest), so that its letters written again
    by a worker that read it again count once, two records Kafka wrote at one place (a
    partition that lost its tail) count as two, and a record sent back that failed again
    counts as the one first lettered; a letter that does not say where its record was
    read is told by its key and value.

    >>> summary = DeadLetterSummary()
    >>> def letter(at, origin, redriven_from=""):
    ...     found = DeadLetter("dlq", 0, at, 1_000 * at, b"c", b"x", "touchpoints", 0, origin,
    ...                        "invalid: Expected `str` - at `$.page`", redriven_from)
    ...     summary.saw(found)
    ...     summary.add(found)
    >>> letter(0, origin=7); letter(1, origin=7)  # read again after a worker was killed
    >>> letter(2, origin=8)  # the same bytes sent again: another record
    >>> letter(3, origin=40, redriven_from="dlq:0:2")  # sent back, failed again
    >>> report = summary.report()["touchpoints"]
    >>> report["letters"], report["distinct_records"], report["stages"]
    (4, 2, {'invalid': 4})
    """

    def __init__(self) -> None:
        self._sources: dict[str, _Source] = {}
        # the customers of every letter read, counted or not (in memory only): an error a
        # batch shared names one customer, whose own letter a filter may leave out
        self._customers: set[str] = set()
        # the record each letter read is of, by the letter's place (for records sent back)
        self._records: dict[str, object] = {}

    def saw(self, letter: DeadLetter) -> None:
        """Know the customers ``letter`` names, to mask them wherever they appear, even
        when the letter itself is not counted (another source, reason or time)."""
        self._customers |= letter.customers
        self._records[place(*letter.place)] = letter.redriven_from or _record(letter)

    def add(self, letter: DeadLetter, sent_back: bool = False) -> None:
        """Count ``letter``; ``sent_back``: an earlier re-drive sent its record back."""
        source = self._sources.setdefault(letter.source_topic, _Source())
        source.letters += 1
        source.after_redrive += letter.redriven
        source.sent_back += sent_back
        if letter.redriven:  # told once every letter is read (it may come first)
            source.sent_back_from.append(letter.redriven_from)
        else:
            source.records.add(_record(letter))
        source.stages[letter.stage] += 1
        source.reasons[letter.error] += 1  # masked in the report, with every letter's ids
        self._customers |= letter.customers
        at = letter.written_ms
        source.first_ms = at if source.first_ms is None else min(source.first_ms, at)
        source.last_ms = at if source.last_ms is None else max(source.last_ms, at)

    def _first(self, letter_place: str) -> object:
        """The record first lettered of a record sent back from the letter at
        ``letter_place`` (the letter itself when it was not read)."""
        found: object = letter_place
        for _ in range(MAX_SENT_BACK):  # each letter names an earlier one: no loop
            if not isinstance(found, str) or found not in self._records:
                break
            found = self._records[found]
        return found

    def report(self) -> dict[str, dict[str, Any]]:
        out = {}
        mask = masker(self._customers)
        for name, s in sorted(self._sources.items()):
            # an error shared by a batch's letters names one customer: masked in all
            reasons: Counter[str] = Counter()
            for error, n in s.reasons.items():
                reasons[mask(error)] += n
            top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]
            out[name] = {
                "letters": s.letters,
                "distinct_records": len(s.records | {self._first(f) for f in s.sent_back_from}),
                "failed_again_after_redrive": s.after_redrive,
                "sent_back_already": s.sent_back,
                "stages": dict(sorted(s.stages.items())),
                "top_reasons": [{"reason": r, "letters": n} for r, n in top],
                "first": None if s.first_ms is None else _iso(s.first_ms),
                "last": None if s.last_ms is None else _iso(s.last_ms),
            }
        return out
