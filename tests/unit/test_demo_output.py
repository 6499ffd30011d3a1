"""What ``moments demo`` prints of its services: no raw log line before its banner (it
printed "INFO streams.topics: created topics ..." first), and, with
MOMENTS_KEEP_SERVICE_DATA, the folder it keeps (it kept it without saying where)."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import streams.services as services_module
from streams import demo
from streams.services import Services


class Made(Exception):
    """The demo stopped once its topics were made: the rest needs real services."""


def test_the_topics_made_are_said_in_the_banner_not_in_a_log_line_before_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    @contextlib.contextmanager
    def found() -> Iterator[Services]:
        yield Services("127.0.0.1:1", "redis://127.0.0.1:2/0", "environment")

    async def ensure_topics(settings: Any) -> list[str]:
        logging.getLogger("streams.topics").info("created topics %s", "touchpoints")
        raise Made

    monkeypatch.setattr(demo, "services", found)
    monkeypatch.setattr(demo, "ensure_topics", ensure_topics)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    caplog.set_level(logging.INFO)
    with pytest.raises(Made):
        demo.run_demo(duration_s=1.0, rate=1.0, customers=1)
    assert not [r for r in caplog.records if "created topics" in r.getMessage()]
    assert logging.getLogger("streams.topics").level == logging.NOTSET  # as it was
    with caplog.at_level(logging.DEBUG), pytest.raises(Made):  # asked for: it is logged
        demo.run_demo(duration_s=1.0, rate=1.0, customers=1)
    assert [r for r in caplog.records if "created topics" in r.getMessage()]

    svc = Services("127.0.0.1:1", "redis://127.0.0.1:2/0", "local")
    lines = demo._services_lines(svc, ["a", "b"])
    assert lines.splitlines()[0] == "  Kafka      127.0.0.1:1  (2 topics made)"
    assert "data" not in lines


class Stand:
    """Stands in for a local Kafka or Redis: nothing to start; how it ended is kept."""

    ended: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, folder: Path) -> None:
        self.bootstrap = self.url = str(folder)
        self.name = folder.name

    def start(self) -> None: ...

    def stop(self) -> None:
        self.ended.append((self.name, "stopped"))

    def kill(self) -> None:
        self.ended.append((self.name, "killed"))


@pytest.mark.parametrize("keep", ["yes", ""])
def test_the_services_folder_kept_is_named(
    keep: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOMENTS_KEEP_SERVICE_DATA", keep)
    monkeypatch.setattr(services_module, "LocalKafka", Stand)
    monkeypatch.setattr(services_module, "LocalRedis", Stand)
    monkeypatch.setattr(Stand, "ended", [])
    with services_module._local(tmp_path) as svc:
        (folder,) = tmp_path.iterdir()
        banner = demo._services_lines(svc, [])
    # data thrown away: Kafka need not close its partitions first (seconds, with many)
    assert Stand.ended == [("kafka", "stopped" if keep else "killed"), ("redis", "stopped")]
    if keep:
        assert svc.kept == folder and folder.is_dir()
        assert f"  data       {folder}  (kept: MOMENTS_KEEP_SERVICE_DATA)" in banner
    else:
        assert svc.kept is None and not folder.exists() and "data" not in banner
