"""Arguments out of range get a one-line message and exit 2, not a traceback (or, for
``moments evaluate``, figures computed from a negative propensity)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streams import cli, cli_arguments
from streams.estimators import Logged, ips_estimates
from streams.settings import DEFAULT_CATALOGUE


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["evaluate", "--epsilon", "2"], "--epsilon"),
        (["evaluate", "--epsilon", "nan"], "--epsilon"),
        (["evaluate", "--alpha", "-1"], "--alpha"),
        (["evaluate", "--customers", "0"], "--customers"),
        (["evaluate", "--seed", "-1"], "--seed"),
        (["evaluate", "--alpha", "inf"], "--alpha"),
        (["lift", "--days", "inf"], "--days"),
        (["lift", "--days", "nan"], "--days must be"),
        (["lift", "--days", "-2"], "--days must be"),
        (["dead-letters", "--accept-lost-erasures"], "goes with --redrive"),
        (["dead-letters", "--since", "2026-12-02", "--until", "2026-12-01"], "--since must"),
        (["lift", "--days", "800000"], "--window or --days"),
        (["lift", "--window", "99999999999d"], "--window or --days"),
        # before any topic is made or service started (they ended in tracebacks, sent for
        # ever, or started a demo to fail in it)
        (["simulate", "--rate", "0"], "--rate"),
        (["simulate", "--rate", "-1"], "--rate"),
        (["simulate", "--rate", "nan"], "--rate"),
        (["simulate", "--rate", "1e-300"], "--rate"),
        (["simulate", "--count", "-3"], "--count"),
        (["simulate", "--customers", "0"], "--customers"),
        (["simulate", "--customers", "100000000000"], "--customers"),
        (["simulate", "--duration", "nan"], "--duration"),
        (["demo", "--customers", "0"], "--customers"),
        (["demo", "--rate", "0"], "--rate"),
        (["demo", "--duration", "-5"], "--duration"),
    ],
)
def test_out_of_range_arguments_exit_2_with_a_message(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--events", "0"], "argument --events: 0 is out of bounds: from 10,000 to 500,000"),
        (["--events", "-20"], "argument --events: -20 is out of bounds"),
        (["--events", "1000000000"], "argument --events: 1000000000 is out of bounds"),
        (["--events", "2.5"], "argument --events: invalid whole number value: '2.5'"),
        (["--rate", "0"], "argument --rate: 0 is out of bounds: from 1 to 10,000"),
        (["--rate", "-200"], "argument --rate: -200 is out of bounds"),
        (["--rate", "nan"], "argument --rate: nan is out of bounds"),
        (["--rate", "inf"], "argument --rate: inf is out of bounds"),
        (["--rate", "1e9"], "argument --rate: 1e9 is out of bounds"),
        (["--latency-seconds", "0"], "argument --latency-seconds: 0 is out of bounds"),
        (["--latency-seconds", "-1"], "argument --latency-seconds: -1 is out of bounds"),
        (["--latency-seconds", "86400"], "argument --latency-seconds: 86400 is out of bounds"),
        (["--latency-seconds", "soon"], "argument --latency-seconds: invalid number value"),
    ],
)
def test_bench_numbers_out_of_bounds_are_refused_as_the_command_line_is_read(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``moments bench`` took any number, and started Kafka and Redis before it found
    out: a rate or a latency of 0 or below, or negative events, ended in a traceback
    (``need count >= 0, rate > 0``), 0 events in another once the pipeline had nothing
    to time, a billion events or a day's latency filled memory with touchpoints made in
    advance. Refused now as the command line is read, naming the bounds (here read,
    not run: taken, it would start a bench)."""
    with pytest.raises(SystemExit) as stopped:
        cli_arguments.parser().parse_args(["bench", *argv])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"moments bench: error: {said}" in " ".join(err.split()), err
    assert "Traceback" not in err


def test_bench_takes_its_bounds_and_its_defaults() -> None:
    read = cli_arguments.parser().parse_args
    lowest = read(["bench", "--events", "10000", "--rate", "1", "--latency-seconds", "1"])
    assert (lowest.events, lowest.rate, lowest.latency_seconds) == (10_000, 1.0, 1.0)
    highest = read(["bench", "--events", "500000", "--rate", "1e4", "--latency-seconds", "120"])
    assert (highest.events, highest.rate, highest.latency_seconds) == (500_000, 10_000.0, 120.0)
    default = read(["bench"])
    assert (default.events, default.rate, default.latency_seconds) == (20_000, 200.0, 15.0)


def test_one_logged_decision_gives_no_interval_rather_than_infinities() -> None:
    """Its spread is unknown: the interval is null, and the figures stay valid JSON."""
    logged = Logged(x=[1.0], allowed=("a", "b"), worth={}, arm="a", propensity=0.5, reward=1.0,
                    customer_id="c1", channel="web", category=None)  # fmt: skip
    estimates = ips_estimates([logged], lambda r: 1.0)
    assert estimates["ips_ci95_low"] is None and estimates["ips_ci95_high"] is None
    json.loads(json.dumps(estimates), parse_constant=lambda c: pytest.fail(c))


CATALOGUE = Path(DEFAULT_CATALOGUE)


@pytest.mark.parametrize("output", ["closed pipe", "full disk"])
def test_output_that_cannot_be_written_ends_without_a_traceback(output: str) -> None:
    """``moments check-catalogue | head -0`` (a reader gone) and ``> /dev/full`` ended in a
    BrokenPipeError or OSError traceback."""
    command = [sys.executable, "-m", "streams.cli", "check-catalogue", str(CATALOGUE)]
    if output == "closed pipe":
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # before it writes: it takes a second to start
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 1
    else:
        with open("/dev/full", "w") as full:
            done = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, timeout=60)
        err = done.stderr.decode()
        assert done.returncode == 1 and "could not write its output" in err
    assert "Traceback" not in err and "Exception ignored" not in err, err


def test_a_rebuild_told_to_stop_says_what_it_leaves(tmp_path: Path) -> None:
    """SIGTERM (a Kubernetes Job's or a systemd unit's stop) ended it with exit 143 and
    nothing said; it now says, as for Ctrl-C, that the target may hold part of it."""
    silent = socket.socket()  # a Redis that accepts and never answers: the rebuild waits
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    env = {**os.environ, "MOMENTS_REDIS_URL": f"redis://127.0.0.1:{silent.getsockname()[1]}/0",
           "MOMENTS_REDIS_TIMEOUT_S": "60"}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "rebuild"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        silent.settimeout(30)
        connection, _ = silent.accept()  # it is under way
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        connection.close()
    finally:
        silent.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert b"interrupted" in err and b"--force" in err and b"Traceback" not in err
