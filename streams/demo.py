"""``moments demo`` (``make run``): services, a worker and simulated customers, live.

Starts (or finds) Kafka and Redis, runs one Moments worker, the API and the simulator
(whose customers answer the offers they get, and some order) as child processes, prints
where everything listens, then shows each next-best offer and alert as it is emitted,
and every so often the lift over the control group so far. Customers are shown by a
short keyed hash, never by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer

from schemas import (
    Intervention,
    InvalidEvent,
    decode_erasure,
    decode_intervention,
    decode_next_best_offer,
)
from streams.api.auth import DEV_KEY
from streams.committed_reads import READ_COMMITTED
from streams.control_lift import ControlLift, LiftPeriod
from streams.kafka_security import client_options
from streams.lift_report import count_outcome
from streams.services import (
    Services,
    dies_with_parent,
    free_port,
    services,
    stopped_like_ctrl_c,
    uninterrupted,
)
from streams.settings import Settings
from streams.simulation.population import simulated_customer_id
from streams.startup_line import without_password
from streams.topics import (
    CUSTOMER_ERASURES,
    INTERVENTIONS,
    NEXT_BEST_OFFERS,
    TOUCHPOINTS,
    ensure_topics,
)

LIFT_WINDOW = timedelta(seconds=30)  # short, so the demo shows a lift within a minute
LIFT_EVERY_S = 15.0
# with --duration: how long the simulator may take after it, to answer the decisions on
# its last touchpoints (its own grace: 5 s) and send what follows them
SIMULATOR_FINISH_S = 60.0


@dataclass(frozen=True, slots=True)
class Child:
    """A process the demo started, and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    may_finish: bool = False  # it runs for a set time: ending well then is no reason to stop

    def exited(self) -> str | None:
        """Why the demo must stop, once the process has ended."""
        code = self.process.poll()
        if code is None or (code == 0 and self.may_finish):
            return None
        return f"the {self.name} exited (code {code}); its log: {self.log}\n" + _tail(self.log)


def _tail(log: Path, chars: int = 2000) -> str:
    with contextlib.suppress(OSError):
        return log.read_text(errors="replace")[-chars:]
    return ""


class ChildExited(Exception):
    """A worker, the API or the simulator stopped while the demo ran."""


def _wait_ready(url: str, child: Child, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (why := child.exited()) is not None:
            raise ChildExited(why)
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.3)
    raise ChildExited(f"the {child.name} was not ready within {timeout:.0f}s; its log: {child.log}")


_RUN_KEY = os.urandom(16)  # a key of this run's own: the hashes cannot be looked up


def _who(customer_id: str) -> str:
    return hashlib.blake2b(customer_id.encode(), key=_RUN_KEY, digest_size=4).hexdigest()


def _show_alert(alert: Intervention) -> None:
    print(
        f"{alert.ts:%H:%M:%S} ALERT P{alert.priority} {alert.kind} "
        f"customer#{_who(alert.customer_id)} queue={alert.queue or '-'} "
        f"[{'; '.join(alert.reasons)}]",
        flush=True,
    )


def _api_key(settings: Settings) -> str | None:
    """The key to print for trying the API: the development key, which the API takes
    only while ``MOMENTS_API_KEYS`` is not set (``None`` then: one of those keys)."""
    return None if settings.api_keys.strip() else DEV_KEY


def _try_line(api_port: int, customers: int, key: str | None = DEV_KEY) -> str:
    """A request to make of the running API: a simulated customer's recommendations."""
    url = f"http://127.0.0.1:{api_port}/v1/customers/{simulated_customer_id(42 % customers)}"
    auth = f"Bearer {key}" if key else "Bearer <a key of MOMENTS_API_KEYS>"
    return f"curl -H 'Authorization: {auth}' '{url}/recommendations?channel=web'"


def _moments_command() -> str:
    """How to run ``moments`` from here: ``.venv/bin/moments`` in a checkout."""
    beside = Path(sys.executable).with_name("moments")
    if not beside.exists() or shutil.which("moments") == str(beside):
        return "moments"
    try:
        return str(beside.relative_to(Path.cwd()))
    except ValueError:
        return str(beside)


@contextlib.contextmanager
def _said_in_the_banner(logger_name: str) -> Iterator[None]:
    """The info lines of ``logger_name`` left out meanwhile (unless debug logs are
    asked for): the banner says what they would, and it comes first."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    if not logger.isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _services_lines(svc: Services, created: list[str]) -> str:
    """The banner's lines on Kafka and Redis: where they listen, the topics the demo
    made, and the folder their data stays in when it is kept."""
    made = f"  ({len(created)} topics made)" if created else ""
    lines = [f"  Kafka      {svc.kafka_bootstrap}{made}",
             f"  Redis      {without_password(svc.redis_url)}"]  # fmt: skip
    if svc.kept is not None:
        lines.append(f"  data       {svc.kept}  (kept: MOMENTS_KEEP_SERVICE_DATA)")
    return "".join(f"{line}\n" for line in lines)


def _cli_line(svc: Services, started: datetime) -> str:
    """How to point ``moments`` commands at the demo's services (the demo's other
    settings are the caller's own ``MOMENTS_*`` ones), with the lift the demo shows."""
    return (
        f"MOMENTS_KAFKA_BOOTSTRAP={svc.kafka_bootstrap} "
        f"MOMENTS_REDIS_URL={without_password(svc.redis_url)} "
        f"{_moments_command()} lift --window {LIFT_WINDOW.total_seconds():.0f}s "
        f"--since {started.isoformat().replace('+00:00', 'Z')}"
    )


