"""The ``moments`` command: what each of its commands runs, and how it stops (its
options are in :mod:`streams.cli_arguments`)."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Sequence
from contextlib import nullcontext

from schemas import CatalogueError
from streams import lenient_records, logs
from streams.cli_arguments import parser
from streams.cli_processes import catalogue_hint, cmd_api, cmd_worker
from streams.cli_repairs import cmd_dead_letters, cmd_rebuild
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
