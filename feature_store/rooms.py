"""The rooms of the profile's tallies: how many fields of an open-ended name it keeps.

A tally (op ``tally``, facts.py) counts into a profile field named by a prefix and a name
a producer chose: a category (``cat:<name>``), or the currency of a purchase with no rate
(``spend_unconverted:<code>``). The profile is read whole at every decision and lives
400 days, so free text (product names as categories, a country code sent as the
currency) must not grow it without bound. Each prefix has a room: a new field is made
only while the profile's counter of that prefix says fewer were made; a field already
made goes on counting. ``lua/apply.lua`` has the same table (its ``ROOMS``).

>>> room_of("cat:books") == Room("tallied", 512), room_of("spend_unconverted:JPY").size
(True, 16)
>>> room_of("spend_cents") is None
True
"""

from __future__ import annotations

from dataclasses import dataclass

# categories: a catalogue's are many, and a customer's taste may span hundreds
TALLY_ROOM = 512
TALLIED = "tallied"
# currencies with no rate: a real customer pays in a handful (ISO 4217 lists some 180,
# the schema passes 17,576 three-letter codes); 16 keeps the spend of a customer paying
# in many currencies apart, and their profile about as small as it is without any (16
# fields more; 1,000 made its read at each decision 5.7 times as slow)
CURRENCY_ROOM = 16
UNCONVERTED_CURRENCIES = "unconverted_currencies"


@dataclass(frozen=True, slots=True)
class Room:
    """How many fields of a prefix a profile keeps, and the profile field counting them."""

    counter: str
    size: int


ROOMS = {
    "cat:": Room(TALLIED, TALLY_ROOM),
    "spend_unconverted:": Room(UNCONVERTED_CURRENCIES, CURRENCY_ROOM),
}


def room_of(field: str) -> Room | None:
    """The room of a tallied field, by its prefix up to the first ``:`` (None: no room,
    not a field a tally may make)."""
    head, sep, _ = field.partition(":")
    return ROOMS.get(head + sep) if head and sep else None


def lua_rooms() -> str:
    """:data:`ROOMS` as ``lua/apply.lua`` writes them (a test keeps the two alike).

    >>> lua_rooms()
    "{['cat:'] = {'tallied', 512}, ['spend_unconverted:'] = {'unconverted_currencies', 16}}"
    """
    rooms = (f"['{p}'] = {{'{r.counter}', {r.size}}}" for p, r in ROOMS.items())
    return "{" + ", ".join(rooms) + "}"
