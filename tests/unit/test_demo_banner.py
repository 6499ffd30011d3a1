"""What ``moments demo`` prints to try it with: a request for a simulated customer who
exists, and a ``moments lift`` command line the CLI takes as it is printed."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime

from streams.cli_arguments import parser
from streams.demo import _cli_line, _try_line
from streams.lift_report import duration, instant
from streams.services import Services
from streams.simulation.population import CustomerPopulation

STARTED = datetime(2026, 12, 4, 9, 56, 32, tzinfo=UTC)


def test_the_request_to_try_names_a_customer_of_the_simulation() -> None:
    for customers in (500, 10):
        ids = {c.customer_id for c in CustomerPopulation(customers, seed=7).customers}
        url = shlex.split(_try_line(48391, customers))[-1]
        assert url.startswith("http://127.0.0.1:48391/v1/customers/")
        assert url.split("/")[5] in ids
        assert url.endswith("/recommendations?channel=web")


def test_the_cli_line_points_at_the_demos_services_and_parses_as_printed() -> None:
    svc = Services("127.0.0.1:53917", "redis://127.0.0.1:57629/0", "local")
    words = shlex.split(_cli_line(svc, STARTED))
    env = dict(w.split("=", 1) for w in words[:2])
    assert env == {
        "MOMENTS_KAFKA_BOOTSTRAP": "127.0.0.1:53917",
        "MOMENTS_REDIS_URL": "redis://127.0.0.1:57629/0",
    }
    assert words[2].endswith("moments")
    args = parser().parse_args(words[3:])
    assert args.command == "lift"
    assert instant(args.since) == STARTED
    assert duration(args.window).total_seconds() == 30
