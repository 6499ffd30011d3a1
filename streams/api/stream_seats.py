"""How many alert streams each API key may hold open at once.

A stream lasts as long as its screen stays open, so the per-key rate limit, which counts
requests, does not bound them; each holds a connection, a queue and a task in the API
process. A key at its limit is refused further streams (429) until one of its screens
goes.

>>> seats = StreamSeats(per_key=2)
>>> seats.take("desk"), seats.take("desk"), seats.take("desk")
(True, True, False)
>>> seats.take("web")  # each key has its own seats
True
>>> seats.give_back("desk")
>>> seats.take("desk"), seats.take("desk"), seats.open
(True, False, 3)
"""

from __future__ import annotations


def seats_per_key(configured: int, connections: int) -> int:
    """The streams one key may hold: ``configured`` (``MOMENTS_API_MAX_STREAMS_PER_KEY``),
    but no more than half the process's ``connections``, so that one key's screens (all
    reconnecting to one process after a rollout) leave connections for recommendations
    and ingest (a pod's memory-bounded 384 connections were fewer than 500 screens).

    >>> seats_per_key(500, 384), seats_per_key(10, 384), seats_per_key(500, 1)
    (192, 10, 1)
    """
    return max(1, min(configured, connections // 2))


class StreamSeats:
    """Open alert streams counted per key name, none past ``per_key``."""

    def __init__(self, per_key: int) -> None:
        if per_key < 1:
            raise ValueError("each key needs at least one stream")
        self.per_key = per_key
        self._held: dict[str, int] = {}

    def take(self, key: str) -> bool:
        """Take a seat for one more of ``key``'s streams; False when it has none left."""
        held = self._held.get(key, 0)
        if held >= self.per_key:
            return False
        self._held[key] = held + 1
        return True

    def give_back(self, key: str) -> None:
        """One of ``key``'s streams has ended."""
        held = self._held.get(key, 0) - 1
        if held > 0:
            self._held[key] = held
        else:
            self._held.pop(key, None)

    @property
    def open(self) -> int:
        """Streams open over every key."""
        return sum(self._held.values())
