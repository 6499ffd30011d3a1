"""The ``moments`` command: what each of its commands runs, and how it stops (its
options are in :mod:`streams.cli_arguments`)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

from schemas import CatalogueError
from streams import lenient_records, logs
from streams.cli_arguments import parser
from streams.cli_processes import catalogue_hint, cmd_api, cmd_worker
from streams.cli_simulation import cmd_demo, cmd_simulate
from streams.moments_command import started
from streams.services.processes import terminated_like_ctrl_c
from streams.settings import Settings, SettingsError
from streams.stop_line import stopped

log = logging.getLogger("moments")
STARTING = ("worker", "api")  # long-running: SIGTERM while they start is a Ctrl-C
# SIGTERM stops these as Ctrl-C does, once their own handling is set (the console
# script's does so while their modules import)
STOPPED_LIKE_CTRL_C = (*STARTING, "demo", "bench", "rebuild")


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka.errors import KafkaError

    from feature_store import StoreUnavailable
    from streams.app import build_store
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


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from streams.bench import SECTIONS, run_bench

    sections = tuple(args.only) if args.only else SECTIONS
    if args.against is not None and "http" not in sections:
        stopped("--against goes with the http section", settings, "moments bench")
        return 2
    return run_bench(args.events, args.rate, args.latency_seconds, sections, args.against)


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from streams.evaluate import EvaluationConfig, run_evaluation

    refused = [said for bad, said in (
        (not 0 <= args.warmup < args.decisions, "need 0 <= --warmup < --decisions"),
        (not 0 <= args.epsilon <= 1, "--epsilon is a share of decisions, from 0 to 1"),
        (not 0 <= args.optimism <= 1, "--optimism is a share of decisions, from 0 to 1"),
        (args.outcome_delay < 0, "--outcome-delay must be 0 or more"),
        (not 0 <= args.alpha < float("inf"), "--alpha (the exploration bonus) must be 0 "
         "or more, and finite"),
        (args.customers < 1, "--customers must be at least 1"),
        (args.seed < 0, "--seed must be 0 or more"),
    ) if bad]  # fmt: skip
    if refused:
        stopped(refused[0], settings, "moments evaluate")
        return 2
    config = EvaluationConfig(
        decisions=args.decisions,
        warmup=args.warmup,
        seed=args.seed,
        customers=args.customers,
        alpha=args.alpha,
        epsilon=args.epsilon,
        optimism=args.optimism,
        outcome_delay=args.outcome_delay,
        control_percent=settings.control_percent,
        control_salt=settings.control_salt,
        catalogue_path=settings.catalogue_path,
    )
    print(json.dumps(run_evaluation(config), indent=2))
    return 0


def cmd_check_catalogue(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime

    from schemas import load_catalogue
    from streams.catalogue_check import catalogue_report

    catalogue = load_catalogue(args.path or settings.catalogue_path)  # refused: exit 2
    summary, warnings = catalogue_report(catalogue, datetime.now(UTC))
    print("\n".join(summary))
    for warning in warnings:
        print(f"warning: {warning}")
    return 1 if warnings and args.strict else 0


def cmd_lift(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import json
    from datetime import UTC, datetime

    from streams.lift_report import chosen_period, duration, instant, measure_lift

    now = datetime.now(UTC)
    try:
        since, until = (None if t is None else instant(t) for t in (args.since, args.until))
        period = chosen_period(now, duration(args.window), args.days, since, until)
    except ValueError as exc:
        stopped(str(exc), settings, "moments lift")
        return 2
    except OverflowError:  # a window or a number of days past what a date can hold
        stopped("--window or --days reaches past the dates a calendar holds", settings,
                "moments lift")  # fmt: skip
        return 2
    measured = measure_lift(settings, period, now, interventions=args.interventions)
    report = asyncio.run(measured)
    print(json.dumps(report, indent=2))
    for topic, whole_from in report["cut_by_retention"].items():
        stopped(f"retention has deleted records of {topic} that may fall in the period (it "
                f"is whole from {whole_from}): what happened before then may be missing from "
                "this report", settings, "moments lift", logging.WARNING)  # fmt: skip
    return 0


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


COMMANDS = {
    "worker": cmd_worker,
    "api": cmd_api,
    "simulate": cmd_simulate,
    "demo": cmd_demo,
    "rebuild": cmd_rebuild,
    "bench": cmd_bench,
    "evaluate": cmd_evaluate,
    "check-catalogue": cmd_check_catalogue,
    "lift": cmd_lift,
    "dead-letters": cmd_dead_letters,
}


# the commands that use the configured Kafka (MOMENTS_KAFKA_* settings)
ON_CONFIGURED_KAFKA = ("worker", "api", "simulate", "rebuild", "lift", "dead-letters")
ONE_SHOT = ("rebuild", "lift", "dead-letters")  # read the topics once, print, and end
REPORTS = (*ONE_SHOT, "check-catalogue", "evaluate", "bench")  # what they print is the point


def main(argv: Sequence[str] | None = None) -> int:
    from aiokafka.errors import KafkaError

    from feature_store import LayoutMismatch, SecretMismatch
    from streams.event_loop import EventLoopError
    from streams.kafka_security import connection_trouble, use_settings
    from streams.services.processes import ServiceError
    from streams.topic_replay import TopicMissing
    from streams.topics import TopicsRefused

    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        use_settings(settings)  # the Kafka clients' TLS and SASL (its files read now)
    except SettingsError as exc:
        if os.environ.get("MOMENTS_LOG_FORMAT") == "json":  # as asked, though refused
            logs.configure("info", "json")
            log.critical("%s", exc)
        else:
            print(f"moments: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if args.command in ONE_SHOT:
        logs.quiet_kafka_clients()
    lenient_records.install()  # a header name that is not UTF-8 must not stall a partition
    if args.command not in STOPPED_LIKE_CTRL_C:
        started()  # SIGTERM as it was: the console script's lasted while modules imported
    # a worker or the API stops as on Ctrl-C while it starts (its modules importing,
    # waiting for Redis), until its own handlers take SIGTERM over: Faust's, or the API's
    # loop's once it listens
    starting = terminated_like_ctrl_c() if args.command in STARTING else nullcontext()
    try:
        with starting:
            return COMMANDS[args.command](args, settings)
    except CatalogueError as exc:
        named = getattr(args, "path", None)  # check-catalogue PATH: the user's own file
        stopped(f"{exc}{'' if named else catalogue_hint(settings)}", settings)
        return 2
    except (SettingsError, TopicMissing, TopicsRefused, LayoutMismatch, SecretMismatch,
            EventLoopError) as exc:  # fmt: skip
        stopped(str(exc), settings)
        return 2
    except KafkaError as exc:  # at start: the broker cannot be reached, or refused us
        if args.command not in ON_CONFIGURED_KAFKA:  # demo and bench start their own
            raise
        log.debug("Kafka could not be used", exc_info=True)
        stopped(connection_trouble(settings, exc), settings)
        return 3
    except ServiceError as exc:  # demo and bench: Kafka or Redis of their own did not start
        stopped(str(exc), settings)
        return 3
    except KeyboardInterrupt:
        if args.command in STARTING:  # up, they stop on their own, with 0
            log.info("Moments %s stopped while it started", args.command)
        return 130
    except ImportError as exc:  # the stop landed in an extension's set-up (scipy's)
        if not isinstance(exc.__context__, KeyboardInterrupt):
            raise
        if args.command in STARTING:
            log.info("Moments %s stopped while it started", args.command)
        return 130
    except BrokenPipeError:  # its reader went (| head): the rest is not wanted
        if args.command not in REPORTS:  # a worker's or the API's own: not its output
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error
        return 1
    except OSError as exc:
        if exc.errno != errno.ENOSPC or args.command not in REPORTS:
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"moments: could not write its output: {exc.strerror}", file=sys.stderr)
        return 1
    finally:
        started()  # for what is left of its exit


if __name__ == "__main__":
    sys.exit(main())
