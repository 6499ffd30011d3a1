"""The request bodies one API process receives at once, in bytes: a budget over every
key (``MOMENTS_API_BODY_BUDGET_BYTES``), of which one key may take a share.

An upload holds its body in memory until the whole of it has come, for up to
``MOMENTS_API_BODY_TIMEOUT_S``: 250 uploads of 1 MiB each stopped one byte short, within
the burst of the key web pages use (which their visitors can read), took an API from 173
to 620 MiB for 30 s. A body counts as its ``Content-Length`` announces (a chunked one as
the body limit) from before it is read until it has come; one past the budget, or past
its key's share, is refused before any of it is read (and not invited, for ``Expect:
100-continue``). A body is always taken when the process receives no other, and, within
the process's budget, when its key receives no other: a budget below the body limit never
refuses every body.

>>> budget = BodyBudget(total=100, key_share=50)
>>> budget.take("web", 40), budget.take("web", 20), budget.take("ingest", 50)
(True, False, True)
>>> budget.take("ingest", 1), budget.take("reader", 20)  # its share; the process's budget
(False, False)
>>> budget.give_back("ingest", 50); budget.take("reader", 20), budget.receiving
(True, 60)
>>> BodyBudget(total=10, key_share=10).take("web", 1000)  # alone: taken
True
"""

from __future__ import annotations

KEY_SHARE = 4  # one key may take a quarter of the process's budget


class BodyBudget:
    """Bytes of request bodies being received at once: ``total`` over every key, at most
    ``key_share`` for one (by default a quarter of the total)."""

    def __init__(self, total: int, key_share: int | None = None) -> None:
        self.total = total
        self.key_share = total // KEY_SHARE if key_share is None else key_share
        self.receiving = 0
        self._by_key: dict[str, int] = {}

    def has_room(self, key: str, size: int) -> bool:
        """Whether a body of ``size`` bytes sent with ``key`` could be received now
        (nothing taken: asked before a body is invited, ``Expect: 100-continue``)."""
        held = self._by_key.get(key, 0)
        if held and held + size > self.key_share:
            return False
        return not (self.receiving and self.receiving + size > self.total)

    def take(self, key: str, size: int) -> bool:
        """Whether a body of ``size`` bytes sent with ``key`` may be received now (then
        counted until :meth:`give_back`)."""
        if not self.has_room(key, size):
            return False
        self._by_key[key] = self._by_key.get(key, 0) + size
        self.receiving += size
        return True

    def give_back(self, key: str, size: int) -> None:
        """A body :meth:`take` counted has come whole, or will not."""
        self.receiving -= size
        left = self._by_key.pop(key) - size
        if left:
            self._by_key[key] = left
