"""The ``moments`` command: worker, simulate, demo, bench."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from schemas import CatalogueError
from streams.settings import Settings, SettingsError

log = logging.getLogger("moments")


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    import faust

    from streams.app import create_app
    from streams.topics import ensure_topics

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(settings))
    moments = create_app(settings)
    worker = faust.Worker(moments.app, loop=loop, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    from streams.api.server import serve

    asyncio.run(serve(settings))
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from streams.simulation.producer import simulate
    from streams.topics import TOUCHPOINTS, ensure_topics

    async def run() -> None:
        await ensure_topics(settings)
        result = await simulate(
            settings.kafka_bootstrap,
            settings.topic(TOUCHPOINTS),
            customers=args.customers,
            seed=args.seed,
            rate=args.rate,
            count=args.count,
            duration_s=args.duration,
        )
        log.info("sent %d touchpoints in %.1fs", result.sent, result.seconds)

    asyncio.run(run())
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from streams.demo import run_demo

    return run_demo(duration_s=args.duration, rate=args.rate, customers=args.customers)


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from streams.app import build_store
    from streams.rebuild import RebuildError, rebuild

    async def run() -> int:
        store = build_store(settings, redis_url=args.redis_url)
        try:
            report = await rebuild(settings, store, force=args.force)
        except RebuildError as exc:
            print(f"moments rebuild: {exc}", file=sys.stderr)
            return 2
        finally:
            await store.close()
        print(
            f"rebuilt from {report.touchpoints} touchpoints ({report.applied} applied, "
            f"{report.skipped_invalid} invalid skipped) and {report.decisions} decisions "
            f"in {report.seconds:.1f}s"
        )
        return 0

    return asyncio.run(run())


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from streams.bench import run_bench

    return run_bench(events=args.events, rate=args.rate, latency_seconds=args.latency_seconds)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="moments", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run a stream worker (settings from MOMENTS_* variables)")
    sub.add_parser("api", help="run the HTTP API (recommendations, ingestion, profiles, alerts)")
    sim = sub.add_parser("simulate", help="produce a simulated stream of customers to Kafka")
    sim.add_argument("--customers", type=int, default=1000)
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--rate", type=float, default=50.0, help="events per second")
    sim.add_argument("--count", type=int, default=None, help="stop after this many events")
    sim.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    demo = sub.add_parser("demo", help="start services, a worker and the simulator; show decisions")
    demo.add_argument("--duration", type=float, default=None, help="seconds (default: until ^C)")
    demo.add_argument("--rate", type=float, default=20.0)
    demo.add_argument("--customers", type=int, default=500)
    rebuild = sub.add_parser("rebuild", help="replay the topics into an empty Redis")
    rebuild.add_argument("--redis-url", default=None, help="target (default MOMENTS_REDIS_URL)")
    rebuild.add_argument("--force", action="store_true", help="even if the target has keys")
    bench = sub.add_parser("bench", help="measure the pipeline against a plain aiokafka loop")
    bench.add_argument("--events", type=int, default=20000)
    bench.add_argument("--rate", type=float, default=200.0, help="offered load for latency")
    bench.add_argument("--latency-seconds", type=float, default=15.0)
    return p


COMMANDS = {
    "worker": cmd_worker,
    "api": cmd_api,
    "simulate": cmd_simulate,
    "demo": cmd_demo,
    "rebuild": cmd_rebuild,
    "bench": cmd_bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"moments: {exc}", file=sys.stderr)
        return 2
    _logging(settings.log_level)
    try:
        return COMMANDS[args.command](args, settings)
    except CatalogueError as exc:
        print(f"moments: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
