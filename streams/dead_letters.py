"""What the dead-letter topics hold, and which of their letters may go back (pure).

Every dead letter is the original record (key and bytes) with headers naming where it
came from and why it was set aside. :class:`DeadLetterSummary` counts them by source
topic, stage and reason; :class:`RedrivePlan` picks the letters to send back to their
source topic once what rejected them is fixed: each original record once, only to the
topics Moments reads, only while Moments still remembers which events it applied (the
dedupe horizon, counted from the first time the record was dead-lettered: sending it
back and applying it again does not make Moments remember it longer), so that a letter
whose event was half applied before its decision failed is not applied twice, never for
an erased customer, whose data must not be written anew, and not again once an earlier
run sent it (the re-drive records say so).

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from agents.letter_headers import (
    ERROR,
    FIRST_HANDLED,
    FIRST_LETTERED,
    KEY_TRUNCATED_FROM,
    REDRIVEN_FROM,
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    SOURCE_TOPIC,
    TRUNCATED_FROM,
)
from schemas import LetterRedriven, place
from schemas.errors import decode_wire

TOP_REASONS = 10
# The moment (ms since the epoch) a record sent back was first dead-lettered: a re-drive
# sets it, and a record that fails again keeps it in its new letter.


class _Named(msgspec.Struct):
    """The customer a record names, if it is a JSON object that names one."""

    customer_id: str | None = None


_named = msgspec.json.Decoder(_Named)
# a customer_id in a record that does not decode (cut short, malformed), or a number
_NAMED_ANYHOW = re.compile(rb'"customer_id"\s*:\s*("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*)')


def _named_anyhow(value: bytes) -> str | None:
    """The customer id a record names, read from its text when it does not decode.

    >>> _named_anyhow(b'{"type": "web_click", "customer_id": "c-\\\\"7", "page": "/a')
    'c-"7'
    >>> _named_anyhow(b'{"customer_id": 4711}'), _named_anyhow(b"{not json")
    ('4711', None)
    """
    found = _NAMED_ANYHOW.search(value)
    if found is None:
        return None
    token = found.group(1)
    try:
        named = json.loads(token) if token.startswith(b'"') else token.decode()
    except ValueError:
        return None
    return str(named)


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
            return int(value) if value.isdigit() else -1

        first, handled = number(FIRST_LETTERED), number(FIRST_HANDLED)
        return cls(topic, partition, offset, written_ms, key, value,
                   text(SOURCE_TOPIC) or "unknown", number(SOURCE_PARTITION),
                   number(SOURCE_OFFSET), text(ERROR) or "unknown",
                   redriven_from=text(REDRIVEN_FROM) if REDRIVEN_FROM in found else "",
                   truncated=TRUNCATED_FROM in found or KEY_TRUNCATED_FROM in found,
                   first_lettered_ms=first if first >= 0 else None,
                   handled_ms=handled if handled >= 0 else None)  # fmt: skip

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

    def redriven_at(self, ts: datetime) -> LetterRedriven:
        """The record of sending this letter back."""
        return LetterRedriven(letter=place(*self.place), origin=place(*self.origin), ts=ts)

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
        ``batch failed N times``."""
        return self.error.partition(":")[0]

    @property
    def given_up(self) -> bool:
        """Whether its whole batch was dead-lettered after failing again and again."""
        return self.stage.startswith("batch failed")

    @property
    def applied_live(self) -> bool:
        """Whether the live pipeline had applied the record's event when it set it aside:
        a decision fails after the features were updated, and a batch is given up only
        after its events were applied (those that could not be decoded, or were dated
        too far ahead, were not)."""
        return self.stage == "decision failed" or self.given_up

    @property
    def customers(self) -> frozenset[str]:
        """The customer ids the letter names: its key, and the ``customer_id`` of its
        record (a producer may key a record by something else, or not at all), read from
        its text when the record does not decode.

        >>> DeadLetter("dlq", 0, 1, 0, None, b'{"customer_id": "c-7", "ts": 1}', "t", 0, 1,
        ...            "x").customers
        frozenset({'c-7'})
        """
        found = {self.key.decode("utf-8", "replace")} if self.key else set()
        try:
            named = decode_wire(_named, self.value or b"").customer_id
        except msgspec.DecodeError:  # not JSON, or its customer_id is not a string
            named = _named_anyhow(self.value or b"")
        if named:
            found.add(named)
        return frozenset(found)

    @property
    def reason(self) -> str:
        """The error, with the customer ids the letter names masked."""
        return masked(self.error, self.customers)


def masked(text: str, customers: Iterable[str]) -> str:
    r"""``text`` with each of ``customers`` replaced by ``<customer>`` (longest first), as
    written and as an error would quote it (Python's ``repr`` and JSON escape a
    backslash, a quote, a tab or a line break in it).

    >>> masked("KeyError: 'c-42' after c-4", {"c-4", "c-42"})
    "KeyError: '<customer>' after <customer>"
    >>> masked(repr(KeyError("DOMAIN\\jsmith")), {"DOMAIN\\jsmith"})
    "KeyError('<customer>')"
    """
    forms = {form for customer in customers if customer
             for form in (customer, repr(customer)[1:-1], json.dumps(customer)[1:-1])}  # fmt: skip
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "<customer>")
    return text


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


