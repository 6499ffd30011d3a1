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
VISITOR_SHARE = 16  # one visitor of a page key a sixteenth of its key's share


class BodyBudget:
    """Bytes of request bodies being received at once: ``total`` over every key, at most
    ``key_share`` for one (by default a quarter of the total)."""

    def __init__(self, total: int, key_share: int | None = None) -> None:
        self.total = total
        self.key_share = total // KEY_SHARE if key_share is None else key_share
        self.visitor_share = self.key_share // VISITOR_SHARE
        self.receiving = 0
        self._by_key: dict[str, int] = {}
        self._by_visitor: dict[tuple[str, str], int] = {}

    def has_room(self, key: str, size: int, visitor: str | None = None) -> bool:
        """Whether a body of ``size`` bytes sent with ``key`` (by ``visitor`` of a page
        key) could be received now (nothing taken: asked before a body is invited,
        ``Expect: 100-continue``)."""
        if visitor is not None:
            mine = self._by_visitor.get((key, visitor), 0)
            if mine and mine + size > self.visitor_share:
                return False
        held = self._by_key.get(key, 0)
        if held and held + size > self.key_share:
            return False
        return not (self.receiving and self.receiving + size > self.total)

    def take(self, key: str, size: int, visitor: str | None = None) -> bool:
        """Whether a body of ``size`` bytes sent with ``key`` may be received now (then
        counted until :meth:`give_back`)."""
        if not self.has_room(key, size, visitor):
            return False
        if visitor is not None:
            mine = (key, visitor)
            self._by_visitor[mine] = self._by_visitor.get(mine, 0) + size
        self._by_key[key] = self._by_key.get(key, 0) + size
        self.receiving += size
        return True

    def give_back(self, key: str, size: int, visitor: str | None = None) -> None:
        """A body :meth:`take` counted has come whole, or will not."""
        if visitor is not None:
            left = self._by_visitor.pop((key, visitor)) - size
            if left:
                self._by_visitor[(key, visitor)] = left
        self.receiving -= size
        left = self._by_key.pop(key) - size
        if left:
            self._by_key[key] = left