def _share(group: dict[str, Any]) -> str:
    """``"20.0% of 5"``; ``"n/a of 0"`` for a group of no customers (no rate)."""
    rate = group["conversion"]
    return f"{'n/a' if rate is None else f'{rate:.1%}'} of {group['customers']}"


def _lift_line(lift: ControlLift) -> str:
    """One line on the lift over the control group so far (``moments lift`` for more)."""
    now = datetime.now(UTC)
    report = lift.report(now)
    treated, control = report["treated"], report["control"]
    window = f"{lift.period.window.total_seconds():.0f}s"
    line = (f"{now:%H:%M:%S} LIFT bought within {window} of their first decision: treated "
            f"{_share(treated)}, control {_share(control)}")  # fmt: skip
    if report["lift"] is not None:
        low, high = report["ci95"]
        line += f"; {report['lift'] * 100:+.1f} pp (95 % CI {low * 100:+.1f} to {high * 100:+.1f})"
    return line


def _take(settings: Settings, topic: str, value: bytes, lift: ControlLift) -> int:
    """Show one record of the demo's topics, and count it in ``lift`` as ``moments lift``
    does (erased customers left out, a record that does not decode skipped); 1 for a
    decision shown."""
    try:
        return _shown(settings, topic, value, lift)
    except (InvalidEvent, msgspec.DecodeError):  # a stray record: said by its topic alone
        print(f"SKIPPED a record of {topic} that does not decode", flush=True)
        return 0


def _shown(settings: Settings, topic: str, value: bytes, lift: ControlLift) -> int:
    if topic == settings.topic(INTERVENTIONS):
        _show_alert(decode_intervention(value))
        return 0
    if topic == settings.topic(TOUCHPOINTS):
        count_outcome(lift, value)
        return 0
    if topic == settings.topic(CUSTOMER_ERASURES):
        erasure = decode_erasure(value)
        lift.erased(erasure.customer_id)
        print(f"{erasure.ts:%H:%M:%S} ERASED customer#{_who(erasure.customer_id)}", flush=True)
        return 0
    d = decode_next_best_offer(value)
    lift.decision(d.customer_id, d.ts, d.control, d.channel, d.segment)
    lag_ms = (d.ts - d.trigger_ts).total_seconds() * 1000 if d.trigger_ts else 0
    offers = ", ".join(f"{o.offer_id}({o.score:.1f})" for o in d.offers)
    what = "control group (no offer)" if d.control else offers or "-"
    print(f"{d.ts:%H:%M:%S} {d.channel:<5} customer#{_who(d.customer_id)}  {what}  "
          f"[{'; '.join(d.reasons)}]  +{lag_ms:.0f}ms", flush=True)  # fmt: skip
    return 1


async def _show_decisions(settings: Settings, until: float | None, children: list[Child]) -> int:
    started = datetime.now(UTC)
    lift = ControlLift(LiftPeriod(started, started + timedelta(days=365), LIFT_WINDOW), started)
    next_lift = time.monotonic() + 2 * LIFT_WINDOW.total_seconds()
    consumer = AIOKafkaConsumer(
        settings.topic(NEXT_BEST_OFFERS),
        settings.topic(INTERVENTIONS),
        settings.topic(TOUCHPOINTS),
        settings.topic(CUSTOMER_ERASURES),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="latest",
        group_id=None,
        isolation_level=READ_COMMITTED,
        **client_options(),
    )
    await consumer.start()
    shown = 0
    try:
        while until is None or time.monotonic() < until:
            for child in children:  # one that stops would leave the demo silent
                if (why := child.exited()) is not None:
                    raise ChildExited(why)
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    shown += _take(settings, record.topic, record.value or b"", lift)
            if time.monotonic() >= next_lift:
                print(_lift_line(lift), flush=True)
                next_lift = time.monotonic() + LIFT_EVERY_S
    finally:
        await consumer.stop()
    return shown


