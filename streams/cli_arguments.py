"""The ``moments`` command line: its commands and their options (``moments --help``)."""

from __future__ import annotations

import argparse
import logging
import os
from typing import NoReturn

from streams import logs

DESCRIPTION = (
    "Moments, real-time personalisation for CRM: worker, api, simulate, demo, rebuild, "
    "bench, evaluate, check-catalogue, lift and dead-letters (moments <command> --help)."
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


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="moments", description=DESCRIPTION)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run a stream worker (settings from MOMENTS_* variables)")
    sub.add_parser("api", help="run the HTTP API (recommendations, ingestion, profiles, alerts)")
    sim = sub.add_parser("simulate", help="produce a simulated stream of customers to Kafka")
    sim.add_argument("--customers", type=int, default=1000)
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--rate", type=float, default=50.0, help="events per second")
    sim.add_argument("--count", type=int, default=None, help="stop after this many events")
    sim.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    sim.add_argument(
        "--respond", action="store_true",
        help="customers answer offers (outcomes), and some order after accepting",
    )  # fmt: skip
    demo = sub.add_parser(
        "demo", help="start services, a worker, the API and the simulator; show decisions"
    )
    demo.add_argument("--duration", type=float, default=None, help="seconds (default: until ^C)")
    demo.add_argument("--rate", type=float, default=20.0)
    demo.add_argument("--customers", type=int, default=500)
    rebuild = sub.add_parser("rebuild", help="replay the topics into an empty Redis")
    rebuild.add_argument("--redis-url", default=None, help="target (default MOMENTS_REDIS_URL)")
    rebuild.add_argument("--force", action="store_true", help="even if the target has keys")
    rebuild.add_argument(
        "--accept-lost-erasures", action="store_true",
        help="even if retention deleted old erasure records (erased customers may return)",
    )  # fmt: skip
    bench = sub.add_parser(
        "bench",
        help="the pipeline, the store, the HTTP API, model snapshots and offer ranking, "
        "each beside a baseline; Redis memory per customer",
    )
    bench.add_argument("--events", type=int, default=20000)
    bench.add_argument("--rate", type=float, default=200.0, help="offered load for latency")
    bench.add_argument("--latency-seconds", type=float, default=15.0)
    bench.add_argument(
        "--only",
        action="append",
        choices=("pipeline", "store", "scale", "http", "snapshots", "ranking", "sizing"),
        help="run only this section (repeatable); default: all",
    )
    ev = sub.add_parser("evaluate", help="learned vs random vs oracle policy, in-process benchmark")
    ev.add_argument("--decisions", type=int, default=50_000, help="in all, warm-up included")
    ev.add_argument("--warmup", type=int, default=5_000, help="decisions learned but not counted")
    ev.add_argument("--seed", type=int, default=7)
    ev.add_argument("--customers", type=int, default=2_000)
    ev.add_argument("--alpha", type=float, default=0.3, help="LinUCB exploration bonus")
    ev.add_argument("--epsilon", type=float, default=0.05, help="random first-offer share")
    ev.add_argument("--optimism", type=float, default=0.2,
                    help="share of decisions ranked by the upper confidence bound")  # fmt: skip
    ev.add_argument("--outcome-delay", type=int, default=0,
                    help="decisions between an offer shown and its outcome learned")  # fmt: skip
    check = sub.add_parser("check-catalogue", help="validate an offer catalogue and summarise it")
    check.add_argument("path", nargs="?", default=None, help="default: MOMENTS_CATALOGUE_PATH")
    check.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    lift = sub.add_parser("lift", help="conversion and revenue: treated vs the control group")
    lift.add_argument("--window", default="7d", help="a purchase converts within this (7d)")
    lift.add_argument(
        "--days", type=float, default=None,
        help="days of first decisions, back from --until (28) or from --since "
        "(default: up to now less the window)",
    )  # fmt: skip
    lift.add_argument("--since", default=None, help="first decisions from (ISO date/time)")
    lift.add_argument("--until", default=None, help="up to (default: now less the window)")
    lift.add_argument("--interventions", action="store_true",
                      help="the interventions' hold-out group instead of the offers'")  # fmt: skip
    letters = sub.add_parser(
        "dead-letters", help="what the dead-letter topics hold; --redrive sends them back"
    )
    letters.add_argument(
        "--source", action="append", choices=("touchpoints", "offer-outcomes"),
        help="only letters from this topic (repeatable); default: both",
    )  # fmt: skip
    letters.add_argument("--reason", default="", help="only reasons containing this text")
    letters.add_argument("--since", default=None, help="dead-lettered from (ISO date/time)")
    letters.add_argument("--until", default=None, help="up to, not included")
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
