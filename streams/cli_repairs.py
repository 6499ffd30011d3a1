"""``moments rebuild`` and ``moments dead-letters``: the commands that mend Moments' store
from its topics (a Redis rebuilt from them; the letters refused, inspected and sent back),
each stopped by SIGTERM as by Ctrl-C, saying what it leaves."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any

from streams.settings import Settings, SettingsError
from streams.stop_line import stopped


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka.errors import KafkaError

    from feature_store import StoreUnavailable
    from streams.configured import build_store
    from streams.kafka_security import connection_trouble
    from streams.rebuild import rebuild
    from streams.rebuild_report import RebuildError, TargetUnreachable

    if args.redis_url is not None:  # checked as MOMENTS_REDIS_URL is
        try:
            settings.replace(redis_url=args.redis_url).validate()
        except SettingsError as exc:
            said = str(exc).removeprefix("MOMENTS_REDIS_URL: ")
            said = said.replace("MOMENTS_REDIS_URL", "it")
            stopped(f"--redis-url: {said}", settings, "moments rebuild")
            return 2

    async def run() -> int:
        # a Job's or a unit's stop (SIGTERM) ends it as Ctrl-C does, saying what it leaves,
        # at once: a round trip under way may wait out its timeout before a cancel lands
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, _terminated, settings)
        store = build_store(settings, redis_url=args.redis_url)
        try:
            report = await rebuild(settings, store, force=args.force,
                                   accept_lost_erasures=args.accept_lost_erasures)  # fmt: skip
        except TargetUnreachable as exc:  # as Kafka unreachable at start: try again later
            stopped(f"{exc}; nothing was written: run it again once Redis answers",
                    settings, "moments rebuild")  # fmt: skip
            return 3
        except RebuildError as exc:
            stopped(str(exc), settings, "moments rebuild")
            return 2
        except StoreUnavailable as exc:
            stopped(f"Redis became unavailable ({exc}); the target holds part of the "
                    "rebuild: once Redis answers, run it again with --force (what was "
                    "applied counts once)", settings, "moments rebuild")  # fmt: skip
            return 3
        except KafkaError as exc:
            stopped(f"{connection_trouble(settings, exc)}; if it failed on the way, the "
                    "target holds part of the rebuild: once Kafka answers, run it again "
                    "with --force (what was applied counts once)",
                    settings, "moments rebuild")  # fmt: skip
            return 3
        finally:
            await store.close()
        print(report.summary())
        if report.dead_letters_lost:
            stopped(f"{settings.topic('touchpoints-dlq')} no longer holds its oldest "
                    "letters: touchpoints the live pipeline refused then for another reason "
                    "than their form (dated too far ahead, a failed update) were applied; "
                    "keep it as long as touchpoints", settings, "moments rebuild",
                    logging.WARNING)  # fmt: skip
        return 0

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        stopped(REBUILD_INTERRUPTED, settings, "moments rebuild")
        return 130


REBUILD_INTERRUPTED = (
    "interrupted; if it had begun replaying, the target holds part of the rebuild: run it "
    "again on the same target with --force (what was applied counts once)"
)


def _terminated(settings: Settings) -> None:
    stopped(REBUILD_INTERRUPTED, settings, "moments rebuild")
    sys.stderr.flush()
    os._exit(130)


def cmd_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from streams.dead_letter_tool import RedriveHeld, RedriveRefused, inspect
    from streams.dead_letters import LetterFilter
    from streams.lift_report import instant

    try:
        since, until = (None if t is None else int(instant(t).timestamp() * 1000)
                        for t in (args.since, args.until))  # fmt: skip
    except ValueError as exc:
        stopped(str(exc), settings, "moments dead-letters")
        return 2
    refused = [said for bad, said in (
        (args.again and not args.redrive, "--again goes with --redrive"),
        (args.accept_lost_erasures and not args.redrive,
         "--accept-lost-erasures goes with --redrive"),
        (since is not None and until is not None and since >= until,
         "--since must come before --until"),
    ) if bad]  # fmt: skip
    if refused:
        stopped(refused[0], settings, "moments dead-letters")
        return 2
    sources = frozenset(settings.topic(s) for s in args.source or ())
    wanted = LetterFilter(sources, args.reason, since, until)

    async def run() -> dict[str, Any]:
        # a Job's or a unit's stop (SIGTERM) ends it as Ctrl-C does: the batch under way
        # is recorded as far as it went, and it says how many letters went back
        main = asyncio.current_task()
        assert main is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
        return await inspect(settings, wanted, redrive=args.redrive, again=args.again,
                             accept_lost_erasures=args.accept_lost_erasures)  # fmt: skip

    try:
        report = asyncio.run(run())
    except RedriveRefused as exc:
        stopped(str(exc), settings, "moments dead-letters")
        return 2
    except RedriveHeld as exc:  # as Kafka unreachable: run it again once Redis answers
        stopped(str(exc), settings, "moments dead-letters")
        return 3
    except asyncio.CancelledError:  # SIGTERM (Ctrl-C comes as KeyboardInterrupt: 130 too)
        return 130
    print(json.dumps(report, indent=2))
    return 0
