"""``moments bench``, ``evaluate``, ``check-catalogue`` and ``lift``: the commands whose
report is the point (of speed, of the policy offline, of a catalogue, of the lift
measured on the topics), once their options are checked."""

from __future__ import annotations

import argparse
import logging

from streams.settings import Settings
from streams.stop_line import stopped


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
