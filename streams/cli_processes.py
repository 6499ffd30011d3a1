"""``moments worker`` and ``moments api``, the long-running processes: what each runs,
after the checks of their local files (the catalogue, the worker's data folder)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from schemas import CatalogueError
from streams.listen_check import check_can_listen
from streams.settings import DEFAULT_CATALOGUE, Settings, SettingsError
from streams.startup_line import startup_line

log = logging.getLogger("moments")


def check_local_files(settings: Settings, data_dir: bool) -> None:
    """Before Kafka and Redis are used: the catalogue reads, and the worker's data folder
    can be made (else one line and exit 2, not a traceback after the topics were made)."""
    from schemas import load_catalogue

    try:
        load_catalogue(settings.catalogue_path)
    except CatalogueError as exc:  # named as the other settings are
        raise CatalogueError(f"MOMENTS_CATALOGUE_PATH: {exc}") from None
    if data_dir:
        folder = Path(settings.data_dir)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            why = "it is not a folder" if folder.exists() else exc.strerror
            raise SettingsError(f"MOMENTS_DATA_DIR: cannot use {folder}: {why}") from None


def catalogue_hint(settings: Settings, default: str = DEFAULT_CATALOGUE) -> str:
    """What to do when the default catalogue, a file of the repository, is not there (a
    Moments installed from its wheel): name your own."""
    if settings.catalogue_path != default or Path(default).exists():
        return ""
    return (
        " (MOMENTS_CATALOGUE_PATH is not set, and its default, the repository's"
        " deploy/catalogue/offers.toml, is not there: set it to your offer catalogue)"
    )


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    import faust

    from streams.app import create_app
    from streams.event_loop import loop_name, new_event_loop
    from streams.redis_checks import (
        check_layout_once_redis_answers,
        check_redis_layout,
        warn_about_redis_setup,
    )
    from streams.stop_watch import waiting_on
    from streams.topics import ensure_topics
    from streams.worker_stop import exit_when_stuck

    if hasattr(signal, "SIGHUP"):
        # until the worker reads the catalogue on SIGHUP (a task that starts once it has
        # joined its group, and then checks the file once): a SIGHUP meanwhile must not
        # end it, as its default would
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    loop = new_event_loop(settings.event_loop)
    asyncio.set_event_loop(loop)
    log.info("%s (event loop: %s)", startup_line("worker", settings), loop_name(loop))
    check_local_files(settings, data_dir=True)
    check_can_listen(settings.web_host, settings.web_port,
                     "MOMENTS_WEB_HOST / MOMENTS_WEB_PORT")  # fmt: skip
    loop.run_until_complete(ensure_topics(settings))
    loop.run_until_complete(warn_about_redis_setup(settings))
    # a worker has nothing to do until Redis answers: it waits longer for the check
    layout = loop.run_until_complete(
        check_redis_layout(settings, within_s=settings.redis_start_wait_s)
    )
    moments = create_app(settings)
    refusals: list[Exception] = []
    if layout == "unreachable":  # checked once Redis answers; stopped if it must not write

        def refused(exc: Exception) -> None:
            refusals.append(exc)
            os.kill(os.getpid(), signal.SIGTERM)  # stops as on SIGTERM: its work handed back

        @moments.app.task  # type: ignore[untyped-decorator]
        async def check_layout_late() -> None:
            await check_layout_once_redis_answers(settings, refused)

    # Moments' own log format and levels (logs.configure), not mode's, which dropped the
    # logger names; and no progress spinner, which wrote terminal codes into log files
    worker = faust.Worker(moments.app, loop=loop, loglevel=settings.log_level, quiet=True,
                          override_logging=False)  # fmt: skip
    worker.spinner = None
    # told to stop, it leaves within seconds even when one of Faust's services hangs (with
    # 1 when it stops for a crash, as Faust would)
    exit_when_stuck(lambda: bool(moments.app.should_stop),
                    lambda: 2 if refusals else 1 if worker.crash_reason else 0,
                    waiting_on=lambda: waiting_on(loop))  # fmt: skip
    try:
        worker.execute_from_commandline()
    except SystemExit:  # how the worker ends, however it stopped
        if refusals:
            return 2
        raise
    return 0


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    from streams.api.server import serve
    from streams.event_loop import loop_factory

    check_local_files(settings, data_dir=False)
    if hasattr(signal, "SIGHUP"):  # until the API reads the catalogue on it, once started
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # (its default would end the process)
    with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
        return runner.run(serve(settings))
