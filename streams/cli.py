"""The ``moments`` command: which runner each of its commands has, and how it stops (its
options are in :mod:`streams.cli_arguments`; the runners, by kind, in
:mod:`streams.cli_processes`, :mod:`streams.cli_simulation`, :mod:`streams.cli_repairs`
and :mod:`streams.cli_reports`)."""

from __future__ import annotations

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
from streams.cli_reports import cmd_bench, cmd_check_catalogue, cmd_evaluate, cmd_lift
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
