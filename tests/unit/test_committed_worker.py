"""Every Kafka consumer of Moments reads committed records: the worker's, which Faust
builds, through :mod:`streams.committed_worker`, and each one Moments builds itself by
passing the isolation level (an aborted transaction's touchpoints and outcomes were
applied and learned)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer

from streams.committed_reads import READ_COMMITTED
from streams.committed_worker import use_committed_reads

STREAMS = Path(__file__).resolve().parents[2] / "streams"


def _worker_consumer(app: Any) -> Any:
    """The ``AIOKafkaConsumer`` a worker of ``app`` would start (not started here)."""
    thread = app.consumer._new_consumer_thread()
    return thread._create_worker_consumer(app.transport)


def _app() -> Any:
    return faust.App("committed-test", broker="kafka://127.0.0.1:1", autodiscover=False)


async def test_the_worker_consumer_reads_committed() -> None:
    app = _app()
    use_committed_reads(app)
    consumer = _worker_consumer(app)
    assert consumer._isolation_level == READ_COMMITTED


async def test_faust_alone_reads_uncommitted() -> None:
    """Why :func:`use_committed_reads` is there: should Faust read committed by itself one
    day, this fails, and the module can go."""
    assert _worker_consumer(_app())._isolation_level == "read_uncommitted"


def test_aiokafka_starts_its_fetcher_with_the_level_set() -> None:
    """What :func:`streams.committed_worker.read_committed` relies on."""
    assert "isolation_level=self._isolation_level" in inspect.getsource(AIOKafkaConsumer.start)


def _consumers_built() -> list[tuple[str, ast.Call]]:
    found = []
    for path in sorted(STREAMS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "AIOKafkaConsumer":
                found.append((f"{path.relative_to(STREAMS)}:{node.lineno}", node))
    return found


def test_every_consumer_moments_builds_reads_committed() -> None:
    built = _consumers_built()
    assert len(built) >= 8  # the learners', the replays', the alert reader's, ...
    for where, call in built:
        levels = [k.value for k in call.keywords if k.arg == "isolation_level"]
        assert len(levels) == 1, f"{where}: no isolation_level"
        assert getattr(levels[0], "id", None) == "READ_COMMITTED", where
