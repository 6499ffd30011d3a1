"""Arguments out of range get a one-line message and exit 2, not a traceback (or, for
``moments evaluate``, figures computed from a negative propensity)."""

from __future__ import annotations

import json

import pytest

from streams import cli
from streams.estimators import Logged, ips_estimates


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["evaluate", "--epsilon", "2"], "--epsilon"),
        (["evaluate", "--epsilon", "nan"], "--epsilon"),
        (["evaluate", "--alpha", "-1"], "--alpha"),
        (["evaluate", "--customers", "0"], "--customers"),
        (["evaluate", "--seed", "-1"], "--seed"),
        (["evaluate", "--alpha", "inf"], "--alpha"),
        (["lift", "--days", "inf"], "--window or --days"),
        (["lift", "--days", "800000"], "--window or --days"),
        (["lift", "--window", "99999999999d"], "--window or --days"),
    ],
)
def test_out_of_range_arguments_exit_2_with_a_message(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def test_one_logged_decision_gives_no_interval_rather_than_infinities() -> None:
    """Its spread is unknown: the interval is null, and the figures stay valid JSON."""
    logged = Logged(x=[1.0], allowed=("a", "b"), worth={}, arm="a", propensity=0.5, reward=1.0,
                    customer_id="c1", channel="web", category=None)  # fmt: skip
    estimates = ips_estimates([logged], lambda r: 1.0)
    assert estimates["ips_ci95_low"] is None and estimates["ips_ci95_high"] is None
    json.loads(json.dumps(estimates), parse_constant=lambda c: pytest.fail(c))
