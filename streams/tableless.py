"""Faust's table manager for an app with no tables, as Moments' workers are (their state
is in Redis): Faust's own waits a second at every start, before it subscribes, for the
tables agents declare as they start; with none to wait for, the worker joins its group a
second sooner. It relies on Faust's ``_update_channels`` (the version is pinned in
``constraints.txt``); ``tests/unit/test_tableless.py`` fails if Faust's start changes. A
table declared anyway is refused, loudly (Faust: "Too late to add tables at this point").
"""

from __future__ import annotations

from faust.tables import TableManager


class TablelessManager(TableManager):
    """Faust's :class:`~faust.tables.TableManager`, without the second's wait at start."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()  # no table: the subscription is final at once
            await self.recovery.start()