def run_demo(duration_s: float | None, rate: float, customers: int) -> int:
    """Run the demo; 0 when it ran its time or was stopped with Ctrl-C, 1 when one of its
    processes stopped (the logs, kept after the demo, say why)."""
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logs = Path(tempfile.mkdtemp(prefix="moments-demo-logs-"))
    with (
        stopped_like_ctrl_c(),  # SIGTERM, SIGHUP: the same cleanup as Ctrl-C
        services() as svc,
        tempfile.TemporaryDirectory(prefix="moments-demo-") as tmp,
    ):
        port = int(os.environ.get("MOMENTS_WEB_PORT", free_port()))
        api_port = int(os.environ.get("MOMENTS_API_PORT", free_port()))
        probe_port = int(os.environ.get("MOMENTS_API_PROBE_PORT", free_port()))
        env = dict(
            os.environ,
            MOMENTS_KAFKA_BOOTSTRAP=svc.kafka_bootstrap,
            MOMENTS_REDIS_URL=svc.redis_url,
            MOMENTS_WEB_PORT=str(port),
            MOMENTS_API_PORT=str(api_port),
            MOMENTS_API_PROBE_PORT=str(probe_port),
            MOMENTS_DATA_DIR=os.environ.get("MOMENTS_DATA_DIR", str(Path(tmp) / "data")),
            MOMENTS_LOG_LEVEL=os.environ.get("MOMENTS_LOG_LEVEL", "warning"),
        )
        settings = Settings.from_env(env)
        with _said_in_the_banner("streams.topics"):  # which topics it made
            created = asyncio.run(ensure_topics(settings))
        worker_log, api_log, sim_log = logs / "worker.log", logs / "api.log", logs / "simulator.log"
        code = 0
        with worker_log.open("wb") as wout, sim_log.open("wb") as sout, api_log.open("wb") as aout:
            worker = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"],
                env=env,
                stdout=wout,
                stderr=wout,
                preexec_fn=dies_with_parent(),
            )
            api = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "api"],
                env=env,
                stdout=aout,
                stderr=aout,
                preexec_fn=dies_with_parent(),
            )
            sim_args = ["--rate", str(rate), "--customers", str(customers), "--respond"]
            if duration_s is not None:
                sim_args += ["--duration", str(duration_s)]
            simulator: subprocess.Popen[bytes] | None = None
            children = [Child("worker", worker, worker_log), Child("API", api, api_log)]
            try:
                _wait_ready(f"http://127.0.0.1:{port}/readyz", children[0])
                _wait_ready(f"http://127.0.0.1:{api_port}/readyz", children[1])
                started = datetime.now(UTC).replace(microsecond=0)  # its first touchpoints
                simulator = subprocess.Popen(
                    [sys.executable, "-m", "streams.cli", "simulate", *sim_args],
                    env=env,
                    stdout=sout,
                    stderr=sout,
                    preexec_fn=dies_with_parent(),
                )
                # with a duration it may end first, and well; never badly unnoticed
                children.append(
                    Child("simulator", simulator, sim_log, may_finish=duration_s is not None)
                )
                key = _api_key(settings)
                print(
                    f"Moments is running ({svc.origin} services)\n"
                    f"{_services_lines(svc, created)}"
                    f"  worker     http://127.0.0.1:{port}  (/metrics /healthz /readyz)\n"
                    f"  API        http://127.0.0.1:{api_port}  "
                    f"({f'key: {key}' if key else 'keys: MOMENTS_API_KEYS'})\n"
                    f"  API probe  http://127.0.0.1:{probe_port}  (/metrics /healthz /readyz)\n"
                    f"  console    http://127.0.0.1:{api_port}/console"
                    f"{f'?api_key={key}' if key else ''}\n"
                    f"  simulator  {customers} customers ({simulated_customer_id(0)} to "
                    f"{simulated_customer_id(customers - 1)}), {rate:g} touchpoints/s\n"
                    f"  try        {_try_line(api_port, customers, key)}\n"
                    f"  CLI        {_cli_line(svc, started)}\n"
                    f"  logs       {worker_log}, {api_log}, {sim_log}\n"
                    "Next-best offers as they are decided (Ctrl-C to stop):",
                    flush=True,
                )
                until = time.monotonic() + duration_s if duration_s is not None else None
                shown = asyncio.run(_show_decisions(settings, until, children))
                print(f"{shown} decisions shown", flush=True)
                if duration_s is not None:  # it started late, and answers for a while yet
                    print("waiting for the simulator to answer the last decisions", flush=True)
                    with contextlib.suppress(subprocess.TimeoutExpired):  # then stopped
                        simulator.wait(SIMULATOR_FINISH_S)
            except KeyboardInterrupt:
                print("\nstopping", flush=True)
            except ChildExited as exc:
                print(f"\nstopping: {exc}", file=sys.stderr, flush=True)
                code = 1
            finally:
                with uninterrupted():  # a second Ctrl-C must not leave one running
                    for proc in (simulator, api, worker):
                        if proc is not None and proc.poll() is None:
                            proc.terminate()
                            try:
                                proc.wait(20)
                            except subprocess.TimeoutExpired:
                                proc.kill()
                print(f"logs kept in {logs}", flush=True)
                if svc.kept is not None:
                    print(f"Kafka's and Redis's data kept in {svc.kept}", flush=True)
    return code
