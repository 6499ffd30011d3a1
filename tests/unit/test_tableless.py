"""The worker's Faust app starts its table manager without Faust's second's wait for
tables (Moments keeps none): the worker joins its group a second sooner."""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.tables import TableManager

from streams import app as worker_app
from streams.settings import Settings
from streams.tableless import TablelessManager


async def test_the_tableless_manager_starts_at_once_and_registers_no_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = faust.App("tableless-test", broker="kafka://127.0.0.1:1", autodiscover=False,
                    TableManager=TablelessManager)  # fmt: skip
    manager = app.tables
    assert isinstance(manager, TablelessManager)
    recovered: list[bool] = []

    async def recovery_started() -> None:
        recovered.append(True)

    monkeypatch.setattr(manager.recovery, "start", recovery_started)
    # the consumer is not started here: nothing assigned, nothing to pause
    monkeypatch.setattr(app.consumer, "assignment", set)
    monkeypatch.setattr(app.consumer, "pause_partitions", lambda partitions: None)
    started = time.monotonic()
    await manager.on_start()
    assert time.monotonic() - started < 0.5  # Faust's own waits 1 s
    assert recovered == [True]
    assert manager._tables_registered.is_set()  # what the conductor waits for
    with pytest.raises(RuntimeError, match="Too late to add tables"):  # none, loudly
        app.Table("late")


def test_faust_starts_its_manager_as_the_tableless_one_does_after_a_second() -> None:
    """What :class:`TablelessManager` copies of Faust's start, less the wait: should a
    Faust upgrade change it, this fails."""
    source = inspect.getsource(TableManager.on_start)
    body = [line.strip() for line in source.splitlines()[2:] if line.strip()]
    assert body == [
        "await self.sleep(1.0)",
        "if not self.should_stop:",
        "await self._update_channels()",
        "await self.recovery.start()",
    ], body


def test_the_worker_app_uses_it(tmp_path: Path) -> None:
    moments: Any = worker_app.create_app(Settings(data_dir=str(tmp_path)))
    assert isinstance(moments.app.tables, TablelessManager)
