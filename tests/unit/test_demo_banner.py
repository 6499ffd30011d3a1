"""What ``moments demo`` prints to try it with: a request for a simulated customer who
exists, and a ``moments lift`` command line the CLI takes as it is printed."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime

from streams.api.auth import DEV_KEY, hash_key
from streams.cli_arguments import parser
from streams.demo import _api_key, _cli_line, _try_line
from streams.lift_report import duration, instant
from streams.services import Services
from streams.settings import Settings
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


def test_the_development_key_is_printed_only_while_the_api_takes_it() -> None:
    """With MOMENTS_API_KEYS set, the API refuses the development key (a 401): the demo
    printed it all the same, in commands that then failed."""
    assert _api_key(Settings()) == DEV_KEY
    keyed = Settings(api_keys=f"web:recommend:{hash_key('k')}")
    assert _api_key(keyed) is None
    line = _try_line(48391, 500, _api_key(keyed))
    assert DEV_KEY not in line and "<a key of MOMENTS_API_KEYS>" in line
