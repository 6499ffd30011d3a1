"""The ``moments`` command line: its commands and their options (``moments --help``).

Every option says what it is, its default and the values the command takes (the bounds
of ``simulate`` and ``demo`` from the constants they are checked against); ``worker``
and ``api``, which take none, say where their settings come from and how they exit.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import NoReturn

from streams import logs
from streams.cli_bounds import bounded, bounds

DESCRIPTION = (
    "Moments, real-time personalisation for CRM: worker, api, simulate, demo, rebuild, "
    "bench, evaluate, check-catalogue, lift and dead-letters (moments <command> --help)."
)

MIN_SIMULATED_RATE = 0.001  # events a second: one every quarter of an hour
MAX_SIMULATED_RATE = 100_000.0  # events a second: far beyond what one producer sends
MAX_SIMULATED_CUSTOMERS = 10_000_000  # each a few hundred bytes, all in memory
SIMULATED_RATES = f"from {MIN_SIMULATED_RATE:g} to {MAX_SIMULATED_RATE:,.0f}"
SIMULATED_CUSTOMERS = f"from 1 to {MAX_SIMULATED_CUSTOMERS:,}"
# moments bench: enough touchpoints that the baseline (some 33,000 a second on a two-core
# machine) takes a fraction of a second over them (decisions read in one batch time
# nothing: a division by zero), and no more than a pipeline some four times that
# machine's (1,080 a second there) decides in the 300 s its decisions are awaited; the
# paced touchpoints (rate x seconds, made in memory beforehand as --events are)
# 1,200,000 at the most
BENCH_EVENTS = (10_000, 500_000)
BENCH_RATE = (1.0, 10_000.0)  # touchpoints a second
BENCH_LATENCY_SECONDS = (1.0, 120.0)

DEFAULT = " (default: %(default)s)"  # an option's help ends with it, argparse fills it in

# what a long-running process's --help says of how it is configured and how it ends
SERVICE_EPILOG = (
    "It takes no options: its settings are MOMENTS_* environment variables (every one, "
    "its default and its bounds in docs/configuration.md). Exit 2 when a setting is "
    "refused (one line naming the variable), or Redis or the topics refuse it at start; "
    "3 when Kafka cannot be used at start. Ctrl-C or SIGTERM stops it cleanly, with 0 "
    "(130 if stopped before it was up)."
)
REBUILD_EPILOG = (
    "Exit 2 when it cannot start (the target holds Moments keys and --force was not "
    "given, erasures were lost to retention, a topic does not exist, the target Redis "
    "refuses it); 3 when Redis or Kafka cannot be reached at start (nothing written: run "
    "it again), or became unavailable on the way (run it again with --force); 130 when "
    "interrupted (run it again with --force)."
)


class _Parser(argparse.ArgumentParser):
    """With ``MOMENTS_LOG_FORMAT=json``, an argument refused is a log record, as a setting
    refused is, not text; exit 2 either way."""

    def error(self, message: str) -> NoReturn:
        if os.environ.get("MOMENTS_LOG_FORMAT") == "json":
            logs.configure("info", "json")
            logging.getLogger("moments").critical("%s: %s", self.prog, message)
            self.exit(2)
        super().error(message)


def _command(
    sub: argparse._SubParsersAction[_Parser], name: str, said: str, epilog: str | None = None
) -> _Parser:
    """A command, its one line in ``moments --help`` also the head of its own ``--help``."""
    return sub.add_parser(name, help=said, description=f"{said[0].upper()}{said[1:]}.",
                          epilog=epilog)  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="moments", description=DESCRIPTION)
    sub = p.add_subparsers(dest="command", required=True)
    _command(sub, "worker", "run a stream worker (settings from MOMENTS_* variables)",
             SERVICE_EPILOG)  # fmt: skip
    _command(sub, "api", "run the HTTP API (recommendations, ingestion, profiles, alerts)",
             SERVICE_EPILOG)  # fmt: skip
    sim = _command(sub, "simulate", "produce a simulated stream of customers to Kafka")
    sim.add_argument("--customers", type=int, default=1000,
                     help=f"customers simulated, {SIMULATED_CUSTOMERS}" + DEFAULT)  # fmt: skip
    sim.add_argument("--seed", type=int, default=7,
                     help="the same seed, the same customers" + DEFAULT)  # fmt: skip
    sim.add_argument("--rate", type=float, default=50.0,
                     help=f"touchpoints a second, {SIMULATED_RATES}" + DEFAULT)  # fmt: skip
    sim.add_argument("--count", type=int, default=None,
                     help="stop after this many touchpoints, 1 or more "
                     "(default: none)")  # fmt: skip
    sim.add_argument("--duration", type=float, default=None,
                     help="stop making touchpoints after this many seconds, above 0 "
                     "(default: none); with --respond, the answers to the last decisions "
                     "and the orders already due then follow, up to about 25 s more")  # fmt: skip
    sim.add_argument(
        "--respond", action="store_true",
        help="customers answer offers (outcomes), and some order after accepting",
    )  # fmt: skip
    demo = _command(
        sub, "demo", "start services, a worker, the API and the simulator; show decisions"
    )
    demo.add_argument("--duration", type=float, default=None,
                      help="seconds, above 0 (default: until Ctrl-C)")  # fmt: skip
    demo.add_argument("--rate", type=float, default=20.0,
                      help=f"touchpoints a second, {SIMULATED_RATES}" + DEFAULT)  # fmt: skip
    demo.add_argument("--customers", type=int, default=500,
                      help=f"customers simulated, {SIMULATED_CUSTOMERS}" + DEFAULT)  # fmt: skip
    rebuild = _command(sub, "rebuild", "replay the topics into an empty Redis", REBUILD_EPILOG)
    rebuild.add_argument("--redis-url", default=None,
                         help="the target Redis (default: MOMENTS_REDIS_URL)")  # fmt: skip
    rebuild.add_argument("--force", action="store_true",
                         help="even if the target holds Moments keys (what was applied "
                         "counts once)")  # fmt: skip
    rebuild.add_argument(
        "--accept-lost-erasures", action="store_true",
        help="even if retention deleted old erasure records (erased customers may return)",
    )  # fmt: skip
    bench = _command(
        sub, "bench",
        "the pipeline, the store, the HTTP API, model snapshots and offer ranking, "
        "each beside a baseline; Redis memory per customer",
    )  # fmt: skip
    bench.add_argument("--events", type=bounded(int, *BENCH_EVENTS, "whole number"),
                       default=20000, help="touchpoints through the pipeline and the "
                       f"store, {bounds(*BENCH_EVENTS)}" + DEFAULT)  # fmt: skip
    bench.add_argument("--rate", type=bounded(float, *BENCH_RATE, "number"), default=200.0,
                       help="offered load for latency, touchpoints a second, "
                       f"{bounds(*BENCH_RATE)}" + DEFAULT)  # fmt: skip
    bench.add_argument("--latency-seconds", type=bounded(float, *BENCH_LATENCY_SECONDS, "number"),
                       default=15.0, help="how long the latency is measured at that load, "
                       f"{bounds(*BENCH_LATENCY_SECONDS)}" + DEFAULT)  # fmt: skip
    bench.add_argument(
        "--only",
        action="append",
        choices=("pipeline", "store", "scale", "http", "snapshots", "ranking", "sizing"),
        help="run only this section (repeatable; default: all)",
    )
    bench.add_argument(
        "--against", type=_source_tree, metavar="DIR",
        help="with the http section: pace this API and the one of the Moments source tree "
        "in DIR (a checkout of another commit) in turn, ten rounds, and report both",
    )  # fmt: skip
    ev = _command(sub, "evaluate", "learned vs random vs oracle policy, in-process benchmark")
    ev.add_argument("--decisions", type=int, default=50_000,
                    help="in all, warm-up included, more than --warmup" + DEFAULT)  # fmt: skip
    ev.add_argument("--warmup", type=int, default=5_000,
                    help="decisions learned but not counted, 0 or more" + DEFAULT)  # fmt: skip
    ev.add_argument("--seed", type=int, default=7,
                    help="the same seed, the same run; 0 or more" + DEFAULT)  # fmt: skip
    ev.add_argument("--customers", type=int, default=2_000,
                    help="customers simulated, 1 or more" + DEFAULT)  # fmt: skip
    ev.add_argument("--alpha", type=float, default=0.3,
                    help="LinUCB exploration bonus, 0 or more" + DEFAULT)  # fmt: skip
    ev.add_argument("--epsilon", type=float, default=0.05,
                    help="random first-offer share, from 0 to 1" + DEFAULT)  # fmt: skip
    ev.add_argument("--optimism", type=float, default=0.2,
                    help="share of decisions ranked by the upper confidence bound, from 0 "
                    "to 1" + DEFAULT)  # fmt: skip
    ev.add_argument("--outcome-delay", type=int, default=0,
                    help="decisions between an offer shown and its outcome learned, 0 or "
                    "more" + DEFAULT)  # fmt: skip
    check = _command(sub, "check-catalogue", "validate an offer catalogue and summarise it",
                     "Exit 2 when the catalogue is refused, naming the fault.")  # fmt: skip
    check.add_argument("path", nargs="?", default=None,
                       help="the catalogue (default: MOMENTS_CATALOGUE_PATH)")  # fmt: skip
    check.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    lift = _command(sub, "lift", "conversion and revenue: treated vs the control group")
    lift.add_argument("--window", default="7d",
                      help="a purchase converts within this: a number and d, h, m or s "
                      "(7d, 36h, 90m, 30s), above 0" + DEFAULT)  # fmt: skip
    lift.add_argument(
        "--days", type=float, default=None,
        help="days of first decisions, above 0, back from --until or forward from --since "
        "(default: 28 back, or from --since up to now less the window)",
    )  # fmt: skip
    lift.add_argument("--since", default=None,
                      help="first decisions from (ISO date/time, UTC without an offset; "
                      "default: --days back from --until)")  # fmt: skip
    lift.add_argument("--until", default=None,
                      help="up to (ISO date/time, UTC without an offset; "
                      "default: now less the window)")  # fmt: skip
    lift.add_argument("--interventions", action="store_true",
                      help="the interventions' hold-out group instead of the offers'")  # fmt: skip
    letters = _command(
        sub, "dead-letters", "what the dead-letter topics hold; --redrive sends them back"
    )
    letters.add_argument(
        "--source", action="append", choices=("touchpoints", "offer-outcomes"),
        help="only letters from this topic (repeatable; default: both)",
    )  # fmt: skip
    letters.add_argument("--reason", default="",
                         help="only reasons containing this text (default: any)")  # fmt: skip
    letters.add_argument("--since", default=None,
                         help="dead-lettered from (ISO date/time, UTC without an offset; "
                         "default: the oldest letter kept)")  # fmt: skip
    letters.add_argument("--until", default=None,
                         help="up to, not included (ISO date/time, UTC without an offset; "
                         "default: the newest letter)")  # fmt: skip
    letters.add_argument("--redrive", action="store_true",
                         help="send the matching letters back to their source topics")  # fmt: skip
    letters.add_argument("--again", action="store_true",
                         help="with --redrive: also those sent back before")  # fmt: skip
    letters.add_argument(
        "--accept-lost-erasures", action="store_true",
        help="with --redrive: even if retention deleted old erasure records (letters of "
        "customers erased then may be sent back)",
    )  # fmt: skip
    return p


def _source_tree(raw: str) -> Path:
    """``--against``: a Moments source tree (see :func:`streams.bench_side_by_side.source_tree`)."""
    from streams.bench_side_by_side import source_tree

    try:
        return source_tree(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