@dataclass
class _Source:
    letters: int = 0
    after_redrive: int = 0
    sent_back: int = 0
    contents: set[bytes] = field(default_factory=set)  # digests of key and value
    stages: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)  # by error as written
    customers: set[str] = field(default_factory=set)  # in memory only, to mask the reasons
    first_ms: int | None = None
    last_ms: int | None = None


class DeadLetterSummary:
    """Counts per source topic: letters, distinct records, stages, the commonest reasons,
    and when the first and last were written. No key or value is kept.

    >>> summary = DeadLetterSummary()
    >>> for n in range(3):
    ...     summary.add(DeadLetter("dlq", 0, n, 1_000 * n, b"c", b"x", "touchpoints", 0, n,
    ...                            "invalid: Expected `str` - at `$.page`"))
    >>> report = summary.report()["touchpoints"]
    >>> report["letters"], report["distinct_records"], report["stages"]
    (3, 1, {'invalid': 3})
    """

    def __init__(self) -> None:
        self._sources: dict[str, _Source] = {}

    def add(self, letter: DeadLetter, sent_back: bool = False) -> None:
        """Count ``letter``; ``sent_back``: an earlier re-drive sent its record back."""
        source = self._sources.setdefault(letter.source_topic, _Source())
        source.letters += 1
        source.after_redrive += letter.redriven
        source.sent_back += sent_back
        digest = hashlib.blake2b(digest_size=16)
        for part in (letter.key or b"", letter.value or b""):
            digest.update(len(part).to_bytes(8, "big") + part)
        source.contents.add(digest.digest())
        source.stages[letter.stage] += 1
        source.reasons[letter.error] += 1  # masked in the report, with every letter's ids
        source.customers |= letter.customers
        at = letter.written_ms
        source.first_ms = at if source.first_ms is None else min(source.first_ms, at)
        source.last_ms = at if source.last_ms is None else max(source.last_ms, at)

    def report(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name, s in sorted(self._sources.items()):
            # an error shared by a batch's letters names one customer: masked in all
            reasons: Counter[str] = Counter()
            for error, n in s.reasons.items():
                reasons[masked(error, s.customers)] += n
            top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]
            out[name] = {
                "letters": s.letters,
                "distinct_records": len(s.contents),
                "failed_again_after_redrive": s.after_redrive,
                "sent_back_already": s.sent_back,
                "stages": dict(sorted(s.stages.items())),
                "top_reasons": [{"reason": r, "letters": n} for r, n in top],
                "first": None if s.first_ms is None else _iso(s.first_ms),
                "last": None if s.last_ms is None else _iso(s.last_ms),
            }
        return out


class RedrivePlan:
    """Decides, letter by letter, whether it goes back to its source topic. The dedupe
    horizon applies to when its record was first dead-lettered: Moments remembers an
    event from its first apply, which a duplicate sent back later does not renew.

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
        self._taken: set[tuple[str, int, int]] = set()
        # when the records of the letters read were first dead-lettered, by letter (only
        # those within the horizon)
        self._first_ms: dict[str, int] = {}
        self._sent_letters: set[tuple[str, int, int]] = set()
        self._sent_origins: set[tuple[str, int, int]] = set()
        self.outcomes: Counter[str] = Counter()

    def remember(self, sent: LetterRedriven) -> None:
        """An earlier run sent ``sent.letter`` back."""
        self._sent_letters.add(sent.letter_place)
        self._sent_origins.add(sent.origin_place)

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
        return letter.place in self._sent_letters or letter.origin in self._sent_origins

    def take(self, letter: DeadLetter) -> str:
        """``redriven`` (send it back), or why not: ``repeated`` (its original was taken
        already in this run), ``too_old`` (its record was first dead-lettered before the
        dedupe horizon, or when that cannot be told: its event might be applied twice),
        ``unknown_source`` (not a topic Moments reads),
        ``erased`` (the record's key or its ``customer_id`` names a customer who asked
        to be erased),
        ``truncated`` (the letter keeps only the start of a record too large to write
        again) or ``sent_before`` (an earlier run sent its original back; unless
        ``again``)."""
        if letter.source_topic not in self._sources:
            verdict = "unknown_source"
        elif not self._erased.isdisjoint(letter.customers):
            verdict = "erased"
        elif (first := self.first_lettered(letter)) is None or first < self._remembered_from_ms:
            verdict = "too_old"
        elif letter.truncated:
            verdict = "truncated"
        elif not self._again and self.sent_before(letter):
            verdict = "sent_before"
        elif letter.origin in self._taken:
            verdict = "repeated"
        else:
            self._taken.add(letter.origin)
            verdict = "redriven"
        self.outcomes[verdict] += 1
        return verdict
