"""IANA timezone names, as Moments accepts them: for a catalogue's quiet hours and for
the customer's own timezone that touchpoints may carry.

Only names of the tz database count (from the ``tzdata`` package or the system's), not
paths or the machine's own ``localtime``, so that the same event means the same on
every machine. Zones are loaded once per name and kept: there are a few hundred.

>>> is_timezone("Europe/Paris"), is_timezone("Mars/Olympus"), is_timezone("localtime")
(True, False, False)
>>> str(zone("Asia/Kolkata"))
'Asia/Kolkata'
"""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo, available_timezones

_MACHINE_DEPENDENT = frozenset({"localtime", "posixrules"})


@functools.cache
def _known() -> frozenset[str]:
    return frozenset(available_timezones()) - _MACHINE_DEPENDENT


def is_timezone(name: str) -> bool:
    """Whether ``name`` is a timezone of the tz database."""
    return name in _known()


@functools.cache
def zone(name: str) -> ZoneInfo:
    """The zone of a name that :func:`is_timezone` accepted (kept for later calls:
    ``ZoneInfo`` itself keeps only the last few strongly)."""
    return ZoneInfo(name)
